"""``insert_rows``: many rows per INSERT, in power-of-two chunks, none lost or repeated."""

from __future__ import annotations

import sqlite3

import pytest

from taube.store.sqlite import MAX_ROWS_PER_INSERT, insert_rows


@pytest.mark.parametrize("count", [0, 1, 2, 3, 127, 128, 129, 255, 256, 300, 1000])
def test_every_row_arrives_once_in_order(count: int) -> None:
    c = sqlite3.connect(":memory:")
    c.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT, c BLOB)")
    flat: list[object] = []
    for i in range(count):
        flat += (i, f"row {i}", bytes([i % 256]))
    insert_rows(c, "INSERT INTO t (a, b, c)", 3, flat)
    assert c.execute("SELECT a, b, c FROM t ORDER BY a").fetchall() == [
        (i, f"row {i}", bytes([i % 256])) for i in range(count)
    ]


def test_statements_stay_under_sqlite_variable_limit() -> None:
    # 8 columns (the inbox) times the largest chunk must stay far below 32,766.
    assert 8 * MAX_ROWS_PER_INSERT < 32_766
