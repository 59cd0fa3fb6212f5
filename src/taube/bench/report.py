"""The result of one run: one flat object, printed for people or as one JSON line.

Field names are a contract for scripts (``make bench``, CI): add fields, do not
rename them. Times are milliseconds (``*_ms``) or seconds (``*_s``); a figure
that could not be measured is ``null``, never zero.
"""

from __future__ import annotations

from typing import Any

import msgspec

MODE_TITLES = {
    "throughput": "throughput, pipelined (Workload A)",
    "one_in_flight": "throughput, one message in flight per pair (Workload A1)",
    "rate": "latency at a fixed rate (Workload B)",
    "idle": "idle connections (Workload C)",
    "group": "group fan-out",
}


class Report(msgspec.Struct, kw_only=True):
    mode: str
    server: str
    connections: int
    pairs: int
    procs: int
    payload_bytes: int
    ack_delay_ms: float
    duration_s: float
    warmup_s: float
    target_rate: float | None = None
    # traffic
    sent: int = 0
    delivered: int = 0
    lost: int = 0
    refused: int = 0
    duplicates: int = 0
    reordered: int = 0
    stale_items: int = 0
    drained: bool = True
    drain_s: float = 0.0
    delivered_per_s: float = 0.0
    send_rate_per_s: float = 0.0
    # send -> arrival on the recipient's socket
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    max_ms: float | None = None
    mean_ms: float | None = None
    latency_samples: int = 0
    # send -> "sent" ack on the sender's socket
    sent_ack_p50_ms: float | None = None
    sent_ack_p90_ms: float | None = None
    sent_ack_p99_ms: float | None = None
    sent_ack_p999_ms: float | None = None
    sent_ack_max_ms: float | None = None
    # group fan-out: per message, the time until the last member had it
    group_size: int | None = None
    group_messages: int | None = None
    group_incomplete: int | None = None
    group_all_p50_ms: float | None = None
    group_all_p90_ms: float | None = None
    group_all_p99_ms: float | None = None
    group_all_max_ms: float | None = None
    # setup
    accounts_registered: int = 0
    register_per_s: float | None = None
    setup_s: float = 0.0
    setup_conns_per_s: float = 0.0
    setup_retries: int = 0
    errors: dict[str, int] = {}
    # the load generator itself
    loadgen_saturated: bool = False
    saturation: list[str] = []
    loadgen_cpu_pct: float | None = None
    loop_lag_p99_ms: float | None = None
    loop_lag_max_ms: float | None = None
    # the server, when it runs on this machine and its pid is known
    server_pid: int | None = None
    server_cpu_pct: float | None = None
    server_cpu_s_per_1k_msgs: float | None = None
    server_cpu_us_per_msg: float | None = None
    server_rss_kb: int | None = None
    server_rss_before_kb: int | None = None
    server_rss_per_conn_kb: float | None = None
    # the machine during the window
    cpu_busy_pct: dict[str, float] = {}
    other_cpu_pct: float | None = None
    noisy: bool = False
    started_at: str = ""

    def to_json(self) -> str:
        return msgspec.json.encode(self).decode()


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _latency_line(label: str, r: Report, prefix: str) -> str:
    get: dict[str, Any] = msgspec.structs.asdict(r)
    parts = [
        f"{name} {_ms(get[f'{prefix}{key}_ms'])}"
        for name, key in (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99.9", "p999"))
        if f"{prefix}{key}_ms" in get
    ]
    parts.append(f"max {_ms(get[f'{prefix}max_ms'])}")
    return f"{label:<14}" + "  ".join(parts) + " ms"


def format_human(r: Report) -> str:
    """A few aligned lines for people; the JSON line has everything."""
    lines = [
        f"taube bench: {MODE_TITLES.get(r.mode, r.mode)}",
        f"{'server':<14}{r.server}" + (f" (pid {r.server_pid})" if r.server_pid else ""),
        f"{'connections':<14}{r.connections:,} ({r.pairs:,} pairs)"
        if r.mode in ("throughput", "one_in_flight", "rate")
        else f"{'connections':<14}{r.connections:,}",
        f"{'setup':<14}{r.connections:,} logins in {r.setup_s:.2f} s = "
        f"{r.setup_conns_per_s:,.0f}/s"
        + (f" ({r.setup_retries:,} retries: the server shed load)" if r.setup_retries else "")
        + (
            f"; {r.accounts_registered:,} accounts registered ({r.register_per_s:,.0f}/s)"
            if r.accounts_registered and r.register_per_s
            else ""
        ),
    ]
    if r.mode != "idle":
        window = f"{r.duration_s:g} s after {r.warmup_s:g} s warm-up, {r.procs} worker process"
        lines.append(f"{'window':<14}{window}{'es' if r.procs > 1 else ''}")
        if r.target_rate:
            lines.append(
                f"{'rate':<14}target {r.target_rate:,.0f}/s, sent {r.send_rate_per_s:,.0f}/s"
            )
        lines.append(f"{'delivered':<14}{r.delivered_per_s:,.0f} messages/s")
        check = "all arrived" if r.lost == 0 else f"{r.lost:,} MISSING"
        if not r.drained:
            check += f" (not drained after {r.drain_s:.1f} s)"
        sent = f"{r.sent:,}"
        if r.group_size:
            sent += f" x {r.group_size - 1:,} members"
        lines.append(
            f"{'sent/received':<14}{sent} / {r.delivered:,}: {check}; "
            f"{r.duplicates} duplicates, {r.reordered} out of order"
        )
        lines.append(_latency_line("send->arrival", r, ""))
        lines.append(_latency_line('send->"sent"', r, "sent_ack_"))
        if r.group_size:
            lines.append(
                _latency_line("all members", r, "group_all_")
                + f"  ({r.group_messages:,} messages, {r.group_incomplete} incomplete)"
            )
    else:
        lines.append(
            f"{'server RSS':<14}{_kb(r.server_rss_before_kb)} before, {_kb(r.server_rss_kb)} "
            f"after: {_kb(r.server_rss_per_conn_kb)} per connection"
        )
    if r.server_cpu_pct is not None:
        lines.append(
            f"{'server CPU':<14}{r.server_cpu_pct:.0f} % of a core"
            + (
                f", {r.server_cpu_s_per_1k_msgs:.4f} s per 1,000 messages "
                f"({r.server_cpu_us_per_msg:.1f} µs/msg)"
                if r.server_cpu_s_per_1k_msgs is not None and r.server_cpu_us_per_msg is not None
                else ""
            )
        )
    if r.mode != "idle":
        lag = f", loop lag p99 {_ms(r.loop_lag_p99_ms)} ms" if r.loop_lag_p99_ms is not None else ""
        cpu = f"CPU {r.loadgen_cpu_pct:.0f} %" if r.loadgen_cpu_pct is not None else "CPU -"
        verdict = (
            "SATURATED: " + "; ".join(r.saturation) if r.loadgen_saturated else "not saturated"
        )
        lines.append(f"{'load gen':<14}{cpu}{lag}; {verdict}")
    if r.cpu_busy_pct:
        cores = ", ".join(f"cpu{core} {pct:.0f} %" for core, pct in r.cpu_busy_pct.items())
        other = (
            f"; other processes ~{r.other_cpu_pct:.0f} points"
            + (" (NOISY: repeat the run)" if r.noisy else "")
            if r.other_cpu_pct is not None
            else ""
        )
        lines.append(f"{'cores busy':<14}{cores}{other}")
    errors = ", ".join(f"{code} x{n}" for code, n in sorted(r.errors.items())) or "none"
    lines.append(f"{'errors':<14}{errors}")
    return "\n".join(lines)


def _kb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} KiB"
