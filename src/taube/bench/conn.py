"""One benchmark device connection: connect, authenticate, read and ack; and the tally.

A :class:`Device` is one account's only device on one WebSocket. One task
reads it; every frame is decoded by :func:`taube.protocol.frames.decode_server_frame`.
Inbox items are acked cumulatively once the reader has caught up with what the
socket delivered (a ``call_soon`` callback runs only when the reader waits for
more), so acks batch under load and follow every message when it is light, the
way a client that acks "after each batch" behaves; with ``ack_delay_s`` the
ack waits that long instead, the way a client that batches acks on a timer
behaves. ``sent`` frames and errors are counted in the worker's
:class:`Tally`; messages go to ``on_message``.
"""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Callable
from typing import Literal

import aiohttp
from aiohttp import WSMsgType

from taube.bench.accounts import BenchAccount, retry_after
from taube.bench.wire import encode_masked, now_us, transport_of
from taube.protocol.frames import (
    Ack,
    Auth,
    Error,
    GroupEvent,
    Message,
    Ready,
    Receipt,
    Sent,
    decode_server_frame,
    encode_frame,
)

LOAD_SHEDDING = frozenset({"server.overloaded", "server.draining"})


class ConnectError(Exception):
    """A connection could not be opened or authenticated; ``code`` says why.

    ``retry_after_s`` is set when the server sheds load and asked to come back.
    """

    def __init__(self, code: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.retry_after_s = retry_after_s


class Tally:
    """What one worker process counted; only its event loop touches it.

    Times are microseconds of :func:`taube.bench.wire.now_us`. Latencies are
    kept for messages *sent* inside the measured window; deliveries are counted
    when they *arrive* inside it.
    """

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.window_start_us = 0
        self.window_end_us = 0
        self.sent = 0
        self.sent_window = 0
        self.delivered = 0
        self.delivered_window = 0
        self.sent_acked = 0
        self.duplicates = 0
        self.reordered = 0
        self.stale = 0
        self.refused = 0
        self.closed = 0
        self.setup_retries = 0
        self.latency_us: array[int] = array("q")
        self.sent_ack_us: array[int] = array("q")
        self.errors: dict[str, int] = {}

    def error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1

    def in_window(self, us: int) -> bool:
        return self.window_start_us <= us < self.window_end_us


def _ignore(frame: Message) -> None:
    return None


class Device:
    """One authenticated connection; ``run()`` reads it until it closes."""

    __slots__ = (
        "_ack_delay_s",
        "_ack_pending",
        "_ack_seq",
        "_loop",
        "handle",
        "on_message",
        "on_refused",
        "ready",
        "stopping",
        "tally",
        "transport",
        "ws",
    )

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse[Literal[False]],
        ready: Ready,
        tally: Tally,
        ack_delay_s: float = 0.0,
    ) -> None:
        self.ws = ws
        self.ready = ready
        self.handle = ready.handle
        self.tally = tally
        self.transport = transport_of(ws)
        self.on_message: Callable[[Message], None] = _ignore
        self.on_refused: Callable[[str], None] = lambda message_id: None
        self.stopping = False
        self._loop = asyncio.get_running_loop()
        self._ack_seq = 0
        self._ack_pending = False
        self._ack_delay_s = ack_delay_s

    def write(self, data: bytes) -> None:
        """Write ready-made frames (see taube.bench.wire) in one call."""
        if not self.transport.is_closing():
            self.transport.write(data)

    async def run(self) -> None:
        try:
            await self._read()
        except Exception as exc:  # a bug or a frame we cannot read: count it, stop reading
            self.tally.error(f"loadgen.{type(exc).__name__}")

    async def _read(self) -> None:
        receive, decode, tally = self.ws.receive, decode_server_frame, self.tally
        tag, ack = tally.tag, self._ack_later
        while True:
            msg = await receive()
            if msg.type is not WSMsgType.TEXT and msg.type is not WSMsgType.BINARY:
                break
            frame = decode(msg.data)
            kind = type(frame)
            if kind is Message:
                ack(frame.seq)  # type: ignore[union-attr]
                self.on_message(frame)  # type: ignore[arg-type]
            elif kind is Sent:
                message_id = frame.id  # type: ignore[union-attr]
                if message_id[9:23] == tag:  # inline wire.tag_of and wire.sent_us_of
                    tally.sent_acked += 1
                    sent_us = int(message_id[24:], 16)
                    if tally.window_start_us <= sent_us < tally.window_end_us:
                        tally.sent_ack_us.append(now_us() - sent_us)
            elif kind is Receipt or kind is GroupEvent:
                ack(frame.seq)  # type: ignore[union-attr]
            elif kind is Error:
                assert isinstance(frame, Error)
                tally.error(frame.code)
                if frame.ref is not None and frame.ref[9:23] == tag:
                    tally.refused += 1
                    self.on_refused(frame.ref)
        if not self.stopping:
            tally.closed += 1
            tally.error(f"ws.closed.{self.ws.close_code}")

    def _ack_later(self, seq: int) -> None:
        self._ack_seq = seq
        if not self._ack_pending:
            self._ack_pending = True
            if self._ack_delay_s:
                self._loop.call_later(self._ack_delay_s, self._flush_ack)
            else:
                self._loop.call_soon(self._flush_ack)

    def _flush_ack(self) -> None:
        self._ack_pending = False
        self.write(encode_masked(Ack(seq=self._ack_seq)))

    async def close(self) -> None:
        self.stopping = True
        await self.ws.close()


async def connect(
    session: aiohttp.ClientSession,
    url: str,
    account: BenchAccount,
    tally: Tally,
    wait_s: float,
    ack_delay_s: float = 0.0,
) -> Device:
    """Open a WebSocket, authenticate as ``account`` and wait ``wait_s`` for ``ready``."""
    try:
        ws = await session.ws_connect(url, decode_text=False, max_msg_size=0)
    except aiohttp.WSServerHandshakeError as exc:
        if exc.status == 503:  # admission control: the answer names a time to come back
            later = retry_after(exc.headers or {})
            raise ConnectError("server.overloaded", "the server sheds load", later) from None
        raise ConnectError("connect.refused", f"HTTP {exc.status}: {exc.message}") from None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise ConnectError("connect.failed", f"{type(exc).__name__}: {exc}") from None
    try:
        await ws.send_frame(encode_frame(Auth(token=account.token)), WSMsgType.TEXT)
        msg = await ws.receive(timeout=wait_s)
        if msg.type is not WSMsgType.TEXT:
            raise ConnectError("connect.closed", f"the server closed the socket ({msg.type})")
        frame = decode_server_frame(msg.data)
        if isinstance(frame, Error):
            again = 1.0 if frame.code in LOAD_SHEDDING else None
            raise ConnectError(frame.code, frame.message, again)
        if not isinstance(frame, Ready):
            raise ConnectError("connect.unexpected", f"expected ready, got {type(frame).__name__}")
    except TimeoutError:
        await ws.close()
        raise ConnectError("connect.timeout", "no ready frame in time") from None
    except BaseException:
        await ws.close()
        raise
    return Device(ws, frame, tally, ack_delay_s)
