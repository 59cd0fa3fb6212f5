"""``Wakeup``: the connection loops' loop-bound event."""

from __future__ import annotations

import asyncio

import pytest

from taube.server.wakeup import Wakeup


async def test_wakeup_set_before_wait_returns_at_once_and_clear_rearms() -> None:
    wakeup = Wakeup(asyncio.get_running_loop())
    wakeup.set()
    await asyncio.wait_for(wakeup.wait(), 1.0)  # set: returns at once
    wakeup.clear()
    assert not wakeup.is_set()
    waiter = asyncio.ensure_future(wakeup.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    wakeup.set()
    await asyncio.wait_for(waiter, 1.0)


async def test_wakeup_waiter_cancelled_leaves_it_usable() -> None:
    wakeup = Wakeup(asyncio.get_running_loop())
    waiter = asyncio.ensure_future(wakeup.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    wakeup.set()
    await asyncio.wait_for(wakeup.wait(), 1.0)
