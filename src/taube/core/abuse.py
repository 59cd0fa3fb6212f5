"""Abuse: users' reports to the operator's review queue, and account suspension.

Reports hold only what the reporter sent (protocol/abuse.py); nothing else about the
reported account or its messages is added. A suspended account cannot authenticate
(so it can neither log in nor send) and cannot be sent 1:1 messages
(``account.suspended``); its devices' open connections close at once on every node.

Every node keeps the set of suspended handles in memory (loaded at start, changed by
a broadcast on the bus), because authentication asks on every request and must not
cost a store round trip. Invariant, for each suspension: the store is written first,
then the broadcast, then the directory change (which drops cached send routes
everywhere), then each device's ``suspended`` control notice (server/gateway.py).
One publisher's messages reach every node in order, so a node never closes a
device's connection before it knows the account is suspended.
"""

from __future__ import annotations

import logging

import msgspec

from taube.bus.base import Bus, Subscription, device_subject
from taube.core.clock import Clock
from taube.core.directory import Directory
from taube.protocol.abuse import AbuseReportCreate, ReportedMessage
from taube.protocol.errors import TaubeError
from taube.protocol.ids import is_handle, normalize_handle
from taube.store.base import AbuseReportRecord, DeviceRecord, Store, SuspensionRecord

log = logging.getLogger("taube.abuse")

SUSPENSIONS_SUBJECT = "suspensions"
SUSPENDED = b"suspended"
"""The device control notice that closes a suspended account's connections."""
MAX_REPORTS_LISTED = 500

_messages = msgspec.json.Decoder(list[ReportedMessage])


def reported_messages(record: AbuseReportRecord) -> list[ReportedMessage]:
    return _messages.decode(record.messages)


class Abuse:
    def __init__(self, store: Store, bus: Bus, clock: Clock, directory: Directory) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._directory = directory
        self._suspended: set[str] = set()
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._subscription = await self._bus.subscribe(SUSPENSIONS_SUBJECT, self._on_change)
        self._suspended = {s.handle for s in await self._store.suspensions()}

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.cancel()

    def _on_change(self, subject: str, data: bytes) -> None:
        flag, _, handle = data.decode().partition(":")
        if flag == "1":
            self._suspended.add(handle)
        else:
            self._suspended.discard(handle)

    def is_suspended(self, handle: str) -> bool:
        """Cheap enough for every authentication and every send."""
        return handle in self._suspended

    # ------------------------------------------------------------ reports

    async def report(self, reporter: DeviceRecord, req: AbuseReportCreate) -> int:
        handle = normalize_handle(req.user)
        if handle == reporter.user:
            raise TaubeError("request.invalid", "You cannot report yourself.")
        if not is_handle(handle) or await self._store.get_user(handle) is None:
            raise TaubeError("user.not_found")
        record = AbuseReportRecord(
            id=0,
            reporter=reporter.user,
            reporter_device=reporter.id,
            reported=handle,
            reason=req.reason,
            messages=msgspec.json.encode(req.messages).decode(),
            created_ms=self._clock(),
        )
        report_id = await self._store.add_abuse_report(record)
        # The log names who and how many, never the reported text.
        log.info(
            "abuse report id=%d reporter=%s reported=%s messages=%d",
            report_id, reporter.user, handle, len(req.messages),
        )  # fmt: skip
        return report_id

    async def reports(self, limit: int = MAX_REPORTS_LISTED) -> list[AbuseReportRecord]:
        return await self._store.abuse_reports(limit)

    # ------------------------------------------------------------ suspension

    async def suspend(self, handle: str, reason: str) -> SuspensionRecord:
        handle = normalize_handle(handle)
        now = self._clock()
        if not is_handle(handle) or not await self._store.suspend_user(handle, reason, now):
            raise TaubeError("user.not_found")
        self._suspended.add(handle)
        await self._bus.publish(SUSPENSIONS_SUBJECT, f"1:{handle}".encode())
        await self._directory.user_changed(handle)
        devices = await self._directory.active_devices([handle])
        for device in devices.get(handle, []):
            await self._bus.publish(device_subject(handle, device), SUSPENDED)
        log.info("account suspended user=%s devices=%d", handle, len(devices.get(handle, [])))
        return SuspensionRecord(handle, reason, now)

    async def unsuspend(self, handle: str) -> None:
        handle = normalize_handle(handle)
        if not is_handle(handle) or await self._store.get_user(handle) is None:
            raise TaubeError("user.not_found")
        await self._store.unsuspend_user(handle)
        self._suspended.discard(handle)
        await self._bus.publish(SUSPENSIONS_SUBJECT, f"0:{handle}".encode())
        await self._directory.user_changed(handle)
        log.info("account unsuspended user=%s", handle)
