"""Webhooks: every incident and maintenance event, POSTed as JSON to each subscriber.

Body: ``{"event": ..., "incident" | "maintenance": {...}, "sent_ms": ...}``; header
``Taube-Signature: t=<unix ms>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>``
(signing.py). A delivery succeeds on any 2xx answer; otherwise it is retried after
``backoff_s``, 2x, 4x, ... up to ``max_attempts`` attempts, each one logged in the
store (``GET /v1/admin/webhooks/deliveries``). Deliveries run in the background on
the node where the event happened; the number in flight is bounded, and retries of a
node that dies are lost (the event stays on the page, the feed and the log).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import aiohttp
import msgspec

from taube.core.clock import Clock
from taube.status.incidents import EventSink
from taube.status.signing import WEBHOOK_HEADER, webhook_signature
from taube.store.base import Store, WebhookDeliveryRecord, WebhookRecord

log = logging.getLogger("taube.status.webhooks")

MAX_IN_FLIGHT: Final = 256
MAX_ERROR_CHARS: Final = 200


def backoff_delays(first_s: float, attempts: int) -> list[float]:
    """Waits before attempts 2..n: first_s, 2x, 4x, ..."""
    return [first_s * 2**i for i in range(max(0, attempts - 1))]


class WebhookSender(EventSink):
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        backoff_s: float = 1.0,
        max_attempts: int = 6,
        timeout_s: float = 10.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._backoff_s = backoff_s
        self._max_attempts = max_attempts
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def emit(self, event: str, key: str, payload: dict[str, Any]) -> None:
        if len(self._tasks) >= MAX_IN_FLIGHT:
            log.warning("webhooks: too many deliveries in flight; dropping %s", event)
            return
        task = asyncio.get_running_loop().create_task(self._fan_out(event, key, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fan_out(self, event: str, key: str, payload: dict[str, Any]) -> None:
        try:
            hooks = await self._store.webhooks()
        except Exception:
            log.exception("webhooks: cannot list subscribers for %s", event)
            return
        body = msgspec.json.encode({"event": event, key: payload, "sent_ms": self._clock()})
        await asyncio.gather(*(self._deliver(hook, event, body) for hook in hooks))

    async def _deliver(self, hook: WebhookRecord, event: str, body: bytes) -> None:
        delays = backoff_delays(self._backoff_s, self._max_attempts)
        for attempt in range(1, self._max_attempts + 1):
            status_code, error = await self._post(hook, body)
            delivered = status_code is not None and 200 <= status_code < 300
            entry = WebhookDeliveryRecord(
                hook.id, event, attempt, status_code, error, self._clock(), delivered
            )
            try:
                await self._store.log_webhook_delivery(entry)
            except Exception:
                log.exception("webhooks: cannot log a delivery attempt")
            if delivered:
                return
            if attempt <= len(delays):
                await asyncio.sleep(delays[attempt - 1])
        log.warning("webhook %d: %s not delivered after %d attempts", hook.id, event, attempt)

    async def _post(self, hook: WebhookRecord, body: bytes) -> tuple[int | None, str | None]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "taube-webhooks",
            WEBHOOK_HEADER: webhook_signature(hook.secret, body, self._clock()),
        }
        try:
            async with self._session.post(hook.url, data=body, headers=headers) as response:
                await response.read()
                return response.status, None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return None, (f"{type(exc).__name__}: {exc}")[:MAX_ERROR_CHARS]
