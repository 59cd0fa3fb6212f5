"""The browser client's SDK (TypeScript, under Node) against a real server and the
Python CLI: web/test/sdk/interop.test.ts, which ``make web-test`` can only skip (it
has no server). Here it gets one, so the two SDKs are checked against each other in
every ``make test``: 1:1 and group chat both ways, end to end encrypted; and what the
browser SDK keeps of what it sent (for resend requests) after a message disappears, is
edited or is deleted.

Needs Node and the web client's packages (``make setup``); without them the test skips
with the reason, except in CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.serverproc import UNIT_S, ServerProcess

WEB = Path(__file__).resolve().parents[2] / "web"
BUILT = WEB / "build" / "sdk-test" / "interop.test.mjs"


def test_the_browser_sdk_and_the_python_cli_chat_both_ways(server: ServerProcess) -> None:
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None or not (WEB / "node_modules").is_dir():
        reason = "needs node, npm and web/node_modules (make setup)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    subprocess.run([npm, "run", "--silent", "build:sdk-test"], cwd=WEB, check=True, timeout=120)
    cli = Path(sys.executable).with_name("taube")
    env = {**os.environ, "TAUBE_TEST_SERVER": server.url, "TAUBE_CLI": str(cli)}
    result = subprocess.run(
        [node, "--experimental-websocket", "--test", str(BUILT)],
        cwd=WEB,
        env=env,
        capture_output=True,
        text=True,
        timeout=180 * UNIT_S,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    # It ran (a missing variable would make it skip, and a skip passes in node --test).
    assert "# pass 2" in result.stdout, report
    assert "# skipped 0" in result.stdout, report
