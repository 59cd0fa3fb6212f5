"""The primitives under taube.crypto, checked against Project Wycheproof vectors.

Every check goes through ``taube.crypto.primitives``, the same helpers the core
uses. The vectors live outside the repository (../shared/vectors/wycheproof); a
missing directory skips locally but fails in CI (CI=true).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taube.crypto import primitives as p
from taube.crypto.errors import CryptoError, InvalidMessage, InvalidSignature

VECTORS = Path(__file__).resolve().parents[2] / ".." / "shared" / "vectors" / "wycheproof"
IN_CI = os.environ.get("CI", "").strip().lower() == "true"


def cases(name: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    path = VECTORS / name
    if not path.exists():
        if IN_CI:
            pytest.fail(f"Wycheproof vectors missing at {path} (required in CI)")
        pytest.skip(f"Wycheproof vectors not found at {path}; set them up to run this test")
    data = json.loads(path.read_text())
    for group in data["testGroups"]:
        for test in group["tests"]:
            yield group, test


def x(s: str) -> bytes:
    return bytes.fromhex(s)


def test_x25519() -> None:
    seen = 0
    for _, t in cases("x25519_test.json"):
        seen += 1
        try:
            shared = p.x25519(x(t["private"]), x(t["public"]))
        except CryptoError:
            # We refuse all-zero shared secrets (low-order points); Wycheproof calls
            # those "acceptable", never "valid".
            assert t["result"] != "valid" or set(x(t["shared"])) == {0}, t["tcId"]
            continue
        if t["result"] == "invalid":
            assert shared != x(t["shared"]), t["tcId"]
        else:
            assert shared == x(t["shared"]), t["tcId"]
    assert seen > 500


def test_ed25519_verify() -> None:
    for group, t in cases("ed25519_test.json"):
        public = x(group["publicKey"]["pk"])
        if t["result"] == "valid":
            p.ed25519_verify(public, x(t["msg"]), x(t["sig"]))
        else:
            with pytest.raises(InvalidSignature):
                p.ed25519_verify(public, x(t["msg"]), x(t["sig"]))


def test_hkdf_sha256() -> None:
    for _, t in cases("hkdf_sha256_test.json"):
        args = {"salt": x(t["salt"]), "info": x(t["info"]), "length": t["size"]}
        if t["result"] == "valid":
            assert p.hkdf_sha256(x(t["ikm"]), **args) == x(t["okm"]), t["tcId"]
        else:
            with pytest.raises(ValueError, match="out of range"):
                p.hkdf_sha256(x(t["ikm"]), **args)


def test_hmac_sha256() -> None:
    for group, t in cases("hmac_sha256_test.json"):
        tag = p.hmac_sha256(x(t["key"]), x(t["msg"]))[: group["tagSize"] // 8]
        ok = p.constant_time_equal(tag, x(t["tag"]))
        assert ok == (t["result"] == "valid"), t["tcId"]


def test_aes_gcm() -> None:
    checked = 0
    for group, t in cases("aes_gcm_test.json"):
        if group["ivSize"] != 96 or group["tagSize"] != 128:
            continue  # the core only uses 96-bit nonces and 128-bit tags
        checked += 1
        key, iv, aad = x(t["key"]), x(t["iv"]), x(t["aad"])
        sealed = x(t["ct"]) + x(t["tag"])
        if t["result"] == "valid":
            assert p.aes_gcm_encrypt(key, iv, x(t["msg"]), aad) == sealed, t["tcId"]
            assert p.aes_gcm_decrypt(key, iv, sealed, aad) == x(t["msg"]), t["tcId"]
        else:
            with pytest.raises(InvalidMessage):
                p.aes_gcm_decrypt(key, iv, sealed, aad)
    assert checked > 0


def test_aes_cbc_pkcs7() -> None:
    for _, t in cases("aes_cbc_pkcs5_test.json"):
        key, iv = x(t["key"]), x(t["iv"])
        if t["result"] == "valid":
            assert p.aes_cbc_encrypt(key, iv, x(t["msg"])) == x(t["ct"]), t["tcId"]
            assert p.aes_cbc_decrypt(key, iv, x(t["ct"])) == x(t["msg"]), t["tcId"]
        else:
            with pytest.raises(InvalidMessage):
                p.aes_cbc_decrypt(key, iv, x(t["ct"]))
