"""Admission control: a node says "come back in N seconds" instead of falling over.

When a node dies, its clients all reconnect to the others at once (a reconnect
storm). Each new connection costs a token lookup and each login an argon2 hash;
unbounded, a storm starves the connections already served. A token bucket bounds
the rate of new WebSocket sessions and logins, a counter bounds the handshakes in
flight; whoever is turned away gets ``server.overloaded`` with a retry-after hint,
spread at random over the seconds the node needs to admit everyone it is turning
away, so that the retries do not come back as one wave.

``RateLimits`` keeps one token bucket per account for requests that cost others
something (a prekey bundle fetch uses up one of the target's one-time prekeys). The
buckets live in this node's memory: in a cluster an account may use the rate once
per node it reaches, which bounds abuse well enough without a shared counter.
"""

from __future__ import annotations

import math
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up. Pure: time is passed in."""

    rate: float
    burst: float
    tokens: float = -1.0
    updated: float = 0.0

    def take(self, now: float, cost: float = 1.0) -> float:
        """0.0 if ``cost`` tokens were taken, else the seconds until they will be there
        (``cost`` is at most ``burst``, or it never will)."""
        if self.tokens < 0:
            self.tokens, self.updated = self.burst, now
        tokens = self.tokens + (now - self.updated) * self.rate
        self.tokens = tokens if tokens < self.burst else self.burst  # not min(): per send
        self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate


@dataclass
class RefusalWindow:
    """How many clients were turned away in the current one-second window. Pure."""

    start: float = -1.0
    count: int = 0

    def add(self, now: float) -> int:
        """Count one more refusal at ``now``; the count in this window, it included."""
        if self.start < 0 or now - self.start >= 1.0:
            self.start, self.count = now, 0
        self.count += 1
        return self.count


class Admission:
    """Decides whether a new session or login may start now."""

    def __init__(
        self,
        *,
        sessions_per_s: float,
        logins_per_s: float,
        max_handshakes: int,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._sessions = TokenBucket(sessions_per_s, burst=max(1.0, sessions_per_s))
        self._logins = TokenBucket(logins_per_s, burst=max(1.0, logins_per_s))
        self._max_handshakes = max_handshakes
        self._clock = clock
        self._jitter = jitter
        self._session_refusals = RefusalWindow()
        self._login_refusals = RefusalWindow()
        self.handshakes = 0
        self.refused = 0

    def _retry_after(self, wait: float, bucket: TokenBucket, refusals: RefusalWindow) -> int:
        """Whole seconds (HTTP's unit), at least ``wait`` and at least 1, spread so that
        clients turned away together do not come back together: uniformly over
        ``ceil(wait)`` up to that plus the seconds the bucket's rate needs to admit
        everyone turned away in this window (at least one more second). Jitter on the
        wait itself would not do: rounded up to whole seconds, sub-second waits would
        all become the same hint."""
        self.refused += 1
        base = max(1, math.ceil(wait))
        backlog_s = max(1.0, refusals.add(self._clock()) / bucket.rate)
        return base + math.floor(self._jitter() * (backlog_s + 1.0))

    def admit_session(self) -> int:
        """0 to go ahead (then call ``handshake_done``), else seconds to wait."""
        if self.handshakes >= self._max_handshakes:
            return self._retry_after(1.0, self._sessions, self._session_refusals)
        wait = self._sessions.take(self._clock())
        if wait:
            return self._retry_after(wait, self._sessions, self._session_refusals)
        self.handshakes += 1
        return 0

    def try_admit_session(self) -> bool:
        """``admit_session`` that refuses silently: True to go ahead (then call
        ``handshake_done``); False counts nothing, for a caller that then asks
        ``admit_session`` for the answer to give (direct_ws hands such upgrades to
        the WebSocket handler)."""
        if self.handshakes >= self._max_handshakes:
            return False
        if self._sessions.take(self._clock()):
            return False  # a refused take leaves the bucket's tokens as they were
        self.handshakes += 1
        return True

    def handshake_done(self) -> None:
        self.handshakes -= 1

    def admit_login(self) -> int:
        wait = self._logins.take(self._clock())
        return self._retry_after(wait, self._logins, self._login_refusals) if wait else 0


class RateLimits:
    """One token bucket per key (an account), at most ``max_keys`` remembered: the one
    used longest ago is forgotten first (it has most likely filled up again anyway)."""

    def __init__(
        self,
        *,
        per_s: float,
        burst: float,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = per_s
        self._burst = max(1.0, burst)
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str, cost: float = 1.0) -> int:
        """0 to go ahead, else whole seconds (at least 1) until ``key`` may try again
        (``cost``: tokens this request uses, e.g. bytes; capped at the burst)."""
        return self.take_from(self.bucket(key), cost)

    def bucket(self, key: str) -> TokenBucket:
        """``key``'s bucket (made if new), now the most recently used. A caller may keep
        it for ``take_from`` (a connection keeps its device's: no lookup per send)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self._rate, self._burst)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def take_from(self, bucket: TokenBucket, cost: float = 1.0) -> int:
        """``take`` on a bucket kept from ``bucket(key)``."""
        wait = bucket.take(self._clock(), cost if cost < self._burst else self._burst)
        return max(1, math.ceil(wait)) if wait else 0
