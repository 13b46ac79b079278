-- Aggregates and an index for the web UI (issue #5: pages < 50 ms on 1 M records).
-- The dashboard must not scan `records` or `hits` per request, so SQLite keeps small
-- rollup tables current through AFTER INSERT triggers, in the same transaction as the row
-- (invariant 1 holds for them too). The writer's code is unchanged. Rows of `records` and
-- `hits` are never deleted today; a change that deletes them must add DELETE triggers.

-- Records per workload and CreationTime hour (dashboard chart).
CREATE TABLE agg_record_hours (
    workload TEXT NOT NULL,
    hour     INTEGER NOT NULL,   -- creation_time / 3600
    count    INTEGER NOT NULL,
    PRIMARY KEY (workload, hour)
) WITHOUT ROWID;

-- Records per workload × content type: count and newest ingestion (inactivity monitor,
-- total record count).
CREATE TABLE agg_record_sources (
    workload      TEXT NOT NULL,
    content_type  INTEGER NOT NULL,
    count         INTEGER NOT NULL,
    last_ingested INTEGER NOT NULL,
    PRIMARY KEY (workload, content_type)
) WITHOUT ROWID;

-- Hits per detection and CreationTime hour: count and newest hit time.
CREATE TABLE agg_hit_hours (
    detection TEXT NOT NULL,
    hour      INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (detection, hour)
) WITHOUT ROWID;

-- Hits per detection and stored group key: count, first and last hit time (a
-- detection's grouped table over all time without reading its hits).
CREATE TABLE agg_hit_groups (
    detection  TEXT NOT NULL,
    group_key  TEXT NOT NULL,
    count      INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    PRIMARY KEY (detection, group_key)
) WITHOUT ROWID;

INSERT INTO agg_record_hours (workload, hour, count)
    SELECT workload, creation_time / 3600, count(*) FROM records GROUP BY 1, 2;
INSERT INTO agg_record_sources (workload, content_type, count, last_ingested)
    SELECT workload, content_type, count(*), max(ingested_at) FROM records GROUP BY 1, 2;
INSERT INTO agg_hit_hours (detection, hour, count, last_seen)
    SELECT detection, creation_time / 3600, count(*), max(creation_time) FROM hits GROUP BY 1, 2;
INSERT INTO agg_hit_groups (detection, group_key, count, first_seen, last_seen)
    SELECT detection, group_key, count(*), min(creation_time), max(creation_time) FROM hits
    GROUP BY 1, 2;

CREATE TRIGGER agg_records_insert AFTER INSERT ON records BEGIN
    INSERT INTO agg_record_hours (workload, hour, count)
        VALUES (new.workload, new.creation_time / 3600, 1)
        ON CONFLICT (workload, hour) DO UPDATE SET count = count + 1;
    INSERT INTO agg_record_sources (workload, content_type, count, last_ingested)
        VALUES (new.workload, new.content_type, 1, new.ingested_at)
        ON CONFLICT (workload, content_type) DO UPDATE
        SET count = count + 1, last_ingested = max(last_ingested, excluded.last_ingested);
END;

CREATE TRIGGER agg_hits_insert AFTER INSERT ON hits BEGIN
    INSERT INTO agg_hit_hours (detection, hour, count, last_seen)
        VALUES (new.detection, new.creation_time / 3600, 1, new.creation_time)
        ON CONFLICT (detection, hour) DO UPDATE
        SET count = count + 1, last_seen = max(last_seen, excluded.last_seen);
    INSERT INTO agg_hit_groups (detection, group_key, count, first_seen, last_seen)
        VALUES (new.detection, new.group_key, 1, new.creation_time, new.creation_time)
        ON CONFLICT (detection, group_key) DO UPDATE
        SET count = count + 1, first_seen = min(first_seen, excluded.first_seen),
            last_seen = max(last_seen, excluded.last_seen);
END;

-- A detection's grouped hits (the detection page, `detect` listings) read only this
-- covering index: no table lookups, and GROUP BY group_key needs no sort.
CREATE INDEX hits_detection_group ON hits (detection, group_key, creation_time);
