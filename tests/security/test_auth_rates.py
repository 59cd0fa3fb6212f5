"""Rate limits and quotas on a real server: registration per address, logins per
address, user lookups, group creation and upload bytes per account, sends per device.
Each refusal is ``rate.limited`` with a retry-after (HTTP ``Retry-After``, or the
WebSocket error frame's ``retry_after_s``)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from taube.protocol.frames import Error, Sent
from tests.serverproc import ServerProcess
from tests.wire import PASSWORD, connect, http, register

LIMITED = {
    "rate": {
        "logins_per_min": 3,
        "lookups_per_min": 3,
        "groups_per_hour": 2,
        "sends_per_s": 0.5,
        "sends_burst": 3,
        "upload_mib_per_hour": 0.1,  # 104,857 bytes
    },
    "blobs": {"max_chunk_bytes": 65536},
}


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "limited", settings=LIMITED).start()
    try:
        yield proc
    finally:
        proc.stop()


async def raw(
    session: aiohttp.ClientSession, method: str, url: str, body: object = None, token: str = ""
) -> tuple[int, dict[str, object], str]:
    """Status, problem body and Retry-After header."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.request(method, url, json=body, headers=headers) as r:
        data = await r.json(content_type=None) if r.content_length != 0 else {}
        return r.status, data or {}, r.headers.get("Retry-After", "")


def assert_limited(status: int, body: dict[str, object], retry_after: str) -> None:
    assert (status, body.get("code")) == (429, "rate.limited"), body
    details = body["details"]
    assert isinstance(details, dict)
    assert details["retry_after_s"] >= 1
    assert int(retry_after) == details["retry_after_s"]


async def test_registrations_per_address(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    server = ServerProcess(tmp_path / "s", settings={"rate": {"registrations_per_hour": 2}})
    server.start()
    try:
        for name in ("ann", "ben"):
            await register(session, server.url, name)
        status, body, retry = await raw(
            session, "POST", f"{server.url}/v1/accounts", {"handle": "cat", "password": PASSWORD}
        )
        assert_limited(status, body, retry)
        assert int(retry) > 60  # two an hour: the next one in about half an hour
    finally:
        server.stop()


async def test_logins_per_address(limited: ServerProcess, session: aiohttp.ClientSession) -> None:
    await register(session, limited.url, "alice")
    url = f"{limited.url}/v1/sessions"
    for _ in range(3):
        status, body, _ = await raw(session, "POST", url, {"handle": "alice", "password": PASSWORD})
        assert status == 201, body
    status, body, retry = await raw(session, "POST", url, {"handle": "alice", "password": PASSWORD})
    assert_limited(status, body, retry)


async def test_lookups_per_account_stop_enumeration(
    limited: ServerProcess, session: aiohttp.ClientSession
) -> None:
    alice = await register(session, limited.url, "alice")
    other = await register(session, limited.url, "other")
    paths = ["/v1/users/bob", "/v1/users/other", "/v1/keys/other/identities"]
    for path in paths:  # found or not, each counts
        status, _, _ = await raw(session, "GET", limited.url + path, token=alice.token)
        assert status in (200, 404)
    for path in ("/v1/users/carol", "/v1/keys/other/identities", "/v1/keys/other"):
        assert_limited(*await raw(session, "GET", limited.url + path, token=alice.token))
    # Per account: another account still looks up.
    status, _, _ = await raw(session, "GET", limited.url + "/v1/users/alice", token=other.token)
    assert status == 200


async def test_group_creation_per_account(
    limited: ServerProcess, session: aiohttp.ClientSession
) -> None:
    alice = await register(session, limited.url, "alice")
    for i in range(2):
        status, body = await http(
            session, "POST", f"{limited.url}/v1/groups", {"name": f"g{i}"}, alice.token
        )
        assert status == 201, body
    assert_limited(
        *await raw(session, "POST", f"{limited.url}/v1/groups", {"name": "g3"}, alice.token)
    )


async def test_upload_bytes_per_account(
    limited: ServerProcess, session: aiohttp.ClientSession
) -> None:
    alice = await register(session, limited.url, "alice")
    data = os.urandom(3 * 65536)
    status, blob = await http(
        session,
        "POST",
        f"{limited.url}/v1/blobs",
        {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
        alice.token,
    )
    assert status == 201, blob
    statuses = []
    retry = ""
    for offset in range(0, len(data), 65536):
        headers = {
            "Authorization": f"Bearer {alice.token}",
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        }
        url = f"{limited.url}/v1/blobs/{blob['id']}"
        async with session.patch(url, data=data[offset : offset + 65536], headers=headers) as r:
            statuses.append(r.status)
            retry = r.headers.get("Retry-After", "")
            if r.status != 200:
                break
    assert statuses == [200, 429]  # 64 KiB fits in 0.1 MiB an hour, 128 KiB does not
    assert int(retry) >= 1


async def test_sends_per_device_error_frame_carries_retry_after(
    limited: ServerProcess, session: aiohttp.ClientSession
) -> None:
    alice = await register(session, limited.url, "alice")
    await register(session, limited.url, "bob")
    wire = await connect(session, limited.ws_url, alice.token)
    ids = [await wire.send("@bob", b"x") for _ in range(4)]
    sent: list[str] = []
    error: Error | None = None
    while len(sent) + (error is not None) < 4:
        frame = await wire.next()
        if isinstance(frame, Sent):
            sent.append(frame.id)
        elif isinstance(frame, Error):
            error = frame
    assert sent == ids[:3]  # the burst
    assert error is not None
    assert error.code == "rate.limited"
    assert error.ref == ids[3]
    assert error.details is not None
    assert error.details["retry_after_s"] >= 1
    await wire.close()
