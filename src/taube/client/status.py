"""Reading Taube's signed status document: fetch it, check it, judge its age, say it plainly.

The document (``GET /status.json`` on any node, or a static copy made by
``taube status export`` and hosted anywhere) is signed with the operators'
Ed25519 key. A device learns the public key from its own servers
(``GET /v1/status/key``, at login and on every connect) and keeps it in the
profile; a copy from anywhere else is only believed if it verifies with that key.

Rules this module keeps:

* **Forged is refused.** A document whose signature is missing or does not verify
  raises :class:`StatusForged`; its words are never shown (they could be phishing).
  A document that verifies only with the key it carries itself (this device knows
  no key yet) is returned with ``verified=False`` and is described without its words.
* **Stale is never healthy** (a dead man's switch). A document older than
  ``max_age_s`` shows verdict ``unknown`` ("status unknown - last confirmed healthy
  at ..."), unless it reports an outage: bad news does not become good by ageing.
* **Nodes first.** The nodes are asked before the status URL: when a node answers,
  its picture is the newest there is.

Only :mod:`taube.status.signing` is shared with the server (pure functions over JSON).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import msgspec

from taube.client.errors import ServerUnreachable, TaubeClientError
from taube.protocol import frames as fr
from taube.status import signing

DEFAULT_MAX_AGE_S: Final = 120.0
FETCH_TIMEOUT: Final = aiohttp.ClientTimeout(total=5, connect=3)
OUTAGE_VERDICTS: Final = frozenset({"partial_outage", "major_outage"})
VERDICTS: Final = ("operational", "degraded", "partial_outage", "major_outage", "unknown")
VERDICT_WORDS: Final = {
    "operational": "all systems operational",
    "degraded": "degraded performance",
    "partial_outage": "partial outage",
    "major_outage": "major outage",
    "unknown": "status unknown",
}


class StatusUnavailable(ServerUnreachable):
    """Neither a node nor the status URL gave a status document."""


class StatusForged(TaubeClientError):
    """A status document (or notice) failed its signature check and was refused."""

    code = "status.bad_signature"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --------------------------------------------------------------------------- the document
# New fields get defaults and types never change (old clients keep reading new documents).


class IncidentUpdate(msgspec.Struct, frozen=True, kw_only=True):
    at_ms: int
    status: str
    text: str = ""
    by: str = ""


class Incident(msgspec.Struct, frozen=True, kw_only=True):
    id: str | int
    title: str
    status: str
    impact: str = "minor"
    components: tuple[str, ...] = ()
    started_ms: int = 0
    resolved_ms: int | None = None
    automatic: bool = False
    updates: tuple[IncidentUpdate, ...] = ()
    postmortem: str | None = None

    @property
    def ref(self) -> str:
        """``#12``: how people name an incident."""
        return f"#{self.id}"


class Day(msgspec.Struct, frozen=True, kw_only=True):
    date: str
    status: str = "unknown"
    uptime: float | None = None


class Component(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str = ""
    status: str = "unknown"
    uptime_90d: float | None = None
    days: tuple[Day, ...] = ()


class Latency(msgspec.Struct, frozen=True, kw_only=True):
    p50_ms: float | None = None
    p99_ms: float | None = None
    window_s: float | None = None


class Slo(msgspec.Struct, frozen=True, kw_only=True):
    component: str
    objective: str = ""
    target: float | None = None
    achieved: float | None = None
    budget_left: float | None = None


class Incidents(msgspec.Struct, frozen=True, kw_only=True):
    open: tuple[Incident, ...] = ()
    recent: tuple[Incident, ...] = ()


class Maintenance(msgspec.Struct, frozen=True, kw_only=True):
    id: str | int | None = None
    title: str = ""
    starts_ms: int = 0
    ends_ms: int = 0
    components: tuple[str, ...] = ()
    text: str = ""
    status: str = ""


class StatusDocument(msgspec.Struct, frozen=True, kw_only=True):
    version: int = 1
    generated_ms: int
    node: str = ""
    verdict: str = "unknown"
    components: tuple[Component, ...] = ()
    latency: Latency = Latency()
    slos: tuple[Slo, ...] = ()
    incidents: Incidents = Incidents()
    maintenance: tuple[Maintenance, ...] = ()
    public_key: str = ""
    signature: str = ""


@dataclass(frozen=True, slots=True)
class StatusView:
    """A fetched, checked document and what a reader should make of it."""

    raw: dict[str, Any]
    """The document exactly as signed (for ``--json`` and re-verification)."""
    document: StatusDocument
    source: str
    """The URL it came from."""
    verified: bool
    """Signed by the key this device trusts (False: it knows no key yet)."""
    fresh: bool
    age_s: float

    @property
    def verdict(self) -> str:
        """The verdict to show: the document's, or ``unknown`` once stale (outages stay)."""
        return shown_verdict(self.document.verdict, fresh=self.fresh)

    @property
    def open_incidents(self) -> tuple[Incident, ...]:
        return self.document.incidents.open


def shown_verdict(verdict: str, *, fresh: bool) -> str:
    """The dead man's switch: a stale document is ``unknown`` unless it shows an outage."""
    if verdict not in VERDICTS:
        return "unknown"
    if fresh or verdict in OUTAGE_VERDICTS:
        return verdict
    return "unknown"


def judge(
    raw: dict[str, Any],
    public_key: str | None,
    *,
    source: str,
    max_age_s: float = DEFAULT_MAX_AGE_S,
    now_ms: int | None = None,
) -> StatusView:
    """Check a decoded document against ``public_key`` (base64) and judge its age. Pure.

    Raises :class:`StatusForged` for an unsigned or badly signed document, and
    :class:`TaubeClientError` for one that is not a status document at all.
    """
    try:
        document = msgspec.convert(raw, StatusDocument)
    except msgspec.ValidationError as exc:
        raise TaubeClientError(f"{source} is not a Taube status document: {exc}") from exc
    if not document.signature:
        raise StatusForged(f"the status document from {source} is not signed; refused")
    if public_key:
        if not _verifies(raw, public_key):
            raise StatusForged(
                f"the status document from {source} is not signed by this server's status "
                "key (forged or from another server); refused"
            )
        verified = True
    else:
        # Self-consistent at best: whoever made it holds the key it names.
        if not (document.public_key and _verifies(raw, document.public_key)):
            raise StatusForged(f"the status document from {source} has a bad signature; refused")
        verified = False
    now = int(time.time() * 1000) if now_ms is None else now_ms
    age_s = (now - document.generated_ms) / 1000
    # A clock ahead of ours by more than the window is as suspect as a stale one.
    fresh = -max_age_s <= age_s <= max_age_s
    return StatusView(raw, document, source, verified, fresh, age_s)


def _verifies(raw: dict[str, Any], public_key: str) -> bool:
    return signing.verify_document(raw, public_key)


def verify_notice(frame: fr.Notice, public_key: str) -> bool:
    """True if a notice frame's ``signature`` verifies with the status key."""
    return signing.verify_notice(msgspec.structs.asdict(frame), public_key)


# --------------------------------------------------------------------------- fetching


def status_document_url(url: str) -> str:
    """A status URL as configured -> the document's URL: a ``.json`` URL is used as it
    is, anything else is a folder (a node, or an exported copy) holding ``status.json``."""
    url = url.strip()
    if url.endswith(".json"):
        return url
    return url.rstrip("/") + "/status.json"


async def fetch_status(
    session: aiohttp.ClientSession,
    servers: Sequence[str],
    status_url: str | None,
    public_key: str | None,
    *,
    max_age_s: float = DEFAULT_MAX_AGE_S,
    limits: aiohttp.ClientTimeout = FETCH_TIMEOUT,
) -> StatusView:
    """The first good document from the nodes (``/status.json``), then ``status_url``.

    Without a known ``public_key``, a node's own ``/v1/status/key`` is asked (the
    same trust as the node itself); a copy from the status URL is then unverified.
    A forged copy from one place does not stop a good one from the next; if only
    forged ones were found, :class:`StatusForged` is raised, and if nothing answered,
    :class:`StatusUnavailable`.
    """
    sources: list[tuple[str, str | None]] = [
        (f"{s.rstrip('/')}/status.json", s.rstrip("/")) for s in servers
    ]
    if status_url:
        sources.append((status_document_url(status_url), None))
    problems: list[str] = []
    forged: StatusForged | None = None
    for url, node in sources:
        try:
            raw = await _get_json(session, url, limits)
            key = public_key
            if key is None and node is not None:
                key = await fetch_status_key(session, node, limits)
            return judge(raw, key, source=url, max_age_s=max_age_s)
        except StatusForged as exc:
            forged = forged or exc
        except (aiohttp.ClientError, TimeoutError, TaubeClientError, ValueError) as exc:
            problems.append(f"{url}: {_describe(exc)}")
    if forged is not None:
        raise forged
    raise StatusUnavailable("no status document could be fetched (" + "; ".join(problems) + ")")


async def fetch_status_key(
    session: aiohttp.ClientSession, server: str, limits: aiohttp.ClientTimeout = FETCH_TIMEOUT
) -> str:
    """The base64 Ed25519 public key a node signs status documents and notices with."""
    answer = await _get_json(session, f"{server.rstrip('/')}/v1/status/key", limits)
    key = answer.get("public_key")
    if not isinstance(key, str) or not key:
        raise TaubeClientError(f"{server} gave no status key")
    return key


async def _get_json(
    session: aiohttp.ClientSession, url: str, limits: aiohttp.ClientTimeout
) -> dict[str, Any]:
    headers = {"Accept": "application/json", "Cache-Control": "no-cache"}
    async with session.get(url, timeout=limits, headers=headers) as response:
        if response.status != 200:
            raise TaubeClientError(f"HTTP {response.status}")
        body = await response.read()
    decoded = msgspec.json.decode(body)
    if not isinstance(decoded, dict):
        raise TaubeClientError("not a JSON object")
    return decoded


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------- words


def utc_clock(ms: int) -> str:
    """``07:12 UTC`` (with the date when it is not today)."""
    at = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    today = dt.datetime.now(tz=dt.UTC).date()
    if at.date() == today:
        return at.strftime("%H:%M UTC")
    return at.strftime("%Y-%m-%d %H:%M UTC")


def stale_line(view: StatusView) -> str:
    """What a stale document still tells: when things were last known to be fine."""
    at = utc_clock(view.document.generated_ms)
    if view.document.verdict == "operational":
        return f"status unknown — last confirmed healthy at {at}"
    said = VERDICT_WORDS.get(view.document.verdict, view.document.verdict)
    return f"status unknown — the last report ({at}) said: {said}"


def headline(view: StatusView) -> str:
    """One line for people who cannot connect: is it them, or is it us?"""
    if not view.verified:
        return (
            f"Taube's status page answered ({VERDICT_WORDS[view.verdict]}), but this device "
            "knows no status key to check it with; log in to a server once to learn it"
        )
    verdict = view.verdict
    incidents = view.open_incidents
    if verdict == "unknown" and not view.fresh:
        return stale_line(view) + " (the servers may be down)"
    if incidents:
        first = incidents[0]
        more = f" (and {len(incidents) - 1} more)" if len(incidents) > 1 else ""
        return (
            f"It's not you: incident {first.ref} since {utc_clock(first.started_ms)}, "
            f"{first.title}{more}"
        )
    if verdict in OUTAGE_VERDICTS or verdict == "degraded":
        return f"It's not you: Taube reports {VERDICT_WORDS[verdict]}"
    if verdict == "operational":
        return (
            "Taube's status page says all systems operational: the trouble may be on "
            "this side (network, firewall, proxy)"
        )
    return "status unknown"
