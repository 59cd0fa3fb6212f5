-- The idempotency key becomes (id, sender) instead of (sender, id): message ids are
-- UUIDv7 (time first), so new keys land at the right edge of the B-tree instead of
-- in one place per sender, and a group commit dirties a few index pages rather than
-- one per sender. Lookups and ON CONFLICT give both columns, so they are unaffected;
-- the distribution column (sender) stays part of the key.
ALTER TABLE messages DROP CONSTRAINT messages_pkey;
ALTER TABLE messages ADD PRIMARY KEY (id, sender);
