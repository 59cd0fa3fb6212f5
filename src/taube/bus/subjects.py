"""Bus subject names (dot-separated words, ``inbox.alice.2``).

A module of its own so that it can be compiled with the hot path (``bus.base`` cannot
be: the interpreted NATS bus subclasses its classes): a doorbell's subject is made for
every message delivered, and calling these as interpreted functions from compiled code
cost ~2 % of the server's instructions in Workload A (docs/performance.md, 9.16).
"""

from __future__ import annotations


def inbox_subject(user: str, device: int) -> str:
    return f"inbox.{user}.{device}"


def device_subject(user: str, device: int) -> str:
    """Control notices for one device's connections (e.g. revoked)."""
    return f"device.{user}.{device}"


def user_subject(user: str) -> str:
    """Ephemeral events for every connection of a user (typing)."""
    return f"user.{user}"


def presence_subject(user: str) -> str:
    return f"presence.{user}"
