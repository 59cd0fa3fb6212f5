"""Every decoder and from_bytes rejects garbage with DecodeError, never anything else."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taube.crypto import (
    DecodeError,
    IdentityKeyPair,
    OneTimePreKey,
    PreKeyBundle,
    PreKeyMessage,
    RatchetMessage,
    SenderKeyDistribution,
    SenderKeyMessage,
    SenderKeyReceiver,
    SenderKeySender,
    Session,
    SignedPreKey,
    decode_pairwise,
)
from taube.crypto.errors import CryptoError
from tests.crypto.conftest import make_pair

DECODERS: list[Callable[[bytes], object]] = [
    IdentityKeyPair.from_bytes,
    SignedPreKey.from_bytes,
    OneTimePreKey.from_bytes,
    PreKeyBundle.from_bytes,
    PreKeyMessage.from_bytes,
    RatchetMessage.from_bytes,
    decode_pairwise,
    SenderKeyDistribution.from_bytes,
    SenderKeyMessage.from_bytes,
    SenderKeySender.from_bytes,
    SenderKeyReceiver.from_bytes,
    Session.from_bytes,
]


def samples() -> list[tuple[Callable[[bytes], object], bytes]]:
    """One valid encoding per decoder."""
    pair = make_pair()
    identity = IdentityKeyPair.generate()
    spk, opk = SignedPreKey.generate(identity, 1), OneTimePreKey.generate(2)
    sender = SenderKeySender.generate()
    receiver = SenderKeyReceiver.from_distribution(sender.distribution())
    pair.alice.encrypt(b"skipped")
    pair.bob.decrypt(pair.alice.encrypt(b"x"))
    fresh = Session.initiate(IdentityKeyPair.generate(), PreKeyBundle.create(identity, spk, opk))
    return [
        (IdentityKeyPair.from_bytes, identity.to_bytes()),
        (SignedPreKey.from_bytes, spk.to_bytes()),
        (OneTimePreKey.from_bytes, opk.to_bytes()),
        (PreKeyBundle.from_bytes, PreKeyBundle.create(identity, spk, opk).to_bytes()),
        (PreKeyBundle.from_bytes, PreKeyBundle.create(identity, spk).to_bytes()),
        (PreKeyMessage.from_bytes, fresh.encrypt(b"hello")),
        (RatchetMessage.from_bytes, pair.alice.encrypt(b"hello")),
        (SenderKeyDistribution.from_bytes, sender.distribution().to_bytes()),
        (SenderKeyMessage.from_bytes, sender.encrypt(b"hello")),
        (SenderKeySender.from_bytes, sender.to_bytes()),
        (SenderKeyReceiver.from_bytes, receiver.to_bytes()),
        (Session.from_bytes, pair.bob.to_bytes()),
        (Session.from_bytes, fresh.to_bytes()),
    ]


SAMPLES = samples()


@pytest.mark.parametrize(("decode", "good"), SAMPLES)
def test_valid_round_trip_and_every_mutilation_fails(
    decode: Callable[[bytes], object], good: bytes
) -> None:
    value = decode(good)
    assert value.to_bytes() == good  # type: ignore[attr-defined]
    for bad in (
        b"",
        good[:1],
        good[:-1],
        good + b"\x00",
        bytes([2]) + good[1:],  # version
        good[:1] + bytes([0x7F]) + good[2:],  # type
    ):
        with pytest.raises(DecodeError):
            decode(bad)
    for cut in range(0, len(good), max(1, len(good) // 40)):
        with pytest.raises(DecodeError):
            decode(good[:cut])


@pytest.mark.parametrize("decode", DECODERS)
@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=300))
def test_random_bytes_raise_only_decode_errors(
    decode: Callable[[bytes], object], data: bytes
) -> None:
    try:
        decode(data)
    except DecodeError:
        pass
    except CryptoError as exc:  # e.g. a random key rejected while rebuilding state
        pytest.fail(f"{decode} raised {exc!r} instead of DecodeError")


@settings(max_examples=200, deadline=None)
@given(index=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
def test_byte_mutations_raise_only_crypto_errors(index: int, value: int) -> None:
    for decode, good in SAMPLES:
        i = index % len(good)
        mutated = good[:i] + bytes([value]) + good[i + 1 :]
        with contextlib.suppress(CryptoError):
            decode(mutated)


def test_non_bytes_input_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        Session.from_bytes("not bytes")  # type: ignore[arg-type]
