"""The ``Store`` interface: everything Taube keeps, and the guarantees it gives.

Invariants every implementation keeps (the contract suite in
tests/integration/test_store_contract.py checks them):

- A device's inbox is an ordered, gap-free sequence: item ``seq`` values start at 1
  and grow by one per appended item, across restarts, even after acked items are
  deleted.
- ``commit_message`` is idempotent on (sender, id): a second commit of the same id
  appends nothing and reports ``duplicate``.
- When a write method returns, its effect is durable (committed).
- ``ack`` deletes the acked items and, in the same transaction, appends a
  ``delivered`` receipt for every acked message to each active device of its sender
  (except when the sender acked a copy of its own message).
- Every hot query touches the rows of one user or one device.
- A device's keys (identity key, signed prekey, one-time prekeys) are served only while
  the device is active; revoking it deletes them in the same transaction. The identity
  key, once stored, never changes; at most ``max_one_time`` one-time prekeys are stored
  per device; ``take_bundles`` hands out each one-time prekey at most once, however
  many callers (on however many nodes) fetch at the same time.
- A blob is complete only once its bytes are stored (the caller stores the file
  first, then calls ``complete_blob``). A user's incomplete upload moves on only by
  compare-and-set of its offset (``advance_blob_upload``). Access to a complete blob
  is per user: its uploaders and the users granted reading; ``record_blob_fetch``
  deletes the blob's metadata in the same transaction as the last granted user's
  fetch, and says so (the caller then deletes the file).
- Blocks are per (blocker, blocked) pair; ``ack`` queues no delivered receipt for a
  1:1 message to a sender the acking user has blocked.
- A device link is approved at most once (``approve_link`` is a compare-and-set on a
  pending, unexpired link), and its token is handed out at most once
  (``take_link_token`` clears it in the statement that reads it).
- Notices are current from their creation until ``expires_ms`` or ``end_notice``.
- Status: a prober's row for (minute, node, component) is replaced whole by
  ``put_probe_minutes``; a minute's verdict per component is written at most once per
  (minute, component) (a rewrite replaces it). Incident ids grow; every update of an
  incident is kept in order. ``add_report`` adds one to a shared per-minute count.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from taube.protocol.frames import GroupEvent, InboxItem, Receipt

# The per-message records live in a module of their own, compiled (records.py); they
# are part of this contract and re-exported from here.
from taube.store.records import AckResult as AckResult
from taube.store.records import Appended as Appended
from taube.store.records import Delivery as Delivery
from taube.store.records import DeviceKey as DeviceKey
from taube.store.records import NewMessage as NewMessage
from taube.store.records import SendResult as SendResult
from taube.store.tickets import Pending as Pending


class HandleTaken(Exception):
    """``create_user`` found the handle registered already."""


class SchemaTooNew(Exception):
    """The database was written by a newer Taube; this version must not touch it."""


class StoreUnavailable(Exception):
    """The store cannot be reached right now (down, restarting, overloaded, timed out).

    Retryable: nothing was committed, or the outcome is unknown and a retry with the
    same message id is harmless (commits are idempotent). Answer the client with a
    retryable error, never a crash or a false "sent".
    """


class IdentityKeyMismatch(Exception):
    """``put_keys`` was given an identity key other than the one stored for the device."""


class KeysIncomplete(Exception):
    """``put_keys`` for a device without keys came without a signed prekey."""


class TooManyPrekeys(Exception):
    """``put_keys`` would store more than ``max_one_time`` one-time prekeys (nothing stored)."""

    def __init__(self, stored: int, limit: int) -> None:
        super().__init__(f"{stored} one-time prekeys stored, limit {limit}")
        self.stored = stored
        self.limit = limit


@dataclass(frozen=True, slots=True)
class UserRecord:
    handle: str
    password_hash: str
    created_ms: int
    hide_presence: bool = False
    last_seen_ms: int | None = None


@dataclass(frozen=True, slots=True)
class TotpRecord:
    """An account's two-step verification secret; ``active`` once a code confirmed it;
    ``last_step``: the newest 30-second step whose code was accepted (no replays)."""

    handle: str
    secret: str
    active: bool
    last_step: int
    created_ms: int


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    user: str
    id: int
    name: str
    token_hash: bytes
    created_ms: int
    last_active_ms: int
    revoked_ms: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_ms is None


@dataclass(frozen=True, slots=True)
class GroupRecord:
    id: str
    name: str
    created_ms: int
    created_by: str
    members: dict[str, bool] = field(default_factory=dict)
    """handle -> is admin, in join order."""


@dataclass(frozen=True, slots=True)
class SignedPrekeyRecord:
    id: int
    key: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class PrekeyRecord:
    id: int
    key: bytes


@dataclass(frozen=True, slots=True)
class KeysStatusRecord:
    """What a device has stored: None/0 before its first upload."""

    one_time_prekeys: int = 0
    signed_prekey_id: int | None = None
    identity_key: bytes | None = None


@dataclass(frozen=True, slots=True)
class BundleRecord:
    """One device's prekey bundle as handed out (its one-time prekey now deleted)."""

    device: int
    identity_key: bytes
    signed_prekey: SignedPrekeyRecord
    one_time_prekey: PrekeyRecord | None
    one_time_prekeys_left: int
    """How many the device still has after this fetch."""


@dataclass(frozen=True, slots=True)
class BlobRecord:
    """A blob as one user sees it: complete (with that user's access), or that user's own
    incomplete upload of it (``received`` bytes of ``size``)."""

    id: str
    size: int
    received: int
    complete: bool
    created_ms: int
    uploader: bool = False
    """The user uploaded it (or announced it once it was complete: deduplication)."""
    granted: bool = False
    """An uploader granted the user reading."""


@dataclass(frozen=True, slots=True)
class LinkRecord:
    """A device link: pending until a device of an account approves ``code`` (then
    ``handle`` and ``device`` are set, and ``token`` until the requester takes it)."""

    id: str
    code: str
    """Normalised: 8 upper-case Crockford base32 characters, no dash."""
    secret_hash: bytes
    device_name: str
    created_ms: int
    expires_ms: int
    handle: str | None = None
    device: int | None = None
    token: str | None = None
    approved_ms: int | None = None


@dataclass(frozen=True, slots=True)
class NoticeRecord:
    id: str
    text: str
    level: str
    at_ms: int
    expires_ms: int


@dataclass(frozen=True, slots=True)
class ProbeMinuteRecord:
    """One prober node's canary results for one component in one minute."""

    minute_ms: int
    node: str
    component: str
    count: int
    ok: int
    within: int
    hist: str
    """Latency histogram as JSON (taube.status.aggregates)."""
    updated_ms: int


@dataclass(frozen=True, slots=True)
class IncidentUpdateRecord:
    at_ms: int
    status: str
    text: str
    by: str


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    id: int
    title: str
    status: str
    impact: str
    components: tuple[str, ...]
    started_ms: int
    resolved_ms: int | None = None
    automatic: bool = False
    key: str | None = None
    """What opened an automatic incident (``canary``, ``reports``); None if manual."""
    postmortem: str | None = None
    notice_id: str | None = None
    """The service notice that currently tells clients about it."""
    updates: tuple[IncidentUpdateRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class MaintenanceRecord:
    id: int
    title: str
    starts_ms: int
    ends_ms: int
    components: tuple[str, ...]
    text: str
    created_ms: int


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    id: int
    url: str
    secret: str
    created_ms: int


@dataclass(frozen=True, slots=True)
class WebhookDeliveryRecord:
    webhook_id: int
    event: str
    attempt: int
    status_code: int | None
    error: str | None
    at_ms: int
    delivered: bool


@dataclass(frozen=True, slots=True)
class AbuseReportRecord:
    """One entry of the operator's review queue (core/abuse.py). ``messages`` is the
    JSON list of the messages the reporter chose to include, as their device sent it."""

    id: int
    reporter: str
    reporter_device: int
    reported: str
    reason: str
    messages: str
    created_ms: int


@dataclass(frozen=True, slots=True)
class SuspensionRecord:
    handle: str
    reason: str
    at_ms: int


"""Inbox items as appended, with their seq, by device."""


class Store(abc.ABC):
    """Taube's persistent state. All methods are coroutines safe to call concurrently."""

    _settled_hook: Callable[[int], None] | None = None

    def on_settled(self, hook: Callable[[int], None]) -> None:
        """Call ``hook(writes)`` on the event loop right after a batch of ``writes``
        queued writes (``submit_message``, ``submit_ack``) has its results set, in the
        same turn of the loop. Their done-callbacks run a turn later: the gateway
        answers sends and writes their frames from the hook, so a message leaves as
        soon as it is durable instead of behind whatever else the next turn holds."""
        self._settled_hook = hook

    def _settled(self, writes: int) -> None:
        hook = self._settled_hook
        if hook is not None:
            try:
                hook(writes)
            except Exception:  # the writes are settled either way; their callbacks follow
                logging.getLogger(__name__).exception("settled hook failed")

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create or migrate the schema in place."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish pending writes and release resources."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise if the store cannot answer a trivial query."""

    # ---------------------------------------------------------------- accounts

    @abc.abstractmethod
    async def create_user(self, user: UserRecord) -> None:
        """Raise HandleTaken if the handle exists."""

    @abc.abstractmethod
    async def get_user(self, handle: str) -> UserRecord | None: ...

    @abc.abstractmethod
    async def set_hide_presence(self, handle: str, hide: bool) -> None: ...

    @abc.abstractmethod
    async def set_last_seen(self, handle: str, at_ms: int) -> None: ...

    @abc.abstractmethod
    async def set_password_hash(self, handle: str, password_hash: str) -> None: ...

    # ---------------------------------------------------------------- two-step verification

    @abc.abstractmethod
    async def get_totp(self, handle: str) -> TotpRecord | None: ...

    @abc.abstractmethod
    async def put_totp(self, handle: str, secret: str, now_ms: int) -> bool:
        """Store a new, inactive secret (replacing an inactive one); False (and nothing
        changed) if the account has an active one."""

    @abc.abstractmethod
    async def use_totp_step(self, handle: str, step: int, *, activate: bool = False) -> bool:
        """Record that the code of ``step`` was accepted (and, with ``activate``, turn the
        secret on); False if that step, or a later one, was used already or there is no
        secret (or, without ``activate``, no active one). Atomic across nodes."""

    @abc.abstractmethod
    async def delete_totp(self, handle: str) -> None: ...

    @abc.abstractmethod
    async def legacy_totp_secrets(self, after: str, limit: int) -> list[tuple[str, str]]:
        """Up to ``limit`` (handle, secret) rows whose secret holds no ``:`` (written in
        the clear before secrets were sealed, core/secret_box.py), handles after
        ``after`` in ascending order."""

    @abc.abstractmethod
    async def replace_totp_secrets(self, changes: Sequence[tuple[str, str, str]]) -> int:
        """For each (handle, old, new): the secret becomes ``new`` if it is still ``old``
        (a row changed meanwhile is left alone); one transaction; how many changed."""

    # ---------------------------------------------------------------- devices

    @abc.abstractmethod
    async def create_device(
        self, user: str, name: str, token_hash: bytes, now_ms: int
    ) -> DeviceRecord:
        """Add a device with the next free id for this user (ids are never reused)."""

    @abc.abstractmethod
    async def device_by_token(self, token_hash: bytes) -> DeviceRecord | None: ...

    @abc.abstractmethod
    async def list_devices(self, user: str) -> list[DeviceRecord]:
        """All devices of a user, revoked ones included, by id."""

    @abc.abstractmethod
    async def active_devices(self, users: Sequence[str]) -> dict[str, list[int]]:
        """Active device ids per user, for the users that exist."""

    @abc.abstractmethod
    async def revoke_device(self, user: str, device: int, now_ms: int) -> bool:
        """Revoke and drop its inbox and keys; False if no such active device."""

    @abc.abstractmethod
    async def touch_device(self, user: str, device: int, now_ms: int) -> None:
        """Record activity (for inactivity expiry)."""

    # ---------------------------------------------------------------- groups

    @abc.abstractmethod
    async def create_group(self, group: GroupRecord) -> None: ...

    @abc.abstractmethod
    async def get_group(self, group_id: str) -> GroupRecord | None: ...

    @abc.abstractmethod
    async def groups_of(self, user: str) -> list[GroupRecord]: ...

    @abc.abstractmethod
    async def update_group(
        self,
        group_id: str,
        *,
        name: str | None = None,
        upsert_members: dict[str, bool] | None = None,
        remove_members: Sequence[str] = (),
    ) -> GroupRecord | None:
        """Rename and change membership atomically; returns the new record, None if absent."""

    # ---------------------------------------------------------------- inbox

    @abc.abstractmethod
    async def commit_message(self, message: NewMessage) -> SendResult:
        """Store the message and append it to every delivery's inbox, idempotently."""

    def submit_message(self, message: NewMessage) -> Pending[SendResult]:
        """Like ``commit_message``, but the write is queued before this returns, so
        that messages submitted one after another commit in that order."""
        return asyncio.ensure_future(self.commit_message(message))

    @abc.abstractmethod
    async def sent_at(self, sender: str, message_id: str) -> int | None:
        """When (sender, message_id) was committed, or None if it never was (or was purged)."""

    @abc.abstractmethod
    async def purge_messages(self, before_ms: int, limit: int) -> int:
        """Forget up to ``limit`` messages sent before ``before_ms`` that no inbox holds any
        more (their shared payload and their idempotency key). Returns how many."""

    @abc.abstractmethod
    async def append_items(
        self, items: Sequence[tuple[DeviceKey, Receipt | GroupEvent]]
    ) -> Appended:
        """Append receipts or group events (their ``seq`` is assigned here)."""

    @abc.abstractmethod
    async def read_inbox(
        self, user: str, device: int, after_seq: int, limit: int
    ) -> list[InboxItem]:
        """Items with seq > after_seq, in order, at most ``limit``."""

    @abc.abstractmethod
    async def ack(self, user: str, device: int, upto_seq: int, now_ms: int) -> AckResult:
        """Delete items up to ``upto_seq`` and queue delivered receipts (see module doc)."""

    def submit_ack(self, user: str, device: int, upto_seq: int, now_ms: int) -> Pending[AckResult]:
        """Like ``ack``, but queued before this returns (a gateway answers from a
        callback when it is done, without a task waiting on it)."""
        return asyncio.ensure_future(self.ack(user, device, upto_seq, now_ms))

    @abc.abstractmethod
    async def last_seq(self, user: str, device: int) -> int:
        """The seq of the newest item ever appended to this device's inbox (0 if none)."""

    # ---------------------------------------------------------------- keys

    @abc.abstractmethod
    async def put_keys(
        self,
        user: str,
        device: int,
        identity_key: bytes,
        signed_prekey: SignedPrekeyRecord | None,
        one_time_prekeys: Sequence[PrekeyRecord],
        max_one_time: int,
    ) -> KeysStatusRecord | None:
        """Store a device's keys in one transaction: set the identity key (first time)
        or check it (IdentityKeyMismatch), replace the signed prekey if one is given
        (KeysIncomplete if the device has none and none is given), add the one-time
        prekeys whose ids are new (TooManyPrekeys, storing nothing, if that would hold
        more than ``max_one_time``). None if the device is not active. The signature is
        not checked here (the caller does)."""

    @abc.abstractmethod
    async def keys_status(self, user: str, device: int) -> KeysStatusRecord: ...

    @abc.abstractmethod
    async def take_bundles(self, user: str, device: int | None = None) -> list[BundleRecord]:
        """The bundle of every active device of ``user`` that has keys (only ``device``
        if given), by device id, each taking and deleting one of that device's one-time
        prekeys (the lowest id) atomically: concurrent calls never get the same one."""

    @abc.abstractmethod
    async def identity_keys(self, user: str) -> list[tuple[int, bytes]]:
        """(device, identity key) of every active device of ``user`` with keys, by id."""

    # ---------------------------------------------------------------- blobs

    @abc.abstractmethod
    async def start_blob_upload(
        self, blob_id: str, user: str, size: int, now_ms: int
    ) -> BlobRecord:
        """Announce an upload. If the blob is complete, ``user`` becomes one of its
        uploaders and the complete record is returned. Otherwise the user's own upload
        is returned, made at offset 0 if new (or restarted at 0 if it was announced
        with another size)."""

    @abc.abstractmethod
    async def blob_status(self, blob_id: str, user: str) -> BlobRecord | None:
        """The complete blob if ``user`` may read it, else the user's own incomplete
        upload, else None."""

    @abc.abstractmethod
    async def advance_blob_upload(
        self, blob_id: str, user: str, from_offset: int, to_offset: int
    ) -> bool:
        """Move the user's upload from ``from_offset`` to ``to_offset``; False (nothing
        changed) if it is not at ``from_offset`` or does not exist."""

    @abc.abstractmethod
    async def complete_blob(self, blob_id: str, user: str, size: int, now_ms: int) -> None:
        """The blob's file is stored: record the blob as complete (if not already),
        make ``user`` an uploader and forget the user's incomplete upload."""

    @abc.abstractmethod
    async def discard_blob_upload(self, blob_id: str, user: str) -> None:
        """Forget the user's incomplete upload (its file is the caller's)."""

    @abc.abstractmethod
    async def grant_blob(self, blob_id: str, users: Sequence[str]) -> None:
        """Let ``users`` read the complete blob (granting twice is harmless)."""

    @abc.abstractmethod
    async def record_blob_fetch(self, blob_id: str, user: str, now_ms: int) -> bool:
        """Record that ``user`` (if granted) downloaded the blob in full. When every
        granted user has, delete the blob's metadata in the same transaction and
        return True (the caller deletes the file)."""

    @abc.abstractmethod
    async def purge_blobs(self, before_ms: int, limit: int) -> list[str]:
        """Delete up to ``limit`` complete blobs stored before ``before_ms``; their ids."""

    @abc.abstractmethod
    async def purge_blob_uploads(self, before_ms: int, limit: int) -> list[tuple[str, str]]:
        """Delete up to ``limit`` incomplete uploads started before ``before_ms``;
        their (blob id, user)."""

    @abc.abstractmethod
    async def blob_exists(self, blob_id: str) -> bool:
        """True if the blob is complete (for finding orphaned files)."""

    # ---------------------------------------------------------------- blocks

    @abc.abstractmethod
    async def block(self, blocker: str, blocked: str, now_ms: int) -> None:
        """Idempotent."""

    @abc.abstractmethod
    async def unblock(self, blocker: str, blocked: str) -> bool:
        """False if there was no such block."""

    @abc.abstractmethod
    async def blocked_by(self, blocker: str) -> list[str]:
        """The handles ``blocker`` has blocked, sorted."""

    # ---------------------------------------------------------------- device links

    @abc.abstractmethod
    async def create_link(self, link: LinkRecord) -> bool:
        """Store a new pending link; False (nothing stored) if its id or code is taken."""

    @abc.abstractmethod
    async def get_link(self, link_id: str) -> LinkRecord | None: ...

    @abc.abstractmethod
    async def link_by_code(self, code: str) -> LinkRecord | None: ...

    @abc.abstractmethod
    async def approve_link(
        self, code: str, handle: str, device: int, token: str, now_ms: int
    ) -> bool:
        """If the link of ``code`` is pending and ``now_ms`` is before its expiry, record
        the device made for it and its token; else change nothing and return False."""

    @abc.abstractmethod
    async def take_link_token(self, link_id: str) -> str | None:
        """The approved link's token, cleared in the same statement (so that it is
        handed out once, however many read at the same time); None if there is none."""

    @abc.abstractmethod
    async def purge_links(self, before_ms: int, limit: int) -> int:
        """Delete up to ``limit`` links that expired before ``before_ms``; how many."""

    # ---------------------------------------------------------------- notices

    @abc.abstractmethod
    async def create_notice(self, notice: NoticeRecord) -> None: ...

    @abc.abstractmethod
    async def current_notices(self, now_ms: int) -> list[NoticeRecord]:
        """Notices not ended and expiring after ``now_ms``, oldest first."""

    @abc.abstractmethod
    async def end_notice(self, notice_id: str) -> bool:
        """Delete a notice; False if there was none."""

    @abc.abstractmethod
    async def purge_notices(self, before_ms: int) -> int:
        """Delete the notices that expired before ``before_ms``; how many."""

    # ---------------------------------------------------------------- status

    @abc.abstractmethod
    async def put_probe_minutes(self, rows: Sequence[ProbeMinuteRecord]) -> None:
        """Insert or replace each (minute, node, component) row."""

    @abc.abstractmethod
    async def probe_minutes(self, since_ms: int) -> list[ProbeMinuteRecord]:
        """Rows of minutes starting at or after ``since_ms``."""

    @abc.abstractmethod
    async def probe_nodes(self, since_ms: int) -> dict[str, int]:
        """Nodes with rows of minutes since ``since_ms``: their latest ``updated_ms``."""

    @abc.abstractmethod
    async def probe_totals(self, component: str, since_ms: int) -> tuple[int, int, int]:
        """(count, ok, within) summed over every node's rows of ``component``."""

    @abc.abstractmethod
    async def put_status_minutes(self, rows: Sequence[tuple[int, str, str]]) -> None:
        """(minute, component, status): insert or replace."""

    @abc.abstractmethod
    async def status_minute_counts(self, since_ms: int) -> list[tuple[str, int, str, int]]:
        """(component, UTC day start, status, minutes) for minutes since ``since_ms``."""

    @abc.abstractmethod
    async def last_status_minute(self) -> int | None:
        """The newest minute with a verdict, or None."""

    @abc.abstractmethod
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
        """A new open incident (status and start from ``first``), with a new id."""

    @abc.abstractmethod
    async def update_incident(
        self,
        incident_id: int,
        update: IncidentUpdateRecord,
        *,
        impact: str | None = None,
        components: Sequence[str] | None = None,
        title: str | None = None,
    ) -> IncidentRecord | None:
        """Append ``update`` and take its status (``resolved`` sets ``resolved_ms``);
        None if there is no such incident or it is resolved already."""

    @abc.abstractmethod
    async def set_incident_text(
        self,
        incident_id: int,
        *,
        postmortem: str | None = None,
        notice_id: str | None = None,
    ) -> IncidentRecord | None:
        """Set the post-mortem and/or the current notice id (None leaves it)."""

    @abc.abstractmethod
    async def get_incident(self, incident_id: int) -> IncidentRecord | None: ...

    @abc.abstractmethod
    async def open_incidents(self) -> list[IncidentRecord]:
        """Unresolved incidents, oldest first."""

    @abc.abstractmethod
    async def resolved_incidents(self, since_ms: int, limit: int) -> list[IncidentRecord]:
        """Incidents resolved since ``since_ms``, newest first, at most ``limit``."""

    @abc.abstractmethod
    async def create_maintenance(
        self,
        title: str,
        starts_ms: int,
        ends_ms: int,
        components: Sequence[str],
        text: str,
        now_ms: int,
    ) -> MaintenanceRecord: ...

    @abc.abstractmethod
    async def maintenance_windows(self, ends_after_ms: int) -> list[MaintenanceRecord]:
        """Windows ending after ``ends_after_ms``, by start."""

    @abc.abstractmethod
    async def create_webhook(self, url: str, secret: str, now_ms: int) -> WebhookRecord: ...

    @abc.abstractmethod
    async def webhooks(self) -> list[WebhookRecord]: ...

    @abc.abstractmethod
    async def delete_webhook(self, webhook_id: int) -> bool: ...

    @abc.abstractmethod
    async def log_webhook_delivery(self, entry: WebhookDeliveryRecord) -> None: ...

    @abc.abstractmethod
    async def webhook_deliveries(self, limit: int) -> list[WebhookDeliveryRecord]:
        """The newest ``limit`` entries, oldest first."""

    @abc.abstractmethod
    async def add_report(self, minute_ms: int, kind: str) -> None: ...

    @abc.abstractmethod
    async def report_counts(self, since_ms: int) -> list[tuple[int, str, int]]:
        """(minute, kind, count) for minutes since ``since_ms``."""

    # ------------------------------------------------------------ abuse

    @abc.abstractmethod
    async def add_abuse_report(self, report: AbuseReportRecord) -> int:
        """Queue a report (its ``id`` is ignored); the id it got."""

    @abc.abstractmethod
    async def abuse_reports(self, limit: int) -> list[AbuseReportRecord]:
        """The newest ``limit`` reports, oldest first."""

    @abc.abstractmethod
    async def suspend_user(self, handle: str, reason: str, now_ms: int) -> bool:
        """Suspend an existing account (again: the new reason counts); False if there is
        no such account."""

    @abc.abstractmethod
    async def unsuspend_user(self, handle: str) -> bool:
        """Lift a suspension; False if the account was not suspended."""

    @abc.abstractmethod
    async def suspensions(self) -> list[SuspensionRecord]:
        """Every suspended account (a short list: suspensions are rare)."""

    @abc.abstractmethod
    async def purge_status(self, before_ms: int) -> int:
        """Delete probe rows, verdict minutes, report counts and delivery log entries
        older than ``before_ms``; how many rows."""
