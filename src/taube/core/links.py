"""Device linking: a new device joins an account that is logged in on another device.

1. The new device starts a link (``start``): it gets an id, a short ``code`` to show
   and a ``secret`` that only it knows (the store keeps the secret's SHA-256).
2. The user types the code on a device of the account, which approves it
   (``approve``): a device is made for the account, as a login makes one, and its
   token is stored with the link.
3. The new device, waiting on the link with its secret (``state``), reads the token.

Invariants:

- A code is approved at most once (the store's compare-and-set); a code works only
  until the link expires (``ttl_ms`` after its start).
- The token is handed out once: the store clears it in the statement that reads it.
  Until then it is in the store; a link (with a token nobody read) is deleted an hour
  after it expired (the retention job).
- Any node may approve while the requester waits on another: waiters are woken by a
  ``links`` notice on the bus (one subscription per node) and read the store again
  every ``recheck_s`` in case a notice is lost (the bus is a doorbell).

Codes are 8 characters of Crockford's base32 (40 random bits), shown as ``XXXX-XXXX``
and read forgivingly: any case, with or without the dash, O for 0 and I or L for 1.
Guessing is bounded by the per-account rate limit on approvals (server/api.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
import time

from taube.bus.base import Bus, Subscription
from taube.core.accounts import Accounts
from taube.core.clock import Clock
from taube.protocol.api import LinkState
from taube.protocol.errors import TaubeError
from taube.store.base import DeviceRecord, LinkRecord, Store

LINKS_SUBJECT = "links"
"""Carries the id of a link that was just approved, to every node."""
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 8
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1", "-": None, " ": None})
RECHECK_S = 1.0
MAX_WAIT_S = 30.0
CREATE_ATTEMPTS = 5


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(text: str) -> str | None:
    """The stored form of a code as a person typed it, or None if it cannot be one."""
    code = text.strip().upper().translate(_READ_AS)
    if len(code) != CODE_LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def display_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class Links:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        clock: Clock,
        accounts: Accounts,
        *,
        ttl_ms: int = 300_000,
        recheck_s: float = RECHECK_S,
    ) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._accounts = accounts
        self._ttl_ms = ttl_ms
        self._recheck_s = recheck_s
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._subscription = await self._bus.subscribe(LINKS_SUBJECT, self._on_approved)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.cancel()

    def _on_approved(self, subject: str, data: bytes) -> None:
        for event in self._waiters.get(data.decode(errors="replace"), ()):
            event.set()

    async def start_link(self, device_name: str) -> tuple[LinkRecord, str]:
        """A new pending link and its secret (given to the requester only)."""
        for _ in range(CREATE_ATTEMPTS):
            secret = secrets.token_urlsafe(32)
            now = self._clock()
            link = LinkRecord(
                id=secrets.token_urlsafe(16),
                code=new_code(),
                secret_hash=hash_secret(secret),
                device_name=device_name,
                created_ms=now,
                expires_ms=now + self._ttl_ms,
            )
            if await self._store.create_link(link):  # False: the code is in use (rare)
                return link, secret
        raise TaubeError("internal")

    async def state(self, link_id: str, secret: str, wait_s: float) -> LinkState:
        """The link's state, once it is no longer pending or after ``wait_s`` seconds.
        The first read after approval takes the token."""
        deadline = time.monotonic() + min(max(wait_s, 0.0), MAX_WAIT_S)
        event = asyncio.Event()
        waiters = self._waiters.setdefault(link_id, set())
        waiters.add(event)  # before reading, so that an approval meanwhile wakes us
        try:
            while True:
                event.clear()
                link = await self._store.get_link(link_id)
                if link is None or not hmac.compare_digest(link.secret_hash, hash_secret(secret)):
                    raise TaubeError("link.not_found")
                remaining = deadline - time.monotonic()
                if link.handle is not None or self._clock() >= link.expires_ms or remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(self._recheck_s, remaining)):
                        await event.wait()
        finally:
            waiters.discard(event)
            if not waiters:
                self._waiters.pop(link_id, None)
        if link.handle is None:
            expired = self._clock() >= link.expires_ms
            return LinkState(status="expired" if expired else "pending")
        token = await self._store.take_link_token(link_id) if link.token is not None else None
        return LinkState(status="approved", handle=link.handle, device=link.device, token=token)

    async def approve(self, code_text: str, approver: DeviceRecord) -> DeviceRecord:
        """Make a device for the approver's account and keep its token for the link."""
        code = normalize_code(code_text)
        link = None if code is None else await self._store.link_by_code(code)
        if code is None or link is None:
            raise TaubeError("link.not_found")
        if link.handle is not None:
            raise TaubeError("link.used")
        if self._clock() >= link.expires_ms:
            raise TaubeError("link.not_found")
        # As a login makes a device: the same token kind, hashing and directory notice.
        device, token = await self._accounts.new_device(approver.user, link.device_name)
        if not await self._store.approve_link(code, approver.user, device.id, token, self._clock()):
            # Another approval (or the expiry) came first: nobody will ever use this one.
            await self._accounts.revoke(approver.user, device.id)
            again = await self._store.link_by_code(code)
            raise TaubeError("link.used" if again and again.handle else "link.not_found")
        await self._bus.publish(LINKS_SUBJECT, link.id.encode())
        return device
