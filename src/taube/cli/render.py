"""How the CLI shows events: one human line, or one JSON object per line. Pure functions.

JSON lines are a contract for scripts: keys are only added, never renamed.
Times are ISO 8601 UTC strings (``sent_at``/``at``) next to the raw
milliseconds (``*_ms``).
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import msgspec
import segno

from taube.client import GroupChange, Message, Receipt, Unsupported

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
