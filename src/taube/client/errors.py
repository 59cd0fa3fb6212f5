"""Exceptions raised by the client SDK, grouped by what the caller can do about them.

* :class:`ServerUnreachable` - no server in the list answered: retry later (the
  outbox keeps messages meanwhile).
* :class:`NotLoggedIn` - no session in the profile, or the server rejected the
  device token (revoked, expired): log in again.
* :class:`TaubeApiError` - the server understood and refused; ``code`` is the
  stable code from :mod:`taube.protocol.errors` and decides what to do.
* :class:`SendTimeout` - messages are still queued in the durable outbox when a
  wait ran out; they are not lost and will be sent on the next connection.
* :class:`UntrustedIdentity` - a contact whose safety number you verified has new
  keys: compare the safety number again and verify before sending.

All derive from :class:`TaubeClientError`. Messages never contain tokens or
passwords.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class TaubeClientError(Exception):
    """Base of every error the SDK raises on purpose."""


class ServerUnreachable(TaubeClientError):
    """None of the server URLs could be reached (connection refused, DNS, timeout)."""


class NotLoggedIn(TaubeClientError):
    """The profile holds no usable session: log in (again).

    ``code`` is the server's code (``auth.revoked``, ``auth.invalid_token`` ...)
    when the server rejected the token, or None when the profile has no session.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TaubeApiError(TaubeClientError):
    """The server refused a request or frame with a stable error code."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        details: dict[str, Any] | None = None,
        ref: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details = details or {}
        self.ref = ref


class SendTimeout(TaubeClientError, TimeoutError):
    """A wait for ``sent`` acks ran out; ``pending`` ids remain in the durable outbox."""

    def __init__(self, pending: Iterable[str]) -> None:
        self.pending = tuple(pending)
        super().__init__(f"{len(self.pending)} message(s) not yet acknowledged by the server")


class ProfileError(TaubeClientError):
    """The profile folder or its database cannot be used (permissions, corruption)."""


class UntrustedIdentity(TaubeClientError):
    """``user``'s keys changed since the user verified their safety number.

    Sending is refused until the number is compared and verified again
    (``taube safety-number @user``, then ``taube verify @user``).
    """

    code = "e2ee.identity_changed"

    def __init__(self, user: str) -> None:
        self.user = user
        self.message = (
            f"@{user}'s security code changed since you verified it; compare it again"
            f" (taube safety-number @{user}) and verify (taube verify @{user}) before sending"
        )
        super().__init__(self.message)
