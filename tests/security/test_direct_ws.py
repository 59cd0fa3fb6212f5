"""WebSocket upgrades answered at the edge (server/direct_ws.py): which heads are
taken, the RFC 6455 handshake, and a raw client on a real server: split heads,
control frames, the close handshake, and the hand-over to aiohttp for anything the
edge does not take."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from pathlib import Path

import msgspec
import pytest

from taube.protocol.frames import Auth, encode_frame
from taube.server.direct_ws import UpgradeHead, accept_value, parse_upgrade
from taube.server.framing import pong_frame
from tests.serverproc import UNIT_S, ServerProcess
from tests.wire import register

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3


def head(*extra: str, request_line: str = "GET /v1/ws HTTP/1.1", key: str = KEY) -> bytes:
    lines = [
        request_line,
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: keep-alive, Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *extra,
    ]
    return "\r\n".join(lines).encode()


# ---------------------------------------------------------------- pure rules


def test_accept_value_is_the_rfc_example() -> None:
    assert accept_value(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_clean_upgrade_is_taken() -> None:
    assert parse_upgrade(head("Origin: https://a.example")) == UpgradeHead(
        key=KEY, host="127.0.0.1", origin="https://a.example"
    )
    assert parse_upgrade(head()) == UpgradeHead(key=KEY, host="127.0.0.1", origin=None)


@pytest.mark.parametrize(
    "raw",
    [
        head(request_line="GET /v1/other HTTP/1.1"),
        head(request_line="POST /v1/ws HTTP/1.1"),
        head(request_line="GET /v1/ws HTTP/1.0"),
        head(request_line="GET /v1/ws?x=1 HTTP/1.1"),
        head(key="short"),
        head(key="!!!!not-base64!!!!!!!!=="),
        head("Content-Length: 5"),
        head("Transfer-Encoding: chunked"),
        head("Upgrade: websocket"),  # repeated
        head(" folded: line"),
        head("X-Name: caf\u00e9".encode("latin-1").decode("latin-1")),
        head().replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8"),
        head().replace(b"Upgrade: websocket", b"Upgrade: h2c"),
        head().replace(b"keep-alive, Upgrade", b"keep-alive"),
        head().replace(b"Host: 127.0.0.1", b"Host 127.0.0.1"),
        head("N@me: x"),  # not a token
        head("X-Value: a\x01b"),  # a control character
        head("X-Long: " + "a" * 9000),
        head("X-Many: " + "a" * 8000, "X-More: " + "a" * 8000, "X-Most: " + "a" * 8000),
    ],
)
def test_anything_unusual_goes_to_aiohttp(raw: bytes) -> None:
    assert parse_upgrade(raw) is None


def test_pong_echoes_the_ping_payload() -> None:
    assert pong_frame(b"abc") == b"\x8a\x03abc"
    assert pong_frame(b"x" * 200) == b"\x8a\x7d" + b"x" * 125  # control frames <= 125


# ---------------------------------------------------------------- a raw client


def masked(opcode: int, payload: bytes) -> bytes:
    """A final client frame (clients must mask, RFC 6455 5.3)."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    size = len(payload)
    if size < 126:
        header = bytes((0x80 | opcode, 0x80 | size))
    else:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    return header + mask + body


class Raw:
    """A blocking WebSocket client on a plain socket (run in a thread)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5 * UNIT_S)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response_head(self) -> str:
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        text, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return text.decode("latin-1")

    def frame(self) -> tuple[int, bytes]:
        first, second = self._fill(2)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", self._fill(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", self._fill(8))[0]
        assert second & 0x80 == 0, "servers never mask"
        return first & 0x0F, self._fill(size)

    def closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


def _upgrade_in_pieces(port: int, token: str) -> tuple[str, list[tuple[int, bytes]], bool]:
    raw = Raw(port)
    data = head() + b"\r\n\r\n"
    for piece in (data[:7], data[7:60], data[60:]):  # a head in three TCP segments
        raw.send(piece)
    response = raw.response_head()
    frames = []
    raw.send(masked(0x1, encode_frame(Auth(token=token, last_seq=0))))
    frames.append(raw.frame())  # ready
    raw.send(masked(0x9, b"are you there"))
    while (reply := raw.frame())[0] != 0xA:  # notices and the like may come first
        frames.append(reply)
    frames.append(reply)
    raw.send(masked(0x8, struct.pack("!H", 1000)))
    while (reply := raw.frame())[0] != 0x8:
        pass
    frames.append(reply)
    return response, frames, raw.closed_by_server()


async def test_a_raw_client_is_served_at_the_edge(server: ServerProcess, session) -> None:
    account = await register(session, server.url, "rawclient")
    response, frames, closed = await asyncio.to_thread(
        _upgrade_in_pieces, server.port, account.token
    )
    lines = response.split("\r\n")
    assert lines[0] == "HTTP/1.1 101 Switching Protocols"
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert headers["sec-websocket-accept"] == accept_value(KEY)
    # Answered at the edge, not by aiohttp (whose responses name it in Server).
    assert "server" not in headers
    opcode, ready = frames[0]
    assert opcode == 0x1
    assert msgspec.json.decode(ready)["type"] == "ready"
    assert frames[-2] == (0xA, b"are you there")  # the Ping's payload echoed
    assert frames[-1] == (0x8, struct.pack("!H", 1000))  # close answered, then TCP closed
    assert closed


def _upgrade(port: int, raw_head: bytes) -> str:
    raw = Raw(port)
    raw.send(raw_head + b"\r\n\r\n")
    return raw.response_head()


async def test_heads_the_edge_does_not_take_are_answered_by_aiohttp(
    server: ServerProcess,
) -> None:
    # A query string is not ours to interpret: aiohttp routes it (to the same handler).
    response = await asyncio.to_thread(
        _upgrade, server.port, head(request_line="GET /v1/ws?x=1 HTTP/1.1")
    )
    lines = response.split("\r\n")
    assert lines[0] == "HTTP/1.1 101 Switching Protocols"
    assert any(line.lower().startswith("server:") for line in lines)
    # A browser offers compression: taken at the edge, declined by not naming it.
    response = await asyncio.to_thread(
        _upgrade, server.port, head("Sec-WebSocket-Extensions: permessage-deflate")
    )
    lines = [line.lower() for line in response.split("\r\n")]
    assert lines[0] == "http/1.1 101 switching protocols"
    assert not any(line.startswith(("server:", "sec-websocket-extensions")) for line in lines)


def _oversized(port: int, token: str, size: int) -> int:
    raw = Raw(port)
    raw.send(head() + b"\r\n\r\n")
    raw.response_head()
    raw.send(masked(0x1, encode_frame(Auth(token=token, last_seq=0))))
    raw.frame()
    raw.send(masked(0x1, b"x" * size))
    while (reply := raw.frame())[0] != 0x8:
        pass
    code: int = struct.unpack("!H", reply[1][:2])[0]
    return code


async def test_a_frame_over_the_limit_closes_with_1009(tmp_path: Path, session) -> None:
    limits = {"max_payload_bytes": 16 * 1024, "max_frame_bytes": 32 * 1024}
    server = ServerProcess(tmp_path / "s", settings={"limits": limits}).start()
    try:
        account = await register(session, server.url, "bigframe")
        code = await asyncio.to_thread(_oversized, server.port, account.token, 32 * 1024 + 1)
        assert code == 1009
    finally:
        server.stop()


def _silent_after_auth(port: int, token: str) -> tuple[bytes, float]:
    """Authenticates, then neither sends nor answers anything (not even the close)."""
    raw = Raw(port)
    raw.send(head() + b"\r\n\r\n")
    raw.response_head()
    raw.send(masked(0x1, encode_frame(Auth(token=token, last_seq=0))))
    started = time.monotonic()
    while (reply := raw.frame())[0] != 0x8:
        pass
    raw.sock.settimeout(30 * UNIT_S)
    assert raw.closed_by_server()
    return reply[1], time.monotonic() - started  # until the TCP connection ended


async def test_a_connection_the_node_closes_ends_even_if_the_client_stays_mute(
    tmp_path: Path, session
) -> None:
    """The idle timeout closes from the node's sweep while the read loop waits: the
    TCP connection must end then, whether or not the client answers the close."""
    settings = {"limits": {"idle_timeout_s": 1.0}, "server": {"heartbeat_s": 60.0}}
    server = ServerProcess(tmp_path / "s", settings=settings).start()
    try:
        account = await register(session, server.url, "mute")
        close, took = await asyncio.to_thread(_silent_after_auth, server.port, account.token)
        assert struct.unpack("!H", close[:2])[0] == 4008  # conn.idle
        assert took < 5 * UNIT_S
    finally:
        server.stop()
