"""The Bus contract: one suite, run against every Bus implementation.

Each case gets a publishing and a subscribing node: the same bus for a single node,
two ``NatsBus`` instances (two connections, as two server nodes have) for
``nats-two-nodes``. New buses join by adding a factory to BUSES. Delivery may be
asynchronous, so the tests wait for what must arrive and, to show that something did
NOT arrive, send a second round: one publisher's messages reach a subscriber in
order, so anything misrouted by round one would be seen before round two.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from taube.bus.base import Bus, BusUnavailable
from taube.bus.local import LocalBus
from taube.bus.nats import NatsBus, nats_subject, taube_subject
from tests.conftest import NATS_URL, TcpProxy, fresh_name, nats_url
from tests.serverproc import UNIT_S, free_port

WAIT_S = 3 * UNIT_S


@dataclass(frozen=True)
class Nodes:
    publisher: Bus
    subscriber: Bus

    @property
    def buses(self) -> list[Bus]:
        return list({id(b): b for b in (self.publisher, self.subscriber)}.values())


async def open_local(prefix: str) -> Nodes:
    bus = LocalBus()
    await bus.open()
    return Nodes(bus, bus)


def nats_bus(node: str, prefix: str, url: str | None = None) -> NatsBus:
    return NatsBus(url or nats_url(), node=node, prefix=prefix, reconnect_wait_s=0.1)


async def open_nats(prefix: str) -> Nodes:
    bus = nats_bus("n1", prefix)
    await bus.open()
    return Nodes(bus, bus)


async def open_nats_pair(prefix: str) -> Nodes:
    one, two = nats_bus("n1", prefix), nats_bus("n2", prefix)
    await one.open()
    await two.open()
    return Nodes(one, two)


BUSES: dict[str, Callable[[str], Awaitable[Nodes]]] = {
    "local": open_local,
    "nats": open_nats,
    "nats-two-nodes": open_nats_pair,
}


@pytest.fixture(params=sorted(BUSES))
async def nodes(request: pytest.FixtureRequest) -> AsyncIterator[Nodes]:
    opened = await BUSES[request.param](fresh_name("test"))  # a subject space of its own
    yield opened
    for bus in opened.buses:
        await bus.close()


class Recorder:
    """A handler that remembers what it got and lets a test wait for it."""

    def __init__(self) -> None:
        self.got: list[tuple[str, bytes]] = []
        self._changed = asyncio.Event()

    def __call__(self, subject: str, data: bytes) -> None:
        self.got.append((subject, data))
        self._changed.set()

    async def wait_for(self, count: int, timeout: float = WAIT_S) -> list[tuple[str, bytes]]:
        """Wait until at least ``count`` messages came; returns all of them."""
        return await self.wait_until(lambda got: len(got) >= count, timeout)

    async def wait_until(
        self, done: Callable[[list[tuple[str, bytes]]], bool], timeout: float = WAIT_S
    ) -> list[tuple[str, bytes]]:
        async with asyncio.timeout(timeout):
            while not done(self.got):
                self._changed.clear()
                await self._changed.wait()
        return self.got


# Handles may hold '.', '-' and '_', end with '.' or hold '..'; subjects must not collide.
TRICKY_SUBJECTS = [
    "inbox.alice.1",
    "inbox.alice.12",
    "inbox.alice",
    "inbox.alice.1.2",
    "inbox.a.b.2",
    "inbox.a.b2",
    "inbox.a-b_c.3",
    "user.a.",
    "user.a..b",
    "user.a.b",
    "user.a~2eb",
    "notice.x~",
    "notice.x~7e",
    "presence.zoë",
    "directory",
]


async def test_publish_reaches_only_subscribers_of_that_exact_subject(nodes: Nodes) -> None:
    recorders = {subject: Recorder() for subject in TRICKY_SUBJECTS}
    for subject, recorder in recorders.items():
        await nodes.subscriber.subscribe(subject, recorder)
    for round_ in (b"1", b"2"):
        for subject in TRICKY_SUBJECTS:
            await nodes.publisher.publish(subject, subject.encode() + round_)
        for recorder in recorders.values():
            await recorder.wait_for(int(round_))
    for subject, recorder in recorders.items():
        assert recorder.got == [(subject, subject.encode() + r) for r in (b"1", b"2")]


async def test_several_subscribers_each_get_every_message(nodes: Nodes) -> None:
    recorders = [Recorder() for _ in range(3)]
    for recorder in recorders:
        await nodes.subscriber.subscribe("inbox.bob.1", recorder)
    local = Recorder()  # a subscriber on the publishing node too
    await nodes.publisher.subscribe("inbox.bob.1", local)
    await nodes.publisher.publish("inbox.bob.1", b"ding")
    for recorder in [*recorders, local]:
        assert await recorder.wait_for(1) == [("inbox.bob.1", b"ding")]


async def test_cancel_stops_delivery(nodes: Nodes) -> None:
    kept, dropped = Recorder(), Recorder()
    await nodes.subscriber.subscribe("user.bob", kept)
    subscription = await nodes.subscriber.subscribe("user.bob", dropped)
    await subscription.cancel()
    await nodes.publisher.publish("user.bob", b"1")
    await kept.wait_for(1)
    assert dropped.got == []  # the same message went to both handlers, or to neither

    # The last handler gone: nothing more, and the subject can be subscribed again.
    only = await nodes.subscriber.subscribe("user.carol", gone := Recorder())
    await only.cancel()
    await nodes.publisher.publish("user.carol", b"lost")
    again = Recorder()
    await nodes.subscriber.subscribe("user.carol", again)
    await nodes.publisher.publish("user.carol", b"found")
    # Across nodes, "lost" may still be in flight and reach the new handler: a publish
    # is fire-and-forget, with no order against another node's subscribe.
    await again.wait_until(lambda got: ("user.carol", b"found") in got)
    assert gone.got == []


async def test_a_failing_handler_does_not_stop_the_others(nodes: Nodes) -> None:
    def broken(subject: str, data: bytes) -> None:
        raise RuntimeError("handler bug")

    after = Recorder()
    await nodes.subscriber.subscribe("inbox.bob.2", broken)
    await nodes.subscriber.subscribe("inbox.bob.2", after)
    await nodes.publisher.publish("inbox.bob.2", b"1")
    await nodes.publisher.publish("inbox.bob.2", b"2")
    assert await after.wait_for(2) == [("inbox.bob.2", b"1"), ("inbox.bob.2", b"2")]


async def test_messages_from_one_publisher_keep_their_order(nodes: Nodes) -> None:
    recorder = Recorder()
    await nodes.subscriber.subscribe("inbox.bob.3", recorder)
    sent = [str(i).encode() for i in range(500)]
    for data in sent:
        await nodes.publisher.publish("inbox.bob.3", data)
    got = await recorder.wait_for(len(sent))
    assert [data for _, data in got] == sent


async def test_publish_nowait_runs_local_handlers_at_once_and_reaches_other_nodes(
    nodes: Nodes,
) -> None:
    local, remote = Recorder(), Recorder()
    await nodes.publisher.subscribe("inbox.dan.1", local)
    await nodes.subscriber.subscribe("inbox.dan.1", remote)
    sent = [str(i).encode() for i in range(300)]
    for data in sent:
        nodes.publisher.publish_nowait("inbox.dan.1", data)
        # Same node: the handler ran before publish_nowait returned, nothing awaited.
        assert local.got[-1] == ("inbox.dan.1", data)
    # Every other node (the same one for a single bus) gets them all, in order.
    got = await remote.wait_until(lambda got: len(got) >= len(sent) and got[-1][1] == sent[-1])
    assert [data for _, data in got][-len(sent) :] == sent


async def test_ping_answers(nodes: Nodes) -> None:
    for bus in nodes.buses:
        await bus.ping()


# ---------------------------------------------------------------- NATS only


def test_nats_subjects_map_one_to_one_onto_valid_nats_subjects() -> None:
    mapped = {nats_subject("taube", s): s for s in TRICKY_SUBJECTS}
    assert len(mapped) == len(TRICKY_SUBJECTS)  # no two Taube subjects share one
    for nats, subject in mapped.items():
        tokens = nats.split(".")
        assert all(tokens), nats  # NATS refuses empty tokens
        assert not any(c in nats for c in " \t\r\n*>"), nats
        assert taube_subject("taube", nats) == subject
    assert nats_subject("taube", "inbox.alice.2") == "taube.inbox.alice.2"  # readable


async def test_nats_nodes_see_each_others_publishes() -> None:
    prefix = fresh_name("test")
    one, two = nats_bus("n1", prefix), nats_bus("n2", prefix)
    other_cluster = nats_bus("n3", fresh_name("test"))
    for bus in (one, two, other_cluster):
        await bus.open()
    try:
        at_one, at_two, elsewhere = Recorder(), Recorder(), Recorder()
        await one.subscribe("presence.bob", at_one)
        await two.subscribe("presence.bob", at_two)
        await other_cluster.subscribe("presence.bob", elsewhere)
        await one.publish("presence.bob", b"from-one")
        await two.publish("presence.bob", b"from-two")
        # (No order between two publishers: each node hears its own publish first.)
        assert sorted(d for _, d in await at_one.wait_for(2)) == [b"from-one", b"from-two"]
        assert sorted(d for _, d in await at_two.wait_for(2)) == [b"from-one", b"from-two"]
        await other_cluster.ping()
        assert elsewhere.got == []  # another prefix is another cluster
    finally:
        for bus in (one, two, other_cluster):
            await bus.close()


async def test_nats_open_fails_fast_when_unreachable() -> None:
    bus = NatsBus(f"nats://127.0.0.1:{free_port()}", connect_timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(BusUnavailable):
        await bus.open()
    assert time.monotonic() - started < 3 * UNIT_S
    await bus.publish("inbox.bob.1", b"never opened: dropped, not raised")
    with pytest.raises(BusUnavailable):
        await bus.ping()


async def test_nats_outage_does_not_raise_and_subscriptions_survive_it() -> None:
    nats_url()
    proxy = await TcpProxy.to_url(NATS_URL, 4222).start()
    prefix = fresh_name("test")
    reconnects: list[bool] = []
    cut_off = NatsBus(
        proxy.url(NATS_URL),
        node="n1",
        prefix=prefix,
        reconnect_wait_s=0.1,
        on_reconnect=lambda: reconnects.append(True),
    )
    steady = nats_bus("n2", prefix)
    await cut_off.open()
    await steady.open()
    try:
        recorder = Recorder()
        await cut_off.subscribe("inbox.bob.1", recorder)
        await steady.publish("inbox.bob.1", b"before")
        await recorder.wait_for(1)

        await proxy.stop()  # NATS "restarts": n1's connection is cut
        for i in range(2000):  # doorbells while down: buffered or dropped, never raised
            await cut_off.publish("inbox.carol.1", b"x" * 1024 + str(i).encode())
        with pytest.raises(BusUnavailable):
            await cut_off.ping()
        local = Recorder()  # a node's own subscribers still hear its own publishes
        await cut_off.subscribe("inbox.dave.1", local)
        await cut_off.publish("inbox.dave.1", b"same node")
        assert local.got == [("inbox.dave.1", b"same node")]

        await proxy.start()
        async with asyncio.timeout(WAIT_S):
            while True:  # resubscribed after the reconnect: a doorbell gets through again
                await steady.publish("inbox.bob.1", b"after")
                await asyncio.sleep(0.05)
                if recorder.got[-1] == ("inbox.bob.1", b"after"):
                    break
        await cut_off.ping()
        assert reconnects == [True]  # the node hears that it may have missed doorbells
    finally:
        await cut_off.close()
        await steady.close()
        await proxy.stop()
