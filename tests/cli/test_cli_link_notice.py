"""``taube link CODE`` and ``taube notice`` as real subprocesses against a real server."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import PASSWORD, Taube
from tests.serverproc import ServerProcess

ADMIN = "cli-admin-token"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """The ``taube`` fixture's server, with the admin API on."""
    proc = ServerProcess(tmp_path / "server", settings={"admin": {"token": ADMIN}}).start()
    try:
        yield proc
    finally:
        proc.stop()


def call(method: str, url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_link_approves_a_new_devices_code(taube: Taube, server: ServerProcess) -> None:
    done = taube("alice", "register", "alice", "--password-stdin", input=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    link = call("POST", f"{server.url}/v1/links", {"device_name": "Firefox"})
    linked = taube("alice", "link", link["code"].lower())
    assert linked.returncode == 0, linked.stderr
    assert linked.stdout.strip() == "linked device 2 (Firefox) to @alice"
    state = call("GET", f"{server.url}/v1/links/{link['id']}?secret={link['secret']}&wait=0")
    assert (state["status"], state["device"]) == ("approved", 2)
    assert state["token"]

    again = taube("alice", "link", link["code"])
    assert again.returncode == 1
    assert again.stderr.startswith("error: link.used: "), again.stderr
    unknown = taube("alice", "link", "0000-0000")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("error: link.not_found: "), unknown.stderr


def test_notice_posts_lists_and_ends(taube: Taube, monkeypatch: pytest.MonkeyPatch) -> None:
    posted = taube(
        "ops", "notice", "Maintenance at 22:00", "--level", "warning", "--ttl", "2h",
        "--admin-token", ADMIN,
    )  # fmt: skip
    assert posted.returncode == 0, posted.stderr
    notice_id = posted.stdout.strip()
    assert notice_id
    monkeypatch.setenv("TAUBE_ADMIN_TOKEN", ADMIN)  # the fixture passes the environment on
    listed = taube("ops", "notice", "--list")
    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.splitlines()
    assert line.startswith(f"{notice_id}  warning")
    assert line.endswith("Maintenance at 22:00")
    ended = taube("ops", "notice", "--end", notice_id)
    assert (ended.returncode, ended.stdout.strip()) == (0, f"ended notice {notice_id}")
    assert taube("ops", "notice", "--list").stdout == ""
    gone = taube("ops", "notice", "--end", notice_id)
    assert gone.returncode == 1
    assert gone.stderr.startswith("error: notice.not_found: "), gone.stderr


def test_notice_needs_the_admin_token_and_one_action(
    taube: Taube, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TAUBE_ADMIN_TOKEN", raising=False)
    missing = taube("ops", "notice", "hello")
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: client.usage: no admin token"), missing.stderr
    wrong = taube("ops", "notice", "hello", "--admin-token", "nope")
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("error: admin.invalid_token: "), wrong.stderr
    both = taube("ops", "notice", "hello", "--list", "--admin-token", ADMIN)
    assert both.returncode == 2
    bad_ttl = taube("ops", "notice", "hello", "--ttl", "soon", "--admin-token", ADMIN)
    assert bad_ttl.returncode == 2
    bad_level = taube("ops", "notice", "hello", "--level", "fatal", "--admin-token", ADMIN)
    assert bad_level.returncode == 2
