"""The local message database: every rule of :mod:`taube.client.history`, on in-memory SQLite."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Collection, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taube.client.content import (
    AnyContent,
    Attachment,
    Delete,
    Disappearing,
    Edit,
    MessageRef,
    Poll,
    Reaction,
    Text,
    Unsupported,
    Vote,
    decode_content,
)
from taube.client.history import (
    DELETE_WINDOW_MS,
    EDIT_WINDOW_MS,
    SCHEMA,
    History,
    PollTally,
    Recorded,
)

ME = "alice"
T0 = 1_700_000_000_000
MIN = 60_000
_ids = itertools.count(1)


def connect() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.executescript(SCHEMA)
    return conn


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    c = connect()
    yield c
    c.close()


@pytest.fixture
def hist(conn: sqlite3.Connection) -> History:
    return History(conn)


def rec(
    h: History,
    content: AnyContent,
    *,
    sender: str = "bob",
    conv: str = "@bob",
    at: int = T0,
    id: str | None = None,
    admins: Collection[str] = (),
) -> tuple[Recorded, MessageRef]:
    """Record ``content`` from ``sender``; return the outcome and the message's ref."""
    # Ids order like UUIDv7s: by the time they were made, then by a counter.
    message_id = id if id is not None else f"{at:015d}-{next(_ids):04d}"
    result = h.record(
        conversation=conv,
        sender=sender,
        sender_device=1,
        id=message_id,
        sent_at_ms=at,
        content=content,
        me=ME,
        group_admins=admins,
    )
    return result, MessageRef(sender, message_id)


def texts(h: History, conv: str = "@bob") -> list[str | None]:
    return [item.text for item in h.history(conv, now_ms=T0)]


# ------------------------------------------------------------------ messages


def test_text_is_shown_with_its_fields(hist: History) -> None:
    _, first = rec(hist, Text(text="hi"))
    result, ref = rec(hist, Text(text="re", reply_to=first), at=T0 + 1)
    assert result == Recorded(shown=True, ignored=None)
    items = hist.history("@bob", now_ms=T0)
    assert [i.text for i in items] == ["hi", "re"]
    item = items[1]
    assert (item.id, item.sender, item.sender_device, item.sent_at_ms) == (ref.id, "bob", 1, T0 + 1)
    assert (item.kind, item.reply_to, item.deleted, item.edited_at_ms) == (
        "text",
        first,
        False,
        None,
    )
    assert (item.status, item.expires_at_ms, item.reactions) == (None, None, {})
    assert hist.get("bob", ref.id, now_ms=T0) == item
    assert hist.get("bob", "nope") is None


def test_record_is_idempotent(hist: History) -> None:
    content = Text(text="once")
    assert rec(hist, content, id="x")[0] == Recorded(True)
    assert rec(hist, content, id="x")[0] == Recorded(False, "duplicate")
    assert rec(hist, Text(text="forged twin"), id="x")[0] == Recorded(False, "duplicate")
    assert texts(hist) == ["once"]
    assert hist.chats(now_ms=T0)[0].unread == 1


def test_history_is_newest_last_with_limit_and_before(hist: History) -> None:
    for n in range(5):
        rec(hist, Text(text=str(n)), at=T0 + n)
    assert texts(hist) == ["0", "1", "2", "3", "4"]
    assert [i.text for i in hist.history("@bob", limit=2, now_ms=T0)] == ["3", "4"]
    assert [i.text for i in hist.history("@bob", limit=2, before_ms=T0 + 3, now_ms=T0)] == [
        "1",
        "2",
    ]
    assert hist.history("@carol", now_ms=T0) == []


def test_poll_attachment_and_unsupported_rows(hist: History) -> None:
    attachment = Attachment(
        blob="cd" * 32, key=bytes(32), digest=bytes(32), size=2048, name="a.pdf", mime="x/y"
    )
    rec(hist, Poll(question="Lunch?", options=["pizza", "sushi"]))
    rec(hist, attachment, at=T0 + 1)
    unsupported = decode_content(b'{"v":1,"type":"sticker","pack":"cats"}')
    rec(hist, unsupported, at=T0 + 2)
    poll, att, unsup = hist.history("@bob", now_ms=T0)
    assert (poll.kind, poll.text) == ("poll", "📊 Lunch?")
    assert poll.poll == PollTally("Lunch?", ("pizza", "sushi"), False, (0, 0), ((), ()))
    assert (att.kind, att.text, att.attachment) == ("attachment", "📎 a.pdf (2.0 kB)", attachment)
    assert (unsup.kind, unsup.text) == ("unsupported", None)
    assert hist.chats(now_ms=T0)[0].unread == 3


def test_undecryptable_placeholder_is_replaced_by_the_resend(hist: History) -> None:
    placeholder = Unsupported(type="undecryptable", v=0, raw=b"\x00cipher", reason="no session")
    rec(hist, placeholder, id="r1")
    assert [i.kind for i in hist.history("@bob", now_ms=T0)] == ["unsupported"]
    assert rec(hist, placeholder, id="r1")[0] == Recorded(False, "duplicate")
    assert rec(hist, Text(text="now readable"), id="r1")[0] == Recorded(True)
    assert texts(hist) == ["now readable"]
    assert rec(hist, Text(text="again"), id="r1")[0] == Recorded(False, "duplicate")


def test_a_resend_keeps_the_time_its_message_was_sent(hist: History) -> None:
    """A disappearing message resent a minute later still disappears when the others'
    copies do, counted from when it was sent."""
    placeholder = Unsupported(type="undecryptable", v=0, raw=b"\x00cipher", reason="no session")
    rec(hist, placeholder, id="r1", at=T0)
    rec(hist, Text(text="now readable", expire_s=30), id="r1", at=T0 + 60_000)
    (item,) = hist.history("@bob", now_ms=T0 + 1)
    assert (item.sent_at_ms, item.expires_at_ms) == (T0, T0 + 30_000)


def test_record_joins_an_outer_transaction(conn: sqlite3.Connection, hist: History) -> None:
    conn.execute("BEGIN IMMEDIATE")
    rec(hist, Text(text="rolled back"))
    assert conn.in_transaction
    conn.execute("ROLLBACK")
    assert texts(hist) == []
    with hist.transaction():
        rec(hist, Text(text="kept"))
    assert texts(hist) == ["kept"]


# ------------------------------------------------------------------ reactions


def test_reactions_latest_wins_and_empty_removes(hist: History) -> None:
    _, msg = rec(hist, Text(text="hi"))
    rec(hist, Reaction(target=msg, emoji="👍"), sender=ME, at=T0 + 10)
    rec(hist, Reaction(target=msg, emoji="👍"), sender="bob", at=T0 + 11)
    rec(hist, Reaction(target=msg, emoji="😂"), sender=ME, at=T0 + 12)
    assert hist.history("@bob", now_ms=T0)[0].reactions == {"👍": ("bob",), "😂": (ME,)}
    # An older reaction that arrives late changes nothing.
    assert rec(hist, Reaction(target=msg, emoji="❤"), sender=ME, at=T0 + 11)[0] == Recorded(
        False, "superseded"
    )
    rec(hist, Reaction(target=msg, emoji=""), sender="bob", at=T0 + 20)
    assert hist.history("@bob", now_ms=T0)[0].reactions == {"😂": (ME,)}
    # ... and a removal is not undone by the reaction it replaced arriving again.
    rec(hist, Reaction(target=msg, emoji="👍"), sender="bob", at=T0 + 11)
    assert hist.history("@bob", now_ms=T0)[0].reactions == {"😂": (ME,)}


def test_reaction_before_its_target_is_kept(hist: History) -> None:
    target = MessageRef("bob", "later")
    assert rec(hist, Reaction(target=target, emoji="🎉"), sender=ME)[0] == Recorded(False)
    rec(hist, Text(text="late"), id="later")
    assert hist.history("@bob", now_ms=T0)[0].reactions == {"🎉": (ME,)}


def test_reaction_from_another_conversation_is_ignored(hist: History) -> None:
    _, msg = rec(hist, Text(text="hi"), conv="#g")
    result, _ = rec(hist, Reaction(target=msg, emoji="💩"), sender="eve", conv="@eve")
    assert result == Recorded(False, "target in another conversation")
    assert hist.history("#g", now_ms=T0)[0].reactions == {}


# ------------------------------------------------------------------ edits


def test_edit_by_author_within_window(hist: History) -> None:
    _, msg = rec(hist, Text(text="teh"))
    assert rec(hist, Edit(target=msg, text="the"), at=T0 + EDIT_WINDOW_MS)[0] == Recorded(False)
    item = hist.history("@bob", now_ms=T0)[0]
    assert (item.text, item.edited_at_ms) == ("the", T0 + EDIT_WINDOW_MS)


def test_latest_edit_wins_whatever_the_arrival_order(hist: History) -> None:
    _, msg = rec(hist, Text(text="v0"))
    rec(hist, Edit(target=msg, text="v2"), at=T0 + 2 * MIN)
    assert rec(hist, Edit(target=msg, text="v1"), at=T0 + MIN)[0] == Recorded(False, "superseded")
    assert texts(hist) == ["v2"]


def test_forged_edit_is_ignored(hist: History) -> None:
    _, msg = rec(hist, Text(text="mine"), sender=ME)
    result, _ = rec(hist, Edit(target=msg, text="pwned"), sender="bob", at=T0 + 1)
    assert result == Recorded(False, "not the author")
    # Naming the victim as the edit's own sender does not help either: the ref must match.
    result, _ = rec(hist, Edit(target=MessageRef("bob", msg.id), text="x"), at=T0 + 1)
    assert result == Recorded(False, "unknown target")
    assert texts(hist) == ["mine"]


def test_late_edit_is_ignored(hist: History) -> None:
    _, msg = rec(hist, Text(text="old"))
    result, _ = rec(hist, Edit(target=msg, text="new"), at=T0 + EDIT_WINDOW_MS + 1)
    assert result == Recorded(False, "edit window passed")
    assert texts(hist) == ["old"]


def test_edit_of_unknown_or_non_text_is_ignored(hist: History) -> None:
    _, poll = rec(hist, Poll(question="q", options=["a", "b"]))
    assert rec(hist, Edit(target=poll, text="x"), at=T0 + 1)[0] == Recorded(
        False, "target is not text"
    )
    assert rec(hist, Edit(target=MessageRef("bob", "gone"), text="x"))[0] == Recorded(
        False, "unknown target"
    )


def test_own_edit_from_another_device_applies(hist: History) -> None:
    _, msg = rec(hist, Text(text="draft"), sender=ME)
    rec(hist, Edit(target=msg, text="final"), sender=ME, at=T0 + 1)
    assert texts(hist) == ["final"]


# ------------------------------------------------------------------ deletes


def test_author_deletes_within_window(hist: History) -> None:
    _, msg = rec(hist, Text(text="oops", reply_to=MessageRef("x", "y")))
    rec(hist, Reaction(target=msg, emoji="👍"), sender=ME, at=T0 + 1)
    assert rec(hist, Delete(target=msg), at=T0 + DELETE_WINDOW_MS)[0] == Recorded(False)
    item = hist.history("@bob", now_ms=T0)[0]
    assert (item.deleted, item.text, item.reply_to, item.reactions) == (True, None, None, {})
    assert hist.chats(now_ms=T0)[0].last_text == "message deleted"
    # Reactions and edits after the delete do not bring anything back.
    assert rec(hist, Reaction(target=msg, emoji="😂"), sender=ME)[0] == Recorded(
        False, "target deleted"
    )
    assert rec(hist, Edit(target=msg, text="back"), at=T0 + 2)[0] == Recorded(
        False, "target deleted"
    )
    assert rec(hist, Delete(target=msg), at=T0 + 3)[0] == Recorded(False, "already deleted")
    assert rec(hist, Text(text="oops"), id=msg.id)[0] == Recorded(False, "duplicate")
    assert hist.get("bob", msg.id, now_ms=T0) == item


def test_forged_delete_is_ignored(hist: History) -> None:
    _, msg = rec(hist, Text(text="mine"), sender=ME)
    assert rec(hist, Delete(target=msg), at=T0 + 1)[0] == Recorded(False, "not the author")
    assert texts(hist) == ["mine"]


def test_late_delete_is_ignored(hist: History) -> None:
    _, msg = rec(hist, Text(text="forever"))
    result, _ = rec(hist, Delete(target=msg), at=T0 + DELETE_WINDOW_MS + 1)
    assert result == Recorded(False, "delete window passed")
    assert texts(hist) == ["forever"]


def test_delete_window_is_configurable(conn: sqlite3.Connection) -> None:
    hist = History(conn, delete_window_ms=MIN)
    _, msg = rec(hist, Text(text="x"))
    assert rec(hist, Delete(target=msg), at=T0 + MIN + 1)[0].ignored == "delete window passed"


def test_group_admin_deletes_any_message_at_any_time(hist: History) -> None:
    _, msg = rec(hist, Text(text="spam"), sender="eve", conv="#g")
    _, poll = rec(hist, Poll(question="q", options=["a", "b"]), sender="eve", conv="#g")
    rec(hist, Vote(poll=poll, options=[0]), sender="bob", conv="#g")
    late = T0 + 10 * DELETE_WINDOW_MS
    # Not an admin: refused.
    result, _ = rec(hist, Delete(target=msg), sender="bob", conv="#g", at=late, admins={"carol"})
    assert result == Recorded(False, "not the author")
    assert rec(hist, Delete(target=msg), sender="carol", conv="#g", at=late, admins={"carol"})[
        0
    ] == Recorded(False)
    rec(hist, Delete(target=poll), sender="carol", conv="#g", at=late, admins={"carol"})
    assert [i.deleted for i in hist.history("#g", now_ms=T0)] == [True, True]
    assert hist.poll_tally("eve", poll.id) is None
    assert hist.history("#g", now_ms=T0)[1].poll is None


def test_admin_rights_do_not_reach_other_conversations(hist: History) -> None:
    _, dm = rec(hist, Text(text="private"), sender="bob", conv="@bob")
    _, other = rec(hist, Text(text="other group"), sender="bob", conv="#h")
    for ref in (dm, other):
        result, _ = rec(hist, Delete(target=ref), sender="carol", conv="#g", admins={"carol"})
        assert result == Recorded(False, "target in another conversation")
    # "admins" mean nothing in a direct chat.
    result, _ = rec(hist, Delete(target=dm), sender="carol", conv="@bob", admins={"carol"})
    assert result == Recorded(False, "not the author")


def test_delete_of_unknown_target_is_ignored(hist: History) -> None:
    assert rec(hist, Delete(target=MessageRef("bob", "nope")))[0] == Recorded(
        False, "unknown target"
    )


# ------------------------------------------------------------------ polls


def test_single_choice_poll_tally(hist: History) -> None:
    _, poll = rec(hist, Poll(question="Lunch?", options=["pizza", "sushi", "salad"]), sender=ME)
    rec(hist, Vote(poll=poll, options=[1]), sender="bob")
    rec(hist, Vote(poll=poll, options=[2, 0]), sender="carol")  # only the first counts
    rec(hist, Vote(poll=poll, options=[1]), sender=ME)
    rec(hist, Vote(poll=poll, options=[7]), sender="dave")  # out of range: no vote
    assert hist.poll_tally(ME, poll.id) == PollTally(
        question="Lunch?",
        options=("pizza", "sushi", "salad"),
        multiple=False,
        counts=(0, 2, 1),
        voters=((), ("alice", "bob"), ("carol",)),
    )


def test_multiple_choice_poll_tally_retraction_and_invalid_votes(hist: History) -> None:
    _, poll = rec(hist, Poll(question="When?", options=["mon", "tue", "wed"], multiple=True))
    rec(hist, Vote(poll=poll, options=[0, 2]), sender="bob", at=T0 + 1)
    rec(hist, Vote(poll=poll, options=[2, 2, 1]), sender="carol", at=T0 + 1)
    rec(hist, Vote(poll=poll, options=[0, 3]), sender="dave", at=T0 + 1)  # 3 invalid
    tally = hist.poll_tally("bob", poll.id)
    assert tally is not None
    assert (tally.counts, tally.voters) == ((1, 1, 2), (("bob",), ("carol",), ("bob", "carol")))
    # Retraction, and a change of mind; an older vote arriving late does nothing.
    rec(hist, Vote(poll=poll, options=[]), sender="bob", at=T0 + 2)
    rec(hist, Vote(poll=poll, options=[1]), sender="dave", at=T0 + 3)
    result, _ = rec(hist, Vote(poll=poll, options=[0]), sender="bob", at=T0 + 1)
    assert result == Recorded(False, "superseded")
    tally = hist.poll_tally("bob", poll.id)
    assert tally is not None
    assert tally.counts == (0, 2, 1)
    assert hist.history("@bob", now_ms=T0)[0].poll == tally


def test_votes_before_the_poll_count_and_bad_targets_are_refused(hist: History) -> None:
    ref = MessageRef("bob", "p1")
    rec(hist, Vote(poll=ref, options=[1]), sender="carol")
    assert hist.poll_tally("bob", "p1") is None
    rec(hist, Poll(question="q", options=["a", "b"]), id="p1")
    tally = hist.poll_tally("bob", "p1")
    assert tally is not None
    assert tally.counts == (0, 1)
    _, text = rec(hist, Text(text="not a poll"))
    assert rec(hist, Vote(poll=text, options=[0]))[0] == Recorded(False, "target is not a poll")
    assert hist.poll_tally("bob", text.id) is None


_VOTERS = ("alice", "bob", "carol", "dave")


@st.composite
def _vote_streams(draw: st.DrawFn) -> tuple[bool, list[tuple[str, list[int], int, str]]]:
    multiple = draw(st.booleans())
    votes = draw(
        st.lists(
            st.tuples(
                st.sampled_from(_VOTERS),
                st.lists(st.integers(0, 4), max_size=4),
                st.integers(T0, T0 + 5),
            ),
            max_size=12,
        )
    )
    stream = [(voter, options, at, f"v{n:03d}") for n, (voter, options, at) in enumerate(votes)]
    return multiple, stream


@given(_vote_streams(), st.data())
def test_tally_and_reactions_do_not_depend_on_arrival_order(
    case: tuple[bool, list[tuple[str, list[int], int, str]]], data: st.DataObject
) -> None:
    multiple, stream = case
    reordered = data.draw(st.permutations(stream))
    results = []
    for order in (stream, reordered):
        conn = connect()
        hist = History(conn)
        poll = Poll(question="q", options=["a", "b", "c"], multiple=multiple)
        rec(hist, poll, sender="bob", id="poll")
        ref = MessageRef("bob", "poll")
        for voter, options, at, vid in order:
            rec(hist, Vote(poll=ref, options=options), sender=voter, at=at, id=vid)
            emoji = "" if not options else "👍😂🎉❤🙈"[options[0]]
            rec(hist, Reaction(target=ref, emoji=emoji), sender=voter, at=at, id=vid + "r")
        results.append((hist.poll_tally("bob", "poll"), hist.get("bob", "poll", now_ms=T0)))
        conn.close()
    assert results[0] == results[1]


# ------------------------------------------------------------------ disappearing messages


def test_disappearing_timer_applies_to_later_messages(hist: History) -> None:
    rec(hist, Text(text="before"), at=T0)
    result, _ = rec(hist, Disappearing(seconds=3600), sender=ME, at=T0 + 1)
    assert result == Recorded(True)
    assert hist.disappearing("@bob") == 3600
    assert hist.disappearing("@carol") == 0
    rec(hist, Text(text="after"), at=T0 + 2)
    rec(hist, Text(text="own timer", expire_s=60), at=T0 + 3)
    items = hist.history("@bob", now_ms=T0)
    assert [(i.kind, i.text, i.expires_at_ms) for i in items] == [
        ("text", "before", None),
        ("system", "turned on disappearing messages: 1 hour", None),
        ("text", "after", T0 + 2 + 3_600_000),
        ("text", "own timer", T0 + 3 + 60_000),
    ]
    assert hist.next_expiry() == T0 + 3 + 60_000
    # Expired messages disappear from view at once, and from disk when purged.
    assert texts(hist)[-1] == "own timer"
    assert [i.text for i in hist.history("@bob", now_ms=T0 + 3 + 60_000)][-1] == "after"
    assert hist.get("bob", items[3].id, now_ms=T0 + 3 + 60_000) is None
    assert hist.purge_expired(T0 + 10 * 3_600_000) == 2
    assert [i.text for i in hist.history("@bob", now_ms=T0)] == [
        "before",
        "turned on disappearing messages: 1 hour",
    ]
    assert hist.next_expiry() is None
    assert hist.purge_expired(T0 + 10 * 3_600_000) == 0


def test_disappearing_off_and_latest_setting_wins(hist: History) -> None:
    rec(hist, Disappearing(seconds=86400), at=T0 + 10)
    rec(hist, Disappearing(seconds=0), sender=ME, at=T0 + 20)
    rec(hist, Disappearing(seconds=60), at=T0 + 15)  # older setting, arrives late
    assert hist.disappearing("@bob") == 0
    _, msg = rec(hist, Text(text="kept"), at=T0 + 30)
    item = hist.get("bob", msg.id, now_ms=T0)
    assert item is not None
    assert item.expires_at_ms is None
    # Every setting stays a line in the chat, in the order they were sent.
    assert texts(hist) == [
        "turned on disappearing messages: 1 day",
        "turned on disappearing messages: 1 minute",
        "turned off disappearing messages",
        "kept",
    ]


def test_purge_removes_reactions_and_votes_of_expired_messages(
    conn: sqlite3.Connection, hist: History
) -> None:
    _, poll = rec(hist, Poll(question="q", options=["a", "b"], expire_s=1))
    rec(hist, Vote(poll=poll, options=[0]), sender=ME)
    rec(hist, Reaction(target=poll, emoji="👍"), sender=ME)
    assert hist.purge_expired(T0 + 1000) == 1
    assert conn.execute("SELECT COUNT(*) FROM hist_votes").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM hist_reactions").fetchone()[0] == 0


# ------------------------------------------------------------------ unread, receipts, chats


def test_unread_counts_and_mark_read(hist: History) -> None:
    rec(hist, Text(text="1"), sender="bob", conv="#g", id="b1", at=T0)
    rec(hist, Text(text="2"), sender="carol", conv="#g", id="c1", at=T0 + 1)
    rec(hist, Text(text="3"), sender="bob", conv="#g", id="b2", at=T0 + 2)
    rec(hist, Text(text="mine"), sender=ME, conv="#g", at=T0 + 3)
    rec(hist, Reaction(target=MessageRef("bob", "b1"), emoji="👍"), sender="carol", conv="#g")
    assert hist.chats(now_ms=T0)[0].unread == 3
    assert hist.mark_read("#g") == [("bob", ["b1", "b2"]), ("carol", ["c1"])]
    assert hist.chats(now_ms=T0)[0].unread == 0
    assert hist.mark_read("#g") == []
    rec(hist, Text(text="4"), sender="bob", conv="#g", id="b3", at=T0 + 4)
    assert hist.chats(now_ms=T0)[0].unread == 1
    assert hist.mark_read("#g") == [("bob", ["b3"])]


def test_system_lines_are_not_unread_but_get_receipts(hist: History) -> None:
    rec(hist, Disappearing(seconds=60), id="d1")
    assert hist.chats(now_ms=T0)[0].unread == 0
    assert hist.mark_read("@bob") == [("bob", ["d1"])]


def test_status_of_own_messages_only_moves_forward(hist: History) -> None:
    _, a = rec(hist, Text(text="a"), sender=ME)
    _, b = rec(hist, Text(text="b"), sender=ME, at=T0 + 1)
    assert [i.status for i in hist.history("@bob", now_ms=T0)] == ["sent", "sent"]
    hist.set_status(ME, [a.id, b.id], "delivered", by="bob")
    hist.set_status(ME, [a.id], "read", by="bob")
    hist.set_status(ME, [a.id, b.id], "delivered", by="bob")
    assert [i.status for i in hist.history("@bob", now_ms=T0)] == ["read", "delivered"]
    assert hist.chats(now_ms=T0)[0].unread == 0


def test_group_status_is_the_best_any_member_reached(hist: History) -> None:
    _, msg = rec(hist, Text(text="hi all"), sender=ME, conv="#g")
    hist.set_status(ME, [msg.id], "read", by="carol")
    hist.set_status(ME, [msg.id], "delivered", by="bob")
    item = hist.get(ME, msg.id, now_ms=T0)
    assert item is not None
    assert item.status == "read"


def test_read_on_another_device_marks_incoming_read(hist: History) -> None:
    rec(hist, Text(text="1"), id="b1")
    rec(hist, Text(text="2"), id="b2", at=T0 + 1)
    hist.set_status("bob", ["b1"], "read", by=ME)
    hist.set_status("bob", ["b2"], "delivered", by=ME)
    assert hist.chats(now_ms=T0)[0].unread == 1
    assert hist.mark_read("@bob") == [("bob", ["b2"])]
    # Incoming messages have no status, whatever a receipt says.
    assert [i.status for i in hist.history("@bob", now_ms=T0)] == [None, None]


def test_chats_most_recent_first(hist: History) -> None:
    rec(hist, Text(text="old"), conv="@bob", at=T0)
    rec(hist, Text(text="newest"), sender=ME, conv="#g", at=T0 + 20)
    rec(hist, Disappearing(seconds=604800), sender="carol", conv="@carol", at=T0 + 10)
    rec(hist, Text(text="expired", expire_s=1), sender="dave", conv="@dave", at=T0 + 30)
    rec(hist, Reaction(target=MessageRef("x", "y"), emoji="👍"), sender="erin", conv="@erin")
    chats = hist.chats(now_ms=T0 + 5000)
    assert [(c.conversation, c.last_text, c.last_sender, c.last_at_ms) for c in chats] == [
        ("#g", "newest", ME, T0 + 20),
        ("@carol", "turned on disappearing messages: 7 days", "carol", T0 + 10),
        ("@bob", "old", "bob", T0),
    ]
    assert [(c.unread, c.disappearing_s) for c in chats] == [(0, 0), (0, 604800), (1, 0)]
    assert hist.chats(now_ms=T0)[0].conversation == "@dave"


def test_find_locates_a_message_by_id(hist: History) -> None:
    rec(hist, Text(text="x"), sender="bob", conv="#g", id="same")
    rec(hist, Text(text="y"), sender="carol", conv="@carol", id="same")
    assert hist.find("same") == [("#g", "bob"), ("@carol", "carol")]
    assert hist.find("nope") == []
