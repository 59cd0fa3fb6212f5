"""The payload content format: round trips, and total decoding of anything else."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from taube.client import Text, Unsupported, content_text, decode_content, encode_content
from taube.client.content import (
    Attachment,
    Content,
    Delete,
    Disappearing,
    Edit,
    MessageRef,
    Poll,
    Reaction,
    Vote,
    format_duration,
    format_size,
)

REF = MessageRef("bob", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
BLOB = "ab" * 32
ATTACHMENT = Attachment(
    blob=BLOB,
    key=bytes(range(32)),
    digest=bytes(32),
    size=1_234_567,
    name="cat.jpg",
    mime="image/jpeg",
    caption="look",
    reply_to=REF,
    expire_s=60,
)

EVERY_TYPE: list[Content] = [
    Text(text="hi"),
    Text(text="re", reply_to=REF, expire_s=3600),
    Reaction(target=REF, emoji="👍"),
    Reaction(target=REF, emoji=""),
    Edit(target=REF, text="fixed"),
    Delete(target=REF),
    Poll(question="Lunch?", options=["pizza", "sushi"]),
    Poll(question="Which?", options=["a", "b", "c"], multiple=True, expire_s=86400),
    Vote(poll=REF, options=[0, 2]),
    Vote(poll=REF, options=[]),
    ATTACHMENT,
    Attachment(blob=BLOB, key=bytes(16), digest=bytes(32), size=0, name="", mime=""),
    Disappearing(seconds=7 * 86400),
    Disappearing(seconds=0),
]


def test_text_round_trip_and_wire_shape() -> None:
    payload = encode_content("hello, Welt 🕊")
    assert msgspec.json.decode(payload) == {"type": "text", "v": 1, "text": "hello, Welt 🕊"}
    assert payload == '{"type":"text","text":"hello, Welt 🕊","v":1}'.encode()
    assert decode_content(payload) == Text(text="hello, Welt 🕊")
    assert encode_content(Text(text="x")) == encode_content("x")


@pytest.mark.parametrize("content", EVERY_TYPE, ids=lambda c: type(c).__name__.lower())
def test_every_type_round_trips(content: Content) -> None:
    payload = encode_content(content)
    wire = msgspec.json.decode(payload)
    assert wire["v"] == 1
    assert wire["type"] == content.__struct_config__.tag
    assert decode_content(payload) == content
    assert isinstance(content_text(content), str)


def test_defaults_are_left_out_but_v_is_always_written() -> None:
    assert msgspec.json.decode(encode_content(Poll(question="q", options=["a", "b"]))) == {
        "type": "poll",
        "question": "q",
        "options": ["a", "b"],
        "v": 1,
    }
    wire = msgspec.json.decode(encode_content(Text(text="r", reply_to=REF)))
    assert wire["reply_to"] == {"sender": "bob", "id": REF.id}
    assert "expire_s" not in wire


def test_attachment_keys_travel_as_base64() -> None:
    wire = msgspec.json.decode(encode_content(ATTACHMENT))
    assert wire["key"] == "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    assert wire["blob"] == BLOB


def test_unknown_type_is_unsupported_and_keeps_raw_bytes() -> None:
    payload = b'{"v":1,"type":"sticker","pack":"cats","index":3}'
    content = decode_content(payload)
    assert isinstance(content, Unsupported)
    assert (content.type, content.v, content.raw) == ("sticker", 1, payload)
    assert content.reason == "unknown content type"
    assert content_text(content) is None


def test_newer_format_version_is_unsupported() -> None:
    content = decode_content(b'{"v":2,"type":"text","text":"from the future"}')
    assert isinstance(content, Unsupported)
    assert content.reason == "unsupported format version"
    content = decode_content(b'{"v":2,"type":"poll","question":"q","options":["a","b"]}')
    assert isinstance(content, Unsupported)
    assert content.reason == "unsupported format version"


def test_unknown_fields_are_ignored() -> None:
    # A newer client may add optional fields to a known type.
    content = decode_content(b'{"v":1,"type":"text","text":"hi","mentions":["carol"]}')
    assert content == Text(text="hi")
    content = decode_content(b'{"v":1,"type":"delete","target":{"sender":"a","id":"b","x":1}}')
    assert content == Delete(target=MessageRef("a", "b"))


def test_known_type_with_wrong_field_type_is_unsupported() -> None:
    content = decode_content(b'{"v":1,"type":"text","text":42}')
    assert isinstance(content, Unsupported)
    assert content.type == "text"


@pytest.mark.parametrize(
    "payload",
    [
        b'{"v":1,"type":"poll","question":"q","options":["only one"]}',
        b'{"v":1,"type":"poll","question":"q","options":["a",""]}',
        b'{"v":1,"type":"poll","question":"q","options":["a","' + b"x" * 101 + b'"]}',
        b'{"v":1,"type":"poll","question":"q","options":' + b'["o"' + b',"o"' * 12 + b"]}",
        b'{"v":1,"type":"poll","question":"","options":["a","b"]}',
        b'{"v":1,"type":"vote","poll":{"sender":"a","id":"b"},"options":[-1]}',
        b'{"v":1,"type":"vote","poll":{"sender":"a","id":"b"},"options":[12]}',
        b'{"v":1,"type":"reaction","target":{"sender":"a","id":"b"},"emoji":"' + b"x" * 33 + b'"}',
        b'{"v":1,"type":"reaction","target":{"sender":"","id":"b"},"emoji":"x"}',
        b'{"v":1,"type":"reaction","emoji":"x"}',
        b'{"v":1,"type":"text","text":"hi","reply_to":"not a ref"}',
        b'{"v":1,"type":"text","text":"hi","expire_s":0}',
        b'{"v":1,"type":"disappearing","seconds":-5}',
        b'{"v":1,"type":"attachment","blob":"AB","key":"AAAAAAAAAAAAAAAAAAAAAA==",'
        b'"digest":"AAAAAAAAAAAAAAAAAAAAAA==","size":1,"name":"n","mime":"m"}',
    ],
)
def test_limits_are_checked_when_decoding(payload: bytes) -> None:
    content = decode_content(payload)
    assert isinstance(content, Unsupported)
    assert content.v == 1
    assert content.reason not in ("unknown content type", "not a content object")


def test_content_text_one_liners() -> None:
    assert content_text(Text(text="hi", reply_to=REF)) == "hi"
    assert content_text(Reaction(target=REF, emoji="👍")) == "reacted 👍"
    assert content_text(Reaction(target=REF, emoji="")) == "removed a reaction"
    assert content_text(Edit(target=REF, text="new")) == "edited: new"
    assert content_text(Delete(target=REF)) == "deleted a message"
    assert content_text(Poll(question="Lunch?", options=["a", "b"])) == "📊 Lunch?"
    assert content_text(Vote(poll=REF, options=[1])) == "voted"
    assert content_text(Vote(poll=REF, options=[])) == "retracted a vote"
    assert content_text(ATTACHMENT) == "📎 cat.jpg (1.2 MB) look"
    assert content_text(Disappearing(seconds=7 * 86400)) == (
        "turned on disappearing messages: 7 days"
    )
    assert content_text(Disappearing(seconds=0)) == "turned off disappearing messages"


def test_formatting_helpers() -> None:
    assert [format_size(n) for n in (0, 999, 1000, 1500, 999_999, 2_500_000_000)] == [
        "0 B",
        "999 B",
        "1.0 kB",
        "1.5 kB",
        "1.0 MB",
        "2.5 GB",
    ]
    assert [format_duration(s) for s in (1, 30, 60, 5400, 3600, 86400, 7 * 86400)] == [
        "1 second",
        "30 seconds",
        "1 minute",
        "90 minutes",
        "1 hour",
        "1 day",
        "7 days",
    ]


@given(st.binary(max_size=200))
def test_decoding_never_raises(payload: bytes) -> None:
    decode_content(payload)


@given(st.text(max_size=500))
def test_any_text_round_trips(text: str) -> None:
    assert decode_content(encode_content(text)) == Text(text=text)


_refs = st.builds(
    MessageRef,
    st.text(min_size=1, max_size=64),
    st.text(min_size=1, max_size=64),
)
_contents = st.one_of(
    st.builds(
        Text,
        text=st.text(max_size=100),
        reply_to=st.none() | _refs,
        expire_s=st.none() | st.integers(1, 86400),
    ),
    st.builds(Reaction, target=_refs, emoji=st.text(max_size=32)),
    st.builds(
        Poll,
        question=st.text(min_size=1, max_size=300),
        options=st.lists(st.text(min_size=1, max_size=100), min_size=2, max_size=12),
        multiple=st.booleans(),
    ),
    st.builds(Vote, poll=_refs, options=st.lists(st.integers(0, 11), max_size=12)),
    st.builds(Disappearing, seconds=st.integers(0, 366 * 86400)),
)


@given(_contents)
def test_valid_content_round_trips(content: Content) -> None:
    assert decode_content(encode_content(content)) == content
