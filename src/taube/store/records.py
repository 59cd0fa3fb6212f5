"""The records made for every message: a send's deliveries, the message, its commit's
result, an ack's result. Re-exported by ``store.base``, where the stores' contract is.

Plain classes rather than msgspec Structs (which they were) because this module is
compiled with mypyc (docs/performance.md, 9.16): compiled code reads an attribute of a
compiled class as a field of a C struct, where every read of a Struct's field went
through Python's generic attribute lookup (~160 instructions). A message's fields are
read a dozen times between its send and its delivery: that was ~5 % of the server's
instructions in Workload A. Interpreted (no C compiler at install), building one costs
~0.4 us against the Struct's 0.1 us, a few per message.

The fields are ``Final``: a record is never changed after it is made (mypy checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from taube.protocol.frames import InboxItem

DeviceKey = tuple[str, int]
Appended = list[tuple[DeviceKey, InboxItem]]


class Delivery:
    """One message copy for one device. ``payload`` None means the message's shared payload."""

    __slots__ = ("conversation", "device", "key", "payload", "user")

    def __init__(
        self, user: str, device: int, conversation: str, payload: bytes | None = None
    ) -> None:
        self.user: Final = user
        self.device: Final = device
        self.conversation: Final = conversation
        self.payload: Final = payload
        # (user, device), made once: a route's deliveries serve every message sent on
        # it. Any, not DeviceKey: compiled, a tuple[str, int] attribute is kept unboxed
        # and read back as a new tuple each time.
        self.key: Final[Any] = (user, device)

    def __repr__(self) -> str:
        return f"Delivery({self.user!r}, {self.device}, {self.conversation!r})"


class NewMessage:
    __slots__ = (
        "deliveries",
        "id",
        "payload",
        "sender",
        "sender_device",
        "sent_at_ms",
        "target",
    )

    def __init__(
        self,
        sender: str,
        sender_device: int,
        id: str,
        target: str,
        sent_at_ms: int,
        payload: bytes | None,
        deliveries: Sequence[Delivery],
    ) -> None:
        self.sender: Final = sender
        self.sender_device: Final = sender_device
        self.id: Final = id
        self.target: Final = target
        self.sent_at_ms: Final = sent_at_ms
        self.payload: Final = payload
        self.deliveries: Final = deliveries

    def __repr__(self) -> str:
        return f"NewMessage({self.sender!r}, {self.id!r} -> {self.target!r})"


class SendResult:
    __slots__ = ("appended", "duplicate", "sent_at_ms")

    def __init__(
        self, sent_at_ms: int, duplicate: bool, appended: list[tuple[DeviceKey, int]]
    ) -> None:
        self.sent_at_ms: Final = sent_at_ms
        self.duplicate: Final = duplicate
        self.appended: Final = appended
        """(device, seq) of every inbox item appended, in delivery order."""

    def __repr__(self) -> str:
        return f"SendResult({self.sent_at_ms}, duplicate={self.duplicate}, {self.appended!r})"


class AckResult:
    __slots__ = ("acked_seq", "appended")

    def __init__(self, acked_seq: int, appended: Appended) -> None:
        self.acked_seq: Final = acked_seq
        self.appended: Final = appended
        """The delivered receipts this ack queued."""

    def __repr__(self) -> str:
        return f"AckResult({self.acked_seq}, {self.appended!r})"
