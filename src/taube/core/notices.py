"""Service notices: the operator tells every connected client something (maintenance,
an outage), shown in the app.

Notices live in the Store (every node, and a restarted one, knows them). Each node
keeps the current ones in memory with their ``notice`` frame encoded once, so that a
connection gets them right after ``ready`` without a store read, and a new notice
costs one encoding per node however many connections it reaches. A posted or ended
notice is announced on the bus (``notices``); every node then updates its copy and
hands a new notice's frame to its listener (the gateway, which forwards it to all
its connections). Every ``refresh_s`` each node also reads the store again and
announces what it missed (the bus is a doorbell). Expired notices are left out when
read and deleted by the retention job.

Frames carry a ``signature`` made by ``sign`` (the status key: taube.status.signing,
passed in by the composition root), so that clients can refuse forged banners. Every
node of a cluster has the same key, and Ed25519 signatures are deterministic, so
each node signs the same notice alike. Incidents post and end notices through
``post`` and ``end`` like the operator does (taube.status.incidents).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import msgspec

from taube.bus.base import Bus, Subscription
from taube.core.clock import Clock
from taube.protocol.errors import TaubeError
from taube.protocol.frames import Notice, encode_frame
from taube.protocol.ids import uuid7
from taube.store.base import NoticeRecord, Store, StoreUnavailable

log = logging.getLogger(__name__)

NOTICES_SUBJECT = "notices"
"""A posted notice (its record as JSON), or ``end:<id>``."""
REFRESH_S = 30.0
_ENDED = b"end:"
_record_decoder = msgspec.json.Decoder(NoticeRecord)

NoticeSigner = Callable[[NoticeRecord], str | None]
"""Signs a notice's ``id``, ``text``, ``level`` and ``at_ms`` (base64), or None."""


def _unsigned(record: NoticeRecord) -> None:
    return None


def notice_frame(record: NoticeRecord, sign: NoticeSigner = _unsigned) -> bytes:
    return encode_frame(
        Notice(
            id=record.id,
            text=record.text,
            level=record.level,
            at_ms=record.at_ms,
            signature=sign(record),
        )
    )


class Notices:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        clock: Clock,
        *,
        refresh_s: float = REFRESH_S,
        sign: NoticeSigner = _unsigned,
    ) -> None:
        self.sign = sign
        self._store = store
        self._bus = bus
        self._clock = clock
        self._refresh_s = refresh_s
        self._current: dict[str, tuple[NoticeRecord, bytes]] = {}
        self._listener: Callable[[bytes], None] = lambda frame: None
        self._subscription: Subscription | None = None
        self._refresher: asyncio.Task[None] | None = None

    def listen(self, listener: Callable[[bytes], None]) -> None:
        """``listener`` gets the encoded ``notice`` frame of every notice new to this node."""
        self._listener = listener

    async def start(self) -> None:
        self._subscription = await self._bus.subscribe(NOTICES_SUBJECT, self._on_bus)
        with contextlib.suppress(StoreUnavailable):  # the refresher tries again
            await self._refresh()
        self._refresher = asyncio.create_task(self._refresh_forever())

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self._subscription is not None:
            await self._subscription.cancel()

    # ------------------------------------------------------------ operations

    async def post(self, text: str, level: str, ttl_s: int) -> NoticeRecord:
        now = self._clock()
        record = NoticeRecord(uuid7(now), text, level, now, now + ttl_s * 1000)
        await self._store.create_notice(record)
        self._add(record)
        await self._bus.publish(NOTICES_SUBJECT, msgspec.json.encode(record))
        return record

    async def end(self, notice_id: str, *, missing_ok: bool = False) -> None:
        if not await self._store.end_notice(notice_id) and not missing_ok:
            raise TaubeError("notice.not_found")
        self._current.pop(notice_id, None)
        await self._bus.publish(NOTICES_SUBJECT, _ENDED + notice_id.encode())

    async def current(self) -> list[NoticeRecord]:
        """The current notices, from the store (the truth)."""
        return await self._store.current_notices(self._clock())

    def frames(self) -> list[bytes]:
        """The encoded frames of the current notices this node knows, oldest first."""
        now = self._clock()
        return [frame for record, frame in self._current.values() if record.expires_ms > now]

    # ------------------------------------------------------------ keeping up

    def _add(self, record: NoticeRecord) -> None:
        if record.id in self._current or record.expires_ms <= self._clock():
            return
        frame = notice_frame(record, self.sign)
        self._current[record.id] = (record, frame)
        try:
            self._listener(frame)
        except Exception:
            log.exception("notice listener failed")

    def _on_bus(self, subject: str, data: bytes) -> None:
        if data.startswith(_ENDED):
            self._current.pop(data[len(_ENDED) :].decode(errors="replace"), None)
            return
        try:
            record = _record_decoder.decode(data)
        except msgspec.MsgspecError:
            log.warning("ignoring a malformed notice on the bus")
            return
        self._add(record)

    async def _refresh(self) -> None:
        records = await self._store.current_notices(self._clock())
        known = {r.id for r in records}
        for notice_id in [i for i in self._current if i not in known]:
            del self._current[notice_id]  # ended (or expired) while we did not hear of it
        for record in records:
            self._add(record)

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self._refresh()
            except StoreUnavailable:
                pass  # next time
            except Exception:
                log.exception("refreshing notices failed")
