-- Status and incident communication (docs/status.md).
--
-- status_probes: one prober node's canary results for one component in one minute
--   (count, ok, within the SLO's latency bound, latency histogram as JSON); rewritten
--   whole by its node while the minute is recent; kept 90 days.
-- status_minutes: the verdict per component per closed minute (written by the leader);
--   a minute without a row was not measured (unknown). Kept 90 days.
-- incidents / incident_updates: every incident with every update, kept for good.
--   key: what opened an automatic incident ("canary", "reports"), NULL for manual ones.
-- maintenance: scheduled maintenance windows. components: JSON list.
-- webhooks / webhook_deliveries: subscribers and the log of every delivery attempt.
-- status_reports: user reports per minute and kind (all nodes add to one count).

CREATE TABLE status_probes (
    minute_ms       INTEGER NOT NULL,
    node            TEXT NOT NULL,
    component       TEXT NOT NULL,
    count           INTEGER NOT NULL,
    ok              INTEGER NOT NULL,
    within          INTEGER NOT NULL,
    hist            TEXT NOT NULL,
    updated_ms      INTEGER NOT NULL,
    PRIMARY KEY (minute_ms, node, component)
) WITHOUT ROWID;

CREATE TABLE status_minutes (
    minute_ms       INTEGER NOT NULL,
    component       TEXT NOT NULL,
    status          TEXT NOT NULL,
    PRIMARY KEY (minute_ms, component)
) WITHOUT ROWID;

CREATE TABLE incidents (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    title           TEXT NOT NULL,
    status          TEXT NOT NULL,
    impact          TEXT NOT NULL,
    components      TEXT NOT NULL,
    started_ms      INTEGER NOT NULL,
    resolved_ms     INTEGER,
    automatic       INTEGER NOT NULL,
    key             TEXT,
    postmortem      TEXT,
    notice_id       TEXT
);

CREATE INDEX incidents_open ON incidents (resolved_ms);

CREATE TABLE incident_updates (
    incident        INTEGER NOT NULL REFERENCES incidents (id),
    n               INTEGER NOT NULL,
    at_ms           INTEGER NOT NULL,
    status          TEXT NOT NULL,
    text            TEXT NOT NULL,
    author          TEXT NOT NULL,
    PRIMARY KEY (incident, n)
) WITHOUT ROWID;

CREATE TABLE maintenance (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    title           TEXT NOT NULL,
    starts_ms       INTEGER NOT NULL,
    ends_ms         INTEGER NOT NULL,
    components      TEXT NOT NULL,
    text            TEXT NOT NULL,
    created_ms      INTEGER NOT NULL
);

CREATE TABLE webhooks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    url             TEXT NOT NULL,
    secret          TEXT NOT NULL,
    created_ms      INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      INTEGER NOT NULL,
    event           TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    status_code     INTEGER,
    error           TEXT,
    at_ms           INTEGER NOT NULL,
    delivered       INTEGER NOT NULL
);

CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (at_ms);

CREATE TABLE status_reports (
    minute_ms       INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    count           INTEGER NOT NULL,
    PRIMARY KEY (minute_ms, kind)
) WITHOUT ROWID;
