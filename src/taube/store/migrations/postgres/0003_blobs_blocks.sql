-- Attachment blobs (their bytes live in the blob storage, not here) and blocks.
--
-- blobs: complete blobs only, by content address (lower-case hex SHA-256).
-- blob_uploads: incomplete uploads, one per (blob, uploading user), so that two users
--   uploading the same bytes at once never write into each other's file.
-- blob_access: who may read a complete blob: its uploaders, and the users they granted
--   reading (fetched_ms: when a granted user's first full download ended).
-- blocks: (blocker, blocked) pairs.
--
-- Citus: blobs, blob_uploads and blob_access are distributed by blob_id (id), so that
-- everything about one blob is on one shard; blocks by blocker, co-located with users
-- (an ack reads the acking user's blocks).

CREATE TABLE blobs (
    id              text PRIMARY KEY,
    size            bigint NOT NULL,
    created_ms      bigint NOT NULL
);

CREATE INDEX blobs_by_age ON blobs (created_ms);

CREATE TABLE blob_uploads (
    blob_id         text NOT NULL,
    handle          text NOT NULL,
    size            bigint NOT NULL,
    received        bigint NOT NULL DEFAULT 0,
    created_ms      bigint NOT NULL,
    PRIMARY KEY (blob_id, handle)
);

CREATE INDEX blob_uploads_by_age ON blob_uploads (created_ms);

CREATE TABLE blob_access (
    blob_id         text NOT NULL,
    handle          text NOT NULL,
    uploader        boolean NOT NULL DEFAULT false,
    granted         boolean NOT NULL DEFAULT false,
    fetched_ms      bigint,
    PRIMARY KEY (blob_id, handle)
);

CREATE TABLE blocks (
    blocker         text NOT NULL,
    blocked         text NOT NULL,
    created_ms      bigint NOT NULL,
    PRIMARY KEY (blocker, blocked)
);
