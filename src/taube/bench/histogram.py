"""A log-linear latency histogram in the spirit of HdrHistogram, small enough to read.

Values are non-negative integers (the load generator records microseconds).
Below ``2**SUB_BITS`` every value has its own bucket; above, a value shares its
bucket with its neighbours that agree in the top ``SUB_BITS`` bits, so a
bucket's width is at most ``1 / 2**(SUB_BITS - 1)`` (0.2 %) of the values in it.
Invariants: ``count`` is the sum of the buckets; ``min`` and ``max`` are exact;
a percentile is reported as the highest value of its bucket, clamped to the
exact ``max``, so it is never below the true percentile and at most 0.2 % above.
Histograms merge by adding buckets, so worker processes can send theirs home.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

SUB_BITS = 10
_LINEAR = 1 << SUB_BITS

HistogramWire = tuple[dict[int, int], int, int, int, int]
"""A histogram as plain data (buckets, count, total, min, max), to send between processes."""


def bucket_of(value: int) -> int:
    """The bucket key of ``value``; keys grow with values."""
    if value < _LINEAR:
        return value
    shift = value.bit_length() - SUB_BITS
    return (shift << SUB_BITS) | (value >> shift)


def highest_in_bucket(key: int) -> int:
    """The largest value that falls into bucket ``key``."""
    if key < _LINEAR:
        return key
    shift = key >> SUB_BITS
    return (((key & (_LINEAR - 1)) + 1) << shift) - 1


class Histogram:
    """Counts of values in log-linear buckets, with an exact min, max and total."""

    __slots__ = ("buckets", "count", "max", "min", "total")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0

    def record(self, value: int, times: int = 1) -> None:
        if value < 0:
            raise ValueError("histogram values are never negative")
        if times <= 0:
            return
        key = bucket_of(value)
        self.buckets[key] = self.buckets.get(key, 0) + times
        self.min = value if self.count == 0 else min(self.min, value)
        self.max = max(self.max, value)
        self.count += times
        self.total += value * times

    def record_many(self, values: Iterable[int]) -> None:
        """Record many values; counting distinct values first keeps this fast in Python."""
        for value, times in Counter(values).items():
            self.record(value, times)

    def merge(self, other: Histogram) -> None:
        """Add ``other``'s counts to this histogram."""
        if other.count == 0:
            return
        for key, times in other.buckets.items():
            self.buckets[key] = self.buckets.get(key, 0) + times
        self.min = other.min if self.count == 0 else min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total

    def percentile(self, p: float) -> int | None:
        """The nearest-rank ``p``-th percentile (0 < p <= 100), None when empty."""
        if not 0 < p <= 100:
            raise ValueError("percentile must be in (0, 100]")
        if self.count == 0:
            return None
        # Rounded first so that 99.9 % of 1,000 is rank 999, not 1,000 by float error.
        rank = max(1, math.ceil(round(self.count * p / 100, 6)))
        seen = 0
        for key in sorted(self.buckets):
            seen += self.buckets[key]
            if seen >= rank:
                return max(self.min, min(highest_in_bucket(key), self.max))
        return self.max

    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def to_wire(self) -> HistogramWire:
        """A plain tuple for sending between processes."""
        return (self.buckets, self.count, self.total, self.min, self.max)

    @classmethod
    def from_wire(cls, wire: HistogramWire) -> Histogram:
        hist = cls()
        hist.buckets, hist.count, hist.total, hist.min, hist.max = (dict(wire[0]), *wire[1:])
        return hist
