"""Hypothesis-generated WebSocket frames against a real server over a real socket.

Frames are garbage (random text and bytes, broken and deeply nested JSON, huge
frames) or shaped like the real ones (known and unknown tags, real field names with
values of every JSON type, out-of-range numbers, real addresses). Each case goes to an
authenticated connection, followed by a ``ping``: every frame that comes back before
the matching ``pong`` answers the case. Some cases go first on a fresh connection,
before ``auth``. What must hold for every case:

* every ``error`` carries a code from the error table, and never ``internal``;
* a connection ends only with a documented close code: 1009 for a frame over the
  limit (no error frame), and before ``auth`` the close code of the ``auth.*`` error;
* afterwards a control client still gets its ``pong``, and the server log holds no
  traceback (no crash anywhere, not even one that a handler caught).

``FUZZ_CASES`` sets the number of cases (default 200; ``make fuzz`` runs 10,000).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taube.protocol.errors import ERRORS
from taube.protocol.ids import uuid7
from tests.serverproc import UNIT_S, ServerProcess
from tests.wire import Account, http, register

FUZZ_CASES = int(os.environ.get("FUZZ_CASES", "200"))
MAX_FRAME = 8192
LIMITS = {"limits": {"max_payload_bytes": 4096, "max_frame_bytes": MAX_FRAME}}
AUTH_CLOSES = {code: spec.ws_close for code, spec in ERRORS.items() if code.startswith("auth.")}

# ---------------------------------------------------------------- strategies

TAGS = ["auth", "send", "ack", "read", "typing", "watch", "ping"]
FIELDS = ["type", "token", "last_seq", "ref", "id", "to", "payload", "payloads", "seq",
          "conversation", "sender", "ids", "active", "users", "user", "device"]  # fmt: skip
NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, -1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
)
WORDS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["@fuzzbuddy", "@fuzz", "@nobody", "#", "@", "", "fuzzbuddy", "@FUZZBUDDY",
                     "#0000000000000000000000000a", "#group", "0" * 64, "QUJD", "====",
                     "\x00", "\ud800".encode("utf-8", "surrogatepass").decode("latin-1")]),
    st.uuids().map(str),
    st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),
)  # fmt: skip
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, WORDS)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(st.sampled_from(FIELDS) | WORDS, inner,
                                                     max_size=6)
    ),
    max_leaves=24,
)  # fmt: skip


@st.composite
def shaped(draw: st.DrawFn) -> str:
    """An object that looks like a client frame: a (mostly) known tag, real field names."""
    frame: dict[str, Any] = {}
    frame["type"] = draw(st.sampled_from(TAGS) | st.sampled_from(["hello", "", "SEND"]) | VALUES)
    for name in draw(st.lists(st.sampled_from(FIELDS[1:]), max_size=6, unique=True)):
        frame[name] = draw(VALUES)
    if frame["type"] == "send" and draw(st.booleans()):
        frame["id"] = uuid7()
        frame["to"] = draw(st.sampled_from(["@fuzzbuddy", "@fuzz", "@nobody"]))
    if draw(st.booleans()):
        frame.pop("type")
        frame = {"type": draw(st.sampled_from(TAGS)), **frame}
    return json.dumps(frame, allow_nan=True)


GARBAGE = st.one_of(
    st.text(max_size=200),
    st.integers(1, 20_000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 20_000).map(lambda n: '{"type":"ping","ref":' + "[" * n + "]" * n + "}"),
    st.integers(1, 3_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.integers(MAX_FRAME - 100, 3 * MAX_FRAME).map(lambda n: '{"type":"ping","ref":"' + "x" * n
                                                    + '"}'),
    VALUES.map(lambda v: json.dumps(v, allow_nan=True)),
    st.sampled_from(["[1", "{", '{"type":', "nul", "\x00", '{"type":"ping"}{', "true"]),
    st.text(alphabet=string.printable, max_size=100).map(lambda t: '{"type":"ping","ref":"' + t),
)  # fmt: skip


@dataclass(frozen=True)
class Case:
    data: str | bytes
    before_auth: bool


CASES = st.builds(
    Case,
    data=st.one_of(shaped(), GARBAGE, st.binary(max_size=300), GARBAGE.map(str.encode)),
    before_auth=st.integers(0, 9).map(lambda n: n == 9),
)

# ---------------------------------------------------------------- harness


@dataclass
class Tally:
    cases: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    closes: dict[int, int] = field(default_factory=dict)


class Fuzzer:
    """One event loop for the whole run; an authenticated connection that is reopened
    whenever a case closed it."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.account: Account | None = None
        self.tally = Tally()
        self.pings = 0

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def open(self) -> None:
        self.session = aiohttp.ClientSession()
        self.account = await register(self.session, self.server.url, "fuzz")
        await register(self.session, self.server.url, "fuzzbuddy")
        await self.connect()

    async def connect(self) -> None:
        assert self.session is not None
        assert self.account is not None
        self.ws = await self.session.ws_connect(self.server.ws_url, max_msg_size=0)
        await self.ws.send_json({"type": "auth", "token": self.account.token})
        ready = await self.ws.receive_json(timeout=10 * UNIT_S)
        assert ready["type"] == "ready", ready

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()

    def check_error(self, frame: dict[str, Any]) -> str:
        code = frame.get("code")
        assert code in ERRORS, frame
        assert code != "internal", frame
        self.tally.errors[code] = self.tally.errors.get(code, 0) + 1
        return str(code)

    async def send(self, ws: aiohttp.ClientWebSocketResponse, data: str | bytes) -> None:
        if isinstance(data, bytes):
            await ws.send_bytes(data)
        else:
            await ws.send_str(data)

    async def authenticated(self, data: str | bytes) -> None:
        if self.ws is None or self.ws.closed:
            await self.connect()
        assert self.ws is not None
        ws = self.ws
        self.pings += 1
        ref = f"fuzz-{self.pings}"
        await self.send(ws, data)
        await ws.send_str(json.dumps({"type": "ping", "ref": ref}))
        deadline = time.monotonic() + 10 * UNIT_S
        fatal: str | None = None
        while True:
            msg = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.CLOSING):  # fmt: skip
                code = ws.close_code
                if fatal is not None:  # an error that ends the connection, then its code
                    assert code == ERRORS[fatal].ws_close, (fatal, code, data[:200])
                else:  # else only an oversized frame ends it, without an error frame
                    assert code == 1009, (code, data[:200])
                    assert len(data.encode() if isinstance(data, str) else data) > MAX_FRAME
                self.tally.closes[code] = self.tally.closes.get(code, 0) + 1
                await self.connect()
                return
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            frame = json.loads(msg.data)
            if frame["type"] == "pong" and frame.get("ref") == ref:
                return
            if frame["type"] == "error" and ERRORS[self.check_error(frame)].ws_close:
                fatal = frame["code"]

    async def before_auth(self, data: str | bytes) -> None:
        assert self.session is not None
        ws = await self.session.ws_connect(self.server.ws_url, max_msg_size=0)
        try:
            await self.send(ws, data)
            msg = await ws.receive(timeout=10 * UNIT_S)
            if msg.type == aiohttp.WSMsgType.TEXT:
                frame = json.loads(msg.data)
                assert frame["type"] == "error", frame
                code = self.check_error(frame)
                assert code in AUTH_CLOSES, frame
                msg = await ws.receive(timeout=10 * UNIT_S)
                expected = AUTH_CLOSES[code]
            else:
                expected = 1009  # oversized: closed without an error frame
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
            assert ws.close_code == expected, (ws.close_code, expected, data[:200])
            self.tally.closes[expected] = self.tally.closes.get(expected, 0) + 1
        finally:
            await ws.close()

    async def control(self) -> None:
        """Another client is still served: register, connect, ping, pong."""
        assert self.session is not None
        self.pings += 1
        probe = f"ctl{self.pings}"
        body = {"handle": probe, "password": "correct horse battery"}
        status, body = await http(self.session, "POST", f"{self.server.url}/v1/accounts", body)
        assert status == 201, body
        ws = await self.session.ws_connect(self.server.ws_url)
        await ws.send_json({"type": "auth", "token": body["token"]})
        assert (await ws.receive_json(timeout=5 * UNIT_S))["type"] == "ready"
        await ws.send_json({"type": "ping", "ref": "control"})
        assert (await ws.receive_json(timeout=5 * UNIT_S))["type"] == "pong"
        await ws.close()


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder: Path = tmp_path_factory.mktemp("fuzz-frames")
    proc = ServerProcess(folder, settings=LIMITS).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def fuzzer(fuzz_server: ServerProcess) -> Iterator[Fuzzer]:
    fuzzer = Fuzzer(fuzz_server)
    fuzzer.run(fuzzer.open())
    try:
        yield fuzzer
    finally:
        fuzzer.run(fuzzer.close())
        fuzzer.loop.close()


def test_fuzzed_frames_get_documented_answers_and_never_crash(
    fuzzer: Fuzzer, fuzz_server: ServerProcess
) -> None:
    @settings(
        max_examples=FUZZ_CASES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=CASES)
    def one(case: Case) -> None:
        fuzzer.tally.cases += 1
        if case.before_auth:
            fuzzer.run(fuzzer.before_auth(case.data))
        else:
            fuzzer.run(fuzzer.authenticated(case.data))
        if fuzzer.tally.cases % 1000 == 0:
            fuzzer.run(fuzzer.control())

    one()
    fuzzer.run(fuzzer.control())
    log = fuzz_server.log()
    assert "Traceback" not in log, log[log.index("Traceback") - 500 :][:3000]
    assert fuzz_server.proc is not None
    assert fuzz_server.proc.poll() is None
    print(f"\nfuzzed frames: {fuzzer.tally.cases} cases, 0 crashes; "
          f"error codes {dict(sorted(fuzzer.tally.errors.items()))}, "
          f"closes {fuzzer.tally.closes}")  # fmt: skip
    assert fuzzer.tally.cases >= min(FUZZ_CASES, 50)
