"""Abuse routes (docs/security.md, "Abuse"): a user reports an account with the
messages they chose; the operator reads the review queue and suspends or unsuspends
accounts (admin token, as the other /v1/admin routes)."""

from __future__ import annotations

from aiohttp import web

from taube.core.abuse import reported_messages
from taube.protocol import abuse as body
from taube.protocol.errors import TaubeError
from taube.protocol.ids import normalize_handle
from taube.server.api import current_device, require_admin, services
from taube.server.http import Route, json_response, read_body


async def report_abuse(request: web.Request) -> web.Response:
    device = await current_device(request)
    s = services(request)
    # The same per-account bucket as the status reports: a report costs the operator
    # attention, so one account cannot flood the queue.
    wait = s.node.reports.take(f"abuse:{device.user}")
    if wait:
        raise TaubeError("rate.limited", "Too many reports.", retry_after_s=wait)
    req = await read_body(request, body.AbuseReportCreate)
    report_id = await s.abuse.report(device, req)
    return json_response(body.AbuseReportQueued(id=report_id), 202)


async def list_reports(request: web.Request) -> web.Response:
    require_admin(request)
    abuse = services(request).abuse
    records = await abuse.reports()
    return json_response(
        body.AbuseReportList(
            reports=[
                body.AbuseReport(
                    id=r.id,
                    reporter=r.reporter,
                    reporter_device=r.reporter_device,
                    user=r.reported,
                    reason=r.reason,
                    messages=reported_messages(r),
                    created_ms=r.created_ms,
                    suspended=abuse.is_suspended(r.reported),
                )
                for r in records
            ]
        )
    )


async def suspend_account(request: web.Request) -> web.Response:
    require_admin(request)
    req = await read_body(request, body.SuspendRequest)
    record = await services(request).abuse.suspend(request.match_info["handle"], req.reason)
    return json_response(
        body.Suspension(
            handle=record.handle, suspended=True, reason=record.reason, at_ms=record.at_ms
        )
    )


async def unsuspend_account(request: web.Request) -> web.Response:
    require_admin(request)
    handle = normalize_handle(request.match_info["handle"])
    await services(request).abuse.unsuspend(handle)
    return json_response(body.Suspension(handle=handle, suspended=False))


ADMIN = ("admin.invalid_token", "request.not_found")

ABUSE_ROUTES = [
    Route("POST", "/v1/reports/abuse", report_abuse,
          "Report an account to the operator, with the messages you choose to include "
          "(as your device decrypted them); nothing else is sent.",
          body.AbuseReportCreate, body.AbuseReportQueued, 202,
          errors=("user.not_found", "request.invalid", "rate.limited")),
    Route("GET", "/v1/admin/reports", list_reports,
          "The abuse review queue, newest last (admin token).", None, body.AbuseReportList,
          auth=False, errors=ADMIN),
    Route("POST", "/v1/admin/accounts/{handle}/suspend", suspend_account,
          "Suspend an account: its devices are disconnected, it cannot log in, send or be "
          "messaged (admin token).", body.SuspendRequest, body.Suspension, auth=False,
          errors=(*ADMIN, "user.not_found")),
    Route("POST", "/v1/admin/accounts/{handle}/unsuspend", unsuspend_account,
          "Lift a suspension (admin token).", None, body.Suspension, auth=False,
          errors=(*ADMIN, "user.not_found")),
]  # fmt: skip
