"""Per-node rate limits and quotas, and the login lockout, built once from ``[rate]``.

Every limit is a token bucket per key (``admission.RateLimits``): a client address
for what needs no account (registration, login), an account for what costs others
(lookups that could enumerate handles, group creation, upload bytes, logins), a device
for sends. A refusal is ``rate.limited`` with ``retry_after_s`` (and ``Retry-After``
over HTTP; on the WebSocket the error frame's details carry it). Failed logins also
lock out with backoff (``core.auth_guard``, ``auth.locked``).

The buckets live in this node's memory; in a cluster each node grants the rate once,
as for the older per-account limits in admission.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aiohttp import web

from taube.core.auth_guard import LockoutPolicy, LoginGuard
from taube.protocol.errors import TaubeError
from taube.server.admission import RateLimits, TokenBucket
from taube.server.config import Config
from taube.server.transport import client_ip

MIB: Final = 1024 * 1024


def per(amount: float, seconds: float) -> RateLimits:
    """``amount`` per ``seconds``, with a burst of ``amount``."""
    return RateLimits(per_s=amount / seconds, burst=amount)


def client_address(request: web.Request) -> str:
    """The client's address (server/transport.py: behind a trusted proxy, the one the
    proxy names)."""
    return client_ip(request)


def check(limits: RateLimits, key: str, what: str, cost: float = 1.0) -> None:
    """Raise ``rate.limited`` (with the seconds to wait) if ``key`` is over the limit."""
    refuse_if(limits.take(key, cost), what)


def refuse_if(wait: int, what: str) -> None:
    """Raise ``rate.limited`` with ``wait`` (a ``RateLimits`` answer) unless it is 0."""
    if wait:
        raise TaubeError("rate.limited", f"Too many {what}.", retry_after_s=wait)


@dataclass(frozen=True, slots=True)
class Limits:
    registrations: RateLimits
    """Per client address."""
    logins_by_address: RateLimits
    logins_by_account: RateLimits
    sends: RateLimits
    """Per device (``user/device``)."""
    groups: RateLimits
    """Group creations per account."""
    uploads: RateLimits
    """Blob bytes per account."""
    lookups: RateLimits
    """User, key bundle and identity lookups per account."""
    login_guard: LoginGuard

    @classmethod
    def from_config(cls, config: Config) -> Limits:
        return cls(
            registrations=per(config.rate_registrations_per_hour, 3600.0),
            logins_by_address=per(config.rate_logins_per_min, 60.0),
            logins_by_account=per(config.rate_account_logins_per_min, 60.0),
            sends=RateLimits(per_s=config.rate_sends_per_s, burst=config.rate_sends_burst),
            groups=per(config.rate_groups_per_hour, 3600.0),
            uploads=per(config.rate_upload_mib_per_hour * MIB, 3600.0),
            lookups=per(config.rate_lookups_per_min, 60.0),
            login_guard=LoginGuard(
                LockoutPolicy(
                    free_failures=config.rate_lockout_after,
                    free_failures_ip=config.rate_lockout_after_ip,
                    base_s=config.rate_lockout_base_s,
                    max_s=config.rate_lockout_max_s,
                )
            ),
        )

    def send_bucket(self, user: str, device: int) -> TokenBucket:
        """A device's send bucket, for its connection to keep and pass to ``check_send``
        (no lookup per message; a second connection of the device gets the same one)."""
        return self.sends.bucket(f"{user}/{device}")

    def check_send(self, bucket: TokenBucket) -> None:
        """Raise ``rate.limited`` (with the seconds to wait) if the device sends too fast."""
        refuse_if(self.sends.take_from(bucket), "messages")
