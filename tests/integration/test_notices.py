"""Service notices over the real server: the operator's admin API, and the ``notice``
frame reaching every connected device at once (and later ones right after ready)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from taube.protocol.frames import Notice
from taube.server.config import load_config
from taube.status.signing import verify_notice
from tests.conftest import fresh_name, two_nodes
from tests.serverproc import UNIT_S, ServerProcess
from tests.wire import connect, http, quiet, register

ADMIN = "s3cret-admin-token"


@pytest.fixture
def admin_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "admin", settings={"admin": {"token": ADMIN}}).start()
    try:
        yield proc
    finally:
        proc.stop()


async def post(
    session: aiohttp.ClientSession, base: str, body: Any, token: str | None = ADMIN
) -> tuple[int, Any]:
    return await http(session, "POST", f"{base}/v1/admin/notices", body, token)


def test_the_admin_token_comes_from_toml_or_environment(tmp_path: Path) -> None:
    assert load_config(None, environ={}).admin_token == ""
    assert load_config(None, environ={"TAUBE_ADMIN_TOKEN": "t"}).admin_token == "t"
    toml = tmp_path / "taube.toml"
    toml.write_text('[admin]\ntoken = "from-file"\n')
    assert load_config(toml, environ={}).admin_token == "from-file"
    assert "from-file" not in repr(load_config(toml, environ={}))


async def test_admin_api_is_off_without_a_token(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    alice = await register(session, server.url, "alice")
    for method, path, body in (
        ("POST", "/v1/admin/notices", {"text": "hi"}),
        ("GET", "/v1/admin/notices", None),
        ("DELETE", "/v1/admin/notices/x", None),
    ):
        status, problem = await http(session, method, f"{server.url}{path}", body, "anything")
        assert (status, problem["code"]) == (404, "request.not_found"), path
    status, body = await http(session, "GET", f"{server.url}/v1/notices", token=alice.token)
    assert (status, body) == (200, {"notices": []})
    status, body = await http(session, "GET", f"{server.url}/v1/notices")
    assert (status, body["code"]) == (401, "auth.required")


async def test_admin_api_wants_the_admin_token(
    admin_server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    alice = await register(session, admin_server.url, "alice")
    for token in (None, "wrong", ADMIN + "x", alice.token):
        status, body = await post(session, admin_server.url, {"text": "hi"}, token)
        assert (status, body["code"]) == (401, "admin.invalid_token"), token
    status, body = await http(
        session, "DELETE", f"{admin_server.url}/v1/admin/notices/x", token="wrong"
    )
    assert (status, body["code"]) == (401, "admin.invalid_token")


async def test_bodies_are_validated(
    admin_server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    for body in (
        {"text": ""},
        {"text": "x" * 501},
        {"text": "hi", "level": "fatal"},
        {"text": "hi", "ttl_s": 0},
        {"level": "info"},
    ):
        status, problem = await post(session, admin_server.url, body)
        assert (status, problem["code"]) == (422, "request.invalid"), body
    for level in ("info", "warning", "outage"):
        status, notice = await post(session, admin_server.url, {"text": "x" * 500, "level": level})
        assert (status, notice["level"]) == (201, level)


async def test_a_notice_reaches_every_connected_device_and_later_ones_after_ready(
    admin_server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    base = admin_server.url
    alice = await register(session, base, "alice")
    bob = await register(session, base, "bob")
    a = await connect(session, admin_server.ws_url, alice.token)
    b = await connect(session, admin_server.ws_url, bob.token)
    status, info = await post(
        session, base, {"text": "Maintenance at 22:00", "level": "warning", "ttl_s": 3600}
    )
    assert status == 201
    assert set(info) == {"id", "text", "level", "at_ms", "expires_ms"}
    assert info["expires_ms"] - info["at_ms"] == 3_600_000
    expected = Notice(
        id=info["id"], text="Maintenance at 22:00", level="warning", at_ms=info["at_ms"]
    )
    _, key = await http(session, "GET", f"{base}/v1/status/key")
    got = await asyncio.gather(a.next(), b.next())
    for frame in got:
        assert isinstance(frame, Notice)
        assert msgspec.structs.replace(frame, signature=None) == expected
        # Signed by the status key: a forged banner would not verify.
        assert verify_notice(msgspec.structs.asdict(frame), key["public_key"])
        forged = {**msgspec.structs.asdict(frame), "text": "Log in at evil.example"}
        assert not verify_notice(forged, key["public_key"])
    assert await quiet(a) == []  # once

    late = await connect(session, admin_server.ws_url, bob.token)
    again = await late.next()  # right after ready
    assert isinstance(again, Notice)
    assert msgspec.structs.replace(again, signature=None) == expected
    assert await quiet(late) == []
    status, body = await http(session, "GET", f"{base}/v1/notices", token=alice.token)
    assert (status, body) == (200, {"notices": [info]})
    status, body = await http(session, "GET", f"{base}/v1/admin/notices", token=ADMIN)
    assert (status, body) == (200, {"notices": [info]})
    for wire in (a, b, late):
        await wire.close()


async def test_notices_end_and_expire(
    admin_server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    base = admin_server.url
    alice = await register(session, base, "alice")
    _, ended = await post(session, base, {"text": "ends"})
    _, short = await post(session, base, {"text": "short", "ttl_s": 1})
    status, _ = await http(session, "DELETE", f"{base}/v1/admin/notices/{ended['id']}", token=ADMIN)
    assert status == 204
    status, body = await http(
        session, "DELETE", f"{base}/v1/admin/notices/{ended['id']}", token=ADMIN
    )
    assert (status, body["code"]) == (404, "notice.not_found")
    status, body = await http(session, "GET", f"{base}/v1/notices", token=alice.token)
    assert [n["id"] for n in body["notices"]] == [short["id"]]
    await asyncio.sleep(1.2 * UNIT_S)
    status, body = await http(session, "GET", f"{base}/v1/notices", token=alice.token)
    assert body == {"notices": []}
    wire = await connect(session, admin_server.ws_url, alice.token)
    assert await quiet(wire) == []  # neither the ended nor the expired one
    await wire.close()


async def test_a_notice_reaches_devices_on_every_node_and_restarted_nodes_know_it(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    settings: dict[str, dict[str, object]] = {"admin": {"token": ADMIN}}
    async with two_nodes(tmp_path, settings) as (n1, n2):
        handle = f"alice{fresh_name('u').replace('_', '')}"
        alice = await register(session, n1.url, handle)
        on_n2 = await connect(session, n2.ws_url, alice.token)
        status, info = await post(session, n1.url, {"text": "Outage", "level": "outage"})
        assert status == 201
        frame = await on_n2.next()
        assert isinstance(frame, Notice)
        assert (frame.id, frame.level) == (info["id"], "outage")
        await on_n2.close()
        n2.stop()
        n2.start()
        again = await connect(session, n2.ws_url, alice.token)
        frame = await again.next()
        assert isinstance(frame, Notice)
        assert frame.id == info["id"]
        await again.close()


async def test_openapi_lists_the_link_and_notice_routes(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    status, doc = await http(session, "GET", f"{server.url}/openapi.json")
    assert status == 200
    paths = doc["paths"]
    assert {"/v1/links", "/v1/links/{link}", "/v1/links/{code}/approve", "/v1/notices"} <= set(
        paths
    )
    assert "security" not in paths["/v1/links"]["post"]
    assert paths["/v1/links/{code}/approve"]["post"]["security"] == [{"deviceToken": []}]
    assert paths["/v1/admin/notices"]["post"]["security"] == [{"adminToken": []}]
    assert (
        "link.used" in paths["/v1/links/{code}/approve"]["post"]["responses"]["409"]["description"]
    )
