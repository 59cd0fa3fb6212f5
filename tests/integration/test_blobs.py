"""Attachment blobs over the real server: resumable uploads, grants, downloads, deletion.

Blob bytes here are random (as ciphertext would be); the server sees nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from tests.serverproc import UNIT_S, ServerProcess
from tests.wire import Account, http, register

MIB = 1024 * 1024
CHUNK = 8 * MIB


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120 * UNIT_S)) as s:
        yield s


def blob_file(server: ServerProcess, blob_id: str) -> Path:
    return server.data_dir / "blobs" / blob_id[:2] / blob_id[2:]


async def gone(server: ServerProcess, blob_id: str, seconds: float = 5.0) -> bool:
    """The blob's file is deleted (the server records a download just after sending it)."""
    deadline = time.monotonic() + seconds * UNIT_S
    while blob_file(server, blob_id).exists():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def logged(server: ServerProcess, text: str, seconds: float) -> None:
    """Wait until the server's log says ``text`` (another process: polled)."""
    deadline = time.monotonic() + seconds * UNIT_S
    while text not in server.log():
        assert time.monotonic() < deadline, f"not logged: {text}"
        await asyncio.sleep(0.05)


def partial_files(server: ServerProcess) -> list[str]:
    return sorted(p.name for p in (server.data_dir / "blobs" / "partial").iterdir())


async def announce(
    session: aiohttp.ClientSession, server: ServerProcess, who: Account, data: bytes
) -> tuple[int, Any]:
    body = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return await http(session, "POST", f"{server.url}/v1/blobs", body, who.token)


async def patch(
    session: aiohttp.ClientSession,
    server: ServerProcess,
    who: Account,
    blob_id: str,
    offset: int,
    chunk: bytes,
) -> tuple[int, Any, dict[str, str]]:
    headers = {
        "Authorization": f"Bearer {who.token}",
        "Upload-Offset": str(offset),
        "Content-Type": "application/offset+octet-stream",
    }
    url = f"{server.url}/v1/blobs/{blob_id}"
    async with session.patch(url, data=chunk, headers=headers) as response:
        raw = await response.read()
        return response.status, msgspec.json.decode(raw) if raw else None, dict(response.headers)


async def upload(
    session: aiohttp.ClientSession,
    server: ServerProcess,
    who: Account,
    data: bytes,
    chunk: int = CHUNK,
) -> str:
    status, body = await announce(session, server, who, data)
    assert status in (200, 201), body
    offset = body["offset"]
    while not body["complete"]:
        status, body, _ = await patch(
            session, server, who, body["id"], offset, data[offset : offset + chunk]
        )
        assert status == 200, body
        offset = body["offset"]
    return str(body["id"])


async def download(
    session: aiohttp.ClientSession,
    server: ServerProcess,
    who: Account,
    blob_id: str,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    url = f"{server.url}/v1/blobs/{blob_id}"
    sent = {"Authorization": f"Bearer {who.token}", **(headers or {})}
    async with session.get(url, headers=sent) as response:
        return response.status, await response.read()


async def grant(
    session: aiohttp.ClientSession, server: ServerProcess, who: Account, blob_id: str, to: str
) -> tuple[int, Any]:
    url = f"{server.url}/v1/blobs/{blob_id}/grants"
    return await http(session, "POST", url, {"to": to}, who.token)


async def users(
    session: aiohttp.ClientSession, server: ServerProcess, *handles: str
) -> list[Account]:
    return [await register(session, server.url, h) for h in handles]


async def test_fifty_mib_in_chunks_round_trip_then_gone_after_every_grantee(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    alice, bob = await users(session, server, "alice", "bob")
    data = os.urandom(50 * MIB)
    started = time.perf_counter()
    blob_id = await upload(session, server, alice, data)
    uploaded = time.perf_counter()
    status, got = await download(session, server, alice, blob_id)
    done = time.perf_counter()
    assert status == 200
    assert got == data
    print(
        f"\n50 MiB blob on loopback: upload {uploaded - started:.2f} s "
        f"({50 / (uploaded - started):.0f} MiB/s, 8 MiB chunks), "
        f"download {done - uploaded:.2f} s ({50 / (done - uploaded):.0f} MiB/s)"
    )
    assert blob_file(server, blob_id).stat().st_size == len(data)
    # A range (resuming a download) is 206 and does not count as a download.
    status, part = await download(session, server, alice, blob_id, {"Range": "bytes=10-19"})
    assert (status, part) == (206, data[10:20])
    # Bob may not, until Alice grants him reading; then one full download deletes it.
    assert (await download(session, server, bob, blob_id))[0] == 404
    assert (await grant(session, server, alice, blob_id, "@bob"))[0] == 204
    status, _ = await download(
        session, server, bob, blob_id, {"Range": f"bytes=0-{len(data) // 2}"}
    )
    assert status == 206
    assert blob_file(server, blob_id).exists()  # half a download is not a download
    status, got = await download(session, server, bob, blob_id)
    assert status == 200
    assert got == data
    assert await gone(server, blob_id)
    assert (await download(session, server, bob, blob_id))[0] == 404
    assert (await download(session, server, alice, blob_id))[0] == 404


async def test_interrupted_upload_resumes_from_the_offset_head_gives(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    (alice,) = await users(session, server, "alice")
    data = os.urandom(3 * MIB + 123)
    status, body = await announce(session, server, alice, data)
    assert (status, body["offset"], body["complete"]) == (201, 0, False)
    blob_id = body["id"]
    status, body, headers = await patch(session, server, alice, blob_id, 0, data[:MIB])
    assert (status, body["offset"], headers["Upload-Offset"]) == (200, MIB, str(MIB))
    # The next chunk dies half way: a raw connection that sends half its body, then closes.
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = (
        f"PATCH /v1/blobs/{blob_id} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {alice.token}\r\nUpload-Offset: {MIB}\r\n"
        f"Content-Type: application/offset+octet-stream\r\nContent-Length: {MIB}\r\n\r\n"
    )
    writer.write(head.encode() + data[MIB : MIB + MIB // 2])
    await writer.drain()
    await asyncio.sleep(0.2 * UNIT_S)
    writer.close()
    await asyncio.sleep(0.2 * UNIT_S)
    # HEAD says where to go on; so does announcing it again (200: not new).
    url = f"{server.url}/v1/blobs/{blob_id}"
    async with session.head(url, headers={"Authorization": f"Bearer {alice.token}"}) as r:
        assert r.status == 200
        assert (r.headers["Upload-Offset"], r.headers["Upload-Length"]) == (
            str(MIB),
            str(len(data)),
        )
    status, body = await announce(session, server, alice, data)
    assert (status, body["offset"]) == (200, MIB)
    status, body = await http(session, "GET", f"{url}/status", None, alice.token)
    assert body == {"id": blob_id, "size": len(data), "offset": MIB, "complete": False}
    offset = MIB
    while offset < len(data):
        status, body, _ = await patch(
            session, server, alice, blob_id, offset, data[offset : offset + MIB]
        )
        assert status == 200, body
        offset = body["offset"]
    assert body["complete"] is True
    assert (await download(session, server, alice, blob_id)) == (200, data)
    assert partial_files(server) == []
    assert "Traceback" not in server.log()


async def test_upload_errors(server: ServerProcess, session: aiohttp.ClientSession) -> None:
    alice, bob = await users(session, server, "alice", "bob")
    data = os.urandom(1000)
    status, body = await announce(session, server, alice, data)
    blob_id = body["id"]
    # Offset mismatch: the server says where it stands.
    status, body, _ = await patch(session, server, alice, blob_id, 10, data[10:20])
    assert (status, body["code"], body["details"]) == (409, "blob.offset_mismatch", {"offset": 0})
    # Past the declared size.
    status, body, _ = await patch(session, server, alice, blob_id, 0, data + b"x")
    assert (status, body["code"]) == (413, "blob.too_large")
    # No Upload-Offset header.
    async with session.patch(
        f"{server.url}/v1/blobs/{blob_id}",
        data=b"abc",
        headers={"Authorization": f"Bearer {alice.token}"},
    ) as response:
        assert response.status == 422
    # Someone else's upload, an unknown id, a malformed id: all not found.
    status, body, _ = await patch(session, server, bob, blob_id, 0, data)
    assert (status, body["code"]) == (404, "blob.not_found")
    status, body, _ = await patch(session, server, alice, "0" * 64, 0, data)
    assert (status, body["code"]) == (404, "blob.not_found")
    status, body, _ = await patch(session, server, alice, "nope", 0, data)
    assert (status, body["code"]) == (404, "blob.not_found")
    # Too large as declared: refused before any byte of it is sent.
    status, body = await http(
        session,
        "POST",
        f"{server.url}/v1/blobs",
        {"size": 100 * MIB + 1, "sha256": "1" * 64},
        alice.token,
    )
    assert (status, body["code"], body["details"]) == (413, "blob.too_large", {"limit": 100 * MIB})
    # Bad bodies.
    for bad in ({"size": 0, "sha256": "1" * 64}, {"size": 5, "sha256": "A" * 64}):
        status, body = await http(session, "POST", f"{server.url}/v1/blobs", bad, alice.token)
        assert (status, body["code"]) == (422, "request.invalid")
    # A chunk above max_chunk_bytes.
    big = os.urandom(CHUNK + 1)
    status, body = await announce(session, server, alice, big)
    status, body, _ = await patch(session, server, alice, body["id"], 0, big)
    assert (status, body["code"], body["details"]) == (
        413,
        "blob.chunk_too_large",
        {"limit": CHUNK},
    )
    # Without a token.
    status, body = await http(session, "POST", f"{server.url}/v1/blobs", {"size": 1})
    assert status == 401


async def test_digest_mismatch_discards_the_upload(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    (alice,) = await users(session, server, "alice")
    claimed = os.urandom(2000)
    status, body = await announce(session, server, alice, claimed)
    blob_id = body["id"]
    status, body, _ = await patch(session, server, alice, blob_id, 0, claimed[:1000])
    assert status == 200
    status, body, _ = await patch(session, server, alice, blob_id, 1000, os.urandom(1000))
    assert (status, body["code"]) == (400, "blob.digest_mismatch")
    status, body = await http(
        session, "GET", f"{server.url}/v1/blobs/{blob_id}/status", None, alice.token
    )
    assert (status, body["code"]) == (404, "blob.not_found")
    assert partial_files(server) == []
    assert not blob_file(server, blob_id).exists()
    # Starting again works.
    assert await upload(session, server, alice, claimed) == blob_id


async def test_grants_to_users_and_groups(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    alice, bob, carol, dave = await users(session, server, "alice", "bob", "carol", "dave")
    data = os.urandom(5000)
    blob_id = await upload(session, server, alice, data)
    for who in (bob, carol, dave):
        assert (await download(session, server, who, blob_id))[0] == 404
    # Only an uploader grants; unknown users and groups are named as such.
    status, body = await grant(session, server, bob, blob_id, "@bob")
    assert (status, body["code"]) == (404, "blob.not_found")
    status, body = await grant(session, server, alice, blob_id, "@ghost")
    assert (status, body["code"]) == (404, "user.not_found")
    status, body = await grant(session, server, alice, blob_id, "#" + "0" * 26)
    assert (status, body["code"]) == (404, "group.not_found")
    status, body = await grant(session, server, alice, blob_id, "nobody")
    assert (status, body["code"]) == (422, "request.invalid")
    status, group = await http(
        session,
        "POST",
        f"{server.url}/v1/groups",
        {"name": "G", "members": ["bob", "carol"]},
        bob.token,
    )
    status, body = await grant(session, server, alice, blob_id, f"#{group['id']}")
    assert (status, body["code"]) == (403, "group.not_member")
    await http(
        session,
        "POST",
        f"{server.url}/v1/groups/{group['id']}/members",
        {"handles": ["alice"]},
        bob.token,
    )
    assert (await grant(session, server, alice, blob_id, f"#{group['id']}"))[0] == 204
    # Members at grant time may read; dave, who was never granted, may not.
    assert (await download(session, server, dave, blob_id))[0] == 404
    assert await download(session, server, bob, blob_id) == (200, data)
    assert blob_file(server, blob_id).exists()  # carol has not fetched yet
    assert await download(session, server, carol, blob_id) == (200, data)
    assert await gone(server, blob_id)
    assert (await download(session, server, bob, blob_id))[0] == 404


async def test_concurrent_uploads_of_the_same_bytes_are_deduplicated(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    alice, bob, carol, dave = await users(session, server, "alice", "bob", "carol", "dave")
    data = os.urandom(4 * MIB)
    ids = await asyncio.gather(
        upload(session, server, alice, data, chunk=MIB),
        upload(session, server, bob, data, chunk=MIB),
    )
    assert ids[0] == ids[1]
    blob_id = ids[0]
    files = [p for p in (server.data_dir / "blobs").rglob("*") if p.is_file()]
    assert files == [blob_file(server, blob_id)]
    # A third uploader finds it complete at once (200) and becomes an uploader too.
    status, body = await announce(session, server, carol, data)
    assert (status, body["complete"], body["offset"]) == (200, True, len(data))
    for who in (alice, bob, carol):
        assert await download(session, server, who, blob_id) == (200, data)
    assert (await grant(session, server, carol, blob_id, "@dave"))[0] == 204
    assert await download(session, server, dave, blob_id) == (200, data)
    assert await gone(server, blob_id)


async def test_retention_deletes_old_blobs_and_stale_uploads(tmp_path: Path) -> None:
    """The job runs at start and hourly: restart with a tiny retention to see it act."""
    server = ServerProcess(tmp_path / "server").start()
    try:
        async with aiohttp.ClientSession() as session:
            alice, bob = await users(session, server, "alice", "bob")
            data = os.urandom(1000)
            blob_id = await upload(session, server, alice, data)
            assert (await grant(session, server, alice, blob_id, "@bob"))[0] == 204
            partial = os.urandom(1000)
            _, body = await announce(session, server, alice, partial)
            await patch(session, server, alice, body["id"], 0, partial[:10])
            assert len(partial_files(server)) == 1
    finally:
        server.stop()
    await asyncio.sleep(0.3)  # older than the retention below
    tiny = {"blobs": {"retention_days": 0.1 / 86400, "upload_retention_days": 0.1 / 86400}}
    server = ServerProcess(tmp_path / "server", settings=tiny).start()
    try:
        await logged(server, "retention: deleted", 10)
        assert not blob_file(server, blob_id).exists()
        assert partial_files(server) == []
        async with aiohttp.ClientSession() as session:
            assert (await download(session, server, bob, blob_id))[0] == 404
            assert (await download(session, server, alice, blob_id))[0] == 404
        assert "retention: deleted 1 blobs and 1 stale uploads" in server.log()
    finally:
        server.stop()


def test_openapi_lists_the_blob_and_block_routes(server: ServerProcess) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{server.url}/openapi.json") as response:
        document = msgspec.json.decode(response.read())
    paths = document["paths"]
    assert set(paths["/v1/blobs/{blob}"]) == {"patch", "head", "get"}
    assert "post" in paths["/v1/blobs"]
    assert "post" in paths["/v1/blobs/{blob}/grants"]
    assert "get" in paths["/v1/blobs/{blob}/status"]
    assert set(paths["/v1/blocks/{handle}"]) == {"put", "delete"}
    assert "get" in paths["/v1/blocks"]
    patch_op = paths["/v1/blobs/{blob}"]["patch"]
    assert "application/offset+octet-stream" in patch_op["requestBody"]["content"]
    assert "409" in patch_op["responses"]
