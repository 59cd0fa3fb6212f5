"""Behaviour of Sender Keys: distribution, order, replays, rotation, tampering."""

from __future__ import annotations

import pytest

from taube.crypto import (
    MAX_SKIP,
    CryptoError,
    DuplicateMessage,
    InvalidSignature,
    SenderKeyReceiver,
    SenderKeySender,
    TooManySkipped,
    UnknownSenderKey,
)


def test_members_read_in_any_order_and_replays_fail() -> None:
    sender = SenderKeySender.generate()
    receiver = SenderKeyReceiver.from_distribution(sender.distribution().to_bytes())
    msgs = [sender.encrypt(f"g{i}".encode()) for i in range(6)]
    for i in (5, 0, 3, 1, 4, 2):
        assert receiver.decrypt(msgs[i]) == f"g{i}".encode()
    for wire in msgs:
        with pytest.raises(DuplicateMessage):
            receiver.decrypt(wire)
    assert not receiver.skipped


def test_max_skip() -> None:
    sender = SenderKeySender.generate()
    receiver = SenderKeyReceiver.from_distribution(sender.distribution())
    for _ in range(MAX_SKIP):
        sender.encrypt(b"lost")
    assert receiver.decrypt(sender.encrypt(b"ok")) == b"ok"
    for _ in range(MAX_SKIP + 1):
        sender.encrypt(b"lost")
    before = receiver.to_bytes()
    with pytest.raises(TooManySkipped):
        receiver.decrypt(sender.encrypt(b"too far"))
    assert receiver.to_bytes() == before


def test_rotation_locks_out_a_removed_member() -> None:
    old = SenderKeySender.generate()
    staying = SenderKeyReceiver.from_distribution(old.distribution())
    removed = SenderKeyReceiver.from_distribution(old.distribution())
    assert removed.decrypt(old.encrypt(b"before")) == b"before"
    new = SenderKeySender.generate()  # membership changed: new key id
    assert new.key_id != old.key_id
    staying = SenderKeyReceiver.from_distribution(new.distribution().to_bytes())
    wire = new.encrypt(b"after removal")
    assert staying.decrypt(wire) == b"after removal"
    with pytest.raises(UnknownSenderKey):
        removed.decrypt(wire)


def test_late_joiner_cannot_read_earlier_messages() -> None:
    sender = SenderKeySender.generate()
    early = sender.encrypt(b"early")
    late = SenderKeyReceiver.from_distribution(sender.distribution())
    with pytest.raises(DuplicateMessage):
        late.decrypt(early)
    assert late.decrypt(sender.encrypt(b"now")) == b"now"


@pytest.mark.parametrize("offset", [6, 10, 14, -1])  # iteration, length, ciphertext, signature
def test_tampering_and_forgery_are_rejected(offset: int) -> None:
    sender = SenderKeySender.generate()
    receiver = SenderKeyReceiver.from_distribution(sender.distribution())
    wire = sender.encrypt(b"signed")
    i = offset % len(wire)
    tampered = wire[:i] + bytes([wire[i] ^ 0x80]) + wire[i + 1 :]
    before = receiver.to_bytes()
    with pytest.raises(CryptoError):  # InvalidSignature, or DecodeError for the length
        receiver.decrypt(tampered)
    assert receiver.to_bytes() == before
    assert receiver.decrypt(wire) == b"signed"


def test_member_with_chain_key_cannot_forge() -> None:
    sender = SenderKeySender.generate()
    receiver = SenderKeyReceiver.from_distribution(sender.distribution())
    # Another member knows the chain key but not the signing key.
    impostor = SenderKeySender(sender.key_id, 0, sender.chain_key, bytes(32))
    with pytest.raises(InvalidSignature):
        receiver.decrypt(impostor.encrypt(b"forged"))


def test_persistence_round_trip() -> None:
    sender = SenderKeySender.generate()
    receiver = SenderKeyReceiver.from_distribution(sender.distribution())
    sender.encrypt(b"skipped")
    receiver.decrypt(sender.encrypt(b"m"))
    sender2 = SenderKeySender.from_bytes(sender.to_bytes())
    receiver2 = SenderKeyReceiver.from_bytes(receiver.to_bytes())
    assert receiver2.to_bytes() == receiver.to_bytes()
    assert receiver2.decrypt(sender2.encrypt(b"after restore")) == b"after restore"
