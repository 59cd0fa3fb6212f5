"""A real Taube server and a bare relay, each started once for the benchmark tests."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.serverproc import UNIT_S, ServerProcess, free_port

# Short runs: these tests check that the load generator works, never how fast anything is.
QUICK = ["--pairs", "4", "--warmup", "0.2s", "--duration", "0.6s", "--drain", "10s"]


@pytest.fixture(scope="module")
def bench_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("bench") / "server").start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def relay_url() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "taube.bench.relay", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15 * UNIT_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the relay did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def bench(server: str, *args: str, expect_ok: bool = True) -> dict[str, Any]:
    """Run ``taube bench --json`` in a subprocess; the JSON object on its last line."""
    done = subprocess.run(
        [sys.executable, "-m", "taube.cli", "bench", "--server", server, "--json", *args],
        capture_output=True,
        text=True,
        timeout=60 * UNIT_S,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    if expect_ok:
        assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result
