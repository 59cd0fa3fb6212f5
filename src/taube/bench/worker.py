"""A load-generator worker process: its own uvloop, its share of the connections.

Conversation with the runner over a pipe, in this order::

    worker -> ("connected", count, started_ns, done_ns, failures)
    runner -> ("go", start_ns, window_start_ns, window_end_ns)   or ("stop",)
    worker -> ("progress", sent, delivered, sent_acked, refused, errors, done_sending)
                                                                every 50-200 ms
    runner -> ("finish",)          once everything arrived, or the drain time ran out
    worker -> ("result", WorkerResult)

All times are CLOCK_MONOTONIC nanoseconds, the same clock in every process.
Both devices of a pair live in the same worker, so in-flight counting needs
no messages between processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import traceback
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
import uvloop

from taube.bench.accounts import RETRY_LIMIT_S, BenchAccount
from taube.bench.conn import ConnectError, Device, Tally, connect
from taube.bench.histogram import Histogram, HistogramWire
from taube.bench.options import BenchOptions
from taube.bench.procfs import raise_nofile_limit
from taube.bench.workloads import GroupFanout, Pair, drive_rate, watch_lag

AUTH_TIMEOUT_S = 30.0
CLOSE_CONCURRENCY = 512


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """One worker's share. Pairs modes: ``accounts`` is sender, receiver, sender, ..."""

    index: int
    options: BenchOptions
    accounts: list[BenchAccount]
    tag: str
    rate: float = 0.0
    group_sender: BenchAccount | None = None
    group_address: str = ""


@dataclass(slots=True)
class WorkerResult:
    """What one worker counted, sent home once at the end (see Tally for the meanings)."""

    sent: int = 0
    sent_window: int = 0
    delivered: int = 0
    delivered_window: int = 0
    sent_acked: int = 0
    refused: int = 0
    duplicates: int = 0
    reordered: int = 0
    stale: int = 0
    closed: int = 0
    setup_retries: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latency: HistogramWire | None = None
    sent_ack: HistogramWire | None = None
    lag: HistogramWire | None = None
    cpu_window_s: float = 0.0
    group: dict[str, tuple[int, int]] = field(default_factory=dict)


def main(spec: WorkerSpec, pipe: Connection) -> None:
    """Process entry point (multiprocessing target)."""
    raise_nofile_limit()
    try:
        uvloop.run(Worker(spec, pipe).run())
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # a bug: the traceback goes to stderr, the runner stops the run
        traceback.print_exc()
        with contextlib.suppress(OSError):
            pipe.send(("failed", f"{type(exc).__name__}: {exc}"))


class Worker:
    def __init__(self, spec: WorkerSpec, pipe: Connection) -> None:
        self.spec = spec
        self.pipe = pipe
        self.tally = Tally(spec.tag)
        self.devices: list[Device] = []
        self.pair_devices: list[Device | None] = []
        self.group_sender: Device | None = None
        self.inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.readers: list[asyncio.Task[None]] = []
        self.done_sending = False

    def _pipe_readable(self) -> None:
        try:
            self.inbox.put_nowait(self.pipe.recv())
        except EOFError:  # the runner is gone: stop
            asyncio.get_running_loop().remove_reader(self.pipe.fileno())
            self.inbox.put_nowait(("stop",))

    async def run(self) -> None:
        asyncio.get_running_loop().add_reader(self.pipe.fileno(), self._pipe_readable)
        options = self.spec.options
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            started = time.monotonic_ns()
            failures = await self._connect_all(session)
            self.pipe.send(("connected", len(self.devices), started, time.monotonic_ns(), failures))
            command = await self.inbox.get()
            result = WorkerResult()
            if command[0] == "go" and options.mode != "idle":
                _, start_ns, window_start_ns, window_end_ns = command
                # Our own collector pauses would show up as server latency: everything
                # allocated so far is frozen and collection waits until the load is over.
                gc.collect()
                gc.freeze()
                gc.disable()
                try:
                    result = await self._load(start_ns, window_start_ns, window_end_ns)
                finally:
                    gc.enable()
            self._collect(result)
            self.pipe.send(("result", result))
            await self._close_all()

    async def _until(self, commands: tuple[str, ...]) -> None:
        while (await self.inbox.get())[0] not in commands:
            pass

    async def _connect_all(self, session: aiohttp.ClientSession) -> dict[str, int]:
        options, tally = self.spec.options, self.tally
        limit = asyncio.Semaphore(max(1, options.connect_concurrency // options.procs))
        failures: dict[str, int] = {}

        give_up = time.monotonic() + RETRY_LIMIT_S
        # When the server sheds load, every connection of this worker waits as long as
        # it asked (one pause for all, instead of each refused socket trying again).
        resume_at = 0.0

        async def one(account: BenchAccount) -> Device | None:
            nonlocal resume_at
            while True:
                async with limit:
                    await asyncio.sleep(max(0.0, resume_at - time.monotonic()))
                    try:
                        return await connect(
                            session,
                            options.ws_url,
                            account,
                            tally,
                            AUTH_TIMEOUT_S,
                            options.ack_delay_s,
                        )
                    except ConnectError as exc:
                        wait = exc.retry_after_s
                        if wait is None or time.monotonic() + wait > give_up:
                            failures[exc.code] = failures.get(exc.code, 0) + 1
                            return None
                        tally.setup_retries += 1
                        resume_at = max(resume_at, time.monotonic() + wait)

        accounts = list(self.spec.accounts)
        if self.spec.group_sender is not None:
            accounts.append(self.spec.group_sender)
        devices = await asyncio.gather(*(one(account) for account in accounts))
        if self.spec.group_sender is not None:
            self.group_sender = devices.pop()
        self.devices = [d for d in devices if d is not None]
        # A pair with a failed end sends nothing (the runner aborts such a run anyway).
        self.pair_devices = list(devices)
        self.readers = [asyncio.create_task(device.run()) for device in self._everyone()]
        return failures

    def _everyone(self) -> list[Device]:
        return [*self.devices, *([self.group_sender] if self.group_sender else [])]

    async def _load(self, start_ns: int, window_start_ns: int, window_end_ns: int) -> WorkerResult:
        spec, options, tally = self.spec, self.spec.options, self.tally
        start_us, window_end_us = start_ns // 1000, window_end_ns // 1000
        tally.window_start_us, tally.window_end_us = window_start_ns // 1000, window_end_us
        pairs, group = self._workload()
        lag_us: array[int] = array("q")
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(watch_lag(tally, lag_us, window_end_us)),
            asyncio.create_task(self._progress(window_end_ns)),
        ]
        cpu = asyncio.create_task(self._cpu_in_window(window_start_ns, window_end_ns))
        ticker: asyncio.Task[int] | None = None
        if options.mode in ("rate", "group"):
            senders = [p.send_one for p in pairs]
            if group is not None and group.sender is not None:
                senders = [group.send_one]
            if senders:
                ticker = asyncio.create_task(
                    drive_rate(senders, spec.rate, start_us, window_end_us)
                )
        else:
            await asyncio.sleep(max(0.0, (start_ns - time.monotonic_ns()) / 1e9))
            for pair in pairs:
                pair.start()
        await asyncio.sleep(max(0.0, (window_end_ns - time.monotonic_ns()) / 1e9))
        for pair in pairs:
            pair.sending = False
        if ticker is not None:
            await ticker
        # From now on the counts in a progress report are final for "sent": the runner
        # ends the drain only on reports made after this point.
        self.done_sending = True
        await self._until(("finish", "stop"))
        for task in tasks:
            task.cancel()
        cpu_s = cpu.result() if cpu.done() else 0.0
        cpu.cancel()  # when stopped before the window ended (the run is void anyway)
        result = WorkerResult(cpu_window_s=cpu_s)
        result.lag = _histogram(lag_us)
        if group is not None:
            result.group = {k: (v[0], v[1]) for k, v in group.per_message.items()}
        return result

    def _workload(self) -> tuple[list[Pair], GroupFanout | None]:
        """The pairs (A, A1, B) or the group fan-out this worker drives."""
        spec, options, tally = self.spec, self.spec.options, self.tally
        payload = bytes(options.payload_bytes)
        if options.mode == "group":
            group = GroupFanout(self.group_sender, spec.group_address, self.devices, payload, tally)
            return [], group
        in_flight, top_up_at = options.max_in_flight, options.top_up_at
        if options.mode == "one_in_flight":
            in_flight, top_up_at = 1, 0
        ends = self.pair_devices
        return [
            Pair(sender, receiver, payload, tally, in_flight, top_up_at)
            for sender, receiver in zip(ends[0::2], ends[1::2], strict=True)
            if sender is not None and receiver is not None
        ], None

    async def _cpu_in_window(self, start_ns: int, end_ns: int) -> float:
        await asyncio.sleep(max(0.0, (start_ns - time.monotonic_ns()) / 1e9))
        before = time.process_time()
        await asyncio.sleep(max(0.0, (end_ns - time.monotonic_ns()) / 1e9))
        return time.process_time() - before

    async def _progress(self, window_end_ns: int) -> None:
        tally = self.tally
        while True:
            errors = sum(tally.errors.values())
            self.pipe.send(
                (
                    "progress",
                    tally.sent,
                    tally.delivered,
                    tally.sent_acked,
                    tally.refused,
                    errors,
                    self.done_sending,
                )
            )
            # Report often while draining, so the runner can finish early.
            await asyncio.sleep(0.2 if time.monotonic_ns() < window_end_ns else 0.05)

    def _collect(self, result: WorkerResult) -> None:
        t = self.tally
        result.sent, result.sent_window = t.sent, t.sent_window
        result.delivered, result.delivered_window = t.delivered, t.delivered_window
        result.sent_acked, result.refused = t.sent_acked, t.refused
        result.duplicates, result.reordered, result.stale = t.duplicates, t.reordered, t.stale
        result.closed, result.errors = t.closed, dict(t.errors)
        result.setup_retries = t.setup_retries
        result.latency = _histogram(t.latency_us)
        result.sent_ack = _histogram(t.sent_ack_us)

    async def _close_all(self) -> None:
        limit = asyncio.Semaphore(CLOSE_CONCURRENCY)

        async def close(device: Device) -> None:
            async with limit:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(5):
                        await device.close()

        await asyncio.gather(*(close(d) for d in self._everyone()))
        for reader in self.readers:
            reader.cancel()


def _histogram(values: array[int]) -> HistogramWire:
    hist = Histogram()
    hist.record_many(values)
    return hist.to_wire()
