"""Two-step verification, password change and argon2 rehash on a real server."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pyotp

from taube.protocol.frames import Error
from tests.conftest import fresh_name, two_nodes
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
    with contextlib.closing(sqlite3.connect(server.data_dir / "taube.db")) as db:
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


# ---------------------------------------------------------------- secrets sealed at rest


def totp_row(server: ServerProcess, handle: str = "alice") -> tuple[str, int]:
    """The stored ``secret`` column and ``active`` flag, read from the SQLite file."""
    # closing(): a connection's ``with`` commits but does not close it, and one left
    # open until garbage collection keeps the server from being the last connection,
    # which is what deletes the WAL (and with it old frames) when it stops.
    with contextlib.closing(sqlite3.connect(server.data_dir / "taube.db")) as db:
        row = db.execute("SELECT secret, active FROM totp WHERE handle = ?", (handle,)).fetchone()
    assert row is not None
    return row[0], row[1]


def database_bytes(server: ServerProcess) -> bytes:
    """The database file and its write-ahead log: a dump or backup would hold these."""
    files = [server.data_dir / "taube.db", server.data_dir / "taube.db-wal"]
    return b"".join(f.read_bytes() for f in files if f.exists())


def write_plain_secret(server: ServerProcess, handle: str, secret: str) -> None:
    """An active secret in the clear, as a version before sealing wrote it."""
    with contextlib.closing(sqlite3.connect(server.data_dir / "taube.db", timeout=5)) as db, db:
        db.execute(
            "INSERT INTO totp (handle, secret, active, last_step, created_ms)"
            " VALUES (?, ?, 1, 0, 0) ON CONFLICT (handle) DO UPDATE"
            " SET secret = excluded.secret, active = 1, last_step = 0",
            (handle, secret),
        )


async def test_the_database_holds_no_secret_in_the_clear(tmp_path: Path, session) -> None:
    server = ServerProcess(tmp_path / "s").start()
    try:
        alice = await register(session, server.url, "alice")
        step = await fresh_step()
        secret = await enable(session, server.url, alice, step)
        stored, active = totp_row(server)
        assert active == 1
        assert stored.startswith("v1:")
        assert secret.encode() not in database_bytes(server)
        status, body = await log_in(session, server.url, totp=code(secret, step))
        assert status == 201, body
    finally:
        server.stop()
    assert secret.encode() not in database_bytes(server)


async def test_a_secret_stored_in_the_clear_keeps_working_then_is_sealed(
    tmp_path: Path, session
) -> None:
    server = ServerProcess(tmp_path / "s").start()
    try:
        alice = await register(session, server.url, "alice")
        await register(session, server.url, "bob")
        legacy = pyotp.random_base32()
        write_plain_secret(server, "alice", legacy)
        step = await fresh_step()
        status, body = await log_in(session, server.url, totp=code(legacy, step))
        assert status == 201, body
        assert totp_row(server) == (legacy, 1)  # reading does not rewrite it
        # Changing the secret (off, then on again) stores the new one sealed.
        status, _ = await http(
            session,
            "DELETE",
            f"{server.url}/v1/me/totp",
            {"code": code(legacy, step + 1)},
            alice.token,
        )
        assert status == 204
        step = await fresh_step()
        secret = await enable(session, server.url, alice, step)
        assert totp_row(server)[0].startswith("v1:")
        assert secret.encode() not in database_bytes(server)
        # A plain row left from before the upgrade: sealed when the server starts.
        bobs = pyotp.random_base32()
        write_plain_secret(server, "bob", bobs)
    finally:
        server.stop()
    server = ServerProcess(tmp_path / "s").start()
    try:
        stored, active = totp_row(server, "bob")
        assert stored.startswith("v1:")
        assert active == 1
        assert "sealed 1 two-step verification secrets" in server.log()
        step = await fresh_step()
        status, body = await http(
            session,
            "POST",
            f"{server.url}/v1/sessions",
            {"handle": "bob", "password": PASSWORD, "totp": code(bobs, step)},
        )
        assert status == 201, body
    finally:
        server.stop()
    assert bobs.encode() not in database_bytes(server)


async def test_a_secret_that_does_not_open_fails_closed(tmp_path: Path, session) -> None:
    server = ServerProcess(tmp_path / "s").start()
    try:
        alice = await register(session, server.url, "alice")
        step = await fresh_step()
        secret = await enable(session, server.url, alice, step)
    finally:
        server.stop()
    # The operator replaced the status signing key (the file's stays in the folder).
    other_key = base64.b64encode(bytes(range(32))).decode()
    changed = {"status": {"signing_key": other_key}, "rate": {"lockout_after": 2}}
    server = ServerProcess(tmp_path / "s", settings=changed).start()
    try:
        step = await fresh_step()
        for attempt in (None, code(secret, step), code(secret, step + 1), "000000"):
            status, body = await log_in(session, server.url, totp=attempt)
            # Refused, never let through on the password alone, and not counted as
            # the user's failure (no lockout after lockout_after attempts).
            assert (status, body["code"]) == (503, "auth.totp_unavailable"), body
        status, link = await http(session, "POST", f"{server.url}/v1/links", {"device_name": "new"})
        assert status == 201
        status, body = await http(
            session,
            "POST",
            f"{server.url}/v1/links/{link['code']}/approve",
            {"totp": code(secret, step)},
            alice.token,
        )
        assert (status, body["code"]) == (503, "auth.totp_unavailable")
        status, body = await http(
            session, "DELETE", f"{server.url}/v1/me/totp", {"code": code(secret, step)}, alice.token
        )
        assert (status, body["code"]) == (503, "auth.totp_unavailable")  # still on
        assert server.log().count("secret of user=alice is unreadable") == 1
        assert secret not in server.log()
    finally:
        server.stop()
    # With the key back, the same secret works again.
    server = ServerProcess(tmp_path / "s").start()
    try:
        step = await fresh_step()
        status, body = await log_in(session, server.url, totp=code(secret, step))
        assert status == 201, body
    finally:
        server.stop()


async def test_a_secret_sealed_on_one_node_opens_on_another(tmp_path: Path, session) -> None:
    """The nodes of a cluster share the status signing key, so they derive the same key
    for the secrets: enabled through one node, the code works on the other."""
    async with two_nodes(tmp_path) as (n1, n2):
        handle = f"alice{fresh_name('u').replace('_', '')}"
        who = await register(session, n1.url, handle)
        step = await fresh_step()
        secret = await enable(session, n1.url, who, step)
        status, body = await http(
            session,
            "POST",
            f"{n2.url}/v1/sessions",
            {"handle": handle, "password": PASSWORD, "totp": code(secret, step)},
        )
        assert status == 201, body
