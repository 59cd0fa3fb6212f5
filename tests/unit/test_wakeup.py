"""``Wakeup``: the connection loops' loop-bound event."""

from __future__ import annotations

import asyncio

import pytest

from taube.server.wakeup import Wakeup


async def test_wakeup_set_before_wait_returns_at_once_and_clear_rearms() -> None:
    wakeup = Wakeup(asyncio.get_running_loop())
    wakeup.set()
    assert await wakeup.wait() is True
    wakeup.clear()
    assert not wakeup.is_set()
    waiter = asyncio.ensure_future(wakeup.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    wakeup.set()
    assert await waiter is True


async def test_wakeup_wait_with_a_limit_gives_up_and_says_so() -> None:
    wakeup = Wakeup(asyncio.get_running_loop())
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await wakeup.wait(0.05) is False
    assert loop.time() - started >= 0.04
    # A set while waiting with a limit wakes the waiter before the limit.
    waiter = asyncio.ensure_future(wakeup.wait(10.0))
    await asyncio.sleep(0)
    wakeup.set()
    assert await asyncio.wait_for(waiter, 1.0) is True


async def test_wakeup_waiter_cancelled_leaves_it_usable() -> None:
    wakeup = Wakeup(asyncio.get_running_loop())
    waiter = asyncio.ensure_future(wakeup.wait(5.0))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    wakeup.set()
    assert await wakeup.wait() is True
