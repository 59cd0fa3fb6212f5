"""Pure tests of the protocol package: ids, addresses, frames and the error table."""

from __future__ import annotations

import base64
import re
import uuid

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from taube.protocol import api, ids
from taube.protocol.errors import ERRORS, TaubeError
from taube.protocol.frames import (
    KeysLow,
    Message,
    Receipt,
    Send,
    decode_client_frame,
    decode_server_frame,
    encode_frame,
)
from taube.protocol.ids import (
    is_handle,
    is_message_id,
    new_group_id,
    normalize_handle,
    parse_address,
    uuid7,
)


@pytest.fixture
def fresh_uuid7_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The id generator remembers the newest id of the process; these tests use times
    far in the future and must not leave them behind for other tests."""
    monkeypatch.setattr(ids, "_last", [0, 0])


@pytest.mark.usefixtures("fresh_uuid7_clock")
def test_uuid7_is_version_7_time_ordered_and_canonical() -> None:
    start = 1_700_000_000_000
    ids = [uuid7(now_ms=start + i) for i in range(100)]
    assert ids == sorted(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert is_message_id(text)
    assert int(ids[0].replace("-", "")[:12], 16) == start


@pytest.mark.usefixtures("fresh_uuid7_clock")
def test_uuid7_grows_within_one_millisecond_and_when_the_clock_steps_back() -> None:
    now = 4_100_000_000_000
    same_ms = [uuid7(now_ms=now) for _ in range(5000)]  # more than the 12-bit counter holds
    assert same_ms == sorted(same_ms)
    assert len(set(same_ms)) == 5000
    earlier = uuid7(now_ms=now - 60_000)  # the clock stepped back a minute
    assert earlier > same_ms[-1]


@pytest.mark.parametrize(
    "text",
    ["", "x", "ABCDEF00-0000-7000-8000-000000000000", "{" + str(uuid.uuid4()) + "}", "1" * 36],
)
def test_message_ids_must_be_canonical(text: str) -> None:
    assert not is_message_id(text)


def test_message_id_check_agrees_with_the_canonical_pattern() -> None:
    """is_message_id is written by hand for speed: it must say what the regex says, for
    every one-character change of a valid id (each position, each kind of character)."""
    canonical = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    base = str(uuid.uuid4())
    candidates = [base, base + "0", base[:-1], "-" + base[1:], base.upper()]
    for i in range(len(base)):
        for ch in "0af-gA_ é\n":
            candidates.append(base[:i] + ch + base[i + 1 :])
    for text in candidates:
        assert is_message_id(text) == (canonical.fullmatch(text) is not None), text


@given(st.text(alphabet="0123456789abcdefABX-", min_size=30, max_size=40))
def test_message_id_check_agrees_with_the_pattern_on_any_text(text: str) -> None:
    canonical = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    assert is_message_id(text) == (canonical.fullmatch(text) is not None)


def test_addresses() -> None:
    gid = new_group_id()
    assert parse_address(f"#{gid}") == ("group", gid)
    assert parse_address("@alice") == ("user", "alice")
    for bad in ("alice", "@", "@A", "#short", "@a b", "#" + "!" * 26, "@" + "a" * 40):
        assert parse_address(bad) is None, bad
    assert normalize_handle(" @Alice ") == "alice"
    assert is_handle("al")
    assert not is_handle("a")
    assert not is_handle("-al")


@given(payload=st.binary(max_size=200), to=st.sampled_from(["@bob", "#" + "a" * 26]))
def test_send_round_trips_through_json(payload: bytes, to: str) -> None:
    frame = Send(id=uuid7(), to=to, payload=payload)
    assert decode_client_frame(encode_frame(frame)) == frame


def test_server_frames_round_trip_and_omit_defaults() -> None:
    message = Message(seq=3, id=uuid7(), conversation="@a", sender="a", sender_device=1,
                      sent_at_ms=5, payload=b"\x00\xff")  # fmt: skip
    receipt = Receipt(
        seq=4, status="read", conversation="@b", by="b", by_device=2, ids=["x"], at_ms=6
    )
    for frame in (message, receipt):
        assert decode_server_frame(encode_frame(frame)) == frame
    assert b"payloads" not in encode_frame(Send(id="x", to="@b", payload=b""))


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    frame = decode_client_frame(b'{"type":"ack","seq":4,"from_the_future":true}')
    assert frame == decode_client_frame(b'{"type":"ack","seq":4}')
    with pytest.raises(msgspec.ValidationError):
        decode_client_frame(b'{"type":"ack","seq":"4"}')


def test_error_table_is_consistent() -> None:
    for code, spec in ERRORS.items():
        assert code == spec.code
        family, _, name = code.partition(".")
        assert family
        assert name or code == "internal"
        assert 400 <= spec.http_status < 600
        assert (
            spec.ws_close is None
            or spec.ws_close in {1008, 1009, 1011, 1012, 1013}
            or 4000 <= spec.ws_close < 5000
        )
    with pytest.raises(ValueError, match="unknown error code"):
        TaubeError("no.such_code")
    assert TaubeError("msg.too_large", limit=5).details == {"limit": 5}


def test_keys_low_is_an_ephemeral_server_frame() -> None:
    data = encode_frame(KeysLow(one_time_prekeys=3))
    assert msgspec.json.decode(data) == {"type": "keys_low", "one_time_prekeys": 3}
    assert decode_server_frame(data) == KeysLow(one_time_prekeys=3)


def test_key_bodies_check_sizes_and_ids() -> None:
    key, signature = bytes(range(32)), bytes(64)
    upload = api.KeysUpload(
        identity_key=key,
        signed_prekey=api.SignedPrekey(id=2**32 - 1, key=key, signature=signature),
        one_time_prekeys=[api.Prekey(id=0, key=key)],
    )
    wire = msgspec.json.encode(upload)
    assert msgspec.json.decode(wire, type=api.KeysUpload) == upload
    assert msgspec.json.decode(b'{"identity_key": "' + _b64(key) + b'"}', type=api.KeysUpload) == (
        api.KeysUpload(identity_key=key)
    )
    bad = [
        {"identity_key": _b64(key[:31])},
        {"identity_key": _b64(key), "signed_prekey": {"id": 2**32, "key": _b64(key),
                                                      "signature": _b64(signature)}},
        {"identity_key": _b64(key), "signed_prekey": {"id": 1, "key": _b64(key),
                                                      "signature": _b64(signature[:63])}},
        {"identity_key": _b64(key), "one_time_prekeys": [{"id": -1, "key": _b64(key)}]},
        {"identity_key": _b64(key),
         "one_time_prekeys": [{"id": i, "key": _b64(key)} for i in range(201)]},
    ]  # fmt: skip
    for body in bad:
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(msgspec.json.encode(body), type=api.KeysUpload)
    # Responses always carry their nullable fields, as null.
    assert msgspec.json.decode(msgspec.json.encode(api.KeysStatus(one_time_prekeys=0))) == {
        "one_time_prekeys": 0,
        "signed_prekey_id": None,
        "identity_key": None,
    }


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data)
