"""Key distribution over the real HTTP API and WebSocket: uploads, bundle fetches that
consume one-time prekeys, identities, the errors, the rate limit and ``keys_low``."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec
import pytest
from multidict import CIMultiDictProxy

from taube.crypto import (
    IdentityKeyPair,
    OneTimePreKey,
    PreKeyBundle,
    Session,
    SignedPreKey,
)
from taube.crypto.keys import verify_signed_prekey
from taube.protocol import api
from taube.protocol.frames import KeysLow
from tests.conftest import fresh_name, two_nodes
from tests.serverproc import ServerProcess
from tests.wire import Account, connect, http, login, quiet, register

T = TypeVar("T")


@dataclass
class DeviceKeys:
    """A device's private keys, as the SDK would keep them."""

    identity: IdentityKeyPair = field(default_factory=IdentityKeyPair.generate)
    signed: dict[int, SignedPreKey] = field(default_factory=dict)
    one_time: dict[int, OneTimePreKey] = field(default_factory=dict)

    def upload(self, one_time: range = range(0), signed_id: int | None = 1) -> api.KeysUpload:
        spk = None
        if signed_id is not None:
            made = self.signed[signed_id] = SignedPreKey.generate(self.identity, signed_id)
            spk = api.SignedPrekey(id=signed_id, key=made.public, signature=made.signature)
        opks = []
        for key_id in one_time:
            opk = self.one_time[key_id] = OneTimePreKey.generate(key_id)
            opks.append(api.Prekey(id=key_id, key=opk.public))
        return api.KeysUpload(
            identity_key=self.identity.public, signed_prekey=spk, one_time_prekeys=opks
        )


def typed(body: Any, kind: type[T]) -> T:
    """A JSON body (bytes as base64 strings) as the typed struct the API defines."""
    return msgspec.json.decode(msgspec.json.encode(body), type=kind)


async def put_keys(
    session: aiohttp.ClientSession, base: str, account: Account, upload: Any
) -> tuple[int, Any]:
    return await http(session, "PUT", f"{base}/v1/keys", upload, account.token)


async def fetch(
    session: aiohttp.ClientSession, base: str, account: Account, path: str
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    headers = {"Authorization": f"Bearer {account.token}"}
    async with session.get(f"{base}{path}", headers=headers) as response:
        raw = await response.read()
        return response.status, msgspec.json.decode(raw) if raw else None, response.headers


async def bundles(
    session: aiohttp.ClientSession, base: str, account: Account, handle: str, query: str = ""
) -> api.KeyBundles:
    status, body, _ = await fetch(session, base, account, f"/v1/keys/{handle}{query}")
    assert status == 200, body
    return typed(body, api.KeyBundles)


async def own_status(session: aiohttp.ClientSession, base: str, account: Account) -> api.KeysStatus:
    status, body = await http(session, "GET", f"{base}/v1/keys", token=account.token)
    assert status == 200, body
    return typed(body, api.KeysStatus)


def as_bundle(device: api.DeviceBundle) -> PreKeyBundle:
    opk = device.one_time_prekey
    return PreKeyBundle(
        identity_key=device.identity_key,
        signed_prekey_id=device.signed_prekey.id,
        signed_prekey=device.signed_prekey.key,
        signed_prekey_signature=device.signed_prekey.signature,
        one_time_prekey_id=None if opk is None else opk.id,
        one_time_prekey=None if opk is None else opk.key,
    )


# ---------------------------------------------------------------- round trip


async def test_upload_fetch_and_start_a_session_with_each_prekey_once(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    alice = await register(session, server.url, "alice")
    bob = await register(session, server.url, "bob")
    keys = DeviceKeys()
    status, body = await put_keys(session, server.url, alice, keys.upload(range(3)))
    assert status == 200, body
    uploaded = typed(body, api.KeysStatus)
    assert uploaded == api.KeysStatus(
        one_time_prekeys=3, signed_prekey_id=1, identity_key=keys.identity.public
    )
    assert body["identity_key"] == base64.b64encode(keys.identity.public).decode()
    assert await own_status(session, server.url, alice) == uploaded

    taken = []
    for handle in ("@alice", "alice", "ALICE"):  # with or without @, any case
        got = await bundles(session, server.url, bob, handle)
        assert got.handle == "alice"
        (device,) = got.devices
        assert device.device == 1
        assert device.identity_key == keys.identity.public
        assert device.one_time_prekey is not None
        taken.append(device.one_time_prekey.id)
        bundle = as_bundle(device)
        bundle.verify()
        verify_signed_prekey(
            device.identity_key,
            device.signed_prekey.id,
            device.signed_prekey.key,
            device.signed_prekey.signature,
        )
        # The bundle really works: bob starts a session, alice answers it.
        bob_identity = IdentityKeyPair.generate()
        wire = Session.initiate(bob_identity, bundle).encrypt(b"hello " + bytes([len(taken)]))
        opk = keys.one_time[device.one_time_prekey.id]
        _, plain = Session.respond(keys.identity, wire, keys.signed[1], opk)
        assert plain == b"hello " + bytes([len(taken)])
    assert taken == [0, 1, 2]  # each once, then none left
    assert (await own_status(session, server.url, alice)).one_time_prekeys == 0

    (device,) = (await bundles(session, server.url, bob, "alice")).devices
    assert device.one_time_prekey is None
    as_bundle(device).verify()  # X3DH without a one-time prekey still works
    _, raw, _ = await fetch(session, server.url, bob, "/v1/keys/alice")
    assert raw["devices"][0]["one_time_prekey"] is None

    # More one-time prekeys (known ids ignored) and a rotated signed prekey.
    status, body = await put_keys(session, server.url, alice, keys.upload(range(2, 6), 2))
    assert status == 200, body
    assert typed(body, api.KeysStatus).one_time_prekeys == 4
    (device,) = (await bundles(session, server.url, bob, "alice")).devices
    assert device.signed_prekey.id == 2
    assert device.one_time_prekey is not None
    assert device.one_time_prekey.id == 2
    as_bundle(device).verify()


async def test_every_active_device_and_one_by_query(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    alice = await register(session, server.url, "alice")
    phone = await login(session, server.url, "alice")
    await login(session, server.url, "alice")  # device 3 uploads nothing
    bob = await register(session, server.url, "bob")
    laptop_keys, phone_keys = DeviceKeys(), DeviceKeys()
    assert (await put_keys(session, server.url, alice, laptop_keys.upload(range(2))))[0] == 200
    assert (await put_keys(session, server.url, phone, phone_keys.upload(range(10, 12))))[0] == 200

    got = await bundles(session, server.url, bob, "alice")
    assert [d.device for d in got.devices] == [1, 2]
    assert [d.identity_key for d in got.devices] == [
        laptop_keys.identity.public,
        phone_keys.identity.public,
    ]
    assert [d.one_time_prekey.id for d in got.devices if d.one_time_prekey] == [0, 10]

    (only,) = (await bundles(session, server.url, bob, "alice", "?device=2")).devices
    assert only.device == 2
    assert only.one_time_prekey is not None
    assert only.one_time_prekey.id == 11
    assert (await own_status(session, server.url, alice)).one_time_prekeys == 1  # untouched

    for query, code, status_code in (
        ("?device=3", "keys.not_found", 404),
        ("?device=99", "keys.not_found", 404),
        ("?device=two", "request.invalid", 422),
    ):
        status, body, _ = await fetch(session, server.url, bob, f"/v1/keys/alice{query}")
        assert (status, body["code"]) == (status_code, code), body


async def test_identities_consume_nothing(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    alice = await register(session, server.url, "alice")
    bob = await register(session, server.url, "bob")
    keys = DeviceKeys()
    await put_keys(session, server.url, alice, keys.upload(range(3)))
    for handle in ("alice", "@alice"):
        status, body, _ = await fetch(session, server.url, bob, f"/v1/keys/{handle}/identities")
        assert status == 200, body
        assert typed(body, api.DeviceIdentities) == api.DeviceIdentities(
            handle="alice",
            devices=[api.DeviceIdentity(device=1, identity_key=keys.identity.public)],
        )
    assert (await own_status(session, server.url, alice)).one_time_prekeys == 3
    # A user without keys has none to show (and nothing to fetch).
    status, body, _ = await fetch(session, server.url, alice, "/v1/keys/bob/identities")
    assert (status, body["devices"]) == (200, [])
    assert (await bundles(session, server.url, alice, "bob")).devices == []


# ---------------------------------------------------------------- refusals


def tampered(keys: DeviceKeys, **changes: Any) -> dict[str, Any]:
    """A valid upload as JSON, with some fields replaced."""
    body: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(keys.upload(range(2))))
    for path, value in changes.items():
        target: Any = body
        *parents, last = [int(n) if n.isdigit() else n for n in path.split("__")]
        for name in parents:
            target = target[name]
        target[last] = value
    return body


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"identity_key": b64(b"\x01" * 31)}, "request.invalid"),
        ({"identity_key": b64(b"\x01" * 33)}, "request.invalid"),
        ({"identity_key": "not base64!"}, "request.invalid"),
        ({"identity_key": None}, "request.invalid"),
        ({"signed_prekey__key": b64(b"\x01" * 31)}, "request.invalid"),
        ({"signed_prekey__signature": b64(b"\x01" * 63)}, "request.invalid"),
        ({"signed_prekey__id": -1}, "request.invalid"),
        ({"signed_prekey__id": 2**32}, "request.invalid"),
        ({"one_time_prekeys__0__key": b64(b"\x01" * 16)}, "request.invalid"),
        ({"one_time_prekeys__1__id": "seven"}, "request.invalid"),
        ({"one_time_prekeys": [{"id": i, "key": b64(bytes(32))} for i in range(201)]},
         "request.invalid"),
        ({"signed_prekey__signature": b64(b"\x01" * 64)}, "keys.bad_signature"),
        ({"signed_prekey__id": 99}, "keys.bad_signature"),  # the id is signed too
        ({"signed_prekey__key": b64(b"\x02" * 32)}, "keys.bad_signature"),
        ({"signed_prekey": None}, "keys.incomplete"),
    ],
)  # fmt: skip
async def test_bad_uploads_get_their_code_and_store_nothing(
    server: ServerProcess, session: aiohttp.ClientSession, changes: dict[str, Any], code: str
) -> None:
    alice = await register(session, server.url, "alice")
    status, body = await put_keys(session, server.url, alice, tampered(DeviceKeys(), **changes))
    assert body["code"] == code, body
    assert status == {"request.invalid": 422, "keys.incomplete": 400}.get(code, 400)
    assert await own_status(session, server.url, alice) == api.KeysStatus(one_time_prekeys=0)


async def test_identity_is_set_once_and_a_signature_must_match_it(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    alice = await register(session, server.url, "alice")
    keys = DeviceKeys()
    assert (await put_keys(session, server.url, alice, keys.upload(range(2))))[0] == 200
    # The same identity again is fine (idempotent), also without a signed prekey.
    assert (await put_keys(session, server.url, alice, keys.upload(range(2))))[0] == 200
    status, body = await put_keys(session, server.url, alice, keys.upload(range(5, 7), None))
    assert (status, body["one_time_prekeys"]) == (200, 4)
    other = DeviceKeys()
    for signed_id in (3, None):
        status, body = await put_keys(
            session, server.url, alice, other.upload(range(10, 12), signed_id)
        )
        assert (status, body["code"]) == (409, "keys.identity_mismatch"), body
    assert await own_status(session, server.url, alice) == api.KeysStatus(
        one_time_prekeys=4, signed_prekey_id=1, identity_key=keys.identity.public
    )


async def test_too_many_one_time_prekeys_stores_nothing_of_that_request(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    server = ServerProcess(
        tmp_path / "s", settings={"limits": {"max_one_time_prekeys": 300}}
    ).start()
    try:
        alice = await register(session, server.url, "alice")
        keys = DeviceKeys()
        assert (await put_keys(session, server.url, alice, keys.upload(range(200))))[0] == 200
        status, body = await put_keys(session, server.url, alice, keys.upload(range(150, 350), 2))
        assert (status, body["code"]) == (409, "keys.too_many"), body
        assert body["details"] == {"limit": 300, "stored": 200}
        assert await own_status(session, server.url, alice) == api.KeysStatus(
            one_time_prekeys=200, signed_prekey_id=1, identity_key=keys.identity.public
        )
        # Up to the limit is fine (ids already stored do not count twice).
        status, body = await put_keys(session, server.url, alice, keys.upload(range(100, 300), 2))
        assert (status, body["one_time_prekeys"], body["signed_prekey_id"]) == (200, 300, 2)
    finally:
        server.stop()


async def test_routes_need_a_token_and_a_known_handle(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    bob = await register(session, server.url, "bob")
    upload = DeviceKeys().upload(range(1))
    for method, path in (
        ("PUT", "/v1/keys"),
        ("GET", "/v1/keys"),
        ("GET", "/v1/keys/bob"),
        ("GET", "/v1/keys/bob/identities"),
    ):
        status, body = await http(session, method, f"{server.url}{path}", upload)
        assert (status, body["code"]) == (401, "auth.required"), (path, body)
        status, body = await http(session, method, f"{server.url}{path}", upload, "bad-token")
        assert (status, body["code"]) == (401, "auth.invalid_token"), (path, body)
    for path in ("/v1/keys/nobody", "/v1/keys/@nobody", "/v1/keys/nobody/identities"):
        status, body, _ = await fetch(session, server.url, bob, path)
        assert (status, body["code"]) == (404, "user.not_found"), (path, body)


async def test_revoked_devices_keys_are_gone(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    alice = await register(session, server.url, "alice")
    phone = await login(session, server.url, "alice")
    bob = await register(session, server.url, "bob")
    keys = DeviceKeys()
    await put_keys(session, server.url, alice, keys.upload(range(2)))
    await put_keys(session, server.url, phone, DeviceKeys().upload(range(2)))
    status, _ = await http(session, "DELETE", f"{server.url}/v1/devices/2", token=alice.token)
    assert status == 204
    assert [d.device for d in (await bundles(session, server.url, bob, "alice")).devices] == [1]
    status, body, _ = await fetch(session, server.url, bob, "/v1/keys/alice?device=2")
    assert (status, body["code"]) == (404, "keys.not_found")
    status, body, _ = await fetch(session, server.url, bob, "/v1/keys/alice/identities")
    assert typed(body, api.DeviceIdentities).devices == [
        api.DeviceIdentity(device=1, identity_key=keys.identity.public)
    ]
    status, body = await put_keys(session, server.url, phone, DeviceKeys().upload(range(2)))
    assert (status, body["code"]) == (401, "auth.revoked")


# ---------------------------------------------------------------- rate limit


async def test_bundle_fetches_are_rate_limited_per_account(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    server = ServerProcess(tmp_path / "s", settings={"limits": {"key_fetches_per_min": 3}}).start()
    try:
        alice = await register(session, server.url, "alice")
        bob = await register(session, server.url, "bob")
        bobs_phone = await login(session, server.url, "bob")
        carol = await register(session, server.url, "carol")
        await put_keys(session, server.url, alice, DeviceKeys().upload(range(10)))
        for _ in range(3):
            await bundles(session, server.url, bob, "alice")
        # The bucket is the account's, whichever of its devices asks.
        for who in (bob, bobs_phone):
            status, body, headers = await fetch(session, server.url, who, "/v1/keys/alice")
            assert (status, body["code"]) == (429, "rate.limited"), body
            assert body["details"]["retry_after_s"] >= 1
            assert int(headers["Retry-After"]) == body["details"]["retry_after_s"]
        assert (await own_status(session, server.url, alice)).one_time_prekeys == 7
        # Others are not affected, and reads that consume nothing are not limited.
        await bundles(session, server.url, carol, "alice")
        status, _, _ = await fetch(session, server.url, bob, "/v1/keys/alice/identities")
        assert status == 200
    finally:
        server.stop()


# ---------------------------------------------------------------- keys_low


async def test_keys_low_follows_ready_when_few_prekeys_are_left(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    alice = await register(session, server.url, "alice")
    bob = await register(session, server.url, "bob")
    carol = await register(session, server.url, "carol")
    await put_keys(session, server.url, alice, DeviceKeys().upload(range(5)))
    await put_keys(session, server.url, carol, DeviceKeys().upload(range(20)))  # enough
    a = await connect(session, server.ws_url, alice.token)
    assert await a.next() == KeysLow(one_time_prekeys=5)  # the frame right after ready
    b = await connect(session, server.ws_url, bob.token)  # no keys: nothing to say
    c = await connect(session, server.ws_url, carol.token)
    assert await quiet(b) == []
    assert await quiet(c) == []
    for wire in (a, b, c):
        await wire.close()


async def test_keys_low_when_a_fetch_drains_the_pool(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    server = ServerProcess(tmp_path / "s", settings={"limits": {"min_one_time_prekeys": 3}}).start()
    try:
        alice = await register(session, server.url, "alice")
        bob = await register(session, server.url, "bob")
        await put_keys(session, server.url, alice, DeviceKeys().upload(range(4)))
        a = await connect(session, server.ws_url, alice.token)
        await bundles(session, server.url, bob, "alice")  # 3 left: not low yet
        assert await quiet(a) == []
        await bundles(session, server.url, bob, "alice")
        assert await a.next() == KeysLow(one_time_prekeys=2)
        await bundles(session, server.url, bob, "alice")
        assert await a.next() == KeysLow(one_time_prekeys=1)
        await bundles(session, server.url, bob, "alice")
        assert await a.next() == KeysLow(one_time_prekeys=0)
        await bundles(session, server.url, bob, "alice")  # none taken: nothing new to say
        assert await quiet(a) == []
        await a.close()
    finally:
        server.stop()


async def test_keys_low_reaches_a_device_on_another_node(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    async with two_nodes(tmp_path) as (n1, n2):
        # NATS subjects carry handles: random ones keep tests apart.
        tag = fresh_name("k")[-8:]
        alice_handle, bob_handle = f"a{tag}", f"b{tag}"
        alice = await register(session, n1.url, alice_handle)
        bob = await register(session, n2.url, bob_handle)
        await put_keys(session, n1.url, alice, DeviceKeys().upload(range(25)))
        a = await connect(session, n1.ws_url, alice.token)
        for _ in range(5):
            await bundles(session, n2.url, bob, alice_handle)
        assert await quiet(a) == []  # 20 left
        await bundles(session, n2.url, bob, alice_handle)
        assert await a.next() == KeysLow(one_time_prekeys=19)
        await a.close()


async def test_openapi_lists_the_key_routes(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    status, doc = await http(session, "GET", f"{server.url}/openapi.json")
    assert status == 200
    paths = doc["paths"]
    assert set(paths["/v1/keys"]) == {"get", "put"}
    put = paths["/v1/keys"]["put"]
    assert "keys.identity_mismatch" in put["responses"]["409"]["description"]
    assert "keys.bad_signature" in put["responses"]["400"]["description"]
    fetch_op = paths["/v1/keys/{handle}"]["get"]
    assert {"name": "device", "in": "query", "required": False,
            "schema": {"type": "integer"}} in fetch_op["parameters"]  # fmt: skip
    assert "rate.limited" in fetch_op["responses"]["429"]["description"]
    assert "get" in paths["/v1/keys/{handle}/identities"]
    assert {"KeysUpload", "KeysStatus", "KeyBundles", "DeviceIdentities"} <= set(
        doc["components"]["schemas"]
    )
