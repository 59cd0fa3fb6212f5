"""Login lockout with exponential backoff, so that guessing a password is slow and cheap.

Failed attempts are counted per key: the account (``user:alice``) and the client
address (``ip:192.0.2.7``), each with its own allowance of free failures. Past it,
each further failure locks the key for ``base_s``, doubling up to ``max_s``; a success
clears the account's count (not the address's). While a key is locked, attempts are
refused before any password hash is checked (``auth.locked`` with a retry-after), so a
flood costs the server a dictionary lookup per attempt, not an argon2 hash.

Invariants:

- At most one attempt per account is being verified at a time: concurrent attempts
  for that account are refused as locked for a second. Without this, a burst of
  parallel guesses would all pass the check before the first failure is counted.
- Device tokens are untouched: a locked account's existing devices keep working.
- State is this node's memory, at most ``max_keys`` keys (the least recently failed
  forgotten first), and a key quiet for ``forget_s`` starts again from zero. In a
  cluster the nodes tell each other every failure and success they count
  (``on_outcome`` and ``apply``; core/shared_lockout.py), so the allowance is the
  cluster's, not each node's.

Pure: time is passed in through ``clock``.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from taube.protocol.errors import TaubeError


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    free_failures: int = 5
    """Failures per account before backoff starts."""
    free_failures_ip: int = 50
    """Failures per client address (over all accounts) before it backs off too."""
    base_s: float = 1.0
    max_s: float = 900.0
    forget_s: float = 24 * 3600.0


@dataclass(slots=True)
class _Failures:
    count: int = 0
    locked_until: float = 0.0
    last: float = 0.0


class LoginGuard:
    """Counts failures and says how long a key stays locked."""

    def __init__(
        self,
        policy: LockoutPolicy = LockoutPolicy(),
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._max_keys = max_keys
        self._keys: OrderedDict[str, _Failures] = OrderedDict()
        self._verifying: set[str] = set()
        self.refused = 0
        """Attempts refused without checking a password (for tests and metrics)."""
        self.checked = 0
        """Attempts let through to the password check."""
        self.on_outcome: Callable[[str, bool], None] | None = None
        """Told each failure (True) and success (False) counted here, by key; not those
        applied from elsewhere (``apply``)."""

    def _state(self, key: str) -> _Failures | None:
        state = self._keys.get(key)
        if state is not None and self._clock() - state.last > self.policy.forget_s:
            del self._keys[key]
            return None
        return state

    def locked_for(self, key: str) -> float:
        """Seconds ``key`` stays locked (0.0: not locked)."""
        state = self._state(key)
        return 0.0 if state is None else max(0.0, state.locked_until - self._clock())

    def failed(self, key: str, free_failures: int) -> None:
        now = self._clock()
        state = self._state(key)
        if state is None:
            state = self._keys[key] = _Failures()
            if len(self._keys) > self._max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key)
        state.count += 1
        state.last = now
        over = state.count - free_failures
        if over >= 0:
            delay = min(self.policy.max_s, self.policy.base_s * 2.0 ** min(over, 60))
            state.locked_until = now + delay

    def succeeded(self, key: str) -> None:
        self._keys.pop(key, None)

    def apply(self, key: str, *, failed: bool) -> None:
        """A failure or success another node counted (``on_outcome`` there)."""
        if not failed:
            self.succeeded(key)
        elif key.startswith("ip:"):
            self.failed(key, self.policy.free_failures_ip)
        else:
            self.failed(key, self.policy.free_failures)

    def _counted(self, key: str, failed: bool) -> None:
        if self.on_outcome is not None:
            self.on_outcome(key, failed)

    @contextmanager
    def attempt(self, account: str, address: str) -> Iterator[Attempt]:
        """Guard one password (or second factor) check of ``account`` from ``address``.

        Raises ``auth.locked`` (without running the body) while either key is locked or
        another check of the account is under way; the body marks the outcome with
        ``attempt.fail()`` / ``attempt.succeed()`` (an exception leaves counts as they
        are, unless the body marked a failure first)."""
        user_key, ip_key = f"user:{account}", f"ip:{address}"
        wait = max(self.locked_for(user_key), self.locked_for(ip_key))
        if user_key in self._verifying:
            wait = max(wait, 1.0)
        if wait > 0:
            self.refused += 1
            raise TaubeError(
                "auth.locked",
                "Too many failed attempts; try again later.",
                retry_after_s=max(1, math.ceil(wait)),
            )
        self.checked += 1
        self._verifying.add(user_key)
        outcome = Attempt()
        try:
            yield outcome
        finally:
            self._verifying.discard(user_key)
            if outcome.outcome == "failed":
                self.failed(user_key, self.policy.free_failures)
                self.failed(ip_key, self.policy.free_failures_ip)
                self._counted(user_key, True)
                self._counted(ip_key, True)
            elif outcome.outcome == "succeeded":
                # Not the address: logging into one's own account must not wash away
                # the failures a guesser piled up on others from the same address.
                self.succeeded(user_key)
                self._counted(user_key, False)


class Attempt:
    """How one guarded check went: ``fail()``, ``succeed()`` or neither (not counted)."""

    __slots__ = ("outcome",)

    def __init__(self) -> None:
        self.outcome = ""

    def fail(self) -> None:
        self.outcome = "failed"

    def succeed(self) -> None:
        self.outcome = "succeeded"
