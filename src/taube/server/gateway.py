"""The WebSocket gateway at /v1/ws: one ``Connection`` per socket.

A connection authenticates, resumes from the device's last acked seq, then runs
the reader (decodes and dispatches client frames in arrival order). The pusher (a
task that reads the inbox after the cursor, never more than ``max_unacked_items``
ahead of the acks) runs only while there is something to read from the store: once
caught up it ends, and doorbells carry the items themselves; a doorbell that cannot
(a gap, a full window) starts it again. ``sent`` answers (in send order, each once
its commit is durable) and cumulative acks (one write in flight, later acks folded
into the next) are done-callbacks, not tasks, so an idle connection holds no task
of its own and a message costs no task switch. One sweep per node (``SWEEP_S``)
closes connections whose client sent no frame or ping for ``idle_timeout_s``, pings
those silent for ``heartbeat_s`` and cuts those that leave the Ping unanswered, and
rings a catch-up read every ``CATCH_UP_POLL_S`` in case a doorbell was lost.
Frames queued during one turn of the event loop leave in one socket write at its
end; the queue is bounded by the socket's buffer (the reader stops reading a client
that does not read its answers, ephemeral frames are dropped), and a peer that takes
nothing for ``slow_reader_timeout_s`` or lets ``max_outbound_bytes`` pile up is
closed (4029). Inbound frames are metered per connection (``frames_per_s``;
server/transport.py holds the edge's other limits). A bad frame gets an ``error``
frame and the connection lives on; only errors whose spec carries a close code end it.

This module is compiled with mypyc (the Makefile's HOT_MODULES), so it must not await
inside a ``finally`` or ``except`` block (tests/unit/test_compiled_modules.py says why):
errors are answered after their except block, and the clean-up at the end of a
connection (``Connection.end``) is awaited by the endpoints that start connections
(endpoints.py, interpreted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, Protocol

import msgspec
from aiohttp import WSMessage, WSMsgType, web

from taube.bus.base import (
    Subscription,
    device_subject,
    inbox_subject,
    presence_subject,
    user_subject,
)
from taube.core.abuse import SUSPENDED
from taube.core.accounts import REVOKED
from taube.core.delivery import notice_seq
from taube.core.notices import NOTICES_SUBJECT
from taube.protocol.errors import TaubeError
from taube.protocol.frames import (
    Ack,
    AnyClientFrame,
    Auth,
    ClientFrame,
    Error,
    KeysLow,
    Ping,
    Pong,
    Read,
    Ready,
    Send,
    ServerFrame,
    SetTyping,
    Watch,
    decode_client_frame,
    encode_frame,
)
from taube.protocol.ids import normalize_handle
from taube.server.admission import Admission, TokenBucket
from taube.server.direct_ws import DirectSocket
from taube.server.framing import PING_FRAME, close_frame, sent_frame, text_header
from taube.server.services import Services
from taube.server.transport import FrameRate
from taube.server.wakeup import Wakeup
from taube.store.base import (
    AckResult,
    DeviceRecord,
    NewMessage,
    Pending,
    SendResult,
    StoreUnavailable,
)

log: Final = logging.getLogger("taube.gateway")


class WebSocket(Protocol):
    """What a Connection uses of its socket: aiohttp's ``WebSocketResponse`` or, for
    upgrades taken at the edge, ``direct_ws.DirectSocket`` (the same meanings)."""

    @property
    def closed(self) -> bool: ...
    async def receive(self) -> WSMessage: ...
    async def send_str(self, data: str) -> None: ...
    async def pong(self, data: bytes = b"") -> None: ...
    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool: ...


PendingSend = tuple[str, NewMessage | None, Pending[SendResult] | SendResult | TaubeError]
"""(message id, the message if it is being committed, its commit or its known outcome)."""

CLIENT_FRAME_TYPES = frozenset(cls.__struct_config__.tag for cls in ClientFrame.__subclasses__())
_TEXT: Final = WSMsgType.TEXT
PUSH_BATCH: Final = 256
STORE_RETRY_S: Final = 1.0
WRITE_BUFFER_HIGH: Final = 256 * 1024
CATCH_UP_POLL_S: Final = 30.0
"""An idle connection reads its inbox this often, in case a doorbell was lost."""
SWEEP_S: Final = 1.0
"""How often the node checks every connection for idleness, heartbeat and catch-up polls
(at most; a quarter of ``idle_timeout_s`` or of ``heartbeat_s`` when that is shorter).
One timer for the node instead of three per connection: an idle connection's timers
measured ~1.6 KiB, aiohttp's heartbeat ~0.5 KiB more."""
CATCH_UP_BATCH: Final = 500
CATCH_UP_BATCH_PAUSE_S: Final = 0.05
"""After the bus reconnects, connections catch up this many at a time, this far apart."""
MAX_PENDING_SENDS: Final = 1024
FATAL_SEND_S: Final = 1.0
"""An error frame before a close waits this long for the socket at most."""
CLOSE_GRACE_S: Final = 3.0
"""How long a connection's end waits for a close another of its tasks started."""
ABORT_AFTER_S: Final = 10.0
"""A slow reader's socket gets this long to take its close frame, then it is cut."""


async def _no_drain() -> None:
    pass


def decode_frame(data: str | bytes) -> AnyClientFrame:
    """Decode a client frame or raise the TaubeError that says what is wrong with it."""
    try:
        return decode_client_frame(data)
    except msgspec.ValidationError as exc:
        try:
            raw = msgspec.json.decode(data)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            raise TaubeError("request.malformed") from None
        tag = raw.get("type") if isinstance(raw, dict) else None
        # A type that is not a string (even an unhashable list) is unknown, not a crash.
        if isinstance(raw, dict) and (not isinstance(tag, str) or tag not in CLIENT_FRAME_TYPES):
            raise TaubeError(
                "request.unknown_type", f"Unknown frame type {raw.get('type')!r}."
            ) from None
        raise TaubeError("request.invalid", str(exc)) from None
    except msgspec.DecodeError:
        raise TaubeError("request.malformed") from None
    except UnicodeDecodeError:  # frames arrive as bytes; msgspec checks the UTF-8
        raise TaubeError("request.malformed", "The frame is not UTF-8.") from None
    except RecursionError:  # JSON nested thousands deep (found by tests/security fuzzing)
        raise TaubeError("request.malformed", "The JSON is nested too deeply.") from None


def frame_ref(frame: AnyClientFrame) -> str | None:
    if isinstance(frame, Send):
        return frame.id
    return getattr(frame, "ref", None)


UNAVAILABLE: Final = TaubeError("server.unavailable", retry_after_s=1)
# Close codes for errors that end a connection only before it is authenticated.
# account.suspended keeps a connection open when you message a suspended account, but
# closes the suspended account's own connections like a revocation (core/abuse.py).
FALLBACK_CLOSE = {"internal": 1011, "server.unavailable": 1013, "account.suspended": 4003}


def error_frame(exc: TaubeError, ref: str | None) -> Error:
    return Error(code=exc.code, message=exc.message, ref=ref, details=exc.details or None)


ACK_FOLD_ITEMS: Final = 16
"""An ack that covers fewer new items than this waits up to ``ack_delay_ms`` for the
next ones (see ``_commit_acks``)."""


class Connection:
    # Slots: an idle connection's attributes (over 30, past CPython's shared-keys limit)
    # would otherwise cost a dictionary of about 2 KiB each.
    __slots__ = (
        "_ack_commit",
        "_ack_in_flight",
        "_ack_target",
        "_acked",
        "_acks_changed",
        "_admission",
        "_after",
        "_awaited",
        "_closing",
        "_cursor",
        "_delivery",
        "_dev",
        "_ended",
        "_flush_soon",
        "_heard",
        "_limits",
        "_loop",
        "_max_outbound",
        "_outbuf",
        "_outbuf_bytes",
        "_pinged",
        "_polled",
        "_ponged",
        "_present",
        "_pushing",
        "_rate",
        "_reading",
        "_receiving",
        "_refused_send",
        "_rung",
        "_send_bucket",
        "_send_room",
        "_side_tasks",
        "_subs",
        "_tasks",
        "_timed_out",
        "_unanswered",
        "_unwritten",
        "_user",
        "_watch_subs",
        "_window",
        "device",
        "drain",
        "hears_notices",
        "peer",
        "s",
        "transport",
        "ws",
    )
    _send_bucket: TokenBucket  # the device's, set once authenticated

    def __init__(
        self,
        ws: WebSocket,
        services: Services,
        peer: str,
        transport: asyncio.Transport | None = None,
        drain: Callable[[], Awaitable[None]] | None = None,
        admission: Admission | None = None,
    ) -> None:
        self.ws = ws
        # Told once when the handshake is over (authenticated or not), so that the
        # node's count of connections still authenticating stays right.
        self._admission = admission
        self.transport = transport
        self.drain = drain or _no_drain
        self.s = services
        self.peer = peer
        self.device: DeviceRecord | None = None
        # The device's handle and id, and the services every message uses, held here
        # too: one attribute read each per message instead of two or three.
        self._user = ""
        self._dev = 0
        self._delivery = services.delivery
        self._limits = services.node.limits
        config = services.config
        self._max_outbound = config.max_outbound_bytes
        self._rate = FrameRate(config.frames_per_s, config.frame_burst)
        self._outbuf: list[bytes] = []
        self._outbuf_bytes = 0
        # What the transport held after our last write: never less than it holds now,
        # but for control frames others write (a pong, ``_ping``'s ping, a close), so
        # the checks per frame need not ask it (``_backlog_over``).
        self._unwritten = 0
        self._flush_soon = False
        self._loop = asyncio.get_running_loop()
        # Sends not answered yet, in arrival order: each is answered ("sent" or an error)
        # when its commit is done (the store's settled hook, else the commit's
        # done-callback), never before an earlier one.
        self._unanswered: deque[PendingSend] | None = None  # made by the first send
        self._awaited: object = None  # the commit at the head that will answer them
        self._after = services.node.after_commit
        # Made when first needed (most connections never wait for either).
        self._send_room: Wakeup | None = None
        self._ack_in_flight = False
        self._ack_commit: tuple[int, Pending[AckResult]] | None = None
        # The first send refused as server.unavailable: later sends are refused too
        # until it comes again (``_dispatch``), so that none is stored ahead of it.
        self._refused_send: str | None = None
        self._ended = False
        self._rung = False  # the pusher must (re)read the inbox
        self._pushing: asyncio.Task[None] | None = None
        self._acks_changed: Wakeup | None = None
        self._window = services.config.max_unacked_items
        # True while the pusher reads the store; a doorbell's item may not jump the queue.
        self._reading = True
        self._cursor = 0  # newest seq pushed
        self._acked = 0  # newest seq acked and committed
        self._ack_target = 0
        self._subs: list[Subscription] = []
        # Empty until used: an idle connection keeps no empty containers (memory per
        # idle connection is a figure we publish).
        self._watch_subs: list[Subscription] | None = None
        self._tasks: list[asyncio.Task[None]] | None = None
        self._side_tasks: set[asyncio.Task[None]] | None = None
        self._closing = False
        # Loop times of the client's last frame or ping and of the pusher's last look at
        # the inbox (the node's sweep reads both, from the moment the socket is open).
        self._heard = self._polled = self._loop.time()
        # Loop times of the node's last Ping to this client and of the client's last
        # Pong (0: none yet); the sweep pings a silent client and drops a mute one.
        self._pinged = self._ponged = 0.0
        self._present = False  # presence was told this connection is up
        self._receiving = False  # the read loop waits in ws.receive()
        self._timed_out = False
        self.hears_notices = False
        """Set in the same step that queued ``ready`` and the current notices: from then
        on, new notices reach this connection (Connections.broadcast), each once."""

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        if self.s.node.draining:
            # Upgraded while the node began to drain, after it told its open connections
            # to move (the caller adds this one to them first, with no await between):
            # tell it too, or it would be cut off when the process exits.
            self.handshake_done()
            await self.move_elsewhere()
            return
        device = await self._authenticate()
        self.handshake_done()
        if device is None:
            return
        self.device = device
        user, dev = device.user, device.id
        self._user, self._dev = user, dev
        self._send_bucket = self._limits.send_bucket(user, dev)
        # Ready is queued first so that no other frame can overtake it.
        await self._enqueue(
            Ready(
                handle=user,
                device=dev,
                last_seq=self._cursor,
                server_time_ms=self.s.clock(),
                max_payload_bytes=self.s.delivery.max_payload_bytes,
            )
        )
        # No await between these: a notice is either among the current ones or
        # broadcast afterwards, never both, never neither.
        for frame in self.s.notices.frames():
            self._buffer(frame)
        self.hears_notices = True
        self._subs.append(await self.s.bus.subscribe(inbox_subject(user, dev), self._ring))
        self._subs.append(await self.s.bus.subscribe(device_subject(user, dev), self._control))
        self._subs.append(await self.s.bus.subscribe(user_subject(user), self._forward))
        self._present = True  # before: connected() counts the connection first thing
        await self.s.presence.connected(user)
        await self._keys_low_after_ready(user, dev)
        log.info("connected user=%s device=%d peer=%s", user, dev, self.peer)
        # No task of its own for an idle connection (most of them): the pusher runs
        # while there is something to read from the store, acks and answers to
        # sends are callbacks.
        self._ring_pusher()
        if isinstance(self.ws, DirectSocket):
            self.ws.take_frames(self._take_at_once)
        await self._read_loop()

    async def end(self) -> None:
        """After ``run``, however it ended: what an authenticated connection leaves
        behind (its last ack, subscriptions, presence). Awaited by the caller in a
        ``finally`` block (server/endpoints.py), not here: see that module's docstring."""
        if self.device is None or self._ended:
            return
        user, dev = self._user, self._dev
        if isinstance(self.ws, DirectSocket):
            self.ws.take_frames(None)
        self._ended = True  # no more ack writes from callbacks: the last one is below
        if self._pushing is not None:
            self._pushing.cancel()
        if self._tasks:
            # Closes started elsewhere (idle timeout, revocation) ended the read
            # loop: let them finish the close handshake (bounded), so that the
            # client reads why before the connection goes.
            await asyncio.wait(self._tasks, timeout=CLOSE_GRACE_S)
        for task in [*(self._tasks or ()), *(self._side_tasks or ())]:
            task.cancel()
        await self._commit_last_ack()
        for sub in [*self._subs, *(self._watch_subs or ())]:
            await sub.cancel()
        if self._present:  # else the count would drop for another connection of the user
            await self.s.presence.disconnected(user)
        log.info("disconnected user=%s device=%d", user, dev)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task of this connection (cancelled when it ends)."""
        if self._tasks is None:
            self._tasks = []
        self._tasks.append(self._loop.create_task(work))

    def handshake_done(self) -> None:
        """Tell admission control this connection is past its handshake (once)."""
        if self._admission is not None:
            admission, self._admission = self._admission, None
            admission.handshake_done()

    async def _keys_low_after_ready(self, user: str, dev: int) -> None:
        """Tell a device that runs low on one-time prekeys, right after ``ready``
        (after subscribing, so that a notice from a fetch meanwhile is not lost)."""
        keys = self.s.keys
        if keys.min_one_time <= 0:
            return
        try:
            status = await keys.status(user, dev)
        except StoreUnavailable:
            return  # a hint only: the next ready or fetch says it again
        if keys.is_low(status):
            await self._enqueue(KeysLow(one_time_prekeys=status.one_time_prekeys))

    async def _guard(self, loop: Awaitable[None]) -> None:
        """A crashed loop closes the connection (the client reconnects and resumes)."""
        try:
            await loop
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("connection loop failed peer=%s", self.peer)
        await self._close(1011)  # after the except block (compiled: see the module docstring)

    async def _close(self, code: int) -> None:
        if not self._closing:
            self._closing = True
            await self.ws.close(code=code)

    async def _fatal(self, exc: TaubeError, ref: str | None = None) -> None:
        """Tell the client why, then close with the error's close code."""
        self._flush()  # what was queued before goes out first
        with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):
            async with asyncio.timeout(FATAL_SEND_S):  # the peer may not be reading
                await self.ws.send_str(encode_frame(error_frame(exc, ref)).decode())
        await self._close(exc.spec.ws_close or FALLBACK_CLOSE.get(exc.code, 4000))

    async def move_elsewhere(self) -> None:
        """This node is draining: say so (clients reconnect to another node) and close."""
        await self._fatal(TaubeError("server.draining", retry_after_s=0))

    async def _authenticate(self) -> DeviceRecord | None:
        # Refusals are said after the except blocks (compiled: see the module docstring).
        msg = await self._first_frame()
        if msg is None:
            await self._fatal(TaubeError("auth.timeout"))
            return None
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return None
        refusal: TaubeError
        try:
            frame = decode_frame(msg.data)
            if not isinstance(frame, Auth):
                raise TaubeError("auth.required", "The first frame must be auth.")
            device = await self.s.accounts.authenticate(frame.token)
            # Everything up to the client's last_seq is acked (it has those items).
            self._cursor = self._acked = self._ack_target = await self.s.delivery.ack(
                device.user, device.id, frame.last_seq
            )
            return device
        except TaubeError as exc:
            refusal = exc
            if exc.spec.ws_close is None and exc.code != "account.suspended":
                refusal = TaubeError("auth.required", exc.message, **exc.details)
        except StoreUnavailable:
            refusal = UNAVAILABLE
        except Exception:
            log.exception("authentication failed unexpectedly peer=%s", self.peer)
            refusal = TaubeError("internal")
        await self._fatal(refusal)
        return None

    async def _first_frame(self) -> WSMessage | None:
        """The client's first frame other than a ping or pong; None if it took too long."""
        config = self.s.config
        try:
            async with asyncio.timeout(min(config.auth_timeout_s, config.handshake_timeout_s)):
                msg = await self.ws.receive()
                while msg.type in (WSMsgType.PING, WSMsgType.PONG):  # autoping is off
                    if msg.type == WSMsgType.PING:
                        await self.ws.pong(msg.data)
                    msg = await self.ws.receive()
                return msg
        except TimeoutError:
            return None

    def sweep(self, now: float, idle_s: float, heartbeat_s: float) -> None:
        """The node's periodic check: close a connection the client left silent for
        ``idle_s``; ping one silent for ``heartbeat_s`` and drop it if that Ping is not
        answered within half of it (a peer gone without closing); read the inbox of one
        that has not for CATCH_UP_POLL_S (in case a doorbell was lost). One sweep per
        node instead of aiohttp's heartbeat timer per connection (~0.5 KiB each, and a
        reschedule on every frame received)."""
        if self.device is None or self._closing or self._ended or self._timed_out:
            return
        if now - self._heard >= idle_s:
            self._timed_out = True
            self._background(self._fatal(TaubeError("conn.idle")))
            return
        heard, pinged = max(self._heard, self._ponged), self._pinged
        if pinged and heard < pinged:  # the last Ping is still unanswered
            # Only while the read loop waits for frames (a Pong may sit unread behind
            # a send waiting for room) and the peer took everything we sent (else the
            # Ping is queued behind it: the slow-reader bound is the one that applies).
            if now - pinged >= heartbeat_s / 2 and self._receiving and not self._backlog():
                self._drop_unresponsive()
                return
        elif now - heard >= heartbeat_s:
            self._ping(now)
        if now - self._polled >= CATCH_UP_POLL_S:
            self._polled = now
            self._ring_pusher()

    def _ping(self, now: float) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            self._flush()  # after what is queued: a control frame never splits a message
            transport.write(PING_FRAME)
            self._unwritten += len(PING_FRAME)
            self._pinged = now

    def _drop_unresponsive(self) -> None:
        """No Pong in time: the peer is gone (a dead link, a sleeping laptop). Cut the
        socket (the client sees 1006 if it ever does); the read loop ends on it."""
        self._closing = True
        device = self.device.id if self.device else None
        log.info("no pong, dropped peer=%s device=%s", self.peer, device)
        if self.transport is not None:
            self.transport.abort()

    # ------------------------------------------------------------ reading

    async def _read_loop(self) -> None:
        # Idleness is checked by the node's sweep (``sweep``), not by a timeout on every
        # receive: entering and leaving asyncio.timeout per frame measured 8 % of the
        # server's CPU under load.
        clock = self._loop.time
        self._heard = self._polled = clock()
        while not self._closing:
            if self._backlog() > WRITE_BUFFER_HIGH:
                # A client that does not read its answers is not read from either.
                await self._make_room()
            self._receiving = True
            msg = await self.ws.receive()
            self._receiving = False
            if msg.type == WSMsgType.PONG:  # answers to our pings are no sign of use
                self._ponged = clock()
                continue
            self._heard = clock()
            if msg.type == WSMsgType.PING:  # the client's heartbeat (autoping is off)
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.ws.pong(msg.data)
                continue
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
            ref = None
            try:
                wait = self._rate.take(clock())
                if wait:
                    if self._rate.flooding:
                        await self._fatal(TaubeError("rate.flood"))
                        break
                    with contextlib.suppress(TaubeError):
                        ref = frame_ref(decode_frame(msg.data))
                    raise TaubeError(
                        "rate.limited",
                        "Too many frames on this connection.",
                        retry_after_s=FrameRate.retry_after_s(wait),
                    )
                frame = decode_frame(msg.data)
                if type(frame) is Send:  # most frames: no frame_ref() call
                    ref = frame.id
                    if self._send_at_once(frame):
                        continue
                else:
                    ref = frame_ref(frame)
                await self._dispatch(frame)
                continue
            except Exception as exc:  # answered below, after the except block
                failure = exc
            ends = await self._refuse(failure, ref)
            # Not kept until the next failure: its traceback holds the frame's objects.
            del failure
            if ends:
                break

    async def _refuse(self, failure: Exception, ref: str | None) -> bool:
        """Answer a frame that failed; True if the connection ends (the error's spec
        carries a close code)."""
        if isinstance(failure, TaubeError):
            if failure.spec.ws_close is not None:
                await self._fatal(failure, ref)
                return True
            await self._enqueue(error_frame(failure, ref))
        elif isinstance(failure, StoreUnavailable):
            await self._enqueue(error_frame(UNAVAILABLE, ref))
        else:
            log.error("frame handling failed peer=%s", self.peer, exc_info=failure)
            await self._enqueue(error_frame(TaubeError("internal"), ref))
        return False

    def _take_at_once(self, msg: WSMessage) -> bool:
        """The read loop's work for a frame, done as the frame arrives (in the socket's
        callback) while the loop sleeps: a send on a known route (``_send_at_once``)
        and an ack, most frames under load. Saves the loop's wakeup per frame (a future,
        two coroutines and a task step): Workload A 26.7 -> 23.7 us of CPU per message,
        and a turn of the event loop on every message's way. Anything else, or a frame
        the loop would refuse (rate, a full send queue, a slow reader), says False and
        goes to the loop untouched: nothing here has an effect before the frame is
        sure to be taken."""
        # msg[0], msg[1]: WSMessage is a named tuple; indexing it is cheaper than its
        # .type and .data descriptors, once per frame.
        if not self._receiving or self._closing or msg[0] is not _TEXT:
            return False
        if self._backlog_over(WRITE_BUFFER_HIGH):
            return False
        try:
            frame = decode_client_frame(msg[1])
        except Exception:  # the loop decodes it again and says what is wrong
            return False
        if type(frame) is Ack:
            if not self._frame_allowed():
                return False
            self._ack_target = max(self._ack_target, min(frame.seq, self._cursor))
            self._commit_acks()
            return True
        if type(frame) is not Send:
            return False
        try:
            return self._send_at_once(frame, self._frame_allowed)
        except TaubeError as exc:  # rate.limited (retry_after_s), as the loop answers it
            self._buffer(encode_frame(error_frame(exc, frame.id)))
        except Exception:  # as the loop: said, logged, and the connection goes on
            log.exception("frame handling failed peer=%s", self.peer)
            self._buffer(encode_frame(error_frame(TaubeError("internal"), frame.id)))
        return True

    def _frame_allowed(self) -> bool:
        """The connection's frame rate allows one more now (then it is taken and the
        frame counts as heard); if not, nothing is taken: the read loop refuses it."""
        now = self._loop.time()
        if self._rate.bucket.take(now):
            return False
        self._heard = now
        return True

    async def _dispatch(self, frame: AnyClientFrame) -> None:
        assert self.device is not None
        user, dev = self.device.user, self.device.id
        match frame:
            case Send():
                if self._refused_send is not None:
                    if frame.id != self._refused_send:
                        # Answered in its turn, behind the sends still being committed.
                        self._queue_send((frame.id, None, UNAVAILABLE))
                        return
                    self._refused_send = None  # the client resends in order: go on
                self.s.node.limits.check_send(self._send_bucket)  # rate.limited, retry_after_s
                prepared = await self.s.delivery.prepare(user, dev, frame)
                while self._sends_full():
                    if self._send_room is None:
                        self._send_room = Wakeup(self._loop)
                    self._send_room.clear()
                    await self._send_room.wait()
                # Submitted in arrival order, so commits keep the order of the sends.
                if isinstance(prepared, SendResult):
                    self._queue_send((frame.id, None, prepared))
                else:
                    self._queue_send((frame.id, prepared, self.s.delivery.submit(prepared)))
            case Ack(seq=seq):
                self._ack_target = max(self._ack_target, min(seq, self._cursor))
                self._commit_acks()
            case Read():
                await self.s.delivery.read(user, dev, frame)
            case SetTyping():
                await self.s.delivery.typing(user, frame)
            case Watch(users=users):
                await self._watch([normalize_handle(u) for u in users])
            case Ping(ref=ref):
                await self._enqueue(Pong(ref=ref, server_time_ms=self.s.clock()))
            case Auth():
                raise TaubeError("auth.already_authenticated")

    async def _watch(self, users: list[str]) -> None:
        assert self.device is not None
        for sub in self._watch_subs or ():
            await sub.cancel()
        self._watch_subs = watching = []
        for user in dict.fromkeys(users):
            watching.append(await self.s.bus.subscribe(presence_subject(user), self._watcher(user)))
            await self._enqueue(await self.s.presence.current(user, watcher=self.device.user))

    def _watcher(self, watched: str) -> Callable[[str, bytes], None]:
        """Forwards ``watched``'s presence frames, unless ``watched`` blocked this user
        (who keeps seeing them offline: core/blocks.py)."""

        def forward(subject: str, data: bytes) -> None:
            assert self.device is not None
            blocked = self.s.directory.cached_blocked_by(watched)
            if blocked is None:  # not cached: ask the store, off this handler
                task = asyncio.create_task(self._forward_unless_hidden(watched, subject, data))
                if self._side_tasks is None:
                    self._side_tasks = set()
                self._side_tasks.add(task)
                task.add_done_callback(self._side_tasks.discard)
            elif self.device.user not in blocked:
                self._forward(subject, data)

        return forward

    async def _forward_unless_hidden(self, watched: str, subject: str, data: bytes) -> None:
        assert self.device is not None
        with contextlib.suppress(StoreUnavailable):  # presence is ephemeral
            if not await self.s.presence.hidden_from(watched, self.device.user):
                self._forward(subject, data)

    # ------------------------------------------------------------ loops

    async def _enqueue(self, frame: ServerFrame) -> None:
        """Queue a frame; waits while the peer is not reading fast enough."""
        self._buffer(encode_frame(frame))
        if self._backlog() > WRITE_BUFFER_HIGH:
            await self._make_room()

    async def _make_room(self) -> None:
        """Wait until the socket took the backlog, or drop the slow reader."""
        if self._closing:
            return
        self._flush()
        try:
            async with asyncio.timeout(self.s.config.slow_reader_timeout_s):
                await self.drain()
        except TimeoutError:
            self._drop_slow_reader()

    def _buffer(self, data: bytes) -> None:
        """Frames queued in one turn of the event loop go out in one write at its end
        (no writer task: an idle connection should cost as little as possible). What
        the socket has not taken stays under ``max_outbound_bytes``."""
        if self._closing:
            return
        if self._backlog_over(self._max_outbound - len(data)):
            self._drop_slow_reader()
            return
        outbuf = self._outbuf
        outbuf.append(text_header(len(data)))  # header and payload: joined once, in _flush
        outbuf.append(data)
        self._outbuf_bytes += len(data)
        if not self._flush_soon:
            self._flush_soon = True
            self._loop.call_soon(self._flush)
        if self._after.collecting:  # answering a durable batch: written at its end
            self._after.wrote(self._flush)

    def _drop_slow_reader(self) -> None:
        """A client that does not read must not grow our memory: forget what is queued,
        put a close frame (4029) behind what the socket holds already and close; if it
        does not take even that within ``ABORT_AFTER_S``, cut it. It reconnects and
        resumes from its last ack (nothing acked is lost)."""
        if self._closing:
            return
        self._closing = True
        backlog = self._backlog()
        self._outbuf, self._outbuf_bytes = [], 0
        device = self.device.id if self.device else None
        log.warning("slow reader closed peer=%s device=%s backlog=%d", self.peer, device, backlog)
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(close_frame(4029, "conn.slow_reader"))
            transport.close()
            self._loop.call_later(ABORT_AFTER_S, transport.abort)

    def _backlog(self) -> int:
        self._unwritten = self.transport.get_write_buffer_size() if self.transport else 0
        return self._outbuf_bytes + self._unwritten

    def _backlog_over(self, limit: int) -> bool:
        """``_backlog() > limit``, asking the transport only when the bound it held
        after our last write says so: three checks per message each called into it
        (~1.5 % of the server's CPU in Workload A, docs/performance.md 9.23)."""
        if self._outbuf_bytes + self._unwritten <= limit:
            return False
        return self._backlog() > limit

    def _flush(self) -> None:
        self._flush_soon = False
        if not self._outbuf:
            return
        data, self._outbuf, self._outbuf_bytes = b"".join(self._outbuf), [], 0
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)
            self._unwritten = transport.get_write_buffer_size()

    def _ring_pusher(self) -> None:
        """Have the pusher read the inbox: wake it, or start it if it is not running."""
        self._rung = True
        if self._pushing is None and not self._ended:
            self._pushing = self._loop.create_task(self._guard(self._pusher()))

    async def _pusher(self) -> None:
        """Catch up from the store, then end; once caught up, doorbells carry the items
        (``_ring``), and ``_ring_pusher`` starts it again when they cannot."""
        try:
            await self._push_until_caught_up()
        finally:
            self._pushing = None

    async def _push_until_caught_up(self) -> None:
        assert self.device is not None
        user, dev = self.device.user, self.device.id
        window = self._window
        while True:
            self._rung = False
            while self._cursor - self._acked >= window:
                if self._acks_changed is None:
                    self._acks_changed = Wakeup(self._loop)
                self._acks_changed.clear()
                await self._acks_changed.wait()
            room = window - (self._cursor - self._acked)
            self._reading = True
            try:
                items = await self.s.delivery.inbox(user, dev, self._cursor, min(PUSH_BATCH, room))
            except StoreUnavailable:
                items = None
            if items is None:  # the store is away: wait here, not in the except block
                await asyncio.sleep(STORE_RETRY_S)
                self._rung = True
                continue
            if not items:
                self._reading = False
                self._polled = self._loop.time()
                # A device that stays connected for months must not expire.
                self.device = await self.s.accounts.keep_alive(self.device)
                if self._rung:  # rung while reading or during keep_alive: look again
                    continue
                return
            # Once a device is caught up its items come with their doorbells (_ring),
            # so this line stays rare; the tests read it to tell the two apart.
            log.debug(
                "inbox read user=%s device=%d after=%d items=%d",
                user, dev, self._cursor, len(items),
            )  # fmt: skip
            for item in items:
                await self._enqueue(item)
            self._cursor = items[-1].seq

    def _commit_acks(self) -> None:
        """Commit the newest cumulative ack, one write at a time: acks that come while
        one is being committed are folded into the next. A small ack (a chat acks each
        message as it comes) first waits ``ack_delay_ms`` so that the next ones fold
        into it: one commit, one receipt and one receipt ack instead of one per message.
        Callbacks, not a task, so an ack costs no task switch."""
        if self._ack_in_flight or self._ended or self._ack_target <= self._acked:
            return
        delay = self.s.config.ack_delay_ms
        if delay and self._ack_target - self._acked < ACK_FOLD_ITEMS:
            self._ack_in_flight = True  # acks that come meanwhile only move the target
            self._loop.call_later(delay / 1000, self._ack_due)
            return
        self._submit_ack()

    def _ack_due(self) -> None:
        self._ack_in_flight = False
        if not self._ended:  # else the close commits it (_commit_last_ack)
            self._submit_ack()

    def _submit_ack(self) -> None:
        assert self.device is not None
        target = self._ack_target
        self._ack_in_flight = True
        done = self._delivery.submit_ack(self._user, self._dev, target)
        self._ack_commit = (target, done)
        self._when_settled(done, self._ack_settled)  # receipts in the batch's write

    def _when_settled(self, commit: Pending[Any], then: Callable[..., None]) -> None:
        """Call ``then`` when ``commit`` is done: from the store's settled hook, in the
        commit's own turn (after_commit.py), or from its done-callback a turn later if
        the batch ended some other way. ``then`` must do nothing the second time."""
        self._after.answer(then)
        commit.add_done_callback(then)

    def _ack_settled(self, _done: object = None) -> None:
        pending = self._ack_commit
        if pending is not None and pending[1].done():
            self._ack_commit = None
            self._acks_committed(*pending)

    def _acks_committed(self, target: int, done: Pending[AckResult]) -> None:
        self._ack_in_flight = False
        try:
            self._delivery.acked(done.result())
        except StoreUnavailable:  # try again; the items stay until acked
            self._loop.call_later(STORE_RETRY_S, self._commit_acks)
            return
        except BaseException:
            log.exception("ack failed peer=%s", self.peer)
            self._background(self._close(1011))
            return
        self._acked = max(self._acked, target)
        if self._acks_changed is not None:
            self._acks_changed.set()
        self._commit_acks()

    async def _commit_last_ack(self) -> None:
        """An ack that came just before the close still counts (and makes its receipts)."""
        if self.device is not None and self._ack_target > self._acked:
            try:
                await self.s.delivery.ack(self.device.user, self.device.id, self._ack_target)
            except StoreUnavailable as exc:
                # Expected during a store outage, and harmless: the items stay in the
                # inbox and come again on the next connection (the client drops those
                # it has). One line, not a traceback per connection.
                log.warning("final ack not committed peer=%s: %s", self.peer, exc)
            except Exception:
                log.exception("final ack failed peer=%s", self.peer)

    def _send_at_once(self, frame: Send, allowed: Callable[[], bool] = lambda: True) -> bool:
        """Queue a send on a known route without awaiting anything (most sends: one
        payload, an address this device sent to before, no change in the directory
        since); False when it needs the full path (``_dispatch``), or when ``allowed``
        (asked only then, last) says no."""
        assert self.device is not None
        delivery = self._delivery
        if self._sends_full() or self._refused_send is not None:
            return False
        prepared = delivery.prepare_known_route(self._user, self._dev, frame)
        if prepared is None or not allowed():
            return False
        self._limits.check_send(self._send_bucket)  # rate.limited, retry_after_s
        self._queue_send((frame.id, prepared, delivery.submit(prepared)))
        return True

    def _sends_full(self) -> bool:
        return self._unanswered is not None and len(self._unanswered) >= MAX_PENDING_SENDS

    def _queue_send(self, pending: PendingSend) -> None:
        if self._unanswered is None:
            self._unanswered = deque()  # an idle connection never pays for its block
        self._unanswered.append(pending)
        if len(self._unanswered) == 1:  # nothing ahead of it: it answers for itself
            self._answer_sends()

    def _answer_sends(self, _done: object = None) -> None:
        """Answer the sends whose commits are done, in the order they came. Only the
        first unanswered send's commit asks for this (sends behind it are answered with
        it, or wait for their own turn at the front): one call per batch and connection
        instead of one per send, from the store's settled hook (after_commit.py)."""
        unanswered = self._unanswered
        while unanswered:  # None before the first send
            message_id, message, commit = unanswered[0]
            result: SendResult | TaubeError
            # A tuple, not SendResult | TaubeError: that built the union type for every
            # send answered.
            if isinstance(commit, (SendResult, TaubeError)):
                result = commit
            elif not commit.done():
                if commit is not self._awaited:  # once per commit, however often asked
                    self._awaited = commit
                    self._when_settled(commit, self._answer_sends)
                return
            else:
                try:
                    result = commit.result()
                except TaubeError as exc:
                    result = exc
                except (StoreUnavailable, asyncio.CancelledError):
                    # Not stored: the client keeps it in its outbox and sends it again,
                    # with every later one, in order (the SDKs close and resend).
                    result = UNAVAILABLE
                    if self._refused_send is None:
                        self._refused_send = message_id
                except Exception:
                    log.exception("commit failed peer=%s", self.peer)
                    result = TaubeError("internal")
            unanswered.popleft()
            if isinstance(result, TaubeError):
                self._buffer(encode_frame(error_frame(result, message_id)))
                continue
            if message is not None:
                self._delivery.committed(message, result)
            self._buffer(sent_frame(message_id, result.sent_at_ms, result.duplicate))
        self._awaited = None  # all answered: keep no finished future alive
        if self._send_room is not None:
            self._send_room.set()

    # ------------------------------------------------------------ bus handlers

    def _ring(self, subject: str, data: bytes) -> None:
        if not self._reading:
            seq = notice_seq(data)
            if (
                seq == self._cursor + 1
                and seq - self._acked <= self._window
                and not self._backlog_over(WRITE_BUFFER_HIGH)
            ):
                self._buffer(data)
                self._cursor = seq
                return
        self._ring_pusher()

    def catch_up(self) -> None:
        """Read the inbox now (doorbells may have been lost)."""
        self._ring_pusher()

    def _forward(self, subject: str, data: bytes) -> None:
        """Ephemeral frames (typing, presence) are dropped rather than queued without bound."""
        if self._backlog() <= WRITE_BUFFER_HIGH:
            self._buffer(data)

    def _control(self, subject: str, data: bytes) -> None:
        """Notices for this device: ``revoked``, or an ephemeral server frame to pass on
        as it is (``keys_low``)."""
        if data == REVOKED:
            self._background(self._fatal(TaubeError("auth.revoked")))
        elif data == SUSPENDED:
            self._background(self._fatal(TaubeError("account.suspended")))
        elif data.startswith(b"{"):
            self._forward(subject, data)


SERVICES: web.AppKey[Services] = web.AppKey("services")


class Connections:
    """The open connections of this node (to close them on shutdown, and to make them
    catch up after the bus reconnected)."""

    def __init__(self) -> None:
        self.open: set[Connection] = set()
        # The tasks of connections taken at the edge (direct_ws): aiohttp does not know
        # them, so shutdown waits for them here.
        self.direct: set[asyncio.Task[Any]] = set()
        self._catching_up: asyncio.Task[None] | None = None

    async def wait_direct(self, timeout_s: float) -> None:
        """Let the edge's connections end (told to move), cancel what is left."""
        if not self.direct:
            return
        _, pending = await asyncio.wait(set(self.direct), timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)

    async def sweep_forever(self, idle_timeout_s: float, heartbeat_s: float) -> None:
        """Every SWEEP_S (or a quarter of the idle timeout or of the heartbeat, when
        shorter), ``sweep`` each connection."""
        loop = asyncio.get_running_loop()
        every = min(SWEEP_S, idle_timeout_s / 4, heartbeat_s / 4)
        while True:
            await asyncio.sleep(every)
            now = loop.time()
            for connection in list(self.open):
                connection.sweep(now, idle_timeout_s, heartbeat_s)

    def catch_up(self) -> None:
        """The bus was away: doorbells for this node's devices may have been lost
        meanwhile (rung by other nodes while this one was not subscribed). Every open
        connection reads its inbox now rather than at its next catch-up poll; in
        batches, so that a node with many connections does not queue every read on the
        store's pool at once."""
        if self._catching_up is None or self._catching_up.done():
            self._catching_up = asyncio.get_running_loop().create_task(self._ring_all())

    def broadcast(self, frame: bytes) -> None:
        """An ephemeral frame for every authenticated connection of this node (a service
        notice). One bus subscription per node feeds it (core/notices.py); each
        connection only queues the bytes, encoded once."""
        for connection in self.open:
            if connection.hears_notices:
                connection._forward(NOTICES_SUBJECT, frame)

    async def _ring_all(self) -> None:
        connections = list(self.open)
        for start in range(0, len(connections), CATCH_UP_BATCH):
            if start:
                await asyncio.sleep(CATCH_UP_BATCH_PAUSE_S)
            for connection in connections[start : start + CATCH_UP_BATCH]:
                connection.catch_up()


CONNECTIONS: web.AppKey[Connections] = web.AppKey("connections")
