"""Hand-built WebSocket text frames follow RFC 6455 5.2 for every length class."""

from __future__ import annotations

import struct

import pytest

from taube.core.delivery import inbox_notice, notice_seq
from taube.protocol.frames import (
    GroupEvent,
    InboxItem,
    Message,
    Receipt,
    Sent,
    decode_server_frame,
    encode_frame,
)
from taube.protocol.ids import is_message_id, uuid7
from taube.server.framing import sent_frame, text_frame


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


@pytest.mark.parametrize("duplicate", [False, True])
@pytest.mark.parametrize("sent_at_ms", [0, 1, 1_764_300_000_000, 2**53])
def test_sent_frame_is_the_encoded_struct(duplicate: bool, sent_at_ms: int) -> None:
    # The hand-made "sent" answer must stay what the protocol's encoder would send.
    message_id = uuid7()
    assert is_message_id(message_id)
    expected = encode_frame(Sent(id=message_id, sent_at_ms=sent_at_ms, duplicate=duplicate))
    assert sent_frame(message_id, sent_at_ms, duplicate) == expected
    assert decode_server_frame(sent_frame(message_id, sent_at_ms, duplicate)) == Sent(
        id=message_id, sent_at_ms=sent_at_ms, duplicate=duplicate
    )


@pytest.mark.parametrize("seq", [0, 1, 9, 10, 255, 65_537, 2**32 - 1, 2**32 + 7, 2**63 - 1])
def test_notice_seq_reads_what_inbox_notice_wrote(seq: int) -> None:
    items: list[InboxItem] = [
        Message(
            seq=seq,
            id=uuid7(),
            conversation="@bob",
            sender="bob",
            sender_device=1,
            sent_at_ms=1,
            payload=b"x",
        ),
        Receipt(
            seq=seq,
            status="delivered",
            conversation="@ann",
            by="ann",
            by_device=2,
            ids=[uuid7()],
            at_ms=3,
        ),
        GroupEvent(
            seq=seq,
            group="g" * 26,
            event="added",
            actor="ann",
            members=["bob"],
            name="n",
            at_ms=4,
        ),
    ]
    for item in items:
        notice = inbox_notice(item)
        assert notice_seq(notice) == seq
        assert decode_server_frame(notice) == item  # the frame goes out as it is


@pytest.mark.parametrize(
    "notice",
    [
        b"",
        b"{}",
        (7).to_bytes(8, "big") + b'{"type":"message","seq":7,"id":"x"}',  # an earlier node's
        b'{"type":"message","id":"x","seq":7,"conversation":"@b"}',
        b'{"type":"message","seq":-7,"id":"0190a1b2-c3d4-7e5f"}',
        b'{"type":"message","seq":',
        b'{"type":"message_without_an_end_of_its_tag_and_more',
    ],
)
def test_notice_seq_refuses_anything_else(notice: bytes) -> None:
    assert notice_seq(notice) == -1  # the connection then reads its inbox
