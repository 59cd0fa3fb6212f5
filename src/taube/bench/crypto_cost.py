"""``python -m taube.bench.crypto_cost``: what end-to-end encryption costs a device.

Measures, on this machine, the client-side cost per message of the primitives the
SDK runs (docs/e2ee.md): a 1:1 Double Ratchet message encrypted and decrypted in
the same chain, one with a DH ratchet step (every reply), a group message under
Sender Keys (sign + verify), decoding a stored session, and the bytes a 100-byte
text grows to on the wire. Best of several rounds; prints one line per figure and,
with ``--json``, one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from taube.crypto import (
    IdentityKeyPair,
    OneTimePreKey,
    PreKeyBundle,
    SenderKeyReceiver,
    SenderKeySender,
    Session,
    SignedPreKey,
)


def _best_us(fn: Callable[[], object], n: int, rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


def measure(n: int) -> dict[str, float]:
    alice_id, bob_id = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    spk, opk = SignedPreKey.generate(bob_id, 1), OneTimePreKey.generate(2)
    alice = Session.initiate(alice_id, PreKeyBundle.create(bob_id, spk, opk))
    bob, _ = Session.respond(bob_id, alice.encrypt(b"hello"), spk, opk)
    alice.decrypt(bob.encrypt(b"hi"))
    text = b'{"type":"text","text":"' + b"x" * 100 + b'","v":1}'

    def ping_pong() -> None:
        bob.decrypt(alice.encrypt(text))
        alice.decrypt(bob.encrypt(text))

    stored = bob.to_bytes()
    sender = SenderKeySender.generate()
    receiver = SenderKeyReceiver.from_distribution(sender.distribution())
    return {
        "ratchet_same_chain_us": _best_us(lambda: bob.decrypt(alice.encrypt(text)), n),
        "ratchet_with_dh_step_us": _best_us(ping_pong, n // 2) / 2,
        "sender_key_us": _best_us(lambda: receiver.decrypt(sender.encrypt(text)), n),
        "session_decode_us": _best_us(lambda: Session.from_bytes(stored), n),
        "ciphertext_bytes_for_100_byte_text": float(len(alice.encrypt(text))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m taube.bench.crypto_cost", description=__doc__)
    parser.add_argument("--messages", type=int, default=2000, help="per round (default 2000)")
    parser.add_argument("--json", action="store_true", help="one JSON object as the last line")
    args = parser.parse_args(argv)
    figures = measure(max(10, args.messages))
    for name, value in figures.items():
        print(f"{name:40s} {value:10.1f}")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
