"""Reconnect delays: exponential backoff with full jitter. No I/O; the RNG is passed in.

Full jitter (a uniformly random delay between 0 and the exponential ceiling)
spreads a crowd of clients that lost the same node, so they do not return in
lock-step and knock it over again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """``delay(n)`` for the n-th consecutive failure (0-based): U(0, min(cap, base * 2**n))."""

    base: float = 0.25
    cap: float = 10.0

    def ceiling(self, attempt: int) -> float:
        # Clamp the exponent so huge attempt counts cannot overflow a float.
        return min(self.cap, self.base * 2.0 ** min(attempt, 60))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        return (rng or random).uniform(0.0, self.ceiling(attempt))
