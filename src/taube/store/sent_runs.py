"""Sent runs: the record that makes resending a message safe, one row per sender and
SQLite group commit instead of one per message.

Why: a message's idempotency key is (sender, id), kept for the retention period so
that a device that resends what it was not told was stored gets "duplicate", not a
second delivery. Kept as a ``messages`` row per message, that record was ~12 % of the
server's CPU under full load (docs/performance.md, section 9.20). Ids from one device
grow (UUIDv7, RFC 9562 method 3: the SDK's and the web client's), so the writer
remembers each sender's newest recorded id: an id above it was never sent and needs
no lookup, and the sender's ids of one commit go in one row, keyed (sender, last id),
with their sent times. The runs of a sender cover disjoint ranges of ids, so the one
run that may hold an id is the first whose last id is at or above it.

An id at or below the sender's newest (a second device of the user sending at the
same time, a retry of a send that was refused, a resend) is looked up in the runs
and in ``messages``, and recorded there if new. Pure functions; the store does the
I/O.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(list[str | int])


def encode_sent(flat: list[Any]) -> bytearray:
    """The stored form of a run given as ``[id, sent_at_ms, id, sent_at_ms, ...]``,
    ids in ascending order (a bytearray: the store binds it without an adapter)."""
    out = bytearray()
    _encoder.encode_into(flat, out)
    return out


def sent_at_in(data: bytes, message_id: str) -> int | None:
    """When ``message_id`` was sent, if the run ``data`` holds it."""
    flat = _decoder.decode(data)
    for i in range(0, len(flat) - 1, 2):
        if flat[i] == message_id:
            at = flat[i + 1]
            return at if isinstance(at, int) else None
    return None
