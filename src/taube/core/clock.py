"""Time as a dependency: production code takes a ``Clock`` so that tests can pin it."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]
"""Returns the current Unix time in milliseconds."""


def system_clock() -> int:
    return time.time_ns() // 1_000_000
