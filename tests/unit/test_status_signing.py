"""The signed status document, signed notices and webhook signatures."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from taube.status.signing import (
    Signer,
    canonical_bytes,
    load_or_create_seed,
    verify_document,
    verify_notice,
    verify_webhook,
    webhook_signature,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors"

SIGNER = Signer(bytes(range(32)))


def test_canonical_json_sorts_keys_drops_the_signature_and_keeps_unicode() -> None:
    doc = {"b": 1, "a": {"z": [1.5, None], "y": "Störung"}, "signature": "x"}
    assert canonical_bytes(doc) == '{"a":{"y":"Störung","z":[1.5,null]},"b":1}'.encode()


def test_a_signed_document_verifies_and_any_change_breaks_it() -> None:
    doc = SIGNER.signed({"version": 1, "verdict": "operational", "generated_ms": 5})
    assert verify_document(doc, SIGNER.public_key_b64)
    assert verify_document(json.loads(json.dumps(doc)), SIGNER.public_key)  # after transport
    assert not verify_document({**doc, "verdict": "major_outage"}, SIGNER.public_key_b64)
    assert not verify_document({**doc, "generated_ms": 6}, SIGNER.public_key_b64)
    other = Signer(os.urandom(32))
    assert not verify_document(doc, other.public_key_b64)
    assert not verify_document({**doc, "signature": "not base64!"}, SIGNER.public_key_b64)
    assert not verify_document(
        {k: v for k, v in doc.items() if k != "signature"}, SIGNER.public_key
    )


@given(st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(), st.none())))
def test_any_document_round_trips(doc: dict[str, object]) -> None:
    doc.pop("signature", None)
    assert verify_document(SIGNER.signed(doc), SIGNER.public_key_b64)


def test_notices_are_signed_over_their_four_fields() -> None:
    signature = SIGNER.sign_notice("n1", "Incident #1", "outage", 42)
    notice = {"id": "n1", "text": "Incident #1", "level": "outage", "at_ms": 42}
    assert verify_notice({**notice, "signature": signature}, SIGNER.public_key_b64)
    assert not verify_notice(
        {**notice, "text": "Log in at evil.example", "signature": signature},
        SIGNER.public_key_b64,
    )
    assert not verify_notice(notice, SIGNER.public_key_b64)


def test_the_committed_notice_vectors_verify_as_they_say() -> None:
    # tests/vectors/status_notices.json is what the web SDK's test (web/test/sdk/
    # notices.test.ts) checks too; tests/crypto/test_vectors.py regenerates it.
    vectors = json.loads((VECTORS / "status_notices.json").read_text(encoding="utf-8"))
    key = vectors["public_key"]
    assert base64.b64decode(key) == Signer(bytes.fromhex(vectors["seed"])).public_key
    expected = {"signed", "forged", "unsigned"}
    assert {case["expect"] for case in vectors["cases"]} == expected
    for case in vectors["cases"]:
        notice = case["notice"]
        assert verify_notice(notice, key) is (case["expect"] == "signed"), case["name"]
        if case["expect"] == "signed":
            assert canonical_bytes(notice) == case["canonical"].encode("utf-8")
            assert canonical_bytes(notice).hex() == case["canonical_hex"]
            tampered = {**notice, "text": notice["text"] + "!"}
            assert not verify_notice(tampered, key), case["name"]


def test_webhook_signature_format_and_verification() -> None:
    body = b'{"event":"incident.opened"}'
    header = webhook_signature("secret", body, 1_700_000_000_000)
    t, v1 = header.split(",")
    assert t == "t=1700000000000"
    assert v1.startswith("v1=")
    assert len(v1) == 3 + 64
    assert verify_webhook("secret", body, header)
    assert verify_webhook("secret", body, header, now_ms=1_700_000_060_000)
    assert not verify_webhook("secret", body, header, now_ms=1_700_001_000_000)  # replayed
    assert not verify_webhook("other", body, header)
    assert not verify_webhook("secret", body + b" ", header)
    assert not verify_webhook("secret", body, "garbage")


def test_the_generated_key_is_kept_private(tmp_path: Path) -> None:
    path = tmp_path / "status-signing.key"
    seed = load_or_create_seed(path)
    assert len(seed) == 32
    assert load_or_create_seed(path) == seed
    assert path.stat().st_mode & 0o777 == 0o600
    assert base64.b64decode(path.read_text()) == seed
