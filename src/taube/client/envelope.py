"""The end-to-end envelope: what a message payload holds once it is encrypted. No I/O.

The server stores and forwards a message's per-device payload as opaque bytes
(DESIGN principle 1). With end-to-end encryption that payload is one JSON object,
an :class:`Envelope` (docs/e2ee.md, "Envelope"), with bytes in standard base64:

* ``{"e": 1, "p": ...}``: a pairwise ciphertext (a prekey or ratchet message from
  :mod:`taube.crypto`) for this device. Its plaintext is an :class:`Inner`.
* ``{"e": 1, "g": ..., "p": ...}``: a group message: ``g`` is the sender-key message
  (the same bytes for every member device; its plaintext is the content), ``p`` is
  present only when this device needs the sender's distribution message.
* ``{"e": 1, "r": "<message id>", "rd": N}``: device ``N`` of the receiver could not
  decrypt message ``r`` and asks its sender to send it again. Not encrypted: it
  tells the server nothing it does not know (the id and the device).
* ``{"e": 1, "x": true}``: nothing for this device (a resend meant for another one).

An :class:`Inner` (the pairwise plaintext, JSON too) carries the content bytes
``c`` (the SDK's content format), a sender-key distribution ``k`` for group
``kg``, and, for a resend, the original message id ``o``.

Decoding never raises on foreign bytes: :func:`decode_envelope` returns None for
a payload that is not an envelope (a client without encryption, or garbage), and
the SDK shows such a message as unencrypted.
"""

from __future__ import annotations

from typing import Final

import msgspec

ENVELOPE_VERSION: Final = 1


class Envelope(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    e: int  # required: plain content JSON (``{"v": 1, ...}``) must not pass for an envelope
    p: bytes | None = None
    g: bytes | None = None
    r: str | None = None
    rd: int | None = None
    x: bool = False


class Inner(msgspec.Struct, frozen=True, omit_defaults=True):
    c: bytes | None = None
    k: bytes | None = None
    kg: str | None = None
    o: str | None = None


_encoder: Final = msgspec.json.Encoder()
_envelope_decoder: Final = msgspec.json.Decoder(Envelope)
_inner_decoder: Final = msgspec.json.Decoder(Inner)

NOTHING_FOR_YOU: Final = _encoder.encode(Envelope(e=ENVELOPE_VERSION, x=True))


def encode(value: Envelope | Inner) -> bytes:
    return _encoder.encode(value)


def decode_envelope(payload: bytes) -> Envelope | None:
    """The envelope in ``payload``, or None if it is not one (of a version we know)."""
    if not payload.startswith(b"{"):
        return None
    try:
        envelope = _envelope_decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return envelope if envelope.e == ENVELOPE_VERSION else None


def decode_inner(plaintext: bytes) -> Inner | None:
    try:
        return _inner_decoder.decode(plaintext)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
