"""Two-step verification, password change and argon2 rehash on a real server."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pyotp

from taube.protocol.frames import Error
from tests.serverproc import UNIT_S, ServerProcess
from tests.wire import PASSWORD, Account, connect, http, login, register


async def fresh_step() -> int:
    """The current 30 s step, waiting out the last 5 s of one so that the codes of the
    steps before and after it still count on the server for the rest of the test."""
    if time.time() % 30 > 25:
        await asyncio.sleep(30 - time.time() % 30 + 0.1)
    return int(time.time() // 30)


def code(secret: str, step: int) -> str:
    return pyotp.TOTP(secret).at(step * 30)


async def enable(session: aiohttp.ClientSession, url: str, who: Account, step: int) -> str:
    status, setup = await http(session, "POST", f"{url}/v1/me/totp", None, who.token)
    assert status == 201, setup
    assert setup["uri"].startswith("otpauth://totp/Taube:")
    assert setup["secret"] in setup["uri"]
    wrong = "000000" if code(setup["secret"], step - 1) != "000000" else "111111"
    status, body = await http(
        session, "POST", f"{url}/v1/me/totp/confirm", {"code": wrong}, who.token
    )
    assert (status, body["code"]) == (401, "auth.totp_invalid")
    status, _ = await http(
        session,
        "POST",
        f"{url}/v1/me/totp/confirm",
        {"code": code(setup["secret"], step - 1)},
        who.token,
    )
    assert status == 204
    secret: str = setup["secret"]
    return secret


async def log_in(
    session: aiohttp.ClientSession, url: str, totp: str | None = None, password: str = PASSWORD
) -> tuple[int, Any]:
    body: dict[str, Any] = {"handle": "alice", "password": password}
    if totp is not None:
        body["totp"] = totp
    return await http(session, "POST", f"{url}/v1/sessions", body)


async def test_login_and_linking_need_the_code(server: ServerProcess, session) -> None:
    alice = await register(session, server.url, "alice")
    step = await fresh_step()
    secret = await enable(session, server.url, alice, step)
    status, body = await http(session, "POST", f"{server.url}/v1/me/totp", None, alice.token)
    assert (status, body["code"]) == (409, "totp.already_enabled")

    status, body = await log_in(session, server.url)
    assert (status, body["code"]) == (401, "auth.totp_required")
    status, body = await log_in(
        session, server.url, "123456" if code(secret, step) != "123456" else "654321"
    )
    assert (status, body["code"]) == (401, "auth.totp_invalid")
    status, body = await log_in(session, server.url, totp=code(secret, step))
    assert status == 201, body
    # A code works once: replayed (or older) it is refused.
    status, body = await log_in(session, server.url, totp=code(secret, step))
    assert (status, body["code"]) == (401, "auth.totp_invalid")
    # Wrong password with the right code: still bad credentials (password first).
    status, body = await log_in(session, server.url, code(secret, step + 1), "not the password")
    assert (status, body["code"]) == (401, "auth.bad_credentials")

    # Device linking: a stolen token alone cannot add a device.
    status, link = await http(session, "POST", f"{server.url}/v1/links", {"device_name": "new"})
    assert status == 201
    approve = f"{server.url}/v1/links/{link['code']}/approve"
    status, body = await http(session, "POST", approve, None, alice.token)
    assert (status, body["code"]) == (401, "auth.totp_required")
    status, body = await http(
        session, "POST", approve, {"totp": code(secret, step + 1)}, alice.token
    )
    assert status == 200, body
    assert body["handle"] == "alice"


async def test_disable_needs_a_code_then_login_is_password_only(
    server: ServerProcess, session
) -> None:
    alice = await register(session, server.url, "alice")
    step = await fresh_step()
    secret = await enable(session, server.url, alice, step)
    status, body = await http(
        session,
        "DELETE",
        f"{server.url}/v1/me/totp",
        {"code": code(secret, step - 1)},
        alice.token,
    )
    assert (status, body["code"]) == (401, "auth.totp_invalid")  # used for confirming
    status, _ = await http(
        session, "DELETE", f"{server.url}/v1/me/totp", {"code": code(secret, step)}, alice.token
    )
    assert status == 204
    status, body = await http(
        session,
        "DELETE",
        f"{server.url}/v1/me/totp",
        {"code": code(secret, step + 1)},
        alice.token,
    )
    assert (status, body["code"]) == (409, "totp.not_enabled")
    await login(session, server.url, "alice")


async def test_wrong_codes_count_toward_the_lockout(tmp_path: Path, session) -> None:
    server = ServerProcess(tmp_path / "s", settings={"rate": {"lockout_after": 3}}).start()
    try:
        alice = await register(session, server.url, "alice")
        step = await fresh_step()
        secret = await enable(session, server.url, alice, step)  # one wrong code here
        wrong = next(
            c
            for c in ("000000", "111111", "222222")
            if c not in {code(secret, s) for s in (step - 1, step, step + 1)}
        )
        for _ in range(2):
            status, body = await log_in(session, server.url, wrong)
            assert body["code"] == "auth.totp_invalid"
        status, body = await log_in(session, server.url, code(secret, step))
        assert (status, body["code"]) == (429, "auth.locked")
        assert body["details"]["retry_after_s"] >= 1
    finally:
        server.stop()


async def test_password_change_revokes_other_devices_at_once(
    server: ServerProcess, session
) -> None:
    alice = await register(session, server.url, "alice")
    laptop = await login(session, server.url, "alice")
    phone = await login(session, server.url, "alice")
    laptop_wire = await connect(session, server.ws_url, laptop.token)
    url = f"{server.url}/v1/me/password"

    status, body = await http(
        session,
        "POST",
        url,
        {"old_password": "nope", "new_password": "brand new secret"},
        alice.token,
    )
    assert (status, body["code"]) == (401, "auth.bad_credentials")
    status, body = await http(
        session, "POST", url, {"old_password": PASSWORD, "new_password": "short"}, alice.token
    )
    assert (status, body["code"]) == (422, "account.weak_password")

    # Without revoking: the others keep working.
    status, _ = await http(
        session,
        "POST",
        url,
        {"old_password": PASSWORD, "new_password": "second password"},
        phone.token,
    )
    assert status == 204
    status, _ = await http(session, "GET", f"{server.url}/v1/me", None, laptop.token)
    assert status == 200

    status, _ = await http(
        session,
        "POST",
        url,
        {
            "old_password": "second password",
            "new_password": "third password!",
            "revoke_other_devices": True,
        },
        alice.token,
    )
    assert status == 204
    # The connected device is told and cut off at once.
    frame = await laptop_wire.until(Error, timeout=5.0)
    assert frame.code == "auth.revoked"
    closed = await laptop_wire.ws.receive(timeout=5 * UNIT_S)
    assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), closed
    assert laptop_wire.ws.close_code == 4003
    for other in (laptop, phone):
        status, body = await http(session, "GET", f"{server.url}/v1/me", None, other.token)
        assert (status, body["code"]) == (401, "auth.revoked")
    status, _ = await http(session, "GET", f"{server.url}/v1/me", None, alice.token)
    assert status == 200

    status, body = await log_in(session, server.url, password="second password")
    assert (status, body["code"]) == (401, "auth.bad_credentials")
    status, _ = await log_in(session, server.url, password="third password!")
    assert status == 201


def stored_hash(server: ServerProcess) -> str:
    with sqlite3.connect(server.data_dir / "taube.db") as db:
        row = db.execute("SELECT password_hash FROM users WHERE handle = 'alice'").fetchone()
    value: str = row[0]
    return value


async def test_login_rehashes_with_changed_argon2_parameters(tmp_path: Path, session) -> None:
    server = ServerProcess(tmp_path / "s").start()  # the tests' cheap argon2: t=1, 1 MiB
    try:
        await register(session, server.url, "alice")
    finally:
        server.stop()
    assert "$m=1024,t=1,p=1$" in stored_hash(server)
    stronger = {"auth": {"argon2_time_cost": 3, "argon2_memory_kib": 2048}}
    server = ServerProcess(tmp_path / "s", settings=stronger).start()
    try:
        await login(session, server.url, "alice")
        assert "$m=2048,t=3,p=1$" in stored_hash(server)
        await login(session, server.url, "alice")  # and the new hash verifies
    finally:
        server.stop()
