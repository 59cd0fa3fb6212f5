"""Thin wrappers over pyca ``cryptography``: the only place primitives are called.

Every other module (and the Wycheproof tests) goes through these functions, so
the whole core uses one vetted backend and one error vocabulary: backend
exceptions become :mod:`taube.crypto.errors` types here. Nothing in this module is
hand-written cryptography; tag comparisons use :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hmac as _hmac
from typing import Final

from cryptography.exceptions import InvalidSignature as _BackendInvalidSignature
from cryptography.exceptions import InvalidTag as _BackendInvalidTag
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives import hmac as _chmac
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from taube.crypto.errors import InvalidKey, InvalidMessage, InvalidSignature

__all__ = [
    "ZERO_SALT",
    "aes_cbc_decrypt",
    "aes_cbc_encrypt",
    "aes_gcm_decrypt",
    "aes_gcm_encrypt",
    "constant_time_equal",
    "ed25519_public",
    "ed25519_sign",
    "ed25519_verify",
    "hkdf_sha256",
    "hmac_sha256",
    "sha256",
    "sha512",
    "x25519",
    "x25519_public",
]

ZERO_SALT: Final = bytes(32)
"""HKDF salt where the specifications say "zero-filled, hash length" (RFC 5869 default)."""

_RAW = (Encoding.Raw, PublicFormat.Raw)


def hkdf_sha256(ikm: bytes, *, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF-SHA256 (extract then expand)."""
    if not 0 < length <= 255 * 32:
        raise ValueError(f"HKDF-SHA256 output length {length} out of range")
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256, full 32-byte tag."""
    mac = _chmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Tag and fingerprint comparison that does not leak where the inputs differ."""
    return _hmac.compare_digest(a, b)


def sha256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def sha512(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA512())
    digest.update(data)
    return digest.finalize()


def aes_cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """AES-CBC with PKCS#7 padding (key of 16, 24 or 32 bytes; the core uses 32)."""
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def aes_cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """Inverse of :func:`aes_cbc_encrypt`; bad length or padding raise InvalidMessage.

    Callers authenticate the ciphertext (HMAC or signature) *before* calling this,
    so padding errors are never an oracle.
    """
    if not ciphertext or len(ciphertext) % 16:
        raise InvalidMessage("AES-CBC ciphertext length is not a positive multiple of 16")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise InvalidMessage("bad PKCS#7 padding") from None


def aes_gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-GCM with a 16-byte tag appended to the ciphertext."""
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def aes_gcm_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except _BackendInvalidTag:
        raise InvalidMessage("AES-GCM tag does not verify") from None


def x25519_public(private: bytes) -> bytes:
    """Public key of a 32-byte X25519 private key (the backend clamps the scalar)."""
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes(*_RAW)


def x25519(private: bytes, public: bytes) -> bytes:
    """X25519 shared secret; a low-order peer key (all-zero result) raises InvalidKey."""
    try:
        peer = X25519PublicKey.from_public_bytes(public)
        return X25519PrivateKey.from_private_bytes(private).exchange(peer)
    except ValueError as exc:
        raise InvalidKey(f"X25519 failed: {exc}") from None


def ed25519_public(seed: bytes) -> bytes:
    """Ed25519 public key of a 32-byte private seed (RFC 8032)."""
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(*_RAW)


def ed25519_sign(seed: bytes, message: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed).sign(message)


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> None:
    """Raise InvalidSignature unless ``signature`` is valid for ``message`` under ``public``."""
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (_BackendInvalidSignature, ValueError):
        raise InvalidSignature("Ed25519 signature does not verify") from None
