"""Frames the load generator writes: valid masked WebSocket frames of valid ``send`` frames."""

from __future__ import annotations

import struct

from taube.bench.wire import (
    SendStream,
    counter_of,
    message_id,
    new_run_tag,
    sent_us_of,
    tag_of,
)
from taube.protocol.frames import Send, decode_client_frame
from taube.protocol.ids import is_message_id


def unframe(data: bytes) -> list[bytes]:
    """Split masked client frames and unmask them (RFC 6455 §5.2, written out plainly)."""
    out = []
    while data:
        assert data[0] == 0x81  # FIN, text
        assert data[1] & 0x80  # masked
        length, offset = data[1] & 0x7F, 2
        if length == 126:
            (length,), offset = struct.unpack("!H", data[2:4]), 4
        elif length == 127:
            (length,), offset = struct.unpack("!Q", data[2:10]), 10
        key = data[offset : offset + 4]
        body = data[offset + 4 : offset + 4 + length]
        out.append(bytes(b ^ key[i % 4] for i, b in enumerate(body)))
        data = data[offset + 4 + length :]
    return out


def test_a_burst_is_many_send_frames_with_ids_that_carry_counter_tag_and_time() -> None:
    tag = new_run_tag()
    stream = SendStream("@bob", b"\x00" * 100, tag)
    frames = unframe(stream.frames(25, 1_234_567) + stream.frames(1, 2_000_000))
    sends = [decode_client_frame(f) for f in frames]
    assert len(sends) == 26
    assert all(isinstance(s, Send) and s.to == "@bob" for s in sends)
    assert all(isinstance(s, Send) and s.payload == b"\x00" * 100 for s in sends)
    ids = [s.id for s in sends if isinstance(s, Send)]
    assert all(is_message_id(i) for i in ids)
    assert [counter_of(i) for i in ids] == list(range(1, 27))
    assert {tag_of(i) for i in ids} == {tag}
    assert [sent_us_of(i) for i in ids] == [1_234_567] * 25 + [2_000_000]
    assert frames[0] == stream.unmasked(1, 1_234_567)


def test_message_ids_are_canonical_uuids() -> None:
    assert is_message_id(message_id(1, new_run_tag(), 0))
    assert is_message_id(message_id(2**32 - 1, new_run_tag(), 2**48 - 1))
