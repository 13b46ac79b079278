-- The Devo forwarder's queue: one row per stored record still to be sent, drained in id
-- order and deleted only once the receiver accepted the record (invariant 5).
-- AUTOINCREMENT because the forwarder reads "after the last id it wrote": an id must never
-- come back after the queue drained to empty. The 0001 table was never written.
DROP TABLE outbox;
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    record_rowid INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);
