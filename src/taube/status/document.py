"""The status document (``/status.json``): assembled from measurements (pure), then
signed (signing.py). Its shape is ``taube.protocol.api.StatusDocument``.

The live view (``LiveView``) is what the store says about the last minute or two:
every prober's aggregates, which nodes still report, which nodes are known. The
same view drives the automatic incidents (service.py), so the page and the
incidents never disagree.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from taube.status.aggregates import MINUTE_MS, Aggregate, decode_hist, merged, minute_of
from taube.status.incidents import impact_of, incident_dict
from taube.status.slo import Objective, evaluate
from taube.status.verdict import (
    CORE_COMPONENTS,
    NODE_PREFIX,
    Status,
    Thresholds,
    component_name,
    component_statuses,
    day_summary,
    is_bad,
    overall,
    uptime_of,
    worst,
)
from taube.store.base import IncidentRecord, MaintenanceRecord, ProbeMinuteRecord

VERSION: Final = 1
DAYS: Final = 90
DAY_MS: Final = 86_400_000
MIN_SAMPLES: Final = 3
"""Fewer probes than this in the current minute: judge it together with the previous."""
LATENCY_WINDOW_S: Final = 300


@dataclass(frozen=True, slots=True)
class LiveView:
    now_ms: int
    window: dict[tuple[str, str], Aggregate]
    """(prober, component) -> aggregate over the live window."""
    reporting: frozenset[str]
    known_nodes: frozenset[str]
    last_report_ms: dict[str, int]
    statuses: dict[str, Status]
    latency: Aggregate
    """Every prober's ``send`` over the last five minutes."""


def live_view(
    rows: Sequence[ProbeMinuteRecord],
    *,
    now_ms: int,
    last_report_ms: Mapping[str, int],
    known_nodes: Sequence[str],
    nodes_seen: int,
    stale_ms: int,
    thresholds: Thresholds,
    quorum: int = 0,
) -> LiveView:
    """``rows``: probe rows of at least the last five minutes; ``last_report_ms``: each
    node's newest write; a node silent for ``stale_ms`` no longer reports."""
    current = minute_of(now_ms)
    by_minute: dict[tuple[str, str], dict[int, Aggregate]] = defaultdict(dict)
    latency = Aggregate()
    for r in rows:
        agg = Aggregate(r.count, r.ok, r.within, decode_hist(r.hist))
        by_minute[(r.node, r.component)][r.minute_ms] = agg
        if r.component == "send" and r.minute_ms >= now_ms - LATENCY_WINDOW_S * 1000:
            latency = latency.merge(agg)
    window: dict[tuple[str, str], Aggregate] = {}
    for key, minutes in by_minute.items():
        now_agg = minutes.get(current, Aggregate())
        if now_agg.count < MIN_SAMPLES:
            now_agg = now_agg.merge(minutes.get(current - MINUTE_MS, Aggregate()))
        if now_agg.count:
            window[key] = now_agg
    reporting = frozenset(n for n, at in last_report_ms.items() if now_ms - at <= stale_ms)
    known = frozenset(known_nodes) | reporting
    statuses = component_statuses(
        window,
        known_nodes=known,
        reporting=reporting,
        nodes_seen=nodes_seen,
        thresholds=thresholds,
        quorum=quorum,
    )
    return LiveView(now_ms, window, reporting, known, dict(last_report_ms), statuses, latency)


def minute_statuses(
    rows: Sequence[ProbeMinuteRecord],
    minute_ms: int,
    *,
    known_nodes: Sequence[str],
    thresholds: Thresholds,
    quorum: int = 0,
) -> dict[str, Status]:
    """The verdict of one closed minute from its rows alone (``rows`` may hold more
    minutes: the five before it decide the quorum). Unknown components are left out."""
    window = {
        (r.node, r.component): Aggregate(r.count, r.ok, r.within, decode_hist(r.hist))
        for r in rows
        if r.minute_ms == minute_ms
    }
    reporting = {node for node, _ in window}
    seen = {r.node for r in rows if minute_ms - 5 * MINUTE_MS <= r.minute_ms <= minute_ms}
    if not reporting:
        return {}
    statuses = component_statuses(
        window,
        known_nodes=set(known_nodes) | reporting,
        reporting=reporting,
        nodes_seen=len(seen),
        thresholds=thresholds,
        quorum=quorum,
    )
    return {c: s for c, s in statuses.items() if s != "unknown"}


def with_live(measured: Mapping[str, Status], live: Mapping[str, Status]) -> dict[str, Status]:
    """A closed minute's statuses: what its probes say, made as bad as what the live
    verdict showed during the minute (``live``: the worst bad status seen per component).

    Probers stop probing a node they no longer hear within seconds, so a short node
    outage split over two minutes can leave each minute above the operational share of
    probes; the live rule (a known node that stopped reporting is down) saw it, opened
    the incident and showed it on the page, and the uptime bar must agree."""
    out = dict(measured)
    for component, status in live.items():
        out[component] = worst((out.get(component, status), status))
    return out


# ---------------------------------------------------------------- findings


def _measured(view: LiveView, component: str) -> Aggregate:
    return merged(a for (p, c), a in view.window.items() if c == component and p in view.reporting)


def finding(view: LiveView, component: str, thresholds: Thresholds) -> str:
    """A plain sentence of what is measured to be wrong with ``component``."""
    agg = _measured(view, component)
    counted = f"{agg.ok} of {agg.count}"
    slow = ""
    if agg.p99_ms is not None and agg.p99_ms > thresholds.degraded_p99_ms:
        slow = f"; p99 latency {agg.p99_ms:.0f} ms, above {thresholds.degraded_p99_ms:.0f} ms"
    if component.startswith(NODE_PREFIX):
        node = component.removeprefix(NODE_PREFIX)
        if node not in view.reporting:
            last = view.last_report_ms.get(node)
            since = "" if last is None else f" since {_hms(last)} UTC"
            return f"Node {node} stopped reporting: no canary results from it{since}."
        return (
            f"Messages to node {node} are not being delivered: {counted} canary messages "
            f"delivered in the last minute{slow}."
        )
    what = {
        "send": f"Messages are not being delivered reliably: {counted} canary messages "
        f"delivered in the last minute{slow}.",
        "connect": f"Connecting fails: {counted} canary connection checks passed{slow}.",
        "api": f"The HTTP API fails: {counted} canary requests answered{slow}.",
        "web": f"The web client is not served: {counted} canary page loads worked{slow}.",
        "store": f"The store does not answer: {counted} canary queries answered{slow}.",
        "bus": f"The message bus fails: {counted} canary messages came back{slow}.",
    }
    return what.get(component, f"{component_name(component)}: {counted} checks passed.")


def _hms(at_ms: int) -> str:
    return dt.datetime.fromtimestamp(at_ms / 1000, tz=dt.UTC).strftime("%H:%M:%S")


STATUS_WORDS: Final = {
    "operational": "operational",
    "degraded": "degraded",
    "partial_outage": "partial outage",
    "major_outage": "major outage",
    "unknown": "unknown",
}


def canary_picture(
    view: LiveView, thresholds: Thresholds, incident_components: Sequence[str] = ()
) -> tuple[bool, bool, str, str, tuple[str, ...], str]:
    """(bad, known, title, impact, components, text) of the canaries' picture."""
    bad = sorted(c for c, s in view.statuses.items() if is_bad(s))
    known = all(view.statuses.get(c, "unknown") != "unknown" for c in incident_components)
    if not bad:
        return False, known, "", "minor", (), ""
    worst_status = worst(view.statuses[c] for c in bad)
    names = ", ".join(component_name(c) for c in bad)
    title = f"{names}: {STATUS_WORDS[worst_status]}"
    text = " ".join(finding(view, c, thresholds) for c in bad)
    return True, known, title, impact_of(worst_status), tuple(bad), text


# ---------------------------------------------------------------- the document


def day_dates(now_ms: int) -> list[tuple[str, int]]:
    """(YYYY-MM-DD, day start) of the last 90 UTC days, oldest first, today last."""
    today = now_ms - now_ms % DAY_MS
    return [
        (
            dt.datetime.fromtimestamp((today - i * DAY_MS) / 1000, tz=dt.UTC).strftime("%Y-%m-%d"),
            today - i * DAY_MS,
        )
        for i in range(DAYS - 1, -1, -1)
    ]


def assemble(
    *,
    node: str,
    view: LiveView,
    day_counts: Sequence[tuple[str, int, str, int]],
    objective: Objective,
    slo_totals: tuple[int, int, int],
    open_incidents: Sequence[IncidentRecord],
    recent_incidents: Sequence[IncidentRecord],
    maintenance: Sequence[MaintenanceRecord],
    public_key: str,
) -> dict[str, Any]:
    """The unsigned document."""
    counts: dict[str, dict[int, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for component, day, status, minutes in day_counts:
        counts[component][day][status] = minutes
    component_ids = list(CORE_COMPONENTS) + [NODE_PREFIX + n for n in sorted(view.known_nodes)]
    dates = day_dates(view.now_ms)
    components = []
    for cid in component_ids:
        per_day = counts.get(cid, {})
        days = []
        for date, start in dates:
            summary = day_summary(date, per_day.get(start, {}))
            days.append({"date": date, "status": summary.status, "uptime": summary.uptime})
        components.append(
            {
                "id": cid,
                "name": component_name(cid),
                "status": view.statuses.get(cid, "unknown"),
                "uptime_90d": uptime_of(per_day.get(start, {}) for _, start in dates),
                "days": days,
            }
        )
    count, _ok, within = slo_totals
    slo = evaluate(objective.target, count, within)
    return {
        "version": VERSION,
        "generated_ms": view.now_ms,
        "node": node,
        "verdict": overall(view.statuses),
        "components": components,
        "latency": {
            "p50_ms": view.latency.p50_ms,
            "p99_ms": view.latency.p99_ms,
            "window_s": LATENCY_WINDOW_S,
        },
        "slos": [
            {
                "component": objective.component,
                "objective": objective.text,
                "target": objective.target,
                "achieved": slo.achieved,
                "budget_left": slo.budget_left,
            }
        ],
        "incidents": {
            "open": [incident_dict(i) for i in open_incidents],
            "recent": [incident_dict(i) for i in recent_incidents],
        },
        "maintenance": [
            {
                "id": m.id,
                "title": m.title,
                "starts_ms": m.starts_ms,
                "ends_ms": m.ends_ms,
                "components": list(m.components),
                "text": m.text,
            }
            for m in maintenance
        ],
        "public_key": public_key,
    }
