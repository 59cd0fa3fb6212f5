"""The CLI's status commands: ``taube status``, ``status export``, ``report``, and the
operators' ``incident``, ``maintenance`` and ``webhook`` commands.

``taube status`` reads the signed status document from the first node that answers,
else from the status URL (``--status-url``, env ``TAUBE_STATUS_URL``, or the profile's),
and checks it with the key the profile learned from its servers. A forged document is
refused (exit 1, ``status.bad_signature``); a stale one is shown as "status unknown"
unless it reports an outage (see :mod:`taube.client.status`).

``taube status export DIR`` copies the page, its stylesheet, the document and the Atom
feed into DIR, each file replaced atomically, so that any static host can publish them
outside the nodes' blast radius; with ``--every`` it keeps doing so, and while no node
answers it leaves the last good copy in place to age (its readers see it go stale).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Any, Final

import aiohttp
import msgspec

from taube.cli import render
from taube.cli.commands import (
    DEFAULT_SERVER,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CliError,
    admin_servers,
    explicit_servers,
    note,
    open_api,
    profile_dir,
)
from taube.client import Api, NotLoggedIn, Profile, normalize_servers
from taube.client.status import (
    OUTAGE_VERDICTS,
    VERDICT_WORDS,
    Incident,
    StatusForged,
    StatusUnavailable,
    StatusView,
    fetch_status,
    fetch_status_key,
    judge,
    shown_verdict,
    stale_line,
)
from taube.protocol import api

# What an export copies: (path on a node, file name in DIR).
EXPORT_FILES: Final = (
    ("/status", "index.html"),
    ("/status/status.css", "status.css"),
    ("/status/feed.atom", "feed.atom"),
    ("/status.json", "status.json"),  # last: readers look at it to judge the copy's age
)
# Absolute links of the node's page, made relative so that the copy works in any folder.
EXPORT_LINKS: Final = (
    ('"/status/status.css"', '"status.css"'),
    ('"/status/feed.atom"', '"feed.atom"'),
    ('"/status.json"', '"status.json"'),
)
MARKS: Final = {
    "operational": "●",
    "degraded": "◐",
    "partial_outage": "◑",
    "major_outage": "○",
    "unknown": "?",
}
_DURATION_UNITS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds from ``500ms``, ``30s``, ``2m``, ``1h``, ``1d`` or a bare number of seconds."""
    text = text.strip().lower()
    for unit in sorted(_DURATION_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            number = text[: -len(unit)]
            break
    else:
        number, unit = text, "s"
    try:
        value = float(number) * _DURATION_UNITS[unit]
    except ValueError:
        value = -1.0
    if value <= 0:
        raise CliError(
            "client.usage", f"{text!r} is not a duration: use e.g. 30s, 2m or 1h", EXIT_USAGE
        )
    return value


def parse_time(text: str) -> int:
    """Milliseconds from an ISO 8601 time (UTC unless it names an offset)."""
    try:
        at = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CliError(
            "client.usage", f"{text!r} is not a time: use e.g. 2025-05-03T22:00Z", EXIT_USAGE
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return int(at.timestamp() * 1000)


# --------------------------------------------------------------------------- where to look


def status_url(args: argparse.Namespace, profile: Profile | None = None) -> str | None:
    given = getattr(args, "status_url", None) or os.environ.get("TAUBE_STATUS_URL")
    if given:
        return str(given)
    if profile is not None:
        return profile.status_state().status_url
    return None


def _sources(args: argparse.Namespace) -> tuple[tuple[str, ...], str | None, str | None]:
    """Servers, status URL and the trusted status key for this profile."""
    with Profile.open(profile_dir(args)) as profile:
        session = profile.session()
        state = profile.status_state()
        url = status_url(args, profile)
    servers = explicit_servers(args)
    if servers is None:
        servers = session.servers if session is not None else normalize_servers(DEFAULT_SERVER)
    return servers, url, state.public_key


# --------------------------------------------------------------------------- taube status


async def status(args: argparse.Namespace) -> int:
    """Print the service's status (or, with ``--json``, the document and its checks)."""
    servers, url, key = _sources(args)
    max_age = parse_duration(args.max_age)
    try:
        async with aiohttp.ClientSession() as http:
            view = await fetch_status(http, servers, url, key, max_age_s=max_age)
    except StatusForged as exc:
        raise CliError(exc.code, exc.message, EXIT_ERROR) from None
    except StatusUnavailable as exc:
        hint = "" if url else " (no status URL: give --status-url or set TAUBE_STATUS_URL)"
        raise CliError("client.unreachable", f"{exc}{hint}", EXIT_UNAVAILABLE) from None
    if args.json:
        print(render.json_line({**view.raw, "fresh": view.fresh, "verified": view.verified}))
    else:
        print("\n".join(status_lines(view)))
    return EXIT_OK


def status_lines(view: StatusView, now_ms: int | None = None) -> list[str]:
    """The picture, for a terminal. Pure."""
    doc = view.document
    now = int(time.time() * 1000) if now_ms is None else now_ms
    verdict = view.verdict
    lines = [f"{MARKS[verdict]} Taube: {VERDICT_WORDS[verdict]}"]
    if not view.fresh:
        if verdict in OUTAGE_VERDICTS:
            lines.append(f"  (as of {_when(doc.generated_ms)}: no newer report since)")
        else:
            lines.append(f"  {stale_line(view)}")
    check = "signature verified" if view.verified else "UNVERIFIED: this device knows no status key"
    lines.append(
        f"  from {view.source}, generated {_when(doc.generated_ms)} "
        f"({_ago(now - doc.generated_ms)}) by {doc.node or 'a node'}; {check}"
    )
    if not view.verified:
        lines.append("  (log in to a server once to learn its key; until then trust no text here)")
    if doc.components:
        lines += ["", "Components (90-day uptime)"]
        width = max(len(c.name or c.id) for c in doc.components)
        for c in doc.components:
            status = c.status if view.fresh else f"{c.status} (stale)"
            lines.append(
                f"  {c.name or c.id:<{width}}  {status.replace('_', ' '):<22}  "
                f"{_percent(c.uptime_90d):>8}  {_bar(c)}"
            )
    latency = doc.latency
    if latency.p50_ms is not None or latency.p99_ms is not None:
        window = f", last {latency.window_s:g} s" if latency.window_s else ""
        lines += [
            "",
            f"Delivery latency (canaries{window}): p50 {_ms(latency.p50_ms)}, "
            f"p99 {_ms(latency.p99_ms)}",
        ]
    if doc.slos:
        lines += ["", "Objectives (this month)"]
        for slo in doc.slos:
            lines.append(
                f"  {slo.component}: {slo.objective or _percent(slo.target)} — achieved "
                f"{_percent(slo.achieved)}, error budget left {_percent(slo.budget_left)}"
            )
    opened = doc.incidents.open
    lines += ["", "Open incidents" if opened else "No open incidents"]
    for incident in opened:
        lines += _incident_lines(incident)
    if doc.maintenance:
        lines += ["", "Scheduled maintenance"]
        for m in doc.maintenance:
            where = f" ({', '.join(m.components)})" if m.components else ""
            lines.append(f"  {_when(m.starts_ms)} – {_when(m.ends_ms)}  {m.title}{where}")
            if m.text:
                lines.append(f"      {m.text}")
    recent = [i for i in doc.incidents.recent if i.resolved_ms is not None]
    if recent:
        lines += ["", "Past incidents"]
        for incident in recent[:5]:
            assert incident.resolved_ms is not None
            pm = "; post-mortem published" if incident.postmortem else ""
            lines.append(
                f"  {incident.ref}  {incident.title}  ({_when(incident.started_ms)} – "
                f"{_when(incident.resolved_ms)}{pm})"
            )
    return lines


def _incident_lines(incident: Incident) -> list[str]:
    how = "automatic" if incident.automatic else "by the operators"
    where = f"; {', '.join(incident.components)}" if incident.components else ""
    lines = [
        f"  {incident.ref}  {incident.title}",
        f"      {incident.impact} impact, {incident.status}, since "
        f"{_when(incident.started_ms)} ({how}{where})",
    ]
    for update in incident.updates:
        by = f" — {update.by}" if update.by else ""
        lines.append(f"      {_when(update.at_ms)}  {update.status:<13}  {update.text}{by}")
    return lines


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _ago(ms: int) -> str:
    s = ms / 1000
    if s < 0:
        return f"{-s:.0f} s in the future"
    if s < 120:
        return f"{s:.0f} s ago"
    if s < 7200:
        return f"{s / 60:.0f} min ago"
    return f"{s / 3600:.1f} h ago"


def _percent(value: float | None) -> str:
    # Shares are fractions in the document (0.9995 is 99.95 %).
    return "—" if value is None else f"{value * 100:.2f} %"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def _bar(component: Any) -> str:
    """The last 30 days as one character each, oldest first."""
    marks = {"operational": "█", "degraded": "▆", "partial_outage": "▃", "major_outage": "▁"}
    return "".join(marks.get(d.status, "·") for d in component.days[-30:])


# --------------------------------------------------------------------------- export


async def status_export(args: argparse.Namespace) -> int:
    """Copy the status page, document and feed into DIR (once, or ``--every``)."""
    folder = Path(args.dir)
    every = parse_duration(args.every) if args.every else None
    max_age = parse_duration(args.max_age)
    if args.count is not None and args.count < 1:
        raise CliError("client.usage", "--count must be at least 1", EXIT_USAGE)
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    servers, _, key = _sources(args)
    rounds = 0
    exported = 0
    async with aiohttp.ClientSession() as http:
        while True:
            rounds += 1
            try:
                node = await export_once(http, servers, key, folder)
            except (StatusUnavailable, StatusForged) as exc:
                if every is None:
                    code = EXIT_ERROR if isinstance(exc, StatusForged) else EXIT_UNAVAILABLE
                    raise CliError(
                        getattr(exc, "code", "client.unreachable"), str(exc), code
                    ) from None
                note(f"export skipped, the last good copy stays: {exc}")
                if await asyncio.to_thread(mark_stale_page, folder, max_age):
                    note("the last good copy is stale: its page now says status unknown")
            else:
                exported += 1
                note(f"exported the status of {node} to {folder}")
            if every is None or (args.count is not None and rounds >= args.count):
                break
            await asyncio.sleep(every)
    if exported == 0:
        raise CliError("client.unreachable", "no node answered; nothing exported", EXIT_UNAVAILABLE)
    return EXIT_OK


async def export_once(
    http: aiohttp.ClientSession, servers: tuple[str, ...], key: str | None, folder: Path
) -> str:
    """Fetch all four files from the first node that gives them all (a consistent set),
    check the document's signature, and replace the files in ``folder``."""
    problems: list[str] = []
    forged: StatusForged | None = None
    timeout = aiohttp.ClientTimeout(total=10, connect=3)
    for server in servers:
        try:
            files: dict[str, bytes] = {}
            for path, name in EXPORT_FILES:
                async with http.get(server + path, timeout=timeout) as response:
                    if response.status != 200:
                        raise StatusUnavailable(f"HTTP {response.status} for {path}")
                    files[name] = await response.read()
            raw = msgspec.json.decode(files["status.json"])
            if not isinstance(raw, dict):
                raise StatusUnavailable("status.json is not a JSON object")
            trusted = key or await fetch_status_key(http, server, timeout)
            judge(raw, trusted, source=server + "/status.json", max_age_s=float("inf"))
        except StatusForged as exc:
            forged = forged or exc
            continue
        except Exception as exc:  # any trouble with this node: try the next one
            problems.append(f"{server}: {type(exc).__name__}: {exc}")
            continue
        page = files["index.html"].decode("utf-8")
        for old, new in EXPORT_LINKS:
            page = page.replace(old, new)
        files["index.html"] = page.encode("utf-8")
        for _, name in EXPORT_FILES:
            await asyncio.to_thread(write_atomically, folder / name, files[name])
        return server
    if forged is not None:
        raise forged
    raise StatusUnavailable("no node gave the status files (" + "; ".join(problems) + ")")


def mark_stale_page(folder: Path, max_age_s: float, now_ms: int | None = None) -> bool:
    """While no node answers, the exporter is a vantage point outside their blast radius:
    once the last good ``status.json`` is older than ``max_age_s``, re-draw ``index.html``
    from it as "status unknown" (an outage stays an outage), for readers without a
    client that checks the age. ``status.json`` itself stays as signed, ageing. True if
    the page was re-drawn."""
    from taube.status.page import render_page  # pure; only the exporter needs it

    try:
        raw = msgspec.json.decode((folder / "status.json").read_bytes())
        generated = int(raw["generated_ms"])
    except (OSError, msgspec.DecodeError, KeyError, TypeError, ValueError):
        return False
    now = int(time.time() * 1000) if now_ms is None else now_ms
    fresh = abs(now - generated) <= max_age_s * 1000
    shown = shown_verdict(str(raw.get("verdict", "unknown")), fresh=fresh)
    if fresh or shown == raw.get("verdict"):
        return False
    components = [
        {**c, "status": shown_verdict(str(c.get("status", "unknown")), fresh=False)}
        for c in raw.get("components", [])
        if isinstance(c, dict)
    ]
    stale = {**raw, "verdict": shown, "components": components}
    page = render_page(stale, css_href="status.css")
    write_atomically(folder / "index.html", page.encode("utf-8"))
    return True


def write_atomically(path: Path, data: bytes) -> None:
    """Write a temporary file next to ``path``, flush it to disk, rename it over ``path``:
    a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        tmp.chmod(0o644)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# --------------------------------------------------------------------------- user reports


async def report(args: argparse.Namespace) -> int:
    """Tell the operators "I can't send / receive / connect"."""
    try:
        async with open_api(args) as server:
            await server.report(args.kind, args.detail)
    except NotLoggedIn:
        # Anyone may report (the device token only helps to count devices once).
        async with Api(admin_servers(args)) as anonymous:
            await anonymous.report(args.kind, args.detail, with_token=False)
    note(f"reported: can't {args.kind}; thank you")
    return EXIT_OK


# --------------------------------------------------------------------------- operators


def admin_token(args: argparse.Namespace) -> str:
    token: str = args.admin_token or os.environ.get("TAUBE_ADMIN_TOKEN", "")
    if not token:
        hint = "no admin token: give --admin-token or set TAUBE_ADMIN_TOKEN"
        raise CliError("client.usage", hint, EXIT_USAGE)
    return token


def _print_incident(answer: api.Incident) -> None:
    """The id on stdout (for scripts), the timeline on stderr (for people)."""
    print(answer.id)
    incident = msgspec.convert(msgspec.to_builtins(answer), Incident)
    for line in _incident_lines(incident):
        note(line)


async def incident_open(args: argparse.Namespace) -> int:
    token = admin_token(args)
    if not args.component:
        raise CliError("client.usage", "name at least one --component", EXIT_USAGE)
    async with Api(admin_servers(args)) as server:
        answer = await server.open_incident(
            token, args.title, args.impact, args.component, args.text
        )
    _print_incident(answer)
    return EXIT_OK


async def incident_update(args: argparse.Namespace) -> int:
    token = admin_token(args)
    async with Api(admin_servers(args)) as server:
        answer = await server.update_incident(token, args.id, args.status, args.text)
    _print_incident(answer)
    return EXIT_OK


async def incident_resolve(args: argparse.Namespace) -> int:
    token = admin_token(args)
    async with Api(admin_servers(args)) as server:
        answer = await server.resolve_incident(token, args.id, args.text)
    note(f"resolved incident #{answer.id}; now write the post-mortem (template below) and run")
    note(f"  taube incident postmortem {answer.id} --file POSTMORTEM.md")
    print(answer.postmortem_template.rstrip("\n"))
    return EXIT_OK


async def incident_postmortem(args: argparse.Namespace) -> int:
    token = admin_token(args)
    if (args.file is None) == (args.text is None):
        raise CliError("client.usage", "give --file F or --text T (one of them)", EXIT_USAGE)
    if args.file is not None:
        source = sys.stdin if args.file == "-" else None
        text = source.read() if source else await asyncio.to_thread(_read_text, args.file)
    else:
        text = args.text
    if not text.strip():
        raise CliError("client.usage", "the post-mortem is empty", EXIT_USAGE)
    async with Api(admin_servers(args)) as api:
        await api.set_postmortem(token, args.id, text)
    note(f"published the post-mortem of incident #{args.id.removeprefix('#')}")
    return EXIT_OK


def _read_text(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


async def maintenance_schedule(args: argparse.Namespace) -> int:
    token = admin_token(args)
    starts, ends = parse_time(args.start), parse_time(args.end)
    if ends <= starts:
        raise CliError("client.usage", "--end must be after --start", EXIT_USAGE)
    async with Api(admin_servers(args)) as server:
        answer = await server.schedule_maintenance(
            token, args.title, starts, ends, args.component, args.text
        )
    print(answer.id)
    note(f"scheduled: {answer.title}, {_when(answer.starts_ms)} – {_when(answer.ends_ms)}")
    return EXIT_OK


async def webhook_add(args: argparse.Namespace) -> int:
    token = admin_token(args)
    async with Api(admin_servers(args)) as server:
        answer = await server.add_webhook(token, args.url, args.secret)
    print(answer.id)
    note(f"subscribed {answer.url}; deliveries carry Taube-Signature (HMAC with your secret)")
    return EXIT_OK


async def webhook_list(args: argparse.Namespace) -> int:
    token = admin_token(args)
    async with Api(admin_servers(args)) as server:
        hooks = await server.webhooks(token)
    for hook in hooks:
        print(f"{hook.id}  {hook.url}")
    return EXIT_OK


async def webhook_remove(args: argparse.Namespace) -> int:
    token = admin_token(args)
    async with Api(admin_servers(args)) as server:
        await server.remove_webhook(token, args.id)
    print(f"removed webhook {args.id}")
    return EXIT_OK


async def webhook_deliveries(args: argparse.Namespace) -> int:
    token = admin_token(args)
    async with Api(admin_servers(args)) as server:
        deliveries = await server.webhook_deliveries(token)
    for d in deliveries:
        if args.json:
            print(render.json_line(msgspec.to_builtins(d)))
            continue
        answer = f"HTTP {d.status_code}" if d.status_code is not None else (d.error or "-")
        outcome = "delivered" if d.delivered else "failed"
        print(
            f"{_when(d.at_ms)}  webhook {d.webhook_id}  {d.event}  attempt {d.attempt}  "
            f"{outcome} ({answer})"
        )
    return EXIT_OK
