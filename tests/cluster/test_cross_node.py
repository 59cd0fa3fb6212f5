"""Alice on node 1, Bob on node 3, Carol on node 2: they chat as if on one server.

Every effect crosses nodes: the commit happens where the sender is connected, the
doorbell goes over NATS, the push comes from the recipient's node; receipts, typing,
presence changes, group events and a new device's login travel the same way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taube.client import (
    Client,
    Event,
    GroupChange,
    Message,
    Presence,
    Receipt,
    Typing,
    login,
    register,
)
from tests.cluster.conftest import Figures, MakeCluster
from tests.cluster.traffic import PASSWORD
from tests.conftest import fresh_name
from tests.serverproc import UNIT_S


async def next_event(client: Client, match: Callable[[Event], bool], seconds: float = 10) -> Any:
    """The next event that ``match`` accepts (earlier ones are taken and dropped)."""
    async with asyncio.timeout(seconds * UNIT_S):
        async for event in client.events():
            if match(event):
                return event
    raise AssertionError("the event stream ended")


async def messages(client: Client, count: int, seconds: float = 10) -> list[Message]:
    return [
        await next_event(client, lambda e: isinstance(e, Message), seconds) for _ in range(count)
    ]


@dataclass
class Three:
    """Alice's, Bob's and Carol's handles and profiles, each registered on a home node."""

    alice: str
    bob: str
    carol: str
    root: Path

    @classmethod
    async def register(cls, root: Path, n1: str, n2: str, n3: str) -> Three:
        tag = fresh_name("x")
        three = cls(f"{tag}_alice", f"{tag}_bob", f"{tag}_carol", root)
        for handle, home in ((three.alice, n1), (three.bob, n3), (three.carol, n2)):
            await register(handle, PASSWORD, servers=home, profile=root / handle)
        return three

    def client(self, handle: str, server: str) -> Client:
        return Client(self.root / handle, [server])


async def test_users_on_different_nodes_chat_as_on_one_server(
    make_cluster: MakeCluster, tmp_path: Path, figures: Figures
) -> None:
    cluster = await make_cluster()
    n1, n2, n3 = cluster.urls
    u = await Three.register(tmp_path, n1, n2, n3)
    alice, bob, carol = u.alice, u.bob, u.carol

    async with u.client(bob, n3) as b, u.client(carol, n2) as c:
        # Bob (node 3) watches Alice before she connects; her coming online on node 1
        # reaches him over the bus.
        await b.wait_connected(10 * UNIT_S)
        await b.watch([alice])
        before = await next_event(b, lambda e: isinstance(e, Presence) and e.user == alice)
        assert not before.online
        async with u.client(alice, n1) as a:
            for client, home in ((a, n1), (b, n3), (c, n2)):
                await client.wait_connected(10 * UNIT_S)
                assert client.server == home
            online = await next_event(b, lambda e: isinstance(e, Presence) and e.user == alice)
            assert online.online
            await a.typing(f"@{bob}")
            typing = await next_event(b, lambda e: isinstance(e, Typing))
            assert (typing.conversation, typing.user, typing.active) == (f"@{alice}", alice, True)

            # Messages node 1 -> node 3, in order and each once; "delivered" and "read"
            # come back node 3 -> node 1.
            started = time.monotonic()
            ids = await a.send_many([(f"@{bob}", f"hello {i}") for i in range(20)])
            await a.wait_sent(ids, 10 * UNIT_S)
            got = await messages(b, 20)
            twenty_s = time.monotonic() - started
            await b.ack()
            assert [m.id for m in got] == ids
            assert {(m.sender, m.conversation) for m in got} == {(alice, f"@{alice}")}
            assert [m.text for m in got] == [f"hello {i}" for i in range(20)]

            delivered: set[str] = set()

            def all_delivered(event: Event) -> bool:
                if isinstance(event, Receipt) and event.status == "delivered":
                    assert event.by == bob
                    delivered.update(event.ids)
                return delivered >= set(ids)

            await next_event(a, all_delivered)
            await b.mark_read(f"@{alice}", alice, ids)
            read = await next_event(a, lambda e: isinstance(e, Receipt) and e.status == "read")
            assert (read.by, read.conversation, list(read.ids)) == (bob, f"@{bob}", ids)

            # The reply goes the other way.
            reply = await b.send(f"@{alice}", "hi alice")
            back = await next_event(a, lambda e: isinstance(e, Message))
            assert (back.id, back.sender, back.text) == (reply, bob, "hi alice")

            # A group spanning the three nodes: its events and messages reach everyone.
            group = await a.api.create_group("three nodes", [bob, carol])
            for member in (b, c):
                change = await next_event(member, lambda e: isinstance(e, GroupChange))
                assert change.group == group.id
            to_group = await a.send(group.address, "to everyone")
            for member in (b, c):
                [msg] = await messages(member, 1)
                assert (msg.id, msg.conversation, msg.sender) == (to_group, group.address, alice)

            # Bob logs in a second device on node 2. Node 1 has Bob's devices cached;
            # it learns of the new one over the bus, so Alice's next message reaches both.
            await login(bob, PASSWORD, servers=n2, profile=tmp_path / "bob2")
            async with Client(tmp_path / "bob2", [n2]) as b2:
                await b2.wait_connected(10 * UNIT_S)
                later = await a.send(f"@{bob}", "to both of your devices")
                await a.wait_sent([later], 10 * UNIT_S)
                for device in (b, b2):
                    [msg] = await messages(device, 1)
                    assert msg.id == later

            # Alice leaves node 1: Bob, on node 3, sees her go offline.
            await a.close()
            gone = await next_event(b, lambda e: isinstance(e, Presence) and e.user == alice)
            assert not gone.online
            assert gone.last_seen_ms is not None

    figures.record(
        "cross-node chat",
        f"20 messages node 1 -> node 3 sent, committed and received in {twenty_s:.2f} s; "
        "receipts, typing, presence changes, a three-node group and a new device all crossed",
        twenty_messages_s=round(twenty_s, 3),
    )


async def test_presence_is_cluster_wide(make_cluster: MakeCluster, tmp_path: Path) -> None:
    cluster = await make_cluster()
    n1, n2, n3 = cluster.urls
    u = await Three.register(tmp_path, n1, n2, n3)
    await login(u.alice, PASSWORD, servers=n2, profile=tmp_path / "alice2")
    async with u.client(u.alice, n1) as a, u.client(u.bob, n3) as b:
        await a.wait_connected(10 * UNIT_S)
        await b.wait_connected(10 * UNIT_S)
        # Alice is online (on node 1): Bob's watch on node 3 must say so.
        await b.watch([u.alice])
        now = await next_event(b, lambda e: isinstance(e, Presence) and e.user == u.alice)
        assert now.online, "a watch on another node sees an online user as offline"
        # Her second device comes and goes on node 2; she stays online on node 1.
        async with Client(tmp_path / "alice2", [n2]) as a2:
            await a2.wait_connected(10 * UNIT_S)
        try:
            offline = await next_event(
                b, lambda e: isinstance(e, Presence) and not e.online, seconds=1
            )
        except TimeoutError:
            offline = None
        assert offline is None, "announced offline while still connected on node 1"
