"""User reports ("I can't send / receive / connect"), measured (pure).

Reports are counted per minute in the store (all nodes add to the same counts). The
recent rate is the larger of the current and the previous minute's count; the
baseline is the mean per minute over the ``window`` minutes before those two. A
spike is a recent rate of at least ``min_count`` and above ``factor`` times the
baseline (a baseline below one report a minute counts as one): a burst opens an
"investigating" incident, a normal trickle does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from taube.status.aggregates import MINUTE_MS

KINDS: Final = ("send", "receive", "connect")
COMPONENT_OF_KIND: Final = {"send": "send", "receive": "send", "connect": "connect"}


@dataclass(frozen=True, slots=True)
class ReportRule:
    window_min: int = 60
    factor: float = 5.0
    min_count: int = 10


@dataclass(frozen=True, slots=True)
class Spike:
    recent: int
    baseline: float
    by_kind: dict[str, int]


def detect_spike(
    counts: Mapping[int, Mapping[str, int]], now_ms: int, rule: ReportRule
) -> Spike | None:
    """``counts``: minute start -> kind -> reports. A Spike, or None for normal."""
    current = now_ms - now_ms % MINUTE_MS
    recent_minutes = (current, current - MINUTE_MS)
    totals = {m: sum(counts.get(m, {}).values()) for m in recent_minutes}
    busiest = max(recent_minutes, key=lambda m: totals[m])
    recent = totals[busiest]
    before = [current - MINUTE_MS * (i + 2) for i in range(rule.window_min)]
    baseline = sum(sum(counts.get(m, {}).values()) for m in before) / max(1, rule.window_min)
    if recent < rule.min_count or recent <= rule.factor * max(1.0, baseline):
        return None
    return Spike(recent, baseline, dict(counts.get(busiest, {})))


def describe_spike(spike: Spike) -> str:
    kinds = ", ".join(f"{n} cannot {k}" for k, n in sorted(spike.by_kind.items()) if n)
    return (
        f"Users report problems: {spike.recent} reports in a minute ({kinds}), "
        f"against a usual {spike.baseline:.1f} a minute. We are looking into it."
    )
