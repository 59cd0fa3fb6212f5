"""How the CLI shows events: one human line, or one JSON object per line. Pure functions.

JSON lines are a contract for scripts: keys are only added, never renamed.
Times are ISO 8601 UTC strings (``sent_at``/``at``) next to the raw
milliseconds (``*_ms``).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from typing import Any, TextIO

import msgspec
import segno

from taube.client import GroupChange, Message, Receipt, Unsupported
from taube.client.history import ChatSummary, HistoryItem

_json = msgspec.json.Encoder()


def iso_utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="milliseconds")


def local_time(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def message_line(msg: Message, me: str) -> str:
    """One line: ``[time] @alice in #group: text``, ``[time] @alice: text``,
    or ``[time] @me to @bob: text`` for our own message sent from another device.
    Messages that were not end-to-end encrypted say so."""
    text = msg.text
    if not msg.decrypted:
        text = f"(message could not be decrypted; asked @{msg.sender} to send it again)"
    elif text is None:
        kind = msg.content.type if isinstance(msg.content, Unsupported) else "?"
        text = f"(unsupported content {kind!r}: update taube to see it)"
    if not msg.encrypted:
        text = f"[not encrypted] {text}"
    where = ""
    if msg.conversation.startswith("#"):
        where = f" in {msg.conversation}"
    elif msg.sender == me and msg.conversation != f"@{me}":
        where = f" to {msg.conversation}"
    return f"[{local_time(msg.sent_at_ms)}] @{msg.sender}{where}: {text}"


def security_code_changed(user: str) -> str:
    return (
        f"@{user}'s security code changed (a new device or a reinstall)."
        f" Compare it: taube safety-number @{user}"
    )


def receipt_line(receipt: Receipt) -> str:
    n = len(receipt.ids)
    plural = "message" if n == 1 else "messages"
    return (
        f"[{local_time(receipt.at_ms)}] @{receipt.by} {receipt.status} {n} {plural}"
        f" in {receipt.conversation}"
    )


def group_line(change: GroupChange) -> str:
    members = " ".join(f"@{m}" for m in change.members)
    detail = f" {members}" if members else ""
    return (
        f"[{local_time(change.at_ms)}] #{change.group} ({change.name}): "
        f"@{change.actor} {change.event}{detail}"
    )


def message_json(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "message",
        "id": msg.id,
        "seq": msg.seq,
        "conversation": msg.conversation,
        "from": msg.sender,
        "from_device": msg.sender_device,
        "text": msg.text,
        "sent_at": iso_utc(msg.sent_at_ms),
        "sent_at_ms": msg.sent_at_ms,
        "encrypted": msg.encrypted,
    }
    if isinstance(msg.content, Unsupported):
        out["content_type"] = msg.content.type
        out["unsupported"] = msg.content.reason
    return out


def receipt_json(receipt: Receipt) -> dict[str, Any]:
    return {
        "type": "receipt",
        "seq": receipt.seq,
        "status": receipt.status,
        "conversation": receipt.conversation,
        "by": receipt.by,
        "by_device": receipt.by_device,
        "ids": list(receipt.ids),
        "at": iso_utc(receipt.at_ms),
        "at_ms": receipt.at_ms,
        **({"sender": receipt.sender} if receipt.sender else {}),
    }


def group_json(change: GroupChange) -> dict[str, Any]:
    return {
        "type": "group",
        "seq": change.seq,
        "group": change.group,
        "address": change.address,
        "event": change.event,
        "actor": change.actor,
        "members": list(change.members),
        "name": change.name,
        "at": iso_utc(change.at_ms),
        "at_ms": change.at_ms,
    }


def json_line(obj: dict[str, Any]) -> str:
    return _json.encode(obj).decode()


def qr_text(payload: bytes) -> str:
    """A QR code of ``payload`` drawn with block characters, for a terminal."""
    buffer = io.StringIO()
    segno.make(payload, error="m", micro=False).terminal(out=buffer, compact=True, border=2)
    return buffer.getvalue().rstrip("\n")


ProgressFn = Callable[[int, int], None]

TICKS = {"sent": "✓", "delivered": "✓✓", "read": "✓✓ (read)"}


def size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"


def progress_printer(label: str, stream: TextIO) -> ProgressFn:
    """A one-line progress bar, redrawn in place (a new line at 100 %)."""

    def show(done: int, total: int) -> None:
        share = done / total if total else 1.0
        bar = "#" * int(share * 30)
        stream.write(f"\r{label} [{bar:<30}] {share:4.0%} {size(done)} / {size(total)}")
        if done >= total:
            stream.write("\n")
        stream.flush()

    return show


def chat_line(chat: ChatSummary) -> str:
    unread = f" ({chat.unread} unread)" if chat.unread else ""
    timer = " ⏱" if chat.disappearing_s else ""
    last = (chat.last_text or "").replace("\n", " ")
    if len(last) > 60:
        last = last[:57] + "..."
    who = f"@{chat.last_sender}: " if chat.last_sender else ""
    return f"{chat.conversation}{unread}{timer}  [{local_time(chat.last_at_ms)}] {who}{last}"


def chat_json(chat: ChatSummary) -> dict[str, Any]:
    return {
        "conversation": chat.conversation,
        "unread": chat.unread,
        "last_text": chat.last_text,
        "last_sender": chat.last_sender,
        "last_at_ms": chat.last_at_ms,
        "disappearing_s": chat.disappearing_s,
    }


def item_line(item: HistoryItem) -> str:
    """``[time] @alice: text  (edited) 👍 alice  ✓✓  id``, with quotes, polls and files."""
    text = "(message deleted)" if item.deleted else item.text or ""
    parts = [f"[{local_time(item.sent_at_ms)}] @{item.sender}: {text}"]
    if item.reply_to is not None:
        parts.insert(0, f"  ↳ reply to @{item.reply_to.sender} {item.reply_to.id}\n")
    if item.edited_at_ms is not None and not item.deleted:
        parts.append("(edited)")
    if item.poll is not None:
        for option, count in zip(item.poll.options, item.poll.counts, strict=True):
            parts.append(f"\n    {count:3d}  {option}")
    if item.attachment is not None and not item.deleted:
        parts.append(f"[file {item.attachment.name}, {size(item.attachment.size)}]")
    for emoji, users in item.reactions.items():
        parts.append(f"{emoji} {' '.join('@' + u for u in users)}")
    if item.status is not None:
        parts.append(TICKS.get(item.status, item.status))
    if item.expires_at_ms is not None:
        parts.append("⏱")
    return " ".join(parts).replace(" \n", "\n") + f"  {item.id}"


def item_json(item: HistoryItem) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": item.id,
        "from": item.sender,
        "from_device": item.sender_device,
        "sent_at_ms": item.sent_at_ms,
        "kind": item.kind,
        "text": None if item.deleted else item.text,
        "deleted": item.deleted,
        "edited_at_ms": item.edited_at_ms,
        "reactions": {emoji: list(users) for emoji, users in item.reactions.items()},
        "status": item.status,
        "expires_at_ms": item.expires_at_ms,
    }
    if item.reply_to is not None:
        out["reply_to"] = {"from": item.reply_to.sender, "id": item.reply_to.id}
    if item.poll is not None:
        out["poll"] = {
            "question": item.poll.question,
            "options": list(item.poll.options),
            "counts": list(item.poll.counts),
            "multiple": item.poll.multiple,
        }
    if item.attachment is not None and not item.deleted:
        out["file"] = {
            "name": item.attachment.name,
            "size": item.attachment.size,
            "mime": item.attachment.mime,
            "caption": item.attachment.caption,
        }
    return out
