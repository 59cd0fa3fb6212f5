"""HTTP routes for an account's own credentials: two-step verification (TOTP) and
password change (docs/protocol.md, "Two-step verification", "Password change").

Every check of a password or a code here goes through the login lockout
(``core.auth_guard``): a stolen device token cannot be used to guess the password or
the second factor any faster than a login could.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from taube.core.auth_guard import Attempt
from taube.protocol import api as body
from taube.protocol.errors import TaubeError
from taube.server.api import current_device, limits, services
from taube.server.http import Route, json_response, read_body
from taube.server.limits import client_address

log = logging.getLogger("taube.http")

COUNTED = ("auth.bad_credentials", "auth.totp_invalid")


@contextmanager
def guarded(request: web.Request, user: str) -> Iterator[Attempt]:
    """One password or code check under the login lockout; a wrong one counts."""
    with limits(request).login_guard.attempt(user, client_address(request)) as attempt:
        try:
            yield attempt
        except TaubeError as exc:
            if exc.code in COUNTED:
                attempt.fail()
            raise


async def start_totp(request: web.Request) -> web.Response:
    device = await current_device(request)
    secret, uri = await services(request).accounts.two_step.start(device.user)
    response = json_response(body.TotpSetup(secret=secret, uri=uri), 201)
    response.headers["Cache-Control"] = "private, no-store"
    return response


async def confirm_totp(request: web.Request) -> web.Response:
    device = await current_device(request)
    req = await read_body(request, body.TotpCode)
    with guarded(request, device.user):
        await services(request).accounts.two_step.confirm(device.user, req.code)
    log.info("two-step verification on user=%s device=%d", device.user, device.id)
    return json_response(None, 204)


async def disable_totp(request: web.Request) -> web.Response:
    device = await current_device(request)
    req = await read_body(request, body.TotpCode)
    with guarded(request, device.user):
        await services(request).accounts.two_step.disable(device.user, req.code)
    log.info("two-step verification off user=%s device=%d", device.user, device.id)
    return json_response(None, 204)


async def change_password(request: web.Request) -> web.Response:
    device = await current_device(request)
    req = await read_body(request, body.PasswordChange)
    with guarded(request, device.user) as attempt:
        revoked = await services(request).accounts.change_password(
            device,
            req.old_password,
            req.new_password,
            revoke_others=req.revoke_other_devices,
        )
        attempt.succeed()
    log.info("password changed user=%s device=%d revoked=%d", device.user, device.id, len(revoked))
    return json_response(None, 204)


CODE_ERRORS = (
    "auth.totp_invalid",
    "auth.totp_unavailable",
    "auth.locked",
    "totp.already_enabled",
    "totp.not_enabled",
)

AUTH_ROUTES = [
    Route("POST", "/v1/me/totp", start_totp,
          "Start two-step verification: a new secret and its otpauth URI (not on until "
          "confirmed).", None, body.TotpSetup, 201, errors=("totp.already_enabled",)),
    Route("POST", "/v1/me/totp/confirm", confirm_totp,
          "Turn two-step verification on with a code from the authenticator app.",
          body.TotpCode, None, 204, errors=CODE_ERRORS),
    Route("DELETE", "/v1/me/totp", disable_totp,
          "Turn two-step verification off (needs a current code).",
          body.TotpCode, None, 204, errors=CODE_ERRORS),
    Route("POST", "/v1/me/password", change_password,
          "Change the password (the old one checked); optionally revoke every other device.",
          body.PasswordChange, None, 204,
          errors=("auth.bad_credentials", "auth.locked", "account.weak_password")),
]  # fmt: skip
