"""Status routes (docs/status.md): the public page, document, feed and key; user
reports; the operator's incidents, maintenance and webhooks (admin token)."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from taube.protocol import api as body
from taube.protocol.errors import TaubeError
from taube.server.api import current_device, int_param, require_admin, services
from taube.server.http import Route, json_response, read_body
from taube.server.transport import client_ip
from taube.server.web import PAGE_HEADERS
from taube.status.feed import render_feed
from taube.status.incidents import incident_body, postmortem_template
from taube.status.page import STATUS_CSS, render_page
from taube.status.reports import KINDS

log = logging.getLogger("taube.status.http")

ATOM = "application/atom+xml"
NO_CACHE = {"Cache-Control": "no-cache"}
MAX_DELIVERIES = 500


def operator(request: web.Request) -> str:
    return "operator"


# ---------------------------------------------------------------- public


async def status_json(request: web.Request) -> web.Response:
    doc = await services(request).status.document()
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    return web.Response(
        text=text,
        content_type="application/json",
        headers={**NO_CACHE, "Access-Control-Allow-Origin": "*"},
    )


async def status_page(request: web.Request) -> web.Response:
    doc = await services(request).status.document()
    return web.Response(
        text=render_page(doc, css_href="/status/status.css"),
        content_type="text/html",
        headers=PAGE_HEADERS,
    )


async def status_css(request: web.Request) -> web.Response:
    return web.Response(text=STATUS_CSS, content_type="text/css", headers=NO_CACHE)


async def status_feed(request: web.Request) -> web.Response:
    doc = await services(request).status.document()
    configured = services(request).config.status_public_url.rstrip("/")
    if configured:
        page, feed = f"{configured}/", f"{configured}/feed.atom"
    else:
        base = f"{request.scheme}://{request.host}"
        page, feed = f"{base}/status", f"{base}/status/feed.atom"
    return web.Response(
        text=render_feed(doc, page_url=page, feed_url=feed), content_type=ATOM, headers=NO_CACHE
    )


async def status_key(request: web.Request) -> web.Response:
    return json_response(body.StatusKey(public_key=services(request).status.signer.public_key_b64))


async def post_report(request: web.Request) -> web.Response:
    """Anyone may report (a client that cannot log in too); a device token, if given,
    is checked and the account limited as well as the address."""
    s = services(request)
    keys = [f"ip:{client_ip(request)}"]
    if request.headers.get("Authorization"):
        device = await current_device(request)
        keys.append(f"user:{device.user}")
    for key in keys:
        wait = s.node.reports.take(key)
        if wait:
            raise TaubeError("rate.limited", "Too many reports.", retry_after_s=wait)
    req = await read_body(request, body.ReportCreate)
    assert req.kind in KINDS
    await s.status.report(req.kind)
    return web.Response(status=202)


# ---------------------------------------------------------------- admin


async def open_incident(request: web.Request) -> web.Response:
    require_admin(request)
    req = await read_body(request, body.IncidentCreate)
    s = services(request)
    record = await s.status.desk.open(
        req.title, req.impact, req.components, req.text, operator(request)
    )
    s.status.invalidate()
    return json_response(incident_body(record), 201)


async def update_incident(request: web.Request) -> web.Response:
    require_admin(request)
    req = await read_body(request, body.IncidentUpdateCreate)
    s = services(request)
    record = await s.status.desk.update(
        int_param(request, "id"), req.status, req.text, operator(request)
    )
    s.status.invalidate()
    return json_response(incident_body(record))


async def resolve_incident(request: web.Request) -> web.Response:
    require_admin(request)
    req = await read_body(request, body.IncidentResolve)
    s = services(request)
    record = await s.status.desk.resolve(int_param(request, "id"), req.text, operator(request))
    s.status.invalidate()
    plain = incident_body(record)
    resolved = body.ResolvedIncident(
        **{f: getattr(plain, f) for f in plain.__struct_fields__},
        postmortem_template=postmortem_template(record),
    )
    return json_response(resolved)


async def put_postmortem(request: web.Request) -> web.Response:
    require_admin(request)
    req = await read_body(request, body.PostmortemPut)
    s = services(request)
    record = await s.status.desk.postmortem(int_param(request, "id"), req.text)
    s.status.invalidate()
    return json_response(incident_body(record))


async def schedule_maintenance(request: web.Request) -> web.Response:
    require_admin(request)
    req = await read_body(request, body.MaintenanceCreate)
    if req.ends_ms <= req.starts_ms:
        raise TaubeError("request.invalid", "ends_ms must be after starts_ms.")
    record = await services(request).status.schedule_maintenance(
        req.title, req.starts_ms, req.ends_ms, list(req.components), req.text
    )
    return json_response(
        body.Maintenance(
            id=record.id,
            title=record.title,
            starts_ms=record.starts_ms,
            ends_ms=record.ends_ms,
            components=list(record.components),
            text=record.text,
        ),
        201,
    )


async def add_webhook(request: web.Request) -> web.Response:
    require_admin(request)
    req = await read_body(request, body.WebhookCreate)
    s = services(request)
    record = await s.store.create_webhook(req.url, req.secret, s.clock())
    return json_response(body.Webhook(id=record.id, url=record.url), 201)


async def list_webhooks(request: web.Request) -> web.Response:
    require_admin(request)
    hooks = await services(request).store.webhooks()
    return json_response(
        body.WebhookList(webhooks=[body.Webhook(id=h.id, url=h.url) for h in hooks])
    )


async def delete_webhook(request: web.Request) -> web.Response:
    require_admin(request)
    if not await services(request).store.delete_webhook(int_param(request, "id")):
        raise TaubeError("webhook.not_found")
    return json_response(None, 204)


async def list_deliveries(request: web.Request) -> web.Response:
    require_admin(request)
    entries = await services(request).store.webhook_deliveries(MAX_DELIVERIES)
    return json_response(
        body.WebhookDeliveryList(
            deliveries=[
                body.WebhookDelivery(
                    webhook_id=e.webhook_id,
                    event=e.event,
                    attempt=e.attempt,
                    status_code=e.status_code,
                    error=e.error,
                    at_ms=e.at_ms,
                    delivered=e.delivered,
                )
                for e in entries
            ]
        )
    )


def add_status_pages(app: web.Application) -> None:
    """The routes that are not JSON API (kept out of OpenAPI's JSON bodies)."""
    app.router.add_get("/status", status_page)
    app.router.add_get("/status/", status_page)
    app.router.add_get("/status/status.css", status_css)
    app.router.add_get("/status/feed.atom", status_feed)


ADMIN = ("admin.invalid_token", "request.not_found")
INCIDENT = (*ADMIN, "incident.not_found", "incident.resolved", "request.invalid")

STATUS_ROUTES = [
    Route("GET", "/status.json", status_json,
          "The signed status document (no auth; docs/status.md).", None, body.StatusDocument,
          auth=False),
    Route("GET", "/v1/status/key", status_key,
          "The public key that signs the status document and notices.", None, body.StatusKey,
          auth=False),
    Route("POST", "/v1/reports", post_report,
          "Report a problem (can't send / receive / connect); a device token is optional.",
          body.ReportCreate, None, 202, auth=False, errors=("rate.limited",)),
    Route("POST", "/v1/admin/incidents", open_incident,
          "Open an incident (admin token).", body.IncidentCreate, body.Incident, 201,
          auth=False, errors=ADMIN),
    Route("POST", "/v1/admin/incidents/{id}/updates", update_incident,
          "Post an update to an open incident (admin token).", body.IncidentUpdateCreate,
          body.Incident, auth=False, errors=INCIDENT),
    Route("POST", "/v1/admin/incidents/{id}/resolve", resolve_incident,
          "Resolve an incident; the answer carries a post-mortem template (admin token).",
          body.IncidentResolve, body.ResolvedIncident, auth=False, errors=INCIDENT),
    Route("PUT", "/v1/admin/incidents/{id}/postmortem", put_postmortem,
          "Publish an incident's post-mortem (admin token).", body.PostmortemPut,
          body.Incident, auth=False, errors=INCIDENT),
    Route("POST", "/v1/admin/maintenance", schedule_maintenance,
          "Schedule maintenance (admin token).", body.MaintenanceCreate, body.Maintenance, 201,
          auth=False, errors=(*ADMIN, "request.invalid")),
    Route("POST", "/v1/admin/webhooks", add_webhook,
          "Subscribe a URL to incident and maintenance events (admin token).",
          body.WebhookCreate, body.Webhook, 201, auth=False, errors=ADMIN),
    Route("GET", "/v1/admin/webhooks", list_webhooks, "The webhook subscribers (admin token).",
          None, body.WebhookList, auth=False, errors=ADMIN),
    Route("DELETE", "/v1/admin/webhooks/{id}", delete_webhook,
          "Remove a webhook subscriber (admin token).", status=204, auth=False,
          errors=(*ADMIN, "webhook.not_found")),
    Route("GET", "/v1/admin/webhooks/deliveries", list_deliveries,
          "The log of webhook delivery attempts, newest last (admin token).", None,
          body.WebhookDeliveryList, auth=False, errors=ADMIN),
]  # fmt: skip
