"""The outbox's in-memory state machine: which queued message to transmit next. No I/O.

The durable copy lives in the profile; this class mirrors it for one client
run and decides the order of transmission.

Invariants:

* Entries are transmitted in the order they were queued, on every connection:
  :meth:`OutboxQueue.reset` (called when a connection becomes ready) rewinds
  to the oldest unacknowledged entry, so everything not yet ``sent`` goes out
  again. Resending is harmless because the server deduplicates by message id.
* An entry leaves only through :meth:`OutboxQueue.acknowledge` (the server
  answered ``sent``) or :meth:`OutboxQueue.reject` (refused for good).
* At most ``window`` entries are in flight (transmitted, unacknowledged) on
  one connection, which bounds what the server must buffer for us.
"""

from __future__ import annotations

from collections import deque

from taube.client.profile import OutboxEntry


class OutboxQueue:
    def __init__(self, entries: list[OutboxEntry] | None = None, window: int = 128) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = window
        self._entries: dict[str, OutboxEntry] = {}  # insertion-ordered: the queue order
        self._to_transmit: deque[str] = deque()
        self._in_flight: set[str] = set()
        for entry in entries or []:
            self.add(entry)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._entries

    def pending(self) -> list[OutboxEntry]:
        """Every unacknowledged entry, oldest first."""
        return list(self._entries.values())

    def add(self, entry: OutboxEntry) -> None:
        """Queue an entry behind all others (a known id is ignored: idempotent)."""
        if entry.id in self._entries:
            return
        self._entries[entry.id] = entry
        self._to_transmit.append(entry.id)

    def reset(self) -> None:
        """A new connection: nothing is in flight on it; retransmit all, in order."""
        self._in_flight.clear()
        self._to_transmit = deque(self._entries)

    def next_to_transmit(self) -> OutboxEntry | None:
        """The next entry to put on the wire, or None (nothing left or window full).

        The caller must transmit it: it counts as in flight from here on.
        """
        if len(self._in_flight) >= self.window:
            return None
        while self._to_transmit:
            message_id = self._to_transmit.popleft()
            entry = self._entries.get(message_id)
            if entry is None:  # acknowledged meanwhile (e.g. from an earlier connection)
                continue
            self._in_flight.add(message_id)
            return entry
        return None

    def retry(self, message_id: str) -> None:
        """Transmit ``message_id`` again next (the server asked for a fresh version)."""
        if message_id in self._entries:
            self._in_flight.discard(message_id)
            self._to_transmit.appendleft(message_id)

    def acknowledge(self, message_id: str) -> OutboxEntry | None:
        """The server stored ``message_id``; returns the entry, or None if unknown."""
        self._in_flight.discard(message_id)
        return self._entries.pop(message_id, None)

    def reject(self, message_id: str) -> OutboxEntry | None:
        """The server refused ``message_id`` for good: drop it (same effect as an ack)."""
        return self.acknowledge(message_id)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)
