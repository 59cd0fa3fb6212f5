"""The transport edge (server/transport.py): TLS, trusted proxy headers, WebSocket
origins, handshake and idle timeouts, connections per address, frame rate and size
limits. Pure tests for the rules, real servers on loopback for the rest."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import ipaddress
import socket
import ssl
import time
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from taube.protocol.frames import Auth, Error, Ping, Pong, Send, Sent, encode_frame
from taube.protocol.ids import uuid7
from taube.server.config import ConfigError, load_config
from taube.server.transport import (
    AddressCounter,
    FrameRate,
    TrustedProxies,
    origin_allowed,
    parse_address,
)
from tests.serverproc import UNIT_S, ServerProcess
from tests.wire import PASSWORD, connect, http, register

# ---------------------------------------------------------------- pure rules


def test_client_address_only_from_trusted_proxies() -> None:
    proxies = TrustedProxies.parse(["127.0.0.1", "10.0.0.0/8"])
    # Not a proxy: headers are ignored, whatever they say.
    assert proxies.resolve("203.0.113.9", ["1.2.3.4"]) == "203.0.113.9"
    # A trusted proxy: the rightmost hop that is not a proxy itself is the client,
    # so a client cannot prepend its own choice.
    assert proxies.resolve("127.0.0.1", ["6.6.6.6", "198.51.100.7"]) == "198.51.100.7"
    assert proxies.resolve("127.0.0.1", ["6.6.6.6", "198.51.100.7", "10.1.2.3"]) == "198.51.100.7"
    # Every hop trusted: the leftmost one; no header: the proxy itself.
    assert proxies.resolve("127.0.0.1", ["10.0.0.5", "10.0.0.6"]) == "10.0.0.5"
    assert proxies.resolve("127.0.0.1", []) == "127.0.0.1"
    # Garbage ends the walk at the proxy that wrote it.
    assert proxies.resolve("127.0.0.1", ["1.2.3.4", "unknown"]) == "127.0.0.1"
    assert proxies.resolve("127.0.0.1", ["[2001:db8::1]:4711"]) == "2001:db8::1"
    # Nothing trusted: the TCP peer, always.
    assert TrustedProxies().resolve("127.0.0.1", ["1.2.3.4"]) == "127.0.0.1"


def test_address_forms() -> None:
    assert parse_address("1.2.3.4:80") == ipaddress.ip_address("1.2.3.4")
    assert parse_address('"[::1]:80"') == ipaddress.ip_address("::1")
    assert parse_address("::ffff:1.2.3.4") == ipaddress.ip_address("1.2.3.4")
    assert parse_address("_hidden") is None
    with pytest.raises(ValueError, match="trusted_proxies"):
        TrustedProxies.parse(["10.0.0.0/33"])


def test_origins() -> None:
    assert origin_allowed(None, "chat.example.org", ())  # not a browser
    assert origin_allowed("https://chat.example.org", "chat.example.org", ())
    assert origin_allowed("https://chat.example.org:443", "chat.example.org", ())
    assert origin_allowed("http://127.0.0.1:8080", "127.0.0.1:8080", ())
    assert not origin_allowed("https://evil.example", "chat.example.org", ())
    assert not origin_allowed("https://chat.example.org.evil.example", "chat.example.org", ())
    assert not origin_allowed("null", "chat.example.org", ())
    assert origin_allowed(
        "https://app.example.org", "chat.example.org", ["https://app.example.org"]
    )
    assert not origin_allowed(
        "http://app.example.org", "chat.example.org", ["https://app.example.org"]
    )


def test_frame_rate_limits_then_calls_a_flood() -> None:
    rate = FrameRate(per_s=10, burst=10)
    assert all(rate.take(0.0) == 0.0 for _ in range(10))
    wait = rate.take(0.0)
    assert wait > 0
    assert FrameRate.retry_after_s(wait) == 1
    assert not rate.flooding
    for _ in range(10):
        rate.take(0.01)
    assert rate.flooding  # over twice its rate within one second
    assert rate.take(2.0) == 0.0  # refilled


def test_address_counter() -> None:
    counter = AddressCounter(2)
    assert counter.acquire("a")
    assert counter.acquire("a")
    assert not counter.acquire("a")
    assert counter.acquire("b")
    counter.release("a")
    counter.release("a")
    assert "a" not in counter.open


def test_transport_settings() -> None:
    env = {
        "TAUBE_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8",
        "TAUBE_ALLOWED_ORIGINS": "https://app.example.org",
    }
    config = load_config(None, environ=env)
    assert config.trusted_proxies == ("127.0.0.1", "10.0.0.0/8")
    assert config.allowed_origins == ("https://app.example.org",)
    with pytest.raises(ConfigError, match="tls_cert and tls_key"):
        load_config(None, environ={"TAUBE_TLS_CERT": "x.pem"})
    with pytest.raises(ConfigError, match="trusted_proxies"):
        load_config(None, environ={"TAUBE_TRUSTED_PROXIES": "proxy.local"})
    with pytest.raises(ConfigError, match="allowed_origins"):
        load_config(None, environ={"TAUBE_ALLOWED_ORIGINS": "app.example.org"})


# ---------------------------------------------------------------- live servers


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class TlsServer(ServerProcess):
    """Health checks go over HTTPS with the test's own trust."""

    def __init__(self, data_dir: Path, cert: Path, key: Path) -> None:
        super().__init__(
            data_dir, settings={"server": {"tls_cert": str(cert), "tls_key": str(key)}}
        )
        self.trust = ssl.create_default_context(cafile=str(cert))

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"wss://127.0.0.1:{self.port}/v1/ws"

    def start(self) -> TlsServer:
        import urllib.request

        original = urllib.request.urlopen

        def trusting(url: str, timeout: float = 1.0) -> object:
            return original(url, timeout=timeout, context=self.trust)

        urllib.request.urlopen = trusting  # type: ignore[assignment]
        try:
            super().start()
        finally:
            urllib.request.urlopen = original
        return self


async def test_tls_serves_https_and_wss(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path / "tls")
    server = TlsServer(tmp_path / "s", cert, key).start()
    try:
        connector = aiohttp.TCPConnector(ssl=server.trust)
        async with aiohttp.ClientSession(connector=connector) as s:
            alice = await register(s, server.url, "alice")
            bob = await register(s, server.url, "bob")
            a = await connect(s, server.ws_url, alice.token)
            b = await connect(s, server.ws_url, bob.token)
            await a.send("@bob", b"over tls")
            (message,) = await b.messages(1)
            assert message.payload == b"over tls"
            await a.close()
            await b.close()
        # TLS 1.2 at least; a client that does not trust the certificate gets nowhere.
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(cafile=str(cert))
        with warnings.catch_warnings():  # deprecated on purpose: it must be refused
            warnings.simplefilter("ignore", DeprecationWarning)
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises((aiohttp.ClientError, ssl.SSLError)):
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=old)) as s:
                await s.get(f"{server.url}/healthz")
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await s.get(f"{server.url}/healthz")
        # Plain HTTP on the TLS port is not served.
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.ClientError):
                await s.get(f"http://127.0.0.1:{server.port}/healthz")
    finally:
        server.stop()


async def ws_status(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> tuple[int, str | None]:
    """The status of a WebSocket upgrade (101 if it went through) and the error code."""
    try:
        ws = await session.ws_connect(url, headers=headers)
    except aiohttp.WSServerHandshakeError as exc:
        async with session.get(url.replace("ws://", "http://"), headers={
            **headers, "Connection": "Upgrade", "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        }) as response:  # fmt: skip
            body = await response.json(content_type=None)
            return exc.status, body.get("code")
    await ws.close()
    return 101, None


async def test_forwarded_for_counts_only_behind_a_trusted_proxy(tmp_path: Path, session) -> None:
    limits = {"max_connections_per_ip": 2}
    trusted = ServerProcess(
        tmp_path / "t",
        settings={"server": {"trusted_proxies": ["127.0.0.1"]}, "limits": limits},
    ).start()
    plain = ServerProcess(tmp_path / "p", settings={"limits": limits}).start()
    try:
        # Behind the proxy, two sockets per client address: the third from 1.2.3.4 is
        # refused, 5.6.7.8 is someone else.
        held = [
            await session.ws_connect(trusted.ws_url, headers={"X-Forwarded-For": "1.2.3.4"})
            for _ in range(2)
        ]
        status, code = await ws_status(session, trusted.ws_url, {"X-Forwarded-For": "1.2.3.4"})
        assert (status, code) == (429, "rate.too_many_connections")
        spoof = {"X-Forwarded-For": "1.2.3.4, 5.6.7.8"}  # the client wrote 1.2.3.4 itself
        assert await ws_status(session, trusted.ws_url, spoof) == (101, None)
        for ws in held:
            await ws.close()
        # Without trusted proxies the header means nothing: all of it is 127.0.0.1.
        held = [
            await session.ws_connect(plain.ws_url, headers={"X-Forwarded-For": f"9.9.9.{i}"})
            for i in range(2)
        ]
        status, _ = await ws_status(session, plain.ws_url, {"X-Forwarded-For": "9.9.9.9"})
        assert status == 429
        for ws in held:
            await ws.close()
    finally:
        trusted.stop()
        plain.stop()


async def test_websocket_origin_is_checked_before_the_upgrade(tmp_path: Path, session) -> None:
    server = ServerProcess(
        tmp_path / "s", settings={"server": {"allowed_origins": ["https://app.example.org"]}}
    ).start()
    try:
        host = f"127.0.0.1:{server.port}"
        assert await ws_status(session, server.ws_url, {"Origin": "https://evil.example"}) == (
            403,
            "conn.bad_origin",
        )
        assert (await ws_status(session, server.ws_url, {"Origin": "null"}))[0] == 403
        assert (await ws_status(session, server.ws_url, {"Origin": f"http://{host}"}))[0] == 101
        ok = {"Origin": "https://app.example.org"}
        assert (await ws_status(session, server.ws_url, ok))[0] == 101
        assert (await ws_status(session, server.ws_url, {}))[0] == 101  # not a browser
    finally:
        server.stop()


def _recv_until_closed(sock: socket.socket, limit_s: float) -> float:
    """Seconds until the server closed ``sock`` (reads and discards what arrives)."""
    start = time.monotonic()
    sock.settimeout(limit_s)
    try:
        while sock.recv(4096):
            pass
    except (ConnectionResetError, TimeoutError):
        pass
    return time.monotonic() - start


async def test_handshake_timeout_closes_slow_and_silent_clients(tmp_path: Path, session) -> None:
    server = ServerProcess(
        tmp_path / "s", settings={"limits": {"handshake_timeout_s": 1.0}}
    ).start()
    try:
        # A partial request head, then nothing.
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        took = await asyncio.to_thread(_recv_until_closed, sock, 10 * UNIT_S)
        sock.close()
        assert took < 3 * UNIT_S
        # Upgraded, but no auth frame.
        ws = await session.ws_connect(server.ws_url)
        msg = await ws.receive(timeout=5 * UNIT_S)
        assert msg.type is aiohttp.WSMsgType.TEXT
        assert "auth.timeout" in msg.data
        await ws.receive(timeout=5 * UNIT_S)
        assert ws.close_code == 4008
        # A complete request in time is served as always.
        status, _ = await http(session, "GET", f"{server.url}/healthz")
        assert status == 200
    finally:
        server.stop()


async def test_idle_websocket_closes_but_pinging_one_stays(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "s", settings={"limits": {"idle_timeout_s": 1.5}, "server": {"heartbeat_s": 0.5}}
    ).start()
    try:
        async with aiohttp.ClientSession() as s:
            alice = await register(s, server.url, "alice")
            # Answers the server's pings (aiohttp does) but never says anything itself.
            quiet = await connect(s, server.ws_url, alice.token)
            # Pings like the SDK does (its heartbeat), more often than the idle timeout.
            ws = await s.ws_connect(server.ws_url, heartbeat=0.4)
            await ws.send_str(encode_frame(Auth(token=alice.token, last_seq=0)).decode())
            started = time.monotonic()
            error = await quiet.error(timeout=5)
            assert error.code == "conn.idle"
            await quiet.ws.receive(timeout=5 * UNIT_S)
            assert quiet.ws.close_code == 4008
            assert time.monotonic() - started < 4 * UNIT_S
            assert not ws.closed
            await ws.send_str(encode_frame(Ping(ref="p")).decode())
            while True:
                msg = await ws.receive(timeout=5 * UNIT_S)
                assert msg.type is aiohttp.WSMsgType.TEXT
                if '"pong"' in msg.data:
                    break
            await ws.close()
    finally:
        server.stop()


async def test_a_client_that_answers_no_ping_is_dropped(tmp_path: Path) -> None:
    """The node pings a silent connection every ``heartbeat_s`` and drops one that
    does not answer within half of it (a peer gone without closing), long before the
    idle timeout; a client that answers stays."""
    server = ServerProcess(
        tmp_path / "s", settings={"limits": {"idle_timeout_s": 60}, "server": {"heartbeat_s": 0.5}}
    ).start()
    try:
        async with aiohttp.ClientSession() as s:
            alice = await register(s, server.url, "alice")
            answering = await connect(s, server.ws_url, alice.token)
            # aiohttp answers Pings while it reads: this one reads until its Pong comes.
            answered = asyncio.create_task(answering.until(Pong, timeout=30 * UNIT_S))
            mute = await s.ws_connect(server.ws_url, autoping=False)
            await mute.send_str(encode_frame(Auth(token=alice.token, last_seq=0)).decode())
            started = time.monotonic()
            pinged = False
            while True:
                msg = await mute.receive(timeout=10 * UNIT_S)
                if msg.type is aiohttp.WSMsgType.PING:
                    pinged = True
                    continue
                if msg.type is aiohttp.WSMsgType.TEXT:
                    continue  # ready
                break
            assert pinged
            assert msg.type is aiohttp.WSMsgType.CLOSED
            assert mute.close_code == 1006  # cut, no close frame
            assert time.monotonic() - started < 5 * UNIT_S
            assert not answering.ws.closed
            await answering.send_frame(Ping(ref="still-here"))
            pong = await answered
            assert pong.ref == "still-here"
            await answering.ws.close()
    finally:
        server.stop()


def _open_from(source: str, port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


async def test_connections_per_address_are_bounded(tmp_path: Path, session) -> None:
    server = ServerProcess(
        tmp_path / "s", settings={"limits": {"max_connections_per_ip": 5}}
    ).start()
    sockets = []
    try:
        # 127.0.0.2 holds five connections; a sixth gets 429 and is closed at once.
        sockets = [_open_from("127.0.0.2", server.port) for _ in range(5)]
        extra = _open_from("127.0.0.2", server.port)
        extra.settimeout(5 * UNIT_S)
        answer = extra.recv(4096)
        extra.close()
        assert answer.startswith(b"HTTP/1.1 429")
        assert b"rate.too_many_connections" in answer
        # Someone else (127.0.0.1) is not affected.
        status, _ = await http(session, "GET", f"{server.url}/healthz")
        assert status == 200
        # Closing frees the slots.
        for sock in sockets:
            sock.close()
        sockets = []
        await asyncio.sleep(0.2 * UNIT_S)
        again = _open_from("127.0.0.2", server.port)
        again.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        again.settimeout(5 * UNIT_S)
        assert again.recv(4096).startswith(b"HTTP/1.1 200")
        again.close()
    finally:
        for sock in sockets:
            sock.close()
        server.stop()


@pytest.mark.parametrize("kind", ["ping", "send"])
async def test_frame_rate_refuses_then_closes_a_flood(tmp_path: Path, session, kind: str) -> None:
    """Pings go through the read loop; sends on a known route are taken as they arrive
    (gateway ``_take_at_once``): the same rate, the same refusals, the same close."""
    server = ServerProcess(
        tmp_path / "s", settings={"limits": {"frames_per_s": 20, "frame_burst": 20}}
    ).start()

    def frame(ref: str) -> Ping | Send:
        if kind == "ping":
            return Ping(ref=ref)
        return Send(id=uuid7(), to="@alice", payload=ref.encode())

    try:
        alice = await register(session, server.url, "alice")
        wire = await connect(session, server.ws_url, alice.token)
        if kind == "send":  # to oneself: the route is known after the first
            await wire.send("@alice", b"warm")
            await wire.sent(1)
            await asyncio.sleep(1.1)  # the bucket fills again
        for i in range(30):
            await wire.send_frame(frame(f"p{i}"))
        answered, errors = 0, []
        while answered + len(errors) < 30:
            got = await wire.next()
            if isinstance(got, Pong | Sent):
                answered += 1
            elif isinstance(got, Error):
                errors.append(got)
        assert 20 <= answered < 30
        assert {e.code for e in errors} == {"rate.limited"}
        assert all(e.details and e.details["retry_after_s"] >= 1 for e in errors)
        assert errors[0].ref is not None  # says which frame was refused
        # Far over the rate: the connection is closed.
        for i in range(200):
            await wire.send_frame(frame(f"f{i}"))
        with contextlib.suppress(ConnectionError):
            while True:
                await wire.next()
        assert wire.ws.close_code == 1008
        assert any(isinstance(f, Error) and f.code == "rate.flood" for f in wire.frames)
    finally:
        server.stop()


async def test_size_limits_apply_to_every_route(tmp_path: Path, session) -> None:
    chunk = 64 * 1024
    server = ServerProcess(
        tmp_path / "s",
        settings={
            "limits": {
                "max_body_bytes": 16 * 1024,
                "max_payload_bytes": 4096,
                "max_frame_bytes": 8192,
            },
            "blobs": {"max_chunk_bytes": chunk},
        },
    ).start()
    try:
        alice = await register(session, server.url, "alice")
        auth = {"Authorization": f"Bearer {alice.token}"}
        # JSON bodies.
        big = {"handle": "x" * 40_000, "password": PASSWORD}
        status, body = await http(session, "POST", f"{server.url}/v1/accounts", big)
        assert (status, body["code"]) == (413, "request.too_large")
        # Blob chunks: declared too long, and streamed past the declared size.
        data = b"\0" * (3 * chunk)
        digest = hashlib.sha256(data).hexdigest()
        status, _ = await http(
            session,
            "POST",
            f"{server.url}/v1/blobs",
            {"size": len(data), "sha256": digest},
            alice.token,
        )
        assert status == 201
        headers = {**auth, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
        url = f"{server.url}/v1/blobs/{digest}"
        async with session.patch(url, data=data[: 2 * chunk], headers=headers) as r:
            assert r.status == 413
            assert (await r.json(content_type=None))["code"] == "blob.chunk_too_large"

        async def stream() -> AsyncIterator[bytes]:
            for _ in range(4):
                yield data[:chunk]

        async with session.patch(url, data=stream(), headers=headers) as r:
            assert r.status == 413
        # WebSocket frames.
        wire = await connect(session, server.ws_url, alice.token)
        await wire.send_raw('{"type":"ping","ref":"' + "x" * 10_000 + '"}')
        msg = await wire.ws.receive(timeout=5 * UNIT_S)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert wire.ws.close_code == 1009
    finally:
        server.stop()
