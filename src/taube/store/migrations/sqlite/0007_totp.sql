-- Two-step verification (TOTP, RFC 6238) per account.
--
-- totp: one row per account that started or finished setting it up. secret: the
--   shared secret, encrypted by the server as 'v1:' + base64(nonce + AES-256-GCM
--   ciphertext) (core/secret_box.py); a bare base32 value was written in the clear by
--   an earlier version and is encrypted at the next start (docs/operations.md §7). active: 0
--   until a code from the authenticator app confirmed it. last_step: the newest 30 s
--   time step whose code was accepted, so that one code cannot be used twice.

CREATE TABLE totp (
    handle          TEXT PRIMARY KEY,
    secret          TEXT NOT NULL,
    active          INTEGER NOT NULL DEFAULT 0,
    last_step       INTEGER NOT NULL DEFAULT 0,
    created_ms      INTEGER NOT NULL
) WITHOUT ROWID;
