"""Helpers for SDK tests against the real server (``server`` itself is in tests/conftest.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from taube.client import Backoff, Client, ClientOptions, Message, register
from tests.serverproc import UNIT_S, ServerProcess

PASSWORD = "correct horse battery"
# Short backoff so that reconnect tests take a fraction of a second, not ten.
FAST = ClientOptions(backoff=Backoff(base=0.05, cap=0.5 * UNIT_S), connect_timeout=2 * UNIT_S)


@dataclass
class Users:
    alice: Path
    bob: Path


@pytest.fixture
async def users(server: ServerProcess, tmp_path: Path) -> Users:
    """alice and bob, each registered with a profile of their own."""
    out = Users(tmp_path / "alice", tmp_path / "bob")
    await register("alice", PASSWORD, servers=server.url, profile=out.alice)
    await register("bob", PASSWORD, servers=server.url, profile=out.bob)
    return out


async def collect(client: Client, n: int, seconds: float) -> list[Message]:
    """The next ``n`` messages from ``client`` (other events are skipped)."""
    got: list[Message] = []
    async with asyncio.timeout(seconds * UNIT_S):
        async for event in client.events():
            if isinstance(event, Message):
                got.append(event)
                if len(got) == n:
                    break
    return got


async def assert_no_more_messages(client: Client, seconds: float = 0.5) -> None:
    try:
        extra = await collect(client, 1, seconds)
    except TimeoutError:
        return
    pytest.fail(f"unexpected extra message: {extra}")
