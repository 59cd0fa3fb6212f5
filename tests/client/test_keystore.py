"""The keystore keeps the last few replaced sessions per device, newest first."""

from __future__ import annotations

from pathlib import Path

from taube.client import Profile


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
