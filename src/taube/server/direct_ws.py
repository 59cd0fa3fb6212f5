"""WebSocket connections that keep none of aiohttp's per-request objects.

Why part of this is by hand: for the whole life of every WebSocket, aiohttp keeps the
parsed upgrade request and its headers, the HTTP request handler with its parser and
message queue, two tasks and the handler's coroutine chain through the middlewares:
about half of the ~19 KB an idle connection cost, spent on nothing after the
handshake. A node is sized by its idle connections, so the edge
(``transport.GuardedProtocol``) offers each new connection's first request head to
``DirectUpgrade`` first:

- a well-formed WebSocket upgrade of ``/v1/ws`` that passes every check the handler
  makes (origin, draining, connections per address, admission) is answered here with
  ``101`` and served by a ``DirectSocket``: frames are parsed by aiohttp's own frame
  reader (C), written by ``framing``;
- anything else (another path, a malformed upgrade, one that would be refused, a
  connection from a trusted proxy, whose client address needs the proxy headers) goes
  to aiohttp unchanged, whose handler answers it exactly as before: the same errors,
  statuses and headers. So this path never has to produce an error response.

The frame reader and its queue come from a private aiohttp module; if an aiohttp
release moves them, ``DIRECT_AVAILABLE`` is False and every connection takes aiohttp's
path (correct, only heavier).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
import re
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import WSCloseCode, WSMessage, WSMsgType
from aiohttp.http_websocket import WS_CLOSED_MESSAGE, WS_CLOSING_MESSAGE, WebSocketError
from aiohttp.streams import EofStream

from taube.server.framing import close_frame, pong_frame, text_frame
from taube.server.transport import MAX_OFFERED_HEAD, TrustedProxies, parse_address

try:  # private in aiohttp (see the module doc)
    from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader

    DIRECT_AVAILABLE = True
except ImportError:  # pragma: no cover - depends on the installed aiohttp
    DIRECT_AVAILABLE = False

FrameTaker = Callable[[WSMessage], bool]
"""Handles a frame as it arrives and says True, or says False to queue it for receive()."""

if DIRECT_AVAILABLE:

    class _FrameQueue(WebSocketDataQueue):
        """aiohttp's frame queue, with a first look at each frame for ``take`` (see
        ``DirectSocket.take_frames``). The reader (C) calls ``feed_data`` for every
        frame it parses; a frame that ``take`` handles never enters the queue, so no
        future, coroutine or task step is spent on it. Only while the queue is empty:
        frames keep their order."""

        __slots__ = ("take",)
        take: FrameTaker | None

        def feed_data(self, data: Any, size: int) -> None:
            take: FrameTaker | None = self.take
            if take is None or self._buffer or not take(data):
                super().feed_data(data, size)


log = logging.getLogger("taube.gateway")

WS_PATH = "/v1/ws"
CLOSE_TIMEOUT_S = 10.0
"""How long a closing side waits for the peer's close frame (aiohttp's default)..."""
CLOSE_INTERRUPTED_S = 2.0
"""...and when the close came from another task (idle timeout, drain): shorter, as the
node may be about to exit."""
QUEUE_LIMIT = 2**16
"""Bytes of parsed frames queued before the socket stops reading (aiohttp's default)."""
MAX_FIELD_BYTES = 8190
"""aiohttp's limit for one header line."""
# RFC 9110 5.1 and 5.5: a token, a colon, then visible ASCII, spaces and tabs.
_FIELD = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):([\t\x20-\x7e]*)")
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 4.2.2


# ---------------------------------------------------------------- the request head


@dataclass(frozen=True, slots=True)
class UpgradeHead:
    """A clean WebSocket upgrade request: what the checks and the answer need."""

    key: str
    host: str | None
    origin: str | None


def parse_upgrade(head: bytes, path: str = WS_PATH) -> UpgradeHead | None:
    """The upgrade in ``head`` (the bytes before the blank line), or None unless it is
    an unambiguous ``GET path`` WebSocket version 13 upgrade without a body. None
    means "let aiohttp answer", so this may be strict: anything unusual is None."""
    if len(head) > MAX_OFFERED_HEAD:
        return None
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        return None
    request_line, *lines = text.split("\r\n")
    if request_line != f"GET {path} HTTP/1.1":
        return None
    headers: dict[str, str] = {}
    for line in lines:
        match = _FIELD.fullmatch(line)
        if match is None or len(line) > MAX_FIELD_BYTES:
            return None  # also folded lines (obsolete), stray whitespace, controls
        name = match[1].lower()
        if name in headers:
            return None  # repeated headers need merging rules: aiohttp's job
        headers[name] = match[2].strip(" \t")
    if "content-length" in headers or "transfer-encoding" in headers:
        return None
    if headers.get("upgrade", "").lower() != "websocket":
        return None
    if "upgrade" not in {t.strip().lower() for t in headers.get("connection", "").split(",")}:
        return None
    if headers.get("sec-websocket-version") != "13":
        return None
    key = headers.get("sec-websocket-key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return None
    except (binascii.Error, ValueError):
        return None
    # Offered extensions (browsers offer permessage-deflate) and subprotocols are
    # declined by not naming any in the answer, as aiohttp does with compression off.
    return UpgradeHead(key=key, host=headers.get("host"), origin=headers.get("origin"))


def accept_value(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def switching_protocols(key: str) -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_value(key).encode() + b"\r\n\r\n"
    )


# ---------------------------------------------------------------- the socket


class DirectSocket:
    """One WebSocket after the handshake: the protocol of its transport (bytes in,
    through the edge's ``GuardedProtocol``) and, for the gateway's ``Connection``, the
    few ``WebSocketResponse`` methods it uses, with the same meaning (autoclose on,
    autoping off, text frames as bytes)."""

    __slots__ = (
        "_close_received",
        "_closed",
        "_done",
        "_drained",
        "_loop",
        "_queue",
        "_reader",
        "_reading_paused",
        "_receiving",
        "_transport",
    )

    def __init__(
        self, transport: asyncio.Transport, max_msg_size: int, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._transport = transport
        self._loop = loop
        # The queue asks its protocol only for _reading_paused and pause/resume_reading.
        self._queue = _FrameQueue(cast(Any, self), QUEUE_LIMIT, loop=loop)
        self._queue.take = None
        self._reader = WebSocketReader(self._queue, max_msg_size, False, False)
        self._reading_paused = False  # read by the queue
        self._closed = False
        self._close_received = False
        # Set while receive() waits: close() from another task wakes it first.
        self._receiving: asyncio.Future[None] | None = None
        # Set while writing is paused: drain() waits on it.
        self._drained: asyncio.Future[None] | None = None
        self._done: asyncio.Future[None] | None = None  # made by close(), set when over

    # -- the transport's side (called by GuardedProtocol) ---------------------

    def data_received(self, data: bytes) -> None:
        self._reader.feed_data(data)  # a protocol error is queued for receive()

    def eof_received(self) -> bool | None:
        self._queue.feed_eof()
        return None  # the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        self._queue.feed_eof()
        self.resume_writing()

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = self._loop.create_future()

    def resume_writing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    # -- the queue's flow control ---------------------------------------------

    def pause_reading(self) -> None:
        if not self._reading_paused:
            self._reading_paused = True
            with contextlib.suppress(RuntimeError, AttributeError):
                self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused:
            self._reading_paused = False
            with contextlib.suppress(RuntimeError, AttributeError):
                self._transport.resume_reading()

    # -- what Connection uses ---------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def take_frames(self, take: FrameTaker | None) -> None:
        """Offer each frame that arrives while none waits in the queue to ``take``
        first (the gateway handles most sends and acks so, in the transport's callback,
        while its read loop sleeps); None: stop."""
        self._queue.take = take

    async def drain(self) -> None:
        if self._drained is not None:
            await self._drained

    async def receive(self) -> WSMessage:
        if self._closed:
            return WS_CLOSED_MESSAGE
        waiting = self._receiving = self._loop.create_future()
        try:
            # Not cast(): that is a function call per frame (2 % of the CPU under load).
            msg: WSMessage = await self._queue.read()  # type: ignore[assignment]
        except EofStream:
            msg = WS_CLOSED_MESSAGE
        except Exception as exc:
            # A WebSocketError (malformed, too big, bad close code, bad UTF-8) or anything
            # else the queue holds: as in aiohttp, an ERROR message, then a close.
            msg = WSMessage(WSMsgType.ERROR, exc, None)
        finally:
            self._receiving = None  # before close() below, which would wait for it
            if not waiting.done():
                waiting.set_result(None)
        if msg.type is WSMsgType.CLOSE:
            self._close_received = True
            await self.close()
        elif msg.type is WSMsgType.ERROR:
            code = msg.data.code if isinstance(msg.data, WebSocketError) else 1011
            await self.close(code=code)
        elif msg.type is WSMsgType.CLOSED:
            await self.close()
        return msg

    async def send_str(self, data: str) -> None:
        if self._closed or self._transport.is_closing():
            raise ConnectionResetError("Cannot write to closing transport")
        self._transport.write(text_frame(data.encode()))
        await self.drain()

    async def pong(self, data: bytes | bytearray = b"") -> None:
        if self._closed or self._transport.is_closing():
            raise ConnectionResetError("Cannot write to closing transport")
        self._transport.write(pong_frame(data))

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"") -> bool:
        """Send a close frame, wait (a while) for the peer's, close the transport."""
        if self._closed:
            return False
        self._closed = True
        done = self._done = self._loop.create_future()
        transport = self._transport
        if not transport.is_closing():
            transport.write(close_frame(code, message.decode(errors="replace")))
        wait_s = CLOSE_TIMEOUT_S
        try:
            if self._receiving is not None:  # another task reads: let it stop first
                receiving = self._receiving
                self._queue.feed_data(WS_CLOSING_MESSAGE, 0)
                await receiving
                wait_s = CLOSE_INTERRUPTED_S
            # Read (and drop) what the peer still sends until its close frame: closing
            # a socket with unread data makes the kernel send a reset, and a reset can
            # destroy what the peer has not read yet (the error frame saying why).
            if not self._close_received and not transport.is_closing():
                with contextlib.suppress(TimeoutError, EofStream, WebSocketError):
                    async with asyncio.timeout(wait_s):
                        while (await self._queue.read()).type is not WSMsgType.CLOSE:
                            pass
        finally:  # also when cancelled: the socket must not outlive the connection
            transport.close()
            done.set_result(None)
        return True

    async def wait_closed(self) -> None:
        """Until a started ``close()`` is over (it is bounded by its timeouts)."""
        if self._done is not None:
            await self._done


# ---------------------------------------------------------------- the offer


Serve = Callable[[DirectSocket, str, asyncio.Transport], Coroutine[Any, Any, None]]
"""Runs one accepted connection (the gateway's): socket, client address, transport."""


class DirectUpgrade:
    """The edge's offer (see the module doc): ``offer(head, tail, transport)`` returns
    the ``DirectSocket`` that now owns the connection, or None for aiohttp."""

    def __init__(
        self,
        admit: Callable[[UpgradeHead, str], bool],
        serve: Serve,
        max_msg_size: int,
        proxies: TrustedProxies,
        track: Callable[[asyncio.Task[None]], None] = lambda _task: None,
    ) -> None:
        """``track`` learns each connection's task as it is made and keeps it (shutdown
        waits for them: aiohttp does not know these connections)."""
        self._track = track
        self._admit = admit
        self._serve = serve
        self._max_msg_size = max_msg_size
        self._proxies = proxies
        self._broken = False

    def offer(self, head: bytes, tail: bytes, transport: asyncio.Transport) -> DirectSocket | None:
        if not DIRECT_AVAILABLE or self._broken:
            return None
        upgrade = parse_upgrade(head)
        if upgrade is None:
            return None
        peer: Any = transport.get_extra_info("peername")
        address = parse_address(str(peer[0])) if isinstance(peer, tuple) and peer else None
        if address is None or self._proxies.trusts(address):
            return None  # a proxy's client is known from its headers: aiohttp parses them
        ip = str(address)
        loop = asyncio.get_running_loop()
        try:  # before any counter is taken: a changed aiohttp must cost nothing
            direct = DirectSocket(transport, self._max_msg_size, loop)
        except Exception:
            log.exception("WebSocket upgrades go to aiohttp: its frame reader changed")
            self._broken = True
            return None
        if not self._admit(upgrade, ip):
            return None
        sock = transport.get_extra_info("socket")
        if sock is not None:  # as aiohttp's tcp_keepalive: notice peers that vanished
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        transport.write(switching_protocols(upgrade.key))
        self._track(loop.create_task(self._serve(direct, ip, transport)))
        if tail:
            direct.data_received(tail)
        return direct
