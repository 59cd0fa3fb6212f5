"""The store-only load (``make bench-store``) runs: it measures, never asserts a timing."""

from __future__ import annotations

import pytest

from taube.store import bench


def test_the_store_path_load_runs_and_prints_its_figure(capsys: pytest.CaptureFixture[str]) -> None:
    bench.main(["--rounds", "1"])
    out = capsys.readouterr().out
    assert "us of CPU per message over 5,000 messages" in out
