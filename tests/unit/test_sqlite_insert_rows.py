"""``insert_rows``: many rows per INSERT (one statement of the exact size for small
batches, power-of-two chunks for larger ones), none lost or repeated."""

from __future__ import annotations

import pytest

from taube.store.sqlite import EXACT_ROWS, MAX_ROWS_PER_INSERT, _chunks, insert_rows
from taube.store.sqlite_driver import sqlite3


@pytest.mark.parametrize("count", [0, 1, 2, 3, 12, 31, 32, 33, 127, 128, 129, 255, 256, 300, 1000])
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


def test_small_batches_are_one_statement_and_sizes_stay_few() -> None:
    assert _chunks(0) == []
    assert _chunks(12) == [(0, 12)]
    assert _chunks(EXACT_ROWS) == [(0, EXACT_ROWS)]
    sizes = {n for total in range(EXACT_ROWS + 1, 2000) for _, n in _chunks(total)}
    assert sizes <= {2**k for k in range(8)}  # larger batches: powers of two up to 128
