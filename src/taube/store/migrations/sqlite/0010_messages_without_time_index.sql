-- The retention job no longer needs an index on sent_at_ms: rows are inserted in time
-- order, so the oldest are the lowest rowids, and the job walks the table from its
-- start (store/sqlite.py, purge_messages). Keeping the index up to date was a third
-- b-tree insert per message: 1.4 of 7.1 us of SQLite work per message in a batch of
-- Workload A's rows (docs/performance.md, section 9.18).
DROP INDEX IF EXISTS messages_by_time;
