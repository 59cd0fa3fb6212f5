"""The status service one node runs: its prober, the leader's judging loop, and the
signed status document (cached briefly).

Leader: every node judges, but only the leader acts (writes the minutes' verdicts,
opens, updates and resolves automatic incidents): the node with the lowest name
among those whose canary results reached the store within ``stale`` (a node whose
prober cannot write is not a candidate). If no node reports, nobody acts. Two nodes
may both believe they lead for one round while results age out; the store keeps
each automatic source (``canary``, ``reports``) to one open incident per leader
round, and a duplicate is resolved on the next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from taube.bus.base import Bus
from taube.core.accounts import Accounts
from taube.core.clock import Clock
from taube.core.notices import Notices
from taube.status.aggregates import MINUTE_MS, minute_of
from taube.status.canary import Prober, ProberSettings
from taube.status.document import (
    DAY_MS,
    DAYS,
    LiveView,
    assemble,
    canary_picture,
    live_view,
    minute_statuses,
    with_live,
)
from taube.status.incidents import AUTOMATIC, IncidentDesk, Picture, plan
from taube.status.reports import COMPONENT_OF_KIND, ReportRule, describe_spike, detect_spike
from taube.status.signing import Signer
from taube.status.slo import Objective, month_start_ms
from taube.status.verdict import Status, Thresholds, is_bad
from taube.status.webhooks import WebhookSender
from taube.store.base import IncidentRecord, MaintenanceRecord, Store

log = logging.getLogger("taube.status")

SEEN_WINDOW_MS = 5 * MINUTE_MS
BACKFILL_MINUTES = 10
RECENT_INCIDENTS = 20


@dataclass(frozen=True, slots=True)
class StatusSettings:
    node: str
    base_url: str
    canary_interval_s: float = 5.0
    probe_timeout_s: float = 10.0
    canaries: bool = True
    thresholds: Thresholds = field(default_factory=Thresholds)
    quorum: int = 0
    recover_after_s: float = 180.0
    slo_send_target: float = 0.9995
    slo_send_within_ms: int = 5000
    reports: ReportRule = field(default_factory=ReportRule)
    node_forget_h: float = 24.0
    public_url: str = ""
    webhook_backoff_s: float = 1.0
    webhook_max_attempts: int = 6

    @property
    def stale_ms(self) -> int:
        """A node whose newest result is older than this no longer reports."""
        return int(max(15.0, 3 * self.canary_interval_s + 2) * 1000)

    @property
    def objective(self) -> Objective:
        return Objective("send", self.slo_send_target, self.slo_send_within_ms)


class StatusService:
    def __init__(
        self,
        settings: StatusSettings,
        *,
        store: Store,
        bus: Bus,
        clock: Clock,
        accounts: Accounts,
        notices: Notices,
        signer: Signer,
        seed: bytes,
    ) -> None:
        self.settings = settings
        self.signer = signer
        self._store = store
        self._clock = clock
        self.webhooks = WebhookSender(
            store,
            clock,
            backoff_s=settings.webhook_backoff_s,
            max_attempts=settings.webhook_max_attempts,
        )
        self.desk = IncidentDesk(store, notices, clock, self.webhooks)
        self.prober = (
            Prober(
                ProberSettings(
                    node=settings.node,
                    base_url=settings.base_url,
                    interval_s=settings.canary_interval_s,
                    timeout_s=settings.probe_timeout_s,
                    slo_within_ms=settings.slo_send_within_ms,
                    live_after_s=max(15.0, 3 * settings.canary_interval_s),
                ),
                store=store,
                bus=bus,
                accounts=accounts,
                clock=clock,
                seed=seed,
            )
            if settings.canaries
            else None
        )
        self._judge: asyncio.Task[None] | None = None
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._days: tuple[float, list[tuple[str, int, str, int]]] | None = None
        self._doc_lock = asyncio.Lock()
        self.leading = False
        self._seen_live: dict[int, dict[str, Status]] = {}
        """minute -> component -> the worst bad status the live verdict showed in it
        (kept by the leading node, which records the minutes)."""

    async def start(self) -> None:
        if self.prober is not None:
            await self.prober.start()
        self._judge = asyncio.get_running_loop().create_task(self._judge_forever())

    async def stop(self) -> None:
        if self._judge is not None:
            self._judge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._judge
        if self.prober is not None:
            await self.prober.stop()
        await self.webhooks.stop()

    # ------------------------------------------------------------ measuring

    async def view(self) -> LiveView:
        now = self._clock()
        s = self.settings
        rows = await self._store.probe_minutes(minute_of(now) - SEEN_WINDOW_MS)
        recent = await self._store.probe_nodes(minute_of(now) - SEEN_WINDOW_MS)
        known = await self._store.probe_nodes(now - int(s.node_forget_h * 3_600_000))
        return live_view(
            rows,
            now_ms=now,
            last_report_ms=recent,
            known_nodes=sorted(known),
            nodes_seen=len(recent),
            stale_ms=s.stale_ms,
            thresholds=s.thresholds,
            quorum=s.quorum,
        )

    def _leader(self, view: LiveView) -> str | None:
        return min(view.reporting) if view.reporting else None

    async def _judge_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.canary_interval_s)
            try:
                await self.judge()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("judging the status failed")

    async def judge(self) -> None:
        """One round: if this node leads, record closed minutes and move incidents."""
        view = await self.view()
        self.leading = self._leader(view) == self.settings.node
        if not self.leading:
            return
        self._remember_live(view)
        await self._record_minutes(view)
        incidents = await self._store.open_incidents()
        await self._automatic("canary", view, incidents)
        await self._automatic("reports", view, incidents)

    def _remember_live(self, view: LiveView) -> None:
        minute = minute_of(view.now_ms)
        bad = {c: s for c, s in view.statuses.items() if is_bad(s)}
        self._seen_live[minute] = with_live(self._seen_live.get(minute, {}), bad)

    async def _record_minutes(self, view: LiveView) -> None:
        # A minute is final once its slowest probe (sent in it, resolved within the
        # timeout) has been written by its prober.
        s = self.settings
        final_before = minute_of(
            view.now_ms - int((s.probe_timeout_s + 2 * s.canary_interval_s) * 1000)
        )
        last = await self._store.last_status_minute()
        start = max(
            final_before - BACKFILL_MINUTES * MINUTE_MS,
            (last + MINUTE_MS) if last is not None else 0,
        )
        for old in [m for m in self._seen_live if m < start]:
            del self._seen_live[old]
        if start >= final_before:
            return
        rows = await self._store.probe_minutes(start - SEEN_WINDOW_MS)
        written: list[tuple[int, str, str]] = []
        for minute in range(start, final_before, MINUTE_MS):
            measured = minute_statuses(
                rows, minute, known_nodes=sorted(view.known_nodes),
                thresholds=s.thresholds, quorum=s.quorum,
            )  # fmt: skip
            statuses = with_live(measured, self._seen_live.pop(minute, {}))
            written += [(minute, c, st) for c, st in statuses.items()]
        await self._store.put_status_minutes(written)

    async def _automatic(self, key: str, view: LiveView, incidents: list[IncidentRecord]) -> None:
        mine = [i for i in incidents if i.automatic and i.key == key]
        incident = mine[0] if mine else None
        for duplicate in mine[1:]:  # two leaders for a moment: keep the oldest
            await self.desk.resolve(
                duplicate.id, f"Duplicate of incident #{mine[0].id}.", AUTOMATIC
            )
        if key == "canary":
            bad, known, title, impact, components, text = canary_picture(
                view, self.settings.thresholds, incident.components if incident else ()
            )
            picture = Picture(bad, known, title, impact, components, text)
        else:
            picture = await self._reports_picture(view.now_ms)
        action = plan(picture, incident, view.now_ms, int(self.settings.recover_after_s * 1000))
        if action is None:
            return
        if action.kind == "open":
            await self.desk.open(
                action.title or "Problem detected",
                action.impact or "minor",
                action.components or (),
                action.text,
                AUTOMATIC,
                automatic=True,
                key=key,
            )
        elif incident is not None:
            await self.desk.update(
                incident.id,
                action.status,
                action.text,
                AUTOMATIC,
                impact=action.impact,
                components=action.components,
                title=action.title,
            )

    async def _reports_picture(self, now_ms: int) -> Picture:
        rule = self.settings.reports
        since = minute_of(now_ms) - (rule.window_min + 2) * MINUTE_MS
        counts: dict[int, dict[str, int]] = {}
        for minute, kind, n in await self._store.report_counts(since):
            counts.setdefault(minute, {})[kind] = n
        spike = detect_spike(counts, now_ms, rule)
        if spike is None:
            return Picture(bad=False, known=True)
        components = tuple(
            sorted({COMPONENT_OF_KIND[k] for k in spike.by_kind if spike.by_kind[k]})
        )
        return Picture(
            bad=True,
            known=True,
            title="Users report problems",
            impact="minor",
            components=components,
            text=describe_spike(spike),
        )

    # ------------------------------------------------------------ reports, maintenance

    async def report(self, kind: str) -> None:
        await self._store.add_report(minute_of(self._clock()), kind)

    async def schedule_maintenance(
        self, title: str, starts_ms: int, ends_ms: int, components: list[str], text: str
    ) -> MaintenanceRecord:
        record = await self._store.create_maintenance(
            title, starts_ms, ends_ms, components, text, self._clock()
        )
        self.webhooks.emit(
            "maintenance.scheduled",
            "maintenance",
            {
                "id": record.id,
                "title": record.title,
                "starts_ms": record.starts_ms,
                "ends_ms": record.ends_ms,
                "components": list(record.components),
                "text": record.text,
            },
        )
        self._cached = None
        return record

    def invalidate(self) -> None:
        """Something on the page changed (an incident): rebuild the next document."""
        self._cached = None

    # ------------------------------------------------------------ the document

    async def document(self, max_age_s: float = 1.0) -> dict[str, Any]:
        """The signed status document, rebuilt at most every ``max_age_s``."""
        async with self._doc_lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < max_age_s:
                return self._cached[1]
            doc = self.signer.signed(await self._build())
            self._cached = (time.monotonic(), doc)
            return doc

    async def _day_counts(self, now_ms: int) -> list[tuple[str, int, str, int]]:
        if self._days is not None and time.monotonic() - self._days[0] < 30.0:
            return self._days[1]
        since = now_ms - now_ms % DAY_MS - (DAYS - 1) * DAY_MS
        counts = await self._store.status_minute_counts(since)
        self._days = (time.monotonic(), counts)
        return counts

    async def _build(self) -> dict[str, Any]:
        view = await self.view()
        now = view.now_ms
        return assemble(
            node=self.settings.node,
            view=view,
            day_counts=await self._day_counts(now),
            objective=self.settings.objective,
            slo_totals=await self._store.probe_totals("send", month_start_ms(now)),
            open_incidents=await self._store.open_incidents(),
            recent_incidents=await self._store.resolved_incidents(
                now - DAYS * DAY_MS, RECENT_INCIDENTS
            ),
            maintenance=await self._store.maintenance_windows(now),
            public_key=self.signer.public_key_b64,
        )
