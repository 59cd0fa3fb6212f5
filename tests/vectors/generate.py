"""Regenerate the known-answer vectors of docs/e2ee.md (and the signed service notices
of docs/status.md) from fixed seeds.

Run ``python -m tests.vectors.generate`` from the repository root. The output is
deterministic: ``tests/crypto/test_vectors.py`` regenerates every file and asserts
it equals the committed one, and separately replays each file against
``taube.crypto`` without importing this module.

Randomness is a *tape*: ``Tape(label)`` hands out SHA-256(label || u32 counter)
blocks and records every request, and each vector lists the tape it consumed, in
order. Another implementation reproduces a vector by feeding the recorded values to
its own injectable random source; it never needs to re-implement the tape.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from taube.crypto import kdf
from taube.crypto.attachments import CHUNK_SIZE, encrypt_attachment
from taube.crypto.keys import (
    IdentityKeyPair,
    KeyPair,
    OneTimePreKey,
    SignedPreKey,
    ed25519_public_to_x25519,
    ed25519_seed_to_x25519_private,
)
from taube.crypto.primitives import ed25519_sign
from taube.crypto.ratchet import Session
from taube.crypto.safety import SafetyNumber, account_key, fingerprint_half, safety_number
from taube.crypto.sender_keys import SenderKeyReceiver, SenderKeySender
from taube.crypto.x3dh import PreKeyBundle, x3dh_initiate, x3dh_respond
from taube.status.signing import Signer, canonical_bytes, notice_fields

HERE = Path(__file__).resolve().parent

Json = dict[str, Any]


class Tape:
    """A deterministic random source that records what it handed out."""

    def __init__(self, label: str) -> None:
        self._label = label.encode()
        self._counter = 0
        self.used: list[str] = []

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(self._label + self._counter.to_bytes(4, "big")).digest()
            self._counter += 1
        self.used.append(out[:n].hex())
        return out[:n]


def pattern(length: int) -> bytes:
    """Plaintext too large to store in JSON: byte i is i mod 251."""
    return bytes(i % 251 for i in range(length))


def h(b: bytes) -> str:
    return b.hex()


# -- keys and KDFs ---------------------------------------------------------------


def keys_vectors() -> Json:
    cases = []
    for i in range(4):
        seed = hashlib.sha256(b"taube keys " + bytes([i])).digest()
        identity = IdentityKeyPair.from_seed(seed)
        cases.append(
            {
                "ed25519_seed": h(seed),
                "ed25519_public": h(identity.public),
                "x25519_private": h(ed25519_seed_to_x25519_private(seed)),
                "x25519_public": h(identity.dh_public),
                "x25519_public_from_map": h(ed25519_public_to_x25519(identity.public)),
                "identity_key_pair_bytes": h(identity.to_bytes()),
            }
        )
    return {
        "description": "Ed25519 identity keys and their X25519 form (private: SHA-512(seed)"
        "[:32], clamped by X25519; public: u = (1+y)/(1-y) mod 2^255-19).",
        "cases": cases,
    }


def kdf_vectors() -> Json:
    root = hashlib.sha256(b"taube kdf root").digest()
    dh_out = hashlib.sha256(b"taube kdf dh").digest()
    new_root, chain = kdf.kdf_rk(root, dh_out)
    steps = []
    ck = chain
    for i in range(3):
        seed, next_ck = kdf.kdf_ck(ck)
        mk = kdf.message_keys(seed)
        sk_key, sk_iv = kdf.sender_message_keys(seed)
        steps.append(
            {
                "index": i,
                "chain_key": h(ck),
                "message_key_seed": h(seed),
                "cipher_key": h(mk.cipher_key),
                "mac_key": h(mk.mac_key),
                "iv": h(mk.iv),
                "sender_cipher_key": h(sk_key),
                "sender_iv": h(sk_iv),
                "next_chain_key": h(next_ck),
            }
        )
        ck = next_ck
    return {
        "description": "KDF_RK (HKDF salt=rk, info 'WhisperRatchet', 64 bytes), KDF_CK "
        "(HMAC 0x01 / 0x02), message keys (HKDF zero salt, info 'WhisperMessageKeys', "
        "80 bytes) and sender-key message keys (info 'Taube SenderKey v1', 48 bytes).",
        "kdf_rk": {
            "root_key": h(root),
            "dh_out": h(dh_out),
            "new_root_key": h(new_root),
            "chain_key": h(chain),
        },
        "chain": steps,
    }


# -- X3DH ------------------------------------------------------------------------


def x3dh_case(name: str, with_opk: bool) -> Json:
    tape = Tape(f"taube x3dh {name}")
    alice = IdentityKeyPair.generate(tape)
    bob = IdentityKeyPair.generate(tape)
    spk = SignedPreKey.generate(bob, 7, created_ms=1_700_000_000_000, random=tape)
    opk = OneTimePreKey.generate(42, random=tape) if with_opk else None
    bundle = PreKeyBundle.create(bob, spk, opk)
    ephemeral = KeyPair.generate(tape)
    result = x3dh_initiate(alice, bundle, ephemeral)
    secret, ad = x3dh_respond(bob, spk, opk, alice.public, ephemeral.public)
    assert (secret, ad) == (result.shared_secret, result.associated_data)
    bob_dh = ed25519_public_to_x25519(bob.public)
    dhs = {
        "dh1": h(alice.dh(spk.public)),
        "dh2": h(ephemeral.dh(bob_dh)),
        "dh3": h(ephemeral.dh(spk.public)),
    }
    if opk is not None:
        dhs["dh4"] = h(ephemeral.dh(opk.public))
    return {
        "name": name,
        "random_tape": tape.used,
        "alice_identity_seed": h(alice.seed),
        "alice_identity_public": h(alice.public),
        "bob_identity_seed": h(bob.seed),
        "bob_identity_public": h(bob.public),
        "signed_prekey_id": spk.key_id,
        "signed_prekey_private": h(spk.key_pair.private),
        "signed_prekey_public": h(spk.public),
        "signed_prekey_signature": h(spk.signature),
        "signed_prekey_bytes": h(spk.to_bytes()),
        "one_time_prekey_id": None if opk is None else opk.key_id,
        "one_time_prekey_private": None if opk is None else h(opk.key_pair.private),
        "one_time_prekey_public": None if opk is None else h(opk.public),
        "one_time_prekey_bytes": None if opk is None else h(opk.to_bytes()),
        "bundle": h(bundle.to_bytes()),
        "ephemeral_private": h(ephemeral.private),
        "ephemeral_public": h(ephemeral.public),
        **dhs,
        "shared_secret": h(secret),
        "associated_data": h(ad),
    }


def x3dh_vectors() -> Json:
    return {
        "description": "X3DH: SK = HKDF(0xFF*32 || DH1..DH4, salt 0x00*32, info 'Taube X3DH v1'"
        ", 32); AD = IK_A || IK_B. random_tape lists the random values in the order "
        "consumed: alice seed, bob seed, SPK private, [OPK private], ephemeral private.",
        "cases": [x3dh_case("with one-time prekey", True), x3dh_case("without", False)],
    }


# -- Double Ratchet --------------------------------------------------------------

# (actor, action, argument): "send" encrypts a new message with the given plaintext;
# "recv" decrypts the message with the given index (in send order).
CONVERSATION: list[tuple[str, str, Any]] = [
    ("alice", "send", "a0: hello Bob"),  # 0
    ("alice", "send", "a1: are you there?"),  # 1
    ("alice", "send", "a2: (sent before any reply)"),  # 2
    ("bob", "recv", 0),
    ("bob", "recv", 2),
    ("bob", "send", "b0: hi Alice"),  # 3
    ("bob", "send", "b1: yes"),  # 4
    ("alice", "recv", 4),
    ("alice", "send", "a3: now a ratchet message"),  # 5
    ("alice", "send", "a4: " + "x" * 40),  # 6
    ("bob", "recv", 1),
    ("bob", "recv", 6),
    ("bob", "recv", 5),
    ("alice", "recv", 3),
    ("bob", "send", "b2: new chain"),  # 7
    ("alice", "recv", 7),
    ("alice", "send", "a5: this one is lost"),  # 8
    ("alice", "send", "a6: after a loss"),  # 9
    ("bob", "recv", 9),
    ("bob", "send", ""),  # 10
    ("alice", "recv", 10),
]


def ratchet_vectors() -> Json:
    alice_tape, bob_tape, setup_tape = (
        Tape("taube ratchet alice"),
        Tape("taube ratchet bob"),
        Tape("taube ratchet setup"),
    )
    alice_id = IdentityKeyPair.generate(setup_tape)
    bob_id = IdentityKeyPair.generate(setup_tape)
    spk = SignedPreKey.generate(bob_id, 1, random=setup_tape)
    opk = OneTimePreKey.generate(100, random=setup_tape)
    bundle = PreKeyBundle.create(bob_id, spk, opk)
    alice = Session.initiate(alice_id, bundle, random=alice_tape)
    bob: Session | None = None
    sent: list[bytes] = []
    steps = []
    for actor, action, arg in CONVERSATION:
        if action == "send":
            session = alice if actor == "alice" else bob
            assert session is not None
            wire = session.encrypt(arg.encode())
            sent.append(wire)
            kind = "prekey" if wire[1] == 0x02 else "ratchet"
            steps.append(
                {"actor": actor, "action": "send", "plaintext": arg, "kind": kind, "wire": h(wire)}
            )
        else:
            wire = sent[arg]
            if actor == "bob" and bob is None:
                bob, plaintext = Session.respond(bob_id, wire, spk, opk, random=bob_tape)
            else:
                session = alice if actor == "alice" else bob
                assert session is not None
                plaintext = session.decrypt(wire)
            steps.append(
                {"actor": actor, "action": "recv", "index": arg, "plaintext": plaintext.decode()}
            )
    return {
        "description": "A conversation through X3DH and the Double Ratchet: out-of-order, "
        "skipped and lost messages in both directions. Replay the steps in order; 'send' "
        "must produce 'wire' exactly, 'recv' decrypts the index-th sent message. Each "
        "party's random source returns its tape in order (one X25519 private key per "
        "request: alice's base key, then a ratchet key per DH ratchet step).",
        "alice_identity_seed": h(alice_id.seed),
        "bob_identity_seed": h(bob_id.seed),
        "signed_prekey_bytes": h(spk.to_bytes()),
        "one_time_prekey_bytes": h(opk.to_bytes()),
        "bundle": h(bundle.to_bytes()),
        "alice_random_tape": alice_tape.used,
        "bob_random_tape": bob_tape.used,
        "steps": steps,
    }


# -- Sender Keys -----------------------------------------------------------------


def sender_key_vectors() -> Json:
    tape = Tape("taube sender keys")
    sender = SenderKeySender.generate(random=tape)
    first = sender.distribution()
    messages: list[dict[str, Any]] = []
    for i in range(4):
        text = f"group message {i}"
        messages.append(
            {"iteration": i, "plaintext": text, "wire": h(sender.encrypt(text.encode()))}
        )
    late = sender.distribution()  # a member who joins now cannot read iterations 0..3
    messages.append(
        {"iteration": 4, "plaintext": "after join", "wire": h(sender.encrypt(b"after join"))}
    )
    receiver = SenderKeyReceiver.from_distribution(first)
    order = [0, 2, 1, 4, 3]
    for i in order:
        assert (
            receiver.decrypt(bytes.fromhex(messages[i]["wire"])).decode()
            == messages[i]["plaintext"]
        )
    rotated = SenderKeySender.generate(random=tape)
    rotated_distribution = rotated.distribution()
    rotated_message = rotated.encrypt(b"after rotation")
    return {
        "description": "Sender Keys: distribution messages and signed group messages. "
        "random_tape: key id (4 bytes), chain key, signing seed; then the same for the "
        "rotated state.",
        "random_tape": tape.used,
        "distribution": h(first.to_bytes()),
        "distribution_after_4": h(late.to_bytes()),
        "messages": messages,
        "receive_order": order,
        "rotated_distribution": h(rotated_distribution.to_bytes()),
        "rotated_message": {"plaintext": "after rotation", "wire": h(rotated_message)},
    }


# -- safety numbers, attachments ---------------------------------------------------


SIGNAL_DIGITS = "300354477692869396892869876765458257569162576843440918079131"


def safety_vectors() -> Json:
    # libsignal's fingerprint_test_v1 known answer, through the same iterated hash.
    signal_alice = bytes.fromhex(
        "0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868"
    )
    signal_bob = bytes.fromhex("05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b")
    a = fingerprint_half(signal_alice, b"+14152222222")
    b = fingerprint_half(signal_bob, b"+14153333333")
    assert SafetyNumber(a, b).digits == SIGNAL_DIGITS
    alice_devices = [
        IdentityKeyPair.from_seed(hashlib.sha256(b"alice device %d" % i).digest()).public
        for i in range(2)
    ]
    bob_devices = [IdentityKeyPair.from_seed(hashlib.sha256(b"bob device 0").digest()).public]
    mine = safety_number(b"alice", alice_devices, b"bob", bob_devices)
    theirs = safety_number(b"bob", bob_devices, b"alice", alice_devices)
    assert mine.digits == theirs.digits
    return {
        "description": "Numeric fingerprints: 5200 iterations of SHA-512; an account's key "
        "is its devices' Ed25519 identity keys sorted bytewise and concatenated.",
        "signal_known_answer": {
            "alice_key": h(signal_alice),
            "alice_id": "+14152222222",
            "bob_key": h(signal_bob),
            "bob_id": "+14153333333",
            "alice_fingerprint": h(a),
            "bob_fingerprint": h(b),
            "digits": SafetyNumber(a, b).digits,
        },
        "multi_device": {
            "alice_id": "alice",
            "alice_device_keys": [h(k) for k in alice_devices],
            "alice_account_key": h(account_key(alice_devices)),
            "bob_id": "bob",
            "bob_device_keys": [h(k) for k in bob_devices],
            "digits": mine.digits,
            "formatted": mine.formatted(),
            "alice_scannable": h(mine.scannable),
            "bob_scannable": h(theirs.scannable),
        },
    }


def attachment_vectors() -> Json:
    cases = []
    for length in (0, 5, CHUNK_SIZE, CHUNK_SIZE + 100):
        key = hashlib.sha256(b"taube attachment %d" % length).digest()
        enc = encrypt_attachment(pattern(length), key=key)
        cases.append(
            {
                "plaintext_length": length,
                "key": h(key),
                "ciphertext_length": len(enc.ciphertext),
                "digest": h(enc.digest),
                "ciphertext": h(enc.ciphertext) if length <= 64 else None,
            }
        )
    return {
        "description": "Chunked AES-256-GCM attachments. Plaintext byte i is i mod 251; "
        "digest is SHA-256 of the whole ciphertext (given in full for small cases).",
        "cases": cases,
    }


# -- signed service notices (docs/status.md) -----------------------------------------

NOTICE_TEXTS: list[tuple[str, str, str, str, int]] = [
    ("ascii", "n-ascii", "Maintenance tonight at 22:00 UTC", "info", 1767225600000),
    (
        "non-ASCII and escapes",
        "n-utf8",
        'Wartung: Größe „ok“ — 日本語 🕊️ "quoted" back\\slash\nline\ttab \x01 \x7f \u2028 end',
        "warning",
        1767225600001,
    ),
    (
        "unknown level, signed as given",
        "n-level",
        "Résolu : tout va bien",
        "maintenance",
        4102444800000,
    ),
    (
        "outage",
        "0193a5c2-7d1e-7000-8000-000000000000",
        "Incident #7: messages are delayed",
        "outage",
        1,
    ),
]


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def status_notice_vectors() -> Json:
    """What a client (the Python SDK, the web SDK) must accept and refuse as a notice."""
    seed = hashlib.sha256(b"taube status signing key").digest()
    signer = Signer(seed)
    other = Signer(hashlib.sha256(b"taube another signing key").digest())
    cases: list[Json] = []
    for name, notice_id, text, level, at_ms in NOTICE_TEXTS:
        fields = notice_fields(notice_id, text, level, at_ms)
        canonical = canonical_bytes(fields)
        cases.append(
            {
                "name": f"signed: {name}",
                "notice": {**fields, "signature": signer.sign(fields)},
                "canonical": canonical.decode("utf-8"),
                "canonical_hex": h(canonical),
                "expect": "signed",
            }
        )
    fields = notice_fields(*NOTICE_TEXTS[1][1:])
    signature = signer.sign(fields)

    def forged(name: str, notice: Json) -> None:
        cases.append({"name": f"forged: {name}", "notice": notice, "expect": "forged"})

    forged("text changed", {**fields, "text": "Log in at evil.example", "signature": signature})
    forged("id changed", {**fields, "id": "n-other", "signature": signature})
    forged("level changed", {**fields, "level": "outage", "signature": signature})
    forged("at_ms changed", {**fields, "at_ms": fields["at_ms"] + 1, "signature": signature})
    forged("signed by another key", {**fields, "signature": other.sign(fields)})
    ascii_escaped = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("ascii")
    forged(
        "signed over \\u-escaped JSON (not the canonical form)",
        {**fields, "signature": _b64(ed25519_sign(seed, ascii_escaped))},
    )
    spaced = json.dumps(fields, sort_keys=True, ensure_ascii=False).encode("utf-8")
    forged(
        "signed over JSON with spaces (not the canonical form)",
        {**fields, "signature": _b64(ed25519_sign(seed, spaced))},
    )
    unsorted = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    forged(
        "signed over JSON with keys unsorted (not the canonical form)",
        {**fields, "signature": _b64(ed25519_sign(seed, unsorted))},
    )
    forged("signature truncated", {**fields, "signature": _b64(base64.b64decode(signature)[:63])})
    forged("signature not base64", {**fields, "signature": "not base64!"})
    for name, value in (("absent", None), ("empty", "")):
        cases.append(
            {
                "name": f"unsigned: signature {name}",
                "notice": {**fields, "signature": value},
                "expect": "unsigned",
            }
        )
    return {
        "description": "Service notices signed by the status key: Ed25519 (base64) over the "
        "canonical JSON of {id, text, level, at_ms} (keys sorted, separators ',' and ':', "
        "non-ASCII as UTF-8, not escaped), as taube.status.signing makes them. expect: "
        "'signed' (verifies under public_key: show as signed), 'forged' (a signature that "
        "does not verify: drop, never show), 'unsigned' (no signature: show as unsigned).",
        "seed": h(seed),
        "public_key": signer.public_key_b64,
        "cases": cases,
    }


GENERATORS: dict[str, Callable[[], Json]] = {
    "keys.json": keys_vectors,
    "kdf.json": kdf_vectors,
    "x3dh.json": x3dh_vectors,
    "ratchet.json": ratchet_vectors,
    "sender_keys.json": sender_key_vectors,
    "safety_numbers.json": safety_vectors,
    "attachments.json": attachment_vectors,
    "status_notices.json": status_notice_vectors,
}


def render(data: Json) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def build_all() -> dict[str, str]:
    return {name: render(make()) for name, make in GENERATORS.items()}


def main() -> int:
    for name, text in build_all().items():
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
