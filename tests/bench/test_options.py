"""``taube bench`` options: durations, rates and which workload the flags select."""

from __future__ import annotations

import pytest

from taube.bench.options import BenchOptions, from_namespace, parse_duration, parse_rate
from taube.cli.main import build_parser


def options(*argv: str) -> BenchOptions:
    return from_namespace(build_parser().parse_args(["bench", *argv]))


@pytest.mark.parametrize(
    ("text", "seconds"), [("20s", 20.0), ("20", 20.0), ("500ms", 0.5), ("2m", 120.0)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "rate"), [("5000/s", 5000.0), ("20", 20.0), ("120/m", 2.0)])
def test_rates(text: str, rate: float) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "-5/s", "0/s", "5/h"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_the_flags_choose_the_workload() -> None:
    assert options().mode == "throughput"
    assert options().connections == 200
    assert options("--one-in-flight").mode == "one_in_flight"
    assert (options("--rate", "5000/s").mode, options("--rate", "5000/s").rate) == ("rate", 5000)
    group = options("--group-size", "1024")
    assert (group.mode, group.rate, group.connections) == ("group", 20.0, 1024)
    assert (options("--idle", "10000").mode, options("--idle", "10000").connections) == (
        "idle",
        10000,
    )
    assert options("--server", "http://h:1").ws_url == "ws://h:1/v1/ws"
    assert options("--server", "https://h").ws_url == "wss://h/v1/ws"


@pytest.mark.parametrize(
    "argv",
    [
        ["--idle", "10", "--group-size", "4"],
        ["--idle", "10", "--rate", "5/s"],
        ["--one-in-flight", "--rate", "5/s"],
        ["--pairs", "0"],
        ["--top-up-at", "50"],
        ["--group-size", "1"],
        ["--server", "ws://h"],
        ["--procs", "3", "--pairs", "1"],
    ],
)
def test_contradictions_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(ValueError, match=r"--|workload"):
        options(*argv)
