"""Attachment encryption: chunked AES-256-GCM under a fresh random 32-byte key.

Layout of the encrypted blob (docs/e2ee.md, "Attachments")::

    0x01 0x06 | chunk_0 | chunk_1 | ... | chunk_k

Plaintext is cut into :data:`CHUNK_SIZE` (64 KiB) pieces; every piece but the last
is full and the last holds 0..64 KiB (an empty file is one empty last chunk). Chunk
``i`` is AES-256-GCM(key, nonce = 7 zero bytes || u32 i || last-flag, aad = the
2-byte header), i.e. the piece plus a 16-byte tag. The counter in the nonce stops
reordering, the last-flag stops truncation and extension (as in age's STREAM).

Why this and not one AES-CBC+HMAC pass: WebCrypto has no streaming cipher or MAC,
so a one-shot construction makes a browser hold 100 MiB (twice) in memory; with
64 KiB chunks it encrypts, decrypts and reports progress chunk by chunk. The
SHA-256 digest of the whole blob goes in the message next to the key; it lets the
server's stored blob be checked before any decryption and binds the message to
exactly one blob. Decryption checks the digest, then every tag, before returning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from taube.crypto.encoding import VERSION, Kind
from taube.crypto.errors import DecodeError, InvalidMessage
from taube.crypto.keys import Random
from taube.crypto.primitives import aes_gcm_decrypt, aes_gcm_encrypt, constant_time_equal, sha256

__all__ = ["CHUNK_SIZE", "EncryptedAttachment", "decrypt_attachment", "encrypt_attachment"]

CHUNK_SIZE: Final = 64 * 1024
TAG_SIZE: Final = 16
_HEADER: Final = bytes((VERSION, Kind.ATTACHMENT))
_SEALED: Final = CHUNK_SIZE + TAG_SIZE


@dataclass(frozen=True, slots=True, repr=False)
class EncryptedAttachment:
    ciphertext: bytes
    key: bytes
    digest: bytes
    """SHA-256 of ``ciphertext``."""

    def __repr__(self) -> str:
        return f"EncryptedAttachment({len(self.ciphertext)} bytes, digest={self.digest.hex()})"


def _nonce(index: int, last: bool) -> bytes:
    return bytes(7) + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def encrypt_attachment(
    plaintext: bytes, *, key: bytes | None = None, random: Random = os.urandom
) -> EncryptedAttachment:
    """Encrypt under ``key`` (default: 32 fresh random bytes; never reuse a key)."""
    key = random(32) if key is None else key
    if len(key) != 32:
        raise ValueError("attachment key must be 32 bytes")
    count = max(1, -(-len(plaintext) // CHUNK_SIZE))
    parts = [_HEADER]
    for i in range(count):
        piece = plaintext[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE]
        parts.append(aes_gcm_encrypt(key, _nonce(i, i == count - 1), piece, _HEADER))
    ciphertext = b"".join(parts)
    return EncryptedAttachment(ciphertext, key, sha256(ciphertext))


def decrypt_attachment(ciphertext: bytes, key: bytes, digest: bytes) -> bytes:
    """Check the digest and every chunk tag; raises InvalidMessage/DecodeError otherwise."""
    if len(key) != 32:
        raise InvalidMessage("attachment key must be 32 bytes")
    if not constant_time_equal(sha256(ciphertext), digest):
        raise InvalidMessage("attachment digest does not match")
    if ciphertext[:1] != _HEADER[:1] or ciphertext[1:2] != _HEADER[1:2]:
        raise DecodeError("attachment: wrong version or type")
    body = memoryview(ciphertext)[2:]
    if len(body) < TAG_SIZE:
        raise DecodeError("attachment: truncated")
    count = max(1, -(-len(body) // _SEALED))
    if len(body) - (count - 1) * _SEALED < TAG_SIZE:
        # A final piece shorter than a tag cannot be a chunk.
        raise DecodeError("attachment: truncated final chunk")
    out = []
    for i in range(count):
        sealed = bytes(body[i * _SEALED : (i + 1) * _SEALED])
        out.append(aes_gcm_decrypt(key, _nonce(i, i == count - 1), sealed, _HEADER))
    return b"".join(out)
