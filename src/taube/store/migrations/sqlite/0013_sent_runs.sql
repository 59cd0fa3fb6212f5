-- The record that makes resending a message safe (its idempotency key, sender and id)
-- may be kept per sender and commit instead of per message: in a commit of many
-- messages, a sender's ids that are newer than every id it has in `sent_runs` and
-- than every id in `messages` are kept together, with their sent times, in `ids`
-- (store/sent_runs.py). Under full load that is ~100 rows per commit instead of
-- ~2,200 `messages` rows. Measured: docs/performance.md, section 9.21.
CREATE TABLE sent_runs (
    sender          TEXT NOT NULL,
    last_id         TEXT NOT NULL,
    sent_at_ms      INTEGER NOT NULL,
    ids             BLOB NOT NULL
);
CREATE UNIQUE INDEX sent_runs_by_sender ON sent_runs (sender, last_id);
