"""Blocking, as in WhatsApp: the blocked user is never told.

When Alice blocks Bob, the server keeps these rules (and nothing else changes):

- Bob's 1:1 messages to Alice are accepted and acknowledged ``sent`` as usual, and
  reach Bob's own other devices, but no device of Alice's (delivery.py). Bob's client
  still encrypts for every device of Alice's: the stale-device check is unchanged, so
  that Bob cannot learn of the block from the device list either.
- Bob's typing in their 1:1 chat is not forwarded to Alice (delivery.py).
- Bob sees Alice offline with no last seen (presence.py, and the gateway's watch).
- Alice's delivered and read receipts for Bob's 1:1 messages are not sent to Bob
  (delivered: the store's ack; read: delivery.py). Bob gets one tick, never two.
- Group messages, group typing and group receipts are unaffected.

Blocks are kept in the Store and cached by the Directory, which every node drops on a
``blocks:<handle>`` notice on the bus, so a block made on one node holds on all of
them as soon as the notice arrives (milliseconds).
"""

from __future__ import annotations

from taube.bus.base import Bus, user_subject
from taube.core.clock import Clock
from taube.core.directory import Directory
from taube.core.presence import PresenceService
from taube.protocol.errors import TaubeError
from taube.protocol.frames import Presence, encode_frame
from taube.protocol.ids import normalize_handle
from taube.store.base import Store


class Blocks:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        clock: Clock,
        directory: Directory,
        presence: PresenceService,
    ) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._directory = directory
        self._presence = presence

    async def _other(self, blocker: str, handle: str) -> str:
        other = normalize_handle(handle)
        if other == blocker:
            raise TaubeError("request.invalid", "You cannot block yourself.")
        if other not in await self._directory.active_devices([other]):
            raise TaubeError("user.not_found")
        return other

    async def block(self, blocker: str, handle: str) -> None:
        """Block ``handle`` (idempotent); raises user.not_found or request.invalid."""
        other = await self._other(blocker, handle)
        await self._store.block(blocker, other, self._clock())
        await self._directory.blocks_changed(blocker)
        # Whatever the blocked user saw of the blocker's presence ends now.
        hidden = Presence(user=blocker, online=False, last_seen_ms=None)
        await self._bus.publish(user_subject(other), encode_frame(hidden))

    async def unblock(self, blocker: str, handle: str) -> None:
        """Unblock ``handle`` (no error if it was not blocked)."""
        other = await self._other(blocker, handle)
        if await self._store.unblock(blocker, other):
            await self._directory.blocks_changed(blocker)
            current = await self._presence.current(blocker, watcher=other)
            await self._bus.publish(user_subject(other), encode_frame(current))

    async def blocked(self, blocker: str) -> list[str]:
        return sorted(await self._directory.blocked_by(blocker))

    async def has_blocked(self, blocker: str, other: str) -> bool:
        return other in await self._directory.blocked_by(blocker)
