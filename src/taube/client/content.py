"""The content format carried inside a message's opaque payload.

The server never parses payloads (DESIGN principle 1); this module is the only
place that gives them meaning. A payload is one JSON object
``{"v": 1, "type": "text", ...}``:

* ``v`` is the format's major version. A peer only decodes the versions it
  knows; anything newer is shown as :class:`Unsupported`, never an exception.
* ``type`` names the content type. Unknown types are :class:`Unsupported` too,
  so old clients keep working when new types appear.
* Schema evolution follows the frames' rules: new fields get defaults, field
  types never change, unknown fields are ignored. Fields still at their default
  are left out when encoding (so a plain text is ``{"type":"text","text":..,"v":1}``
  exactly as before replies existed); ``v`` is always written.

Content types (all under ``v: 1``):

* shown as a message: :class:`Text`, :class:`Poll`, :class:`Attachment`;
* acting on an earlier message, named by a :class:`MessageRef` (sender handle and
  message id): :class:`Reaction`, :class:`Edit`, :class:`Delete`, :class:`Vote`;
* a chat setting shown as a system line: :class:`Disappearing`.

Whether an edit, delete or vote is *honoured* is the receiver's business (see
:mod:`taube.client.history`); this module only checks shape and size limits.
Limits are checked when decoding, not when constructing or encoding.

Decoding is total: every byte string maps to some :data:`AnyContent`.
"""

from __future__ import annotations

from typing import Annotated, Final, get_args

import msgspec

FORMAT_VERSION: Final = 1
"""The major version this client writes and fully understands."""

MAX_TEXT: Final = 65536
MAX_OPTIONS: Final = 12
MAX_EXPIRE_S: Final = 366 * 24 * 3600
"""The longest per-message or per-chat disappearing time (a little over a year)."""

Handle = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
MessageId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ExpireS = Annotated[int, msgspec.Meta(ge=1, le=MAX_EXPIRE_S)]
Caption = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
PollOption = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class MessageRef(msgspec.Struct, frozen=True):
    """Names one message: message ids are unique per sender, so (sender, id) is global."""

    sender: Handle
    id: MessageId


class Content(msgspec.Struct, tag_field="type", frozen=True, kw_only=True, omit_defaults=True):
    """Base of every content type a client knows how to encode and decode."""

    v: int = FORMAT_VERSION


class Text(Content, tag="text", frozen=True):
    """Plain text, optionally a reply, optionally disappearing ``expire_s`` after sending."""

    text: Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
    reply_to: MessageRef | None = None
    expire_s: ExpireS | None = None


class Reaction(Content, tag="reaction", frozen=True):
    """The sender's reaction to ``target``; it replaces their earlier one, ``""`` removes it."""

    target: MessageRef
    emoji: Annotated[str, msgspec.Meta(max_length=32)]


class Edit(Content, tag="edit", frozen=True):
    """New text for the sender's own earlier :class:`Text` ``target``."""

    target: MessageRef
    text: Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]


class Delete(Content, tag="delete", frozen=True):
    """Delete ``target`` for everyone (its author, or a group admin)."""

    target: MessageRef


class Poll(Content, tag="poll", frozen=True):
    """A question with 2 to 12 options; ``multiple`` allows choosing several."""

    question: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    options: Annotated[list[PollOption], msgspec.Meta(min_length=2, max_length=MAX_OPTIONS)]
    multiple: bool = False
    expire_s: ExpireS | None = None


class Vote(Content, tag="vote", frozen=True):
    """The sender's current choice in ``poll`` (option indices); ``[]`` retracts it."""

    poll: MessageRef
    options: Annotated[
        list[Annotated[int, msgspec.Meta(ge=0, lt=MAX_OPTIONS)]],
        msgspec.Meta(max_length=MAX_OPTIONS),
    ]


class Attachment(Content, tag="attachment", frozen=True):
    """A file uploaded encrypted as blob ``blob``; ``key`` decrypts it, ``digest`` checks it.

    ``size``, ``name`` and ``mime`` describe the plaintext file.
    """

    blob: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
    key: Annotated[bytes, msgspec.Meta(min_length=16, max_length=64)]
    digest: Annotated[bytes, msgspec.Meta(min_length=16, max_length=64)]
    size: Annotated[int, msgspec.Meta(ge=0)]
    name: Annotated[str, msgspec.Meta(max_length=255)]
    mime: Annotated[str, msgspec.Meta(max_length=255)]
    caption: Caption = ""
    reply_to: MessageRef | None = None
    expire_s: ExpireS | None = None


class Disappearing(Content, tag="disappearing", frozen=True):
    """Chat setting: messages sent after it disappear ``seconds`` after sending; 0 is off."""

    seconds: Annotated[int, msgspec.Meta(ge=0, le=MAX_EXPIRE_S)]


class Unsupported(msgspec.Struct, frozen=True, kw_only=True):
    """A payload this client cannot show: newer format, unknown type, or garbage.

    ``raw`` keeps the original bytes so a later client version (or a UI that
    wants to show "update to see this message") still has them.
    """

    type: str
    v: int
    raw: bytes
    reason: str


KnownContent = Text | Reaction | Edit | Delete | Poll | Vote | Attachment | Disappearing
"""Union of the content types this version decodes (grows as types are added)."""

AnyContent = KnownContent | Unsupported


class _Envelope(msgspec.Struct, frozen=True):
    # Only the two fields every version agrees on; the rest is ignored here.
    v: int = 0
    type: str = ""


_envelope_decoder: Final = msgspec.json.Decoder(_Envelope)
_content_decoder: Final[msgspec.json.Decoder[KnownContent]] = msgspec.json.Decoder(KnownContent)
_encoder: Final = msgspec.json.Encoder()
_KNOWN_TYPES: Final = frozenset(str(cls.__struct_config__.tag) for cls in get_args(KnownContent))


def encode_content(content: Content | str) -> bytes:
    """Encode content (a plain ``str`` means :class:`Text`) into payload bytes."""
    if isinstance(content, str):
        content = Text(text=content)
    obj = msgspec.to_builtins(content)
    # omit_defaults would drop ``v`` too, and a payload without ``v`` is version 0.
    obj["v"] = content.v
    return _encoder.encode(obj)


def decode_content(payload: bytes) -> AnyContent:
    """Decode payload bytes; never raises: what is not understood is :class:`Unsupported`."""
    try:
        envelope = _envelope_decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return Unsupported(type="", v=0, raw=payload, reason="not a content object")
    if envelope.v != FORMAT_VERSION:
        return Unsupported(
            type=envelope.type, v=envelope.v, raw=payload, reason="unsupported format version"
        )
    if envelope.type not in _KNOWN_TYPES:
        return Unsupported(
            type=envelope.type, v=envelope.v, raw=payload, reason="unknown content type"
        )
    try:
        return _content_decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return Unsupported(type=envelope.type, v=envelope.v, raw=payload, reason=str(exc))


def content_text(content: AnyContent) -> str | None:
    """The human-readable text of a content, or None if it has none this client can show.

    A :class:`Text` gives its text unchanged; every other known type gives one
    line to show after the sender's name (``"reacted 👍"``, ``"📊 Lunch?"``).
    """
    match content:
        case Text(text=text):
            return text
        case Reaction(emoji=""):
            return "removed a reaction"
        case Reaction(emoji=emoji):
            return f"reacted {emoji}"
        case Edit(text=text):
            return f"edited: {text}"
        case Delete():
            return "deleted a message"
        case Poll(question=question):
            return f"📊 {question}"
        case Vote(options=[]):
            return "retracted a vote"
        case Vote():
            return "voted"
        case Attachment(name=name, size=size, caption=caption):
            line = f"📎 {name} ({format_size(size)})"
            return f"{line} {caption}" if caption else line
        case Disappearing(seconds=0):
            return "turned off disappearing messages"
        case Disappearing(seconds=seconds):
            return f"turned on disappearing messages: {format_duration(seconds)}"
    return None


def format_size(size: int) -> str:
    """``512 B``, ``1.5 kB``, ``12.3 MB``: decimal units, one decimal above bytes."""
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if round(value, 1) < 1000 or unit == "TB":
            break
    return f"{value:.1f} {unit}"


_DURATION_UNITS: Final = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def format_duration(seconds: int) -> str:
    """``7 days``, ``1 hour``, ``90 minutes``: the largest unit that divides exactly."""
    for name, length in _DURATION_UNITS:
        if seconds % length == 0 and seconds >= length:
            count = seconds // length
            return f"{count} {name}" if count == 1 else f"{count} {name}s"
    return f"{seconds} seconds"
