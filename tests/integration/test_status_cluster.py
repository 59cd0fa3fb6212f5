"""Automatic incidents from the canaries, across three real nodes on PostgreSQL and
NATS: kill -9 of one node opens an incident within 60 s (the node shown down), a
client on another node hears the notice, and after a restart the incident resolves
by itself."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import pytest

from taube.protocol.frames import Notice
from tests.conftest import nats_url, postgres_dsn
from tests.serverproc import UNIT_S, ServerProcess
from tests.wire import connect, register

pytestmark = pytest.mark.slow


def schema_dsn(dsn: str, schema: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}options=-csearch_path%3D{schema}"


@pytest.fixture
async def nodes(tmp_path: Path, pg_schema: str) -> AsyncIterator[list[ServerProcess]]:
    conn = await asyncpg.connect(postgres_dsn(), timeout=5 * UNIT_S)
    try:
        await conn.execute(f'CREATE SCHEMA "{pg_schema}"')
    finally:
        await conn.close()
    dsn, bus = schema_dsn(postgres_dsn(), pg_schema), nats_url()
    key = base64.b64encode(os.urandom(32)).decode()
    settings: dict[str, dict[str, object]] = {
        "status": {
            "signing_key": key,
            "canary_interval_s": 1.0,
            "probe_timeout_s": 3.0,
            "recover_after_s": 5.0,
        }
    }
    procs = [
        ServerProcess(tmp_path / name, settings=settings, store=dsn, bus=bus, node=name)
        for name in ("n1", "n2", "n3")
    ]
    await asyncio.gather(*(asyncio.to_thread(p.start) for p in procs))
    try:
        yield procs
    finally:
        for p in procs:
            p.stop()


async def status(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with session.get(f"{base}/status.json") as response:
        return dict(await response.json())


async def wait_for(what: str, timeout: float, check: Any) -> Any:
    deadline = time.monotonic() + timeout * UNIT_S
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.5)
    raise AssertionError(f"not within {timeout * UNIT_S:.0f} s: {what}")


async def test_a_killed_node_opens_an_incident_that_resolves_after_restart(
    nodes: list[ServerProcess],
) -> None:
    async with aiohttp.ClientSession() as session:
        base = nodes[0].url

        async def all_up() -> bool:
            doc = await status(session, base)
            states = {c["id"]: c["status"] for c in doc["components"]}
            nodes_ok = all(states.get(f"node:{n}") == "operational" for n in ("n1", "n2", "n3"))
            return nodes_ok and states["send"] == "operational"

        await wait_for("three nodes measure each other", 40, all_up)
        bob = await register(session, nodes[2].url, "bob")
        wire = await connect(session, nodes[2].ws_url, bob.token)

        nodes[1].kill()
        killed = time.monotonic()

        async def incident() -> dict[str, Any] | None:
            doc = await status(session, base)
            states = {c["id"]: c["status"] for c in doc["components"]}
            found = [i for i in doc["incidents"]["open"] if i["automatic"]]
            if found and states["node:n2"] == "major_outage" and doc["verdict"] != "operational":
                return found[0]
            return None

        opened = await wait_for("an automatic incident for n2", 60, incident)
        assert time.monotonic() - killed < 60 * UNIT_S
        assert "node:n2" in opened["components"]
        assert "n2" in opened["updates"][0]["text"]
        notice: Notice = await wire.until(Notice, timeout=10)
        assert "n2" in notice.text
        assert notice.signature

        await asyncio.to_thread(nodes[1].start)

        async def resolved() -> bool:
            doc = await status(session, base)
            done = [i for i in doc["incidents"]["recent"] if i["id"] == opened["id"]]
            return bool(done) and not [i for i in doc["incidents"]["open"] if i["automatic"]]

        await wait_for("the incident resolves by itself", 90, resolved)
        await wire.close()
