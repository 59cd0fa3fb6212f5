"""The key derivations of the Double Ratchet and of Sender Keys.

Labels and chain steps are libsignal's, so the chain can be checked against
libsignal's published known answers (``test_chain_key_derivation``):

* ``KDF_RK(rk, dh_out)``: HKDF-SHA256(salt = rk, ikm = dh_out, info = "WhisperRatchet")
  -> 64 bytes = new root key || new chain key.
* ``KDF_CK(ck)``: message key seed = HMAC-SHA256(ck, 0x01), next chain key =
  HMAC-SHA256(ck, 0x02).
* Pairwise message keys: HKDF-SHA256(salt = 0x00*32, ikm = seed,
  info = "WhisperMessageKeys") -> 80 bytes = AES key || HMAC key || CBC IV.
* Sender-key message keys: HKDF-SHA256(salt = 0x00*32, ikm = seed,
  info = "Taube SenderKey v1") -> 48 bytes = AES key || CBC IV.

Reusing Signal's labels is safe because every Taube root key descends from an X3DH
secret derived with Taube's own info string, so no key is ever shared with Signal.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from taube.crypto.primitives import ZERO_SALT, hkdf_sha256, hmac_sha256

__all__ = [
    "MESSAGE_KEYS_INFO",
    "ROOT_INFO",
    "SENDER_KEY_INFO",
    "MessageKeys",
    "kdf_ck",
    "kdf_rk",
    "message_keys",
    "sender_message_keys",
]

ROOT_INFO: Final = b"WhisperRatchet"
MESSAGE_KEYS_INFO: Final = b"WhisperMessageKeys"
SENDER_KEY_INFO: Final = b"Taube SenderKey v1"

_MESSAGE_KEY_SEED: Final = b"\x01"
_CHAIN_KEY_SEED: Final = b"\x02"


class MessageKeys(NamedTuple):
    cipher_key: bytes
    mac_key: bytes
    iv: bytes


def kdf_rk(root_key: bytes, dh_out: bytes) -> tuple[bytes, bytes]:
    """Root KDF: returns ``(new_root_key, chain_key)``."""
    out = hkdf_sha256(dh_out, salt=root_key, info=ROOT_INFO, length=64)
    return out[:32], out[32:]


def kdf_ck(chain_key: bytes) -> tuple[bytes, bytes]:
    """Chain KDF: returns ``(message_key_seed, next_chain_key)``."""
    return hmac_sha256(chain_key, _MESSAGE_KEY_SEED), hmac_sha256(chain_key, _CHAIN_KEY_SEED)


def message_keys(seed: bytes) -> MessageKeys:
    out = hkdf_sha256(seed, salt=ZERO_SALT, info=MESSAGE_KEYS_INFO, length=80)
    return MessageKeys(out[:32], out[32:64], out[64:])


def sender_message_keys(seed: bytes) -> tuple[bytes, bytes]:
    """Returns ``(aes_key, iv)`` for one sender-key message."""
    out = hkdf_sha256(seed, salt=ZERO_SALT, info=SENDER_KEY_INFO, length=48)
    return out[:32], out[32:]
