"""Presence: who is online, when they were last seen, and who may know.

A user is online while at least one of their devices holds a connection. Going
offline records ``last_seen_ms`` in the store. Changes are published on the bus
as ``presence`` frames; users who hide their presence never publish and always
appear offline with no last seen. Presence is ephemeral: a lost notice is
corrected by the next watch.
"""

from __future__ import annotations

from collections import Counter

from taube.bus.base import Bus, presence_subject
from taube.core.clock import Clock
from taube.protocol.frames import Presence, encode_frame
from taube.store.base import Store


class PresenceService:
    def __init__(self, store: Store, bus: Bus, clock: Clock) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._connections: Counter[str] = Counter()

    def is_online(self, user: str) -> bool:
        return self._connections[user] > 0

    async def connected(self, user: str) -> None:
        self._connections[user] += 1
        if self._connections[user] == 1:
            await self._publish(user, Presence(user=user, online=True, last_seen_ms=None))

    async def disconnected(self, user: str) -> None:
        self._connections[user] -= 1
        if self._connections[user] > 0:
            return
        del self._connections[user]
        now = self._clock()
        await self._store.set_last_seen(user, now)
        await self._publish(user, Presence(user=user, online=False, last_seen_ms=now))

    async def set_hidden(self, user: str, hide: bool) -> None:
        """Change the setting and tell watchers at once (hidden looks like offline)."""
        await self._store.set_hide_presence(user, hide)
        if not self.is_online(user):
            return
        online = not hide
        presence = Presence(user=user, online=online, last_seen_ms=None)
        await self._bus.publish(presence_subject(user), encode_frame(presence))

    async def _publish(self, user: str, presence: Presence) -> None:
        record = await self._store.get_user(user)
        if record is not None and not record.hide_presence:
            await self._bus.publish(presence_subject(user), encode_frame(presence))

    async def current(self, user: str) -> Presence:
        """What a watcher may see of ``user`` now."""
        record = await self._store.get_user(user)
        if record is None or record.hide_presence:
            return Presence(user=user, online=False, last_seen_ms=None)
        if self.is_online(user):
            return Presence(user=user, online=True, last_seen_ms=None)
        return Presence(user=user, online=False, last_seen_ms=record.last_seen_ms)
