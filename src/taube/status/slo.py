"""Service level objectives measured on delivery (pure).

An objective: ``target`` (e.g. 0.9995) of canary messages delivered within
``within_ms`` (e.g. 5000 ms), over the calendar month (UTC). ``achieved``: the share
of this month's canary messages delivered in time; ``budget_left``: the share of the
error budget (the ``1 - target`` of messages allowed to miss) not yet spent. It goes
below zero when the objective is missed. Both None before the first measurement.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Objective:
    component: str
    target: float
    within_ms: int

    @property
    def text(self) -> str:
        return (
            f"{self.target * 100:g} % of canary messages delivered within "
            f"{self.within_ms / 1000:g} s, per calendar month"
        )


@dataclass(frozen=True, slots=True)
class SloResult:
    achieved: float | None
    budget_left: float | None


def evaluate(target: float, total: int, good: int) -> SloResult:
    if total <= 0:
        return SloResult(None, None)
    achieved = good / total
    allowed = (1.0 - target) * total
    bad = total - good
    if allowed <= 0:
        return SloResult(achieved, 1.0 if bad == 0 else -float(bad))
    return SloResult(achieved, (allowed - bad) / allowed)


def month_start_ms(now_ms: int) -> int:
    now = dt.datetime.fromtimestamp(now_ms / 1000, tz=dt.UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return int(start.timestamp() * 1000)
