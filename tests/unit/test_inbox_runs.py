"""Runs of message items in one SQLite inbox row (store/inbox_runs.py): pure parts."""

from __future__ import annotations

import msgspec
import pytest

from taube.protocol.frames import Message
from taube.store.inbox_runs import RunItem, acked_items, decode_run, encode_run, run_messages
from taube.store.rows import KIND_MESSAGE

ITEMS: list[RunItem] = [
    ("alice", f"m{i}", "@alice", bytes([i]) * (i + 1), 2, 1000 + i) for i in range(5)
]


def test_a_run_reads_back_as_it_was_written() -> None:
    data = encode_run(ITEMS)
    assert isinstance(data, bytearray)  # bound without sqlite3's adapter lookup
    assert decode_run(bytes(data)) == ITEMS


def test_the_messages_of_a_run_start_after_the_devices_cursor() -> None:
    data = bytes(encode_run(ITEMS))
    assert run_messages(10, data, 0) == [
        Message(
            seq=10 + i,
            id=f"m{i}",
            conversation="@alice",
            sender="alice",
            sender_device=2,
            sent_at_ms=1000 + i,
            payload=bytes([i]) * (i + 1),
        )
        for i in range(5)
    ]
    assert [m.seq for m in run_messages(10, data, 12)] == [13, 14]
    assert run_messages(10, data, 14) == []


def test_acked_items_give_each_message_its_seq() -> None:
    assert acked_items(7, ITEMS[:2]) == [
        (7, KIND_MESSAGE, "alice", "m0", "@alice"),
        (8, KIND_MESSAGE, "alice", "m1", "@alice"),
    ]


def test_a_damaged_run_is_refused_not_misread() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_run(msgspec.msgpack.encode([("alice", "m0", "@alice", b"x", "two", 1000)]))
