"""Cluster tests: three real server processes on one PostgreSQL database and one NATS server.

Each test gets a PostgreSQL schema of its own (chosen through the DSN's ``options``, so
the nodes run exactly as an operator would start them), fresh random handles (NATS
subjects embed them, so tests never ring each other's doorbells) and its own nodes on
free loopback ports. Outages are simulated with ``TcpProxy`` between the nodes and a
service; the real PostgreSQL and NATS are never touched.

``make test`` runs short versions (seconds of traffic, tens of clients); with
``TAUBE_CHAOS_LONG=1`` (``make chaos``) the same tests run at the issue's scale: 200
clients, 30 s of traffic, 2,000 clients in the reconnect storm. The figures the tests
measure are collected in one JSON file and printed at the end of the run (whether or
not ``-s`` is given), so they can be quoted.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import pytest

from tests.conftest import (
    NATS_URL,
    TcpProxy,
    drop_schema,
    fresh_name,
    nats_url,
    postgres_dsn,
    schema_dsn,
)
from tests.serverproc import UNIT_S, ServerProcess

LONG = os.environ.get("TAUBE_CHAOS_LONG", "").strip().lower() not in {"", "0", "false", "no"}


@dataclass(frozen=True)
class Scale:
    """How big each scenario is: short for ``make test``, long for ``make chaos``."""

    name: str
    clients: int
    """SDK clients under sustained traffic (kill -9, outages, rolling restart)."""
    traffic_s: float
    """Seconds of traffic around the fault."""
    send_interval_s: float
    """Each client sends one message this often."""
    outage_s: float
    """How long PostgreSQL or NATS stays cut off."""
    storm_clients: int
    storm_sessions_per_s: float
    """The storm node's admission rate (``max_sessions_per_s``)."""


SHORT = Scale("short", clients=30, traffic_s=8.0, send_interval_s=0.25, outage_s=3.0,
              storm_clients=400, storm_sessions_per_s=150.0)  # fmt: skip
LONG_SCALE = Scale("long", clients=200, traffic_s=30.0, send_interval_s=0.5, outage_s=10.0,
                   storm_clients=2000, storm_sessions_per_s=500.0)  # fmt: skip
SCALE = LONG_SCALE if LONG else SHORT

FIGURES_KEY = pytest.StashKey["Figures"]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cluster: three real nodes on PostgreSQL and NATS (tests/cluster)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.cluster)


# ---------------------------------------------------------------- figures


class Figures:
    """What the cluster tests measured, one entry per test: written to a JSON file as
    they come in and printed in the terminal summary."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}

    def record(self, test: str, summary: str, **values: Any) -> None:
        self.entries[test] = {"summary": summary, "scale": SCALE.name, **values}
        self.path.write_text(json.dumps(self.entries, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="session")
def figures(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Figures:
    target = os.environ.get("TAUBE_CHAOS_FIGURES")
    path = Path(target) if target else tmp_path_factory.getbasetemp() / "cluster-figures.json"
    collected = Figures(path)
    request.config.stash[FIGURES_KEY] = collected
    return collected


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    collected = config.stash.get(FIGURES_KEY, None)
    if collected is None or not collected.entries:
        return
    terminalreporter.section(f"cluster figures ({SCALE.name} run)")
    for test, entry in sorted(collected.entries.items()):
        terminalreporter.write_line(f"{test}: {entry['summary']}")
    terminalreporter.write_line(f"(JSON: {collected.path})")


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least 1
    return ordered[int(rank) - 1]


async def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``condition`` until it holds; the seconds that took. Fails the test with
    ``what`` after ``timeout`` (scaled by UNIT_S)."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout * UNIT_S):
            # Polled: the conditions depend on other processes, not on events of ours.
            while True:
                if condition():
                    break
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not within {timeout * UNIT_S:.0f} s: {what}") from None
    return time.monotonic() - started


# ---------------------------------------------------------------- the cluster


@dataclass
class Cluster:
    """Three nodes sharing a schema; optionally behind proxies: one to PostgreSQL for
    all nodes, and one to NATS per node (so that nodes can get the bus back one by one,
    as after a NATS restart they notice at different moments)."""

    schema: str
    nodes: list[ServerProcess]
    store_proxy: TcpProxy | None = None
    bus_proxies: list[TcpProxy] = field(default_factory=list)
    http: aiohttp.ClientSession = field(default_factory=aiohttp.ClientSession)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    async def start(self, *indexes: int) -> None:
        """Start these nodes (all by default) in threads, so that the proxies on this
        event loop keep relaying while they connect, then wait until each is ready."""
        chosen = indexes or tuple(range(len(self.nodes)))
        await asyncio.gather(*(asyncio.to_thread(self.nodes[i].start) for i in chosen))
        await asyncio.gather(*(self.wait_ready(i) for i in chosen))

    async def status(self, index: int, path: str = "/readyz", timeout: float = 5.0) -> int:
        """The HTTP status of ``path`` on a node, or 0 if it does not answer in time."""
        try:
            async with self.http.get(
                f"{self.nodes[index].url}{path}",
                timeout=aiohttp.ClientTimeout(total=timeout * UNIT_S),
            ) as response:
                return response.status
        except (aiohttp.ClientError, OSError, TimeoutError):
            return 0

    async def wait_ready(self, index: int, timeout: float = 20.0) -> float:
        """Seconds until the node's /readyz answered 200 (fails after ``timeout``)."""
        started = time.monotonic()
        async with asyncio.timeout(timeout * UNIT_S):
            while True:
                if await self.status(index) == 200:
                    return time.monotonic() - started
                await asyncio.sleep(0.05)

    def kill(self, index: int) -> None:
        self.nodes[index].kill()

    async def drain(self, index: int, timeout: float = 20.0) -> tuple[int, float]:
        """SIGTERM (graceful drain); the exit status and the seconds it took to exit."""
        proc = self.nodes[index].proc
        assert proc is not None
        assert proc.poll() is None
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, timeout * UNIT_S)
        return code, time.monotonic() - started

    async def close(self) -> None:
        # Nothing here is worth a graceful stop, and a node cut off from its store
        # would only wait out its timeouts.
        await asyncio.gather(*(asyncio.to_thread(node.kill) for node in self.nodes))
        for proxy in (self.store_proxy, *self.bus_proxies):
            if proxy is not None:
                await proxy.stop()
        await self.http.close()

    def logs(self) -> str:
        return "\n".join(
            f"--- node n{i + 1} ({node.url}), last lines of {node.log_path}:\n"
            + "\n".join(node.log().splitlines()[-40:])
            for i, node in enumerate(self.nodes)
            if node.log_path.exists()
        )


MakeCluster = Callable[..., Awaitable[Cluster]]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
async def make_cluster(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[MakeCluster]:
    """``await make_cluster(store_proxy=False, bus_proxy=False, settings=None,
    node_settings=None)``: three started, ready nodes in a fresh schema. Nodes are
    killed, proxies stopped and the schema dropped afterwards, whatever happened."""
    dsn = postgres_dsn()
    nats_url()
    made: list[Cluster] = []

    async def make(
        *,
        store_proxy: bool = False,
        bus_proxy: bool = False,
        settings: dict[str, dict[str, object]] | None = None,
        node_settings: dict[int, dict[str, dict[str, object]]] | None = None,
    ) -> Cluster:
        schema = fresh_name("cluster")
        conn = await asyncpg.connect(dsn, timeout=5 * UNIT_S)
        try:
            await conn.execute(f'CREATE SCHEMA "{schema}"')
        finally:
            await conn.close()
        cluster = Cluster(schema, [])
        made.append(cluster)
        store_url = dsn
        if store_proxy:
            cluster.store_proxy = await TcpProxy.to_url(dsn, 5432).start()
            store_url = cluster.store_proxy.url(dsn)
        for i in range(3):
            bus_url = NATS_URL
            if bus_proxy:
                proxy = await TcpProxy.to_url(NATS_URL, 4222).start()
                cluster.bus_proxies.append(proxy)
                bus_url = proxy.url(NATS_URL)
            merged = {k: dict(v) for k, v in (settings or {}).items()}
            for section, values in (node_settings or {}).get(i, {}).items():
                merged.setdefault(section, {}).update(values)
            cluster.nodes.append(
                ServerProcess(
                    tmp_path / schema / f"n{i + 1}",
                    settings=merged,
                    store=schema_dsn(store_url, schema),
                    bus=bus_url,
                    node=f"n{i + 1}",
                )
            )
        await cluster.start()
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            if request.node.stash.get(_FAILED, False):
                print(cluster.logs())
            await cluster.close()
            await drop_schema(dsn, cluster.schema)
