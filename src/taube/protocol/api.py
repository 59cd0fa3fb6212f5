"""Bodies of the HTTP API under /v1, as typed msgspec structs (see docs/protocol.md)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

ShortText = Annotated[str, msgspec.Meta(max_length=64)]
Password = Annotated[str, msgspec.Meta(max_length=1024)]
HandleList = Annotated[
    list[Annotated[str, msgspec.Meta(max_length=33)]], msgspec.Meta(max_length=1024)
]


class Body(msgspec.Struct, frozen=True, kw_only=True):
    pass


class RegisterRequest(Body, frozen=True):
    handle: Annotated[str, msgspec.Meta(max_length=33)]
    password: Password
    device_name: ShortText = ""


class LoginRequest(Body, frozen=True):
    handle: Annotated[str, msgspec.Meta(max_length=33)]
    password: Password
    device_name: ShortText = ""


class DeviceSession(Body, frozen=True):
    """A logged-in device: keep ``token`` secret; it authenticates every request."""

    handle: str
    device: int
    token: str


class DeviceInfo(Body, frozen=True):
    id: int
    name: str
    created_ms: int
    last_active_ms: int
    current: bool = False


class DeviceList(Body, frozen=True):
    devices: list[DeviceInfo]


class UserInfo(Body, frozen=True):
    handle: str
    devices: list[int]


class Me(Body, frozen=True):
    handle: str
    device: int
    hide_presence: bool
    created_ms: int


class SettingsUpdate(Body, frozen=True):
    hide_presence: bool | None = None


class GroupCreate(Body, frozen=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    members: HandleList = []


class GroupMember(Body, frozen=True):
    handle: str
    admin: bool


class GroupInfo(Body, frozen=True):
    id: str
    address: str
    name: str
    created_ms: int
    members: list[GroupMember]


class GroupList(Body, frozen=True):
    groups: list[GroupInfo]


class MembersChange(Body, frozen=True):
    handles: Annotated[HandleList, msgspec.Meta(min_length=1)]


class GroupRename(Body, frozen=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class Problem(Body, frozen=True, omit_defaults=True):
    """RFC 9457 problem details, with Taube's stable ``code``."""

    type: str
    title: str
    status: int
    code: str
    detail: str
    details: dict[str, Any] | None = None


class Health(Body, frozen=True):
    status: str
    version: str
