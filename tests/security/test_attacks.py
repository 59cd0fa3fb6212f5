"""Attacks on one node, each while two well-behaved clients keep messaging each other:
a slowloris, a client that never reads, and a flood of 5,000 frames a second from one
device. Each test prints the well-behaved round trip (send -> arrival) and the
server's resident memory, and asserts the node stayed responsive and bounded.

Loopback only, bounded in time and count (each well under 30 s). Set
``TAUBE_ATTACK_SECONDS`` to attack for longer (the default is a few seconds).
Reproduce the figures of docs/security.md with:
``pytest -q -s tests/security/test_attacks.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import pytest

from taube.protocol.frames import Error, Message, Send, Sent, encode_frame
from taube.protocol.ids import uuid7
from tests.serverproc import UNIT_S, ServerProcess
from tests.wire import Account, Wire, connect, register

ATTACK_S = float(os.environ.get("TAUBE_ATTACK_SECONDS", "4"))
P99_BOUND_S = 1.0 * UNIT_S
RSS_GROWTH_BOUND_MIB = 200


def rss_mib(server: ServerProcess) -> float:
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Probe:
    """Alice sends to Bob as a person would (every 50 ms) and times each arrival."""

    alice: Wire
    bob: Wire
    latencies: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)

    async def run(self, server: ServerProcess, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await self.alice.send("@bob", b"hello")
            await self.bob.messages(1, timeout=10)
            self.latencies.append(time.perf_counter() - started)
            await self.alice.until(Sent, timeout=10)
            self.rss.append(rss_mib(server))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def report(self, name: str, baseline_mib: float, extra: str) -> str:
        line = (
            f"[{name}] well-behaved round trip over {len(self.latencies)} messages: "
            f"p50 {self.quantile(0.5) * 1000:.1f} ms, p99 {self.quantile(0.99) * 1000:.1f} ms, "
            f"max {max(self.latencies) * 1000:.1f} ms; server RSS {baseline_mib:.0f} MiB before, "
            f"{max(self.rss):.0f} MiB peak; {extra}"
        )
        print("\n" + line)
        return line


@contextlib.asynccontextmanager
async def node(
    tmp_path: Path, limits: dict[str, object], rate: dict[str, object] | None = None
) -> AsyncIterator[tuple[ServerProcess, Probe, aiohttp.ClientSession]]:
    settings = {"limits": limits, "rate": rate or {}}
    server = ServerProcess(tmp_path / "s", settings=settings).start()
    try:
        async with aiohttp.ClientSession() as session:
            alice = await register(session, server.url, "alice")
            bob = await register(session, server.url, "bob")
            probe = Probe(
                await connect(session, server.ws_url, alice.token),
                await connect(session, server.ws_url, bob.token),
            )
            yield server, probe, session
    finally:
        server.stop()


async def under_attack(
    server: ServerProcess, probe: Probe, attack: Callable[[asyncio.Event], Awaitable[str]]
) -> tuple[float, str]:
    """Run the probe alone for a moment, then together with ``attack`` (which returns a
    summary once ``stop`` is set); the RSS before the attack and the summary."""
    stop = asyncio.Event()
    warmup = asyncio.create_task(probe.run(server, stop))
    await asyncio.sleep(0.5)
    stop.set()
    await warmup
    probe.latencies.clear()
    baseline = rss_mib(server)
    stop = asyncio.Event()
    probing = asyncio.create_task(probe.run(server, stop))
    attacking = asyncio.create_task(attack(stop))
    await asyncio.sleep(ATTACK_S)
    stop.set()
    summary = await attacking
    await probing
    return baseline, summary


class Flag(Protocol):
    def is_set(self) -> bool: ...


def in_process(
    attack: Callable[[Flag], str], tally: dict[str, Any]
) -> Callable[[asyncio.Event], Awaitable[str]]:
    """Run an attacker in a forked process with its own event loop (and its own GIL:
    the probe's latency is then the server's, not the test process's). Its ``tally``
    comes back into the parent's dict."""

    async def run(stop: asyncio.Event) -> str:
        context = multiprocessing.get_context("fork")
        flag = context.Event()
        receiver, sender = context.Pipe(duplex=False)

        def child() -> None:
            summary = attack(flag)
            sender.send((summary, tally))

        process = context.Process(target=child, daemon=True)
        process.start()
        await stop.wait()
        flag.set()
        ready = await asyncio.to_thread(receiver.poll, 30 * UNIT_S)
        assert ready, "the attacker did not stop"
        summary, counted = receiver.recv()
        tally.update(counted)
        await asyncio.to_thread(process.join, 10 * UNIT_S)
        return str(summary)

    return run


# ---------------------------------------------------------------- slowloris


async def test_slowloris(tmp_path: Path) -> None:
    limits = {"handshake_timeout_s": 2.0, "max_connections_per_ip": 200}
    async with node(tmp_path, limits) as (server, probe, _):
        stats: dict[str, Any] = {"opened": 0, "refused": 0, "cut": 0, "longest": 0.0}

        async def one(stop: Flag) -> None:
            while not stop.is_set():
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", server.port, local_addr=("127.0.0.2", 0)
                )
                stats["opened"] += 1
                opened = time.monotonic()
                try:
                    for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000:
                        if stop.is_set() or reader.at_eof():
                            break
                        if reader._buffer.startswith(b"HTTP/1.1 429"):
                            stats["refused"] += 1
                            break
                        writer.write(bytes([byte]))
                        await writer.drain()
                        await asyncio.sleep(0.1)
                except ConnectionError:
                    stats["cut"] += 1
                else:
                    if reader.at_eof():
                        stats["cut"] += 1
                stats["longest"] = max(stats["longest"], time.monotonic() - opened)
                writer.close()

        def attack(stop: Flag) -> str:
            async def main() -> None:
                await asyncio.gather(*(one(stop) for _ in range(300)), return_exceptions=True)

            asyncio.run(main())
            return (
                f"{stats['opened']} slow sockets opened from one address, "
                f"{stats['refused']} refused (over 200 per address), "
                f"longest held {stats['longest']:.1f} s"
            )

        baseline, summary = await under_attack(server, probe, in_process(attack, stats))
        probe.report("slowloris", baseline, summary)
        assert probe.quantile(0.99) < P99_BOUND_S
        assert stats["longest"] < 2.0 + 2.0 * UNIT_S  # the handshake timeout cut them
        assert max(probe.rss) - baseline < RSS_GROWTH_BOUND_MIB


# ---------------------------------------------------------------- a client that never reads


async def test_client_that_never_reads(tmp_path: Path) -> None:
    limits = {"slow_reader_timeout_s": 2.0}
    async with node(tmp_path, limits) as (server, probe, session):
        carol = await register(session, server.url, "carol")
        mallory = await register(session, server.url, "mallory")
        # aiohttp stops reading the socket once ~64 KiB wait in its queue: from now on
        # the kernel buffers fill, then the server's.
        victim = await connect(session, server.ws_url, carol.token)
        flooder = await connect(session, server.ws_url, mallory.token)
        payload = os.urandom(60 * 1024)
        sent = 0

        async def attack(stop: asyncio.Event) -> str:
            nonlocal sent
            while not stop.is_set() and "slow reader closed" not in server.log():
                for _ in range(10):
                    await flooder.send_frame(Send(id=uuid7(), to="@carol", payload=payload))
                await flooder.sent(10, timeout=20)
                sent += 10
                await asyncio.sleep(0.05)  # ~10 MiB/s: a flood, not a storage benchmark
            return f"{sent} messages of 60 KiB ({sent * 60 / 1024:.0f} MiB) sent to the non-reader"

        baseline, summary = await under_attack(server, probe, attack)
        deadline = time.monotonic() + 15 * UNIT_S
        while "slow reader closed" not in server.log() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        assert "slow reader closed" in server.log()
        # Now read what it was sent: a close frame with 4029 ends it.
        got = 0
        while True:
            msg = await victim.ws.receive(timeout=10 * UNIT_S)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            got += 1
        probe.report(
            "never reads",
            baseline,
            f"{summary}; disconnected with close code {victim.ws.close_code} after {got} frames",
        )
        assert victim.ws.close_code == 4029
        assert probe.quantile(0.99) < P99_BOUND_S
        assert max(probe.rss) - baseline < RSS_GROWTH_BOUND_MIB


# ---------------------------------------------------------------- a flood of frames


async def test_flood_of_5000_frames_per_second(tmp_path: Path) -> None:
    # The node's defaults: 200 frames/s a connection (burst 1,000), and 50 sends/s a
    # device (burst 500) whichever connection they come on ([rate], server/limits.py).
    limits = {"frames_per_s": 200, "frame_burst": 1000}
    rate = {"sends_per_s": 50, "sends_burst": 500}
    async with node(tmp_path, limits, rate) as (server, probe, session):
        dave = await register(session, server.url, "dave")
        mallory = await register(session, server.url, "mallory")
        counts: dict[str, Any] = {"frames": 0, "sent": 0, "limited": 0, "closes": 0}
        counts["closed_with"] = set()

        def attack(stop: Flag) -> str:
            async def main() -> None:
                async with aiohttp.ClientSession() as s:
                    while not stop.is_set():
                        await flood_once(s, mallory, stop)

            asyncio.run(main())
            return (
                f"{counts['frames']} frames sent at 5,000/s: {counts['sent']} accepted, "
                f"{counts['limited']} answered rate.limited, flooder closed "
                f"{counts['closes']} times (codes {sorted(counts['closed_with'])})"
            )

        async def flood_once(s: aiohttp.ClientSession, who: Account, stop: Flag) -> None:
            wire = await connect(s, server.ws_url, who.token)

            async def drain() -> None:
                async for msg in wire.ws:
                    if '"sent"' in msg.data:
                        counts["sent"] += 1
                    elif "rate.limited" in msg.data:
                        counts["limited"] += 1

            reader = asyncio.create_task(drain())
            tick = time.perf_counter()
            try:
                while not stop.is_set() and not wire.ws.closed:
                    for _ in range(50):  # 50 every 10 ms: 5,000 a second
                        frame = Send(id=uuid7(), to="@dave", payload=b"x" * 64)
                        await wire.ws.send_str(encode_frame(frame).decode())
                        counts["frames"] += 1
                    tick += 0.01
                    await asyncio.sleep(max(0.0, tick - time.perf_counter()))
            except ConnectionError:
                pass
            if wire.ws.closed or wire.ws.close_code is not None:  # the server closed it
                counts["closes"] += 1
                counts["closed_with"].add(wire.ws.close_code)
            await wire.ws.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader, 5)

        baseline, summary = await under_attack(server, probe, in_process(attack, counts))
        probe.report("5,000 frames/s", baseline, summary)
        assert probe.quantile(0.99) < P99_BOUND_S
        assert max(probe.rss) - baseline < RSS_GROWTH_BOUND_MIB
        assert counts["limited"] > 0 or counts["closes"] > 0
        assert counts["sent"] < counts["frames"] / 2
        # The victim of the flood can still read its inbox.
        inbox = await connect(session, server.ws_url, dave.token)
        assert isinstance(await inbox.next(timeout=10), Message | Error)
        await inbox.close()


@pytest.fixture(autouse=True)
def _bounded() -> None:
    assert ATTACK_S <= 120, "keep attacks bounded"
