"""Groups: membership and admin rights, with every change announced in members' inboxes.

Rules: the creator is the first admin; only admins add, remove, promote and
rename; anyone may leave; when the last admin leaves, the longest-standing member
becomes admin so that a group is never without one. Membership changes are
delivered as ``group`` inbox items to everyone affected (durable, in order with
the messages around them).
"""

from __future__ import annotations

from collections.abc import Sequence

from taube.core.clock import Clock
from taube.core.delivery import DeliveryService
from taube.core.directory import Directory
from taube.core.membership import member_group
from taube.protocol.errors import TaubeError
from taube.protocol.frames import GroupEvent, GroupEventKind
from taube.protocol.ids import is_handle, new_group_id, normalize_handle
from taube.store.base import DeviceKey, GroupRecord, Store


class Groups:
    def __init__(
        self,
        store: Store,
        delivery: DeliveryService,
        directory: Directory,
        clock: Clock,
        *,
        max_members: int,
    ) -> None:
        self._store = store
        self._directory = directory
        self._delivery = delivery
        self._clock = clock
        self.max_members = max_members

    async def _existing_users(self, handles: Sequence[str]) -> list[str]:
        wanted = list(dict.fromkeys(normalize_handle(h) for h in handles))
        bad = [h for h in wanted if not is_handle(h)]
        found = await self._directory.active_devices([h for h in wanted if is_handle(h)])
        missing = bad + [h for h in wanted if is_handle(h) and h not in found]
        if missing:
            raise TaubeError("user.not_found", f"No such user: @{missing[0]}.", handles=missing)
        return wanted

    async def create(self, creator: str, name: str, members: Sequence[str]) -> GroupRecord:
        others = [m for m in await self._existing_users(members) if m != creator]
        if len(others) + 1 > self.max_members:
            raise TaubeError("group.full", limit=self.max_members)
        group = GroupRecord(
            id=new_group_id(),
            name=name,
            created_ms=self._clock(),
            created_by=creator,
            members={creator: True, **dict.fromkeys(others, False)},
        )
        await self._store.create_group(group)
        await self._announce(group, "created", creator, list(group.members), group.members)
        return group

    async def get(self, group_id: str, user: str) -> GroupRecord:
        return await member_group(self._directory, group_id, user)

    async def _admin_group(self, group_id: str, user: str) -> GroupRecord:
        group = await self.get(group_id, user)
        if not group.members[user]:
            raise TaubeError("group.not_admin")
        return group

    async def rename(self, group_id: str, user: str, name: str) -> GroupRecord:
        await self._admin_group(group_id, user)
        group = await self._updated(group_id, name=name)
        await self._announce(group, "renamed", user, [], group.members)
        return group

    async def add(self, group_id: str, user: str, handles: Sequence[str]) -> GroupRecord:
        group = await self._admin_group(group_id, user)
        new = [h for h in await self._existing_users(handles) if h not in group.members]
        if len(group.members) + len(new) > self.max_members:
            raise TaubeError("group.full", limit=self.max_members)
        if not new:
            return group
        group = await self._updated(group_id, upsert=dict.fromkeys(new, False))
        await self._announce(group, "added", user, new, group.members)
        return group

    async def remove(self, group_id: str, user: str, handle: str) -> GroupRecord:
        """Remove a member; removing yourself is leaving."""
        handle = normalize_handle(handle)
        if handle == user:
            return await self.leave(group_id, user)
        group = await self._admin_group(group_id, user)
        if handle not in group.members:
            raise TaubeError("user.not_found", f"@{handle} is not in this group.")
        audience = dict(group.members)
        group = await self._updated(group_id, remove=[handle])
        await self._announce(group, "removed", user, [handle], audience)
        return group

    async def leave(self, group_id: str, user: str) -> GroupRecord:
        group = await self.get(group_id, user)
        audience = dict(group.members)
        rest = {m: a for m, a in group.members.items() if m != user}
        upsert = None
        if rest and not any(rest.values()):
            upsert = {next(iter(rest)): True}
        group = await self._updated(group_id, remove=[user], upsert=upsert)
        await self._announce(group, "left", user, [user], audience)
        if upsert:
            await self._announce(group, "promoted", user, list(upsert), group.members)
        return group

    async def promote(self, group_id: str, user: str, handles: Sequence[str]) -> GroupRecord:
        group = await self._admin_group(group_id, user)
        wanted = [normalize_handle(h) for h in handles]
        missing = [h for h in wanted if h not in group.members]
        if missing:
            raise TaubeError("user.not_found", f"@{missing[0]} is not in this group.")
        new = [h for h in wanted if not group.members[h]]
        if not new:
            return group
        group = await self._updated(group_id, upsert=dict.fromkeys(new, True))
        await self._announce(group, "promoted", user, new, group.members)
        return group

    async def _updated(
        self,
        group_id: str,
        *,
        name: str | None = None,
        upsert: dict[str, bool] | None = None,
        remove: Sequence[str] = (),
    ) -> GroupRecord:
        group = await self._store.update_group(
            group_id, name=name, upsert_members=upsert, remove_members=remove
        )
        if group is None:
            raise TaubeError("group.not_found")
        await self._directory.group_changed(group_id)
        return group

    async def _announce(
        self,
        group: GroupRecord,
        event: GroupEventKind,
        actor: str,
        members: list[str],
        audience: dict[str, bool],
    ) -> None:
        item = GroupEvent(
            seq=0,
            group=group.id,
            event=event,
            actor=actor,
            members=members,
            name=group.name,
            at_ms=self._clock(),
        )
        devices = await self._directory.active_devices(list(audience))
        items: list[tuple[DeviceKey, GroupEvent]] = [
            ((user, device), item) for user, ids in devices.items() for device in ids
        ]
        self._delivery.announce(await self._store.append_items(items))
