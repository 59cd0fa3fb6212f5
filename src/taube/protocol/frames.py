"""WebSocket frames, as typed msgspec structs.

Each frame is one JSON object in one WebSocket text message, tagged by ``type``.
Client frames are requests in the imperative (``send``, ``ack``); server frames
are facts (``sent``, ``message``). Inbox items (``message``, ``receipt``,
``group``) carry the device's inbox sequence number ``seq``; everything else is
ephemeral. Schema evolution: new fields get defaults, field types never change,
unknown fields are ignored so that old peers keep working.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec

Seq = Annotated[int, msgspec.Meta(ge=0)]
DeviceId = Annotated[int, msgspec.Meta(ge=1)]
Address = Annotated[str, msgspec.Meta(min_length=2, max_length=64)]
Handle = Annotated[str, msgspec.Meta(min_length=1, max_length=33)]
MessageId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Ref = Annotated[str, msgspec.Meta(max_length=64)]

# --------------------------------------------------------------------------- client


class ClientFrame(msgspec.Struct, tag_field="type", frozen=True, kw_only=True, omit_defaults=True):
    """Base of all frames a device sends."""


class Auth(ClientFrame, tag="auth", frozen=True):
    """First frame on a connection: the device token and the last inbox seq this device holds."""

    token: Annotated[str, msgspec.Meta(max_length=256)]
    last_seq: Seq = 0
    ref: Ref | None = None


class DevicePayload(msgspec.Struct, frozen=True, kw_only=True):
    """One recipient device's own copy of a message (end-to-end encryption needs this)."""

    user: Handle
    device: DeviceId
    payload: bytes


class Send(ClientFrame, tag="send", frozen=True):
    """Send a message to ``@handle`` or ``#group``.

    Exactly one of ``payload`` (the same bytes for every recipient device) or
    ``payloads`` (one per recipient device, including the sender's own other
    devices) is given. ``id`` is chosen by the sender (UUIDv7) and makes the
    send idempotent; the server answers ``sent`` with the same id.
    """

    id: MessageId
    to: Address
    payload: bytes | None = None
    payloads: list[DevicePayload] | None = None


class Ack(ClientFrame, tag="ack", frozen=True):
    """Cumulative: this device holds every inbox item up to and including ``seq``."""

    seq: Seq


class Read(ClientFrame, tag="read", frozen=True):
    """The user has read these messages of ``sender`` in ``conversation``."""

    conversation: Address
    sender: Handle
    ids: Annotated[list[MessageId], msgspec.Meta(min_length=1, max_length=1000)]
    ref: Ref | None = None


class SetTyping(ClientFrame, tag="typing", frozen=True):
    """The user started (or stopped) typing in ``conversation``. Ephemeral."""

    conversation: Address
    active: bool = True
    ref: Ref | None = None


class Watch(ClientFrame, tag="watch", frozen=True):
    """Subscribe to the presence of these users (replaces the previous watch list)."""

    users: Annotated[list[Handle], msgspec.Meta(max_length=1000)]
    ref: Ref | None = None


class Ping(ClientFrame, tag="ping", frozen=True):
    ref: Ref | None = None


AnyClientFrame = Auth | Send | Ack | Read | SetTyping | Watch | Ping

# --------------------------------------------------------------------------- server


class ServerFrame(msgspec.Struct, tag_field="type", frozen=True, kw_only=True, omit_defaults=True):
    """Base of all frames the server sends."""


class Ready(ServerFrame, tag="ready", frozen=True):
    """Authentication succeeded; inbox items after ``last_seq`` follow."""

    handle: str
    device: int
    last_seq: int
    server_time_ms: int
    max_payload_bytes: int


class Sent(ServerFrame, tag="sent", frozen=True):
    """The message ``id`` is committed to the store: the first tick."""

    id: str
    sent_at_ms: int
    duplicate: bool = False


class Message(ServerFrame, tag="message", frozen=True):
    """An inbox item: a message for this device.

    ``conversation`` is seen from the receiving user: ``@alice`` for a message
    alice sent to you, ``@bob`` for a copy of what you sent bob from another
    device, ``#group`` for group messages.
    """

    seq: int
    id: str
    conversation: str
    sender: str
    sender_device: int
    sent_at_ms: int
    payload: bytes


ReceiptStatus = Literal["delivered", "read"]


class Receipt(ServerFrame, tag="receipt", frozen=True):
    """An inbox item: ``by`` has received (``delivered``) or read messages ``ids``.

    ``conversation`` is seen from the receiver of the receipt. A ``read`` receipt
    made by your own other device (``by`` is you) means you read them there; then
    ``sender`` says whose messages they were (message ids are unique per sender).
    """

    seq: int
    status: ReceiptStatus
    conversation: str
    by: str
    by_device: int
    ids: list[str]
    at_ms: int
    sender: str | None = None


GroupEventKind = Literal["created", "added", "removed", "left", "renamed", "promoted", "demoted"]


class GroupEvent(ServerFrame, tag="group", frozen=True):
    """An inbox item: a change to a group you are (or were) in."""

    seq: int
    group: str
    event: GroupEventKind
    actor: str
    members: list[str]
    name: str
    at_ms: int


InboxItem = Message | Receipt | GroupEvent


class Typing(ServerFrame, tag="typing", frozen=True):
    """``user`` is (or stopped) typing in ``conversation``. Ephemeral."""

    conversation: str
    user: str
    active: bool


class Presence(ServerFrame, tag="presence", frozen=True):
    """A watched user's presence. Users who hide presence are always offline, no last seen."""

    user: str
    online: bool
    last_seen_ms: int | None


class Error(ServerFrame, tag="error", frozen=True):
    """A typed error answering the client frame ``ref`` (a message id for ``send``)."""

    code: str
    message: str
    ref: str | None = None
    details: dict[str, Any] | None = None


class Pong(ServerFrame, tag="pong", frozen=True):
    ref: str | None = None
    server_time_ms: int = 0


class KeysLow(ServerFrame, tag="keys_low", frozen=True):
    """This device holds fewer one-time prekeys on the server than it should: upload
    more (``PUT /v1/keys``). Ephemeral; sent after ``ready`` and after a bundle fetch
    that left the device below the threshold."""

    one_time_prekeys: int


class Notice(ServerFrame, tag="notice", frozen=True):
    """A notice from the server's operator (maintenance, an outage), for the user to see.
    Ephemeral; sent to every connected device when posted, and after ``ready`` for each
    notice still current. ``level`` is ``info``, ``warning`` or ``outage`` (treat other
    values as ``info``). The same ``id`` may arrive twice: show it once. ``signature``:
    base64 Ed25519 over the canonical JSON of ``{id, text, level, at_ms}`` by the
    server's status key (docs/status.md), so that a client can refuse a forged banner."""

    id: str
    text: str
    level: str
    at_ms: int
    signature: str | None = None


AnyServerFrame = (
    Ready
    | Sent
    | Message
    | Receipt
    | GroupEvent
    | Typing
    | Presence
    | Error
    | Pong
    | KeysLow
    | Notice
)

# --------------------------------------------------------------------------- codecs

_client_decoder: msgspec.json.Decoder[AnyClientFrame] = msgspec.json.Decoder(AnyClientFrame)
_server_decoder: msgspec.json.Decoder[AnyServerFrame] = msgspec.json.Decoder(AnyServerFrame)
_encoder = msgspec.json.Encoder()

# The codecs are msgspec's own bound methods rather than functions that call them:
# every frame in and out goes through one, and a Python function around the call cost
# ~1,000 instructions per frame (1-2 % of the server's time in Workload A).

decode_client_frame: Callable[[bytes | str], AnyClientFrame] = _client_decoder.decode
"""Decode one client frame; raises msgspec.DecodeError / ValidationError."""

decode_server_frame: Callable[[bytes | str], AnyServerFrame] = _server_decoder.decode

encode_frame: Callable[[ClientFrame | ServerFrame], bytes] = _encoder.encode
