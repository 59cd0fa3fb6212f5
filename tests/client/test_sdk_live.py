"""The SDK against the real server: outbox durability, resume, failover, errors.

Each test starts its own server process (tests/conftest.py) and kills or
restarts it where the story needs; nothing of ours is mocked.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from taube.client import (
    Api,
    Client,
    Connected,
    Disconnected,
    Message,
    NotLoggedIn,
    OutboxEntry,
    Profile,
    Receipt,
    SendTimeout,
    TaubeApiError,
    Text,
    encode_content,
)
from tests.client.conftest import FAST, Users, assert_no_more_messages, collect
from tests.serverproc import UNIT_S, ServerProcess, free_port


async def test_send_and_receive_with_decoded_content(users: Users) -> None:
    async with Client(users.alice, options=FAST) as alice, Client(users.bob, options=FAST) as bob:
        message_id = await alice.send("@bob", "hello")
        await alice.wait_sent([message_id], timeout=5 * UNIT_S)
        [msg] = await collect(bob, 1, 5)
    assert (msg.id, msg.sender, msg.conversation) == (message_id, "alice", "@alice")
    assert msg.content == Text(text="hello")
    assert msg.text == "hello"


async def test_outbox_holds_messages_while_the_server_is_down(
    server: ServerProcess, users: Users
) -> None:
    server.kill()
    texts = [f"offline {i}" for i in range(20)]
    async with Client(users.alice, options=FAST) as alice:
        ids = await alice.send_many([("@bob", t) for t in texts])
        with pytest.raises(SendTimeout) as timeout:
            await alice.wait_sent(ids, timeout=0.5 * UNIT_S)
        assert set(timeout.value.pending) == set(ids)
    # The queue outlives the client process (here: the client object).
    with Profile.open(users.alice) as profile:
        assert [e.id for e in profile.outbox()] == ids

    server.start()
    async with Client(users.alice, options=FAST) as alice:
        await alice.flush(timeout=10 * UNIT_S)
        assert alice.pending() == []
    with Profile.open(users.alice) as profile:
        assert profile.outbox_count() == 0
    async with Client(users.bob, options=FAST) as bob:
        got = await collect(bob, 20, 10)
        assert [m.text for m in got] == texts
        assert [m.id for m in got] == ids
        await assert_no_more_messages(bob)


async def test_a_resent_message_whose_ack_was_lost_arrives_once(users: Users) -> None:
    async with Client(users.alice, options=FAST) as alice:
        first = await alice.send("@bob", "only once")
        await alice.wait_sent([first], timeout=5 * UNIT_S)
        assert alice.pending() == []
    # Simulate a crash between the server's commit and our removal: put it back.
    with Profile.open(users.alice) as profile:
        profile.outbox_add([OutboxEntry(first, "@bob", encode_content("only once"), 0)])
    async with Client(users.alice, options=FAST) as alice:
        await alice.flush(timeout=5 * UNIT_S)
    async with Client(users.bob, options=FAST) as bob:
        got = await collect(bob, 1, 5)
        assert [m.id for m in got] == [first]
        await assert_no_more_messages(bob)


async def test_server_killed_mid_stream_nothing_lost_or_doubled(
    server: ServerProcess, users: Users
) -> None:
    total = 300
    texts = [f"m{i}" for i in range(total)]
    async with Client(users.alice, options=FAST) as alice, Client(users.bob, options=FAST) as bob:

        async def produce() -> None:
            for start in range(0, total, 10):
                await alice.send_many([("@bob", t) for t in texts[start : start + 10]])
                await asyncio.sleep(0.01)

        producer = asyncio.create_task(produce())
        got: list[Message] = []
        disconnects = 0
        restarted = False
        async with asyncio.timeout(30 * UNIT_S):
            async for event in bob.events():
                if isinstance(event, Disconnected):
                    disconnects += 1
                if not isinstance(event, Message):
                    continue
                got.append(event)
                if len(got) == 50 and not restarted:
                    server.kill()
                    await asyncio.sleep(0.2)
                    server.start()
                    restarted = True
                if len(got) == total:
                    break
        await producer
        await alice.flush(timeout=10 * UNIT_S)
        assert disconnects >= 1
        assert [m.text for m in got] == texts
        await assert_no_more_messages(bob)


async def test_restarting_the_client_resumes_where_the_app_left_off(users: Users) -> None:
    texts = [f"n{i}" for i in range(60)]
    async with Client(users.alice, options=FAST) as alice:
        await alice.send_many([("@bob", t) for t in texts])
        await alice.flush(timeout=5 * UNIT_S)

    async with Client(users.bob, options=FAST) as bob:
        first = await collect(bob, 20, 5)
    # The app crashes while handling the 30th: that one must come again; 21..29 not.
    second: list[Message] = []

    async def crash_while_handling() -> None:
        async with Client(users.bob, options=FAST) as bob:
            second.extend(await collect(bob, 10, 5))
            raise RuntimeError("app crash")

    with pytest.raises(RuntimeError, match="app crash"):
        await crash_while_handling()
    async with Client(users.bob, options=FAST) as bob:
        rest = await collect(bob, 31, 5)
        await assert_no_more_messages(bob)
    assert [m.text for m in first + second[:-1] + rest] == texts
    assert rest[0].id == second[-1].id


async def test_failover_to_the_next_server_url(users: Users, server: ServerProcess) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with Client(users.alice, servers=[dead, server.url], options=FAST) as alice:
        message_id = await alice.send("@bob", "via the second url")
        await alice.wait_sent([message_id], timeout=5 * UNIT_S)
        assert alice.server == server.url
    async with Client(users.bob, options=FAST) as bob:
        [msg] = await collect(bob, 1, 5)
    assert msg.text == "via the second url"


async def test_send_to_unknown_user_fails_and_leaves_the_outbox(users: Users) -> None:
    async with Client(users.alice, options=FAST) as alice:
        bad = await alice.send("@nobody", "into the void")
        good = await alice.send("@bob", "still delivered")
        with pytest.raises(TaubeApiError) as refused:
            await alice.wait_sent([bad], timeout=5 * UNIT_S)
        assert refused.value.code == "msg.unknown_recipient"
        assert refused.value.ref == bad
        await alice.wait_sent([good], timeout=5 * UNIT_S)
    with Profile.open(users.alice) as profile:
        assert profile.outbox_count() == 0


async def test_revoked_device_raises_not_logged_in(server: ServerProcess, users: Users) -> None:
    with Profile.open(users.alice) as profile:
        session = profile.session()
    assert session is not None
    async with Api(server.url, session.token) as api:
        await api.revoke_device(session.device)
    async with Client(users.alice, options=FAST) as alice:

        async def drain() -> None:
            async with asyncio.timeout(5 * UNIT_S):
                async for _ in alice.events():
                    pass

        with pytest.raises(NotLoggedIn):
            await drain()
        with pytest.raises(NotLoggedIn):
            await alice.send("@bob", "too late")


async def test_group_over_http_and_websocket(users: Users) -> None:
    async with Client(users.alice, options=FAST) as alice, Client(users.bob, options=FAST) as bob:
        info = await alice.api.create_group("friends", ["@bob"])
        assert {(m.handle, m.admin) for m in info.members} == {("alice", True), ("bob", False)}
        renamed = await alice.api.rename_group(f"#{info.id}", "best friends")
        assert renamed.name == "best friends"
        message_id = await alice.send(f"#{info.id}", "hi all")
        await alice.wait_sent([message_id], timeout=5 * UNIT_S)
        [msg] = await collect(bob, 1, 5)
        assert (msg.conversation, msg.sender, msg.text) == (f"#{info.id}", "alice", "hi all")
        with pytest.raises(TaubeApiError) as not_admin:
            await bob.api.add_members(info.id, ["alice"])
        assert not_admin.value.code == "group.not_admin"


async def test_connected_event_names_the_server(users: Users, server: ServerProcess) -> None:
    async with Client(users.bob, options=FAST) as bob:
        async with asyncio.timeout(5 * UNIT_S):
            async for event in bob.events():
                if isinstance(event, Connected):
                    assert (event.server, event.handle) == (server.url, "bob")
                    break


async def test_delivered_and_read_receipts(users: Users) -> None:
    async with Client(users.alice, options=FAST) as alice, Client(users.bob, options=FAST) as bob:
        message_id = await alice.send("@bob", "did you get this?")
        [msg] = await collect(bob, 1, 5)
        await bob.ack()  # delivered
        await bob.mark_read(msg.conversation, msg.sender, [msg.id])
        statuses: dict[str, Receipt] = {}
        async with asyncio.timeout(5 * UNIT_S):
            async for event in alice.events():
                if isinstance(event, Receipt):
                    statuses[event.status] = event
                    if len(statuses) == 2:
                        break
    assert set(statuses) == {"delivered", "read"}
    for receipt in statuses.values():
        assert (receipt.by, receipt.conversation, receipt.ids) == ("bob", "@bob", (message_id,))


async def test_an_app_that_falls_behind_still_gets_everything_once(users: Users) -> None:
    texts = [f"q{i}" for i in range(40)]
    async with Client(users.alice, options=FAST) as alice:
        await alice.send_many([("@bob", t) for t in texts])
        await alice.flush(timeout=5 * UNIT_S)
    # Room for 8 queued events only: the rest is refused and fetched again later.
    tiny = replace(FAST, max_queued_events=8)
    async with Client(users.bob, options=tiny) as bob:
        await asyncio.sleep(0.3)  # let the queue overflow before the app reads
        got: list[Message] = []
        connections = 0
        async with asyncio.timeout(10 * UNIT_S):
            async for event in bob.events():
                connections += isinstance(event, Connected)
                if isinstance(event, Message):
                    got.append(event)
                    if len(got) == 40:
                        break
        await assert_no_more_messages(bob)
    assert [m.text for m in got] == texts
    assert connections >= 2  # it reconnected to have the refused items replayed


async def test_a_server_that_lost_our_place_is_followed_not_ignored(users: Users) -> None:
    with Profile.open(users.bob) as profile:
        profile.set_last_seq(1000)  # as if the server's store had been restored from backup
    async with Client(users.bob, options=FAST) as bob:
        await bob.wait_connected(5 * UNIT_S)
        async with Client(users.alice, options=FAST) as alice:
            sent = await alice.send("@bob", "after the restore")
            await alice.wait_sent([sent], 5 * UNIT_S)
        [msg] = await collect(bob, 1, 5)
    assert msg.text == "after the restore"
    with Profile.open(users.bob) as profile:
        assert profile.last_seq() == msg.seq
