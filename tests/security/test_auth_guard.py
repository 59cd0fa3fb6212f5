"""The login lockout as a pure object: backoff doubles to a cap, success resets the
account, refused attempts never reach the body (where the argon2 hash would run)."""

from __future__ import annotations

import pytest

from taube.core.auth_guard import LockoutPolicy, LoginGuard
from taube.protocol.errors import TaubeError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(guard: LoginGuard, account: str = "alice", address: str = "192.0.2.1") -> None:
    with guard.attempt(account, address) as attempt:
        attempt.fail()


def locked_error(guard: LoginGuard, account: str = "alice", address: str = "192.0.2.1") -> int:
    ran = False
    with pytest.raises(TaubeError) as refused, guard.attempt(account, address):
        ran = True
    assert not ran
    assert refused.value.code == "auth.locked"
    wait: int = refused.value.details["retry_after_s"]
    return wait


def test_backoff_doubles_to_the_cap_and_success_resets() -> None:
    clock = FakeClock()
    guard = LoginGuard(LockoutPolicy(free_failures=3, base_s=1.0, max_s=8.0), clock=clock)
    for _ in range(3):
        fail(guard)
    waits = []
    for _ in range(6):
        waits.append(locked_error(guard))
        clock.now += guard.locked_for("user:alice")
        fail(guard)
    assert waits == [1, 2, 4, 8, 8, 8]
    clock.now += 8.0
    with guard.attempt("alice", "192.0.2.1") as attempt:
        attempt.succeed()
    fail(guard)  # a fresh allowance after a success
    assert guard.locked_for("user:alice") == 0.0


def test_other_accounts_and_the_owners_address_are_not_locked_by_one_account() -> None:
    clock = FakeClock()
    guard = LoginGuard(LockoutPolicy(free_failures=1, free_failures_ip=100), clock=clock)
    fail(guard, "alice", "198.51.100.9")
    locked_error(guard, "alice", "192.0.2.1")  # the account is locked from anywhere
    with guard.attempt("bob", "198.51.100.9") as attempt:  # another account is not
        attempt.succeed()


def test_an_address_guessing_many_accounts_backs_off() -> None:
    clock = FakeClock()
    guard = LoginGuard(LockoutPolicy(free_failures=100, free_failures_ip=5), clock=clock)
    for i in range(5):
        fail(guard, f"user{i}", "203.0.113.5")
    locked_error(guard, "someone-else", "203.0.113.5")
    with guard.attempt("someone-else", "192.0.2.1") as attempt:  # other addresses are fine
        attempt.succeed()


def test_one_check_per_account_at_a_time() -> None:
    guard = LoginGuard(clock=FakeClock())
    with guard.attempt("alice", "192.0.2.1"):
        assert locked_error(guard, "alice", "192.0.2.2") == 1
    with guard.attempt("alice", "192.0.2.2") as attempt:
        attempt.succeed()


def test_failures_are_forgotten_after_quiet_time() -> None:
    clock = FakeClock()
    guard = LoginGuard(LockoutPolicy(free_failures=1, forget_s=60.0), clock=clock)
    fail(guard)
    clock.now += 61.0
    fail(guard)  # counted as the first failure again: no lock yet beyond base
    assert guard.locked_for("user:alice") == 1.0


def test_outcomes_counted_here_are_told_and_those_from_elsewhere_are_applied() -> None:
    """The cluster's shared lockout (core/shared_lockout.py) as two guards wired by hand:
    each tells what it counted, the other applies it, and what is applied is not told
    again (no echo between nodes)."""
    policy = LockoutPolicy(free_failures=2, free_failures_ip=3, base_s=1.0)
    clock = FakeClock()
    here, there = LoginGuard(policy, clock=clock), LoginGuard(policy, clock=clock)
    told: list[tuple[str, bool]] = []
    echoed: list[tuple[str, bool]] = []
    here.on_outcome = lambda key, failed: told.append((key, failed))
    there.on_outcome = lambda key, failed: echoed.append((key, failed))

    fail(here)
    fail(here)
    assert told == [("user:alice", True), ("ip:192.0.2.1", True)] * 2
    for key, failed in told:
        there.apply(key, failed=failed)
    assert echoed == []
    # Two failures are this policy's allowance: the account is locked on the other node
    # too, and the address is one failure short of its own allowance (3).
    assert locked_error(there, "alice", "198.51.100.7") == 1
    assert there.locked_for("ip:192.0.2.1") == 0.0
    there.apply("ip:192.0.2.1", failed=True)
    assert locked_error(there, "bob", "192.0.2.1") == 1

    clock.now += 5.0
    told.clear()
    with here.attempt("alice", "192.0.2.9") as attempt:
        attempt.succeed()
    assert told == [("user:alice", False)]
    there.apply("user:alice", failed=False)
    with there.attempt("alice", "198.51.100.7") as attempt:  # the success cleared it there
        attempt.succeed()
