"""One transaction helper for the profile's SQLite connection (``isolation_level=None``).

The profile, its key store and its message history share one connection; a write
that spans them (a new login wiping the keys, a decrypt saving its session and its
plaintext) must be one transaction, so a nested use joins the outer one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error; nested use joins the outer one."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
