"""``taube 2fa``, ``taube login`` asking for the code, and ``taube password`` end to end."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pyotp

from tests.cli.conftest import PASSWORD, Taube, taube  # noqa: F401 (fixture)
from tests.serverproc import UNIT_S, ServerProcess


def wait_for_fresh_step() -> int:
    if time.time() % 30 > 25:
        time.sleep(30 - time.time() % 30 + 0.1)
    return int(time.time() // 30)


def test_two_step_login_and_password_change(
    taube: Taube,  # noqa: F811
    server: ServerProcess,
    tmp_path: Path,
) -> None:
    done = taube("alice", "register", "alice", "--password-stdin", input=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    step = wait_for_fresh_step()

    # Enable: the CLI shows the URI (and a QR code), then reads a code.
    env = {**os.environ, "TAUBE_SERVER": server.url, "PYTHONUNBUFFERED": "1"}
    profile = str(tmp_path / "alice")
    proc = subprocess.Popen(
        [sys.executable, "-m", "taube.cli", "--profile", profile, "2fa", "enable"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    uri = ""
    for line in proc.stdout:
        if line.startswith("otpauth://"):
            uri = line.strip()
            break
    totp = pyotp.parse_uri(uri)
    assert isinstance(totp, pyotp.TOTP)
    proc.stdin.write(totp.at((step - 1) * 30) + "\n")
    proc.stdin.close()
    assert proc.wait(timeout=30 * UNIT_S) == 0, proc.stderr.read() if proc.stderr else ""
    assert "two-step verification is on" in proc.stdout.read()

    # Login without --totp: told it is needed, reads the code from the next line.
    done = taube(
        "laptop", "login", "alice", "--password-stdin",
        input=f"{PASSWORD}\n{totp.at(step * 30)}\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "two-step verification" in done.stderr
    # A wrong --totp is refused with the code's name.
    done = taube("phone", "login", "alice", "--password-stdin", "--totp", "000000",
                 input=PASSWORD + "\n")  # fmt: skip
    assert done.returncode != 0
    assert "auth.totp_invalid" in done.stderr

    # Password change revoking the other devices: the laptop is logged out.
    done = taube(
        "alice", "password", "--revoke-others", "--password-stdin",
        input=f"{PASSWORD}\nan entirely new one\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = taube("laptop", "whoami")
    assert done.returncode != 0
    assert "auth.revoked" in done.stderr

    done = taube("alice", "2fa", "disable", "--code", totp.at((step + 1) * 30))
    assert done.returncode == 0, done.stderr
    done = taube("phone", "login", "alice", "--password-stdin", input="an entirely new one\n")
    assert done.returncode == 0, done.stderr
