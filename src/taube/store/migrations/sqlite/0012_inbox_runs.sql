-- An inbox row may hold a run of a device's consecutive message items (kind 4): its
-- slot is the slot of its last item, first_slot that of its first, data the items
-- (store/inbox_runs.py). Under load a group commit gives a device many items, and one
-- row per item was a b-tree insert and delete each. Existing rows are single items,
-- with first_slot NULL. Measured: docs/performance.md, section 9.19.
ALTER TABLE inbox ADD COLUMN first_slot INTEGER;
