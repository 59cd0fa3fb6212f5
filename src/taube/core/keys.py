"""Key distribution for end-to-end encryption: devices upload prekeys, others fetch bundles.

The server is a directory of public keys and never sees a private one. What it keeps
(docs/protocol.md, "Keys"; the cryptography is docs/e2ee.md):

- A device's identity key is set by its first upload and never changes: a different
  one is refused (a reinstall logs in as a new device), so that a key change is always
  a device change that clients can show.
- A signed prekey is accepted only with a valid signature by that identity key; a new
  one replaces the old (rotation).
- One-time prekeys are added up to ``max_one_time`` per device and each is handed out
  at most once (the store takes it atomically).
- A device whose pool runs below ``min_one_time`` is told so with a ``keys_low`` frame,
  through its control subject on the bus, so the notice reaches it on whichever node
  it is connected to. Notices are ephemeral: a device that misses one gets another
  after its next ``ready``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from taube.bus.base import Bus, device_subject
from taube.crypto import InvalidSignature
from taube.crypto.keys import verify_signed_prekey
from taube.protocol.errors import TaubeError
from taube.protocol.frames import KeysLow, encode_frame
from taube.protocol.ids import normalize_handle
from taube.store.base import (
    BundleRecord,
    IdentityKeyMismatch,
    KeysIncomplete,
    KeysStatusRecord,
    PrekeyRecord,
    SignedPrekeyRecord,
    Store,
    TooManyPrekeys,
)

log = logging.getLogger("taube.keys")

MAX_ONE_TIME_PREKEYS = 1000
MIN_ONE_TIME_PREKEYS = 20


def keys_low_notice(one_time_prekeys: int) -> bytes:
    """The control message that makes a device's connections send ``keys_low``
    (a server frame, passed through as it is; see the gateway's ``_control``)."""
    return encode_frame(KeysLow(one_time_prekeys=one_time_prekeys))


class KeysService:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        *,
        min_one_time: int = MIN_ONE_TIME_PREKEYS,
        max_one_time: int = MAX_ONE_TIME_PREKEYS,
    ) -> None:
        self._store = store
        self._bus = bus
        self.min_one_time = min_one_time
        self.max_one_time = max_one_time

    async def upload(
        self,
        user: str,
        device: int,
        identity_key: bytes,
        signed_prekey: SignedPrekeyRecord | None,
        one_time_prekeys: Sequence[PrekeyRecord],
    ) -> KeysStatusRecord:
        """Store the calling device's keys (see the module doc for what is refused)."""
        if signed_prekey is not None:
            try:
                verify_signed_prekey(
                    identity_key, signed_prekey.id, signed_prekey.key, signed_prekey.signature
                )
            except InvalidSignature:
                raise TaubeError("keys.bad_signature") from None
        try:
            status = await self._store.put_keys(
                user, device, identity_key, signed_prekey, one_time_prekeys, self.max_one_time
            )
        except IdentityKeyMismatch:
            raise TaubeError(
                "keys.identity_mismatch",
                "This device already has another identity key; log in again as a new device.",
            ) from None
        except KeysIncomplete:
            raise TaubeError("keys.incomplete") from None
        except TooManyPrekeys as exc:
            raise TaubeError(
                "keys.too_many",
                f"At most {exc.limit} one-time prekeys per device; {exc.stored} are stored.",
                limit=exc.limit,
                stored=exc.stored,
            ) from None
        if status is None:
            raise TaubeError("auth.revoked")
        log.info(
            "keys uploaded user=%s device=%d one_time_prekeys=%d",
            user,
            device,
            status.one_time_prekeys,
        )
        return status

    async def status(self, user: str, device: int) -> KeysStatusRecord:
        return await self._store.keys_status(user, device)

    def is_low(self, status: KeysStatusRecord) -> bool:
        """The device has keys but fewer one-time prekeys than it should."""
        return status.identity_key is not None and status.one_time_prekeys < self.min_one_time

    async def bundles(self, handle: str, device: int | None = None) -> list[BundleRecord]:
        """Take a bundle of each active device of ``handle`` (or of ``device`` only),
        consuming one one-time prekey each, and tell the devices left running low."""
        handle = normalize_handle(handle)
        if await self._store.get_user(handle) is None:
            raise TaubeError("user.not_found")
        bundles = await self._store.take_bundles(handle, device)
        if device is not None and not bundles:
            raise TaubeError("keys.not_found", f"Device {device} of @{handle} has no keys.")
        for bundle in bundles:
            # Only a fetch that took a prekey changes anything worth saying again.
            if bundle.one_time_prekey is not None and bundle.one_time_prekeys_left < (
                self.min_one_time
            ):
                await self._bus.publish(
                    device_subject(handle, bundle.device),
                    keys_low_notice(bundle.one_time_prekeys_left),
                )
        return bundles

    async def identities(self, handle: str) -> list[tuple[int, bytes]]:
        """(device, identity key) of each active device of ``handle`` with keys."""
        handle = normalize_handle(handle)
        if await self._store.get_user(handle) is None:
            raise TaubeError("user.not_found")
        return await self._store.identity_keys(handle)
