"""The bare relay: the least a Python core must do to carry Taube's 1:1 traffic.

``make bench-baseline`` runs the same load against it that ``make bench`` runs
against a real server, so every Taube figure is also a ratio to "what aiohttp,
uvloop and msgspec can do at all". It speaks just enough of the protocol for
the load generator, with the same frame codec (:mod:`taube.protocol.frames`):

* ``POST /v1/accounts`` and ``POST /v1/sessions`` answer a session whose token
  is the handle itself (no password hashing, nothing stored);
* on ``/v1/ws`` the first frame must be ``auth`` (never checked) and gets
  ``ready``; ``send`` to ``@handle`` is forwarded at once as a ``message``
  (per-recipient ``seq`` in memory) and answered with ``sent``; ``ack`` is
  ignored; ``ping`` gets ``pong``. An offline recipient gets the sender an
  ``error`` (a relay stores nothing). Groups are not supported.

Two ways to write, because they bound what a Taube core can hope for
differently: ``--write frame`` sends every frame with aiohttp's
``send_frame`` (one ``write`` system call per frame, as a plain aiohttp
server does); ``--write batch`` (the default) queues a socket's frames and
writes them with one call per event-loop turn, the write coalescing a tuned
server does.

It is a benchmark fixture, not a server: no limits, no auth, no persistence.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import time

import msgspec
import uvloop
from aiohttp import WSMsgType, web

from taube.protocol.api import DeviceSession, RegisterRequest
from taube.protocol.frames import (
    Ack,
    Auth,
    Error,
    Message,
    Ping,
    Pong,
    Ready,
    Send,
    Sent,
    decode_client_frame,
    encode_frame,
)

SOCKETS: web.AppKey[dict[str, Peer]] = web.AppKey("sockets")
BATCH: web.AppKey[bool] = web.AppKey("batch")


def server_frame(data: bytes) -> bytes:
    """An unmasked text frame (RFC 6455 §5.2): servers do not mask."""
    n = len(data)
    if n < 126:
        return struct.pack("!BB", 0x81, n) + data
    if n < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, n) + data
    return struct.pack("!BBQ", 0x81, 127, n) + data


class Peer:
    """One connected device: its socket, its unwritten frames and the next inbox seq."""

    __slots__ = ("_loop", "_out", "batch", "handle", "seq", "transport", "ws")

    def __init__(self, handle: str, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.handle = handle
        self.ws = ws
        self.transport = request.transport
        self.batch = request.app[BATCH]
        self.seq = 0
        self._out: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    async def push(self, data: bytes) -> None:
        """Send one frame: queued for this loop turn (batch) or written now (frame)."""
        if not self.batch:
            await self.ws.send_frame(data, WSMsgType.TEXT)
            return
        if not self._out:
            self._loop.call_soon(self._flush)
        self._out.append(server_frame(data))

    def _flush(self) -> None:
        data, self._out = b"".join(self._out), []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


async def account(request: web.Request) -> web.Response:
    req = msgspec.json.decode(await request.read(), type=RegisterRequest)
    handle = req.handle.strip().removeprefix("@").lower()
    body = msgspec.json.encode(DeviceSession(handle=handle, device=1, token=handle))
    return web.Response(body=body, status=201, content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": "relay"})


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=4 * 1024 * 1024)
    await ws.prepare(request)
    sockets = request.app[SOCKETS]
    first = await ws.receive()
    if first.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
        return ws
    auth = decode_client_frame(first.data)
    if not isinstance(auth, Auth):
        await ws.close(code=4001)
        return ws
    me = Peer(auth.token, ws, request)
    sockets[me.handle] = me
    now_ms = int(time.time() * 1000)
    await me.push(
        encode_frame(
            Ready(
                handle=me.handle,
                device=1,
                last_seq=0,
                server_time_ms=now_ms,
                max_payload_bytes=64 * 1024,
            )
        )
    )
    conversation = f"@{me.handle}"
    try:
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
            frame = decode_client_frame(msg.data)
            if isinstance(frame, Send):
                now_ms = int(time.time() * 1000)
                peer = sockets.get(frame.to[1:])
                if peer is None or frame.payload is None:
                    reply = Error(code="msg.unknown_recipient", message="offline", ref=frame.id)
                    await me.push(encode_frame(reply))
                    continue
                peer.seq += 1
                message = Message(
                    seq=peer.seq,
                    id=frame.id,
                    conversation=conversation,
                    sender=me.handle,
                    sender_device=1,
                    sent_at_ms=now_ms,
                    payload=frame.payload,
                )
                await peer.push(encode_frame(message))
                await me.push(encode_frame(Sent(id=frame.id, sent_at_ms=now_ms)))
            elif isinstance(frame, Ack):
                continue
            elif isinstance(frame, Ping):
                pong = Pong(ref=frame.ref, server_time_ms=int(time.time() * 1000))
                await me.push(encode_frame(pong))
    finally:
        if sockets.get(me.handle) is me:
            del sockets[me.handle]
    return ws


def build_app(batch: bool = True) -> web.Application:
    app = web.Application()
    app[SOCKETS] = {}
    app[BATCH] = batch
    app.router.add_post("/v1/accounts", account)
    app.router.add_post("/v1/sessions", account)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/ws", websocket)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m taube.bench.relay", description="The bare relay (benchmark baseline)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument(
        "--write",
        choices=("batch", "frame"),
        default="batch",
        help="batch: one write per socket per loop turn (default); frame: one per frame",
    )
    args = parser.parse_args(argv)
    web.run_app(
        build_app(batch=args.write == "batch"),
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
