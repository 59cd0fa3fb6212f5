"""The authorization matrix over a real server: for every route (and every WebSocket
frame that names someone else), a principal who should not succeed tries, and fails
with the documented code, and the rightful owner's data is unchanged.

Every cell is one test. ``CELLS`` maps each route of /openapi.json to the cells that
cover it; ``test_every_route_is_in_the_matrix`` fails when a route has none, so a new
route cannot land without its authorization test. On top of the named cells, every
route marked with a device token is tried with no token, a made-up token and a revoked
token, and every admin route with no token, a wrong one and a device token (these are
generated from /openapi.json itself).

The world (built once per module, read-only for the cells): alice (devices 1 and 2,
with keys), bob, mallory; a group of alice (admin) and bob; a blob alice uploaded and
granted to bob; bob has blocked mallory. Cells that must change something make an
account of their own.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from taube.crypto import IdentityKeyPair, OneTimePreKey, SignedPreKey
from taube.protocol import api
from taube.protocol.frames import Ack, GroupEvent, Message, Presence, Watch
from taube.protocol.ids import uuid7
from tests.serverproc import UNIT_S, ServerProcess
from tests.wire import PASSWORD, Account, connect, http, login, quiet, register

ADMIN = "matrix-admin-token"


@dataclass
class World:
    base: str
    ws: str
    alice: Account
    alice2: Account
    bob: Account
    mallory: Account
    revoked: Account
    """alice's device 3, revoked."""
    group: str
    blob: str


def keys_upload() -> dict[str, Any]:
    identity = IdentityKeyPair.generate()
    spk = SignedPreKey.generate(identity, 1)
    body = api.KeysUpload(
        identity_key=identity.public,
        signed_prekey=api.SignedPrekey(id=1, key=spk.public, signature=spk.signature),
        one_time_prekeys=[api.Prekey(id=i, key=OneTimePreKey.generate(i).public) for i in (1, 2)],
    )
    decoded: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(body))
    return decoded


async def build_world(server: ServerProcess) -> World:
    base = server.url
    async with aiohttp.ClientSession() as s:
        alice = await register(s, base, "alice")
        alice2 = await login(s, base, "alice")
        revoked = await login(s, base, "alice")
        status, _ = await http(
            s, "DELETE", f"{base}/v1/devices/{revoked.device}", None, alice.token
        )
        assert status == 204
        bob = await register(s, base, "bob")
        mallory = await register(s, base, "mallory")
        status, body = await http(s, "PUT", f"{base}/v1/keys", keys_upload(), alice.token)
        assert status == 200, body
        status, group = await http(
            s, "POST", f"{base}/v1/groups", {"name": "family", "members": ["bob"]}, alice.token
        )
        assert status == 201, group
        data = b"alice's ciphertext"
        blob = hashlib.sha256(data).hexdigest()
        status, body = await http(
            s, "POST", f"{base}/v1/blobs", {"size": len(data), "sha256": blob}, alice.token
        )
        assert status == 201, body
        headers = {
            "Authorization": f"Bearer {alice.token}",
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        }
        async with s.patch(f"{base}/v1/blobs/{blob}", data=data, headers=headers) as r:
            assert r.status == 200
        status, _ = await http(s, "POST", f"{base}/v1/blobs/{blob}/grants", {"to": "@bob"},
                               alice.token)  # fmt: skip
        assert status == 204
        status, _ = await http(s, "PUT", f"{base}/v1/blocks/mallory", None, bob.token)
        assert status == 204
    return World(base, server.ws_url, alice, alice2, bob, mallory, revoked, group["id"], blob)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder: Path = tmp_path_factory.mktemp("authz")
    proc = ServerProcess(folder, settings={"admin": {"token": ADMIN}}).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> World:
    return asyncio.run(build_world(server))


@pytest.fixture
async def s() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# ---------------------------------------------------------------- helpers


async def fresh(s: aiohttp.ClientSession, w: World) -> Account:
    """An account of the cell's own (for cells that change their own state)."""
    return await register(s, w.base, f"x{secrets.token_hex(5)}")


async def call(
    s: aiohttp.ClientSession, w: World, method: str, path: str, who: Account | None,
    body: Any = None,
) -> tuple[int, Any]:  # fmt: skip
    return await http(s, method, f"{w.base}{path}", body, who.token if who else None)


async def refused(
    s: aiohttp.ClientSession, w: World, method: str, path: str, who: Account | None,
    body: Any = None, *, status: int, code: str,
) -> None:  # fmt: skip
    got, problem = await call(s, w, method, path, who, body)
    assert (got, problem and problem.get("code")) == (status, code), problem


async def group_of(s: aiohttp.ClientSession, w: World) -> dict[str, Any]:
    status, body = await call(s, w, "GET", f"/v1/groups/{w.group}", w.alice)
    assert status == 200
    members: dict[str, Any] = {m["handle"]: m["admin"] for m in body["members"]}
    return {"name": body["name"], "members": members}


FAMILY = {"name": "family", "members": {"alice": True, "bob": False}}


Cell = Callable[[aiohttp.ClientSession, World], Awaitable[None]]
CELLS: dict[tuple[str, str], list[str]] = {}
BY_NAME: dict[str, Cell] = {}


def cell(*routes: str) -> Callable[[Cell], Cell]:
    """Register a cell for routes given as ``"METHOD /path"`` (``"WS frame"`` for frames)."""

    def register_cell(fn: Cell) -> Cell:
        BY_NAME[fn.__name__] = fn
        for route in routes:
            method, path = route.split(" ", 1)
            CELLS.setdefault((method, path), []).append(fn.__name__)
        return fn

    return register_cell


# ---------------------------------------------------------------- public routes


@cell("GET /healthz", "GET /readyz", "GET /status.json", "GET /v1/status/key")
async def public_routes_say_nothing_about_accounts(s: aiohttp.ClientSession, w: World) -> None:
    for path in ("/healthz", "/readyz", "/status.json", "/v1/status/key"):
        async with s.get(f"{w.base}{path}") as r:
            assert r.status == 200, path
            text = await r.text()
        for secret in ("alice", "mallory", w.group, w.blob, w.alice.token):
            assert secret not in text, (path, secret)


@cell("POST /v1/accounts")
async def registering_a_taken_handle_takes_nothing_over(s: aiohttp.ClientSession, w: World) -> None:
    body = {"handle": "@Alice", "password": "another password 123"}
    await refused(s, w, "POST", "/v1/accounts", None, body, status=409,
                  code="account.handle_taken")  # fmt: skip
    status, me = await call(s, w, "GET", "/v1/me", w.alice)
    assert (status, me["handle"]) == (200, "alice")


@cell("POST /v1/sessions")
async def logging_in_as_someone_else_needs_their_password(
    s: aiohttp.ClientSession, w: World
) -> None:
    for handle in ("alice", "@ALICE", "nobody"):
        body = {"handle": handle, "password": "mallory's guess"}
        await refused(s, w, "POST", "/v1/sessions", None, body, status=401,
                      code="auth.bad_credentials")  # fmt: skip


@cell("POST /v1/links", "GET /v1/links/{link}")
async def a_link_reveals_nothing_without_its_secret(s: aiohttp.ClientSession, w: World) -> None:
    status, link = await call(s, w, "POST", "/v1/links", None, {"device_name": "evil"})
    assert status == 201
    await refused(s, w, "GET", f"/v1/links/{link['id']}?wait=0&secret=wrong", None,
                  status=404, code="link.not_found")  # fmt: skip
    status, state = await call(s, w, "GET", f"/v1/links/{link['id']}?wait=0&secret="
                               f"{link['secret']}", None)  # fmt: skip
    assert status == 200
    assert state.get("token") is None  # nobody approved it


@cell("POST /v1/links/{code}/approve")
async def approving_a_link_adds_a_device_to_your_own_account_only(
    s: aiohttp.ClientSession, w: World
) -> None:
    attacker = await fresh(s, w)
    _, before = await call(s, w, "GET", "/v1/devices", w.alice)
    status, link = await call(s, w, "POST", "/v1/links", None, {"device_name": "x"})
    assert status == 201
    status, approved = await call(s, w, "POST", f"/v1/links/{link['code']}/approve", attacker)
    assert (status, approved["handle"]) == (200, attacker.handle)
    _, after = await call(s, w, "GET", "/v1/devices", w.alice)
    assert after == before
    # The code is used up: nobody (alice included) can approve it again.
    await refused(s, w, "POST", f"/v1/links/{link['code']}/approve", w.alice,
                  status=409, code="link.used")  # fmt: skip


@cell("POST /v1/reports")
async def a_status_report_with_a_bad_token_is_refused(s: aiohttp.ClientSession, w: World) -> None:
    body = {"kind": "send"}
    await refused(s, w, "POST", "/v1/reports", Account("x", 1, "made-up"), body,
                  status=401, code="auth.invalid_token")  # fmt: skip
    await refused(s, w, "POST", "/v1/reports", w.revoked, body, status=401, code="auth.revoked")


# ---------------------------------------------------------------- the account itself


@cell("GET /v1/me")
async def a_token_speaks_only_for_its_own_device(s: aiohttp.ClientSession, w: World) -> None:
    for who in (w.alice, w.alice2, w.mallory):
        status, me = await call(s, w, "GET", "/v1/me", who)
        assert (status, me["handle"], me["device"]) == (200, who.handle, who.device)


@cell("PATCH /v1/me")
async def settings_change_only_your_own_account(s: aiohttp.ClientSession, w: World) -> None:
    attacker = await fresh(s, w)
    status, _ = await call(s, w, "PATCH", "/v1/me", attacker,
                           {"hide_presence": True, "handle": "alice"})  # fmt: skip
    assert status == 200
    _, me = await call(s, w, "GET", "/v1/me", w.alice)
    assert me["hide_presence"] is False


@cell("GET /v1/devices")
async def device_lists_are_per_account(s: aiohttp.ClientSession, w: World) -> None:
    _, mine = await call(s, w, "GET", "/v1/devices", w.mallory)
    assert [d["id"] for d in mine["devices"]] == [1]
    _, alices = await call(s, w, "GET", "/v1/devices", w.alice)
    ids = [d["id"] for d in alices["devices"]]
    assert ids[:2] == [1, 2]  # (other cells log alice in: later ids are hers too)
    assert w.revoked.device not in ids


@cell("DELETE /v1/devices/{id}")
async def nobody_revokes_another_accounts_device(s: aiohttp.ClientSession, w: World) -> None:
    attacker = await fresh(s, w)
    await refused(s, w, "DELETE", f"/v1/devices/{w.alice2.device}", attacker,
                  status=404, code="device.not_found")  # fmt: skip
    status, me = await call(s, w, "GET", "/v1/me", w.alice2)
    assert (status, me["device"]) == (200, w.alice2.device)


@cell("POST /v1/me/totp", "POST /v1/me/totp/confirm", "DELETE /v1/me/totp")
async def two_step_changes_only_your_own_account(s: aiohttp.ClientSession, w: World) -> None:
    attacker = await fresh(s, w)
    status, setup = await call(s, w, "POST", "/v1/me/totp", attacker)
    assert status == 201, setup
    got, _ = await call(s, w, "POST", "/v1/me/totp/confirm", attacker, {"code": "000000"})
    assert got in (400, 401, 403, 422)
    got, _ = await call(s, w, "DELETE", "/v1/me/totp", attacker, {"code": "000000"})
    assert got in (400, 401, 403, 404, 409, 422)
    # alice still logs in with her password alone.
    await login(s, w.base, "alice")


@cell("POST /v1/me/password")
async def a_password_change_touches_only_your_own_account(
    s: aiohttp.ClientSession, w: World
) -> None:
    attacker = await fresh(s, w)
    body = {"old_password": PASSWORD, "new_password": "mallory owns this now",
            "revoke_other_devices": True}  # fmt: skip
    status, _ = await call(s, w, "POST", "/v1/me/password", attacker, body)
    assert status == 204
    await login(s, w.base, "alice")  # alice's password is unchanged
    status, _ = await call(s, w, "GET", "/v1/me", w.alice2)  # her devices are not revoked
    assert status == 200


# ---------------------------------------------------------------- directory and keys


@cell("GET /v1/users/{handle}")
async def a_lookup_shows_only_the_handle_and_device_ids(s: aiohttp.ClientSession, w: World) -> None:
    status, info = await call(s, w, "GET", "/v1/users/alice", w.mallory)
    assert (status, info) == (200, {"handle": "alice", "devices": [1, 2]})


@cell("PUT /v1/keys", "GET /v1/keys")
async def keys_are_uploaded_and_read_for_the_calling_device_only(
    s: aiohttp.ClientSession, w: World
) -> None:
    _, before = await call(s, w, "GET", "/v1/keys/alice/identities", w.bob)
    attacker = await fresh(s, w)
    status, _ = await call(s, w, "PUT", "/v1/keys", attacker, keys_upload())
    assert status == 200
    _, after = await call(s, w, "GET", "/v1/keys/alice/identities", w.bob)
    assert after == before
    _, mine = await call(s, w, "GET", "/v1/keys", w.mallory)
    assert mine["identity_key"] is None  # mallory's device, not alice's
    _, alices = await call(s, w, "GET", "/v1/keys", w.alice)
    assert alices["identity_key"] == before["devices"][0]["identity_key"]


@cell("GET /v1/keys/{handle}", "GET /v1/keys/{handle}/identities")
async def key_lookups_give_public_keys_only(s: aiohttp.ClientSession, w: World) -> None:
    status, bundles = await call(s, w, "GET", "/v1/keys/alice?device=1", w.mallory)
    assert status == 200
    [bundle] = bundles["devices"]
    assert set(bundle) <= {"device", "identity_key", "signed_prekey", "one_time_prekey"}
    status, ids = await call(s, w, "GET", "/v1/keys/alice/identities", w.mallory)
    assert status == 200
    assert all(set(d) == {"device", "identity_key"} for d in ids["devices"])


# ---------------------------------------------------------------- groups


@cell("POST /v1/groups")
async def a_new_group_has_its_creator_as_the_only_admin(s: aiohttp.ClientSession, w: World) -> None:
    status, group = await call(s, w, "POST", "/v1/groups", w.mallory,
                               {"name": "trap", "members": ["alice"]})  # fmt: skip
    assert status == 201
    admins = [m["handle"] for m in group["members"] if m["admin"]]
    assert admins == ["mallory"]


@cell("GET /v1/groups")
async def group_lists_show_only_your_groups(s: aiohttp.ClientSession, w: World) -> None:
    _, groups = await call(s, w, "GET", "/v1/groups", w.mallory)
    assert w.group not in [g["id"] for g in groups["groups"]]


@cell("GET /v1/groups/{group}")
async def outsiders_cannot_read_a_group(s: aiohttp.ClientSession, w: World) -> None:
    await refused(s, w, "GET", f"/v1/groups/{w.group}", w.mallory, status=403,
                  code="group.not_member")  # fmt: skip


@cell("PATCH /v1/groups/{group}")
async def only_admins_rename(s: aiohttp.ClientSession, w: World) -> None:
    for who, code in ((w.bob, "group.not_admin"), (w.mallory, "group.not_member")):
        await refused(s, w, "PATCH", f"/v1/groups/{w.group}", who, {"name": "pwned"},
                      status=403, code=code)  # fmt: skip
    assert await group_of(s, w) == FAMILY


@cell("POST /v1/groups/{group}/members")
async def only_admins_add_members(s: aiohttp.ClientSession, w: World) -> None:
    for who, code in ((w.bob, "group.not_admin"), (w.mallory, "group.not_member")):
        await refused(s, w, "POST", f"/v1/groups/{w.group}/members", who,
                      {"handles": ["mallory"]}, status=403, code=code)  # fmt: skip
    assert await group_of(s, w) == FAMILY


@cell("DELETE /v1/groups/{group}/members/{handle}")
async def only_admins_remove_others(s: aiohttp.ClientSession, w: World) -> None:
    await refused(s, w, "DELETE", f"/v1/groups/{w.group}/members/alice", w.bob,
                  status=403, code="group.not_admin")  # fmt: skip
    await refused(s, w, "DELETE", f"/v1/groups/{w.group}/members/bob", w.mallory,
                  status=403, code="group.not_member")  # fmt: skip
    assert await group_of(s, w) == FAMILY


@cell("POST /v1/groups/{group}/admins")
async def only_admins_promote(s: aiohttp.ClientSession, w: World) -> None:
    for who, code in ((w.bob, "group.not_admin"), (w.mallory, "group.not_member")):
        await refused(s, w, "POST", f"/v1/groups/{w.group}/admins", who,
                      {"handles": [who.handle]}, status=403, code=code)  # fmt: skip
    assert await group_of(s, w) == FAMILY


# ---------------------------------------------------------------- blobs


@cell("GET /v1/blobs/{blob}", "HEAD /v1/blobs/{blob}", "GET /v1/blobs/{blob}/status")
async def a_blob_you_were_not_granted_is_not_found(s: aiohttp.ClientSession, w: World) -> None:
    headers = {"Authorization": f"Bearer {w.mallory.token}"}
    for method, path in (("GET", ""), ("HEAD", ""), ("GET", "/status")):
        async with s.request(method, f"{w.base}/v1/blobs/{w.blob}{path}", headers=headers) as r:
            assert r.status == 404, (method, path)
    # The same answer as for a blob that does not exist: existence is not revealed.
    await refused(s, w, "GET", f"/v1/blobs/{'0' * 64}", w.mallory, status=404,
                  code="blob.not_found")  # fmt: skip
    await refused(s, w, "GET", f"/v1/blobs/{w.blob}", w.mallory, status=404,
                  code="blob.not_found")  # fmt: skip


@cell("PATCH /v1/blobs/{blob}", "POST /v1/blobs")
async def nobody_writes_into_another_users_upload(s: aiohttp.ClientSession, w: World) -> None:
    data = b"mallory's bytes"
    blob = hashlib.sha256(data).hexdigest()
    status, _ = await call(s, w, "POST", "/v1/blobs", w.alice, {"size": 99, "sha256": blob})
    assert status == 201  # alice's own (unfinished) upload of that id
    headers = {"Authorization": f"Bearer {w.mallory.token}", "Upload-Offset": "0",
               "Content-Type": "application/offset+octet-stream"}  # fmt: skip
    async with s.patch(f"{w.base}/v1/blobs/{blob}", data=data, headers=headers) as r:
        assert r.status == 404  # mallory never announced it: not hers to write
    _, st = await call(s, w, "GET", f"/v1/blobs/{blob}/status", w.alice)
    assert st["offset"] == 0


@cell("POST /v1/blobs/{blob}/grants")
async def only_those_who_hold_a_blob_grant_it(s: aiohttp.ClientSession, w: World) -> None:
    await refused(s, w, "POST", f"/v1/blobs/{w.blob}/grants", w.mallory, {"to": "@mallory"},
                  status=404, code="blob.not_found")  # fmt: skip
    await refused(s, w, "GET", f"/v1/blobs/{w.blob}/status", w.mallory, status=404,
                  code="blob.not_found")  # fmt: skip


# ---------------------------------------------------------------- blocks and notices


@cell("GET /v1/blocks", "PUT /v1/blocks/{handle}", "DELETE /v1/blocks/{handle}")
async def block_lists_are_per_account(s: aiohttp.ClientSession, w: World) -> None:
    attacker = await fresh(s, w)
    status, _ = await call(s, w, "DELETE", "/v1/blocks/mallory", attacker)
    assert status == 204  # unblocks in the attacker's own list only
    status, _ = await call(s, w, "PUT", "/v1/blocks/alice", attacker)
    assert status == 204
    _, bobs = await call(s, w, "GET", "/v1/blocks", w.bob)
    assert bobs == {"handles": ["mallory"]}
    _, mine = await call(s, w, "GET", "/v1/blocks", w.mallory)
    assert mine == {"handles": []}


@cell("GET /v1/notices")
async def notices_need_a_device(s: aiohttp.ClientSession, w: World) -> None:
    await refused(s, w, "GET", "/v1/notices", None, status=401, code="auth.required")


@cell("POST /v1/reports/abuse")
async def a_report_is_filed_as_the_tokens_account(s: aiohttp.ClientSession, w: World) -> None:
    body = {"user": "bob", "reason": "framing bob", "reporter": "alice", "reporter_device": 2}
    status, _ = await call(s, w, "POST", "/v1/reports/abuse", w.mallory, body)
    assert status == 202
    _, queue = await http(s, "GET", f"{w.base}/v1/admin/reports", None, ADMIN)
    mine = [r for r in queue["reports"] if r["reason"] == "framing bob"]
    assert [(r["reporter"], r["reporter_device"]) for r in mine] == [("mallory", 1)]


# ---------------------------------------------------------------- WebSocket frames


@cell("WS auth")
async def a_token_authenticates_its_own_device_only(s: aiohttp.ClientSession, w: World) -> None:
    for who in (w.alice, w.alice2, w.mallory):
        wire = await connect(s, w.ws, who.token)
        assert (wire.ready.handle, wire.ready.device) == (who.handle, who.device)
        await wire.close()
    ws = await s.ws_connect(w.ws)
    await ws.send_json({"type": "auth", "token": w.revoked.token})
    frame = await ws.receive_json(timeout=5 * UNIT_S)
    assert frame["code"] == "auth.revoked"
    await ws.receive(timeout=5 * UNIT_S)
    assert ws.close_code == 4003


@cell("WS message", "WS ack")
async def each_device_reads_and_acks_only_its_own_inbox(s: aiohttp.ClientSession, w: World) -> None:
    attacker = await fresh(s, w)
    victim = await fresh(s, w)
    spy = await connect(s, w.ws, attacker.token)
    await spy.send_frame(Ack(seq=1_000_000))  # cannot ack anyone else's items
    sender = await connect(s, w.ws, w.alice.token)
    await sender.send(f"@{victim.handle}", b"for the victim only")
    target = await connect(s, w.ws, victim.token)
    [got] = await target.messages(1)
    assert got.payload == b"for the victim only"
    assert not [f for f in await quiet(spy, 0.5) if isinstance(f, Message)]
    for wire in (spy, sender, target):
        await wire.close()


@cell("WS send", "WS typing", "WS read")
async def outsiders_cannot_post_type_or_read_in_a_group(s: aiohttp.ClientSession, w: World) -> None:
    wire = await connect(s, w.ws, w.mallory.token)
    message_id = await wire.send(f"#{w.group}", b"let me in")
    error = await wire.error()
    assert (error.code, error.ref) == ("group.not_member", message_id)
    await wire.send_raw(msgspec.json.encode(
        {"type": "typing", "conversation": f"#{w.group}", "ref": "t"}).decode())  # fmt: skip
    assert (await wire.error()).code == "group.not_member"
    await wire.send_raw(msgspec.json.encode({"type": "read", "conversation": f"#{w.group}",
                        "sender": "alice", "ids": [uuid7()], "ref": "r"}).decode())  # fmt: skip
    assert (await wire.error()).code == "group.not_member"
    await wire.close()


@cell("WS watch", "WS group")
async def a_blockers_presence_stays_hidden(s: aiohttp.ClientSession, w: World) -> None:
    bob = await connect(s, w.ws, w.bob.token)
    watcher = await connect(s, w.ws, w.mallory.token)
    await watcher.send_frame(Watch(users=["bob"]))
    seen: Presence = await watcher.until(Presence)
    assert (seen.user, seen.online) == ("bob", False)  # bob is online, but blocked mallory
    # Group events reach members only.
    assert not [f for f in await quiet(watcher, 0.3) if isinstance(f, GroupEvent)]
    for wire in (bob, watcher):
        await wire.close()


# ---------------------------------------------------------------- admin routes


ADMIN_ROUTES_WITH_OWN_CELLS = {
    ("GET", "/v1/admin/reports"),
    ("POST", "/v1/admin/accounts/{handle}/suspend"),
    ("POST", "/v1/admin/accounts/{handle}/unsuspend"),
}


@cell(*(f"{m} {p}" for m, p in sorted(ADMIN_ROUTES_WITH_OWN_CELLS)))
async def a_device_token_is_not_an_operator(s: aiohttp.ClientSession, w: World) -> None:
    for method, path in sorted(ADMIN_ROUTES_WITH_OWN_CELLS):
        path = path.replace("{handle}", "bob")
        await refused(s, w, method, path, w.alice, {}, status=401, code="admin.invalid_token")
    status, _ = await call(s, w, "GET", "/v1/me", w.bob)
    assert status == 200  # bob was not suspended


# ---------------------------------------------------------------- generated cells


def openapi(w: World) -> dict[str, Any]:
    async def fetch() -> dict[str, Any]:
        async with aiohttp.ClientSession() as s, s.get(f"{w.base}/openapi.json") as r:
            doc: dict[str, Any] = await r.json()
            return doc

    return asyncio.run(fetch())


def routes(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    ]


def concrete(path: str, w: World) -> str:
    fill = {"{group}": w.group, "{handle}": "bob", "{blob}": w.blob, "{id}": "1",
            "{link}": "x", "{code}": "ABCD-EFGH", "{notice}": "x"}  # fmt: skip
    for name, value in fill.items():
        path = path.replace(name, value)
    return path


async def try_tokens(
    s: aiohttp.ClientSession, w: World, method: str, path: str, tokens: list[tuple[str | None, str]]
) -> None:
    for token, code in tokens:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with s.request(method, f"{w.base}{concrete(path, w)}", headers=headers,
                             data=b"{}") as r:  # fmt: skip
            assert r.status == 401, (method, path, token)
            if method != "HEAD":
                body = await r.json(content_type=None)
                assert body["code"] == code, (method, path, body)


async def test_every_device_route_refuses_missing_invented_and_revoked_tokens(
    world: World, s: aiohttp.ClientSession
) -> None:
    doc = await asyncio.to_thread(openapi, world)
    checked = 0
    for method, path, op in routes(doc):
        if op.get("security") == [{"deviceToken": []}]:
            await try_tokens(s, world, method, path, [
                (None, "auth.required"),
                ("invented-" + secrets.token_urlsafe(32), "auth.invalid_token"),
                (world.revoked.token, "auth.revoked"),
            ])  # fmt: skip
            checked += 1
    assert checked >= 30


async def test_every_admin_route_refuses_anything_but_the_admin_token(
    world: World, s: aiohttp.ClientSession
) -> None:
    doc = await asyncio.to_thread(openapi, world)
    checked = 0
    for method, path, op in routes(doc):
        if op.get("security") == [{"adminToken": []}]:
            await try_tokens(s, world, method, path, [
                (None, "admin.invalid_token"),
                (ADMIN + "x", "admin.invalid_token"),
                (world.alice.token, "admin.invalid_token"),
            ])  # fmt: skip
            checked += 1
    assert checked >= 10


def test_every_route_is_in_the_matrix(world: World) -> None:
    """A route without a cell fails here: write its wrong-principal test first."""
    doc = openapi(world)
    missing = [
        f"{method} {path}"
        for method, path, op in routes(doc)
        if (method, path) not in CELLS and op.get("security") != [{"adminToken": []}]
    ]
    assert missing == [], f"routes without an authorization cell: {missing}"
    stale = [f"{m} {p}" for m, p in CELLS if m != "WS" and p not in doc["paths"]]
    assert stale == [], f"cells for routes that no longer exist: {stale}"


@pytest.mark.parametrize("name", sorted(BY_NAME))
async def test_cell(name: str, world: World, s: aiohttp.ClientSession) -> None:
    await BY_NAME[name](s, world)


def test_the_database_holds_token_hashes_only(server: ServerProcess, world: World) -> None:
    """A stolen database file yields no working device token (core/accounts.py)."""
    stored = b"".join(p.read_bytes() for p in server.data_dir.glob("taube.db*"))
    for account in (world.alice, world.alice2, world.bob, world.mallory):
        assert account.token.encode() not in stored
    assert hashlib.sha256(world.alice.token.encode()).digest() in stored
