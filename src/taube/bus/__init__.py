"""Notifications between gateway nodes: the ``Bus`` interface and its implementations."""
