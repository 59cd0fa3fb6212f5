"""Directory: which devices each user has, who is in each group and whom each user
has blocked, cached in memory.

Every send needs the recipient's active devices (and a group's members); asking the
store each time costs a round trip per message. The directory keeps the answers in
a bounded LRU and forgets an entry whenever a node announces a change on the bus
(``directory`` subject), so all nodes of a cluster drop stale entries together.
Unknown users and groups are never cached: a user registered a moment ago is found.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Final, TypeVar

from taube.bus.base import Bus, Subscription
from taube.store.base import GroupRecord, Store

V = TypeVar("V")
DIRECTORY_SUBJECT: Final = "directory"
MAX_ENTRIES: Final = 100_000


class Directory:
    def __init__(self, store: Store, bus: Bus, *, max_entries: int = MAX_ENTRIES) -> None:
        self._store = store
        self._bus = bus
        self._max = max_entries
        self._devices: OrderedDict[str, list[int]] = OrderedDict()
        self._groups: OrderedDict[str, GroupRecord] = OrderedDict()
        self._blocks: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._subscription: Subscription | None = None
        # Bumped by every change, so that a load that raced with a change is not kept.
        self._generation = 0

    async def start(self) -> None:
        self._subscription = await self._bus.subscribe(DIRECTORY_SUBJECT, self._on_change)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.cancel()

    def _on_change(self, subject: str, data: bytes) -> None:
        kind, _, name = data.decode().partition(":")
        self._generation += 1
        if kind == "user":
            self._devices.pop(name, None)
        elif kind == "group":
            self._groups.pop(name, None)
        elif kind == "blocks":
            self._blocks.pop(name, None)

    @property
    def generation(self) -> int:
        """Changes whenever any cached answer may have changed."""
        return self._generation

    async def user_changed(self, handle: str) -> None:
        """Call after a user's devices changed (every node forgets its entry)."""
        self._generation += 1
        self._devices.pop(handle, None)
        await self._bus.publish(DIRECTORY_SUBJECT, f"user:{handle}".encode())

    async def group_changed(self, group_id: str) -> None:
        self._generation += 1
        self._groups.pop(group_id, None)
        await self._bus.publish(DIRECTORY_SUBJECT, f"group:{group_id}".encode())

    async def blocks_changed(self, handle: str) -> None:
        """Call after ``handle`` blocked or unblocked someone."""
        self._generation += 1
        self._blocks.pop(handle, None)
        await self._bus.publish(DIRECTORY_SUBJECT, f"blocks:{handle}".encode())

    async def blocked_by(self, handle: str) -> frozenset[str]:
        """The handles ``handle`` has blocked (cached; empty for unknown users)."""
        found = self.cached_blocked_by(handle)
        if found is not None:
            return found
        generation = self._generation
        found = frozenset(await self._store.blocked_by(handle))
        if generation == self._generation:
            self._remember(self._blocks, handle, found)
        return found

    def cached_blocked_by(self, handle: str) -> frozenset[str] | None:
        """``blocked_by`` if the answer is cached, else None (for callers that cannot
        wait, such as bus handlers)."""
        found = self._blocks.get(handle)
        if found is not None:
            self._blocks.move_to_end(handle)
        return found

    async def active_devices(self, users: Sequence[str]) -> dict[str, list[int]]:
        """Active device ids per user, for the users that exist."""
        found: dict[str, list[int]] = {}
        missing: list[str] = []
        for user in users:
            devices = self._devices.get(user)
            if devices is None:
                missing.append(user)
            else:
                self._devices.move_to_end(user)
                found[user] = devices
        if missing:
            generation = self._generation
            loaded = await self._store.active_devices(missing)
            if generation == self._generation:
                for user, devices in loaded.items():
                    self._remember(self._devices, user, devices)
            found.update(loaded)
        return found

    async def group(self, group_id: str) -> GroupRecord | None:
        group = self._groups.get(group_id)
        if group is not None:
            self._groups.move_to_end(group_id)
            return group
        generation = self._generation
        group = await self._store.get_group(group_id)
        if group is not None and generation == self._generation:
            self._remember(self._groups, group_id, group)
        return group

    def _remember(self, cache: OrderedDict[str, V], key: str, value: V) -> None:
        cache[key] = value
        if len(cache) > self._max:
            cache.popitem(last=False)
