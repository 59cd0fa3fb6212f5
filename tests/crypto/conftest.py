"""Fixtures for the cryptography core: identities, bundles and fresh session pairs."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from taube.crypto import IdentityKeyPair, OneTimePreKey, PreKeyBundle, Session, SignedPreKey


@dataclass
class Pair:
    alice: Session
    bob: Session


def make_pair(*, with_opk: bool = True) -> Pair:
    """Alice initiates, Bob responds to her first message, Bob replies once."""
    alice_id, bob_id = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    spk = SignedPreKey.generate(bob_id, 1)
    opk = OneTimePreKey.generate(9) if with_opk else None
    alice = Session.initiate(alice_id, PreKeyBundle.create(bob_id, spk, opk))
    bob, first = Session.respond(bob_id, alice.encrypt(b"first"), spk, opk)
    assert first == b"first"
    assert alice.decrypt(bob.encrypt(b"ack")) == b"ack"
    return Pair(alice, bob)


@pytest.fixture
def pair() -> Pair:
    return make_pair()
