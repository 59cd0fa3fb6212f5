-- Accounts, devices, groups, messages and per-device inboxes (PostgreSQL).
--
-- Every hot table is keyed by the user (or user + device) first, so each hot
-- statement touches one user's rows. Ready for Citus: the column that would
-- distribute each table, and what it is co-located with:
--
--   users          handle       co-located with devices, inbox, user_groups
--   devices        handle       (next_seq lives here: one row lock per device)
--   inbox          handle       PRIMARY KEY (handle, device, seq)
--   user_groups    handle       the reverse index of group_members
--   device_tokens  token_hash   login looks a token up without knowing the user
--   messages       sender       the idempotency key (sender, id) and shared payload
--   groups         id           co-located with group_members
--   group_members  group_id
--   schema_version (not distributed: it lives on the coordinator, made by the store)
--
-- Cross-shard by nature (and fine, being one transaction or off the hot path): a
-- commit appends to every recipient's inbox; an ack queues receipts for the sender;
-- reading a shared payload looks messages up by (sender, id); the retention purge.
--
-- Inbox rows copy sender_device and sent_at_ms from the message so that reading an
-- inbox needs the messages table only for shared payloads (never with per-device
-- payloads, which end-to-end encryption uses for everything).

CREATE TABLE users (
    handle          text PRIMARY KEY,
    password_hash   text NOT NULL,
    created_ms      bigint NOT NULL,
    hide_presence   boolean NOT NULL DEFAULT false,
    last_seen_ms    bigint
);

CREATE TABLE devices (
    handle          text NOT NULL,
    id              integer NOT NULL,
    name            text NOT NULL,
    token_hash      bytea NOT NULL,
    created_ms      bigint NOT NULL,
    last_active_ms  bigint NOT NULL,
    revoked_ms      bigint,
    next_seq        bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (handle, id)
);

CREATE TABLE device_tokens (
    token_hash      bytea PRIMARY KEY,
    handle          text NOT NULL,
    device          integer NOT NULL
);

CREATE TABLE groups (
    id              text PRIMARY KEY,
    name            text NOT NULL,
    created_ms      bigint NOT NULL,
    created_by      text NOT NULL
);

CREATE TABLE group_members (
    group_id        text NOT NULL,
    handle          text NOT NULL,
    admin           boolean NOT NULL DEFAULT false,
    pos             integer NOT NULL,
    PRIMARY KEY (group_id, handle)
);

CREATE TABLE user_groups (
    handle          text NOT NULL,
    group_id        text NOT NULL,
    PRIMARY KEY (handle, group_id)
);

-- One row per sent message: the idempotency key (sender, id) and the shared payload.
CREATE TABLE messages (
    sender          text NOT NULL,
    id              text NOT NULL,
    sender_device   integer NOT NULL,
    target          text NOT NULL,
    sent_at_ms      bigint NOT NULL,
    payload         bytea,
    PRIMARY KEY (sender, id)
);
-- Lets the hourly retention job find old messages without scanning the table.
CREATE INDEX messages_by_time ON messages (sent_at_ms);

-- kind: 1 message, 2 receipt, 3 group event. For messages, payload NULL means
-- messages.payload; for the other kinds, data holds the encoded frame.
CREATE TABLE inbox (
    handle          text NOT NULL,
    device          integer NOT NULL,
    seq             bigint NOT NULL,
    kind            smallint NOT NULL,
    sender          text,
    msg_id          text,
    conversation    text,
    sender_device   integer,
    sent_at_ms      bigint,
    payload         bytea,
    data            bytea,
    PRIMARY KEY (handle, device, seq)
);
