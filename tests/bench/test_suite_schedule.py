"""The order of `make bench`'s runs, and the ratio to the relay run by run (pure)."""

from __future__ import annotations

from taube.bench.suite import pair_ratios, parse, schedule, target_lines


def test_the_relay_and_workload_a_alternate_and_the_rest_keep_their_place() -> None:
    plan = parse(["--runs", "2", "--only", "b,relay,idle,a"])
    assert schedule(plan) == [
        ("b", 0),
        ("b", 1),
        ("relay", 0),
        ("a", 0),
        ("relay", 1),
        ("a", 1),
        ("idle", 0),
        ("idle", 1),
    ]
    assert schedule(parse(["--runs", "2", "--only", "a,b"])) == [
        ("a", 0),
        ("a", 1),
        ("b", 0),
        ("b", 1),
    ]
    assert schedule(parse(["--baseline", "--runs", "1"])) == [("relay", 0)]


def test_the_ratio_is_also_given_run_by_run() -> None:
    plan = parse(["--runs", "3", "--only", "relay,a"])
    plan.results["relay"] = [{"delivered_per_s": v} for v in (200.0, 100.0, 150.0)]
    plan.results["a"] = [{"delivered_per_s": v} for v in (130.0, 70.0, 60.0)]
    assert pair_ratios(plan) == [0.65, 0.7, 0.4]
    lines = {target: (met, measured) for met, target, measured in target_lines(plan)}
    # The target is the ratio of the medians (70 / 150): drift moves both alike.
    assert lines[">= 0.6 of the bare relay, same run"] == (False, "0.47 = 70 / 150")
    assert lines["  the same, run by run (each A run after its relay run)"] == (
        None,
        "median 0.65 (min 0.40, max 0.70)",
    )
    plan.results["a"].pop()  # a run failed: no pairs to speak of
    assert pair_ratios(plan) == []


def test_a_postgresql_run_is_held_to_the_postgresql_target() -> None:
    plan = parse(["--runs", "1", "--only", "a", "--store", "postgresql://u@127.0.0.1/db"])
    plan.results["a"] = [{"delivered_per_s": 31_000.0}]
    lines = {target: (met, measured) for met, target, measured in target_lines(plan)}
    assert lines == {"PostgreSQL store: >= 30,000 msg/s": (True, "31,000 msg/s")}
    plan = parse(["--runs", "1", "--only", "a"])
    plan.results["a"] = [{"delivered_per_s": 31_000.0}]
    targets = [target for _met, target, _measured in target_lines(plan)]
    assert targets == [
        "durable 1:1 throughput >= 100,000 msg/s",
        "never below 3x ejabberd (51,000 msg/s)",
    ]
