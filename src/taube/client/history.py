"""The local message database: what each chat shows, built from the messages recorded in it.

:class:`History` applies messages one at a time (:meth:`History.record`), ours
and others', and answers the questions a chat screen asks (:meth:`History.history`,
:meth:`History.chats`). It is pure SQLite over the profile's connection: no
network, no clock except where a ``now_ms`` argument defaults to it.

Tables (``hist_*``, created by the profile with :data:`SCHEMA`):

* ``hist_messages``: one row per shown message (text, poll, attachment, a system
  line such as "turned on disappearing messages", or content this client cannot
  show), keyed by (sender, id). A deleted message stays as a tombstone without
  its content.
* ``hist_reactions`` / ``hist_votes``: the current reaction / vote per (target,
  user), kept even when the target is not (yet) known.
* ``hist_chats``: per conversation, the disappearing-messages timer.

Rules (DESIGN principle: every device that records the same messages, in any
order, shows the same chat wherever the outcome can be made order-free):

* Recording is idempotent on (sender, id). The one exception: a row for a
  message that could not be decrypted (``Unsupported`` of type
  ``"undecryptable"``) is replaced when the sender's resend (same id) arrives.
* Reactions, votes, edits and the chat timer are last-writer-wins by message
  id (UUIDv7: time-ordered, and growing within each sending device), so their
  outcome depends neither on arrival order nor on which clock a device records
  (our own messages carry our clock's time, others' the server's). A
  removed reaction (``""``) or retracted vote (``[]``) is kept as such, so an
  older one arriving late cannot come back.
* Reactions, votes, edits and deletes only act on a message in the same
  conversation; otherwise anyone could reach into another chat.
* An edit is honoured from the author of a text message, at most
  :data:`EDIT_WINDOW_MS` after it was sent. A delete is honoured from the author
  within the delete window, or at any time from an admin of a ``#group``.
  Edits and deletes of messages not (yet) known are ignored.
* Votes are validated when tallied: an out-of-range index makes the whole vote
  count as none; a single-choice poll counts only the first index.
* Expiry: a message's own ``expire_s`` wins, else the chat's timer at the time
  it is recorded. Expired rows are hidden at once and removed by
  :meth:`History.purge_expired`. System lines do not expire.
* Unread: incoming shown messages (not system lines) until :meth:`History.mark_read`.
* Status of our own messages only moves forward (sent < delivered < read). In a
  group it is the best status any member reached.

The class is synchronous: the client runs it on the profile thread. Every
method that writes runs in one transaction, joining the caller's if one is open.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple

import msgspec

from taube.client.content import (
    AnyContent,
    Attachment,
    Content,
    Delete,
    Disappearing,
    Edit,
    KnownContent,
    MessageRef,
    Poll,
    Reaction,
    Text,
    Unsupported,
    Vote,
    content_text,
    decode_content,
    encode_content,
)
from taube.client.sqlite_tx import transaction

EDIT_WINDOW_MS: Final = 15 * 60 * 1000
"""How long after sending its author may edit a text message."""

DELETE_WINDOW_MS: Final = 2 * 24 * 3600 * 1000
"""How long after sending its author may delete a message for everyone."""

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS hist_messages (
    seq           INTEGER PRIMARY KEY,
    conversation  TEXT NOT NULL,
    sender        TEXT NOT NULL,
    id            TEXT NOT NULL,
    sender_device INTEGER NOT NULL,
    sent_at_ms    INTEGER NOT NULL,
    mine          INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    content       BLOB,
    text          TEXT,
    edited_at_ms  INTEGER,
    edit_id       TEXT,
    deleted       INTEGER NOT NULL DEFAULT 0,
    status        INTEGER,
    read          INTEGER NOT NULL DEFAULT 0,
    expires_at_ms INTEGER,
    UNIQUE (sender, id)
);
CREATE INDEX IF NOT EXISTS hist_messages_by_time ON hist_messages (conversation, sent_at_ms);
CREATE INDEX IF NOT EXISTS hist_messages_by_id ON hist_messages (id);
CREATE INDEX IF NOT EXISTS hist_messages_by_expiry ON hist_messages (expires_at_ms)
    WHERE expires_at_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS hist_reactions (
    target_sender TEXT NOT NULL,
    target_id     TEXT NOT NULL,
    reactor       TEXT NOT NULL,
    conversation  TEXT NOT NULL,
    emoji         TEXT NOT NULL,
    sent_at_ms    INTEGER NOT NULL,
    id            TEXT NOT NULL,
    PRIMARY KEY (target_sender, target_id, reactor)
);
CREATE TABLE IF NOT EXISTS hist_votes (
    poll_sender  TEXT NOT NULL,
    poll_id      TEXT NOT NULL,
    voter        TEXT NOT NULL,
    conversation TEXT NOT NULL,
    options      TEXT NOT NULL,
    sent_at_ms   INTEGER NOT NULL,
    id           TEXT NOT NULL,
    PRIMARY KEY (poll_sender, poll_id, voter)
);
CREATE TABLE IF NOT EXISTS hist_chats (
    conversation   TEXT PRIMARY KEY,
    disappearing_s INTEGER NOT NULL,
    set_at_ms      INTEGER NOT NULL,
    set_id         TEXT NOT NULL
);
"""

TABLES: Final = ("hist_messages", "hist_reactions", "hist_votes", "hist_chats")

Kind = Literal["text", "poll", "attachment", "system", "unsupported"]
Status = Literal["sent", "delivered", "read"]
_STATUSES: Final[tuple[Status, ...]] = ("sent", "delivered", "read")


@dataclass(frozen=True, slots=True)
class Recorded:
    """What :meth:`History.record` did.

    ``shown``: a new row appeared in the chat (a message or a system line).
    ``ignored``: why the message changed nothing (``"duplicate"``, ``"not the
    author"``, ``"edit window passed"``, ``"superseded"``, ...), None if it took
    effect.
    """

    shown: bool
    ignored: str | None = None


@dataclass(frozen=True, slots=True)
class PollTally:
    """A poll and its current votes; ``voters[i]`` (sorted) chose option ``i``."""

    question: str
    options: tuple[str, ...]
    multiple: bool
    counts: tuple[int, ...]
    voters: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One row of a chat as it should be shown now.

    ``text`` is the (edited) text of a text message, else the one-line
    :func:`~taube.client.content.content_text` (poll, attachment, system line),
    None for a tombstone or unsupported content. ``reactions`` maps each emoji
    to the users who chose it, both in the order they reacted. ``status`` is set
    for our own messages only.
    """

    id: str
    sender: str
    sender_device: int
    sent_at_ms: int
    kind: Kind
    text: str | None
    reply_to: MessageRef | None
    edited_at_ms: int | None
    deleted: bool
    reactions: dict[str, tuple[str, ...]]
    attachment: Attachment | None
    poll: PollTally | None
    status: Status | None
    expires_at_ms: int | None
    conversation: str = ""


@dataclass(frozen=True, slots=True)
class ChatSummary:
    """A line of the chat list: the last shown message and the unread count."""

    conversation: str
    last_text: str | None
    last_sender: str
    last_at_ms: int
    unread: int
    disappearing_s: int


class _Row(NamedTuple):
    seq: int
    conversation: str
    sender: str
    id: str
    sender_device: int
    sent_at_ms: int
    mine: int
    kind: str
    content: bytes | None
    text: str | None
    edited_at_ms: int | None
    deleted: int
    status: int | None
    read: int
    expires_at_ms: int | None


_COLS: Final = (
    "seq, conversation, sender, id, sender_device, sent_at_ms, mine, kind, content, text,"
    " edited_at_ms, deleted, status, read, expires_at_ms"
)
_LIVE: Final = "(expires_at_ms IS NULL OR expires_at_ms > ?)"
_unsupported_decoder: Final = msgspec.json.Decoder(Unsupported)


class History:
    """The ``hist_*`` tables of one profile connection (``isolation_level=None``)."""

    def __init__(self, conn: sqlite3.Connection, *, delete_window_ms: int = DELETE_WINDOW_MS):
        self._conn = conn
        self._delete_window_ms = delete_window_ms

    def wipe(self) -> None:
        """Forget every chat (another account logs in on this profile)."""
        for table in TABLES:
            self._conn.execute(f"DELETE FROM {table}")

    def transaction(self) -> AbstractContextManager[None]:
        """BEGIN IMMEDIATE ... COMMIT; nested use joins the outer transaction."""
        return transaction(self._conn)

    # ------------------------------------------------------------ recording

    def record(
        self,
        *,
        conversation: str,
        sender: str,
        sender_device: int,
        id: str,
        sent_at_ms: int,
        content: AnyContent | Content,
        me: str,
        group_admins: Collection[str] = (),
    ) -> Recorded:
        """Apply one message, incoming or our own (``sender == me``), per the module rules.

        ``group_admins`` are the admins of ``conversation`` when it is a group
        (they may delete anyone's message there). A :class:`Content` of a type
        this module does not know is recorded as what a receiver would decode.
        """
        if not isinstance(content, KnownContent | Unsupported):
            content = decode_content(encode_content(content))
        with self.transaction():
            read = 0
            existing = self._row(sender, id)
            if existing is not None:
                if not _is_undecryptable_row(existing) or _is_undecryptable(content):
                    return Recorded(False, "duplicate")
                # The resend of a message we could not decrypt: it takes the
                # placeholder's place (and keeps whether it was read, and when it was
                # sent: its timer and edit window count from then, not from the resend).
                read = existing.read
                sent_at_ms = existing.sent_at_ms
                self._conn.execute("DELETE FROM hist_messages WHERE seq = ?", (existing.seq,))
            mine = sender == me
            match content:
                case Text() | Poll() | Attachment() | Unsupported():
                    self._insert(
                        conversation, sender, sender_device, id, sent_at_ms, mine, content, read
                    )
                    return Recorded(True)
                case Disappearing(seconds=seconds):
                    self._set_timer(conversation, seconds, sent_at_ms, id)
                    self._insert(
                        conversation, sender, sender_device, id, sent_at_ms, mine, content, read
                    )
                    return Recorded(True)
                case Reaction(target=target, emoji=emoji):
                    return self._react(conversation, sender, id, sent_at_ms, target, emoji)
                case Vote(poll=poll, options=options):
                    return self._vote(conversation, sender, id, sent_at_ms, poll, options)
                case Edit(target=target, text=text):
                    return self._edit(conversation, sender, id, sent_at_ms, target, text)
                case Delete(target=target):
                    return self._delete(conversation, sender, sent_at_ms, target, group_admins)
        raise AssertionError(f"unhandled content {type(content).__name__}")  # pragma: no cover

    def _insert(
        self,
        conversation: str,
        sender: str,
        sender_device: int,
        id: str,
        sent_at_ms: int,
        mine: bool,
        content: Text | Poll | Attachment | Unsupported | Disappearing,
        read: int,
    ) -> None:
        expires_at_ms: int | None = None
        text: str | None = None
        match content:
            case Text(text=text, expire_s=expire_s):
                kind: Kind = "text"
            case Poll(expire_s=expire_s):
                kind = "poll"
            case Attachment(expire_s=expire_s):
                kind = "attachment"
            case Unsupported():
                kind, expire_s = "unsupported", None
            case Disappearing():
                kind, expire_s = "system", None
        if kind != "system":
            seconds = expire_s if expire_s is not None else self.disappearing(conversation)
            expires_at_ms = sent_at_ms + seconds * 1000 if seconds else None
        self._conn.execute(
            "INSERT INTO hist_messages (conversation, sender, id, sender_device, sent_at_ms,"
            " mine, kind, content, text, status, read, expires_at_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                conversation,
                sender,
                id,
                sender_device,
                sent_at_ms,
                int(mine),
                kind,
                _encode(content),
                text,
                0 if mine else None,
                1 if mine else read,
                expires_at_ms,
            ),
        )

    def _set_timer(self, conversation: str, seconds: int, sent_at_ms: int, id: str) -> None:
        self._conn.execute(
            "INSERT INTO hist_chats VALUES (?, ?, ?, ?) ON CONFLICT (conversation) DO UPDATE"
            " SET disappearing_s = excluded.disappearing_s, set_at_ms = excluded.set_at_ms,"
            " set_id = excluded.set_id"
            " WHERE excluded.set_id > set_id",
            (conversation, seconds, sent_at_ms, id),
        )

    def _target_problem(self, conversation: str, target: _Row | None) -> str | None:
        """Why a known target cannot be acted on from ``conversation`` (None: it can)."""
        if target is None:
            return None
        if target.conversation != conversation:
            return "target in another conversation"
        if target.deleted:
            return "target deleted"
        return None

    def _react(
        self,
        conversation: str,
        sender: str,
        id: str,
        sent_at_ms: int,
        target: MessageRef,
        emoji: str,
    ) -> Recorded:
        problem = self._target_problem(conversation, self._row(target.sender, target.id))
        if problem is not None:
            return Recorded(False, problem)
        cur = self._conn.execute(
            "INSERT INTO hist_reactions VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (target_sender, target_id, reactor) DO UPDATE"
            " SET conversation = excluded.conversation, emoji = excluded.emoji,"
            " sent_at_ms = excluded.sent_at_ms, id = excluded.id"
            " WHERE excluded.id > id",
            (target.sender, target.id, sender, conversation, emoji, sent_at_ms, id),
        )
        return Recorded(False, None if cur.rowcount else "superseded")

    def _vote(
        self,
        conversation: str,
        sender: str,
        id: str,
        sent_at_ms: int,
        poll: MessageRef,
        options: Sequence[int],
    ) -> Recorded:
        target = self._row(poll.sender, poll.id)
        problem = self._target_problem(conversation, target)
        if problem is None and target is not None and target.kind != "poll":
            problem = "target is not a poll"
        if problem is not None:
            return Recorded(False, problem)
        cur = self._conn.execute(
            "INSERT INTO hist_votes VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (poll_sender, poll_id, voter) DO UPDATE"
            " SET conversation = excluded.conversation, options = excluded.options,"
            " sent_at_ms = excluded.sent_at_ms, id = excluded.id"
            " WHERE excluded.id > id",
            (poll.sender, poll.id, sender, conversation, json.dumps(list(options)), sent_at_ms, id),
        )
        return Recorded(False, None if cur.rowcount else "superseded")

    def _edit(
        self,
        conversation: str,
        sender: str,
        id: str,
        sent_at_ms: int,
        target: MessageRef,
        text: str,
    ) -> Recorded:
        if target.sender != sender:
            return Recorded(False, "not the author")
        row = self._row(target.sender, target.id)
        if row is None:
            return Recorded(False, "unknown target")
        problem = self._target_problem(conversation, row)
        if problem is not None:
            return Recorded(False, problem)
        if row.kind != "text":
            return Recorded(False, "target is not text")
        if sent_at_ms - row.sent_at_ms > EDIT_WINDOW_MS:
            return Recorded(False, "edit window passed")
        cur = self._conn.execute(
            "UPDATE hist_messages SET text = ?, edited_at_ms = ?, edit_id = ? WHERE seq = ?"
            " AND (edit_id IS NULL OR ? > edit_id)",
            (text, sent_at_ms, id, row.seq, id),
        )
        return Recorded(False, None if cur.rowcount else "superseded")

    def _delete(
        self,
        conversation: str,
        sender: str,
        sent_at_ms: int,
        target: MessageRef,
        group_admins: Collection[str],
    ) -> Recorded:
        row = self._row(target.sender, target.id)
        if row is None:
            return Recorded(False, "unknown target")
        if row.conversation != conversation:
            return Recorded(False, "target in another conversation")
        if row.deleted:
            return Recorded(False, "already deleted")
        if row.kind == "system":
            return Recorded(False, "cannot delete a system message")
        admin = conversation.startswith("#") and sender in group_admins
        if not admin:
            if sender != row.sender:
                return Recorded(False, "not the author")
            if sent_at_ms - row.sent_at_ms > self._delete_window_ms:
                return Recorded(False, "delete window passed")
        self._conn.execute(
            "UPDATE hist_messages SET deleted = 1, content = NULL, text = NULL,"
            " edited_at_ms = NULL, edit_id = NULL WHERE seq = ?",
            (row.seq,),
        )
        self._conn.execute(
            "DELETE FROM hist_reactions WHERE target_sender = ? AND target_id = ?",
            (row.sender, row.id),
        )
        self._conn.execute(
            "DELETE FROM hist_votes WHERE poll_sender = ? AND poll_id = ?", (row.sender, row.id)
        )
        return Recorded(False)

    # ------------------------------------------------------------ receipts

    def set_status(
        self, sender: str, ids: Sequence[str], status: Literal["delivered", "read"], by: str
    ) -> None:
        """``by`` received or read ``sender``'s messages ``ids``.

        For our own messages the status only moves forward; in a group it is the
        best status any member reached. A ``read`` for someone else's messages can
        only come from another of our devices: it marks them read here too.
        """
        rank = _STATUSES.index(status)
        with self.transaction():
            for message_id in ids:
                self._conn.execute(
                    "UPDATE hist_messages SET status = MAX(status, ?)"
                    " WHERE sender = ? AND id = ? AND mine = 1 AND sender != ?",
                    (rank, sender, message_id, by),
                )
                if status == "read":
                    self._conn.execute(
                        "UPDATE hist_messages SET read = 1"
                        " WHERE sender = ? AND id = ? AND mine = 0 AND sender != ?",
                        (sender, message_id, by),
                    )

    def mark_read(self, conversation: str) -> list[tuple[str, list[str]]]:
        """Mark everything in ``conversation`` read; return, per sender, the ids newly read.

        The client sends read receipts for them. Calling it again returns ``[]``.
        """
        with self.transaction():
            rows = self._conn.execute(
                "SELECT sender, id FROM hist_messages WHERE conversation = ? AND read = 0"
                " ORDER BY sender, sent_at_ms, id",
                (conversation,),
            ).fetchall()
            self._conn.execute(
                "UPDATE hist_messages SET read = 1 WHERE conversation = ? AND read = 0",
                (conversation,),
            )
        out: list[tuple[str, list[str]]] = []
        for sender, message_id in rows:
            if not out or out[-1][0] != sender:
                out.append((str(sender), []))
            out[-1][1].append(str(message_id))
        return out

    # ------------------------------------------------------------ reading

    def history(
        self,
        conversation: str,
        limit: int = 50,
        before_ms: int | None = None,
        now_ms: int | None = None,
    ) -> list[HistoryItem]:
        """The last ``limit`` shown messages sent before ``before_ms``, oldest first.

        Expired messages are left out even before :meth:`purge_expired` removes them.
        """
        now = _now_ms() if now_ms is None else now_ms
        query = f"SELECT {_COLS} FROM hist_messages WHERE conversation = ? AND {_LIVE}"
        args: list[Any] = [conversation, now]
        if before_ms is not None:
            query += " AND sent_at_ms < ?"
            args.append(before_ms)
        query += " ORDER BY sent_at_ms DESC, sender DESC, id DESC LIMIT ?"
        args.append(limit)
        rows = [_Row(*r) for r in self._conn.execute(query, args).fetchall()]
        return [self._item(row) for row in reversed(rows)]

    def get(self, sender: str, message_id: str, now_ms: int | None = None) -> HistoryItem | None:
        """One message as :meth:`history` would show it, or None (unknown or expired)."""
        row = self._row(sender, message_id)
        now = _now_ms() if now_ms is None else now_ms
        if row is None or (row.expires_at_ms is not None and row.expires_at_ms <= now):
            return None
        return self._item(row)

    def find(self, message_id: str) -> list[tuple[str, str]]:
        """(conversation, sender) of the messages with this id (ids are unique per sender)."""
        rows = self._conn.execute(
            "SELECT conversation, sender FROM hist_messages WHERE id = ? ORDER BY sender",
            (message_id,),
        ).fetchall()
        return [(str(c), str(s)) for c, s in rows]

    def poll_tally(self, sender: str, poll_id: str) -> PollTally | None:
        """The current tally of a poll, or None if it is unknown, deleted or not a poll."""
        row = self._row(sender, poll_id)
        if row is None:
            return None
        content = _decode(row)
        return self._tally(row, content) if isinstance(content, Poll) else None

    def chats(self, now_ms: int | None = None) -> list[ChatSummary]:
        """Conversations with at least one shown message, most recent first."""
        now = _now_ms() if now_ms is None else now_ms
        rows = self._conn.execute(
            f"""
            WITH live AS (
                SELECT {_COLS}, ROW_NUMBER() OVER (
                    PARTITION BY conversation ORDER BY sent_at_ms DESC, sender DESC, id DESC
                ) AS rn
                FROM hist_messages WHERE {_LIVE}
            )
            SELECT {_COLS},
                (SELECT COUNT(*) FROM hist_messages AS u
                 WHERE u.conversation = live.conversation AND u.read = 0
                   AND u.kind != 'system'
                   AND (u.expires_at_ms IS NULL OR u.expires_at_ms > ?)),
                COALESCE((SELECT disappearing_s FROM hist_chats AS c
                          WHERE c.conversation = live.conversation), 0)
            FROM live WHERE rn = 1 ORDER BY sent_at_ms DESC, conversation
            """,
            (now, now),
        ).fetchall()
        out = []
        for r in rows:
            row = _Row(*r[:-2])
            out.append(
                ChatSummary(
                    conversation=row.conversation,
                    last_text=_shown_text(row, _decode(row)),
                    last_sender=row.sender,
                    last_at_ms=row.sent_at_ms,
                    unread=int(r[-2]),
                    disappearing_s=int(r[-1]),
                )
            )
        return out

    def disappearing(self, conversation: str) -> int:
        """The chat's disappearing-messages timer in seconds (0: off)."""
        row = self._conn.execute(
            "SELECT disappearing_s FROM hist_chats WHERE conversation = ?", (conversation,)
        ).fetchone()
        return int(row[0]) if row else 0

    # ------------------------------------------------------------ expiry

    def purge_expired(self, now_ms: int) -> int:
        """Remove messages expired at ``now_ms`` with their reactions and votes; return how many."""
        expired = "SELECT sender, id FROM hist_messages WHERE expires_at_ms <= ?"
        with self.transaction():
            self._conn.execute(
                f"DELETE FROM hist_reactions WHERE (target_sender, target_id) IN ({expired})",
                (now_ms,),
            )
            self._conn.execute(
                f"DELETE FROM hist_votes WHERE (poll_sender, poll_id) IN ({expired})", (now_ms,)
            )
            cur = self._conn.execute(
                "DELETE FROM hist_messages WHERE expires_at_ms <= ?", (now_ms,)
            )
        return cur.rowcount

    def next_expiry(self) -> int | None:
        """The earliest ``expires_at_ms`` of any stored message (for a purge timer)."""
        row = self._conn.execute("SELECT MIN(expires_at_ms) FROM hist_messages").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    # ------------------------------------------------------------ helpers

    def _row(self, sender: str, message_id: str) -> _Row | None:
        r = self._conn.execute(
            f"SELECT {_COLS} FROM hist_messages WHERE sender = ? AND id = ?",
            (sender, message_id),
        ).fetchone()
        return None if r is None else _Row(*r)

    def _item(self, row: _Row) -> HistoryItem:
        content = _decode(row)
        reply_to = content.reply_to if isinstance(content, Text | Attachment) else None
        return HistoryItem(
            id=row.id,
            sender=row.sender,
            sender_device=row.sender_device,
            sent_at_ms=row.sent_at_ms,
            kind=_kind(row.kind),
            text=_shown_text(row, content) if not row.deleted else None,
            reply_to=reply_to,
            edited_at_ms=row.edited_at_ms,
            deleted=bool(row.deleted),
            reactions={} if row.deleted else self._reactions(row),
            attachment=content if isinstance(content, Attachment) else None,
            poll=self._tally(row, content) if isinstance(content, Poll) else None,
            status=None if row.status is None else _STATUSES[row.status],
            expires_at_ms=row.expires_at_ms,
            conversation=row.conversation,
        )

    def _reactions(self, row: _Row) -> dict[str, tuple[str, ...]]:
        rows = self._conn.execute(
            "SELECT emoji, reactor FROM hist_reactions"
            " WHERE target_sender = ? AND target_id = ? AND conversation = ? AND emoji != ''"
            " ORDER BY sent_at_ms, id",
            (row.sender, row.id, row.conversation),
        ).fetchall()
        out: dict[str, list[str]] = {}
        for emoji, reactor in rows:
            out.setdefault(str(emoji), []).append(str(reactor))
        return {emoji: tuple(users) for emoji, users in out.items()}

    def _tally(self, row: _Row, poll: Poll) -> PollTally:
        n = len(poll.options)
        voters: list[list[str]] = [[] for _ in range(n)]
        votes = self._conn.execute(
            "SELECT voter, options FROM hist_votes"
            " WHERE poll_sender = ? AND poll_id = ? AND conversation = ? ORDER BY voter",
            (row.sender, row.id, row.conversation),
        ).fetchall()
        for voter, options in votes:
            for index in _valid_choice(json.loads(options), n, poll.multiple):
                voters[index].append(str(voter))
        return PollTally(
            question=poll.question,
            options=tuple(poll.options),
            multiple=poll.multiple,
            counts=tuple(len(v) for v in voters),
            voters=tuple(tuple(v) for v in voters),
        )


def _valid_choice(options: object, n: int, multiple: bool) -> list[int]:
    """The options a vote counts for: none if any index is out of range."""
    if not isinstance(options, list):
        return []
    chosen: list[int] = []
    for index in options:
        if type(index) is not int or not 0 <= index < n:
            return []
        if index not in chosen:
            chosen.append(index)
    return chosen if multiple else chosen[:1]


def _encode(content: Text | Poll | Attachment | Unsupported | Disappearing) -> bytes:
    if isinstance(content, Unsupported):
        return msgspec.json.encode(content)
    return encode_content(content)


def _decode(row: _Row) -> AnyContent | None:
    """The stored content of a row; None for a tombstone."""
    if row.content is None:
        return None
    if row.kind == "unsupported":
        return _unsupported_decoder.decode(row.content)
    return decode_content(row.content)


def _shown_text(row: _Row, content: AnyContent | None) -> str | None:
    if row.deleted:
        return "message deleted"
    if row.kind == "text":
        return row.text
    return None if content is None else content_text(content)


def _is_undecryptable(content: AnyContent) -> bool:
    return isinstance(content, Unsupported) and content.type == "undecryptable"


def _is_undecryptable_row(row: _Row) -> bool:
    if row.kind != "unsupported" or row.deleted:
        return False
    content = _decode(row)
    return content is not None and _is_undecryptable(content)


def _kind(value: str) -> Kind:
    match value:
        case "text" | "poll" | "attachment" | "system" | "unsupported":
            return value
    return "unsupported"


def _now_ms() -> int:
    return int(time.time() * 1000)
