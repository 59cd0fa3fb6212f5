"""Delivered receipts made from acked inbox rows (store/rows.py), whatever order the
rows come in: the writer's record gives them in seq order, a RETURNING clause in any."""

from __future__ import annotations

import random

from taube.store.rows import KIND_MESSAGE, KIND_RECEIPT, MAX_RECEIPT_IDS, delivered_receipts


def _rows() -> list[tuple[int, int, str | None, str | None, str | None]]:
    rows: list[tuple[int, int, str | None, str | None, str | None]] = []
    for seq in range(1, 41):
        sender = ["alice", "carol"][seq % 2]
        rows.append((seq, KIND_MESSAGE, sender, f"m{seq:03d}", f"@{sender}"))
    rows.append((41, KIND_MESSAGE, "alice", "g041", "#grp"))
    rows.append((42, KIND_RECEIPT, None, None, None))  # not a message: no receipt
    rows.append((43, KIND_MESSAGE, "bob", "own", "@x"))  # bob's own message
    rows.append((44, KIND_MESSAGE, "mallory", "m044", "@mallory"))  # blocked, 1:1
    rows.append((45, KIND_MESSAGE, "mallory", "g045", "#grp"))  # blocked, but a group
    return rows


def _summary(rows: list[tuple[int, int, str | None, str | None, str | None]]) -> object:
    out = delivered_receipts(rows, "bob", 2, 1000, blocked={"mallory"})
    return sorted((sender, r.conversation, r.by, r.by_device, r.at_ms, r.ids) for sender, r in out)


def test_receipts_group_rows_by_sender_and_conversation_in_seq_order() -> None:
    assert _summary(_rows()) == [
        ("alice", "#grp", "bob", 2, 1000, ["g041"]),
        ("alice", "@bob", "bob", 2, 1000, [f"m{s:03d}" for s in range(2, 41, 2)]),
        ("carol", "@bob", "bob", 2, 1000, [f"m{s:03d}" for s in range(1, 41, 2)]),
        ("mallory", "#grp", "bob", 2, 1000, ["g045"]),
    ]


def test_receipts_are_the_same_for_rows_in_any_order() -> None:
    rows = _rows()
    expected = _summary(rows)
    rng = random.Random(7)
    for _ in range(20):
        rng.shuffle(rows)
        assert _summary(rows) == expected


def test_a_long_run_is_split_at_the_id_limit() -> None:
    rows: list[tuple[int, int, str | None, str | None, str | None]] = [
        (seq, KIND_MESSAGE, "alice", f"m{seq}", "@alice") for seq in range(1, MAX_RECEIPT_IDS + 6)
    ]
    out = delivered_receipts(rows, "bob", 1, 5)
    assert [len(r.ids) for _, r in out] == [MAX_RECEIPT_IDS, 5]
    assert [i for _, r in out for i in r.ids] == [
        f"m{seq}" for seq in range(1, MAX_RECEIPT_IDS + 6)
    ]
