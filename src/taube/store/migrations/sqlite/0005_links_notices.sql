-- Device links and service notices.
--
-- links: a new device's request to join an account (docs/protocol.md, "Device
--   linking"). code: 8 Crockford base32 characters, unique while the row exists (rows
--   are purged once expired). secret_hash: SHA-256 of the requester's secret. Once
--   approved: handle and device of the device made for it, and its token until the
--   requester reads it (then NULL).
-- notices: the operator's notices to every client, current until expires_ms.

CREATE TABLE links (
    id              TEXT PRIMARY KEY,
    code            TEXT NOT NULL UNIQUE,
    secret_hash     BLOB NOT NULL,
    device_name     TEXT NOT NULL DEFAULT '',
    created_ms      INTEGER NOT NULL,
    expires_ms      INTEGER NOT NULL,
    handle          TEXT,
    device          INTEGER,
    token           TEXT,
    approved_ms     INTEGER
) WITHOUT ROWID;

CREATE INDEX links_by_expiry ON links (expires_ms);

CREATE TABLE notices (
    id              TEXT PRIMARY KEY,
    text            TEXT NOT NULL,
    level           TEXT NOT NULL,
    at_ms           INTEGER NOT NULL,
    expires_ms      INTEGER NOT NULL
) WITHOUT ROWID;
