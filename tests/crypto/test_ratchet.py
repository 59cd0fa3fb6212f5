"""Behaviour of pairwise sessions: X3DH + Double Ratchet."""

from __future__ import annotations

import random

import pytest

from taube.crypto import (
    MAX_SKIP,
    MAX_SKIPPED_TOTAL,
    DecodeError,
    DuplicateMessage,
    IdentityKeyPair,
    InvalidMessage,
    InvalidSignature,
    OneTimePreKey,
    PreKeyBundle,
    PreKeyMessage,
    RatchetMessage,
    Session,
    SignedPreKey,
    TooManySkipped,
    decode_pairwise,
)
from tests.crypto.conftest import Pair, make_pair


def test_both_directions_many_rounds(pair: Pair) -> None:
    for i in range(20):
        sender, receiver = (pair.alice, pair.bob) if i % 3 else (pair.bob, pair.alice)
        for j in range(i % 4 + 1):
            text = f"{i}.{j}".encode()
            assert receiver.decrypt(sender.encrypt(text)) == text


def test_prekey_messages_until_first_reply() -> None:
    alice_id, bob_id = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    spk = SignedPreKey.generate(bob_id, 3)
    alice = Session.initiate(alice_id, PreKeyBundle.create(bob_id, spk))  # no OPK
    m1, m2 = alice.encrypt(b"one"), alice.encrypt(b"two")
    assert isinstance(decode_pairwise(m1), PreKeyMessage)
    bob, plaintext = Session.respond(bob_id, m2, spk, None)  # arrives first
    assert plaintext == b"two"
    assert bob.matches(PreKeyMessage.from_bytes(m1))
    assert bob.decrypt(m1) == b"one"
    assert alice.awaiting_reply
    assert alice.decrypt(bob.encrypt(b"reply")) == b"reply"
    assert not alice.awaiting_reply
    assert isinstance(decode_pairwise(alice.encrypt(b"three")), RatchetMessage)
    assert bob.remote_identity == alice_id.public == alice.local_identity


def test_bundle_with_bad_signature_is_refused() -> None:
    alice_id, bob_id = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    spk = SignedPreKey.generate(bob_id, 1)
    good = PreKeyBundle.create(bob_id, spk)
    forged_key = PreKeyBundle(
        good.identity_key, 1, bytes(31) + b"\x09", good.signed_prekey_signature
    )
    relabelled = PreKeyBundle(
        good.identity_key, 2, good.signed_prekey, good.signed_prekey_signature
    )
    other_identity = PreKeyBundle(IdentityKeyPair.generate().public, 1, good.signed_prekey,
                                  good.signed_prekey_signature)  # fmt: skip
    for bundle in (forged_key, relabelled, other_identity):
        with pytest.raises(InvalidSignature):
            Session.initiate(alice_id, bundle)


def test_respond_with_wrong_prekeys_fails_without_a_session() -> None:
    alice_id, bob_id = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    spk, opk = SignedPreKey.generate(bob_id, 1), OneTimePreKey.generate(5)
    alice = Session.initiate(alice_id, PreKeyBundle.create(bob_id, spk, opk))
    wire = alice.encrypt(b"hi")
    with pytest.raises(InvalidMessage):
        Session.respond(bob_id, wire, spk, None)
    with pytest.raises(InvalidMessage):
        Session.respond(bob_id, wire, spk, OneTimePreKey.generate(5))  # right id, wrong key
    with pytest.raises(InvalidMessage):
        Session.respond(IdentityKeyPair.generate(), wire, spk, opk)
    assert Session.respond(bob_id, wire, spk, opk)[1] == b"hi"


def test_out_of_order_and_lost(pair: Pair) -> None:
    msgs = [pair.alice.encrypt(f"m{i}".encode()) for i in range(30)]
    lost = {0, 3, 11, 17, 25}
    order = [i for i in range(30) if i not in lost]
    random.Random(7).shuffle(order)
    for i in order:
        assert pair.bob.decrypt(msgs[i]) == f"m{i}".encode()
    assert pair.bob.skipped_count == len(lost)
    # Interleave a reply (new DH ratchet step) and deliver older-chain messages late.
    reply = pair.bob.encrypt(b"reply")
    more = [pair.alice.encrypt(b"x"), pair.alice.encrypt(b"y")]
    assert pair.alice.decrypt(reply) == b"reply"
    newer = pair.alice.encrypt(b"z")
    assert pair.bob.decrypt(newer) == b"z"
    assert pair.bob.decrypt(more[1]) == b"y"
    for i in sorted(lost):
        assert pair.bob.decrypt(msgs[i]) == f"m{i}".encode()
    assert pair.bob.decrypt(more[0]) == b"x"
    assert pair.bob.skipped_count == 0


def test_max_skip_boundary(pair: Pair) -> None:
    for _ in range(MAX_SKIP):
        pair.alice.encrypt(b"lost")
    assert pair.bob.decrypt(pair.alice.encrypt(b"ok")) == b"ok"  # 1,000 skipped works
    assert pair.bob.skipped_count == MAX_SKIP
    for _ in range(MAX_SKIP + 1):
        pair.alice.encrypt(b"lost")
    too_far = pair.alice.encrypt(b"too far")
    before = pair.bob.to_bytes()
    with pytest.raises(TooManySkipped):
        pair.bob.decrypt(too_far)  # 1,001 skipped raises
    assert pair.bob.to_bytes() == before


def test_skipped_keys_are_capped_oldest_first(pair: Pair) -> None:
    first = [pair.alice.encrypt(b"old") for _ in range(MAX_SKIP)]
    pair.bob.decrypt(pair.alice.encrypt(b"tick"))
    for _ in range(2):
        for _ in range(MAX_SKIP - 1):
            last = pair.alice.encrypt(b"recent")
        pair.bob.decrypt(pair.alice.encrypt(b"tick"))
    assert pair.bob.skipped_count == MAX_SKIPPED_TOTAL
    with pytest.raises(DuplicateMessage):
        pair.bob.decrypt(first[0])  # evicted
    assert pair.bob.decrypt(last) == b"recent"


def test_replay_is_rejected(pair: Pair) -> None:
    a, b = pair.alice.encrypt(b"a"), pair.alice.encrypt(b"b")
    assert pair.bob.decrypt(b) == b"b"
    assert pair.bob.decrypt(a) == b"a"  # from the skipped store
    for wire in (a, b):
        with pytest.raises(DuplicateMessage):
            pair.bob.decrypt(wire)
    # A replay from an older receiving chain.
    pair.alice.decrypt(pair.bob.encrypt(b"turn"))
    pair.bob.decrypt(pair.alice.encrypt(b"new chain"))
    with pytest.raises(DuplicateMessage):
        pair.bob.decrypt(b)


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


@pytest.mark.parametrize(
    "where",
    ["ratchet_key", "previous_counter", "counter", "ciphertext", "mac", "length", "version"],
)
def test_tampering_is_rejected_and_state_unchanged(pair: Pair, where: str) -> None:
    wire = pair.alice.encrypt(b"the real message")
    offset = {
        "version": 0,
        "ratchet_key": 2,
        "previous_counter": 34 + 3,
        "counter": 38 + 3,
        "length": 42 + 3,
        "ciphertext": 46,
        "mac": len(wire) - 1,
    }[where]
    before = pair.bob.to_bytes()
    with pytest.raises((InvalidMessage, DuplicateMessage)):
        pair.bob.decrypt(flip(wire, offset))
    assert pair.bob.to_bytes() == before
    assert pair.bob.decrypt(wire) == b"the real message"


def test_tampered_prekey_message_is_rejected() -> None:
    alice_id, bob_id = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    spk, opk = SignedPreKey.generate(bob_id, 1), OneTimePreKey.generate(5)
    alice = Session.initiate(alice_id, PreKeyBundle.create(bob_id, spk, opk))
    wire = alice.encrypt(b"hi")
    for offset in (2, 34, 70):  # identity key, base key, inner ratchet key
        with pytest.raises(InvalidMessage):
            Session.respond(bob_id, flip(wire, offset), spk, opk)
    assert Session.respond(bob_id, wire, spk, opk)[1] == b"hi"


def test_other_sessions_prekey_message_is_rejected(pair: Pair) -> None:
    other = make_pair()
    alice_id = IdentityKeyPair.generate()
    spk = SignedPreKey.generate(alice_id, 1)
    stray = Session.initiate(alice_id, PreKeyBundle.create(alice_id, spk)).encrypt(b"x")
    for session in (pair.bob, pair.alice, other.bob):
        with pytest.raises(InvalidMessage):
            session.decrypt(stray)


def test_garbage_is_a_decode_error(pair: Pair) -> None:
    for garbage in (b"", b"\x01", b"\x02\x01" + bytes(100), b"\x01\x01" + bytes(10), b"\x01\x09"):
        with pytest.raises(DecodeError):
            pair.bob.decrypt(garbage)
    wire = pair.alice.encrypt(b"m")
    with pytest.raises(DecodeError):
        pair.bob.decrypt(wire + b"\x00")
    with pytest.raises(DecodeError):
        pair.bob.decrypt(wire[:-1])
    assert pair.bob.decrypt(wire) == b"m"


def test_persistence_round_trip(pair: Pair) -> None:
    pair.alice.encrypt(b"skipped")
    assert pair.bob.decrypt(pair.alice.encrypt(b"m")) == b"m"
    restored = Session.from_bytes(pair.bob.to_bytes())
    assert restored.to_bytes() == pair.bob.to_bytes()
    assert pair.alice.decrypt(restored.encrypt(b"from restored")) == b"from restored"
    with pytest.raises(DecodeError):
        Session.from_bytes(pair.bob.to_bytes()[:-1])
