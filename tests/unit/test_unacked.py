"""UnackedMessages: the SQLite writer's record of each device's message rows, which
lets an ack skip ``DELETE … RETURNING`` only where the record is known to be whole."""

from __future__ import annotations

from taube.store.rows import KIND_MESSAGE
from taube.store.unacked import UnackedMessages

BOB = ("bob", 1)


def row(seq: int, msg_id: str) -> tuple[int, int, str, str, str]:
    return (seq, KIND_MESSAGE, "alice", msg_id, "@alice")


def test_a_record_is_not_trusted_until_an_ack_from_the_store_covered_what_came_before() -> None:
    unacked = UnackedMessages()
    assert unacked.take(BOB, 10) is None  # nothing known about bob at all
    unacked.inserted(BOB, 5, "alice", "m5", "@alice")  # seqs 1-4 may be in the store
    unacked.inserted(BOB, 6, "alice", "m6", "@alice")
    assert unacked.take(BOB, 6) is None
    unacked.acked_from_store(BOB, 3)  # 4 may still be there
    assert unacked.take(BOB, 6) is None
    unacked.acked_from_store(BOB, 5)  # everything before the record is gone, and m5
    assert len(unacked) == 1
    assert unacked.take(BOB, 9) == [row(6, "m6")]
    assert len(unacked) == 0


def test_takes_remove_exactly_the_rows_up_to_the_ack() -> None:
    unacked = UnackedMessages()
    for seq in (1, 2, 4, 7):  # 3, 5 and 6 were receipts: not recorded, nothing to take
        unacked.inserted(BOB, seq, "alice", f"m{seq}", "@alice")
    unacked.acked_from_store(BOB, 0)
    assert unacked.take(BOB, 3) == [row(1, "m1"), row(2, "m2")]
    assert unacked.take(BOB, 3) == []  # an overlapping ack finds them gone
    assert unacked.take(BOB, 6) == [row(4, "m4")]
    assert unacked.take(("carol", 1), 6) is None  # other devices are their own
    assert len(unacked) == 1


def test_a_forgotten_device_and_a_full_record_fall_back_to_the_store() -> None:
    unacked = UnackedMessages(max_rows=3)
    unacked.inserted(BOB, 1, "alice", "m1", "@alice")
    unacked.inserted(("carol", 1), 1, "alice", "c1", "@alice")
    unacked.acked_from_store(BOB, 0)
    unacked.forget(BOB)  # revoked: its rows were deleted another way
    assert unacked.take(BOB, 1) is None
    assert len(unacked) == 1
    for seq in (2, 3, 4):  # the fourth row goes past the bound: everything is dropped
        unacked.inserted(("carol", 1), seq, "alice", f"c{seq}", "@alice")
    assert len(unacked) == 1
    unacked.acked_from_store(("carol", 1), 3)
    assert unacked.take(("carol", 1), 4) == [(4, KIND_MESSAGE, "alice", "c4", "@alice")]


def test_an_ack_of_everything_empties_the_record_and_it_goes_on() -> None:
    unacked = UnackedMessages()
    for seq in (1, 2, 3):
        unacked.inserted(BOB, seq, "alice", f"m{seq}", "@alice")
    unacked.acked_from_store(BOB, 0)  # nothing came before: the record is whole
    assert unacked.take(BOB, 3) == [row(1, "m1"), row(2, "m2"), row(3, "m3")]
    assert len(unacked) == 0
    unacked.inserted(BOB, 5, "alice", "m5", "@alice")
    assert unacked.take(BOB, 4) == []
    assert unacked.take(BOB, 5) == [row(5, "m5")]
    assert len(unacked) == 0
