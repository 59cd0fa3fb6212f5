"""The store's part of abuse reports and suspensions, against every store (the
contract suite's fixtures: SQLite always, PostgreSQL where it is reachable)."""

from __future__ import annotations

from taube.store.base import AbuseReportRecord, Store, SuspensionRecord, UserRecord
from tests.integration.test_store_contract import factory, store  # noqa: F401 (fixtures)


async def test_reports_queue_in_order_and_keep_what_was_sent(store: Store) -> None:  # noqa: F811
    for i in range(3):
        record = AbuseReportRecord(0, "alice", 2, "mallory", f"r{i}", f'[{{"n":{i}}}]', 10 + i)
        assert await store.add_abuse_report(record) == i + 1
    listed = await store.abuse_reports(2)
    assert [(r.id, r.reason, r.messages) for r in listed] == [
        (2, "r1", '[{"n":1}]'),
        (3, "r2", '[{"n":2}]'),
    ]
    assert listed[0] == AbuseReportRecord(2, "alice", 2, "mallory", "r1", '[{"n":1}]', 11)


async def test_suspensions_need_an_account_and_can_be_lifted(store: Store) -> None:  # noqa: F811
    assert not await store.suspend_user("ghost", "x", 1)
    await store.create_user(UserRecord("mallory", "hash", 1))
    assert await store.suspend_user("mallory", "spam", 5)
    assert await store.suspend_user("mallory", "spam again", 6)  # the new reason counts
    assert await store.suspensions() == [SuspensionRecord("mallory", "spam again", 6)]
    assert await store.unsuspend_user("mallory")
    assert not await store.unsuspend_user("mallory")
    assert await store.suspensions() == []
