"""Delivery: turn a send into durable inbox items, acks into receipts, ring doorbells.

The order of effects is the guarantee (DESIGN.md, "Delivery"): validate, commit
every recipient device's inbox item in one transaction, only then answer "sent",
then ring doorbells. A lost doorbell only delays: the device reads its inbox on
its next (re)connect. ``prepare`` and ``commit`` are split so that a gateway can
validate sends one by one in arrival order and let their commits overlap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Final

import msgspec

from taube.bus.base import Bus, inbox_subject, user_subject
from taube.core.clock import Clock
from taube.core.directory import Directory
from taube.core.membership import member_group
from taube.protocol.errors import TaubeError
from taube.protocol.frames import (
    InboxItem,
    Message,
    Read,
    Receipt,
    Send,
    SetTyping,
    Typing,
    encode_frame,
)
from taube.protocol.ids import is_message_id, parse_address
from taube.store.base import (
    AckResult,
    Delivery,
    DeviceKey,
    NewMessage,
    Pending,
    SendResult,
    Store,
)

MAX_ROUTES: Final = 100_000


def inbox_notice(item: InboxItem) -> bytes:
    """What rings a device's doorbell: the item's encoded frame, so that a connection
    that is caught up pushes it as it is, without reading the store (``notice_seq``
    reads its seq back). A notice that cannot be used that way (a gap, a full window)
    just means "read your inbox"."""
    return encode_frame(item)


_SEQ_KEY: Final = b',"seq":'


def notice_seq(notice: bytes) -> int:
    """The seq of an inbox item's frame (``inbox_notice``), or -1 if it is not one.

    Every inbox item (Message, Receipt, GroupEvent) has its seq as its first field, so
    its frame starts ``{"type":"<tag>","seq":<digits>``. Read byte by byte: compiled,
    this is native arithmetic on the frame as it is, where a notice that carried the
    seq in 8 bytes of its own had to be made by joining them to the frame and sliced
    apart again for the socket: two copies per message delivered, ~0.1 µs of the ~10
    µs a message costs in Workload A (docs/performance.md 9.23). A notice of an earlier
    version (8 bytes first) reads as -1, and the connection reads its inbox instead."""
    end = len(notice)
    if end < 20 or notice[0] != 123:  # "{"
        return -1
    i = 9  # past '{"type":"'
    while i < end and notice[i] != 34:  # the tag's closing quote
        i += 1
    if i + 8 >= end:
        return -1
    for k in range(7):
        if notice[i + 1 + k] != _SEQ_KEY[k]:
            return -1
    i += 8
    seq = 0
    start = i
    while i < end and 48 <= notice[i] <= 57:
        seq = seq * 10 + notice[i] - 48
        i += 1
    return seq if i > start else -1


class DeliveryService:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        clock: Clock,
        directory: Directory,
        *,
        max_payload_bytes: int,
        is_suspended: Callable[[str], bool] = lambda handle: False,
    ) -> None:
        self._is_suspended = is_suspended  # core/abuse.py
        self._store = store
        self._bus = bus
        self._clock = clock
        self._directory = directory
        self.max_payload_bytes = max_payload_bytes
        self._routes: dict[tuple[str, int, str], tuple[int, Sequence[Delivery]]] = {}

    # ---------------------------------------------------------------- sending

    async def prepare(
        self, sender: str, sender_device: int, frame: Send
    ) -> NewMessage | SendResult:
        """Validate a send and resolve its recipient devices; raises TaubeError.

        A retry of a message that is already stored answers as a duplicate even if it
        would no longer validate (the sender left the group, a device was added since),
        so that a client's outbox never turns a delivered message into an error.
        """
        if not is_message_id(frame.id):
            raise TaubeError("msg.invalid_id")
        known = self.prepare_known_route(sender, sender_device, frame)
        if known is not None:
            return known
        # No await inside the except block: this module is compiled, and mypyc (2.4)
        # mishandles the exception state across an await there (tests/unit/
        # test_compiled_modules.py says why and checks every compiled module).
        try:
            return await self._validate(sender, sender_device, frame)
        except TaubeError as exc:
            refused = exc
        sent_at = await self._store.sent_at(sender, frame.id)
        if sent_at is None:
            raise refused
        return SendResult(sent_at, True, [])

    def prepare_known_route(
        self, sender: str, sender_device: int, frame: Send
    ) -> NewMessage | None:
        """``prepare`` without awaiting anything, for the common send: one payload within
        the limit, to an address this device sent to before, with no change in the
        directory since (a remembered route was validated when it was made, address
        included). None: use ``prepare`` (which also says what is wrong)."""
        payload = frame.payload
        if payload is None or frame.payloads is not None or len(payload) > self.max_payload_bytes:
            return None
        # Each field of the frame read once (a frame is a Struct: every read is a lookup).
        to = frame.to
        route = self._routes.get((sender, sender_device, to))
        if route is None or route[0] != self._directory.generation:
            return None
        message_id = frame.id
        if not is_message_id(message_id):
            return None
        return NewMessage(sender, sender_device, message_id, to, self._clock(), payload, route[1])

    async def _validate(self, sender: str, sender_device: int, frame: Send) -> NewMessage:
        if (frame.payload is None) == (frame.payloads is None):
            raise TaubeError("request.invalid", "Give exactly one of payload or payloads.")
        limit = self.max_payload_bytes
        if frame.payload is not None:
            too_large = len(frame.payload) > limit
        else:
            too_large = any(len(p.payload) > limit for p in frame.payloads or ())
        if too_large:
            raise TaubeError("msg.too_large", limit=limit)
        # Read before any await: a change during the lookups must invalidate the result.
        generation = self._directory.generation
        address = parse_address(frame.to)
        if address is None:
            raise TaubeError("msg.unknown_recipient", f"Not an address: {frame.to!r}.")
        kind, name = address
        # A blocked sender's 1:1 message is stored and acknowledged as usual, but it
        # reaches only the sender's own other devices (core/blocks.py).
        withheld = ""
        if kind == "user":
            devices = await self._directory.active_devices([name, sender])
            if name not in devices:
                raise TaubeError("msg.unknown_recipient", f"No user @{name}.")
            if name != sender and self._is_suspended(name):
                raise TaubeError("account.suspended", f"@{name} is suspended.")
            conversation_of = {name: f"@{sender}", sender: f"@{name}"}
            if name != sender and sender in await self._directory.blocked_by(name):
                withheld = name
        else:
            group = await member_group(self._directory, name, sender)
            devices = await self._directory.active_devices(list(group.members))
            conversation_of = dict.fromkeys(devices, frame.to)
        targets = [
            (user, device)
            for user, ids in devices.items()
            for device in ids
            if (user, device) != (sender, sender_device)
        ]
        if frame.payloads is not None:
            given = {(p.user, p.device): p.payload for p in frame.payloads}
            if len(given) != len(frame.payloads):
                raise TaubeError("request.invalid", "A device appears twice in payloads.")
            missing = sorted(set(targets) - given.keys())
            extra = sorted(given.keys() - set(targets))
            if missing or extra:
                raise TaubeError(
                    "msg.stale_devices",
                    missing=[f"{u}.{d}" for u, d in missing],
                    extra=[f"{u}.{d}" for u, d in extra],
                    devices={u: ids for u, ids in devices.items()},
                )
            deliveries = [
                Delivery(u, d, conversation_of[u], given[(u, d)])
                for u, d in targets
                if u != withheld
            ]
        else:
            deliveries = [Delivery(u, d, conversation_of[u]) for u, d in targets if u != withheld]
            self._remember_route((sender, sender_device, frame.to), generation, deliveries)
        return NewMessage(
            sender, sender_device, frame.id, frame.to, self._clock(), frame.payload, deliveries
        )

    def _remember_route(
        self, key: tuple[str, int, str], generation: int, deliveries: Sequence[Delivery]
    ) -> None:
        """Remember who a shared-payload send from this device reaches, until the
        directory changes (any device or group change anywhere bumps its generation)."""
        self._routes[key] = (generation, deliveries)
        if len(self._routes) > MAX_ROUTES:
            self._routes.pop(next(iter(self._routes)))

    async def commit(self, message: NewMessage | SendResult) -> SendResult:
        """Durably append the message to every recipient inbox, then ring doorbells."""
        if isinstance(message, SendResult):
            return message
        result = await self._store.commit_message(message)
        self.committed(message, result)
        return result

    def submit(self, message: NewMessage) -> Pending[SendResult]:
        """Queue the commit now (so commits keep the order of submission) and return
        what resolves once it is durable; then call ``committed``."""
        return self._store.submit_message(message)

    def committed(self, message: NewMessage, result: SendResult) -> None:
        """Ring the doorbells of a committed message's recipient devices."""
        if result.appended:
            self.announce(message_items(message, result))

    async def send(self, sender: str, sender_device: int, frame: Send) -> SendResult:
        return await self.commit(await self.prepare(sender, sender_device, frame))

    def announce(self, items: Iterable[tuple[DeviceKey, InboxItem]]) -> None:
        """Ring the doorbell of every device whose inbox grew (after the commit)."""
        publish = self._bus.publish_nowait
        for (user, device), item in items:
            publish(inbox_subject(user, device), inbox_notice(item))

    # ---------------------------------------------------------------- inbox and receipts

    async def inbox(self, user: str, device: int, after_seq: int, limit: int) -> list[InboxItem]:
        return await self._store.read_inbox(user, device, after_seq, limit)

    def submit_ack(self, user: str, device: int, upto_seq: int) -> Pending[AckResult]:
        """Queue a cumulative ack (upto_seq > 0); pass its result to ``acked``."""
        return self._store.submit_ack(user, device, upto_seq, self._clock())

    def acked(self, result: AckResult) -> int:
        """Ring the doorbells of a committed ack's receipts; the effective acked seq."""
        self.announce(result.appended)
        return result.acked_seq

    async def ack(self, user: str, device: int, upto_seq: int) -> int:
        """Cumulative ack; queues delivered receipts. Returns the effective acked seq."""
        if upto_seq <= 0:
            return 0
        return self.acked(await self._store.ack(user, device, upto_seq, self._clock()))

    async def read(self, user: str, device: int, frame: Read) -> None:
        """Queue read receipts for the sender's devices and the reader's other devices."""
        if frame.sender == user:
            raise TaubeError("request.invalid", "Read receipts are for others' messages.")
        address = parse_address(frame.conversation)
        if address is None:
            raise TaubeError("request.invalid", "conversation is not an address.")
        kind, name = address
        if kind == "group":
            await member_group(self._directory, name, user)
            seen_by_sender = frame.conversation
        elif name != frame.sender:
            raise TaubeError("request.invalid", "In a 1:1 chat the sender is the peer.")
        else:
            seen_by_sender = f"@{user}"
        if any(not is_message_id(i) for i in frame.ids):
            raise TaubeError("msg.invalid_id")
        devices = await self._directory.active_devices([frame.sender, user])
        if frame.sender not in devices:
            raise TaubeError("user.not_found")
        now = self._clock()

        to_sender = Receipt(
            seq=0,
            status="read",
            conversation=seen_by_sender,
            by=user,
            by_device=device,
            ids=list(frame.ids),
            at_ms=now,
        )
        to_self = msgspec.structs.replace(
            to_sender, conversation=frame.conversation, sender=frame.sender
        )
        items: list[tuple[DeviceKey, Receipt]] = []
        # A user who blocked the sender reads in silence (1:1 only, core/blocks.py).
        if kind == "group" or frame.sender not in await self._directory.blocked_by(user):
            items += [((frame.sender, d), to_sender) for d in devices[frame.sender]]
        items += [((user, d), to_self) for d in devices.get(user, []) if d != device]
        self.announce(await self._store.append_items(items))

    # ---------------------------------------------------------------- typing

    async def typing(self, user: str, frame: SetTyping) -> None:
        address = parse_address(frame.conversation)
        if address is None:
            raise TaubeError("request.invalid", "conversation is not an address.")
        kind, name = address
        if kind == "group":
            group = await member_group(self._directory, name, user)
            recipients = [m for m in group.members if m != user]
            conversation = frame.conversation
        else:
            if name not in await self._directory.active_devices([name]):
                raise TaubeError("user.not_found")
            recipients = [name] if name != user else []
            if user in await self._directory.blocked_by(name):
                recipients = []  # blocked: typing goes nowhere, silently
            conversation = f"@{user}"
        data = encode_frame(Typing(conversation=conversation, user=user, active=frame.active))
        for recipient in recipients:
            await self._bus.publish(user_subject(recipient), data)


def message_items(message: NewMessage, result: SendResult) -> list[tuple[DeviceKey, InboxItem]]:
    """The inbox items a committed message became, one per device, with their seq."""
    deliveries = message.deliveries
    # Most messages go to one device: no lookup table for those (~2 % of the loop's time).
    by_device = None if len(deliveries) == 1 else {d.key: d for d in deliveries}
    items: list[tuple[DeviceKey, InboxItem]] = []
    for key, seq in result.appended:
        delivery = deliveries[0] if by_device is None else by_device[key]
        payload = delivery.payload if delivery.payload is not None else message.payload
        item = Message(
            seq=seq,
            id=message.id,
            conversation=delivery.conversation,
            sender=message.sender,
            sender_device=message.sender_device,
            sent_at_ms=message.sent_at_ms,
            payload=payload or b"",
        )
        items.append((key, item))
    return items
