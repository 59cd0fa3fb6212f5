"""Attachments: encrypt on this device, upload in resumable chunks, download and verify.

A file is encrypted with a fresh random key (:func:`taube.crypto.encrypt_attachment`,
docs/e2ee.md "Attachments") and only the ciphertext goes to the server's blob
store, whose id is the ciphertext's SHA-256. The key and digest travel inside the
(end-to-end encrypted) message as an :class:`~taube.client.content.Attachment`; the
server can hand the blob to the people the sender granted, and cannot open it.

Upload: ``POST /v1/blobs`` announces size and digest (an oversized file is refused
here, before any byte is sent), then ``PATCH`` chunks at the offset the server
reports, so an interrupted upload continues where it stopped (docs/protocol.md).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Sequence
from typing import Final

from taube.client.api import Api
from taube.client.content import Attachment, MessageRef
from taube.client.errors import TaubeApiError
from taube.crypto import decrypt_attachment, encrypt_attachment

CHUNK_BYTES: Final = 4 * 1024 * 1024
"""Bytes per PATCH (the server accepts up to 8 MiB by default)."""
MAX_OFFSET_RETRIES: Final = 5

Progress = Callable[[int, int], None]
"""Called with (bytes uploaded or downloaded, total) as a transfer advances."""


async def upload(
    api: Api,
    data: bytes,
    *,
    to: str,
    name: str,
    mime: str | None = None,
    caption: str = "",
    reply_to: MessageRef | None = None,
    expire_s: int | None = None,
    progress: Progress | None = None,
    also_grant: Sequence[str] = (),
) -> Attachment:
    """Encrypt ``data``, upload it, let ``to`` (``@user`` or ``#group``) and the
    addresses in ``also_grant`` (our own account, when it has other devices) read it,
    and return the content to send in a message."""
    sealed = encrypt_attachment(data)
    blob, size = sealed.digest.hex(), len(sealed.ciphertext)
    status = await api.create_blob(size, blob)
    offset, retries = status.offset, 0
    while not status.complete:
        chunk = sealed.ciphertext[offset : offset + CHUNK_BYTES]
        try:
            status = await api.upload_blob_chunk(blob, offset, chunk)
        except TaubeApiError as exc:
            # Another attempt of ours got further (or less far): continue from there.
            if exc.code != "blob.offset_mismatch" or retries >= MAX_OFFSET_RETRIES:
                raise
            retries += 1
            offset = int(exc.details.get("offset", 0))
            continue
        offset = status.offset
        if progress is not None:
            progress(offset, size)
    for reader in (to, *also_grant):
        await api.grant_blob(blob, reader)
    return Attachment(
        blob=blob,
        key=sealed.key,
        digest=sealed.digest,
        size=len(data),
        name=name,
        mime=mime or mimetypes.guess_type(name)[0] or "application/octet-stream",
        caption=caption,
        reply_to=reply_to,
        expire_s=expire_s,
    )


async def download(api: Api, attachment: Attachment) -> bytes:
    """Fetch the blob, check its digest and every chunk's tag, and decrypt it.

    Raises :class:`taube.crypto.CryptoError` when the server's bytes are not what the
    sender uploaded (corrupted or replaced): nothing unverified is returned.
    """
    ciphertext = await api.download_blob(attachment.blob)
    return decrypt_attachment(ciphertext, attachment.key, attachment.digest)
