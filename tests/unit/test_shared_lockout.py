"""The shared lockout's wiring (core/shared_lockout.py) on one in-process bus standing
for two nodes: what one node counts reaches the other's guard, a node ignores its own
outcomes (the bus hands them back to it), a malformed message is dropped with a
warning, and after ``stop`` nothing more is told or heard."""

from __future__ import annotations

import logging

import pytest

from taube.bus.local import LocalBus
from taube.core.auth_guard import LockoutPolicy, LoginGuard
from taube.core.shared_lockout import LOCKOUT_SUBJECT, SharedLockout

POLICY = LockoutPolicy(free_failures=1, free_failures_ip=10, base_s=30.0)


def fail(guard: LoginGuard, account: str) -> None:
    with guard.attempt(account, "192.0.2.1") as attempt:
        attempt.fail()


async def test_two_nodes_share_their_counts_and_ignore_their_own_echo(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = LocalBus()
    g1, g2 = LoginGuard(POLICY), LoginGuard(POLICY)
    n1, n2 = SharedLockout(bus, g1, "n1"), SharedLockout(bus, g2, "n2")
    await n1.start()
    await n2.start()

    fail(g1, "alice")
    # One failure is this policy's allowance: locked on both, and counted once on n1
    # (had n1 applied its own echo, the lock would have doubled to 60 s).
    assert 29.0 < g1.locked_for("user:alice") <= 30.0
    assert 29.0 < g2.locked_for("user:alice") <= 30.0

    with caplog.at_level(logging.WARNING, logger="taube.auth"):
        bus.publish_nowait(LOCKOUT_SUBJECT, b'{"not": "an outcome"}')
    assert "malformed login outcome" in caplog.text

    await n2.stop()
    fail(g1, "bob")
    fail(g2, "carol")
    assert g2.locked_for("user:bob") == 0.0  # n2 no longer hears
    assert g1.locked_for("user:carol") == 0.0  # nor tells
    await n1.stop()
