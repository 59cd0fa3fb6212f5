"""A node protects itself: admission control with retry-after, graceful drain on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest

from taube.protocol.frames import Error
from tests.serverproc import UNIT_S, ServerProcess
from tests.wire import PASSWORD, connect, http, register


async def test_login_flood_gets_overloaded_with_retry_after(tmp_path: Path, session) -> None:
    server = ServerProcess(tmp_path / "s", settings={"admission": {"max_logins_per_s": 2}}).start()
    try:
        statuses = []
        for i in range(4):
            async with session.post(
                f"{server.url}/v1/accounts", json={"handle": f"user{i}", "password": PASSWORD}
            ) as r:
                body = await r.json(content_type=None)
                statuses.append((r.status, body.get("code")))
                if r.status == 503:
                    assert int(r.headers["Retry-After"]) >= 1
        assert statuses[:2] == [(201, None), (201, None)]
        assert (503, "server.overloaded") in statuses[2:]
    finally:
        server.stop()


async def test_session_flood_gets_overloaded_then_recovers(tmp_path: Path, session) -> None:
    server = ServerProcess(
        tmp_path / "s", settings={"admission": {"max_sessions_per_s": 1}}
    ).start()
    try:
        alice = await register(session, server.url, "alice")
        first = await connect(session, server.ws_url, alice.token)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(server.ws_url)
        assert refused.value.status == 503
        assert refused.value.headers is not None
        assert int(refused.value.headers["Retry-After"]) >= 1
        await first.close()
        # The node is fine: the first connection worked and a patient client gets in.
        await asyncio.sleep(1.1 * UNIT_S)
        again = await connect(session, server.ws_url, alice.token)
        await again.close()
    finally:
        server.stop()


async def test_sigterm_drains_tells_clients_to_move_and_keeps_commits(
    tmp_path: Path, session
) -> None:
    server = ServerProcess(tmp_path / "s").start()
    alice = await register(session, server.url, "alice")
    bob = await register(session, server.url, "bob")
    a = await connect(session, server.ws_url, alice.token)
    ids = [await a.send("@bob", str(i).encode()) for i in range(50)]
    await a.sent(50)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    error: Error = await a.error()
    assert error.code == "server.draining"
    await a.ws.receive(timeout=5 * UNIT_S)
    assert a.ws.close_code == 1012
    assert server.proc.wait(10) == 0
    assert "draining" in server.log()
    server.start()
    b = await connect(session, server.ws_url, bob.token)
    assert [m.id for m in await b.messages(50)] == ids
    status, body = await http(session, "GET", f"{server.url}/readyz")
    assert (status, body["status"]) == (200, "ready")
    server.stop()
