"""Rich messages between real SDK clients through a real server.

Each content type round-trips between two users and between devices of one user
(every device's local history ends up the same); forged edits and deletes are
ignored; a 50 MiB file arrives intact and a corrupted one is refused; poll
tallies agree on every member device after concurrent votes; disappearing
messages leave the local history; a blocked user's messages do not arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sqlite3
import time
from pathlib import Path

import pytest

from taube.client import Client, TaubeApiError, login, register
from taube.client.content import MessageRef, Text, decode_content
from taube.client.envelope import NOTHING_FOR_YOU
from taube.client.history import HistoryItem
from taube.crypto import CryptoError
from tests.client.conftest import FAST, PASSWORD
from tests.serverproc import UNIT_S, ServerProcess


async def device(server: ServerProcess, tmp: Path, user: str, *, new: bool = True) -> Path:
    profile = tmp / f"{user}-{secrets.token_hex(3)}"
    if new:
        await register(user, PASSWORD, servers=server.url, profile=profile)
    else:
        await login(user, PASSWORD, servers=server.url, profile=profile)
    return profile


async def settle(client: Client, until: float = 0.5) -> None:
    """Take in events until none arrived for ``until`` seconds (they are recorded)."""
    events = client.events()
    while True:
        try:
            await asyncio.wait_for(anext(events), timeout=until * UNIT_S)
        except TimeoutError:
            return


async def wait_history(
    client: Client, conversation: str, check: object, seconds: float = 10
) -> list[HistoryItem]:
    """Take in events until ``check(history)`` holds (or fail after ``seconds``)."""
    assert callable(check)
    deadline = time.monotonic() + seconds * UNIT_S
    events = client.events()
    while True:
        items = await client.history(conversation, 100)
        if check(items):
            return items
        if time.monotonic() > deadline:
            pytest.fail(f"history of {conversation} never matched: {items}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(anext(events), timeout=0.2)


def view(items: list[HistoryItem]) -> list[tuple[object, ...]]:
    """What a person sees, comparable across devices (where a device's own message
    lands among others' depends on when it arrived there, as in any messenger)."""
    return sorted(
        (
            i.id,
            i.sender,
            i.kind,
            None if i.deleted else i.text,
            i.deleted,
            i.edited_at_ms is not None,
            i.reply_to,
            tuple(sorted(i.reactions.items())),
            None if i.poll is None else (i.poll.counts, i.poll.voters),
            None if i.attachment is None else (i.attachment.name, i.attachment.size),
        )
        for i in items
    )


async def test_every_content_type_reaches_the_peer_and_the_senders_other_device(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice1 = await device(server, tmp_path, "alice")
    alice2 = await device(server, tmp_path, "alice", new=False)
    bob = await device(server, tmp_path, "bob")
    async with (
        Client(alice1, options=FAST) as a1,
        Client(alice2, options=FAST) as a2,
        Client(bob, options=FAST) as b,
    ):
        first = await a1.send("@bob", "Kommst du?")
        await a1.wait_sent([first], timeout=10 * UNIT_S)
        ref = MessageRef(sender="alice", id=first)
        reply = await b.reply("@alice", "Ja!", ref)
        photo = os.urandom(300_000)
        ids = [
            await b.react("@alice", ref, "👍"),
            await a1.edit("@bob", ref, "Kommst du heute?"),
            await a1.poll("@bob", "Wann essen?", ["18 Uhr", "19 Uhr"], multiple=True),
            await a1.send_file("@bob", photo, "foto.jpg", caption="Urlaub"),
        ]
        await b.wait_sent([reply, ids[0]], timeout=10 * UNIT_S)
        await a1.wait_sent(ids[1:], timeout=10 * UNIT_S)
        poll = MessageRef(sender="alice", id=ids[2])
        await wait_history(b, "@alice", lambda h: any(i.poll for i in h))
        vote = await b.vote("@alice", poll, [1])
        await b.wait_sent([vote], timeout=10 * UNIT_S)

        def complete(items: list[HistoryItem]) -> bool:
            by_id = {i.id: i for i in items}
            return (
                first in by_id
                and by_id[first].text == "Kommst du heute?"
                and "👍" in by_id[first].reactions
                and reply in by_id
                and ids[2] in by_id
                and by_id[ids[2]].poll is not None
                and sum(by_id[ids[2]].poll.counts) == 1
                and ids[3] in by_id
            )

        seen_by_bob = await wait_history(b, "@alice", complete)
        seen_by_a1 = await wait_history(a1, "@bob", complete)
        seen_by_a2 = await wait_history(a2, "@bob", complete)
        assert view(seen_by_a1) == view(seen_by_a2) == view(seen_by_bob)
        item = {i.id: i for i in seen_by_bob}
        assert item[first].edited_at_ms is not None
        assert item[reply].reply_to == ref
        assert item[ids[2]].poll.counts == (0, 1)  # type: ignore[union-attr]
        attachment = item[ids[3]].attachment
        assert attachment is not None
        assert attachment.caption == "Urlaub"
        assert await b.download(attachment) == photo
        assert await a2.download(attachment) == photo

        # Delete for everyone: a tombstone on every device.
        gone = await a1.delete_for_everyone("@bob", MessageRef(sender="bob", id=reply))
        await a1.wait_sent([gone], timeout=10 * UNIT_S)  # not alice's message: ignored
        mine = await b.delete_for_everyone("@alice", MessageRef(sender="bob", id=reply))
        await b.wait_sent([mine], timeout=10 * UNIT_S)
        for client, chat in ((a1, "@bob"), (a2, "@bob"), (b, "@alice")):
            items = await wait_history(
                client, chat, lambda h: any(i.id == reply and i.deleted for i in h)
            )
            assert {i.id: i for i in items}[reply].text is None


async def test_forged_edits_and_deletes_are_ignored_and_group_admins_may_delete(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice = await device(server, tmp_path, "alice")
    bob = await device(server, tmp_path, "bob")
    carol = await device(server, tmp_path, "carol")
    async with (
        Client(alice, options=FAST) as a,
        Client(bob, options=FAST) as b,
        Client(carol, options=FAST) as c,
    ):
        group = await a.api.create_group("team", ["bob", "carol"])
        chat = group.address
        original = await a.send(chat, "original")
        await a.wait_sent([original], timeout=10 * UNIT_S)
        ref = MessageRef(sender="alice", id=original)
        # bob is no admin: his edit and delete of alice's message change nothing.
        forged = [await b.edit(chat, ref, "forged"), await b.delete_for_everyone(chat, ref)]
        carols = await c.send(chat, "von carol")
        await b.wait_sent(forged, timeout=10 * UNIT_S)
        await c.wait_sent([carols], timeout=10 * UNIT_S)
        for client in (a, b, c):
            items = await wait_history(client, chat, lambda h: any(i.id == carols for i in h))
            kept = {i.id: i for i in items}[original]
            assert (kept.text, kept.deleted, kept.edited_at_ms) == ("original", False, None)
        # alice created the group (admin): she may delete carol's message for everyone.
        removal = await a.delete_for_everyone(chat, MessageRef(sender="carol", id=carols))
        await a.wait_sent([removal], timeout=10 * UNIT_S)
        for client in (a, b, c):
            await wait_history(client, chat, lambda h: any(i.id == carols and i.deleted for i in h))


async def test_poll_tallies_agree_on_every_member_device_after_concurrent_votes(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice1 = await device(server, tmp_path, "alice")
    alice2 = await device(server, tmp_path, "alice", new=False)
    bob = await device(server, tmp_path, "bob")
    carol = await device(server, tmp_path, "carol")
    async with (
        Client(alice1, options=FAST) as a1,
        Client(alice2, options=FAST) as a2,
        Client(bob, options=FAST) as b,
        Client(carol, options=FAST) as c,
    ):
        group = await a1.api.create_group("essen", ["bob", "carol"])
        chat = group.address
        poll_id = await a1.poll(chat, "Wann?", ["18", "19", "20"])
        await a1.wait_sent([poll_id], timeout=10 * UNIT_S)
        poll = MessageRef(sender="alice", id=poll_id)
        for client in (b, c, a2):
            await wait_history(client, chat, lambda h: any(i.id == poll_id for i in h))
        votes = await asyncio.gather(
            b.vote(chat, poll, [0]),
            c.vote(chat, poll, [1]),
            a2.vote(chat, poll, [2]),
            b.vote(chat, poll, [1]),  # bob changes his mind
        )
        await asyncio.gather(
            b.wait_sent([votes[0], votes[3]], timeout=10 * UNIT_S),
            c.wait_sent([votes[1]], timeout=10 * UNIT_S),
            a2.wait_sent([votes[2]], timeout=10 * UNIT_S),
        )
        tallies = []
        for client in (a1, a2, b, c):
            # Until the final tally: three votes may be counted before bob's change of
            # mind arrives (1, 1, 1), which is a moment, not a disagreement.
            items = await wait_history(
                client,
                chat,
                lambda h: any(
                    i.id == poll_id and i.poll is not None and i.poll.counts == (0, 2, 1) for i in h
                ),
            )
            tallies.append({i.id: i for i in items}[poll_id].poll)
        assert all(t == tallies[0] for t in tallies)
        assert tallies[0] is not None
        assert tallies[0].counts == (0, 2, 1)


async def test_disappearing_messages_leave_the_local_history_on_both_sides(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice = await device(server, tmp_path, "alice")
    bob = await device(server, tmp_path, "bob")
    async with Client(alice, options=FAST) as a, Client(bob, options=FAST) as b:
        timer = await a.set_disappearing("@bob", 2)
        await a.wait_sent([timer], timeout=10 * UNIT_S)
        await wait_history(b, "@alice", lambda h: len(h) == 1)  # the notice
        short = await a.send("@bob", "gleich weg")
        await a.wait_sent([short], timeout=10 * UNIT_S)
        await wait_history(b, "@alice", lambda h: any(i.id == short for i in h))
        assert any(i.id == short and i.expires_at_ms for i in await a.history("@bob"))
        await asyncio.sleep(2.5)
        for client, chat in ((a, "@bob"), (b, "@alice")):
            assert all(i.id != short for i in await client.history(chat))
            rows = await client.find(short)
            assert rows == []  # purged from the database, not just hidden


def profile_bytes(profile: Path) -> bytes:
    """Every byte of a device's profile database and its write-ahead log."""
    return b"".join(p.read_bytes() for p in sorted(profile.glob("taube.db*")))


async def test_disappearing_messages_and_their_edits_leave_both_devices_disks(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Not only the history: the sender's copy kept for resend requests goes too, and
    neither profile file (database or write-ahead log) holds the text any more, while
    both clients are still running."""
    alice = await device(server, tmp_path, "alice")
    bob = await device(server, tmp_path, "bob")
    first, second = (f"geheim-{secrets.token_hex(8)}" for _ in range(2))
    async with Client(alice, options=FAST) as a, Client(bob, options=FAST) as b:
        timer = await a.set_disappearing("@bob", 2)
        await a.wait_sent([timer], timeout=10 * UNIT_S)
        short = await a.send("@bob", first)
        edit = await a.edit("@bob", MessageRef(sender="alice", id=short), second)
        await a.wait_sent([short, edit], timeout=10 * UNIT_S)
        await wait_history(b, "@alice", lambda h: any(i.text == second for i in h))
        for profile in (alice, bob):
            assert second.encode() in profile_bytes(profile)  # what this test is about
        # bob's app takes in what came (a decrypted message waits in the profile until
        # the app has had it, so that a crash cannot lose it).
        await settle(b)
        assert first.encode() in profile_bytes(alice)
        await asyncio.sleep(3.0)
        for client in (a, b):
            assert await client.find(short) == []
        for profile in (alice, bob):
            data = profile_bytes(profile)
            assert first.encode() not in data
            assert second.encode() not in data


async def test_an_edit_of_a_message_with_its_own_timer_leaves_the_disk_with_it(
    server: ServerProcess, tmp_path: Path
) -> None:
    """No chat timer here: the message carries its own, and our edit of it (kept for
    resend requests like everything we send) goes when the message does."""
    alice = await device(server, tmp_path, "alice")
    bob = await device(server, tmp_path, "bob")
    first, second = (f"geheim-{secrets.token_hex(8)}" for _ in range(2))
    async with Client(alice, options=FAST) as a, Client(bob, options=FAST) as b:
        short = await a.send("@bob", Text(text=first, expire_s=2))
        edit = await a.edit("@bob", MessageRef(sender="alice", id=short), second)
        await a.wait_sent([short, edit], timeout=10 * UNIT_S)
        await wait_history(b, "@alice", lambda h: any(i.text == second for i in h))
        assert second.encode() in profile_bytes(alice)
        await asyncio.sleep(3.0)
        data = profile_bytes(alice)
        assert first.encode() not in data
        assert second.encode() not in data


async def test_our_edits_and_deletes_also_change_what_a_resend_would_send(
    server: ServerProcess, tmp_path: Path
) -> None:
    """A device that could not decrypt a message asks its sender again (docs/e2ee.md
    section 8), maybe after our edit or delete of it reached that device and found
    nothing to change. The copy a resend sends from must be what everyone else sees:
    the edited text, or nothing at all; and the deleted text leaves the sender's disk."""
    alice = await device(server, tmp_path, "alice")
    bob = await device(server, tmp_path, "bob")
    secret = f"delete me {secrets.token_hex(8)}"
    async with Client(alice, options=FAST) as a, Client(bob, options=FAST) as b:
        kept = await a.send("@bob", "original text")
        gone = await a.send("@bob", secret)
        await a.wait_sent([kept, gone], timeout=10 * UNIT_S)
        edit = await a.edit("@bob", MessageRef(sender="alice", id=kept), "edited text")
        delete = await a.delete_for_everyone("@bob", MessageRef(sender="alice", id=gone))
        await a.wait_sent([edit, delete], timeout=10 * UNIT_S)
        assert await a._require_e2ee().resend(gone, "bob", b.device) is None
        to, resent = await a._require_e2ee().resend(kept, "bob", b.device) or ("", [])
        assert to == "@bob"
        sealed_for = [(p.user, p.device) for p in resent if p.payload != NOTHING_FOR_YOU]
        assert sealed_for == [("bob", b.device)]
        copy = a._require_profile().keys.sent(kept)
        assert copy is not None
        assert decode_content(copy[1]) == Text(text="edited text")
        assert secret.encode() not in profile_bytes(alice)
        items = await wait_history(
            b, "@alice", lambda h: [(i.text, i.deleted) for i in h][:2]
            == [("edited text", False), (None, True)]
        )  # fmt: skip
        assert all(i.text != secret for i in items)


async def test_a_message_deleted_before_its_resend_stays_deleted_on_the_device_that_asked(
    server: ServerProcess, tmp_path: Path
) -> None:
    """bob's device lost its session, so it can read neither alice's message nor her
    delete of it: it shows a placeholder and asks for both again. alice's device no
    longer has the deleted text to send, only the delete, which finds the placeholder:
    bob's chat shows "deleted", as everyone else's does, and never the text."""
    alice = await device(server, tmp_path, "alice")
    bob = await device(server, tmp_path, "bob")
    secret = f"delete me {secrets.token_hex(8)}"
    async with Client(alice, options=FAST) as a:
        first = await a.send("@bob", "one")
        await a.wait_sent([first], timeout=10 * UNIT_S)
        async with Client(bob, options=FAST) as b:
            await wait_history(b, "@alice", lambda h: [i.text for i in h] == ["one"])
        with contextlib.closing(sqlite3.connect(bob / "taube.db")) as conn:
            conn.execute("DELETE FROM e2ee_sessions")
            conn.commit()
        lost = await a.send("@bob", secret)
        await a.wait_sent([lost], timeout=10 * UNIT_S)
        delete = await a.delete_for_everyone("@bob", MessageRef(sender="alice", id=lost))
        await a.wait_sent([delete], timeout=10 * UNIT_S)
        async with Client(bob, options=FAST) as b:
            items = await wait_history(
                b, "@alice", lambda h: any(i.id == lost and i.deleted for i in h)
            )
            assert [(i.id, i.deleted) for i in items] == [(first, False), (lost, True)]
            await settle(b)
            assert all(i.text != secret for i in await b.history("@alice"))


async def test_a_blocked_user_cannot_reach_you_until_unblocked(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice = await device(server, tmp_path, "alice")
    bob = await device(server, tmp_path, "bob")
    async with Client(alice, options=FAST) as a, Client(bob, options=FAST) as b:
        await b.block("alice")
        assert await b.blocked() == ["alice"]
        spam = await a.send("@bob", "spam")
        await a.wait_sent([spam], timeout=10 * UNIT_S)  # alice is not told
        await settle(b, 1.0)
        assert await b.history("@alice") == []
        await b.unblock("alice")
        hello = await a.send("@bob", "hallo")
        await a.wait_sent([hello], timeout=10 * UNIT_S)
        items = await wait_history(b, "@alice", lambda h: len(h) >= 1)
        assert [i.text for i in items] == ["hallo"]


async def test_a_50_mib_file_arrives_intact_and_a_corrupted_one_is_refused(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice = await device(server, tmp_path, "alice")
    bob = await device(server, tmp_path, "bob")
    data = os.urandom(50 * 1024 * 1024)
    progress: list[int] = []
    async with Client(alice, options=FAST) as a, Client(bob, options=FAST) as b:
        started = time.monotonic()
        big = await a.send_file("@bob", data, "big.bin", progress=lambda n, _t: progress.append(n))
        await a.wait_sent([big], timeout=30 * UNIT_S)
        items = await wait_history(b, "@alice", lambda h: any(i.id == big for i in h))
        attachment = {i.id: i for i in items}[big].attachment
        assert attachment is not None
        assert await b.download(attachment) == data
        elapsed = time.monotonic() - started
        assert progress == sorted(progress)
        assert progress[-1] > len(data)  # ciphertext: data plus tags
        print(f"50 MiB attachment: encrypt, upload, send, download, verify in {elapsed:.1f} s")
        # Flip one byte of the stored blob: the download is refused, not returned.
        stored = [p for p in (server.data_dir / "blobs").rglob("*") if p.is_file()]
        small = await a.send_file("@bob", b"x" * 1000, "small.txt")
        await a.wait_sent([small], timeout=10 * UNIT_S)
        items = await wait_history(b, "@alice", lambda h: any(i.id == small for i in h))
        blob = {i.id: i for i in items}[small].attachment
        assert blob is not None
        path = server.data_dir / "blobs" / blob.blob[:2] / blob.blob[2:]  # docs/operations.md
        assert path.is_file()
        assert path not in stored
        raw = bytearray(path.read_bytes())
        raw[100] ^= 0xFF
        path.write_bytes(bytes(raw))
        with pytest.raises(CryptoError):
            await b.download(blob)


async def test_an_oversized_file_is_refused_before_its_bytes_are_sent(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "srv", settings={"blobs": {"max_bytes": 1024 * 1024}})
    server.start()
    try:
        alice = await device(server, tmp_path, "alice")
        await device(server, tmp_path, "bob")
        sent: list[int] = []
        async with Client(alice, options=FAST) as a:
            with pytest.raises(TaubeApiError) as refused:
                await a.send_file(
                    "@bob", os.urandom(2 * 1024 * 1024), "zu-gross.bin",
                    progress=lambda n, _t: sent.append(n),
                )  # fmt: skip
            assert refused.value.code == "blob.too_large"
            assert sent == []
            assert a.pending() == []
    finally:
        server.stop()
