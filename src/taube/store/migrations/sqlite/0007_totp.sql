-- Two-step verification (TOTP, RFC 6238) per account.
--
-- totp: one row per account that started or finished setting it up. secret: the
--   base32 shared secret (a server-side secret, stored in the clear like the rest of
--   the database; encryption at rest is a later step, docs/operations.md). active: 0
--   until a code from the authenticator app confirmed it. last_step: the newest 30 s
--   time step whose code was accepted, so that one code cannot be used twice.

CREATE TABLE totp (
    handle          TEXT PRIMARY KEY,
    secret          TEXT NOT NULL,
    active          INTEGER NOT NULL DEFAULT 0,
    last_step       INTEGER NOT NULL DEFAULT 0,
    created_ms      INTEGER NOT NULL
) WITHOUT ROWID;
