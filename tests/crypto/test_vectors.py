"""The committed known-answer vectors (tests/vectors/*.json).

Two independent checks: regenerating the vectors yields exactly the committed
files (so code and vectors cannot drift apart), and each file replayed against
``taube.crypto`` without the generator reproduces every derived value and
decrypts every ciphertext (what a second implementation has to do).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from taube.crypto import (
    IdentityKeyPair,
    OneTimePreKey,
    PreKeyBundle,
    SenderKeyDistribution,
    SenderKeyReceiver,
    SenderKeySender,
    Session,
    SignedPreKey,
    decrypt_attachment,
    encrypt_attachment,
    kdf,
)
from taube.crypto.keys import KeyPair, ed25519_public_to_x25519, ed25519_seed_to_x25519_private
from taube.crypto.safety import SafetyNumber, account_key, fingerprint_half, safety_number
from taube.crypto.x3dh import x3dh_initiate, x3dh_respond

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
NAMES = [
    "keys.json",
    "kdf.json",
    "x3dh.json",
    "ratchet.json",
    "sender_keys.json",
    "safety_numbers.json",
    "attachments.json",
    "status_notices.json",  # replayed in tests/unit/test_status_signing.py
]


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def x(s: str) -> bytes:
    return bytes.fromhex(s)


class Replay:
    """A random source that returns recorded values in order."""

    def __init__(self, values: list[str]) -> None:
        self.values = [x(v) for v in values]

    def __call__(self, n: int) -> bytes:
        value = self.values.pop(0)
        assert len(value) == n
        return value


def test_regenerating_yields_the_committed_files() -> None:
    from tests.vectors.generate import build_all

    built = build_all()
    assert sorted(built) == sorted(NAMES)
    for name, text in built.items():
        assert (VECTORS / name).read_text(encoding="utf-8") == text, f"{name} drifted"


def test_keys() -> None:
    for case in load("keys.json")["cases"]:
        identity = IdentityKeyPair.from_seed(x(case["ed25519_seed"]))
        assert identity.public == x(case["ed25519_public"])
        assert ed25519_seed_to_x25519_private(identity.seed) == x(case["x25519_private"])
        assert identity.dh_public == x(case["x25519_public"])
        assert ed25519_public_to_x25519(identity.public) == x(case["x25519_public_from_map"])
        assert identity.to_bytes() == x(case["identity_key_pair_bytes"])


def test_kdf() -> None:
    v = load("kdf.json")
    rk = v["kdf_rk"]
    assert kdf.kdf_rk(x(rk["root_key"]), x(rk["dh_out"])) == (
        x(rk["new_root_key"]),
        x(rk["chain_key"]),
    )
    assert v["chain"][0]["chain_key"] == rk["chain_key"]
    for step in v["chain"]:
        seed, next_ck = kdf.kdf_ck(x(step["chain_key"]))
        assert (seed, next_ck) == (x(step["message_key_seed"]), x(step["next_chain_key"]))
        keys = kdf.message_keys(seed)
        assert keys == (x(step["cipher_key"]), x(step["mac_key"]), x(step["iv"]))
        assert kdf.sender_message_keys(seed) == (x(step["sender_cipher_key"]), x(step["sender_iv"]))


def test_libsignal_chain_key_known_answer() -> None:
    # libsignal rust/protocol/src/ratchet/keys.rs, test_chain_key_derivation: our
    # labels and chain steps are libsignal's, so its answers must come out.
    seed = x("8ab72d6f4cc5ac0d387eaf463378ddb28edd07385b1cb01250c715982e7ad48f")
    message_key_seed, next_chain_key = kdf.kdf_ck(seed)
    keys = kdf.message_keys(message_key_seed)
    assert keys.cipher_key == x("bf51e9d75e0e31031051f82a2491ffc084fa298b7793bd9db620056febf45217")
    assert keys.mac_key == x("c6c77d6a73a354337a56435e34607dfe48e3ace14e77314dc6abc172e7a7030b")
    assert next_chain_key == x("28e8f8fee54b801eef7c5cfb2f17f32c7b334485bbb70fac6ec10342a246d15d")


@pytest.mark.parametrize("index", [0, 1])
def test_x3dh(index: int) -> None:
    case = load("x3dh.json")["cases"][index]
    alice = IdentityKeyPair.from_seed(x(case["alice_identity_seed"]))
    bob = IdentityKeyPair.from_seed(x(case["bob_identity_seed"]))
    assert alice.public == x(case["alice_identity_public"])
    spk = SignedPreKey.from_bytes(x(case["signed_prekey_bytes"]))
    assert spk.public == x(case["signed_prekey_public"])
    assert spk.signature == x(case["signed_prekey_signature"])
    rebuilt = SignedPreKey.create(bob, spk.key_id, spk.key_pair, created_ms=spk.created_ms)
    assert rebuilt.signature == spk.signature  # Ed25519 is deterministic
    opk = None
    if case["one_time_prekey_bytes"] is not None:
        opk = OneTimePreKey.from_bytes(x(case["one_time_prekey_bytes"]))
        assert opk.public == x(case["one_time_prekey_public"])
    bundle = PreKeyBundle.from_bytes(x(case["bundle"]))
    assert bundle == PreKeyBundle.create(bob, spk, opk)
    ephemeral = KeyPair.from_private_bytes(x(case["ephemeral_private"]))
    result = x3dh_initiate(alice, bundle, ephemeral)
    assert result.shared_secret == x(case["shared_secret"])
    assert result.associated_data == x(case["associated_data"])
    assert x3dh_respond(bob, spk, opk, alice.public, ephemeral.public) == (
        x(case["shared_secret"]),
        x(case["associated_data"]),
    )
    assert alice.dh(spk.public).hex() == case["dh1"]
    if opk is not None:
        assert ephemeral.dh(opk.public).hex() == case["dh4"]
    else:
        assert "dh4" not in case


def test_ratchet_conversation() -> None:
    v = load("ratchet.json")
    alice_id = IdentityKeyPair.from_seed(x(v["alice_identity_seed"]))
    bob_id = IdentityKeyPair.from_seed(x(v["bob_identity_seed"]))
    spk = SignedPreKey.from_bytes(x(v["signed_prekey_bytes"]))
    opk = OneTimePreKey.from_bytes(x(v["one_time_prekey_bytes"]))
    bundle = PreKeyBundle.from_bytes(x(v["bundle"]))
    alice_random, bob_random = Replay(v["alice_random_tape"]), Replay(v["bob_random_tape"])
    alice = Session.initiate(alice_id, bundle, random=alice_random)
    bob: Session | None = None
    sent: list[bytes] = []
    for step in v["steps"]:
        if step["action"] == "send":
            session = alice if step["actor"] == "alice" else bob
            assert session is not None
            wire = session.encrypt(step["plaintext"].encode())
            assert wire.hex() == step["wire"]
            sent.append(wire)
            continue
        wire = sent[step["index"]]
        if step["actor"] == "bob" and bob is None:
            bob, plaintext = Session.respond(bob_id, wire, spk, opk, random=bob_random)
        else:
            session = alice if step["actor"] == "alice" else bob
            assert session is not None
            # Round-trip the state through its encoding before every decrypt, as the SDK does.
            session = Session.from_bytes(session.to_bytes(), random=session._random)
            if step["actor"] == "alice":
                alice = session
            else:
                bob = session
            plaintext = session.decrypt(wire)
        assert plaintext.decode() == step["plaintext"]
    assert not alice_random.values
    assert not bob_random.values


def test_sender_keys() -> None:
    v = load("sender_keys.json")
    tape = Replay(v["random_tape"])
    sender = SenderKeySender.generate(random=tape)
    assert sender.distribution().to_bytes().hex() == v["distribution"]
    for m in v["messages"][:4]:
        assert sender.encrypt(m["plaintext"].encode()).hex() == m["wire"]
    assert sender.distribution().to_bytes().hex() == v["distribution_after_4"]
    receiver = SenderKeyReceiver.from_distribution(x(v["distribution"]))
    for i in v["receive_order"]:
        m = v["messages"][i]
        assert receiver.decrypt(x(m["wire"])).decode() == m["plaintext"]
    late = SenderKeyReceiver.from_distribution(
        SenderKeyDistribution.from_bytes(x(v["distribution_after_4"]))
    )
    assert late.decrypt(x(v["messages"][4]["wire"])) == b"after join"
    rotated = SenderKeyReceiver.from_distribution(x(v["rotated_distribution"]))
    assert rotated.decrypt(x(v["rotated_message"]["wire"])).decode() == "after rotation"


def test_safety_numbers() -> None:
    v = load("safety_numbers.json")
    s = v["signal_known_answer"]
    a = fingerprint_half(x(s["alice_key"]), s["alice_id"].encode())
    b = fingerprint_half(x(s["bob_key"]), s["bob_id"].encode())
    assert (a.hex(), b.hex()) == (s["alice_fingerprint"], s["bob_fingerprint"])
    # libsignal fingerprint_test_v1's displayable fingerprint.
    assert (
        SafetyNumber(a, b).digits == "300354477692869396892869876765458257569162576843440918079131"
    )
    assert s["digits"] == SafetyNumber(b, a).digits
    m = v["multi_device"]
    alice_keys = [x(k) for k in m["alice_device_keys"]]
    bob_keys = [x(k) for k in m["bob_device_keys"]]
    assert account_key(alice_keys) == x(m["alice_account_key"])
    mine = safety_number(m["alice_id"].encode(), alice_keys, m["bob_id"].encode(), bob_keys)
    theirs = safety_number(m["bob_id"].encode(), bob_keys, m["alice_id"].encode(), alice_keys)
    assert mine.digits == theirs.digits == m["digits"]
    assert mine.formatted() == m["formatted"]
    assert (mine.scannable.hex(), theirs.scannable.hex()) == (
        m["alice_scannable"],
        m["bob_scannable"],
    )
    assert mine.matches_scanned(theirs.scannable)
    assert theirs.matches_scanned(mine.scannable)


def test_attachments() -> None:
    for case in load("attachments.json")["cases"]:
        plaintext = bytes(i % 251 for i in range(case["plaintext_length"]))
        enc = encrypt_attachment(plaintext, key=x(case["key"]))
        assert enc.digest.hex() == case["digest"]
        assert len(enc.ciphertext) == case["ciphertext_length"]
        if case["ciphertext"] is not None:
            assert enc.ciphertext.hex() == case["ciphertext"]
        assert decrypt_attachment(enc.ciphertext, x(case["key"]), x(case["digest"])) == plaintext
