"""``FilesystemBlobStorage``: blobs as files on a local (or shared) disk.

Layout under the root folder: a complete blob is ``ab/cdef...`` (the first two hex
digits of its id name a folder, so that no folder holds millions of files); uploads
are ``partial/<blob id>.<user>``. Both live on one file system, so that finishing is
a rename: the upload is hashed, fsynced, renamed onto its blob name and the folder
fsynced; only then does the caller mark the blob complete in the Store. A crash at any
point leaves either the upload (resumable) or the verified blob, never a half file
under a blob name. File work runs in threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

from taube.blobs.base import BLOB_ID_RE, UPLOAD_RE, BlobFilter, BlobStorage

WRITE_BATCH = 1024 * 1024
"""Bytes gathered from the network before one write to disk (one thread hop)."""
READ_CHUNK = 256 * 1024
HASH_CHUNK = 1024 * 1024


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesystemBlobStorage(BlobStorage):
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._partial = self.root / "partial"

    async def open(self) -> None:
        await asyncio.to_thread(self._partial.mkdir, parents=True, exist_ok=True)

    async def close(self) -> None:
        pass

    # ------------------------------------------------------------ names

    def _upload_path(self, upload: str) -> Path:
        if not UPLOAD_RE.fullmatch(upload):
            raise ValueError(f"not an upload name: {upload!r}")
        return self._partial / upload

    def _blob_path(self, blob_id: str) -> Path:
        if not BLOB_ID_RE.fullmatch(blob_id):
            raise ValueError(f"not a blob id: {blob_id!r}")
        return self.root / blob_id[:2] / blob_id[2:]

    def local_path(self, blob_id: str) -> Path | None:
        return self._blob_path(blob_id)

    # ------------------------------------------------------------ uploads

    async def write(self, upload: str, offset: int, chunks: AsyncIterable[bytes]) -> int:
        path = self._upload_path(upload)

        def start() -> int:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.ftruncate(fd, offset)
                os.lseek(fd, offset, os.SEEK_SET)
            except BaseException:
                os.close(fd)
                raise
            return fd

        def put(fd: int, data: bytes) -> None:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]

        fd = await asyncio.to_thread(start)
        written = 0
        try:
            batch: list[bytes] = []
            size = 0
            async for chunk in chunks:
                batch.append(chunk)
                size += len(chunk)
                if size >= WRITE_BATCH:
                    await asyncio.to_thread(put, fd, b"".join(batch))
                    written += size
                    batch, size = [], 0
            if batch:
                await asyncio.to_thread(put, fd, b"".join(batch))
                written += size
            await asyncio.to_thread(os.fsync, fd)
        finally:
            await asyncio.to_thread(os.close, fd)
        return written

    async def finish(self, upload: str, blob_id: str) -> bool:
        source = self._upload_path(upload)
        target = self._blob_path(blob_id)

        def run() -> bool:
            try:
                fobj = source.open("rb")
            except FileNotFoundError:
                # Finished before, by a process that crashed before the Store knew.
                return target.exists()
            with fobj:
                digest = hashlib.sha256()
                while block := fobj.read(HASH_CHUNK):
                    digest.update(block)
                if digest.hexdigest() != blob_id:
                    source.unlink(missing_ok=True)
                    return False
                os.fsync(fobj.fileno())
            target.parent.mkdir(exist_ok=True)
            os.replace(source, target)  # same bytes if another upload got there first
            _fsync_dir(target.parent)
            return True

        return await asyncio.to_thread(run)

    async def discard(self, upload: str) -> None:
        await asyncio.to_thread(self._upload_path(upload).unlink, missing_ok=True)

    # ------------------------------------------------------------ blobs

    async def delete(self, blob_id: str) -> None:
        await asyncio.to_thread(self._blob_path(blob_id).unlink, missing_ok=True)

    async def exists(self, blob_id: str) -> bool:
        return await asyncio.to_thread(self._blob_path(blob_id).is_file)

    async def read(
        self, blob_id: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        fobj = await asyncio.to_thread(self._blob_path(blob_id).open, "rb")
        try:
            await asyncio.to_thread(fobj.seek, start)
            left = None if end is None else end - start
            while left is None or left > 0:
                size = READ_CHUNK if left is None else min(READ_CHUNK, left)
                chunk = await asyncio.to_thread(fobj.read, size)
                if not chunk:
                    break
                if left is not None:
                    left -= len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(fobj.close)

    async def sweep(self, before_s: float, keep: BlobFilter) -> int:
        def old_files() -> tuple[list[Path], list[tuple[str, Path]]]:
            uploads = [
                p
                for p in self._partial.iterdir()
                if UPLOAD_RE.fullmatch(p.name) and p.stat().st_mtime < before_s
            ]
            blobs = []
            for folder in self.root.iterdir():
                if len(folder.name) != 2 or not folder.is_dir():
                    continue
                for p in folder.iterdir():
                    blob_id = folder.name + p.name
                    if BLOB_ID_RE.fullmatch(blob_id) and p.stat().st_mtime < before_s:
                        blobs.append((blob_id, p))
            return uploads, blobs

        uploads, blobs = await asyncio.to_thread(old_files)
        gone = [*uploads]
        for blob_id, path in blobs:
            if not await keep(blob_id):
                gone.append(path)
        for path in gone:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(path.unlink)
        return len(gone)
