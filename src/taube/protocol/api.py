"""Bodies of the HTTP API under /v1, as typed msgspec structs (see docs/protocol.md)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

ShortText = Annotated[str, msgspec.Meta(max_length=64)]
Password = Annotated[str, msgspec.Meta(max_length=1024)]
HandleList = Annotated[list[Annotated[str, msgspec.Meta(max_length=33)]], msgspec.Meta(max_length=1024)]


class Body(msgspec.Struct, frozen=True, kw_only=True):
    pass


class RegisterRequest(Body):
    handle: Annotated[str, msgspec.Meta(max_length=33)]
    password: Password
    device_name: ShortText = ""


class LoginRequest(Body):
    handle: Annotated[str, msgspec.Meta(max_length=33)]
    password: Password
    device_name: ShortText = ""


class DeviceSession(Body):
    """A logged-in device: keep ``token`` secret; it authenticates every request."""

    handle: str
    device: int
    token: str


class DeviceInfo(Body):
    id: int
    name: str
    created_ms: int
    last_active_ms: int
    current: bool = False


class DeviceList(Body):
    devices: list[DeviceInfo]


class UserInfo(Body):
    handle: str
    devices: list[int]


class Me(Body):
    handle: str
    device: int
    hide_presence: bool
    created_ms: int


class SettingsUpdate(Body):
    hide_presence: bool | None = None


class GroupCreate(Body):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    members: HandleList = []


class GroupMember(Body):
    handle: str
    admin: bool


class GroupInfo(Body):
    id: str
    address: str
    name: str
    created_ms: int
    members: list[GroupMember]


class GroupList(Body):
    groups: list[GroupInfo]


class MembersChange(Body):
    handles: Annotated[HandleList, msgspec.Meta(min_length=1)]


class GroupRename(Body):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class Problem(Body):
    """RFC 9457 problem details, with Taube's stable ``code``."""

    type: str
    title: str
    status: int
    code: str
    detail: str
    details: dict[str, Any] | None = None


class Health(Body):
    status: str
    version: str
