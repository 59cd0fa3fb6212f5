"""The ``BlobStorage`` interface: the bytes of attachment blobs, and nothing else.

Blobs are ciphertext made by clients, addressed by the lower-case hex SHA-256 of their
bytes. Who may read a blob, how far an upload got and when it expires is metadata
kept in the Store; the storage only keeps bytes, under two kinds of names:

- an *upload* (``"<blob id>.<user>"``): a partial file that grows by ``write`` and
  becomes the blob by ``finish``, or goes by ``discard``;
- a *blob* (its id): complete, verified, immutable until ``delete``.

Invariants every implementation keeps:

- ``write`` is durable when it returns (the bytes survive a crash), and first drops
  whatever the upload held past ``offset`` (a crash may have left bytes there that
  the Store never counted).
- ``finish`` makes a blob only from bytes that hash to its id, and the blob is durable
  before it returns True; bytes that do not hash to it are deleted (False). Finishing
  again after a crash (the upload already moved) returns True.
- Two uploads of the same bytes finish into the same blob, whichever comes first.

An S3-compatible implementation maps onto multipart upload (docs/operations.md).
"""

from __future__ import annotations

import abc
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from pathlib import Path

BLOB_ID_RE = re.compile(r"^[0-9a-f]{64}$")
UPLOAD_RE = re.compile(r"^[0-9a-f]{64}\.[a-z0-9_][a-z0-9_.-]{1,31}$")

BlobFilter = Callable[[str], Awaitable[bool]]
"""Asked by ``sweep`` whether a blob is still wanted."""


def upload_name(blob_id: str, user: str) -> str:
    """The storage name of ``user``'s upload of ``blob_id``."""
    return f"{blob_id}.{user}"


class BlobStorage(abc.ABC):
    """Where blob bytes live. All methods are coroutines safe to call concurrently for
    different names; the caller serialises writes to one upload."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Create what is needed (folders, a bucket check)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release resources."""

    @abc.abstractmethod
    async def write(self, upload: str, offset: int, chunks: AsyncIterable[bytes]) -> int:
        """Store ``chunks`` into ``upload`` from ``offset`` on (dropping anything after
        ``offset`` first; making the upload if new); durable on return. Returns how many
        bytes were written. If ``chunks`` raises, the exception propagates and the upload
        holds an unknown amount past ``offset`` (the next write drops it)."""

    @abc.abstractmethod
    async def finish(self, upload: str, blob_id: str) -> bool:
        """Make the upload the blob if its bytes hash to ``blob_id`` (durably, then True);
        otherwise delete the upload and return False."""

    @abc.abstractmethod
    async def discard(self, upload: str) -> None:
        """Delete an upload (no error if it is gone)."""

    @abc.abstractmethod
    async def delete(self, blob_id: str) -> None:
        """Delete a blob (no error if it is gone)."""

    @abc.abstractmethod
    async def exists(self, blob_id: str) -> bool: ...

    def local_path(self, blob_id: str) -> Path | None:
        """A file the server may send with sendfile, if the storage is a local disk."""
        return None

    @abc.abstractmethod
    def read(self, blob_id: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The blob's bytes from ``start`` up to (not including) ``end``."""

    @abc.abstractmethod
    async def sweep(self, before_s: float, keep: BlobFilter) -> int:
        """Delete uploads last written before ``before_s`` (Unix seconds), and blobs
        written before it for which ``keep`` says False (files the Store forgot, say
        after a crash between deleting the metadata and the file). Returns how many."""
