"""The runner: accounts, worker processes, the clock of the run, and the merged report.

Timeline of a load run (all on CLOCK_MONOTONIC)::

    provision accounts -> spawn workers -> all connected (setup rate)
    -> go: start -> warm-up -> [ measured window ] -> drain (<= drain_s) -> finish

The runner samples the server's CPU time (and each core's busy time) at the
window's edges, ends the drain as soon as every message arrived and every
``sent`` came back, and merges the workers' counts and histograms. The idle
workload instead reads the server's RSS before connecting and after a settle
time. Worker processes are started and ended by this runner only, by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any
from urllib.parse import urlsplit

from taube.bench import procfs
from taube.bench.accounts import BenchAccount, create_group, provision
from taube.bench.errors import BenchError
from taube.bench.histogram import Histogram, HistogramWire
from taube.bench.options import BenchOptions
from taube.bench.report import Report
from taube.bench.wire import new_run_tag
from taube.bench.worker import WorkerResult, WorkerSpec
from taube.bench.worker import main as worker_main

START_DELAY_S = 0.1
CONNECT_TIMEOUT_S = 120.0
SATURATED_CPU = 0.90  # of the core share a worker can have
SATURATED_LAG_MS = 5.0  # and over 10 % of the latency p99
SATURATED_RATE = 0.97  # of the target rate
NOISE_POINTS = 15.0  # other processes' CPU, as in the benchmark method

Progress = Callable[[str], None]


def _quiet(line: str) -> None:
    return None


def stderr_progress(line: str) -> None:
    """A live line on a terminal (carriage return), plain lines otherwise."""
    if sys.stderr.isatty():
        print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)


def discover_server_pid(server: str) -> int | None:
    """The pid listening on the server's port, when the server is on this machine."""
    parts = urlsplit(server)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1", "0.0.0.0"):
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return procfs.listening_pid(port)


def split_work(
    options: BenchOptions, accounts: list[BenchAccount], tag: str, group_address: str
) -> list[WorkerSpec]:
    """Each worker's share: whole pairs, a slice of idle accounts, or group members."""
    n = options.procs
    if options.mode == "idle":
        return [WorkerSpec(k, options, accounts[k::n], tag) for k in range(n)]
    if options.mode == "group":
        sender, members = accounts[0], accounts[1:]
        return [
            WorkerSpec(
                k,
                options,
                members[k::n],
                tag,
                rate=options.rate if k == 0 else 0.0,
                group_sender=sender if k == 0 else None,
                group_address=group_address,
            )
            for k in range(n)
        ]
    pairs = [accounts[i : i + 2] for i in range(0, 2 * options.pairs, 2)]
    specs = []
    for k in range(n):
        mine = pairs[k::n]
        rate = options.rate * len(mine) / len(pairs)
        specs.append(WorkerSpec(k, options, [a for pair in mine for a in pair], tag, rate=rate))
    return specs


class Workers:
    """The worker processes and their pipes, as seen from the runner."""

    def __init__(self, specs: list[WorkerSpec]) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[BaseProcess] = []
        self.progress: list[tuple[int, ...]] = [(0, 0, 0, 0, 0, False)] * len(specs)
        self.connected: dict[int, tuple[Any, ...]] = {}
        self.results: dict[int, WorkerResult] = {}
        for spec in specs:
            ours, theirs = context.Pipe()
            proc = context.Process(
                target=worker_main, args=(spec, theirs), name=f"taube-bench-{spec.index}"
            )
            proc.start()
            theirs.close()
            self.pipes.append(ours)
            self.procs.append(proc)

    def send(self, message: tuple[Any, ...]) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(message)

    def poll(self, timeout: float) -> None:
        """Take in whatever the workers said within ``timeout`` seconds."""
        for ready in wait(self.pipes, max(0.0, timeout)):
            assert isinstance(ready, Connection)
            index = self.pipes.index(ready)
            try:
                message = ready.recv()
            except EOFError:
                if index not in self.results:
                    raise BenchError("bench.worker_died", f"worker {index} exited early") from None
                continue
            kind = message[0]
            if kind == "progress":
                self.progress[index] = tuple(message[1:])
            elif kind == "connected":
                self.connected[index] = message[1:]
            elif kind == "result":
                self.results[index] = message[1]
            elif kind == "failed":
                raise BenchError("bench.worker_failed", f"worker {index}: {message[1]}")

    def done_sending(self) -> bool:
        """Every worker has stopped sending and said so in its latest report."""
        return all(p[5] for p in self.progress)

    def totals(self) -> tuple[int, ...]:
        """Sum over workers of (sent, delivered, sent_acked, refused, errors)."""
        return tuple(sum(p[i] for p in self.progress) for i in range(5))

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def wait_for(self, what: dict[int, Any], deadline: float) -> None:
        while len(what) < len(self.procs):
            if time.monotonic() > deadline:
                raise BenchError("bench.timeout", "the load generator's workers did not answer")
            self.poll(0.2)

    def end(self) -> None:
        """Let the workers exit; terminate (by pid, our own children) any that hang."""
        for proc in self.procs:
            proc.join(timeout=15)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        for pipe in self.pipes:
            pipe.close()


@dataclass(frozen=True, slots=True)
class Sample:
    """The machine at one edge of the window: the server's CPU, ours, and each core's."""

    server_cpu_s: float | None
    ours_cpu_s: float
    cores: dict[int, procfs.CoreTimes]

    @classmethod
    def take(cls, server_pid: int | None, ours: list[int]) -> Sample:
        server = procfs.cpu_seconds(server_pid) if server_pid else None
        mine = sum(procfs.cpu_seconds(pid) or 0.0 for pid in ours)
        return cls(server, mine + (server or 0.0), procfs.core_times())


def run(options: BenchOptions, progress: Progress = _quiet) -> Report:
    """Run one benchmark and return its report (raises BenchError when it cannot)."""
    procfs.raise_nofile_limit()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    provisioned = asyncio.run(
        provision(
            options.server,
            options.connections,
            options.accounts_file,
            options.register_concurrency,
            progress=progress is not _quiet and sys.stderr.isatty(),
        )
    )
    accounts = provisioned.accounts
    group_address = ""
    if options.mode == "group":
        members = [a.handle for a in accounts[1:]]
        group_address = asyncio.run(create_group(options.server, accounts[0], members))
    server_pid = options.server_pid or discover_server_pid(options.server)
    report = _new_report(options, server_pid, started_at)
    report.accounts_registered = provisioned.registered
    if provisioned.registered and provisioned.register_s > 0:
        report.register_per_s = round(provisioned.registered / provisioned.register_s, 1)
    rss_before = procfs.rss_kb(server_pid) if server_pid else None
    workers = Workers(split_work(options, accounts, new_run_tag(), group_address))
    try:
        progress(f"connecting {options.connections:,} devices")
        workers.wait_for(workers.connected, time.monotonic() + CONNECT_TIMEOUT_S)
        _setup(report, workers)
        if options.mode == "idle":
            _idle(options, report, workers, server_pid, rss_before, progress)
        else:
            _load(options, report, workers, server_pid, progress)
    finally:
        workers.send(("stop",))
        workers.end()
    progress("")
    return report


def _new_report(options: BenchOptions, server_pid: int | None, started_at: str) -> Report:
    idle = options.mode == "idle"
    return Report(
        mode=options.mode,
        server=options.server,
        connections=options.connections,
        pairs=options.pairs if options.mode not in ("idle", "group") else 0,
        procs=options.procs,
        payload_bytes=options.payload_bytes,
        ack_delay_ms=options.ack_delay_s * 1000,
        duration_s=options.settle_s if idle else options.duration_s,
        warmup_s=0.0 if idle else options.warmup_s,
        target_rate=options.rate or None,
        server_pid=server_pid,
        group_size=options.group_size or None,
        started_at=started_at,
    )


def _setup(report: Report, workers: Workers) -> None:
    failures: dict[str, int] = {}
    for *_, failed in workers.connected.values():
        for code, n in failed.items():
            failures[code] = failures.get(code, 0) + n
    if failures:
        listed = ", ".join(f"{code} x{n}" for code, n in sorted(failures.items()))
        raise BenchError("bench.connect_failed", f"connections failed: {listed}")
    started = min(c[1] for c in workers.connected.values())
    done = max(c[2] for c in workers.connected.values())
    report.setup_s = round((done - started) / 1e9, 3)
    report.setup_conns_per_s = round(report.connections / max(report.setup_s, 1e-6), 1)


def _idle(
    options: BenchOptions,
    report: Report,
    workers: Workers,
    server_pid: int | None,
    rss_before: int | None,
    progress: Progress,
) -> None:
    settle_until = time.monotonic() + options.settle_s
    while (left := settle_until - time.monotonic()) > 0:
        progress(f"{options.idle:,} idle connections, settling {left:4.1f} s")
        time.sleep(min(0.5, left))
    rss_after = procfs.rss_kb(server_pid) if server_pid else None
    workers.send(("stop",))
    workers.wait_for(workers.results, time.monotonic() + 60)
    _merge_counts(report, workers)
    report.server_rss_before_kb = rss_before
    report.server_rss_kb = rss_after
    if rss_before is not None and rss_after is not None:
        report.server_rss_per_conn_kb = round((rss_after - rss_before) / options.idle, 2)


def _load(
    options: BenchOptions,
    report: Report,
    workers: Workers,
    server_pid: int | None,
    progress: Progress,
) -> None:
    now = time.monotonic_ns()
    start_ns = now + int(START_DELAY_S * 1e9)
    window_start_ns = start_ns + int(options.warmup_s * 1e9)
    window_end_ns = window_start_ns + int(options.duration_s * 1e9)
    drain_deadline_ns = window_end_ns + int(options.drain_s * 1e9)
    workers.send(("go", start_ns, window_start_ns, window_end_ns))
    fanout = max(1, options.group_size - 1) if options.mode == "group" else 1
    samples: list[Sample] = []
    last_print = (time.monotonic_ns(), 0)
    while True:
        now = time.monotonic_ns()
        edge = window_start_ns if not samples else window_end_ns
        if len(samples) < 2 and now >= edge:
            samples.append(Sample.take(server_pid, [os.getpid(), *workers.pids()]))
        sent, delivered, acked, refused, errors = workers.totals()
        if now >= window_end_ns and len(samples) == 2:
            done = (
                workers.done_sending()
                and delivered >= (sent - refused) * fanout
                and acked + refused >= sent
            )
            if done or now >= drain_deadline_ns:
                report.drained = done
                report.drain_s = round((now - window_end_ns) / 1e9, 2)
                break
        if now - last_print[0] >= 500_000_000:
            rate = (delivered - last_print[1]) / ((now - last_print[0]) / 1e9)
            phase = (
                "warm-up"
                if now < window_start_ns
                else "window"
                if now < window_end_ns
                else "draining"
            )
            progress(
                f"{phase:<8} {(now - start_ns) / 1e9:5.1f} s  delivered {delivered:,} "
                f"({rate:,.0f}/s)  in flight {(sent - refused) * fanout - delivered:,}  "
                f"errors {errors}"
            )
            last_print = (now, delivered)
        wake = min(t for t in (window_start_ns, window_end_ns, now + 50_000_000) if t > now)
        workers.poll((wake - now) / 1e9)
    workers.send(("finish",))
    workers.wait_for(workers.results, time.monotonic() + 60)
    _merge_counts(report, workers)
    _merge_latency(report, workers, fanout)
    _machine(options, report, workers, server_pid, samples)


def _merge_counts(report: Report, workers: Workers) -> None:
    results = list(workers.results.values())
    report.sent = sum(r.sent for r in results)
    report.delivered = sum(r.delivered for r in results)
    report.refused = sum(r.refused for r in results)
    report.duplicates = sum(r.duplicates for r in results)
    report.reordered = sum(r.reordered for r in results)
    report.stale_items = sum(r.stale for r in results)
    report.setup_retries = sum(r.setup_retries for r in results)
    errors: dict[str, int] = {}
    for r in results:
        for code, n in r.errors.items():
            errors[code] = errors.get(code, 0) + n
    report.errors = errors


def _ms(value: int | None) -> float | None:
    return None if value is None else round(value / 1000, 3)


def _merged(wires: list[HistogramWire | None]) -> Histogram:
    hist = Histogram()
    for wire in wires:
        if wire is not None:
            hist.merge(Histogram.from_wire(wire))
    return hist


def _merge_latency(report: Report, workers: Workers, fanout: int) -> None:
    results = list(workers.results.values())
    duration = report.duration_s
    report.lost = (report.sent - report.refused) * fanout - report.delivered
    report.delivered_per_s = round(sum(r.delivered_window for r in results) / duration, 1)
    report.send_rate_per_s = round(sum(r.sent_window for r in results) / duration, 1)
    latency = _merged([r.latency for r in results])
    report.latency_samples = latency.count
    report.p50_ms, report.p90_ms = _ms(latency.percentile(50)), _ms(latency.percentile(90))
    report.p99_ms, report.p999_ms = _ms(latency.percentile(99)), _ms(latency.percentile(99.9))
    report.max_ms = _ms(latency.max) if latency.count else None
    mean = latency.mean()
    report.mean_ms = None if mean is None else round(mean / 1000, 3)
    acks = _merged([r.sent_ack for r in results])
    report.sent_ack_p50_ms, report.sent_ack_p90_ms = (
        _ms(acks.percentile(50)),
        _ms(acks.percentile(90)),
    )
    report.sent_ack_p99_ms = _ms(acks.percentile(99))
    report.sent_ack_p999_ms = _ms(acks.percentile(99.9))
    report.sent_ack_max_ms = _ms(acks.max) if acks.count else None
    if report.mode == "group":
        per_message: dict[str, list[int]] = {}
        for r in results:
            for message_id, (count, latest) in r.group.items():
                seen = per_message.setdefault(message_id, [0, 0])
                seen[0] += count
                seen[1] = max(seen[1], latest)
        everyone = Histogram()
        complete = [v[1] for v in per_message.values() if v[0] >= fanout]
        everyone.record_many(complete)
        report.group_messages = sum(r.sent_window for r in results)
        report.group_incomplete = report.group_messages - len(complete)
        report.group_all_p50_ms = _ms(everyone.percentile(50))
        report.group_all_p90_ms = _ms(everyone.percentile(90))
        report.group_all_p99_ms = _ms(everyone.percentile(99))
        report.group_all_max_ms = _ms(everyone.max) if everyone.count else None
    lag = _merged([r.lag for r in results])
    report.loop_lag_p99_ms = _ms(lag.percentile(99))
    report.loop_lag_max_ms = _ms(lag.max) if lag.count else None


def _machine(
    options: BenchOptions,
    report: Report,
    workers: Workers,
    server_pid: int | None,
    samples: list[Sample],
) -> None:
    """Server CPU, load-generator CPU, core busy time and the saturation verdict."""
    duration = report.duration_s
    results = list(workers.results.values())
    delivered_window = report.delivered_per_s * duration
    first, last = samples
    cpu0, cpu1 = first.server_cpu_s, last.server_cpu_s
    if cpu0 is not None and cpu1 is not None:
        server_cpu = cpu1 - cpu0
        report.server_cpu_pct = round(100 * server_cpu / duration, 1)
        if delivered_window:
            report.server_cpu_s_per_1k_msgs = round(server_cpu / (delivered_window / 1000), 5)
            report.server_cpu_us_per_msg = round(server_cpu * 1e6 / delivered_window, 2)
    if server_pid:
        report.server_rss_kb = procfs.rss_kb(server_pid)
    loadgen_cpu = sum(r.cpu_window_s for r in results)
    report.loadgen_cpu_pct = round(100 * loadgen_cpu / duration, 1)
    busy = procfs.busy_percent(first.cores, last.cores)
    report.cpu_busy_pct = {str(core): pct for core, pct in sorted(busy.items())}
    if first.cores:
        # Everything processes were charged for, minus the server and the load generator:
        # this also sees processes that started and ended inside the window.
        charged = procfs.seconds_in_processes(first.cores, last.cores)
        other = charged - (last.ours_cpu_s - first.ours_cpu_s)
        report.other_cpu_pct = round(max(0.0, 100 * other / duration), 1)
        report.noisy = report.other_cpu_pct > NOISE_POINTS
    reasons = []
    mine = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    share = min(1.0, max(1, len(mine)) / options.procs)
    for index, r in sorted(workers.results.items()):
        used = r.cpu_window_s / duration
        if used >= SATURATED_CPU * share:
            reasons.append(f"worker {index} used {100 * used:.0f} % of a core")
    # Pinned apart from the server, our cores' busy time includes the kernel's network
    # work done for us, which no process is charged for.
    theirs = procfs.affinity(server_pid) if server_pid else None
    if mine and theirs is not None and not mine & theirs and all(c in busy for c in mine):
        load = sum(busy[c] for c in mine) / len(mine)
        if load >= 100 * SATURATED_CPU:
            listed = ",".join(str(c) for c in sorted(mine))
            reasons.append(f"load-generator core(s) {listed} {load:.0f} % busy")
    if options.mode in ("rate", "group"):
        if report.send_rate_per_s < SATURATED_RATE * options.rate:
            reasons.append(f"sent {report.send_rate_per_s:,.0f}/s of {options.rate:,.0f}/s")
        # A late loop delays the sends it stamps and the arrivals it reads; that matters
        # when it is a noticeable part of the latency being measured.
        lag, p99 = report.loop_lag_p99_ms, report.p99_ms
        if lag is not None and lag > SATURATED_LAG_MS and (p99 is None or lag > 0.1 * p99):
            reasons.append(f"event-loop lag p99 {lag:.1f} ms")
    report.saturation = reasons
    report.loadgen_saturated = bool(reasons)
