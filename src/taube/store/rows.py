"""What every store writes and reads the same way: inbox item kinds, the encoding of
receipts and group events, and the delivered receipts an ack makes. Pure functions,
shared by the SQLite and PostgreSQL stores so that they cannot drift apart."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Final

import msgspec

from taube.protocol.frames import GroupEvent, InboxItem, Message, Receipt
from taube.store.base import Delivery, NewMessage

KIND_MESSAGE: Final = 1
KIND_RECEIPT: Final = 2
KIND_GROUP: Final = 3
MAX_RECEIPT_IDS: Final = 1000
INLINE_PAYLOAD_MAX_DEVICES: Final = 8
"""A shared payload for at most this many devices is copied into each inbox row, so
that it leaves the server with the last ack; only a group's larger fan-out keeps one
copy in ``messages`` (until message retention)."""

_encoder: Final = msgspec.json.Encoder()
_extra_decoder: msgspec.json.Decoder[Receipt | GroupEvent] = msgspec.json.Decoder(
    Receipt | GroupEvent
)


def _inline(message: NewMessage) -> bool:
    return len(message.deliveries) <= INLINE_PAYLOAD_MAX_DEVICES


def shared_payload(message: NewMessage) -> bytes | None:
    """What the ``messages`` row keeps of the payload (None when inbox rows carry it)."""
    return None if _inline(message) else message.payload


def delivery_payload(message: NewMessage, delivery: Delivery) -> bytes | None:
    """What one inbox row carries (None: read the shared copy in ``messages``)."""
    if delivery.payload is not None:
        return delivery.payload
    return message.payload if _inline(message) else None


def extra_kind(item: Receipt | GroupEvent) -> int:
    return KIND_RECEIPT if isinstance(item, Receipt) else KIND_GROUP


def encode_extra(item: Receipt | GroupEvent) -> bytes:
    """The stored form of a receipt or group event (its seq lives in its own column)."""
    return _encoder.encode(item)


def inbox_item(
    seq: int,
    kind: int,
    sender: str | None,
    msg_id: str | None,
    conversation: str | None,
    sender_device: int | None,
    sent_at_ms: int | None,
    payload: bytes | None,
    data: bytes | None,
) -> InboxItem:
    """An inbox row as the frame the device receives."""
    if kind == KIND_MESSAGE:
        return Message(
            seq=seq,
            id=msg_id or "",
            conversation=conversation or "",
            sender=sender or "",
            sender_device=sender_device or 0,
            sent_at_ms=sent_at_ms or 0,
            payload=bytes(payload or b""),
        )
    return msgspec.structs.replace(_extra_decoder.decode(data or b""), seq=seq)


AckedRow = tuple[int, int, str | None, str | None, str | None]
"""An inbox row an ack removed: (seq, kind, sender, msg_id, conversation)."""


def delivered_receipts(
    acked: Iterable[AckedRow],
    user: str,
    device: int,
    now_ms: int,
    blocked: Collection[str] = (),
) -> list[tuple[str, Receipt]]:
    """(sender, receipt) for the messages among acked rows (seq, kind, sender, msg_id,
    conversation): one receipt per sender and conversation as the sender sees it, at
    most MAX_RECEIPT_IDS ids each; none for the user's own messages, and none for 1:1
    messages from senders in ``blocked`` (the users ``user`` has blocked)."""
    # Per (sender, conversation as the sender sees it): seqs and ids, in parallel lists.
    # Acked rows come in runs from one sender (a chat), so the group of the previous row
    # is tried first; they come in seq order from the writer's record (unacked.py), so
    # they are sorted only when they are not (a RETURNING clause gives no order).
    by_sender: dict[tuple[str, str], tuple[list[int], list[str]]] = {}
    one_to_one = f"@{user}"  # how a 1:1 sender sees the conversation (once, not per row)
    last_sender = last_seen = ""
    seqs: list[int] = []
    ids: list[str] = []
    for seq, kind, sender, msg_id, conversation in acked:
        if kind != KIND_MESSAGE or sender is None or sender == user or msg_id is None:
            continue
        if conversation and conversation.startswith("#"):
            seen_as = conversation
        elif sender in blocked:
            continue
        else:
            seen_as = one_to_one
        if sender != last_sender or seen_as != last_seen:
            group = by_sender.get((sender, seen_as))
            if group is None:
                group = by_sender[(sender, seen_as)] = ([], [])
            seqs, ids = group
            last_sender, last_seen = sender, seen_as
        seqs.append(seq)
        ids.append(msg_id)
    receipts: list[tuple[str, Receipt]] = []
    for (sender, seen_as), (seqs, ids) in by_sender.items():
        if any(seqs[i] > seqs[i + 1] for i in range(len(seqs) - 1)):
            ids = [msg_id for _, msg_id in sorted(zip(seqs, ids, strict=True))]
        for start in range(0, len(ids), MAX_RECEIPT_IDS):
            receipt = Receipt(
                seq=0,
                status="delivered",
                conversation=seen_as,
                by=user,
                by_device=device,
                ids=ids[start : start + MAX_RECEIPT_IDS],
                at_ms=now_ms,
            )
            receipts.append((sender, receipt))
    return receipts
