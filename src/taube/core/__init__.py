"""Domain logic: accounts, devices, groups, delivery and presence.

The core knows the store and the bus only through their interfaces and never
touches sockets; the server's gateway and HTTP API are thin shells around it.
"""
