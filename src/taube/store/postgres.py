"""``PostgresStore``: the cluster store. Several nodes share one PostgreSQL database.

How the ``Store`` invariants hold when many nodes write at once:

- **Seqs.** A device's next inbox seq lives in its ``devices`` row, read and moved
  on under that row's lock (``SELECT ... FOR UPDATE``) inside the writing
  transaction. The lock serialises every writer of that device, on every node, until
  it commits, so seqs are gap-free and become visible in order. No node keeps a seq
  in memory between transactions.
- **No deadlocks between writers.** Every transaction that appends to inboxes takes
  all its device locks in ONE statement, in (handle, id) order, after its
  idempotency inserts (which are in (sender, id) order) and before anything else;
  other writes lock one row. Acks work out beforehand, without locks, whose devices
  their receipts go to. (Should PostgreSQL still break a cycle, the transaction is
  retried.)
- **Group commit, ordered per device.** Writes that append to inboxes (message
  commits, acks with their receipts, appended receipts and group events) queue in
  one of ``writers`` lanes, chosen by device. Each lane has one task that drains its
  queue into one transaction of a handful of statements however many writes it
  holds (seqs are worked out in Python between them), so writes submitted one after
  another by one device take effect in that order. If a batch fails for a reason
  other than the database being unreachable, its writes are redone one per
  transaction, so that a bad write fails alone. Two lanes measured fastest on two
  cores: while one holds its device rows (they are hot: every batch touches most
  active devices), the other runs the statements that need no device lock (the
  idempotency insert, the ack preview); a third only waits for the same rows.
  Other writes are short transactions on the pool.
- **Idempotency** on (sender, id): ``INSERT ... ON CONFLICT DO NOTHING RETURNING``;
  a second commit (on any node, even concurrently) appends nothing.
- **Unreachable is one exception.** Anything that means "the database cannot answer
  now" (refused, reset, timed out, shutting down, too many connections, a read-only
  standby during failover) is raised as ``StoreUnavailable``. Connect and statement
  timeouts are short, so a caller never hangs. The pool replaces broken connections
  on the next acquire, so the store recovers by itself when PostgreSQL is back.
- **Schema.** Migrations (store/migrations/postgres/NNNN_*.sql) are applied by
  ``open()`` (or ``upgrade()``) in one transaction holding an advisory lock, so
  nodes that start together migrate once; applied versions are rows of
  ``schema_version``; a newer schema than this code knows raises ``SchemaTooNew``.
  The table layout and its Citus distribution columns are described in 0001.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
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
    PrekeyRecord,
    ProbeMinuteRecord,
    SchemaTooNew,
    SendResult,
    SignedPrekeyRecord,
    Store,
    StoreUnavailable,
    SuspensionRecord,
    TooManyPrekeys,
    TotpRecord,
    UserRecord,
    WebhookDeliveryRecord,
    WebhookRecord,
)
from taube.store.migrations import shipped
from taube.store.rows import (
    KIND_MESSAGE,
    delivered_receipts,
    delivery_payload,
    encode_extra,
    extra_kind,
    inbox_item,
    shared_payload,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
Conn = Any
"""An asyncpg connection (asyncpg ships no type information)."""

MAX_BATCH = 2048
"""Most writes in one transaction of one lane..."""
MAX_BATCH_ROWS = 20_000
"""...and about the most inbox rows (big groups fan out)."""
ROLLBACK_RETRIES = 3
"""Attempts for a transaction that PostgreSQL aborted to break a deadlock."""
MIGRATION_TIMEOUT_S = 3600.0

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# Errors that mean "PostgreSQL cannot answer now", not "this request is wrong".
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable
    TimeoutError,  # connect, acquire or statement timeout (asyncio.TimeoutError too)
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, connection lost mid-query
    asyncpg.exceptions.CannotConnectNowError,  # 57P03: starting up or shutting down
    asyncpg.exceptions.AdminShutdownError,  # 57P01
    asyncpg.exceptions.CrashShutdownError,  # 57P02
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections, disk full
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # 25006: a standby, mid-failover
    asyncpg.exceptions.InvalidCatalogNameError,  # 3D000: no such database (yet)
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,  # 28000: no such role
    asyncpg.exceptions.InvalidPasswordError,  # 28P01
)


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, _UNAVAILABLE):
        return True
    # asyncpg says "connection is closed" / "pool is closing" as an InterfaceError.
    return isinstance(exc, asyncpg.InterfaceError) and "clos" in str(exc)


def _affected(status: str) -> int:
    """Rows a statement touched, from asyncpg's command tag (``DELETE 3``, ``UPDATE 1``)."""
    return int(status.rsplit(" ", 1)[-1])


def _unavailable(exc: BaseException) -> StoreUnavailable:
    detail = str(exc) or type(exc).__name__
    error = StoreUnavailable(f"PostgreSQL unavailable: {detail}")
    error.__cause__ = exc
    return error


async def _keep_session(conn: Conn) -> None:
    """The pool's reset on release. asyncpg still rolls back an open transaction; its
    default reset also clears session state (RESET ALL, UNLISTEN, advisory locks),
    which this store never sets, at the price of one round trip per use."""


migrations = functools.partial(shipped, "postgres")
"""(version, SQL) for every migration shipped in the package, in order. A module
variable rather than a function, so that tests can replace it even where this module
is compiled (compiled code calls its own functions directly)."""


# The hot statements take their rows as one JSON array (``_MessageRow``, ``_InboxRow``)
# rather than a parameter per column: asyncpg encodes an array element by element with
# abstract-base-class checks (~5 µs per inbox row measured here), msgspec writes the
# whole batch in a fraction of that and PostgreSQL reads it as fast as the arrays.
# Bytes travel as base64 (msgspec's encoding of bytes).
INSERT_MESSAGES = """
INSERT INTO messages (sender, id, sender_device, target, sent_at_ms, payload)
SELECT r.s, r.i, r.d, r.t, r.at, decode(r.p, 'base64')
FROM json_to_recordset($1::json) AS r(s text, i text, d int, t text, at bigint, p text)
ON CONFLICT (sender, id) DO NOTHING
RETURNING sender, id
"""

SENT_AT_MANY = """
SELECT m.sender, m.id, m.sent_at_ms FROM messages m
JOIN unnest($1::text[], $2::text[]) AS k(sender, id) ON m.sender = k.sender AND m.id = k.id
"""

# Per ack: the seq it may cover (clamped to the device's last committed seq) and the
# senders of the messages it covers. One statement, so one snapshot: every row up to
# that seq is committed and seen here; later, rows can only disappear.
ACK_PREVIEW = """
SELECT a.h, a.d, LEAST(a.u, d.next_seq - 1), s.sender,
    EXISTS (SELECT 1 FROM blocks b WHERE b.blocker = a.h AND b.blocked = s.sender)
FROM unnest($1::text[], $2::int[], $3::bigint[]) AS a(h, d, u)
JOIN devices d ON d.handle = a.h AND d.id = a.d AND d.revoked_ms IS NULL
LEFT JOIN LATERAL (
    SELECT DISTINCT i.sender FROM inbox i
    WHERE i.handle = a.h AND i.device = a.d AND i.seq <= LEAST(a.u, d.next_seq - 1)
    AND i.kind = 1 AND i.sender <> a.h
) s ON true
"""

# Locks the listed devices and every active device of the listed users, in (handle, id)
# order (LockRows runs after the sort), and reads their next seq.
LOCK_DEVICES = """
SELECT handle, id, next_seq, revoked_ms IS NULL FROM devices
WHERE (handle, id) IN (SELECT * FROM unnest($1::text[], $2::int[]))
   OR (handle = ANY($3::text[]) AND revoked_ms IS NULL)
ORDER BY handle, id
FOR UPDATE
"""

DELETE_ACKED = """
DELETE FROM inbox i USING unnest($1::text[], $2::int[], $3::bigint[]) AS a(h, d, u)
WHERE i.handle = a.h AND i.device = a.d AND i.seq <= a.u
RETURNING i.handle, i.device, i.seq, i.kind, i.sender, i.msg_id, i.conversation
"""

WRITE_INBOX = """
WITH moved AS (
    UPDATE devices d SET next_seq = m.n
    FROM unnest($2::text[], $3::int[], $4::bigint[]) AS m(h, i, n)
    WHERE d.handle = m.h AND d.id = m.i
)
INSERT INTO inbox (handle, device, seq, kind, sender, msg_id, conversation,
                   sender_device, sent_at_ms, payload, data)
SELECT r.h, r.d, r.q, r.k, r.s, r.i, r.c, r.sd, r.at, decode(r.p, 'base64'), decode(r.x, 'base64')
FROM json_to_recordset($1::json) AS r(h text, d int, q bigint, k smallint, s text, i text,
                                      c text, sd int, at bigint, p text, x text)
"""

GROUPS_BY_ID = """
SELECT g.id, g.name, g.created_ms, g.created_by,
    ARRAY(SELECT m.handle FROM group_members m WHERE m.group_id = g.id ORDER BY m.pos),
    ARRAY(SELECT m.admin FROM group_members m WHERE m.group_id = g.id ORDER BY m.pos)
FROM groups g WHERE g.id = ANY($1::text[]) ORDER BY g.id
"""

DEVICE_COLUMNS = "handle, id, name, token_hash, created_ms, last_active_ms, revoked_ms"

# The signed prekeys of a user's active devices (all, or the one in $2).
BUNDLE_KEYS = """
SELECT k.device, k.identity_key, k.spk_id, k.spk, k.spk_signature
FROM device_keys k JOIN devices d ON d.handle = k.handle AND d.id = k.device
WHERE k.handle = $1 AND d.revoked_ms IS NULL AND ($2::int IS NULL OR k.device = $2)
ORDER BY k.device
"""

# Takes (deletes) the lowest-id one-time prekey of each listed device. SKIP LOCKED:
# a prekey another fetch has just taken (locked, not yet committed) is passed over for
# the next one, so concurrent fetches on any node never get the same prekey.
TAKE_PREKEYS = """
DELETE FROM one_time_prekeys p USING (
    SELECT o.device, o.id FROM unnest($2::int[]) AS t(device)
    CROSS JOIN LATERAL (
        SELECT device, id FROM one_time_prekeys
        WHERE handle = $1 AND device = t.device
        ORDER BY id LIMIT 1
        FOR UPDATE SKIP LOCKED
    ) o
) taken
WHERE p.handle = $1 AND p.device = taken.device AND p.id = taken.id
RETURNING p.device, p.id, p.key
"""

PREKEY_COUNTS = """
SELECT device, COUNT(*) FROM one_time_prekeys
WHERE handle = $1 AND device = ANY($2::int[]) GROUP BY device
"""


class _Ack(msgspec.Struct, frozen=True):
    user: str
    device: int
    upto_seq: int
    now_ms: int


@dataclass(frozen=True, slots=True)
class _Append:
    items: list[tuple[DeviceKey, Receipt | GroupEvent]]


_Op = NewMessage | _Ack | _Append
"""A write that goes through group commit (it appends to inboxes)."""


def _rows(op: _Op) -> int:
    """About how many inbox rows a write appends."""
    if isinstance(op, NewMessage):
        return len(op.deliveries)
    if isinstance(op, _Append):
        return len(op.items)
    return 1


@dataclass(slots=True)
class _Lane:
    """One group-commit writer: a queue of writes and the task draining it."""

    queue: list[tuple[_Op, asyncio.Future[Any]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class _MessageRow(msgspec.Struct, omit_defaults=True):
    """A ``messages`` row as INSERT_MESSAGES reads it (short keys: JSON per row)."""

    s: str
    i: str
    d: int
    t: str
    at: int
    p: bytes | None = None


class _InboxRow(msgspec.Struct, omit_defaults=True):
    """An ``inbox`` row as WRITE_INBOX reads it; absent keys are NULL."""

    h: str
    d: int
    q: int
    k: int
    s: str | None = None
    i: str | None = None
    c: str | None = None
    sd: int | None = None
    at: int | None = None
    p: bytes | None = None
    x: bytes | None = None


_rows_json = msgspec.json.Encoder()


def _json_rows(rows: Sequence[msgspec.Struct]) -> str:
    return _rows_json.encode(rows).decode()  # asyncpg's json codec takes text


class PostgresStore(Store):
    """The Store on PostgreSQL (asyncpg).

    ``dsn`` is a ``postgresql://`` URL. ``schema`` (optional) puts every table in that
    schema (created if missing), so tests and several deployments can share a database.
    Timeouts are short on purpose: an unreachable database must answer the caller with
    ``StoreUnavailable`` within seconds, never hang a send.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        writers: int = 2,
        min_connections: int = 1,
        max_connections: int = 16,
        connect_timeout_s: float = 2.0,
        statement_timeout_s: float = 10.0,
        application_name: str = "taube",
    ) -> None:
        if schema is not None and not _SCHEMA_RE.fullmatch(schema):
            raise ValueError(f"schema name {schema!r}: use lower-case letters, digits and _")
        if not 1 <= writers < max_connections:
            raise ValueError("need 1 <= writers < max_connections (readers need connections too)")
        self._dsn = dsn
        self._schema = schema
        self._min_connections = min(min_connections, max_connections)
        self._max_connections = max_connections
        self._connect_timeout_s = connect_timeout_s
        self._statement_timeout_s = statement_timeout_s
        self._application_name = application_name
        self._pool: Any = None
        self._closing = False
        self._lanes = [_Lane() for _ in range(writers)]

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Connect, then create or migrate the schema (see ``upgrade``)."""
        settings = {
            "application_name": self._application_name,
            # A node that stalls (or is cut off) mid-transaction must not hold device
            # row locks, and with them other nodes' sends, for longer than this.
            "idle_in_transaction_session_timeout": f"{int(self._statement_timeout_s * 1000)}",
        }
        if self._schema is not None:
            settings["search_path"] = self._schema
        try:
            self._pool = await asyncio.wait_for(
                asyncpg.create_pool(
                    self._dsn,
                    min_size=self._min_connections,
                    max_size=self._max_connections,
                    timeout=self._connect_timeout_s,
                    command_timeout=self._statement_timeout_s,
                    server_settings=settings,
                    reset=_keep_session,
                ),
                self._connect_timeout_s * 2,
            )
        except Exception as exc:
            if _is_unavailable(exc):
                raise _unavailable(exc) from exc
            raise
        try:
            await self.upgrade()
        except BaseException:
            self._pool.terminate()
            self._pool = None
            raise

    async def upgrade(self) -> tuple[int, int]:
        """Apply every shipped migration the database lacks, in one transaction under
        an advisory lock (nodes starting together wait for each other). Returns the
        schema version (before, after). Raises SchemaTooNew for a newer database."""
        known = migrations()
        lock_key = zlib.crc32(f"taube.migrate:{self._schema or ''}".encode())
        async with self._connection() as conn, conn.transaction():
            # Another node may be migrating: wait for it as long as a migration may take.
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1)", lock_key, timeout=MIGRATION_TIMEOUT_S
            )
            if self._schema is not None:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " version integer PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            before = int(
                await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            )
            newest = known[-1][0] if known else 0
            if before > newest:
                raise SchemaTooNew(
                    f"the database has schema version {before}; this Taube knows up to {newest}"
                )
            for version, sql in known:
                if version > before:
                    await conn.execute(sql, timeout=MIGRATION_TIMEOUT_S)
                    await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
                    log.info("postgres schema migrated", extra={"version": version})
        return before, max(before, newest)

    async def close(self) -> None:
        """Let queued commits finish, then close the pool."""
        self._closing = True
        for lane in self._lanes:
            if lane.task is not None:
                await asyncio.shield(lane.task)
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self._statement_timeout_s)
            except Exception:
                pool.terminate()

    async def ping(self) -> None:
        """SELECT 1 within the connect timeout; raises StoreUnavailable otherwise."""
        try:
            await asyncio.wait_for(self._fetchval("SELECT 1"), self._connect_timeout_s)
        except TimeoutError as exc:
            raise _unavailable(exc) from exc

    # ------------------------------------------------------------ runners

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        """A pooled connection; unreachable-database errors become StoreUnavailable."""
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("store is not open")
        try:
            # Waiting for a free connection may take longer than connecting: right after
            # an outage every client of the node comes back at once, and failing them
            # after the connect timeout only sends them into another round of backoff.
            # A database that does not answer still fails within the connect timeout
            # (the pool's connect attempts have their own).
            async with pool.acquire(timeout=self._statement_timeout_s) as conn:
                yield conn
        except StoreUnavailable:
            raise
        except Exception as exc:
            if _is_unavailable(exc):
                raise _unavailable(exc) from exc
            raise

    async def _tx(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``fn`` in a transaction, again if PostgreSQL aborted it to break a
        deadlock (``fn`` must therefore only touch the database)."""
        for attempt in range(ROLLBACK_RETRIES):
            try:
                async with self._connection() as conn, conn.transaction():
                    return await fn(conn)
            except asyncpg.TransactionRollbackError:
                if attempt == ROLLBACK_RETRIES - 1:
                    raise
                log.warning("postgres transaction rolled back by the server; retrying")
        raise AssertionError("unreachable")

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        async with self._connection() as conn:
            return list(await conn.fetch(sql, *args))

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        async with self._connection() as conn:
            return await conn.fetchrow(sql, *args)

    async def _fetchval(self, sql: str, *args: Any) -> Any:
        async with self._connection() as conn:
            return await conn.fetchval(sql, *args)

    async def _execute(self, sql: str, *args: Any) -> str:
        async with self._connection() as conn:
            return str(await conn.execute(sql, *args))

    # ------------------------------------------------------------ accounts

    async def create_user(self, user: UserRecord) -> None:
        try:
            await self._execute(
                "INSERT INTO users (handle, password_hash, created_ms, hide_presence)"
                " VALUES ($1, $2, $3, $4)",
                user.handle,
                user.password_hash,
                user.created_ms,
                user.hide_presence,
            )
        except asyncpg.UniqueViolationError as exc:
            raise HandleTaken(user.handle) from exc

    async def get_user(self, handle: str) -> UserRecord | None:
        row = await self._fetchrow(
            "SELECT handle, password_hash, created_ms, hide_presence, last_seen_ms"
            " FROM users WHERE handle = $1",
            handle,
        )
        if row is None:
            return None
        return UserRecord(row[0], row[1], row[2], row[3], row[4])

    async def set_hide_presence(self, handle: str, hide: bool) -> None:
        await self._execute("UPDATE users SET hide_presence = $2 WHERE handle = $1", handle, hide)

    async def set_last_seen(self, handle: str, at_ms: int) -> None:
        await self._execute("UPDATE users SET last_seen_ms = $2 WHERE handle = $1", handle, at_ms)

    async def set_password_hash(self, handle: str, password_hash: str) -> None:
        await self._execute(
            "UPDATE users SET password_hash = $2 WHERE handle = $1", handle, password_hash
        )

    # ------------------------------------------------------------ two-step verification

    async def get_totp(self, handle: str) -> TotpRecord | None:
        row = await self._fetchrow(
            "SELECT handle, secret, active, last_step, created_ms FROM totp WHERE handle = $1",
            handle,
        )
        return None if row is None else TotpRecord(row[0], row[1], row[2], row[3], row[4])

    async def put_totp(self, handle: str, secret: str, now_ms: int) -> bool:
        done = await self._execute(
            "INSERT INTO totp (handle, secret, active, last_step, created_ms)"
            " VALUES ($1, $2, false, 0, $3) ON CONFLICT (handle) DO UPDATE"
            " SET secret = excluded.secret, last_step = 0, created_ms = excluded.created_ms"
            " WHERE NOT totp.active",
            handle,
            secret,
            now_ms,
        )
        return not done.endswith(" 0")

    async def use_totp_step(self, handle: str, step: int, *, activate: bool = False) -> bool:
        done = await self._execute(
            "UPDATE totp SET last_step = $2, active = true"
            " WHERE handle = $1 AND last_step < $2 AND (active OR $3)",
            handle,
            step,
            activate,
        )
        return not done.endswith(" 0")

    async def delete_totp(self, handle: str) -> None:
        await self._execute("DELETE FROM totp WHERE handle = $1", handle)

    async def legacy_totp_secrets(self, after: str, limit: int) -> list[tuple[str, str]]:
        rows = await self._fetch(
            "SELECT handle, secret FROM totp WHERE handle > $1 AND strpos(secret, ':') = 0"
            " ORDER BY handle LIMIT $2",
            after,
            limit,
        )
        return [(row[0], row[1]) for row in rows]

    async def replace_totp_secrets(self, changes: Sequence[tuple[str, str, str]]) -> int:
        async def run(c: Conn) -> int:
            changed = 0
            for handle, old, new in changes:
                done = await c.execute(
                    "UPDATE totp SET secret = $3 WHERE handle = $1 AND secret = $2",
                    handle,
                    old,
                    new,
                )
                changed += _affected(done)
            return changed

        return await self._tx(run)

    # ------------------------------------------------------------ devices

    @staticmethod
    def _device(row: Any) -> DeviceRecord:
        return DeviceRecord(row[0], row[1], row[2], bytes(row[3]), row[4], row[5], row[6])

    async def create_device(
        self, user: str, name: str, token_hash: bytes, now_ms: int
    ) -> DeviceRecord:
        async def run(c: Conn) -> DeviceRecord:
            # The user's row lock serialises id choice between nodes.
            await c.execute("SELECT 1 FROM users WHERE handle = $1 FOR UPDATE", user)
            next_id = int(
                await c.fetchval(
                    "SELECT COALESCE(MAX(id), 0) + 1 FROM devices WHERE handle = $1", user
                )
            )
            await c.execute(
                "INSERT INTO devices (handle, id, name, token_hash, created_ms, last_active_ms)"
                " VALUES ($1, $2, $3, $4, $5, $5)",
                user,
                next_id,
                name,
                token_hash,
                now_ms,
            )
            await c.execute(
                "INSERT INTO device_tokens (token_hash, handle, device) VALUES ($1, $2, $3)",
                token_hash,
                user,
                next_id,
            )
            return DeviceRecord(user, next_id, name, token_hash, now_ms, now_ms)

        return await self._tx(run)

    async def device_by_token(self, token_hash: bytes) -> DeviceRecord | None:
        # Two single-shard lookups: tokens are distributed by token, devices by user.
        async with self._connection() as c:
            ref = await c.fetchrow(
                "SELECT handle, device FROM device_tokens WHERE token_hash = $1", token_hash
            )
            if ref is None:
                return None
            row = await c.fetchrow(
                f"SELECT {DEVICE_COLUMNS} FROM devices WHERE handle = $1 AND id = $2",
                ref[0],
                ref[1],
            )
        return None if row is None else self._device(row)

    async def list_devices(self, user: str) -> list[DeviceRecord]:
        rows = await self._fetch(
            f"SELECT {DEVICE_COLUMNS} FROM devices WHERE handle = $1 ORDER BY id", user
        )
        return [self._device(row) for row in rows]

    async def active_devices(self, users: Sequence[str]) -> dict[str, list[int]]:
        wanted = list(dict.fromkeys(users))
        if not wanted:
            return {}
        rows = await self._fetch(
            "SELECT u.handle, d.id FROM users u"
            " LEFT JOIN devices d ON d.handle = u.handle AND d.revoked_ms IS NULL"
            " WHERE u.handle = ANY($1::text[]) ORDER BY u.handle, d.id",
            wanted,
        )
        found: dict[str, list[int]] = {}
        for handle, device in rows:
            ids = found.setdefault(handle, [])
            if device is not None:
                ids.append(device)
        return found

    async def revoke_device(self, user: str, device: int, now_ms: int) -> bool:
        async def run(c: Conn) -> bool:
            revoked = await c.fetchval(
                "UPDATE devices SET revoked_ms = $3"
                " WHERE handle = $1 AND id = $2 AND revoked_ms IS NULL RETURNING 1",
                user,
                device,
                now_ms,
            )
            if revoked is None:
                return False
            for table in ("inbox", "device_keys", "one_time_prekeys"):
                await c.execute(
                    f"DELETE FROM {table} WHERE handle = $1 AND device = $2", user, device
                )
            return True

        return await self._tx(run)

    async def touch_device(self, user: str, device: int, now_ms: int) -> None:
        await self._execute(
            "UPDATE devices SET last_active_ms = $3 WHERE handle = $1 AND id = $2",
            user,
            device,
            now_ms,
        )

    # ------------------------------------------------------------ groups

    async def create_group(self, group: GroupRecord) -> None:
        handles = list(group.members)
        admins = list(group.members.values())

        async def run(c: Conn) -> None:
            await c.execute(
                "INSERT INTO groups (id, name, created_ms, created_by) VALUES ($1, $2, $3, $4)",
                group.id,
                group.name,
                group.created_ms,
                group.created_by,
            )
            await c.execute(
                "INSERT INTO group_members (group_id, handle, admin, pos)"
                " SELECT $1, h, a, p - 1"
                " FROM unnest($2::text[], $3::boolean[]) WITH ORDINALITY AS m(h, a, p)",
                group.id,
                handles,
                admins,
            )
            await c.execute(
                "INSERT INTO user_groups (handle, group_id) SELECT h, $1 FROM unnest($2::text[]) h",
                group.id,
                handles,
            )

        await self._tx(run)

    @staticmethod
    async def _load_groups(c: Conn, ids: Sequence[str]) -> list[GroupRecord]:
        rows = await c.fetch(GROUPS_BY_ID, list(ids))
        return [
            GroupRecord(row[0], row[1], row[2], row[3], dict(zip(row[4], row[5], strict=True)))
            for row in rows
        ]

    async def get_group(self, group_id: str) -> GroupRecord | None:
        async with self._connection() as c:
            found = await self._load_groups(c, [group_id])
        return found[0] if found else None

    async def groups_of(self, user: str) -> list[GroupRecord]:
        async with self._connection() as c:
            ids = [
                row[0]
                for row in await c.fetch(
                    "SELECT group_id FROM user_groups WHERE handle = $1 ORDER BY group_id", user
                )
            ]
            return await self._load_groups(c, ids) if ids else []

    async def update_group(
        self,
        group_id: str,
        *,
        name: str | None = None,
        upsert_members: dict[str, bool] | None = None,
        remove_members: Sequence[str] = (),
    ) -> GroupRecord | None:
        upserts = upsert_members or {}
        removed = list(remove_members)

        async def run(c: Conn) -> GroupRecord | None:
            # The group's row lock serialises changes (and member positions) between nodes.
            if await c.fetchval("SELECT 1 FROM groups WHERE id = $1 FOR UPDATE", group_id) is None:
                return None
            if name is not None:
                await c.execute("UPDATE groups SET name = $2 WHERE id = $1", group_id, name)
            if upserts:
                await c.execute(
                    "INSERT INTO group_members (group_id, handle, admin, pos)"
                    " SELECT $1, h, a, p - 1 + (SELECT COALESCE(MAX(pos), -1) + 1"
                    "   FROM group_members WHERE group_id = $1)"
                    " FROM unnest($2::text[], $3::boolean[]) WITH ORDINALITY AS m(h, a, p)"
                    " ON CONFLICT (group_id, handle) DO UPDATE SET admin = excluded.admin",
                    group_id,
                    list(upserts),
                    list(upserts.values()),
                )
                await c.execute(
                    "INSERT INTO user_groups (handle, group_id)"
                    " SELECT h, $1 FROM unnest($2::text[]) h ON CONFLICT DO NOTHING",
                    group_id,
                    list(upserts),
                )
            if removed:
                await c.execute(
                    "DELETE FROM group_members WHERE group_id = $1 AND handle = ANY($2::text[])",
                    group_id,
                    removed,
                )
                await c.execute(
                    "DELETE FROM user_groups WHERE handle = ANY($2::text[]) AND group_id = $1",
                    group_id,
                    removed,
                )
            found = await self._load_groups(c, [group_id])
            return found[0]

        return await self._tx(run)

    # ------------------------------------------------------------ group commit

    def _submit(self, op: _Op, lane_key: object) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._pool is None or self._closing:
            future.set_exception(StoreUnavailable("store is closed"))
            return future
        lane = self._lanes[hash(lane_key) % len(self._lanes)]
        lane.queue.append((op, future))
        if lane.task is None:
            lane.task = loop.create_task(self._drain(lane))
        return future

    async def _drain(self, lane: _Lane) -> None:
        try:
            while lane.queue:
                size, rows = 0, 0
                for op, _ in lane.queue[:MAX_BATCH]:
                    size += 1
                    rows += _rows(op)
                    if rows >= MAX_BATCH_ROWS:
                        break
                batch = lane.queue[:size]
                del lane.queue[:size]
                try:
                    outcomes = await self._write_batch([op for op, _ in batch])
                except asyncio.CancelledError:
                    for _, future in batch:
                        future.cancel()
                    raise
                except Exception as exc:
                    outcomes = [exc] * len(batch)
                failed = next((o for o in outcomes if isinstance(o, StoreUnavailable)), None)
                if failed is not None and lane.queue:
                    # The writes queued behind a failed one fail with it: a client
                    # resends its refused messages in order, so none of the later ones
                    # may be stored first (by the database coming back meanwhile).
                    batch += lane.queue
                    outcomes = [*outcomes, *([failed] * len(lane.queue))]
                    lane.queue.clear()
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
                self._settled(len(batch))
        finally:
            for _, future in lane.queue:  # only when cancelled: nobody will write these
                future.cancel()
            lane.queue.clear()
            lane.task = None

    async def _write_batch(self, ops: list[_Op]) -> list[Any]:
        """One transaction for the batch; if it fails for a reason other than the
        database being unreachable, one transaction per write so that a bad write
        fails alone."""
        try:
            return await self._tx(functools.partial(self._run_batch, ops=ops))
        except StoreUnavailable:
            raise
        except Exception as exc:
            if len(ops) == 1:
                return [exc]
            log.warning("postgres batch failed; writing one by one", exc_info=True)
        outcomes: list[Any] = []
        for op in ops:
            try:
                outcomes.extend(await self._tx(functools.partial(self._run_batch, ops=[op])))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    async def _run_batch(self, c: Conn, ops: list[_Op]) -> list[Any]:
        """Apply writes as if one after another, in few statements whatever their number.

        Every device row this batch appends to or acks for is locked in ONE statement, in
        (handle, id) order, after the idempotency inserts and before anything else
        (see the module doc); the seqs are then worked out here and written back with
        the inbox rows. The results are in the order of ``ops``.
        """
        messages = [op for op in ops if isinstance(op, NewMessage)]
        acks = [op for op in ops if isinstance(op, _Ack)]

        # 1. Idempotency: the first of a repeated (sender, id) is the one stored.
        first: dict[tuple[str, str], NewMessage] = {}
        for m in messages:
            first.setdefault((m.sender, m.id), m)
        inserted: set[tuple[str, str]] = set()
        known: dict[tuple[str, str], int] = {}
        if first:
            fresh = sorted(first.values(), key=lambda m: (m.sender, m.id))  # lock order
            rows = await c.fetch(
                INSERT_MESSAGES,
                _json_rows(
                    [
                        _MessageRow(m.sender, m.id, m.sender_device, m.target, m.sent_at_ms,
                                    shared_payload(m))
                        for m in fresh
                    ]
                ),
            )  # fmt: skip
            inserted = {(row[0], row[1]) for row in rows}
            if len(inserted) < len(first):
                old = [key for key in first if key not in inserted]
                found = await c.fetch(SENT_AT_MANY, [k[0] for k in old], [k[1] for k in old])
                known = {(row[0], row[1]): int(row[2]) for row in found}

        # 2. What each ack covers (clamped to what was committed when it is read: those
        #    rows can only shrink from here) and whose devices its receipts go to.
        upto: dict[DeviceKey, int] = {}
        senders: set[str] = set()
        blocks_of: dict[str, set[str]] = defaultdict(set)
        if acks:
            for handle, device, last, sender, blocked in await c.fetch(
                ACK_PREVIEW,
                [a.user for a in acks],
                [a.device for a in acks],
                [a.upto_seq for a in acks],
            ):
                upto[(handle, device)] = max(upto.get((handle, device), 0), int(last))
                if sender is not None:
                    senders.add(sender)
                    if blocked:
                        blocks_of[handle].add(sender)

        # 3. Lock every device row the batch may touch, in one sorted statement.
        wanted: set[DeviceKey] = set(upto)
        for key in inserted:
            wanted.update((d.user, d.device) for d in first[key].deliveries)
        for op in ops:
            if isinstance(op, _Append):
                wanted.update(key for key, _ in op.items)
        next_seq: dict[DeviceKey, int] = {}
        devices_of: dict[str, list[int]] = defaultdict(list)
        if wanted or senders:
            keys = list(wanted)
            for handle, device, seq, active in await c.fetch(
                LOCK_DEVICES, [k[0] for k in keys], [k[1] for k in keys], list(senders)
            ):
                if active:
                    next_seq[(handle, device)] = int(seq)
                    if handle in senders:
                        devices_of[handle].append(device)
        before = dict(next_seq)

        # 4. Delete what the acks cover (only for devices still active).
        acked: dict[DeviceKey, list[tuple[int, int, str, str, str]]] = defaultdict(list)
        live = [(key, last) for key, last in upto.items() if key in next_seq and last > 0]
        if live:
            for handle, device, *row in await c.fetch(
                DELETE_ACKED,
                [k[0] for k, _ in live],
                [k[1] for k, _ in live],
                [last for _, last in live],
            ):
                acked[(handle, device)].append(tuple(row))
            for rows in acked.values():
                rows.sort()

        # 5. Seqs, in the order of the writes.
        inbox: list[_InboxRow] = []
        results: list[Any] = []
        stored: set[tuple[str, str]] = set()
        for op in ops:
            if isinstance(op, NewMessage):
                key = (op.sender, op.id)
                if key not in inserted or key in stored:
                    # Known before (or purged by retention meanwhile).
                    sent_at = known.get(key, first[key].sent_at_ms)
                    results.append(SendResult(sent_at, True, []))
                    continue
                stored.add(key)
                results.append(self._place_message(op, next_seq, inbox))
            elif isinstance(op, _Ack):
                blocked_senders = blocks_of.get(op.user, set())
                results.append(
                    self._place_ack(op, upto, acked, devices_of, blocked_senders, next_seq, inbox)
                )
            else:
                results.append(self._place_extra(op.items, next_seq, inbox))

        # 6. New inbox rows and the devices' next seqs, in one statement.
        moved = [(key, seq) for key, seq in next_seq.items() if seq != before[key]]
        if moved:
            await c.execute(
                WRITE_INBOX,
                _json_rows(inbox),
                [k[0] for k, _ in moved],
                [k[1] for k, _ in moved],
                [seq for _, seq in moved],
            )
        return results

    @staticmethod
    def _place_message(
        m: NewMessage, next_seq: dict[DeviceKey, int], inbox: list[_InboxRow]
    ) -> SendResult:
        appended: list[tuple[DeviceKey, int]] = []
        for d in m.deliveries:
            key = (d.user, d.device)
            seq = next_seq.get(key)
            if seq is None:  # revoked meanwhile: nothing to deliver to
                continue
            next_seq[key] = seq + 1
            inbox.append(_InboxRow(key[0], key[1], seq, KIND_MESSAGE, m.sender, m.id,
                                   d.conversation, m.sender_device, m.sent_at_ms,
                                   delivery_payload(m, d)))  # fmt: skip
            appended.append((key, seq))
        return SendResult(m.sent_at_ms, False, appended)

    @staticmethod
    def _place_extra(
        items: Sequence[tuple[DeviceKey, Receipt | GroupEvent]],
        next_seq: dict[DeviceKey, int],
        inbox: list[_InboxRow],
    ) -> Appended:
        appended: Appended = []
        for key, item in items:
            seq = next_seq.get(key)
            if seq is None:
                continue
            next_seq[key] = seq + 1
            inbox.append(_InboxRow(key[0], key[1], seq, extra_kind(item), x=encode_extra(item)))
            appended.append((key, msgspec.structs.replace(item, seq=seq)))
        return appended

    def _place_ack(
        self,
        ack: _Ack,
        upto: dict[DeviceKey, int],
        acked: dict[DeviceKey, list[tuple[int, int, str, str, str]]],
        devices_of: dict[str, list[int]],
        blocked: set[str],
        next_seq: dict[DeviceKey, int],
        inbox: list[_InboxRow],
    ) -> AckResult:
        key = (ack.user, ack.device)
        if key not in next_seq:  # revoked or unknown
            return AckResult(0, [])
        last = min(ack.upto_seq, upto[key])
        rows = acked.get(key, [])
        taken = 0
        while taken < len(rows) and rows[taken][0] <= last:
            taken += 1
        mine, acked[key] = rows[:taken], rows[taken:]
        receipts: list[tuple[DeviceKey, Receipt | GroupEvent]] = [
            ((sender, t), receipt)
            for sender, receipt in delivered_receipts(
                mine, ack.user, ack.device, ack.now_ms, blocked
            )
            for t in devices_of.get(sender, ())
        ]
        return AckResult(max(last, 0), self._place_extra(receipts, next_seq, inbox))

    # ------------------------------------------------------------ inbox

    async def commit_message(self, message: NewMessage) -> SendResult:
        result: SendResult = await self.submit_message(message)
        return result

    def submit_message(self, message: NewMessage) -> asyncio.Future[SendResult]:
        # One lane per device keeps that device's submissions (and acks) in order.
        return self._submit(message, (message.sender, message.sender_device))

    async def sent_at(self, sender: str, message_id: str) -> int | None:
        value = await self._fetchval(
            "SELECT sent_at_ms FROM messages WHERE sender = $1 AND id = $2", sender, message_id
        )
        return None if value is None else int(value)

    async def purge_messages(self, before_ms: int, limit: int) -> int:
        # The inbox holds only undelivered items, so the anti-join stays small.
        status = await self._execute(
            "DELETE FROM messages WHERE (sender, id) IN ("
            " SELECT m.sender, m.id FROM messages m WHERE m.sent_at_ms < $1"
            " AND NOT EXISTS (SELECT 1 FROM inbox i"
            "   WHERE i.kind = 1 AND i.sender = m.sender AND i.msg_id = m.id)"
            " LIMIT $2)",
            before_ms,
            limit,
        )
        return _affected(status)

    async def append_items(
        self, items: Sequence[tuple[DeviceKey, Receipt | GroupEvent]]
    ) -> Appended:
        if not items:
            return []
        result: Appended = await self._submit(_Append(list(items)), items[0][0])
        return result

    async def read_inbox(
        self, user: str, device: int, after_seq: int, limit: int
    ) -> list[InboxItem]:
        async with self._connection() as c:
            rows = await c.fetch(
                "SELECT seq, kind, sender, msg_id, conversation, sender_device, sent_at_ms,"
                " payload, data FROM inbox"
                " WHERE handle = $1 AND device = $2 AND seq > $3 ORDER BY seq LIMIT $4",
                user,
                device,
                after_seq,
                limit,
            )
            # Shared payloads live once in messages (distributed by sender, not by user).
            shared = {(r[2], r[3]) for r in rows if r[1] == KIND_MESSAGE and r[7] is None}
            payloads: dict[tuple[str, str], bytes | None] = {}
            if shared:
                keys = list(shared)
                for sender, msg_id, payload in await c.fetch(
                    "SELECT m.sender, m.id, m.payload FROM messages m"
                    " JOIN unnest($1::text[], $2::text[]) AS k(sender, id)"
                    " ON m.sender = k.sender AND m.id = k.id",
                    [k[0] for k in keys],
                    [k[1] for k in keys],
                ):
                    payloads[(sender, msg_id)] = payload
        return [
            inbox_item(
                seq, kind, sender, msg_id, conversation, s_dev, sent_at,
                payload if payload is not None else payloads.get((sender, msg_id)), data,
            )
            for seq, kind, sender, msg_id, conversation, s_dev, sent_at, payload, data in rows
        ]  # fmt: skip

    async def ack(self, user: str, device: int, upto_seq: int, now_ms: int) -> AckResult:
        result: AckResult = await self.submit_ack(user, device, upto_seq, now_ms)
        return result

    def submit_ack(
        self, user: str, device: int, upto_seq: int, now_ms: int
    ) -> asyncio.Future[AckResult]:
        return self._submit(_Ack(user, device, upto_seq, now_ms), (user, device))

    async def last_seq(self, user: str, device: int) -> int:
        value = await self._fetchval(
            "SELECT next_seq - 1 FROM devices WHERE handle = $1 AND id = $2", user, device
        )
        return 0 if value is None else int(value)

    # ------------------------------------------------------------ keys

    @staticmethod
    async def _keys_status(c: Conn, user: str, device: int) -> KeysStatusRecord:
        row = await c.fetchrow(
            "SELECT identity_key, spk_id,"
            " (SELECT COUNT(*) FROM one_time_prekeys WHERE handle = $1 AND device = $2)"
            " FROM device_keys WHERE handle = $1 AND device = $2",
            user,
            device,
        )
        if row is None:
            return KeysStatusRecord()
        return KeysStatusRecord(int(row[2]), int(row[1]), bytes(row[0]))

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

        async def run(c: Conn) -> KeysStatusRecord | None:
            # FOR SHARE: a revocation (which deletes the keys) waits for this upload, or
            # this upload sees the device revoked; concurrent uploads both pass here...
            active = await c.fetchval(
                "SELECT 1 FROM devices WHERE handle = $1 AND id = $2 AND revoked_ms IS NULL"
                " FOR SHARE",
                user,
                device,
            )
            if active is None:
                return None
            # ...and queue on the device's keys row (made first if missing), so that the
            # identity check and the prekey cap see every earlier upload.
            if signed_prekey is not None:
                await c.execute(
                    "INSERT INTO device_keys"
                    " (handle, device, identity_key, spk_id, spk, spk_signature)"
                    " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (handle, device) DO NOTHING",
                    user,
                    device,
                    identity_key,
                    signed_prekey.id,
                    signed_prekey.key,
                    signed_prekey.signature,
                )
            stored_identity = await c.fetchval(
                "SELECT identity_key FROM device_keys WHERE handle = $1 AND device = $2 FOR UPDATE",
                user,
                device,
            )
            if stored_identity is None:
                raise KeysIncomplete
            if bytes(stored_identity) != identity_key:
                raise IdentityKeyMismatch  # rolls back the insert above (none was made)
            stored = {
                int(r[0])
                for r in await c.fetch(
                    "SELECT id FROM one_time_prekeys WHERE handle = $1 AND device = $2",
                    user,
                    device,
                )
            }
            new = [p for key_id, p in fresh.items() if key_id not in stored]
            if len(stored) + len(new) > max_one_time:
                raise TooManyPrekeys(len(stored), max_one_time)
            if signed_prekey is not None:
                await c.execute(
                    "UPDATE device_keys SET spk_id = $3, spk = $4, spk_signature = $5"
                    " WHERE handle = $1 AND device = $2",
                    user,
                    device,
                    signed_prekey.id,
                    signed_prekey.key,
                    signed_prekey.signature,
                )
            if new:
                await c.execute(
                    "INSERT INTO one_time_prekeys (handle, device, id, key)"
                    " SELECT $1, $2, i, k FROM unnest($3::bigint[], $4::bytea[]) AS n(i, k)"
                    " ON CONFLICT DO NOTHING",
                    user,
                    device,
                    [p.id for p in new],
                    [p.key for p in new],
                )
            return await self._keys_status(c, user, device)

        return await self._tx(run)

    async def keys_status(self, user: str, device: int) -> KeysStatusRecord:
        async with self._connection() as c:
            return await self._keys_status(c, user, device)

    async def take_bundles(self, user: str, device: int | None = None) -> list[BundleRecord]:
        async def run(c: Conn) -> list[BundleRecord]:
            rows = await c.fetch(BUNDLE_KEYS, user, device)
            if not rows:
                return []
            devices = [int(r[0]) for r in rows]
            taken = {
                int(dev): PrekeyRecord(int(key_id), bytes(key))
                for dev, key_id, key in await c.fetch(TAKE_PREKEYS, user, devices)
            }
            left = {int(dev): int(n) for dev, n in await c.fetch(PREKEY_COUNTS, user, devices)}
            return [
                BundleRecord(
                    device=int(dev),
                    identity_key=bytes(identity),
                    signed_prekey=SignedPrekeyRecord(int(spk_id), bytes(spk), bytes(signature)),
                    one_time_prekey=taken.get(int(dev)),
                    one_time_prekeys_left=left.get(int(dev), 0),
                )
                for dev, identity, spk_id, spk, signature in rows
            ]

        return await self._tx(run)

    async def identity_keys(self, user: str) -> list[tuple[int, bytes]]:
        rows = await self._fetch(
            "SELECT k.device, k.identity_key"
            " FROM device_keys k JOIN devices d ON d.handle = k.handle AND d.id = k.device"
            " WHERE k.handle = $1 AND d.revoked_ms IS NULL ORDER BY k.device",
            user,
        )
        return [(int(dev), bytes(key)) for dev, key in rows]

    # ------------------------------------------------------------ blobs

    @staticmethod
    async def _blob_status(c: Conn, blob_id: str, user: str) -> BlobRecord | None:
        row = await c.fetchrow(
            "SELECT b.size, b.created_ms, a.uploader, a.granted FROM blobs b"
            " JOIN blob_access a ON a.blob_id = b.id AND a.handle = $2"
            " WHERE b.id = $1 AND (a.uploader OR a.granted)",
            blob_id,
            user,
        )
        if row is not None:
            size, created, uploader, granted = row
            return BlobRecord(blob_id, size, size, True, created, uploader, granted)
        row = await c.fetchrow(
            "SELECT size, received, created_ms FROM blob_uploads"
            " WHERE blob_id = $1 AND handle = $2",
            blob_id,
            user,
        )
        if row is None:
            return None
        return BlobRecord(blob_id, row[0], row[1], False, row[2], uploader=True)

    async def start_blob_upload(
        self, blob_id: str, user: str, size: int, now_ms: int
    ) -> BlobRecord:
        async def run(c: Conn) -> BlobRecord:
            # FOR SHARE: a completion or purge of this blob waits for us, or we see it.
            if await c.fetchval("SELECT 1 FROM blobs WHERE id = $1 FOR SHARE", blob_id):
                await c.execute(
                    "INSERT INTO blob_access (blob_id, handle, uploader) VALUES ($1, $2, true)"
                    " ON CONFLICT (blob_id, handle) DO UPDATE SET uploader = true",
                    blob_id,
                    user,
                )
            else:
                await c.execute(
                    "INSERT INTO blob_uploads AS u (blob_id, handle, size, received, created_ms)"
                    " VALUES ($1, $2, $3, 0, $4) ON CONFLICT (blob_id, handle) DO UPDATE SET"
                    " received = CASE WHEN u.size = excluded.size THEN u.received ELSE 0 END,"
                    " size = excluded.size",
                    blob_id,
                    user,
                    size,
                    now_ms,
                )
            found = await self._blob_status(c, blob_id, user)
            assert found is not None
            return found

        return await self._tx(run)

    async def blob_status(self, blob_id: str, user: str) -> BlobRecord | None:
        async with self._connection() as c:
            return await self._blob_status(c, blob_id, user)

    async def advance_blob_upload(
        self, blob_id: str, user: str, from_offset: int, to_offset: int
    ) -> bool:
        status = await self._execute(
            "UPDATE blob_uploads SET received = $4"
            " WHERE blob_id = $1 AND handle = $2 AND received = $3",
            blob_id,
            user,
            from_offset,
            to_offset,
        )
        return status.endswith(" 1")

    async def complete_blob(self, blob_id: str, user: str, size: int, now_ms: int) -> None:
        async def run(c: Conn) -> None:
            await c.execute(
                "INSERT INTO blobs (id, size, created_ms) VALUES ($1, $2, $3)"
                " ON CONFLICT (id) DO NOTHING",
                blob_id,
                size,
                now_ms,
            )
            await c.execute(
                "INSERT INTO blob_access (blob_id, handle, uploader) VALUES ($1, $2, true)"
                " ON CONFLICT (blob_id, handle) DO UPDATE SET uploader = true",
                blob_id,
                user,
            )
            await c.execute(
                "DELETE FROM blob_uploads WHERE blob_id = $1 AND handle = $2", blob_id, user
            )

        await self._tx(run)

    async def discard_blob_upload(self, blob_id: str, user: str) -> None:
        await self._execute(
            "DELETE FROM blob_uploads WHERE blob_id = $1 AND handle = $2", blob_id, user
        )

    async def grant_blob(self, blob_id: str, users: Sequence[str]) -> None:
        await self._execute(
            "INSERT INTO blob_access (blob_id, handle, granted)"
            " SELECT $1, h, true FROM unnest($2::text[]) h"
            " ON CONFLICT (blob_id, handle) DO UPDATE SET granted = true",
            blob_id,
            list(dict.fromkeys(users)),
        )

    async def record_blob_fetch(self, blob_id: str, user: str, now_ms: int) -> bool:
        async def run(c: Conn) -> bool:
            # The blob's row lock serialises the last fetches: exactly one sees none left.
            if await c.fetchval("SELECT 1 FROM blobs WHERE id = $1 FOR UPDATE", blob_id) is None:
                return False
            changed = await c.fetchval(
                "UPDATE blob_access SET fetched_ms = $3 WHERE blob_id = $1 AND handle = $2"
                " AND granted AND fetched_ms IS NULL RETURNING 1",
                blob_id,
                user,
                now_ms,
            )
            if changed is None:
                return False
            waiting = await c.fetchval(
                "SELECT EXISTS (SELECT 1 FROM blob_access"
                " WHERE blob_id = $1 AND granted AND fetched_ms IS NULL)",
                blob_id,
            )
            if waiting:
                return False
            await c.execute("DELETE FROM blob_access WHERE blob_id = $1", blob_id)
            await c.execute("DELETE FROM blobs WHERE id = $1", blob_id)
            return True

        return await self._tx(run)

    async def purge_blobs(self, before_ms: int, limit: int) -> list[str]:
        async def run(c: Conn) -> list[str]:
            ids = [
                r[0]
                for r in await c.fetch(
                    "DELETE FROM blobs WHERE id IN (SELECT id FROM blobs WHERE created_ms < $1"
                    " ORDER BY created_ms LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id",
                    before_ms,
                    limit,
                )
            ]
            if ids:
                await c.execute("DELETE FROM blob_access WHERE blob_id = ANY($1::text[])", ids)
            return ids

        return await self._tx(run)

    async def purge_blob_uploads(self, before_ms: int, limit: int) -> list[tuple[str, str]]:
        rows = await self._fetch(
            "DELETE FROM blob_uploads WHERE (blob_id, handle) IN (SELECT blob_id, handle"
            " FROM blob_uploads WHERE created_ms < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"
            " RETURNING blob_id, handle",
            before_ms,
            limit,
        )
        return [(r[0], r[1]) for r in rows]

    async def blob_exists(self, blob_id: str) -> bool:
        return bool(await self._fetchval("SELECT 1 FROM blobs WHERE id = $1", blob_id))

    # ------------------------------------------------------------ blocks

    async def block(self, blocker: str, blocked: str, now_ms: int) -> None:
        await self._execute(
            "INSERT INTO blocks (blocker, blocked, created_ms) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING",
            blocker,
            blocked,
            now_ms,
        )

    async def unblock(self, blocker: str, blocked: str) -> bool:
        status = await self._execute(
            "DELETE FROM blocks WHERE blocker = $1 AND blocked = $2", blocker, blocked
        )
        return status.endswith(" 1")

    async def blocked_by(self, blocker: str) -> list[str]:
        rows = await self._fetch(
            "SELECT blocked FROM blocks WHERE blocker = $1 ORDER BY blocked", blocker
        )
        return [r[0] for r in rows]

    # ------------------------------------------------------------ device links

    _LINK_COLUMNS = (
        "id, code, secret_hash, device_name, created_ms, expires_ms, handle, device, token,"
        " approved_ms"
    )

    @staticmethod
    def _link(row: Any) -> LinkRecord | None:
        if row is None:
            return None
        return LinkRecord(row[0], row[1], bytes(row[2]), *row[3:])

    async def create_link(self, link: LinkRecord) -> bool:
        status = await self._execute(
            "INSERT INTO links (id, code, secret_hash, device_name, created_ms, expires_ms)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            link.id,
            link.code,
            link.secret_hash,
            link.device_name,
            link.created_ms,
            link.expires_ms,
        )
        return status.endswith(" 1")

    async def get_link(self, link_id: str) -> LinkRecord | None:
        return self._link(
            await self._fetchrow(f"SELECT {self._LINK_COLUMNS} FROM links WHERE id = $1", link_id)
        )

    async def link_by_code(self, code: str) -> LinkRecord | None:
        return self._link(
            await self._fetchrow(f"SELECT {self._LINK_COLUMNS} FROM links WHERE code = $1", code)
        )

    async def approve_link(
        self, code: str, handle: str, device: int, token: str, now_ms: int
    ) -> bool:
        # The row lock makes this a compare-and-set across nodes: a second approval
        # waits, then sees handle set and updates nothing.
        status = await self._execute(
            "UPDATE links SET handle = $2, device = $3, token = $4, approved_ms = $5"
            " WHERE code = $1 AND handle IS NULL AND expires_ms > $5",
            code,
            handle,
            device,
            token,
            now_ms,
        )
        return status.endswith(" 1")

    async def take_link_token(self, link_id: str) -> str | None:
        async def run(c: Conn) -> str | None:
            token = await c.fetchval(
                "SELECT token FROM links WHERE id = $1 AND token IS NOT NULL FOR UPDATE",
                link_id,
            )
            if token is not None:
                await c.execute("UPDATE links SET token = NULL WHERE id = $1", link_id)
            return None if token is None else str(token)

        return await self._tx(run)

    async def purge_links(self, before_ms: int, limit: int) -> int:
        status = await self._execute(
            "DELETE FROM links WHERE id IN (SELECT id FROM links WHERE expires_ms < $1"
            " LIMIT $2 FOR UPDATE SKIP LOCKED)",
            before_ms,
            limit,
        )
        return _affected(status)

    # ------------------------------------------------------------ notices

    async def create_notice(self, notice: NoticeRecord) -> None:
        await self._execute(
            "INSERT INTO notices (id, text, level, at_ms, expires_ms) VALUES ($1, $2, $3, $4, $5)",
            notice.id,
            notice.text,
            notice.level,
            notice.at_ms,
            notice.expires_ms,
        )

    async def current_notices(self, now_ms: int) -> list[NoticeRecord]:
        rows = await self._fetch(
            "SELECT id, text, level, at_ms, expires_ms FROM notices"
            " WHERE expires_ms > $1 ORDER BY at_ms, id",
            now_ms,
        )
        return [NoticeRecord(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def end_notice(self, notice_id: str) -> bool:
        status = await self._execute("DELETE FROM notices WHERE id = $1", notice_id)
        return status.endswith(" 1")

    async def purge_notices(self, before_ms: int) -> int:
        status = await self._execute("DELETE FROM notices WHERE expires_ms < $1", before_ms)
        return _affected(status)

    # ------------------------------------------------------------ status

    async def put_probe_minutes(self, rows: Sequence[ProbeMinuteRecord]) -> None:
        if not rows:
            return
        await self._execute(
            "INSERT INTO status_probes (minute_ms, node, component, count, ok, within, hist,"
            " updated_ms) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[],"
            " $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $8::bigint[])"
            " ON CONFLICT (minute_ms, node, component) DO UPDATE SET count = EXCLUDED.count,"
            " ok = EXCLUDED.ok, within = EXCLUDED.within, hist = EXCLUDED.hist,"
            " updated_ms = EXCLUDED.updated_ms",
            [r.minute_ms for r in rows],
            [r.node for r in rows],
            [r.component for r in rows],
            [r.count for r in rows],
            [r.ok for r in rows],
            [r.within for r in rows],
            [r.hist for r in rows],
            [r.updated_ms for r in rows],
        )

    async def probe_minutes(self, since_ms: int) -> list[ProbeMinuteRecord]:
        rows = await self._fetch(
            "SELECT minute_ms, node, component, count, ok, within, hist, updated_ms"
            " FROM status_probes WHERE minute_ms >= $1",
            since_ms,
        )
        return [ProbeMinuteRecord(*tuple(r)) for r in rows]

    async def probe_nodes(self, since_ms: int) -> dict[str, int]:
        rows = await self._fetch(
            "SELECT node, max(updated_ms) FROM status_probes WHERE minute_ms >= $1 GROUP BY node",
            since_ms,
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def probe_totals(self, component: str, since_ms: int) -> tuple[int, int, int]:
        row = await self._fetchrow(
            "SELECT coalesce(sum(count), 0), coalesce(sum(ok), 0), coalesce(sum(within), 0)"
            " FROM status_probes WHERE component = $1 AND minute_ms >= $2",
            component,
            since_ms,
        )
        return int(row[0]), int(row[1]), int(row[2])

    async def put_status_minutes(self, rows: Sequence[tuple[int, str, str]]) -> None:
        if not rows:
            return
        await self._execute(
            "INSERT INTO status_minutes (minute_ms, component, status)"
            " SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])"
            " ON CONFLICT (minute_ms, component) DO UPDATE SET status = EXCLUDED.status",
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
        )

    async def status_minute_counts(self, since_ms: int) -> list[tuple[str, int, str, int]]:
        rows = await self._fetch(
            "SELECT component, minute_ms - minute_ms % 86400000 AS day, status, count(*)"
            " FROM status_minutes WHERE minute_ms >= $1 GROUP BY component, day, status",
            since_ms,
        )
        return [(str(r[0]), int(r[1]), str(r[2]), int(r[3])) for r in rows]

    async def last_status_minute(self) -> int | None:
        value = await self._fetchval("SELECT max(minute_ms) FROM status_minutes")
        return None if value is None else int(value)

    _INCIDENT_COLUMNS = (
        "id, title, status, impact, components, started_ms, resolved_ms, automatic, key,"
        " postmortem, notice_id"
    )

    @staticmethod
    async def _incidents(c: Conn, where: str, *args: Any) -> list[IncidentRecord]:
        rows = await c.fetch(
            f"SELECT {PostgresStore._INCIDENT_COLUMNS} FROM incidents {where}", *args
        )
        if not rows:
            return []
        updates: dict[int, list[IncidentUpdateRecord]] = defaultdict(list)
        for u in await c.fetch(
            "SELECT incident, at_ms, status, text, author FROM incident_updates"
            " WHERE incident = ANY($1::bigint[]) ORDER BY incident, n",
            [r[0] for r in rows],
        ):
            updates[u[0]].append(IncidentUpdateRecord(u[1], u[2], u[3], u[4]))
        return [
            IncidentRecord(
                id=r[0], title=r[1], status=r[2], impact=r[3],
                components=tuple(json.loads(r[4])), started_ms=r[5], resolved_ms=r[6],
                automatic=bool(r[7]), key=r[8], postmortem=r[9], notice_id=r[10],
                updates=tuple(updates[r[0]]),
            )
            for r in rows
        ]  # fmt: skip

    @staticmethod
    async def _append_update(c: Conn, incident_id: int, u: IncidentUpdateRecord) -> None:
        # The incident's row is locked by the caller: update numbers cannot collide.
        await c.execute(
            "INSERT INTO incident_updates (incident, n, at_ms, status, text, author)"
            " SELECT $1, coalesce(max(n), 0) + 1, $2, $3, $4, $5 FROM incident_updates"
            " WHERE incident = $1",
            incident_id,
            u.at_ms,
            u.status,
            u.text,
            u.by,
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
        async def run(c: Conn) -> IncidentRecord:
            incident_id = int(
                await c.fetchval(
                    "INSERT INTO incidents (title, status, impact, components, started_ms,"
                    " automatic, key) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                    title, first.status, impact, json.dumps(list(components)), first.at_ms,
                    automatic, key,
                )
            )  # fmt: skip
            await self._append_update(c, incident_id, first)
            return (await self._incidents(c, "WHERE id = $1", incident_id))[0]

        return await self._tx(run)

    async def update_incident(
        self,
        incident_id: int,
        update: IncidentUpdateRecord,
        *,
        impact: str | None = None,
        components: Sequence[str] | None = None,
        title: str | None = None,
    ) -> IncidentRecord | None:
        async def run(c: Conn) -> IncidentRecord | None:
            status = await c.execute(
                "UPDATE incidents SET status = $1, resolved_ms = $2,"
                " impact = coalesce($3, impact), components = coalesce($4, components),"
                " title = coalesce($5, title) WHERE id = $6 AND resolved_ms IS NULL",
                update.status,
                update.at_ms if update.status == "resolved" else None,
                impact,
                None if components is None else json.dumps(list(components)),
                title,
                incident_id,
            )
            if not str(status).endswith(" 1"):
                return None
            await self._append_update(c, incident_id, update)
            return (await self._incidents(c, "WHERE id = $1", incident_id))[0]

        return await self._tx(run)

    async def set_incident_text(
        self,
        incident_id: int,
        *,
        postmortem: str | None = None,
        notice_id: str | None = None,
    ) -> IncidentRecord | None:
        async def run(c: Conn) -> IncidentRecord | None:
            await c.execute(
                "UPDATE incidents SET postmortem = coalesce($1, postmortem),"
                " notice_id = coalesce($2, notice_id) WHERE id = $3",
                postmortem,
                notice_id,
                incident_id,
            )
            found = await self._incidents(c, "WHERE id = $1", incident_id)
            return found[0] if found else None

        return await self._tx(run)

    async def get_incident(self, incident_id: int) -> IncidentRecord | None:
        async with self._connection() as c:
            found = await self._incidents(c, "WHERE id = $1", incident_id)
        return found[0] if found else None

    async def open_incidents(self) -> list[IncidentRecord]:
        async with self._connection() as c:
            return await self._incidents(c, "WHERE resolved_ms IS NULL ORDER BY id")

    async def resolved_incidents(self, since_ms: int, limit: int) -> list[IncidentRecord]:
        async with self._connection() as c:
            return await self._incidents(
                c, "WHERE resolved_ms >= $1 ORDER BY resolved_ms DESC, id DESC LIMIT $2",
                since_ms, limit,
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
        maintenance_id = await self._fetchval(
            "INSERT INTO maintenance (title, starts_ms, ends_ms, components, text, created_ms)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            title, starts_ms, ends_ms, json.dumps(list(components)), text, now_ms,
        )  # fmt: skip
        return MaintenanceRecord(
            int(maintenance_id), title, starts_ms, ends_ms, tuple(components), text, now_ms
        )

    async def maintenance_windows(self, ends_after_ms: int) -> list[MaintenanceRecord]:
        rows = await self._fetch(
            "SELECT id, title, starts_ms, ends_ms, components, text, created_ms"
            " FROM maintenance WHERE ends_ms > $1 ORDER BY starts_ms, id",
            ends_after_ms,
        )
        return [
            MaintenanceRecord(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), r[5], r[6])
            for r in rows
        ]

    async def create_webhook(self, url: str, secret: str, now_ms: int) -> WebhookRecord:
        webhook_id = await self._fetchval(
            "INSERT INTO webhooks (url, secret, created_ms) VALUES ($1, $2, $3) RETURNING id",
            url,
            secret,
            now_ms,
        )
        return WebhookRecord(int(webhook_id), url, secret, now_ms)

    async def webhooks(self) -> list[WebhookRecord]:
        rows = await self._fetch("SELECT id, url, secret, created_ms FROM webhooks ORDER BY id")
        return [WebhookRecord(r[0], r[1], r[2], r[3]) for r in rows]

    async def delete_webhook(self, webhook_id: int) -> bool:
        status = await self._execute("DELETE FROM webhooks WHERE id = $1", webhook_id)
        return status.endswith(" 1")

    async def log_webhook_delivery(self, entry: WebhookDeliveryRecord) -> None:
        await self._execute(
            "INSERT INTO webhook_deliveries (webhook_id, event, attempt, status_code, error,"
            " at_ms, delivered) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            entry.webhook_id, entry.event, entry.attempt, entry.status_code, entry.error,
            entry.at_ms, entry.delivered,
        )  # fmt: skip

    async def webhook_deliveries(self, limit: int) -> list[WebhookDeliveryRecord]:
        rows = await self._fetch(
            "SELECT webhook_id, event, attempt, status_code, error, at_ms, delivered"
            " FROM webhook_deliveries ORDER BY id DESC LIMIT $1",
            limit,
        )
        return [
            WebhookDeliveryRecord(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]))
            for r in reversed(rows)
        ]

    async def add_report(self, minute_ms: int, kind: str) -> None:
        await self._execute(
            "INSERT INTO status_reports (minute_ms, kind, count) VALUES ($1, $2, 1)"
            " ON CONFLICT (minute_ms, kind) DO UPDATE SET count = status_reports.count + 1",
            minute_ms,
            kind,
        )

    async def report_counts(self, since_ms: int) -> list[tuple[int, str, int]]:
        rows = await self._fetch(
            "SELECT minute_ms, kind, count FROM status_reports WHERE minute_ms >= $1", since_ms
        )
        return [(int(r[0]), str(r[1]), int(r[2])) for r in rows]

    async def purge_status(self, before_ms: int) -> int:
        total = 0
        for table, column in (
            ("status_probes", "minute_ms"),
            ("status_minutes", "minute_ms"),
            ("status_reports", "minute_ms"),
            ("webhook_deliveries", "at_ms"),
        ):
            status = await self._execute(f"DELETE FROM {table} WHERE {column} < $1", before_ms)
            total += _affected(status)
        return total

    # ------------------------------------------------------------ abuse

    async def add_abuse_report(self, report: AbuseReportRecord) -> int:
        report_id = await self._fetchval(
            "INSERT INTO abuse_reports (reporter, reporter_device, reported, reason, messages,"
            " created_ms) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            report.reporter, report.reporter_device, report.reported, report.reason,
            report.messages, report.created_ms,
        )  # fmt: skip
        return int(report_id)

    async def abuse_reports(self, limit: int) -> list[AbuseReportRecord]:
        rows = await self._fetch(
            "SELECT id, reporter, reporter_device, reported, reason, messages, created_ms"
            " FROM abuse_reports ORDER BY id DESC LIMIT $1",
            limit,
        )
        return [
            AbuseReportRecord(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6]) for r in reversed(rows)
        ]

    async def suspend_user(self, handle: str, reason: str, now_ms: int) -> bool:
        found = await self._fetchval(
            "INSERT INTO suspensions (handle, reason, at_ms)"
            " SELECT handle, $2, $3 FROM users WHERE handle = $1"
            " ON CONFLICT (handle) DO UPDATE SET reason = excluded.reason, at_ms = excluded.at_ms"
            " RETURNING 1",
            handle,
            reason,
            now_ms,
        )
        return found is not None

    async def unsuspend_user(self, handle: str) -> bool:
        status = await self._execute("DELETE FROM suspensions WHERE handle = $1", handle)
        return status.endswith(" 1")

    async def suspensions(self) -> list[SuspensionRecord]:
        rows = await self._fetch("SELECT handle, reason, at_ms FROM suspensions")
        return [SuspensionRecord(r[0], r[1], r[2]) for r in rows]
