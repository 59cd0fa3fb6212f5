"""The SQLite store alone, under Workload A's shape: for changes too small for pairs.

Same-minute pairs of ``taube bench`` runs swing by ±10 % on a shared machine, so a
change worth 2 % of the server's CPU cannot be seen in them. This drives the store the
way a node under Workload A does, without sockets: 100 senders put 50 messages each in
one batch (one commit), their 100 recipients ack them (one batch of acks, which queues
the delivered receipts), and the senders ack their receipts; then again. Under
``valgrind --tool=callgrind`` the instruction count repeats to within a few in
30,000, so ``make bench-store`` runs it twice (4 and 8 rounds after 2 of warm-up) and
prints the difference per message: the store's own instructions per message, what
each change to the store path is measured by (docs/performance.md 9.22). It does not
see cache misses: confirm a gain with pairs of the whole server.

    python -m taube.store.bench --rounds 20      # CPU microseconds per message
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path

import uvloop

from taube.store.base import Delivery, NewMessage, UserRecord
from taube.store.sqlite import SqliteStore

PAIRS = 100
PER_SENDER = 50
WARMUP_ROUNDS = 2
MESSAGES_PER_ROUND = PAIRS * PER_SENDER


async def run(rounds: int, folder: Path) -> float:
    """CPU seconds per message over ``rounds`` rounds after the warm-up."""
    store = SqliteStore(folder / "taube.db", synchronous="NORMAL")  # the server's default
    await store.open()
    thresholds = gc.get_threshold()
    try:
        for i in range(PAIRS):
            for handle in (f"s{i}", f"r{i}"):
                await store.create_user(UserRecord(handle, "hash", 1))
                await store.create_device(handle, "d", handle.encode(), 1)
        routes = [[Delivery(f"r{i}", 1, f"@s{i}")] for i in range(PAIRS)]
        payload = os.urandom(100)
        sent = [0] * PAIRS
        # As the server: the startup heap frozen, young collections rare (server/app.py).
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        started = 0.0
        for round_ in range(WARMUP_ROUNDS + rounds):
            if round_ == WARMUP_ROUNDS:
                started = time.process_time()
            now = int(time.time() * 1000)
            writes = []
            for i in range(PAIRS):
                for _ in range(PER_SENDER):
                    sent[i] += 1  # ids grow per sender, as the SDKs make them
                    message_id = f"{sent[i]:08x}-0000-7000-8000-{now:012x}"
                    message = NewMessage(f"s{i}", 1, message_id, f"@r{i}", now, payload, routes[i])
                    writes.append(store.submit_message(message))
            await writes[-1]  # one batch: all settle together
            acks = [store.submit_ack(f"r{i}", 1, sent[i], now) for i in range(PAIRS)]
            await acks[-1]
            newest: dict[str, int] = {}
            for ack in acks:
                for (user, _device), item in ack.result().appended:
                    newest[user] = max(newest.get(user, 0), item.seq)
            receipts = [store.submit_ack(user, 1, seq, now) for user, seq in newest.items()]
            if receipts:
                await receipts[-1]
        return (time.process_time() - started) / (rounds * MESSAGES_PER_ROUND)
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        await store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m taube.store.bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=20, help="rounds of 5,000 messages")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="taube-store-path-") as folder:
        per_message = uvloop.run(run(args.rounds, Path(folder)))
    messages = args.rounds * MESSAGES_PER_ROUND
    print(f"{per_message * 1e6:.2f} us of CPU per message over {messages:,} messages")


if __name__ == "__main__":
    main()
