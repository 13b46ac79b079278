-- Triage of detection groups: the analyst's decision per (detection, group key), written
-- by the web UI and `m365audit triage`, the only rows either of them ever writes.
-- `group_key` is the key as the detection page shows it (canonical JSON text: the stored
-- group key, or the emitted details for a detection without group_by).
-- `hit_mark` is the highest hits.id when the state was last set: hits of the group above
-- it arrived after that decision (they reopen a resolved or false-positive group).
CREATE TABLE triage (
    detection  TEXT NOT NULL,
    group_key  TEXT NOT NULL,
    state      TEXT NOT NULL
               CHECK (state IN ('new', 'investigating', 'false_positive', 'resolved')),
    assignee   TEXT NOT NULL DEFAULT '',
    state_at   INTEGER NOT NULL,
    hit_mark   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (detection, group_key)
) WITHOUT ROWID;

-- Every change, in order: the state and assignee after it, and the note written with it
-- (empty when none). Rows are only appended: this is the group's history.
CREATE TABLE triage_notes (
    id         INTEGER PRIMARY KEY,
    detection  TEXT NOT NULL,
    group_key  TEXT NOT NULL,
    at         INTEGER NOT NULL,
    author     TEXT NOT NULL,
    state      TEXT NOT NULL,
    assignee   TEXT NOT NULL,
    note       TEXT NOT NULL
);
CREATE INDEX triage_notes_group ON triage_notes (detection, group_key, id);
