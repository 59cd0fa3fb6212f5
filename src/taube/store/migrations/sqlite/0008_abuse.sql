-- Abuse reports and account suspensions (docs/security.md, "Abuse").
--
-- abuse_reports: the operator's review queue. A report holds only what the reporter
--   chose to send: the reported handle, a reason, and the messages they picked (as
--   decrypted on their device), JSON-encoded in messages ([{id, sender, sent_at_ms,
--   text}]). reviewed_ms is reserved for a later review workflow.
-- suspensions: accounts an operator suspended; a row exists while the suspension
--   lasts (unsuspending deletes it).

CREATE TABLE abuse_reports (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    reporter        TEXT NOT NULL,
    reporter_device INTEGER NOT NULL,
    reported        TEXT NOT NULL,
    reason          TEXT NOT NULL,
    messages        TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    reviewed_ms     INTEGER
);

CREATE INDEX abuse_reports_by_reported ON abuse_reports (reported);

CREATE TABLE suspensions (
    handle          TEXT PRIMARY KEY,
    reason          TEXT NOT NULL,
    at_ms           INTEGER NOT NULL
) WITHOUT ROWID;
