"""``taube bench`` against a real server and the bare relay: short runs, no timing asserted.

Every run must end with every message delivered exactly once, no errors, and
the JSON object carrying the fields scripts rely on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.bench.conftest import QUICK, bench
from tests.serverproc import UNIT_S, ServerProcess

FIELDS = {
    "delivered_per_s", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms",
    "sent_ack_p50_ms", "sent_ack_p99_ms", "errors", "loadgen_saturated", "connections",
    "duration_s", "server_cpu_s_per_1k_msgs", "server_rss_per_conn_kb", "sent", "delivered",
}  # fmt: skip


def assert_clean(result: dict[str, Any]) -> None:
    assert result.keys() >= FIELDS
    assert result["errors"] == {}
    assert result["lost"] == 0
    assert result["duplicates"] == 0
    assert result["drained"] is True
    assert isinstance(result["loadgen_saturated"], bool)


def assert_delivered(result: dict[str, Any], per_message: int = 1) -> None:
    assert_clean(result)
    assert result["sent"] > 0
    assert result["delivered"] == result["sent"] * per_message
    assert result["delivered_per_s"] > 0
    assert result["p50_ms"] is not None
    assert result["p50_ms"] <= result["p99_ms"] <= result["p999_ms"] <= result["max_ms"]
    assert result["sent_ack_p50_ms"] is not None


def test_throughput_against_a_server_reports_everything(
    bench_server: ServerProcess, tmp_path: Path
) -> None:
    accounts = str(tmp_path / "accounts.json")
    result = bench(bench_server.url, *QUICK, "--accounts", accounts)
    assert_delivered(result)
    assert result["mode"] == "throughput"
    assert result["connections"] == 8
    assert result["accounts_registered"] == 8
    # Same machine: the server's pid is found by its listening port.
    assert bench_server.proc is not None
    assert result["server_pid"] == bench_server.proc.pid
    assert result["server_cpu_s_per_1k_msgs"] is not None
    # The saved accounts are reused: nothing new is registered.
    again = bench(bench_server.url, *QUICK, "--accounts", accounts, "--rate", "300/s")
    assert_delivered(again)
    assert (again["mode"], again["accounts_registered"], again["target_rate"]) == (
        "rate",
        0,
        300,
    )
    assert json.loads(Path(accounts).read_text())["server"] == bench_server.url


def test_one_in_flight_over_two_worker_processes(bench_server: ServerProcess) -> None:
    result = bench(bench_server.url, *QUICK, "--one-in-flight", "--procs", "2")
    assert_delivered(result)
    assert (result["mode"], result["procs"]) == ("one_in_flight", 2)


def test_group_fan_out_reaches_every_member(bench_server: ServerProcess) -> None:
    result = bench(bench_server.url, *QUICK, "--group-size", "6", "--rate", "40/s")
    assert_delivered(result, per_message=5)
    assert result["group_size"] == 6
    assert result["group_incomplete"] == 0
    assert result["group_messages"] > 0
    assert result["group_all_p99_ms"] is not None


def test_idle_connections_report_memory_per_connection(bench_server: ServerProcess) -> None:
    result = bench(bench_server.url, "--idle", "20", "--settle", "0.2s")
    assert_clean(result)
    assert (result["mode"], result["connections"], result["sent"]) == ("idle", 20, 0)
    assert result["server_rss_per_conn_kb"] is not None
    assert result["setup_conns_per_s"] > 0


def test_the_bare_relay_carries_the_same_load(relay_url: str) -> None:
    result = bench(relay_url, *QUICK)
    assert_delivered(result)


def test_an_unreachable_server_is_one_error_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "taube.cli", "bench", "--server", "http://127.0.0.1:9", "--json"],
        capture_output=True,
        text=True,
        timeout=30 * UNIT_S,
        check=False,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: bench.unreachable: ")


def test_make_bench_baseline_prints_the_relays_json_last() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "taube.bench.suite", "--baseline", "--json",
         "--server-cpu", "", "--loadgen-cpu", "", *QUICK],
        capture_output=True,
        text=True,
        timeout=60 * UNIT_S,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert_delivered(json.loads(done.stdout.splitlines()[-1]))
