"""Bursts of concurrent sends through the real server: every message decrypts on arrival.

Two devices that never talked start their pairwise sessions at the same moment
when both send before either has read the other (the votes of a poll, two people
answering at once). Each receives the other's prekey message after it has
started a session of its own, so each holds a session the other one may not use
any more. Every message must still decrypt the first time it arrives: none may
come as "undecryptable" (:attr:`Message.decrypted` is False, which is also when
the SDK asks the sender for a resend) and none may come twice (a resend).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from taube.client import Client, Message
from taube.protocol.ids import uuid7
from tests.client.conftest import FAST, assert_no_more_messages, collect
from tests.e2ee.test_e2ee_live import new_device
from tests.serverproc import UNIT_S, ServerProcess

BURST = 20
"""Messages each device sends at once (asyncio.gather), per round."""


async def burst(client: Client, to: str, tag: str) -> list[str]:
    """``BURST`` sends to ``to``, all awaited at the same time."""
    return list(await asyncio.gather(*(client.send(to, f"{tag}-{i}") for i in range(BURST))))


def undecryptable(got: list[Message]) -> list[tuple[str, int, str]]:
    return [(m.sender, m.sender_device, m.id) for m in got if not m.decrypted]


async def exchange(a: Client, b: Client) -> None:
    """Two rounds of bursts both ways at once; every message arrives readable, once."""
    peer_of_a, peer_of_b = f"@{b.handle}", f"@{a.handle}"
    await asyncio.gather(a.wait_connected(5 * UNIT_S), b.wait_connected(5 * UNIT_S))
    for round_ in range(2):  # the second round goes over the sessions the first made
        to_b, to_a = await asyncio.gather(
            burst(a, peer_of_a, f"a{round_}"), burst(b, peer_of_b, f"b{round_}")
        )
        await asyncio.gather(
            a.wait_sent(to_b, timeout=10 * UNIT_S), b.wait_sent(to_a, timeout=10 * UNIT_S)
        )
        at_b, at_a = await asyncio.gather(collect(b, BURST, 10), collect(a, BURST, 10))
        assert undecryptable(at_b) == []
        assert undecryptable(at_a) == []
        assert [m.id for m in at_b] == to_b
        assert [m.id for m in at_a] == to_a
        assert [m.text for m in at_b] == [f"a{round_}-{i}" for i in range(BURST)]
    await asyncio.gather(assert_no_more_messages(a), assert_no_more_messages(b))


async def test_two_devices_sending_bursts_to_each_other_at_once_decrypt_every_message_first_time(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Four pairs at once: whether both of a pair start a session before reading the
    other's first message is a race, which one pair or another loses nearly always."""
    names = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
    profiles = [await new_device(server, tmp_path, n, register_user=True) for n in names]
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client(p, options=FAST)) for p in profiles]
        await asyncio.gather(
            *(exchange(x, y) for x, y in zip(clients[::2], clients[1::2], strict=True))
        )


async def test_group_members_sending_bursts_at_once_are_read_first_time_on_every_device(
    server: ServerProcess, tmp_path: Path
) -> None:
    """bob and carol have never talked; both send a burst to the group at once (their
    sender keys go to each other over pairwise sessions both start), then a 1:1 burst."""
    alice = await new_device(server, tmp_path, "alice", register_user=True)
    bob = await new_device(server, tmp_path, "bob", register_user=True)
    carol = await new_device(server, tmp_path, "carol", register_user=True)
    async with (
        Client(alice, options=FAST) as a,
        Client(bob, options=FAST) as b,
        Client(carol, options=FAST) as c,
    ):
        group = (await a.api.create_group("team", ["bob", "carol"])).address
        await asyncio.gather(*(x.wait_connected(5 * UNIT_S) for x in (a, b, c)))
        from_bob, from_carol = await asyncio.gather(burst(b, group, "b"), burst(c, group, "c"))
        await asyncio.gather(
            b.wait_sent(from_bob, timeout=10 * UNIT_S),
            c.wait_sent(from_carol, timeout=10 * UNIT_S),
        )
        at_alice, at_bob, at_carol = await asyncio.gather(
            collect(a, 2 * BURST, 10), collect(b, BURST, 10), collect(c, BURST, 10)
        )
        assert undecryptable(at_alice + at_bob + at_carol) == []
        assert sorted(m.id for m in at_alice) == sorted(from_bob + from_carol)
        assert [m.id for m in at_bob] == from_carol
        assert [m.id for m in at_carol] == from_bob
        # The pairwise sessions the sender keys travelled over carry 1:1 messages too.
        to_carol, to_bob = await asyncio.gather(burst(b, "@carol", "bc"), burst(c, "@bob", "cb"))
        at_carol, at_bob = await asyncio.gather(collect(c, BURST, 10), collect(b, BURST, 10))
        assert undecryptable(at_bob + at_carol) == []
        assert [m.id for m in at_carol] == to_carol
        assert [m.id for m in at_bob] == to_bob
        await asyncio.gather(*(assert_no_more_messages(x) for x in (a, b, c)))


async def test_tasks_needing_the_same_session_at_once_consume_one_prekey_of_the_peer(
    server: ServerProcess, tmp_path: Path
) -> None:
    """The sender task (first contact) and the reader task (a stale device list naming
    the same device, twice) start bob's session at the same moment: one bundle fetch,
    so one of bob's one-time prekeys, not one per task."""
    alice = await new_device(server, tmp_path, "alice", register_user=True)
    bob = await new_device(server, tmp_path, "bob", register_user=True)
    async with Client(alice, options=FAST) as a, Client(bob, options=FAST) as b:
        await asyncio.gather(a.wait_connected(5 * UNIT_S), b.wait_connected(5 * UNIT_S))
        before = (await b.api.keys_status()).one_time_prekeys
        assert before > 3
        e2ee = a._require_e2ee()
        stale = {"missing": [f"{b.handle}.{b.device}"]}
        await asyncio.gather(
            e2ee.encrypt(uuid7(), f"@{b.handle}", b"first contact"),
            e2ee.apply_device_list(stale),
            e2ee.apply_device_list(stale),
        )
        after = (await b.api.keys_status()).one_time_prekeys
        assert before - after == 1
