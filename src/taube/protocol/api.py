"""Bodies of the HTTP API under /v1, as typed msgspec structs (see docs/protocol.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

ShortText = Annotated[str, msgspec.Meta(max_length=64)]
Password = Annotated[str, msgspec.Meta(max_length=1024)]
TotpText = Annotated[str, msgspec.Meta(max_length=16)]
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
    totp: TotpText | None = None
    """The two-step verification code, needed once the account turned it on."""


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


# ---------------------------------------------------------------- keys (end-to-end encryption)

KeyId = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
"""A prekey id: an unsigned 32-bit integer chosen by the device."""
IdentityKey = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
"""An Ed25519 public key (the device's identity)."""
PublicPrekey = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
"""An X25519 public key (signed or one-time prekey)."""
Signature = Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]
MAX_PREKEYS_PER_UPLOAD = 200


class SignedPrekey(Body, frozen=True):
    """A medium-term prekey and the identity key's Ed25519 signature over it
    (``"Taube signed prekey v1" || u32 id || key``, docs/e2ee.md)."""

    id: KeyId
    key: PublicPrekey
    signature: Signature


class Prekey(Body, frozen=True):
    """A one-time prekey: handed out once, then deleted from the server."""

    id: KeyId
    key: PublicPrekey


class KeysUpload(Body, frozen=True):
    """``PUT /v1/keys``: the calling device's identity key (set once), optionally a new
    signed prekey (replaces the previous one; required on the first upload) and more
    one-time prekeys (added; ids already stored are ignored)."""

    identity_key: IdentityKey
    signed_prekey: SignedPrekey | None = None
    one_time_prekeys: Annotated[list[Prekey], msgspec.Meta(max_length=MAX_PREKEYS_PER_UPLOAD)] = []


class KeysStatus(Body, frozen=True):
    """What the server holds of the calling device's keys (nulls before the first upload)."""

    one_time_prekeys: int
    signed_prekey_id: int | None = None
    identity_key: bytes | None = None


class DeviceBundle(Body, frozen=True):
    """Everything needed to start an X3DH session with one device. ``one_time_prekey``
    is null when the device has none left (X3DH then runs with three DHs)."""

    device: int
    identity_key: bytes
    signed_prekey: SignedPrekey
    one_time_prekey: Prekey | None = None


class KeyBundles(Body, frozen=True):
    handle: str
    devices: list[DeviceBundle]


class DeviceIdentity(Body, frozen=True):
    device: int
    identity_key: bytes


class DeviceIdentities(Body, frozen=True):
    handle: str
    devices: list[DeviceIdentity]


# ---------------------------------------------------------------- attachment blobs

BlobId = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
"""The lower-case hex SHA-256 of the blob's bytes (ciphertext made by the client)."""
Address = Annotated[str, msgspec.Meta(min_length=2, max_length=64)]


class BlobCreate(Body, frozen=True):
    """``POST /v1/blobs``: announce an upload (or find the blob already stored)."""

    size: Annotated[int, msgspec.Meta(ge=1)]
    sha256: BlobId


class BlobStatus(Body, frozen=True):
    """Where an upload stands: ``offset`` bytes of ``size`` received; ``complete`` once
    every byte arrived and hashed to ``id``."""

    id: str
    size: int
    offset: int
    complete: bool


class BlobGrant(Body, frozen=True):
    """``POST /v1/blobs/{id}/grants``: let ``@handle`` or the members of ``#group`` read."""

    to: Address


# ---------------------------------------------------------------- blocking


class BlockList(Body, frozen=True):
    handles: list[str]


# ---------------------------------------------------------------- device linking


class LinkCreate(Body, frozen=True):
    """``POST /v1/links``: a new device asks to join an account logged in elsewhere."""

    device_name: ShortText = ""


class LinkStarted(Body, frozen=True):
    """``code`` ("XXXX-XXXX", Crockford base32) is shown to the user, who types it on a
    device of the account; ``secret`` stays with the requester (it reads the outcome);
    ``expires_ms``: when the code stops working."""

    id: str
    code: str
    secret: str
    expires_ms: int


LinkStatus = Literal["pending", "approved", "expired"]


class LinkState(Body, frozen=True):
    """Where a link stands. ``token`` is given once, on the first read after approval."""

    status: LinkStatus
    handle: str | None = None
    device: int | None = None
    token: str | None = None


class LinkApproved(Body, frozen=True):
    """The device made for the link (it is told its token by the requester's read)."""

    handle: str
    device: int


class LinkApprove(Body, frozen=True):
    """Optional body of a link approval: the code, if two-step verification is on."""

    totp: TotpText | None = None


class TotpSetup(Body, frozen=True):
    """A new two-step verification secret, not yet on: add it to an authenticator app
    (``uri`` as a QR code), then confirm with a code from the app."""

    secret: str
    uri: str


class TotpCode(Body, frozen=True):
    code: TotpText


class PasswordChange(Body, frozen=True):
    old_password: Password
    new_password: Password
    revoke_other_devices: bool = False
    """Also log out every other device of the account (their tokens stop working)."""


# ---------------------------------------------------------------- service notices

NoticeLevel = Literal["info", "warning", "outage"]
MAX_NOTICE_TTL_S = 365 * 24 * 3600


class NoticeCreate(Body, frozen=True):
    """``POST /v1/admin/notices``: tell every connected client something, for ``ttl_s``."""

    text: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    level: NoticeLevel = "info"
    ttl_s: Annotated[int, msgspec.Meta(ge=1, le=MAX_NOTICE_TTL_S)] = 86400


class NoticeInfo(Body, frozen=True):
    id: str
    text: str
    level: str
    at_ms: int
    expires_ms: int


class NoticeList(Body, frozen=True):
    notices: list[NoticeInfo]


# ---------------------------------------------------------------- status and incidents

ComponentStatus = Literal["operational", "degraded", "partial_outage", "major_outage", "unknown"]
IncidentStatus = Literal["investigating", "identified", "monitoring", "resolved"]
OpenIncidentStatus = Literal["investigating", "identified", "monitoring"]
Impact = Literal["minor", "major", "critical"]
ComponentId = Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
ComponentList = Annotated[list[ComponentId], msgspec.Meta(max_length=64)]
IncidentText = Annotated[str, msgspec.Meta(max_length=5000)]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class IncidentCreate(Body, frozen=True):
    """``POST /v1/admin/incidents``: open an incident (status ``investigating``)."""

    title: Title
    impact: Impact = "minor"
    components: ComponentList = []
    text: IncidentText = ""


class IncidentUpdateCreate(Body, frozen=True):
    """``POST /v1/admin/incidents/{id}/updates``: a new status and what to say."""

    status: OpenIncidentStatus
    text: IncidentText = ""


class IncidentResolve(Body, frozen=True):
    text: IncidentText = ""


class PostmortemPut(Body, frozen=True):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=100_000)]


class IncidentUpdateInfo(Body, frozen=True):
    at_ms: int
    status: str
    text: str
    by: str


class Incident(Body, frozen=True):
    id: int
    title: str
    status: IncidentStatus
    impact: Impact
    components: list[str]
    started_ms: int
    resolved_ms: int | None
    automatic: bool
    updates: list[IncidentUpdateInfo]
    postmortem: str | None


class ResolvedIncident(Incident, frozen=True):
    """A resolved incident, with a post-mortem template to fill in
    (``PUT /v1/admin/incidents/{id}/postmortem``)."""

    postmortem_template: str


class MaintenanceCreate(Body, frozen=True):
    title: Title
    # Bounded so that a time always fits the store's 64-bit integers (fuzzing found it).
    starts_ms: Annotated[int, msgspec.Meta(ge=0, le=2**53 - 1)]
    ends_ms: Annotated[int, msgspec.Meta(ge=0, le=2**53 - 1)]
    components: ComponentList = []
    text: IncidentText = ""


class Maintenance(Body, frozen=True):
    id: int
    title: str
    starts_ms: int
    ends_ms: int
    components: list[str]
    text: str


class WebhookCreate(Body, frozen=True):
    url: Annotated[str, msgspec.Meta(min_length=8, max_length=2000, pattern="^https?://")]
    secret: Annotated[str, msgspec.Meta(min_length=16, max_length=200)]


class Webhook(Body, frozen=True):
    id: int
    url: str


class WebhookList(Body, frozen=True):
    webhooks: list[Webhook]


class WebhookDelivery(Body, frozen=True):
    webhook_id: int
    event: str
    attempt: int
    status_code: int | None
    error: str | None
    at_ms: int
    delivered: bool


class WebhookDeliveryList(Body, frozen=True):
    deliveries: list[WebhookDelivery]


ReportKind = Literal["send", "receive", "connect"]


class ReportCreate(Body, frozen=True):
    """``POST /v1/reports``: a user says something does not work for them."""

    kind: ReportKind
    detail: Annotated[str, msgspec.Meta(max_length=500)] = ""


class StatusKey(Body, frozen=True):
    """The status document's (and notices') Ed25519 public key, base64."""

    public_key: str


class StatusDay(Body, frozen=True):
    date: str
    status: ComponentStatus
    uptime: float | None


class StatusComponent(Body, frozen=True):
    id: str
    name: str
    status: ComponentStatus
    uptime_90d: float | None
    days: list[StatusDay]


class StatusLatency(Body, frozen=True):
    p50_ms: float | None
    p99_ms: float | None
    window_s: int


class StatusSlo(Body, frozen=True):
    component: str
    objective: str
    target: float
    achieved: float | None
    budget_left: float | None


class StatusIncidents(Body, frozen=True):
    open: list[Incident]
    recent: list[Incident]


class StatusDocument(Body, frozen=True):
    """``GET /status.json``: signed (``signature``, Ed25519 over the canonical JSON of
    the rest; taube.status.signing) so that a copy hosted anywhere can be trusted."""

    version: int
    generated_ms: int
    node: str
    verdict: ComponentStatus
    components: list[StatusComponent]
    latency: StatusLatency
    slos: list[StatusSlo]
    incidents: StatusIncidents
    maintenance: list[Maintenance]
    public_key: str
    signature: str


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
