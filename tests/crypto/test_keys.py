"""Identity keys: the Ed25519 -> X25519 map and key persistence."""

from __future__ import annotations

import os

import pytest

from taube.crypto import IdentityKeyPair, InvalidKey, KeyPair, OneTimePreKey, SignedPreKey
from taube.crypto.keys import (
    ed25519_public_to_x25519,
    ed25519_seed_to_x25519_private,
    verify_signed_prekey,
)
from taube.crypto.primitives import x25519_public


def test_private_and_public_maps_agree_for_many_keys() -> None:
    for _ in range(300):
        seed = os.urandom(32)
        identity = IdentityKeyPair.from_seed(seed)
        from_private = x25519_public(ed25519_seed_to_x25519_private(seed))
        assert ed25519_public_to_x25519(identity.public) == from_private == identity.dh_public


def test_identity_dh_is_symmetric() -> None:
    a, b = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    assert a.dh(ed25519_public_to_x25519(b.public)) == b.dh(ed25519_public_to_x25519(a.public))


def test_map_rejects_bad_keys() -> None:
    one = (1).to_bytes(32, "little")  # y = 1: the neutral element
    non_canonical = ((2**255 - 19) + 3).to_bytes(32, "little")
    for bad in (b"", bytes(31), one, non_canonical):
        with pytest.raises(InvalidKey):
            ed25519_public_to_x25519(bad)


def test_low_order_point_is_refused() -> None:
    with pytest.raises(InvalidKey):
        KeyPair.generate().dh(bytes(32))


def test_round_trips_and_signature() -> None:
    identity = IdentityKeyPair.generate()
    spk = SignedPreKey.generate(identity, 77, created_ms=1_700_000_000_123)
    opk = OneTimePreKey.generate(12)
    assert IdentityKeyPair.from_bytes(identity.to_bytes()).public == identity.public
    assert SignedPreKey.from_bytes(spk.to_bytes()) == spk
    assert OneTimePreKey.from_bytes(opk.to_bytes()) == opk
    verify_signed_prekey(identity.public, 77, spk.public, spk.signature)
    assert identity.seed.hex() not in repr(identity)
