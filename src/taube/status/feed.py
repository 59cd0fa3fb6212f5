"""The incidents as an Atom feed (RFC 4287; pure): one entry per incident update,
newest first, from a status document."""

from __future__ import annotations

import datetime as dt
from typing import Any
from xml.sax.saxutils import escape


def _rfc3339(at_ms: int) -> str:
    return dt.datetime.fromtimestamp(at_ms / 1000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_feed(doc: dict[str, Any], *, page_url: str = "", feed_url: str = "") -> str:
    """``page_url``: where the status page lives (links); ``feed_url``: this feed."""
    incidents = doc.get("incidents", {})
    entries = []
    for incident in [*incidents.get("open", []), *incidents.get("recent", [])]:
        for n, update in enumerate(incident.get("updates", []), start=1):
            entries.append((update["at_ms"], incident, n, update))
    entries.sort(key=lambda e: (e[0], e[1]["id"], e[2]), reverse=True)
    updated = entries[0][0] if entries else int(doc.get("generated_ms", 0))
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom">',
        "<title>Taube incidents</title>",
        "<id>urn:taube:status:incidents</id>",
        f"<updated>{_rfc3339(updated)}</updated>",
        "<author><name>Taube status</name></author>",
    ]
    if page_url:
        out.append(f'<link rel="alternate" type="text/html" href="{escape(page_url)}"/>')
    if feed_url:
        out.append(f'<link rel="self" href="{escape(feed_url)}"/>')
    for at_ms, incident, n, update in entries:
        title = f"#{incident['id']} {incident['title']}: {update['status']}"
        link = f"{page_url}#incident-{incident['id']}" if page_url else ""
        out += [
            "<entry>",
            f"<title>{escape(title)}</title>",
            f"<id>urn:taube:incident:{incident['id']}:update:{n}</id>",
            f"<updated>{_rfc3339(at_ms)}</updated>",
            f"<published>{_rfc3339(at_ms)}</published>",
            *([f'<link rel="alternate" href="{escape(link)}"/>'] if link else []),
            f'<category term="{escape(incident["impact"])}"/>',
            f'<content type="text">{escape(update["text"] or incident["title"])}</content>',
            "</entry>",
        ]
    out.append("</feed>")
    return "\n".join(out) + "\n"
