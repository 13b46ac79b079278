-- The evidence ledger of `import`: one row per imported file, so a report can say exactly
-- which files went in (name, size, SHA-256 of the bytes as given) and what came of them.
-- Rows are only appended. `damage` says where a damaged file (a truncated gzip, a read
-- error) stopped being readable; NULL when the whole file was read.
CREATE TABLE imports (
    id          INTEGER PRIMARY KEY,
    file        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    format      TEXT NOT NULL,
    records     INTEGER NOT NULL,
    stored      INTEGER NOT NULL,
    duplicates  INTEGER NOT NULL,
    bad         INTEGER NOT NULL,
    damage      TEXT,
    started_at  INTEGER NOT NULL,
    seconds     REAL NOT NULL
);
