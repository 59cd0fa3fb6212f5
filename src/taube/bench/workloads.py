"""The traffic shapes, driven inside one worker's event loop.

* :class:`Pair` - one-way traffic from a sender to a receiver device. With a
  window (``max_in_flight`` 50, top up at 25) it is Workload A: whenever 25 or
  fewer messages are in flight (sent, not yet seen by the receiver), the sender
  writes ``50 - in_flight`` messages in one write. A window of 1 with a top-up
  at 0 is Workload A1. Without a window (``send_one``) the rate driver feeds it
  (Workload B).
* :class:`GroupFanout` - one sender to a group; every member's arrivals count.
* :func:`drive_rate` - a 1 ms ticker that sends what is due at a fixed
  aggregate rate, round-robin over its senders, each message its own write.
* :func:`watch_lag` - how late the event loop wakes up: a busy load generator
  shows here before it shows in the figures.

Per message, only the arrival path runs Python code of ours: a tag check, two
id slices to integers, a clock read and a few counters. The id slices are
those of :mod:`taube.bench.wire`, inlined. Times are microseconds of
:func:`taube.bench.wire.now_us`.
"""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Callable, Sequence

from taube.bench.conn import Device, Tally
from taube.bench.wire import SendStream, now_us
from taube.protocol.frames import Message


class Pair:
    """Sender -> receiver, one account each; sends stop when ``sending`` is cleared."""

    __slots__ = (
        "_last_counter",
        "in_flight",
        "max_in_flight",
        "receiver",
        "sender",
        "sending",
        "stream",
        "tally",
        "top_up_at",
    )

    def __init__(
        self,
        sender: Device,
        receiver: Device,
        payload: bytes,
        tally: Tally,
        max_in_flight: int = 50,
        top_up_at: int = 25,
    ) -> None:
        self.sender, self.receiver, self.tally = sender, receiver, tally
        self.stream = SendStream(f"@{receiver.handle}", payload, tally.tag)
        self.max_in_flight, self.top_up_at = max_in_flight, top_up_at
        self.in_flight = 0
        self.sending = False
        self._last_counter = 0
        receiver.on_message = self.arrived
        sender.on_refused = self.refused

    def start(self) -> None:
        """Begin windowed sending (Workloads A and A1)."""
        self.sending = True
        self.top_up()

    def top_up(self) -> None:
        n = self.max_in_flight - self.in_flight
        if n <= 0:
            return
        now = now_us()
        self.sender.write(self.stream.frames(n, now))
        self.in_flight += n
        tally = self.tally
        tally.sent += n
        if tally.window_start_us <= now < tally.window_end_us:
            tally.sent_window += n

    def send_one(self, now: int) -> None:
        """One message in its own write (Workload B)."""
        self.sender.write(self.stream.frames(1, now))
        self.in_flight += 1
        tally = self.tally
        tally.sent += 1
        if tally.window_start_us <= now < tally.window_end_us:
            tally.sent_window += 1

    def refused(self, message_id: str) -> None:
        """The server refused a send (counted as an error): it will not arrive."""
        self.in_flight -= 1
        if self.sending and self.in_flight <= self.top_up_at:
            self.top_up()

    def arrived(self, frame: Message) -> None:
        message_id = frame.id
        tally = self.tally
        if message_id[9:23] != tally.tag:
            tally.stale += 1  # left over from an earlier run with these accounts
            return
        now = now_us()
        counter = int(message_id[:8], 16)
        if counter <= self._last_counter:
            tally.duplicates += 1
            return
        if counter != self._last_counter + 1:
            tally.reordered += 1
        self._last_counter = counter
        tally.delivered += 1
        start, end = tally.window_start_us, tally.window_end_us
        if start <= now < end:
            tally.delivered_window += 1
        sent = int(message_id[24:], 16)
        if start <= sent < end:
            tally.latency_us.append(now - sent)
        self.in_flight -= 1
        if self.sending and self.in_flight <= self.top_up_at:
            self.top_up()


class GroupFanout:
    """One sender (in one worker) to a group whose members are spread over workers.

    Each worker keeps, per message sent inside the window, how many of its
    members got it and the latest arrival; the runner merges these into the
    "last member received" time of every message.
    """

    def __init__(
        self,
        sender: Device | None,
        address: str,
        members: Sequence[Device],
        payload: bytes,
        tally: Tally,
    ) -> None:
        self.sender = sender
        self.tally = tally
        self.stream = SendStream(address, payload, tally.tag)
        self.per_message: dict[str, list[int]] = {}  # id -> [arrivals, latest latency µs]
        for member in members:
            member.on_message = self._member([0])

    def send_one(self, now: int) -> None:
        assert self.sender is not None
        self.sender.write(self.stream.frames(1, now))
        tally = self.tally
        tally.sent += 1
        if tally.window_start_us <= now < tally.window_end_us:
            tally.sent_window += 1

    def _member(self, last: list[int]) -> Callable[[Message], None]:
        tally, per_message = self.tally, self.per_message

        def arrived(frame: Message) -> None:
            message_id = frame.id
            if message_id[9:23] != tally.tag:
                tally.stale += 1
                return
            now = now_us()
            counter = int(message_id[:8], 16)
            if counter <= last[0]:
                tally.duplicates += 1
                return
            if counter != last[0] + 1:
                tally.reordered += 1
            last[0] = counter
            tally.delivered += 1
            if tally.in_window(now):
                tally.delivered_window += 1
            sent = int(message_id[24:], 16)
            if tally.in_window(sent):
                latency = now - sent
                tally.latency_us.append(latency)
                seen = per_message.get(message_id)
                if seen is None:
                    per_message[message_id] = [1, latency]
                else:
                    seen[0] += 1
                    seen[1] = max(seen[1], latency)

        return arrived


async def drive_rate(
    senders: Sequence[Callable[[int], None]], rate: float, start_us: int, stop_us: int
) -> int:
    """Send at ``rate`` messages/s from ``start_us`` to ``stop_us``; returns how many were sent.

    Every millisecond the messages due by now are sent, round-robin over
    ``senders``; a late tick sends the backlog at once (the latency of those
    messages then shows the load generator's lateness, and the runner reports
    the achieved rate).
    """
    per_us = rate / 1e6
    sent = 0
    turn = 0
    count = len(senders)
    await asyncio.sleep(max(0.0, (start_us - now_us()) / 1e6))
    while True:
        now = now_us()
        if now >= stop_us:
            return sent
        due = int((now - start_us) * per_us) - sent
        for _ in range(due):
            senders[turn](now)
            turn = turn + 1 if turn + 1 < count else 0
        sent += max(due, 0)
        await asyncio.sleep(0.001)


async def watch_lag(
    tally: Tally, lag_us: array[int], stop_us: int, interval: float = 0.005
) -> None:
    """Record how late the loop wakes from ``interval``-long sleeps inside the window."""
    interval_us = int(interval * 1e6)
    while True:
        before = now_us()
        if before >= stop_us:
            return
        await asyncio.sleep(interval)
        after = now_us()
        if tally.in_window(after):
            lag_us.append(max(0, after - before - interval_us))
