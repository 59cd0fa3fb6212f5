"""The payload content format: round trips, and total decoding of anything else."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from taube.client import Text, Unsupported, content_text, decode_content, encode_content


def test_text_round_trip_and_wire_shape() -> None:
    payload = encode_content("hello, Welt 🕊")
    assert msgspec.json.decode(payload) == {"type": "text", "v": 1, "text": "hello, Welt 🕊"}
    assert decode_content(payload) == Text(text="hello, Welt 🕊")
    assert encode_content(Text(text="x")) == encode_content("x")


def test_unknown_type_is_unsupported_and_keeps_raw_bytes() -> None:
    payload = b'{"v":1,"type":"poll","question":"lunch?","options":["a","b"]}'
    content = decode_content(payload)
    assert isinstance(content, Unsupported)
    assert (content.type, content.v, content.raw) == ("poll", 1, payload)
    assert content_text(content) is None


def test_newer_format_version_is_unsupported() -> None:
    content = decode_content(b'{"v":2,"type":"text","text":"from the future"}')
    assert isinstance(content, Unsupported)
    assert content.reason == "unsupported format version"


def test_unknown_fields_are_ignored() -> None:
    # A newer client may add optional fields (e.g. reply_to) to a known type.
    content = decode_content(b'{"v":1,"type":"text","text":"hi","reply_to":"abc"}')
    assert content == Text(text="hi")


def test_known_type_with_wrong_field_type_is_unsupported() -> None:
    content = decode_content(b'{"v":1,"type":"text","text":42}')
    assert isinstance(content, Unsupported)
    assert content.type == "text"


@given(st.binary(max_size=200))
def test_decoding_never_raises(payload: bytes) -> None:
    decode_content(payload)


@given(st.text(max_size=500))
def test_any_text_round_trips(text: str) -> None:
    assert decode_content(encode_content(text)) == Text(text=text)
