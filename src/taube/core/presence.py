"""Presence: who is online, when they were last seen, and who may know.

A user is online while at least one of their devices holds a connection to any
node. Each node counts its own connections and tells the others on the bus when a
user comes or goes on it (``presence.nodes``), and repeats the full list of its
online users every few seconds as a lease: a node that dies silently drops out of
everyone's view when its lease runs out. Going offline everywhere records
``last_seen_ms`` in the store. Watchers get ``presence`` frames on the user's own
subject; users who hide their presence never publish and always appear offline
with no last seen, and so do users to those who blocked them (core/blocks.py; the
gateway filters the live frames with ``hidden_from``). Presence is ephemeral: a lost
notice is corrected by the next watch or lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable

import msgspec

from taube.bus.base import Bus, Subscription, presence_subject
from taube.core.clock import Clock
from taube.core.directory import Directory
from taube.protocol.frames import Presence, encode_frame
from taube.store.base import Store, StoreUnavailable

log = logging.getLogger(__name__)

NODES_SUBJECT = "presence.nodes"
LEASE_EVERY_S = 10.0
LEASE_TTL_S = 35.0


class NodePresence(msgspec.Struct, frozen=True):
    """One node's news: a user came (``online``) or went, or (``users``) its full list."""

    node: str
    user: str = ""
    online: bool = False
    users: list[str] | None = None


_decode_news = msgspec.json.Decoder(NodePresence).decode


class PresenceService:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        clock: Clock,
        *,
        node: str = "local",
        monotonic: Callable[[], float] = time.monotonic,
        directory: Directory | None = None,
    ) -> None:
        self._store = store
        self._directory = directory
        self._bus = bus
        self._clock = clock
        self._node = node
        self._monotonic = monotonic
        self._connections: Counter[str] = Counter()
        # Other nodes: node -> (lease expiry, users online there).
        self._elsewhere: dict[str, tuple[float, set[str]]] = {}
        self._subscription: Subscription | None = None
        self._lease_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._subscription = await self._bus.subscribe(NODES_SUBJECT, self._on_news)
        self._lease_task = asyncio.get_running_loop().create_task(self._renew_leases())

    async def stop(self) -> None:
        if self._lease_task is not None:
            self._lease_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lease_task
        if self._subscription is not None:
            await self._subscription.cancel()

    async def _renew_leases(self) -> None:
        while True:
            news = NodePresence(node=self._node, users=sorted(self._connections))
            with contextlib.suppress(Exception):  # best effort: the next lease retries
                await self._bus.publish(NODES_SUBJECT, msgspec.json.encode(news))
            await asyncio.sleep(LEASE_EVERY_S)

    def _on_news(self, subject: str, data: bytes) -> None:
        try:
            news = _decode_news(data)
        except msgspec.DecodeError:
            return
        if news.node == self._node:
            return
        expiry = self._monotonic() + LEASE_TTL_S
        if news.users is not None:
            self._elsewhere[news.node] = (expiry, set(news.users))
            return
        _, users = self._elsewhere.get(news.node, (expiry, set()))
        (users.add if news.online else users.discard)(news.user)
        self._elsewhere[news.node] = (expiry, users)

    def _online_elsewhere(self, user: str) -> bool:
        now = self._monotonic()
        for node, (expiry, users) in list(self._elsewhere.items()):
            if expiry < now:
                del self._elsewhere[node]
            elif user in users:
                return True
        return False

    def is_online(self, user: str) -> bool:
        return self._connections[user] > 0 or self._online_elsewhere(user)

    async def _tell_nodes(self, user: str, online: bool) -> None:
        news = NodePresence(node=self._node, user=user, online=online)
        await self._bus.publish(NODES_SUBJECT, msgspec.json.encode(news))

    async def connected(self, user: str) -> None:
        self._connections[user] += 1
        if self._connections[user] > 1:
            return
        elsewhere = self._online_elsewhere(user)
        await self._tell_nodes(user, True)
        if not elsewhere:
            await self._publish(user, Presence(user=user, online=True, last_seen_ms=None))

    async def disconnected(self, user: str) -> None:
        self._connections[user] -= 1
        if self._connections[user] > 0:
            return
        del self._connections[user]
        await self._tell_nodes(user, False)
        if self._online_elsewhere(user):
            return  # still online on another node
        now = self._clock()
        try:
            await self._store.set_last_seen(user, now)
            await self._publish(user, Presence(user=user, online=False, last_seen_ms=now))
        except StoreUnavailable:
            # Without the store, whether the user hides their presence is unknown: say
            # nothing rather than too much (watchers learn it at their next watch).
            log.warning("offline not recorded user=%s: store unavailable", user)

    async def set_hidden(self, user: str, hide: bool) -> None:
        """Change the setting and tell watchers at once (hidden looks like offline)."""
        await self._store.set_hide_presence(user, hide)
        if not self.is_online(user):
            return
        presence = Presence(user=user, online=not hide, last_seen_ms=None)
        await self._bus.publish(presence_subject(user), encode_frame(presence))

    async def _publish(self, user: str, presence: Presence) -> None:
        record = await self._store.get_user(user)
        if record is not None and not record.hide_presence:
            await self._bus.publish(presence_subject(user), encode_frame(presence))

    async def hidden_from(self, user: str, watcher: str) -> bool:
        """True if ``user`` blocked ``watcher`` (who then sees ``user`` offline)."""
        if self._directory is None:
            return False
        return watcher in await self._directory.blocked_by(user)

    async def current(self, user: str, watcher: str | None = None) -> Presence:
        """What a watcher may see of ``user`` now."""
        if watcher is not None and await self.hidden_from(user, watcher):
            return Presence(user=user, online=False, last_seen_ms=None)
        record = await self._store.get_user(user)
        if record is None or record.hide_presence:
            return Presence(user=user, online=False, last_seen_ms=None)
        if self.is_online(user):
            return Presence(user=user, online=True, last_seen_ms=None)
        return Presence(user=user, online=False, last_seen_ms=record.last_seen_ms)
