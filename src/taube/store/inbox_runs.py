"""Runs: a device's consecutive message items kept in one SQLite inbox row.

Why: under load a group commit gives each device many items (Workload A at full
speed: ~2,200 messages per transaction for 100 devices, ~22 each), and every inbox
row is a b-tree insert, the values it binds, and later a b-tree delete. The items a
device gets in one transaction are consecutive (its seqs are allocated in a row),
so the writer puts them in one row of kind ``KIND_MESSAGE_RUN``: its slot is the
slot of its *last* item and ``first_slot`` that of its first, so that every query by
slot keeps its meaning (an ack deletes the rows whose last item it covers; the
newest row's slot is still the device's newest item). An ack that ends inside a run
rewrites the run without the acked items: their ciphertext leaves with the ack, as
from a row of its own (``secure_delete`` zeroes what the rewrite frees).

Only the SQLite store has runs; each item carries what a plain row reads from its
``messages`` row (sender device, time), so a run never needs that row. A run is
encoded with MessagePack (msgspec): typed, compact, and a C encoder.

Pure functions; the store does the I/O.
"""

from __future__ import annotations

from typing import Final

import msgspec

from taube.protocol.frames import InboxItem
from taube.store.rows import KIND_MESSAGE, AckedRow, inbox_item

KIND_MESSAGE_RUN: Final = 4
"""The kind of an inbox row that holds a run (SQLite only; see the module doc)."""
MAX_RUN_ITEMS: Final = 64
"""A longer run is split: a partly acked run is rewritten, and this bounds the work."""

RunItem = tuple[str, str, str, bytes, int, int]
"""One message of a run: sender, message id, conversation, payload, sender device,
sent at (ms)."""

_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(list[RunItem])


def encode_run(items: list[RunItem]) -> bytearray:
    """The stored form of a run (a bytearray: the store binds it without an adapter)."""
    out = bytearray()
    _encoder.encode_into(items, out)
    return out


def decode_run(data: bytes) -> list[RunItem]:
    return _decoder.decode(data)


def run_messages(first_seq: int, data: bytes, after_seq: int) -> list[InboxItem]:
    """The run's items after ``after_seq``, as the frames the device receives (made as
    a plain row's are: ``rows.inbox_item``)."""
    skip = max(0, after_seq - first_seq + 1)
    return [
        inbox_item(first_seq + skip + i, KIND_MESSAGE, s, m, c, s_dev, at, payload, None)
        for i, (s, m, c, payload, s_dev, at) in enumerate(decode_run(data)[skip:])
    ]


def acked_items(first_seq: int, items: list[RunItem]) -> list[AckedRow]:
    """The rows an ack removes when it takes ``items`` (the first at ``first_seq``)."""
    return [
        (first_seq + i, KIND_MESSAGE, sender, msg_id, conversation)
        for i, (sender, msg_id, conversation, *_rest) in enumerate(items)
    ]
