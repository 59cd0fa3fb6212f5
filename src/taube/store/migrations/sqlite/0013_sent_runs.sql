-- The record that makes resending a message safe (its idempotency key, sender and id)
-- moves from one `messages` row per message to one `sent_runs` row per sender and
-- group commit: a sender's ids that are newer than every id it sent before (UUIDv7
-- ids from one device grow) are kept together, with their sent times, in `ids`
-- (store/sent_runs.py). Under load that is ~100 rows per commit instead of ~2,200.
-- `messages` keeps the payloads of large groups' messages, and the ids that came out
-- of order. Measured: docs/performance.md, section 9.20.
CREATE TABLE sent_runs (
    sender          TEXT NOT NULL,
    last_id         TEXT NOT NULL,
    sent_at_ms      INTEGER NOT NULL,
    ids             BLOB NOT NULL
);
CREATE UNIQUE INDEX sent_runs_by_sender ON sent_runs (sender, last_id);
-- Each sender's ids so far stay in `messages`: an empty run at the newest of them
-- sends any id at or below it to the lookup there.
INSERT INTO sent_runs (sender, last_id, sent_at_ms, ids)
    SELECT sender, max(id), max(sent_at_ms), x'90' FROM messages GROUP BY sender;
