"""Identifiers and addresses on the wire.

Message ids are UUIDv7 chosen by the sending device (time-ordered, so the store's
indexes stay append-mostly). Users are addressed as ``@handle``, groups as
``#group-id``. Handles are the account's permanent, lower-case name.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from typing import Final

HANDLE_RE = re.compile(r"^[a-z0-9_][a-z0-9_.-]{1,31}$")
GROUP_ID_RE = re.compile(r"^[0-9a-hjkmnp-tv-z]{26}$")  # Crockford base32, lower case
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def uuid7(now_ms: int | None = None) -> str:
    """A UUIDv7 string (RFC 9562): 48 bits of Unix milliseconds, then randomness.

    Ids made by one process only grow (RFC 9562, section 6.2, method 3): within one
    millisecond, or if the clock steps back, the 12 bits after the time count up
    from the previous id. Receivers order a sender's reactions, votes and edits by
    id, so two made in the same millisecond must not come out in random order.
    Written by hand because the standard library only gains ``uuid.uuid7`` in 3.14.
    """
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")
    with _lock:
        last_ms, last_seq = _last
        if ms > last_ms:
            seq = (rand >> 68) & 0x7FF  # a random start below the middle leaves room to count
        elif last_seq < 0xFFF:
            ms, seq = last_ms, last_seq + 1
        else:  # 4,096 ids in one millisecond: borrow the next one
            ms, seq = last_ms + 1, 0
        _last[:] = [ms, seq]
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version
    value |= seq << 64  # rand_a, 12 bits: the counter
    value |= 0b10 << 62  # variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b, 62 bits
    return str(uuid.UUID(int=value))


_lock = threading.Lock()
_last: list[int] = [0, 0]


_SHAPE: Final = bytes(
    ord("0") if c in b"0123456789abcdef" else c if c == ord("-") else ord("x") for c in range(256)
)
"""Every lower-case hex digit to 0, a dash to itself, anything else to x."""
_CANONICAL_SHAPE: Final = b"00000000-0000-0000-0000-000000000000"


def is_message_id(text: str) -> bool:
    """True for a canonical, lower-case UUID string (any version).

    By a translation table rather than a regular expression: it runs for every message
    sent, and re.fullmatch was ~3 % of the server's instructions in Workload A. This
    takes ~0.3x the regex's time compiled (this module is, docs/performance.md 9.16)
    and ~0.8x interpreted. A canonical id is exactly the one whose every hex digit maps
    to 0 and every dash to a dash.
    """
    return (
        len(text) == 36 and text.isascii() and text.encode().translate(_SHAPE) == _CANONICAL_SHAPE
    )


def new_group_id() -> str:
    """26 characters of Crockford base32 (130 random bits): short enough to type."""
    n = int.from_bytes(os.urandom(17), "big")
    return "".join(_CROCKFORD[(n >> (5 * i)) & 31] for i in range(26))


def normalize_handle(text: str) -> str:
    """Lower-case a handle and strip a leading ``@``; does not validate."""
    return text.strip().removeprefix("@").lower()


def is_handle(text: str) -> bool:
    return HANDLE_RE.fullmatch(text) is not None


def user_address(handle: str) -> str:
    return f"@{handle}"


def group_address(group_id: str) -> str:
    return f"#{group_id}"


def parse_address(text: str) -> tuple[str, str] | None:
    """Split ``@handle`` or ``#group`` into ("user"|"group", name), or None if malformed."""
    if text.startswith("@") and is_handle(text[1:]):
        return ("user", text[1:])
    if text.startswith("#") and GROUP_ID_RE.fullmatch(text[1:]):
        return ("group", text[1:])
    return None
