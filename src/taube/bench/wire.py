"""Client frames as the load generator puts them on the wire: pre-encoded, masked, batched.

aiohttp writes one frame per ``transport.write``, but Workload A sends a burst
of 25 or more messages in one write. So the load generator masks its own
frames (RFC 6455 §5.3: a client masks every frame with a 4-byte key) and writes
a burst with a single ``transport.write`` on the socket aiohttp opened. The
JSON comes from :func:`taube.protocol.frames.encode_frame`, once per stream:
a ``send`` frame is a template with only the id changing per message.

Message ids carry what the receiver needs, so no shared table is consulted
per message, even across worker processes:
``CCCCCCCC-RRRR-RRRR-RRRR-TTTTTTTTTTTT`` is a 32-bit per-sender counter, a
48-bit run tag (items left over from an earlier run with the same accounts are
recognised and only acked) and the send time: 48 bits of CLOCK_MONOTONIC
microseconds, one clock for every process on the machine. It is a canonical
lower-case UUID string as the protocol requires, unique per sender and
increasing per sender (as UUIDv7 would be). The slices are fixed, so the hot
paths in :mod:`taube.bench.workloads` read them inline: ``int(id[:8], 16)``,
``id[9:23]`` and ``int(id[24:], 16)``.
"""

from __future__ import annotations

import asyncio
import os
import random
import struct
import time
from typing import Any

import aiohttp

from taube.protocol.frames import ClientFrame, Send, encode_frame

try:  # aiohttp's own C masking, 4x faster than Python's big-int XOR
    from aiohttp._websocket.helpers import websocket_mask as _mask_in_place
except ImportError:  # pragma: no cover - only if aiohttp moves it

    def _mask_in_place(mask: bytes, data: bytearray) -> None:
        n = len(data)
        data[:] = (int.from_bytes(data, "big") ^ _repeat_key(mask, n)).to_bytes(n, "big")


OPCODE_TEXT = 0x1
_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"
_MASK_POOL = 256  # keys used round-robin; fresh keys matter against proxies, not here


def new_run_tag() -> str:
    h = os.urandom(6).hex()
    return f"{h[:4]}-{h[4:8]}-{h[8:]}"


def frame_header(length: int) -> bytes:
    """FIN + text opcode and the masked payload length (RFC 6455 §5.2)."""
    if length < 126:
        return struct.pack("!BB", 0x80 | OPCODE_TEXT, 0x80 | length)
    if length < 1 << 16:
        return struct.pack("!BBH", 0x80 | OPCODE_TEXT, 0x80 | 126, length)
    return struct.pack("!BBQ", 0x80 | OPCODE_TEXT, 0x80 | 127, length)


def _repeat_key(key: bytes, length: int) -> int:
    return int.from_bytes((key * (length // 4 + 1))[:length], "big")


def masked(data: bytes) -> bytes:
    """One complete masked text frame carrying ``data``."""
    key = random.getrandbits(32).to_bytes(4, "big")
    body = bytearray(data)
    _mask_in_place(key, body)
    return frame_header(len(data)) + key + body


def encode_masked(frame: ClientFrame) -> bytes:
    return masked(encode_frame(frame))


def transport_of(ws: aiohttp.ClientWebSocketResponse[Any]) -> asyncio.Transport:
    """The socket under an aiohttp client WebSocket (aiohttp keeps it on its frame writer)."""
    transport: asyncio.Transport = ws._writer.transport  # uvloop's is not a subclass
    return transport


def now_us() -> int:
    """The clock of message ids: CLOCK_MONOTONIC in microseconds."""
    return time.monotonic_ns() // 1000


def message_id(counter: int, tag: str, sent_us: int) -> str:
    return f"{counter:08x}-{tag}-{sent_us:012x}"


def sent_us_of(message_id: str) -> int:
    """The send time a load-generator message id carries (see the module docstring)."""
    return int(message_id[24:], 16)


def tag_of(message_id: str) -> str:
    return message_id[9:23]


def counter_of(message_id: str) -> int:
    return int(message_id[:8], 16)


class SendStream:
    """The ``send`` frames of one sending connection to one address, ready to write.

    ``frames(n)`` stamps ``n`` messages with the current time and returns them as
    the bytes of one write; only the id differs between them, so the frame
    header is fixed and computed once.
    """

    __slots__ = ("_keys", "_post", "_pre", "counter", "tag")

    def __init__(self, to: str, payload: bytes, tag: str) -> None:
        template = encode_frame(Send(id=_PLACEHOLDER, to=to, payload=payload))
        pre, sep, post = template.partition(_PLACEHOLDER.encode())
        if not sep or _PLACEHOLDER.encode() in post:
            raise AssertionError("the send template must hold the id exactly once")
        self._pre, self._post = pre, post
        header = frame_header(len(template))
        keys = [random.getrandbits(32).to_bytes(4, "big") for _ in range(_MASK_POOL)]
        self._keys = [(header + key, key) for key in keys]
        self.tag = tag
        self.counter = 0

    def frames(self, n: int, sent_us: int) -> bytes:
        """``n`` masked send frames stamped ``sent_us`` (see :func:`now_us`), as one buffer."""
        pre, tail = self._pre, f"-{self.tag}-{sent_us:012x}".encode() + self._post
        keys, mask = self._keys, _mask_in_place
        out: list[bytes | bytearray] = []
        append = out.append
        counter = self.counter
        for _ in range(n):
            counter += 1
            head, key = keys[counter & (_MASK_POOL - 1)]
            body = bytearray(pre + b"%08x" % counter + tail)
            mask(key, body)
            append(head)
            append(body)
        self.counter = counter
        return b"".join(out)

    def unmasked(self, counter: int, sent_us: int) -> bytes:
        """The JSON of one message, unmasked (for tests)."""
        return self._pre + message_id(counter, self.tag, sent_us).encode() + self._post
