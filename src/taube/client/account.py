"""Getting a session into a profile: register, log in, log out.

These talk HTTP only; the device token they receive goes straight into the
profile (never into logs or exception messages).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from taube.client.api import Api, normalize_servers
from taube.client.errors import NotLoggedIn, TaubeApiError
from taube.client.profile import Profile, StoredSession


async def register(
    handle: str,
    password: str,
    *,
    servers: Sequence[str] | str,
    profile: Profile | Path | str | None = None,
    device_name: str = "",
) -> StoredSession:
    """Create an account, log this device in, and save the session in the profile."""
    urls = normalize_servers(servers)
    async with Api(urls) as api:
        created = await api.register(handle, password, device_name)
    return _save(profile, urls, created.handle, created.device, created.token)


async def login(
    handle: str,
    password: str,
    *,
    servers: Sequence[str] | str,
    profile: Profile | Path | str | None = None,
    device_name: str = "",
) -> StoredSession:
    """Log a new device into an existing account and save the session in the profile."""
    urls = normalize_servers(servers)
    async with Api(urls) as api:
        created = await api.login(handle, password, device_name)
    return _save(profile, urls, created.handle, created.device, created.token)


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
