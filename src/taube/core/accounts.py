"""Accounts and devices: registration, login, device tokens, revocation, settings.

Passwords are hashed with argon2id (argon2-cffi) off the event loop. Device
tokens are 256 random bits shown to the device once; the store keeps only their
SHA-256, so a stolen database does not yield working tokens. A token expires
after ``token_idle_ms`` without use.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import argon2

from taube.bus.base import Bus, device_subject
from taube.core.clock import Clock
from taube.core.directory import Directory
from taube.core.totp import TwoStep
from taube.protocol.errors import TaubeError
from taube.protocol.ids import is_handle, normalize_handle
from taube.store.base import DeviceRecord, HandleTaken, Store, UserRecord

MIN_PASSWORD_LENGTH = 8
REVOKED = b"revoked"


@dataclass(frozen=True, slots=True)
class Argon2Params:
    """Defaults follow OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane)."""

    time_cost: int = 2
    memory_kib: int = 19 * 1024
    parallelism: int = 1


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Accounts:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        clock: Clock,
        directory: Directory,
        *,
        totp_key: bytes,
        argon2_params: Argon2Params = Argon2Params(),
        token_idle_ms: int = 90 * 24 * 3600 * 1000,
        is_suspended: Callable[[str], bool] = lambda handle: False,
    ) -> None:
        self._is_suspended = is_suspended  # core/abuse.py
        self._store = store
        self._bus = bus
        self._clock = clock
        self._directory = directory
        self._token_idle_ms = token_idle_ms
        self._hasher = argon2.PasswordHasher(
            time_cost=argon2_params.time_cost,
            memory_cost=argon2_params.memory_kib,
            parallelism=argon2_params.parallelism,
            type=argon2.Type.ID,
        )
        # Verified against when the handle does not exist, so that a login for an
        # unknown handle costs as long as one with a wrong password.
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        self.two_step = TwoStep(store, clock, totp_key)

    async def register(
        self, handle: str, password: str, device_name: str
    ) -> tuple[DeviceRecord, str]:
        handle = normalize_handle(handle)
        if not is_handle(handle):
            raise TaubeError("account.invalid_handle")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise TaubeError("account.weak_password")
        if await self._store.get_user(handle) is not None:
            raise TaubeError("account.handle_taken")
        password_hash = await asyncio.to_thread(self._hasher.hash, password)
        try:
            await self._store.create_user(UserRecord(handle, password_hash, self._clock()))
        except HandleTaken:
            raise TaubeError("account.handle_taken") from None
        return await self.new_device(handle, device_name)

    async def login(
        self, handle: str, password: str, device_name: str, totp: str | None = None
    ) -> tuple[DeviceRecord, str]:
        """``auth.bad_credentials``, then (two-step verification on) ``auth.totp_required``
        or ``auth.totp_invalid``; else a new device and its token."""
        handle = normalize_handle(handle)
        user = await self.check_password(handle, password)
        await self.two_step.check(handle, totp)
        await self._rehash_if_needed(user, password)
        return await self.new_device(handle, device_name)

    async def check_password(self, handle: str, password: str) -> UserRecord:
        """The user if ``password`` is theirs, else ``auth.bad_credentials`` (as slow for
        an unknown handle as for a wrong password)."""
        user = await self._store.get_user(handle) if is_handle(handle) else None
        stored_hash = user.password_hash if user else self._dummy_hash
        try:
            await asyncio.to_thread(self._hasher.verify, stored_hash, password)
        except argon2.exceptions.VerificationError:
            raise TaubeError("auth.bad_credentials") from None
        except argon2.exceptions.InvalidHashError:
            raise TaubeError("auth.bad_credentials") from None
        if user is None:
            raise TaubeError("auth.bad_credentials")
        return user

    async def _rehash_if_needed(self, user: UserRecord, password: str) -> None:
        """A hash made with other argon2 parameters than configured now is replaced
        after a successful login (the only moment the password is known)."""
        if self._hasher.check_needs_rehash(user.password_hash):
            new_hash = await asyncio.to_thread(self._hasher.hash, password)
            await self._store.set_password_hash(user.handle, new_hash)

    async def change_password(
        self, device: DeviceRecord, old: str, new: str, *, revoke_others: bool
    ) -> list[int]:
        """Replace the password (the old one checked); with ``revoke_others`` every other
        device of the account is revoked. The ids of the devices revoked."""
        user = await self.check_password(device.user, old)
        if len(new) < MIN_PASSWORD_LENGTH:
            raise TaubeError("account.weak_password")
        new_hash = await asyncio.to_thread(self._hasher.hash, new)
        await self._store.set_password_hash(user.handle, new_hash)
        revoked: list[int] = []
        if revoke_others:
            for other in await self.devices(user.handle):
                if other.id != device.id:
                    try:
                        await self.revoke(user.handle, other.id)
                    except TaubeError:  # revoked meanwhile
                        continue
                    revoked.append(other.id)
        return revoked

    async def new_device(self, handle: str, name: str) -> tuple[DeviceRecord, str]:
        """A new device of ``handle`` and its token (login, registration, device linking)."""
        if self._is_suspended(handle):
            raise TaubeError("account.suspended")
        token = secrets.token_urlsafe(32)
        device = await self._store.create_device(handle, name, hash_token(token), self._clock())
        await self._directory.user_changed(handle)
        return device, token

    async def authenticate(self, token: str) -> DeviceRecord:
        """The active device for a token, or a TaubeError saying why not."""
        device = await self._store.device_by_token(hash_token(token))
        if device is None:
            raise TaubeError("auth.invalid_token")
        if not device.active:
            raise TaubeError("auth.revoked")
        if self._clock() - device.last_active_ms > self._token_idle_ms:
            raise TaubeError("auth.token_expired")
        if self._is_suspended(device.user):
            raise TaubeError("account.suspended")
        return await self.keep_alive(device)

    async def keep_alive(self, device: DeviceRecord) -> DeviceRecord:
        """Record that a connected device is still in use (at most one write an hour)."""
        now = self._clock()
        if now - device.last_active_ms <= 3_600_000:
            return device
        await self._store.touch_device(device.user, device.id, now)
        return dataclasses.replace(device, last_active_ms=now)

    async def devices(self, handle: str) -> list[DeviceRecord]:
        return [d for d in await self._store.list_devices(handle) if d.active]

    async def revoke(self, handle: str, device_id: int) -> None:
        if not await self._store.revoke_device(handle, device_id, self._clock()):
            raise TaubeError("device.not_found")
        await self._directory.user_changed(handle)
        await self._bus.publish(device_subject(handle, device_id), REVOKED)

    async def user(self, handle: str) -> UserRecord:
        user = await self._store.get_user(normalize_handle(handle))
        if user is None:
            raise TaubeError("user.not_found")
        return user
