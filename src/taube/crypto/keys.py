"""Key types: the Ed25519 identity key, X25519 key pairs, signed and one-time prekeys.

Invariants:

* A device has ONE identity key, an Ed25519 key. It signs with Ed25519 and takes
  part in Diffie-Hellman through its X25519 form (no XEdDSA): the private scalar is
  the first 32 bytes of SHA-512(seed) (clamped by X25519), the public key is the
  birational map u = (1 + y) / (1 - y) mod 2^255 - 19. Both derive the same point.
* Every object is immutable once built and round-trips through ``to_bytes`` /
  ``from_bytes``; ``from_bytes`` of anything else raises :class:`DecodeError`.
* Randomness comes from an injectable ``random(n) -> bytes`` (default
  :func:`os.urandom`), so test vectors can be reproduced.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from taube.crypto.encoding import Kind, Reader, Writer
from taube.crypto.errors import InvalidKey
from taube.crypto.primitives import (
    ed25519_public,
    ed25519_sign,
    ed25519_verify,
    sha512,
    x25519,
    x25519_public,
)

__all__ = [
    "KEY_SIZE",
    "SIGNATURE_SIZE",
    "SIGNED_PREKEY_CONTEXT",
    "IdentityKeyPair",
    "KeyPair",
    "OneTimePreKey",
    "Random",
    "SignedPreKey",
    "ed25519_public_to_x25519",
    "ed25519_seed_to_x25519_private",
    "signed_prekey_message",
    "verify_signed_prekey",
]

Random = Callable[[int], bytes]
"""Source of random bytes: ``random(n)`` returns ``n`` fresh bytes."""

KEY_SIZE: Final = 32
SIGNATURE_SIZE: Final = 64
SIGNED_PREKEY_CONTEXT: Final = b"Taube signed prekey v1"

_P: Final = 2**255 - 19


def ed25519_public_to_x25519(public: bytes) -> bytes:
    """Map an Ed25519 public key to its X25519 (Montgomery u) form.

    u = (1 + y) / (1 - y) mod p, with y the little-endian key with its top (sign of x)
    bit cleared. This is the only arithmetic done by hand in the core (RFC 7748
    section 4.1 gives the map); it needs no secret, so timing does not matter.
    """
    if len(public) != KEY_SIZE:
        raise InvalidKey(f"Ed25519 public key must be {KEY_SIZE} bytes")
    y = int.from_bytes(public, "little") & ((1 << 255) - 1)
    if y >= _P or (1 - y) % _P == 0:
        # Non-canonical y, or y = 1 (the neutral element, which has no u).
        raise InvalidKey("Ed25519 public key has no X25519 form")
    u = (1 + y) * pow(1 - y, _P - 2, _P) % _P
    return u.to_bytes(KEY_SIZE, "little")


def ed25519_seed_to_x25519_private(seed: bytes) -> bytes:
    """X25519 private key of an Ed25519 seed: SHA-512(seed)[:32] (X25519 clamps it)."""
    if len(seed) != KEY_SIZE:
        raise InvalidKey(f"Ed25519 seed must be {KEY_SIZE} bytes")
    return sha512(seed)[:KEY_SIZE]


@dataclass(frozen=True, slots=True, repr=False)
class KeyPair:
    """An X25519 key pair (ephemeral, ratchet, signed and one-time prekeys)."""

    private: bytes
    public: bytes

    @classmethod
    def from_private_bytes(cls, private: bytes) -> KeyPair:
        if len(private) != KEY_SIZE:
            raise InvalidKey(f"X25519 private key must be {KEY_SIZE} bytes")
        return cls(bytes(private), x25519_public(private))

    @classmethod
    def generate(cls, random: Random = os.urandom) -> KeyPair:
        return cls.from_private_bytes(random(KEY_SIZE))

    def dh(self, their_public: bytes) -> bytes:
        return x25519(self.private, their_public)

    def __repr__(self) -> str:  # never print private keys
        return f"KeyPair(public={self.public.hex()})"


@dataclass(frozen=True, slots=True, repr=False)
class IdentityKeyPair:
    """A device's long-term Ed25519 identity key and its derived X25519 form."""

    seed: bytes
    public: bytes
    """The Ed25519 public key: this is the device's identity on the wire."""
    dh_private: bytes
    dh_public: bytes

    @classmethod
    def from_seed(cls, seed: bytes) -> IdentityKeyPair:
        dh_private = ed25519_seed_to_x25519_private(seed)
        return cls(bytes(seed), ed25519_public(seed), dh_private, x25519_public(dh_private))

    @classmethod
    def generate(cls, random: Random = os.urandom) -> IdentityKeyPair:
        return cls.from_seed(random(KEY_SIZE))

    def sign(self, message: bytes) -> bytes:
        return ed25519_sign(self.seed, message)

    def dh(self, their_x25519_public: bytes) -> bytes:
        """DH between this identity's X25519 form and an X25519 public key."""
        return x25519(self.dh_private, their_x25519_public)

    def to_bytes(self) -> bytes:
        return Writer(Kind.IDENTITY_KEY_PAIR).fixed(self.seed, KEY_SIZE).finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> IdentityKeyPair:
        r = Reader(data, Kind.IDENTITY_KEY_PAIR)
        seed = r.fixed(KEY_SIZE)
        r.finish()
        return cls.from_seed(seed)

    def __repr__(self) -> str:
        return f"IdentityKeyPair(public={self.public.hex()})"


def signed_prekey_message(key_id: int, public: bytes) -> bytes:
    """The bytes an identity key signs to vouch for a signed prekey.

    ``"Taube signed prekey v1" || u32 key_id || public``: the context string keeps
    these signatures apart from anything else the identity key may sign, and the
    id is covered so the server cannot relabel prekeys.
    """
    return SIGNED_PREKEY_CONTEXT + key_id.to_bytes(4, "big") + public


def verify_signed_prekey(identity: bytes, key_id: int, public: bytes, signature: bytes) -> None:
    """Raise InvalidSignature unless ``signature`` vouches for the signed prekey."""
    ed25519_verify(identity, signed_prekey_message(key_id, public), signature)


@dataclass(frozen=True, slots=True, repr=False)
class SignedPreKey:
    """A medium-term X25519 prekey signed by the identity key (rotated by the SDK)."""

    key_id: int
    key_pair: KeyPair
    signature: bytes
    created_ms: int

    @classmethod
    def create(
        cls, identity: IdentityKeyPair, key_id: int, key_pair: KeyPair, *, created_ms: int = 0
    ) -> SignedPreKey:
        signature = identity.sign(signed_prekey_message(key_id, key_pair.public))
        return cls(key_id, key_pair, signature, created_ms)

    @classmethod
    def generate(
        cls,
        identity: IdentityKeyPair,
        key_id: int,
        *,
        created_ms: int = 0,
        random: Random = os.urandom,
    ) -> SignedPreKey:
        return cls.create(identity, key_id, KeyPair.generate(random), created_ms=created_ms)

    @property
    def public(self) -> bytes:
        return self.key_pair.public

    def to_bytes(self) -> bytes:
        w = Writer(Kind.SIGNED_PREKEY).u32(self.key_id).fixed(self.key_pair.private, KEY_SIZE)
        w.fixed(self.signature, SIGNATURE_SIZE)
        # Milliseconds since the epoch need more than 32 bits: two u32 halves.
        return w.u32(self.created_ms >> 32).u32(self.created_ms & 0xFFFFFFFF).finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedPreKey:
        r = Reader(data, Kind.SIGNED_PREKEY)
        key_id, private, signature = r.u32(), r.fixed(KEY_SIZE), r.fixed(SIGNATURE_SIZE)
        created_ms = (r.u32() << 32) | r.u32()
        r.finish()
        return cls(key_id, KeyPair.from_private_bytes(private), signature, created_ms)

    def __repr__(self) -> str:
        return f"SignedPreKey(key_id={self.key_id}, public={self.public.hex()})"


@dataclass(frozen=True, slots=True, repr=False)
class OneTimePreKey:
    """A single-use X25519 prekey; the SDK deletes it once a session used it."""

    key_id: int
    key_pair: KeyPair

    @classmethod
    def generate(cls, key_id: int, *, random: Random = os.urandom) -> OneTimePreKey:
        return cls(key_id, KeyPair.generate(random))

    @property
    def public(self) -> bytes:
        return self.key_pair.public

    def to_bytes(self) -> bytes:
        w = Writer(Kind.ONE_TIME_PREKEY).u32(self.key_id)
        return w.fixed(self.key_pair.private, KEY_SIZE).finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> OneTimePreKey:
        r = Reader(data, Kind.ONE_TIME_PREKEY)
        key_id, private = r.u32(), r.fixed(KEY_SIZE)
        r.finish()
        return cls(key_id, KeyPair.from_private_bytes(private))

    def __repr__(self) -> str:
        return f"OneTimePreKey(key_id={self.key_id}, public={self.public.hex()})"
