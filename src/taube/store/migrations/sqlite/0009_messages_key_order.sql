-- The idempotency key becomes (id, sender) instead of (sender, id). Message ids are
-- UUIDv7 (time first), so new keys now land at the right edge of the index: a group
-- commit of 100 messages from 100 senders dirtied ~100 index pages before (one per
-- sender's key range), and a few after. Measured: COMMIT went from ~11 to ~1.5 us per
-- message (docs/performance.md, "Profiles"). Lookups give both columns, so they are
-- unaffected. SQLite cannot change a primary key in place: copy, drop, rename.
CREATE TABLE messages_new (
    sender          TEXT NOT NULL,
    id              TEXT NOT NULL,
    sender_device   INTEGER NOT NULL,
    target          TEXT NOT NULL,
    sent_at_ms      INTEGER NOT NULL,
    payload         BLOB,
    PRIMARY KEY (id, sender)
);
INSERT INTO messages_new (sender, id, sender_device, target, sent_at_ms, payload)
    SELECT sender, id, sender_device, target, sent_at_ms, payload FROM messages ORDER BY sent_at_ms;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE INDEX messages_by_time ON messages (sent_at_ms);
