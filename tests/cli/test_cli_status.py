"""``taube status``, ``status export``, ``incident``, ``maintenance``, ``webhook`` and
``report`` as real subprocesses against a real server; the exported copy is served by
``python -m http.server`` (any static host would do) when the server is down."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taube.status.signing import verify_document
from tests.cli.conftest import PASSWORD, Taube
from tests.serverproc import UNIT_S, ServerProcess, free_port

ADMIN = "cli-status-admin-token"
# Small status intervals so that a test sees canaries and verdicts within seconds.
STATUS_SETTINGS: dict[str, dict[str, object]] = {
    "admin": {"token": ADMIN},
    "status": {"canary_interval_s": 0.5, "probe_timeout_s": 2.0},
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """The ``taube`` fixture's server, with the admin API on and quick status rounds."""
    proc = ServerProcess(tmp_path / "server", settings=STATUS_SETTINGS).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def static_host(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP by another process (``python -m http.server``)."""
    folder = tmp_path / "public"
    folder.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10 * UNIT_S
        while True:
            try:
                urllib.request.urlopen(url + "/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield folder, url
    finally:
        proc.terminate()
        proc.wait(10)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def register(taube: Taube, user: str, *extra: str) -> None:
    done = taube(user, "register", user, "--password-stdin", *extra, input=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr


def test_status_prints_the_picture_and_json_for_scripts(
    taube: Taube, server: ServerProcess
) -> None:
    register(taube, "alice")
    shown = taube("alice", "status")
    assert shown.returncode == 0, shown.stderr
    first = shown.stdout.splitlines()[0]
    assert first.startswith(("● Taube: ", "◐ Taube: ", "◑ Taube: ", "○ Taube: ", "? Taube: "))
    text = shown.stdout
    assert "signature verified" in text
    assert "Components (90-day uptime)" in text
    assert "No open incidents" in text

    as_json = taube("alice", "status", "--json")
    assert as_json.returncode == 0, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert (doc["fresh"], doc["verified"]) == (True, True)
    key = get_json(server.url + "/v1/status/key")["public_key"]
    signed = {k: v for k, v in doc.items() if k not in ("fresh", "verified")}
    assert verify_document(signed, key)
    assert {c["id"] for c in doc["components"]} >= {"connect", "send"}


def test_incident_lifecycle_from_the_command_line(
    taube: Taube, server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(taube, "alice")
    opened = taube(
        "ops", "incident", "open", "Delivery delayed", "--impact", "major",
        "--component", "send", "--text", "Messages take minutes to arrive.",
        "--admin-token", ADMIN,
    )  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    number = opened.stdout.strip()
    assert number.isdigit()
    assert "Messages take minutes to arrive." in opened.stderr

    monkeypatch.setenv("TAUBE_ADMIN_TOKEN", ADMIN)
    updated = taube("ops", "incident", "update", number, "--status", "identified",
                    "--text", "A full disk on the store.")  # fmt: skip
    assert updated.returncode == 0, updated.stderr

    shown = taube("alice", "status")
    assert shown.returncode == 0, shown.stderr
    assert "Open incidents" in shown.stdout
    assert f"#{number}  Delivery delayed" in shown.stdout
    assert "A full disk on the store." in shown.stdout
    assert "Messages take minutes to arrive." in shown.stdout

    resolved = taube("ops", "incident", "resolve", f"#{number}", "--text", "Disk replaced.")
    assert resolved.returncode == 0, resolved.stderr
    assert resolved.stdout.strip()  # the post-mortem template
    assert f"taube incident postmortem {number}" in resolved.stderr

    written = taube("ops", "incident", "postmortem", number, "--text", "Cause: a full disk.")
    assert written.returncode == 0, written.stderr
    doc = json.loads(taube("alice", "status", "--json").stdout)
    assert doc["incidents"]["open"] == []
    (past,) = [i for i in doc["incidents"]["recent"] if str(i["id"]) == number]
    assert past["postmortem"] == "Cause: a full disk."
    assert [u["status"] for u in past["updates"]][-1] == "resolved"

    unknown = taube("ops", "incident", "update", "9999", "--status", "monitoring", "--text", "x")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("error: incident.not_found: "), unknown.stderr
    monkeypatch.delenv("TAUBE_ADMIN_TOKEN")
    no_token = taube("ops", "incident", "resolve", number, "--text", "x")
    assert no_token.returncode == 2


def test_maintenance_webhooks_and_reports(
    taube: Taube, server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAUBE_ADMIN_TOKEN", ADMIN)
    register(taube, "alice")
    scheduled = taube(
        "ops", "maintenance", "schedule", "Database upgrade", "--start", "2099-05-03T22:00Z",
        "--end", "2099-05-03T23:00Z", "--component", "store", "--text", "Sending pauses.",
    )  # fmt: skip
    assert scheduled.returncode == 0, scheduled.stderr
    shown = taube("alice", "status")
    assert "Scheduled maintenance" in shown.stdout
    assert "2099-05-03 22:00 UTC – 2099-05-03 23:00 UTC  Database upgrade (store)" in shown.stdout

    added = taube("ops", "webhook", "add", "http://127.0.0.1:9/hook", "--secret", "s" * 20)
    assert added.returncode == 0, added.stderr
    hook = added.stdout.strip()
    listed = taube("ops", "webhook", "list")
    assert listed.stdout.splitlines() == [f"{hook}  http://127.0.0.1:9/hook"]
    assert taube("ops", "webhook", "deliveries").returncode == 0
    removed = taube("ops", "webhook", "remove", hook)
    assert (removed.returncode, taube("ops", "webhook", "list").stdout) == (0, "")

    reported = taube("alice", "report", "send", "--detail", "stuck on one tick")
    assert reported.returncode == 0, reported.stderr
    anonymous = taube("nobody", "report", "connect")
    assert anonymous.returncode == 0, anonymous.stderr


def test_export_writes_the_four_files_and_the_copy_verifies(
    taube: Taube, server: ServerProcess, tmp_path: Path
) -> None:
    register(taube, "alice")
    out = tmp_path / "public"
    done = taube("alice", "status", "export", str(out))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "feed.atom", "index.html", "status.css", "status.json",
    ]  # fmt: skip
    doc = json.loads((out / "status.json").read_text())
    assert verify_document(doc, get_json(server.url + "/v1/status/key")["public_key"])
    page = (out / "index.html").read_text()
    assert 'href="status.css"' in page
    assert "<script" not in page
    assert (out / "feed.atom").read_text().lstrip().startswith("<?xml")

    again = taube("alice", "status", "export", str(out), "--every", "0.2s", "--count", "2")
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("exported the status of") == 2


def test_with_the_server_down_the_exported_copy_answers_stale_and_forged_is_refused(
    taube: Taube, server: ServerProcess, static_host: tuple[Path, str]
) -> None:
    folder, url = static_host
    register(taube, "alice", "--status-url", url)
    assert taube("alice", "status", "export", str(folder)).returncode == 0
    server.stop()

    fresh = taube("alice", "status", "--json")
    assert fresh.returncode == 0, fresh.stderr
    doc = json.loads(fresh.stdout)
    assert (doc["fresh"], doc["verified"]) == (True, True)

    time.sleep(1.2)
    stale = taube("alice", "status", "--max-age", "1s")
    assert stale.returncode == 0, stale.stderr
    first, second = stale.stdout.splitlines()[:2]
    if json.loads((folder / "status.json").read_text())["verdict"] in (
        "partial_outage",
        "major_outage",
    ):
        assert "no newer report since" in second
    else:
        assert first == "? Taube: status unknown"
        assert second.strip().startswith("status unknown — ")
    stale_json = json.loads(taube("alice", "status", "--json", "--max-age", "1s").stdout)
    assert stale_json["fresh"] is False

    forged = json.loads((folder / "status.json").read_text())
    forged["verdict"] = "operational"
    forged["generated_ms"] = int(time.time() * 1000)
    (folder / "status.json").write_text(json.dumps(forged))
    refused = taube("alice", "status")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: status.bad_signature: "), refused.stderr
    assert refused.stdout == ""

    nowhere = taube("bob", "status", "--server", f"http://127.0.0.1:{free_port()}")
    assert nowhere.returncode == 3
    assert "--status-url" in nowhere.stderr


def test_send_while_down_says_why_marks_the_outbox_and_delivers_after_recovery(
    taube: Taube, server: ServerProcess, static_host: tuple[Path, str]
) -> None:
    folder, url = static_host
    register(taube, "alice", "--status-url", url)
    register(taube, "bob")
    opened = taube(
        "ops", "incident", "open", "Delivery delayed", "--impact", "major",
        "--component", "send", "--text", "Looking into it.", "--admin-token", ADMIN,
    )  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    number = opened.stdout.strip()
    assert taube("alice", "status", "export", str(folder)).returncode == 0
    server.stop()

    sent = taube("alice", "send", "@bob", "are you there?", "--timeout", "8")
    assert sent.returncode == 3, sent.stderr
    assert f"It's not you: incident #{number} since " in sent.stderr
    assert f"queued during incident #{number}" in sent.stderr
    assert "could not reach" not in sent.stderr

    outbox = taube("alice", "outbox")
    assert outbox.stdout.rstrip().endswith(f"are you there?  (queued during incident #{number})")

    server.start()
    flushed = taube("alice", "outbox", "flush")
    assert flushed.returncode == 0, flushed.stderr
    got = taube("bob", "listen", "--json", "--count", "1", "--timeout", "15")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout.splitlines()[0])["text"] == "are you there?"
    assert taube("alice", "outbox").stdout == ""
