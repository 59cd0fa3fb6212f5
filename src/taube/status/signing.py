"""Signatures of the status document, of service notices and of webhook deliveries.

Free of server imports so that clients (the SDK, ``taube status``, an exported page's
reader) can verify what they fetched:

- The status document is signed with Ed25519 over ``canonical_bytes(doc)``: the
  UTF-8 bytes of its JSON without the ``signature`` key, keys sorted, separators
  ``(",", ":")``, non-ASCII kept as it is (``ensure_ascii=False``).
- A notice is signed the same way over ``{"id", "text", "level", "at_ms"}``.
- A webhook body is signed with HMAC-SHA256 under the subscriber's secret:
  header ``Taube-Signature: t=<unix ms>,v1=<hex HMAC(secret, f"{t}.{body}")>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any, Final

from taube.crypto.errors import InvalidSignature
from taube.crypto.primitives import ed25519_public, ed25519_sign, ed25519_verify

SIGNATURE_KEY: Final = "signature"
WEBHOOK_HEADER: Final = "Taube-Signature"
SEED_BYTES: Final = 32


def canonical_bytes(doc: dict[str, Any]) -> bytes:
    """The bytes a signature covers: ``doc`` without ``signature``, canonical JSON."""
    unsigned = {k: v for k, v in doc.items() if k != SIGNATURE_KEY}
    text = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def verify_document(doc: dict[str, Any], public_key: str | bytes) -> bool:
    """True if ``doc["signature"]`` is a valid Ed25519 signature of ``doc`` under
    ``public_key`` (raw 32 bytes or base64). Never raises for bad input."""
    try:
        key = public_key if isinstance(public_key, bytes) else _b64decode(public_key)
        signature = doc.get(SIGNATURE_KEY)
        if not isinstance(signature, str):
            return False
        ed25519_verify(key, canonical_bytes(doc), _b64decode(signature))
    except (InvalidSignature, ValueError, TypeError, UnicodeError):
        return False
    return True


def notice_fields(notice_id: str, text: str, level: str, at_ms: int) -> dict[str, Any]:
    return {"id": notice_id, "text": text, "level": level, "at_ms": at_ms}


def verify_notice(notice: dict[str, Any], public_key: str | bytes) -> bool:
    """True if a notice frame (as a dict with ``signature``) was signed by the status key."""
    try:
        fields = notice_fields(notice["id"], notice["text"], notice["level"], notice["at_ms"])
    except KeyError:
        return False
    return verify_document({**fields, SIGNATURE_KEY: notice.get(SIGNATURE_KEY)}, public_key)


class Signer:
    """Holds the status signing key (an Ed25519 seed) and signs documents and notices."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_BYTES:
            raise ValueError("the status signing key is a 32-byte Ed25519 seed")
        self._seed = seed
        self.public_key = ed25519_public(seed)

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(self.public_key).decode("ascii")

    def sign(self, doc: dict[str, Any]) -> str:
        """The base64 signature of ``canonical_bytes(doc)``."""
        return base64.b64encode(ed25519_sign(self._seed, canonical_bytes(doc))).decode("ascii")

    def signed(self, doc: dict[str, Any]) -> dict[str, Any]:
        """``doc`` with its ``signature``."""
        unsigned = {k: v for k, v in doc.items() if k != SIGNATURE_KEY}
        return {**unsigned, SIGNATURE_KEY: self.sign(unsigned)}

    def sign_notice(self, notice_id: str, text: str, level: str, at_ms: int) -> str:
        return self.sign(notice_fields(notice_id, text, level, at_ms))


def parse_seed(text: str) -> bytes:
    """A configured key: base64 of a 32-byte seed; ValueError says what is wrong."""
    try:
        seed = _b64decode(text.strip())
    except ValueError:
        raise ValueError("status signing_key must be base64") from None
    if len(seed) != SEED_BYTES:
        raise ValueError("status signing_key must be 32 bytes (base64 of an Ed25519 seed)")
    return seed


def load_or_create_seed(path: Path) -> bytes:
    """The seed kept in ``path`` (base64), made (0600) on first use."""
    if path.exists():
        return parse_seed(path.read_text("ascii"))
    path.parent.mkdir(parents=True, exist_ok=True)
    seed = os.urandom(SEED_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(base64.b64encode(seed).decode("ascii") + "\n")
    return seed


# ---------------------------------------------------------------- webhooks


def webhook_signature(secret: str, body: bytes, t_ms: int) -> str:
    """The ``Taube-Signature`` header value for ``body`` sent at ``t_ms``."""
    mac = hmac.new(secret.encode("utf-8"), f"{t_ms}.".encode() + body, hashlib.sha256)
    return f"t={t_ms},v1={mac.hexdigest()}"


def verify_webhook(
    secret: str, body: bytes, header: str, *, now_ms: int | None = None, tolerance_ms: int = 300_000
) -> bool:
    """True if ``header`` signs ``body`` under ``secret`` (and, given ``now_ms``, was made
    within ``tolerance_ms`` of it, against replays)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t_ms = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    if now_ms is not None and abs(now_ms - t_ms) > tolerance_ms:
        return False
    expected = webhook_signature(secret, body, t_ms).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)
