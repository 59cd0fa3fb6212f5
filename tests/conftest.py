"""Shared fixtures: a real server process per test on a free loopback port, and the
external services of cluster mode (PostgreSQL, NATS).

Service tests find PostgreSQL at ``TAUBE_TEST_POSTGRES_DSN`` and NATS at
``TAUBE_TEST_NATS_URL`` (loopback defaults below). When a service is missing they
skip with the reason, except in CI (``CI=true``), where they fail: CI must never go
green by skipping the cluster tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import pytest

from tests.serverproc import STARTED, UNIT_S, ServerProcess, assert_clean_logs, free_port


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test a stale compiled hot path (``make compile``, Makefile): a compiled
    module takes precedence over its source at import, so the tests would run the code as
    it was at the last build, not as it is."""
    src = Path(__file__).resolve().parents[1] / "src"
    if not any((src / "taube").rglob("*.so")):
        return
    stamp = src / ".compiled"
    newest = max(p.stat().st_mtime for p in (src / "taube").rglob("*.py"))
    if not stamp.exists() or newest > stamp.stat().st_mtime:
        pytest.exit(
            "the compiled hot path is older than its source: run `make compile` "
            "(or `make clean-compiled` to test the source as it is)",
            returncode=2,
        )


POSTGRES_DSN = os.environ.get(
    "TAUBE_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
NATS_URL = os.environ.get("TAUBE_TEST_NATS_URL", "nats://127.0.0.1:4222")
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """Every request on a connection of its own, as a browser opens its WebSocket: a
    pooled keep-alive connection would carry the upgrade as its second request, which
    aiohttp serves, while the clients' upgrades are taken at the edge (direct_ws)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        yield s


@pytest.fixture(autouse=True)
def _server_logs_are_clean() -> Iterator[None]:
    """After each test, the logs of the servers it started hold no asyncio "exception
    was never retrieved" (set up before, so torn down after, the fixtures that stop
    those servers)."""
    first = len(STARTED)
    yield
    started = STARTED[first:]
    del STARTED[first:]
    assert_clean_logs(*started)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "server").start()
    try:
        yield proc
    finally:
        proc.stop()


# ---------------------------------------------------------------- external services


def require_service(name: str, host: str, port: int) -> None:
    """Skip the calling test (fail it when CI=true) unless ``host:port`` accepts TCP."""
    try:
        with socket.create_connection((host, port), timeout=1.0 * UNIT_S):
            return
    except OSError as exc:
        reason = f"{name} is not reachable at {host}:{port} ({exc.strerror or exc})"
    if IN_CI:
        pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
    pytest.skip(f"{reason}; start it to run this test (with CI=true this fails)")


def _require_url(name: str, url: str, default_port: int) -> str:
    parts = urlsplit(url)
    require_service(name, parts.hostname or "127.0.0.1", parts.port or default_port)
    return url


def postgres_dsn() -> str:
    """The test PostgreSQL DSN, or skip/fail (see ``require_service``)."""
    return _require_url("PostgreSQL", POSTGRES_DSN, 5432)


def nats_url() -> str:
    """The test NATS URL, or skip/fail (see ``require_service``)."""
    return _require_url("NATS", NATS_URL, 4222)


def fresh_name(kind: str = "t") -> str:
    """A random identifier for per-test isolation (schemas, subject prefixes)."""
    return f"{kind}_{secrets.token_hex(6)}"


async def drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=5 * UNIT_S)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL schema name for this test (created by the store that
    uses it); dropped with everything in it afterwards."""
    dsn = postgres_dsn()
    schema = fresh_name("t")
    try:
        yield schema
    finally:
        await drop_schema(dsn, schema)


def schema_dsn(dsn: str, schema: str) -> str:
    """``dsn`` with every session's search_path set to ``schema`` (libpq and asyncpg
    both pass ``options`` to PostgreSQL at connect)."""
    return f"{dsn}{'&' if '?' in dsn else '?'}options=-csearch_path%3D{schema}"


@contextlib.asynccontextmanager
async def two_nodes(
    folder: Path, settings: dict[str, dict[str, object]] | None = None
) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    """Two real nodes in cluster mode (one fresh PostgreSQL schema, the test NATS),
    started together; stopped, and the schema dropped, afterwards."""
    dsn, bus, schema = postgres_dsn(), nats_url(), fresh_name("nodes")
    conn = await asyncpg.connect(dsn, timeout=5 * UNIT_S)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    store = schema_dsn(dsn, schema)
    nodes = [
        ServerProcess(folder / f"n{i}", settings=settings, store=store, bus=bus, node=f"n{i}")
        for i in (1, 2)
    ]
    try:
        await asyncio.gather(*(asyncio.to_thread(n.start) for n in nodes))
        yield nodes[0], nodes[1]
    finally:
        for node in nodes:
            node.stop()
        await drop_schema(dsn, schema)


class TcpProxy:
    """A loopback TCP relay in front of a service: ``stop()`` cuts every connection and
    refuses new ones, ``start()`` listens again on the same port. Simulates an outage
    (or a restart) of the service without touching the real one."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def to_url(cls, url: str, default_port: int) -> TcpProxy:
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or default_port)

    def url(self, url: str) -> str:
        """``url`` with its host and port replaced by the proxy's."""
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)
        address = f"127.0.0.1:{self.port}"
        netloc[-1] = address
        return parts._replace(netloc="@".join(netloc)).geturl()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.transport.abort()
        self._writers.discard(sink)
