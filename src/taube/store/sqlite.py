"""``SqliteStore``: the embedded store (one file, WAL, group commit).

All writes go through one writer thread that owns the write connection. Writes that
arrive while a transaction is running queue up and are committed together in the
next one (group commit), so throughput does not hinge on one fsync per message,
and a write's ticket (tickets.py) is settled only after its transaction committed.
A batch runs plainly first; if one write fails, the transaction is rolled back and
the batch redone with each write in its own SAVEPOINT, so that one failing write
does not fail its batch-mates.
Consecutive message commits in a batch are written together (an insert that reports
duplicates per message, multi-row INSERTs for all inbox rows, a device's items of one
batch in one row: inbox_runs.py), and the writer keeps each device's next inbox slot in
memory (it is the only writer), journaled per write so that a rolled-back write gives
its slots back; a counter reaches the devices table only when an ack empties the inbox
(``NEXT_SLOT``).
Reads use a second connection on a second thread (WAL lets it read while the writer
writes). We do not use aiosqlite: it hops threads per statement, which measured
2.7x slower than one writer thread running whole transactions (BENCH-METHOD.md).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Final, TypeVar

import msgspec

from taube.protocol.frames import GroupEvent, InboxItem, Receipt
from taube.store.base import (
    AbuseReportRecord,
    AckResult,
    Appended,
    BlobRecord,
    BundleRecord,
    DeviceKey,
    DeviceRecord,
    GroupRecord,
    HandleTaken,
    IdentityKeyMismatch,
    IncidentRecord,
    IncidentUpdateRecord,
    KeysIncomplete,
    KeysStatusRecord,
    LinkRecord,
    MaintenanceRecord,
    NewMessage,
    NoticeRecord,
    Pending,
    PrekeyRecord,
    ProbeMinuteRecord,
    SchemaTooNew,
    SendResult,
    SignedPrekeyRecord,
    Store,
    SuspensionRecord,
    TooManyPrekeys,
    TotpRecord,
    UserRecord,
    WebhookDeliveryRecord,
    WebhookRecord,
)
from taube.store.inbox_runs import (
    KIND_MESSAGE_RUN,
    MAX_RUN_ITEMS,
    RunItem,
    acked_items,
    decode_run,
    encode_run,
    run_messages,
)
from taube.store.migrations import shipped
from taube.store.rows import (
    KIND_MESSAGE,
    AckedRow,
    delivered_receipts,
    delivery_payload,
    encode_extra,
    extra_kind,
    inbox_item,
    shared_payload,
)
from taube.store.sent_runs import encode_sent, sent_at_in
from taube.store.sqlite_driver import sqlite3
from taube.store.tickets import Ticket
from taube.store.unacked import UnackedMessages

T = TypeVar("T")
WriteFn = Callable[[sqlite3.Connection], Any]


class _AckOp(msgspec.Struct, frozen=True):
    """A cumulative ack, as a write the writer can run together with its neighbours."""

    user: str
    device: int
    upto_seq: int
    now_ms: int


class _StreamAck(_AckOp, frozen=True):
    """A connection's streaming ack (``submit_ack``). The gateway bounds it by what it
    pushed, so it never names an item of a message still being committed, unlike an
    awaited ack (``ack``: auth's resume point may name more than was ever sent, and is
    clamped to the newest seq assigned before the messages of its batch)."""


WriteOp = WriteFn | NewMessage | _AckOp
_BULKY: Final = (NewMessage, _AckOp)


INSERT_MESSAGES: Final = (
    "INSERT OR IGNORE INTO messages (sender, id, sender_device, target, sent_at_ms, payload)"
)
NULL_PAYLOAD: Final = ", NULL"
"""A payload kept elsewhere (in the inbox rows for a 1:1 message, in ``messages`` for a
large group's), written as a literal rather than bound as None: see ``blob``."""
INSERT_SENT_RUNS: Final = "INSERT INTO sent_runs (sender, last_id, sent_at_ms, ids)"
SENT_RUN_OF: Final = (
    "SELECT ids FROM sent_runs WHERE sender = ? AND last_id >= ? ORDER BY last_id LIMIT 1"
)
"""The one run of a sender that may hold an id (sent_runs.py: a sender's runs cover
disjoint ranges of ids)."""
INSERT_INBOX_MESSAGES: Final = (
    "INSERT INTO inbox (slot, sender, msg_id, conversation, payload, kind)"
)
KIND_MESSAGE_SQL: Final = f", {KIND_MESSAGE}"
"""The kind of a message's inbox row, written as a literal: one value fewer to bind per
row (each bound value costs a call into SQLite, which takes its mutex and copies)."""
SHARED_MESSAGE_SQL: Final = NULL_PAYLOAD + KIND_MESSAGE_SQL
INSERT_INBOX_EXTRAS: Final = "INSERT INTO inbox (slot, kind, data)"
INSERT_INBOX_RUNS: Final = "INSERT INTO inbox (slot, first_slot, data, kind)"
KIND_RUN_SQL: Final = f", {KIND_MESSAGE_RUN}"
STRADDLING_RUN: Final = (
    "SELECT slot, first_slot, data FROM inbox"
    " WHERE slot = (SELECT min(slot) FROM inbox WHERE slot > ? AND slot < ?) AND first_slot <= ?"
)
"""The run that an ack up to a slot ends inside of, if any (inbox_runs.py): the row
after the acked ones, if its first item is acked. ``min(slot)`` rather than ``ORDER BY
slot LIMIT 1`` with the condition, which would scan on past a row that fails it."""
ACK_RANGE: Final = "DELETE FROM inbox WHERE slot > ? AND slot <= ?"
SEQ_BITS: Final = 32
SEQ_MASK: Final = (1 << SEQ_BITS) - 1
"""An inbox row's key is its slot, ``(box << SEQ_BITS) | seq`` (migration 0011): one
integer, the table's rowid, so that a row is one b-tree entry and a device's items a
range of it. A device can be given 4,294,967,294 items (``_allocate`` refuses more);
box numbers stay below 2**29, so slots stay below 2**61, an int that compiled code
holds unboxed."""
BOX_MASK: Final = ~SEQ_MASK
"""``slot & BOX_MASK``: the first slot of the slot's box (its seq 0, never given out)."""
BOX_SIZE: Final = 1 << SEQ_BITS
"""``first + BOX_SIZE``: the first slot past the box that starts at slot ``first``."""
MAX_BOX: Final = 1 << 29
NEXT_SLOT: Final = (
    f"SELECT max((d.box << {SEQ_BITS}) + d.next_seq, COALESCE((SELECT i.slot + 1 FROM inbox i"
    f" WHERE i.slot >= d.box << {SEQ_BITS} AND i.slot < (d.box + 1) << {SEQ_BITS}"
    " ORDER BY i.slot DESC LIMIT 1), 0))"
    " FROM devices d WHERE d.user = ? AND d.id = ?"
)
"""A device's next inbox slot (its box and its next seq). ``devices.next_seq`` is
written only when an ack empties the inbox (``_persist_seqs``), not in every
transaction that gives out a seq: that was an UPDATE per message and per receipt, ~2 us
each. Acks delete a prefix of the inbox and sends append to it, so while the inbox
holds rows its newest is the last seq given out; when it holds none, the ack that
emptied it wrote the counter."""
BOX_RANGE: Final = (
    f"(SELECT box << {SEQ_BITS} FROM devices WHERE user = ?1 AND id = ?2)",
    f"(SELECT (box + 1) << {SEQ_BITS} FROM devices WHERE user = ?1 AND id = ?2)",
)
"""The first slot of a device's inbox and the first after it, in SQL (?1 the user, ?2
the device)."""
log: Final = logging.getLogger(__name__)

MAX_ROWS_PER_INSERT: Final = 128
EXACT_ROWS: Final = 32
"""Batches of up to this many rows (or acks) go in one statement of exactly that size.
At a steady trickle a batch holds a few messages and acks, and splitting 12 acks into
statements of 8 and 4 cost 40-70 % more than one of 12 (each statement has a fixed
cost). The writer keeps these statements prepared (``STATEMENT_CACHE``)."""
STATEMENT_CACHE: Final = 512
"""Prepared statements kept per connection (sqlite3's default is 128): up to EXACT_ROWS
sizes and eight powers of two for each of four bulk statements, and the rest."""
WRITER_CACHE_USERS: Final = 100_000
CHECKPOINT_EVERY_S: Final = 0.1
"""While writes come, the WAL is checkpointed this often by a thread of its own (see
``_checkpoint_soon``), instead of by SQLite's auto-checkpoint inside a COMMIT on the
event loop, which stalled every connection for the time of copying the pages and
two fsyncs (the flush p99 at 5,000 messages/s measured 4 ms with it, 1.2 ms without)."""
WAL_RESET_FRAMES = 8192
"""The writer copies what the background checkpoint left, so that the WAL starts over,
only once the WAL holds this many frames (32 MiB at 4 KiB pages; about 1.3 s of writes
at 5,000 messages/s). That copy runs on the event loop and ends with two fsyncs: ~2.3 ms
on this kind of VM, in which no frame is read or written. Done after every background
checkpoint (7 times a second at 5,000 messages/s) it was the p99 of Workload B: 3.3-3.7
ms, against 2.3 ms with this bound (docs/performance.md, section 9.11)."""
QUIET_CHECKPOINT_S: Final = 1.0
"""Once no write has come for this long, the WAL is copied into the database in full
and truncated to nothing (``_quiet_check``). ``secure_delete`` zeroes an acked
message's ciphertext in the database, but the WAL's older frames still hold the pages
as they were, until later writes overwrite them: on a server that goes quiet, for
good. Never during steady traffic (Workload B's 5,000/s has no pause of a second);
after a pause, a write that comes while the truncation runs waits for it (a few ms)."""
QUIET_BUSY_MS: Final = 50
"""How long the quiet checkpoint waits for readers before it gives up for now."""
QUIET_RETRY_MAX_S: Final = 60.0
"""The longest wait between quiet checkpoints that readers kept from finishing."""
BUSY_TIMEOUT_MS: Final = 5000
RUN_MIN_MESSAGES: Final = 64
"""Commits of at least this many messages record their senders' new ids in runs
(sent_runs.py); smaller ones keep a ``messages`` row per message. At a trickle a commit
holds about one message per sender, and a run row per sender is an index entry on a
page of its own, where ``messages`` rows all append at its key's right edge: runs at
every size cost Workload B at 5,000/s 10 % more CPU per message and its p99 target
(docs/performance.md, section 9.20)."""
SPLIT_MAX_WRITES: Final = 64
"""Batches of up to this many writes commit their messages before their acks
(``_messages_first``); a bigger batch (full load) stays one transaction."""
LAZY_WRITE_S: Final = 0.01
"""How long a streaming ack may wait for a send to share its transaction. At a steady
trickle of traffic a message otherwise cost three transactions (the send, the
recipient's ack, the sender's ack of the receipt); a transaction's fixed cost is tens
of microseconds on a small VM. A "delivered" tick shown 10 ms later is not seen."""


def _chunks(total: int) -> list[tuple[int, int]]:
    """(start, count) covering ``total`` rows: one chunk of exactly ``total`` up to
    EXACT_ROWS, else power-of-two chunks of at most MAX_ROWS_PER_INSERT, so that a
    bounded set of prepared statements serves every size."""
    if total <= EXACT_ROWS:
        return [(0, total)] if total else []
    out = []
    start = 0
    while start < total:
        rows = MAX_ROWS_PER_INSERT
        while rows > total - start:
            rows >>= 1
        out.append((start, rows))
        start += rows
    return out


@functools.lru_cache(maxsize=64)
def _ack_sql(rows: int) -> str:
    """Delete the inbox items of ``rows`` acks, each given as the slots (after, upto],
    returning them."""
    values = ", ".join(["(?, ?)"] * rows)
    return (
        f"WITH a(after, upto) AS (VALUES {values}) DELETE FROM inbox WHERE slot IN"
        " (SELECT i.slot FROM a JOIN inbox i ON i.slot > a.after AND i.slot <= a.upto)"
        " RETURNING slot, kind, sender, msg_id, conversation, first_slot,"
        f" CASE WHEN kind = {KIND_MESSAGE_RUN} THEN data END"
    )


@functools.lru_cache(maxsize=256)
def _values_sql(head: str, width: int, rows: int, literals: str = "") -> str:
    one = "(" + ", ".join("?" * width) + literals + ")"
    return f"{head} VALUES {', '.join([one] * rows)}"


def insert_rows(
    c: sqlite3.Connection, head: str, width: int, flat: list[Any], literals: str = ""
) -> None:
    """Insert rows given as one flat list of ``width`` values each (then ``literals``,
    the same SQL values for every row), many rows per statement.

    One ``INSERT ... VALUES (...), (...), ...`` binds and steps once per statement,
    where ``executemany`` resets and steps once per row: measured 1.1 against 2.2 us
    per row. Statements take power-of-two row counts up to MAX_ROWS_PER_INSERT, so
    that a few prepared statements per table serve every batch size.
    """
    for start, rows in _chunks(len(flat) // width):
        sql = _values_sql(head, width, rows, literals)
        c.execute(sql, flat[start * width : (start + rows) * width])


def blob(data: bytes) -> bytearray:
    """``data`` to bind as a BLOB on the hot path. Python's sqlite3 (3.11) binds int,
    float, str and bytearray values directly, but sends any other value, bytes and None
    included, through its adapter protocol first: a dict lookup and two failed attribute
    lookups, each raising and clearing an AttributeError. Under callgrind, one such value
    per message was ~3 % of the server's instructions (Workload A); copying ~100 bytes
    costs a small fraction of that."""
    return bytearray(data)


class _NextSlot:
    """A device's next inbox slot in the writer's memory, -1 if the device is revoked
    or unknown. A cell rather than an int in the dict, so that an allocation is one
    dict lookup and boxes no int: compiled, ``slot`` is a C field. An int kept in the
    dict took a lookup, a store and two boxed ints per message (~800 of the ~1,600
    instructions of ``_allocate``, docs/performance.md 9.23)."""

    __slots__ = ("slot",)

    def __init__(self, slot: int | None) -> None:
        self.slot = -1 if slot is None else slot


class _MessageRows:
    """The inbox rows of message deliveries, for one INSERT per chunk each: those that
    carry their payload, gathered per device into runs (inbox_runs.py), and those that
    read it from ``messages``. A run of one is a plain row, but in a commit that wrote
    runs of sent ids: a message recorded there has no ``messages`` row to read its
    sender device and time from (sent_runs.py)."""

    __slots__ = ("done", "runs", "shared")

    def __init__(self) -> None:
        self.runs: dict[Any, tuple[int, list[RunItem]]] = {}  # device -> (first slot, items)
        self.done: list[tuple[int, list[RunItem]]] = []  # runs that reached MAX_RUN_ITEMS
        self.shared: list[Any] = []

    def carry(self, key: Any, slot: int, item: RunItem) -> None:
        """Add an item that carries its payload, at ``slot`` of device ``key``."""
        run = self.runs.get(key)
        if run is not None:
            items = run[1]
            if slot == run[0] + len(items) and len(items) < MAX_RUN_ITEMS:
                items.append(item)
                return
            self.done.append(run)  # full (or, never seen, not consecutive)
        self.runs[key] = (slot, [item])

    def insert(self, c: sqlite3.Connection, *, runs_of_one: bool = False) -> None:
        single: list[Any] = []  # a run of one as a plain row: no encoding, nothing to split
        runs: list[Any] = []
        self.done += self.runs.values()
        for first, items in self.done:
            if len(items) == 1 and not runs_of_one:
                sender, msg_id, conversation, payload, _device, _sent = items[0]
                single += (first, sender, msg_id, conversation, blob(payload))
            else:
                runs += (first + len(items) - 1, first, encode_run(items))
        insert_rows(c, INSERT_INBOX_MESSAGES, 5, single, KIND_MESSAGE_SQL)
        insert_rows(c, INSERT_INBOX_RUNS, 3, runs, KIND_RUN_SQL)
        insert_rows(c, INSERT_INBOX_MESSAGES, 4, self.shared, SHARED_MESSAGE_SQL)


QueuedWrite = Ticket
"""A write and, once its batch is settled, its outcome (tickets.py)."""


class _Failed:
    """A write's failure among a batch's outcomes, whose other entries are results: an
    (ok, value) pair per write cost ~490 of the ~27,000 instructions the store spent
    on a message (callgrind, docs/performance.md 9.22)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error: Final = error


def _grouped(batch: list[QueuedWrite]) -> list[QueuedWrite]:
    """The batch with its acks, then its messages, together between other writes, so
    that each kind is written with one statement per table (``_runs``). Acks commute
    with the messages of their batch: a device acks only items it was sent, which were
    committed by an earlier batch. Other writes keep their place, and each kind keeps
    its order."""
    out: list[QueuedWrite] = []
    acks: list[QueuedWrite] = []
    messages: list[QueuedWrite] = []
    for entry in batch:
        op = entry.op
        if isinstance(op, _AckOp):
            acks.append(entry)
        elif isinstance(op, NewMessage):
            messages.append(entry)
        else:
            out += acks
            out += messages
            out.append(entry)
            acks, messages = [], []
    out += acks
    out += messages
    return out


def _messages_first(batch: list[QueuedWrite]) -> list[list[QueuedWrite]]:
    """A small batch of messages and acks as two transactions, its messages first: a
    sender's "sent" and the recipient's copy then wait for the messages' commit only,
    not also for the acks' deletes and receipts (at 5,000 messages/s a batch holds a
    few of each: p99 send to arrival 2.86, 3.14, 2.74 -> 2.26, 2.46, 1.59 ms). Streaming
    acks commute with the messages of their batch (``_StreamAck``); an awaited ack or
    any other write keeps the batch whole."""
    if not batch:
        return []
    if len(batch) > SPLIT_MAX_WRITES:
        return [batch]
    messages = [w for w in batch if isinstance(w.op, NewMessage)]
    acks = [w for w in batch if type(w.op) is _StreamAck]
    if not messages or not acks or len(messages) + len(acks) < len(batch):
        return [batch]  # nothing to split, or an awaited ack or another write in it
    return [messages, acks]


def _first_young_rowid(c: sqlite3.Connection, table: str, before_ms: int) -> int:
    """A rowid below which every row of ``table`` (``messages`` or ``sent_runs``) was
    sent before ``before_ms``, found by bisection in about 40 lookups by rowid.

    There is no index on ``sent_at_ms`` (migration 0010): rows are inserted as they are
    sent, so the rowid order is the time order, but for a clock that stepped back. Such
    a row only moves the bound down (it is found later), and the purge checks each
    row's time too, so a young row is never taken for an old one."""
    (lo, hi) = c.execute(f"SELECT min(rowid), max(rowid) FROM {table}").fetchone()
    if lo is None:
        return 0
    hi += 1
    while lo < hi:
        mid = (lo + hi) // 2
        row = c.execute(
            f"SELECT rowid, sent_at_ms FROM {table} WHERE rowid >= ? ORDER BY rowid LIMIT 1",
            (mid,),
        ).fetchone()
        if row is None or row[1] >= before_ms:
            hi = mid
        else:
            lo = row[0] + 1
    return int(lo)


def _purge_messages(c: sqlite3.Connection, before_ms: int, limit: int) -> int:
    """Forget up to ``limit`` records of messages sent before ``before_ms``, oldest
    first: ``messages`` rows that no inbox row still reads, then runs of sent ids
    (sent_runs.py: an inbox run carries all it needs). The scans cover the old rows
    only: those deleted and the few still waiting for an offline device (the inbox
    holds only undelivered items, so the NOT IN set stays small)."""
    bound = _first_young_rowid(c, "messages", before_ms)
    purged: int = c.execute(
        "DELETE FROM messages WHERE rowid IN ("
        " SELECT rowid FROM messages WHERE rowid < ? AND sent_at_ms < ?"
        " AND (sender, id) NOT IN (SELECT sender, msg_id FROM inbox WHERE kind = 1)"
        " ORDER BY rowid LIMIT ?)",
        (bound, before_ms, limit),
    ).rowcount
    if purged < limit:
        bound = _first_young_rowid(c, "sent_runs", before_ms)
        purged += c.execute(
            "DELETE FROM sent_runs WHERE rowid IN ("
            " SELECT rowid FROM sent_runs WHERE rowid < ? AND sent_at_ms < ?"
            " ORDER BY rowid LIMIT ?)",
            (bound, before_ms, limit - purged),
        ).rowcount
    return purged


def _run_sent_at(c: sqlite3.Connection, sender: str, message_id: str) -> int | None:
    """When the message was stored, if a run of sent ids holds it (sent_runs.py)."""
    row = c.execute(SENT_RUN_OF, (sender, message_id)).fetchone()
    return None if row is None else sent_at_in(row[0], message_id)


def _kept_sent_at(c: sqlite3.Connection, sender: str, message_id: str) -> int | None:
    """When the message was stored, if ``messages`` holds it."""
    row = c.execute(
        "SELECT sent_at_ms FROM messages WHERE sender = ? AND id = ?", (sender, message_id)
    ).fetchone()
    return None if row is None else int(row[0])


def _known_sent_at(c: sqlite3.Connection, sender: str, message_id: str) -> int | None:
    """When the message was stored, if it was (its record is in a run or in
    ``messages``: sent_runs.py)."""
    at = _run_sent_at(c, sender, message_id)
    return at if at is not None else _kept_sent_at(c, sender, message_id)


class _HasDuplicates(Exception):
    """A bulk commit met a known message id; the batch falls back to one by one."""


migrations = functools.partial(shipped, "sqlite")
"""(version, SQL) for every migration shipped in the package, in order. A module
variable rather than a function, so that tests can replace it even where this module
is compiled (compiled code calls its own functions directly)."""


CHECKPOINT_NICE = 19
"""The checkpoint thread's nice value (Linux): it yields the core to the event loop.
Where both share one core (a small VM, or the benchmark's pinned server), the
scheduler otherwise gave the thread equal turns while it copied pages, and a message
that came meanwhile waited for the rest of the thread's time slice. Same minutes,
Workload B at 5,000/s: p99 2.03, 2.12, 3.06, 2.50 -> 1.42, 1.60, 2.06, 1.76 ms and
p99.9 4.6-41.7 -> 2.9-3.8 ms. At full load the thread gets little of the core: the
WAL then grows further (to ~65 MiB in a 40 s run of Workload A, throughput even)
before the writer copies the rest itself (``_checkpoint_soon``)."""


def _yield_to_the_loop() -> None:
    """Run as the checkpoint thread starts: lower its own priority."""
    if sys.platform != "linux":  # elsewhere the call takes a process id, not a thread's
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CHECKPOINT_NICE)
    except OSError as exc:  # not allowed here: the checkpoints just compete as before
        log.debug("checkpoint thread keeps its priority: %s", exc)


class SqliteStore(Store):
    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: str = "FULL",
        threaded: bool | None = None,
        quiet_checkpoint_s: float = QUIET_CHECKPOINT_S,
    ) -> None:
        self._path = str(path)
        self._synchronous = synchronous
        # Without an fsync per commit (synchronous=NORMAL in WAL mode) a batch commits in
        # microseconds, and running it on the event loop measured cheaper than handing it
        # to a thread and back (futures, wake-ups, GIL hand-offs). With FULL, every commit
        # waits for the disk, which must not stall the loop: then the writer is a thread.
        self._threaded = (
            synchronous.upper() not in {"OFF", "NORMAL"} if threaded is None else threaded
        )
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="taube-sqlite-write")
        self._checkpointer = ThreadPoolExecutor(
            1, thread_name_prefix="taube-sqlite-checkpoint", initializer=_yield_to_the_loop
        )
        self._cconn: sqlite3.Connection | None = None
        self._checkpoint_at = 0.0  # loop time of the last background checkpoint's start
        self._checkpointing = False
        self._finish_checkpoint = False
        self._quiet_s = quiet_checkpoint_s
        self._last_write = 0.0  # loop time of the last batch
        self._quiet_timer: asyncio.TimerHandle | None = None
        self._quiet_retry_s = quiet_checkpoint_s  # grows while readers keep it from finishing
        self._closing = False
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="taube-sqlite-read")
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._queue: list[QueuedWrite] = []
        # Writer-thread state: next slot per device (``_NextSlot``), the devices whose
        # inbox an ack in this transaction emptied (their counter must be written:
        # ``_persist_seqs``), and the undo journal of the current write (None: revoked
        # or unknown).
        self._next_slot: dict[DeviceKey, _NextSlot] = {}
        self._emptied: set[DeviceKey] = set()
        self._journal: list[tuple[DeviceKey, int | None, bool]] = []
        self._journaling = True
        # Writer-thread caches for acks (their delivered receipts): each user's active
        # device ids and whom a user blocked. Writes that change either drop the entry;
        # any rollback drops them all (a reload may have seen the undone write).
        self._active_ids: dict[str, list[int]] = {}
        self._blocked: dict[str, frozenset[str]] = {}
        # The message rows in each device's inbox, for acks without RETURNING; dropped
        # on any rollback like the caches above (it would hold undone inserts).
        self._unacked = UnackedMessages()
        # Each sender's newest id in ``sent_runs`` ("" for none), and at least the newest
        # id that only ``messages`` records (read back as its newest id; None: not read
        # yet): a send with an id above both is new without a lookup (sent_runs.py).
        # Dropped on any rollback, like the rest.
        self._newest_ids: dict[str, str] = {}
        self._newest_kept: str | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._inline_scheduled = False
        self._lazy_flush: asyncio.TimerHandle | None = None
        # Looked up once: on Python 3.11 each asyncio.get_running_loop() is a getpid()
        # system call (see server/wakeup.py), and every write would make one.
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------ lifecycle

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=STATEMENT_CACHE,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        # Deleted rows (delivered payloads, replaced secrets) are overwritten with zeros,
        # not left in free pages. Debian's SQLite does this by default, the SQLite
        # sources (and pysqlite3's wheels) do not: say it, whichever SQLite runs.
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return conn

    def _open_writer(self) -> sqlite3.Connection:
        conn = self._connect()
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        known = migrations()
        if known and current > known[-1][0]:
            conn.close()
            raise SchemaTooNew(
                f"{self._path} has schema version {current}; this Taube knows up to {known[-1][0]}"
            )
        for version, sql in known:
            if version <= current:
                continue
            # executescript commits, so each migration and its version bump are one script.
            conn.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version={version};\nCOMMIT;")
        if not self._threaded:  # checkpoints off the event loop (``_checkpoint_soon``)
            conn.execute("PRAGMA wal_autocheckpoint=0")
        return conn

    async def open(self) -> None:
        Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        loop = self._loop = asyncio.get_running_loop()
        self._wconn = await loop.run_in_executor(self._writer, self._open_writer)
        self._rconn = await loop.run_in_executor(self._reader, self._connect)
        if not self._threaded:
            self._cconn = await loop.run_in_executor(self._checkpointer, self._connect)

    async def close(self) -> None:
        # Writes queued for a later turn of the loop (or a lazy ack's timer) still count.
        self._cancel_lazy_flush()
        loop = asyncio.get_running_loop()
        if self._threaded:  # on the writer thread, never beside it on the loop
            while self._flusher is not None or self._queue:
                await asyncio.shield(self._start_flusher())
        else:
            self._flush_inline()
        self._closing = True
        if self._quiet_timer is not None:
            self._quiet_timer.cancel()
            self._quiet_timer = None
        cconn, self._cconn = self._cconn, None  # no checkpoint is started after this
        if cconn is not None:  # waits for a checkpoint under way
            await loop.run_in_executor(self._checkpointer, cconn.close)
        self._checkpointer.shutdown()
        if self._wconn is not None:
            await loop.run_in_executor(self._writer, self._wconn.close)
        if self._rconn is not None:
            await loop.run_in_executor(self._reader, self._rconn.close)
        self._writer.shutdown()
        self._reader.shutdown()

    async def ping(self) -> None:
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    # ------------------------------------------------------------ runners

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        assert self._rconn is not None, "store not open"
        conn = self._rconn
        if not self._threaded:
            return fn(conn)
        assert self._loop is not None
        return await self._loop.run_in_executor(self._reader, fn, conn)

    def _submit(self, op: WriteOp, *, lazy: bool = False) -> Ticket:
        """Queue a write for the next batch. A ``lazy`` write (a device's streaming ack)
        may wait up to LAZY_WRITE_S for other writes to share its transaction; any
        other write starts the batch at once and takes the lazy ones along."""
        loop = self._loop
        assert loop is not None, "store not open"
        ticket = Ticket(op, loop)
        self._queue.append(ticket)
        if lazy:
            if self._lazy_flush is None and self._flusher is None and not self._inline_scheduled:
                self._lazy_flush = loop.call_later(LAZY_WRITE_S, self._flush_lazy)
        elif self._threaded:
            self._start_flusher()
        elif not self._inline_scheduled:
            # Two turns of the loop before the batch runs, so that the writes of the
            # frames read in the next turn join it too (group commit). Callbacks rather
            # than a task: a task per batch measured a few percent of the CPU under a
            # steady trickle of small writes.
            self._inline_scheduled = True
            loop.call_soon(loop.call_soon, self._flush_inline)
        return ticket

    def _flush_lazy(self) -> None:
        """LAZY_WRITE_S after a lazy write, no other write has flushed it: run it now."""
        self._lazy_flush = None
        if not self._queue or self._inline_scheduled or self._flusher is not None:
            return  # taken already, or about to be
        if self._threaded:
            self._start_flusher()
        else:
            self._flush_inline()

    def _start_flusher(self) -> asyncio.Task[None]:
        """The writer-thread flusher (threaded mode), started if it is not running."""
        if self._flusher is None:
            assert self._loop is not None
            self._flusher = self._loop.create_task(self._flush())
        return self._flusher

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        result: T = await self._submit(fn)
        return result

    def _flush_inline(self) -> None:
        """Run the queued writes on the event loop (synchronous=NORMAL or OFF)."""
        self._inline_scheduled = False
        self._cancel_lazy_flush()
        batch, self._queue = _grouped(self._queue), []
        for part in _messages_first(batch):
            self._settle(part, self._run_batch_or_fail(part))
            # Before the hook, whose answers take a while: a background checkpoint
            # started later overlaps the next batch, cannot copy all, and the WAL then
            # grows to WAL_RESET_FRAMES (measured: 40 MiB instead of 5, A -25 %).
            self._checkpoint_soon()
            self._wrote()
            self._settled(len(part))

    def _checkpoint_soon(self) -> None:
        """Checkpoint the WAL in the background (at most every CHECKPOINT_EVERY_S while
        writes come). A checkpoint running beside the writer cannot copy the frames
        written meanwhile, and SQLite starts the WAL over only once every frame is
        copied: so after each background checkpoint, the writer copies the few frames
        left right after its next COMMIT (``_finish_checkpoint``), and the WAL stays
        small."""
        loop = self._loop
        if self._cconn is None or self._checkpointing or loop is None:
            return
        if self._finish_checkpoint and self._wconn is not None:
            # On the loop, but short: the thread copied all but the last few frames and
            # synced the WAL; what is left is those frames and two quick fsyncs.
            self._finish_checkpoint = False
            try:
                self._checkpoint_passive(self._wconn)
            except sqlite3.Error as exc:  # the data is committed; the WAL waits longer
                log.warning("checkpoint failed: %s", exc)
        now = loop.time()
        if now - self._checkpoint_at < CHECKPOINT_EVERY_S:
            return
        self._checkpoint_at, self._checkpointing = now, True
        done = loop.run_in_executor(self._checkpointer, self._checkpoint_passive, self._cconn)
        done.add_done_callback(self._checkpointed)

    def _wrote(self) -> None:
        """Note a batch's time; the first batch after a quiet checkpoint arms the next
        (and one after a reader held it off ends the backoff: the next quiet spell
        truncates a second after it begins, not when the backoff runs out)."""
        loop = self._loop
        assert loop is not None
        self._last_write = loop.time()
        timer = self._quiet_timer
        if timer is None or self._quiet_retry_s != self._quiet_s:
            if timer is not None:
                timer.cancel()
            self._quiet_retry_s = self._quiet_s
            self._quiet_timer = loop.call_later(self._quiet_s, self._quiet_check)

    def _quiet_check(self) -> None:
        """Truncate the WAL if no write came for ``QUIET_CHECKPOINT_S``; else look again
        when that much has passed since the last one."""
        self._quiet_timer = None
        loop = self._loop
        if loop is None or self._wconn is None or self._closing:
            return
        quiet = loop.time() - self._last_write
        if quiet < self._quiet_s:
            self._quiet_timer = loop.call_later(self._quiet_s - quiet, self._quiet_check)
            return
        if self._threaded:  # the writer thread is free, and writes queue behind this
            done = loop.run_in_executor(self._writer, self._truncate_wal, self._wconn)
        elif self._cconn is not None:  # beside the loop's writer, as background checkpoints
            done = loop.run_in_executor(self._checkpointer, self._truncate_wal, self._cconn)
        else:
            return
        done.add_done_callback(self._quiet_checkpointed)

    @staticmethod
    def _truncate_wal(conn: sqlite3.Connection) -> bool:
        """Copy every frame into the database and empty the WAL; False if a reader (a
        backup, say) kept it from finishing. It waits QUIET_BUSY_MS for readers, not the
        connection's 5 s: while it waits it holds the write lock, and every write waits
        too (on the event loop, with the inline writer)."""
        conn.execute(f"PRAGMA busy_timeout={QUIET_BUSY_MS}")
        try:
            busy, _frames, _copied = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return not busy

    def _quiet_checkpointed(self, done: asyncio.Future[bool]) -> None:
        if done.cancelled() or self._closing:
            return
        error = done.exception()
        if error is not None:
            log.warning("quiet checkpoint failed: %s", error)
        elif not done.result() and self._quiet_timer is None and self._loop is not None:
            # Try again while it stays quiet, less often while the reader stays.
            self._quiet_retry_s = min(2 * self._quiet_retry_s, QUIET_RETRY_MAX_S)
            self._quiet_timer = self._loop.call_later(self._quiet_retry_s, self._quiet_check)

    @staticmethod
    def _checkpoint_passive(conn: sqlite3.Connection) -> int:
        """Copy what can be copied now; returns the frames in the WAL."""
        _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(frames)

    def _checkpointed(self, done: asyncio.Future[int]) -> None:
        self._checkpointing = False
        if done.cancelled():
            return
        if done.exception() is not None:
            log.warning("background checkpoint failed: %s", done.exception())
            return
        # The writer copies the rest after its next batch, once the WAL is worth it.
        self._finish_checkpoint = done.result() >= WAL_RESET_FRAMES

    async def _flush(self) -> None:
        """Run the queued writes on the writer thread (an fsync per COMMIT)."""
        loop = self._loop
        assert loop is not None
        try:
            while self._queue:
                self._cancel_lazy_flush()
                batch, self._queue = _grouped(self._queue), []
                try:
                    outcomes = await loop.run_in_executor(self._writer, self._run_batch, batch)
                except Exception as exc:  # the COMMIT itself failed: nothing is durable
                    outcomes = [_Failed(exc)] * len(batch)
                self._settle(batch, outcomes)
                self._wrote()
                self._settled(len(batch))
        finally:
            self._flusher = None

    def _cancel_lazy_flush(self) -> None:
        if self._lazy_flush is not None:
            self._lazy_flush.cancel()
            self._lazy_flush = None

    def _run_batch_or_fail(self, batch: list[QueuedWrite]) -> list[Any]:
        try:
            return self._run_batch(batch)
        except Exception as exc:  # the COMMIT itself failed: nothing is durable
            return [_Failed(exc)] * len(batch)

    @staticmethod
    def _settle(batch: list[QueuedWrite], outcomes: list[Any]) -> None:
        for ticket, outcome in zip(batch, outcomes, strict=True):
            if ticket.done():  # never twice; a bug here must not strand the others
                continue
            if isinstance(outcome, _Failed):
                ticket.set_exception(outcome.error)
            else:
                ticket.set_result(outcome)

    def _run_batch(self, batch: list[QueuedWrite]) -> list[Any]:
        """Commit a batch in one transaction. Optimistically first: every write runs
        plainly (no SAVEPOINT per write, which measured a tenth of the store's time at
        fixed rates); if one of them fails, the transaction is rolled back and the batch
        run again with each write in its own savepoint, so that it fails alone."""
        conn = self._wconn
        assert conn is not None
        ops = [ticket.op for ticket in batch]
        conn.execute("BEGIN IMMEDIATE")
        try:
            try:
                outcomes = self._run_plain(conn, ops)
            except Exception:
                conn.execute("ROLLBACK")
                self._forget_writer_state()
                conn.execute("BEGIN IMMEDIATE")
                outcomes = self._run_guarded(conn, ops)
            if self._emptied:
                self._persist_seqs(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._forget_writer_state()
            raise
        finally:
            self._emptied.clear()
        return outcomes

    def _forget_writer_state(self) -> None:
        """After a rollback: what the writer remembers may hold what was undone."""
        self._next_slot.clear()
        self._emptied.clear()
        self._active_ids.clear()
        self._blocked.clear()
        self._forget_records()

    def _forget_records(self) -> None:
        """Forget the records of rows and ids the writer made (an undone write may be
        among them); the seq counters are undone by the caller, or forgotten too."""
        self._unacked.clear()
        self._newest_ids.clear()
        self._newest_kept = None

    @staticmethod
    def _runs(ops: list[WriteOp]) -> list[list[WriteOp]]:
        """Consecutive message commits together, and consecutive acks together: each
        run is written with one statement per table."""
        runs: list[list[WriteOp]] = []
        for op in ops:
            kind = _AckOp if isinstance(op, _AckOp) else type(op)  # a _StreamAck too
            if kind in _BULKY and runs and isinstance(runs[-1][0], kind):
                runs[-1].append(op)
            else:
                runs.append([op])
        return runs

    def _one(self, conn: sqlite3.Connection, op: WriteOp) -> Any:
        if isinstance(op, NewMessage):
            return self._commit_one(conn, op)
        if isinstance(op, _AckOp):
            return self._ack_many(conn, [op])[0]
        return op(conn)

    def _bulk(self, conn: sqlite3.Connection, run: list[WriteOp]) -> list[Any]:
        if isinstance(run[0], NewMessage):
            return self._commit_many(conn, [op for op in run if isinstance(op, NewMessage)])
        return self._ack_many(conn, [op for op in run if isinstance(op, _AckOp)])

    def _run_plain(self, conn: sqlite3.Connection, ops: list[WriteOp]) -> list[Any]:
        """Each write's result, in order (nothing fails here: a failure raises)."""
        outcomes: list[Any] = []
        self._journaling = False  # a failure redoes the whole batch: no undo per write
        try:
            for run in self._runs(ops):
                if len(run) > 1:
                    outcomes += self._bulk(conn, run)
                else:
                    outcomes.append(self._one(conn, run[0]))
            return outcomes
        finally:
            self._journaling = True

    def _run_guarded(self, conn: sqlite3.Connection, ops: list[WriteOp]) -> list[Any]:
        """Each write's result or ``_Failed``, in order."""
        outcomes: list[Any] = []
        for run in self._runs(ops):
            if len(run) > 1:
                bulk = self._guarded(conn, functools.partial(self._bulk, run=run))
                if not isinstance(bulk, _Failed):
                    outcomes += bulk
                    continue
            # One write at a time (also the fallback when a bulk write failed).
            for op in run:
                outcomes.append(self._guarded(conn, functools.partial(self._one, op=op)))
        return outcomes

    def _guarded(self, conn: sqlite3.Connection, fn: WriteFn) -> Any:
        """Run one write in a savepoint and return its result; on failure undo it, seq
        counters included, and return ``_Failed``."""
        self._journal = []
        conn.execute("SAVEPOINT op")
        try:
            result = fn(conn)
        except Exception as exc:
            conn.execute("ROLLBACK TO op")
            self._forget_records()
            for key, value, was_emptied in reversed(self._journal):
                self._next_slot[key] = _NextSlot(value)
                if was_emptied:
                    self._emptied.add(key)
            result = _Failed(exc)
        conn.execute("RELEASE op")
        return result

    def _peek_next(self, c: sqlite3.Connection, key: DeviceKey) -> int | None:
        """The next inbox slot of an active device, or None if it is revoked or unknown."""
        cell = self._cell(c, key)
        return None if cell.slot < 0 else cell.slot

    def _cell(self, c: sqlite3.Connection, key: Any) -> _NextSlot:
        """The device's ``_NextSlot``, read from the database the first time."""
        cell = self._next_slot.get(key)
        if cell is None:
            row = c.execute(NEXT_SLOT + " AND d.revoked_ms IS NULL", key).fetchone()
            cell = self._next_slot[key] = _NextSlot(None if row is None else int(row[0]))
        return cell

    def _allocate(self, c: sqlite3.Connection, boxed: Any) -> int:
        """The next inbox slot of an active device ``boxed`` (a DeviceKey; its seq:
        ``slot & SEQ_MASK``), or -1 if it is revoked or unknown (not None: compiled,
        an ``int | None`` is a boxed int)."""
        # Any, not DeviceKey: compiled, a tuple[str, int] argument is unboxed on the way
        # in and boxed into a new tuple for every dict or set operation that takes it.
        # Callers pass the Python tuple they hold, and no tuple is made here.
        cell = self._next_slot.get(boxed)  # one lookup for a known device (most sends)
        if cell is None:
            cell = self._cell(c, boxed)
        slot = cell.slot
        if slot < 0:
            return -1
        if slot & SEQ_MASK == SEQ_MASK:
            raise OverflowError(f"the inbox of {boxed[0]}.{boxed[1]} has given out every seq")
        emptied = self._emptied
        if self._journaling:
            self._journal.append((boxed, slot, boxed in emptied))
        cell.slot = slot + 1
        if emptied:
            emptied.discard(boxed)  # its new row keeps the count (NEXT_SLOT)
        return slot

    def _persist_seqs(self, c: sqlite3.Connection) -> None:
        """Write the counters of the devices whose inbox this transaction left empty:
        for every other device, the newest inbox row holds the count (``NEXT_SLOT``)."""
        c.executemany(
            "UPDATE devices SET next_seq = ? WHERE user = ? AND id = ?",
            [
                (cell.slot & SEQ_MASK, key[0], key[1])
                for key in self._emptied
                if (cell := self._next_slot.get(key)) is not None and cell.slot >= 0
            ],
        )

    # ------------------------------------------------------------ accounts

    async def create_user(self, user: UserRecord) -> None:
        def run(c: sqlite3.Connection) -> None:
            try:
                c.execute(
                    "INSERT INTO users (handle, password_hash, created_ms, hide_presence)"
                    " VALUES (?, ?, ?, ?)",
                    (user.handle, user.password_hash, user.created_ms, int(user.hide_presence)),
                )
            except sqlite3.IntegrityError as exc:
                raise HandleTaken(user.handle) from exc

        await self._write(run)

    async def get_user(self, handle: str) -> UserRecord | None:
        row = await self._read(
            lambda c: c.execute(
                "SELECT handle, password_hash, created_ms, hide_presence, last_seen_ms"
                " FROM users WHERE handle = ?",
                (handle,),
            ).fetchone()
        )
        if row is None:
            return None
        return UserRecord(row[0], row[1], row[2], bool(row[3]), row[4])

    async def set_hide_presence(self, handle: str, hide: bool) -> None:
        await self._write(
            lambda c: c.execute(
                "UPDATE users SET hide_presence = ? WHERE handle = ?", (int(hide), handle)
            )
        )

    async def set_last_seen(self, handle: str, at_ms: int) -> None:
        await self._write(
            lambda c: c.execute(
                "UPDATE users SET last_seen_ms = ? WHERE handle = ?", (at_ms, handle)
            )
        )

    async def set_password_hash(self, handle: str, password_hash: str) -> None:
        await self._write(
            lambda c: c.execute(
                "UPDATE users SET password_hash = ? WHERE handle = ?", (password_hash, handle)
            )
        )

    # ------------------------------------------------------------ two-step verification

    async def get_totp(self, handle: str) -> TotpRecord | None:
        row = await self._read(
            lambda c: c.execute(
                "SELECT handle, secret, active, last_step, created_ms FROM totp WHERE handle = ?",
                (handle,),
            ).fetchone()
        )
        return None if row is None else TotpRecord(row[0], row[1], bool(row[2]), row[3], row[4])

    async def put_totp(self, handle: str, secret: str, now_ms: int) -> bool:
        def run(c: sqlite3.Connection) -> bool:
            cursor = c.execute(
                "INSERT INTO totp (handle, secret, active, last_step, created_ms)"
                " VALUES (?, ?, 0, 0, ?) ON CONFLICT (handle) DO UPDATE"
                " SET secret = excluded.secret, last_step = 0, created_ms = excluded.created_ms"
                " WHERE totp.active = 0",
                (handle, secret, now_ms),
            )
            return cursor.rowcount > 0

        return await self._write(run)

    async def use_totp_step(self, handle: str, step: int, *, activate: bool = False) -> bool:
        def run(c: sqlite3.Connection) -> bool:
            cursor = c.execute(
                "UPDATE totp SET last_step = ?, active = 1"
                " WHERE handle = ? AND last_step < ? AND (active = 1 OR ?)",
                (step, handle, step, int(activate)),
            )
            return cursor.rowcount > 0

        return await self._write(run)

    async def delete_totp(self, handle: str) -> None:
        await self._write(lambda c: c.execute("DELETE FROM totp WHERE handle = ?", (handle,)))

    async def legacy_totp_secrets(self, after: str, limit: int) -> list[tuple[str, str]]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT handle, secret FROM totp WHERE handle > ? AND instr(secret, ':') = 0"
                " ORDER BY handle LIMIT ?",
                (after, limit),
            ).fetchall()
        )
        return [(row[0], row[1]) for row in rows]

    async def replace_totp_secrets(self, changes: Sequence[tuple[str, str, str]]) -> int:
        def run(c: sqlite3.Connection) -> int:
            changed = 0
            for handle, old, new in changes:
                cursor = c.execute(
                    "UPDATE totp SET secret = ? WHERE handle = ? AND secret = ?",
                    (new, handle, old),
                )
                changed += cursor.rowcount
            return changed

        return await self._write(run)

    # ------------------------------------------------------------ devices

    _DEVICE_COLUMNS = "user, id, name, token_hash, created_ms, last_active_ms, revoked_ms"

    @staticmethod
    def _device(row: tuple[Any, ...]) -> DeviceRecord:
        return DeviceRecord(row[0], row[1], row[2], bytes(row[3]), row[4], row[5], row[6])

    async def create_device(
        self, user: str, name: str, token_hash: bytes, now_ms: int
    ) -> DeviceRecord:
        def run(c: sqlite3.Connection) -> DeviceRecord:
            self._active_ids.pop(user, None)
            (next_id,) = c.execute(
                "SELECT COALESCE(MAX(id), 0) + 1 FROM devices WHERE user = ?", (user,)
            ).fetchone()
            (box,) = c.execute("SELECT COALESCE(MAX(box), 0) + 1 FROM devices").fetchone()
            if box >= MAX_BOX:
                raise OverflowError("this store holds as many devices as inbox slots allow")
            c.execute(
                "INSERT INTO devices (user, id, name, token_hash, created_ms, last_active_ms, box)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (user, next_id, name, token_hash, now_ms, now_ms, box),
            )
            return DeviceRecord(user, next_id, name, token_hash, now_ms, now_ms)

        return await self._write(run)

    async def device_by_token(self, token_hash: bytes) -> DeviceRecord | None:
        row = await self._read(
            lambda c: c.execute(
                f"SELECT {self._DEVICE_COLUMNS} FROM devices WHERE token_hash = ?", (token_hash,)
            ).fetchone()
        )
        return None if row is None else self._device(row)

    async def list_devices(self, user: str) -> list[DeviceRecord]:
        rows = await self._read(
            lambda c: c.execute(
                f"SELECT {self._DEVICE_COLUMNS} FROM devices WHERE user = ? ORDER BY id", (user,)
            ).fetchall()
        )
        return [self._device(row) for row in rows]

    async def active_devices(self, users: Sequence[str]) -> dict[str, list[int]]:
        wanted = list(dict.fromkeys(users))

        def run(c: sqlite3.Connection) -> dict[str, list[int]]:
            found: dict[str, list[int]] = {}
            marks = ",".join("?" * len(wanted))
            for user in c.execute(f"SELECT handle FROM users WHERE handle IN ({marks})", wanted):
                found[user[0]] = []
            for user, device in c.execute(
                f"SELECT user, id FROM devices WHERE user IN ({marks}) AND revoked_ms IS NULL"
                " ORDER BY user, id",
                wanted,
            ):
                found[user].append(device)
            return found

        if not wanted:
            return {}
        return await self._read(run)

    async def revoke_device(self, user: str, device: int, now_ms: int) -> bool:
        def run(c: sqlite3.Connection) -> bool:
            key = (user, device)
            next_slot = self._peek_next(c, key)  # the inbox rows that keep it go below
            if next_slot is None:
                return False  # revoked before, or unknown
            cursor = c.execute(
                "UPDATE devices SET revoked_ms = ?, next_seq = ?"
                " WHERE user = ? AND id = ? AND revoked_ms IS NULL",
                (now_ms, next_slot & SEQ_MASK, user, device),
            )
            if cursor.rowcount == 0:
                return False
            self._active_ids.pop(user, None)
            self._journal.append((key, next_slot, key in self._emptied))
            self._next_slot[key] = _NextSlot(None)
            self._unacked.forget((user, device))
            first = next_slot & BOX_MASK
            c.execute("DELETE FROM inbox WHERE slot >= ? AND slot < ?", (first, first + BOX_SIZE))
            for table in ("device_keys", "one_time_prekeys"):
                c.execute(f"DELETE FROM {table} WHERE user = ? AND device = ?", (user, device))
            return True

        return await self._write(run)

    async def touch_device(self, user: str, device: int, now_ms: int) -> None:
        await self._write(
            lambda c: c.execute(
                "UPDATE devices SET last_active_ms = ? WHERE user = ? AND id = ?",
                (now_ms, user, device),
            )
        )

    # ------------------------------------------------------------ groups

    async def create_group(self, group: GroupRecord) -> None:
        def run(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO groups (id, name, created_ms, created_by) VALUES (?, ?, ?, ?)",
                (group.id, group.name, group.created_ms, group.created_by),
            )
            c.executemany(
                "INSERT INTO group_members (group_id, user, admin, pos) VALUES (?, ?, ?, ?)",
                [
                    (group.id, user, int(admin), pos)
                    for pos, (user, admin) in enumerate(group.members.items())
                ],
            )

        await self._write(run)

    @staticmethod
    def _load_group(c: sqlite3.Connection, group_id: str) -> GroupRecord | None:
        row = c.execute(
            "SELECT id, name, created_ms, created_by FROM groups WHERE id = ?", (group_id,)
        ).fetchone()
        if row is None:
            return None
        members = {
            user: bool(admin)
            for user, admin in c.execute(
                "SELECT user, admin FROM group_members WHERE group_id = ? ORDER BY pos",
                (group_id,),
            )
        }
        return GroupRecord(row[0], row[1], row[2], row[3], members)

    async def get_group(self, group_id: str) -> GroupRecord | None:
        return await self._read(lambda c: self._load_group(c, group_id))

    async def groups_of(self, user: str) -> list[GroupRecord]:
        def run(c: sqlite3.Connection) -> list[GroupRecord]:
            ids = [
                row[0]
                for row in c.execute(
                    "SELECT group_id FROM group_members WHERE user = ? ORDER BY group_id", (user,)
                )
            ]
            return [g for g in (self._load_group(c, gid) for gid in ids) if g is not None]

        return await self._read(run)

    async def update_group(
        self,
        group_id: str,
        *,
        name: str | None = None,
        upsert_members: dict[str, bool] | None = None,
        remove_members: Sequence[str] = (),
    ) -> GroupRecord | None:
        def run(c: sqlite3.Connection) -> GroupRecord | None:
            if c.execute("SELECT 1 FROM groups WHERE id = ?", (group_id,)).fetchone() is None:
                return None
            if name is not None:
                c.execute("UPDATE groups SET name = ? WHERE id = ?", (name, group_id))
            (pos,) = c.execute(
                "SELECT COALESCE(MAX(pos), -1) + 1 FROM group_members WHERE group_id = ?",
                (group_id,),
            ).fetchone()
            for offset, (user, admin) in enumerate((upsert_members or {}).items()):
                c.execute(
                    "INSERT INTO group_members (group_id, user, admin, pos) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (group_id, user) DO UPDATE SET admin = excluded.admin",
                    (group_id, user, int(admin), pos + offset),
                )
            c.executemany(
                "DELETE FROM group_members WHERE group_id = ? AND user = ?",
                [(group_id, user) for user in remove_members],
            )
            return self._load_group(c, group_id)

        return await self._write(run)

    # ------------------------------------------------------------ inbox

    async def commit_message(self, message: NewMessage) -> SendResult:
        result: SendResult = await self._submit(message)
        return result

    def submit_message(self, message: NewMessage) -> Pending[SendResult]:
        return self._submit(message)

    def _newest_id(self, c: sqlite3.Connection, sender: str) -> str:
        """The sender's newest id in ``sent_runs``, "" if none (sent_runs.py)."""
        newest = self._newest_ids.get(sender)
        if newest is None:
            (found,) = c.execute(
                "SELECT max(last_id) FROM sent_runs WHERE sender = ?", (sender,)
            ).fetchone()
            if len(self._newest_ids) >= WRITER_CACHE_USERS:
                self._newest_ids.clear()
            newest = self._newest_ids[sender] = found or ""
        return newest

    def _kept_above(self, c: sqlite3.Connection) -> str:
        """The newest id in ``messages``, of any sender ("" if none): the rightmost
        entry of its key (id, sender), one b-tree descent."""
        if self._newest_kept is None:
            (found,) = c.execute("SELECT max(id) FROM messages").fetchone()
            self._newest_kept = found or ""
        return self._newest_kept

    def _kept(self, c: sqlite3.Connection, ids: Sequence[str]) -> None:
        """Ids were recorded in ``messages`` only (not in a run): the newest of them
        bounds the fast path."""
        self._newest_kept = max(self._kept_above(c), max(ids))

    def _commit_one(self, c: sqlite3.Connection, message: NewMessage) -> SendResult:
        m = message
        if m.id <= self._newest_id(c, m.sender):  # it may be in a run (sent_runs.py)
            sent_at = _run_sent_at(c, m.sender, m.id)
            if sent_at is not None:
                return SendResult(sent_at, True, [])
        inserted = c.execute(
            "INSERT INTO messages (sender, id, sender_device, target, sent_at_ms, payload)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sender, id) DO NOTHING RETURNING 1",
            (m.sender, m.id, m.sender_device, m.target, m.sent_at_ms, shared_payload(m)),
        ).fetchone()
        if inserted is None:
            kept_at = _kept_sent_at(c, m.sender, m.id)
            assert kept_at is not None  # the row the insert met
            return SendResult(kept_at, True, [])
        self._kept(c, (m.id,))
        rows = _MessageRows()
        result = self._append_message(c, m, rows)
        rows.insert(c)
        return result

    def _commit_many(self, c: sqlite3.Connection, messages: list[NewMessage]) -> list[SendResult]:
        """The fast path for many messages: multi-row INSERTs per table. Raises
        _HasDuplicates (the caller then commits them one by one) if any id was known.

        In a commit of at least RUN_MIN_MESSAGES, an id above its sender's newest in
        ``sent_runs`` and above the newest in ``messages`` was never recorded: such ids
        go, unlooked-up, into their sender's run of this commit (sent_runs.py). The
        others, and every id of a smaller commit, are recorded in ``messages``, after a
        lookup in the runs if they may be in one. The runs are written first, so that
        the lookups see an id sent twice in this commit."""
        checked: list[Any] = []  # recorded in ``messages``, payload in the inbox rows
        shared: list[Any] = []  # payload kept in ``messages``
        kept_ids: list[str] = []
        looked_up: list[NewMessage] = []
        runs: dict[str, list[Any]] = {}  # sender -> [id, sent at, id, sent at, ...]
        newest_ids = self._newest_ids
        above = self._kept_above(c) if len(messages) >= RUN_MIN_MESSAGES else None
        for m in messages:
            sender = m.sender
            newest = newest_ids.get(sender)
            if newest is None:
                newest = self._newest_id(c, sender)
            payload = shared_payload(m)
            if above is not None and m.id > newest and m.id > above:
                newest_ids[sender] = m.id
                run = runs.get(sender)
                if run is None:
                    runs[sender] = [m.id, m.sent_at_ms]
                else:
                    run += (m.id, m.sent_at_ms)
            else:
                if m.id <= newest:
                    looked_up.append(m)
                kept_ids.append(m.id)
                if payload is None:
                    checked += (sender, m.id, m.sender_device, m.target, m.sent_at_ms)
            if payload is not None:
                shared += (sender, m.id, m.sender_device, m.target, m.sent_at_ms, blob(payload))
        sent: list[Any] = []
        for sender, run in runs.items():
            sent += (sender, run[-2], run[-1], encode_sent(run))
        insert_rows(c, INSERT_SENT_RUNS, 4, sent)
        for m in looked_up:
            if _run_sent_at(c, m.sender, m.id) is not None:
                raise _HasDuplicates
        before = c.total_changes
        insert_rows(c, INSERT_MESSAGES, 5, checked, NULL_PAYLOAD)
        insert_rows(c, INSERT_MESSAGES, 6, shared)
        if c.total_changes - before != len(checked) // 5 + len(shared) // 6:
            raise _HasDuplicates
        if kept_ids:
            self._kept(c, kept_ids)
        rows = _MessageRows()
        results = [self._append_message(c, m, rows) for m in messages]
        rows.insert(c, runs_of_one=bool(runs))
        return results

    def _append_message(
        self, c: sqlite3.Connection, m: NewMessage, rows: _MessageRows
    ) -> SendResult:
        """Allocate each delivery's slot and add its inbox row's values to ``rows``."""
        appended: list[tuple[DeviceKey, int]] = []
        for d in m.deliveries:
            key = d.key
            slot = self._allocate(c, key)
            if slot < 0:  # revoked meanwhile: nothing to deliver to
                continue
            seq = slot & SEQ_MASK
            payload = delivery_payload(m, d)
            if payload is None:
                rows.shared += (slot, m.sender, m.id, d.conversation)
            else:
                item = (m.sender, m.id, d.conversation, payload, m.sender_device, m.sent_at_ms)
                rows.carry(key, slot, item)
            self._unacked.inserted(key, seq, m.sender, m.id, d.conversation)
            appended.append((key, seq))
        return SendResult(m.sent_at_ms, False, appended)

    async def sent_at(self, sender: str, message_id: str) -> int | None:
        return await self._read(lambda c: _known_sent_at(c, sender, message_id))

    async def purge_messages(self, before_ms: int, limit: int) -> int:
        return await self._write(lambda c: _purge_messages(c, before_ms, limit))

    def _append_extra(
        self, c: sqlite3.Connection, items: Sequence[tuple[DeviceKey, Receipt | GroupEvent]]
    ) -> Appended:
        rows: list[Any] = []
        appended = self._stage_extra(c, items, rows)
        insert_rows(c, INSERT_INBOX_EXTRAS, 3, rows)
        return appended

    def _stage_extra(
        self,
        c: sqlite3.Connection,
        items: Sequence[tuple[DeviceKey, Receipt | GroupEvent]],
        rows: list[Any],
    ) -> Appended:
        """Allocate each item's slot and add its inbox row's values to ``rows``."""
        appended: Appended = []
        for key, item in items:
            slot = self._allocate(c, key)
            if slot < 0:  # revoked meanwhile
                continue
            rows += (slot, extra_kind(item), blob(encode_extra(item)))
            appended.append((key, msgspec.structs.replace(item, seq=slot & SEQ_MASK)))
        return appended

    async def append_items(
        self, items: Sequence[tuple[DeviceKey, Receipt | GroupEvent]]
    ) -> Appended:
        return await self._write(lambda c: self._append_extra(c, items))

    async def read_inbox(
        self, user: str, device: int, after_seq: int, limit: int
    ) -> list[InboxItem]:
        after = min(max(after_seq, 0), SEQ_MASK)  # within the device's slots
        rows = await self._read(
            lambda c: c.execute(
                f"SELECT i.slot & {SEQ_MASK}, i.kind, i.sender, i.msg_id, i.conversation,"
                " COALESCE(i.payload, m.payload), m.sender_device, m.sent_at_ms, i.data,"
                f" i.first_slot & {SEQ_MASK}"
                " FROM inbox i LEFT JOIN messages m ON m.sender = i.sender AND m.id = i.msg_id"
                f" WHERE i.slot > {BOX_RANGE[0]} + ?3 AND i.slot < {BOX_RANGE[1]}"
                " ORDER BY i.slot LIMIT ?4",
                (user, device, after, limit),
            ).fetchall()
        )
        items: list[InboxItem] = []
        for seq, kind, sender, msg_id, conversation, payload, s_dev, sent_at, data, first in rows:
            if kind == KIND_MESSAGE_RUN:  # a row may hold many: the limit counts items
                items += run_messages(first, data, after)
            else:
                item = inbox_item(
                    seq, kind, sender, msg_id, conversation, s_dev, sent_at, payload, data
                )
                items.append(item)
            if len(items) >= limit:
                return items[:limit]
        return items

    async def ack(self, user: str, device: int, upto_seq: int, now_ms: int) -> AckResult:
        result: AckResult = await self._submit(_AckOp(user, device, upto_seq, now_ms))
        return result

    def submit_ack(self, user: str, device: int, upto_seq: int, now_ms: int) -> Pending[AckResult]:
        # Lazy: no client waits for an answer to a streaming ack (its receipts may
        # come a few milliseconds later, and the connection's window of unacked items
        # moves on as late), and at a steady trickle it shares the next send's
        # transaction instead of paying for one of its own.
        return self._submit(_StreamAck(user, device, upto_seq, now_ms), lazy=True)

    def _ack_many(self, c: sqlite3.Connection, acks: list[_AckOp]) -> list[AckResult]:
        """Acks, then each ack's delivered receipts. A device whose message rows the
        writer knows (``UnackedMessages``) is acked with a plain range DELETE; the others
        in one ``DELETE … RETURNING`` per chunk, which the first ack of a device in the
        list takes the rows of (a device has one ack in flight at a time, but its last
        ack on close may overlap)."""
        uptos: list[int] = []
        known: dict[int, list[AckedRow]] = {}  # by the ack's index
        plain: list[tuple[int, int]] = []
        wanted: list[Any] = []
        boxes: dict[int, DeviceKey] = {}  # first slot -> device, for the RETURNING rows
        acked_to: list[tuple[int, int]] = []  # (first slot, last acked slot): may split
        unacked = self._unacked
        for i, ack in enumerate(acks):
            key = (ack.user, ack.device)
            next_slot = self._peek_next(c, key)
            if next_slot is None:
                uptos.append(0)
                continue
            next_seq = next_slot & SEQ_MASK
            upto = min(ack.upto_seq, next_seq - 1)
            uptos.append(upto)
            if upto <= 0:
                continue
            if upto == next_seq - 1:
                self._emptied.add(key)
            first = next_slot & BOX_MASK
            if first + upto + 1 < next_slot:  # else nothing follows: no run to split
                acked_to.append((first, first + upto))
            taken = unacked.take(key, upto)
            if taken is None:
                wanted += (first, first + upto)
                boxes[first] = key
            else:
                known[i] = taken
                plain.append((first, first + upto))
        if plain:
            c.executemany(ACK_RANGE, plain)
        rows: dict[DeviceKey, list[AckedRow]] = {}
        for start, count in _chunks(len(wanted) // 2):
            chunk = wanted[start * 2 : (start + count) * 2]
            for slot, kind, sender, msg_id, conversation, first_slot, run in c.execute(
                _ack_sql(count), chunk
            ):
                owner_rows = rows.setdefault(boxes[slot & BOX_MASK], [])
                if kind == KIND_MESSAGE_RUN:
                    owner_rows += acked_items(first_slot & SEQ_MASK, decode_run(run))
                else:
                    owner_rows.append((slot & SEQ_MASK, kind, sender, msg_id, conversation))
        for first, upto_slot in acked_to:
            split = self._split_run(c, first, upto_slot)
            if split and first in boxes:  # else the writer's record had these rows
                rows.setdefault(boxes[first], []).extend(split)
        results = []
        receipt_rows: list[Any] = []  # every ack's receipts in one INSERT per chunk
        for i, (ack, upto) in enumerate(zip(acks, uptos, strict=True)):
            acked = known.get(i)
            if acked is None:
                acked = rows.pop((ack.user, ack.device), [])
                unacked.acked_from_store((ack.user, ack.device), upto)
            results.append(AckResult(upto, self._delivered(c, ack, acked, receipt_rows)))
        insert_rows(c, INSERT_INBOX_EXTRAS, 3, receipt_rows)
        return results

    @staticmethod
    def _split_run(c: sqlite3.Connection, first: int, upto_slot: int) -> list[AckedRow]:
        """After the rows an ack covers are deleted: if the ack ends inside a run (of the
        box that starts at ``first``), rewrite the run without its acked items, and
        return those."""
        row = c.execute(STRADDLING_RUN, (upto_slot, first + BOX_SIZE, upto_slot)).fetchone()
        if row is None:
            return []
        slot, first_slot, data = row
        items = decode_run(data)
        taken = upto_slot - first_slot + 1
        c.execute(
            "UPDATE inbox SET first_slot = ?, data = ? WHERE slot = ?",
            (upto_slot + 1, encode_run(items[taken:]), slot),
        )
        return acked_items(first_slot & SEQ_MASK, items[:taken])

    def _delivered(
        self,
        c: sqlite3.Connection,
        ack: _AckOp,
        acked: list[AckedRow],
        rows: list[Any],
    ) -> Appended:
        """Stage the delivered receipts for the rows an ack removed (their inbox rows'
        values go to ``rows``)."""
        if not acked:
            return []
        receipts: list[tuple[DeviceKey, Receipt | GroupEvent]] = []
        blocked = self._blocked_by(c, ack.user)  # cached: no pass over the rows to skip it
        for sender, receipt in delivered_receipts(acked, ack.user, ack.device, ack.now_ms, blocked):
            receipts.extend(((sender, d), receipt) for d in self._active_device_ids(c, sender))
        return self._stage_extra(c, receipts, rows)

    def _blocked_by(self, c: sqlite3.Connection, user: str) -> frozenset[str]:
        found = self._blocked.get(user)
        if found is None:
            if len(self._blocked) >= WRITER_CACHE_USERS:
                self._blocked.clear()
            rows = c.execute("SELECT blocked FROM blocks WHERE blocker = ?", (user,))
            found = self._blocked[user] = frozenset(r[0] for r in rows)
        return found

    def _active_device_ids(self, c: sqlite3.Connection, user: str) -> list[int]:
        found = self._active_ids.get(user)
        if found is None:
            if len(self._active_ids) >= WRITER_CACHE_USERS:
                self._active_ids.clear()
            rows = c.execute(
                "SELECT id FROM devices WHERE user = ? AND revoked_ms IS NULL ORDER BY id", (user,)
            )
            found = self._active_ids[user] = [r[0] for r in rows]
        return found

    async def last_seq(self, user: str, device: int) -> int:
        row = await self._read(lambda c: c.execute(NEXT_SLOT, (user, device)).fetchone())
        return 0 if row is None else (int(row[0]) & SEQ_MASK) - 1

    # ------------------------------------------------------------ keys
    # The single writer makes each write one atomic step: a bundle fetch's
    # DELETE ... RETURNING cannot hand a one-time prekey to two callers.

    @staticmethod
    def _keys_status(c: sqlite3.Connection, user: str, device: int) -> KeysStatusRecord:
        row = c.execute(
            "SELECT identity_key, spk_id FROM device_keys WHERE user = ? AND device = ?",
            (user, device),
        ).fetchone()
        if row is None:
            return KeysStatusRecord()
        (count,) = c.execute(
            "SELECT COUNT(*) FROM one_time_prekeys WHERE user = ? AND device = ?", (user, device)
        ).fetchone()
        return KeysStatusRecord(int(count), int(row[1]), bytes(row[0]))

    async def put_keys(
        self,
        user: str,
        device: int,
        identity_key: bytes,
        signed_prekey: SignedPrekeyRecord | None,
        one_time_prekeys: Sequence[PrekeyRecord],
        max_one_time: int,
    ) -> KeysStatusRecord | None:
        fresh = {p.id: p for p in reversed(one_time_prekeys)}  # the first of an id wins

        def run(c: sqlite3.Connection) -> KeysStatusRecord | None:
            active = c.execute(
                "SELECT 1 FROM devices WHERE user = ? AND id = ? AND revoked_ms IS NULL",
                (user, device),
            ).fetchone()
            if active is None:
                return None
            row = c.execute(
                "SELECT identity_key FROM device_keys WHERE user = ? AND device = ?",
                (user, device),
            ).fetchone()
            if row is not None and bytes(row[0]) != identity_key:
                raise IdentityKeyMismatch
            if row is None and signed_prekey is None:
                raise KeysIncomplete
            stored = {
                int(r[0])
                for r in c.execute(
                    "SELECT id FROM one_time_prekeys WHERE user = ? AND device = ?", (user, device)
                )
            }
            new = [p for key_id, p in fresh.items() if key_id not in stored]
            if len(stored) + len(new) > max_one_time:
                raise TooManyPrekeys(len(stored), max_one_time)
            if signed_prekey is not None:
                s = signed_prekey
                c.execute(
                    "INSERT INTO device_keys"
                    " (user, device, identity_key, spk_id, spk, spk_signature)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user, device) DO UPDATE SET"
                    " spk_id = excluded.spk_id, spk = excluded.spk,"
                    " spk_signature = excluded.spk_signature",
                    (user, device, identity_key, s.id, s.key, s.signature),
                )
            c.executemany(
                "INSERT INTO one_time_prekeys (user, device, id, key) VALUES (?, ?, ?, ?)",
                [(user, device, p.id, p.key) for p in new],
            )
            return self._keys_status(c, user, device)

        return await self._write(run)

    async def keys_status(self, user: str, device: int) -> KeysStatusRecord:
        return await self._read(lambda c: self._keys_status(c, user, device))

    async def take_bundles(self, user: str, device: int | None = None) -> list[BundleRecord]:
        def run(c: sqlite3.Connection) -> list[BundleRecord]:
            rows = c.execute(
                "SELECT k.device, k.identity_key, k.spk_id, k.spk, k.spk_signature"
                " FROM device_keys k JOIN devices d ON d.user = k.user AND d.id = k.device"
                " WHERE k.user = ? AND d.revoked_ms IS NULL AND (? IS NULL OR k.device = ?)"
                " ORDER BY k.device",
                (user, device, device),
            ).fetchall()
            bundles = []
            for dev, identity, spk_id, spk, signature in rows:
                taken = c.execute(
                    "DELETE FROM one_time_prekeys WHERE user = ? AND device = ? AND id = ("
                    " SELECT MIN(id) FROM one_time_prekeys WHERE user = ? AND device = ?)"
                    " RETURNING id, key",
                    (user, dev, user, dev),
                ).fetchone()
                (left,) = c.execute(
                    "SELECT COUNT(*) FROM one_time_prekeys WHERE user = ? AND device = ?",
                    (user, dev),
                ).fetchone()
                bundles.append(
                    BundleRecord(
                        device=int(dev),
                        identity_key=bytes(identity),
                        signed_prekey=SignedPrekeyRecord(int(spk_id), bytes(spk), bytes(signature)),
                        one_time_prekey=(
                            None if taken is None else PrekeyRecord(int(taken[0]), bytes(taken[1]))
                        ),
                        one_time_prekeys_left=int(left),
                    )
                )
            return bundles

        return await self._write(run)

    async def identity_keys(self, user: str) -> list[tuple[int, bytes]]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT k.device, k.identity_key"
                " FROM device_keys k JOIN devices d ON d.user = k.user AND d.id = k.device"
                " WHERE k.user = ? AND d.revoked_ms IS NULL ORDER BY k.device",
                (user,),
            ).fetchall()
        )
        return [(int(dev), bytes(key)) for dev, key in rows]

    # ------------------------------------------------------------ blobs

    @staticmethod
    def _blob_status(c: sqlite3.Connection, blob_id: str, user: str) -> BlobRecord | None:
        row = c.execute(
            "SELECT b.size, b.created_ms, a.uploader, a.granted FROM blobs b"
            " JOIN blob_access a ON a.blob_id = b.id AND a.user = ?"
            " WHERE b.id = ? AND (a.uploader OR a.granted)",
            (user, blob_id),
        ).fetchone()
        if row is not None:
            size, created, uploader, granted = row
            return BlobRecord(blob_id, size, size, True, created, bool(uploader), bool(granted))
        row = c.execute(
            "SELECT size, received, created_ms FROM blob_uploads WHERE blob_id = ? AND user = ?",
            (blob_id, user),
        ).fetchone()
        if row is None:
            return None
        return BlobRecord(blob_id, row[0], row[1], False, row[2], uploader=True)

    async def start_blob_upload(
        self, blob_id: str, user: str, size: int, now_ms: int
    ) -> BlobRecord:
        def run(c: sqlite3.Connection) -> BlobRecord:
            if c.execute("SELECT 1 FROM blobs WHERE id = ?", (blob_id,)).fetchone():
                c.execute(
                    "INSERT INTO blob_access (blob_id, user, uploader) VALUES (?, ?, 1)"
                    " ON CONFLICT (blob_id, user) DO UPDATE SET uploader = 1",
                    (blob_id, user),
                )
            else:
                c.execute(
                    "INSERT INTO blob_uploads (blob_id, user, size, received, created_ms)"
                    " VALUES (?, ?, ?, 0, ?) ON CONFLICT (blob_id, user) DO UPDATE SET"
                    " received = CASE WHEN size = excluded.size THEN received ELSE 0 END,"
                    " size = excluded.size",
                    (blob_id, user, size, now_ms),
                )
            found = self._blob_status(c, blob_id, user)
            assert found is not None
            return found

        return await self._write(run)

    async def blob_status(self, blob_id: str, user: str) -> BlobRecord | None:
        return await self._read(lambda c: self._blob_status(c, blob_id, user))

    async def advance_blob_upload(
        self, blob_id: str, user: str, from_offset: int, to_offset: int
    ) -> bool:
        return await self._write(
            lambda c: (
                c.execute(
                    "UPDATE blob_uploads SET received = ?"
                    " WHERE blob_id = ? AND user = ? AND received = ?",
                    (to_offset, blob_id, user, from_offset),
                ).rowcount
                == 1
            )
        )

    async def complete_blob(self, blob_id: str, user: str, size: int, now_ms: int) -> None:
        def run(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO blobs (id, size, created_ms) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING",
                (blob_id, size, now_ms),
            )
            c.execute(
                "INSERT INTO blob_access (blob_id, user, uploader) VALUES (?, ?, 1)"
                " ON CONFLICT (blob_id, user) DO UPDATE SET uploader = 1",
                (blob_id, user),
            )
            c.execute("DELETE FROM blob_uploads WHERE blob_id = ? AND user = ?", (blob_id, user))

        await self._write(run)

    async def discard_blob_upload(self, blob_id: str, user: str) -> None:
        await self._write(
            lambda c: c.execute(
                "DELETE FROM blob_uploads WHERE blob_id = ? AND user = ?", (blob_id, user)
            )
        )

    async def grant_blob(self, blob_id: str, users: Sequence[str]) -> None:
        await self._write(
            lambda c: c.executemany(
                "INSERT INTO blob_access (blob_id, user, granted) VALUES (?, ?, 1)"
                " ON CONFLICT (blob_id, user) DO UPDATE SET granted = 1",
                [(blob_id, u) for u in dict.fromkeys(users)],
            )
        )

    async def record_blob_fetch(self, blob_id: str, user: str, now_ms: int) -> bool:
        def run(c: sqlite3.Connection) -> bool:
            changed = c.execute(
                "UPDATE blob_access SET fetched_ms = ? WHERE blob_id = ? AND user = ?"
                " AND granted = 1 AND fetched_ms IS NULL",
                (now_ms, blob_id, user),
            ).rowcount
            if not changed:
                return False
            (waiting,) = c.execute(
                "SELECT COUNT(*) FROM blob_access"
                " WHERE blob_id = ? AND granted = 1 AND fetched_ms IS NULL",
                (blob_id,),
            ).fetchone()
            if waiting:
                return False
            c.execute("DELETE FROM blob_access WHERE blob_id = ?", (blob_id,))
            c.execute("DELETE FROM blobs WHERE id = ?", (blob_id,))
            return True

        return await self._write(run)

    async def purge_blobs(self, before_ms: int, limit: int) -> list[str]:
        def run(c: sqlite3.Connection) -> list[str]:
            ids = [
                r[0]
                for r in c.execute(
                    "DELETE FROM blobs WHERE id IN"
                    " (SELECT id FROM blobs WHERE created_ms < ? LIMIT ?) RETURNING id",
                    (before_ms, limit),
                ).fetchall()
            ]
            c.executemany("DELETE FROM blob_access WHERE blob_id = ?", [(i,) for i in ids])
            return ids

        return await self._write(run)

    async def purge_blob_uploads(self, before_ms: int, limit: int) -> list[tuple[str, str]]:
        rows = await self._write(
            lambda c: c.execute(
                "DELETE FROM blob_uploads WHERE (blob_id, user) IN (SELECT blob_id, user"
                " FROM blob_uploads WHERE created_ms < ? LIMIT ?) RETURNING blob_id, user",
                (before_ms, limit),
            ).fetchall()
        )
        return [(r[0], r[1]) for r in rows]

    async def blob_exists(self, blob_id: str) -> bool:
        row = await self._read(
            lambda c: c.execute("SELECT 1 FROM blobs WHERE id = ?", (blob_id,)).fetchone()
        )
        return row is not None

    # ------------------------------------------------------------ blocks

    async def block(self, blocker: str, blocked: str, now_ms: int) -> None:
        def run(c: sqlite3.Connection) -> None:
            self._blocked.pop(blocker, None)
            c.execute(
                "INSERT INTO blocks (blocker, blocked, created_ms) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (blocker, blocked, now_ms),
            )

        await self._write(run)

    async def unblock(self, blocker: str, blocked: str) -> bool:
        def run(c: sqlite3.Connection) -> bool:
            self._blocked.pop(blocker, None)
            return bool(
                c.execute(
                    "DELETE FROM blocks WHERE blocker = ? AND blocked = ?", (blocker, blocked)
                ).rowcount
                == 1
            )

        return await self._write(run)

    async def blocked_by(self, blocker: str) -> list[str]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT blocked FROM blocks WHERE blocker = ? ORDER BY blocked", (blocker,)
            ).fetchall()
        )
        return [r[0] for r in rows]

    # ------------------------------------------------------------ device links

    _LINK_COLUMNS = (
        "id, code, secret_hash, device_name, created_ms, expires_ms, handle, device, token,"
        " approved_ms"
    )

    @staticmethod
    def _link(row: tuple[Any, ...] | None) -> LinkRecord | None:
        if row is None:
            return None
        return LinkRecord(row[0], row[1], bytes(row[2]), *row[3:])

    async def create_link(self, link: LinkRecord) -> bool:
        return await self._write(
            lambda c: (
                c.execute(
                    "INSERT INTO links (id, code, secret_hash, device_name, created_ms,"
                    " expires_ms) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (
                        link.id,
                        link.code,
                        link.secret_hash,
                        link.device_name,
                        link.created_ms,
                        link.expires_ms,
                    ),
                ).rowcount
                == 1
            )
        )

    async def get_link(self, link_id: str) -> LinkRecord | None:
        return self._link(
            await self._read(
                lambda c: c.execute(
                    f"SELECT {self._LINK_COLUMNS} FROM links WHERE id = ?", (link_id,)
                ).fetchone()
            )
        )

    async def link_by_code(self, code: str) -> LinkRecord | None:
        return self._link(
            await self._read(
                lambda c: c.execute(
                    f"SELECT {self._LINK_COLUMNS} FROM links WHERE code = ?", (code,)
                ).fetchone()
            )
        )

    async def approve_link(
        self, code: str, handle: str, device: int, token: str, now_ms: int
    ) -> bool:
        return await self._write(
            lambda c: (
                c.execute(
                    "UPDATE links SET handle = ?, device = ?, token = ?, approved_ms = ?"
                    " WHERE code = ? AND handle IS NULL AND expires_ms > ?",
                    (handle, device, token, now_ms, code, now_ms),
                ).rowcount
                == 1
            )
        )

    async def take_link_token(self, link_id: str) -> str | None:
        def run(c: sqlite3.Connection) -> str | None:
            # One transaction of the one writer: nobody takes it in between.
            row = c.execute(
                "SELECT token FROM links WHERE id = ? AND token IS NOT NULL", (link_id,)
            ).fetchone()
            if row is None:
                return None
            c.execute("UPDATE links SET token = NULL WHERE id = ?", (link_id,))
            return str(row[0])

        return await self._write(run)

    async def purge_links(self, before_ms: int, limit: int) -> int:
        return await self._write(
            lambda c: (
                c.execute(
                    "DELETE FROM links WHERE id IN"
                    " (SELECT id FROM links WHERE expires_ms < ? LIMIT ?)",
                    (before_ms, limit),
                ).rowcount
            )
        )

    # ------------------------------------------------------------ notices

    async def create_notice(self, notice: NoticeRecord) -> None:
        await self._write(
            lambda c: c.execute(
                "INSERT INTO notices (id, text, level, at_ms, expires_ms) VALUES (?, ?, ?, ?, ?)",
                (notice.id, notice.text, notice.level, notice.at_ms, notice.expires_ms),
            )
        )

    async def current_notices(self, now_ms: int) -> list[NoticeRecord]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT id, text, level, at_ms, expires_ms FROM notices"
                " WHERE expires_ms > ? ORDER BY at_ms, id",
                (now_ms,),
            ).fetchall()
        )
        return [NoticeRecord(*row) for row in rows]

    async def end_notice(self, notice_id: str) -> bool:
        return await self._write(
            lambda c: c.execute("DELETE FROM notices WHERE id = ?", (notice_id,)).rowcount == 1
        )

    async def purge_notices(self, before_ms: int) -> int:
        return await self._write(
            lambda c: c.execute("DELETE FROM notices WHERE expires_ms < ?", (before_ms,)).rowcount
        )

    # ------------------------------------------------------------ status

    async def put_probe_minutes(self, rows: Sequence[ProbeMinuteRecord]) -> None:
        await self._write(
            lambda c: c.executemany(
                "INSERT OR REPLACE INTO status_probes (minute_ms, node, component, count, ok,"
                " within, hist, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (r.minute_ms, r.node, r.component, r.count, r.ok, r.within, r.hist,
                     r.updated_ms)
                    for r in rows
                ],
            )
        )  # fmt: skip

    async def probe_minutes(self, since_ms: int) -> list[ProbeMinuteRecord]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT minute_ms, node, component, count, ok, within, hist, updated_ms"
                " FROM status_probes WHERE minute_ms >= ?",
                (since_ms,),
            ).fetchall()
        )
        return [ProbeMinuteRecord(*row) for row in rows]

    async def probe_nodes(self, since_ms: int) -> dict[str, int]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT node, max(updated_ms) FROM status_probes WHERE minute_ms >= ?"
                " GROUP BY node",
                (since_ms,),
            ).fetchall()
        )
        return {str(node): int(at) for node, at in rows}

    async def probe_totals(self, component: str, since_ms: int) -> tuple[int, int, int]:
        row = await self._read(
            lambda c: c.execute(
                "SELECT coalesce(sum(count), 0), coalesce(sum(ok), 0), coalesce(sum(within), 0)"
                " FROM status_probes WHERE component = ? AND minute_ms >= ?",
                (component, since_ms),
            ).fetchone()
        )
        return int(row[0]), int(row[1]), int(row[2])

    async def put_status_minutes(self, rows: Sequence[tuple[int, str, str]]) -> None:
        await self._write(
            lambda c: c.executemany(
                "INSERT OR REPLACE INTO status_minutes (minute_ms, component, status)"
                " VALUES (?, ?, ?)",
                list(rows),
            )
        )

    async def status_minute_counts(self, since_ms: int) -> list[tuple[str, int, str, int]]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT component, minute_ms - minute_ms % 86400000 AS day, status, count(*)"
                " FROM status_minutes WHERE minute_ms >= ? GROUP BY component, day, status",
                (since_ms,),
            ).fetchall()
        )
        return [(str(c), int(d), str(s), int(n)) for c, d, s, n in rows]

    async def last_status_minute(self) -> int | None:
        row = await self._read(
            lambda c: c.execute("SELECT max(minute_ms) FROM status_minutes").fetchone()
        )
        return None if row[0] is None else int(row[0])

    _INCIDENT_COLUMNS: ClassVar[str] = (
        "id, title, status, impact, components, started_ms, resolved_ms, automatic, key,"
        " postmortem, notice_id"
    )

    @staticmethod
    def _incidents(
        c: sqlite3.Connection, where: str, args: tuple[Any, ...]
    ) -> list[IncidentRecord]:
        rows = c.execute(
            f"SELECT {SqliteStore._INCIDENT_COLUMNS} FROM incidents {where}", args
        ).fetchall()
        found = []
        for row in rows:
            updates = tuple(
                IncidentUpdateRecord(*u)
                for u in c.execute(
                    "SELECT at_ms, status, text, author FROM incident_updates"
                    " WHERE incident = ? ORDER BY n",
                    (row[0],),
                ).fetchall()
            )
            found.append(
                IncidentRecord(
                    id=row[0], title=row[1], status=row[2], impact=row[3],
                    components=tuple(json.loads(row[4])), started_ms=row[5],
                    resolved_ms=row[6], automatic=bool(row[7]), key=row[8],
                    postmortem=row[9], notice_id=row[10], updates=updates,
                )
            )  # fmt: skip
        return found

    @staticmethod
    def _append_update(c: sqlite3.Connection, incident_id: int, u: IncidentUpdateRecord) -> None:
        c.execute(
            "INSERT INTO incident_updates (incident, n, at_ms, status, text, author)"
            " SELECT ?, coalesce(max(n), 0) + 1, ?, ?, ?, ? FROM incident_updates"
            " WHERE incident = ?",
            (incident_id, u.at_ms, u.status, u.text, u.by, incident_id),
        )

    async def create_incident(
        self,
        title: str,
        impact: str,
        components: Sequence[str],
        first: IncidentUpdateRecord,
        *,
        automatic: bool = False,
        key: str | None = None,
    ) -> IncidentRecord:
        def run(c: sqlite3.Connection) -> IncidentRecord:
            cursor = c.execute(
                "INSERT INTO incidents (title, status, impact, components, started_ms,"
                " automatic, key) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (title, first.status, impact, json.dumps(list(components)), first.at_ms,
                 int(automatic), key),
            )  # fmt: skip
            incident_id = int(cursor.lastrowid or 0)
            self._append_update(c, incident_id, first)
            return self._incidents(c, "WHERE id = ?", (incident_id,))[0]

        return await self._write(run)

    async def update_incident(
        self,
        incident_id: int,
        update: IncidentUpdateRecord,
        *,
        impact: str | None = None,
        components: Sequence[str] | None = None,
        title: str | None = None,
    ) -> IncidentRecord | None:
        def run(c: sqlite3.Connection) -> IncidentRecord | None:
            changed = c.execute(
                "UPDATE incidents SET status = ?, resolved_ms = ?, impact = coalesce(?, impact),"
                " components = coalesce(?, components), title = coalesce(?, title)"
                " WHERE id = ? AND resolved_ms IS NULL",
                (
                    update.status,
                    update.at_ms if update.status == "resolved" else None,
                    impact,
                    None if components is None else json.dumps(list(components)),
                    title,
                    incident_id,
                ),
            ).rowcount
            if changed != 1:
                return None
            self._append_update(c, incident_id, update)
            return self._incidents(c, "WHERE id = ?", (incident_id,))[0]

        return await self._write(run)

    async def set_incident_text(
        self,
        incident_id: int,
        *,
        postmortem: str | None = None,
        notice_id: str | None = None,
    ) -> IncidentRecord | None:
        def run(c: sqlite3.Connection) -> IncidentRecord | None:
            c.execute(
                "UPDATE incidents SET postmortem = coalesce(?, postmortem),"
                " notice_id = coalesce(?, notice_id) WHERE id = ?",
                (postmortem, notice_id, incident_id),
            )
            found = self._incidents(c, "WHERE id = ?", (incident_id,))
            return found[0] if found else None

        return await self._write(run)

    async def get_incident(self, incident_id: int) -> IncidentRecord | None:
        found = await self._read(lambda c: self._incidents(c, "WHERE id = ?", (incident_id,)))
        return found[0] if found else None

    async def open_incidents(self) -> list[IncidentRecord]:
        return await self._read(
            lambda c: self._incidents(c, "WHERE resolved_ms IS NULL ORDER BY id", ())
        )

    async def resolved_incidents(self, since_ms: int, limit: int) -> list[IncidentRecord]:
        return await self._read(
            lambda c: self._incidents(
                c, "WHERE resolved_ms >= ? ORDER BY resolved_ms DESC, id DESC LIMIT ?",
                (since_ms, limit),
            )
        )  # fmt: skip

    async def create_maintenance(
        self,
        title: str,
        starts_ms: int,
        ends_ms: int,
        components: Sequence[str],
        text: str,
        now_ms: int,
    ) -> MaintenanceRecord:
        def run(c: sqlite3.Connection) -> MaintenanceRecord:
            cursor = c.execute(
                "INSERT INTO maintenance (title, starts_ms, ends_ms, components, text,"
                " created_ms) VALUES (?, ?, ?, ?, ?, ?)",
                (title, starts_ms, ends_ms, json.dumps(list(components)), text, now_ms),
            )
            return MaintenanceRecord(
                int(cursor.lastrowid or 0), title, starts_ms, ends_ms, tuple(components), text,
                now_ms,
            )  # fmt: skip

        return await self._write(run)

    async def maintenance_windows(self, ends_after_ms: int) -> list[MaintenanceRecord]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT id, title, starts_ms, ends_ms, components, text, created_ms"
                " FROM maintenance WHERE ends_ms > ? ORDER BY starts_ms, id",
                (ends_after_ms,),
            ).fetchall()
        )
        return [
            MaintenanceRecord(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), r[5], r[6])
            for r in rows
        ]

    async def create_webhook(self, url: str, secret: str, now_ms: int) -> WebhookRecord:
        def run(c: sqlite3.Connection) -> WebhookRecord:
            cursor = c.execute(
                "INSERT INTO webhooks (url, secret, created_ms) VALUES (?, ?, ?)",
                (url, secret, now_ms),
            )
            return WebhookRecord(int(cursor.lastrowid or 0), url, secret, now_ms)

        return await self._write(run)

    async def webhooks(self) -> list[WebhookRecord]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT id, url, secret, created_ms FROM webhooks ORDER BY id"
            ).fetchall()
        )
        return [WebhookRecord(*row) for row in rows]

    async def delete_webhook(self, webhook_id: int) -> bool:
        return await self._write(
            lambda c: c.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,)).rowcount == 1
        )

    async def log_webhook_delivery(self, entry: WebhookDeliveryRecord) -> None:
        await self._write(
            lambda c: c.execute(
                "INSERT INTO webhook_deliveries (webhook_id, event, attempt, status_code, error,"
                " at_ms, delivered) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (entry.webhook_id, entry.event, entry.attempt, entry.status_code, entry.error,
                 entry.at_ms, int(entry.delivered)),
            )
        )  # fmt: skip

    async def webhook_deliveries(self, limit: int) -> list[WebhookDeliveryRecord]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT webhook_id, event, attempt, status_code, error, at_ms, delivered"
                " FROM webhook_deliveries ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        )
        return [
            WebhookDeliveryRecord(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]))
            for r in rows[::-1]
        ]

    async def add_report(self, minute_ms: int, kind: str) -> None:
        await self._write(
            lambda c: c.execute(
                "INSERT INTO status_reports (minute_ms, kind, count) VALUES (?, ?, 1)"
                " ON CONFLICT (minute_ms, kind) DO UPDATE SET count = count + 1",
                (minute_ms, kind),
            )
        )

    async def report_counts(self, since_ms: int) -> list[tuple[int, str, int]]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT minute_ms, kind, count FROM status_reports WHERE minute_ms >= ?",
                (since_ms,),
            ).fetchall()
        )
        return [(int(m), str(k), int(n)) for m, k, n in rows]

    async def purge_status(self, before_ms: int) -> int:
        def run(c: sqlite3.Connection) -> int:
            total = 0
            for table, column in (
                ("status_probes", "minute_ms"),
                ("status_minutes", "minute_ms"),
                ("status_reports", "minute_ms"),
                ("webhook_deliveries", "at_ms"),
            ):
                total += c.execute(f"DELETE FROM {table} WHERE {column} < ?", (before_ms,)).rowcount
            return total

        return await self._write(run)

    # ------------------------------------------------------------ abuse

    async def add_abuse_report(self, report: AbuseReportRecord) -> int:
        def run(c: sqlite3.Connection) -> int:
            cursor = c.execute(
                "INSERT INTO abuse_reports (reporter, reporter_device, reported, reason,"
                " messages, created_ms) VALUES (?, ?, ?, ?, ?, ?)",
                (report.reporter, report.reporter_device, report.reported, report.reason,
                 report.messages, report.created_ms),
            )  # fmt: skip
            return int(cursor.lastrowid or 0)

        return await self._write(run)

    async def abuse_reports(self, limit: int) -> list[AbuseReportRecord]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT id, reporter, reporter_device, reported, reason, messages, created_ms"
                " FROM abuse_reports ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        )
        return [AbuseReportRecord(*row) for row in rows[::-1]]

    async def suspend_user(self, handle: str, reason: str, now_ms: int) -> bool:
        def run(c: sqlite3.Connection) -> bool:
            if c.execute("SELECT 1 FROM users WHERE handle = ?", (handle,)).fetchone() is None:
                return False
            c.execute(
                "INSERT INTO suspensions (handle, reason, at_ms) VALUES (?, ?, ?)"
                " ON CONFLICT (handle) DO UPDATE SET reason = excluded.reason,"
                " at_ms = excluded.at_ms",
                (handle, reason, now_ms),
            )
            return True

        return await self._write(run)

    async def unsuspend_user(self, handle: str) -> bool:
        def run(c: sqlite3.Connection) -> bool:
            return c.execute("DELETE FROM suspensions WHERE handle = ?", (handle,)).rowcount == 1

        return await self._write(run)

    async def suspensions(self) -> list[SuspensionRecord]:
        rows = await self._read(
            lambda c: c.execute("SELECT handle, reason, at_ms FROM suspensions").fetchall()
        )
        return [SuspensionRecord(*row) for row in rows]
