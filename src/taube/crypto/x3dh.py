"""X3DH key agreement (Signal's X3DH specification), with Ed25519 identity keys.

The initiator (Alice) fetches the responder's (Bob's) :class:`PreKeyBundle`,
verifies the signed prekey signature (a bad signature is refused before any DH),
and computes::

    DH1 = DH(IK_A, SPK_B)  DH2 = DH(EK_A, IK_B)  DH3 = DH(EK_A, SPK_B)  [DH4 = DH(EK_A, OPK_B)]
    SK  = HKDF-SHA256(ikm = 0xFF*32 || DH1 || DH2 || DH3 [|| DH4],
                      salt = 0x00*32, info = "Taube X3DH v1", length 32)
    AD  = IK_A || IK_B          (the two Ed25519 identity public keys, 64 bytes)

where DH with an identity key uses its X25519 form (see :mod:`taube.crypto.keys`).
This module is pure: it returns secrets and leaves sessions to
:mod:`taube.crypto.ratchet`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from taube.crypto.encoding import Kind, Reader, Writer
from taube.crypto.keys import (
    KEY_SIZE,
    SIGNATURE_SIZE,
    IdentityKeyPair,
    KeyPair,
    OneTimePreKey,
    SignedPreKey,
    ed25519_public_to_x25519,
    verify_signed_prekey,
)
from taube.crypto.primitives import ZERO_SALT, hkdf_sha256

__all__ = [
    "X3DH_INFO",
    "PreKeyBundle",
    "X3DHResult",
    "associated_data",
    "x3dh_initiate",
    "x3dh_respond",
]

X3DH_INFO: Final = b"Taube X3DH v1"
_F: Final = b"\xff" * 32


@dataclass(frozen=True, slots=True)
class PreKeyBundle:
    """What the server hands out for one device: identity, signed prekey, maybe one OPK."""

    identity_key: bytes
    signed_prekey_id: int
    signed_prekey: bytes
    signed_prekey_signature: bytes
    one_time_prekey_id: int | None = None
    one_time_prekey: bytes | None = None

    def __post_init__(self) -> None:
        if (self.one_time_prekey_id is None) != (self.one_time_prekey is None):
            raise ValueError("one_time_prekey_id and one_time_prekey go together")

    @classmethod
    def create(
        cls,
        identity: IdentityKeyPair,
        signed_prekey: SignedPreKey,
        one_time_prekey: OneTimePreKey | None = None,
    ) -> PreKeyBundle:
        return cls(
            identity.public,
            signed_prekey.key_id,
            signed_prekey.public,
            signed_prekey.signature,
            None if one_time_prekey is None else one_time_prekey.key_id,
            None if one_time_prekey is None else one_time_prekey.public,
        )

    def verify(self) -> None:
        """Raise InvalidSignature unless the identity key signed the signed prekey."""
        verify_signed_prekey(
            self.identity_key,
            self.signed_prekey_id,
            self.signed_prekey,
            self.signed_prekey_signature,
        )

    def to_bytes(self) -> bytes:
        w = Writer(Kind.PREKEY_BUNDLE).fixed(self.identity_key, KEY_SIZE)
        w.u32(self.signed_prekey_id).fixed(self.signed_prekey, KEY_SIZE)
        w.fixed(self.signed_prekey_signature, SIGNATURE_SIZE)
        w.optional_u32(self.one_time_prekey_id)
        w.fixed(self.one_time_prekey or bytes(KEY_SIZE), KEY_SIZE)
        return w.finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> PreKeyBundle:
        r = Reader(data, Kind.PREKEY_BUNDLE)
        identity, spk_id, spk = r.fixed(KEY_SIZE), r.u32(), r.fixed(KEY_SIZE)
        signature = r.fixed(SIGNATURE_SIZE)
        opk_id = r.optional_u32()
        opk = r.fixed(KEY_SIZE)
        r.finish()
        if opk_id is None and any(opk):
            raise r.fail("absent one-time prekey must be zero-filled")
        return cls(identity, spk_id, spk, signature, opk_id, None if opk_id is None else opk)


@dataclass(frozen=True, slots=True, repr=False)
class X3DHResult:
    """The initiator's outcome: shared secret, AD and what goes in the prekey header."""

    shared_secret: bytes
    associated_data: bytes
    base_key: KeyPair
    """The ephemeral key EK_A; its public half travels in the prekey message."""
    signed_prekey_id: int
    one_time_prekey_id: int | None


def associated_data(initiator_identity: bytes, responder_identity: bytes) -> bytes:
    """AD = Encode(IK_A) || Encode(IK_B); Encode is the raw 32-byte Ed25519 public key."""
    return initiator_identity + responder_identity


def _kdf(dhs: list[bytes]) -> bytes:
    return hkdf_sha256(_F + b"".join(dhs), salt=ZERO_SALT, info=X3DH_INFO, length=32)


def x3dh_initiate(identity: IdentityKeyPair, bundle: PreKeyBundle, base_key: KeyPair) -> X3DHResult:
    """Alice's side. Verifies the bundle first; ``base_key`` is a fresh X25519 key pair."""
    bundle.verify()
    their_identity_dh = ed25519_public_to_x25519(bundle.identity_key)
    dhs = [
        identity.dh(bundle.signed_prekey),
        base_key.dh(their_identity_dh),
        base_key.dh(bundle.signed_prekey),
    ]
    if bundle.one_time_prekey is not None:
        dhs.append(base_key.dh(bundle.one_time_prekey))
    return X3DHResult(
        _kdf(dhs),
        associated_data(identity.public, bundle.identity_key),
        base_key,
        bundle.signed_prekey_id,
        bundle.one_time_prekey_id,
    )


def x3dh_respond(
    identity: IdentityKeyPair,
    signed_prekey: SignedPreKey,
    one_time_prekey: OneTimePreKey | None,
    their_identity: bytes,
    their_base_key: bytes,
) -> tuple[bytes, bytes]:
    """Bob's side: returns ``(shared_secret, associated_data)``."""
    their_identity_dh = ed25519_public_to_x25519(their_identity)
    dhs = [
        signed_prekey.key_pair.dh(their_identity_dh),
        identity.dh(their_base_key),
        signed_prekey.key_pair.dh(their_base_key),
    ]
    if one_time_prekey is not None:
        dhs.append(one_time_prekey.key_pair.dh(their_base_key))
    return _kdf(dhs), associated_data(their_identity, identity.public)
