"""A queued write's ticket behaves like the future it replaces, where callers look."""

from __future__ import annotations

import asyncio

import pytest

from taube.store.tickets import Ticket


async def test_a_ticket_is_pending_until_settled_then_gives_its_result() -> None:
    ticket = Ticket("op", asyncio.get_running_loop())
    assert not ticket.done()
    with pytest.raises(asyncio.InvalidStateError):
        ticket.result()
    with pytest.raises(asyncio.InvalidStateError):
        ticket.exception()
    ticket.set_result(42)
    assert ticket.done()
    assert ticket.result() == 42
    assert ticket.exception() is None
    assert await ticket == 42
    assert ticket.op == "op"


async def test_a_failed_write_raises_from_result_and_await() -> None:
    ticket = Ticket("op", asyncio.get_running_loop())
    ticket.set_exception(ValueError("no"))
    assert ticket.done()
    assert isinstance(ticket.exception(), ValueError)
    with pytest.raises(ValueError, match="no"):
        ticket.result()
    with pytest.raises(ValueError, match="no"):
        await ticket


async def test_a_ticket_is_settled_once() -> None:
    ticket = Ticket("op", asyncio.get_running_loop())
    ticket.set_result(1)
    with pytest.raises(asyncio.InvalidStateError):
        ticket.set_result(2)
    with pytest.raises(asyncio.InvalidStateError):
        ticket.set_exception(ValueError())
    assert ticket.result() == 1


async def test_done_callbacks_run_a_turn_later_with_the_ticket() -> None:
    loop = asyncio.get_running_loop()
    early, late = Ticket("early", loop), Ticket("late", loop)
    seen: list[object] = []
    early.add_done_callback(seen.append)
    early.set_result(1)
    assert seen == []  # never inside set_result, as with a future
    late.set_result(2)
    late.add_done_callback(seen.append)  # already settled: still a turn later
    assert seen == []
    for _ in range(3):
        await asyncio.sleep(0)
    assert seen == [early, late]


async def test_awaiting_waits_for_the_batch_and_a_cancelled_waiter_leaves_the_write() -> None:
    ticket = Ticket("op", asyncio.get_running_loop())
    first = asyncio.ensure_future(_await(ticket))
    second = asyncio.ensure_future(_await(ticket))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    assert first.cancelled()
    assert not ticket.done()
    ticket.set_result("stored")
    assert await second == "stored"
    assert list(await asyncio.gather(ticket, ticket)) == ["stored", "stored"]


async def _await(ticket: Ticket) -> object:
    return await ticket
