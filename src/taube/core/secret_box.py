"""Server-side secrets sealed at rest: the TOTP secret of each account (core/totp.py).

A stolen database dump or backup must not hand out every account's second factor, so
the secret is stored encrypted under a key that is not in the database. Pure: the key
comes in as bytes (the server derives it from the status signing seed at its
composition root, server/app.py); nothing here reads files or settings.

Format of a sealed value (text, so it fits the existing ``secret`` column):
``v1:`` + base64(nonce (12 bytes) + AES-256-GCM ciphertext and tag). The associated
data is the account handle, so a row copied onto another account does not open.

Invariants:
- ``seal`` uses a fresh random nonce per call (never the same nonce twice under a key,
  with overwhelming probability: 2^-96 per pair).
- ``unseal`` returns the secret or raises ``SecretUnreadable``; it never returns a
  wrong or partial value. A value without ``:`` is a legacy base32 secret written
  before sealing existed and is returned as it is (base32 never contains ``:``); any
  other prefix is unreadable, so that a value from a newer format fails closed.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Final

from taube.crypto.errors import InvalidMessage
from taube.crypto.primitives import aes_gcm_decrypt, aes_gcm_encrypt, hkdf_sha256

PREFIX: Final = "v1:"
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
TOTP_KEY_INFO: Final = b"taube totp secrets v1"


class SecretUnreadable(Exception):
    """A stored secret that does not open under this key and handle: the key changed
    (or differs between nodes), the value was tampered with or moved to another account,
    or its format is unknown. Carries no secret material."""


def derive_totp_key(seed: bytes) -> bytes:
    """The AES-256 key for TOTP secrets, from the node's status signing seed.

    HKDF with its own ``info`` keeps this key independent of every other use of the
    seed (Ed25519 signing, canary passwords)."""
    return hkdf_sha256(seed, salt=b"", info=TOTP_KEY_INFO, length=KEY_BYTES)


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


def is_legacy(stored: str) -> bool:
    """Written in the clear before secrets were sealed (a bare base32 secret)."""
    return ":" not in stored


def seal(key: bytes, handle: str, secret: str) -> str:
    """``secret`` encrypted for ``handle``'s row, as stored text."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = aes_gcm_encrypt(key, nonce, secret.encode("utf-8"), handle.encode("utf-8"))
    return PREFIX + base64.b64encode(nonce + sealed).decode("ascii")


def unseal(key: bytes, handle: str, stored: str) -> str:
    """The secret in ``stored`` (sealed, or legacy plaintext passed through); else
    ``SecretUnreadable``."""
    if is_legacy(stored):
        return stored
    if not is_sealed(stored):
        raise SecretUnreadable("unknown format")
    try:
        raw = base64.b64decode(stored[len(PREFIX) :].encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise SecretUnreadable("not base64") from None
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise SecretUnreadable("too short")
    try:
        plain = aes_gcm_decrypt(key, raw[:NONCE_BYTES], raw[NONCE_BYTES:], handle.encode("utf-8"))
        return plain.decode("utf-8")
    except (InvalidMessage, UnicodeDecodeError):
        raise SecretUnreadable("does not open under this key and handle") from None
