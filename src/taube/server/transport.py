"""The edge of the node: TLS, who the client is, and what one client may hold open.

- ``client_ip(request)`` is the address everything that keys on a client uses
  (admission, rate limits, logs). It is the TCP peer, unless the peer is one of
  ``[server] trusted_proxies``: then it is the rightmost address of the configured
  proxy header that is not itself a trusted proxy. Headers from anyone else are
  ignored, so a client cannot choose its own address.
- ``origin_allowed`` decides whether a browser page may open a WebSocket here: its
  ``Origin`` must be this server's own (same host) or one of ``allowed_origins``.
  Clients that send no ``Origin`` (the SDK, the CLI, bots) are not browsers and pass.
- ``GuardedSite`` listens for the node. Every TCP connection must complete its first
  HTTP request head within ``handshake_timeout_s`` (slowloris), and one address may
  hold at most ``max_connections_per_ip`` connections (trusted proxies excepted:
  their clients are counted per ``client_ip`` at the WebSocket upgrade instead).
- ``FrameRate`` is the per-connection inbound frame budget of the gateway.

Invariants: every counter is released exactly once (connection_lost, or the
WebSocket handler's ``finally``); nothing here reads the request body.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, cast
from urllib.parse import urlsplit

from aiohttp import web

from taube.server.admission import TokenBucket
from taube.server.config import Config, ConfigError

log = logging.getLogger("taube.transport")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
PROXY_HEADERS = ("x-forwarded-for", "forwarded")


# ---------------------------------------------------------------- client address


def parse_address(text: str) -> Address | None:
    """An address from a header hop (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``,
    ``"[::1]"``); None for anything else (``unknown``, obfuscated ``_id`` names)."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """Which peers may tell us the client's address, and in which header. Pure."""

    networks: tuple[Network, ...] = ()
    header: str = "x-forwarded-for"

    @classmethod
    def parse(cls, entries: Iterable[str], header: str = "x-forwarded-for") -> TrustedProxies:
        """Raises ValueError naming the entry that is not an address or a network."""
        networks = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {entry!r} is not an address or network"
                ) from None
        if header.lower() not in PROXY_HEADERS:
            raise ValueError(f"proxy_header must be one of {', '.join(PROXY_HEADERS)}")
        return cls(tuple(networks), header.lower())

    def trusts(self, address: Address | None) -> bool:
        return address is not None and any(address in net for net in self.networks)

    def resolve(self, peer: str | None, hops: list[str]) -> str:
        """The client's address. ``peer`` is the TCP peer, ``hops`` the addresses of
        the proxy header, leftmost (farthest) first. Walk from the right, past trusted
        proxies: the first hop that is not one is the client. A hop that is no address
        ends the walk at the proxy that wrote it (its clients share its address)."""
        here = parse_address(peer or "")
        if here is None:
            return peer or "?"
        if not self.trusts(here):
            return str(here)
        for hop in reversed(hops):
            address = parse_address(hop)
            if address is None:
                break
            here = address
            if not self.trusts(address):
                break
        return str(here)


PROXIES: web.AppKey[TrustedProxies] = web.AppKey("trusted_proxies")
_CLIENT_IP = "taube.client_ip"


def header_hops(request: web.BaseRequest, header: str) -> list[str]:
    """The hops a proxy header lists, leftmost first, over all its header lines."""
    if header == "forwarded":
        # aiohttp parses RFC 7239 (quoting, several elements per line) for us.
        return [str(element.get("for", "")) for element in request.forwarded]
    return [
        hop for line in request.headers.getall("X-Forwarded-For", ()) for hop in line.split(",")
    ]


def client_ip(request: web.BaseRequest) -> str:
    """The client's address (see the module docstring); ``?`` if unknown."""
    known = request.get(_CLIENT_IP)
    if isinstance(known, str):
        return known
    proxies = request.app.get(PROXIES) if isinstance(request, web.Request) else None
    if proxies is None or not proxies.networks:
        address = parse_address(request.remote or "")
        ip = str(address) if address is not None else (request.remote or "?")
    else:
        ip = proxies.resolve(request.remote, header_hops(request, proxies.header))
    request[_CLIENT_IP] = ip
    return ip


# ---------------------------------------------------------------- origins


def _origin_key(scheme: str, host: str) -> str:
    """``host[:port]`` lower-cased, without the scheme's default port."""
    host = host.lower()
    for default in {"http": (":80",), "https": (":443",), "": (":80", ":443")}.get(scheme, ()):
        host = host.removesuffix(default)
    return host


def normalize_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` in canonical form, or None if it is not one."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        return None
    return f"{parts.scheme}://{_origin_key(parts.scheme, parts.netloc)}"


def origin_allowed(origin: str | None, host: str | None, allowed: Iterable[str]) -> bool:
    """No ``Origin``: not a browser, allowed. Otherwise the origin's host must be the
    ``Host`` the request was sent to (a page this server served, by HTTP or HTTPS:
    behind a TLS proxy the node sees plain HTTP), or the origin one of ``allowed``."""
    if origin is None:
        return True
    canonical = normalize_origin(origin)
    if canonical is None:  # "null" (sandboxed frames, file://) and garbage
        return False
    origin_host = canonical.partition("://")[2]
    if host and origin_host == _origin_key("", host):
        return True
    return canonical in {normalize_origin(entry) for entry in allowed}


# ---------------------------------------------------------------- connections per address


class AddressCounter:
    """Open connections per address, at most ``limit`` each. Entries at zero vanish."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}

    def acquire(self, key: str) -> bool:
        count = self.open.get(key, 0)
        if count >= self.limit:
            return False
        self.open[key] = count + 1
        return True

    def release(self, key: str) -> None:
        count = self.open.get(key, 0) - 1
        if count > 0:
            self.open[key] = count
        else:
            self.open.pop(key, None)


@dataclass
class EdgeState:
    """Per-node bookkeeping of the edge (tests and logs read the counters)."""

    proxies: TrustedProxies
    handshake_timeout_s: float
    tcp: AddressCounter
    websockets: AddressCounter
    refused: int = 0
    timed_out: int = 0


EDGE: web.AppKey[EdgeState] = web.AppKey("edge")


def install_edge(app: web.Application, config: Config) -> EdgeState:
    """Put the proxy table and the connection counters where handlers find them."""
    proxies = TrustedProxies.parse(config.trusted_proxies, config.proxy_header)
    edge = EdgeState(
        proxies=proxies,
        handshake_timeout_s=config.handshake_timeout_s,
        tcp=AddressCounter(config.max_connections_per_ip),
        websockets=AddressCounter(config.max_connections_per_ip),
    )
    app[PROXIES] = proxies
    app[EDGE] = edge
    return edge


_TOO_MANY = (
    b"HTTP/1.1 429 Too Many Requests\r\n"
    b"Content-Type: application/problem+json\r\nRetry-After: 10\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
)
_TOO_MANY_BODY = (
    b'{"type":"urn:taube:error:rate.too_many_connections","title":"Too many connections '
    b'from this address.","status":429,"code":"rate.too_many_connections"}'
)
TOO_MANY_RESPONSE = _TOO_MANY % (len(_TOO_MANY_BODY), _TOO_MANY_BODY)


class Offer(Protocol):
    """Takes a connection away from aiohttp by its first request head, or leaves it
    (None). ``server/direct_ws.py`` offers this for WebSocket upgrades."""

    def offer(self, head: bytes, tail: bytes, transport: asyncio.Transport) -> Taken | None: ...


class Taken(Protocol):
    """What serves a connection taken by an ``Offer``: the transport's callbacks."""

    def data_received(self, data: bytes) -> None: ...
    def eof_received(self) -> bool | None: ...
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...
    def connection_lost(self, exc: Exception | None) -> None: ...


MAX_OFFERED_HEAD = 16 * 1024
"""A longer first request head is not offered: aiohttp answers it (431)."""


class GuardedProtocol(asyncio.Protocol):
    """Sits in front of aiohttp's per-connection protocol: counts the connection
    against its peer address and closes it unless a complete request head
    (``\\r\\n\\r\\n``) arrives within the handshake timeout. With an ``offer``, the
    first request head is held until complete and offered (see ``Offer``); aiohttp's
    protocol is only made for connections the offer leaves. Everything else is
    passed through unchanged."""

    __slots__ = (
        "_edge",
        "_head",
        "_inner",
        "_key",
        "_make_inner",
        "_offer",
        "_passed",
        "_tail",
        "_taken",
        "_timer",
        "_transport",
    )

    def __init__(
        self,
        make_inner: Callable[[], asyncio.Protocol],
        edge: EdgeState,
        offer: Offer | None = None,
    ) -> None:
        self._make_inner = make_inner
        self._inner: asyncio.Protocol | None = None
        self._taken: Taken | None = None
        self._offer = offer
        self._head: bytearray | None = None  # the first request head, while offered
        self._edge = edge
        self._key: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""
        self._passed = False
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self._transport = transport
        peer = transport.get_extra_info("peername")
        address = parse_address(peer[0]) if isinstance(peer, tuple) and peer else None
        if address is not None and not self._edge.proxies.trusts(address):
            key = str(address)
            if not self._edge.tcp.acquire(key):
                self._edge.refused += 1
                log.debug("refused connection: too many from %s", key)
                transport.write(TOO_MANY_RESPONSE)
                transport.close()
                return
            self._key = key
        self._timer = asyncio.get_running_loop().call_later(
            self._edge.handshake_timeout_s, self._expire
        )
        self._passed = True
        if self._offer is None:
            self._start_inner()

    def _start_inner(self) -> asyncio.Protocol:
        inner = self._inner = self._make_inner()
        inner.connection_made(cast(asyncio.Transport, self._transport))
        return inner

    def _expire(self) -> None:
        self._timer = None
        self._edge.timed_out += 1
        log.debug("handshake timeout peer=%s", self._key)
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._taken is not None:
            self._taken.data_received(data)
            return
        if not self._passed:
            return  # refused when it connected (data can still come, e.g. over TLS)
        if self._timer is not None:
            window = self._tail + data
            if b"\r\n\r\n" in window:
                self._timer.cancel()
                self._timer = None
            else:
                self._tail = window[-3:]
        if self._inner is not None:
            self._inner.data_received(data)
            return
        if self._head is None:
            self._head = bytearray()
        held = self._head
        seen = max(0, len(held) - 3)  # only new bytes can end the head: no rescans
        held += data
        end = held.find(b"\r\n\r\n", seen)
        if end < 0 and len(held) <= MAX_OFFERED_HEAD:
            return  # the head is not complete yet
        self._head = None
        if end >= 0 and self._offer is not None and self._transport is not None:
            taken = self._offer.offer(bytes(held[:end]), bytes(held[end + 4 :]), self._transport)
            if taken is not None:
                self._taken = taken
                return
        self._start_inner().data_received(bytes(held))

    def eof_received(self) -> bool | None:
        if self._taken is not None:
            return self._taken.eof_received()
        if self._inner is not None and self._passed:
            return self._inner.eof_received()
        return None

    def pause_writing(self) -> None:
        if self._taken is not None:
            self._taken.pause_writing()
        elif self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._taken is not None:
            self._taken.resume_writing()
        elif self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._key is not None:
            self._edge.tcp.release(self._key)
            self._key = None
        if self._taken is not None:
            self._taken.connection_lost(exc)
        elif self._passed and self._inner is not None:
            self._inner.connection_lost(exc)
        self._passed = False


class GuardedSite(web.BaseSite):
    """A TCP (or TLS) site whose connections go through ``GuardedProtocol``."""

    __slots__ = ("_edge", "_host", "_offer", "_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        edge: EdgeState,
        *,
        ssl_context: ssl.SSLContext | None = None,
        offer: Offer | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=1024)
        self._host = host
        self._port = port
        self._edge = edge
        self._offer = offer

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{scheme}://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        edge, offer = self._edge, self._offer

        def factory() -> asyncio.Protocol:
            return GuardedProtocol(server, edge, offer)

        self._server = await loop.create_server(
            factory,
            self._host,
            self._port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=edge.handshake_timeout_s if self._ssl_context else None,
            backlog=self._backlog,
            reuse_address=True,
        )


# ---------------------------------------------------------------- TLS


def make_ssl_context(config: Config) -> ssl.SSLContext | None:
    """The server context for ``tls_cert`` and ``tls_key`` (None without them): TLS 1.2
    or newer, the library's default (forward-secret, AEAD) ciphers. A file that cannot
    be read or does not fit is a ConfigError naming it."""
    if not config.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except OSError as exc:  # ssl.SSLError included
        raise ConfigError(
            f"cannot use tls_cert {config.tls_cert} / tls_key {config.tls_key}: "
            f"{exc.strerror or exc}"
        ) from None
    return context


# ---------------------------------------------------------------- inbound frames


@dataclass
class FrameRate:
    """Inbound frames one connection may send: ``per_s`` a second, ``burst`` saved up.
    ``take`` says 0.0 (go ahead) or the seconds to wait. A connection that keeps
    sending while refused is flooding: more than ``per_s`` refusals within one second
    (it sends at more than twice its budget) ends it. Pure: time is passed in."""

    per_s: float
    burst: float
    bucket: TokenBucket = field(init=False)
    window_start: float = -1.0
    refused: int = 0

    def __post_init__(self) -> None:
        self.bucket = TokenBucket(self.per_s, max(1.0, self.burst))

    def take(self, now: float) -> float:
        wait = self.bucket.take(now)
        if wait:
            if self.window_start < 0 or now - self.window_start >= 1.0:
                self.window_start, self.refused = now, 0
            self.refused += 1
        return wait

    @property
    def flooding(self) -> bool:
        return self.refused > self.per_s

    @staticmethod
    def retry_after_s(wait: float) -> int:
        return max(1, math.ceil(wait))
