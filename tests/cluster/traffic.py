"""Sustained traffic through the SDK over three nodes, and the exactly-once check after it.

A ``Ring`` of N SDK clients: client i first connects to node i % 3 and sends to client
i + 1, which lives on the next node, so every message crosses nodes (commit on one
node, doorbell over NATS, push from another). Each client knows all three URLs, in an
order that starts with its home node and alternates which survivor comes next, so the
clients of a lost node spread over the other two by themselves.

After the traffic, ``settle`` flushes every outbox (every message gets its ``sent``),
sends one last marker per client and waits for the markers. Messages from one sender
are committed in order, so when a recipient has the marker it has everything its
sender committed before; the check is then exact: the ids a recipient got from its
sender, in arrival order, equal the ids the sender queued, plus the marker. A loss, a
duplicate or a reordering all fail it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from taube.client import (
    Client,
    ClientOptions,
    Connected,
    Disconnected,
    Message,
    Sent,
    register,
)
from tests.cluster.conftest import Cluster, percentile
from tests.conftest import fresh_name
from tests.serverproc import UNIT_S

PASSWORD = "correct horse battery"
MARKER = "marker"


@dataclass
class Received:
    sender: str
    id: str
    text: str
    at: float
    """time.time() when the application got it."""
    sent_at_ms: int
    """The server's commit time."""

    @property
    def delay_s(self) -> float:
        return self.at - self.sent_at_ms / 1000


@dataclass
class Chatter:
    """One SDK client of the ring and everything it saw."""

    handle: str
    profile: Path
    servers: list[str]
    peer: str = ""
    client: Client | None = None
    queued: list[str] = field(default_factory=list)
    """Message ids in the order they were queued (all to ``peer``)."""
    marker: str = ""
    acked: set[str] = field(default_factory=set)
    duplicate_acks: int = 0
    """``sent`` answers that said "duplicate": a resend after a failover, recognised."""
    received: list[Received] = field(default_factory=list)
    connects: list[tuple[float, str]] = field(default_factory=list)
    disconnects: list[tuple[float, str, str]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    consumer: asyncio.Task[None] | None = None

    @property
    def home(self) -> str:
        return self.servers[0]

    def reconnected_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` (time.monotonic) to the first connect after it."""
        later = [at for at, _ in self.connects if at > moment]
        return min(later) - moment if later else None

    async def consume(self) -> None:
        assert self.client is not None
        async for event in self.client.events():
            match event:
                case Message():
                    text = event.text or ""
                    got = Received(event.sender, event.id, text, time.time(), event.sent_at_ms)
                    self.received.append(got)
                case Sent():
                    self.acked.add(event.id)
                    self.duplicate_acks += event.duplicate
                case Connected():
                    self.connects.append((time.monotonic(), event.server))
                case Disconnected():
                    self.disconnects.append((time.monotonic(), event.server, event.reason))
            self.changed.set()

    def from_sender(self, sender: str) -> list[str]:
        return [r.id for r in self.received if r.sender == sender]


@dataclass
class Check:
    """The outcome of ``Ring.settle``: what was sent and what arrived."""

    sent: int
    received: int
    lost: int
    duplicated: int
    out_of_order: int
    unexpected: int
    """Ids from a sender that it never queued."""
    settle_s: float

    def assert_exactly_once(self) -> None:
        faults = (self.lost, self.duplicated, self.out_of_order, self.unexpected)
        assert faults == (0, 0, 0, 0), self


class Ring:
    def __init__(self, cluster: Cluster, root: Path, count: int) -> None:
        self.cluster = cluster
        tag = fresh_name("r")
        urls = cluster.urls
        self.chatters: list[Chatter] = []
        for i in range(count):
            home = i % len(urls)
            # Alternate the order of the survivors: a lost node's clients split in two.
            rest = [urls[(home + 1) % 3], urls[(home + 2) % 3]]
            if (i // 3) % 2:
                rest.reverse()
            self.chatters.append(Chatter(f"{tag}_{i}", root / f"c{i}", [urls[home], *rest]))
        for i, chatter in enumerate(self.chatters):
            chatter.peer = self.chatters[(i + 1) % count].handle
        self._senders: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()

    def sender_of(self, chatter: Chatter) -> Chatter:
        i = self.chatters.index(chatter)
        return self.chatters[i - 1]

    def on(self, url: str) -> list[Chatter]:
        """The clients connected to this node right now."""
        return [c for c in self.chatters if c.client is not None and c.client.server == url]

    async def open(self, options: ClientOptions | None = None) -> None:
        """Register every handle on its home node, open the clients, wait for all."""
        gate = asyncio.Semaphore(16)

        async def join(chatter: Chatter) -> None:
            async with gate:
                await register(
                    chatter.handle, PASSWORD, servers=chatter.home, profile=chatter.profile
                )

        await asyncio.gather(*(join(c) for c in self.chatters))
        for chatter in self.chatters:
            chatter.client = Client(chatter.profile, chatter.servers, options=options)
            await chatter.client.open()
            chatter.consumer = asyncio.create_task(chatter.consume())
        for chatter in self.chatters:
            assert chatter.client is not None
            await chatter.client.wait_connected(timeout=20 * UNIT_S)
            assert chatter.client.server == chatter.home

    async def close(self) -> None:
        self._stop.set()
        for task in self._senders:
            task.cancel()
        for chatter in self.chatters:
            if chatter.consumer is not None:
                chatter.consumer.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)
        for chatter in self.chatters:
            if chatter.consumer is not None:
                with contextlib.suppress(BaseException):
                    await chatter.consumer
            if chatter.client is not None:
                with contextlib.suppress(Exception):
                    await chatter.client.close()

    @contextlib.asynccontextmanager
    async def traffic(self, interval_s: float) -> AsyncIterator[None]:
        """Every client sends one message to its peer every ``interval_s`` (random
        phase) while the block runs."""
        self._stop.clear()
        self._senders = [asyncio.create_task(self._send_loop(c, interval_s)) for c in self.chatters]
        try:
            yield
        finally:
            self._stop.set()
            await asyncio.gather(*self._senders)
            self._senders = []

    async def _send_loop(self, chatter: Chatter, interval_s: float) -> None:
        assert chatter.client is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), random.uniform(0, interval_s))
        n = 0
        while not self._stop.is_set():
            n += 1
            chatter.queued.append(await chatter.client.send(f"@{chatter.peer}", f"m{n}"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval_s)

    async def settle(self, timeout: float = 60.0) -> Check:
        """Flush every outbox, send and await the markers, compare (see module doc)."""
        started = time.monotonic()
        async with asyncio.timeout(timeout * UNIT_S):
            await asyncio.gather(*(self._flush(c) for c in self.chatters))
            for chatter in self.chatters:
                assert chatter.client is not None
                chatter.marker = await chatter.client.send(f"@{chatter.peer}", MARKER)
            await asyncio.gather(*(self._await_marker(c) for c in self.chatters))
        settle_s = time.monotonic() - started
        sent = received = lost = duplicated = out_of_order = unexpected = 0
        for chatter in self.chatters:
            sender = self.sender_of(chatter)
            expected = [*sender.queued, sender.marker]
            got = chatter.from_sender(sender.handle)
            sent += len(expected)
            received += len(got)
            lost += len(set(expected) - set(got))
            duplicated += len(got) - len(set(got))
            unexpected += len(set(got) - set(expected))
            if got != expected and len(set(got)) == len(got) and set(got) == set(expected):
                out_of_order += 1
        return Check(sent, received, lost, duplicated, out_of_order, unexpected, settle_s)

    @staticmethod
    async def _flush(chatter: Chatter) -> None:
        assert chatter.client is not None
        await chatter.client.flush()
        assert chatter.client.pending() == []

    async def _await_marker(self, chatter: Chatter) -> None:
        sender = self.sender_of(chatter)
        while sender.marker not in chatter.from_sender(sender.handle):
            chatter.changed.clear()
            if chatter.consumer is not None and chatter.consumer.done():
                chatter.consumer.result()  # raises what stopped it
                raise AssertionError(f"{chatter.handle}: the event loop ended")
            await chatter.changed.wait()


def reconnect_times(chatters: Sequence[Chatter], moment: float) -> list[float]:
    """Seconds from ``moment`` until each of these clients was connected again
    (``inf`` for a client that never was)."""
    return [c.reconnected_after(moment) or float("inf") for c in chatters]


def spread(values: list[float]) -> str:
    """p50/p99/max in seconds, for the figures."""
    return (
        f"p50 {percentile(values, 50):.2f} s, p99 {percentile(values, 99):.2f} s, "
        f"max {max(values):.2f} s"
    )
