"""Attachment blobs: resumable, content-addressed uploads and per-user read grants.

A blob is ciphertext made by a client; the server never sees its key. Its id is the
lower-case hex SHA-256 of its bytes. The life of a blob:

1. ``create``: the uploader announces id and size (refused above ``max_bytes``
   before any byte is sent). A blob already complete is not uploaded again: the
   caller becomes one of its uploaders (deduplication). Otherwise the caller gets its
   own upload (two users uploading the same bytes never share a file), or the offset
   where it stands (resume).
2. ``append``: one chunk at the offset the Store holds (compare-and-set), streamed to
   the storage, durable before the offset moves. The chunk that reaches the size
   makes the storage hash, fsync and rename the file; only then is the blob marked
   complete in the Store. Bytes that do not hash to the id are discarded.
3. ``grant``: an uploader lets a user, or the members of a group it is in, read it.
4. ``readable`` / ``fetched``: uploaders and granted users may download; each granted
   user's first full download is recorded, and when every granted user has one the
   blob is deleted (metadata first, then the file).
5. ``sweep`` (hourly, app.py): blobs older than ``retention_ms`` and uploads older
   than ``upload_retention_ms`` are deleted whatever their grants, and files the Store
   does not know (a crash between the two deletions) with them.

Anyone else is told ``blob.not_found``, whether or not the blob exists.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field

from taube.blobs.base import BlobStorage, upload_name
from taube.core.clock import Clock
from taube.core.directory import Directory
from taube.core.membership import member_group
from taube.protocol.errors import TaubeError
from taube.protocol.ids import parse_address
from taube.store.base import BlobRecord, Store

log = logging.getLogger("taube.blobs")
PURGE_CHUNK = 1000
NOT_FOUND = "blob.not_found"


@dataclass(slots=True)
class _Lock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


async def _limited(chunks: AsyncIterable[bytes], max_chunk: int, room: int) -> AsyncIterator[bytes]:
    """Pass ``chunks`` on, raising once they exceed the chunk limit or the room left."""
    seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > max_chunk:
            raise TaubeError("blob.chunk_too_large", limit=max_chunk)
        if seen > room:
            raise TaubeError("blob.too_large", "The chunk goes past the declared size.")
        yield chunk


class BlobService:
    def __init__(
        self,
        store: Store,
        storage: BlobStorage,
        directory: Directory,
        clock: Clock,
        *,
        max_bytes: int,
        max_chunk_bytes: int,
        retention_ms: int,
        upload_retention_ms: int,
    ) -> None:
        self._store = store
        self.storage = storage
        self._directory = directory
        self._clock = clock
        self.max_bytes = max_bytes
        self.max_chunk_bytes = max_chunk_bytes
        self.retention_ms = retention_ms
        self.upload_retention_ms = upload_retention_ms
        self._locks: dict[tuple[str, str], _Lock] = {}

    # ---------------------------------------------------------------- uploading

    async def create(self, user: str, blob_id: str, size: int) -> tuple[BlobRecord, bool]:
        """Announce an upload; (where it stands, whether this call started a new upload:
        False when the blob is complete already or the caller's upload is resumed)."""
        if size > self.max_bytes:
            raise TaubeError("blob.too_large", limit=self.max_bytes)
        before = await self._store.blob_status(blob_id, user)
        record = await self._store.start_blob_upload(blob_id, user, size, self._clock())
        return record, before is None and not record.complete

    async def status(self, user: str, blob_id: str) -> BlobRecord:
        record = await self._store.blob_status(blob_id, user)
        if record is None:
            raise TaubeError(NOT_FOUND)
        return record

    async def append(
        self,
        user: str,
        blob_id: str,
        offset: int,
        length: int | None,
        chunks: AsyncIterable[bytes],
    ) -> BlobRecord:
        """Write one chunk at ``offset`` (``length``: its declared length, if known)."""
        if length is not None and length > self.max_chunk_bytes:
            raise TaubeError("blob.chunk_too_large", limit=self.max_chunk_bytes)
        key = (blob_id, user)
        entry = self._locks.setdefault(key, _Lock())
        entry.users += 1
        try:
            # One chunk at a time per upload on this node; across nodes the Store's
            # compare-and-set decides, and the digest check catches the rest.
            async with entry.lock:
                return await self._append(user, blob_id, offset, length, chunks)
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[key]

    async def _append(
        self,
        user: str,
        blob_id: str,
        offset: int,
        length: int | None,
        chunks: AsyncIterable[bytes],
    ) -> BlobRecord:
        record = await self.status(user, blob_id)
        if not record.complete and await self._store.blob_exists(blob_id):
            # Someone else completed the same bytes meanwhile: no need to go on.
            record = await self._store.start_blob_upload(blob_id, user, record.size, self._clock())
            await self._store.discard_blob_upload(blob_id, user)
            await self.storage.discard(upload_name(blob_id, user))
        if record.complete:
            if offset != record.size:
                raise TaubeError("blob.offset_mismatch", offset=record.size)
            return record
        if offset != record.received:
            raise TaubeError("blob.offset_mismatch", offset=record.received)
        room = record.size - offset
        if length is not None and length > room:
            raise TaubeError("blob.too_large", "The chunk goes past the declared size.")
        name = upload_name(blob_id, user)
        written = await self.storage.write(
            name, offset, _limited(chunks, self.max_chunk_bytes, room)
        )
        received = offset + written
        if written and not await self._store.advance_blob_upload(blob_id, user, offset, received):
            current = await self.status(user, blob_id)
            raise TaubeError("blob.offset_mismatch", offset=current.received)
        if received < record.size:
            return BlobRecord(blob_id, record.size, received, False, record.created_ms, True)
        if not await self.storage.finish(name, blob_id):
            await self._store.discard_blob_upload(blob_id, user)
            raise TaubeError("blob.digest_mismatch")
        await self._store.complete_blob(blob_id, user, record.size, self._clock())
        return await self.status(user, blob_id)

    # ---------------------------------------------------------------- reading

    async def grant(self, user: str, blob_id: str, to: str) -> None:
        """Let ``to`` (``@handle``, or ``#group`` the caller is in) read the blob."""
        record = await self._store.blob_status(blob_id, user)
        if record is None or not record.complete or not record.uploader:
            raise TaubeError(NOT_FOUND)
        address = parse_address(to)
        if address is None:
            raise TaubeError("request.invalid", f"Not an address: {to!r}.")
        kind, name = address
        if kind == "user":
            if name not in await self._directory.active_devices([name]):
                raise TaubeError("user.not_found")
            readers = [name]
        else:
            group = await member_group(self._directory, name, user)
            readers = [m for m in group.members if m != user]
        if readers:
            await self._store.grant_blob(blob_id, readers)

    async def readable(self, user: str, blob_id: str) -> BlobRecord:
        """The complete blob if ``user`` may download it; else blob.not_found."""
        record = await self._store.blob_status(blob_id, user)
        if record is None or not record.complete:
            raise TaubeError(NOT_FOUND)
        return record

    async def fetched(self, user: str, blob_id: str) -> None:
        """``user`` downloaded the whole blob: record it; the last granted user's
        download deletes the blob."""
        if await self._store.record_blob_fetch(blob_id, user, self._clock()):
            await self.storage.delete(blob_id)
            log.info("blob fetched by every granted user: deleted", extra={"blob": blob_id})

    # ---------------------------------------------------------------- retention

    async def sweep(self, now_ms: int | None = None) -> tuple[int, int]:
        """Delete expired blobs and stale uploads; (blobs, uploads) deleted."""
        now = self._clock() if now_ms is None else now_ms
        blobs = uploads = 0
        while ids := await self._store.purge_blobs(now - self.retention_ms, PURGE_CHUNK):
            for blob_id in ids:
                await self.storage.delete(blob_id)
            blobs += len(ids)
        while keys := await self._store.purge_blob_uploads(
            now - self.upload_retention_ms, PURGE_CHUNK
        ):
            for blob_id, user in keys:
                await self.storage.discard(upload_name(blob_id, user))
            uploads += len(keys)
        # Files older than any live upload that the Store does not know.
        await self.storage.sweep((now - self.upload_retention_ms) / 1000, self._store.blob_exists)
        return blobs, uploads
