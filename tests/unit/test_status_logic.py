"""Pure status logic: verdicts and quorum, unknown time, SLO math, report spikes, the
incident state machine and planner, histograms."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taube.status.aggregates import MINUTE_MS, Aggregate, bucket_of, percentile
from taube.status.document import with_live
from taube.status.incidents import Picture, can_move, plan
from taube.status.reports import ReportRule, detect_spike
from taube.status.slo import evaluate, month_start_ms
from taube.status.verdict import (
    SEVERITY,
    Thresholds,
    agree,
    component_statuses,
    day_summary,
    overall,
    prober_status,
    quorum_size,
    uptime_of,
)
from taube.store.base import IncidentRecord, IncidentUpdateRecord

T = Thresholds()
STATUSES = st.sampled_from(["operational", "degraded", "partial_outage", "major_outage"])


def agg(count: int, ok: int, latency_ms: float = 10.0) -> Aggregate:
    a = Aggregate()
    for i in range(count):
        a.add(i < ok, latency_ms, True)
    return a


# ---------------------------------------------------------------- verdicts


def test_one_probers_view_follows_the_share_of_probes_that_passed() -> None:
    assert prober_status(Aggregate(), T) is None
    assert prober_status(agg(12, 12), T) == "operational"
    assert prober_status(agg(12, 11), T) == "operational"  # one lost canary is no outage
    assert prober_status(agg(10, 8), T) == "degraded"
    assert prober_status(agg(10, 5), T) == "partial_outage"
    assert prober_status(agg(12, 0), T) == "major_outage"
    assert prober_status(agg(10, 10, latency_ms=3000), T) == "degraded"  # slow is degraded


def test_quorum_defaults_to_a_majority_of_nodes_seen() -> None:
    assert [quorum_size(n) for n in (0, 1, 2, 3, 4, 5)] == [1, 1, 2, 2, 3, 3]
    assert quorum_size(5, configured=1) == 1


def test_one_sick_prober_does_not_declare_a_global_outage() -> None:
    assert agree(["major_outage", "operational", "operational"], 2) == "operational"
    assert agree(["major_outage", "major_outage", "operational"], 2) == "major_outage"
    assert agree(["major_outage", "partial_outage", "operational"], 2) == "partial_outage"


def test_too_few_opinions_are_unknown_never_up() -> None:
    assert agree([], 1) == "unknown"
    assert agree(["operational"], 2) == "unknown"


@given(st.lists(STATUSES, min_size=1, max_size=7), st.integers(1, 7))
def test_agreement_is_never_worse_than_what_quorum_probers_say(
    opinions: list[str], quorum: int
) -> None:
    verdict = agree(opinions, quorum)  # type: ignore[arg-type]
    if len(opinions) < quorum:
        assert verdict == "unknown"
    else:
        at_least = [o for o in opinions if SEVERITY[o] >= SEVERITY[verdict]]
        assert len(at_least) >= quorum


def test_a_node_that_stopped_reporting_is_down_and_others_judge_it() -> None:
    window = {
        ("n1", "send"): agg(12, 6),
        ("n3", "send"): agg(12, 6),
        ("n1", "node:n3"): agg(6, 6),
        ("n3", "node:n1"): agg(6, 6),
    }
    statuses = component_statuses(
        window, known_nodes={"n1", "n2", "n3"}, reporting={"n1", "n3"}, nodes_seen=3,
        thresholds=T,
    )  # fmt: skip
    assert statuses["node:n2"] == "major_outage"
    assert statuses["node:n1"] == statuses["node:n3"] == "operational"
    assert statuses["send"] == "partial_outage"
    assert statuses["connect"] == "unknown"  # nobody measured it
    assert overall(statuses) == "partial_outage"


def test_a_short_node_outage_split_over_two_minutes_shows_in_the_minutes_it_was_shown_live() -> (
    None
):
    """n2 was down for 12 s across a minute boundary. The probers stopped probing it
    within seconds, so each minute holds 3 failed probes of 30: operational by the
    share. The live verdict (a known node that stopped reporting is down) showed it as
    a major outage in both minutes, opened the incident; the recorded minutes agree."""
    window = {("n1", "node:n2"): agg(30, 27), ("n3", "node:n2"): agg(30, 27)}
    measured = component_statuses(
        window, known_nodes={"n1", "n2", "n3"}, reporting={"n1", "n2", "n3"}, nodes_seen=3,
        thresholds=T,
    )  # fmt: skip
    assert measured["node:n2"] == "operational"
    recorded = with_live(measured, {"node:n2": "major_outage"})
    assert recorded["node:n2"] == "major_outage"
    assert {c: s for c, s in recorded.items() if c != "node:n2"} == {
        c: s for c, s in measured.items() if c != "node:n2"
    }
    # What the page showed never makes a measured minute look better, and a component
    # nobody measured in the minute keeps what was shown.
    assert with_live({"send": "major_outage"}, {"send": "degraded"}) == {"send": "major_outage"}
    assert with_live({}, {"node:n2": "partial_outage"}) == {"node:n2": "partial_outage"}
    assert with_live({"api": "operational"}, {}) == {"api": "operational"}


def test_overall_verdict() -> None:
    assert overall({"send": "unknown", "api": "unknown"}) == "unknown"
    assert overall({"send": "operational", "node:a": "major_outage", "node:b": "operational"}) == (
        "degraded"
    )
    assert overall({"send": "unknown", "node:a": "major_outage"}) == "major_outage"
    assert overall({"send": "operational", "web": "unknown"}) == "operational"


def test_days_without_data_are_unknown_and_uptime_counts_measured_minutes() -> None:
    assert day_summary("2025-01-01", {}).status == "unknown"
    assert day_summary("2025-01-01", {}).uptime is None
    day = day_summary("2025-01-01", {"operational": 1430, "major_outage": 10})
    assert day.status == "major_outage"
    assert day.uptime == pytest.approx(1430 / 1440)
    assert uptime_of([{}, {}]) is None
    assert uptime_of([{"operational": 90}, {"degraded": 5, "partial_outage": 5}]) == 0.95


# ---------------------------------------------------------------- histograms


def test_percentiles_are_never_better_than_measured() -> None:
    hist: Counter[int] = Counter()
    for latency in [5.0] * 98 + [900.0, 1500.0]:
        hist[bucket_of(latency)] += 1
    p50, p99 = percentile(hist, 50), percentile(hist, 99)
    assert p50 is not None
    assert 5.0 <= p50 < 7.0
    assert p99 is not None
    assert 900.0 <= p99 < 1200.0
    assert percentile(Counter(), 50) is None


# ---------------------------------------------------------------- SLOs


def test_error_budget_math() -> None:
    assert evaluate(0.999, 0, 0).achieved is None
    full = evaluate(0.999, 10_000, 10_000)
    assert (full.achieved, full.budget_left) == (1.0, 1.0)
    half = evaluate(0.999, 10_000, 9_995)  # 5 of an allowed 10 missed
    assert half.budget_left == pytest.approx(0.5)
    over = evaluate(0.999, 10_000, 9_980)
    assert over.budget_left == pytest.approx(-1.0)
    assert month_start_ms(1_700_000_000_000) == 1_698_796_800_000  # 2023-11-01 UTC


# ---------------------------------------------------------------- reports


def counts(per_minute: dict[int, int]) -> dict[int, dict[str, int]]:
    return {m: {"send": n} for m, n in per_minute.items()}


NOW = 1_000 * MINUTE_MS + 30_000
RULE = ReportRule(window_min=60, factor=5.0, min_count=10)


def test_a_burst_of_reports_is_a_spike_and_a_trickle_is_not() -> None:
    trickle = counts({1_000 * MINUTE_MS - i * MINUTE_MS: 1 for i in range(62)})
    assert detect_spike(trickle, NOW, RULE) is None
    burst = dict(trickle)
    burst[1_000 * MINUTE_MS] = {"send": 30, "connect": 5}
    spike = detect_spike(burst, NOW, RULE)
    assert spike is not None
    assert spike.recent == 35
    assert spike.baseline == pytest.approx(1.0)


def test_a_busy_baseline_raises_the_bar() -> None:
    busy = counts({1_000 * MINUTE_MS - i * MINUTE_MS: 20 for i in range(62)})
    busy[1_000 * MINUTE_MS] = {"send": 60}
    assert detect_spike(busy, NOW, RULE) is None
    busy[1_000 * MINUTE_MS] = {"send": 150}
    assert detect_spike(busy, NOW, RULE) is not None


@given(st.integers(0, 9))
def test_fewer_than_min_count_never_opens(n: int) -> None:
    assert detect_spike(counts({1_000 * MINUTE_MS: n}), NOW, RULE) is None


# ---------------------------------------------------------------- incidents


def test_the_state_machine_never_reopens_a_resolved_incident() -> None:
    assert can_move("investigating", "identified")
    assert can_move("monitoring", "investigating")
    assert can_move("identified", "resolved")
    assert not can_move("resolved", "investigating")
    assert not can_move("investigating", "bogus")


def incident(status: str, components: tuple[str, ...], at_ms: int) -> IncidentRecord:
    return IncidentRecord(
        id=1, title="Node n2: major outage", status=status, impact="critical",
        components=components, started_ms=0, automatic=True, key="canary",
        updates=(IncidentUpdateRecord(at_ms, status, "x", "taube"),),
    )  # fmt: skip


BAD = Picture(True, True, "Node n2: major outage", "critical", ("node:n2",), "n2 is down")
GOOD = Picture(False, True)


def test_planner_opens_updates_monitors_and_resolves_after_stable_recovery() -> None:
    opened = plan(BAD, None, 0, 180_000)
    assert opened is not None
    assert opened.kind == "open"
    assert opened.status == "investigating"
    assert plan(GOOD, None, 0, 180_000) is None
    assert plan(BAD, incident("investigating", ("node:n2",), 0), 10, 180_000) is None
    wider = Picture(True, True, "Send & deliver, Node n2: major outage", "critical",
                    ("node:n2", "send"), "more")  # fmt: skip
    changed = plan(wider, incident("investigating", ("node:n2",), 0), 10, 180_000)
    assert changed is not None
    assert changed.kind == "update"
    calm = plan(GOOD, incident("investigating", ("node:n2",), 0), 10, 180_000)
    assert calm is not None
    assert calm.status == "monitoring"
    assert plan(GOOD, incident("monitoring", ("node:n2",), 1_000), 100_000, 180_000) is None
    done = plan(GOOD, incident("monitoring", ("node:n2",), 1_000), 181_000, 180_000)
    assert done is not None
    assert done.kind == "resolve"
    back = plan(BAD, incident("monitoring", ("node:n2",), 1_000), 5_000, 180_000)
    assert back is not None
    assert back.status == "investigating"


def test_no_data_is_no_recovery() -> None:
    unknown = Picture(False, False)
    assert plan(unknown, incident("monitoring", ("node:n2",), 0), 10**9, 180_000) is None
