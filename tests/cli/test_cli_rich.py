"""The rich-message commands of the ``taube`` program, end to end between two profiles."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.cli.conftest import Taube


def ok(done: object) -> str:
    assert done.returncode == 0, done.stderr  # type: ignore[attr-defined]
    return done.stdout.strip()  # type: ignore[attr-defined]


def history(taube: Taube, user: str, chat: str) -> list[dict[str, object]]:
    out = ok(taube(user, "history", chat, "--json"))
    return [json.loads(line) for line in out.splitlines()]


def test_reply_react_edit_delete_and_history(alice_and_bob: Taube) -> None:
    taube = alice_and_bob
    ok(taube("alice", "send", "@bob", "Kommst du?"))
    (first,) = history(taube, "bob", "@alice")
    reply = ok(taube("bob", "send", "@alice", "Ja!", "--reply-to", str(first["id"])))
    ok(taube("bob", "react", str(first["id"]), "👍"))
    ok(taube("alice", "edit", str(first["id"]), "Kommst du heute?"))
    items = {i["id"]: i for i in history(taube, "alice", "@bob")}
    assert items[first["id"]]["text"] == "Kommst du heute?"
    assert items[first["id"]]["edited_at_ms"] is not None
    assert items[first["id"]]["reactions"] == {"👍": ["bob"]}
    assert items[reply]["reply_to"] == {"from": "alice", "id": first["id"]}
    # Not yours: refused locally with a clear line.
    refused = taube("alice", "edit", reply, "gefälscht")
    assert refused.returncode != 0
    assert "only edit your own" in refused.stderr
    ok(taube("bob", "delete", reply, "--for-everyone"))
    items = {i["id"]: i for i in history(taube, "alice", "@bob")}
    assert items[reply]["deleted"] is True
    assert items[reply]["text"] is None
    shown = ok(taube("alice", "history", "@bob", "--offline"))
    assert "(message deleted)" in shown
    assert "(edited)" in shown


def test_poll_vote_chats_and_unread(alice_and_bob: Taube) -> None:
    taube = alice_and_bob
    poll = ok(taube("alice", "poll", "@bob", "Wann essen?", "18 Uhr", "19 Uhr", "--multiple"))
    history(taube, "bob", "@alice")
    ok(taube("bob", "vote", poll, "19 Uhr"))
    (item,) = [i for i in history(taube, "alice", "@bob") if i["id"] == poll]
    assert item["poll"]["counts"] == [0, 1]  # type: ignore[index]
    bad = taube("bob", "vote", poll, "20 Uhr")
    assert bad.returncode == 2
    assert "not an option" in bad.stderr
    ok(taube("bob", "send", "@alice", "noch was"))
    chats = [json.loads(line) for line in ok(taube("alice", "chats", "--json")).splitlines()]
    assert [c["conversation"] for c in chats] == ["@bob"]
    assert chats[0]["unread"] == 1  # "noch was" (a vote is no message of its own)
    ok(taube("alice", "history", "@bob", "--mark-read"))
    chats = [json.loads(line) for line in ok(taube("alice", "chats", "--json")).splitlines()]
    assert chats[0]["unread"] == 0


def test_send_file_and_download(alice_and_bob: Taube, tmp_path: Path) -> None:
    taube = alice_and_bob
    photo = tmp_path / "foto.jpg"
    photo.write_bytes(os.urandom(200_000))
    done = taube("alice", "send-file", "@bob", str(photo), "--caption", "Urlaub")
    message_id = ok(done)
    assert "100%" in done.stderr  # the progress bar
    (item,) = history(taube, "bob", "@alice")
    assert item["file"] == {
        "name": "foto.jpg", "size": 200_000, "mime": "image/jpeg", "caption": "Urlaub"
    }  # fmt: skip
    out = tmp_path / "got"
    out.mkdir()
    ok(taube("bob", "download", message_id, "--out", str(out)))
    assert (out / "foto.jpg").read_bytes() == photo.read_bytes()
    again = taube("bob", "download", message_id, "--out", str(out))
    assert again.returncode == 2
    assert "exists" in again.stderr


def test_disappearing_and_block(alice_and_bob: Taube) -> None:
    taube = alice_and_bob
    ok(taube("alice", "disappearing", "@bob", "7d"))
    ok(taube("alice", "send", "@bob", "vergänglich"))
    items = history(taube, "bob", "@alice")
    assert items[-1]["text"] == "vergänglich"
    assert items[-1]["expires_at_ms"] is not None
    assert "⏱" in ok(taube("bob", "chats"))
    bad = taube("alice", "disappearing", "@bob", "bald")
    assert bad.returncode == 2
    ok(taube("bob", "block", "@alice"))
    assert ok(taube("bob", "blocked")) == "@alice"
    ok(taube("alice", "send", "@bob", "hallo?"))
    assert [i["text"] for i in history(taube, "bob", "@alice")][-1] == "vergänglich"
    ok(taube("bob", "unblock", "@alice"))
    assert ok(taube("bob", "blocked")) == ""
