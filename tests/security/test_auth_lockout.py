"""Brute force against one account on a real server: 1,000 wrong passwords lock it out
with backoff, almost all refused before any argon2 hash, while the owner's connected
device keeps sending and receiving; the right password works once the backoff ends."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from pathlib import Path

import aiohttp

from taube.protocol.frames import Message, Sent
from tests.conftest import fresh_name, two_nodes
from tests.serverproc import UNIT_S, ServerProcess
from tests.wire import PASSWORD, connect, register

ATTEMPTS = 1000
PACE_S = 0.005  # 200 guesses a second, for five seconds
# Production argon2 (the default 19 MiB, 2 passes) so that a hash costs what it would;
# a short backoff so that the test ends in seconds.
SETTINGS: dict[str, dict[str, object]] = {
    "auth": {"argon2_time_cost": 2, "argon2_memory_kib": 19 * 1024},
    "rate": {"lockout_after": 5, "lockout_base_s": 0.5, "lockout_max_s": 4.0},
}


async def test_brute_force_locks_out_without_blocking_the_owner(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "s", settings=SETTINGS).start()
    try:
        async with aiohttp.ClientSession() as session:
            alice = await register(session, server.url, "alice")
            bob = await register(session, server.url, "bob")
            owner = await connect(session, server.ws_url, alice.token)
            peer = await connect(session, server.ws_url, bob.token)

            outcomes: Counter[str] = Counter()
            retry_afters: list[int] = []
            flooding = True

            async def guess(i: int, gate: asyncio.Semaphore) -> None:
                await asyncio.sleep(i * PACE_S)  # a steady flood, not one burst
                async with gate:
                    body = {"handle": "alice", "password": f"wrong-{i}"}
                    async with session.post(f"{server.url}/v1/sessions", json=body) as r:
                        problem = await r.json(content_type=None)
                        outcomes[problem.get("code", str(r.status))] += 1
                        if r.status == 429:
                            retry_afters.append(int(r.headers["Retry-After"]))

            latencies: list[float] = []
            received = 0

            async def owner_traffic() -> None:
                nonlocal received
                while flooding:
                    started = time.perf_counter()
                    message_id = await owner.send("@bob", b"still here")
                    sent = await owner.until(Sent)
                    assert sent.id == message_id
                    latencies.append(time.perf_counter() - started)
                    message = await peer.until(Message)
                    assert message.id == message_id
                    received += 1
                    await asyncio.sleep(0.02)

            traffic = asyncio.create_task(owner_traffic())
            gate = asyncio.Semaphore(32)
            started = time.perf_counter()
            await asyncio.gather(*(guess(i, gate) for i in range(ATTEMPTS)))
            duration = time.perf_counter() - started
            flooding = False
            await traffic

            hashed = outcomes["auth.bad_credentials"]
            refused = outcomes["auth.locked"]
            assert hashed + refused == ATTEMPTS, outcomes
            assert hashed <= 20, outcomes  # argon2 ran only between backoffs
            assert max(retry_afters) >= 2  # the backoff grew
            assert received == len(latencies) >= 5
            p50 = statistics.median(latencies)
            worst = max(latencies)
            assert worst < 1.0 * UNIT_S, latencies
            print(
                f"\nbrute force: {ATTEMPTS} wrong passwords in {duration:.2f} s: "
                f"{hashed} checked with argon2, {refused} refused as auth.locked "
                f"(retry-after up to {max(retry_afters)} s); owner's device meanwhile: "
                f"{received} messages sent and received, p50 {p50 * 1000:.1f} ms, "
                f"max {worst * 1000:.1f} ms"
            )

            # Still locked: even the right password is refused (and costs nothing) ...
            async with session.post(
                f"{server.url}/v1/sessions", json={"handle": "alice", "password": PASSWORD}
            ) as r:
                assert r.status == 429
                wait = int(r.headers["Retry-After"])
            # ... until the backoff ends.
            await asyncio.sleep(wait + 0.1)
            async with session.post(
                f"{server.url}/v1/sessions", json={"handle": "alice", "password": PASSWORD}
            ) as r:
                assert r.status == 201, await r.text()
            # The owner's device token was never touched.
            async with session.get(
                f"{server.url}/v1/me", headers={"Authorization": f"Bearer {alice.token}"}
            ) as r:
                assert r.status == 200
            await owner.close()
            await peer.close()
    finally:
        server.stop()


async def test_the_lockout_is_the_clusters_not_each_nodes(tmp_path: Path) -> None:
    """Failures counted on one node lock the account on the other (core/shared_lockout.py):
    a guesser spreading attempts over N nodes does not get N times the allowance."""
    settings: dict[str, dict[str, object]] = {
        "rate": {"lockout_after": 3, "lockout_base_s": 30.0, "lockout_max_s": 60.0}
    }
    async with two_nodes(tmp_path, settings) as (n1, n2), aiohttp.ClientSession() as session:
        handle = f"alice{fresh_name('u').replace('_', '')}"
        await register(session, n1.url, handle)

        async def login(node: ServerProcess, password: str) -> tuple[int, str]:
            body = {"handle": handle, "password": password}
            async with session.post(f"{node.url}/v1/sessions", json=body) as r:
                return r.status, (await r.json(content_type=None)).get("code", "")

        for i in range(3):
            assert await login(n1, f"wrong-{i}") == (401, "auth.bad_credentials")
        # The third failure locked the account on n1 at once; n2 hears of it over NATS
        # within milliseconds. Even the right password is refused there, unchecked (had
        # n2 not heard, it would log in: one try, so that nothing can hide that).
        await asyncio.sleep(0.5 * UNIT_S)
        assert await login(n2, PASSWORD) == (429, "auth.locked")
        assert await login(n1, PASSWORD) == (429, "auth.locked")
