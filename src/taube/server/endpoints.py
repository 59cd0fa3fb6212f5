"""Where a WebSocket becomes a ``Connection`` and where it ends: aiohttp's route at
/v1/ws (``websocket_handler``) and the edge's direct upgrade (``direct_upgrade``).

This module stays interpreted while the gateway is compiled with mypyc (the
Makefile's HOT_MODULES), because it holds what every connection needs and the
compiled modules must not have: awaits in ``finally`` blocks (closing the socket,
``Connection.end``). Compiled by mypyc 2.4, a coroutine that awaits inside a
``finally`` or ``except`` block re-raises an exception that was already handled, even
in other coroutines that run later (mypyc issue 1114; tests/unit/
test_compiled_modules.py has the smallest reproduction and checks every compiled
module). Nothing here runs per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from aiohttp import web

from taube.protocol.errors import TaubeError
from taube.server.direct_ws import DirectSocket, DirectUpgrade, UpgradeHead
from taube.server.gateway import CONNECTIONS, SERVICES, Connection
from taube.server.services import Services
from taube.server.transport import EDGE, client_ip, origin_allowed

log: Final = logging.getLogger("taube.gateway")


def _is_upgrade(request: web.Request) -> bool:
    # A function of its own, so that the probe is gone before the connection starts:
    # held by the handler's frame it cost every connection a second response object.
    return web.WebSocketResponse().can_prepare(request).ok


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    """One frame for the whole life of the connection (every suspended coroutine in
    its chain is kept by each idle connection)."""
    services: Services = request.app[SERVICES]
    if not _is_upgrade(request):
        raise TaubeError("request.invalid", "This route needs a WebSocket upgrade.")
    # A browser page may only connect to its own server (or an allowed origin): without
    # this check any web site could open a socket here with the visitor's address.
    config = services.config
    if not origin_allowed(request.headers.get("Origin"), request.host, config.allowed_origins):
        raise TaubeError("conn.bad_origin")
    node = services.node
    if node.draining:
        raise TaubeError("server.draining", retry_after_s=1)
    edge, ip = request.app.get(EDGE), client_ip(request)
    if edge is not None and not edge.websockets.acquire(ip):
        raise TaubeError("rate.too_many_connections", retry_after_s=10)
    try:
        wait = node.admission.admit_session()
        if wait:
            raise TaubeError("server.overloaded", retry_after_s=wait)
        ws = web.WebSocketResponse(
            max_msg_size=config.max_frame_bytes,
            # No heartbeat timer per connection: the node's sweep pings silent clients
            # and drops those that do not answer (Connection.sweep).
            heartbeat=None,
            # Pings are answered by the read loop: only the client's own count as use.
            autoping=False,
            # Payloads are opaque (soon ciphertext): deflate would cost CPU on every
            # frame for almost no gain, and framing.py writes uncompressed frames.
            compress=False,
            # Text frames reach msgspec as bytes: it checks the UTF-8 while it decodes,
            # so decoding them to str first would be a second pass over every frame.
            decode_text=False,
        )
        # Made before the upgrade, so that it alone tells admission control when the
        # handshake is over, on every path.
        connection = Connection(
            ws, services, ip, request.transport, request.writer.drain, node.admission
        )
        try:
            await ws.prepare(request)
            open_connections = request.app[CONNECTIONS].open
            open_connections.add(connection)
            try:
                await connection.run()
            finally:
                try:
                    await connection.end()
                finally:
                    open_connections.discard(connection)
                    if not ws.closed:
                        await ws.close()
            return ws
        finally:  # admitted: the handshake is over now if it was not before
            connection.handshake_done()
    finally:
        if edge is not None:
            edge.websockets.release(ip)


def direct_upgrade(app: web.Application) -> DirectUpgrade:
    """The edge's offer for WebSocket upgrades (``direct_ws``): the same checks as
    ``websocket_handler`` (an upgrade that fails one goes on to the handler, which
    answers it), then the same life for the connection, without aiohttp's objects."""
    services, edge, connections = app[SERVICES], app[EDGE], app[CONNECTIONS]

    def admit(head: UpgradeHead, ip: str) -> bool:
        node = services.node
        if node.draining:
            return False
        if not origin_allowed(head.origin, head.host, services.config.allowed_origins):
            return False
        if not edge.websockets.acquire(ip):
            return False
        if not node.admission.try_admit_session():
            edge.websockets.release(ip)
            return False
        return True

    async def serve(socket: DirectSocket, ip: str, transport: asyncio.Transport) -> None:
        connection = Connection(
            socket, services, ip, transport, socket.drain, services.node.admission
        )
        task = asyncio.current_task()
        # The same life as in websocket_handler, written out again on purpose: a shared
        # coroutine would be one more frame held by every idle connection (measured
        # +0.25 KiB per connection at 10,000, against 9.3 KiB).
        try:
            connections.open.add(connection)
            try:
                await connection.run()
            finally:
                try:
                    await connection.end()
                finally:
                    connections.open.discard(connection)
                    if not socket.closed:
                        await socket.close()
        except Exception:
            log.exception("connection failed peer=%s", ip)
            transport.abort()
        finally:
            # Whoever closed the socket, the TCP connection ends here; after the close
            # handshake if another task started one (a drain), so that the peer reads
            # the frames saying why before the connection goes.
            with contextlib.suppress(asyncio.CancelledError):
                await socket.wait_closed()
            transport.close()
            connection.handshake_done()
            edge.websockets.release(ip)
            connections.direct.discard(task)

    return DirectUpgrade(
        admit, serve, services.config.max_frame_bytes, edge.proxies, connections.direct.add
    )
