-- The first schema of the store. Append-only: later changes are new files.
-- Times are integer seconds (records) or milliseconds (blobs, cursors) since the Unix epoch, UTC.

CREATE TABLE tenants (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- zstd dictionaries that compress records.raw (dict 0 = plain zstd, no row here).
CREATE TABLE dicts (
    id         INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,
    bytes      BLOB NOT NULL
);

-- Every record once per (tenant, Id). Tables are derived from workload/operation
-- (model::RecordHeader::tables); content_type is the index into model::ContentType::ALL.
CREATE TABLE records (
    rowid         INTEGER PRIMARY KEY,
    tenant        INTEGER NOT NULL REFERENCES tenants(id),
    id            TEXT NOT NULL,
    creation_time INTEGER NOT NULL,
    workload      TEXT NOT NULL,
    operation     TEXT NOT NULL,
    record_type   INTEGER NOT NULL,
    user_id       TEXT NOT NULL,
    client_ip     TEXT NOT NULL,
    content_type  INTEGER NOT NULL,
    ingested_at   INTEGER NOT NULL,
    dict          INTEGER NOT NULL DEFAULT 0,
    raw           BLOB NOT NULL,
    UNIQUE (tenant, id)
);
-- No secondary indexes on user_id / client_ip: random-key B-trees multiply the write
-- volume of every insert; the search index answers "records of a user / an IP".

-- The blob ledger: every listed blob, its state and the attempts spent on it.
CREATE TABLE blobs (
    id                 INTEGER PRIMARY KEY,
    tenant             INTEGER NOT NULL REFERENCES tenants(id),
    content_type       TEXT NOT NULL,
    content_id         TEXT NOT NULL,
    content_uri        TEXT NOT NULL,
    content_created    INTEGER NOT NULL,
    content_expiration INTEGER NOT NULL,
    state              TEXT NOT NULL DEFAULT 'pending'
                       CHECK (state IN ('pending', 'done', 'failed', 'expired')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    last_error         TEXT,
    next_attempt_at    INTEGER NOT NULL DEFAULT 0,
    record_count       INTEGER,
    new_records        INTEGER,
    listed_at          INTEGER NOT NULL,
    finished_at        INTEGER,
    UNIQUE (tenant, content_id)
);
CREATE INDEX blobs_pending ON blobs (tenant, content_type, content_created) WHERE state = 'pending';

-- Listing cursors: every blob with contentCreated < cursor has been noted in `blobs`.
CREATE TABLE cursors (
    tenant       INTEGER NOT NULL REFERENCES tenants(id),
    content_type TEXT NOT NULL,
    cursor       INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant, content_type)
);

-- The loss ledger (invariant 6): everything the store knows it does not have.
CREATE TABLE gaps (
    id           INTEGER PRIMARY KEY,
    tenant       INTEGER NOT NULL REFERENCES tenants(id),
    kind         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    window_start INTEGER,
    window_end   INTEGER,
    content_id   TEXT,
    count        INTEGER NOT NULL DEFAULT 1,
    detail       TEXT NOT NULL DEFAULT '',
    at           INTEGER NOT NULL
);

-- One row per output of a detection on a record.
CREATE TABLE hits (
    id            INTEGER PRIMARY KEY,
    detection     TEXT NOT NULL,
    record_rowid  INTEGER NOT NULL REFERENCES records(rowid),
    record_id     TEXT NOT NULL,
    creation_time INTEGER NOT NULL,
    group_key     TEXT NOT NULL,
    details       TEXT NOT NULL
);
CREATE INDEX hits_detection ON hits (detection, creation_time);
CREATE INDEX hits_record ON hits (record_rowid);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

-- Forwarding queue (invariant 5); rows only when forwarding is configured.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY,
    record_rowid INTEGER NOT NULL REFERENCES records(rowid),
    created_at   INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT
);

-- Per content type collection state, for stats and the UI.
CREATE TABLE streams (
    tenant       INTEGER NOT NULL REFERENCES tenants(id),
    content_type TEXT NOT NULL,
    state        TEXT NOT NULL,
    last_error   TEXT,
    lag_secs     INTEGER,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant, content_type)
);

-- Free-form status documents (JSON), e.g. the collector's auth state.
CREATE TABLE status (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
