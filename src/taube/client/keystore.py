"""This device's end-to-end encryption state, in the profile database.

Tables (created with the profile's schema, wiped by every new login because a
new device has new keys):

* ``e2ee_identity``: the device's identity key pair, whether the server has our
  keys, and the next one-time prekey id.
* ``e2ee_signed_prekeys`` / ``e2ee_prekeys``: private prekeys by id; a one-time
  prekey is deleted when the first message that used it decrypted.
* ``e2ee_sessions``: pairwise Double Ratchet sessions per (user, device): the one
  we send with. ``e2ee_old_sessions``: the last few it replaced, per (user, device,
  base key), which the other device may still be sending in (both devices started
  a session at once; see :mod:`taube.client.e2ee`).
* ``e2ee_devices``: the devices we know per user with the identity key we first
  saw; ``e2ee_contacts``: per user, the key set the user verified and whether it
  changed since ("security code changed").
* ``e2ee_sender_out``: our sending sender key per group and the devices that
  hold it; ``e2ee_sender_in``: receiving sender keys per (group, user, device,
  key id).
* ``e2ee_received``: plaintexts decrypted but not yet acked, by inbox seq, so that
  a redelivered item (after a crash) is shown again instead of failing as a
  replay; ``e2ee_sent``: what we sent recently, for resend requests.

Invariant: every state change that follows an encrypt or decrypt is written in
one transaction with its consequences (session, prekey deletion, plaintext)
before the result is used (sent, shown). The profile file is 0600 (see
:mod:`taube.client.profile`). The class is synchronous: the client runs it on
the profile thread.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Final

from taube.client.sqlite_tx import transaction

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS e2ee_identity (
    only_row       INTEGER PRIMARY KEY CHECK (only_row = 1),
    state          BLOB NOT NULL,
    uploaded       INTEGER NOT NULL DEFAULT 0,
    next_prekey_id INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS e2ee_signed_prekeys (
    id INTEGER PRIMARY KEY, state BLOB NOT NULL, created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS e2ee_prekeys (id INTEGER PRIMARY KEY, state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS e2ee_sessions (
    user TEXT NOT NULL, device INTEGER NOT NULL, state BLOB NOT NULL,
    PRIMARY KEY (user, device)
);
CREATE TABLE IF NOT EXISTS e2ee_old_sessions (
    id INTEGER PRIMARY KEY, user TEXT NOT NULL, device INTEGER NOT NULL,
    base_key BLOB NOT NULL, state BLOB NOT NULL, UNIQUE (user, device, base_key)
);
CREATE TABLE IF NOT EXISTS e2ee_devices (
    user TEXT NOT NULL, device INTEGER NOT NULL, identity_key BLOB NOT NULL,
    seen_ms INTEGER NOT NULL, PRIMARY KEY (user, device)
);
CREATE TABLE IF NOT EXISTS e2ee_contacts (
    user TEXT PRIMARY KEY, verified_keys BLOB, changed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS e2ee_sender_out (
    grp TEXT PRIMARY KEY, state BLOB NOT NULL, holders TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS e2ee_sender_in (
    grp TEXT NOT NULL, user TEXT NOT NULL, device INTEGER NOT NULL, key_id INTEGER NOT NULL,
    state BLOB NOT NULL, PRIMARY KEY (grp, user, device, key_id)
);
CREATE TABLE IF NOT EXISTS e2ee_received (seq INTEGER PRIMARY KEY, plaintext BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS e2ee_sent (
    id TEXT PRIMARY KEY, recipient TEXT NOT NULL, content BLOB NOT NULL,
    created_ms INTEGER NOT NULL, forget_at_ms INTEGER, devices TEXT
);
"""


def upgrade_keystore(conn: sqlite3.Connection) -> None:
    """Bring the tables of a profile made by an earlier version up to KEYSTORE_SCHEMA
    (which creates only missing tables). In one write transaction, so that two
    processes opening the same old profile at once do not both add a column."""
    with transaction(conn):
        columns = {row[1] for row in conn.execute("PRAGMA table_info(e2ee_sent)")}
        if "forget_at_ms" not in columns:  # before disappearing content went in time
            conn.execute("ALTER TABLE e2ee_sent ADD COLUMN forget_at_ms INTEGER")
        if "devices" not in columns:  # before resends went only to the original's devices
            conn.execute("ALTER TABLE e2ee_sent ADD COLUMN devices TEXT")


TABLES: Final = (
    "e2ee_identity",
    "e2ee_signed_prekeys",
    "e2ee_prekeys",
    "e2ee_sessions",
    "e2ee_old_sessions",
    "e2ee_devices",
    "e2ee_contacts",
    "e2ee_sender_out",
    "e2ee_sender_in",
    "e2ee_received",
    "e2ee_sent",
)

DeviceKey = tuple[str, int]


class KeyStore:
    """Typed access to the ``e2ee_*`` tables of one profile connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def transaction(self) -> AbstractContextManager[None]:
        """BEGIN IMMEDIATE ... COMMIT; nested use joins the outer transaction."""
        return transaction(self._conn)

    def wipe(self) -> None:
        for table in TABLES:
            self._conn.execute(f"DELETE FROM {table}")

    # ------------------------------------------------------------ own keys

    def identity(self) -> tuple[bytes, bool] | None:
        row = self._conn.execute(
            "SELECT state, uploaded FROM e2ee_identity WHERE only_row = 1"
        ).fetchone()
        return None if row is None else (bytes(row[0]), bool(row[1]))

    def save_identity(self, state: bytes) -> None:
        self._conn.execute("INSERT INTO e2ee_identity (only_row, state) VALUES (1, ?)", (state,))

    def mark_uploaded(self) -> None:
        self._conn.execute("UPDATE e2ee_identity SET uploaded = 1 WHERE only_row = 1")

    def take_prekey_ids(self, count: int) -> range:
        (first,) = self._conn.execute(
            "UPDATE e2ee_identity SET next_prekey_id = next_prekey_id + ? WHERE only_row = 1"
            " RETURNING next_prekey_id - ?",
            (count, count),
        ).fetchone()
        return range(int(first), int(first) + count)

    def save_signed_prekey(self, key_id: int, state: bytes) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO e2ee_signed_prekeys VALUES (?, ?, ?)",
            (key_id, state, _now_ms()),
        )

    def signed_prekey(self, key_id: int) -> bytes | None:
        return self._blob("SELECT state FROM e2ee_signed_prekeys WHERE id = ?", (key_id,))

    def newest_signed_prekey(self) -> tuple[int, bytes, int] | None:
        row = self._conn.execute(
            "SELECT id, state, created_ms FROM e2ee_signed_prekeys"
            " ORDER BY created_ms DESC, id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]), int(row[2]))

    def drop_signed_prekeys_before(self, created_ms: int, keep: int) -> None:
        self._conn.execute(
            "DELETE FROM e2ee_signed_prekeys WHERE created_ms < ? AND id != ?", (created_ms, keep)
        )

    def save_prekeys(self, prekeys: Sequence[tuple[int, bytes]]) -> None:
        self._conn.executemany("INSERT OR REPLACE INTO e2ee_prekeys VALUES (?, ?)", prekeys)

    def prekey(self, key_id: int) -> bytes | None:
        return self._blob("SELECT state FROM e2ee_prekeys WHERE id = ?", (key_id,))

    def delete_prekey(self, key_id: int) -> None:
        self._conn.execute("DELETE FROM e2ee_prekeys WHERE id = ?", (key_id,))

    # ------------------------------------------------------------ sessions and devices

    def session(self, user: str, device: int) -> bytes | None:
        return self._blob(
            "SELECT state FROM e2ee_sessions WHERE user = ? AND device = ?", (user, device)
        )

    def save_session(self, user: str, device: int, state: bytes) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO e2ee_sessions VALUES (?, ?, ?)", (user, device, state)
        )

    def delete_session(self, user: str, device: int) -> None:
        self._conn.execute(
            "DELETE FROM e2ee_sessions WHERE user = ? AND device = ?", (user, device)
        )

    def old_sessions(self, user: str, device: int) -> list[bytes]:
        """The sessions with ``user``.``device`` that were replaced, newest first."""
        rows = self._conn.execute(
            "SELECT state FROM e2ee_old_sessions WHERE user = ? AND device = ? ORDER BY id DESC",
            (user, device),
        ).fetchall()
        return [bytes(r[0]) for r in rows]

    def archive_session(
        self, user: str, device: int, base_key: bytes, state: bytes, keep: int
    ) -> None:
        """Keep a replaced session (as the newest), and only the ``keep`` newest."""
        self._conn.execute(
            "INSERT OR REPLACE INTO e2ee_old_sessions (user, device, base_key, state)"
            " VALUES (?, ?, ?, ?)",
            (user, device, base_key, state),
        )
        self._conn.execute(
            "DELETE FROM e2ee_old_sessions WHERE user = ? AND device = ? AND id NOT IN"
            " (SELECT id FROM e2ee_old_sessions WHERE user = ? AND device = ?"
            " ORDER BY id DESC LIMIT ?)",
            (user, device, user, device, keep),
        )

    def delete_old_session(self, user: str, device: int, base_key: bytes) -> None:
        self._conn.execute(
            "DELETE FROM e2ee_old_sessions WHERE user = ? AND device = ? AND base_key = ?",
            (user, device, base_key),
        )

    def devices(self, user: str) -> dict[int, bytes]:
        rows = self._conn.execute(
            "SELECT device, identity_key FROM e2ee_devices WHERE user = ? ORDER BY device", (user,)
        ).fetchall()
        return {int(d): bytes(k) for d, k in rows}

    def knows(self, user: str) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM e2ee_contacts WHERE user = ? UNION ALL"
            " SELECT 1 FROM e2ee_devices WHERE user = ? LIMIT 1",
            (user, user),
        ).fetchone()
        return row is not None

    def record_device(
        self, user: str, device: int, identity_key: bytes, *, first_contact: bool | None = None
    ) -> bool:
        """Remember a device's identity key; True if this changes what we knew of ``user``
        (a new device of a known user, or a different key for a known device).

        ``first_contact`` (default: whether we knew nothing of ``user``) pins keys
        without calling it a change: there was nothing to compare with.
        """
        known = self.devices(user)
        if first_contact is None:
            first_contact = not self.knows(user)
        before = known.get(device)
        if before == identity_key:
            return False
        self._conn.execute(
            "INSERT OR REPLACE INTO e2ee_devices VALUES (?, ?, ?, ?)",
            (user, device, identity_key, _now_ms()),
        )
        self._conn.execute("INSERT OR IGNORE INTO e2ee_contacts (user) VALUES (?)", (user,))
        if first_contact or before == b"":  # b"": listed before it had keys
            return False
        self._conn.execute("UPDATE e2ee_contacts SET changed = 1 WHERE user = ?", (user,))
        return True

    def note_keyless(self, user: str, device: int) -> None:
        """A device the server lists that has no keys: it gets empty payloads."""
        self._conn.execute(
            "INSERT OR IGNORE INTO e2ee_devices VALUES (?, ?, ?, ?)", (user, device, b"", _now_ms())
        )

    def set_known(self, user: str) -> None:
        self._conn.execute("INSERT OR IGNORE INTO e2ee_contacts (user) VALUES (?)", (user,))

    def forget_device(self, user: str, device: int) -> None:
        self._conn.execute("DELETE FROM e2ee_devices WHERE user = ? AND device = ?", (user, device))
        self.delete_session(user, device)
        self._conn.execute(
            "DELETE FROM e2ee_old_sessions WHERE user = ? AND device = ?", (user, device)
        )

    def contact(self, user: str) -> tuple[bytes | None, bool]:
        """(the key set the user verified or None, whether the keys changed since)."""
        row = self._conn.execute(
            "SELECT verified_keys, changed FROM e2ee_contacts WHERE user = ?", (user,)
        ).fetchone()
        if row is None:
            return None, False
        return (None if row[0] is None else bytes(row[0])), bool(row[1])

    def set_verified(self, user: str, keys: bytes | None) -> None:
        self._conn.execute(
            "INSERT INTO e2ee_contacts (user, verified_keys, changed) VALUES (?, ?, 0)"
            " ON CONFLICT (user) DO UPDATE SET verified_keys = excluded.verified_keys, changed = 0",
            (user, keys),
        )

    # ------------------------------------------------------------ sender keys

    def sender_out(self, group: str) -> tuple[bytes, set[DeviceKey]] | None:
        row = self._conn.execute(
            "SELECT state, holders FROM e2ee_sender_out WHERE grp = ?", (group,)
        ).fetchone()
        if row is None:
            return None
        holders = {_parse_device(h) for h in str(row[1]).split(",") if h}
        return bytes(row[0]), holders

    def save_sender_out(self, group: str, state: bytes, holders: set[DeviceKey]) -> None:
        text = ",".join(sorted(f"{u}.{d}" for u, d in holders))
        self._conn.execute(
            "INSERT OR REPLACE INTO e2ee_sender_out VALUES (?, ?, ?)", (group, state, text)
        )

    def sender_in(self, group: str, user: str, device: int, key_id: int) -> bytes | None:
        return self._blob(
            "SELECT state FROM e2ee_sender_in"
            " WHERE grp = ? AND user = ? AND device = ? AND key_id = ?",
            (group, user, device, key_id),
        )

    def save_sender_in(self, group: str, user: str, device: int, key_id: int, state: bytes) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO e2ee_sender_in VALUES (?, ?, ?, ?, ?)",
            (group, user, device, key_id, state),
        )

    # ------------------------------------------------------------ received and sent

    def received(self, seq: int) -> bytes | None:
        return self._blob("SELECT plaintext FROM e2ee_received WHERE seq = ?", (seq,))

    def save_received(self, seq: int, plaintext: bytes) -> None:
        self._conn.execute("INSERT OR REPLACE INTO e2ee_received VALUES (?, ?)", (seq, plaintext))

    def forget_received(self, upto_seq: int | None = None) -> None:
        if upto_seq is None:
            self._conn.execute("DELETE FROM e2ee_received")
        else:
            self._conn.execute("DELETE FROM e2ee_received WHERE seq <= ?", (upto_seq,))

    def save_sent(
        self,
        message_id: str,
        recipient: str,
        content: bytes,
        forget_at_ms: int | None = None,
        devices: Sequence[DeviceKey] = (),
    ) -> None:
        """Keep what we sent to ``devices``, for their resend requests, until
        ``forget_at_ms`` (disappearing content) or for SENT_KEPT_MS (e2ee.py)."""
        # Encrypted again (a stale device list): the devices are the new ones, while the
        # content stays what it is (our edit may have changed it meanwhile).
        self._conn.execute(
            "INSERT INTO e2ee_sent"
            " (id, recipient, content, created_ms, forget_at_ms, devices)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET devices = excluded.devices",
            (
                message_id,
                recipient,
                content,
                _now_ms(),
                forget_at_ms,
                json.dumps([[user, device] for user, device in devices]),
            ),
        )

    def sent_devices(self, message_id: str) -> set[DeviceKey]:
        """The devices we sent ``message_id`` to (none known: an empty set)."""
        row = self._conn.execute(
            "SELECT devices FROM e2ee_sent WHERE id = ?", (message_id,)
        ).fetchone()
        if row is None or row[0] is None:  # a copy saved before devices were recorded
            return set()
        return {(str(user), int(device)) for user, device in json.loads(row[0])}

    def sent(self, message_id: str) -> tuple[str, bytes] | None:
        row = self._conn.execute(
            "SELECT recipient, content FROM e2ee_sent WHERE id = ?", (message_id,)
        ).fetchone()
        return None if row is None else (str(row[0]), bytes(row[1]))

    def replace_sent(self, message_id: str, content: bytes) -> None:
        """What a resend of ``message_id`` sends from now on (our edit of it)."""
        self._conn.execute("UPDATE e2ee_sent SET content = ? WHERE id = ?", (content, message_id))

    def forget_sent_id(self, message_id: str) -> None:
        """Forget what we sent as ``message_id`` (our delete for everyone)."""
        self._conn.execute("DELETE FROM e2ee_sent WHERE id = ?", (message_id,))

    def forget_sent(self, created_before_ms: int, now_ms: int) -> int:
        """Forget sent content older than ``created_before_ms`` or due at ``now_ms``;
        how many."""
        cur = self._conn.execute(
            "DELETE FROM e2ee_sent WHERE created_ms < ? OR forget_at_ms <= ?",
            (created_before_ms, now_ms),
        )
        return cur.rowcount

    def next_sent_due(self) -> int | None:
        """When the next sent content with a deadline is due (None: none has one)."""
        row = self._conn.execute("SELECT MIN(forget_at_ms) FROM e2ee_sent").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    # ------------------------------------------------------------ helpers

    def _blob(self, sql: str, args: tuple[object, ...]) -> bytes | None:
        row = self._conn.execute(sql, args).fetchone()
        return None if row is None else bytes(row[0])


def _parse_device(text: str) -> DeviceKey:
    user, _, device = text.rpartition(".")
    return user, int(device)


def _now_ms() -> int:
    return int(time.time() * 1000)
