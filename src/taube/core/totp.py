"""Two-step verification: an optional TOTP second factor (RFC 6238, 6 digits, 30 s).

Setting it up takes two steps so that nobody locks themselves out with a secret their
app never saw: ``start`` stores a new secret, inactive, and returns it with its
``otpauth://`` URI; ``confirm`` with a code from the app turns it on. Once on, login and
device-link approval need a current code (``check``), and turning it off needs one too.

Invariants: a code is accepted for the current 30-second step or the one before or
after it (clock drift), and each step's code at most once per account, across nodes
(the store keeps the last step used and only moves it forward).

The secret must be readable to check codes, so it cannot be hashed: the store holds it
sealed (AES-256-GCM, core/secret_box.py) under a key that is not in the database.
Secrets written in the clear by older versions still work and are sealed at start
(``seal_legacy``). A secret that does not open (the key changed) fails closed: that
account's codes are refused with ``auth.totp_unavailable``, never skipped.
"""

from __future__ import annotations

import hmac
import logging

import pyotp

from taube.core.clock import Clock
from taube.core.secret_box import SecretUnreadable, is_legacy, seal, unseal
from taube.protocol.errors import TaubeError
from taube.store.base import Store, TotpRecord

log = logging.getLogger("taube.totp")

ISSUER = "Taube"
STEP_S = 30
DRIFT_STEPS = 1
SEAL_CHUNK = 500
MAX_LOGGED_UNREADABLE = 1024


def matching_step(secret: str, code: str, now_ms: int) -> int | None:
    """The time step (around ``now_ms``) whose code is ``code``, or None. Pure."""
    code = code.strip().replace(" ", "")
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret, interval=STEP_S)
    now_step = now_ms // 1000 // STEP_S
    for step in range(now_step - DRIFT_STEPS, now_step + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.at(step * STEP_S), code):
            return step
    return None


class TwoStep:
    """``key``: the AES-256 key sealing secrets at rest (secret_box.derive_totp_key)."""

    def __init__(self, store: Store, clock: Clock, key: bytes) -> None:
        self._store = store
        self._clock = clock
        self._key = key
        # Accounts whose unreadable secret was logged already: once each, not per login
        # attempt (bounded; forgetting only means logging one again).
        self._logged_unreadable: set[str] = set()

    def _secret(self, record: TotpRecord) -> str:
        """The record's secret in the clear, or ``auth.totp_unavailable`` (logged)."""
        try:
            return unseal(self._key, record.handle, record.secret)
        except SecretUnreadable as exc:
            if record.handle not in self._logged_unreadable:
                if len(self._logged_unreadable) >= MAX_LOGGED_UNREADABLE:
                    self._logged_unreadable.clear()
                self._logged_unreadable.add(record.handle)
                log.error(
                    "two-step verification secret of user=%s is unreadable (%s): was the"
                    " status signing key changed, or do the nodes have different ones?"
                    " Its codes are refused until the key is restored (docs/operations.md)",
                    record.handle,
                    exc,
                )
            raise TaubeError("auth.totp_unavailable") from None

    async def enabled(self, handle: str) -> bool:
        record = await self._store.get_totp(handle)
        return record is not None and record.active

    async def start(self, handle: str) -> tuple[str, str]:
        """A new inactive secret and its otpauth URI; ``totp.already_enabled`` if on."""
        secret = pyotp.random_base32()
        sealed = seal(self._key, handle, secret)
        if not await self._store.put_totp(handle, sealed, self._clock()):
            raise TaubeError("totp.already_enabled")
        uri = pyotp.TOTP(secret, interval=STEP_S).provisioning_uri(name=handle, issuer_name=ISSUER)
        return secret, uri

    async def confirm(self, handle: str, code: str) -> None:
        record = await self._store.get_totp(handle)
        if record is None:
            raise TaubeError("totp.not_enabled", "Start two-step verification first.")
        if record.active:
            raise TaubeError("totp.already_enabled")
        step = matching_step(self._secret(record), code, self._clock())
        if step is None or not await self._store.use_totp_step(handle, step, activate=True):
            raise TaubeError("auth.totp_invalid")

    async def check(self, handle: str, code: str | None) -> None:
        """Pass if two-step verification is off or ``code`` is a fresh right code;
        else ``auth.totp_required`` (no code given), ``auth.totp_invalid``, or
        ``auth.totp_unavailable`` (the stored secret does not open: fail closed)."""
        record = await self._store.get_totp(handle)
        if record is None or not record.active:
            return
        secret = self._secret(record)
        if not code:
            raise TaubeError("auth.totp_required")
        step = matching_step(secret, code, self._clock())
        if step is None or not await self._store.use_totp_step(handle, step):
            raise TaubeError("auth.totp_invalid")

    async def disable(self, handle: str, code: str) -> None:
        if not await self.enabled(handle):
            raise TaubeError("totp.not_enabled")
        await self.check(handle, code or "-")
        await self._store.delete_totp(handle)

    async def seal_legacy(self) -> int:
        """Seal every secret still stored in the clear (written before sealing existed);
        how many. Safe on several nodes at once: a row is replaced only if unchanged."""
        sealed = 0
        after = ""
        while rows := await self._store.legacy_totp_secrets(after, SEAL_CHUNK):
            changes = [
                (handle, secret, seal(self._key, handle, secret))
                for handle, secret in rows
                if is_legacy(secret)
            ]
            sealed += await self._store.replace_totp_secrets(changes)
            after = rows[-1][0]
        return sealed
