"""Safety numbers and attachment encryption."""

from __future__ import annotations

import os

import pytest

from taube.crypto import (
    DecodeError,
    IdentityKeyPair,
    InvalidMessage,
    decrypt_attachment,
    encrypt_attachment,
    safety_number,
)
from taube.crypto.attachments import CHUNK_SIZE


def keys(n: int) -> list[bytes]:
    return [IdentityKeyPair.generate().public for _ in range(n)]


def test_both_sides_see_the_same_number_and_scans_match() -> None:
    alice, bob = keys(3), keys(2)
    mine = safety_number(b"alice", alice, b"bob", bob)
    theirs = safety_number(b"bob", list(reversed(bob)), b"alice", alice[::-1])
    assert mine.digits == theirs.digits
    assert len(mine.digits) == 60
    assert mine.digits.isdigit()
    groups = mine.formatted().split(" ")
    assert len(groups) == 12
    assert all(len(g) == 5 for g in groups)
    assert mine.matches_scanned(theirs.scannable)
    assert not mine.matches_scanned(mine.scannable)


def test_a_new_device_or_other_key_changes_the_number() -> None:
    alice, bob = keys(2), keys(1)
    base = safety_number(b"alice", alice, b"bob", bob)
    with_device = safety_number(b"alice", [*alice, *keys(1)], b"bob", bob)
    mitm = safety_number(b"alice", alice, b"bob", keys(1))
    assert base.digits != with_device.digits
    assert base.digits != mitm.digits
    assert not base.matches_scanned(safety_number(b"bob", keys(1), b"alice", alice).scannable)
    with pytest.raises(DecodeError):
        base.matches_scanned(b"garbage")


@pytest.mark.parametrize("size", [0, 1, 15, 16, CHUNK_SIZE - 1, CHUNK_SIZE, 3 * CHUNK_SIZE + 7])
def test_attachment_round_trip(size: int) -> None:
    data = os.urandom(size)
    enc = encrypt_attachment(data)
    assert len(enc.key) == 32
    assert decrypt_attachment(enc.ciphertext, enc.key, enc.digest) == data


def test_attachment_tampering_truncation_and_wrong_key() -> None:
    data = os.urandom(2 * CHUNK_SIZE + 10)
    enc = encrypt_attachment(data)
    from taube.crypto.primitives import sha256

    def digest_ok(blob: bytes) -> bytes:  # an attacker who also replaced the digest
        return sha256(blob)

    flipped = bytearray(enc.ciphertext)
    flipped[100] ^= 1
    with pytest.raises(InvalidMessage):
        decrypt_attachment(bytes(flipped), enc.key, enc.digest)  # digest catches it
    with pytest.raises(InvalidMessage):
        decrypt_attachment(bytes(flipped), enc.key, digest_ok(bytes(flipped)))  # tag catches it
    sealed = CHUNK_SIZE + 16
    truncated = enc.ciphertext[: 2 + 2 * sealed]  # drop the last chunk entirely
    with pytest.raises(InvalidMessage):
        decrypt_attachment(truncated, enc.key, digest_ok(truncated))
    with pytest.raises(InvalidMessage):
        decrypt_attachment(enc.ciphertext, os.urandom(32), enc.digest)
    for garbage in (b"", b"\x01\x06", b"\x09\x06" + bytes(40)):
        with pytest.raises(InvalidMessage):
            decrypt_attachment(garbage, enc.key, digest_ok(garbage))
