"""The one membership check every group operation starts with."""

from __future__ import annotations

from taube.core.directory import Directory
from taube.protocol.errors import TaubeError
from taube.store.base import GroupRecord


async def member_group(directory: Directory, group_id: str, user: str) -> GroupRecord:
    """The group, if it exists and ``user`` is in it; otherwise the TaubeError saying which."""
    group = await directory.group(group_id)
    if group is None:
        raise TaubeError("group.not_found")
    if user not in group.members:
        raise TaubeError("group.not_member")
    return group
