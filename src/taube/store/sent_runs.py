"""Sent runs: the record that makes resending a message safe, one row per sender and
large SQLite group commit instead of one per message.

Why: a message's idempotency key is (sender, id), kept for the retention period so
that a device that resends what it was not told was stored gets "duplicate", not a
second delivery. Kept as a ``messages`` row per message, that record was ~12 % of the
server's CPU under full load (docs/performance.md, section 9.20).

How: ids from one device grow (UUIDv7 with a counter: the SDK's and the web
client's). The writer knows each sender's newest id in ``sent_runs`` and the newest
id in ``messages`` (of any sender: the rightmost entry of its key (id, sender)),
both read back exactly after a restart. In a commit of many messages, an id above
both was never recorded: it needs no lookup, and the sender's ids of the commit go
in one row, keyed (sender, last id), with their sent times. The runs of a sender
cover disjoint ranges of ids, so the one run that may hold an id is the first whose
last id is at or above it. Every other id (a second device of the user sending at
the same time, a retried refusal, a resend, any id of a small commit) is recorded in
``messages`` as before, after a lookup in the runs if it is not above the sender's
newest there. Small commits keep ``messages`` rows because there a run would hold
one id, and a run row per sender is an index entry on a page of its own, where
``messages`` rows append at one edge (section 9.20: Workload B's p99).

Pure functions; the store does the I/O.
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
