"""A connection that ends while the store is unreachable ends cleanly: going offline
must not raise (it used to end each connection's task with a traceback during a
database outage, and the offline notice could not be checked against the user's
"hide presence" setting anyway)."""

from __future__ import annotations

from taube.bus.base import presence_subject
from taube.bus.local import LocalBus
from taube.core.presence import PresenceService
from taube.store.base import UserRecord
from taube.store.postgres import PostgresStore
from tests.conftest import postgres_dsn


async def test_going_offline_while_the_store_is_away_does_not_raise(pg_schema: str) -> None:
    store = PostgresStore(postgres_dsn(), schema=pg_schema)
    await store.open()
    bus = LocalBus()
    heard: list[bytes] = []
    await bus.subscribe(presence_subject("ann"), lambda _subject, data: heard.append(data))
    presence = PresenceService(store, bus, clock=lambda: 1_000)
    try:
        await store.create_user(UserRecord("ann", "hash", 1))
        await presence.connected("ann")
        assert len(heard) == 1  # online
    finally:
        await store.close()  # from here on every call is StoreUnavailable
    await presence.disconnected("ann")
    assert not presence.is_online("ann")
    assert len(heard) == 1  # nothing said without knowing whether ann hides presence
