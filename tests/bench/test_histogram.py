"""The latency histogram: exact where it promises, bounded error elsewhere, merges add up."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taube.bench.histogram import SUB_BITS, Histogram, bucket_of, highest_in_bucket

RELATIVE_ERROR = 2.0 ** -(SUB_BITS - 1)


def exact_percentile(values: list[int], p: float) -> int:
    ordered = sorted(values)
    rank = max(1, math.ceil(round(len(ordered) * p / 100, 6)))
    return ordered[rank - 1]


def test_small_values_are_exact() -> None:
    hist = Histogram()
    hist.record_many(range(1, 1001))
    assert hist.percentile(50) == 500
    assert hist.percentile(99) == 990
    assert hist.percentile(99.9) == 999
    assert hist.percentile(100) == 1000
    assert (hist.count, hist.min, hist.max) == (1000, 1, 1000)


def test_an_empty_histogram_has_no_percentiles() -> None:
    hist = Histogram()
    assert hist.percentile(50) is None
    assert hist.mean() is None


@pytest.mark.parametrize("p", [0, -1, 100.5])
def test_percentiles_outside_0_100_are_refused(p: float) -> None:
    with pytest.raises(ValueError, match="percentile"):
        Histogram().percentile(p)


def test_negative_values_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        Histogram().record(-1)


def test_buckets_grow_with_values_and_contain_them() -> None:
    keys = [bucket_of(v) for v in range(0, 200_000, 7)]
    assert keys == sorted(keys)
    for value in (0, 1023, 1024, 1025, 4097, 123_456, 10**9):
        key = bucket_of(value)
        assert value <= highest_in_bucket(key) <= value * (1 + RELATIVE_ERROR)


@given(
    st.lists(st.integers(min_value=0, max_value=10**8), min_size=1, max_size=400),
    st.sampled_from([50.0, 90.0, 99.0, 99.9, 100.0]),
)
def test_percentiles_are_never_low_and_at_most_0_2_percent_high(
    values: list[int], p: float
) -> None:
    hist = Histogram()
    hist.record_many(values)
    exact = exact_percentile(values, p)
    got = hist.percentile(p)
    assert got is not None
    assert exact <= got <= exact * (1 + RELATIVE_ERROR)


def test_merging_equals_recording_everything_in_one() -> None:
    rng = random.Random(7)
    parts = [[int(rng.lognormvariate(6, 1.5)) for _ in range(5000)] for _ in range(3)]
    merged, whole = Histogram(), Histogram()
    for part in parts:
        hist = Histogram()
        hist.record_many(part)
        merged.merge(Histogram.from_wire(hist.to_wire()))  # as workers send them home
        whole.record_many(part)
    merged.merge(Histogram())  # an idle worker's empty histogram changes nothing
    assert merged.buckets == whole.buckets
    assert (merged.count, merged.total, merged.min, merged.max) == (
        whole.count,
        whole.total,
        whole.min,
        whole.max,
    )
    for p in (50, 90, 99, 99.9):
        assert merged.percentile(p) == whole.percentile(p)
