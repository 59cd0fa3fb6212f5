"""The filesystem blob storage: writes drop what a crash left, finish verifies."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from taube.blobs.base import upload_name
from taube.blobs.filesystem import FilesystemBlobStorage


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_write_resume_finish_and_read(tmp_path: Path) -> None:
    storage = FilesystemBlobStorage(tmp_path)
    await storage.open()
    data = os.urandom(3000)
    blob_id = hashlib.sha256(data).hexdigest()
    name = upload_name(blob_id, "alice")
    assert await storage.write(name, 0, chunks(data[:1000], data[1000:1500])) == 1500
    # A crash left junk past the counted offset: the next write drops it.
    assert await storage.write(name, 1000, chunks(data[1000:2000])) == 1000
    assert await storage.write(name, 2000, chunks(data[2000:])) == 1000
    assert await storage.finish(name, blob_id)
    assert await storage.exists(blob_id)
    assert await storage.finish(name, blob_id)  # again after a crash: already moved
    assert b"".join([c async for c in storage.read(blob_id, 10, 2990)]) == data[10:2990]
    assert not (tmp_path / "partial" / name).exists()
    await storage.delete(blob_id)
    assert not await storage.exists(blob_id)


async def test_finish_refuses_bytes_of_another_digest(tmp_path: Path) -> None:
    storage = FilesystemBlobStorage(tmp_path)
    await storage.open()
    blob_id = "ab" * 32
    name = upload_name(blob_id, "alice")
    await storage.write(name, 0, chunks(b"not those bytes"))
    assert not await storage.finish(name, blob_id)
    assert not await storage.exists(blob_id)
    assert list((tmp_path / "partial").iterdir()) == []


def test_names_are_checked(tmp_path: Path) -> None:
    storage = FilesystemBlobStorage(tmp_path)
    with pytest.raises(ValueError, match="blob id"):
        storage.local_path("../../etc/passwd")
    with pytest.raises(ValueError, match="upload name"):
        storage._upload_path("ab" * 32 + "./../x")
