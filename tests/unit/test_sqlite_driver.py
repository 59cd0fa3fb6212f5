"""The embedded store runs on the SQLite that store/sqlite_driver.py picks."""

from __future__ import annotations

import platform
import sys

import pytest

from taube.server.app import hot_path
from taube.store import sqlite as sqlite_store
from taube.store.sqlite_driver import sqlite3


def test_linux_x86_64_runs_the_recent_sqlite_the_project_installs() -> None:
    """pyproject.toml installs pysqlite3-binary here; a setup that lost it would fall
    back to the system's SQLite silently, and be ~7 % slower (performance.md 9.18)."""
    if sys.platform == "linux" and platform.machine() == "x86_64":
        assert sqlite3.__name__ == "pysqlite3.dbapi2"
        assert sqlite3.sqlite_version_info >= (3, 45)
    else:
        assert sqlite3.__name__ == "sqlite3"


def test_the_store_and_its_errors_come_from_the_same_module() -> None:
    """The server catches ``sqlite3.Error`` from the store: it must be the class of the
    module the store runs on (each module has its own)."""
    assert sqlite_store.sqlite3 is sqlite3
    conn = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.Error, match="no_such_table"):
        conn.execute("SELECT * FROM no_such_table")
    conn.close()


def test_the_start_line_names_the_sqlite() -> None:
    assert f"SQLite {sqlite3.sqlite_version}" in hot_path()
