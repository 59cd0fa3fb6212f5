"""Hand-built WebSocket text frames follow RFC 6455 5.2 for every length class."""

from __future__ import annotations

import struct

import pytest

from taube.server.framing import text_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 300, 2047, 2048, 65535, 65536, 70000])
def test_text_frame_header(size: int) -> None:
    payload = b"x" * size
    frame = text_frame(payload)
    assert frame[0] == 0x81  # FIN + text opcode
    assert frame[1] & 0x80 == 0  # servers never mask
    if size < 126:
        assert frame[1] == size
        header = 2
    elif size < 65536:
        assert frame[1] == 126
        assert struct.unpack("!H", frame[2:4])[0] == size
        header = 4
    else:
        assert frame[1] == 127
        assert struct.unpack("!Q", frame[2:10])[0] == size
        header = 10
    assert frame[header:] == payload
