-- Device links and service notices.
--
-- links: a new device's request to join an account (docs/protocol.md, "Device
--   linking"). code: 8 Crockford base32 characters, unique while the row exists (rows
--   are purged once expired). secret_hash: SHA-256 of the requester's secret. Once
--   approved: handle and device of the device made for it, and its token until the
--   requester reads it (then NULL).
-- notices: the operator's notices to every client, current until expires_ms.
--
-- Citus: both tables are small and short-lived; make them reference tables (links
-- are looked up by id and by code, so no one distribution column serves both).

CREATE TABLE links (
    id              text PRIMARY KEY,
    code            text NOT NULL UNIQUE,
    secret_hash     bytea NOT NULL,
    device_name     text NOT NULL DEFAULT '',
    created_ms      bigint NOT NULL,
    expires_ms      bigint NOT NULL,
    handle          text,
    device          integer,
    token           text,
    approved_ms     bigint
);

CREATE INDEX links_by_expiry ON links (expires_ms);

CREATE TABLE notices (
    id              text PRIMARY KEY,
    text            text NOT NULL,
    level           text NOT NULL,
    at_ms           bigint NOT NULL,
    expires_ms      bigint NOT NULL
);
