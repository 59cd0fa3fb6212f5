"""Getting a session into a profile: register, log in, log out.

These talk HTTP only; the device token they receive goes straight into the
profile (never into logs or exception messages), with the servers' status key
(``GET /v1/status/key``: what status documents and notices are checked against)
and, when given, the status URL to read when no server answers. A new device makes its
end-to-end encryption keys at once and uploads their public halves, so that
others can write to it before it ever connects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from taube.client.api import Api, normalize_servers
from taube.client.e2ee import E2ee
from taube.client.errors import NotLoggedIn, TaubeApiError, TaubeClientError
from taube.client.profile import Profile, StoredSession

log = logging.getLogger("taube.client")


async def register(
    handle: str,
    password: str,
    *,
    servers: Sequence[str] | str,
    profile: Profile | Path | str | None = None,
    device_name: str = "",
    status_url: str | None = None,
) -> StoredSession:
    """Create an account, log this device in, and save the session in the profile."""
    urls = normalize_servers(servers)
    async with Api(urls) as api:
        created = await api.register(handle, password, device_name)
        status_key = await _status_key(api)
    session = _save(profile, urls, created.handle, created.device, created.token)
    _save_status(profile, status_key, status_url)
    await _upload_keys(profile, session)
    return session


async def login(
    handle: str,
    password: str,
    *,
    servers: Sequence[str] | str,
    profile: Profile | Path | str | None = None,
    device_name: str = "",
    status_url: str | None = None,
    totp: str | None = None,
) -> StoredSession:
    """Log a new device into an existing account and save the session in the profile.

    ``totp``: the two-step verification code; an account that has it on refuses a login
    without one with :class:`TaubeApiError` ``auth.totp_required`` (ask, then retry)."""
    urls = normalize_servers(servers)
    async with Api(urls) as api:
        created = await api.login(handle, password, device_name, totp)
        status_key = await _status_key(api)
    session = _save(profile, urls, created.handle, created.device, created.token)
    _save_status(profile, status_key, status_url)
    await _upload_keys(profile, session)
    return session


async def change_password(
    old_password: str,
    new_password: str,
    *,
    revoke_others: bool = False,
    profile: Profile | Path | str | None = None,
) -> None:
    """Change the account's password; with ``revoke_others`` every other device of the
    account is logged out at once (this one stays logged in)."""
    with _opened(profile) as prof:
        session = prof.session()
    if session is None:
        raise NotLoggedIn("not logged in on this profile")
    async with Api(session.servers, session.token) as api:
        await api.change_password(old_password, new_password, revoke_other_devices=revoke_others)


async def logout(
    profile: Profile | Path | str | None = None, *, servers: Sequence[str] | str | None = None
) -> None:
    """Revoke this device on the server and forget the token locally.

    The token is forgotten even if the server says it was already invalid;
    queued outbox messages stay for the next login of the same user.
    """
    with _opened(profile) as prof:
        session = prof.session()
        if session is None:
            raise NotLoggedIn("not logged in on this profile")
        async with Api(servers or session.servers, session.token) as api:
            try:
                await api.revoke_device(session.device)
            except NotLoggedIn:
                pass
            except TaubeApiError as exc:
                if exc.code != "device.not_found":
                    raise
        prof.clear_session()


async def _upload_keys(profile: Profile | Path | str | None, session: StoredSession) -> None:
    async def run(fn: Callable[..., Any], *args: object) -> Any:
        return fn(*args)  # a short-lived profile connection of our own: no thread needed

    with _opened(profile) as prof:
        async with Api(session.servers, session.token) as api:
            keys = E2ee(session.handle, session.device, api, prof.keys, run)
            try:
                await keys.ensure_keys()
            except (TaubeClientError, aiohttp.ClientError, TimeoutError) as exc:
                # The client uploads them when it connects; until then nobody can
                # start a session with this device.
                log.warning("could not upload this device's keys yet: %s", exc)


async def _status_key(api: Api) -> str | None:
    try:
        return await api.status_key()
    except (TaubeClientError, aiohttp.ClientError, TimeoutError) as exc:
        # An older server, or a hiccup: the client learns it when it connects.
        log.warning("could not learn the servers' status key yet: %s", exc)
        return None


def _save_status(
    profile: Profile | Path | str | None, status_key: str | None, status_url: str | None
) -> None:
    with _opened(profile) as prof:
        if status_key is not None:
            prof.save_status_key(status_key)
        if status_url:
            prof.save_status_url(status_url)


def _save(
    profile: Profile | Path | str | None,
    servers: tuple[str, ...],
    handle: str,
    device: int,
    token: str,
) -> StoredSession:
    with _opened(profile) as prof:
        prof.save_session(servers, handle, device, token)
        session = prof.session()
    assert session is not None
    return session


def _opened(profile: Profile | Path | str | None) -> Profile:
    # A fresh connection per call keeps these helpers independent of any Client.
    return Profile.open(profile.path if isinstance(profile, Profile) else profile)
