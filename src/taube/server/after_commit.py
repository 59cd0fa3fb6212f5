"""What a node does the moment a batch of writes is durable (``Store.on_settled``).

A message's way through a node used to cross four turns of the event loop after its
frame was read: the batch ran two turns later, its futures' done-callbacks one turn
after that (asyncio schedules them), and the frames they queued were written one turn
after that again. Each turn first runs whatever else is ready (frames read from other
sockets, timers, other connections' acks), so at a fixed 5,000 messages/s a message
waited for up to three turns of other work. Run from the store's own turn, this answers
the senders whose oldest unanswered send was in the batch, rings the recipients (the
local bus calls their connections at once) and writes every frame that this queued,
so a message leaves the node in the turn its commit ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

SMALL_BATCH: Final = 64
"""Only batches of up to this many writes are answered from the hook. A big batch
(a node at full load) is answered from its done-callbacks as before: its answers, its
receipts and the next frames read then share fewer, larger writes, and answering it at
once measured 20 % less throughput (Workload A), with twice the system calls."""


class AfterCommit:
    """Connections to answer when the next batch is settled, and the writes they queue."""

    __slots__ = ("_answer", "_write", "collecting")

    def __init__(self) -> None:
        self._answer: list[Callable[[], None]] = []
        self._write: set[Callable[[], None]] = set()
        self.collecting = False
        """True while answering: a connection that queues a frame calls ``wrote``."""

    def answer(self, answer_sends: Callable[[], None]) -> None:
        """Call ``answer_sends`` after the next batch (a connection asks once per
        commit at the head of its unanswered sends)."""
        self._answer.append(answer_sends)

    def wrote(self, flush: Callable[[], None]) -> None:
        """A connection queued a frame while answering: call its ``flush`` at the end
        (at any other time, its own end-of-turn flush writes it)."""
        self._write.add(flush)

    def __call__(self, writes: int) -> None:
        answer, self._answer = self._answer, []
        if not answer or writes > SMALL_BATCH:
            return  # the done-callbacks answer, a turn later
        self.collecting = True
        try:
            for answer_sends in answer:
                answer_sends()
        finally:
            self.collecting = False
            write, self._write = self._write, set()
            for flush in write:
                flush()
