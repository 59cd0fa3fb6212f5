"""Two-step verification: an optional TOTP second factor (RFC 6238, 6 digits, 30 s).

Setting it up takes two steps so that nobody locks themselves out with a secret their
app never saw: ``start`` stores a new secret, inactive, and returns it with its
``otpauth://`` URI; ``confirm`` with a code from the app turns it on. Once on, login and
device-link approval need a current code (``check``), and turning it off needs one too.

Invariants: a code is accepted for the current 30-second step or the one before or
after it (clock drift), and each step's code at most once per account, across nodes
(the store keeps the last step used and only moves it forward). The secret is a
server-side secret stored like the password hash (docs/operations.md).
"""

from __future__ import annotations

import hmac

import pyotp

from taube.core.clock import Clock
from taube.protocol.errors import TaubeError
from taube.store.base import Store

ISSUER = "Taube"
STEP_S = 30
DRIFT_STEPS = 1


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
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def enabled(self, handle: str) -> bool:
        record = await self._store.get_totp(handle)
        return record is not None and record.active

    async def start(self, handle: str) -> tuple[str, str]:
        """A new inactive secret and its otpauth URI; ``totp.already_enabled`` if on."""
        secret = pyotp.random_base32()
        if not await self._store.put_totp(handle, secret, self._clock()):
            raise TaubeError("totp.already_enabled")
        uri = pyotp.TOTP(secret, interval=STEP_S).provisioning_uri(name=handle, issuer_name=ISSUER)
        return secret, uri

    async def confirm(self, handle: str, code: str) -> None:
        record = await self._store.get_totp(handle)
        if record is None:
            raise TaubeError("totp.not_enabled", "Start two-step verification first.")
        if record.active:
            raise TaubeError("totp.already_enabled")
        step = matching_step(record.secret, code, self._clock())
        if step is None or not await self._store.use_totp_step(handle, step, activate=True):
            raise TaubeError("auth.totp_invalid")

    async def check(self, handle: str, code: str | None) -> None:
        """Pass if two-step verification is off or ``code`` is a fresh right code;
        else ``auth.totp_required`` (no code given) or ``auth.totp_invalid``."""
        record = await self._store.get_totp(handle)
        if record is None or not record.active:
            return
        if not code:
            raise TaubeError("auth.totp_required")
        step = matching_step(record.secret, code, self._clock())
        if step is None or not await self._store.use_totp_step(handle, step):
            raise TaubeError("auth.totp_invalid")

    async def disable(self, handle: str, code: str) -> None:
        if not await self.enabled(handle):
            raise TaubeError("totp.not_enabled")
        await self.check(handle, code or "-")
        await self._store.delete_totp(handle)
