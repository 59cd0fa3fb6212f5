"""The status page as HTML (pure): one function of the status document.

No scripts at all and no inline styles (the server's CSP forbids both): the page
links one stylesheet (``STATUS_CSS``, served at ``/status/status.css`` and written
next to ``index.html`` by ``taube status export``). Uptime bars are 90 small boxes
per component whose colour comes from a class; each carries a ``title`` with the
day's date, status and uptime, which browsers show on hover without JavaScript.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any, Final

STATUS_WORDS: Final = {
    "operational": "Operational",
    "degraded": "Degraded",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
    "unknown": "Unknown",
}
VERDICT_WORDS: Final = {
    "operational": "All systems operational",
    "degraded": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
    "unknown": "Status unknown",
}

STATUS_CSS: Final = """\
:root { color-scheme: light dark; --ok: #2e9e5b; --degraded: #d9a400; --partial: #e8702a;
  --major: #d0342c; --unknown: #9aa0a6; --fg: #1d1f21; --bg: #fff; --muted: #5f6368;
  --line: #dadce0; }
@media (prefers-color-scheme: dark) { :root { --fg: #e8eaed; --bg: #17181a; --muted: #9aa0a6;
  --line: #3c4043; } }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 56rem; padding: 1rem; font: 16px/1.5 system-ui, sans-serif;
  color: var(--fg); background: var(--bg); }
h1 { font-size: 1.5rem; margin: 0 0 1rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; border-bottom: 1px solid var(--line); }
.verdict { padding: .8rem 1rem; border-radius: .5rem; color: #fff; font-weight: 600; }
.verdict.operational { background: var(--ok); } .verdict.degraded { background: var(--degraded); }
.verdict.partial_outage { background: var(--partial); }
.verdict.major_outage { background: var(--major); } .verdict.unknown { background: var(--unknown); }
.meta, .muted { color: var(--muted); font-size: .9rem; }
.component { padding: .6rem 0; border-bottom: 1px solid var(--line); }
.component .head { display: flex; justify-content: space-between; gap: 1rem; flex-wrap: wrap; }
.state.operational { color: var(--ok); } .state.degraded { color: var(--degraded); }
.state.partial_outage { color: var(--partial); } .state.major_outage { color: var(--major); }
.state.unknown { color: var(--unknown); }
.bars { display: flex; gap: 1px; height: 2rem; margin: .4rem 0 .2rem; }
.bar { flex: 1 1 0; min-width: 1px; border-radius: 1px; }
.bar.operational { background: var(--ok); } .bar.degraded { background: var(--degraded); }
.bar.partial_outage { background: var(--partial); } .bar.major_outage { background: var(--major); }
.bar.unknown { background: var(--unknown); opacity: .45; }
.axis { display: flex; justify-content: space-between; color: var(--muted); font-size: .8rem; }
.incident { margin: .8rem 0; padding: .6rem .8rem; border-left: 4px solid var(--line); }
.incident.minor { border-color: var(--degraded); } .incident.major { border-color: var(--partial); }
.incident.critical { border-color: var(--major); }
.incident ol { margin: .3rem 0; padding-left: 1.2rem; }
.postmortem { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: .85rem;
  background: rgba(127,127,127,.1); padding: .6rem; border-radius: .3rem; overflow-x: auto; }
table { border-collapse: collapse; } td, th { padding: .2rem .8rem .2rem 0; text-align: left; }
"""


def _utc(at_ms: int | None) -> str:
    if at_ms is None:
        return "—"
    return dt.datetime.fromtimestamp(at_ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _pct(value: float | None, digits: int = 2) -> str:
    return "no data" if value is None else f"{value * 100:.{digits}f} %"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def _incident(incident: dict[str, Any], with_postmortem: bool) -> str:
    e = escape
    parts = [
        f'<article class="incident {e(incident["impact"])}" id="incident-{incident["id"]}">',
        f"<h3>#{incident['id']} {e(incident['title'])}</h3>",
        f'<p class="meta">{e(incident["status"])} · impact {e(incident["impact"])} · '
        f"since {_utc(incident['started_ms'])}"
        + (f" · resolved {_utc(incident['resolved_ms'])}" if incident.get("resolved_ms") else "")
        + (" · opened automatically from measurements" if incident.get("automatic") else "")
        + "</p>",
    ]
    if incident.get("components"):
        parts.append(f'<p class="muted">Affects: {e(", ".join(incident["components"]))}</p>')
    parts.append("<ol reversed>")
    for update in reversed(incident.get("updates", [])):
        parts.append(
            f'<li><strong>{e(update["status"])}</strong> <span class="muted">'
            f"{_utc(update['at_ms'])}</span><br>{e(update['text'])}</li>"
        )
    parts.append("</ol>")
    if with_postmortem and incident.get("postmortem"):
        parts.append(
            f'<details open><summary>Post-mortem</summary><div class="postmortem">'
            f"{e(incident['postmortem'])}</div></details>"
        )
    parts.append("</article>")
    return "\n".join(parts)


def render_page(
    doc: dict[str, Any],
    *,
    css_href: str = "/status/status.css",
    feed_href: str = "/status/feed.atom",
    json_href: str = "/status.json",
) -> str:
    """The whole page for a status document (as fetched from ``/status.json``). The
    links default to the server's paths; an exported copy passes its file names."""
    e = escape
    verdict = doc.get("verdict", "unknown")
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Taube status</title>",
        f'<link rel="stylesheet" href="{e(css_href)}">',
        '<link rel="alternate" type="application/atom+xml" title="Incidents"'
        f' href="{e(feed_href)}">',
        "</head><body>",
        "<h1>Taube status</h1>",
        f'<p class="verdict {e(verdict)}">{e(VERDICT_WORDS.get(verdict, verdict))}</p>',
        f'<p class="meta">Generated {_utc(doc.get("generated_ms"))} by node '
        f"{e(str(doc.get('node', '?')))}. A copy older than a few minutes means the "
        "service could not confirm its health since then: treat it as unknown.</p>",
    ]
    open_incidents = doc.get("incidents", {}).get("open", [])
    if open_incidents:
        out.append("<h2>Open incidents</h2>")
        out += [_incident(i, with_postmortem=False) for i in open_incidents]
    maintenance = doc.get("maintenance", [])
    if maintenance:
        out.append("<h2>Scheduled maintenance</h2>")
        for m in maintenance:
            out.append(
                f'<article class="incident"><h3>{e(m["title"])}</h3>'
                f'<p class="meta">{_utc(m["starts_ms"])} – {_utc(m["ends_ms"])}'
                + (f" · {e(', '.join(m['components']))}" if m.get("components") else "")
                + f"</p><p>{e(m.get('text', ''))}</p></article>"
            )
    latency = doc.get("latency", {})
    out.append("<h2>Delivery</h2>")
    out.append(
        "<table><tr><th>Canary latency (send → delivered)</th><td>p50 "
        f"{_ms(latency.get('p50_ms'))}</td><td>p99 {_ms(latency.get('p99_ms'))}</td>"
        f'<td class="muted">last {latency.get("window_s", 300) // 60} min</td></tr>'
    )
    for slo in doc.get("slos", []):
        out.append(
            f"<tr><th>Objective: {e(slo['objective'])}</th><td>achieved "
            f"{_pct(slo.get('achieved'), 3)}</td><td>error budget left "
            f"{_pct(slo.get('budget_left'), 1)}</td><td></td></tr>"
        )
    out.append("</table>")
    out.append("<h2>Components</h2>")
    for c in doc.get("components", []):
        status = c.get("status", "unknown")
        out.append('<section class="component">')
        out.append(
            f'<div class="head"><strong>{e(c["name"])}</strong>'
            f'<span class="state {e(status)}">{e(STATUS_WORDS.get(status, status))}</span></div>'
        )
        out.append('<div class="bars">')
        for day in c.get("days", []):
            ds = day.get("status", "unknown")
            tip = f"{day['date']}: {STATUS_WORDS.get(ds, ds)}, uptime {_pct(day.get('uptime'))}"
            out.append(f'<span class="bar {e(ds)}" title="{e(tip)}"></span>')
        out.append("</div>")
        out.append(
            f'<div class="axis"><span>90 days ago</span><span>uptime '
            f"{_pct(c.get('uptime_90d'))}</span><span>today</span></div>"
        )
        out.append("</section>")
    recent = doc.get("incidents", {}).get("recent", [])
    out.append("<h2>Past incidents</h2>")
    if recent:
        out += [_incident(i, with_postmortem=True) for i in recent]
    else:
        out.append('<p class="muted">No incidents in the last 90 days.</p>')
    out.append(
        f'<p class="meta">Subscribe: <a href="{e(feed_href)}">Atom feed</a> · '
        f'<a href="{e(json_href)}">status.json</a> (signed; public key '
        f"<code>{e(str(doc.get('public_key', '')))}</code>)</p>"
    )
    out.append("</body></html>")
    return "\n".join(out) + "\n"
