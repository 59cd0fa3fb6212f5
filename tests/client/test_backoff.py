"""Reconnect backoff: exponential ceiling with a cap, full jitter below it."""

from __future__ import annotations

import random

from taube.client import Backoff


def test_ceiling_doubles_then_caps() -> None:
    b = Backoff(base=0.25, cap=10.0)
    assert [b.ceiling(n) for n in range(7)] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert b.ceiling(10_000) == 10.0


def test_delays_are_jittered_within_the_ceiling() -> None:
    b = Backoff(base=1.0, cap=4.0)
    rng = random.Random(7)
    delays = [b.delay(3, rng) for _ in range(200)]
    assert all(0.0 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 150  # spread out, not lock-step
