"""The asyncio client: one device's connection, outbox and inbox, kept alive on its own.

Shape: the pure parts (:class:`~taube.client.inbox.InboxCursor`,
:class:`~taube.client.outbox.OutboxQueue`, :class:`~taube.client.backoff.Backoff`,
frame codecs) decide; this module only moves bytes between them, the WebSocket
and the profile database.

Tasks while the client is open:

* the *runner* connects, authenticates with the acked ``last_seq``, receives
  frames, and reconnects with backoff, moving to the next server URL after a
  failure (or at once when a node says it is draining);
* per connection, a *sender* encrypts each outbox entry for every recipient
  device (:mod:`taube.client.e2ee`) and transmits them in order, within a window;
* the *persister* commits outbox removals (after ``sent``) and the acked seq
  to the profile, then tells the server. Batching these keeps SQLite commits
  off the per-frame path without ever acking ahead of the disk;
* after repeated failures to connect, a *status check* reads the signed status
  document (nodes first, then the status URL) and tells the application what it
  says (:class:`~taube.client.events.ServiceStatus`) instead of leaving it with a
  bare connection error; the outbox marks what is queued during a known incident,
  and the device reports the trouble (``POST /v1/reports``, at most once per
  ``report_every_s``) as soon as any node answers.

Guarantees: a message given to :meth:`Client.send` is on disk before its id is
returned and leaves the outbox only after the server's ``sent`` (or a
permanent refusal). Inbox items reach the application in ``seq`` order, once
per profile: an item is acked when the application asks for the next event,
calls :meth:`Client.ack`, or leaves ``async with`` without an exception.

All profile access runs on one dedicated thread, so SQLite never blocks the
event loop and profile operations keep their submission order.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, TypeVar

import aiohttp
import msgspec

from taube.client import attachments
from taube.client import events as ev
from taube.client.api import SESSION_CODES, Api, normalize_servers
from taube.client.backoff import Backoff
from taube.client.content import (
    AnyContent,
    Attachment,
    Content,
    Delete,
    Disappearing,
    Edit,
    MessageRef,
    Poll,
    Reaction,
    Text,
    Unsupported,
    Vote,
    decode_content,
    encode_content,
)
from taube.client.e2ee import Decrypted, E2ee
from taube.client.errors import (
    NotLoggedIn,
    SendTimeout,
    ServerUnreachable,
    TaubeApiError,
    TaubeClientError,
    UntrustedIdentity,
)
from taube.client.history import ChatSummary, HistoryItem
from taube.client.inbox import InboxCursor
from taube.client.outbox import OutboxQueue
from taube.client.profile import OutboxEntry, Profile, StatusState, StoredSession
from taube.client.status import (
    StatusForged,
    StatusUnavailable,
    StatusView,
    fetch_status,
    headline,
    verify_notice,
)
from taube.crypto import CryptoError, SafetyNumber
from taube.protocol import frames as fr
from taube.protocol.abuse import ReportedMessage
from taube.protocol.api import ReportKind
from taube.protocol.ids import normalize_handle, parse_address, uuid7

log = logging.getLogger("taube.client")
T = TypeVar("T")

# Send errors worth retrying later (the message stays queued); any other error
# code answering a send is final and removes the message from the outbox.
TRANSIENT_CODES: Final = frozenset(
    {"rate.limited", "server.overloaded", "server.draining", "server.unavailable", "internal"}
)
# Close codes after which reconnecting with the same token is pointless.
AUTH_CLOSE_CODES: Final = frozenset({4001, 4003})
DRAINING_CLOSE_CODE: Final = 1012
# How often one message is encrypted again for a fresh device list before giving up.
MAX_STALE_RETRIES: Final = 3


@dataclass(frozen=True, slots=True)
class _Silent:
    """An inbox item with nothing to show (a key distribution, a resend request):
    it still passes through the queue so that it is acked in order."""

    seq: int


def ws_url(server: str) -> str:
    """``http(s)://host[:port]`` -> ``ws(s)://host[:port]/v1/ws``."""
    if server.startswith("https://"):
        return "wss://" + server.removeprefix("https://") + "/v1/ws"
    return "ws://" + server.removeprefix("http://") + "/v1/ws"


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Tuning knobs, as one value object (defaults suit people and bots alike)."""

    backoff: Backoff = Backoff()  # noqa: RUF009 - frozen, so sharing one default is safe
    connect_timeout: float = 10.0
    heartbeat: float = 20.0
    send_window: int = 128
    max_queued_events: int = 10_000
    max_pending_frames: int = 1_000
    status_after_failures: int = 3
    """Read the status document after this many failed connection attempts in a row..."""
    status_after_s: float = 10.0
    """...or after this long without a connection, whichever comes first."""
    status_recheck_s: float = 30.0
    """While still cut off, read it again this often."""
    status_max_age_s: float = 120.0
    """An older status document is stale: its verdict shows as ``unknown``."""
    report_every_s: float = 600.0
    """Report trouble to the operators (``POST /v1/reports``) at most this often."""
    report_max_delay_s: float = 300.0
    """A report that found no node to take it for this long is dropped."""


@dataclass(slots=True)
class _Outcome:
    """How one connection attempt ended, for the runner to choose the next step."""

    ready: bool
    reason: str
    move_on: bool = False  # try the next server URL (draining node)
    immediate: bool = False  # reconnect without backoff
    retry_after: float = 0.0  # the server's hint (HTTP Retry-After) for coming back


def _hint(error: fr.Error) -> float:
    """An error frame's retry-after hint in seconds (0 if it gives none)."""
    hint = (error.details or {}).get("retry_after_s", 0)
    return min(float(hint), 300.0) if isinstance(hint, int | float) and hint > 0 else 0.0


def _retry_after(headers: Mapping[str, str] | None) -> float:
    """Seconds from a Retry-After header (the delta form; dates are not used by Taube)."""
    try:
        return max(0.0, min(float((headers or {}).get("Retry-After", 0)), 300.0))
    except ValueError:
        return 0.0


class _Fatal(Exception):
    def __init__(self, error: TaubeClientError) -> None:
        super().__init__(str(error))
        self.error = error


class Client:
    """One logged-in device. Use ``async with Client(profile) as client: ...``.

    ``profile`` is a :class:`Profile`, a folder path, or None for the default
    folder; the client opens its own connection to the profile database.
    ``servers`` overrides the URLs saved at login (a list means failover order).
    """

    def __init__(
        self,
        profile: Profile | Path | str | None = None,
        servers: Sequence[str] | str | None = None,
        *,
        options: ClientOptions | None = None,
        status_url: str | None = None,
    ) -> None:
        self._profile_path: Path | str | None = (
            profile.path if isinstance(profile, Profile) else profile
        )
        self._status_url_override = status_url or None
        self._servers_override = normalize_servers(servers) if servers else None
        self.options = options or ClientOptions()
        self.servers: tuple[str, ...] = ()
        self.handle = ""
        self.device = 0
        self._executor: ThreadPoolExecutor | None = None
        self._profile: Profile | None = None
        self._session: StoredSession | None = None
        self._api: Api | None = None
        self._http: aiohttp.ClientSession | None = None
        self._cursor = InboxCursor()
        self._outbox = OutboxQueue(window=self.options.send_window)
        self._queue: asyncio.Queue[ev.Event | _Silent | TaubeClientError] = asyncio.Queue()
        self._inbox_queued = 0
        self._yielded_seq: int | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ws_lock = asyncio.Lock()
        self._send_lock = asyncio.Lock()
        self._persist_lock = asyncio.Lock()
        self._outbox_changed = asyncio.Event()
        self._persist_wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._connected = asyncio.Event()
        self._done_ids: list[str] = []  # acked or refused, removal not yet committed
        self._unpersisted: set[str] = set()
        self._failed: dict[str, TaubeApiError] = {}
        self._pending_frames: deque[fr.ClientFrame] = deque(maxlen=self.options.max_pending_frames)
        self._watching: list[str] | None = None
        self._fatal: TaubeClientError | None = None
        self._resync_requested = False
        self._tasks: list[asyncio.Task[None]] = []
        self.server: str | None = None
        self._e2ee: E2ee | None = None
        self._admin_cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._blocked: set[str] = set()  # refreshed on every connection
        self._notices_seen: set[str] = set()
        self._expiry_changed = asyncio.Event()
        self._sealed: dict[str, list[fr.DevicePayload]] = {}  # encrypted, not yet stored
        self._stale_tries: dict[str, int] = {}
        self._status_state = StatusState()
        self._service_status: ev.ServiceStatus | None = None
        self._status_changed = asyncio.Event()
        self._status_task: asyncio.Task[None] | None = None
        self._status_checked_at: float | None = None
        self._pending_report: tuple[ReportKind, str, float] | None = None  # kind, detail, since
        self._send_refusals = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Client:
        await self.open()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close(ack_taken=et is None)

    async def open(self) -> None:
        """Load the profile and start connecting (in the background; send works at once)."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taube-profile")
        try:
            self._profile = await self._db(Profile.open, self._profile_path)
            session = await self._db(self._profile.session)
            if session is None:
                raise NotLoggedIn("not logged in on this profile (taube login HANDLE)")
            self._session = session
            self.handle, self.device = session.handle, session.device
            self.servers = self._servers_override or session.servers
            last_seq = await self._db(self._profile.last_seq)
            pending = await self._db(self._profile.outbox)
            self._status_state = await self._db(self._profile.status_state)
        except BaseException:
            await self._close_profile()
            raise
        self._cursor = InboxCursor(last_seq)
        self._outbox = OutboxQueue(pending, window=self.options.send_window)
        self._api = Api(self.servers, session.token)
        loop = asyncio.get_running_loop()

        def changed(user: str) -> None:  # called on the profile thread
            loop.call_soon_threadsafe(self._emit, ev.SecurityCodeChanged(user))

        self._e2ee = E2ee(
            session.handle,
            session.device,
            self._api,
            self._profile.keys,
            self._db,
            on_changed=changed,
        )
        self._http = aiohttp.ClientSession()
        self._tasks = [
            asyncio.create_task(self._run(), name="taube-runner"),
            asyncio.create_task(self._persist_loop(), name="taube-persister"),
            asyncio.create_task(self._expiry_loop(), name="taube-expiry"),
        ]

    async def close(self, *, ack_taken: bool = True) -> None:
        """Stop; with ``ack_taken`` the last event handed out counts as handled."""
        if ack_taken:
            self._take_yielded()
        with contextlib.suppress(Exception):
            # Commit what is due while the socket may still be open, so the
            # server learns the ack (and senders get "delivered") right away.
            async with asyncio.timeout(5):
                await self._persist_once()
        if self._status_task is not None:
            self._tasks.append(self._status_task)
            self._status_task = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks = []
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()
        if self._api is not None:
            await self._api.close()
        await self._close_profile()

    async def _close_profile(self) -> None:
        if self._profile is not None:
            await self._db(self._profile.close)
            self._profile = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    @property
    def api(self) -> Api:
        """HTTP calls as this device (groups, devices, lookup, settings)."""
        if self._api is None:
            raise RuntimeError("the client is not open")
        return self._api

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # ------------------------------------------------------------------ service status

    @property
    def status_url(self) -> str | None:
        """Where the status document is read when no server answers (None: nodes only)."""
        return self._status_url_override or self._status_state.status_url

    @property
    def service_status(self) -> ev.ServiceStatus | None:
        """The latest :class:`~taube.client.events.ServiceStatus` while cut off, else None."""
        return self._service_status

    async def wait_service_status(self, timeout: float | None = None) -> ev.ServiceStatus:  # noqa: ASYNC109
        """Wait for the next :class:`~taube.client.events.ServiceStatus` (not acking
        anything, unlike :meth:`events`); raises TimeoutError when ``timeout`` runs out."""
        async with asyncio.timeout(timeout):
            await self._status_changed.wait()
        assert self._service_status is not None
        return self._service_status

    async def check_status(self) -> StatusView:
        """Read and check the status document now (nodes first, then the status URL).

        Raises :class:`~taube.client.status.StatusForged` or
        :class:`~taube.client.status.StatusUnavailable`.
        """
        assert self._http is not None
        return await fetch_status(
            self._http,
            self.servers,
            self.status_url,
            self._status_state.public_key,
            max_age_s=self.options.status_max_age_s,
        )

    async def report(self, kind: ReportKind, detail: str = "") -> None:
        """Tell the operators "I can't send / receive / connect" now (not rate-limited:
        this is the user's own report)."""
        await self.api.report(kind, detail)

    async def wait_connected(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until a connection is ready; raises ServerUnreachable on timeout."""
        try:
            async with asyncio.timeout(timeout):
                while not self._connected.is_set():
                    self._raise_fatal()
                    # Either event ends the wait: connected, or any progress (incl. fatal).
                    progress = asyncio.ensure_future(self._progress.wait())
                    connected = asyncio.ensure_future(self._connected.wait())
                    try:
                        await asyncio.wait(
                            [progress, connected], return_when=asyncio.FIRST_COMPLETED
                        )
                    finally:
                        progress.cancel()
                        connected.cancel()
        except TimeoutError:
            self._raise_fatal()
            raise ServerUnreachable("no server accepted the connection in time") from None

    # ------------------------------------------------------------------ sending

    async def send(self, to: str, content: Content | str) -> str:
        """Queue a message durably and return its id; it is transmitted when connected."""
        return (await self.send_many([(to, content)]))[0]

    async def send_many(self, items: Iterable[tuple[str, Content | str]]) -> list[str]:
        """Queue several messages in order, in one profile transaction."""
        self._raise_fatal()
        now = int(time.time() * 1000)
        entries: list[OutboxEntry] = []
        contents: list[Content] = []
        for to, content in items:
            address = parse_address(to)
            if address is None:
                raise ValueError(f"not an address (@handle or #group): {to!r}")
            if address[0] == "user" and await self._db(self._require_e2ee().blocked, address[1]):
                raise UntrustedIdentity(address[1])
            item = await self._with_timer(
                to, Text(text=content) if isinstance(content, str) else content
            )
            entries.append(OutboxEntry(uuid7(now), to, encode_content(item), now))
            contents.append(item)
        if not entries:
            return []
        profile = self._require_profile()
        admins = {
            e.to: await self._admins(e.to)
            for e, c in zip(entries, contents, strict=True)
            if isinstance(c, Delete)
        }
        async with self._send_lock:  # keeps disk order == memory order
            await self._db(profile.outbox_add, entries)
            for entry in entries:
                self._outbox.add(entry)
        self._outbox_changed.set()
        # Our own history shows what we sent at once (other devices get their copies).
        for entry, item in zip(entries, contents, strict=True):
            await self._db(
                functools.partial(
                    profile.history.record,
                    conversation=entry.to,
                    sender=self.handle,
                    sender_device=self.device,
                    id=entry.id,
                    sent_at_ms=entry.created_ms,
                    content=item,
                    me=self.handle,
                    group_admins=admins.get(entry.to, ()),
                )
            )
            await self._revise_sent_safely(item)
        self._expiry_changed.set()
        return [e.id for e in entries]

    async def _with_timer(self, to: str, content: Content) -> Content:
        """New messages in a chat with disappearing messages on carry its timer."""
        if isinstance(content, Text | Poll | Attachment) and content.expire_s is None:
            timer = await self._db(self._require_profile().history.disappearing, to)
            if timer:
                return msgspec.structs.replace(content, expire_s=timer)
        return content

    async def _admins(self, conversation: str) -> frozenset[str]:
        """The admins of a group conversation (cached for a minute), for deletes."""
        if not conversation.startswith("#"):
            return frozenset()
        cached = self._admin_cache.get(conversation)
        if cached is not None and time.monotonic() - cached[0] < 60:
            return cached[1]
        try:
            info = await self.api.group(conversation)
        except TaubeClientError:
            return frozenset() if cached is None else cached[1]
        admins = frozenset(m.handle for m in info.members if m.admin)
        self._admin_cache[conversation] = (time.monotonic(), admins)
        return admins

    # ------------------------------------------------------------------ rich messages

    async def reply(self, to: str, text: str, message: MessageRef) -> str:
        """Send ``text`` quoting ``message``."""
        return await self.send(to, Text(text=text, reply_to=message))

    async def react(self, conversation: str, message: MessageRef, emoji: str) -> str:
        """React to ``message`` with ``emoji``; an empty emoji removes our reaction."""
        return await self.send(conversation, Reaction(target=message, emoji=emoji))

    async def edit(self, conversation: str, message: MessageRef, text: str) -> str:
        """Replace the text of our own ``message`` (receivers honour it for 15 minutes)."""
        return await self.send(conversation, Edit(target=message, text=text))

    async def delete_for_everyone(self, conversation: str, message: MessageRef) -> str:
        """Delete ``message`` for everyone (our own within the window; any, as group admin)."""
        return await self.send(conversation, Delete(target=message))

    async def poll(
        self, to: str, question: str, options: Sequence[str], *, multiple: bool = False
    ) -> str:
        return await self.send(
            to, Poll(question=question, options=list(options), multiple=multiple)
        )

    async def vote(self, conversation: str, poll: MessageRef, options: Sequence[int]) -> str:
        """Vote for option indices of ``poll`` (replaces our earlier vote; [] retracts)."""
        return await self.send(conversation, Vote(poll=poll, options=list(options)))

    async def set_disappearing(self, conversation: str, seconds: int) -> str:
        """Turn disappearing messages on (``seconds``) or off (0) for everyone in the chat."""
        return await self.send(conversation, Disappearing(seconds=seconds))

    async def send_file(
        self,
        to: str,
        data: bytes,
        name: str,
        *,
        caption: str = "",
        mime: str | None = None,
        reply_to: MessageRef | None = None,
        progress: attachments.Progress | None = None,
    ) -> str:
        """Encrypt and upload ``data``, then send it. The upload needs the server now;
        the message itself goes through the outbox like any other."""
        # Our other devices get the message too; the server keeps the blob until every
        # granted account fetched it, so our own account is granted when they exist.
        others = await self._db(self._require_e2ee().own_other_devices)
        content = await attachments.upload(
            self.api,
            data,
            to=to,
            also_grant=[f"@{self.handle}"] if others and to != f"@{self.handle}" else [],
            name=name,
            mime=mime,
            caption=caption,
            reply_to=reply_to,
            progress=progress,
        )
        return await self.send(to, content)

    async def download(self, attachment: Attachment) -> bytes:
        """The decrypted file of an attachment; raises CryptoError if it was tampered with."""
        return await attachments.download(self.api, attachment)

    async def block(self, handle: str) -> None:
        """The server stops delivering their 1:1 messages and hides your presence from them;
        this client drops their 1:1 messages too, should a server deliver them anyway."""
        await self.api.block(handle)
        self._blocked.add(normalize_handle(handle))

    async def unblock(self, handle: str) -> None:
        await self.api.unblock(handle)
        self._blocked.discard(normalize_handle(handle))

    async def blocked(self) -> list[str]:
        handles = await self.api.blocks()
        self._blocked = set(handles)
        return handles

    # ------------------------------------------------------------------ local history

    async def history(self, conversation: str, limit: int = 50) -> list[HistoryItem]:
        """What this device stored of a conversation, newest last."""
        history = self._require_profile().history
        return await self._db(functools.partial(history.history, conversation, limit))

    async def chats(self) -> list[ChatSummary]:
        """Conversations with their last message and unread count, most recent first."""
        return await self._db(self._require_profile().history.chats)

    async def get(self, sender: str, message_id: str) -> HistoryItem | None:
        """One stored message, with its reactions, edits, poll tally or file."""
        return await self._db(self._require_profile().history.get, sender, message_id)

    async def find(self, message_id: str) -> list[tuple[str, str]]:
        """(conversation, sender) of stored messages with this id."""
        return await self._db(self._require_profile().history.find, message_id)

    async def report_abuse(
        self, user: str, message_ids: Sequence[str] = (), reason: str = "abuse"
    ) -> int:
        """Report ``user`` to the operator with the messages ``message_ids`` as this
        device shows them (decrypted, from the local history), and nothing else. An id
        is looked up as ``user``'s message first, then as any stored message (a reply
        of yours may be context). Raises ValueError for an id not in the history."""
        handle = normalize_handle(user)
        chosen: list[ReportedMessage] = []
        for message_id in dict.fromkeys(message_ids):
            senders = [sender for _, sender in await self.find(message_id)]
            if not senders:
                raise ValueError(f"message {message_id} is not in this device's history")
            sender = handle if handle in senders else senders[0]
            item = await self.get(sender, message_id)
            if item is None:
                raise ValueError(f"message {message_id} is not in this device's history")
            chosen.append(
                ReportedMessage(
                    id=item.id, sender=item.sender, sent_at_ms=item.sent_at_ms, text=item.text or ""
                )
            )
        return await self.api.report_abuse(handle, reason, chosen)

    async def mark_chat_read(self, conversation: str) -> None:
        """Mark a conversation read here and tell the senders (blue ticks)."""
        unread = await self._db(self._require_profile().history.mark_read, conversation)
        for sender, ids in unread:
            for start in range(0, len(ids), 1000):
                await self.mark_read(conversation, sender, ids[start : start + 1000])

    # ------------------------------------------------------------------ trust

    async def safety_number(self, user: str) -> tuple[SafetyNumber, bool]:
        """The 60-digit safety number with ``user`` (from the keys the server lists now)
        and whether you verified exactly these keys."""
        return await self._require_e2ee().safety_number(normalize_handle(user))

    async def verify(self, user: str) -> SafetyNumber:
        """Mark ``user``'s current keys as verified (after comparing the numbers)."""
        return await self._require_e2ee().verify(normalize_handle(user))

    def pending(self) -> list[OutboxEntry]:
        """Messages not yet acknowledged by the server, oldest first."""
        return self._outbox.pending()

    # A timeout parameter (rather than the caller's asyncio.timeout) lets us
    # report which messages are still queued (SendTimeout.pending).
    async def wait_sent(self, ids: Iterable[str], timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait for the server's ``sent`` for every id (and for the outbox commit).

        Raises :class:`TaubeApiError` if the server refused one of them,
        :class:`SendTimeout` (still queued, not lost) when ``timeout`` runs out,
        :class:`NotLoggedIn` if the session was rejected. Ids that are not in
        this client's outbox (already sent, or never queued here) count as sent.
        """
        waiting = set(ids)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for message_id in waiting:
                        if message_id in self._failed:
                            raise self._failed[message_id]
                    waiting = {i for i in waiting if i in self._outbox or i in self._unpersisted}
                    if not waiting:
                        return
                    self._raise_fatal()
                    await self._progress.wait()
        except TimeoutError:
            raise SendTimeout(sorted(waiting)) from None

    async def flush(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until the whole outbox is acknowledged."""
        await self.wait_sent([e.id for e in self._outbox.pending()], timeout)

    async def mark_read(self, conversation: str, sender: str, ids: Sequence[str]) -> None:
        """Send a read receipt (queued in memory and sent after reconnect if offline)."""
        if ids:
            frame = fr.Read(
                conversation=conversation, sender=normalize_handle(sender), ids=list(ids)
            )
            await self._send_or_queue(frame)

    async def typing(self, conversation: str, active: bool = True) -> None:
        """Say we are typing; ephemeral, dropped when offline."""
        await self._try_send(fr.SetTyping(conversation=conversation, active=active))

    async def watch(self, users: Sequence[str]) -> None:
        """Follow these users' presence (replaces the list; renewed on every reconnect)."""
        self._watching = [normalize_handle(u) for u in users]
        await self._try_send(fr.Watch(users=self._watching))

    # ------------------------------------------------------------------ receiving

    async def events(self) -> AsyncIterator[ev.Event]:
        """Events in arrival order; inbox items in ``seq`` order, each once.

        Asking for the next event acks the inbox item handed out before it.
        """
        while True:
            self._take_yielded()
            item = await self._queue.get()
            if isinstance(item, TaubeClientError):
                self._queue.put_nowait(item)  # later calls fail the same way
                raise item
            if isinstance(item, _Silent):
                self._inbox_queued -= 1
                self._yielded_seq = item.seq
                continue
            if isinstance(item, ev.Message | ev.Receipt | ev.GroupChange):
                self._inbox_queued -= 1
                self._yielded_seq = item.seq
            yield item

    async def ack(self) -> None:
        """Ack every inbox item handed out so far, now (persist + tell the server)."""
        self._take_yielded()
        await self._persist_once()

    def _take_yielded(self) -> None:
        if self._yielded_seq is not None:
            self._cursor.take(self._yielded_seq)
            self._yielded_seq = None
            self._persist_wake.set()
        if (
            self._cursor.resync_needed
            and self._inbox_queued < self.options.max_queued_events // 2
            and self._ws is not None
            and not self._resync_requested
        ):
            # Items were refused while the app lagged; reconnect to have them replayed.
            self._resync_requested = True
            asyncio.get_running_loop().create_task(self._ws.close())

    def _emit(self, event: ev.Event) -> None:
        if self._queue.qsize() < self.options.max_queued_events:
            self._queue.put_nowait(event)

    # ------------------------------------------------------------------ runner

    async def _run(self) -> None:
        attempt = 0
        index = 0
        failures = 0
        down_since: float | None = None
        while True:
            server = self.servers[index]
            try:
                outcome = await self._connection(server)
            except _Fatal as fatal:
                self._set_fatal(fatal.error)
                return
            if outcome.ready:
                attempt = 0
                failures, down_since = 0, None
            else:
                failures += 1
                down_since = down_since if down_since is not None else time.monotonic()
                self._cut_off(failures, time.monotonic() - down_since, outcome.reason)
            if outcome.immediate:
                delay = 0.0
            elif outcome.retry_after > 0:
                # The server is alive and said when to come back (its hint is already
                # spread so that a storm does not return as one wave): follow it
                # rather than a backoff that kept growing while it was refusing.
                delay = outcome.retry_after
            else:
                delay = self.options.backoff.delay(attempt)
                attempt += 1
            if outcome.move_on or not outcome.ready:
                index = (index + 1) % len(self.servers)
            log.info("disconnected from %s: %s; retry in %.2fs", server, outcome.reason, delay)
            self._emit(ev.Disconnected(server, outcome.reason, delay))
            await asyncio.sleep(delay)

    async def _connection(self, server: str) -> _Outcome:
        assert self._http is not None
        assert self._session is not None
        try:
            async with asyncio.timeout(self.options.connect_timeout):
                ws = await self._http.ws_connect(
                    ws_url(server), heartbeat=self.options.heartbeat, autoping=True
                )
        except aiohttp.WSServerHandshakeError as exc:
            hint = _retry_after(exc.headers)
            if exc.status == 503:
                return _Outcome(False, "server busy or draining", move_on=True, retry_after=hint)
            return _Outcome(False, f"cannot connect: {_describe(exc)}")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return _Outcome(False, f"cannot connect: {_describe(exc)}")
        sender: asyncio.Task[None] | None = None
        try:
            auth = fr.Auth(token=self._session.token, last_seq=self._cursor.acked)
            await self._write(ws, auth)
            try:
                async with asyncio.timeout(self.options.connect_timeout):
                    first = await self._receive_frame(ws)
            except TimeoutError:
                return _Outcome(False, "no answer to auth in time")
            if first is None:
                return self._closed_outcome(ws, ready=False)
            if isinstance(first, fr.Error):
                return self._error_before_ready(first)
            if not isinstance(first, fr.Ready):
                return _Outcome(False, f"unexpected first frame {type(first).__name__}")
            sender = await self._on_ready(server, ws, first, auth.last_seq)
            return await self._receive_loop(ws)
        except (aiohttp.ClientError, OSError) as exc:
            return _Outcome(self._connected.is_set(), f"connection lost: {_describe(exc)}")
        finally:
            self._connected.clear()
            self._ws = None
            self.server = None
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(BaseException):
                    await sender
            await ws.close()

    async def _on_ready(
        self, server: str, ws: aiohttp.ClientWebSocketResponse, ready: fr.Ready, claimed: int
    ) -> asyncio.Task[None]:
        self._ws = ws
        self.server = server
        self._resync_requested = False
        self._cursor.connection_ready()
        self._outbox.reset()
        if ready.last_seq < claimed:
            # The server's inbox is behind what we acked (restored backup, new
            # store). Its numbering wins: otherwise every new item would look
            # like a replay and be dropped for good. A few repeats beat silence.
            log.warning(
                "server inbox at seq %d is behind ours (%d); following the server",
                ready.last_seq,
                claimed,
            )
            await self._db(self._require_profile().reset_last_seq, ready.last_seq)
            self._cursor = InboxCursor(ready.last_seq)
        elif self._cursor.acked > ready.last_seq:
            # The app took more while we were reconnecting; that ack found no socket.
            await self._write(ws, fr.Ack(seq=self._cursor.acked))
        if self._watching is not None:
            await self._write(ws, fr.Watch(users=self._watching))
        while self._pending_frames:
            await self._write(ws, self._pending_frames.popleft())
        await self._ensure_keys()
        with contextlib.suppress(TaubeClientError, aiohttp.ClientError, TimeoutError):
            await self.blocked()
        await self._back_online()
        self._connected.set()
        log.info("connected to %s as @%s device %d", server, ready.handle, ready.device)
        self._emit(ev.Connected(server, ready.handle, ready.device))
        self._progress_pulse()
        return asyncio.create_task(self._sender(ws), name="taube-sender")

    async def _receive_loop(self, ws: aiohttp.ClientWebSocketResponse) -> _Outcome:
        while True:
            frame = await self._receive_frame(ws)
            if frame is None:
                return self._closed_outcome(ws, ready=True)
            outcome = await self._handle(frame, ws)
            if outcome is not None:
                return outcome

    async def _receive_frame(self, ws: aiohttp.ClientWebSocketResponse) -> fr.AnyServerFrame | None:
        """The next decodable server frame, or None when the socket closed."""
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                try:
                    return fr.decode_server_frame(msg.data)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    # A newer server may speak frames we do not know: skip them.
                    log.warning("ignoring undecodable frame: %s", exc)
                    continue
            if msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                return None
            # BINARY, PING, PONG: not part of the protocol; ignore.

    def _closed_outcome(self, ws: aiohttp.ClientWebSocketResponse, *, ready: bool) -> _Outcome:
        code = ws.close_code
        if code in AUTH_CLOSE_CODES:
            raise _Fatal(NotLoggedIn(f"the server closed the session (close code {code})"))
        if self._resync_requested:
            return _Outcome(ready, "catching up after the app fell behind", immediate=True)
        if code == DRAINING_CLOSE_CODE:
            return _Outcome(ready, "server is draining", move_on=True, immediate=True)
        return _Outcome(ready, f"connection closed (code {code})")

    def _error_before_ready(self, error: fr.Error) -> _Outcome:
        # account.suspended: an operator suspended this account; retrying cannot help.
        if error.code in SESSION_CODES or error.code == "account.suspended":
            raise _Fatal(NotLoggedIn(error.message, error.code))
        if error.code == "server.draining":
            return _Outcome(False, "server is draining", move_on=True, immediate=True)
        return _Outcome(False, f"{error.code}: {error.message}", retry_after=_hint(error))

    async def _handle(
        self, frame: fr.AnyServerFrame, ws: aiohttp.ClientWebSocketResponse
    ) -> _Outcome | None:
        match frame:
            case fr.Message():
                room = self._inbox_queued < self.options.max_queued_events
                if self._cursor.receive(frame.seq, room=room):
                    self._inbox_queued += 1
                    self._queue.put_nowait(await self._open_message(frame))
            case fr.Receipt() | fr.GroupEvent():
                if isinstance(frame, fr.Receipt) and frame.by != self.handle:
                    await self._db(
                        self._require_profile().history.set_status,
                        self.handle,
                        frame.ids,
                        frame.status,
                        frame.by,
                    )
                elif isinstance(frame, fr.GroupEvent):
                    self._admin_cache.pop(f"#{frame.group}", None)
                room = self._inbox_queued < self.options.max_queued_events
                if self._cursor.receive(frame.seq, room=room):
                    self._inbox_queued += 1
                    self._queue.put_nowait(_inbox_event(frame))
            case fr.Sent(id=message_id):
                self._send_refusals = 0
                self._sealed.pop(message_id, None)
                self._stale_tries.pop(message_id, None)
                await self._require_e2ee().sent(message_id)
                if self._outbox.acknowledge(message_id) is not None:
                    self._unpersisted.add(message_id)
                    self._done_ids.append(message_id)
                    self._persist_wake.set()
                    self._outbox_changed.set()  # the window has room again
                    self._emit(ev.Sent(message_id, frame.sent_at_ms, frame.duplicate))
            case fr.Error(code="msg.stale_devices", ref=ref) if (
                ref is not None
                and ref in self._outbox
                and self._stale_tries.get(ref, 0) < MAX_STALE_RETRIES
            ):
                # A device was added or removed: encrypt again for the server's list
                # and send under the same id (docs/e2ee.md, section 8).
                self._stale_tries[ref] = self._stale_tries.get(ref, 0) + 1
                self._sealed.pop(ref, None)
                self._require_e2ee().forget_pending(ref)
                await self._require_e2ee().apply_device_list(frame.details)
                self._outbox.retry(ref)
                self._outbox_changed.set()
            case fr.Error(code=code, ref=ref) if ref is not None and ref in self._outbox:
                if code in SESSION_CODES:
                    raise _Fatal(NotLoggedIn(frame.message, code))
                if code in TRANSIENT_CODES:
                    # Keep it queued; reconnect later and retransmit in order. Not
                    # "ready" for the runner: without a hint the backoff keeps growing.
                    self._send_refusals += 1
                    if self._send_refusals >= self.options.status_after_failures:
                        self._want_report("send", f"{self._send_refusals} sends refused: {code}")
                    await ws.close()
                    return _Outcome(
                        False,
                        f"send refused for now: {code}",
                        move_on=True,
                        retry_after=_hint(frame),
                    )
                self._fail(ref, TaubeApiError(code, frame.message, details=frame.details, ref=ref))
            case fr.Error(code=code):
                if code in SESSION_CODES:
                    raise _Fatal(NotLoggedIn(frame.message, code))
                if code == "server.draining":
                    await ws.close()
                    return _Outcome(True, "server is draining", move_on=True, immediate=True)
                self._emit(ev.ServerError(code, frame.message, frame.ref, frame.details))
            case fr.Typing():
                self._emit(ev.Typing(frame.conversation, frame.user, frame.active))
            case fr.Presence():
                self._emit(ev.Presence(frame.user, frame.online, frame.last_seen_ms))
            case fr.Notice():
                if frame.id not in self._notices_seen:
                    signed = self._check_notice(frame)
                    if signed is not None:
                        self._notices_seen.add(frame.id)
                        self._emit(
                            ev.Notice(frame.id, frame.text, frame.level, frame.at_ms, signed)
                        )
            case fr.KeysLow():
                self._tasks.append(asyncio.create_task(self._ensure_keys()))
            case fr.Ready() | fr.Pong():
                pass
        return None

    def _check_notice(self, frame: fr.Notice) -> bool | None:
        """True: signed with the status key; False: unsigned (or no key known yet);
        None: the signature does not verify, so the notice must not be shown."""
        key = self._status_state.public_key
        if not frame.signature or not key:
            return False
        if verify_notice(frame, key):
            return True
        log.warning("dropped notice %s: its signature does not verify (forged?)", frame.id)
        return None

    # ------------------------------------------------------------------ cut off

    def _cut_off(self, failures: int, down_s: float, reason: str) -> None:
        """After a failed attempt: once it is clearly not a blip, read the status."""
        options = self.options
        if failures < options.status_after_failures and down_s < options.status_after_s:
            return
        self._want_report("connect", f"{failures} failed attempts: {reason}")
        due = (
            self._status_checked_at is None
            or time.monotonic() - self._status_checked_at >= options.status_recheck_s
        )
        if due and (self._status_task is None or self._status_task.done()):
            self._status_checked_at = time.monotonic()
            self._status_task = asyncio.create_task(self._status_check(), name="taube-status")

    async def _status_check(self) -> None:
        try:
            view = await self.check_status()
        except StatusForged as exc:
            log.warning("ignored a status document: %s", exc)
            status = ev.ServiceStatus(
                "unknown", (), False, False,
                "status unknown: the status document failed its signature check and was "
                "ignored; messages stay queued",
            )  # fmt: skip
        except StatusUnavailable as exc:
            log.info("no status document: %s", exc)
            status = ev.ServiceStatus(
                "unknown", (), False, False,
                "cannot reach any Taube server nor its status page (is this device "
                "online?); messages stay queued and are sent when a server answers",
            )  # fmt: skip
        except Exception:
            log.exception("cannot read the status document")
            return
        else:
            status = service_status_event(view)
            if view.verified and view.fresh:
                # Mark what waits in the outbox; a fresh all-clear forgets the incident.
                opened = view.open_incidents
                await self._set_incident(opened[0].ref if opened else None)
        if self._connected.is_set():
            return  # came back meanwhile: old news
        previous = self._service_status
        self._service_status = status
        if previous is None or _status_key(previous) != _status_key(status):
            self._emit(status)
            self._status_changed.set()
            self._status_changed = asyncio.Event()
        await self._flush_report()

    async def _set_incident(self, incident: str | None) -> None:
        if self._status_state.incident == incident:
            return
        marked = await self._db(self._require_profile().set_incident, incident)
        self._status_state = dataclasses.replace(self._status_state, incident=incident)
        if marked:
            log.info("%d queued message(s) marked as queued during incident %s", marked, incident)

    async def _back_online(self) -> None:
        """Connected: the cut-off is over; learn the status key, send a pending report."""
        self._service_status = None
        if self._status_task is not None:
            self._status_task.cancel()
            self._status_task = None
        self._status_checked_at = None
        await self._set_incident(None)
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.create_task(self._learn_status_key(), name="taube-status-key"))
        self._tasks.append(asyncio.create_task(self._flush_report(), name="taube-report"))

    async def _learn_status_key(self) -> None:
        # Our own server is the root of trust for the key (as for everything it serves);
        # learning it again on each connect follows an operator's key rotation.
        try:
            async with asyncio.timeout(self.options.connect_timeout):
                key = await self.api.status_key()
        except (TaubeClientError, aiohttp.ClientError, TimeoutError) as exc:
            log.info("cannot learn the status key now: %s", exc)
            return
        if key != self._status_state.public_key:
            await self._db(self._require_profile().save_status_key, key)
            self._status_state = dataclasses.replace(self._status_state, public_key=key)

    def _want_report(self, kind: ReportKind, detail: str) -> None:
        if self._pending_report is None:
            self._pending_report = (kind, detail[:200], time.monotonic())

    async def _flush_report(self) -> None:
        """Send the pending trouble report to any node that answers, rate-limited."""
        pending = self._pending_report
        if pending is None:
            return
        kind, detail, since = pending
        if time.monotonic() - since > self.options.report_max_delay_s:
            self._pending_report = None
            return
        now_ms = int(time.time() * 1000)
        if now_ms - self._status_state.last_report_ms < self.options.report_every_s * 1000:
            self._pending_report = None
            return
        # Written down before sending: a process that ends mid-request must not report
        # again at once (the rate limit holds across CLI runs); undone if it failed.
        before = self._status_state.last_report_ms
        await self._note_report(now_ms)
        try:
            async with asyncio.timeout(self.options.connect_timeout):
                await self.api.report(kind, detail)
        except (TaubeClientError, aiohttp.ClientError, TimeoutError) as exc:
            log.info("cannot report %s trouble yet: %s", kind, exc)
            await self._note_report(before)
            return
        self._pending_report = None
        log.info("reported %s trouble to the operators", kind)

    async def _note_report(self, at_ms: int) -> None:
        self._status_state = dataclasses.replace(self._status_state, last_report_ms=at_ms)
        await self._db(self._require_profile().set_last_report, at_ms)

    def _fail(self, ref: str, error: TaubeApiError) -> None:
        """A queued message is refused for good: it leaves the outbox, the app hears why."""
        entry = self._outbox.reject(ref)
        self._sealed.pop(ref, None)
        self._stale_tries.pop(ref, None)
        self._failed[ref] = error
        self._unpersisted.add(ref)
        self._done_ids.append(ref)
        self._persist_wake.set()
        self._outbox_changed.set()
        self._emit(ev.SendFailed(ref, entry.to if entry else "", error.code, error.message))

    async def _open_message(self, frame: fr.Message) -> ev.Message | _Silent:
        """Decrypt an inbox message; answer resend requests; ask for a resend on failure."""
        e2ee = self._require_e2ee()
        if frame.sender in self._blocked and frame.conversation == f"@{frame.sender}":
            return _Silent(frame.seq)  # blocked: the server should not even have sent it
        opened: Decrypted = await self._db(
            e2ee.decrypt,
            frame.seq,
            frame.sender,
            frame.sender_device,
            frame.conversation,
            frame.payload,
        )
        for user in opened.changed:
            self._emit(ev.SecurityCodeChanged(user))
        if opened.retry_request is not None:
            asyncio.get_running_loop().create_task(
                self._answer_retry(opened.retry_request[0], frame.sender, frame.sender_device)
            )
            return _Silent(frame.seq)
        if opened.error is not None:
            payloads = await self._db(e2ee.retry_request, frame.id, frame.sender)
            await self._send_or_queue(fr.Send(id=uuid7(), to=f"@{frame.sender}", payloads=payloads))
            content: AnyContent = Unsupported(
                type="undecryptable",
                v=0,
                raw=frame.payload,
                reason="message could not be decrypted; asked the sender to send it again",
            )
            # The chat shows the placeholder, which the resend replaces, and which an
            # edit or delete that comes first finds (history.py, protocol.md 12.5).
            await self._record(frame, frame.id, content)
        elif opened.content is None:
            return _Silent(frame.seq)
        else:
            content = decode_content(opened.content)
            await self._record(frame, opened.original_id or frame.id, content)
        return ev.Message(
            seq=frame.seq,
            id=opened.original_id or frame.id,
            conversation=frame.conversation,
            sender=frame.sender,
            sender_device=frame.sender_device,
            sent_at_ms=frame.sent_at_ms,
            content=content,
            payload=frame.payload,
            encrypted=opened.encrypted,
        )

    async def _record(self, frame: fr.Message, message_id: str, content: AnyContent) -> None:
        admins: frozenset[str] = frozenset()
        if isinstance(content, Delete) and content.target.sender != frame.sender:
            admins = await self._admins(frame.conversation)
        await self._db(
            functools.partial(
                self._require_profile().history.record,
                conversation=frame.conversation,
                sender=frame.sender,
                sender_device=frame.sender_device,
                id=message_id,
                sent_at_ms=frame.sent_at_ms,
                content=content,
                me=self.handle,
                group_admins=admins,
            )
        )
        self._expiry_changed.set()

    async def _answer_retry(self, message_id: str, requester: str, device: int) -> None:
        try:
            resend = await self._require_e2ee().resend(message_id, requester, device)
        except (TaubeClientError, CryptoError, aiohttp.ClientError) as exc:
            log.warning("cannot resend %s to %s.%d: %s", message_id, requester, device, exc)
            return
        if resend is not None:
            to, payloads = resend
            await self._send_or_queue(fr.Send(id=uuid7(), to=to, payloads=payloads))

    async def _ensure_keys(self) -> None:
        try:
            await self._require_e2ee().ensure_keys()
        except (TaubeClientError, aiohttp.ClientError, TimeoutError) as exc:
            # Sending still works (we encrypt to others); others reach us once it does.
            log.warning("cannot upload this device's keys now: %s", exc)

    async def _sender(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Transmit the outbox in order while this connection lives."""
        while True:
            entry = self._outbox.next_to_transmit()
            if entry is None:
                # No await between the check and clear(): no wake-up can be missed.
                self._outbox_changed.clear()
                await self._outbox_changed.wait()
                continue
            payloads = self._sealed.get(entry.id)
            if payloads is None:
                try:
                    content = decode_content(entry.payload)
                    forget_at = await self._forget_sent_at(entry, content)
                    payloads = await self._require_e2ee().encrypt(
                        entry.id, entry.to, entry.payload, forget_at
                    )
                    await self._revise_sent_safely(content)
                except UntrustedIdentity as exc:
                    self._fail(entry.id, TaubeApiError(exc.code, exc.message, ref=entry.id))
                    continue
                except TaubeApiError as exc:  # e.g. the recipient does not exist
                    # The same code as the server's answer to a send would have been.
                    code = "msg.unknown_recipient" if exc.code == "user.not_found" else exc.code
                    self._fail(entry.id, TaubeApiError(code, exc.message, ref=entry.id))
                    continue
                except CryptoError as exc:
                    self._fail(entry.id, TaubeApiError("e2ee.failed", str(exc), ref=entry.id))
                    continue
                except (ServerUnreachable, aiohttp.ClientError, TimeoutError, sqlite3.Error) as exc:
                    # Keys could not be fetched, or the profile is busy (another process):
                    # keep it queued, try on the next connection.
                    log.warning("cannot encrypt %s now: %s", entry.id, exc)
                    await ws.close()
                    return
                self._sealed[entry.id] = payloads
            await self._write(ws, fr.Send(id=entry.id, to=entry.to, payloads=payloads))

    # ------------------------------------------------------------------ persistence

    async def _expiry_loop(self) -> None:
        """Remove disappearing messages from the local history, and what we sent from
        the content kept for resend requests, when their time comes."""
        while True:
            now = int(time.time() * 1000)
            try:
                due = await self._db(self._expire, now)
            except Exception:
                log.exception("cannot purge expired messages; will retry")
                due = None
            wait = 30.0 if due is None else min(30.0, max(0.0, (due - now) / 1000) + 0.01)
            self._expiry_changed.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns normally when
            # the task is cancelled just as the event is set, and this loop then went on
            # for ever while close() waited for it (a hang seen in the test suite).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._expiry_changed.wait()

    def _expire(self, now_ms: int) -> int | None:
        """On the profile's thread: forget what is due at ``now_ms``; when the next is."""
        profile, e2ee = self._require_profile(), self._require_e2ee()
        gone = profile.history.purge_expired(now_ms) + e2ee.forget_sent(now_ms)
        if gone:
            profile.scrub()  # and out of the write-ahead log
        dues = [d for d in (profile.history.next_expiry(), e2ee.next_sent_due()) if d is not None]
        return min(dues, default=None)

    async def _forget_sent_at(self, entry: OutboxEntry, content: AnyContent) -> int | None:
        """When this device must forget what it sent in ``entry`` (``content``):
        disappearing content (its own timer) no later than it disappears, and an edit,
        reaction, vote or delete no later than the chat's timer or its target would
        make it; None: after SENT_KEPT_MS (e2ee.py)."""
        if isinstance(content, Text | Poll | Attachment):
            # send() gave it the chat's timer, if the chat had one.
            return entry.created_ms + content.expire_s * 1000 if content.expire_s else None
        if isinstance(content, Disappearing):
            return None  # the timer change itself holds no text, and must reach every device
        target: MessageRef | None = None
        match content:
            case Edit(target=t) | Reaction(target=t) | Delete(target=t) | Vote(poll=t):
                target = t
        return await self._db(self._forget_change_at, entry, target)

    def _forget_change_at(self, entry: OutboxEntry, target: MessageRef | None) -> int | None:
        history = self._require_profile().history
        seconds = history.disappearing(entry.to)
        deadlines = [entry.created_ms + seconds * 1000] if seconds else []
        shown = None if target is None else history.get(target.sender, target.id)
        if shown is not None and shown.expires_at_ms is not None:
            deadlines.append(shown.expires_at_ms)
        return min(deadlines, default=None)

    async def _revise_sent_safely(self, content: object) -> None:
        """``_revise_sent`` for our own edit or delete (once recorded in our history, and
        again once encrypted: whichever comes last finds both the copy and the change);
        housekeeping, so a failure is logged, not raised into the sender."""
        if not isinstance(content, Edit | Delete) or content.target.sender != self.handle:
            return
        try:
            await self._db(self._revise_sent, content)
        except Exception:
            log.exception("cannot update the copy kept for resends of %s", content.target.id)

    def _revise_sent(self, change: Edit | Delete) -> None:
        """On the profile's thread: our edit or delete of our own message, which took
        effect here, also changes the copy of it kept for resend requests, so that a
        device that asks for it again gets what the others see, not the original (the
        edit or delete may have reached that device first and found nothing to change).
        The target went out before ``change`` (the outbox keeps order), so its copy
        exists unless it was forgotten already."""
        profile = self._require_profile()
        target = change.target
        now = profile.history.get(target.sender, target.id)
        if isinstance(change, Delete):
            if now is None or now.deleted:
                profile.keys.forget_sent_id(target.id)
                profile.scrub()  # the text was in the history and this copy
            return
        with profile.keys.transaction():
            kept = profile.keys.sent(target.id)
            if now is None or now.text != change.text or kept is None:
                return
            original = decode_content(kept[1])
            if isinstance(original, Text):
                edited = msgspec.structs.replace(original, text=change.text)
                profile.keys.replace_sent(target.id, encode_content(edited))

    async def _persist_loop(self) -> None:
        while True:
            await self._persist_wake.wait()
            self._persist_wake.clear()
            try:
                await self._persist_once()
            except Exception:
                log.exception("cannot write the profile; will retry")
                await asyncio.sleep(1)
                self._persist_wake.set()

    async def _persist_once(self) -> None:
        async with self._persist_lock:
            profile = self._require_profile()
            ids, self._done_ids = self._done_ids, []
            if ids:
                try:
                    await self._db(profile.outbox_remove, ids)
                except BaseException:
                    self._done_ids[:0] = ids
                    raise
                self._unpersisted.difference_update(ids)
                self._progress_pulse()
            seq = self._cursor.ack_due()
            if seq is not None:
                await self._db(profile.set_last_seq, seq)
                self._cursor.acked_up_to(seq)
                with contextlib.suppress(Exception):
                    await self._try_send(fr.Ack(seq=seq))

    # ------------------------------------------------------------------ helpers

    async def _write(self, ws: aiohttp.ClientWebSocketResponse, frame: fr.ClientFrame) -> None:
        async with self._ws_lock:  # one frame at a time on the wire
            await ws.send_str(fr.encode_frame(frame).decode())

    async def _try_send(self, frame: fr.ClientFrame) -> bool:
        ws = self._ws
        if ws is None or ws.closed or not self._connected.is_set():
            return False
        try:
            await self._write(ws, frame)
        except (aiohttp.ClientError, OSError, ConnectionError):
            return False
        return True

    async def _send_or_queue(self, frame: fr.ClientFrame) -> None:
        if not await self._try_send(frame):
            self._pending_frames.append(frame)

    def _progress_pulse(self) -> None:
        # Wake every waiter once, then arm a fresh event for the next change.
        self._progress.set()
        self._progress = asyncio.Event()

    def _set_fatal(self, error: TaubeClientError) -> None:
        log.warning("stopping: %s", error)
        self._fatal = error
        self._queue.put_nowait(error)
        self._progress_pulse()

    def _raise_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    def _require_e2ee(self) -> E2ee:
        if self._e2ee is None:
            raise RuntimeError("the client is not open")
        return self._e2ee

    def _require_profile(self) -> Profile:
        if self._profile is None:
            raise RuntimeError("the client is not open")
        return self._profile

    async def _db(self, fn: Callable[..., T], *args: object) -> T:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)


def _inbox_event(frame: fr.Receipt | fr.GroupEvent) -> ev.InboxEvent:
    match frame:
        case fr.Receipt():
            return ev.Receipt(
                seq=frame.seq,
                status=frame.status,
                conversation=frame.conversation,
                by=frame.by,
                by_device=frame.by_device,
                ids=tuple(frame.ids),
                at_ms=frame.at_ms,
                sender=frame.sender,
            )
        case fr.GroupEvent():
            return ev.GroupChange(
                seq=frame.seq,
                group=frame.group,
                event=frame.event,
                actor=frame.actor,
                members=tuple(frame.members),
                name=frame.name,
                at_ms=frame.at_ms,
            )


def service_status_event(view: StatusView) -> ev.ServiceStatus:
    """The event for a checked document; an unverified one lends no words of its own."""
    return ev.ServiceStatus(
        verdict=view.verdict,
        incidents=view.open_incidents if view.verified else (),
        fresh=view.fresh,
        verified=view.verified,
        text=headline(view),
        generated_ms=view.document.generated_ms,
    )


def _status_key(status: ev.ServiceStatus) -> tuple[object, ...]:
    return (status.verdict, status.fresh, status.verified, status.text)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
