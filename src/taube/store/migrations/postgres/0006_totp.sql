-- Two-step verification (TOTP, RFC 6238) per account: see the SQLite migration
-- 0007_totp.sql for what each column means.
--
-- Citus: distributed by handle, co-located with users (every statement touches one
-- account's row).

CREATE TABLE totp (
    handle          text PRIMARY KEY,
    secret          text NOT NULL,
    active          boolean NOT NULL DEFAULT false,
    last_step       bigint NOT NULL DEFAULT 0,
    created_ms      bigint NOT NULL
);
