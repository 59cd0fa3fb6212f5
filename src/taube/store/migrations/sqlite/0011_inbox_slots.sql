-- An inbox row is keyed by one integer, its slot: (the device's box << 32) | seq, the
-- table's rowid. Before, the key (user, device, seq) was a second b-tree beside the
-- rowid's: every inbox insert and every acked row's delete touched two b-trees, and
-- each row bound two more values. Each device gets a box number, assigned once.
-- Measured: docs/performance.md, section 9.18.
ALTER TABLE devices ADD COLUMN box INTEGER;
CREATE TEMP TABLE numbered (user TEXT, id INTEGER, box INTEGER, PRIMARY KEY (user, id));
INSERT INTO numbered SELECT user, id, row_number() OVER (ORDER BY user, id) FROM devices;
UPDATE devices SET box = numbered.box FROM numbered
    WHERE numbered.user = devices.user AND numbered.id = devices.id;
DROP TABLE numbered;
CREATE UNIQUE INDEX devices_by_box ON devices (box);

CREATE TABLE inbox_new (
    slot            INTEGER PRIMARY KEY,
    kind            INTEGER NOT NULL,
    sender          TEXT,
    msg_id          TEXT,
    conversation    TEXT,
    payload         BLOB,
    data            BLOB
);
INSERT INTO inbox_new (slot, kind, sender, msg_id, conversation, payload, data)
    SELECT (d.box << 32) | i.seq, i.kind, i.sender, i.msg_id, i.conversation, i.payload, i.data
    FROM inbox i JOIN devices d ON d.user = i.user AND d.id = i.device
    ORDER BY 1;
DROP TABLE inbox;
ALTER TABLE inbox_new RENAME TO inbox;
