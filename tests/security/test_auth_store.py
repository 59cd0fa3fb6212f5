"""The store's part of two-step verification and password change, against every store
(the contract suite's fixtures)."""

from __future__ import annotations

from taube.store.base import Store, UserRecord
from tests.integration.test_store_contract import factory, store  # noqa: F401 (fixtures)


async def test_totp_secret_lifecycle(store: Store) -> None:  # noqa: F811
    await store.create_user(UserRecord("alice", "hash", 1))
    assert await store.get_totp("alice") is None
    assert await store.put_totp("alice", "SECRETONE", 5)
    assert await store.put_totp("alice", "SECRETTWO", 6)  # inactive: replaced
    record = await store.get_totp("alice")
    assert record is not None
    assert (record.secret, record.active) == ("SECRETTWO", False)
    assert not await store.use_totp_step("alice", 10)  # not active: no login step
    assert await store.use_totp_step("alice", 10, activate=True)
    record = await store.get_totp("alice")
    assert record is not None
    assert record.active
    assert record.last_step == 10
    assert not await store.put_totp("alice", "SECRETTHREE", 7)  # active: kept
    assert not await store.use_totp_step("alice", 10)  # a step is used once
    assert not await store.use_totp_step("alice", 9)  # and never an older one
    assert await store.use_totp_step("alice", 11)
    await store.delete_totp("alice")
    assert await store.get_totp("alice") is None
    assert not await store.use_totp_step("nobody", 1, activate=True)


async def test_set_password_hash(store: Store) -> None:  # noqa: F811
    await store.create_user(UserRecord("alice", "old", 1))
    await store.set_password_hash("alice", "new")
    user = await store.get_user("alice")
    assert user is not None
    assert user.password_hash == "new"


async def test_legacy_secrets_are_listed_and_replaced_only_if_unchanged(
    store: Store,  # noqa: F811
) -> None:
    for handle in ("alice", "bob", "carol", "dave"):
        await store.create_user(UserRecord(handle, "hash", 1))
    assert await store.legacy_totp_secrets("", 10) == []
    assert await store.put_totp("alice", "PLAINALICE", 1)
    assert await store.put_totp("bob", "v1:c2VhbGVk", 1)  # sealed: not listed
    assert await store.put_totp("carol", "PLAINCAROL", 1)
    assert await store.put_totp("dave", "PLAINDAVE", 1)
    assert await store.legacy_totp_secrets("", 10) == [
        ("alice", "PLAINALICE"),
        ("carol", "PLAINCAROL"),
        ("dave", "PLAINDAVE"),
    ]
    assert await store.legacy_totp_secrets("alice", 1) == [("carol", "PLAINCAROL")]
    changed = await store.replace_totp_secrets(
        [
            ("alice", "PLAINALICE", "v1:YWxpY2U="),
            ("carol", "SOMETHINGELSE", "v1:Y2Fyb2w="),  # changed meanwhile: left alone
            ("nobody", "X", "v1:eA=="),
        ]
    )
    assert changed == 1
    alice = await store.get_totp("alice")
    carol = await store.get_totp("carol")
    assert alice is not None
    assert alice.secret == "v1:YWxpY2U="
    assert carol is not None
    assert carol.secret == "PLAINCAROL"
    assert await store.legacy_totp_secrets("", 10) == [
        ("carol", "PLAINCAROL"),
        ("dave", "PLAINDAVE"),
    ]
    assert await store.replace_totp_secrets([]) == 0
