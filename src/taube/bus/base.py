"""The ``Bus`` interface: fire-and-forget notifications by subject.

The bus is a doorbell, never the truth (DESIGN.md, principle 4): a message on it
says "device D has new inbox items", "user U is typing", "device D was revoked".
A lost notification may delay something until the next catch-up poll; it never
loses data. Subjects are dot-separated words (``inbox.alice.2``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable

# Subject names live in a compiled module of their own (subjects.py); re-exported here.
from taube.bus.subjects import device_subject as device_subject
from taube.bus.subjects import inbox_subject as inbox_subject
from taube.bus.subjects import presence_subject as presence_subject
from taube.bus.subjects import user_subject as user_subject


class BusUnavailable(Exception):
    """The bus cannot be reached (at open, or for ``ping``)."""


Handler = Callable[[str, bytes], None]
"""Called with (subject, data) on the event loop; must not block."""


class Subscription(abc.ABC):
    @abc.abstractmethod
    async def cancel(self) -> None: ...


class Bus(abc.ABC):
    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise if the bus is unreachable."""

    @abc.abstractmethod
    async def publish(self, subject: str, data: bytes = b"") -> None: ...

    @abc.abstractmethod
    def publish_nowait(self, subject: str, data: bytes = b"") -> None:
        """Publish without awaiting anything: this node's handlers run now, before it
        returns; other nodes get the message soon after, in publish order. The hot
        path's doorbells use it, so that a message whose recipient is on this node
        costs no coroutine and no trip through the broker."""

    @abc.abstractmethod
    async def subscribe(self, subject: str, handler: Handler) -> Subscription: ...
