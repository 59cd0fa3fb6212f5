"""The HTTP API, as typed async methods over aiohttp, with failover across server URLs.

Failover rule: a request moves to the next URL only when it provably never
reached a server (the connection could not be opened) - or, for GET, on any
network error, since GETs are safe to repeat. A POST that may have been
processed is never silently repeated elsewhere.

Errors: ``application/problem+json`` bodies become :class:`TaubeApiError` with
the server's stable code; rejected tokens become :class:`NotLoggedIn`; no
server answering is :class:`ServerUnreachable`.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Final, TypeVar
from urllib.parse import quote, urlencode

import aiohttp
import msgspec

from taube.client.errors import NotLoggedIn, ServerUnreachable, TaubeApiError
from taube.protocol import abuse, api
from taube.protocol.ids import normalize_handle

T = TypeVar("T")

# Codes meaning "this token is no good": the caller must log in again.
SESSION_CODES: Final = frozenset(
    {"auth.required", "auth.invalid_token", "auth.token_expired", "auth.revoked"}
)
DEFAULT_TIMEOUT: Final = aiohttp.ClientTimeout(total=30, connect=5)
_encoder: Final = msgspec.json.Encoder()


def normalize_servers(servers: Sequence[str] | str) -> tuple[str, ...]:
    """Split a comma-separated list, strip blanks and trailing slashes, keep order."""
    items = servers.split(",") if isinstance(servers, str) else list(servers)
    out = tuple(s.strip().rstrip("/") for s in items if s.strip())
    if not out:
        raise ValueError("at least one server URL is needed")
    for url in out:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"server URLs start with http:// or https://, not {url!r}")
    return out


def group_id(text: str) -> str:
    """Accept a group as ``#id`` or ``id``."""
    return text.strip().removeprefix("#")


def problem_to_error(status: int, body: bytes, content_type: str) -> TaubeApiError | NotLoggedIn:
    """Turn an HTTP error response into the exception the caller sees. Pure."""
    problem: api.Problem | None = None
    if "json" in content_type:
        try:
            problem = msgspec.json.decode(body, type=api.Problem)
        except (msgspec.DecodeError, msgspec.ValidationError):
            problem = None
    if problem is None:
        return TaubeApiError(f"http.{status}", f"unexpected HTTP status {status}", status)
    if problem.code in SESSION_CODES:
        return NotLoggedIn(problem.detail or problem.title, problem.code)
    return TaubeApiError(problem.code, problem.detail or problem.title, status, problem.details)


class Api:
    """Typed calls to ``/v1``. ``token`` is needed for everything but register/login."""

    def __init__(
        self,
        servers: Sequence[str] | str,
        token: str | None = None,
        *,
        timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.servers = normalize_servers(servers)
        self._token = token
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._preferred = 0  # index of the last URL that answered

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def active_server(self) -> str:
        return self.servers[self._preferred]

    # ------------------------------------------------------------------ accounts

    async def register(
        self, handle: str, password: str, device_name: str = ""
    ) -> api.DeviceSession:
        body = api.RegisterRequest(
            handle=normalize_handle(handle), password=password, device_name=device_name
        )
        return await self._call("POST", "/v1/accounts", api.DeviceSession, body, auth=False)

    async def login(
        self, handle: str, password: str, device_name: str = "", totp: str | None = None
    ) -> api.DeviceSession:
        """``totp``: the two-step verification code, if the account has it on (without
        one, such an account answers ``auth.totp_required``)."""
        body = api.LoginRequest(
            handle=normalize_handle(handle), password=password, device_name=device_name, totp=totp
        )
        return await self._call("POST", "/v1/sessions", api.DeviceSession, body, auth=False)

    async def change_password(
        self, old_password: str, new_password: str, *, revoke_other_devices: bool = False
    ) -> None:
        body = api.PasswordChange(
            old_password=old_password,
            new_password=new_password,
            revoke_other_devices=revoke_other_devices,
        )
        await self._request("POST", "/v1/me/password", body)

    async def start_totp(self) -> api.TotpSetup:
        """A new two-step verification secret (off until ``confirm_totp``)."""
        return await self._call("POST", "/v1/me/totp", api.TotpSetup)

    async def confirm_totp(self, code: str) -> None:
        await self._request("POST", "/v1/me/totp/confirm", api.TotpCode(code=code))

    async def disable_totp(self, code: str) -> None:
        await self._request("DELETE", "/v1/me/totp", api.TotpCode(code=code))

    async def me(self) -> api.Me:
        return await self._call("GET", "/v1/me", api.Me)

    async def update_settings(self, *, hide_presence: bool | None = None) -> api.Me:
        body = api.SettingsUpdate(hide_presence=hide_presence)
        return await self._call("PATCH", "/v1/me", api.Me, body)

    async def devices(self) -> list[api.DeviceInfo]:
        return (await self._call("GET", "/v1/devices", api.DeviceList)).devices

    async def revoke_device(self, device: int) -> None:
        await self._request("DELETE", f"/v1/devices/{int(device)}")

    async def user(self, handle: str) -> api.UserInfo:
        path = f"/v1/users/{quote(normalize_handle(handle), safe='')}"
        return await self._call("GET", path, api.UserInfo)

    # ------------------------------------------------------------------ keys

    async def upload_keys(self, body: api.KeysUpload) -> api.KeysStatus:
        return await self._call("PUT", "/v1/keys", api.KeysStatus, body)

    async def keys_status(self) -> api.KeysStatus:
        return await self._call("GET", "/v1/keys", api.KeysStatus)

    async def key_bundles(self, handle: str, device: int | None = None) -> api.KeyBundles:
        """Prekey bundles of ``handle``'s devices (each consumes a one-time prekey)."""
        path = f"/v1/keys/{quote(normalize_handle(handle), safe='')}"
        if device is not None:
            path += f"?device={int(device)}"
        return await self._call("GET", path, api.KeyBundles)

    async def identities(self, handle: str) -> api.DeviceIdentities:
        path = f"/v1/keys/{quote(normalize_handle(handle), safe='')}/identities"
        return await self._call("GET", path, api.DeviceIdentities)

    # ------------------------------------------------------------------ blobs

    async def create_blob(self, size: int, sha256: str) -> api.BlobStatus:
        """Announce an upload; an existing blob answers ``complete``, a started one its offset."""
        return await self._call(
            "POST", "/v1/blobs", api.BlobStatus, api.BlobCreate(size=size, sha256=sha256)
        )

    async def upload_blob_chunk(self, blob: str, offset: int, chunk: bytes) -> api.BlobStatus:
        headers = {
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        }
        raw = await self._request(
            "PATCH", f"/v1/blobs/{quote(blob, safe='')}", raw=chunk, extra_headers=headers
        )
        return _decode(raw, api.BlobStatus)

    async def blob_status(self, blob: str) -> api.BlobStatus:
        return await self._call("GET", f"/v1/blobs/{quote(blob, safe='')}/status", api.BlobStatus)

    async def grant_blob(self, blob: str, to: str) -> None:
        await self._request(
            "POST", f"/v1/blobs/{quote(blob, safe='')}/grants", api.BlobGrant(to=to)
        )

    async def download_blob(self, blob: str) -> bytes:
        return await self._request("GET", f"/v1/blobs/{quote(blob, safe='')}", accept="*/*")

    # ------------------------------------------------------------------ blocking

    async def block(self, handle: str) -> None:
        await self._request("PUT", f"/v1/blocks/{quote(normalize_handle(handle), safe='')}")

    async def unblock(self, handle: str) -> None:
        await self._request("DELETE", f"/v1/blocks/{quote(normalize_handle(handle), safe='')}")

    async def blocks(self) -> list[str]:
        return (await self._call("GET", "/v1/blocks", api.BlockList)).handles

    # ------------------------------------------------------------------ device linking

    async def start_link(self, device_name: str = "") -> api.LinkStarted:
        """Ask to join an account as a new device (no token needed): show ``code`` to the
        user, then wait with ``link_state(id, secret)``."""
        body = api.LinkCreate(device_name=device_name)
        return await self._call("POST", "/v1/links", api.LinkStarted, body, auth=False)

    async def link_state(self, link_id: str, secret: str, wait: float = 25.0) -> api.LinkState:
        """Where a link stands, waiting up to ``wait`` seconds (at most 30) for approval;
        the first answer after approval carries the new device's token."""
        query = urlencode({"secret": secret, "wait": f"{wait:g}"})
        path = f"/v1/links/{quote(link_id, safe='')}?{query}"
        return await self._call("GET", path, api.LinkState, auth=False)

    async def approve_link(self, code: str, totp: str | None = None) -> api.LinkApproved:
        """Approve a code shown on a new device: it becomes a device of this account
        (``totp``: the two-step verification code, if the account has it on)."""
        path = f"/v1/links/{quote(code.strip(), safe='')}/approve"
        body = api.LinkApprove(totp=totp) if totp else None
        return await self._call("POST", path, api.LinkApproved, body)

    # ------------------------------------------------------------------ service notices

    async def notices(self) -> list[api.NoticeInfo]:
        return (await self._call("GET", "/v1/notices", api.NoticeList)).notices

    # The operator's calls take the admin token (``[admin] token`` of the server), not
    # a device token.

    async def post_notice(
        self, admin_token: str, text: str, level: api.NoticeLevel = "info", ttl_s: int = 86400
    ) -> api.NoticeInfo:
        body = api.NoticeCreate(text=text, level=level, ttl_s=ttl_s)
        raw = await self._request(
            "POST", "/v1/admin/notices", body, auth=False, extra_headers=_bearer(admin_token)
        )
        return _decode(raw, api.NoticeInfo)

    async def admin_notices(self, admin_token: str) -> list[api.NoticeInfo]:
        raw = await self._request(
            "GET", "/v1/admin/notices", auth=False, extra_headers=_bearer(admin_token)
        )
        return _decode(raw, api.NoticeList).notices

    async def end_notice(self, admin_token: str, notice_id: str) -> None:
        path = f"/v1/admin/notices/{quote(notice_id, safe='')}"
        await self._request("DELETE", path, auth=False, extra_headers=_bearer(admin_token))

    # ------------------------------------------------------------------ status and incidents

    async def status_key(self) -> str:
        """The base64 Ed25519 key status documents and notices are signed with."""
        return (await self._call("GET", "/v1/status/key", api.StatusKey, auth=False)).public_key

    async def report(
        self, kind: api.ReportKind, detail: str = "", *, with_token: bool = True
    ) -> None:
        """Tell the operators "I can't send / receive / connect". Counted per minute
        against a baseline; a spike opens an incident."""
        body = api.ReportCreate(kind=kind, detail=detail)
        await self._request("POST", "/v1/reports", body, auth=with_token and bool(self._token))

    # The operator's incident calls take the admin token, like the notices above.

    async def open_incident(
        self,
        admin_token: str,
        title: str,
        impact: api.Impact,
        components: Sequence[str],
        text: str,
    ) -> api.Incident:
        body = api.IncidentCreate(
            title=title, impact=impact, components=list(components), text=text
        )
        return await self._admin(admin_token, "POST", "/v1/admin/incidents", api.Incident, body)

    async def update_incident(
        self, admin_token: str, incident: str, status: api.OpenIncidentStatus, text: str
    ) -> api.Incident:
        body = api.IncidentUpdateCreate(status=status, text=text)
        path = _incident_path(incident, "updates")
        return await self._admin(admin_token, "POST", path, api.Incident, body)

    async def resolve_incident(
        self, admin_token: str, incident: str, text: str
    ) -> api.ResolvedIncident:
        """Resolve it; the answer carries ``postmortem_template`` to fill in."""
        path = _incident_path(incident, "resolve")
        body = api.IncidentResolve(text=text)
        return await self._admin(admin_token, "POST", path, api.ResolvedIncident, body)

    async def set_postmortem(self, admin_token: str, incident: str, text: str) -> None:
        path = _incident_path(incident, "postmortem")
        body = api.PostmortemPut(text=text)
        await self._request("PUT", path, body, auth=False, extra_headers=_bearer(admin_token))

    async def schedule_maintenance(
        self,
        admin_token: str,
        title: str,
        starts_ms: int,
        ends_ms: int,
        components: Sequence[str],
        text: str,
    ) -> api.Maintenance:
        body = api.MaintenanceCreate(
            title=title,
            starts_ms=starts_ms,
            ends_ms=ends_ms,
            components=list(components),
            text=text,
        )
        path = "/v1/admin/maintenance"
        return await self._admin(admin_token, "POST", path, api.Maintenance, body)

    async def add_webhook(self, admin_token: str, url: str, secret: str) -> api.Webhook:
        body = api.WebhookCreate(url=url, secret=secret)
        return await self._admin(admin_token, "POST", "/v1/admin/webhooks", api.Webhook, body)

    async def webhooks(self, admin_token: str) -> list[api.Webhook]:
        path = "/v1/admin/webhooks"
        return (await self._admin(admin_token, "GET", path, api.WebhookList)).webhooks

    async def remove_webhook(self, admin_token: str, webhook: str) -> None:
        path = f"/v1/admin/webhooks/{quote(webhook, safe='')}"
        await self._request("DELETE", path, auth=False, extra_headers=_bearer(admin_token))

    async def webhook_deliveries(self, admin_token: str) -> list[api.WebhookDelivery]:
        path = "/v1/admin/webhooks/deliveries"
        return (await self._admin(admin_token, "GET", path, api.WebhookDeliveryList)).deliveries

    # ------------------------------------------------------------------ abuse

    async def report_abuse(
        self, user: str, reason: str, messages: Sequence[abuse.ReportedMessage] = ()
    ) -> int:
        """Queue a report of ``user`` for the operator, with exactly ``messages``."""
        body = abuse.AbuseReportCreate(user=user, reason=reason, messages=list(messages))
        return (await self._call("POST", "/v1/reports/abuse", abuse.AbuseReportQueued, body)).id

    async def abuse_reports(self, admin_token: str) -> list[abuse.AbuseReport]:
        path = "/v1/admin/reports"
        return (await self._admin(admin_token, "GET", path, abuse.AbuseReportList)).reports

    async def suspend(self, admin_token: str, handle: str, reason: str = "") -> abuse.Suspension:
        path = f"/v1/admin/accounts/{quote(normalize_handle(handle), safe='')}/suspend"
        body = abuse.SuspendRequest(reason=reason)
        return await self._admin(admin_token, "POST", path, abuse.Suspension, body)

    async def unsuspend(self, admin_token: str, handle: str) -> abuse.Suspension:
        path = f"/v1/admin/accounts/{quote(normalize_handle(handle), safe='')}/unsuspend"
        return await self._admin(admin_token, "POST", path, abuse.Suspension)

    async def _admin(
        self,
        admin_token: str,
        method: str,
        path: str,
        result: type[T],
        body: msgspec.Struct | None = None,
    ) -> T:
        raw = await self._request(
            method, path, body, auth=False, extra_headers=_bearer(admin_token)
        )
        return _decode(raw, result)

    # ------------------------------------------------------------------ groups

    async def create_group(self, name: str, members: Sequence[str] = ()) -> api.GroupInfo:
        body = api.GroupCreate(name=name, members=[normalize_handle(m) for m in members])
        return await self._call("POST", "/v1/groups", api.GroupInfo, body)

    async def groups(self) -> list[api.GroupInfo]:
        return (await self._call("GET", "/v1/groups", api.GroupList)).groups

    async def group(self, group: str) -> api.GroupInfo:
        return await self._call("GET", self._group_path(group), api.GroupInfo)

    async def rename_group(self, group: str, name: str) -> api.GroupInfo:
        body = api.GroupRename(name=name)
        return await self._call("PATCH", self._group_path(group), api.GroupInfo, body)

    async def add_members(self, group: str, handles: Sequence[str]) -> api.GroupInfo:
        body = api.MembersChange(handles=[normalize_handle(h) for h in handles])
        return await self._call("POST", self._group_path(group, "members"), api.GroupInfo, body)

    async def remove_member(self, group: str, handle: str) -> api.GroupInfo:
        path = self._group_path(group, "members", normalize_handle(handle))
        return await self._call("DELETE", path, api.GroupInfo)

    async def add_admins(self, group: str, handles: Sequence[str]) -> api.GroupInfo:
        body = api.MembersChange(handles=[normalize_handle(h) for h in handles])
        return await self._call("POST", self._group_path(group, "admins"), api.GroupInfo, body)

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _group_path(group: str, *rest: str) -> str:
        parts = [quote(group_id(group), safe=""), *(quote(p, safe="") for p in rest)]
        return "/v1/groups/" + "/".join(parts)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _call(
        self,
        method: str,
        path: str,
        result: type[T],
        body: msgspec.Struct | None = None,
        *,
        auth: bool = True,
    ) -> T:
        return _decode(await self._request(method, path, body, auth=auth), result)

    async def _request(
        self,
        method: str,
        path: str,
        body: msgspec.Struct | None = None,
        *,
        auth: bool = True,
        raw: bytes | None = None,
        extra_headers: dict[str, str] | None = None,
        accept: str = "application/json",
    ) -> bytes:
        headers = {"Accept": accept, **(extra_headers or {})}
        if auth:
            if not self._token:
                raise NotLoggedIn("not logged in on this profile (taube login HANDLE)")
            headers["Authorization"] = f"Bearer {self._token}"
        data: bytes | None = raw
        if body is not None:
            data = _encoder.encode(body)
            headers["Content-Type"] = "application/json"
        errors: list[str] = []
        n = len(self.servers)
        for i in range(n):
            index = (self._preferred + i) % n
            url = self.servers[index] + path
            try:
                async with self._http().request(method, url, data=data, headers=headers) as resp:
                    raw = await resp.read()
                    self._preferred = index
                    if resp.status >= 400:
                        raise problem_to_error(resp.status, raw, resp.content_type)
                    return raw
            except aiohttp.ClientConnectorError as exc:
                errors.append(f"{self.servers[index]}: {exc.os_error or exc}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                if method != "GET":
                    raise ServerUnreachable(
                        f"{self.servers[index]} failed during {method} {path}: "
                        f"{type(exc).__name__}; the request may or may not have been applied"
                    ) from exc
                errors.append(f"{self.servers[index]}: {type(exc).__name__} {exc}")
        raise ServerUnreachable("no server answered (" + "; ".join(errors) + ")")


def _incident_path(incident: str, action: str) -> str:
    return f"/v1/admin/incidents/{quote(incident.strip().removeprefix('#'), safe='')}/{action}"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _decode(raw: bytes, result: type[T]) -> T:
    try:
        return msgspec.json.decode(raw, type=result)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise TaubeApiError("client.bad_response", f"unexpected response body: {exc}") from exc
