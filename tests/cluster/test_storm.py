"""A reconnect storm: every client of a dead node comes back at once, to one node.

Raw WebSocket clients (tests/wire.py's frames, many more than SDK clients could be
in one test process) first live on node 2, each with one message received and acked.
Node 2 is killed and all of them reconnect to node 1 at the same moment. Node 1 runs
admission control at a real rate: whoever is turned away gets HTTP 503
``server.overloaded`` with a Retry-After, waits that long and tries again (as the SDK
does). Node 1 must answer /healthz throughout, every client must be back (resuming
at its acked seq), and every connection must then work: one more message to each.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from taube.protocol.frames import Ack, Auth, Error, Message, Ready, encode_frame
from tests.cluster.conftest import SCALE, Cluster, Figures, MakeCluster, percentile
from tests.cluster.traffic import spread
from tests.conftest import fresh_name
from tests.serverproc import UNIT_S
from tests.wire import Account, Wire, connect, register

STORM_BOUND_S = 120.0
"""Kill to the last client back, asserted (the figure reported is the measured one)."""
HEALTH_EVERY_S = 0.1
HEALTH_TIMEOUT_S = 2.0


def ws(url: str) -> str:
    return url.replace("http://", "ws://") + "/v1/ws"


@dataclass
class StormStats:
    refused: int = 0
    """503 answers (admission control)."""
    refused_clients: set[str] = field(default_factory=set)
    retry_after: list[int] = field(default_factory=list)
    other_failures: list[str] = field(default_factory=list)
    back_after: list[float] = field(default_factory=list)


async def come_back(
    session: aiohttp.ClientSession,
    url: str,
    account: Account,
    last_seq: int,
    since: float,
    stats: StormStats,
) -> Wire:
    """Connect and authenticate, honouring Retry-After on 503 (as the SDK does when a
    node is alone); returns the ready connection."""
    failures = 0
    while True:
        try:
            ws_conn = await session.ws_connect(url, max_msg_size=0)
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status != 503 or exc.headers is None:
                raise
            stats.refused += 1
            stats.refused_clients.add(account.handle)
            wait = int(exc.headers["Retry-After"])
            assert wait >= 1
            stats.retry_after.append(wait)
            await asyncio.sleep(wait)
            continue
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            # Not expected from a node that holds up; counted, and the test checks.
            stats.other_failures.append(repr(exc))
            failures += 1
            await asyncio.sleep(random.uniform(0, min(5.0, 0.25 * 2**failures)))
            continue
        await ws_conn.send_str(encode_frame(Auth(token=account.token, last_seq=last_seq)).decode())
        wire = Wire(ws_conn, Ready(handle="", device=0, last_seq=0, server_time_ms=0,
                                   max_payload_bytes=0))  # fmt: skip
        try:
            frame = await wire.next(30)
        except (ConnectionError, TimeoutError) as exc:
            stats.other_failures.append(f"auth: {exc!r}")
            await ws_conn.close()
            continue
        if isinstance(frame, Error):
            stats.other_failures.append(f"auth: {frame.code}")
            await ws_conn.close()
            await asyncio.sleep(1)
            continue
        assert isinstance(frame, Ready), frame
        wire.ready = frame
        wire.frames.clear()
        stats.back_after.append(time.monotonic() - since)
        return wire


async def watch_health(cluster: Cluster, index: int, stop: asyncio.Event) -> list[float]:
    """/healthz latencies while ``stop`` is not set; a failure or timeout is ``inf``."""
    latencies: list[float] = []
    while not stop.is_set():
        asked = time.monotonic()
        status = await cluster.status(index, "/healthz", timeout=HEALTH_TIMEOUT_S)
        latencies.append(time.monotonic() - asked if status == 200 else float("inf"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), HEALTH_EVERY_S)
    return latencies


async def one_message_each(sender: Wire, wires: list[Wire], text: bytes) -> None:
    """The sender sends one message to every client; each gets it and acks it."""
    ids = [await sender.send(f"@{w.ready.handle}", text) for w in wires]
    sent = await sender.sent(len(ids), timeout=60)
    assert [s.id for s in sent] == ids

    async def receive(wire: Wire, message_id: str) -> None:
        frame = await wire.until(Message, timeout=60)
        assert frame.id == message_id
        await wire.send_frame(Ack(seq=frame.seq))

    await asyncio.gather(*(receive(w, i) for w, i in zip(wires, ids, strict=True)))


async def test_reconnect_storm_on_one_node(
    make_cluster: MakeCluster, tmp_path: Path, figures: Figures
) -> None:
    count, rate = SCALE.storm_clients, SCALE.storm_sessions_per_s
    cluster = await make_cluster(
        node_settings={0: {"admission": {"max_sessions_per_s": rate, "max_handshakes": 256}}}
    )
    target, doomed, other = cluster.urls
    tag = fresh_name("s")
    # One session for every socket; aiohttp's default pool would cap it at 100.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        gate = asyncio.Semaphore(32)

        async def join(i: int) -> Account:
            async with gate:
                return await register(session, doomed if i % 2 else other, f"{tag}_{i}")

        accounts = await asyncio.gather(*(join(i) for i in range(count)))
        sender_account = await register(session, other, f"{tag}_sender")
        sender = await connect(session, ws(other), sender_account.token)

        async def settle_on_doomed(account: Account) -> Wire:
            async with gate:
                return await connect(session, ws(doomed), account.token)

        before = await asyncio.gather(*(settle_on_doomed(a) for a in accounts))
        await one_message_each(sender, before, b"before the storm")

        stats = StormStats()
        stop_health = asyncio.Event()
        health = asyncio.create_task(watch_health(cluster, 0, stop_health))
        try:
            await asyncio.sleep(0.5)  # a few healthy samples first
            killed_at = time.monotonic()
            cluster.kill(1)
            after = await asyncio.wait_for(
                asyncio.gather(
                    *(come_back(session, ws(target), a, 1, killed_at, stats) for a in accounts)
                ),
                STORM_BOUND_S * UNIT_S,
            )
            storm_s = time.monotonic() - killed_at
        finally:
            stop_health.set()
            latencies = await health
        assert all(w.ready.last_seq == 1 for w in after), "a client did not resume at its ack"
        await one_message_each(sender, after, b"after the storm")

    node_alive = cluster.nodes[0].proc is not None and cluster.nodes[0].proc.poll() is None
    log = cluster.nodes[0].log()
    answered = [x for x in latencies if x != float("inf")]
    figures.record(
        "reconnect storm",
        f"{count} raw WebSocket clients of a killed node reconnecting at once to one node "
        f"(admission {rate:.0f} sessions/s, 256 handshakes): all back and resumed in "
        f"{storm_s:.2f} s ({spread(stats.back_after)}); {stats.refused} answers were 503 "
        f"server.overloaded to {len(stats.refused_clients)} clients (Retry-After "
        f"{min(stats.retry_after, default=0)}-{max(stats.retry_after, default=0)} s), "
        f"{len(stats.other_failures)} other failures; /healthz answered "
        f"{len(answered)}/{len(latencies)} probes, slowest {max(latencies):.3f} s",
        clients=count,
        sessions_per_s=rate,
        all_back_s=round(storm_s, 3),
        back_p50_s=round(percentile(stats.back_after, 50), 3),
        back_p99_s=round(percentile(stats.back_after, 99), 3),
        refused_503=stats.refused,
        refused_clients=len(stats.refused_clients),
        other_failures=len(stats.other_failures),
        healthz_probes=len(latencies),
        healthz_failed=len(latencies) - len(answered),
        healthz_slowest_s=round(max(latencies), 3),
    )
    assert node_alive
    assert "Traceback" not in log, log[-3000:]
    assert len(answered) == len(latencies), "node 1 stopped answering /healthz"
    assert stats.other_failures == [], stats.other_failures[:10]
    assert stats.refused > 0, "admission control never pushed back: the storm was no storm"
    assert len(set(stats.retry_after)) > 1, "one Retry-After for all: they come back as one wave"
