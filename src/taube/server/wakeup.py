"""A loop-bound wake-up for a connection's loops: an event with one waiter.

Why not ``asyncio.Event``: on Python 3.11 every wait on one asks for the running
loop, and ``asyncio.get_running_loop`` makes a ``getpid()`` system call each time
(CPython checks for a fork; 3.12 dropped it). In a ``py-spy --native`` profile at
1,000 messages/s those calls were 15 % of the event loop's samples. A ``Wakeup`` is
bound to its loop when made and never looks it up again. It is also smaller, which
an idle connection (two of them) notices: an ``asyncio.Event`` carries a deque of
waiters, about 600 bytes.
"""

from __future__ import annotations

import asyncio


class Wakeup:
    """``asyncio.Event`` for a single waiter (``wait`` from two tasks at once is a bug)."""

    __slots__ = ("_flag", "_loop", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._flag = False
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._flag = False

    async def wait(self) -> None:
        """Until set (at once if it is)."""
        if self._flag:
            return
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None
