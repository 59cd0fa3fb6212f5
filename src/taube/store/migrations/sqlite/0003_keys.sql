-- End-to-end encryption keys: per device, an identity key (set once) with its
-- current signed prekey, and a pool of one-time prekeys handed out once each.
-- Both are keyed by (user, device) first, like every hot table; revoking a device
-- deletes its rows.

CREATE TABLE device_keys (
    user            TEXT NOT NULL,
    device          INTEGER NOT NULL,
    identity_key    BLOB NOT NULL,
    spk_id          INTEGER NOT NULL,
    spk             BLOB NOT NULL,
    spk_signature   BLOB NOT NULL,
    PRIMARY KEY (user, device)
) WITHOUT ROWID;

CREATE TABLE one_time_prekeys (
    user            TEXT NOT NULL,
    device          INTEGER NOT NULL,
    id              INTEGER NOT NULL,
    key             BLOB NOT NULL,
    PRIMARY KEY (user, device, id)
) WITHOUT ROWID;
