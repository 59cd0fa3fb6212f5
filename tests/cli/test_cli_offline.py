"""The CLI without a server: help texts, argument handling, output formats."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from taube.cli import render
from taube.cli.main import build_parser, run
from taube.client import GroupChange, Message, Receipt, Text, Unsupported


def all_commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    found = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += all_commands(sub, (*prefix, name))
    return found


def test_every_command_has_real_help(capsys: pytest.CaptureFixture[str]) -> None:
    commands = all_commands(build_parser())
    assert ("group", "create") in commands
    assert ("outbox", "flush") in commands
    for command in commands:
        with pytest.raises(SystemExit) as exited:
            run([*command, "--help"])
        assert exited.value.code == 0
        text = capsys.readouterr().out
        assert "--server" in text
        assert "--profile" in text
        if command:
            # A description line beyond the usage line.
            assert len(text.split("\n\n")) >= 3, command


def test_not_logged_in_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--profile", str(tmp_path / "p"), "group", "list"]) == 4
    err = capsys.readouterr().err
    assert err.startswith("error: client.not_logged_in: ")
    assert err.count("\n") == 1


def test_send_needs_text_or_stdin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--profile", str(tmp_path), "send", "@bob"]) == 2
    assert "client.usage" in capsys.readouterr().err


def message(conversation: str, sender: str, payload: bytes) -> Message:
    from taube.client import decode_content

    return Message(
        seq=1,
        id="01890000-0000-7000-8000-000000000000",
        conversation=conversation,
        sender=sender,
        sender_device=1,
        sent_at_ms=0,
        content=decode_content(payload),
        payload=payload,
    )


def test_message_lines() -> None:
    text = b'{"v":1,"type":"text","text":"hi"}'
    assert render.message_line(message("@alice", "alice", text), "bob").endswith("] @alice: hi")
    assert render.message_line(message("#g1", "alice", text), "bob").endswith("] @alice in #g1: hi")
    assert render.message_line(message("@carol", "bob", text), "bob").endswith(
        "] @bob to @carol: hi"
    )
    poll = render.message_line(message("@alice", "alice", b'{"v":1,"type":"poll"}'), "bob")
    assert "unsupported content 'poll'" in poll


def test_json_shapes() -> None:
    msg = message("@alice", "alice", b'{"v":1,"type":"text","text":"hi"}')
    assert isinstance(msg.content, Text)
    obj = json.loads(render.json_line(render.message_json(msg)))
    assert {k: obj[k] for k in ("type", "conversation", "from", "text")} == {
        "type": "message",
        "conversation": "@alice",
        "from": "alice",
        "text": "hi",
    }
    assert obj["sent_at"] == "1970-01-01T00:00:00.000+00:00"
    odd = render.message_json(message("@alice", "alice", b"\x00"))
    assert odd["text"] is None
    assert isinstance(message("@a", "a", b"\x00").content, Unsupported)
    receipt = render.receipt_json(Receipt(2, "read", "@bob", "bob", 1, ("x",), 0))
    assert (receipt["type"], receipt["status"], receipt["by"], receipt["ids"]) == (
        "receipt",
        "read",
        "bob",
        ["x"],
    )
    group = render.group_json(GroupChange(3, "g1", "added", "alice", ("carol",), "friends", 0))
    assert (group["type"], group["address"], group["event"]) == ("group", "#g1", "added")


def test_db_upgrade_creates_and_then_keeps_the_schema(tmp_path: Path) -> None:
    import sqlite3
    import subprocess
    import sys

    command = [sys.executable, "-m", "taube.cli", "db", "upgrade", "--data", str(tmp_path)]
    for _ in range(2):  # the second run finds everything in place
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("schema up to date")
    with sqlite3.connect(tmp_path / "taube.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0
