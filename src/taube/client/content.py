"""The content format carried inside a message's opaque payload.

The server never parses payloads (DESIGN principle 1); this module is the only
place that gives them meaning. A payload is one JSON object
``{"v": 1, "type": "text", ...}``:

* ``v`` is the format's major version. A peer only decodes the versions it
  knows; anything newer is shown as :class:`Unsupported`, never an exception.
* ``type`` names the content type. Unknown types are :class:`Unsupported` too,
  so old clients keep working when new types (replies, reactions, edits,
  polls, attachments) appear.
* Schema evolution follows the frames' rules: new fields get defaults, field
  types never change, unknown fields are ignored.

Decoding is total: every byte string maps to some :class:`Content`.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

FORMAT_VERSION: Final = 1
"""The major version this client writes and fully understands."""


class Content(msgspec.Struct, tag_field="type", frozen=True, kw_only=True):
    """Base of every content type a client knows how to encode and decode."""

    v: int = FORMAT_VERSION


class Text(Content, tag="text", frozen=True):
    """Plain text."""

    text: Annotated[str, msgspec.Meta(max_length=65536)]


class Unsupported(msgspec.Struct, frozen=True, kw_only=True):
    """A payload this client cannot show: newer format, unknown type, or garbage.

    ``raw`` keeps the original bytes so a later client version (or a UI that
    wants to show "update to see this message") still has them.
    """

    type: str
    v: int
    raw: bytes
    reason: str


KnownContent = Text
"""Union of the content types this version decodes (grows as types are added)."""

AnyContent = KnownContent | Unsupported


class _Envelope(msgspec.Struct, frozen=True):
    # Only the two fields every version agrees on; the rest is ignored here.
    v: int = 0
    type: str = ""


_envelope_decoder: Final = msgspec.json.Decoder(_Envelope)
_content_decoder: Final = msgspec.json.Decoder(KnownContent)
_encoder: Final = msgspec.json.Encoder()
_KNOWN_TYPES: Final = frozenset({"text"})


def encode_content(content: Content | str) -> bytes:
    """Encode content (a plain ``str`` means :class:`Text`) into payload bytes."""
    if isinstance(content, str):
        content = Text(text=content)
    return _encoder.encode(content)


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
    """The human-readable text of a content, or None if it has none this client can show."""
    if isinstance(content, Text):
        return content.text
    return None
