-- Hits stored compactly. A hit row carried its detection's name, the record's Id, the
-- group key and the emitted details as text, and two of its three indexes repeated the
-- name and the key: ~600 bytes per hit, for detections that fire on every sign-in. Now the
-- names and group keys are stored once (`hit_detections`, `hit_groups`), a hit refers to
-- them by integer, the record's Id is read from `records`, and `details` is NULL when the
-- emitted value is the group key itself (a detection that groups by everything it emits).
-- Hit ids are kept: triage marks (`triage.hit_mark`) compare against them.
CREATE TABLE hit_detections (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE hit_groups (
    id        INTEGER PRIMARY KEY,
    detection INTEGER NOT NULL REFERENCES hit_detections(id),
    group_key TEXT NOT NULL,
    UNIQUE (detection, group_key)
);

CREATE TABLE hits_compact (
    id            INTEGER PRIMARY KEY,
    detection     INTEGER NOT NULL REFERENCES hit_detections(id),
    grp           INTEGER NOT NULL REFERENCES hit_groups(id),
    record_rowid  INTEGER NOT NULL REFERENCES records(rowid),
    creation_time INTEGER NOT NULL,
    details       TEXT
);

INSERT INTO hit_detections (name) SELECT DISTINCT detection FROM hits ORDER BY 1;
INSERT INTO hit_groups (detection, group_key)
    SELECT DISTINCT d.id, h.group_key FROM hits h JOIN hit_detections d ON d.name = h.detection
    ORDER BY 1, 2;
INSERT INTO hits_compact (id, detection, grp, record_rowid, creation_time, details)
    SELECT h.id, d.id, g.id, h.record_rowid, h.creation_time, nullif(h.details, h.group_key)
    FROM hits h
    JOIN hit_detections d ON d.name = h.detection
    JOIN hit_groups g ON g.detection = d.id AND g.group_key = h.group_key
    ORDER BY h.id;

DROP TABLE hits;
ALTER TABLE hits_compact RENAME TO hits;
CREATE INDEX hits_detection ON hits (detection, creation_time);
CREATE INDEX hits_record ON hits (record_rowid);
CREATE INDEX hits_group ON hits (detection, grp, creation_time);

-- The hits as they read with names and text, for the reads that want every column; the
-- hot reads of the UI join only what they need.
CREATE VIEW hits_named AS
    SELECT h.id AS id, d.name AS detection, h.record_rowid AS record_rowid, r.id AS record_id,
           h.creation_time AS creation_time, g.group_key AS group_key,
           coalesce(h.details, g.group_key) AS details
    FROM hits h
    JOIN hit_detections d ON d.id = h.detection
    JOIN hit_groups g ON g.id = h.grp
    JOIN records r ON r.rowid = h.record_rowid;
