"""``NatsBus``: the bus between gateway nodes, on NATS (nats-py).

What it keeps:

- **Same node first, NATS for the others.** ``publish`` calls this node's handlers
  at once (as ``LocalBus`` does) and sends the message to NATS for the other nodes;
  the connection is ``no_echo`` so NATS never hands a node its own messages twice.
  A node's own users therefore keep their doorbells while NATS is down.
- **Best effort, never in the caller's way.** The store is the truth and the bus a
  doorbell (DESIGN.md, principle 4): publishing while NATS is unreachable does not
  raise. nats-py buffers up to ``max_buffer_bytes`` while it reconnects and sends
  them when it is back; beyond that messages are dropped. Each outage is logged
  once when it starts and once when it ends (with the count dropped).
- **Survives NATS restarts.** The client reconnects forever (a short wait between
  attempts) and nats-py subscribes again to every subject on reconnect.
- **One NATS subscription per subject**, however many local handlers share it;
  handlers run on the event loop in subscription order, and a failing handler is
  logged without stopping the others. A new subject's ``subscribe`` returns once the
  NATS server has the interest (a PING/PONG round trip), so subscribing and then
  reading the store leaves no window in which a doorbell is lost.
- **Subjects are mapped, not trusted.** Taube subjects embed handles, which may hold
  ``.``, ``-`` and ``_``, end with ``.`` or hold ``..``. NATS splits subjects on
  ``.`` and refuses empty tokens, spaces and the wildcards ``*`` and ``>``. So a
  Taube subject is split on ``.`` and each token escaped (see ``nats_subject``):
  ``inbox.alice.2`` stays readable as ``<prefix>.inbox.alice.2``, ``user.a..b``
  becomes ``<prefix>.user.a.~.b``. The mapping is injective, so no two Taube
  subjects share a NATS subject; that a dotted handle spans several NATS tokens is
  harmless because every subscription is exact (no wildcards). The ``prefix`` keeps
  clusters (and tests) that share one NATS server apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from taube.bus.base import Bus, BusUnavailable, Handler, Subscription

log = logging.getLogger(__name__)

_SAFE_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9_-]")
_ESCAPE = re.compile(r"~([0-9a-f]{2})")
EMPTY_TOKEN = "~"
FLUSH_TIMEOUT_S = 1.0


def _escape_token(token: str) -> str:
    if not token:
        return EMPTY_TOKEN
    if _SAFE_TOKEN.fullmatch(token):
        return token
    return _UNSAFE_CHAR.sub(lambda m: "".join(f"~{byte:02x}" for byte in m.group().encode()), token)


def _unescape_token(token: str) -> str:
    if token == EMPTY_TOKEN:
        return ""
    if "~" not in token:
        return token
    raw = bytearray()
    position = 0
    for m in _ESCAPE.finditer(token):
        raw += token[position : m.start()].encode()
        raw.append(int(m.group(1), 16))
        position = m.end()
    raw += token[position:].encode()
    return raw.decode()


def nats_subject(prefix: str, subject: str) -> str:
    """The NATS subject for a Taube subject: each ``.``-separated token keeps
    ``A-Z a-z 0-9 _ -``; any other character becomes ``~xx`` per UTF-8 byte (``~``
    itself included, so escapes cannot be forged) and an empty token becomes ``~``."""
    return f"{prefix}.{'.'.join(_escape_token(t) for t in subject.split('.'))}"


def taube_subject(prefix: str, subject: str) -> str:
    """The inverse of ``nats_subject``."""
    body = subject.removeprefix(f"{prefix}.")
    return ".".join(_unescape_token(t) for t in body.split("."))


@dataclass(slots=True)
class _Subject:
    handlers: list[Handler] = field(default_factory=list)
    nats: NatsSubscription | None = None


class _NatsSubscription(Subscription):
    def __init__(self, bus: NatsBus, subject: str, handler: Handler) -> None:
        self._bus, self._subject, self._handler = bus, subject, handler

    async def cancel(self) -> None:
        await self._bus._remove(self._subject, self._handler)


class NatsBus(Bus):
    """The Bus on NATS. ``servers``: one ``nats://`` URL or several (a NATS cluster);
    ``node``: this node's name, shown as the connection name in NATS monitoring;
    ``prefix``: the first token of every subject this bus uses; ``on_reconnect``:
    called on the event loop after every reconnect (messages from other nodes may
    have been missed meanwhile: a good moment for a catch-up read of the store)."""

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        node: str = "taube",
        prefix: str = "taube",
        connect_timeout_s: float = 2.0,
        reconnect_wait_s: float = 0.5,
        ping_interval_s: float = 5.0,
        max_buffer_bytes: int = 1024 * 1024,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        if not all(_SAFE_TOKEN.fullmatch(t) for t in prefix.split(".")):
            raise ValueError(f"bus prefix {prefix!r}: dot-separated words of A-Z a-z 0-9 _ -")
        self._servers = [servers] if isinstance(servers, str) else list(servers)
        self._node = node
        self._prefix = prefix
        self._connect_timeout_s = connect_timeout_s
        self._reconnect_wait_s = reconnect_wait_s
        self._ping_interval_s = ping_interval_s
        self._max_buffer_bytes = max_buffer_bytes
        self._nc: Client | None = None
        self._subjects: dict[str, _Subject] = {}
        self._dropped = 0
        self._drop_logged = False
        self._last_error: Exception | None = None
        self._on_reconnect = on_reconnect
        self._outgoing: deque[tuple[str, bytes]] = deque()
        self._sender: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Connect; raises BusUnavailable if no server answers within the connect timeout.
        Once connected, the client reconnects by itself for as long as the bus is open."""
        nc = Client()
        options: dict[str, Any] = {
            "servers": self._servers,
            "name": f"taube {self._node}",
            "no_echo": True,
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": self._reconnect_wait_s,
            "connect_timeout": self._connect_timeout_s,
            "ping_interval": self._ping_interval_s,
            "max_outstanding_pings": 2,
            "pending_size": self._max_buffer_bytes,
            # A full buffer makes publish wait for the socket; without a bound that wait
            # never ends when the connection dies under it (nats-py drops the flusher).
            "flush_timeout": FLUSH_TIMEOUT_S,
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
        }
        try:
            # With unlimited reconnects, nats-py retries the first connect forever too.
            await asyncio.wait_for(nc.connect(**options), self._connect_timeout_s)
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            await nc.close()
            cause = self._last_error if isinstance(exc, TimeoutError) else exc
            raise BusUnavailable(
                f"NATS unreachable at {', '.join(self._servers)}: {cause!r}"
            ) from exc
        self._nc = nc

    async def close(self) -> None:
        if self._sender is not None:  # what was published before close still goes out
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._sender), self._connect_timeout_s)
        nc, self._nc = self._nc, None
        self._subjects.clear()
        if nc is not None:
            try:
                await asyncio.wait_for(nc.close(), self._connect_timeout_s)
            except (TimeoutError, OSError, nats.errors.Error):
                log.warning("NATS connection did not close cleanly", exc_info=True)

    async def ping(self) -> None:
        """A round trip to the NATS server (PING/PONG) within the connect timeout."""
        nc = self._nc
        if nc is None or not nc.is_connected:
            raise BusUnavailable("not connected to NATS")
        try:
            await asyncio.wait_for(nc.flush(), self._connect_timeout_s)
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            raise BusUnavailable(f"NATS did not answer: {str(exc) or type(exc).__name__}") from exc

    # ------------------------------------------------------------ publish / subscribe

    async def publish(self, subject: str, data: bytes = b"") -> None:
        self._dispatch(subject, data)
        await self._send(subject, data)

    def publish_nowait(self, subject: str, data: bytes = b"") -> None:
        self._dispatch(subject, data)
        if self._nc is None:
            return
        # One sender task drains what piles up meanwhile (in order), not one per message.
        self._outgoing.append((subject, data))
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_outgoing())

    async def _send_outgoing(self) -> None:
        try:
            while self._outgoing:
                subject, data = self._outgoing.popleft()
                await self._send(subject, data)
        finally:
            self._sender = None

    async def _send(self, subject: str, data: bytes) -> None:
        nc = self._nc
        if nc is None:
            return
        try:
            await nc.publish(nats_subject(self._prefix, subject), data)
        except (OSError, nats.errors.Error) as exc:
            self._dropped += 1
            if not self._drop_logged:
                self._drop_logged = True
                log.warning(
                    "NATS unreachable or buffer full; dropping bus messages until it is back",
                    extra={"error": repr(exc)},
                )

    async def subscribe(self, subject: str, handler: Handler) -> Subscription:
        entry = self._subjects.get(subject)
        if entry is not None:
            entry.handlers.append(handler)
            return _NatsSubscription(self, subject, handler)
        nc = self._nc
        if nc is None:
            raise BusUnavailable("bus is not open")
        entry = self._subjects[subject] = _Subject([handler])

        async def on_message(msg: Msg) -> None:
            self._dispatch(subject, msg.data)

        try:
            sub = await nc.subscribe(nats_subject(self._prefix, subject), cb=on_message)
        except (OSError, nats.errors.Error) as exc:
            if self._subjects.get(subject) is entry:
                del self._subjects[subject]
            raise BusUnavailable(f"cannot subscribe to {subject!r}: {exc!r}") from exc
        if self._subjects.get(subject) is not entry:  # every handler cancelled meanwhile
            await self._unsubscribe(sub)
            return _NatsSubscription(self, subject, handler)
        entry.nats = sub
        if nc.is_connected:
            # A round trip, so that the server has the interest before we return: a
            # caller that subscribes and then reads the store misses no doorbell.
            # While NATS is away, nats-py subscribes again on reconnect by itself.
            try:
                await asyncio.wait_for(nc.flush(), self._connect_timeout_s)
            except (TimeoutError, OSError, nats.errors.Error):
                log.debug("NATS did not confirm a subscription in time", exc_info=True)
        return _NatsSubscription(self, subject, handler)

    def _dispatch(self, subject: str, data: bytes) -> None:
        entry = self._subjects.get(subject)
        if entry is None:
            return
        for handler in list(entry.handlers):
            try:
                handler(subject, data)
            except Exception:
                log.exception("bus handler failed", extra={"subject": subject})

    async def _remove(self, subject: str, handler: Handler) -> None:
        entry = self._subjects.get(subject)
        if entry is None or handler not in entry.handlers:
            return
        entry.handlers.remove(handler)
        if entry.handlers:
            return
        del self._subjects[subject]
        if entry.nats is not None:
            await self._unsubscribe(entry.nats)

    @staticmethod
    async def _unsubscribe(sub: NatsSubscription) -> None:
        # Closed or reconnecting: the server forgets the interest anyway.
        with contextlib.suppress(OSError, nats.errors.Error):
            await sub.unsubscribe()

    # ------------------------------------------------------------ connection events

    async def _on_disconnected(self) -> None:
        if self._nc is not None:
            log.warning(
                "disconnected from NATS; reconnecting (bus messages are buffered, then dropped)",
                extra={"node": self._node},
            )

    async def _on_reconnected(self) -> None:
        nc = self._nc
        url = nc.connected_url.netloc if nc is not None and nc.connected_url else "?"
        log.warning(
            "reconnected to NATS",
            extra={"node": self._node, "server": url, "dropped": self._dropped},
        )
        self._dropped = 0
        self._drop_logged = False
        if self._on_reconnect is not None:
            try:
                self._on_reconnect()
            except Exception:
                log.exception("bus reconnect hook failed")

    async def _on_error(self, exc: Exception) -> None:
        # Called for every failed reconnect attempt too; the outage is logged once above.
        self._last_error = exc
        log.debug("NATS client error: %r", exc)
