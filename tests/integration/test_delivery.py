"""Delivery over the real server: offline delivery, durability, resume, idempotency,
groups, multi-device and receipts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from taube.protocol.frames import Ack, GroupEvent, Message, Read, Receipt
from tests.serverproc import ServerProcess
from tests.wire import Account, Wire, connect, http, login, quiet, register


@pytest.fixture(params=["edge", "aiohttp"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    """Each test on both ways a WebSocket is served: taken at the edge (direct_ws), as
    clients connect, and by aiohttp, as behind a trusted proxy (the edge leaves those
    to aiohttp, which reads the client's address from the proxy's header)."""
    proxied = {"server": {"trusted_proxies": ["127.0.0.1"]}}
    proc = ServerProcess(
        tmp_path / "server", settings=proxied if request.param == "aiohttp" else None
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


async def alice_sent_to_bob(
    server: ServerProcess, session: aiohttp.ClientSession, *payloads: bytes
) -> tuple[Wire, Wire, list[str], Account]:
    """Alice sends ``payloads`` to bob and has them stored ("sent"); then bob connects.
    Alice's and bob's connections, the message ids, and bob's account."""
    alice = await register(session, server.url, "alice")
    bob = await register(session, server.url, "bob")
    a = await connect(session, server.ws_url, alice.token)
    ids = [await a.send("@bob", payload) for payload in payloads]
    await a.sent(len(ids))
    return a, await connect(session, server.ws_url, bob.token), ids, bob


async def test_offline_delivery_500_in_order_once(server: ServerProcess, session) -> None:
    alice = await register(session, server.url, "alice")
    bob = await register(session, server.url, "bob")
    a = await connect(session, server.ws_url, alice.token)
    ids = [await a.send("@bob", f"m{i}".encode()) for i in range(500)]
    sent = await a.sent(500)
    assert [s.id for s in sent] == ids
    b = await connect(session, server.ws_url, bob.token)
    got = await b.messages(500)
    assert [m.id for m in got] == ids
    assert [m.payload for m in got] == [f"m{i}".encode() for i in range(500)]
    assert all(m.conversation == "@alice" and m.sender == "alice" for m in got)
    assert [m.seq for m in got] == list(range(1, 501))
    assert not [f for f in await quiet(b) if isinstance(f, Message)]


async def test_sends_on_new_and_known_routes_keep_their_order(
    server: ServerProcess, session
) -> None:
    """A send to an address new to the device is checked against the directory (the
    read loop); a send on a known route is taken as its frame arrives. Mixed, they are
    still answered, stored and delivered in the order they came."""
    alice = await register(session, server.url, "alice")
    bob = await register(session, server.url, "bob")
    carol = await register(session, server.url, "carol")
    a = await connect(session, server.ws_url, alice.token)
    warm = await a.send("@bob", b"warm")  # from now on the route to @bob is known
    await a.sent(1)
    targets = ["@bob", "@carol", "@bob", "@bob", "@carol", "@bob"]
    ids = [await a.send(to, str(i).encode()) for i, to in enumerate(targets)]
    assert [s.id for s in await a.sent(len(ids))] == ids
    b = await connect(session, server.ws_url, bob.token)
    c = await connect(session, server.ws_url, carol.token)
    to_bob = [warm] + [i for i, to in zip(ids, targets, strict=True) if to == "@bob"]
    to_carol = [i for i, to in zip(ids, targets, strict=True) if to == "@carol"]
    assert [m.id for m in await b.messages(len(to_bob))] == to_bob
    assert [m.id for m in await c.messages(len(to_carol))] == to_carol


async def test_acknowledged_messages_survive_kill_9(tmp_path: Path, session) -> None:
    server = ServerProcess(tmp_path / "srv").start()
    try:
        alice = await register(session, server.url, "alice")
        bob = await register(session, server.url, "bob")
        a = await connect(session, server.ws_url, alice.token)
        ids = [await a.send("@bob", f"{i}".encode()) for i in range(200)]
        await a.sent(200)
        server.kill()
        server.start()
        b = await connect(session, server.ws_url, bob.token)
        got = await b.messages(200)
        assert [m.id for m in got] == ids
    finally:
        server.stop()


async def test_resume_after_cut_connection_nothing_missing_or_doubled(
    server: ServerProcess, session
) -> None:
    alice = await register(session, server.url, "alice")
    bob = await register(session, server.url, "bob")
    a = await connect(session, server.ws_url, alice.token)
    ids = [await a.send("@bob", str(i).encode()) for i in range(300)]
    await a.sent(300)
    b = await connect(session, server.ws_url, bob.token)
    # Take 120 items but ack only the first 100, then cut the connection.
    first = await b.messages(120, ack=False)
    await b.send_frame(Ack(seq=first[99].seq))
    await b.ws.close()
    b2 = await connect(session, server.ws_url, bob.token, last_seq=first[99].seq)
    rest = await b2.messages(200)
    received = [m.id for m in first[:100]] + [m.id for m in rest]
    assert received == ids


async def test_resume_from_last_seq_only_counts_as_ack(server: ServerProcess, session) -> None:
    """A device that received items but never acked them gets them again (at least once
    on the wire; the seq lets the client drop the copies it already has)."""
    alice = await register(session, server.url, "alice")
    bob = await register(session, server.url, "bob")
    a = await connect(session, server.ws_url, alice.token)
    ids = [await a.send("@bob", b"x") for _ in range(10)]
    await a.sent(10)
    b = await connect(session, server.ws_url, bob.token)
    await b.messages(10, ack=False)
    await b.close()
    b2 = await connect(session, server.ws_url, bob.token, last_seq=0)
    again = await b2.messages(10)
    assert [m.id for m in again] == ids


async def test_same_message_id_is_stored_once(server: ServerProcess, session) -> None:
    alice = await register(session, server.url, "alice")
    bob = await register(session, server.url, "bob")
    a = await connect(session, server.ws_url, alice.token)
    message_id = await a.send("@bob", b"once")
    await a.send("@bob", b"once", message_id)
    first, second = await a.sent(2)
    assert (first.id, first.duplicate) == (message_id, False)
    assert (second.id, second.duplicate) == (message_id, True)
    assert second.sent_at_ms == first.sent_at_ms
    b = await connect(session, server.ws_url, bob.token)
    assert [m.id for m in await b.messages(1)] == [message_id]
    assert not [f for f in await quiet(b) if isinstance(f, Message)]


async def test_group_of_50_reaches_every_member_device_once(server: ServerProcess, session):
    owner = await register(session, server.url, "owner")
    members = [await register(session, server.url, f"member{i:02d}") for i in range(49)]
    outsider = await register(session, server.url, "outsider")
    status, group = await http(
        session, "POST", f"{server.url}/v1/groups",
        {"name": "Fifty", "members": [m.handle for m in members]}, owner.token,
    )  # fmt: skip
    assert status == 201, group
    assert len(group["members"]) == 50
    address = group["address"]
    o = await connect(session, server.ws_url, owner.token)
    message_id = await o.send(address, b"hello all")
    await o.sent(1)
    for member in members:
        wire = await connect(session, server.ws_url, member.token)
        created: GroupEvent = await wire.until(GroupEvent)
        assert (created.event, created.group) == ("created", group["id"])
        (message,) = await wire.messages(1)
        assert (message.id, message.conversation) == (message_id, address)
        assert not [f for f in await quiet(wire, 0.05) if isinstance(f, Message)], member.handle
        await wire.close()
    x = await connect(session, server.ws_url, outsider.token)
    await x.send(address, b"let me in")
    error = await x.error()
    assert error.code == "group.not_member"
    assert error.ref is not None


async def test_multi_device_both_get_everything_and_sender_sees_own(server, session) -> None:
    alice1 = await register(session, server.url, "alice")
    alice2 = await login(session, server.url, "alice")
    bob1 = await register(session, server.url, "bob")
    bob2 = await login(session, server.url, "bob")
    a1 = await connect(session, server.ws_url, alice1.token)
    ids = [await a1.send("@bob", str(i).encode()) for i in range(20)]
    await a1.sent(20)
    for token in (bob1.token, bob2.token):
        wire = await connect(session, server.ws_url, token)
        got = await wire.messages(20)
        assert [m.id for m in got] == ids
        assert {m.conversation for m in got} == {"@alice"}
    a2 = await connect(session, server.ws_url, alice2.token)
    own = await a2.messages(20)
    assert [m.id for m in own] == ids
    assert {m.conversation for m in own} == {"@bob"}
    assert {m.sender_device for m in own} == {alice1.device}


async def test_delivered_then_read_receipts(server: ServerProcess, session) -> None:
    a, b, (message_id,), _ = await alice_sent_to_bob(server, session, b"hi")
    (message,) = await b.messages(1)
    delivered: Receipt = await a.until(Receipt)
    assert (delivered.status, delivered.ids, delivered.by) == ("delivered", [message_id], "bob")
    assert delivered.conversation == "@bob"
    await a.send_frame(Ack(seq=delivered.seq))
    await b.send_frame(Read(conversation="@alice", sender="alice", ids=[message.id]))
    read: Receipt = await a.until(Receipt)
    assert (read.status, read.ids, read.by) == ("read", [message_id], "bob")


@pytest.mark.parametrize(("ack_delay_ms", "receipts"), [(0, [[0], [1]]), (2000, [[0, 1]])])
async def test_acks_that_come_together_are_folded_into_one_receipt(
    tmp_path: Path, session, ack_delay_ms: int, receipts: list[list[int]]
) -> None:
    """Small acks wait ``ack_delay_ms`` for the next ones (a chat acks one message at a
    time): two acks then make one commit and one delivered receipt. With 0 each ack is
    committed on its own, so the receipts show that the setting is what folds them."""
    server = ServerProcess(tmp_path / "srv", settings={"store": {"ack_delay_ms": ack_delay_ms}})
    server.start()
    try:
        a, b, ids, _ = await alice_sent_to_bob(server, session, b"one", b"two")
        got = await b.messages(2, ack=False)
        await b.send_frame(Ack(seq=got[0].seq))
        await b.send_frame(Ack(seq=got[1].seq))
        seen = []
        for _ in receipts:
            receipt: Receipt = await a.until(Receipt)
            await a.send_frame(Ack(seq=receipt.seq))
            seen.append(receipt.ids)
        assert seen == [[ids[i] for i in want] for want in receipts]
        assert not [f for f in await quiet(a) if isinstance(f, Receipt)]
    finally:
        server.stop()


async def test_a_waiting_ack_counts_when_the_connection_closes(tmp_path: Path, session) -> None:
    """An ack still waiting to be folded with the next is committed at the close."""
    server = ServerProcess(tmp_path / "srv", settings={"store": {"ack_delay_ms": 60_000}})
    server.start()
    try:
        a, b, (message_id,), bob = await alice_sent_to_bob(server, session, b"hi")
        (message,) = await b.messages(1, ack=False)
        await b.send_frame(Ack(seq=message.seq))
        await b.close()
        delivered: Receipt = await a.until(Receipt)
        assert delivered.ids == [message_id]
        b2 = await connect(session, server.ws_url, bob.token, last_seq=0)
        assert not [f for f in await quiet(b2) if isinstance(f, Message)]
    finally:
        server.stop()


async def test_retry_of_a_stored_message_is_a_duplicate_even_after_leaving(
    server: ServerProcess, session
) -> None:
    alice = await register(session, server.url, "alice")
    await register(session, server.url, "bob")
    status, group = await http(
        session, "POST", f"{server.url}/v1/groups", {"name": "G", "members": ["bob"]}, alice.token
    )
    a = await connect(session, server.ws_url, alice.token)
    message_id = await a.send(group["address"], b"before leaving")
    (sent,) = await a.sent(1)
    status, _ = await http(
        session, "DELETE", f"{server.url}/v1/groups/{group['id']}/members/alice", token=alice.token
    )
    assert status == 200
    await a.send(group["address"], b"before leaving", message_id)  # the outbox retries
    (again,) = await a.sent(1)
    assert (again.duplicate, again.sent_at_ms) == (True, sent.sent_at_ms)
    await a.send(group["address"], b"after leaving")
    assert (await a.error()).code == "group.not_member"


def inbox_reads(server: ServerProcess, handle: str) -> list[str]:
    """The server's debug lines for reads of ``handle``'s inbox that found items."""
    text = server.log_path.read_text(errors="replace")
    return [line for line in text.splitlines() if f"inbox read user={handle} " in line]


async def test_a_caught_up_device_gets_new_messages_with_their_doorbells_not_from_the_store(
    tmp_path: Path, session
) -> None:
    """Once a connection has read its inbox to the end, each new item comes with the
    doorbell its commit rings (the item's frame itself) and the store is not read
    again. If the doorbell broke, delivery would still be right, only slower: so this
    reads the server's debug log, where every inbox read that finds items is a line."""
    server = ServerProcess(tmp_path / "server", settings={"server": {"log_level": "debug"}})
    server.start()
    try:
        alice = await register(session, server.url, "alice")
        bob = await register(session, server.url, "bob")
        a = await connect(session, server.ws_url, alice.token)
        b = await connect(session, server.ws_url, bob.token)
        assert await quiet(b) == []  # its first read found nothing: caught up
        for i in range(20):
            message_id = await a.send("@bob", f"live {i}".encode())
            (got,) = await b.messages(1)
            assert (got.id, got.seq) == (message_id, i + 1)
        assert inbox_reads(server, "bob") == []

        # The same log does show a read where one is due: bob away, three messages
        # waiting when he comes back (resuming after the 20 he acked).
        await b.close()
        ids = [await a.send("@bob", f"waiting {i}".encode()) for i in range(3)]
        await a.sent(20 + 3)
        b = await connect(session, server.ws_url, bob.token, last_seq=20)
        assert [m.id for m in await b.messages(3)] == ids
        (read,) = inbox_reads(server, "bob")
        assert read.endswith("items=3")
    finally:
        server.stop()
