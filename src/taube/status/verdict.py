"""The verdict rules: from probers' aggregates to component statuses (pure).

Rules (docs/status.md, "Verdicts"):

- One prober's view of a component in a window: no probes, no opinion; else by the
  share of probes that passed: at least ``operational_from`` (90 %) operational (or
  degraded if the p99 latency is above ``degraded_p99_ms``), at least
  ``degraded_from`` (70 %) degraded, at least ``partial_from`` (30 %) partial
  outage, below that major outage.
- A component's status needs a quorum of probers: the worst status that at least
  ``quorum`` probers with an opinion agree on (each says that bad or worse). With
  fewer opinions than the quorum, or none, it is ``unknown``: time nobody measured
  is never shown as up.
- The quorum is configured, or else a majority of the nodes seen reporting in the
  last five minutes (one, for a single node).
- Node ``node:X``: probes sent to X by the others (by X itself when it is alone). A
  known node that stopped writing results while others still do is a major outage
  (the store, shared by all nodes, is the witness; no quorum is needed).
- The overall verdict: the worst of the service components; a node that is not
  operational makes it at least degraded; all known nodes down make it major.
  Unknown only when nothing at all is known.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from taube.status.aggregates import Aggregate

Status = Literal["operational", "degraded", "partial_outage", "major_outage", "unknown"]
SEVERITY: Final[dict[str, int]] = {
    "operational": 0,
    "degraded": 1,
    "partial_outage": 2,
    "major_outage": 3,
}
BY_SEVERITY: Final[tuple[Status, ...]] = (
    "operational",
    "degraded",
    "partial_outage",
    "major_outage",
)
CORE_COMPONENTS: Final[tuple[str, ...]] = ("connect", "send", "api", "web", "store", "bus")
COMPONENT_NAMES: Final[dict[str, str]] = {
    "connect": "Connect",
    "send": "Send & deliver",
    "api": "HTTP API",
    "web": "Web client",
    "store": "Store",
    "bus": "Bus",
}
NODE_PREFIX: Final = "node:"


def component_name(component: str) -> str:
    if component.startswith(NODE_PREFIX):
        return f"Node {component.removeprefix(NODE_PREFIX)}"
    return COMPONENT_NAMES.get(component, component)


def is_bad(status: str) -> bool:
    return SEVERITY.get(status, 0) > 0


def worst(statuses: Iterable[str]) -> Status:
    """The most severe known status; ``unknown`` if none is known."""
    known = [s for s in statuses if s in SEVERITY]
    if not known:
        return "unknown"
    return BY_SEVERITY[max(SEVERITY[s] for s in known)]


@dataclass(frozen=True, slots=True)
class Thresholds:
    operational_from: float = 0.9
    degraded_from: float = 0.7
    partial_from: float = 0.3
    degraded_p99_ms: float = 2000.0


def prober_status(aggregate: Aggregate, thresholds: Thresholds) -> Status | None:
    """One prober's opinion of a component from its probes in a window."""
    if aggregate.count == 0:
        return None
    share = aggregate.ok / aggregate.count
    if share >= thresholds.operational_from:
        p99 = aggregate.p99_ms
        if p99 is not None and p99 > thresholds.degraded_p99_ms:
            return "degraded"
        return "operational"
    if share >= thresholds.degraded_from:
        return "degraded"
    if share >= thresholds.partial_from:
        return "partial_outage"
    return "major_outage"


def quorum_size(nodes_seen: int, configured: int = 0) -> int:
    """``configured`` if set, else a majority of the nodes seen (at least one)."""
    if configured > 0:
        return configured
    return max(1, nodes_seen // 2 + 1)


def agree(opinions: Collection[Status], quorum: int) -> Status:
    """The worst status at least ``quorum`` opinions agree on (each that bad or worse)."""
    if len(opinions) < max(1, quorum) or not opinions:
        return "unknown"
    ranked = sorted((SEVERITY[o] for o in opinions), reverse=True)
    return BY_SEVERITY[ranked[max(1, quorum) - 1]]


Window = Mapping[tuple[str, str], Aggregate]
"""(prober node, component) -> its aggregate in the window judged."""


def component_statuses(
    window: Window,
    *,
    known_nodes: Collection[str],
    reporting: Collection[str],
    nodes_seen: int,
    thresholds: Thresholds,
    quorum: int = 0,
) -> dict[str, Status]:
    """Every component's status in one window. ``known_nodes``: the nodes to show;
    ``reporting``: the nodes whose results are in the window; ``nodes_seen``: how
    many nodes reported in the last five minutes (for the default quorum)."""
    needed = quorum_size(nodes_seen, quorum)
    opinions: dict[str, list[Status]] = {}
    for (prober, component), aggregate in window.items():
        opinion = prober_status(aggregate, thresholds)
        if opinion is not None and prober in reporting:
            opinions.setdefault(component, []).append(opinion)
    result: dict[str, Status] = {c: agree(opinions.get(c, []), needed) for c in CORE_COMPONENTS}
    for node in sorted(known_nodes):
        component = NODE_PREFIX + node
        if node not in reporting and reporting:
            result[component] = "major_outage"
            continue
        views = opinions.get(component, [])
        # Only the others judge a node, unless it is alone (it probes itself).
        result[component] = agree(views, min(needed, max(1, len(reporting) - 1)))
    return result


def overall(statuses: Mapping[str, str]) -> Status:
    core = [s for c, s in statuses.items() if not c.startswith(NODE_PREFIX)]
    nodes = [s for c, s in statuses.items() if c.startswith(NODE_PREFIX)]
    verdict = worst(core)
    known_nodes = [s for s in nodes if s in SEVERITY]
    if known_nodes:
        if all(s == "major_outage" for s in known_nodes):
            node_part: Status = "major_outage"
        elif any(is_bad(s) for s in known_nodes):
            node_part = "degraded"
        else:
            node_part = "operational"
        verdict = worst([verdict, node_part]) if verdict != "unknown" else node_part
    return verdict


# ---------------------------------------------------------------- days


@dataclass(frozen=True, slots=True)
class Day:
    date: str
    status: Status
    uptime: float | None


def day_summary(date: str, minutes: Mapping[str, int]) -> Day:
    """A day from its minutes per status: its worst status, and its uptime: the share
    of measured minutes that were operational or degraded (``unknown`` minutes, not
    measured, count neither way). No measured minute: unknown, uptime None."""
    known = {s: n for s, n in minutes.items() if s in SEVERITY and n > 0}
    total = sum(known.values())
    if total == 0:
        return Day(date, "unknown", None)
    up = known.get("operational", 0) + known.get("degraded", 0)
    return Day(date, worst(known), up / total)


def uptime_of(days: Iterable[Mapping[str, int]]) -> float | None:
    up = total = 0
    for minutes in days:
        for status, n in minutes.items():
            if status in SEVERITY:
                total += n
                if status in ("operational", "degraded"):
                    up += n
    return None if total == 0 else up / total
