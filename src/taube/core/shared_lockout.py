"""The login lockout, shared by the nodes of a cluster.

Each node keeps its own ``LoginGuard`` (core/auth_guard.py) in memory, so that an
attempt refused as locked costs a dictionary lookup and no store round trip. Alone,
each node would count only the attempts it saw, and a cluster of N nodes would give
a guesser the free failures and every backoff step N times over. So every node tells
the others, on the bus, each failure and success it counts (password and code checks
only, a few per login: no load worth measuring), and applies theirs to its own guard.

Eventually consistent: an attempt on another node within the bus's delivery time
(milliseconds on a LAN) can pass before that node hears of the last failure, which
bounds the extra guesses to those few milliseconds' worth, not N times the allowance.
A node cut off from the bus counts alone until it is back; what it missed meanwhile
is not replayed (the counts live in memory, and the lockout is a brake on guessing,
not a record). The "one check per account at a time" rule stays per node.
"""

from __future__ import annotations

import logging
from typing import Final

import msgspec

from taube.bus.base import Bus, Subscription
from taube.core.auth_guard import LoginGuard

log = logging.getLogger("taube.auth")

LOCKOUT_SUBJECT: Final = "auth.lockout"


class LockoutOutcome(msgspec.Struct, array_like=True, frozen=True):
    """One counted check on one node: ``key`` is the guard's (``user:alice``,
    ``ip:192.0.2.7``), ``failed`` False for a success."""

    node: str
    key: str
    failed: bool


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(LockoutOutcome).decode


class SharedLockout:
    """Connects this node's guard to the other nodes' (``start`` / ``stop``)."""

    def __init__(self, bus: Bus, guard: LoginGuard, node: str) -> None:
        self._bus = bus
        self._guard = guard
        self._node = node
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._subscription = await self._bus.subscribe(LOCKOUT_SUBJECT, self._heard)
        self._guard.on_outcome = self._tell

    async def stop(self) -> None:
        self._guard.on_outcome = None
        if self._subscription is not None:
            await self._subscription.cancel()
            self._subscription = None

    def _tell(self, key: str, failed: bool) -> None:
        try:
            self._bus.publish_nowait(
                LOCKOUT_SUBJECT, _encode(LockoutOutcome(self._node, key, failed))
            )
        except Exception:  # the check itself is counted here; the others hear the next one
            log.warning("could not share a login outcome with the other nodes", exc_info=True)

    def _heard(self, subject: str, data: bytes) -> None:
        try:
            outcome = _decode(data)
        except msgspec.DecodeError:
            log.warning("ignored a malformed login outcome on %s", subject)
            return
        if outcome.node != self._node:  # this node's own were counted when they happened
            self._guard.apply(outcome.key, failed=outcome.failed)
