"""Inbox seq tracking: replays dropped, acks only what the app took, overflow heals."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from taube.client.inbox import InboxCursor


def test_replays_after_reconnect_are_dropped() -> None:
    cursor = InboxCursor(acked=10)
    assert not cursor.receive(10)
    assert cursor.receive(11)
    assert cursor.receive(12)
    cursor.connection_ready()  # the server replays from acked=10
    assert not cursor.receive(11)
    assert not cursor.receive(12)
    assert cursor.receive(13)


def test_ack_follows_what_the_app_took_never_beyond_what_was_seen() -> None:
    cursor = InboxCursor()
    assert cursor.ack_due() is None
    cursor.receive(1)
    cursor.receive(2)
    cursor.take(1)
    assert cursor.ack_due() == 1
    cursor.acked_up_to(1)
    assert cursor.ack_due() is None
    cursor.take(99)  # cannot take what never arrived
    assert cursor.ack_due() == 2


def test_overflow_refuses_everything_after_until_a_new_connection() -> None:
    cursor = InboxCursor()
    assert cursor.receive(1)
    assert not cursor.receive(2, room=False)
    assert cursor.resync_needed
    assert not cursor.receive(3)  # accepting 3 would leave a gap at 2
    cursor.connection_ready()
    assert not cursor.resync_needed
    assert not cursor.receive(1)
    assert cursor.receive(2)
    assert cursor.receive(3)


@given(st.lists(st.tuples(st.integers(1, 40), st.booleans()), max_size=200))
def test_app_sees_a_gap_free_increasing_sequence(arrivals: list[tuple[int, bool]]) -> None:
    """Deliveries are prefixes of 1..N replayed after reconnects; the app sees 1, 2, 3 ..."""
    cursor = InboxCursor()
    delivered: list[int] = []
    server_next = 1
    for upto, reconnect in arrivals:
        if reconnect:
            cursor.connection_ready()
            server_next = cursor.acked + 1
        for seq in range(server_next, max(server_next, upto) + 1):
            if cursor.receive(seq, room=len(delivered) - cursor.acked < 5):
                delivered.append(seq)
        server_next = max(server_next, upto + 1)
        if delivered:
            cursor.take(delivered[-1])
            due = cursor.ack_due()
            if due is not None:
                cursor.acked_up_to(due)
    assert delivered == list(range(1, len(delivered) + 1))
