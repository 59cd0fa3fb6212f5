"""Inbox sequence tracking for one device: dedupe, taken and acked marks. No I/O.

Three marks, always ``acked <= taken <= seen``:

* ``seen`` - the highest ``seq`` received in this client run. An item with
  ``seq <= seen`` is a replay of one already queued for the application (the
  server replays everything after ``acked`` on reconnect) and is dropped.
* ``taken`` - the highest ``seq`` the application has taken (it asked for the
  next event after it, or acked explicitly).
* ``acked`` - the highest ``seq`` persisted in the profile and told to the
  server. On restart ``seen = taken = acked = profile.last_seq``, so the app
  gets every item after what it took, once.

If the application's queue overflows, later items are refused *without*
advancing ``seen`` and :attr:`InboxCursor.resync_needed` is set: once the queue
drains, the client reconnects and the server replays from ``acked``; the items
already queued are then dropped as replays. Nothing is lost, nothing doubled.
"""

from __future__ import annotations


class InboxCursor:
    def __init__(self, acked: int = 0) -> None:
        if acked < 0:
            raise ValueError("seq is never negative")
        self.seen = acked
        self.taken = acked
        self.acked = acked
        self.resync_needed = False

    def receive(self, seq: int, *, room: bool = True) -> bool:
        """An inbox item arrived; True if it is new and must go to the application.

        ``room`` is False when the application's queue is full: the item is
        refused and, with everything after it on this connection, fetched
        again after a reconnect.
        """
        if seq <= self.seen:
            return False
        if self.resync_needed or not room:
            self.resync_needed = True
            return False
        self.seen = seq
        return True

    def connection_ready(self) -> None:
        """A new connection replays from ``acked``; refusals before it are healed."""
        self.resync_needed = False

    def take(self, seq: int) -> None:
        """The application has taken the item ``seq`` (and every one before it)."""
        self.taken = max(self.taken, min(seq, self.seen))

    def ack_due(self) -> int | None:
        """The seq to persist and ack now, or None if nothing new was taken."""
        return self.taken if self.taken > self.acked else None

    def acked_up_to(self, seq: int) -> None:
        self.acked = max(self.acked, seq)
