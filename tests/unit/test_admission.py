"""Admission control as pure logic: buckets refill with time, refusals carry a hint."""

from __future__ import annotations

from taube.server.admission import Admission, RateLimits, TokenBucket


def test_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=5)
    assert [bucket.take(0.0) for _ in range(5)] == [0.0] * 5
    assert bucket.take(0.0) == 0.1  # one token takes 0.1 s at 10/s
    assert bucket.take(0.1) == 0.0
    assert bucket.take(0.1) > 0
    assert bucket.take(10.0) == 0.0  # refilled (up to the burst)


def test_sessions_are_bounded_by_rate_and_by_handshakes_in_flight() -> None:
    now = [0.0]
    admission = Admission(
        sessions_per_s=100, logins_per_s=2, max_handshakes=3,
        clock=lambda: now[0], jitter=lambda: 0.0,
    )  # fmt: skip
    assert [admission.admit_session() for _ in range(3)] == [0, 0, 0]
    assert admission.admit_session() == 1  # three handshakes in flight
    admission.handshake_done()
    assert admission.admit_session() == 0
    assert admission.admit_login() == 0
    assert admission.admit_login() == 0
    assert admission.admit_login() >= 1
    assert admission.refused == 2


def test_retry_after_is_spread_by_jitter() -> None:
    hints = set()
    for spread in (0.0, 0.5, 0.99):
        admission = Admission(
            sessions_per_s=0.5, logins_per_s=1, max_handshakes=10,
            clock=lambda: 0.0, jitter=lambda s=spread: s,
        )  # fmt: skip
        admission.admit_session()
        hints.add(admission.admit_session())
    assert len(hints) > 1
    assert min(hints) >= 2  # a token takes 2 s at 0.5/s


def test_rate_limits_are_per_key_and_say_when_to_come_back() -> None:
    now = [0.0]
    limits = RateLimits(per_s=3 / 60, burst=3, max_keys=2, clock=lambda: now[0])
    assert [limits.take("bob") for _ in range(3)] == [0, 0, 0]
    assert limits.take("bob") == 20  # one token every 20 s
    assert limits.take("carol") == 0  # another account has its own bucket
    now[0] = 10.5
    assert limits.take("bob") == 10  # whole seconds, rounded up
    now[0] = 20.0
    assert limits.take("bob") == 0
    assert limits.take("bob") == 20
    # Only max_keys buckets are kept: the one used longest ago is forgotten.
    assert limits.take("dave") == 0  # carol's goes; bob's (used last) stays
    assert limits.take("bob") == 20
    assert limits.take("erin") == 0  # dave's goes
    assert limits.take("bob") == 20
    assert limits.take("carol") == 0  # erin's goes...
    assert limits.take("frank") == 0  # ...then bob's, used longest ago
    assert limits.take("bob") == 0  # forgotten: a fresh bucket


def test_a_kept_bucket_is_the_keys_bucket() -> None:
    """A connection keeps its device's bucket (``bucket``) and takes from it directly
    (``take_from``): the same tokens as ``take`` by key, and the same answers."""
    now = [0.0]
    limits = RateLimits(per_s=1.0, burst=2, clock=lambda: now[0])
    kept = limits.bucket("alice/1")
    assert limits.bucket("alice/1") is kept
    assert limits.take_from(kept) == 0
    assert limits.take("alice/1") == 0
    assert limits.take_from(kept) == 1  # both tokens gone: 1 s to the next
    assert limits.take_from(kept, cost=5.0) == 2  # capped at the burst
    now[0] = 2.0
    assert limits.take("alice/1") == 0


def test_trying_to_admit_refuses_without_counting() -> None:
    """The edge tries first (direct_ws); the handler that answers a refused upgrade
    then asks ``admit_session``, so a refusal must count only once."""
    admission = Admission(
        sessions_per_s=1, logins_per_s=1, max_handshakes=1, clock=lambda: 0.0, jitter=lambda: 0.0
    )
    assert admission.try_admit_session()
    assert admission.handshakes == 1
    assert not admission.try_admit_session()  # one handshake in flight at most
    assert admission.refused == 0
    assert admission.admit_session() >= 1
    assert admission.refused == 1
    admission.handshake_done()
    assert not admission.try_admit_session()  # the bucket (1/s, burst 1) is empty
    assert admission.refused == 1
