"""AfterCommit: what a node does in the turn a batch of writes becomes durable."""

from __future__ import annotations

import pytest

from taube.server.after_commit import SMALL_BATCH, AfterCommit


class FakeConnection:
    """Just the two calls AfterCommit makes: answer its sends, flush its frames."""

    def __init__(self, after: AfterCommit, frames: int) -> None:
        self.after, self.frames = after, frames
        self.answered = self.flushed = 0

    def answer_sends(self) -> None:
        self.answered += 1
        for _ in range(self.frames):  # as Connection._buffer does while collecting
            assert self.after.collecting
            self.after.wrote(self.flush)

    def flush(self) -> None:
        self.flushed += 1


def test_a_small_batch_answers_each_connection_once_then_writes_each_once() -> None:
    after = AfterCommit()
    sender, quiet = FakeConnection(after, frames=3), FakeConnection(after, frames=0)
    after.answer(sender.answer_sends)
    after.answer(quiet.answer_sends)
    after(2)
    assert (sender.answered, sender.flushed) == (1, 1)  # three frames, one write
    assert (quiet.answered, quiet.flushed) == (1, 0)
    assert not after.collecting
    after(2)  # asked once per commit: the next batch answers nobody
    assert (sender.answered, sender.flushed) == (1, 1)


def test_a_big_batch_is_left_to_the_done_callbacks() -> None:
    """At full load, answering from the hook measured less throughput: the
    registrations are dropped and the futures' callbacks answer a turn later."""
    after = AfterCommit()
    conn = FakeConnection(after, frames=1)
    after.answer(conn.answer_sends)
    after(SMALL_BATCH + 1)
    after(1)
    assert (conn.answered, conn.flushed) == (0, 0)


def test_a_failing_answer_still_ends_collecting_and_writes_the_others() -> None:
    after = AfterCommit()
    conn = FakeConnection(after, frames=1)

    def broken() -> None:
        raise RuntimeError("boom")

    after.answer(conn.answer_sends)
    after.answer(broken)
    with pytest.raises(RuntimeError):  # the store logs it (Store._settled)
        after(2)
    assert not after.collecting
    assert (conn.answered, conn.flushed) == (1, 1)
