"""End-to-end encryption through the real server: SDK clients on loopback.

What the issue asks the tests to show: 1:1, group and multi-device messages
decrypt on every intended device and on no other; a removed group member cannot
read what is sent after; the store and the server log hold no plaintext (SQLite
and PostgreSQL); a stale device list is repaired by the SDK on its own; a message
that cannot be decrypted is asked for again and arrives; changed keys are
announced and block sends to a verified contact.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from taube.client import (
    Client,
    Message,
    SecurityCodeChanged,
    UntrustedIdentity,
    login,
    register,
)
from taube.client.envelope import decode_envelope
from taube.crypto import SenderKeyMessage, SenderKeyReceiver, UnknownSenderKey
from tests.client.conftest import FAST, PASSWORD, assert_no_more_messages, collect
from tests.conftest import drop_schema, fresh_name, postgres_dsn, schema_dsn
from tests.serverproc import UNIT_S, ServerProcess


def secret_text() -> str:
    """A plaintext that cannot appear anywhere by chance."""
    return f"geheim-{secrets.token_hex(8)}"


async def new_device(server: ServerProcess, tmp: Path, name: str, *, register_user: bool) -> Path:
    profile = tmp / f"{name}-{secrets.token_hex(3)}"
    if register_user:
        await register(name, PASSWORD, servers=server.url, profile=profile)
    else:
        await login(name, PASSWORD, servers=server.url, profile=profile)
    return profile


async def messages_until(client: Client, n: int, seconds: float = 10) -> list[Message]:
    return await collect(client, n, seconds)


def sqlite_bytes(server: ServerProcess) -> bytes:
    """Every byte of the server's SQLite store (database, WAL) and its log."""
    blobs = [p.read_bytes() for p in server.data_dir.glob("taube.db*")]
    return b"".join(blobs) + server.log_path.read_bytes()


# ------------------------------------------------------------------ 1:1 and devices


async def test_one_to_one_both_ways_is_encrypted_and_the_server_holds_no_plaintext(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice = await new_device(server, tmp_path, "alice", register_user=True)
    bob = await new_device(server, tmp_path, "bob", register_user=True)
    texts = [secret_text() for _ in range(6)]
    async with Client(alice, options=FAST) as a, Client(bob, options=FAST) as b:
        await a.wait_sent([await a.send("@bob", texts[0])], timeout=10 * UNIT_S)
        got = await messages_until(b, 1)
        assert got[0].text == texts[0]
        assert got[0].encrypted
        await b.wait_sent([await b.send("@alice", texts[1])], timeout=10 * UNIT_S)
        assert (await messages_until(a, 1))[0].text == texts[1]
        ids = [await a.send("@bob", t) for t in texts[2:4]]
        await a.wait_sent(ids, timeout=10 * UNIT_S)
        got = await messages_until(b, 2)
        assert [m.text for m in got] == texts[2:4]
        assert all(m.encrypted for m in got)
        # What the server relayed was an envelope, not the text.
        assert decode_envelope(got[0].payload) is not None
    async with Client(alice, options=FAST) as a:  # bob offline: these wait in the store
        ids = [await a.send("@bob", t) for t in texts[4:]]
        await a.wait_sent(ids, timeout=10 * UNIT_S)
    server.stop()
    everything = sqlite_bytes(server)
    assert b'{"e":1,"p":"' in everything  # the undelivered payloads are there...
    for text in texts:
        assert text.encode() not in everything  # ...and no plaintext anywhere


async def test_every_device_of_both_users_gets_a_copy_and_nobody_else(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice1 = await new_device(server, tmp_path, "alice", register_user=True)
    alice2 = await new_device(server, tmp_path, "alice", register_user=False)
    bob1 = await new_device(server, tmp_path, "bob", register_user=True)
    bob2 = await new_device(server, tmp_path, "bob", register_user=False)
    carol = await new_device(server, tmp_path, "carol", register_user=True)
    text = secret_text()
    async with (
        Client(alice1, options=FAST) as a1,
        Client(alice2, options=FAST) as a2,
        Client(bob1, options=FAST) as b1,
        Client(bob2, options=FAST) as b2,
        Client(carol, options=FAST) as c,
    ):
        await a1.wait_sent([await a1.send("@bob", text)], timeout=10 * UNIT_S)
        for client, conversation in ((b1, "@alice"), (b2, "@alice"), (a2, "@bob")):
            (got,) = await messages_until(client, 1)
            assert (got.text, got.conversation, got.encrypted) == (text, conversation, True)
        await assert_no_more_messages(c)


async def test_a_device_added_later_is_picked_up_by_the_sender_without_help(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice = await new_device(server, tmp_path, "alice", register_user=True)
    bob1 = await new_device(server, tmp_path, "bob", register_user=True)
    async with Client(alice, options=FAST) as a, Client(bob1, options=FAST) as b1:
        await a.wait_sent([await a.send("@bob", "before")], timeout=10 * UNIT_S)
        assert (await messages_until(b1, 1))[0].text == "before"
        bob2 = await new_device(server, tmp_path, "bob", register_user=False)
        async with Client(bob2, options=FAST) as b2:
            changed: list[str] = []
            # The sender's device list is stale now: the server refuses, the SDK
            # meets the new device and sends again under the same id.
            message_id = await a.send("@bob", "after")
            await a.wait_sent([message_id], timeout=10 * UNIT_S)
            for client in (b1, b2):
                (got,) = await messages_until(client, 1)
                assert (got.id, got.text) == (message_id, "after")
            async with asyncio.timeout(5 * UNIT_S):
                async for event in a.events():
                    if isinstance(event, SecurityCodeChanged):
                        changed.append(event.user)
                        break
            assert changed == ["bob"]


# ------------------------------------------------------------------ groups


async def test_group_messages_reach_every_member_device_and_a_removed_member_cannot_read_on(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice = await new_device(server, tmp_path, "alice", register_user=True)
    bob = await new_device(server, tmp_path, "bob", register_user=True)
    carol = await new_device(server, tmp_path, "carol", register_user=True)
    first, second = secret_text(), secret_text()
    async with (
        Client(alice, options=FAST) as a,
        Client(bob, options=FAST) as b,
        Client(carol, options=FAST) as c,
    ):
        group = await a.api.create_group("familie", ["bob", "carol"])
        await a.wait_sent([await a.send(group.address, first)], timeout=10 * UNIT_S)
        for client in (b, c):
            got = [m for m in await messages_until(client, 1)]
            assert (got[0].text, got[0].conversation, got[0].encrypted) == (
                first,
                group.address,
                True,
            )
        await a.api.remove_member(group.id, "carol")
        await a.wait_sent([await a.send(group.address, second)], timeout=10 * UNIT_S)
        (later,) = await messages_until(b, 1)
        assert later.text == second
        await assert_no_more_messages(c)
    # Even with the ciphertext bob got, carol's keys do not open it: alice rotated.
    envelope = decode_envelope(later.payload)
    assert envelope is not None
    assert envelope.g is not None
    key_id = SenderKeyMessage.from_bytes(envelope.g).key_id
    conn = sqlite3.connect(carol / "taube.db")
    states = conn.execute(
        "SELECT state FROM e2ee_sender_in WHERE grp = ? AND user = 'alice'", (group.address,)
    ).fetchall()
    conn.close()
    assert states, "carol held alice's earlier sender key"
    for (state,) in states:
        with pytest.raises(UnknownSenderKey):
            SenderKeyReceiver.from_bytes(bytes(state)).decrypt(envelope.g)
        assert SenderKeyReceiver.from_bytes(bytes(state)).key_id != key_id
    server.stop()
    everything = sqlite_bytes(server)
    assert first.encode() not in everything
    assert second.encode() not in everything


# ------------------------------------------------------------------ failures and trust


async def test_a_message_that_cannot_be_decrypted_is_asked_for_again_and_arrives(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice = await new_device(server, tmp_path, "alice", register_user=True)
    bob = await new_device(server, tmp_path, "bob", register_user=True)
    async with Client(alice, options=FAST) as a:
        first = await a.send("@bob", "one")
        await a.wait_sent([first], timeout=10 * UNIT_S)
        async with Client(bob, options=FAST) as b:
            assert (await messages_until(b, 1))[0].text == "one"
        # Bob's device loses its session (a restored backup, a bug): alice's next
        # message still names a one-time prekey bob no longer has.
        conn = sqlite3.connect(bob / "taube.db")
        conn.execute("DELETE FROM e2ee_sessions")
        conn.commit()
        conn.close()
        lost = await a.send("@bob", "two")
        await a.wait_sent([lost], timeout=10 * UNIT_S)
        async with Client(bob, options=FAST) as b:
            failed, resent = await messages_until(b, 2)
            assert not failed.decrypted
            assert failed.id == lost
            assert failed.content.reason.startswith("message could not be decrypted")  # type: ignore[union-attr]
            assert resent.decrypted
            assert (resent.id, resent.text) == (lost, "two")
            # The chat showed the placeholder until the resend took its place.
            shown = [(i.id, i.text) for i in await b.history("@alice")]
            assert shown == [(first, "one"), (lost, "two")]


async def test_a_resend_goes_only_to_a_device_that_got_the_message(
    server: ServerProcess, tmp_path: Path
) -> None:
    """A message id is no key: a member who joined the group later, or a device added to
    an account later, gets nothing by asking for an earlier message again; a device
    that got it does."""
    alice = await new_device(server, tmp_path, "alice", register_user=True)
    bob = await new_device(server, tmp_path, "bob", register_user=True)
    carol = await new_device(server, tmp_path, "carol", register_user=True)
    async with (
        Client(alice, options=FAST) as a,
        Client(bob, options=FAST) as b,
        Client(carol, options=FAST) as c,
    ):
        group = await a.api.create_group("familie", ["bob"])
        before = await a.send(group.address, secret_text())
        direct = await a.send("@bob", secret_text())
        await a.wait_sent([before, direct], timeout=10 * UNIT_S)
        await a.api.add_members(group.id, ["carol"])
        bob2 = await new_device(server, tmp_path, "bob", register_user=False)
        async with Client(bob2, options=FAST) as b2:
            e2ee = a._require_e2ee()
            assert await e2ee.resend(before, "carol", c.device) is None
            assert await e2ee.resend(direct, "bob", b2.device) is None
            assert await e2ee.resend(before, "bob", b.device) is not None
            assert await e2ee.resend(direct, "bob", b.device) is not None


async def test_a_group_message_that_cannot_be_decrypted_is_asked_for_again_and_arrives(
    server: ServerProcess, tmp_path: Path
) -> None:
    """The sender answers a retry request for a group message with a copy for the asking
    device alone (the group's members are looked up by handle)."""
    alice = await new_device(server, tmp_path, "alice", register_user=True)
    bob = await new_device(server, tmp_path, "bob", register_user=True)
    carol = await new_device(server, tmp_path, "carol", register_user=True)
    async with Client(alice, options=FAST) as a:
        async with Client(bob, options=FAST) as b:
            group = await a.api.create_group("team", ["bob", "carol"])
            await a.wait_sent([await a.send(group.address, "one")], timeout=10 * UNIT_S)
            assert (await messages_until(b, 1))[0].text == "one"
        # Bob's device loses its sessions and alice's sender key (a restored backup).
        conn = sqlite3.connect(bob / "taube.db")
        conn.execute("DELETE FROM e2ee_sessions")
        conn.execute("DELETE FROM e2ee_sender_in")
        conn.commit()
        conn.close()
        lost = await a.send(group.address, "two")
        await a.wait_sent([lost], timeout=10 * UNIT_S)
        async with Client(bob, options=FAST) as b:
            failed, resent = await messages_until(b, 2)
            assert not failed.decrypted
            assert failed.id == lost
            assert resent.decrypted
            assert (resent.id, resent.text, resent.conversation) == (lost, "two", group.address)
    async with Client(carol, options=FAST) as c:
        assert [m.text for m in await messages_until(c, 2)] == ["one", "two"]


async def test_changed_keys_of_a_verified_contact_block_sending_until_verified_again(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice = await new_device(server, tmp_path, "alice", register_user=True)
    bob = await new_device(server, tmp_path, "bob", register_user=True)
    async with Client(alice, options=FAST) as a, Client(bob, options=FAST) as b:
        number_a, verified = await a.safety_number("bob")
        assert not verified
        number_b, _ = await b.safety_number("alice")
        assert number_a.digits == number_b.digits
        assert len(number_a.digits) == 60
        await a.verify("bob")
        assert (await a.safety_number("bob"))[1]
        earlier = await a.send("@bob", "before the new phone")
        await a.wait_sent([earlier], timeout=10 * UNIT_S)
        await new_device(server, tmp_path, "bob", register_user=False)  # bob's new phone
        number_after, verified = await a.safety_number("bob")
        assert number_after.digits != number_a.digits
        assert not verified
        with pytest.raises(UntrustedIdentity):
            await a.send("@bob", "are you still you?")
        # Nor does a resend request (plaintext, anyone's to forge) get it out meanwhile.
        assert await a._require_e2ee().resend(earlier, "bob", b.device) is None
        await a.verify("bob")
        sent = await a.send("@bob", "verified again")
        await a.wait_sent([sent], timeout=10 * UNIT_S)
        assert [m.text for m in await messages_until(b, 2)] == [
            "before the new phone",
            "verified again",
        ]


# ------------------------------------------------------------------ PostgreSQL


@pytest.fixture
async def pg_server(tmp_path: Path) -> AsyncIterator[tuple[ServerProcess, str, str]]:
    dsn = postgres_dsn()
    schema = fresh_name("e2ee")
    conn = await asyncpg.connect(dsn)
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    await conn.close()
    proc = ServerProcess(tmp_path / "pg-node", store=schema_dsn(dsn, schema)).start()
    try:
        yield proc, dsn, schema
    finally:
        proc.stop()
        await drop_schema(dsn, schema)


async def test_postgresql_store_holds_no_plaintext(
    pg_server: tuple[ServerProcess, str, str], tmp_path: Path
) -> None:
    server, dsn, schema = pg_server
    alice = await new_device(server, tmp_path, "alice", register_user=True)
    bob = await new_device(server, tmp_path, "bob", register_user=True)
    one, group_text = secret_text(), secret_text()
    async with Client(alice, options=FAST) as a:  # bob offline: the messages wait
        group = await a.api.create_group("team", ["bob"])
        ids = [await a.send("@bob", one), await a.send(group.address, group_text)]
        await a.wait_sent(ids, timeout=10 * UNIT_S)
        conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
        try:
            tables = [
                r["table_name"]
                for r in await conn.fetch(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                    schema,
                )
            ]
            dump = b""
            for table in tables:
                for row in await conn.fetch(f'SELECT * FROM "{table}"'):
                    dump += repr(tuple(row.values())).encode()
        finally:
            await conn.close()
    async with Client(bob, options=FAST) as b:
        got = await messages_until(b, 2)
        assert [m.text for m in got] == [one, group_text]
    assert "inbox" in tables  # the payloads were there
    assert b'{"e":1,' in dump
    assert one.encode() not in dump
    assert group_text.encode() not in dump
    assert one.encode() not in server.log_path.read_bytes()
    assert group_text.encode() not in server.log_path.read_bytes()
