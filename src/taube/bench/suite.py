"""``make bench`` and ``make bench-baseline``: servers started and pinned, workloads run, targets.

For each workload this starts a fresh server on a free loopback port (a real
``taube`` server from a temporary data folder, or the bare relay), pinned with
``taskset -c 0``, runs ``taube bench --json`` pinned with ``taskset -c 1``, and
keeps the JSON object it prints last. ``make bench`` runs the relay and every
Taube workload once by default (about two minutes) and prints the issue's
targets as met/short lines; ``--runs 3`` gives the medians of the benchmark
method. ``make bench-baseline`` runs only the relay's throughput and prints its
JSON object last, so that the two can be divided.

The server under test gets cheap argon2 settings and, where the server has
admission control, no limit on the login rate (registration speed is not
measured, and 10,000 idle accounts must register in seconds); otherwise its
defaults; ``--durability`` or ``--server-config`` change that, and the
durability setting in force (read from the server's own code when not given)
is printed beside the figures. Servers are ended by pid.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

BENCH_CONFIG = """\
# Written by taube.bench.suite: registration is not what is measured.
[auth]
argon2_time_cost = 1
argon2_memory_kib = 1024
"""

BENCH_RATE = """
[rate]
registrations_per_hour = 1e9
logins_per_min = 1e9
account_logins_per_min = 1e9
sends_per_s = 1e9
sends_burst = 1e9
groups_per_hour = 1e9
upload_mib_per_hour = 1e9
lookups_per_min = 1e9
"""

BENCH_TRANSPORT = """
[limits]
frames_per_s = 1e9
frame_burst = 1e9
max_connections_per_ip = 1000000
idle_timeout_s = 3600.0
"""

WORKLOADS = ("relay", "a", "a1", "b", "group", "idle")
Result = dict[str, Any]


@dataclass
class Plan:
    runs: int
    workloads: tuple[str, ...]
    loadgen_args: list[str]
    duration: str
    idle: int
    group_size: int
    rate: str
    group_rate: str
    relay_write: str
    durability: str | None
    store: str | None
    server_config: Path | None
    server_src: Path | None
    server_cpu: str
    loadgen_cpu: str
    json: bool
    results: dict[str, list[Result]] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin(cpu: str) -> list[str]:
    """``taskset -c CPU`` when taskset exists and the machine has that core."""
    if not cpu or shutil.which("taskset") is None:
        return []
    wanted = {int(c) for c in cpu.split(",") if c.strip().isdigit()}
    if hasattr(os, "sched_getaffinity") and not wanted <= os.sched_getaffinity(0):
        return []
    return ["taskset", "-c", cpu]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextmanager
def server(plan: Plan, relay: bool) -> Iterator[tuple[str, int]]:
    """A fresh server on a free port, pinned; yields (url, pid); stopped by pid."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="taube-bench-") as tmp:
        data = Path(tmp)
        env = dict(os.environ)
        if relay:
            command = [sys.executable, "-m", "taube.bench.relay", "--port", str(port)]
            command += ["--write", plan.relay_write]
        else:
            (data / "bench.toml").write_text(bench_config(plan))
            command = [sys.executable, "-m", "taube.server", "--host", "127.0.0.1"]
            command += ["--port", str(port), "--data", str(data), "--config"]
            command += [str(data / "bench.toml")]
            env = server_env(plan)
        with (data / "server.log").open("wb") as log:
            proc = subprocess.Popen(
                pin(plan.server_cpu) + command, stdout=log, stderr=log, env=env, cwd=tmp
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, proc, data / "server.log")
            yield url, proc.pid
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text(errors='replace')[-1500:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the server did not become healthy within 20 s")


def loadgen(plan: Plan, url: str, pid: int, args: Sequence[str]) -> Result | None:
    """Run ``taube bench --json`` pinned; the JSON object it printed last, or None."""
    command = [*pin(plan.loadgen_cpu), sys.executable, "-m", "taube.cli", "bench"]
    command += ["--server", url, "--server-pid", str(pid), "--json", *args, *plan.loadgen_args]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    try:
        result: Result = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        say(f"  the load generator failed (exit code {done.returncode})")
        return None
    return result


def run_workload(plan: Plan, name: str, run: int) -> None:
    throughput = ["--duration", plan.duration]
    args: dict[str, list[str]] = {
        "relay": throughput,
        "a": throughput,
        "a1": [*throughput, "--one-in-flight"],
        "b": [*throughput, "--rate", plan.rate],
        "group": [*throughput, "--group-size", str(plan.group_size), "--rate", plan.group_rate],
        "idle": ["--idle", str(plan.idle)],
    }
    title = {
        "relay": f"bare relay (--write {plan.relay_write}), Workload A",
        "a": "Taube, Workload A (pipelined throughput)",
        "a1": "Taube, Workload A1 (one in flight)",
        "b": f"Taube, Workload B (latency at {plan.rate})",
        "group": f"Taube, group of {plan.group_size:,} at {plan.group_rate}",
        "idle": f"Taube, Workload C ({plan.idle:,} idle connections, fresh server)",
    }[name]
    say(f"== {title}" + (f", run {run + 1}/{plan.runs}" if plan.runs > 1 else ""))
    # A fresh server (and fresh accounts) for every run of every workload.
    with server(plan, relay=name == "relay") as (url, pid):
        result = loadgen(plan, url, pid, args[name])
    if result is not None:
        plan.results.setdefault(name, []).append(result)
        say(f"   {headline(name, result)}")


INTERLEAVED: Final = ("relay", "a")
"""Run alternately when both are asked for: the ratio of the two is a target, and this
kind of host drifts by tens of percent within minutes (docs/performance.md, 9.7), so
three relay runs followed by three of Taube's would put the drift into the ratio."""


def schedule(plan: Plan) -> list[tuple[str, int]]:
    """(workload, run) in the order they run: each workload's runs together, but the
    relay's and Workload A's alternately, where the first of them would run."""
    order: list[tuple[str, int]] = []
    paired = all(w in plan.workloads for w in INTERLEAVED)
    for name in plan.workloads:
        if not paired or name not in INTERLEAVED:
            order += [(name, run) for run in range(plan.runs)]
        elif not any(w in INTERLEAVED for w, _ in order):  # the first of the two
            order += [(w, run) for run in range(plan.runs) for w in INTERLEAVED]
    return order


FIGURES = {
    "relay": ("delivered_per_s", "msg/s"),
    "a": ("delivered_per_s", "msg/s"),
    "a1": ("delivered_per_s", "msg/s"),
    "b": ("p99_ms", "ms p99"),
    "group": ("group_all_p99_ms", "ms p99 (all members)"),
    "idle": ("server_rss_per_conn_kb", "KiB per connection"),
}


def headline(name: str, result: Result) -> str:
    key, unit = FIGURES[name]
    value = result.get(key)
    flags = []
    if result.get("loadgen_saturated"):
        flags.append("load generator saturated: " + "; ".join(result.get("saturation", [])))
    if result.get("noisy"):
        flags.append(f"noisy: other processes took {result.get('other_cpu_pct')} points")
    if result.get("lost"):
        flags.append(f"{result['lost']} messages missing")
    if result.get("errors"):
        flags.append(f"errors {result['errors']}")
    text = "-" if value is None else f"{value:,.3f}" if value < 100 else f"{value:,.0f}"
    return f"{text} {unit}" + (f"  ({'; '.join(flags)})" if flags else "")


def median(plan: Plan, name: str, key: str | None = None) -> tuple[float, float, float] | None:
    """Median, min and max of a workload's figure over its runs."""
    key = key or FIGURES[name][0]
    values = [r[key] for r in plan.results.get(name, []) if r.get(key) is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def pair_ratios(plan: Plan) -> list[float]:
    """Workload A over the relay, run by run (they alternate: ``schedule``)."""
    relay, a = plan.results.get("relay", []), plan.results.get("a", [])
    if len(relay) != len(a):  # a run failed: the pairs no longer line up
        return []
    return [
        float(x["delivered_per_s"]) / float(r["delivered_per_s"])
        for r, x in zip(relay, a, strict=True)
        if r.get("delivered_per_s") and x.get("delivered_per_s") is not None
    ]


def target_lines(plan: Plan) -> list[tuple[bool | None, str, str]]:
    """(met?, target, measured) for the targets of issue 3 that this run measured."""
    lines: list[tuple[bool | None, str, str]] = []

    def spread(m: tuple[float, float, float], fmt: str) -> str:
        return fmt.format(m[0]) + (
            f" (min {fmt.format(m[1])}, max {fmt.format(m[2])})" if plan.runs > 1 else ""
        )

    a, relay = median(plan, "a"), median(plan, "relay")
    if a and plan.store and plan.store.startswith("postgres"):
        # The 100,000 and 51,000 msg/s targets are the embedded store's.
        lines.append(
            (a[0] >= 30_000, "PostgreSQL store: >= 30,000 msg/s", spread(a, "{:,.0f} msg/s"))
        )
    elif a:
        lines.append(
            (a[0] >= 100_000, "durable 1:1 throughput >= 100,000 msg/s", spread(a, "{:,.0f} msg/s"))
        )
        lines.append(
            (a[0] >= 51_000, "never below 3x ejabberd (51,000 msg/s)", spread(a, "{:,.0f} msg/s"))
        )
    if a and relay:
        bound = any(r.get("loadgen_saturated") for r in plan.results["relay"])
        note = " (relay figure load-generator bound: the ratio is an upper bound)" if bound else ""
        lines.append(
            (
                a[0] >= 0.6 * relay[0],
                ">= 0.6 of the bare relay, same run",
                f"{a[0] / relay[0]:.2f} = {a[0]:,.0f} / {relay[0]:,.0f}{note}",
            )
        )
    pairs = pair_ratios(plan)
    if len(pairs) > 1:
        lines.append(
            (
                None,
                "  the same, run by run (each A run after its relay run)",
                f"median {statistics.median(pairs):.2f}"
                f" (min {min(pairs):.2f}, max {max(pairs):.2f})",
            )
        )
    b, b999 = median(plan, "b"), median(plan, "b", "p999_ms")
    if b and b999:
        lines.append((b[0] <= 2.0, f"p99 <= 2 ms at {plan.rate}", spread(b, "{:.2f} ms")))
        lines.append((b999[0] <= 10.0, f"p99.9 <= 10 ms at {plan.rate}", spread(b999, "{:.2f} ms")))
    idle = median(plan, "idle")
    if idle:
        lines.append(
            (
                idle[0] <= 16.0,
                f"<= 16 KB RSS per idle connection at {plan.idle:,}",
                spread(idle, "{:.1f} KiB"),
            )
        )
    group = median(plan, "group")
    if group:
        lines.append(
            (
                group[0] <= 250.0,
                f"group of {plan.group_size:,}: p99 <= 250 ms to all members",
                spread(group, "{:.1f} ms"),
            )
        )
    a1 = median(plan, "a1")
    if a1:
        lines.append(
            (None, "one in flight per pair (A1), for comparison", spread(a1, "{:,.0f} msg/s"))
        )
    return lines  # fmt: skip


def server_env(plan: Plan) -> dict[str, str]:
    env = dict(os.environ)
    if plan.server_src:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(plan.server_src), *filter(None, [env.get("PYTHONPATH")])]
        )
    return env


SERVER_SETTINGS = """\
import dataclasses, json
from taube.server.config import Config
c = Config()
d = getattr(c, "durability", None)
print(json.dumps({
    "fields": [f.name for f in dataclasses.fields(Config)],
    "durability": f"durability={d}" if d else f"sqlite synchronous={c.sqlite_synchronous}",
}))
"""


@functools.cache
def server_settings(env: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """The server's own configuration defaults (from the code that will run)."""
    done = subprocess.run(
        [sys.executable, "-c", SERVER_SETTINGS],
        capture_output=True,
        text=True,
        env=dict(env),
        check=False,
    )
    try:
        settings: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        return {"fields": [], "durability": "unknown"}
    return settings


def settings(plan: Plan) -> dict[str, Any]:
    env = server_env(plan)
    return server_settings(tuple(sorted(env.items())))


def bench_config(plan: Plan) -> str:
    """The server's config for a benchmark: cheap registration, and what was asked."""
    config = BENCH_CONFIG
    if "max_logins_per_s" in settings(plan)["fields"]:
        # Admission control would pace 10,000 registrations at its default login rate.
        config += "\n[admission]\nmax_logins_per_s = 1000000.0\n"
    if "rate_sends_per_s" in settings(plan)["fields"]:
        # One load generator address registers thousands of accounts and its devices
        # send far faster than a person: the per-address and per-device rates are off.
        config += BENCH_RATE
    if "frames_per_s" in settings(plan)["fields"]:
        # Thousands of idle connections from one address, each device far faster than a
        # person: the transport's per-address and per-connection bounds are off.
        config += BENCH_TRANSPORT
    store = {"durability": plan.durability, "store": plan.store}
    if any(store.values()):
        config += "\n[store]\n" + "".join(f'{k} = "{v}"\n' for k, v in store.items() if v)
    if plan.server_config:
        config += "\n" + plan.server_config.read_text()
    return config


def durability(plan: Plan) -> str:
    """The durability setting of the servers under test, as the server's code sees it."""
    extra = f" + {plan.server_config}" if plan.server_config else ""
    if plan.store:
        extra += f", store {plan.store.split('@')[-1]}"
    if plan.durability:
        return f"durability={plan.durability}{extra}"
    return f"{settings(plan)['durability']} (the server's default){extra}"


def parse(argv: Sequence[str] | None) -> Plan:
    parser = argparse.ArgumentParser(
        prog="python -m taube.bench.suite",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Other arguments (e.g. --procs 2, --pairs 50) go to every `taube bench` run.",
    )
    parser.add_argument("--baseline", action="store_true", help="only the relay's throughput")
    parser.add_argument("--runs", type=int, default=1, help="runs per workload (method: 3)")
    parser.add_argument(
        "--only", default=",".join(WORKLOADS), help=f"comma-separated from {','.join(WORKLOADS)}"
    )
    parser.add_argument("--duration", default="10s", help="measured window (method: 20s)")
    parser.add_argument("--rate", default="5000/s", help="Workload B's rate (default 5000/s)")
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections (10,000)")
    parser.add_argument("--group-size", type=int, default=1024, help="group members (1,024)")
    parser.add_argument("--group-rate", default="20/s", help="group messages (default 20/s)")
    parser.add_argument("--relay-write", choices=("batch", "frame"), default="batch")
    parser.add_argument(
        "--durability", choices=("normal", "full"), help="the server's [store] durability"
    )
    parser.add_argument(
        "--store", metavar="URL", help="the server's store, e.g. postgresql://... (fresh per run!)"
    )
    parser.add_argument("--server-config", type=Path, help="TOML appended to the server's")
    parser.add_argument(
        "--server-src", type=Path, help="run the server from this src folder (another checkout)"
    )
    parser.add_argument("--server-cpu", default="0", help="core for the server (default 0)")
    parser.add_argument("--loadgen-cpu", default="1", help="core for the load generator (1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args, rest = parser.parse_known_args(argv)
    only = tuple(w.strip() for w in args.only.split(",") if w.strip())
    if unknown := set(only) - set(WORKLOADS):
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    return Plan(
        runs=max(1, args.runs),
        workloads=("relay",) if args.baseline else only,
        loadgen_args=rest,
        duration=args.duration,
        idle=args.idle,
        group_size=args.group_size,
        rate=args.rate,
        group_rate=args.group_rate,
        relay_write=args.relay_write,
        durability=args.durability,
        store=args.store,
        server_config=args.server_config,
        server_src=args.server_src,
        server_cpu=args.server_cpu,
        loadgen_cpu=args.loadgen_cpu,
        json=args.json,
    )


def main(argv: Sequence[str] | None = None) -> int:
    plan = parse(argv)
    if not pin(plan.server_cpu) or not pin(plan.loadgen_cpu):
        say("warning: cannot pin with taskset; figures will not compare with the method's")
    for name, run in schedule(plan):
        run_workload(plan, name, run)
    if plan.workloads == ("relay",):
        runs = sorted(plan.results.get("relay", []), key=lambda r: float(r["delivered_per_s"]))
        if plan.json and runs:
            print(json.dumps(runs[len(runs) // 2]))  # the median run
        return 0 if runs else 1
    print(f"\ntargets of issue 3 (durability: {durability(plan)}; server on core "
          f"{plan.server_cpu}, load generator on core {plan.loadgen_cpu})")  # fmt: skip
    for met, target, measured in target_lines(plan):
        mark = "info " if met is None else "met  " if met else "SHORT"
        print(f"  {mark}  {target:<52} {measured}")
    if plan.json:
        print(json.dumps({"durability": durability(plan), "runs": plan.results}))
    return 0 if plan.results else 1


if __name__ == "__main__":
    sys.exit(main())
