"""The profile database: secret-safe permissions, session rules, ordered durable outbox."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from taube.client import OutboxEntry, Profile, default_profile_dir
from taube.client.content import Text


def entries(*ns: int) -> list[OutboxEntry]:
    return [OutboxEntry(f"id-{n}", "@bob", f"m{n}".encode(), n) for n in ns]


def test_folder_and_database_are_private(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    with Profile.open(folder) as profile:
        profile.save_session(("http://x",), "alice", 1, "secret-token")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for f in folder.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, f


def test_session_round_trip_and_repr_hides_the_token(tmp_path: Path) -> None:
    with Profile.open(tmp_path) as profile:
        assert profile.session() is None
        profile.save_session(("http://a", "http://b"), "alice", 3, "secret-token")
    with Profile.open(tmp_path) as profile:
        session = profile.session()
    assert session is not None
    assert (session.servers, session.handle, session.device, session.token) == (
        ("http://a", "http://b"),
        "alice",
        3,
        "secret-token",
    )
    assert "secret-token" not in repr(session)


def test_outbox_keeps_order_across_reopen_and_removes_by_id(tmp_path: Path) -> None:
    with Profile.open(tmp_path) as profile:
        profile.outbox_add(entries(3, 1))
        profile.outbox_add(entries(2))
        profile.outbox_add(entries(1))  # a known id is not queued twice
    with Profile.open(tmp_path) as profile:
        assert [e.id for e in profile.outbox()] == ["id-3", "id-1", "id-2"]
        profile.outbox_remove(["id-1", "unknown"])
        assert [e.id for e in profile.outbox()] == ["id-3", "id-2"]
        assert profile.outbox_count() == 2


def test_last_seq_only_grows(tmp_path: Path) -> None:
    with Profile.open(tmp_path) as profile:
        assert profile.last_seq() == 0
        profile.set_last_seq(5)
        profile.set_last_seq(3)
        assert profile.last_seq() == 5


def test_new_login_resets_the_inbox_and_another_user_empties_the_outbox_and_chats(
    tmp_path: Path,
) -> None:
    with Profile.open(tmp_path) as profile:
        profile.save_session(("http://x",), "alice", 1, "t1")
        profile.set_last_seq(9)
        profile.outbox_add(entries(1))
        profile.history.record(
            conversation="@carol", sender="carol", sender_device=1, id="m1",
            sent_at_ms=1000, content=Text(text="for alice only"), me="alice",
        )  # fmt: skip
        profile.save_session(("http://x",), "alice", 2, "t2")  # same user, new device
        assert profile.last_seq() == 0
        assert profile.outbox_count() == 1
        assert [c.last_text for c in profile.history.chats()] == ["for alice only"]
        profile.save_session(("http://x",), "bob", 1, "t3")  # never send alice's as bob
        assert profile.outbox_count() == 0
        assert profile.history.chats() == []  # nor show bob her chats


def test_default_folder_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_profile_dir() == tmp_path / "taube"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_profile_dir() == Path.home() / ".local" / "share" / "taube"
