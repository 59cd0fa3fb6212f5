"""Sender Keys for group messages (as in WhatsApp's security whitepaper).

Each member device has, per group, one sending state: a key id, a chain key with
an iteration counter, and an Ed25519 signing key. It hands the
:class:`SenderKeyDistribution` (key id, iteration, chain key, signing public key)
to every other member device over the pairwise sessions; after that one group
message is encrypted once and fanned out by the server.

Per message: seed, next chain key = KDF_CK(chain key) (:mod:`taube.crypto.kdf`);
AES key and IV = HKDF(seed, "Taube SenderKey v1"); AES-256-CBC/PKCS#7; the whole
encoded message is signed with Ed25519 by the signing key. Receivers check the
signature first, then derive the key.

Invariants: receivers accept messages out of order within MAX_SKIP per message and
store at most MAX_SKIPPED_TOTAL skipped keys (oldest evicted); a message key is
used once (DuplicateMessage otherwise); a failed decrypt changes nothing. Rotation
is a new :class:`SenderKeySender` with a new key id, made by the SDK whenever the
membership changes, so a removed member who holds only old states cannot read on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from taube.crypto.encoding import MAX_U32, Kind, Reader, Writer
from taube.crypto.errors import CryptoError, DuplicateMessage, TooManySkipped, UnknownSenderKey
from taube.crypto.kdf import kdf_ck, sender_message_keys
from taube.crypto.keys import KEY_SIZE, SIGNATURE_SIZE, Random
from taube.crypto.primitives import (
    aes_cbc_decrypt,
    aes_cbc_encrypt,
    ed25519_public,
    ed25519_sign,
    ed25519_verify,
)
from taube.crypto.ratchet import MAX_MESSAGE_SIZE, MAX_SKIP, MAX_SKIPPED_TOTAL

__all__ = [
    "SenderKeyDistribution",
    "SenderKeyMessage",
    "SenderKeyReceiver",
    "SenderKeySender",
]


@dataclass(frozen=True, slots=True)
class SenderKeyMessage:
    """A group message: key id, iteration, ciphertext, Ed25519 signature over the rest."""

    key_id: int
    iteration: int
    ciphertext: bytes
    signature: bytes

    def signed_part(self) -> bytes:
        w = Writer(Kind.SENDER_KEY_MESSAGE).u32(self.key_id).u32(self.iteration)
        return w.var(self.ciphertext).finish()

    def to_bytes(self) -> bytes:
        return self.signed_part() + self.signature

    @classmethod
    def from_bytes(cls, data: bytes) -> SenderKeyMessage:
        r = Reader(data, Kind.SENDER_KEY_MESSAGE)
        key_id, iteration, ciphertext = r.u32(), r.u32(), r.var(MAX_MESSAGE_SIZE)
        signature = r.fixed(SIGNATURE_SIZE)
        r.finish()
        return cls(key_id, iteration, ciphertext, signature)


@dataclass(frozen=True, slots=True, repr=False)
class SenderKeyDistribution:
    """What a sender gives each member so it can read the sender's group messages."""

    key_id: int
    iteration: int
    chain_key: bytes
    signing_key: bytes
    """The Ed25519 public key that signs this sender's messages under ``key_id``."""

    def to_bytes(self) -> bytes:
        w = Writer(Kind.SENDER_KEY_DISTRIBUTION).u32(self.key_id).u32(self.iteration)
        return w.fixed(self.chain_key, 32).fixed(self.signing_key, KEY_SIZE).finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> SenderKeyDistribution:
        r = Reader(data, Kind.SENDER_KEY_DISTRIBUTION)
        key_id, iteration, chain_key, signing_key = r.u32(), r.u32(), r.fixed(32), r.fixed(32)
        r.finish()
        return cls(key_id, iteration, chain_key, signing_key)

    def __repr__(self) -> str:
        return f"SenderKeyDistribution(key_id={self.key_id}, iteration={self.iteration})"


@dataclass(slots=True, repr=False)
class SenderKeySender:
    """The sending state of one device in one group."""

    key_id: int
    iteration: int
    chain_key: bytes
    signing_seed: bytes

    @classmethod
    def generate(cls, *, random: Random = os.urandom) -> SenderKeySender:
        """A fresh state: random key id, chain key and signing key (use on rotation)."""
        key_id = int.from_bytes(random(4), "big")
        return cls(key_id, 0, random(32), random(KEY_SIZE))

    @property
    def signing_key(self) -> bytes:
        return ed25519_public(self.signing_seed)

    def distribution(self) -> SenderKeyDistribution:
        """The distribution message for the current iteration (earlier messages stay closed)."""
        return SenderKeyDistribution(self.key_id, self.iteration, self.chain_key, self.signing_key)

    def encrypt(self, plaintext: bytes) -> bytes:
        if self.iteration >= MAX_U32:
            raise CryptoError("sender key exhausted; rotate")
        seed, next_chain_key = kdf_ck(self.chain_key)
        key, iv = sender_message_keys(seed)
        unsigned = SenderKeyMessage(
            self.key_id, self.iteration, aes_cbc_encrypt(key, iv, plaintext), b""
        )
        signed = unsigned.signed_part()
        self.chain_key, self.iteration = next_chain_key, self.iteration + 1
        return signed + ed25519_sign(self.signing_seed, signed)

    def to_bytes(self) -> bytes:
        w = Writer(Kind.SENDER_KEY_SENDER).u32(self.key_id).u32(self.iteration)
        return w.fixed(self.chain_key, 32).fixed(self.signing_seed, KEY_SIZE).finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> SenderKeySender:
        r = Reader(data, Kind.SENDER_KEY_SENDER)
        key_id, iteration, chain_key, seed = r.u32(), r.u32(), r.fixed(32), r.fixed(KEY_SIZE)
        r.finish()
        return cls(key_id, iteration, chain_key, seed)

    def __repr__(self) -> str:
        return f"SenderKeySender(key_id={self.key_id}, iteration={self.iteration})"


@dataclass(slots=True, repr=False)
class SenderKeyReceiver:
    """What one member holds to read one sender's messages under one key id."""

    key_id: int
    iteration: int
    """Iteration of the next message key the chain would produce."""
    chain_key: bytes
    signing_key: bytes
    skipped: dict[int, bytes] = field(default_factory=dict)

    @classmethod
    def from_distribution(cls, distribution: SenderKeyDistribution | bytes) -> SenderKeyReceiver:
        if not isinstance(distribution, SenderKeyDistribution):
            distribution = SenderKeyDistribution.from_bytes(distribution)
        d = distribution
        return cls(d.key_id, d.iteration, d.chain_key, d.signing_key)

    def decrypt(self, data: bytes) -> bytes:
        """Verify and decrypt a group message; the state is unchanged if this raises."""
        message = SenderKeyMessage.from_bytes(data)
        if message.key_id != self.key_id:
            raise UnknownSenderKey(f"no state for sender key id {message.key_id}")
        ed25519_verify(self.signing_key, message.signed_part(), message.signature)
        n = message.iteration
        if n < self.iteration:
            seed = self.skipped.get(n)
            if seed is None:
                raise DuplicateMessage("message key already used or discarded")
            plaintext = aes_cbc_decrypt(*sender_message_keys(seed), message.ciphertext)
            del self.skipped[n]
            return plaintext
        if n - self.iteration > MAX_SKIP:
            raise TooManySkipped(f"message needs {n - self.iteration} skipped keys")
        chain_key, fresh = self.chain_key, []
        for i in range(self.iteration, n):
            seed, chain_key = kdf_ck(chain_key)
            fresh.append((i, seed))
        seed, chain_key = kdf_ck(chain_key)
        plaintext = aes_cbc_decrypt(*sender_message_keys(seed), message.ciphertext)
        self.chain_key, self.iteration = chain_key, n + 1
        self.skipped.update(fresh)
        while len(self.skipped) > MAX_SKIPPED_TOTAL:
            del self.skipped[next(iter(self.skipped))]
        return plaintext

    def to_bytes(self) -> bytes:
        w = Writer(Kind.SENDER_KEY_RECEIVER).u32(self.key_id).u32(self.iteration)
        w.fixed(self.chain_key, 32).fixed(self.signing_key, KEY_SIZE).u32(len(self.skipped))
        for n, seed in self.skipped.items():
            w.u32(n).fixed(seed, 32)
        return w.finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> SenderKeyReceiver:
        r = Reader(data, Kind.SENDER_KEY_RECEIVER)
        key_id, iteration, chain_key, signing_key = r.u32(), r.u32(), r.fixed(32), r.fixed(32)
        count = r.u32()
        if count > MAX_SKIPPED_TOTAL:
            raise r.fail("too many skipped keys")
        skipped = {r.u32(): r.fixed(32) for _ in range(count)}
        r.finish()
        if len(skipped) != count:
            raise r.fail("duplicate skipped key")
        return cls(key_id, iteration, chain_key, signing_key, skipped)

    def __repr__(self) -> str:
        return f"SenderKeyReceiver(key_id={self.key_id}, iteration={self.iteration})"
