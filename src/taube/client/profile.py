"""The profile: one folder holding one SQLite database with a device's local state.

It keeps the session (server URLs, handle, device id, token), the last inbox
``seq`` the application has taken (acked), the durable outbox, and the device's
end-to-end encryption keys and sessions (:mod:`taube.client.keystore`).

Invariants:

* The folder is created 0700 and the database 0600 before SQLite opens it;
  SQLite gives its journal/WAL files the database file's mode. The token is a
  secret and is never logged or put in an exception message.
* Outbox entries keep insertion order (``pos``) and leave only through
  :meth:`Profile.outbox_remove`, which the client calls when the server answered
  ``sent`` (or refused the message for good).
* ``last_seq`` only grows (``MAX``), so acks persisted out of order are harmless;
  the one exception is :meth:`Profile.reset_last_seq` (the server lost our place).
* Status state (the status key learned from the servers, the status URL, the
  incident known while the servers are unreachable, when the device last reported
  trouble) is one row; outbox entries queued while an incident is known are marked
  with it (``outbox_incident``) until they leave the outbox.
* A new session resets ``last_seq`` (a new device has a new inbox) and wipes the
  encryption state (a new device has new keys); a session for a different handle
  also empties the outbox, so that one user's queued messages are never sent as
  another's.

This class is synchronous and small: the async client runs it on one dedicated
thread (see :mod:`taube.client.client`). It is safe for one process at a time
per profile; other processes see committed changes (WAL mode, busy timeout).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from taube.client.errors import ProfileError
from taube.client.history import SCHEMA as HISTORY_SCHEMA
from taube.client.history import History
from taube.client.keystore import SCHEMA as KEYSTORE_SCHEMA
from taube.client.keystore import KeyStore, upgrade_keystore

DB_NAME: Final = "taube.db"
BUSY_WAIT_MS: Final = 10_000
"""How long a statement waits for another process holding the profile (a second CLI)."""
SCRUB_WAIT_MS: Final = 100
"""How long ``scrub`` waits for others: it is housekeeping, and runs again later."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS session (
    only_row   INTEGER PRIMARY KEY CHECK (only_row = 1),
    servers    TEXT NOT NULL,
    handle     TEXT NOT NULL,
    device     INTEGER NOT NULL,
    token      TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS inbox (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    last_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    pos        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    recipient  TEXT NOT NULL,
    payload    BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS status_state (
    only_row       INTEGER PRIMARY KEY CHECK (only_row = 1),
    public_key     TEXT,
    status_url     TEXT,
    incident       TEXT,
    last_report_ms INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS outbox_incident (
    id       TEXT PRIMARY KEY,
    incident TEXT NOT NULL
);
"""


def default_profile_dir() -> Path:
    """``$XDG_DATA_HOME/taube``, or ``~/.local/share/taube`` when that is unset."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "taube"


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A logged-in device as kept in the profile. ``repr`` hides the token."""

    servers: tuple[str, ...]
    handle: str
    device: int
    token: str
    created_ms: int

    def __repr__(self) -> str:
        return (
            f"StoredSession(handle={self.handle!r}, device={self.device}, servers={self.servers})"
        )


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One queued message: ``id`` is the client-chosen UUIDv7 that makes resending safe."""

    id: str
    to: str
    payload: bytes
    created_ms: int
    incident: str | None = None
    """``#12`` when it was queued while that incident was known (servers unreachable)."""


@dataclass(frozen=True, slots=True)
class StatusState:
    """What the device knows about the service's status (see :mod:`taube.client.status`)."""

    public_key: str | None = None
    """The servers' Ed25519 status key (base64), learned at login and on connect."""
    status_url: str | None = None
    """Where to read the status document when no server answers."""
    incident: str | None = None
    """The open incident (``#12``) known while the servers were unreachable."""
    last_report_ms: int = 0


class Profile:
    """A profile folder and its database. Use :meth:`open`; close with :meth:`close`."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self.keys = KeyStore(conn)
        self.history = History(conn)

    @classmethod
    def open(cls, path: Path | str | None = None) -> Profile:
        """Open (creating if needed) the profile at ``path`` or the default folder."""
        folder = Path(path) if path is not None else default_profile_dir()
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            db = folder / DB_NAME
            # Create the file ourselves so that it never exists with a looser mode.
            fd = os.open(db, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
            if folder.stat().st_mode & 0o077:
                folder.chmod(0o700)
            if db.stat().st_mode & 0o077:
                db.chmod(0o600)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, keeping
            # transactions explicit and short. check_same_thread=False because
            # the async client owns it from one worker thread, not the creator.
            conn = sqlite3.connect(
                db, isolation_level=None, check_same_thread=False, timeout=BUSY_WAIT_MS / 1000
            )
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: an outbox entry is on disk before send() returns its id.
            conn.execute("PRAGMA synchronous=FULL")
            # The profile holds plaintext history and private keys: what is deleted
            # (disappearing messages, used keys) is overwritten with zeros, not left
            # in free pages. Some SQLite builds do this by default, SQLite's own not.
            conn.execute("PRAGMA secure_delete=ON")
            conn.executescript(_SCHEMA + KEYSTORE_SCHEMA + HISTORY_SCHEMA)
            upgrade_keystore(conn)
        except (OSError, sqlite3.Error) as exc:
            raise ProfileError(f"cannot open profile {folder}: {exc}") from exc
        return cls(folder, conn)

    def close(self) -> None:
        self._conn.close()

    def scrub(self) -> None:
        """Copy the write-ahead log into the database and empty it, so that no older
        page (deleted plaintext, used keys) stays in it; left for later if another
        process holds the profile for more than a moment."""
        self._conn.execute(f"PRAGMA busy_timeout={SCRUB_WAIT_MS}")
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            self._conn.execute(f"PRAGMA busy_timeout={BUSY_WAIT_MS}")

    def __enter__(self) -> Profile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ session

    def session(self) -> StoredSession | None:
        row = self._conn.execute(
            "SELECT servers, handle, device, token, created_ms FROM session WHERE only_row = 1"
        ).fetchone()
        if row is None:
            return None
        servers = tuple(str(s) for s in json.loads(row[0]))
        return StoredSession(servers, str(row[1]), int(row[2]), str(row[3]), int(row[4]))

    def save_session(self, servers: tuple[str, ...], handle: str, device: int, token: str) -> None:
        """Store a fresh login, replacing any previous one (see the module invariants)."""
        with self._transaction():
            old = self.session()
            if old is not None and old.handle != handle:
                # Another account: nothing of the last one may show (its chats) or go
                # out (its outbox) under this one.
                self._conn.execute("DELETE FROM outbox")
                self.history.wipe()
            self._conn.execute("DELETE FROM inbox")
            self.keys.wipe()
            self._conn.execute(
                "INSERT OR REPLACE INTO session VALUES (1, ?, ?, ?, ?, ?)",
                (json.dumps(list(servers)), handle, device, token, _now_ms()),
            )

    def clear_session(self) -> None:
        """Forget the device token (logout). The outbox stays for the next login."""
        with self._transaction():
            self._conn.execute("DELETE FROM session")
            self._conn.execute("DELETE FROM inbox")

    # ------------------------------------------------------------------ inbox

    def last_seq(self) -> int:
        row = self._conn.execute("SELECT last_seq FROM inbox WHERE only_row = 1").fetchone()
        return int(row[0]) if row else 0

    def set_last_seq(self, seq: int) -> None:
        self.keys.forget_received(seq)
        self._conn.execute(
            "INSERT INTO inbox VALUES (1, ?) "
            "ON CONFLICT(only_row) DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq)",
            (seq,),
        )

    def reset_last_seq(self, seq: int) -> None:
        """Lower ``last_seq`` on purpose: the server's inbox numbering is behind ours."""
        self.keys.forget_received()
        self._conn.execute(
            "INSERT INTO inbox VALUES (1, ?) "
            "ON CONFLICT(only_row) DO UPDATE SET last_seq = excluded.last_seq",
            (seq,),
        )

    # ------------------------------------------------------------------ outbox

    def outbox_add(self, entries: list[OutboxEntry]) -> None:
        """Append entries in order, in one transaction (all or none are queued); while
        an incident is known they are marked as queued during it."""
        with self._transaction():
            self._conn.executemany(
                "INSERT OR IGNORE INTO outbox (id, recipient, payload, created_ms) "
                "VALUES (?, ?, ?, ?)",
                [(e.id, e.to, e.payload, e.created_ms) for e in entries],
            )
            incident = self.status_state().incident
            if incident is not None:
                self._conn.executemany(
                    "INSERT OR IGNORE INTO outbox_incident VALUES (?, ?)",
                    [(e.id, incident) for e in entries],
                )

    def outbox(self) -> list[OutboxEntry]:
        rows = self._conn.execute(
            "SELECT o.id, o.recipient, o.payload, o.created_ms, i.incident FROM outbox o "
            "LEFT JOIN outbox_incident i ON i.id = o.id ORDER BY o.pos"
        ).fetchall()
        return [
            OutboxEntry(str(r[0]), str(r[1]), bytes(r[2]), int(r[3]), r[4] and str(r[4]))
            for r in rows
        ]

    def outbox_count(self) -> int:
        row = self._conn.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(row[0])

    def outbox_remove(self, ids: list[str]) -> None:
        with self._transaction():
            self._conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
            self._conn.executemany("DELETE FROM outbox_incident WHERE id = ?", [(i,) for i in ids])

    # ------------------------------------------------------------------ status

    def status_state(self) -> StatusState:
        row = self._conn.execute(
            "SELECT public_key, status_url, incident, last_report_ms FROM status_state "
            "WHERE only_row = 1"
        ).fetchone()
        if row is None:
            return StatusState()
        return StatusState(row[0], row[1], row[2], int(row[3]))

    def save_status_key(self, public_key: str) -> None:
        self._set_status("public_key", public_key)

    def save_status_url(self, url: str | None) -> None:
        self._set_status("status_url", url)

    def set_last_report(self, at_ms: int) -> None:
        self._set_status("last_report_ms", at_ms)

    def set_incident(self, incident: str | None) -> int:
        """Remember the open incident (``#12``), or forget it (None). Entries already
        queued and not yet marked are marked with it; returns how many were."""
        with self._transaction():
            self._set_status("incident", incident)
            if incident is None:
                return 0
            cursor = self._conn.execute(
                "INSERT OR IGNORE INTO outbox_incident SELECT id, ? FROM outbox", (incident,)
            )
            return cursor.rowcount

    def _set_status(self, column: str, value: str | int | None) -> None:
        # ``column`` is one of our own names above, never input.
        self._conn.execute("INSERT OR IGNORE INTO status_state (only_row) VALUES (1)")
        self._conn.execute(f"UPDATE status_state SET {column} = ? WHERE only_row = 1", (value,))

    # ------------------------------------------------------------------ helpers

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error (a tiny context manager)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def _now_ms() -> int:
    return int(time.time() * 1000)
