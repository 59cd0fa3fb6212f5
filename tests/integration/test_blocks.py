"""Blocking over the real server, on the raw wire: the blocked user is never told.

Alice blocks Bob. Bob's 1:1 messages are "sent" but reach only Bob's own other
devices; his typing goes nowhere; he sees Alice offline with no last seen and gets no
receipts from her for 1:1 messages. Group life goes on as before.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from taube.protocol.frames import (
    DevicePayload,
    Message,
    Presence,
    Read,
    Receipt,
    Send,
    SetTyping,
    Typing,
    Watch,
)
from taube.protocol.ids import uuid7
from tests.conftest import fresh_name, two_nodes
from tests.serverproc import ServerProcess
from tests.wire import Account, Wire, connect, http, login, quiet, register


async def block(
    session: aiohttp.ClientSession, base: str, who: Account, handle: str, method: str = "PUT"
) -> tuple[int, object]:
    return await http(session, method, f"{base}/v1/blocks/{handle}", None, who.token)


def of_kind(frames: list[object], kind: type) -> list[object]:
    return [f for f in frames if isinstance(f, kind)]


async def test_blocked_one_to_one_is_sent_but_reaches_only_the_senders_devices(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    alice = await register(session, server.url, "alice")
    bob = await register(session, server.url, "bob")
    bob2 = await login(session, server.url, "bob")
    a = await connect(session, server.ws_url, alice.token)
    b1 = await connect(session, server.ws_url, bob.token)
    b2 = await connect(session, server.ws_url, bob2.token)
    assert (await block(session, server.url, alice, "bob"))[0] == 204

    blocked_id = await b1.send("@alice", b"hello?")
    (sent,) = await b1.sent(1)
    assert (sent.id, sent.duplicate) == (blocked_id, False)
    (copy,) = await b2.messages(1)  # Bob's other device has its copy
    assert (copy.id, copy.conversation) == (blocked_id, "@alice")
    # Per-device payloads: the stale-device check is as before (Alice's device is still
    # expected), and the message still reaches Bob's other device only.
    await b1.send_frame(
        Send(id=uuid7(), to="@alice", payloads=[DevicePayload(user="bob", device=2, payload=b"x")])
    )
    error = await b1.error()
    assert error.code == "msg.stale_devices"
    assert error.details is not None
    assert error.details["missing"] == ["alice.1"]
    per_device = uuid7()
    await b1.send_frame(
        Send(
            id=per_device,
            to="@alice",
            payloads=[
                DevicePayload(user="alice", device=1, payload=b"for alice"),
                DevicePayload(user="bob", device=2, payload=b"for bob 2"),
            ],
        )
    )
    assert (await b1.sent(1))[0].id == per_device
    (copy,) = await b2.messages(1)
    assert copy.payload == b"for bob 2"
    assert of_kind(await quiet(a, 0.5), Message) == []
    # Nothing waits for Alice either: a new connection of hers gets nothing.
    await a.close()
    a = await connect(session, server.ws_url, alice.token)
    assert of_kind(await quiet(a, 0.3), Message) == []
    # No delivered receipt ever comes back to Bob.
    assert of_kind(await quiet(b1, 0.3), Receipt) == []

    # After unblocking, new messages arrive (the blocked ones never do).
    assert (await block(session, server.url, alice, "bob", "DELETE"))[0] == 204
    after = await b1.send("@alice", b"and now?")
    (got,) = await a.messages(1)
    assert (got.id, got.payload) == (after, b"and now?")
    receipt = await b1.until(Receipt)
    assert (receipt.status, receipt.ids) == ("delivered", [after])


async def test_block_list_unblock_and_errors(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    alice = await register(session, server.url, "alice")
    for handle in ("bob", "carol"):
        await register(session, server.url, handle)
    assert await http(session, "GET", f"{server.url}/v1/blocks", None, alice.token) == (
        200,
        {"handles": []},
    )
    for handle in ("carol", "@BOB", "bob"):  # idempotent; handles normalised
        assert (await block(session, server.url, alice, handle))[0] == 204
    assert await http(session, "GET", f"{server.url}/v1/blocks", None, alice.token) == (
        200,
        {"handles": ["bob", "carol"]},
    )
    assert (await block(session, server.url, alice, "carol", "DELETE"))[0] == 204
    assert (await block(session, server.url, alice, "carol", "DELETE"))[0] == 204
    assert (await http(session, "GET", f"{server.url}/v1/blocks", None, alice.token))[1] == {
        "handles": ["bob"]
    }
    status, body = await block(session, server.url, alice, "ghost")
    assert (status, body["code"]) == (404, "user.not_found")  # type: ignore[index]
    status, body = await block(session, server.url, alice, "ghost", "DELETE")
    assert (status, body["code"]) == (404, "user.not_found")  # type: ignore[index]
    status, body = await block(session, server.url, alice, "alice")
    assert (status, body["code"]) == (422, "request.invalid")  # type: ignore[index]
    status, body = await http(session, "PUT", f"{server.url}/v1/blocks/bob")
    assert status == 401


async def test_presence_typing_and_read_receipts_are_withheld_groups_are_not(
    server: ServerProcess, session: aiohttp.ClientSession
) -> None:
    alice, bob, carol = [await register(session, server.url, h) for h in ("alice", "bob", "carol")]
    _, group = await http(
        session, "POST", f"{server.url}/v1/groups", {"name": "G", "members": ["bob"]}, alice.token
    )
    gid = group["id"]
    a = await connect(session, server.ws_url, alice.token)
    b = await connect(session, server.ws_url, bob.token)
    c = await connect(session, server.ws_url, carol.token)
    await quiet(a, 0.2)
    # A message from Bob before the block: Alice reads it after blocking him.
    early = await b.send("@alice", b"before")
    await a.messages(1)
    await b.until(Receipt)  # delivered, before the block
    for watcher in (b, c):
        await watcher.send_frame(Watch(users=["alice"]))
        first = await watcher.until(Presence)
        assert (first.user, first.online) == ("alice", True)

    assert (await block(session, server.url, alice, "bob"))[0] == 204
    hidden = await b.until(Presence)
    assert (hidden.user, hidden.online, hidden.last_seen_ms) == ("alice", False, None)
    # Alice goes and comes back: Carol sees it, Bob does not.
    await a.close()
    gone = await c.until(Presence)
    assert (gone.online, gone.last_seen_ms is not None) == (False, True)
    a = await connect(session, server.ws_url, alice.token)
    assert (await c.until(Presence)).online is True
    assert of_kind(await quiet(b, 0.4), Presence) == []
    await b.send_frame(Watch(users=["alice"]))
    again = await b.until(Presence)
    assert (again.online, again.last_seen_ms) == (False, None)

    # Typing: Bob's 1:1 typing goes nowhere; Carol's arrives; group typing arrives.
    await b.send_frame(SetTyping(conversation="@alice"))
    await c.send_frame(SetTyping(conversation="@alice"))
    typing = await a.until(Typing)
    assert typing.user == "carol"
    await b.send_frame(SetTyping(conversation=f"#{gid}"))
    typing = await a.until(Typing)
    assert (typing.user, typing.conversation) == ("bob", f"#{gid}")
    assert [t for t in of_kind(await quiet(a, 0.3), Typing) if t.user == "bob"] == []  # type: ignore[attr-defined]

    # Read receipt for Bob's early message: not sent to Bob.
    await a.send_frame(Read(conversation="@bob", sender="bob", ids=[early]))
    assert of_kind(await quiet(b, 0.4), Receipt) == []

    # Group messages from Bob still reach Alice, with their receipts.
    in_group = await b.send(f"#{gid}", b"to the group")
    (got,) = await a.messages(1)
    assert (got.id, got.conversation) == (in_group, f"#{gid}")
    receipt = await b.until(Receipt)
    assert (receipt.conversation, receipt.ids) == (f"#{gid}", [in_group])

    # Unblocking shows Alice's presence to Bob again at once.
    assert (await block(session, server.url, alice, "bob", "DELETE"))[0] == 204
    shown = await b.until(Presence)
    assert (shown.user, shown.online) == ("alice", True)


async def wire_messages(wire: Wire, seconds: float) -> list[Message]:
    return [f for f in await quiet(wire, seconds) if isinstance(f, Message)]


async def test_a_block_made_on_one_node_holds_on_another_within_a_second(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """Two nodes on one PostgreSQL schema and NATS: Alice blocks Bob on node 1 while
    Bob sends through node 2, whose cache knew Alice had blocked no one."""
    async with two_nodes(tmp_path) as (n1, n2):
        tag = fresh_name("u").replace("_", "")
        alice = await register(session, n1.url, f"alice{tag}")
        bob = await register(session, n2.url, f"bob{tag}")
        a = await connect(session, n1.ws_url, alice.token)
        b = await connect(session, n2.ws_url, bob.token)
        await b.send(f"@{alice.handle}", b"warm the caches")
        await b.sent(1)
        assert len(await a.messages(1)) == 1
        assert (await block(session, n1.url, alice, bob.handle))[0] == 204
        await asyncio.sleep(0.5)  # well within a second
        blocked = await b.send(f"@{alice.handle}", b"blocked")
        assert (await b.sent(1))[0].id == blocked
        assert await wire_messages(a, 0.5) == []
        assert (await block(session, n1.url, alice, bob.handle, "DELETE"))[0] == 204
        await asyncio.sleep(0.5)
        after = await b.send(f"@{alice.handle}", b"unblocked")
        (got,) = await a.messages(1)
        assert got.id == after
