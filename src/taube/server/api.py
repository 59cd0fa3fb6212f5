"""The HTTP API under /v1: accounts, devices, users, groups, keys, attachment blobs and
blocks (docs/protocol.md)."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re

from aiohttp import hdrs, web

from taube import __version__
from taube.core.links import display_code
from taube.protocol import api as body
from taube.protocol.errors import TaubeError
from taube.protocol.ids import group_address, normalize_handle
from taube.server.gateway import SERVICES
from taube.server.http import Route, json_response, read_body
from taube.server.limits import Limits, check, client_address
from taube.server.services import Services
from taube.server.transport import client_ip
from taube.status.canary import is_canary_handle
from taube.store.base import (
    BlobRecord,
    BundleRecord,
    DeviceRecord,
    GroupRecord,
    KeysStatusRecord,
    NoticeRecord,
    PrekeyRecord,
    SignedPrekeyRecord,
)

log = logging.getLogger("taube.http")

GROUP_ADMIN_ERRORS = ("group.not_found", "group.not_member", "group.not_admin", "user.not_found")
LOAD_ERRORS = ("server.overloaded", "server.draining")
AUTH_ERRORS = ("auth.required", "auth.invalid_token", "auth.token_expired", "auth.revoked",
               "account.suspended")  # fmt: skip


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


async def current_device(request: web.Request) -> DeviceRecord:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TaubeError("auth.required")
    return await services(request).accounts.authenticate(token.strip())


def limits(request: web.Request) -> Limits:
    return services(request).node.limits


def session_body(device: DeviceRecord, token: str) -> body.DeviceSession:
    return body.DeviceSession(handle=device.user, device=device.id, token=token)


def group_body(group: GroupRecord) -> body.GroupInfo:
    return body.GroupInfo(
        id=group.id,
        address=group_address(group.id),
        name=group.name,
        created_ms=group.created_ms,
        members=[body.GroupMember(handle=h, admin=a) for h, a in group.members.items()],
    )


# ---------------------------------------------------------------- accounts


def admit_login(request: web.Request) -> None:
    """Draining nodes and login floods get a retry-after instead of an argon2 hash."""
    node = services(request).node
    if node.draining:
        raise TaubeError("server.draining", retry_after_s=1)
    wait = node.admission.admit_login()
    if wait:
        raise TaubeError("server.overloaded", retry_after_s=wait)


async def register(request: web.Request) -> web.Response:
    admit_login(request)
    check(limits(request).registrations, client_address(request), "registrations")
    req = await read_body(request, body.RegisterRequest)
    if is_canary_handle(req.handle):
        raise TaubeError("account.invalid_handle", "Handles starting with _canary are reserved.")
    device, token = await services(request).accounts.register(
        req.handle, req.password, req.device_name
    )
    return json_response(session_body(device, token), 201)


async def login(request: web.Request) -> web.Response:
    """Locked-out accounts and addresses are refused before any argon2 work, and
    before they use up the node's login admission (a flood against one account must
    not keep everyone else from logging in)."""
    req = await read_body(request, body.LoginRequest)
    lim, address = limits(request), client_address(request)
    handle = normalize_handle(req.handle)
    with lim.login_guard.attempt(handle, address) as attempt:
        admit_login(request)
        check(lim.logins_by_address, address, "logins from this address")
        check(lim.logins_by_account, handle, "logins to this account")
        try:
            device, token = await services(request).accounts.login(
                handle, req.password, req.device_name, req.totp
            )
        except TaubeError as exc:
            if exc.code in ("auth.bad_credentials", "auth.totp_invalid"):
                attempt.fail()
            raise
        attempt.succeed()
    return json_response(session_body(device, token), 201)


async def me_body(request: web.Request, device: DeviceRecord) -> body.Me:
    user = await services(request).accounts.user(device.user)
    return body.Me(
        handle=user.handle,
        device=device.id,
        hide_presence=user.hide_presence,
        created_ms=user.created_ms,
    )


async def get_me(request: web.Request) -> web.Response:
    device = await current_device(request)
    return json_response(await me_body(request, device))


async def patch_me(request: web.Request) -> web.Response:
    device = await current_device(request)
    req = await read_body(request, body.SettingsUpdate)
    if req.hide_presence is not None:
        await services(request).presence.set_hidden(device.user, req.hide_presence)
    return json_response(await me_body(request, device))


async def list_devices(request: web.Request) -> web.Response:
    device = await current_device(request)
    devices = await services(request).accounts.devices(device.user)
    return json_response(
        body.DeviceList(
            devices=[
                body.DeviceInfo(
                    id=d.id,
                    name=d.name,
                    created_ms=d.created_ms,
                    last_active_ms=d.last_active_ms,
                    current=d.id == device.id,
                )
                for d in devices
            ]
        )
    )


def int_param(request: web.Request, name: str) -> int:
    try:
        value = int(request.match_info[name])
    except ValueError:
        raise TaubeError("request.invalid", f"{name} must be an integer.") from None
    if not -(2**63) <= value < 2**63:  # the store's integers are 64-bit (found by fuzzing)
        raise TaubeError("request.invalid", f"{name} is out of range.")
    return value


async def revoke_device(request: web.Request) -> web.Response:
    device = await current_device(request)
    await services(request).accounts.revoke(device.user, int_param(request, "id"))
    return json_response(None, 204)


async def get_user(request: web.Request) -> web.Response:
    device = await current_device(request)
    check(limits(request).lookups, device.user, "user lookups")
    user = await services(request).accounts.user(request.match_info["handle"])
    devices = await services(request).accounts.devices(user.handle)
    return json_response(body.UserInfo(handle=user.handle, devices=[d.id for d in devices]))


# ---------------------------------------------------------------- groups


async def create_group(request: web.Request) -> web.Response:
    device = await current_device(request)
    check(limits(request).groups, device.user, "groups created")
    req = await read_body(request, body.GroupCreate)
    group = await services(request).groups.create(device.user, req.name, req.members)
    return json_response(group_body(group), 201)


async def list_groups(request: web.Request) -> web.Response:
    device = await current_device(request)
    groups = await services(request).store.groups_of(device.user)
    return json_response(body.GroupList(groups=[group_body(g) for g in groups]))


def group_id(request: web.Request) -> str:
    return request.match_info["group"].removeprefix("#").lower()


async def get_group(request: web.Request) -> web.Response:
    device = await current_device(request)
    group = await services(request).groups.get(group_id(request), device.user)
    return json_response(group_body(group))


async def rename_group(request: web.Request) -> web.Response:
    device = await current_device(request)
    req = await read_body(request, body.GroupRename)
    group = await services(request).groups.rename(group_id(request), device.user, req.name)
    return json_response(group_body(group))


async def add_members(request: web.Request) -> web.Response:
    device = await current_device(request)
    req = await read_body(request, body.MembersChange)
    group = await services(request).groups.add(group_id(request), device.user, req.handles)
    return json_response(group_body(group))


async def remove_member(request: web.Request) -> web.Response:
    device = await current_device(request)
    handle = normalize_handle(request.match_info["handle"])
    group = await services(request).groups.remove(group_id(request), device.user, handle)
    return json_response(group_body(group))


async def add_admins(request: web.Request) -> web.Response:
    device = await current_device(request)
    req = await read_body(request, body.MembersChange)
    group = await services(request).groups.promote(group_id(request), device.user, req.handles)
    return json_response(group_body(group))


# ---------------------------------------------------------------- keys


def keys_status_body(status: KeysStatusRecord) -> body.KeysStatus:
    return body.KeysStatus(
        one_time_prekeys=status.one_time_prekeys,
        signed_prekey_id=status.signed_prekey_id,
        identity_key=status.identity_key,
    )


def bundle_body(bundle: BundleRecord) -> body.DeviceBundle:
    spk, opk = bundle.signed_prekey, bundle.one_time_prekey
    return body.DeviceBundle(
        device=bundle.device,
        identity_key=bundle.identity_key,
        signed_prekey=body.SignedPrekey(id=spk.id, key=spk.key, signature=spk.signature),
        one_time_prekey=None if opk is None else body.Prekey(id=opk.id, key=opk.key),
    )


async def put_keys(request: web.Request) -> web.Response:
    device = await current_device(request)
    req = await read_body(request, body.KeysUpload)
    spk = req.signed_prekey
    status = await services(request).keys.upload(
        device.user,
        device.id,
        req.identity_key,
        None if spk is None else SignedPrekeyRecord(spk.id, spk.key, spk.signature),
        [PrekeyRecord(p.id, p.key) for p in req.one_time_prekeys],
    )
    return json_response(keys_status_body(status))


async def get_keys(request: web.Request) -> web.Response:
    device = await current_device(request)
    return json_response(
        keys_status_body(await services(request).keys.status(device.user, device.id))
    )


def device_query(request: web.Request) -> int | None:
    text = request.query.get("device")
    if text is None:
        return None
    try:
        device = int(text)
    except ValueError:
        raise TaubeError("request.invalid", "device must be an integer.") from None
    if not -(2**63) <= device < 2**63:  # the store's integers are 64-bit
        raise TaubeError("request.invalid", "device is out of range.")
    return device


async def get_bundles(request: web.Request) -> web.Response:
    device = await current_device(request)
    s = services(request)
    # Each fetch uses up one of the target's one-time prekeys: bounded per account.
    wait = s.node.key_fetches.take(device.user)
    if wait:
        raise TaubeError("rate.limited", "Too many key bundle fetches.", retry_after_s=wait)
    check(s.node.limits.lookups, device.user, "user lookups")
    handle = normalize_handle(request.match_info["handle"])
    bundles = await s.keys.bundles(handle, device_query(request))
    return json_response(body.KeyBundles(handle=handle, devices=[bundle_body(b) for b in bundles]))


async def get_identities(request: web.Request) -> web.Response:
    device = await current_device(request)
    check(limits(request).lookups, device.user, "user lookups")
    handle = normalize_handle(request.match_info["handle"])
    found = await services(request).keys.identities(handle)
    return json_response(
        body.DeviceIdentities(
            handle=handle,
            devices=[body.DeviceIdentity(device=d, identity_key=key) for d, key in found],
        )
    )


# ---------------------------------------------------------------- blobs

BLOB_ID = re.compile(r"^[0-9a-f]{64}$")
OFFSET_STREAM = "application/offset+octet-stream"
NO_STORE = "private, no-store"


def blob_param(request: web.Request) -> str:
    blob_id = request.match_info["blob"]
    if not BLOB_ID.fullmatch(blob_id):
        raise TaubeError("blob.not_found")
    return blob_id


def blob_status_body(record: BlobRecord) -> body.BlobStatus:
    return body.BlobStatus(
        id=record.id, size=record.size, offset=record.received, complete=record.complete
    )


def with_upload_headers(response: web.Response, record: BlobRecord) -> web.Response:
    response.headers["Upload-Offset"] = str(record.received)
    response.headers["Upload-Length"] = str(record.size)
    response.headers[hdrs.CACHE_CONTROL] = NO_STORE
    return response


async def create_blob(request: web.Request) -> web.Response:
    device = await current_device(request)
    req = await read_body(request, body.BlobCreate)
    record, created = await services(request).blobs.create(device.user, req.sha256, req.size)
    response = json_response(blob_status_body(record), 201 if created else 200)
    response.headers[hdrs.LOCATION] = f"/v1/blobs/{record.id}"
    return with_upload_headers(response, record)


def upload_offset(request: web.Request) -> int:
    text = request.headers.get("Upload-Offset", "")
    if not text.isdigit():
        raise TaubeError("request.invalid", "Upload-Offset must be a non-negative integer.")
    return int(text)


async def upload_blob(request: web.Request) -> web.Response:
    device = await current_device(request)
    blob_id = blob_param(request)
    # Bytes per account per hour; a chunk without a length counts as a full one.
    size = request.content_length
    cost = size if size is not None else services(request).config.blob_max_chunk_bytes
    check(limits(request).uploads, device.user, "bytes uploaded", cost)
    try:
        record = await services(request).blobs.append(
            device.user,
            blob_id,
            upload_offset(request),
            request.content_length,
            request.content.iter_any(),
        )
    except ConnectionResetError:
        # The client went away mid-chunk: nothing counted; it resumes from HEAD's offset.
        log.info("blob upload interrupted user=%s device=%d", device.user, device.id)
        return web.Response(status=400)  # nobody is left to read it
    return with_upload_headers(json_response(blob_status_body(record)), record)


async def head_blob(request: web.Request) -> web.Response:
    device = await current_device(request)
    record = await services(request).blobs.status(device.user, blob_param(request))
    return with_upload_headers(web.Response(status=200), record)


async def get_blob_status(request: web.Request) -> web.Response:
    device = await current_device(request)
    record = await services(request).blobs.status(device.user, blob_param(request))
    return with_upload_headers(json_response(blob_status_body(record)), record)


async def grant_blob(request: web.Request) -> web.Response:
    device = await current_device(request)
    blob_id = blob_param(request)
    req = await read_body(request, body.BlobGrant)
    await services(request).blobs.grant(device.user, blob_id, req.to)
    return json_response(None, 204)


def sent_to_the_end(response: web.StreamResponse, size: int) -> bool:
    """The response carried the blob's last byte (all of it, or a range up to its end)."""
    if response.status == 200:
        return True
    content_range = response.headers.get(hdrs.CONTENT_RANGE, "")
    return response.status == 206 and content_range.endswith(f"-{size - 1}/{size}")


async def download_blob(request: web.Request) -> web.StreamResponse:
    """The ciphertext, from disk with sendfile (Range: bytes=a-b gives 206). A response
    that sent the last byte counts as the user's download (it may delete the blob)."""
    device = await current_device(request)
    s = services(request)
    blob_id = blob_param(request)
    record = await s.blobs.readable(device.user, blob_id)
    path = s.blobs.storage.local_path(blob_id)
    headers = {hdrs.CONTENT_TYPE: "application/octet-stream", hdrs.CACHE_CONTROL: NO_STORE}
    if path is None:  # a storage that is not a local disk: stream it whole
        streamed = web.StreamResponse(headers=headers)
        streamed.content_length = record.size
        await streamed.prepare(request)
        async for chunk in s.blobs.storage.read(blob_id):
            await streamed.write(chunk)
        await streamed.write_eof()
        response: web.StreamResponse = streamed
    else:
        if not await s.blobs.storage.exists(blob_id):  # deleted a moment ago
            raise TaubeError("blob.not_found")
        response = web.FileResponse(path, chunk_size=256 * 1024, headers=headers)
        await response.prepare(request)
    if sent_to_the_end(response, record.size):
        try:
            await s.blobs.fetched(device.user, blob_id)
        except Exception:  # the bytes are sent; retention deletes the blob later
            log.exception("recording a blob download failed")
    return response


# ---------------------------------------------------------------- blocks


async def put_block(request: web.Request) -> web.Response:
    device = await current_device(request)
    await services(request).blocks.block(device.user, request.match_info["handle"])
    return json_response(None, 204)


async def delete_block(request: web.Request) -> web.Response:
    device = await current_device(request)
    await services(request).blocks.unblock(device.user, request.match_info["handle"])
    return json_response(None, 204)


async def list_blocks(request: web.Request) -> web.Response:
    device = await current_device(request)
    return json_response(
        body.BlockList(handles=await services(request).blocks.blocked(device.user))
    )


# ---------------------------------------------------------------- device linking

LINK_WAIT_DEFAULT_S = 25.0
LINK_WAIT_MAX_S = 30.0


async def start_link(request: web.Request) -> web.Response:
    """No token: the requester is a new device. Bounded per client address."""
    s = services(request)
    if s.node.draining:
        raise TaubeError("server.draining", retry_after_s=1)
    wait = s.node.link_starts.take(client_ip(request))
    if wait:
        raise TaubeError("rate.limited", "Too many device links started.", retry_after_s=wait)
    req = await read_body(request, body.LinkCreate)
    link, secret = await s.links.start_link(req.device_name)
    started = body.LinkStarted(
        id=link.id, code=display_code(link.code), secret=secret, expires_ms=link.expires_ms
    )
    return json_response(started, 201)


def wait_query(request: web.Request) -> float:
    text = request.query.get("wait")
    if text is None:
        return LINK_WAIT_DEFAULT_S
    try:
        wait = float(text)
    except ValueError:
        raise TaubeError("request.invalid", "wait must be a number of seconds.") from None
    if not 0 <= wait <= LINK_WAIT_MAX_S:  # also refuses nan
        raise TaubeError("request.invalid", f"wait must be 0 to {LINK_WAIT_MAX_S:g} seconds.")
    return wait


async def get_link(request: web.Request) -> web.Response:
    wait = wait_query(request)
    secret = request.query.get("secret", "")
    state = await services(request).links.state(request.match_info["link"], secret, wait)
    response = json_response(state)
    response.headers[hdrs.CACHE_CONTROL] = NO_STORE  # it may carry a token
    return response


async def approve_link(request: web.Request) -> web.Response:
    device = await current_device(request)
    s = services(request)
    # Wrong codes count too: guessing someone's code is bounded per account.
    wait = s.node.link_approvals.take(device.user)
    if wait:
        raise TaubeError("rate.limited", "Too many link approvals.", retry_after_s=wait)
    req = await read_body(request, body.LinkApprove)
    # With two-step verification on, a stolen device token alone cannot add devices;
    # wrong codes count toward the account's lockout.
    with s.node.limits.login_guard.attempt(device.user, client_address(request)) as attempt:
        try:
            await s.accounts.two_step.check(device.user, req.totp)
        except TaubeError as exc:
            if exc.code == "auth.totp_invalid":
                attempt.fail()
            raise
    linked = await s.links.approve(request.match_info["code"], device)
    log.info("device linked user=%s device=%d by=%d", linked.user, linked.id, device.id)
    return json_response(body.LinkApproved(handle=linked.user, device=linked.id))


# ---------------------------------------------------------------- service notices


def require_admin(request: web.Request) -> None:
    """The admin API exists only with ``[admin] token`` set (else 404, as any unknown
    route); the bearer token is compared in constant time."""
    expected = services(request).config.admin_token
    if not expected:
        raise TaubeError("request.not_found")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        raise TaubeError("admin.invalid_token")


def notice_body(record: NoticeRecord) -> body.NoticeInfo:
    return body.NoticeInfo(
        id=record.id,
        text=record.text,
        level=record.level,
        at_ms=record.at_ms,
        expires_ms=record.expires_ms,
    )


async def post_notice(request: web.Request) -> web.Response:
    require_admin(request)
    req = await read_body(request, body.NoticeCreate)
    record = await services(request).notices.post(req.text, req.level, req.ttl_s)
    log.info("notice posted id=%s level=%s", record.id, record.level)
    return json_response(notice_body(record), 201)


async def end_notice(request: web.Request) -> web.Response:
    require_admin(request)
    await services(request).notices.end(request.match_info["notice"])
    return json_response(None, 204)


async def admin_list_notices(request: web.Request) -> web.Response:
    require_admin(request)
    notices = await services(request).notices.current()
    return json_response(body.NoticeList(notices=[notice_body(n) for n in notices]))


async def list_notices(request: web.Request) -> web.Response:
    await current_device(request)
    notices = await services(request).notices.current()
    return json_response(body.NoticeList(notices=[notice_body(n) for n in notices]))


# ---------------------------------------------------------------- health


async def healthz(request: web.Request) -> web.Response:
    return json_response(body.Health(status="ok", version=__version__))


async def readyz(request: web.Request) -> web.Response:
    """Readiness for a load balancer: the store and the bus answer."""
    s = services(request)
    if s.node.draining:
        raise TaubeError("server.draining", retry_after_s=1)
    try:
        async with asyncio.timeout(2.0):
            await s.store.ping()
            await s.bus.ping()
    except Exception as exc:
        raise TaubeError("server.not_ready", f"Not ready: {type(exc).__name__}.") from None
    return json_response(body.Health(status="ready", version=__version__))


ROUTES = [
    Route("GET", "/healthz", healthz, "Liveness: the process answers.", None, body.Health,
          auth=False),
    Route("GET", "/readyz", readyz, "Readiness: store and bus reachable.", None, body.Health,
          auth=False, errors=("server.not_ready", "server.draining")),
    Route("POST", "/v1/accounts", register, "Register a handle and log in its first device.",
          body.RegisterRequest, body.DeviceSession, 201, auth=False,
          errors=("account.invalid_handle", "account.weak_password", "account.handle_taken",
                  "rate.limited", *LOAD_ERRORS)),
    Route("POST", "/v1/sessions", login, "Log in a new device of an existing account.",
          body.LoginRequest, body.DeviceSession, 201, auth=False,
          errors=("auth.bad_credentials", "auth.totp_required", "auth.totp_invalid",
                  "auth.totp_unavailable", "auth.locked", "rate.limited", *LOAD_ERRORS)),
    Route("GET", "/v1/me", get_me, "The current account and device.", None, body.Me),
    Route("PATCH", "/v1/me", patch_me, "Change account settings (hide presence).",
          body.SettingsUpdate, body.Me),
    Route("GET", "/v1/devices", list_devices, "List this account's active devices.",
          None, body.DeviceList),
    Route("DELETE", "/v1/devices/{id}", revoke_device,
          "Revoke a device: its token stops working and its connections close.",
          status=204, errors=("device.not_found", "request.invalid")),
    Route("GET", "/v1/users/{handle}", get_user, "Look up a user and their device ids.",
          None, body.UserInfo, errors=("user.not_found", "rate.limited")),
    Route("POST", "/v1/groups", create_group, "Create a group; the creator is its admin.",
          body.GroupCreate, body.GroupInfo, 201,
          errors=("user.not_found", "group.full", "rate.limited")),
    Route("GET", "/v1/groups", list_groups, "List the groups you are in.", None, body.GroupList),
    Route("GET", "/v1/groups/{group}", get_group, "A group with its members and admins.",
          None, body.GroupInfo, errors=("group.not_found", "group.not_member")),
    Route("PATCH", "/v1/groups/{group}", rename_group, "Rename a group (admins).",
          body.GroupRename, body.GroupInfo, errors=GROUP_ADMIN_ERRORS),
    Route("POST", "/v1/groups/{group}/members", add_members, "Add members (admins).",
          body.MembersChange, body.GroupInfo, errors=(*GROUP_ADMIN_ERRORS, "group.full")),
    Route("DELETE", "/v1/groups/{group}/members/{handle}", remove_member,
          "Remove a member (admins), or leave when the handle is your own.",
          None, body.GroupInfo, errors=GROUP_ADMIN_ERRORS),
    Route("POST", "/v1/groups/{group}/admins", add_admins, "Make members admins (admins).",
          body.MembersChange, body.GroupInfo, errors=GROUP_ADMIN_ERRORS),
    Route("PUT", "/v1/keys", put_keys,
          "Upload this device's identity key, signed prekey and one-time prekeys.",
          body.KeysUpload, body.KeysStatus,
          errors=("keys.bad_signature", "keys.incomplete", "keys.identity_mismatch",
                  "keys.too_many")),
    Route("GET", "/v1/keys", get_keys, "What the server holds of this device's keys.",
          None, body.KeysStatus),
    Route("GET", "/v1/keys/{handle}", get_bundles,
          "Take a prekey bundle of each active device of a user (consumes one-time prekeys; "
          "?device=N for one device).",
          None, body.KeyBundles,
          errors=("user.not_found", "keys.not_found", "request.invalid", "rate.limited"),
          query=(("device", "integer"),)),
    Route("GET", "/v1/keys/{handle}/identities", get_identities,
          "The identity keys of a user's active devices (consumes nothing).",
          None, body.DeviceIdentities, errors=("user.not_found", "rate.limited")),
    Route("POST", "/v1/blobs", create_blob,
          "Announce an attachment upload (201), or find it stored or started already (200): "
          "deduplicated by content address, resumable.",
          body.BlobCreate, body.BlobStatus, 201, errors=("blob.too_large",)),
    Route("PATCH", "/v1/blobs/{blob}", upload_blob,
          "Upload the next chunk at Upload-Offset; the last one completes the blob once its "
          "SHA-256 matches.",
          None, body.BlobStatus, headers=(("Upload-Offset", "integer"),),
          request_media=OFFSET_STREAM,
          errors=("blob.not_found", "blob.offset_mismatch", "blob.too_large",
                  "blob.chunk_too_large", "blob.digest_mismatch", "request.invalid",
                  "rate.limited")),
    Route("HEAD", "/v1/blobs/{blob}", head_blob,
          "Where an upload stands, in the headers Upload-Offset and Upload-Length.",
          errors=("blob.not_found",)),
    Route("GET", "/v1/blobs/{blob}/status", get_blob_status,
          "Where an upload stands (to resume it).", None, body.BlobStatus,
          errors=("blob.not_found",)),
    Route("POST", "/v1/blobs/{blob}/grants", grant_blob,
          "Let a user, or the members of a group you are in, download a blob you uploaded.",
          body.BlobGrant, None, 204,
          errors=("blob.not_found", "user.not_found", "group.not_found", "group.not_member")),
    Route("GET", "/v1/blobs/{blob}", download_blob,
          "Download a blob you uploaded or were granted (Range: bytes=a-b gives 206).",
          response_media="application/octet-stream", errors=("blob.not_found",)),
    Route("POST", "/v1/links", start_link,
          "Start linking a new device: show the code on it, approve it on a device of the "
          "account, read the outcome with the secret.",
          body.LinkCreate, body.LinkStarted, 201, auth=False,
          errors=("rate.limited", "server.draining")),
    Route("GET", "/v1/links/{link}", get_link,
          "Where a link stands (?secret=, ?wait= seconds to long-poll, 0 to 30, default 25); "
          "the first read after approval carries the new device's token.",
          None, body.LinkState, auth=False, errors=("link.not_found", "request.invalid"),
          query=(("secret", "string"), ("wait", "number"))),
    Route("POST", "/v1/links/{code}/approve", approve_link,
          "Approve a link code: a new device of your account, its token for the requester.",
          body.LinkApprove, body.LinkApproved,
          errors=("link.not_found", "link.used", "rate.limited", "auth.totp_required",
                  "auth.totp_invalid", "auth.totp_unavailable", "auth.locked")),
    Route("GET", "/v1/notices", list_notices, "The operator's current service notices.",
          None, body.NoticeList),
    Route("POST", "/v1/admin/notices", post_notice,
          "Post a service notice to every client (admin token; 404 without [admin] token).",
          body.NoticeCreate, body.NoticeInfo, 201, auth=False,
          errors=("admin.invalid_token", "request.not_found")),
    Route("GET", "/v1/admin/notices", admin_list_notices,
          "The current service notices (admin token).", None, body.NoticeList, auth=False,
          errors=("admin.invalid_token", "request.not_found")),
    Route("DELETE", "/v1/admin/notices/{notice}", end_notice,
          "End a service notice (admin token).", status=204, auth=False,
          errors=("admin.invalid_token", "notice.not_found", "request.not_found")),
    Route("GET", "/v1/blocks", list_blocks, "The handles you have blocked.", None,
          body.BlockList),
    Route("PUT", "/v1/blocks/{handle}", put_block,
          "Block a user (idempotent): they are not told.", status=204,
          errors=("user.not_found", "request.invalid")),
    Route("DELETE", "/v1/blocks/{handle}", delete_block, "Unblock a user.", status=204,
          errors=("user.not_found", "request.invalid")),
]  # fmt: skip
