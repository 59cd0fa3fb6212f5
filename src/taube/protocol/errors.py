"""The stable vocabulary of errors shared by the HTTP API and the WebSocket gateway.

Rules: codes are grouped by family (``auth.*``, ``msg.*``, ...); a code is added,
never renamed or reused. Each code maps to one HTTP status and says whether a
WebSocket connection survives it (and with which close code if not). Only errors
that the client can act on are client errors; everything unexpected becomes
``internal`` with no detail on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    code: str
    http_status: int
    title: str
    ws_close: int | None = None
    """WebSocket close code if the connection cannot safely continue; None keeps it open."""


_SPECS = [
    # Requests and frames that cannot be understood.
    ErrorSpec("request.malformed", 400, "The body or frame is not valid JSON."),
    ErrorSpec("request.invalid", 422, "A field is missing, has the wrong type or a bad value."),
    ErrorSpec("request.unknown_type", 400, "The frame type is not known to this server."),
    ErrorSpec("request.too_large", 413, "The body or frame exceeds the size limit.", 1009),
    ErrorSpec("request.not_found", 404, "No such route."),
    ErrorSpec("request.method_not_allowed", 405, "The route does not accept this method."),
    # Authentication.
    ErrorSpec("auth.required", 401, "This needs a device token.", 4001),
    ErrorSpec("auth.invalid_token", 401, "The device token is not known.", 4001),
    ErrorSpec("auth.token_expired", 401, "The device token expired after inactivity.", 4001),
    ErrorSpec("auth.revoked", 401, "This device was revoked.", 4003),
    ErrorSpec("auth.bad_credentials", 401, "Wrong handle or password."),
    ErrorSpec("auth.already_authenticated", 409, "This connection is already authenticated."),
    ErrorSpec("auth.timeout", 408, "No auth frame arrived in time.", 4008),
    ErrorSpec("auth.locked", 429, "Too many failed logins; locked out for a while."),
    ErrorSpec("auth.totp_required", 401, "This account needs a two-step verification code."),
    ErrorSpec("auth.totp_invalid", 401, "The two-step verification code is wrong or used."),
    # The stored secret does not open under this server's key (the operator changed the
    # status signing key): the second factor fails closed, and it is not the user's fault,
    # so it is neither a wrong code nor counted toward the lockout.
    ErrorSpec("auth.totp_unavailable", 503, "This server cannot check two-step codes now."),
    ErrorSpec("totp.already_enabled", 409, "Two-step verification is on already."),
    ErrorSpec("totp.not_enabled", 409, "Two-step verification is not on (or not started)."),
    # Accounts, users, devices.
    ErrorSpec("account.handle_taken", 409, "That handle is already registered."),
    ErrorSpec("account.invalid_handle", 422, "Handles are 2-32 of a-z 0-9 _ . - ."),
    ErrorSpec("account.weak_password", 422, "Passwords need at least 8 characters."),
    ErrorSpec("user.not_found", 404, "No user has that handle."),
    ErrorSpec("device.not_found", 404, "No such device on this account."),
    # Abuse: an operator suspended the account. Sending to it answers this code and the
    # connection stays open; the suspended account's own connections close with 4003
    # (server/gateway.py), as a revoked device's do.
    ErrorSpec("account.suspended", 403, "This account is suspended."),
    # Messages.
    ErrorSpec("msg.too_large", 413, "A payload exceeds the per-message limit."),
    ErrorSpec("msg.invalid_id", 422, "Message ids are canonical lower-case UUIDs."),
    ErrorSpec("msg.unknown_recipient", 404, "The recipient does not exist."),
    ErrorSpec("msg.stale_devices", 409, "The per-device payloads do not match the devices."),
    # Groups.
    ErrorSpec("group.not_found", 404, "No such group."),
    ErrorSpec("group.not_member", 403, "You are not a member of this group."),
    ErrorSpec("group.not_admin", 403, "Only group admins may do this."),
    ErrorSpec("group.full", 409, "The group has reached its member limit."),
    ErrorSpec("group.last_admin", 409, "The last admin cannot step down while others remain."),
    # End-to-end encryption keys.
    ErrorSpec("keys.bad_signature", 400, "The signed prekey's signature does not verify."),
    ErrorSpec("keys.incomplete", 400, "A device's first key upload needs a signed prekey."),
    ErrorSpec("keys.identity_mismatch", 409, "This device already has another identity key."),
    ErrorSpec("keys.too_many", 409, "That would store more one-time prekeys than allowed."),
    ErrorSpec("keys.not_found", 404, "That device has no keys on the server."),
    # Attachment blobs.
    ErrorSpec("blob.not_found", 404, "No such blob, or not yours to see."),
    ErrorSpec("blob.too_large", 413, "The blob exceeds the size limit or its declared size."),
    ErrorSpec("blob.chunk_too_large", 413, "An upload chunk exceeds the per-request limit."),
    ErrorSpec("blob.offset_mismatch", 409, "Upload-Offset is not where the upload stands."),
    ErrorSpec("blob.digest_mismatch", 400, "The uploaded bytes do not hash to the blob id."),
    # Device linking and the operator's admin API.
    ErrorSpec("link.not_found", 404, "No such link, or it expired, or the secret is wrong."),
    ErrorSpec("link.used", 409, "This link was approved already."),
    ErrorSpec("admin.invalid_token", 401, "The admin token is missing or wrong."),
    ErrorSpec("notice.not_found", 404, "No such notice (or it ended)."),
    # Status and incidents.
    ErrorSpec("incident.not_found", 404, "No such incident."),
    ErrorSpec("incident.resolved", 409, "This incident is resolved; open a new one."),
    ErrorSpec("webhook.not_found", 404, "No such webhook."),
    # Load and availability.
    ErrorSpec("rate.limited", 429, "Too many requests; retry later."),
    ErrorSpec("rate.flood", 429, "Far too many frames on this connection.", 1008),
    ErrorSpec("rate.too_many_connections", 429, "Too many connections from this address."),
    # Transport: who may connect and what a connection may hold (server/transport.py).
    ErrorSpec("conn.bad_origin", 403, "Pages from this origin may not connect here."),
    ErrorSpec("conn.idle", 408, "Nothing arrived on this connection for too long.", 4008),
    ErrorSpec("conn.slow_reader", 429, "The client did not read what was sent to it.", 4029),
    ErrorSpec("server.overloaded", 503, "The server is shedding load; retry later.", 1013),
    ErrorSpec("server.not_ready", 503, "The store or the bus does not answer."),
    ErrorSpec("server.unavailable", 503, "The store is unreachable; retry shortly."),
    ErrorSpec("server.draining", 503, "This node is shutting down; reconnect elsewhere.", 1012),
    ErrorSpec("internal", 500, "Something went wrong on the server."),
]

ERRORS: dict[str, ErrorSpec] = {spec.code: spec for spec in _SPECS}


class TaubeError(Exception):
    """An error meant for the client: a stable code, a human message, optional details."""

    def __init__(self, code: str, message: str | None = None, **details: Any) -> None:
        if code not in ERRORS:
            raise ValueError(f"unknown error code {code!r}")
        self.code = code
        self.spec = ERRORS[code]
        self.message = message or self.spec.title
        self.details: dict[str, Any] = details
        super().__init__(f"{code}: {self.message}")
