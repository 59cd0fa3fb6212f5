"""What a queued write returns: its outcome, settled with the batch that commits it.

Why not an ``asyncio.Future`` per write: under full load a batch holds thousands of
messages, and nobody waits on most of them one by one (a connection waits on the
oldest of its unanswered sends and answers the others with it). Making, settling and
freeing a future took ~3,400 of the ~31,000 instructions the SQLite store spent on a
message (callgrind, the store under Workload A's shape; docs/performance.md 9.22). A
``Ticket`` is a plain compiled object; it makes a future only when someone waits on
it (``await``, ``add_done_callback``), and settles that future with itself.

``Pending`` is what callers of ``Store.submit_message`` and ``Store.submit_ack`` may
rely on: the part of ``asyncio.Future``'s interface that both a future (PostgreSQL's
store) and a ticket (SQLite's) have. As with a future, a done-callback runs in a later
turn of the event loop, never inside ``set_result``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from typing import Any, Final, Protocol, TypeVar

T_co = TypeVar("T_co", covariant=True)

_PENDING: Final = 0
_OK: Final = 1
_FAILED: Final = 2


class Pending(Protocol[T_co]):
    """An outcome that may not be known yet (``asyncio.Future`` and ``Ticket`` are)."""

    def done(self) -> bool: ...

    def result(self) -> T_co: ...

    def add_done_callback(self, fn: Callable[[Any], object], /) -> None: ...

    def __await__(self) -> Generator[Any, None, T_co]: ...


class Ticket:
    """One queued write (``op``) and, once its batch is settled, its result or failure."""

    __slots__ = ("_loop", "_state", "_value", "_waiter", "op")

    def __init__(self, op: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.op: Final = op
        self._loop = loop
        self._state = _PENDING
        self._value: Any = None
        self._waiter: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        state = ("pending", "done", "failed")[self._state]
        return f"<Ticket {state} {self.op!r}>"

    def done(self) -> bool:
        return self._state != _PENDING

    def result(self) -> Any:
        """The write's result; raises its failure, or InvalidStateError if not done."""
        if self._state == _OK:
            return self._value
        if self._state == _FAILED:
            raise self._value
        raise asyncio.InvalidStateError("the write is not settled yet")

    def exception(self) -> BaseException | None:
        if self._state == _PENDING:
            raise asyncio.InvalidStateError("the write is not settled yet")
        return self._value if self._state == _FAILED else None

    def set_result(self, value: Any) -> None:
        self._settle(_OK, value)

    def set_exception(self, exc: BaseException) -> None:
        self._settle(_FAILED, exc)

    def _settle(self, state: int, value: Any) -> None:
        if self._state != _PENDING:
            raise asyncio.InvalidStateError("the write is settled already")
        self._state, self._value = state, value
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def add_done_callback(self, fn: Callable[[Any], object], /) -> None:
        """Call ``fn(ticket)`` in a turn of the loop after the write is settled."""
        self._settled().add_done_callback(lambda _: fn(self))

    def __await__(self) -> Generator[Any, None, Any]:
        return self._wait().__await__()

    async def _wait(self) -> Any:
        if self._state == _PENDING:
            # Shielded: a waiter that is cancelled leaves the write, and other waiters, be.
            await asyncio.shield(self._settled())
        return self.result()

    def _settled(self) -> asyncio.Future[None]:
        """A future done when the ticket is (made on the first wait)."""
        waiter = self._waiter
        if waiter is None:
            waiter = self._waiter = self._loop.create_future()
            if self._state != _PENDING:
                waiter.set_result(None)
        return waiter
