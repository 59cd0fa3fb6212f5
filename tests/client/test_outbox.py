"""The outbox state machine: order, window, retransmission after reconnect, no I/O."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from taube.client.outbox import OutboxQueue
from taube.client.profile import OutboxEntry


def entry(n: int) -> OutboxEntry:
    return OutboxEntry(id=f"id-{n}", to="@bob", payload=str(n).encode(), created_ms=n)


def drain(queue: OutboxQueue) -> list[str]:
    out = []
    while (e := queue.next_to_transmit()) is not None:
        out.append(e.id)
    return out


def test_transmits_in_queue_order_within_the_window() -> None:
    queue = OutboxQueue([entry(i) for i in range(5)], window=3)
    assert drain(queue) == ["id-0", "id-1", "id-2"]
    assert queue.in_flight == 3
    queue.acknowledge("id-0")
    assert drain(queue) == ["id-3"]
    queue.add(entry(5))
    queue.acknowledge("id-1")
    queue.acknowledge("id-2")
    assert drain(queue) == ["id-4", "id-5"]


def test_reset_retransmits_everything_unacknowledged_in_order() -> None:
    queue = OutboxQueue([entry(i) for i in range(4)], window=10)
    assert drain(queue) == ["id-0", "id-1", "id-2", "id-3"]
    queue.acknowledge("id-1")
    queue.reset()  # the connection dropped: acks for 0, 2, 3 may never come
    assert queue.in_flight == 0
    assert drain(queue) == ["id-0", "id-2", "id-3"]


def test_ack_of_unknown_or_repeated_id_is_harmless() -> None:
    queue = OutboxQueue([entry(0)])
    assert queue.acknowledge("nope") is None
    assert queue.acknowledge("id-0") == entry(0)
    assert queue.acknowledge("id-0") is None
    assert len(queue) == 0
    assert drain(queue) == []


def test_adding_a_known_id_is_idempotent() -> None:
    queue = OutboxQueue([entry(0)])
    queue.add(entry(0))
    assert len(queue) == 1
    assert drain(queue) == ["id-0"]


def test_reject_removes_the_entry() -> None:
    queue = OutboxQueue([entry(0), entry(1)])
    queue.next_to_transmit()
    assert queue.reject("id-0") == entry(0)
    assert [e.id for e in queue.pending()] == ["id-1"]


@given(
    n=st.integers(0, 30),
    window=st.integers(1, 8),
    script=st.lists(st.tuples(st.sampled_from(["tx", "ack", "reset"]), st.integers(0, 30))),
)
def test_after_any_history_the_rest_goes_out_once_in_order(
    n: int, window: int, script: list[tuple[str, int]]
) -> None:
    queue = OutboxQueue([entry(i) for i in range(n)], window=window)
    acked: set[str] = set()
    for op, k in script:
        if op == "tx":
            queue.next_to_transmit()
        elif op == "ack" and queue.acknowledge(f"id-{k}") is not None:
            acked.add(f"id-{k}")
        elif op == "reset":
            queue.reset()
        assert queue.in_flight <= window
    # A fresh connection; the server acks the oldest in-flight entry when the window is full.
    queue.reset()
    seen: list[str] = []
    in_flight: list[str] = []
    while True:
        e = queue.next_to_transmit()
        if e is None:
            if not in_flight:
                break
            queue.acknowledge(in_flight.pop(0))
            continue
        seen.append(e.id)
        in_flight.append(e.id)
        assert queue.in_flight <= window
    assert seen == [f"id-{i}" for i in range(n) if f"id-{i}" not in acked]
    assert len(queue) == 0
