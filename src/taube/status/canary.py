"""The canary prober: synthetic messages through the real path, every few seconds.

Each node keeps a canary account (``_canary_<node>``, handles users cannot register:
``is_canary_handle``) whose one device holds a real WebSocket to the node's OWN
gateway, and a partner account (``_canary_<node>.2``) for when the node is alone.
Every ``interval_s`` the prober:

- **send**: sends a message to the canary of another live node (round-robin over the
  nodes heard on ``status.nodes`` lately; the partner when alone). It passes when
  the ``delivered`` receipt comes back (the target's device received and acked it,
  through store, bus and the target's gateway), within ``timeout_s``. Its latency is
  send -> delivered; the result also counts for ``node:<target>``.
- **connect**: a ping -> pong on the canary's socket (or, if it dropped, a fresh
  connect and auth).
- **api**: ``GET /v1/me`` over HTTP with the canary's token.
- **web**: ``GET /`` (the web client's page); a node without a built client answers
  503 "not built" and the web component stays unmeasured there.
- **store**: a trivial query; **bus**: a message to itself over the bus and back.

Outcomes count in the minute they are known (``aggregates.py``); the current and the
previous minute are written to the store after each round. Nothing is recorded until
the canary's first successful connect, so a node's start is not an outage. The
canaries' passwords are derived from the status signing key (every node of a cluster
has the same), so a restarted node logs in again and revokes its old device.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import aiohttp
import msgspec

from taube.bus.base import Bus, Subscription
from taube.core.accounts import Accounts
from taube.core.clock import Clock
from taube.protocol.errors import TaubeError
from taube.protocol.frames import (
    Ack,
    Auth,
    Error,
    Message,
    Ping,
    Pong,
    Ready,
    Receipt,
    Send,
    decode_server_frame,
    encode_frame,
)
from taube.protocol.ids import is_handle, uuid7
from taube.status.aggregates import Aggregate, encode_hist, minute_of
from taube.status.verdict import NODE_PREFIX
from taube.store.base import ProbeMinuteRecord, Store

log = logging.getLogger("taube.status.canary")

CANARY_PREFIX: Final = "_canary"
NODES_SUBJECT: Final = "status.nodes"
ECHO_SUBJECT: Final = "status.echo"
PAYLOAD: Final = b"taube canary"


def is_canary_handle(handle: str) -> bool:
    """Reserved for canaries: users cannot register these."""
    return handle.lower().lstrip("@").startswith(CANARY_PREFIX)


def node_slug(node: str, room: int) -> str:
    """``node`` as characters allowed in a handle, at most ``room`` long (a digest keeps
    long names apart)."""
    slug = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "_.-") else "-" for ch in node)
    slug = slug.lower() or "node"
    if len(slug) > room:
        digest = hashlib.sha256(node.encode()).hexdigest()[:8]
        slug = f"{slug[: room - 9]}-{digest}"
    return slug


def canary_handles(node: str) -> tuple[str, str]:
    """(the node's canary, its partner for when the node is alone)."""
    slug = node_slug(node, 32 - len(CANARY_PREFIX) - 1 - 2)
    primary = f"{CANARY_PREFIX}_{slug}"
    handles = (primary, f"{primary}.2")
    assert all(is_handle(h) for h in handles), handles
    return handles


def canary_password(seed: bytes, handle: str) -> str:
    return hmac.new(seed, f"taube canary {handle}".encode(), hashlib.sha256).hexdigest()


class Heartbeat(msgspec.Struct, frozen=True):
    """A node says it probes: its canary may be sent to. ``cluster``: a digest of the
    status key, so that nodes of other clusters on the same NATS are not probed."""

    node: str
    canary: str
    cluster: str = ""


_decode_heartbeat = msgspec.json.Decoder(Heartbeat).decode


@dataclass
class Pending:
    started: float
    target: str
    kind: str
    """``send`` (delivered receipt), ``connect`` (pong), ``bus`` (echo)."""


@dataclass
class CanarySocket:
    """One canary device's WebSocket to this node's gateway: acks what arrives and
    hands ``delivered`` receipts, ``pong`` and errors to the prober."""

    handle: str
    token: str = ""
    ws: aiohttp.ClientWebSocketResponse | None = None
    last_seq: int = 0
    reader: asyncio.Task[None] | None = None
    on_frame: Callable[[object], None] = lambda frame: None
    acked: int = 0
    seen: set[str] = field(default_factory=set)

    @property
    def up(self) -> bool:
        return self.ws is not None and not self.ws.closed

    async def connect(self, session: aiohttp.ClientSession, url: str, timeout_s: float) -> None:
        await self.close()
        async with asyncio.timeout(timeout_s):
            ws = await session.ws_connect(url, heartbeat=None, max_msg_size=0)
            try:
                await ws.send_str(
                    encode_frame(Auth(token=self.token, last_seq=self.last_seq)).decode()
                )
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise ConnectionError(f"canary socket closed: {msg.type} {msg.data}")
                frame = decode_server_frame(msg.data)
                if isinstance(frame, Error):
                    raise ConnectionError(f"canary auth failed: {frame.code}")
                if not isinstance(frame, Ready):
                    raise ConnectionError("canary: no ready frame")
            except BaseException:
                await ws.close()
                raise
        self.ws = ws
        self.reader = asyncio.get_running_loop().create_task(self._read(ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            try:
                frame = decode_server_frame(msg.data)
            except msgspec.MsgspecError:
                continue
            seq = getattr(frame, "seq", None)
            if isinstance(frame, Message | Receipt) and isinstance(seq, int):
                self.last_seq = max(self.last_seq, seq)
            self.on_frame(frame)
            if self.last_seq > self.acked:
                self.acked = self.last_seq
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_str(encode_frame(Ack(seq=self.last_seq)).decode())

    async def send(self, frame: Send | Ping) -> None:
        if self.ws is None:
            raise ConnectionError("canary socket is not connected")
        await self.ws.send_str(encode_frame(frame).decode())

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader
            self.reader = None
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
            self.ws = None


@dataclass(frozen=True, slots=True)
class ProberSettings:
    node: str
    base_url: str
    interval_s: float = 5.0
    timeout_s: float = 10.0
    slo_within_ms: int = 5000
    live_after_s: float = 15.0
    """A node not heard on the bus for this long is not probed."""


class Prober:
    def __init__(
        self,
        settings: ProberSettings,
        *,
        store: Store,
        bus: Bus,
        accounts: Accounts,
        clock: Clock,
        seed: bytes,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._store = store
        self._bus = bus
        self._accounts = accounts
        self._clock = clock
        self._seed = seed
        self._cluster = hashlib.sha256(b"taube cluster " + seed).hexdigest()[:16]
        self._monotonic = monotonic
        primary, partner = canary_handles(settings.node)
        self.handle = primary
        self.primary = CanarySocket(primary, on_frame=self._on_frame)
        self.partner = CanarySocket(partner)
        self._pending: dict[str, Pending] = {}
        self._minutes: dict[tuple[int, str], Aggregate] = {}
        self._nodes: dict[str, tuple[float, str]] = {}
        """Other nodes heard on the bus: node -> (when, its canary handle)."""
        self._turn = 0
        self._warm = False
        self._subscriptions: list[Subscription] = []
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._web_served = True

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._subscriptions.append(await self._bus.subscribe(NODES_SUBJECT, self._on_heartbeat))
        echo = f"{ECHO_SUBJECT}.{node_slug(self.settings.node, 64)}"
        self._subscriptions.append(await self._bus.subscribe(echo, self._on_echo))
        self._echo_subject = echo
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for sub in self._subscriptions:
            with contextlib.suppress(Exception):
                await sub.cancel()
        await self.primary.close()
        await self.partner.close()
        if self._session is not None:
            await self._session.close()

    @property
    def ws_url(self) -> str:
        base = self.settings.base_url
        return base.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/v1/ws"

    async def _run(self) -> None:
        # The node probes itself over loopback: its certificate names the public host.
        tls = self.settings.base_url.startswith("https://")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=False) if tls else None
        )
        # One interval's grace: the node binds its port and first clients get in before
        # the canaries take their share of the session admission.
        await asyncio.sleep(self.settings.interval_s)
        while True:
            started = self._monotonic()
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("canary round failed")
            spent = self._monotonic() - started
            await asyncio.sleep(max(0.05, self.settings.interval_s - spent))

    # ------------------------------------------------------------ accounts

    async def _login(self, socket: CanarySocket) -> None:
        password = canary_password(self._seed, socket.handle)
        try:
            device, token = await self._accounts.register(socket.handle, password, "canary")
        except TaubeError as exc:
            if exc.code != "account.handle_taken":
                raise
            device, token = await self._accounts.login(socket.handle, password, "canary")
        for other in await self._accounts.devices(socket.handle):
            if other.id != device.id:
                with contextlib.suppress(TaubeError):
                    await self._accounts.revoke(socket.handle, other.id)
        socket.token, socket.last_seq, socket.acked = token, 0, 0

    async def _ensure(self, socket: CanarySocket) -> float | None:
        """Connect ``socket`` if it is down; the seconds connecting took, or None if it
        was up. Raises if it cannot connect."""
        if socket.up:
            return None
        if not socket.token:
            await self._login(socket)
        started = self._monotonic()
        try:
            await socket.connect(self._http(), self.ws_url, self.settings.timeout_s)
        except ConnectionError as exc:
            if "auth" in str(exc):  # revoked or expired: log in again next round
                socket.token = ""
            raise
        return self._monotonic() - started

    def _http(self) -> aiohttp.ClientSession:
        assert self._session is not None
        return self._session

    # ------------------------------------------------------------ one round

    async def _round(self) -> None:
        await self._heartbeat()
        await self._connect_check()
        if not self._warm:
            return
        with contextlib.suppress(Exception):
            await self._ensure(self.partner)
        await asyncio.gather(
            self._send_probe(),
            self._http_check("api", "/v1/me", token=self.primary.token),
            self._web_check(),
            self._store_check(),
            self._bus_check(),
        )
        self._expire()
        await self.flush()

    async def _heartbeat(self) -> None:
        beat = Heartbeat(node=self.settings.node, canary=self.handle, cluster=self._cluster)
        with contextlib.suppress(Exception):
            await self._bus.publish(NODES_SUBJECT, msgspec.json.encode(beat))

    def _on_heartbeat(self, subject: str, data: bytes) -> None:
        try:
            beat = _decode_heartbeat(data)
        except msgspec.MsgspecError:
            return
        if (
            beat.node != self.settings.node
            and beat.cluster == self._cluster
            and is_canary_handle(beat.canary)
        ):
            self._nodes[beat.node] = (self._monotonic(), beat.canary)

    def live_nodes(self) -> dict[str, str]:
        """Other nodes heard lately: node -> canary handle."""
        horizon = self._monotonic() - self.settings.live_after_s
        return {n: h for n, (at, h) in sorted(self._nodes.items()) if at >= horizon}

    def record(self, component: str, ok: bool, latency_s: float | None = None) -> None:
        if not self._warm:
            return
        latency_ms = None if latency_s is None else latency_s * 1000
        within = latency_ms is not None and latency_ms <= self.settings.slo_within_ms
        key = (minute_of(self._clock()), component)
        self._minutes.setdefault(key, Aggregate()).add(ok, latency_ms, within)

    async def _connect_check(self) -> None:
        try:
            took = await self._ensure(self.primary)
        except Exception as exc:
            log.log(logging.WARNING if self._warm else logging.DEBUG, "canary connect: %s", exc)
            self.record("connect", False)
            return
        if took is not None:
            self._warm = True
            self.record("connect", True, took)
            return
        ref = f"canary-{uuid7()}"
        self._pending[ref] = Pending(self._monotonic(), self.settings.node, "connect")
        try:
            await self.primary.send(Ping(ref=ref))
        except (ConnectionError, RuntimeError):
            self._pending.pop(ref, None)
            self.record("connect", False)

    async def _send_probe(self) -> None:
        others = self.live_nodes()
        if others:
            names = sorted(others)
            target = names[self._turn % len(names)]
            self._turn += 1
            handle = others[target]
        else:
            target, handle = self.settings.node, self.partner.handle
        message_id = uuid7(self._clock())
        self._pending[message_id] = Pending(self._monotonic(), target, "send")
        try:
            await self.primary.send(Send(id=message_id, to=f"@{handle}", payload=PAYLOAD))
        except (ConnectionError, RuntimeError):
            self._pending.pop(message_id, None)
            self._send_result(target, False, None)

    def _send_result(self, target: str, ok: bool, latency_s: float | None) -> None:
        self.record("send", ok, latency_s)
        self.record(NODE_PREFIX + target, ok, latency_s)

    def _on_frame(self, frame: object) -> None:
        now = self._monotonic()
        if isinstance(frame, Receipt) and frame.status == "delivered":
            for message_id in frame.ids:
                pending = self._pending.pop(message_id, None)
                if pending is not None and pending.kind == "send":
                    self._send_result(pending.target, True, now - pending.started)
        elif isinstance(frame, Pong) and frame.ref:
            pending = self._pending.pop(frame.ref, None)
            if pending is not None:
                self.record("connect", True, now - pending.started)
        elif isinstance(frame, Error) and frame.ref:
            pending = self._pending.pop(frame.ref, None)
            if pending is not None and pending.kind == "send":
                log.warning("canary send refused: %s %s", frame.code, frame.message)
                self._send_result(pending.target, False, None)

    def _expire(self) -> None:
        horizon = self._monotonic() - self.settings.timeout_s
        for key, pending in list(self._pending.items()):
            if pending.started < horizon:
                del self._pending[key]
                if pending.kind == "send":
                    self._send_result(pending.target, False, None)
                else:
                    self.record(pending.kind, False)

    async def _http_check(self, component: str, path: str, token: str = "") -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        started = self._monotonic()
        try:
            async with (
                asyncio.timeout(self.settings.timeout_s),
                self._http().get(self.settings.base_url + path, headers=headers) as response,
            ):
                await response.read()
                ok = response.status == 200
        except (aiohttp.ClientError, OSError, TimeoutError):
            ok = False
        self.record(component, ok, self._monotonic() - started if ok else None)

    async def _web_check(self) -> None:
        started = self._monotonic()
        try:
            async with (
                asyncio.timeout(self.settings.timeout_s),
                self._http().get(self.settings.base_url + "/") as response,
            ):
                body = await response.read()
                if response.status == 503 and b"not built" in body:
                    self._web_served = False
                    return  # this node serves no web client: nothing to measure
                ok = response.status == 200
        except (aiohttp.ClientError, OSError, TimeoutError):
            ok = False
        self.record("web", ok, self._monotonic() - started if ok else None)

    async def _store_check(self) -> None:
        started = self._monotonic()
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                await self._store.ping()
            self.record("store", True, self._monotonic() - started)
        except Exception:
            self.record("store", False)

    async def _bus_check(self) -> None:
        nonce = os.urandom(8).hex()
        self._pending[nonce] = Pending(self._monotonic(), self.settings.node, "bus")
        try:
            await self._bus.publish(self._echo_subject, nonce.encode())
        except Exception:
            self._pending.pop(nonce, None)
            self.record("bus", False)

    def _on_echo(self, subject: str, data: bytes) -> None:
        pending = self._pending.pop(data.decode(errors="replace"), None)
        if pending is not None:
            self.record("bus", True, self._monotonic() - pending.started)

    async def flush(self) -> None:
        """Write the current and the previous minute's aggregates; forget older ones."""
        now = self._clock()
        keep_from = minute_of(now) - 60_000
        rows = [
            ProbeMinuteRecord(
                minute, self.settings.node, component, agg.count, agg.ok, agg.within,
                encode_hist(agg.hist), now,
            )
            for (minute, component), agg in self._minutes.items()
        ]  # fmt: skip
        if not rows:
            return
        await self._store.put_probe_minutes(rows)
        for key in [k for k in self._minutes if k[0] < keep_from]:
            del self._minutes[key]
