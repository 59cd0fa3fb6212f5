"""Incidents: a small state machine (pure), the automatic planner (pure), and the
desk that carries changes out (store, service notices, webhooks).

States: ``investigating`` -> ``identified`` -> ``monitoring`` -> ``resolved``. An
open incident may move to any open state or to ``resolved``; a resolved one never
changes again (only its post-mortem is written later). Every change is kept as an
update with its time, status, text and author.

Automatic incidents (``plan``): the measured picture of a source (the canaries, the
user reports) is bad or not. Bad and no open incident of that source: open one.
Bad and open: update it when its components, impact or title changed, or when it
had been ``monitoring`` (the problem is back). Good again: move it to
``monitoring``; once every one of its components has been measured good for
``recover_after_ms`` since then, resolve it. While its components are unknown (not
measured), nothing moves: no data is no recovery.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec

from taube.core.clock import Clock
from taube.core.notices import Notices
from taube.protocol import api as body
from taube.protocol.errors import TaubeError
from taube.store.base import IncidentRecord, IncidentUpdateRecord, Store

log = logging.getLogger("taube.status.incidents")

OPEN_STATUSES: Final = ("investigating", "identified", "monitoring")
STATUSES: Final = (*OPEN_STATUSES, "resolved")
IMPACTS: Final = ("minor", "major", "critical")
AUTOMATIC: Final = "taube (automatic)"
NOTICE_TTL_S: Final = 7 * 24 * 3600
RESOLVED_NOTICE_TTL_S: Final = 3600
MAX_NOTICE_CHARS: Final = 500


def can_move(current: str, new: str) -> bool:
    """The state machine: open incidents move anywhere; resolved ones never move."""
    return current in OPEN_STATUSES and new in STATUSES


def notice_level(impact: str) -> str:
    return "outage" if impact in ("major", "critical") else "warning"


def impact_of(status: str) -> str:
    """The impact of a component status: degraded is minor, partial major, major critical."""
    return {"degraded": "minor", "partial_outage": "major", "major_outage": "critical"}.get(
        status, "minor"
    )


def postmortem_template(incident: IncidentRecord) -> str:
    lines = [f"# Post-mortem: incident #{incident.id}, {incident.title}", "", "## Impact", ""]
    lines.append(
        f"Components: {', '.join(incident.components) or '(none named)'}; "
        f"impact: {incident.impact}. Who was affected, how, for how long?"
    )
    lines += ["", "## Timeline (UTC)", ""]
    lines += [f"- {_utc(u.at_ms)} {u.status}: {u.text}" for u in incident.updates]
    lines += ["", "## Cause", "", "What went wrong, and why.", "", "## Fixes", ""]
    lines += ["- [ ] What we change so that it does not happen again.", ""]
    return "\n".join(lines)


def _utc(at_ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(at_ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


# ---------------------------------------------------------------- automatic planning


@dataclass(frozen=True, slots=True)
class Picture:
    """What a source measures now."""

    bad: bool
    known: bool
    """False while the incident's components are not measured at all."""
    title: str = ""
    impact: str = "minor"
    components: tuple[str, ...] = ()
    text: str = ""


@dataclass(frozen=True, slots=True)
class Action:
    kind: Literal["open", "update", "resolve"]
    status: str
    text: str
    title: str | None = None
    impact: str | None = None
    components: tuple[str, ...] | None = None


def plan(
    picture: Picture, incident: IncidentRecord | None, now_ms: int, recover_after_ms: int
) -> Action | None:
    if incident is None:
        if picture.bad:
            return Action(
                "open", "investigating", picture.text, picture.title, picture.impact,
                picture.components,
            )  # fmt: skip
        return None
    if picture.bad:
        if incident.status == "monitoring":
            return Action(
                "update", "investigating", f"The problem is back. {picture.text}",
                picture.title, picture.impact, picture.components,
            )  # fmt: skip
        if (
            set(picture.components) != set(incident.components)
            or picture.impact != incident.impact
            or picture.title != incident.title
        ):
            return Action(
                "update", incident.status, picture.text, picture.title, picture.impact,
                picture.components,
            )  # fmt: skip
        return None
    if not picture.known:
        return None
    minutes = max(1, round(recover_after_ms / 60_000))
    if incident.status != "monitoring":
        return Action(
            "update",
            "monitoring",
            f"Measurements are good again; closing after {minutes} min of stable results.",
        )
    since = incident.updates[-1].at_ms if incident.updates else incident.started_ms
    if now_ms - since >= recover_after_ms:
        return Action(
            "resolve", "resolved", f"Measurements stayed good for {minutes} min: resolved."
        )
    return None


# ---------------------------------------------------------------- bodies


def incident_body(record: IncidentRecord) -> body.Incident:
    return body.Incident(
        id=record.id,
        title=record.title,
        status=record.status,  # type: ignore[arg-type]
        impact=record.impact,  # type: ignore[arg-type]
        components=list(record.components),
        started_ms=record.started_ms,
        resolved_ms=record.resolved_ms,
        automatic=record.automatic,
        updates=[
            body.IncidentUpdateInfo(at_ms=u.at_ms, status=u.status, text=u.text, by=u.by)
            for u in record.updates
        ],
        postmortem=record.postmortem,
    )


def incident_dict(record: IncidentRecord) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.to_builtins(incident_body(record))
    return result


# ---------------------------------------------------------------- the desk


class EventSink:
    """Where incident and maintenance events go besides the store (webhooks)."""

    def emit(self, event: str, key: str, payload: dict[str, Any]) -> None:
        """Queue ``{"event": event, key: payload, "sent_ms": ...}``; never blocks."""


class IncidentDesk:
    """Opens, updates and resolves incidents; tells clients (notices) and subscribers
    (webhooks) of every change. Safe to call from any node: the store is the truth."""

    def __init__(
        self,
        store: Store,
        notices: Notices,
        clock: Clock,
        events: EventSink | None = None,
    ) -> None:
        self._store = store
        self._notices = notices
        self._clock = clock
        self.events = events or EventSink()

    async def open(
        self,
        title: str,
        impact: str,
        components: Sequence[str],
        text: str,
        by: str,
        *,
        automatic: bool = False,
        key: str | None = None,
    ) -> IncidentRecord:
        first = IncidentUpdateRecord(self._clock(), "investigating", text, by)
        record = await self._store.create_incident(
            title, impact, list(components), first, automatic=automatic, key=key
        )
        log.info("incident #%d opened: %s", record.id, title)
        return await self._announce(record, "incident.opened")

    async def update(
        self,
        incident_id: int,
        status: str,
        text: str,
        by: str,
        *,
        impact: str | None = None,
        components: Sequence[str] | None = None,
        title: str | None = None,
    ) -> IncidentRecord:
        current = await self._store.get_incident(incident_id)
        if current is None:
            raise TaubeError("incident.not_found")
        if not can_move(current.status, status):
            raise TaubeError("incident.resolved")
        update = IncidentUpdateRecord(self._clock(), status, text, by)
        record = await self._store.update_incident(
            incident_id, update, impact=impact, components=components, title=title
        )
        if record is None:  # resolved meanwhile, elsewhere
            raise TaubeError("incident.resolved")
        event = "incident.resolved" if status == "resolved" else "incident.updated"
        log.info("incident #%d %s", record.id, status)
        return await self._announce(record, event)

    async def resolve(self, incident_id: int, text: str, by: str) -> IncidentRecord:
        return await self.update(incident_id, "resolved", text, by)

    async def postmortem(self, incident_id: int, text: str) -> IncidentRecord:
        record = await self._store.set_incident_text(incident_id, postmortem=text)
        if record is None:
            raise TaubeError("incident.not_found")
        return record

    async def _announce(self, record: IncidentRecord, event: str) -> IncidentRecord:
        """End the incident's previous notice and post the current one; webhooks."""
        latest = record.updates[-1] if record.updates else None
        said = latest.text if latest and latest.text else record.title
        if record.status == "resolved":
            text, level, ttl = f"Resolved: {record.title}. {said}", "info", RESOLVED_NOTICE_TTL_S
        else:
            label = "" if record.status == "investigating" else f" ({record.status})"
            text = f"Incident #{record.id}{label}: {record.title}. {said}"
            level, ttl = notice_level(record.impact), NOTICE_TTL_S
        if len(text) > MAX_NOTICE_CHARS:
            text = text[: MAX_NOTICE_CHARS - 1] + "…"
        try:
            if record.notice_id:
                await self._notices.end(record.notice_id, missing_ok=True)
            notice = await self._notices.post(text, level, ttl)
            record = await self._store.set_incident_text(record.id, notice_id=notice.id) or record
        except Exception:  # the incident stands; the notice is best effort
            log.exception("telling clients about incident #%d failed", record.id)
        self.events.emit(event, "incident", incident_dict(record))
        return record
