"""Property: any interleaving of sends, disconnects, reconnects, acks and server
restarts delivers every acknowledged message to every recipient device exactly once,
in send order.

Runs the real delivery core over the real SQLite store in-process (no sockets), with
devices that behave like the SDK: they remember the newest seq they hold, drop
re-sent items at or below it, and resume from it after reconnecting.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from taube.bus.local import LocalBus
from taube.core.delivery import DeliveryService
from taube.core.directory import Directory
from taube.protocol.frames import Message, Send
from taube.protocol.ids import uuid7
from taube.store.base import UserRecord
from taube.store.sqlite import SqliteStore

USERS = ("alice", "bob", "carol")
DEVICES = [(u, d) for u in USERS for d in (1, 2)]


@dataclass
class Device:
    last_seq: int = 0  # persisted by the client along with what it received
    cursor: int = 0  # server-side push position while connected
    connected: bool = False
    received: list[tuple[str, str]] = field(default_factory=list)  # (sender, id)


class DeliveryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = Path(tempfile.mkdtemp(prefix="taube-prop-"))
        self.clock_ms = 1_000
        self.expected: dict[tuple[str, int], list[tuple[str, str]]] = {k: [] for k in DEVICES}
        self.devices = {k: Device() for k in DEVICES}
        self.run(self._open())
        for handle in USERS:
            self.run(self.store.create_user(UserRecord(handle, "x", 0)))
            for d in (1, 2):
                self.run(self.store.create_device(handle, "d", f"{handle}{d}".encode(), 0))

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    async def _open(self) -> None:
        self.store = SqliteStore(self.folder / "taube.db", synchronous="OFF")
        await self.store.open()
        bus = LocalBus()
        self.delivery = DeliveryService(
            self.store,
            bus,
            lambda: self.clock_ms,
            Directory(self.store, bus),
            max_payload_bytes=1024,
        )

    @rule(
        sender=st.sampled_from(DEVICES),
        to=st.sampled_from(USERS),
        count=st.integers(1, 4),
        resend=st.booleans(),
    )
    def send(self, sender: tuple[str, int], to: str, count: int, resend: bool) -> None:
        user, device = sender
        for _ in range(count):
            frame = Send(id=uuid7(), to=f"@{to}", payload=b"p")
            result = self.run(self.delivery.send(user, device, frame))
            if resend:  # the SDK's outbox resends after a lost "sent": must not double
                assert self.run(self.delivery.send(user, device, frame)).duplicate
            assert not result.duplicate
            for key in DEVICES:
                if key != sender and key[0] in (to, user):
                    self.expected[key].append((user, frame.id))

    @rule(key=st.sampled_from(DEVICES))
    def connect(self, key: tuple[str, int]) -> None:
        dev = self.devices[key]
        if not dev.connected:
            dev.cursor = self.run(self.delivery.ack(*key, dev.last_seq))
            dev.connected = True

    @rule(key=st.sampled_from(DEVICES))
    def disconnect(self, key: tuple[str, int]) -> None:
        self.devices[key].connected = False

    @rule(key=st.sampled_from(DEVICES), limit=st.integers(1, 10))
    def push(self, key: tuple[str, int], limit: int) -> None:
        dev = self.devices[key]
        if not dev.connected:
            return
        for item in self.run(self.delivery.inbox(*key, dev.cursor, limit)):
            dev.cursor = item.seq
            if item.seq <= dev.last_seq:
                continue
            if isinstance(item, Message):
                dev.received.append((item.sender, item.id))
            dev.last_seq = item.seq

    @rule(key=st.sampled_from(DEVICES))
    def ack(self, key: tuple[str, int]) -> None:
        dev = self.devices[key]
        if dev.connected:
            self.run(self.delivery.ack(*key, dev.last_seq))

    @rule()
    def restart_server(self) -> None:
        self.run(self.store.close())
        self.run(self._open())
        for dev in self.devices.values():
            dev.connected = False

    @invariant()
    def nothing_extra_and_in_order(self) -> None:
        for key, dev in self.devices.items():
            assert dev.received == self.expected[key][: len(dev.received)], key

    def teardown(self) -> None:
        try:
            for key, dev in self.devices.items():
                dev.connected = False
                self.connect(key)
                while True:
                    before = dev.cursor
                    self.push(key, 1000)
                    if dev.cursor == before:
                        break
                # Every acknowledged send arrived, once, in order.
                assert dev.received == self.expected[key], key
            self.run(self.store.close())
        finally:
            self.loop.close()
            shutil.rmtree(self.folder, ignore_errors=True)


DeliveryMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestDelivery = DeliveryMachine.TestCase
