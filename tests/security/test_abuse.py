"""Abuse over the real server: a report carries exactly the messages the reporter chose
into the operator's review queue; suspension disconnects the account's devices at once,
stops its logins and sends, and makes it unreachable (``account.suspended``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from taube.client import Client
from taube.client import register as sdk_register
from taube.protocol.frames import Sent
from tests.client.conftest import FAST, collect
from tests.conftest import two_nodes
from tests.serverproc import UNIT_S, ServerProcess
from tests.wire import PASSWORD, connect, http, login, register

ADMIN = "abuse-admin-token"


@pytest.fixture
def admin_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "abuse", settings={"admin": {"token": ADMIN}}).start()
    try:
        yield proc
    finally:
        proc.stop()


def message(i: int, sender: str = "mallory") -> dict[str, object]:
    return {"id": f"m{i}", "sender": sender, "sent_at_ms": 1_700_000_000_000 + i, "text": f"t{i}"}


async def test_a_report_queues_exactly_what_the_reporter_sent(
    admin_server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    base = admin_server.url
    alice = await register(session, base, "alice")
    await register(session, base, "mallory")
    chosen = [message(1), message(2, sender="alice")]
    status, body = await http(
        session, "POST", f"{base}/v1/reports/abuse",
        {"user": "@Mallory", "reason": "spam", "messages": chosen}, alice.token,
    )  # fmt: skip
    assert status == 202, body
    status, queue = await http(session, "GET", f"{base}/v1/admin/reports", token=ADMIN)
    assert status == 200
    [report] = queue["reports"]
    assert report == {
        "id": body["id"],
        "reporter": "alice",
        "reporter_device": alice.device,
        "user": "mallory",
        "reason": "spam",
        "messages": chosen,
        "created_ms": report["created_ms"],
        "suspended": False,
    }


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"user": "nobody", "reason": "spam"}, 404, "user.not_found"),
        ({"user": "alice", "reason": "spam"}, 422, "request.invalid"),  # yourself
        ({"user": "mallory", "reason": ""}, 422, "request.invalid"),
        ({"user": "mallory", "reason": "x", "messages": [{"id": "m"}]}, 422, "request.invalid"),
    ],
)
async def test_bad_reports_are_refused(
    admin_server: ServerProcess,
    session: aiohttp.ClientSession,
    body: dict[str, object],
    status: int,
    code: str,
) -> None:
    alice = await register(session, admin_server.url, "alice")
    await register(session, admin_server.url, "mallory")
    got, problem = await http(
        session, "POST", f"{admin_server.url}/v1/reports/abuse", body, alice.token
    )
    assert (got, problem["code"]) == (status, code)
    _, queue = await http(session, "GET", f"{admin_server.url}/v1/admin/reports", token=ADMIN)
    assert queue == {"reports": []}


async def test_suspension_disconnects_blocks_login_sending_and_being_messaged(
    admin_server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    base, ws = admin_server.url, admin_server.ws_url
    alice = await register(session, base, "alice")
    mallory = await register(session, base, "mallory")
    mallory2 = await login(session, base, "mallory")
    wires = [await connect(session, ws, d.token) for d in (mallory, mallory2)]
    alice_wire = await connect(session, ws, alice.token)

    status, body = await http(
        session, "POST", f"{base}/v1/admin/accounts/@mallory/suspend", {"reason": "spam"}, ADMIN
    )
    assert (status, body["suspended"], body["reason"]) == (200, True, "spam")

    for wire in wires:  # every device, at once
        error = await wire.error(timeout=5)
        assert error.code == "account.suspended"
        closed = await wire.ws.receive(timeout=5 * UNIT_S)
        assert closed.type == aiohttp.WSMsgType.CLOSE
        assert wire.ws.close_code == 4003
    # No login, no HTTP with an old token, no WebSocket session.
    status, problem = await http(
        session, "POST", f"{base}/v1/sessions", {"handle": "mallory", "password": PASSWORD}
    )
    assert (status, problem["code"]) == (403, "account.suspended")
    status, problem = await http(session, "GET", f"{base}/v1/me", token=mallory.token)
    assert (status, problem["code"]) == (403, "account.suspended")
    raw = await session.ws_connect(ws)
    await raw.send_json({"type": "auth", "token": mallory.token})
    frame = await raw.receive_json(timeout=5 * UNIT_S)
    assert frame["code"] == "account.suspended"
    await raw.receive(timeout=5 * UNIT_S)
    assert raw.close_code == 4003
    # Nobody can message the account; the sender's connection lives on.
    sent_id = await alice_wire.send("@mallory", b"hi")
    error = await alice_wire.error()
    assert (error.code, error.ref) == ("account.suspended", sent_id)
    _, queue = await http(session, "GET", f"{base}/v1/admin/reports", token=ADMIN)
    assert queue == {"reports": []}

    status, body = await http(
        session, "POST", f"{base}/v1/admin/accounts/mallory/unsuspend", None, ADMIN
    )
    assert (status, body["suspended"]) == (200, False)
    back = await connect(session, ws, mallory.token)
    await alice_wire.send("@mallory", b"welcome back")
    assert isinstance(await alice_wire.until(Sent), Sent)
    [got] = await back.messages(1)
    assert got.payload == b"welcome back"
    await login(session, base, "mallory")
    for w in (alice_wire, back):
        await w.close()


@pytest.mark.parametrize("token", [None, "wrong", "device"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/admin/reports"),
        ("POST", "/v1/admin/accounts/mallory/suspend"),
        ("POST", "/v1/admin/accounts/mallory/unsuspend"),
    ],
)
async def test_operator_routes_want_the_admin_token(
    admin_server: ServerProcess,
    session: aiohttp.ClientSession,
    token: str | None,
    method: str,
    path: str,
) -> None:
    mallory = await register(session, admin_server.url, "mallory")
    given = mallory.token if token == "device" else token
    status, problem = await http(session, method, f"{admin_server.url}{path}", {}, given)
    assert (status, problem["code"]) == (401, "admin.invalid_token")
    status, _ = await http(session, "GET", f"{admin_server.url}/v1/me", token=mallory.token)
    assert status == 200  # nothing was suspended


async def test_a_suspension_made_on_one_node_holds_on_another(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """Two nodes on one PostgreSQL schema and NATS: the operator suspends Mallory through
    node 1 while Mallory and Alice are connected to node 2. Node 2 ends Mallory's
    connection, refuses Alice's message to Mallory, and takes both back on unsuspend."""
    settings: dict[str, dict[str, object]] = {"admin": {"token": ADMIN}}
    async with two_nodes(tmp_path, settings) as (n1, n2):
        alice = await register(session, n2.url, "alice")
        mallory = await register(session, n2.url, "mallory")
        mallory_wire = await connect(session, n2.ws_url, mallory.token)
        alice_wire = await connect(session, n2.ws_url, alice.token)

        status, _ = await http(
            session, "POST", f"{n1.url}/v1/admin/accounts/mallory/suspend", {"reason": "spam"},
            ADMIN,
        )  # fmt: skip
        assert status == 200
        error = await mallory_wire.error(timeout=5)
        assert error.code == "account.suspended"
        await mallory_wire.ws.receive(timeout=5 * UNIT_S)
        assert mallory_wire.ws.close_code == 4003
        sent_id = await alice_wire.send("@mallory", b"hi")
        error = await alice_wire.error()
        assert (error.code, error.ref) == ("account.suspended", sent_id)
        status, problem = await http(session, "GET", f"{n2.url}/v1/me", token=mallory.token)
        assert (status, problem["code"]) == (403, "account.suspended")

        status, _ = await http(
            session, "POST", f"{n1.url}/v1/admin/accounts/mallory/unsuspend", None, ADMIN
        )
        assert status == 200
        for _ in range(50):  # node 2 hears of it over NATS, within milliseconds
            if (await http(session, "GET", f"{n2.url}/v1/me", token=mallory.token))[0] == 200:
                break
            await asyncio.sleep(0.1 * UNIT_S)
        back = await connect(session, n2.ws_url, mallory.token)
        await alice_wire.send("@mallory", b"welcome back")
        assert isinstance(await alice_wire.until(Sent), Sent)
        [got] = await back.messages(1)
        assert got.payload == b"welcome back"


async def test_suspending_an_unknown_account_is_not_found(
    admin_server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    for action in ("suspend", "unsuspend"):
        status, problem = await http(
            session, "POST", f"{admin_server.url}/v1/admin/accounts/ghost/{action}", {}, ADMIN
        )
        assert (status, problem["code"]) == (404, "user.not_found")


async def test_sdk_reports_exactly_the_chosen_messages_from_local_history(
    admin_server: ServerProcess, tmp_path: Path
) -> None:
    alice_dir, mallory_dir = tmp_path / "alice", tmp_path / "mallory"
    for handle, folder in (("alice", alice_dir), ("mallory", mallory_dir)):
        await sdk_register(handle, PASSWORD, servers=admin_server.url, profile=folder)
    async with (
        Client(alice_dir, options=FAST) as alice,
        Client(mallory_dir, options=FAST) as mallory,
    ):
        ids = [await mallory.send("@alice", f"spam {i}") for i in range(3)]
        await mallory.wait_sent(ids, timeout=10 * UNIT_S)
        got = await collect(alice, 3, 10)
        assert [m.text for m in got] == ["spam 0", "spam 1", "spam 2"]
        with pytest.raises(ValueError, match="not in this device's history"):
            await alice.report_abuse("@mallory", ["no-such-id"], "spam")
        await alice.report_abuse("@mallory", [ids[0], ids[2]], "spam")
    async with aiohttp.ClientSession() as session:
        _, queue = await http(session, "GET", f"{admin_server.url}/v1/admin/reports", token=ADMIN)
    [report] = queue["reports"]
    assert [(m["id"], m["sender"], m["text"]) for m in report["messages"]] == [
        (ids[0], "mallory", "spam 0"),
        (ids[2], "mallory", "spam 2"),
    ]
    assert (report["reporter"], report["user"], report["reason"]) == ("alice", "mallory", "spam")


def run_cli(server: ServerProcess, profile: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "taube.cli", "--profile", str(profile), "--server", server.url,
         *args],
        input=stdin, capture_output=True, text=True, timeout=60 * UNIT_S, check=False,
        env={"PATH": "/usr/bin:/bin", "TAUBE_ADMIN_TOKEN": ADMIN},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


async def test_cli_report_abuse_and_admin_commands(
    admin_server: ServerProcess, tmp_path: Path
) -> None:
    await sdk_register("mallory", PASSWORD, servers=admin_server.url, profile=tmp_path / "m")
    alice = tmp_path / "alice"
    run_cli(admin_server, alice, "register", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    run_cli(admin_server, alice, "report-abuse", "@mallory", "--reason", "rude")
    listed = run_cli(admin_server, tmp_path / "op", "admin", "reports")
    assert "@alice reported @mallory: rude" in listed
    run_cli(admin_server, tmp_path / "op", "admin", "suspend", "@mallory", "--reason", "rude")
    assert "(suspended)" in run_cli(admin_server, tmp_path / "op", "admin", "reports")
    run_cli(admin_server, tmp_path / "op", "admin", "unsuspend", "@mallory")
    assert "(suspended)" not in run_cli(admin_server, tmp_path / "op", "admin", "reports")
