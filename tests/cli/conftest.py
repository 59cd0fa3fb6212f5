"""Running the real ``taube`` program in a subprocess, one profile folder per user."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.serverproc import UNIT_S, ServerProcess

Taube = Callable[..., subprocess.CompletedProcess[str]]
PASSWORD = "correct horse battery"


@pytest.fixture
def taube(server: ServerProcess, tmp_path: Path) -> Taube:
    """``taube(user, *args, input=None, timeout=30)`` runs ``taube --profile <tmp>/<user> args``."""

    def run(
        user: str, *args: str, input: str | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "TAUBE_SERVER": server.url}
        env.pop("TAUBE_PROFILE", None)
        return subprocess.run(
            [sys.executable, "-m", "taube.cli", "--profile", str(tmp_path / user), *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout * UNIT_S,
            check=False,
        )

    return run


@pytest.fixture
def alice_and_bob(taube: Taube) -> Taube:
    for user in ("alice", "bob"):
        done = taube(user, "register", user, "--password-stdin", input=PASSWORD + "\n")
        assert done.returncode == 0, done.stderr
    return taube
