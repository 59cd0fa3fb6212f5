"""The SQLite the embedded store runs on: ``pysqlite3`` when it is installed, else the
standard library's ``sqlite3``.

Why: Python's ``sqlite3`` module links the system's SQLite (3.40 on Debian 12), while
the ``pysqlite3-binary`` wheels carry the module built with a recent SQLite. The same
rows of Workload A cost ~10 % less there (docs/performance.md, section 9.18), and the
database file is the same format either way. Both modules have one API, so type
checking reads the standard library's; ``sqlite3.Error`` must come from here too, since
each module has its own exception classes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3
else:
    try:
        import pysqlite3.dbapi2 as sqlite3
    except ImportError:  # no wheel for this platform: the standard library's
        import sqlite3

__all__ = ["sqlite3"]
