"""The Store contract: one suite, run against every Store implementation.

New stores join by adding a factory to STORES; the tests never look inside.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from taube.protocol.frames import GroupEvent, Message, Receipt
from taube.store import postgres as postgres_store
from taube.store import sqlite as sqlite_store
from taube.store.base import (
    AckResult,
    BundleRecord,
    Delivery,
    GroupRecord,
    HandleTaken,
    IdentityKeyMismatch,
    IncidentUpdateRecord,
    KeysIncomplete,
    KeysStatusRecord,
    LinkRecord,
    NewMessage,
    NoticeRecord,
    PrekeyRecord,
    ProbeMinuteRecord,
    SchemaTooNew,
    SendResult,
    SignedPrekeyRecord,
    Store,
    StoreUnavailable,
    TooManyPrekeys,
    UserRecord,
    WebhookDeliveryRecord,
)
from taube.store.postgres import PostgresStore
from taube.store.sqlite import SqliteStore
from taube.store.sqlite_driver import sqlite3
from tests.conftest import POSTGRES_DSN, TcpProxy, drop_schema, fresh_name, postgres_dsn
from tests.serverproc import UNIT_S, free_port

StoreFactory = Callable[[Path], Awaitable[Store]]


async def open_sqlite(folder: Path) -> Store:
    """SQLite with synchronous=FULL: the writer is a thread."""
    store = SqliteStore(folder / "taube.db")
    await store.open()
    return store


async def open_sqlite_inline(folder: Path) -> Store:
    """SQLite with synchronous=NORMAL (the server's default): writes on the event loop."""
    store = SqliteStore(folder / "taube.db", synchronous="NORMAL")
    await store.open()
    return store


POSTGRES_SCHEMA_FILE = "postgres-schema"


async def open_postgres(folder: Path) -> Store:
    """A PostgresStore in a schema of its own for this test (named in ``folder``, so that
    reopening the same folder reopens the same data)."""
    dsn = postgres_dsn()
    marker = folder / POSTGRES_SCHEMA_FILE
    if not marker.exists():
        marker.write_text(fresh_name("t"))
    store = PostgresStore(dsn, schema=marker.read_text(), max_connections=6)
    await store.open()
    return store


async def forget_postgres(folder: Path) -> None:
    marker = folder / POSTGRES_SCHEMA_FILE
    if marker.exists():
        await drop_schema(POSTGRES_DSN, marker.read_text())


STORES: dict[str, StoreFactory] = {
    "sqlite": open_sqlite,
    "sqlite-inline": open_sqlite_inline,
    "postgresql": open_postgres,
}


@pytest.fixture(params=sorted(STORES))
async def factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    yield STORES[request.param]
    await forget_postgres(tmp_path)  # a no-op for stores that keep no outside state


@pytest.fixture
async def store(factory: StoreFactory, tmp_path: Path) -> AsyncIterator[Store]:
    opened = await factory(tmp_path)
    yield opened
    await opened.close()


async def user(store: Store, handle: str, devices: int = 1) -> None:
    await store.create_user(UserRecord(handle, "hash", 1))
    for i in range(devices):
        await store.create_device(handle, f"d{i}", f"{handle}-{i}".encode(), 1)


def message(
    sender: str, mid: str, to: list[tuple[str, int]], target: str = "@x", at_ms: int = 1000
) -> NewMessage:
    return NewMessage(
        sender=sender,
        sender_device=1,
        id=mid,
        target=target,
        sent_at_ms=at_ms,
        payload=b"shared",
        deliveries=[Delivery(u, d, f"@{sender}") for u, d in to],
    )


async def test_users_and_handle_uniqueness(store: Store) -> None:
    await store.create_user(UserRecord("alice", "h", 5))
    with pytest.raises(HandleTaken):
        await store.create_user(UserRecord("alice", "other", 6))
    got = await store.get_user("alice")
    assert got == UserRecord("alice", "h", 5, False, None)
    await store.set_hide_presence("alice", True)
    await store.set_last_seen("alice", 77)
    assert await store.get_user("alice") == UserRecord("alice", "h", 5, True, 77)
    assert await store.get_user("nobody") is None


async def test_devices_ids_grow_and_revocation_sticks(store: Store) -> None:
    await user(store, "alice", devices=2)
    devices = await store.list_devices("alice")
    assert [d.id for d in devices] == [1, 2]
    assert (await store.device_by_token(b"alice-1")) == devices[1]
    assert await store.revoke_device("alice", 1, 9)
    assert not await store.revoke_device("alice", 1, 9)
    third = await store.create_device("alice", "new", b"t3", 10)
    assert third.id == 3  # ids are never reused
    assert await store.active_devices(["alice", "ghost"]) == {"alice": [2, 3]}
    revoked = await store.device_by_token(b"alice-0")
    assert revoked is not None
    assert not revoked.active


async def test_inbox_is_gap_free_and_survives_acks_and_reopen(
    factory: StoreFactory, tmp_path: Path
) -> None:
    store = await factory(tmp_path)
    await user(store, "alice")
    await user(store, "bob")
    for i in range(5):
        result = await store.commit_message(message("alice", f"m{i}", [("bob", 1)]))
        assert result.appended == [(("bob", 1), i + 1)]
        assert not result.duplicate
    items = await store.read_inbox("bob", 1, 0, 100)
    assert [i.seq for i in items] == [1, 2, 3, 4, 5]
    assert all(isinstance(i, Message) and i.payload == b"shared" for i in items)
    ack = await store.ack("bob", 1, 5, 2000)
    assert ack.acked_seq == 5
    await store.close()
    store = await factory(tmp_path)
    await store.commit_message(message("alice", "m5", [("bob", 1)]))
    items = await store.read_inbox("bob", 1, 0, 100)
    assert [i.seq for i in items] == [6]
    assert await store.last_seq("bob", 1) == 6
    await store.close()


async def test_seq_counters_survive_reopen_whatever_the_inbox_holds(
    factory: StoreFactory, tmp_path: Path
) -> None:
    """A device's next seq after a restart follows the last one given out, whether its
    inbox was partly acked, fully acked, still full, or the device was revoked (the
    SQLite store writes the counter only when an ack empties an inbox)."""
    store = await factory(tmp_path)
    await user(store, "alice")
    await user(store, "bob", devices=2)
    bob = [("bob", 1), ("bob", 2)]
    for i in range(3):
        await store.commit_message(message("alice", f"a{i}", bob))
    partly = await store.ack("bob", 1, 2, 2000)
    fully = await store.ack("bob", 2, 3, 2000)
    both = partly.appended + fully.appended
    receipts = [item.seq for key, item in both if key == ("alice", 1)]
    assert receipts == [1, 2]  # alice's inbox: two receipts, not acked
    await store.close()

    store = await factory(tmp_path)
    assert [await store.last_seq(*key) for key in bob] == [3, 3]
    assert await store.last_seq("alice", 1) == 2
    result = await store.commit_message(message("alice", "a3", bob))
    assert sorted(result.appended) == [(("bob", 1), 4), (("bob", 2), 4)]
    third = await store.ack("bob", 1, 4, 2000)  # bob.1 empty now, alice gets receipt 3
    assert [item.seq for key, item in third.appended if key == ("alice", 1)] == [3]
    assert await store.revoke_device("bob", 2, 3000)
    await store.close()

    store = await factory(tmp_path)
    try:
        assert await store.last_seq("bob", 1) == 4
        assert await store.last_seq("bob", 2) == 4  # revoked: its count kept
        assert await store.last_seq("alice", 1) == 3
        result = await store.commit_message(message("alice", "a4", bob))
        assert result.appended == [(("bob", 1), 5)]
    finally:
        await store.close()


async def test_commit_is_idempotent_per_sender_and_id(store: Store) -> None:
    await user(store, "alice")
    await user(store, "bob")
    first = await store.commit_message(message("alice", "same", [("bob", 1)]))
    again = await store.commit_message(message("alice", "same", [("bob", 1)]))
    assert again.duplicate
    assert again.sent_at_ms == first.sent_at_ms
    assert again.appended == []
    assert len(await store.read_inbox("bob", 1, 0, 10)) == 1
    # Another sender may use the same id without clashing.
    other = await store.commit_message(message("bob", "same", [("alice", 1)]))
    assert not other.duplicate


async def test_per_device_payloads_win_over_shared(store: Store) -> None:
    await user(store, "alice")
    await user(store, "bob", devices=2)
    msg = NewMessage(
        "alice", 1, "p", "@bob", 1, None,
        [Delivery("bob", 1, "@alice", b"one"), Delivery("bob", 2, "@alice", b"two")],
    )  # fmt: skip
    await store.commit_message(msg)
    (one,) = await store.read_inbox("bob", 1, 0, 10)
    (two,) = await store.read_inbox("bob", 2, 0, 10)
    assert isinstance(one, Message)
    assert isinstance(two, Message)
    assert (one.payload, two.payload) == (b"one", b"two")


async def test_ack_queues_delivered_receipts_for_every_sender_device(store: Store) -> None:
    await user(store, "alice", devices=2)
    await user(store, "bob")
    await store.commit_message(message("alice", "a1", [("bob", 1), ("alice", 2)]))
    await store.commit_message(message("alice", "a2", [("bob", 1), ("alice", 2)]))
    result = await store.ack("bob", 1, 99, 3000)
    assert result.acked_seq == 2  # clamped to what exists
    assert sorted(key for key, _ in result.appended) == [("alice", 1), ("alice", 2)]
    assert [item.seq for _, item in result.appended] == [1, 3]  # alice.2 holds two copies first

    for device in (1, 2):
        receipts = [
            i for i in await store.read_inbox("alice", device, 0, 10) if isinstance(i, Receipt)
        ]
        assert len(receipts) == 1
        r = receipts[0]
        assert (r.status, r.by, r.by_device, r.ids, r.conversation) == (
            "delivered", "bob", 1, ["a1", "a2"], "@bob",
        )  # fmt: skip
    # The sender's own copy, acked, makes no receipt.
    own = await store.ack("alice", 2, 2, 3000)
    assert own.appended == []
    assert await store.read_inbox("bob", 1, 0, 10) == []


async def test_revoked_device_loses_inbox_and_gets_nothing_new(store: Store) -> None:
    await user(store, "alice")
    await user(store, "bob", devices=2)
    await store.commit_message(message("alice", "x", [("bob", 1), ("bob", 2)]))
    assert await store.revoke_device("bob", 2, 5)
    assert await store.read_inbox("bob", 2, 0, 10) == []
    result = await store.commit_message(message("alice", "y", [("bob", 1), ("bob", 2)]))
    assert result.appended == [(("bob", 1), 2)]


async def test_groups_membership_and_events(store: Store) -> None:
    for h in ("alice", "bob", "carol"):
        await user(store, h)
    group = GroupRecord("g1", "Familie", 1, "alice", {"alice": True, "bob": False})
    await store.create_group(group)
    assert await store.get_group("g1") == group
    updated = await store.update_group(
        "g1", name="Family", upsert_members={"carol": False, "bob": True}, remove_members=["alice"]
    )
    assert updated is not None
    assert (updated.name, updated.members) == ("Family", {"bob": True, "carol": False})
    assert [g.id for g in await store.groups_of("carol")] == ["g1"]
    assert await store.groups_of("alice") == []
    assert await store.update_group("nope", name="x") is None
    event = GroupEvent(
        seq=0, group="g1", event="renamed", actor="bob", members=[], name="Family", at_ms=2
    )
    await store.append_items([(("carol", 1), event)])
    (item,) = await store.read_inbox("carol", 1, 0, 10)
    assert item == GroupEvent(
        seq=1, group="g1", event="renamed", actor="bob", members=[], name="Family", at_ms=2
    )


async def test_sqlite_migrates_an_existing_database_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_sqlite(tmp_path)
    await user(store, "alice")
    await store.close()
    shipped = sqlite_store.migrations()
    extra = (shipped[-1][0] + 1, "ALTER TABLE users ADD COLUMN about TEXT NOT NULL DEFAULT '';")
    monkeypatch.setattr(sqlite_store, "migrations", lambda: [*shipped, extra])
    store = await open_sqlite(tmp_path)
    assert await store.get_user("alice") is not None
    await store.close()
    with sqlite3.connect(tmp_path / "taube.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == extra[0]
        assert conn.execute("SELECT about FROM users").fetchall() == [("",)]


def database_at(path: Path, version: int) -> sqlite3.Connection:
    """A database file with the shipped migrations up to ``version`` applied, as an
    older Taube left it; the test writes its rows with plain SQL of that schema."""
    conn = sqlite3.connect(path / "taube.db", isolation_level=None)
    for number, sql in sqlite_store.migrations():
        if number <= version:
            conn.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version={number};\nCOMMIT;")
    return conn


def old_device(conn: sqlite3.Connection, user: str, device: int, next_seq: int = 1) -> None:
    conn.execute("INSERT OR IGNORE INTO users VALUES (?, 'hash', 1, 0, NULL)", (user,))
    conn.execute(
        "INSERT INTO devices (user, id, name, token_hash, created_ms, last_active_ms, next_seq)"
        " VALUES (?, ?, 'd', ?, 1, 1, ?)",
        (user, device, f"{user}-{device}".encode(), next_seq),
    )


async def test_sqlite_key_order_migration_keeps_messages_and_their_dedupe(
    tmp_path: Path,
) -> None:
    """0009 rebuilds ``messages`` with the key (id, sender): what was stored before
    is still there, still read through the inbox and still a duplicate if resent."""
    group = [("bob", 1), *((f"u{i}", 1) for i in range(9))]  # > 8 devices: shared payload
    with contextlib.closing(database_at(tmp_path, 8)) as conn:
        old_device(conn, "alice", 1)
        for name, _ in group:
            old_device(conn, name, 1, next_seq=2)
        conn.execute(
            "INSERT INTO messages (sender, id, sender_device, target, sent_at_ms, payload)"
            " VALUES ('alice', 'old', 1, '@x', 1000, ?)",
            (b"shared",),
        )
        conn.executemany(
            "INSERT INTO inbox (user, device, seq, kind, sender, msg_id, conversation)"
            " VALUES (?, 1, 1, 1, 'alice', 'old', '@alice')",
            [(name,) for name, _ in group],
        )
    store = await open_sqlite(tmp_path)
    try:
        again = await store.commit_message(message("alice", "old", group))
        assert again.duplicate
        assert again.appended == []
        (item,) = await store.read_inbox("bob", 1, 0, 10)
        assert isinstance(item, Message)
        assert item.payload == b"shared"
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "taube.db") as conn:
        shipped = sqlite_store.migrations()
        assert conn.execute("PRAGMA user_version").fetchone()[0] == shipped[-1][0]
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'messages'").fetchone()
        assert "PRIMARY KEY (id, sender)" in sql


async def test_sqlite_slot_migration_keeps_every_inbox_and_its_count(tmp_path: Path) -> None:
    """0011 keys inbox rows by slot (box << 32 | seq): every device gets its own box,
    every row keeps its seq and content, and each device's count goes on from where it
    was, whether its inbox was empty (the count in ``devices``) or not."""
    with contextlib.closing(database_at(tmp_path, 10)) as conn:
        old_device(conn, "alice", 1, next_seq=3)  # two receipts acked long ago: empty
        old_device(conn, "bob", 1, next_seq=1)  # next_seq is stale: rows 1..3 hold more
        old_device(conn, "bob", 2, next_seq=8)
        for i in range(3):
            conn.execute(
                "INSERT INTO messages (sender, id, sender_device, target, sent_at_ms)"
                " VALUES ('alice', ?, 1, '@bob', 1000)",
                (f"m{i}",),
            )
        conn.executemany(
            "INSERT INTO inbox (user, device, seq, kind, sender, msg_id, conversation, payload)"
            " VALUES (?, ?, ?, 1, 'alice', ?, '@alice', ?)",
            [("bob", 1, i + 1, f"m{i}", f"p{i}".encode()) for i in range(3)]
            + [("bob", 2, 7, "m2", b"p2")],
        )
    store = await open_sqlite(tmp_path)
    try:
        assert [i.seq for i in await store.read_inbox("bob", 1, 0, 10)] == [1, 2, 3]
        assert [i.seq for i in await store.read_inbox("bob", 1, 1, 10)] == [2, 3]
        (item,) = await store.read_inbox("bob", 2, 0, 10)
        assert isinstance(item, Message)
        assert (item.seq, item.id, item.payload, item.sent_at_ms) == (7, "m2", b"p2", 1000)
        assert await store.read_inbox("alice", 1, 0, 10) == []
        assert [await store.last_seq(*k) for k in (("alice", 1), ("bob", 1), ("bob", 2))] == [
            2,
            3,
            7,
        ]
        result = await store.commit_message(message("carol", "n", [("bob", 1), ("bob", 2)]))
        assert sorted(result.appended) == [(("bob", 1), 4), (("bob", 2), 8)]
        acked = await store.ack("bob", 1, 4, 2000)
        assert [item.seq for key, item in acked.appended if key == ("alice", 1)] == [3]
        await user(store, "dora")  # a device made after the migration gets a box of its own
        assert (await store.commit_message(message("carol", "d", [("dora", 1)]))).appended == [
            (("dora", 1), 1)
        ]
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "taube.db") as conn:
        boxes = [row[0] for row in conn.execute("SELECT box FROM devices ORDER BY box")]
        assert None not in boxes
        assert len(set(boxes)) == len(boxes) == 4


async def test_purge_forgets_only_old_messages_nobody_still_holds(store: Store) -> None:
    await user(store, "alice")
    await user(store, "bob")
    await store.commit_message(message("alice", "delivered", [("bob", 1)]))
    await store.commit_message(message("alice", "pending", [("bob", 1)]))
    await store.ack("bob", 1, 1, 2000)  # "delivered" leaves the inbox, "pending" stays
    assert await store.purge_messages(before_ms=500, limit=100) == 0  # too young
    assert await store.purge_messages(before_ms=5000, limit=100) == 1
    assert await store.sent_at("alice", "delivered") is None
    assert await store.sent_at("alice", "pending") == 1000
    (item,) = await store.read_inbox("bob", 1, 0, 10)
    assert isinstance(item, Message)
    assert item.payload == b"shared"


async def test_purge_never_takes_a_young_message_for_an_old_one(store: Store) -> None:
    """Sent times come from the clock, which may step back: a message committed after
    a younger one can carry an older time. The purge must keep every young message,
    however the rows lie, and forget every old one once the cutoff has passed them."""
    await user(store, "alice")
    await user(store, "bob")
    times = [1000, 3000, 2000, 6000, 7000, 1500, 8000, 9000]
    for i, at in enumerate(times):
        await store.commit_message(message("alice", f"m{i}", [("bob", 1)], at_ms=at))
    await store.ack("bob", 1, len(times), 10_000)
    purged = 0
    while (n := await store.purge_messages(before_ms=2500, limit=2)) > 0:
        purged += n
    for i, at in enumerate(times):
        if at >= 2500:
            assert await store.sent_at("alice", f"m{i}") == at, f"young m{i} was purged"
    assert 1 <= purged <= 3
    while await store.purge_messages(before_ms=20_000, limit=3) > 0:
        pass
    assert [await store.sent_at("alice", f"m{i}") for i in range(len(times))] == [None] * 8


async def test_sqlite_purge_walks_only_the_old_rows(tmp_path: Path) -> None:
    """Without an index on sent_at_ms (migration 0010) the purge must still not read
    the whole table: it bisects rowids for the first young row."""
    store = await open_sqlite(tmp_path)
    try:
        await user(store, "alice")
        await user(store, "bob")
        for i in range(300):
            await store.commit_message(message("alice", f"m{i}", [("bob", 1)], at_ms=i))
        await store.ack("bob", 1, 300, 10_000)
        assert await store.purge_messages(before_ms=100, limit=1000) == 100
        assert await store.sent_at("alice", "m99") is None
        assert await store.sent_at("alice", "m100") == 100
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "taube.db") as conn:
        plan = " ".join(
            row[3]
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT rowid FROM messages WHERE rowid < 5 AND sent_at_ms < 9"
            )
        )
        assert "rowid<?" in plan.replace(" ", ""), plan
        indexes = [r[0] for r in conn.execute("PRAGMA index_list(messages)")]
        assert "messages_by_time" not in indexes


async def test_sqlite_zeroes_a_delivered_payload_on_disk(tmp_path: Path) -> None:
    """Once acked, a message's ciphertext is gone from the file, not left in a free
    page (PRAGMA secure_delete, which SQLite's own default leaves off)."""
    secret = b"ciphertext-" + os.urandom(12).hex().encode()
    store = await open_sqlite(tmp_path)
    try:
        await user(store, "alice")
        await user(store, "bob")
        sent = message("alice", "m1", [("bob", 1)])
        await store.commit_message(
            NewMessage(sent.sender, 1, sent.id, sent.target, 1000, secret, sent.deliveries)
        )
        await store.commit_message(message("alice", "m2", [("bob", 1)]))  # its page stays
        await store.ack("bob", 1, 1, 2000)
    finally:
        await store.close()
    files = [tmp_path / "taube.db", tmp_path / "taube.db-wal"]
    assert not any(secret in f.read_bytes() for f in files if f.exists())


def file_size(path: Path) -> int:
    return path.stat().st_size


async def wal_emptied(wal: Path) -> None:
    """Wait (up to 5 s) for the store's thread to truncate ``wal``; polled, as the file
    changes on another thread with nothing to wait on."""
    async with asyncio.timeout(5 * UNIT_S):
        while True:
            if file_size(wal) == 0:
                return
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def quiet_store(folder: Path, synchronous: str) -> AsyncIterator[SqliteStore]:
    """A SQLite store that truncates its WAL after 0.05 s without writes (the server's
    default is QUIET_CHECKPOINT_S), with users alice and bob."""
    store = SqliteStore(folder / "taube.db", synchronous=synchronous, quiet_checkpoint_s=0.05)
    await store.open()
    try:
        await user(store, "alice")
        await user(store, "bob")
        yield store
    finally:
        await store.close()


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])  # writer thread, inline
async def test_sqlite_leaves_no_delivered_payload_in_the_wal_once_quiet(
    tmp_path: Path, synchronous: str
) -> None:
    """secure_delete zeroes the database's copy, but the WAL's frames still hold the page
    as the message's commit wrote it. Once writes stop (here for 0.05 s; the server's
    default is QUIET_CHECKPOINT_S), the WAL is copied in and truncated: no copy is left
    in either file while the store is still open (at close SQLite removes the WAL)."""
    secret = b"ciphertext-" + os.urandom(12).hex().encode()
    wal = tmp_path / "taube.db-wal"
    async with quiet_store(tmp_path, synchronous) as store:
        sent = message("alice", "m1", [("bob", 1)])
        await store.commit_message(
            NewMessage(sent.sender, 1, sent.id, sent.target, 1000, secret, sent.deliveries)
        )
        await store.commit_message(message("alice", "m2", [("bob", 1)]))
        assert secret in wal.read_bytes()  # what this test is about
        await store.ack("bob", 1, 1, 2000)
        await wal_emptied(wal)
        files = [tmp_path / "taube.db", wal]
        assert not any(secret in f.read_bytes() for f in files)
        # Writes go on as before, and a later quiet spell truncates again.
        await store.commit_message(message("alice", "m3", [("bob", 1)]))
        assert [m.id for m in await store.read_inbox("bob", 1, 0, 10)] == ["m2", "m3"]
        await wal_emptied(wal)


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])  # writer thread, inline
async def test_sqlite_quiet_checkpoint_gives_way_to_a_long_reader(
    tmp_path: Path, synchronous: str
) -> None:
    """A reader that holds a snapshot (a backup running beside the server) keeps the WAL
    from being truncated. Writes must not wait for it, beyond a moment, and once the
    reader is gone the WAL is truncated after all."""
    wal = tmp_path / "taube.db-wal"
    async with quiet_store(tmp_path, synchronous) as store:
        await wal_emptied(wal)
        with contextlib.closing(sqlite3.connect(tmp_path / "taube.db")) as reader:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM users").fetchone()  # holds its snapshot
            for i in range(4):  # quiet spells in between: truncations that cannot finish
                started = time.monotonic()
                await store.commit_message(message("alice", f"m{i}", [("bob", 1)]))
                assert time.monotonic() - started < 1.0
                await asyncio.sleep(0.2)
            assert file_size(wal) > 0
            reader.execute("ROLLBACK")
        await wal_emptied(wal)
        assert len(await store.read_inbox("bob", 1, 0, 10)) == 4


def inbox_rows(path: Path) -> list[tuple[int, int]]:
    """(kind, items) of every inbox row in the database file at ``path``."""
    with contextlib.closing(sqlite3.connect(path / "taube.db")) as conn:
        return [
            (kind, slot - first + 1 if first is not None else 1)
            for kind, slot, first in conn.execute(
                "SELECT kind, slot, first_slot FROM inbox ORDER BY slot"
            )
        ]


@pytest.mark.parametrize("opener", [open_sqlite, open_sqlite_inline])
async def test_sqlite_one_commits_items_for_a_device_share_a_row(
    tmp_path: Path, opener: StoreFactory
) -> None:
    """The messages a group commit gives one device go in one inbox row (a run, as under
    load); they read, ack (inside the run too), give receipts and leave the disk as
    single rows do, before and after a restart (when the writer no longer remembers
    them and the ack reads them back)."""
    secrets = [f"run-{i}-".encode() + os.urandom(8).hex().encode() for i in range(10)]
    store = await opener(tmp_path)
    try:
        for handle in ("alice", "bob", "carol"):
            await user(store, handle)
        sends = [
            store.submit_message(
                NewMessage("alice", 2, f"m{i}", "@b", 1000 + i, secret, [Delivery("bob", 1, "@a")])
            )
            for i, secret in enumerate(secrets)
        ]
        sends.append(store.submit_message(message("alice", "c", [("carol", 1)])))
        await asyncio.gather(*sends)
        items = await store.read_inbox("bob", 1, 0, 100)
        assert [
            (i.seq, i.id, i.conversation, i.payload, i.sender_device, i.sent_at_ms) for i in items
        ] == [(i + 1, f"m{i}", "@a", secrets[i], 2, 1000 + i) for i in range(10)]
        assert [i.seq for i in await store.read_inbox("bob", 1, 4, 3)] == [5, 6, 7]
        acked = await store.ack("bob", 1, 4, 2000)
        receipts = [r for _, r in acked.appended if isinstance(r, Receipt)]
        assert [r.ids for r in receipts] == [["m0", "m1", "m2", "m3"]]
        assert [i.seq for i in await store.read_inbox("bob", 1, 0, 100)] == list(range(5, 11))
    finally:
        await store.close()
    assert inbox_rows(tmp_path) == [(2, 1), (4, 6), (1, 1)]  # alice's receipt, bob, carol
    data = (tmp_path / "taube.db").read_bytes()
    assert not any(secret in data for secret in secrets[:4])
    assert all(secret in data for secret in secrets[4:])
    store = await opener(tmp_path)
    try:
        acked = await store.ack("bob", 1, 7, 3000)
        assert [r.ids for _, r in acked.appended if isinstance(r, Receipt)] == [["m4", "m5", "m6"]]
        assert [i.seq for i in await store.read_inbox("bob", 1, 0, 100)] == [8, 9, 10]
        assert await store.last_seq("bob", 1) == 10
        sent = await store.commit_message(message("alice", "n", [("bob", 1)]))
        assert sent.appended == [(("bob", 1), 11)]
        acked = await store.ack("bob", 1, 11, 4000)
        assert [r.ids for _, r in acked.appended if isinstance(r, Receipt)] == [
            ["m7", "m8", "m9", "n"]
        ]
        assert await store.read_inbox("bob", 1, 0, 100) == []
    finally:
        await store.close()
    data = (tmp_path / "taube.db").read_bytes()
    assert not any(secret in data for secret in secrets)


def sent_records(path: Path) -> tuple[list[tuple[str, str]], int]:
    """The ``sent_runs`` rows (sender, last id), and how many ``messages`` rows."""
    with contextlib.closing(sqlite3.connect(path / "taube.db")) as conn:
        runs = conn.execute("SELECT sender, last_id FROM sent_runs ORDER BY rowid").fetchall()
        (kept,) = conn.execute("SELECT count(*) FROM messages").fetchone()
        return runs, kept


def sent_id(n: int) -> str:
    return f"0190a000-0000-7000-8000-{n:012x}"


@pytest.mark.parametrize("opener", [open_sqlite, open_sqlite_inline])
async def test_sqlite_sent_ids_of_a_large_commit_share_a_record_and_stay_exact(
    tmp_path: Path, opener: StoreFactory
) -> None:
    """In a commit of many messages, a sender's new ids are recorded in one row; ids
    that may have been sent before (a resend, an id out of order, any id not above the
    newest in ``messages``) are looked up and recorded one by one. Every resend is a
    duplicate with its first time: in the same commit, later, and after a restart
    (when the writer reads what it remembered back from the file)."""
    alice = [sent_id(n) for n in range(1000, 1280, 2)]  # growing, with gaps between
    early = sent_id(500)  # below all of them: an id out of order
    bobs = [sent_id(n) for n in range(2000, 2140, 2)]  # above every id of alice's
    store = await opener(tmp_path)

    def send(sender: str, i: str, at: int) -> asyncio.Future[SendResult]:
        to = [Delivery("carol", 1, f"@{sender}")]
        return store.submit_message(NewMessage(sender, 1, i, "@carol", at, b"x", to))

    try:
        for handle in ("alice", "bob", "carol", "dave"):
            await user(store, handle)
        first = await asyncio.gather(*(send("alice", i, n) for n, i in enumerate(alice[:70])))
        assert not any(r.duplicate for r in first)
        # A resend in a commit: the commit goes one by one, into ``messages``.
        second = await asyncio.gather(
            *(send("alice", i, 100 + n) for n, i in enumerate(alice[70:])),
            send("alice", alice[3], 999),
        )
        assert not any(r.duplicate for r in second[:-1])
        assert (second[-1].duplicate, second[-1].sent_at_ms) == (True, 3)
        late = await store.commit_message(NewMessage("alice", 1, early, "@carol", 50, b"x", []))
        assert not late.duplicate
        third = await asyncio.gather(*(send("bob", i, 300 + n) for n, i in enumerate(bobs)))
        assert not any(r.duplicate for r in third)
        # Ids below the newest in ``messages`` may be there: recorded one by one.
        dave = [sent_id(n) for n in range(600, 670)]
        fourth = await asyncio.gather(*(send("dave", i, 400 + n) for n, i in enumerate(dave)))
        assert not any(r.duplicate for r in fourth)
        again = await asyncio.gather(
            send("alice", early, 61),
            send("alice", alice[69], 62),
            send("alice", alice[100], 63),
            send("bob", bobs[5], 64),
        )
        assert [(r.duplicate, r.sent_at_ms) for r in again] == [
            (True, 50),
            (True, 69),
            (True, 130),
            (True, 305),
        ]
    finally:
        await store.close()
    runs, kept = sent_records(tmp_path)
    assert runs == [("alice", alice[69]), ("bob", bobs[-1])]
    assert kept == 141  # alice's second commit one by one, the early id, dave's commit
    store = await opener(tmp_path)
    try:
        resent = [
            await store.commit_message(NewMessage("alice", 2, i, "@carol", 70, b"x", []))
            for i in (alice[0], early, alice[139])
        ]
        assert [(r.duplicate, r.sent_at_ms) for r in resent] == [(True, 0), (True, 50), (True, 169)]
        bob_again = await store.commit_message(
            NewMessage("bob", 1, bobs[0], "@carol", 71, b"x", [])
        )
        assert (bob_again.duplicate, bob_again.sent_at_ms) == (True, 300)
        assert await store.sent_at("alice", alice[4]) == 4
        assert await store.sent_at("alice", sent_id(1001)) is None  # between two of a run
        assert await store.sent_at("bob", bobs[7]) == 307
        assert await store.sent_at("dave", dave[9]) == 409
        items = await store.read_inbox("carol", 1, 0, 1000)
        assert [(i.id, i.sent_at_ms) for i in items if isinstance(i, Message)] == [
            *((i, n) for n, i in enumerate(alice[:70])),
            *((i, 100 + n) for n, i in enumerate(alice[70:])),
            *((i, 300 + n) for n, i in enumerate(bobs)),
            *((i, 400 + n) for n, i in enumerate(dave)),
        ]
    finally:
        await store.close()


async def test_purge_leaves_undelivered_messages_readable(store: Store) -> None:
    """A 1:1 message's inbox item stays readable, payload, sender device and time, once
    the purge has run past it."""
    await user(store, "alice")
    await user(store, "bob")
    await store.commit_message(message("alice", "pending", [("bob", 1)]))
    while await store.purge_messages(before_ms=5000, limit=100) > 0:
        pass
    (item,) = await store.read_inbox("bob", 1, 0, 10)
    assert isinstance(item, Message)
    assert (item.id, item.payload, item.sender_device, item.sent_at_ms) == (
        "pending",
        b"shared",
        1,
        1000,
    )


async def test_sqlite_refuses_a_database_from_a_newer_version(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "taube.db") as conn:
        conn.execute("PRAGMA user_version = 999")
    with pytest.raises(SchemaTooNew):
        await open_sqlite(tmp_path)


async def test_concurrent_commits_batch_together_and_stay_gap_free(
    factory: StoreFactory, tmp_path: Path
) -> None:
    store = await factory(tmp_path)
    for handle in ("alice", "carol", "dave"):
        await user(store, handle)
    await user(store, "bob", devices=2)
    await store.revoke_device("bob", 2, 5)
    sends = [
        message(sender, f"{sender}-{i % 90}", [("bob", 1), ("bob", 2)])
        for i in range(100)
        for sender in ("alice", "carol", "dave")
    ]
    results = await asyncio.gather(*(store.commit_message(m) for m in sends))
    fresh = [r for r in results if not r.duplicate]
    assert len(fresh) == 270  # ids repeat after 90 per sender
    assert sorted(seq for r in fresh for _, seq in r.appended) == list(range(1, 271))
    assert all(key == ("bob", 1) for r in fresh for key, _ in r.appended)
    await store.close()
    store = await factory(tmp_path)
    again = await store.commit_message(message("alice", "after-reopen", [("bob", 1)]))
    assert again.appended == [(("bob", 1), 271)]
    items = await store.read_inbox("bob", 1, 0, 1000)
    assert [i.seq for i in items] == list(range(1, 272))
    await store.close()


async def test_a_failing_write_fails_alone_among_its_batch_mates(store: Store) -> None:
    """Writes submitted together share a transaction; one that fails (a taken handle)
    is undone by itself, seqs included, and every other write of the batch holds."""
    for handle in ("alice", "carol"):
        await user(store, handle)
    await user(store, "bob")
    await store.commit_message(message("alice", "first", [("bob", 1)]))
    # Submitted in one turn of the event loop: one batch on the SQLite writer.
    before = [store.submit_message(message("alice", f"a{i}", [("bob", 1)])) for i in range(5)]
    taken = asyncio.ensure_future(store.create_user(UserRecord("carol", "h", 9)))
    ack = asyncio.ensure_future(store.ack("bob", 1, 1, 50))
    after = [store.submit_message(message("carol", f"c{i}", [("bob", 1)])) for i in range(5)]
    with pytest.raises(HandleTaken):
        await taken
    results = await asyncio.gather(*before, *after)
    assert [seq for r in results for _, seq in r.appended] == list(range(2, 12))
    acked = await ack
    assert acked.acked_seq == 1
    assert [(key, item.ids) for key, item in acked.appended] == [(("alice", 1), ["first"])]
    items = await store.read_inbox("bob", 1, 0, 100)
    assert [i.seq for i in items] == list(range(2, 12))
    assert await store.get_user("carol") == UserRecord("carol", "hash", 1, False, None)


async def test_acks_committed_together_each_get_their_own_receipts(store: Store) -> None:
    """Many devices acking at once (every member of a group) share a batch; each ack
    removes only its device's items and gets the receipts for exactly those."""
    members = [f"m{i}" for i in range(12)]
    for handle in ("alice", *members):
        await user(store, handle)
    for i in range(3):
        await store.commit_message(message("alice", f"g{i}", [(m, 1) for m in members], "#g"))
    # m0 acks twice in the same batch (a last ack on close may overlap the one in flight).
    acks = [store.ack(m, 1, 2 if m == "m1" else 3, 77) for m in members]
    acks.append(store.ack("m0", 1, 3, 77))
    results = await asyncio.gather(*acks)
    for m, result in zip(members, results, strict=False):
        expected = 2 if m == "m1" else 3
        assert result.acked_seq == expected
        ((key, receipt),) = result.appended
        assert key == ("alice", 1)
        assert isinstance(receipt, Receipt)
        assert (receipt.by, receipt.ids) == (m, [f"g{i}" for i in range(expected)])
        left = await store.read_inbox(m, 1, 0, 10)
        assert [item.seq for item in left] == ([3] if m == "m1" else [])
    assert results[-1].acked_seq == 3
    assert results[-1].appended == []  # m0's rows went to its first ack
    receipts = await store.read_inbox("alice", 1, 0, 100)
    assert len(receipts) == len(members)


async def test_successive_acks_each_get_the_receipts_of_exactly_their_rows(store: Store) -> None:
    """A device's later acks (which the SQLite writer serves from its own record of the
    rows, without reading them back) remove and report exactly the rows they cover,
    receipts and group events among them included."""
    for handle in ("alice", "bob"):
        await user(store, handle)
    await store.commit_message(message("alice", "a1", [("bob", 1)]))
    await store.commit_message(message("bob", "b1", [("alice", 1)]))
    await store.ack("alice", 1, 1, 10)  # bob's seq 2: alice's delivered receipt
    await store.commit_message(message("alice", "a2", [("bob", 1)]))
    await store.commit_message(message("alice", "a3", [("bob", 1)]))

    def ids(result: AckResult) -> list[list[str]]:
        return [item.ids for _, item in result.appended if isinstance(item, Receipt)]

    first = await store.ack("bob", 1, 1, 20)
    assert (first.acked_seq, ids(first)) == (1, [["a1"]])
    second = await store.ack("bob", 1, 3, 30)  # the receipt at seq 2 makes no receipt
    assert (second.acked_seq, ids(second)) == (3, [["a2"]])
    assert [item.seq for item in await store.read_inbox("bob", 1, 0, 10)] == [4]
    await store.commit_message(message("alice", "a4", [("bob", 1)]))
    third = await store.ack("bob", 1, 99, 40)
    assert (third.acked_seq, ids(third)) == (5, [["a3", "a4"]])
    assert await store.read_inbox("bob", 1, 0, 10) == []
    again = await store.ack("bob", 1, 5, 50)
    assert again.appended == []


async def test_acks_after_a_rolled_back_batch_report_only_what_was_committed(
    store: Store,
) -> None:
    """A batch undone by a failing write and run again in savepoints leaves the acks
    that follow with the rows that exist, once each: nothing the writer remembered of
    the undone attempt."""
    for handle in ("alice", "carol"):
        await user(store, handle)
    await user(store, "bob")
    await store.commit_message(message("alice", "first", [("bob", 1)]))
    await store.ack("bob", 1, 1, 10)
    sends = [store.submit_message(message("alice", f"a{i}", [("bob", 1)])) for i in range(3)]
    taken = asyncio.ensure_future(store.create_user(UserRecord("carol", "h", 9)))
    with pytest.raises(HandleTaken):
        await taken
    await asyncio.gather(*sends)
    acked = await store.ack("bob", 1, 99, 20)
    assert acked.acked_seq == 4
    assert [item.ids for _, item in acked.appended if isinstance(item, Receipt)] == [
        ["a0", "a1", "a2"]
    ]
    assert await store.read_inbox("bob", 1, 0, 10) == []


async def test_submissions_from_one_device_get_seqs_in_submission_order(store: Store) -> None:
    for handle in ("alice", "carol"):
        await user(store, handle)
    await user(store, "bob")
    # Submitted without waiting, interleaved with another sender, as a gateway does.
    futures = [
        store.submit_message(message(sender, f"{sender}-{i}", [("bob", 1)]))
        for i in range(200)
        for sender in ("alice", "carol")
    ]
    results = await asyncio.gather(*futures)
    for sender in ("alice", "carol"):
        seqs = [
            seq
            for r, m in zip(results, range(len(results)), strict=True)
            if (m % 2 == 0) == (sender == "alice")
            for _, seq in r.appended
        ]
        assert seqs == sorted(seqs)
        assert len(seqs) == 200
    assert sorted(seq for r in results for _, seq in r.appended) == list(range(1, 401))


async def test_acks_sends_and_events_in_flight_together_stay_consistent(store: Store) -> None:
    await user(store, "alice", devices=2)
    await user(store, "bob", devices=2)
    to_bob = [("bob", 1), ("bob", 2)]
    for i in range(20):
        await store.commit_message(message("alice", f"old-{i}", to_bob))
    event = GroupEvent(seq=0, group="g", event="renamed", actor="a", members=[], name="n", at_ms=1)
    # Queued together, as a busy gateway does: sends, acks (one stale) and an event.
    sends = [store.submit_message(message("alice", f"new-{i}", to_bob)) for i in range(20)]
    first_ack = store.ack("bob", 1, 20, 3000)
    stale_ack = store.ack("bob", 1, 10, 3001)
    appended = store.append_items([(("bob", 1), event)])
    revoked_ack = store.ack("bob", 9, 5, 3002)
    done = await asyncio.gather(*sends, first_ack, stale_ack, appended, revoked_ack)
    acked, stale, events, nobody = done[20:]

    assert (acked.acked_seq, stale.acked_seq, nobody.acked_seq) == (20, 10, 0)
    assert stale.appended == nobody.appended == []
    assert sorted(key for key, _ in acked.appended) == [("alice", 1), ("alice", 2)]
    ((where, item),) = events
    assert where == ("bob", 1)
    items = await store.read_inbox("bob", 1, 0, 100)
    assert [i.seq for i in items] == list(range(21, 42))  # 20 new messages and the event
    assert {i.seq for i in items if isinstance(i, GroupEvent)} == {item.seq}
    assert [i.seq for i in await store.read_inbox("bob", 2, 0, 100)] == list(range(1, 41))
    for device in (1, 2):
        (receipt,) = await store.read_inbox("alice", device, 0, 10)
        assert isinstance(receipt, Receipt)
        assert receipt.ids == [f"old-{i}" for i in range(20)]


async def test_streaming_acks_between_sends_ack_only_what_they_name(store: Store) -> None:
    """A gateway's streaming acks (``submit_ack``: nobody awaits them; one in flight
    per device) queued among new sends: each ack takes exactly its items and makes
    their receipts; the new messages stay in the inbox with the next seqs."""
    for handle in ("alice", "bob", "carol"):
        await user(store, handle)
    for i in range(5):
        await store.commit_message(message("alice", f"old-{i}", [("bob", 1), ("carol", 1)]))
    by_bob = store.submit_ack("bob", 1, 3, 10)
    sends = [store.submit_message(message("alice", f"new-{i}", [("bob", 1)])) for i in range(3)]
    by_carol = store.submit_ack("carol", 1, 5, 11)
    done = await asyncio.gather(by_bob, *sends, by_carol)
    acked_bob, acked_carol = done[0], done[-1]
    assert [r.appended for r in done[1:-1]] == [[(("bob", 1), seq)] for seq in (6, 7, 8)]
    assert (acked_bob.acked_seq, acked_carol.acked_seq) == (3, 5)
    ((_, receipt_bob),) = acked_bob.appended
    ((_, receipt_carol),) = acked_carol.appended
    assert isinstance(receipt_bob, Receipt)
    assert isinstance(receipt_carol, Receipt)
    assert (receipt_bob.by, receipt_bob.ids) == ("bob", ["old-0", "old-1", "old-2"])
    assert (receipt_carol.by, receipt_carol.ids) == ("carol", [f"old-{i}" for i in range(5)])
    assert [i.seq for i in await store.read_inbox("bob", 1, 0, 10)] == [4, 5, 6, 7, 8]
    assert await store.read_inbox("carol", 1, 0, 10) == []
    assert len(await store.read_inbox("alice", 1, 0, 10)) == 2


async def test_a_streaming_ack_alone_is_committed(store: Store) -> None:
    """No other write comes along: the ack still commits by itself, soon."""
    await user(store, "alice")
    await user(store, "bob")
    await store.commit_message(message("alice", "m", [("bob", 1)]))
    result = await asyncio.wait_for(store.submit_ack("bob", 1, 1, 10), 10 * UNIT_S)
    assert result.acked_seq == 1
    assert await store.read_inbox("bob", 1, 0, 10) == []


async def test_sqlite_streaming_acks_share_the_next_sends_transaction(tmp_path: Path) -> None:
    """At a steady trickle, a message would otherwise cost three transactions (its
    send, the recipient's ack, the sender's ack of the receipt): streaming acks wait
    for the next send's batch, and a batch writes its acks and its messages with one
    statement per table, however they were interleaved."""
    for opener, folder in ((open_sqlite_inline, "inline"), (open_sqlite, "thread")):
        store = await opener(tmp_path / folder)
        assert isinstance(store, SqliteStore)
        for handle in ("alice", "bob", "carol"):
            await user(store, handle)
        for i in range(4):
            await store.commit_message(message("alice", f"old-{i}", [("bob", 1), ("carol", 1)]))
        statements: list[str] = []
        assert store._wconn is not None
        store._wconn.set_trace_callback(statements.append)
        futures: list[asyncio.Future[object]] = []
        for i in range(4):  # interleaved, as two busy connections would queue them
            futures.append(store.submit_ack("bob" if i % 2 else "carol", 1, i + 1, 10))
            futures.append(store.submit_message(message("alice", f"new-{i}", [("bob", 1)])))
        await asyncio.gather(*futures)
        store._wconn.set_trace_callback(None)
        # Inline, a small batch commits its messages first, then its acks (one turn,
        # two transactions: the messages are answered without waiting for the acks);
        # on the writer thread, where a COMMIT is an fsync, it stays one transaction.
        assert statements.count("COMMIT") == (2 if folder == "inline" else 1)
        deletes = [s for s in statements if s.startswith("WITH a(after, upto)")]
        inbox_inserts = [s for s in statements if s.startswith("INSERT INTO inbox")]
        assert len(deletes) == 1  # four acks, one statement
        assert len(inbox_inserts) == 2  # the four messages' rows, the four receipts
        await store.close()


async def test_the_settled_hook_runs_when_a_batch_is_durable_before_its_callbacks(
    store: Store,
) -> None:
    """``on_settled``: called in the turn a batch's results are set, with its size,
    before asyncio runs the futures' done-callbacks (the gateway answers from it)."""
    for handle in ("alice", "bob"):
        await user(store, handle)
    futures: list[asyncio.Future[object]] = []
    called_back: list[object] = []
    seen: list[tuple[int, int, int]] = []  # writes, futures done, callbacks run

    def settled(writes: int) -> None:
        seen.append((writes, sum(f.done() for f in futures), len(called_back)))

    store.on_settled(settled)
    for i in range(3):
        futures.append(store.submit_message(message("alice", f"m{i}", [("bob", 1)])))
        futures[-1].add_done_callback(called_back.append)
    await asyncio.gather(*futures)
    assert sum(writes for writes, _, _ in seen) == 3
    for writes, done, callbacks in seen:
        assert done >= callbacks + writes  # this batch's results set, callbacks not run
    assert [seq for r in await asyncio.gather(*futures) for _, seq in r.appended] == [1, 2, 3]


async def test_sqlite_a_small_batch_settles_its_messages_before_its_acks(tmp_path: Path) -> None:
    """Inline (synchronous=NORMAL), a batch of a few messages and acks is two
    transactions in one turn: the messages are settled (and the hook called) before
    the acks' deletes and receipts are written."""
    store = await open_sqlite_inline(tmp_path)
    for handle in ("alice", "bob"):
        await user(store, handle)
    await store.commit_message(message("alice", "old", [("bob", 1)]))
    order: list[tuple[int, bool, bool]] = []  # writes, message settled, ack settled
    ack = store.submit_ack("bob", 1, 1, 10)
    send = store.submit_message(message("alice", "new", [("bob", 1)]))
    store.on_settled(lambda writes: order.append((writes, send.done(), ack.done())))
    assert (await send).appended == [(("bob", 1), 2)]
    assert (await ack).acked_seq == 1
    assert order == [(1, True, False), (1, True, True)]
    assert [i.seq for i in await store.read_inbox("bob", 1, 0, 10)] == [2]
    await store.close()


async def test_sqlite_an_awaited_ack_is_clamped_before_the_messages_of_its_batch(
    tmp_path: Path,
) -> None:
    """An awaited ack (auth's resume point) may name more than was ever sent: it is
    clamped to the newest seq assigned before the messages committed with it, so a
    message in the same batch is never acked unseen (the batch is not split)."""
    for opener, folder in ((open_sqlite_inline, "inline"), (open_sqlite, "thread")):
        store = await opener(tmp_path / folder)
        for handle in ("alice", "bob"):
            await user(store, handle)
        await store.commit_message(message("alice", "old", [("bob", 1)]))
        send = store.submit_message(message("alice", "new", [("bob", 1)]))
        acked = await store.ack("bob", 1, 100, 10)  # queued behind the send, same batch
        assert (await send).appended == [(("bob", 1), 2)]
        assert acked.acked_seq == 1
        assert [i.seq for i in await store.read_inbox("bob", 1, 0, 10)] == [2]
        await store.close()


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")
async def test_sqlite_checkpoints_yield_the_core_to_the_event_loop(tmp_path: Path) -> None:
    """The background checkpoint thread runs at a low priority; the loop's is untouched."""
    store = await open_sqlite_inline(tmp_path)
    assert isinstance(store, SqliteStore)

    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    loop_nice = nice()
    checkpoint_nice = await asyncio.get_running_loop().run_in_executor(store._checkpointer, nice)
    assert checkpoint_nice == sqlite_store.CHECKPOINT_NICE
    assert nice() == loop_nice != checkpoint_nice
    await store.close()


async def test_sqlite_a_streaming_ack_queued_before_close_is_committed(tmp_path: Path) -> None:
    """close() writes what is queued, a lazy ack waiting for company included, and in
    the threaded mode on the writer thread."""
    for opener, folder in ((open_sqlite_inline, "inline"), (open_sqlite, "thread")):
        store = await opener(tmp_path / folder)
        for handle in ("alice", "bob"):
            await user(store, handle)
        await store.commit_message(message("alice", "m", [("bob", 1)]))
        acked = store.submit_ack("bob", 1, 1, 10)
        await store.close()
        assert (await acked).acked_seq == 1
        store = await opener(tmp_path / folder)
        assert await store.read_inbox("bob", 1, 0, 10) == []
        (receipt,) = await store.read_inbox("alice", 1, 0, 10)
        assert isinstance(receipt, Receipt)
        await store.close()


async def _stream_for(store: SqliteStore, seconds: float) -> int:
    """Batches of four messages from alice for ``seconds``; returns the batches."""
    recipients = [f"b{i}" for i in range(4)]
    for handle in ("alice", *recipients):
        await user(store, handle)
    started, batches = time.monotonic(), 0
    while time.monotonic() - started < seconds:
        await asyncio.gather(
            *[
                store.submit_message(message("alice", f"m{batches}-{k}", [(recipients[k], 1)]))
                for k in range(4)
            ]
        )
        batches += 1
    assert len(await store.read_inbox("b1", 1, 0, 100_000)) == batches
    return batches


def _wal_high_water(folder: Path) -> int:
    """The most frames the WAL held at once: SQLite never shrinks the file (without a
    journal_size_limit), it writes it from the start again. (Asking SQLite instead,
    PRAGMA wal_checkpoint, would copy frames itself and let the WAL start over.)"""
    with contextlib.closing(sqlite3.connect(folder / "taube.db")) as conn:
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    return (folder / "taube.db-wal").stat().st_size // (24 + page_size)


async def test_sqlite_wal_starts_over_under_a_stream_of_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With writes on the event loop, SQLite's auto-checkpoint is off (it stalled every
    connection inside a COMMIT); a thread checkpoints instead, and the writer copies
    what that left once the WAL has grown past WAL_RESET_FRAMES. The WAL then starts
    over while writes keep coming. Two streams of one second: one with the bound
    lowered to 16 frames (about ten background checkpoints pass it), one with no
    bound; the first WAL must stay well below the second. The checkpoint thread keeps
    its normal priority here: at nice 19 it may get no CPU at all while other work
    loads the machine, and what is tested is the writer's part."""
    grown: dict[str, float] = {}
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_NICE", 0)
    for name, bound in (("bounded", 16), ("unbounded", 10**12)):
        monkeypatch.setattr(sqlite_store, "WAL_RESET_FRAMES", bound)
        folder = tmp_path / name
        store = await open_sqlite_inline(folder)
        assert isinstance(store, SqliteStore)
        batches = await _stream_for(store, 1.0)
        assert batches > 20
        grown[name] = _wal_high_water(folder) / batches  # frames per batch written
        await store.close()  # which deletes the WAL
    assert grown["bounded"] < grown["unbounded"] / 3, grown


# ---------------------------------------------------------------- PostgreSQL only


async def test_postgres_migrates_an_existing_database_in_place(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = postgres_dsn()
    store = PostgresStore(dsn, schema=pg_schema)
    await store.open()
    await user(store, "alice")
    await store.close()
    shipped = postgres_store.migrations()
    extra = (shipped[-1][0] + 1, "ALTER TABLE users ADD COLUMN about text NOT NULL DEFAULT '';")
    monkeypatch.setattr(postgres_store, "migrations", lambda: [*shipped, extra])
    store = PostgresStore(dsn, schema=pg_schema)
    await store.open()
    assert await store.get_user("alice") is not None
    assert await store.upgrade() == (extra[0], extra[0])  # nothing left to do
    await store.close()
    conn = await asyncpg.connect(dsn, server_settings={"search_path": pg_schema})
    try:
        assert await conn.fetchval("SELECT MAX(version) FROM schema_version") == extra[0]
        assert await conn.fetchval("SELECT about FROM users") == ""
    finally:
        await conn.close()


async def test_postgres_refuses_a_database_from_a_newer_version(pg_schema: str) -> None:
    dsn = postgres_dsn()
    store = PostgresStore(dsn, schema=pg_schema)
    await store.open()
    await store.close()
    conn = await asyncpg.connect(dsn, server_settings={"search_path": pg_schema})
    try:
        await conn.execute("INSERT INTO schema_version (version) VALUES (999)")
    finally:
        await conn.close()
    with pytest.raises(SchemaTooNew):
        await PostgresStore(dsn, schema=pg_schema).open()


async def test_postgres_nodes_starting_together_migrate_once(pg_schema: str) -> None:
    nodes = [PostgresStore(postgres_dsn(), schema=pg_schema, max_connections=3, writers=2)
             for _ in range(4)]  # fmt: skip
    await asyncio.gather(*(node.open() for node in nodes))
    await user(nodes[0], "alice")
    assert all([await node.get_user("alice") is not None for node in nodes])
    for node in nodes:
        await node.close()


async def test_postgres_nodes_sharing_a_database_keep_inboxes_gap_free(pg_schema: str) -> None:
    nodes = [PostgresStore(postgres_dsn(), schema=pg_schema, max_connections=6) for _ in (1, 2)]
    for node in nodes:
        await node.open()
    for handle in ("alice", "carol"):
        await user(nodes[0], handle)
    await user(nodes[0], "bob", devices=2)
    sends = [
        node.commit_message(message(sender, f"{sender}-{i % 90}", [("bob", 1), ("bob", 2)]))
        for i in range(100)
        for node in nodes
        for sender in ("alice", "carol")
    ]
    results = await asyncio.gather(*sends)
    fresh = [r for r in results if not r.duplicate]
    assert len(fresh) == 180  # each id once, whichever node won
    for device in (1, 2):
        seqs = sorted(seq for r in fresh for key, seq in r.appended if key == ("bob", device))
        assert seqs == list(range(1, 181))
    for node in nodes:
        await node.close()


async def test_postgres_unreachable_raises_store_unavailable_at_once() -> None:
    store = PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/test")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await store.open()
    with pytest.raises(StoreUnavailable):
        await store.commit_message(message("alice", "m", [("bob", 1)]))
    assert time.monotonic() - started < 3 * UNIT_S


async def test_postgres_outage_fails_fast_and_recovers_without_restart(pg_schema: str) -> None:
    proxy = await TcpProxy.to_url(postgres_dsn(), 5432).start()
    store = PostgresStore(proxy.url(postgres_dsn()), schema=pg_schema, connect_timeout_s=1.0)
    try:
        await store.open()
        await user(store, "alice")
        await user(store, "bob")
        await store.commit_message(message("alice", "before", [("bob", 1)]))

        await proxy.stop()  # PostgreSQL "goes away": connections cut, new ones refused
        started = time.monotonic()
        for attempt in (store.commit_message(message("alice", "during", [("bob", 1)])),
                        store.read_inbox("bob", 1, 0, 10), store.ping(),
                        store.ack("bob", 1, 1, 5)):  # fmt: skip
            with pytest.raises(StoreUnavailable):
                await attempt
        assert time.monotonic() - started < 3 * UNIT_S

        await proxy.start()  # back: the same store object carries on
        await store.ping()
        retried = await store.commit_message(message("alice", "during", [("bob", 1)]))
        assert (retried.duplicate, retried.appended) == (False, [(("bob", 1), 2)])
        assert [i.seq for i in await store.read_inbox("bob", 1, 0, 10)] == [1, 2]
    finally:
        await store.close()
        await proxy.stop()


async def test_sqlite_keeps_no_copy_of_a_delivered_one_to_one_payload(tmp_path: Path) -> None:
    store = await open_sqlite_inline(tmp_path)
    await user(store, "alice", devices=2)
    await user(store, "bob", devices=2)
    secret = b"the ciphertext nobody should keep"
    one_to_one = NewMessage(
        "alice", 1, "m1", "@bob", 1, secret,
        [Delivery("bob", 1, "@alice"), Delivery("bob", 2, "@alice"), Delivery("alice", 2, "@bob")],
    )  # fmt: skip
    await store.commit_message(one_to_one)
    (item,) = await store.read_inbox("bob", 2, 0, 10)
    assert isinstance(item, Message)
    assert item.payload == secret
    for key in (("bob", 1), ("bob", 2), ("alice", 2)):
        await store.ack(*key, 99, 2)
    assert await store.sent_at("alice", "m1") == 1  # still deduplicated
    await store.close()
    with sqlite3.connect(tmp_path / "taube.db") as conn:
        kept = conn.execute(
            "SELECT (SELECT count(*) FROM messages WHERE payload IS NOT NULL)"
            " + (SELECT count(*) FROM inbox WHERE payload IS NOT NULL OR kind = 4)"  # 4: a run
        ).fetchone()[0]
    assert kept == 0


# ---------------------------------------------------------------- keys


def spk(key_id: int = 1, tag: int = 1) -> SignedPrekeyRecord:
    return SignedPrekeyRecord(key_id, bytes([tag]) * 32, bytes([tag]) * 64)


def opks(ids: range) -> list[PrekeyRecord]:
    return [PrekeyRecord(i, i.to_bytes(4, "big") * 8) for i in ids]


IDENTITY = b"\x11" * 32


async def test_keys_upload_status_and_rotation(store: Store) -> None:
    await user(store, "alice", devices=2)
    assert await store.keys_status("alice", 1) == KeysStatusRecord(0, None, None)
    with pytest.raises(KeysIncomplete):  # the first upload needs a signed prekey
        await store.put_keys("alice", 1, IDENTITY, None, opks(range(3)), 100)
    assert await store.keys_status("alice", 1) == KeysStatusRecord(0, None, None)
    status = await store.put_keys("alice", 1, IDENTITY, spk(7), opks(range(5)), 100)
    assert status == KeysStatusRecord(5, 7, IDENTITY)
    # Known ids are ignored (also twice in one upload); the same identity is fine.
    again = opks(range(3, 8)) + opks(range(7, 9))
    assert await store.put_keys("alice", 1, IDENTITY, None, again, 100) == KeysStatusRecord(
        9, 7, IDENTITY
    )
    # Rotation replaces the signed prekey.
    await store.put_keys("alice", 1, IDENTITY, spk(8, tag=2), [], 100)
    (bundle,) = await store.take_bundles("alice", 1)
    assert bundle.signed_prekey == spk(8, tag=2)
    assert await store.keys_status("alice", 1) == KeysStatusRecord(8, 8, IDENTITY)
    assert await store.keys_status("alice", 2) == KeysStatusRecord()


async def test_keys_identity_is_set_once(store: Store) -> None:
    await user(store, "alice")
    await store.put_keys("alice", 1, IDENTITY, spk(), opks(range(2)), 100)
    for signed in (spk(2), None):
        with pytest.raises(IdentityKeyMismatch):
            await store.put_keys("alice", 1, b"\x22" * 32, signed, opks(range(5, 9)), 100)
    assert await store.keys_status("alice", 1) == KeysStatusRecord(2, 1, IDENTITY)
    assert await store.identity_keys("alice") == [(1, IDENTITY)]


async def test_keys_cap_stores_nothing_of_a_request_beyond_it(store: Store) -> None:
    await user(store, "alice")
    await store.put_keys("alice", 1, IDENTITY, spk(1), opks(range(8)), 10)
    with pytest.raises(TooManyPrekeys) as refused:
        await store.put_keys("alice", 1, IDENTITY, spk(2, tag=2), opks(range(5, 13)), 10)
    assert (refused.value.stored, refused.value.limit) == (8, 10)
    assert await store.keys_status("alice", 1) == KeysStatusRecord(8, 1, IDENTITY)
    # Up to the cap is fine; known ids do not count twice.
    status = await store.put_keys("alice", 1, IDENTITY, None, opks(range(5, 10)), 10)
    assert status is not None
    assert status.one_time_prekeys == 10


async def test_bundles_take_one_prekey_each_then_none(store: Store) -> None:
    await user(store, "bob", devices=3)
    await store.put_keys("bob", 1, IDENTITY, spk(1), opks(range(2)), 100)
    await store.put_keys("bob", 3, b"\x33" * 32, spk(4), [], 100)
    first = await store.take_bundles("bob")
    assert [b.device for b in first] == [1, 3]  # device 2 has no keys
    assert first[0] == BundleRecord(1, IDENTITY, spk(1), opks(range(0, 1))[0], 1)
    assert first[1] == BundleRecord(3, b"\x33" * 32, spk(4), None, 0)
    (second,) = await store.take_bundles("bob", 1)
    assert second.one_time_prekey == opks(range(1, 2))[0]
    assert second.one_time_prekeys_left == 0
    (third,) = await store.take_bundles("bob", 1)
    assert third.one_time_prekey is None
    assert await store.take_bundles("bob", 2) == []
    assert await store.take_bundles("nobody") == []
    assert await store.identity_keys("bob") == [(1, IDENTITY), (3, b"\x33" * 32)]


async def test_concurrent_bundle_fetches_hand_out_each_prekey_once(store: Store) -> None:
    await user(store, "bob", devices=2)
    await store.put_keys("bob", 1, IDENTITY, spk(), opks(range(40)), 100)
    await store.put_keys("bob", 2, b"\x22" * 32, spk(), opks(range(100, 120)), 100)
    fetches = await asyncio.gather(
        *(store.take_bundles("bob", 1 if i % 3 else None) for i in range(60))
    )
    taken = [
        (b.device, b.one_time_prekey.id)
        for bundles in fetches
        for b in bundles
        if b.one_time_prekey is not None
    ]
    assert len(taken) == len(set(taken))  # never the same prekey twice
    assert sorted(taken) == [(1, i) for i in range(40)] + [(2, i) for i in range(100, 120)]
    assert (await store.keys_status("bob", 1)).one_time_prekeys == 0


async def test_revoking_a_device_deletes_its_keys(store: Store) -> None:
    await user(store, "bob", devices=2)
    for device in (1, 2):
        await store.put_keys("bob", device, bytes([device]) * 32, spk(), opks(range(5)), 100)
    assert await store.revoke_device("bob", 1, 9)
    assert await store.keys_status("bob", 1) == KeysStatusRecord()
    assert [b.device for b in await store.take_bundles("bob")] == [2]
    assert await store.take_bundles("bob", 1) == []
    assert await store.identity_keys("bob") == [(2, b"\x02" * 32)]
    # A revoked device cannot upload keys again.
    assert await store.put_keys("bob", 1, b"\x01" * 32, spk(), opks(range(3)), 100) is None
    assert await store.keys_status("bob", 1) == KeysStatusRecord()


async def test_postgres_nodes_fetching_bundles_together_hand_out_each_prekey_once(
    pg_schema: str,
) -> None:
    nodes = [PostgresStore(postgres_dsn(), schema=pg_schema, max_connections=8) for _ in (1, 2, 3)]
    for node in nodes:
        await node.open()
    await user(nodes[0], "bob")
    await nodes[0].put_keys("bob", 1, IDENTITY, spk(), opks(range(50)), 100)
    # Uploads racing with fetches neither lose nor repeat a prekey either.
    work = [nodes[i % 3].take_bundles("bob", 1) for i in range(90)]
    work.insert(45, nodes[1].put_keys("bob", 1, IDENTITY, None, opks(range(50, 60)), 100))
    results = await asyncio.gather(*work)
    taken = [
        b.one_time_prekey.id
        for bundles in results
        if isinstance(bundles, list)
        for b in bundles
        if b.one_time_prekey is not None
    ]
    left = (await nodes[2].keys_status("bob", 1)).one_time_prekeys
    assert len(taken) == len(set(taken))
    assert len(taken) + left == 60
    assert len(taken) >= 50
    for node in nodes:
        await node.close()


# ---------------------------------------------------------------- blobs and blocks

BLOB = "ab" * 32


async def test_blob_upload_resumes_advances_by_compare_and_set_and_completes(
    store: Store,
) -> None:
    first = await store.start_blob_upload(BLOB, "alice", 100, 10)
    assert (first.size, first.received, first.complete, first.uploader) == (100, 0, False, True)
    assert await store.advance_blob_upload(BLOB, "alice", 0, 40)
    assert not await store.advance_blob_upload(BLOB, "alice", 0, 50)  # moved on already
    again = await store.start_blob_upload(BLOB, "alice", 100, 20)  # resume
    assert again.received == 40
    assert await store.blob_status(BLOB, "bob") is None
    assert not await store.blob_exists(BLOB)
    assert await store.advance_blob_upload(BLOB, "alice", 40, 100)
    await store.complete_blob(BLOB, "alice", 100, 30)
    done = await store.blob_status(BLOB, "alice")
    assert done is not None
    assert (done.received, done.complete, done.uploader, done.granted) == (100, True, True, False)
    assert done.created_ms == 30
    assert await store.blob_exists(BLOB)
    # Deduplication: announcing a complete blob makes one an uploader at once.
    bob = await store.start_blob_upload(BLOB, "bob", 100, 40)
    assert (bob.complete, bob.uploader) == (True, True)


async def test_blob_upload_with_another_size_restarts_and_uploads_are_per_user(
    store: Store,
) -> None:
    await store.start_blob_upload(BLOB, "alice", 100, 1)
    await store.start_blob_upload(BLOB, "bob", 100, 1)
    assert await store.advance_blob_upload(BLOB, "alice", 0, 60)
    bob = await store.blob_status(BLOB, "bob")
    assert bob is not None
    assert bob.received == 0  # each user has an upload of their own
    restarted = await store.start_blob_upload(BLOB, "alice", 90, 2)
    assert (restarted.size, restarted.received) == (90, 0)
    await store.discard_blob_upload(BLOB, "alice")
    assert await store.blob_status(BLOB, "alice") is None


async def test_blob_grants_and_the_last_fetch_deletes_it(store: Store) -> None:
    await store.start_blob_upload(BLOB, "alice", 5, 1)
    await store.complete_blob(BLOB, "alice", 5, 1)
    assert await store.blob_status(BLOB, "bob") is None
    await store.grant_blob(BLOB, ["bob", "carol", "bob"])
    bob = await store.blob_status(BLOB, "bob")
    assert bob is not None
    assert (bob.complete, bob.granted, bob.uploader) == (True, True, False)
    assert not await store.record_blob_fetch(BLOB, "alice", 2)  # uploaders do not count
    assert not await store.record_blob_fetch(BLOB, "dave", 2)  # nor strangers
    assert not await store.record_blob_fetch(BLOB, "bob", 2)
    assert not await store.record_blob_fetch(BLOB, "bob", 3)  # once per user
    assert await store.record_blob_fetch(BLOB, "carol", 4)  # the last one: gone
    assert not await store.blob_exists(BLOB)
    assert await store.blob_status(BLOB, "alice") is None
    assert await store.blob_status(BLOB, "bob") is None


async def test_blob_retention_purges_old_blobs_and_stale_uploads(store: Store) -> None:
    old, new = "01" * 32, "02" * 32
    for blob_id, at in ((old, 100), (new, 900)):
        await store.start_blob_upload(blob_id, "alice", 5, at)
        await store.complete_blob(blob_id, "alice", 5, at)
    await store.grant_blob(old, ["bob"])
    await store.start_blob_upload(BLOB, "alice", 5, 100)
    await store.start_blob_upload(BLOB, "bob", 5, 900)
    assert await store.purge_blobs(500, 10) == [old]
    assert await store.purge_blobs(500, 10) == []
    assert await store.blob_status(old, "bob") is None
    assert await store.blob_exists(new)
    assert await store.purge_blob_uploads(500, 10) == [(BLOB, "alice")]
    assert await store.blob_status(BLOB, "bob") is not None
    # A blob uploaded again after its deletion starts afresh.
    again = await store.start_blob_upload(old, "carol", 5, 1000)
    assert (again.complete, again.received) == (False, 0)


async def test_blocks_are_idempotent_and_listed(store: Store) -> None:
    assert await store.blocked_by("alice") == []
    await store.block("alice", "mallory", 1)
    await store.block("alice", "mallory", 2)
    await store.block("alice", "eve", 3)
    await store.block("bob", "alice", 3)
    assert await store.blocked_by("alice") == ["eve", "mallory"]
    assert await store.unblock("alice", "eve")
    assert not await store.unblock("alice", "eve")
    assert await store.blocked_by("alice") == ["mallory"]
    assert await store.blocked_by("bob") == ["alice"]


async def test_ack_withholds_delivered_receipts_for_one_to_one_from_blocked_senders(
    store: Store,
) -> None:
    for handle in ("alice", "bob", "carol"):
        await user(store, handle)
    await store.commit_message(message("bob", "m1", [("alice", 1)]))
    await store.commit_message(message("carol", "m2", [("alice", 1)]))
    await store.commit_message(
        NewMessage("bob", 1, "m3", "#g", 1000, b"group", [Delivery("alice", 1, "#g")])
    )
    await store.block("alice", "bob", 1)
    result = await store.ack("alice", 1, 3, 2000)
    got = sorted(
        (key[0], item.conversation, tuple(item.ids))
        for key, item in result.appended
        if isinstance(item, Receipt)
    )
    # Carol hears of m2; Bob hears only of his group message, not of m1.
    assert got == [("bob", "#g", ("m3",)), ("carol", "@alice", ("m2",))]


# ---------------------------------------------------------------- device links and notices


def link(link_id: str, code: str, expires_ms: int = 5000) -> LinkRecord:
    return LinkRecord(link_id, code, b"h" * 32, "laptop", 1000, expires_ms)


async def test_links_are_approved_once_before_expiry_and_their_token_taken_once(
    store: Store,
) -> None:
    assert await store.create_link(link("l1", "ABCD2345"))
    assert not await store.create_link(link("l2", "ABCD2345"))  # the code is in use
    assert not await store.create_link(link("l1", "ZZZZ2345"))  # so is the id
    assert await store.create_link(link("l3", "EXPD2345", expires_ms=2000))
    stored = await store.get_link("l1")
    assert stored == link("l1", "ABCD2345")
    assert await store.link_by_code("ABCD2345") == stored
    assert await store.get_link("nope") is None
    assert await store.take_link_token("l1") is None  # pending: nothing to take

    assert not await store.approve_link("EXPD2345", "alice", 2, "tok", 2000)  # expired
    assert await store.approve_link("ABCD2345", "alice", 2, "tok", 1500)
    assert not await store.approve_link("ABCD2345", "bob", 3, "tok2", 1600)  # used
    approved = await store.get_link("l1")
    assert approved is not None
    assert (approved.handle, approved.device, approved.token, approved.approved_ms) == (
        "alice", 2, "tok", 1500
    )  # fmt: skip
    taken = await asyncio.gather(*(store.take_link_token("l1") for _ in range(5)))
    assert sorted(taken, key=str) == [None, None, None, None, "tok"]
    after = await store.get_link("l1")
    assert after is not None
    assert (after.handle, after.device, after.token) == ("alice", 2, None)

    assert await store.purge_links(3000, 100) == 1  # l3 expired at 2000; l1 at 5000
    assert await store.get_link("l3") is None
    assert await store.create_link(link("l4", "EXPD2345"))  # its code is free again


async def test_notices_are_current_until_they_expire_or_end(store: Store) -> None:
    first = NoticeRecord("n1", "maintenance at 22:00", "warning", 1000, 5000)
    second = NoticeRecord("n2", "all good", "info", 2000, 3000)
    await store.create_notice(second)
    await store.create_notice(first)
    assert await store.current_notices(1500) == [first, second]
    assert await store.current_notices(3000) == [first]
    assert await store.end_notice("n1")
    assert not await store.end_notice("n1")
    assert await store.current_notices(1500) == [second]
    assert await store.purge_notices(4000) == 1
    assert await store.current_notices(0) == []


# ---------------------------------------------------------------- status


async def test_probe_minutes_are_replaced_whole_and_summed(store: Store) -> None:
    row = ProbeMinuteRecord(60_000, "n1", "send", 3, 2, 2, '{"4":2}', 61_000)
    await store.put_probe_minutes(
        [row, ProbeMinuteRecord(60_000, "n2", "send", 5, 5, 4, "{}", 62_000)]
    )
    await store.put_probe_minutes([ProbeMinuteRecord(60_000, "n1", "send", 4, 4, 3, "{}", 63_000)])
    rows = sorted(await store.probe_minutes(60_000), key=lambda r: r.node)
    assert [(r.node, r.count, r.ok, r.updated_ms) for r in rows] == [
        ("n1", 4, 4, 63_000),
        ("n2", 5, 5, 62_000),
    ]
    assert await store.probe_minutes(120_000) == []
    assert await store.probe_nodes(0) == {"n1": 63_000, "n2": 62_000}
    assert await store.probe_totals("send", 0) == (9, 9, 7)
    assert await store.probe_totals("api", 0) == (0, 0, 0)


async def test_minute_verdicts_count_per_day(store: Store) -> None:
    day = 86_400_000
    assert await store.last_status_minute() is None
    await store.put_status_minutes(
        [(0, "send", "operational"), (60_000, "send", "major_outage"), (day, "send", "degraded")]
    )
    await store.put_status_minutes([(60_000, "send", "operational")])  # replaced
    assert sorted(await store.status_minute_counts(0)) == [
        ("send", 0, "operational", 2),
        ("send", day, "degraded", 1),
    ]
    assert await store.last_status_minute() == day
    assert await store.purge_status(day) == 2
    assert await store.status_minute_counts(0) == [("send", day, "degraded", 1)]


async def test_incidents_keep_every_update_and_stay_resolved(store: Store) -> None:
    first = IncidentUpdateRecord(1_000, "investigating", "looking", "op")
    opened = await store.create_incident(
        "Slow", "minor", ["send"], first, automatic=True, key="canary"
    )
    assert (opened.id, opened.status, opened.updates, opened.key) == (
        opened.id, "investigating", (first,), "canary",
    )  # fmt: skip
    other = await store.create_incident("Other", "major", [], first)
    assert other.id > opened.id
    assert not other.automatic
    update = IncidentUpdateRecord(2_000, "identified", "found it", "op")
    changed = await store.update_incident(
        opened.id, update, impact="major", components=["send", "bus"]
    )
    assert changed is not None
    assert (changed.status, changed.impact, changed.components) == (
        "identified",
        "major",
        ("send", "bus"),
    )
    done = await store.update_incident(
        opened.id, IncidentUpdateRecord(3_000, "resolved", "ok", "op")
    )
    assert done is not None
    assert done.resolved_ms == 3_000
    assert len(done.updates) == 3
    assert await store.update_incident(opened.id, update) is None  # resolved stays resolved
    assert await store.update_incident(999, update) is None
    written = await store.set_incident_text(opened.id, postmortem="pm", notice_id="n")
    assert written is not None
    assert (written.postmortem, written.notice_id) == ("pm", "n")
    assert [i.id for i in await store.open_incidents()] == [other.id]
    assert [i.id for i in await store.resolved_incidents(0, 10)] == [opened.id]
    assert await store.get_incident(opened.id) == written


async def test_maintenance_webhooks_deliveries_and_reports(store: Store) -> None:
    m = await store.create_maintenance("Upgrade", 10, 20, ["store"], "brief", 5)
    assert await store.maintenance_windows(15) == [m]
    assert await store.maintenance_windows(20) == []
    hook = await store.create_webhook("http://x/hook", "s" * 16, 1)
    assert await store.webhooks() == [hook]
    entry = WebhookDeliveryRecord(hook.id, "incident.opened", 1, None, "refused", 7, False)
    await store.log_webhook_delivery(entry)
    assert await store.webhook_deliveries(10) == [entry]
    assert await store.delete_webhook(hook.id)
    assert not await store.delete_webhook(hook.id)
    for _ in range(3):
        await store.add_report(60_000, "send")
    await store.add_report(60_000, "connect")
    assert sorted(await store.report_counts(0)) == [(60_000, "connect", 1), (60_000, "send", 3)]
