"""WebSocket text frames built by hand, so that many can go out in one write.

aiohttp writes every frame with its own ``transport.write`` (one system call each
on an idle socket). A busy connection often has dozens of small frames ready at
once (messages, "sent" acks, receipts); joining them into one write is the single
largest saving on the send path. Server frames are never masked (RFC 6455 5.1) and
we negotiate no compression, so a frame is just a header and the payload.
"""

from __future__ import annotations

import struct
from typing import Final

_TEXT_FIN: Final = 0x81
_LEN16: Final = struct.Struct("!BBH")
_LEN64: Final = struct.Struct("!BBQ")


_SMALL_HEADERS: Final = tuple(bytes((_TEXT_FIN, size)) for size in range(126))
_COMMON_SIZES: Final = 2048
"""Headers of frames up to this size are made once (~75 KB): a chat message's frame is
a few hundred bytes, and packing each header cost ~750 instructions (~1 % of Workload A)."""
_COMMON_HEADERS: Final = _SMALL_HEADERS + tuple(
    _LEN16.pack(_TEXT_FIN, 126, size) for size in range(126, _COMMON_SIZES)
)


def text_header(size: int) -> bytes:
    """The header of a final, unmasked, uncompressed text frame of ``size`` bytes: a
    writer that joins many frames appends it and the payload, and copies each once."""
    if size < _COMMON_SIZES:
        return _COMMON_HEADERS[size]
    if size < 65536:
        return _LEN16.pack(_TEXT_FIN, 126, size)
    return _LEN64.pack(_TEXT_FIN, 127, size)


def sent_frame(message_id: str, sent_at_ms: int, duplicate: bool) -> bytes:
    """``encode_frame(Sent(id=..., sent_at_ms=..., duplicate=...))``, byte for byte
    (tests/unit/test_framing.py), by a format string: one is answered for every message
    sent, and building the Struct with keywords and encoding it took twice as long.
    ``message_id`` must have passed ``is_message_id`` (every send's id has: the
    delivery service refuses any other before it is committed), so that nothing in it
    needs escaping in JSON."""
    if duplicate:
        return (
            f'{{"type":"sent","id":"{message_id}","sent_at_ms":{sent_at_ms},"duplicate":true}}'
        ).encode()
    return f'{{"type":"sent","id":"{message_id}","sent_at_ms":{sent_at_ms}}}'.encode()


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked, uncompressed text frame carrying ``payload`` (UTF-8)."""
    return text_header(len(payload)) + payload


_CLOSE_FIN = 0x88

PING_FRAME = bytes((0x89, 0))
"""A final, unmasked Ping with no payload (RFC 6455 5.5.2): the node's heartbeat."""


def close_frame(code: int, reason: str) -> bytes:
    """A final, unmasked close frame (RFC 6455 5.5.1): the code, then a short reason."""
    payload = code.to_bytes(2, "big") + reason.encode()[:123]
    return bytes((_CLOSE_FIN, len(payload))) + payload


def pong_frame(payload: bytes | bytearray) -> bytes:
    """A final, unmasked Pong echoing a Ping's payload (at most 125 bytes, RFC 6455 5.5).
    aiohttp's frame reader hands a Ping's payload over as a bytearray."""
    echoed = bytes(payload[:125])
    return bytes((0x8A, len(echoed))) + echoed
