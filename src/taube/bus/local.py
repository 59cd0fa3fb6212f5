"""``LocalBus``: the in-process bus for a single node.

Delivery is synchronous on publish; handlers are called in subscription order and
a failing handler does not stop the others.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Final

from taube.bus.base import Bus, Handler, Subscription

log: Final = logging.getLogger(__name__)


class _LocalSubscription(Subscription):
    def __init__(self, bus: LocalBus, subject: str, handler: Handler) -> None:
        self._bus, self._subject, self._handler = bus, subject, handler

    async def cancel(self) -> None:
        self._bus._remove(self._subject, self._handler)


class LocalBus(Bus):
    def __init__(self) -> None:
        self._handlers: defaultdict[str, list[Handler]] = defaultdict(list)

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        self._handlers.clear()

    async def ping(self) -> None:
        pass

    async def publish(self, subject: str, data: bytes = b"") -> None:
        self.publish_nowait(subject, data)

    def publish_nowait(self, subject: str, data: bytes = b"") -> None:
        handlers = self._handlers.get(subject)
        if handlers is None:
            return
        # A doorbell (one per message delivered) has one handler, its device's
        # connection: called without copying the list, which only protects a loop
        # over several from a handler that unsubscribes one.
        for handler in handlers if len(handlers) == 1 else list(handlers):
            try:
                handler(subject, data)
            except Exception:
                log.exception("bus handler failed", extra={"subject": subject})

    async def subscribe(self, subject: str, handler: Handler) -> Subscription:
        self._handlers[subject].append(handler)
        return _LocalSubscription(self, subject, handler)

    def _remove(self, subject: str, handler: Handler) -> None:
        handlers = self._handlers.get(subject)
        if handlers and handler in handlers:
            handlers.remove(handler)
            if not handlers:
                del self._handlers[subject]
