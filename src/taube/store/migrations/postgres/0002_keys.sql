-- End-to-end encryption keys: per device, an identity key (set once) with its
-- current signed prekey, and a pool of one-time prekeys handed out once each.
--
-- Citus: both tables are distributed by handle, co-located with devices (a bundle
-- fetch touches the rows of one user). A fetch takes a one-time prekey with
-- DELETE ... (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1), so concurrent fetches (on
-- any node) never hand out the same one. Revoking a device deletes its rows.

CREATE TABLE device_keys (
    handle          text NOT NULL,
    device          integer NOT NULL,
    identity_key    bytea NOT NULL,
    spk_id          bigint NOT NULL,
    spk             bytea NOT NULL,
    spk_signature   bytea NOT NULL,
    PRIMARY KEY (handle, device)
);

CREATE TABLE one_time_prekeys (
    handle          text NOT NULL,
    device          integer NOT NULL,
    id              bigint NOT NULL,
    key             bytea NOT NULL,
    PRIMARY KEY (handle, device, id)
);
