"""Device linking over the real server: a new device shows a code, a device of the
account approves it, the new device's long poll hands it its token (once)."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import aiohttp

from taube.core.links import display_code, new_code, normalize_code
from tests.conftest import fresh_name, two_nodes
from tests.serverproc import UNIT_S, ServerProcess
from tests.wire import connect, http, register

RIGHT_AFTER_A_RECHECK_S = 1.2
"""A waiting read re-checks the store every second: approving 0.2 s after a re-check,
an answer within WOKEN_WITHIN_S can only come from the bus waking it."""
WOKEN_WITHIN_S = 0.6 * UNIT_S
CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")


async def start(session: aiohttp.ClientSession, base: str, name: str = "Firefox") -> Any:
    status, body = await http(session, "POST", f"{base}/v1/links", {"device_name": name})
    assert status == 201, body
    return body


async def state(
    session: aiohttp.ClientSession, base: str, link: Any, wait: float = 0, secret: str = ""
) -> tuple[int, Any]:
    params = {"secret": secret or link["secret"], "wait": str(wait)}
    async with session.get(f"{base}/v1/links/{link['id']}", params=params) as response:
        return response.status, await response.json(content_type=None)


async def approve(
    session: aiohttp.ClientSession, base: str, code: str, token: str
) -> tuple[int, Any]:
    return await http(session, "POST", f"{base}/v1/links/{code}/approve", None, token)


def test_codes_read_forgivingly() -> None:
    for _ in range(100):
        code = new_code()
        assert CODE.fullmatch(display_code(code))
        assert normalize_code(display_code(code).lower()) == code
    assert normalize_code(" 7k3m-q9xd ") == "7K3MQ9XD"
    assert normalize_code("OIL0-abcd") == "0110ABCD"
    for bad in ("", "7K3M", "7K3M-Q9XDD", "7K3M-Q9XU", "7K3M_Q9XD", "7K3M-Q9X!"):
        assert normalize_code(bad) is None, bad


async def test_link_flow_hands_the_token_out_once_and_it_works(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    alice = await register(session, server.url, "alice")
    before = time.time() * 1000
    link = await start(session, server.url)
    assert CODE.fullmatch(link["code"]), link
    assert len(link["secret"]) >= 43
    assert before + 290_000 < link["expires_ms"] < before + 310_000
    assert await state(session, server.url, link) == (
        200,
        {"status": "pending", "handle": None, "device": None, "token": None},
    )

    waiting = asyncio.create_task(state(session, server.url, link, wait=25))
    await asyncio.sleep(RIGHT_AFTER_A_RECHECK_S)
    assert not waiting.done()
    approved_at = time.monotonic()
    status, body = await approve(session, server.url, link["code"], alice.token)
    assert (status, body) == (200, {"handle": "alice", "device": 2})
    status, got = await asyncio.wait_for(waiting, 5 * UNIT_S)
    assert time.monotonic() - approved_at < WOKEN_WITHIN_S  # woken, not by the re-check
    assert status == 200
    assert (got["status"], got["handle"], got["device"]) == ("approved", "alice", 2)
    token = got["token"]
    assert token

    # Handed out once.
    assert await state(session, server.url, link, wait=25) == (
        200,
        {"status": "approved", "handle": "alice", "device": 2, "token": None},
    )
    # The token is a device's like any other: HTTP and the WebSocket.
    status, me = await http(session, "GET", f"{server.url}/v1/me", token=token)
    assert (status, me["handle"], me["device"]) == (200, "alice", 2)
    wire = await connect(session, server.ws_url, token)
    assert (wire.ready.handle, wire.ready.device) == ("alice", 2)
    await wire.close()
    status, devices = await http(session, "GET", f"{server.url}/v1/devices", token=alice.token)
    assert [(d["id"], d["name"]) for d in devices["devices"]] == [(1, ""), (2, "Firefox")]


async def test_wrong_secret_unknown_id_used_code_and_bad_forms(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    alice = await register(session, server.url, "alice")
    bob = await register(session, server.url, "bob")
    link = await start(session, server.url)
    status, body = await state(session, server.url, link, secret="not-the-secret")
    assert (status, body["code"]) == (404, "link.not_found")
    status, body = await state(session, server.url, {**link, "id": "nope"})
    assert (status, body["code"]) == (404, "link.not_found")

    for bad in ("ABC", "ABCD-EFGU", "ABCD-EFGH-", "%20"):
        status, body = await approve(session, server.url, bad, alice.token)
        assert (status, body["code"]) == (404, "link.not_found"), bad
    status, body = await approve(session, server.url, "0000-0000", alice.token)
    assert (status, body["code"]) == (404, "link.not_found")
    status, body = await approve(session, server.url, link["code"], "bad-token")
    assert (status, body["code"]) == (401, "auth.invalid_token")

    # Typed carelessly: lower case, no dash, O for 0 and l for 1.
    typed = link["code"].replace("-", "").lower().replace("0", "o").replace("1", "l")
    status, body = await approve(session, server.url, typed, alice.token)
    assert (status, body) == (200, {"handle": "alice", "device": 2})
    status, body = await approve(session, server.url, link["code"], bob.token)
    assert (status, body["code"]) == (409, "link.used")
    status, body = await http(session, "GET", f"{server.url}/v1/users/bob", token=alice.token)
    assert body["devices"] == [1]  # bob's refused approval made no device

    for wait in ("31", "-1", "soon", "nan"):
        status, body = await state(session, server.url, link, wait=wait)  # type: ignore[arg-type]
        assert (status, body["code"]) == (422, "request.invalid"), wait


async def test_links_expire(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    server = ServerProcess(tmp_path / "s", settings={"auth": {"link_ttl_s": 1}}).start()
    try:
        alice = await register(session, server.url, "alice")
        link = await start(session, server.url)
        assert (await state(session, server.url, link))[1]["status"] == "pending"
        started = time.monotonic()
        status, body = await state(session, server.url, link, wait=10)
        assert (status, body["status"], body["token"]) == (200, "expired", None)
        assert time.monotonic() - started < 3 * UNIT_S  # noticed by the re-check
        status, body = await approve(session, server.url, link["code"], alice.token)
        assert (status, body["code"]) == (404, "link.not_found")
    finally:
        server.stop()


async def test_starts_are_limited_per_address_and_approvals_per_account(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    settings: dict[str, dict[str, object]] = {
        "auth": {"link_starts_per_min": 2, "link_approvals_per_min": 2}
    }
    server = ServerProcess(tmp_path / "s", settings=settings).start()
    try:
        alice = await register(session, server.url, "alice")
        bob = await register(session, server.url, "bob")
        await start(session, server.url)
        link = await start(session, server.url)
        async with session.post(f"{server.url}/v1/links", json={}) as response:
            body = await response.json(content_type=None)
            assert (response.status, body["code"]) == (429, "rate.limited")
            assert int(response.headers["Retry-After"]) >= 1
        for _ in range(2):  # wrong guesses count
            status, _ = await approve(session, server.url, "0000-0000", alice.token)
            assert status == 404
        status, body = await approve(session, server.url, link["code"], alice.token)
        assert (status, body["code"]) == (429, "rate.limited")
        status, body = await approve(session, server.url, link["code"], bob.token)
        assert (status, body["handle"]) == (200, "bob")  # per account
    finally:
        server.stop()


async def test_approval_on_another_node_wakes_the_waiting_requester(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    async with two_nodes(tmp_path) as (n1, n2):
        handle = f"alice{fresh_name('u').replace('_', '')}"
        alice = await register(session, n2.url, handle)
        link = await start(session, n1.url)
        waiting = asyncio.create_task(state(session, n1.url, link, wait=25))
        await asyncio.sleep(RIGHT_AFTER_A_RECHECK_S)
        approved_at = time.monotonic()
        status, body = await approve(session, n2.url, link["code"], alice.token)
        assert (status, body) == (200, {"handle": handle, "device": 2})
        status, got = await asyncio.wait_for(waiting, 5 * UNIT_S)
        assert time.monotonic() - approved_at < WOKEN_WITHIN_S
        assert (status, got["status"], got["device"]) == (200, "approved", 2)
        # Taken once, whichever node is asked.
        assert (await state(session, n2.url, link))[1]["token"] is None
        wire = await connect(session, n2.ws_url, got["token"])
        assert wire.ready.device == 2
        await wire.close()
