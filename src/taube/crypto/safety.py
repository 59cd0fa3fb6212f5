"""Safety numbers: Signal's numeric fingerprint, over all of an account's devices.

Per account (Signal, "numeric fingerprint" / libsignal ``fingerprint.rs``)::

    key  = identity public keys of all the account's devices, sorted bytewise, concatenated
    h    = SHA-512(0x00 0x00 || key || stable_id || key)
    repeat 5199 times: h = SHA-512(h || key)            (5200 hashes in all)
    half = for i in 0..5: format(int.from_bytes(h[5i:5i+5], "big") % 100000, "05d")

The 60-digit safety number is the two 30-digit halves in ascending (string) order,
so both people see the same number. Deviation from Signal: ``key`` is the sorted
concatenation of every device's 32-byte Ed25519 identity key instead of one
33-byte ``0x05 || X25519`` key; adding or replacing a device changes the number.
The scannable payload (for a QR code) is ``version 0x01 | type 0x07 | local
h[:32] | remote h[:32]``; the scanner compares it crosswise with its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from taube.crypto.encoding import Kind, Reader, Writer
from taube.crypto.primitives import constant_time_equal, sha512

__all__ = ["ITERATIONS", "SafetyNumber", "account_key", "fingerprint_half", "safety_number"]

ITERATIONS: Final = 5200
_VERSION: Final = b"\x00\x00"


def account_key(identity_keys: Sequence[bytes]) -> bytes:
    """The fingerprint "public key" of an account: its device keys, sorted, concatenated."""
    if not identity_keys:
        raise ValueError("an account has at least one device identity key")
    return b"".join(sorted(identity_keys))


def fingerprint_half(key: bytes, stable_id: bytes, iterations: int = ITERATIONS) -> bytes:
    """The 64-byte iterated hash of one side (libsignal's ``get_fingerprint``)."""
    h = sha512(_VERSION + key + stable_id + key)
    for _ in range(iterations - 1):
        h = sha512(h + key)
    return h


def _digits(h: bytes) -> str:
    return "".join(f"{int.from_bytes(h[i : i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5))


@dataclass(frozen=True, slots=True)
class SafetyNumber:
    """One person's view of the safety number with one contact."""

    local: bytes
    remote: bytes

    @property
    def digits(self) -> str:
        """60 digits, identical on both sides."""
        return "".join(sorted((_digits(self.local), _digits(self.remote))))

    def formatted(self) -> str:
        """12 groups of 5 digits separated by spaces (show as 3 rows of 4)."""
        d = self.digits
        return " ".join(d[i : i + 5] for i in range(0, 60, 5))

    @property
    def scannable(self) -> bytes:
        """The QR-code payload this side shows."""
        w = Writer(Kind.SCANNABLE_FINGERPRINT)
        return w.fixed(self.local[:32], 32).fixed(self.remote[:32], 32).finish()

    def matches_scanned(self, payload: bytes) -> bool:
        """Whether a payload scanned from the contact's screen agrees with ours.

        Raises DecodeError if ``payload`` is not a scannable fingerprint.
        """
        r = Reader(payload, Kind.SCANNABLE_FINGERPRINT)
        their_local, their_remote = r.fixed(32), r.fixed(32)
        r.finish()
        same_a = constant_time_equal(their_local, self.remote[:32])
        same_b = constant_time_equal(their_remote, self.local[:32])
        return same_a and same_b


def safety_number(
    local_id: bytes,
    local_keys: Sequence[bytes],
    remote_id: bytes,
    remote_keys: Sequence[bytes],
) -> SafetyNumber:
    """The safety number between two accounts, from stable ids (e.g. UTF-8 handles)."""
    return SafetyNumber(
        fingerprint_half(account_key(local_keys), local_id),
        fingerprint_half(account_key(remote_keys), remote_id),
    )
