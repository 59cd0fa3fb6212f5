"""The keystore keeps the last few replaced sessions per device, newest first, and
forgets sent content when it is due."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

from taube.client import Profile
from taube.client.profile import DB_NAME


def test_replaced_sessions_are_kept_newest_first_and_bounded(tmp_path: Path) -> None:
    with Profile.open(tmp_path) as profile:
        keys = profile.keys
        with keys.transaction():
            for n in range(4):
                keys.archive_session("bob", 1, bytes([n]) * 32, b"state-%d" % n, keep=3)
            keys.archive_session("bob", 2, b"x" * 32, b"other device", keep=3)
        assert keys.old_sessions("bob", 1) == [b"state-3", b"state-2", b"state-1"]
        with keys.transaction():
            # Archived again (it was current for a while): the newest, with its new state.
            keys.archive_session("bob", 1, bytes([1]) * 32, b"state-1 later", keep=3)
            keys.delete_old_session("bob", 1, bytes([3]) * 32)  # promoted to current
        assert keys.old_sessions("bob", 1) == [b"state-1 later", b"state-2"]
        with keys.transaction():
            keys.forget_device("bob", 1)
        assert keys.old_sessions("bob", 1) == []
        assert keys.old_sessions("bob", 2) == [b"other device"]


def test_sent_content_is_forgotten_when_due_or_after_the_week(tmp_path: Path) -> None:
    with Profile.open(tmp_path) as profile:
        keys = profile.keys
        with keys.transaction():
            keys.save_sent("plain", "@bob", b"kept a week")
            keys.save_sent("short", "@bob", b"disappearing", forget_at_ms=5_000)
            keys.save_sent("later", "@bob", b"disappearing later", forget_at_ms=9_000)
        assert keys.next_sent_due() == 5_000
        with keys.transaction():
            assert keys.forget_sent(created_before_ms=0, now_ms=5_000) == 1
        assert keys.sent("short") is None
        assert keys.sent("later") == ("@bob", b"disappearing later")
        assert keys.next_sent_due() == 9_000
        with keys.transaction():  # everything sent before now is past the week
            assert keys.forget_sent(created_before_ms=now_ms() + 1, now_ms=0) == 2
        assert keys.next_sent_due() is None


def test_a_profile_from_before_sent_deadlines_opens_and_gets_them(tmp_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / DB_NAME)) as conn:
        conn.execute(
            "CREATE TABLE e2ee_sent (id TEXT PRIMARY KEY, recipient TEXT NOT NULL,"
            " content BLOB NOT NULL, created_ms INTEGER NOT NULL)"
        )
        conn.execute("INSERT INTO e2ee_sent VALUES ('old', '@bob', x'00', 1)")
        conn.commit()
    with Profile.open(tmp_path) as profile:
        keys = profile.keys
        assert keys.sent("old") == ("@bob", b"\x00")
        assert keys.sent_devices("old") == set()  # not known: no resend goes out for it
        with keys.transaction():
            keys.save_sent("new", "@bob", b"x", forget_at_ms=7, devices=[("bob", 1), ("me", 2)])
        assert keys.next_sent_due() == 7
        assert keys.sent_devices("new") == {("bob", 1), ("me", 2)}
        with keys.transaction():  # our edit, then encrypted again for a new device list
            keys.replace_sent("new", b"edited")
            keys.save_sent("new", "@bob", b"x", forget_at_ms=7, devices=[("bob", 1), ("bob", 3)])
        assert keys.sent("new") == ("@bob", b"edited")
        assert keys.sent_devices("new") == {("bob", 1), ("bob", 3)}
    with Profile.open(tmp_path) as profile:  # and again: the upgrade runs once
        assert profile.keys.next_sent_due() == 7


def now_ms() -> int:
    return int(time.time() * 1000)
