//! The store: the only owner of SQLite and tantivy. Nothing else in the crate writes SQL
//! or touches the index.
//!
//! # Shape
//!
//! `Store` is a cheap `Clone + Send + Sync` handle over one data directory:
//!
//! ```text
//! <data>/m365audit.db   SQLite (WAL, 8 KiB pages): the single source of truth
//! <data>/index-v5/      tantivy: derived from SQLite, rebuildable by deleting it
//! ```
//!
//! * **Records** (`ingest_blob`, `import_records`) are first *prepared* on two preparer
//!   threads — JSON parsing, zstd with the shared dictionary, the detections — so the
//!   CPU-heavy work runs in parallel and the writer only inserts.
//! * **Writes** go to one writer thread (`writer.rs`) as commands over a channel, grouped
//!   into one transaction of up to 64 commands (each one unit of work, `unit.rs`); each
//!   write method returns a [`Reply`], which is either `.await`ed (async code — the await
//!   never blocks a worker) or `.wait()`ed (plain threads, never inside the runtime).
//! * **Reads** are plain blocking methods on read-only connections from a small pool. In
//!   async code call them inside `tokio::task::spawn_blocking` (invariant 8).
//! * **Search** runs on a tantivy reader; the indexer thread follows the writer.
//!
//! # Where things are
//!
//! ```text
//! handle.rs   Store::open (writer, preparer and indexer threads) / open_read_only / close;
//!             how a write reaches the writer thread and its Reply comes back
//! writes.rs   the write methods (TX1 note_listing, TX2 ingest_blob, import_records, gaps,
//!             blob retries, status, counters, flush): each returns a Reply
//! reads.rs    blocking reads: cursors and pending blobs, records (pages, by id, by user or
//!             IP, for_each_record), hits, gaps, search
//! scan.rs     for_each_candidate: header columns first, raw JSON only when asked; PackedDecoder
//! stats.rs    stats() and its types (Serialize = `stats --json`); report.rs renders the text
//! ui_queries.rs  the reads the web UI needs (dashboard, groups, timelines)
//! writer.rs   the writer thread: group transactions, preparing records and their hits
//! unit.rs     one write's atomic share of a group: when it needs a savepoint, when a
//!             failed write rolls back its group
//! checkpointer.rs  the thread that checkpoints the WAL beside the writer
//! index.rs, tokenizer.rs   the tantivy index and its tokenizer; db.rs  schema, migrations, codec
//! outbox.rs   the Devo forwarder's queue: outbox on/off, batches in id order, deletes
//!             after the receiver accepted (invariant 5), backfill, forwarding state
//! activity.rs  status values, the monitor's state and the activity it evaluates
//! liveness.rs  whether a collector runs: the `collector` row judged by pid and heartbeat
//! ui_user_hits.rs  a detection's hits on one user's records (the user-filtered page)
//! triage.rs   triage of detection groups: its own writer connection, the reopen rule
//! ```
//!
//! Tables (`migrations/`): `records` (header columns, zstd raw JSON with a trained
//! dictionary), `blobs` (the ledger: pending/done/failed/expired, attempts, last_error),
//! `cursors`, `gaps` (the loss ledger), `hits`, `counters`, `outbox` (the forwarder's queue,
//! `outbox.rs`), `streams` (per content type state), `status`, `tenants`, `dicts`, `imports`
//! (the evidence ledger: one row per imported file, listed by `stats` and the status page),
//! `triage` and `triage_notes` (the analyst's decisions per detection group, `triage.rs`:
//! the only rows written from outside the writer thread, by the UI and `m365audit triage`).
//!
//! A store this process cannot write (read-only media, another user's directory) opens
//! read-only without creating or changing a file: SQLite `immutable=1` when the ordinary
//! read-only open cannot create its `-wal`/`-shm` files, tantivy through a directory
//! wrapper whose locks are no-ops (`db::open_reader`, `index::open_read_only`).
//!
//! # Invariants kept here (docs/architecture.md, Invariants)
//!
//! 1. A blob becomes `done` in the transaction that stores its records, hits and (while
//!    forwarding is on) outbox rows (`Writer::ingest_blob`); after a crash it is fully
//!    stored or still pending. A write that fails after changing rows never commits any
//!    of them: in a shared group the whole group is rolled back and every write in it
//!    answered with an error (`unit.rs`).
//! 2. Records are unique per (tenant, Id): `UNIQUE (tenant, id)` + `INSERT OR IGNORE`;
//!    every ignored insert adds one to the counter `duplicates_dropped`.
//! 3. `cursor = max(cursor, new)`: a cursor never moves back. The collector calls
//!    `note_listing` only after every page of a window was listed.
//! 4. The index only sees committed rows, in rowid order, and commits with the payload
//!    "highest rowid indexed"; on open it catches up from SQLite. Delete it to rebuild.
//! 6. Expired blobs, blobs that failed for good, records without Id/CreationTime and
//!    clamped windows are rows in `gaps`, shown by `stats()`.
//! 8. SQLite, zstd, jaq (via `detect::Runner`) and tantivy run on the writer,
//!    preparer, checkpoint or indexer threads or the caller's own (blocking) thread, never on an
//!    async worker.

mod activity;
mod checkpointer;
mod db;
mod dict_sampler;
mod handle;
mod hit_keys;
mod index;
pub mod liveness;
mod outbox;
mod reads;
mod report;
mod scan;
mod stats;
mod tokenizer;
mod triage;
mod unit;
mod writer;
mod writes;

pub mod ui_queries;
pub mod ui_user_hits;

pub use handle::{Reply, Store};
pub(crate) use handle::{create_private_dir, create_private_file};
pub use outbox::{OutboxItem, OutboxStats, RESENT as OUTBOX_RESENT};
pub use report::render_stats;
pub use scan::{PackedDecoder, RawJson, ScanRow};
pub use stats::{
    COLLECTOR_STATUS_KEY, ContentTypeStats, GapSummary, IndexStats, MonitorStats, RecordCounts,
    Stats, dir_bytes,
};
pub use triage::{TriageChange, TriageNote, TriageRow, TriageState, TriageWriter, canonical_key};
pub use writer::MAX_MALFORMED_ATTEMPTS;
#[cfg(test)]
pub(crate) use writer::{SharedDict, prepare_blob};

use crate::detect::Detections;
use crate::model::{BlobRef, ContentType, RecordHeader, format_api_time};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::{Future, IntoFuture};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::mpsc::{Sender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "m365audit.db";

/// One stored record: its header columns and the raw JSON exactly as received.
#[derive(Debug, Clone, Serialize)]
pub struct StoredRecord {
    pub rowid: i64,
    pub tenant: String,
    /// `organization_id` is not a column: it is empty here (read it from `raw`).
    pub header: RecordHeader,
    pub content_type: ContentType,
    pub ingested_at: DateTime<Utc>,
    pub raw: String,
}

impl StoredRecord {
    /// Parses the raw JSON (as Microsoft sent it).
    pub fn value(&self) -> Result<Value> {
        crate::model::parse_record(self.raw.as_bytes()).context("stored record is not JSON")
    }

    /// Every table this record belongs to, the union table first.
    pub fn tables(&self) -> Vec<String> {
        self.header.tables()
    }
}

/// One stored detection hit.
#[derive(Debug, Clone, Serialize)]
pub struct StoredHit {
    pub id: i64,
    pub detection: String,
    pub record_rowid: i64,
    pub record_id: String,
    pub creation_time: DateTime<Utc>,
    pub group_key: Value,
    pub details: Value,
}

/// A pending blob due for a fetch.
#[derive(Debug, Clone)]
pub struct PendingBlob {
    pub blob_id: i64,
    pub blob: BlobRef,
    pub attempts: i64,
    pub content_created: DateTime<Utc>,
    pub content_expiration: DateTime<Utc>,
}

/// The kinds of rows in the loss ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GapKind {
    /// contentExpiration passed before the blob was fetched (or the API said AF20051).
    Expired,
    /// The blob failed for good (malformed after N attempts, invalid content id, foreign host…).
    Failed,
    /// A window older than now − 7 days could not be listed (the cursor was clamped).
    Clamped,
    /// The API answered 404 / AF20050 for a listed blob.
    NotFound,
    /// Records inside a stored blob without a usable Id or CreationTime.
    BadRecord,
}

impl GapKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GapKind::Expired => "expired",
            GapKind::Failed => "failed",
            GapKind::Clamped => "clamped",
            GapKind::NotFound => "not_found",
            GapKind::BadRecord => "bad_record",
        }
    }
}

/// A new row for the loss ledger.
#[derive(Debug, Clone)]
pub struct NewGap {
    pub kind: GapKind,
    pub content_type: String,
    pub window_start: Option<DateTime<Utc>>,
    pub window_end: Option<DateTime<Utc>>,
    pub content_id: Option<String>,
    pub count: i64,
    pub detail: String,
}

/// A row of the loss ledger.
#[derive(Debug, Clone, Serialize)]
pub struct GapRow {
    pub id: i64,
    pub tenant: String,
    pub kind: String,
    pub content_type: String,
    pub window_start: Option<String>,
    pub window_end: Option<String>,
    pub content_id: Option<String>,
    pub count: i64,
    pub detail: String,
    pub at: DateTime<Utc>,
}

/// What storing a batch of records did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IngestOutcome {
    /// Records in the input.
    pub records: usize,
    /// Newly stored.
    pub new: usize,
    /// Already stored (same tenant and Id): dropped and counted.
    pub duplicates: usize,
    /// Without a usable Id/CreationTime (or not JSON objects): not stored, counted as a gap.
    pub bad_records: usize,
    pub hits: usize,
    #[serde(skip)]
    pub first_bad: Option<String>,
    /// Each record not stored: its position in the batch and why (import reports them
    /// as `file:line`).
    #[serde(skip)]
    pub bad_at: Vec<(usize, String)>,
}

/// One imported file in the evidence ledger (`stats`, the status page).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportRow {
    /// The path as given on the command line.
    pub file: String,
    /// Bytes of the file as given (compressed, for a gzip).
    pub size: u64,
    /// SHA-256 of those bytes, hex.
    pub sha256: String,
    pub format: String,
    /// Records read from the file (stored + duplicates + bad).
    pub records: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub bad: u64,
    /// Where a damaged file stopped being readable; None when it was read to the end.
    pub damage: Option<String>,
    pub started_at: DateTime<Utc>,
    pub seconds: f64,
}

/// What `ingest_blob` did.
#[derive(Debug, Clone, PartialEq)]
pub enum BlobIngest {
    Stored(IngestOutcome),
    /// The blob was not pending any more (stored, failed or expired before): nothing done.
    AlreadyFinished,
    /// The body is not a JSON array; the blob stays pending until `failed` is true (after
    /// `MAX_MALFORMED_ATTEMPTS`, with a gap row).
    Malformed {
        attempts: i64,
        failed: bool,
    },
}

/// Per content type collection state shown by `stats` and the UI.
#[derive(Debug, Clone, Default)]
pub struct StreamState {
    /// e.g. "ok", "backfilling (window 3 of 30)", "catching up (window 2 of 5)", "subscription_disabled", "audit_disabled", "auth_failed", "error".
    pub state: String,
    pub last_error: Option<String>,
    pub lag_secs: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    pub id: String,
    pub table: String,
    pub creation_time: String,
    pub operation: String,
    pub workload: String,
    pub user_id: String,
    pub client_ip: String,
    pub rowid: i64,
}

/// `search --json` (docs/architecture.md, CLI).
#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    pub total: usize,
    pub hits: Vec<SearchHit>,
    /// Stored records the index does not cover yet, so no search saw them: a few seconds'
    /// worth while a collector runs; more after a writer was killed, until the next
    /// writable open catches the index up (never, on read-only evidence).
    pub not_indexed: u64,
}

impl SearchResult {
    /// What a reader of the results must be told when the index is behind (None when it
    /// covers every stored record).
    pub fn incomplete_note(&self) -> Option<String> {
        (self.not_indexed > 0).then(|| {
            format!(
                "the search index does not cover the newest {} stored records, so they were \
                 not searched; `collect`, `run` or `import` bring it up to date when they open \
                 this data directory",
                self.not_indexed
            )
        })
    }
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> anyhow::Error {
    anyhow::anyhow!("a store lock was poisoned by a panic")
}

#[cfg(test)]
mod tests;
