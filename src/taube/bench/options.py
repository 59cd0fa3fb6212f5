"""What one ``taube bench`` run does: a frozen options object and its parsers.

The workloads are those of the benchmark method (docs/performance.md):
``throughput`` (A, pipelined), ``one_in_flight`` (A1), ``rate`` (B, fixed
aggregate rate), ``idle`` (C, memory per idle connection) and ``group``
(fan-out to every member of one group). Parsers raise ValueError with a
message fit for the command line.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Mode = Literal["throughput", "one_in_flight", "rate", "idle", "group"]

DEFAULT_SERVER = "http://127.0.0.1:8080"
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min)?\s*$")
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|m|min))?\s*$")


def parse_duration(text: str) -> float:
    """Seconds from ``20s``, ``500ms``, ``2m`` or a bare number of seconds."""
    match = _DURATION_RE.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (try 20s, 500ms or 2m)")
    value, unit = float(match[1]), match[2] or "s"
    return value / 1000 if unit == "ms" else value * 60 if unit in ("m", "min") else value


def parse_rate(text: str) -> float:
    """Messages per second from ``5000/s``, ``300/m`` or a bare number (per second)."""
    match = _RATE_RE.match(text)
    if match is None or float(match[1]) <= 0:
        raise ValueError(f"not a positive rate: {text!r} (try 5000/s)")
    value = float(match[1])
    return value / 60 if match[2] in ("m", "min") else value


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """One benchmark run. Times are seconds; ``rate`` is messages per second in total."""

    server: str = DEFAULT_SERVER
    mode: Mode = "throughput"
    pairs: int = 100
    duration_s: float = 20.0
    warmup_s: float = 2.0
    drain_s: float = 10.0
    rate: float = 0.0
    idle: int = 0
    group_size: int = 0
    max_in_flight: int = 50
    top_up_at: int = 25
    payload_bytes: int = 100
    ack_delay_s: float = 0.0
    procs: int = 1
    accounts_file: Path | None = None
    server_pid: int | None = None
    settle_s: float = 5.0
    register_concurrency: int = 16
    connect_concurrency: int = 64  # below the usual listen backlog of 128
    json: bool = False

    @property
    def ws_url(self) -> str:
        base = self.server.rstrip("/")
        if base.startswith("https://"):
            return "wss://" + base.removeprefix("https://") + "/v1/ws"
        return "ws://" + base.removeprefix("http://") + "/v1/ws"

    @property
    def connections(self) -> int:
        """How many device connections the run opens (one account each)."""
        if self.mode == "idle":
            return self.idle
        if self.mode == "group":
            return self.group_size
        return 2 * self.pairs

    def validate(self) -> BenchOptions:
        if not self.server.startswith(("http://", "https://")):
            raise ValueError(f"--server must be an http:// or https:// URL, not {self.server!r}")
        positive = {"--pairs": self.pairs, "--procs": self.procs, "--duration": self.duration_s}
        for flag, value in positive.items():
            if value <= 0:
                raise ValueError(f"{flag} must be positive")
        if self.warmup_s < 0 or self.drain_s < 0:
            raise ValueError("--warmup and --drain must not be negative")
        if not 0 < self.top_up_at < self.max_in_flight:
            raise ValueError("--top-up-at must be between 0 and --max-in-flight")
        if self.mode == "group" and self.group_size < 2:
            raise ValueError("--group-size must be at least 2 (one sender, one member)")
        if self.mode == "idle" and self.idle < 1:
            raise ValueError("--idle must be at least 1")
        if self.ack_delay_s < 0:
            raise ValueError("--ack-delay must not be negative")
        if self.payload_bytes < 0:
            raise ValueError("--payload-bytes must not be negative")
        shares = {"idle": self.idle, "group": self.group_size - 1}.get(self.mode, self.pairs)
        if self.procs > shares:
            raise ValueError("--procs must not exceed the pairs (or members, or connections)")
        return self


def from_namespace(args: argparse.Namespace) -> BenchOptions:
    """Options from the ``taube bench`` command line (see taube.cli.main)."""
    exclusive = [
        name
        for name, given in (
            ("--idle", args.idle is not None),
            ("--group-size", args.group_size is not None),
            ("--one-in-flight", args.one_in_flight),
        )
        if given
    ]
    if len(exclusive) > 1:
        raise ValueError(f"{' and '.join(exclusive)} are different workloads; pick one")
    mode: Mode = "throughput"
    rate = parse_rate(args.rate) if args.rate else 0.0
    if args.idle is not None:
        mode = "idle"
    elif args.group_size is not None:
        mode, rate = "group", rate or 20.0
    elif args.one_in_flight:
        mode = "one_in_flight"
    elif rate:
        mode = "rate"
    if rate and mode in ("idle", "one_in_flight"):
        raise ValueError(f"--rate does not apply to the {mode.replace('_', '-')} workload")
    server = getattr(args, "server", None) or os.environ.get("TAUBE_SERVER") or DEFAULT_SERVER
    return BenchOptions(
        server=server.split(",")[0].strip(),
        mode=mode,
        pairs=args.pairs,
        duration_s=parse_duration(args.duration),
        warmup_s=parse_duration(args.warmup),
        drain_s=parse_duration(args.drain),
        rate=rate,
        idle=args.idle or 0,
        group_size=args.group_size or 0,
        max_in_flight=args.max_in_flight,
        top_up_at=args.top_up_at,
        payload_bytes=args.payload_bytes,
        ack_delay_s=parse_duration(args.ack_delay),
        procs=args.procs,
        accounts_file=Path(args.accounts) if args.accounts else None,
        server_pid=args.server_pid,
        settle_s=parse_duration(args.settle),
        json=args.json,
    ).validate()
