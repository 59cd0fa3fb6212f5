"""Sealing server-side secrets at rest (core/secret_box.py): pure, no server."""

from __future__ import annotations

import base64

import pyotp
import pytest

from taube.core.secret_box import (
    PREFIX,
    SecretUnreadable,
    derive_totp_key,
    is_legacy,
    is_sealed,
    seal,
    unseal,
)

SEED = bytes(range(32))
KEY = derive_totp_key(SEED)
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_round_trip_with_a_fresh_nonce_each_time() -> None:
    first, second = seal(KEY, "alice", SECRET), seal(KEY, "alice", SECRET)
    assert first != second  # a random nonce per write
    for stored in (first, second):
        assert is_sealed(stored)
        assert not is_legacy(stored)
        assert SECRET not in stored
        assert unseal(KEY, "alice", stored) == SECRET


def test_the_key_is_its_own_use_of_the_seed() -> None:
    assert len(KEY) == 32
    assert KEY != SEED
    assert derive_totp_key(SEED) == KEY  # deterministic: every node derives the same
    assert derive_totp_key(bytes(32)) != KEY


def test_wrong_key_does_not_open() -> None:
    stored = seal(KEY, "alice", SECRET)
    with pytest.raises(SecretUnreadable):
        unseal(derive_totp_key(bytes(32)), "alice", stored)


def test_a_row_copied_to_another_account_does_not_open() -> None:
    stored = seal(KEY, "alice", SECRET)
    with pytest.raises(SecretUnreadable):
        unseal(KEY, "mallory", stored)


@pytest.mark.parametrize("position", [0, 11, 12, 20, -1])  # nonce, body, tag
def test_tampered_values_do_not_open(position: int) -> None:
    raw = bytearray(base64.b64decode(seal(KEY, "alice", SECRET)[len(PREFIX) :]))
    raw[position] ^= 0x01
    with pytest.raises(SecretUnreadable):
        unseal(KEY, "alice", PREFIX + base64.b64encode(bytes(raw)).decode())


@pytest.mark.parametrize(
    "stored",
    [
        "v1:",  # empty
        "v1:AAAA",  # shorter than nonce and tag
        "v1:not base64!",
        "v1:é",
        "v2:" + base64.b64encode(bytes(40)).decode(),  # a format this version does not know
    ],
)
def test_malformed_values_are_unreadable_not_errors(stored: str) -> None:
    with pytest.raises(SecretUnreadable):
        unseal(KEY, "alice", stored)


def test_legacy_plaintext_passes_through() -> None:
    legacy = pyotp.random_base32()
    assert is_legacy(legacy)
    assert not is_sealed(legacy)
    assert unseal(KEY, "alice", legacy) == legacy
    assert unseal(derive_totp_key(bytes(32)), "bob", legacy) == legacy  # no key involved
