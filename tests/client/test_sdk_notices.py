"""Operator notices reach SDK clients as events, once each (also after a reconnect)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from taube.client import Api, Client, Notice, register
from tests.client.conftest import FAST, PASSWORD
from tests.serverproc import UNIT_S, ServerProcess

ADMIN = "sdk-notice-admin-token-0123456789"


async def next_notice(client: Client) -> Notice:
    async with asyncio.timeout(10 * UNIT_S):
        async for event in client.events():
            if isinstance(event, Notice):
                return event
    raise AssertionError("unreachable")


async def test_a_notice_arrives_as_an_event_live_and_for_a_client_that_connects_later(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path / "srv", settings={"admin": {"token": ADMIN}}).start()
    try:
        for user in ("alice", "bob"):
            await register(user, PASSWORD, servers=server.url, profile=tmp_path / user)
        async with Client(tmp_path / "alice", options=FAST) as alice:
            await alice.wait_connected(10 * UNIT_S)
            async with Api(server.url) as operator:
                posted = await operator.post_notice(ADMIN, "Wartung um 22 Uhr", "warning")
            live = await next_notice(alice)
            assert (live.id, live.text, live.level) == (posted.id, "Wartung um 22 Uhr", "warning")
        async with Client(tmp_path / "bob", options=FAST) as bob:
            later = await next_notice(bob)
            assert later.id == posted.id
    finally:
        server.stop()
