"""A real Taube server in a subprocess on a free loopback port, for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# Every wait in the tests is a multiple of this, so a slow machine can scale them all.
UNIT_S = float(os.environ.get("TAUBE_TEST_TIME_UNIT", "1.0"))

# Cheap argon2 for tests only (registration speed is not what these tests measure),
# and admission limits out of the way except where a test sets its own.
TEST_SETTINGS: dict[str, dict[str, object]] = {
    "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 1024},
    "admission": {"max_logins_per_s": 100000, "max_sessions_per_s": 100000},
    # Likewise the per-connection frame rate and connections per address (transport).
    "limits": {"frames_per_s": 1e6, "frame_burst": 1e6, "max_connections_per_ip": 100000},
    # Every test client is 127.0.0.1: the per-address and per-account rates stay out of
    # the way except in tests/security, which sets its own.
    "rate": {
        "registrations_per_hour": 1e6,
        "logins_per_min": 1e6,
        "account_logins_per_min": 1e6,
        "sends_per_s": 1e6,
        "sends_burst": 1e6,
        "groups_per_hour": 1e6,
        "lookups_per_min": 1e6,
        "lockout_after_ip": 100000,
    },
}


# The nodes of a test cluster share a status signing key, as every cluster must (the
# server refuses a NATS bus without one); a fixed test-only seed, 32 bytes of 0x2a.
CLUSTER_SIGNING_KEY = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio="


def toml_text(settings: dict[str, dict[str, object]]) -> str:
    """The few TOML forms our settings need: sections of numbers and strings."""
    lines = []
    for section, values in settings.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(
                f"{key} = {value!r}" if not isinstance(value, str) else f'{key} = "{value}"'
            )
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


STARTED: list[ServerProcess] = []
"""Every server started, in order: tests/conftest.py checks the logs of those a test
started (``assert_clean_logs``) after it."""


class ServerProcess:
    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        settings: dict[str, dict[str, object]] | None = None,
        *,
        store: str | None = None,
        bus: str | None = None,
        node: str | None = None,
    ) -> None:
        """``store``, ``bus`` and ``node`` are passed as ``--store``, ``--bus`` and
        ``--node`` (cluster mode: a ``postgresql://`` store and a ``nats://`` bus)."""
        self.data_dir = data_dir
        self.cluster_flags = [
            arg
            for flag, value in (("--store", store), ("--bus", bus), ("--node", node))
            if value is not None
            for arg in (flag, value)
        ]
        self.port = port or free_port()
        self.config_path = data_dir / "taube-test.toml"
        self.log_path = data_dir / "server.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        merged = {section: dict(values) for section, values in TEST_SETTINGS.items()}
        if bus is not None:
            merged.setdefault("status", {})["signing_key"] = CLUSTER_SIGNING_KEY
        for section, values in (settings or {}).items():
            merged.setdefault(section, {}).update(values)
        self.config_path.write_text(toml_text(merged))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def start(self) -> ServerProcess:
        STARTED.append(self)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "taube.server",
                "--host", "127.0.0.1", "--port", str(self.port),
                "--data", str(self.data_dir), "--config", str(self.config_path),
                *self.cluster_flags,
            ],
            stdout=log,
            stderr=log,
        )  # fmt: skip
        deadline = time.monotonic() + 15 * UNIT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not become healthy")

    def kill(self) -> None:
        """SIGKILL: no chance to flush or clean up (the durability tests want this)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def unretrieved_exceptions(self) -> list[str]:
        """asyncio's "Task/Future exception was never retrieved" lines in the log: an
        exception no code awaited, always a bug (a compiled-coroutine fault showed up
        this way, tests/unit/test_compiled_modules.py). Checked after every test for
        the servers it started (tests/conftest.py)."""
        if not self.log_path.exists():
            return []
        return [line for line in self.log().splitlines() if "exception was never retrieved" in line]


def assert_clean_logs(*servers: ServerProcess) -> None:
    found = {str(s.log_path): s.unretrieved_exceptions() for s in servers}
    found = {path: lines for path, lines in found.items() if lines}
    assert not found, f"unretrieved exceptions in server logs: {found}"
