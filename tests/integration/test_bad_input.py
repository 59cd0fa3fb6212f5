"""Bad input gets its own error code, and never disturbs anyone else."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import msgspec
import pytest

from taube.protocol.frames import Ack, Auth, DevicePayload, Error, Message, Send, encode_frame
from taube.protocol.ids import uuid7
from tests.serverproc import UNIT_S, ServerProcess, free_port
from tests.wire import connect, http, login, register


def send_json(to: str, payload: bytes, message_id: str | None = None) -> str:
    return encode_frame(Send(id=message_id or uuid7(), to=to, payload=payload)).decode()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "request.malformed"),
        ('{"type": "launch_missiles"}', "request.unknown_type"),
        ('{"no_type": 1}', "request.unknown_type"),
        ('{"type": "ack", "seq": "seven"}', "request.invalid"),
        ('{"type": "ack", "seq": -1}', "request.invalid"),
        ('{"type": "send", "id": "not-a-uuid", "to": "@bob", "payload": "aGk="}', "msg.invalid_id"),
        (send_json("@nobody", b"hi"), "msg.unknown_recipient"),
        (send_json("bob", b"hi"), "msg.unknown_recipient"),
        (send_json("#00000000000000000000000000", b"hi"), "group.not_found"),
        (f'{{"type": "send", "id": "{uuid7()}", "to": "@bob"}}', "request.invalid"),
        ('{"type": "auth", "token": "again"}', "auth.already_authenticated"),
        ("[]", "request.invalid"),
    ],
)
async def test_bad_frame_gets_its_code_and_connection_survives(
    server: ServerProcess, session, raw: str, code: str
) -> None:
    alice = await register(session, server.url, "alice")
    await register(session, server.url, "bob")
    a = await connect(session, server.ws_url, alice.token)
    await a.send_raw(raw)
    error = await a.error()
    assert error.code == code, error
    assert error.message
    # Still usable afterwards.
    message_id = await a.send("@bob", b"still here")
    sent = await a.sent(1)
    assert sent[0].id == message_id


async def test_oversized_payload_is_refused_and_limit_is_stated(server, session) -> None:
    alice = await register(session, server.url, "alice")
    await register(session, server.url, "bob")
    a = await connect(session, server.ws_url, alice.token)
    assert a.ready.max_payload_bytes == 64 * 1024
    message_id = await a.send("@bob", b"x" * (64 * 1024 + 1))
    error = await a.error()
    assert (error.code, error.ref, error.details) == (
        "msg.too_large", message_id, {"limit": 65536},
    )  # fmt: skip
    await a.send("@bob", b"x" * (64 * 1024))
    assert len(await a.sent(1)) == 1


async def test_frame_over_the_frame_limit_closes_with_1009(tmp_path: Path, session) -> None:
    server = ServerProcess(tmp_path / "s", settings={"limits": {"max_frame_bytes": 100000}})
    server.start()
    try:
        alice = await register(session, server.url, "alice")
        a = await connect(session, server.ws_url, alice.token)
        await a.send_raw("x" * 200_000)
        msg = await a.ws.receive(timeout=5 * UNIT_S)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert a.ws.close_code == 1009
    finally:
        server.stop()


async def test_stale_per_device_payloads_get_the_current_device_list(server, session) -> None:
    alice = await register(session, server.url, "alice")
    await register(session, server.url, "bob")
    await login(session, server.url, "bob")
    a = await connect(session, server.ws_url, alice.token)
    message_id = uuid7()
    one_device = [DevicePayload(user="bob", device=1, payload=b"for bob 1")]
    await a.send_frame(Send(id=message_id, to="@bob", payloads=one_device))
    error = await a.error()
    assert error.code == "msg.stale_devices"
    assert error.details == {
        "missing": ["bob.2"],
        "extra": [],
        "devices": {"alice": [1], "bob": [1, 2]},
    }
    both = [*one_device, DevicePayload(user="bob", device=2, payload=b"for bob 2")]
    await a.send_frame(Send(id=message_id, to="@bob", payloads=both))
    assert (await a.sent(1))[0].id == message_id


@pytest.mark.parametrize(
    ("token_of", "code", "close"),
    [
        (lambda acct: "no-such-token", "auth.invalid_token", 4001),
        (lambda acct: None, "auth.required", 4001),
    ],
)
async def test_bad_auth_is_refused_with_close_code(server, session, token_of, code, close) -> None:
    alice = await register(session, server.url, "alice")
    ws = await session.ws_connect(server.ws_url)
    token = token_of(alice)
    if token is None:
        await ws.send_str('{"type": "ping"}')
    else:
        await ws.send_str(encode_frame(Auth(token=token)).decode())
    msg = await ws.receive(timeout=5 * UNIT_S)
    error = msgspec.json.decode(msg.data, type=Error)
    assert error.code == code
    await ws.receive(timeout=5 * UNIT_S)
    assert ws.close_code == close


async def test_revoked_device_is_cut_off_and_refused(server: ServerProcess, session) -> None:
    first = await register(session, server.url, "alice")
    second = await login(session, server.url, "alice")
    wire = await connect(session, server.ws_url, second.token)
    status, _ = await http(session, "DELETE", f"{server.url}/v1/devices/2", token=first.token)
    assert status == 204
    error = await wire.error()
    assert error.code == "auth.revoked"
    await wire.ws.receive(timeout=5 * UNIT_S)
    assert wire.ws.close_code == 4003
    status, body = await http(session, "GET", f"{server.url}/v1/me", token=second.token)
    assert (status, body["code"]) == (401, "auth.revoked")
    status, body = await http(session, "DELETE", f"{server.url}/v1/devices/2", token=first.token)
    assert (status, body["code"]) == (404, "device.not_found")


async def test_expired_token_gets_its_own_code(tmp_path: Path, session) -> None:
    # 0.00001 days is under a second of inactivity.
    server = ServerProcess(tmp_path / "s", settings={"auth": {"token_idle_days": 0.00001}})
    server.start()
    try:
        alice = await register(session, server.url, "alice")
        await asyncio.sleep(1.2)
        status, body = await http(session, "GET", f"{server.url}/v1/me", token=alice.token)
        assert (status, body["code"]) == (401, "auth.token_expired")
    finally:
        server.stop()


async def test_garbage_from_one_client_does_not_disturb_another(server, session) -> None:
    alice = await register(session, server.url, "alice")
    bob = await register(session, server.url, "bob")
    mallory = await register(session, server.url, "mallory")
    a = await connect(session, server.ws_url, alice.token)
    b = await connect(session, server.ws_url, bob.token)
    m = await connect(session, server.ws_url, mallory.token)
    garbage = [
        "{", "null", "42", '{"type":"send"}', '{"type":"ack","seq":1e99}',
        f'{{"type":"send","id":"{uuid7()}","to":"@alice","payload":"!!notbase64"}}',
        '{"type":"read","conversation":"@alice","sender":"alice","ids":[]}',
        '{"type":"typing","conversation":"#zzz"}', "\u0000" * 100,
        '{"type":"watch","users":' + str(["x"] * 2000).replace("'", '"') + "}",
    ] * 20  # fmt: skip

    async def spray() -> None:
        for raw in garbage:
            await m.send_raw(raw)
        await m.ws.send_bytes(b"\xff\xfe binary junk")

    async def converse() -> list[Message]:
        ids = [await a.send("@bob", f"{i}".encode()) for i in range(100)]
        await a.sent(100)
        got = await b.messages(100)
        assert [g.id for g in got] == ids
        return got

    _, got = await asyncio.gather(spray(), converse())
    assert len(got) == 100
    errors = [f for f in m.frames if isinstance(f, Error)]
    while len(errors) < len(garbage) + 1:
        frame = await m.next()
        if isinstance(frame, Error):
            errors.append(frame)
    assert {e.code for e in errors} <= {
        "request.malformed", "request.invalid", "request.unknown_type", "msg.unknown_recipient",
        "group.not_found", "msg.invalid_id",
    }  # fmt: skip
    await m.send_frame(Ack(seq=0))
    assert "Traceback" not in server.log()


async def test_http_bad_bodies_get_problem_json(server: ServerProcess, session) -> None:
    url = f"{server.url}/v1/accounts"
    async with session.post(url, data=b"{nope") as r:
        assert r.status == 400
        assert r.content_type == "application/problem+json"
        assert (await r.json(content_type=None))["code"] == "request.malformed"
    cases = [
        ({"handle": "x", "password": "longenough"}, 422, "account.invalid_handle"),
        ({"handle": "Bad Handle!", "password": "longenough"}, 422, "account.invalid_handle"),
        ({"handle": "carol", "password": "short"}, 422, "account.weak_password"),
        ({"handle": "carol"}, 422, "request.invalid"),
    ]
    for body, status, code in cases:
        got_status, got = await http(session, "POST", url, body)
        assert (got_status, got["code"]) == (status, code), body
    async with session.post(url, data=b"x" * (2 * 1024 * 1024)) as r:
        assert (r.status, (await r.json(content_type=None))["code"]) == (413, "request.too_large")
    status, body = await http(session, "GET", f"{server.url}/v1/devices")
    assert (status, body["code"]) == (401, "auth.required")
    status, body = await http(session, "GET", f"{server.url}/v1/devices", token="bogus")
    assert (status, body["code"]) == (401, "auth.invalid_token")
    status, body = await http(session, "PUT", f"{server.url}/v1/me")
    assert (status, body["code"]) == (405, "request.method_not_allowed")
    status, body = await http(
        session, "POST", f"{server.url}/v1/sessions", {"handle": "ghost", "password": "whatever1"}
    )
    assert (status, body["code"]) == (401, "auth.bad_credentials")
    alice = await register(session, server.url, "alice")
    status, body = await http(session, "GET", f"{server.url}/v1/users/nobody", token=alice.token)
    assert (status, body["code"]) == (404, "user.not_found")
    status, body = await http(session, "DELETE", f"{server.url}/v1/devices/abc", token=alice.token)
    assert (status, body["code"]) == (422, "request.invalid")


async def test_health_readiness_and_plain_http_on_the_websocket_route(server, session) -> None:
    status, body = await http(session, "GET", f"{server.url}/healthz")
    assert (status, body["status"]) == (200, "ok")
    status, body = await http(session, "GET", f"{server.url}/readyz")
    assert (status, body["status"]) == (200, "ready")
    status, body = await http(session, "GET", f"{server.url}/v1/ws")
    assert (status, body["code"]) == (422, "request.invalid")
    async with session.get(f"{server.url}/v1/me") as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


async def test_openapi_document_lists_every_route(server, session) -> None:
    status, doc = await http(session, "GET", f"{server.url}/openapi.json")
    assert status == 200
    assert doc["openapi"].startswith("3.1")
    assert {"/v1/accounts", "/v1/sessions", "/v1/groups/{group}/members"} <= set(doc["paths"])
    register_op = doc["paths"]["/v1/accounts"]["post"]
    assert "409" in register_op["responses"]
    assert "account.handle_taken" in register_op["responses"]["409"]["description"]


async def test_truncated_json_over_http_is_malformed(server, session) -> None:
    async with session.post(f"{server.url}/v1/accounts", data=b"[1") as r:
        assert (r.status, (await r.json(content_type=None))["code"]) == (400, "request.malformed")


def test_unopenable_database_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")
    done = subprocess.run(
        [sys.executable, "-m", "taube.server", "--port", str(free_port()), "--data", str(blocker)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("taube: cannot")
