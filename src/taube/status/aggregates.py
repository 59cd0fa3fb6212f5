"""Per-minute canary aggregates: counts, successes and a latency histogram.

A prober adds each probe's outcome to the aggregate of (component, minute of the
outcome); the aggregates of the current and the previous minute are written to the
store (replacing the row, so a rewrite is harmless) every canary interval. Latencies
go into fixed buckets that grow by 25 % from 1 ms to 60 s, so that histograms of
different probers and minutes merge by adding counts; a percentile is reported as
the upper bound of its bucket (never better than measured).
"""

from __future__ import annotations

import bisect
import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

MINUTE_MS = 60_000
BOUNDS_MS: tuple[float, ...] = tuple(round(1.25**i, 2) for i in range(0, 50))
"""Upper bounds of the latency buckets (the last one is about 70 s); slower goes last."""


def minute_of(t_ms: int) -> int:
    return t_ms - t_ms % MINUTE_MS


def bucket_of(latency_ms: float) -> int:
    return min(bisect.bisect_left(BOUNDS_MS, latency_ms), len(BOUNDS_MS) - 1)


def percentile(hist: Counter[int], p: float) -> float | None:
    """The ``p`` (0..100) percentile of a histogram as its bucket's upper bound."""
    total = sum(hist.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(total * p / 100))
    seen = 0
    for index in sorted(hist):
        seen += hist[index]
        if seen >= rank:
            return BOUNDS_MS[index]
    return BOUNDS_MS[-1]  # unreachable: the loop reaches total


def encode_hist(hist: Counter[int]) -> str:
    return json.dumps({str(k): v for k, v in sorted(hist.items()) if v})


def decode_hist(text: str) -> Counter[int]:
    try:
        raw = json.loads(text or "{}")
        return Counter({int(k): int(v) for k, v in raw.items()})
    except (ValueError, AttributeError, TypeError):
        return Counter()


@dataclass
class Aggregate:
    """Outcomes of one component's probes in one window (a minute, or several merged)."""

    count: int = 0
    ok: int = 0
    within: int = 0
    """Successes within the SLO's latency bound (send)."""
    hist: Counter[int] = field(default_factory=Counter)

    def add(self, ok: bool, latency_ms: float | None = None, within: bool = False) -> None:
        self.count += 1
        if ok:
            self.ok += 1
            if within:
                self.within += 1
            if latency_ms is not None:
                self.hist[bucket_of(latency_ms)] += 1

    def merge(self, other: Aggregate) -> Aggregate:
        return Aggregate(
            self.count + other.count,
            self.ok + other.ok,
            self.within + other.within,
            self.hist + other.hist,
        )

    @property
    def p50_ms(self) -> float | None:
        return percentile(self.hist, 50)

    @property
    def p99_ms(self) -> float | None:
        return percentile(self.hist, 99)


def merged(aggregates: Iterable[Aggregate]) -> Aggregate:
    total = Aggregate()
    for aggregate in aggregates:
        total = total.merge(aggregate)
    return total
