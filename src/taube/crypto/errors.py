"""Typed errors of the cryptography core, grouped by what the caller can do about them.

Every failure of ``taube.crypto`` raises a subclass of :class:`CryptoError`; no
``ValueError`` or backend exception leaks out. A failed decrypt never changes the
state of the session or sender key that raised it, so the caller may simply drop
the message (or, for :class:`DuplicateMessage`, treat it as already delivered).
"""

from __future__ import annotations

__all__ = [
    "CryptoError",
    "DecodeError",
    "DuplicateMessage",
    "InvalidKey",
    "InvalidMessage",
    "InvalidSignature",
    "TooManySkipped",
    "UnknownSenderKey",
]


class CryptoError(Exception):
    """Base class of every error raised by ``taube.crypto``."""


class InvalidMessage(CryptoError):
    """The message failed authentication or does not belong to this session."""


class DecodeError(InvalidMessage):
    """Bytes are not a valid canonical encoding (short, trailing bytes, wrong version/type).

    A subclass of :class:`InvalidMessage` so that a receiver can catch one error for
    "this message is garbage", whichever layer noticed it first.
    """


class InvalidKey(CryptoError):
    """A public key is malformed or of low order (the X25519 shared secret would be zero)."""


class InvalidSignature(CryptoError):
    """An Ed25519 signature does not verify (signed prekey, sender-key message)."""


class DuplicateMessage(CryptoError):
    """The message key was already used (a replay) or was discarded (evicted, expired)."""


class TooManySkipped(CryptoError):
    """The message would require skipping more than MAX_SKIP message keys in one chain."""


class UnknownSenderKey(CryptoError):
    """A group message names a sender key id this receiver state does not hold."""
