-- Attachment blobs (their bytes live in the blob storage, not here) and blocks.
--
-- blobs: complete blobs only, by content address (lower-case hex SHA-256).
-- blob_uploads: incomplete uploads, one per (blob, uploading user), so that two users
--   uploading the same bytes at once never write into each other's file.
-- blob_access: who may read a complete blob: its uploaders, and the users they granted
--   reading (fetched_ms: when a granted user's first full download ended).
-- blocks: (blocker, blocked) pairs.

CREATE TABLE blobs (
    id              TEXT PRIMARY KEY,
    size            INTEGER NOT NULL,
    created_ms      INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX blobs_by_age ON blobs (created_ms);

CREATE TABLE blob_uploads (
    blob_id         TEXT NOT NULL,
    user            TEXT NOT NULL,
    size            INTEGER NOT NULL,
    received        INTEGER NOT NULL DEFAULT 0,
    created_ms      INTEGER NOT NULL,
    PRIMARY KEY (blob_id, user)
) WITHOUT ROWID;

CREATE INDEX blob_uploads_by_age ON blob_uploads (created_ms);

CREATE TABLE blob_access (
    blob_id         TEXT NOT NULL,
    user            TEXT NOT NULL,
    uploader        INTEGER NOT NULL DEFAULT 0,
    granted         INTEGER NOT NULL DEFAULT 0,
    fetched_ms      INTEGER,
    PRIMARY KEY (blob_id, user)
) WITHOUT ROWID;

CREATE TABLE blocks (
    blocker         TEXT NOT NULL,
    blocked         TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    PRIMARY KEY (blocker, blocked)
) WITHOUT ROWID;
