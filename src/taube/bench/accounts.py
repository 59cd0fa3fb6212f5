"""Throwaway accounts for a benchmark: registered concurrently, optionally saved for reuse.

Every connection of a run is its own account's only device (as in the
benchmark method). Registration costs a server-side argon2 hash each (about
50 ms with the default settings), so a prepared set can be kept in a JSON file
(``--accounts FILE``: ``{"server": URL, "accounts": [{"handle", "token"}]}``)
and reused; missing accounts are registered and the file is rewritten.
Handles are ``b<random prefix><number>``, the password is fixed: these
accounts must never exist on a server that matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from taube.bench.errors import BenchError
from taube.protocol.api import DeviceSession, GroupCreate, GroupInfo, Problem, RegisterRequest

PASSWORD = "taube-bench-throwaway-password"
HTTP_TIMEOUT_S = 60.0


class BenchAccount(msgspec.Struct, frozen=True):
    handle: str
    token: str


class AccountsFile(msgspec.Struct, frozen=True):
    server: str
    accounts: list[BenchAccount]


class ProvisioningError(BenchError):
    """The server refused to create what the benchmark needs; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__("bench.provisioning", message)


@dataclass(frozen=True, slots=True)
class Provisioned:
    accounts: list[BenchAccount]
    registered: int
    register_s: float


def load_accounts(path: Path, server: str) -> list[BenchAccount]:
    if not path.exists():
        return []
    try:
        saved = msgspec.json.decode(path.read_bytes(), type=AccountsFile)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"--accounts {path}: not a benchmark accounts file ({exc})") from None
    if saved.server.rstrip("/") != server.rstrip("/"):
        raise ValueError(
            f"--accounts {path} holds accounts of {saved.server}, not {server}; "
            "use another file for this server"
        )
    return list(saved.accounts)


def save_accounts(path: Path, server: str, accounts: list[BenchAccount]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(msgspec.json.encode(AccountsFile(server=server, accounts=accounts)))
    tmp.replace(path)


class TryLater(Exception):
    """The server sheds load (HTTP 503, ``server.overloaded``): come back after ``wait_s``."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"try again in {wait_s:g} s")
        self.wait_s = wait_s


RETRY_LIMIT_S = 600.0  # give up on a server that keeps shedding load this long


def retry_after(headers: Any) -> float:
    """Seconds from a Retry-After header (1 when missing or not a number)."""
    try:
        return max(0.05, float(headers.get("Retry-After", 1)))
    except (TypeError, ValueError):
        return 1.0


async def _refusal(response: aiohttp.ClientResponse) -> str:
    raw = await response.read()
    try:
        problem = msgspec.json.decode(raw, type=Problem)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return f"HTTP {response.status}"
    return f"{problem.code}: {problem.detail}"


async def register(session: aiohttp.ClientSession, server: str, handle: str) -> BenchAccount:
    body = msgspec.json.encode(RegisterRequest(handle=handle, password=PASSWORD))
    async with session.post(f"{server}/v1/accounts", data=body) as response:
        if response.status == 503:
            raise TryLater(retry_after(response.headers))
        if response.status != 201:
            raise ProvisioningError(f"registering {handle}: {await _refusal(response)}")
        created = msgspec.json.decode(await response.read(), type=DeviceSession)
    return BenchAccount(handle=created.handle, token=created.token)


async def register_many(
    server: str, count: int, concurrency: int, progress: bool = False
) -> list[BenchAccount]:
    """``count`` new accounts, at most ``concurrency`` registrations in flight.

    A server that sheds load (admission control on logins) is asked again after
    the time it names, so registering takes as long as the server wants.
    """
    prefix = "b" + os.urandom(4).hex()[:6]
    limit = asyncio.Semaphore(concurrency)
    done = 0
    give_up = time.monotonic() + RETRY_LIMIT_S

    async def one(session: aiohttp.ClientSession, i: int) -> BenchAccount:
        nonlocal done
        while True:
            try:
                async with limit:
                    account = await register(session, server, f"{prefix}{i:05d}")
                break
            except TryLater as later:
                if time.monotonic() + later.wait_s > give_up:
                    raise ProvisioningError("the server kept shedding load") from None
                await asyncio.sleep(later.wait_s)
        done += 1
        if progress and (done % 100 == 0 or done == count):
            print(f"\rregistered {done:,}/{count:,} accounts", end="", file=sys.stderr)
        return account

    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        accounts = await asyncio.gather(*(one(session, i) for i in range(count)))
    if progress and count:
        print(file=sys.stderr)
    return list(accounts)


async def provision(
    server: str, needed: int, path: Path | None, concurrency: int, progress: bool = False
) -> Provisioned:
    """``needed`` accounts: reused from ``path`` when it has them, registered otherwise."""
    accounts = load_accounts(path, server) if path else []
    missing = max(0, needed - len(accounts))
    started = time.monotonic()
    if missing:
        with _unreachable(server):
            accounts += await register_many(server, missing, concurrency, progress)
        if path:
            save_accounts(path, server, accounts)
    return Provisioned(accounts[:needed], missing, time.monotonic() - started)


@contextlib.contextmanager
def _unreachable(server: str) -> Iterator[None]:
    try:
        yield
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        detail = str(exc) or type(exc).__name__
        raise BenchError("bench.unreachable", f"{server}: {detail}") from None


async def create_group(server: str, owner: BenchAccount, members: list[str]) -> str:
    """A new group of ``owner`` and ``members``; returns its address (``#id``)."""
    body = msgspec.json.encode(GroupCreate(name="bench", members=members))
    headers = {"Authorization": f"Bearer {owner.token}"}
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    with _unreachable(server):
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(f"{server}/v1/groups", data=body, headers=headers) as response,
        ):
            if response.status != 201:
                raise ProvisioningError(f"creating the group: {await _refusal(response)}")
            group = msgspec.json.decode(await response.read(), type=GroupInfo)
    return group.address
