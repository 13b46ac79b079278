//! The store: the only owner of SQLite and tantivy. Nothing else in the crate writes SQL
//! or touches the index.
//!
//! # Shape
//!
//! `Store` is a cheap `Clone + Send + Sync` handle over one data directory:
//!
//! ```text
//! <data>/m365audit.db   SQLite (WAL, 8 KiB pages): the single source of truth
//! <data>/index-v3/      tantivy: derived from SQLite, rebuildable by deleting it
//! ```
//!
//! * **Records** (`ingest_blob`, `import_records`) are first *prepared* on two preparer
//!   threads — JSON parsing, zstd with the shared dictionary, the detections — so the
//!   CPU-heavy work runs in parallel and the writer only inserts.
//! * **Writes** go to one writer thread (`writer.rs`) as commands over a channel, grouped
//!   into one transaction of up to 64 commands (each in its own savepoint); each
//!   write method returns a [`Reply`], which is either `.await`ed (async code — the await
//!   never blocks a worker) or `.wait()`ed (plain threads, never inside the runtime).
//! * **Reads** are plain blocking methods on read-only connections from a small pool. In
//!   async code call them inside `tokio::task::spawn_blocking` (invariant 8).
//! * **Search** runs on a tantivy reader; the indexer thread follows the writer.
//!
//! # Public API
//!
//! ```text
//! Store::open(data_dir, Arc<Detections>) -> Result<Store>      writer + indexer threads
//! Store::open_read_only(data_dir) -> Result<Store>             stats/search/detect/ui alongside a collector
//! store.close() -> Result<()>                                  flush the index, join threads
//!
//! // writes (Reply<T>: `.await` or `.wait()`)
//! note_listing(tenant, ct, window_end, Vec<BlobRef>) -> Reply<usize>        TX1, new blobs
//! clamp_cursor(tenant, ct, lost_start, lost_end, detail) -> Reply<()>       gap "clamped" + cursor
//! ingest_blob(blob_id, Bytes) -> Reply<BlobIngest>                          TX2
//! retry_blob_later(blob_id, error, next_attempt_at) -> Reply<()>            transient: stays pending
//! give_up_blob(blob_id, GapKind, error) -> Reply<()>                        terminal: failed/expired + gap
//! expire_blobs(tenant, ct, now) -> Reply<usize>                             contentExpiration ≤ now
//! record_gap(tenant, NewGap) -> Reply<()>
//! import_records(default_tenant, Vec<String raw JSON>) -> Reply<IngestOutcome>   in call order; bad_at = (index, why)
//! record_import(ImportRow) -> Reply<()>                                    the evidence ledger
//! set_stream_state(tenant, ct, StreamState) -> Reply<()>
//! set_status(key, serde_json::Value) -> Reply<()>                           e.g. "auth", "monitor"
//! bump_counter(name, by) -> Reply<()>
//! flush() -> Reply<i64>                                                     index committed up to rowid
//!
//! // reads (blocking)
//! cursor(tenant, ct) -> Result<Option<DateTime<Utc>>>
//! pending_blobs(tenant, ct, now, limit) -> Result<Vec<PendingBlob>>   due now, oldest first
//! pending_count(tenant, ct) -> Result<i64>
//! next_pending_due(tenant, ct) -> Result<Option<DateTime<Utc>>>
//! for_each_record(table, after_rowid, |StoredRecord| -> Result<bool /*go on*/>) -> Result<()>
//! for_each_candidate(table, after_rowid, |ScanRow, RawJson| -> Result<bool>)   header first, raw only when asked
//! packed_decoder() -> PackedDecoder                               decompress RawJson::packed() on other threads
//! records_page(table, after_rowid, limit) -> Result<Vec<StoredRecord>>      rowid order
//! record_by_rowid(rowid) / record_by_id(id) -> Result<Option<StoredRecord>>
//! records_of_user(user, limit) / records_of_ip(ip, limit) -> Result<Vec<StoredRecord>>  newest first
//! hits(detection: Option<&str>, after_id, limit) -> Result<Vec<StoredHit>>  id order
//! for_each_hit(detection: Option<&str>, |StoredHit| -> Result<bool>) -> Result<()>
//! hits_of_record(rowid) -> Result<Vec<StoredHit>>
//! hit_counts() -> Result<BTreeMap<String, i64>>
//! gaps() -> Result<Vec<GapRow>>
//! status(key) -> Result<Option<Value>>; monitor_state(); collector_id()
//! monitor_activity(collector_id) -> Result<Vec<monitor::Activity>>   per Workload / content type
//! stats() -> Result<Stats>                                        Serialize = `stats --json`
//! search(query, limit) -> Result<SearchResult>                    Serialize = `search --json`
//! record_keys() -> Result<Vec<(String tenant, String id)>>        tests: compare with truth
//! imports() -> Result<Vec<ImportRow>>                             every imported file, oldest first
//! ```
//!
//! Tables (`migrations/`): `records` (header columns, zstd raw JSON with a trained
//! dictionary), `blobs` (the ledger: pending/done/failed/expired, attempts, last_error),
//! `cursors`, `gaps` (the loss ledger), `hits`, `counters`, `outbox` (schema only),
//! `streams` (per content type state), `status`, `tenants`, `dicts`, `imports` (the
//! evidence ledger: one row per imported file).
//!
//! # Invariants kept here (ARCHITECTURE.md §3)
//!
//! 1. A blob becomes `done` in the transaction that stores its records and hits
//!    (`Writer::ingest_blob`); after a crash it is fully stored or still pending.
//! 2. Records are unique per (tenant, Id): `UNIQUE (tenant, id)` + `INSERT OR IGNORE`;
//!    every ignored insert adds one to the counter `duplicates_dropped`.
//! 3. `cursor = max(cursor, new)`: a cursor never moves back. The collector calls
//!    `note_listing` only after every page of a window was listed.
//! 4. The index only sees committed rows, in rowid order, and commits with the payload
//!    "highest rowid indexed"; on open it catches up from SQLite. Delete it to rebuild.
//! 6. Expired blobs, blobs that failed for good, records without Id/CreationTime and
//!    clamped windows are rows in `gaps`, shown by `stats()`.
//! 8. SQLite, zstd, jaq (via `Detections::run_bytes`) and tantivy run on the writer,
//!    preparer or indexer threads or the caller's own (blocking) thread, never on an
//!    async worker.

mod activity;
mod db;
mod index;
mod report;
mod scan;
mod tokenizer;
mod writer;

pub mod ui_queries;

pub use report::{render_stats, search_command, stats_command};
pub use scan::{PackedDecoder, RawJson, ScanRow};
pub use writer::MAX_MALFORMED_ATTEMPTS;

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
        serde_json::from_str(&self.raw).context("stored record is not JSON")
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
    /// e.g. "ok", "backfilling", "subscription_disabled", "audit_disabled", "auth_failed", "error".
    pub state: String,
    pub last_error: Option<String>,
    pub lag_secs: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordCounts {
    pub total: i64,
    pub by_table: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GapSummary {
    pub kind: String,
    pub content_type: String,
    pub count: i64,
    pub events: i64,
    pub window_start: Option<String>,
    pub window_end: Option<String>,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    pub last_detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContentTypeStats {
    pub cursor: Option<String>,
    pub lag_secs: Option<i64>,
    pub state: Option<String>,
    pub last_error: Option<String>,
    pub pending_blobs: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct IndexStats {
    pub indexed_upto_rowid: i64,
    pub records_behind: i64,
}

/// `stats --json` (ARCHITECTURE §7).
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub records: RecordCounts,
    pub duplicates_dropped: i64,
    pub gaps: Vec<GapSummary>,
    pub content_types: BTreeMap<String, ContentTypeStats>,
    pub blobs: BTreeMap<String, i64>,
    pub hits: BTreeMap<String, i64>,
    pub counters: BTreeMap<String, i64>,
    pub auth: Option<Value>,
    /// The inactivity monitor, judged at the time of `stats()`; None until a collector ran.
    pub monitor: Option<MonitorStats>,
    pub index: Option<IndexStats>,
    pub db_bytes: u64,
    pub index_bytes: u64,
    /// Every imported file, oldest first: the evidence that went in.
    pub imports: Vec<ImportRow>,
}

/// `stats --json` → `monitor`: the guide's "Monitor It" evaluated now over what is stored,
/// with the alerts the collector raised and cleared.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorStats {
    pub collector_id: String,
    pub quiet_secs: i64,
    pub since: DateTime<Utc>,
    pub evaluated_at: DateTime<Utc>,
    /// How many sources alert now.
    pub alerts: usize,
    pub sources: Vec<crate::detect::monitor::Status>,
    /// The newest raised/cleared alerts first (at most 20).
    pub history: Vec<crate::detect::monitor::Transition>,
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

/// `search --json` (ARCHITECTURE §7).
#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    pub total: usize,
    pub hits: Vec<SearchHit>,
}

/// What a command leaves for after the commit of its group: it receives the writer and
/// the commit error, if the commit failed.
type After = Box<dyn FnOnce(&mut writer::Writer, Option<&anyhow::Error>) + Send>;
type Cmd = Box<dyn FnOnce(&mut writer::Writer) -> After + Send>;

/// Commands grouped into one transaction at most (group commit: each in its own savepoint,
/// replies sent after the commit).
const GROUP_MAX: usize = 64;

/// The answer of the writer thread to one write.
pub struct Reply<T>(std::result::Result<oneshot::Receiver<Result<T>>, String>);

impl<T> Reply<T> {
    /// Waits on a plain thread. Panics if called on an async runtime thread (use `.await`).
    pub fn wait(self) -> Result<T> {
        match self.0 {
            Ok(rx) => rx
                .blocking_recv()
                .map_err(|_| anyhow::anyhow!("the store writer stopped"))?,
            Err(e) => Err(anyhow::anyhow!(e)),
        }
    }
}

impl<T: Send + 'static> IntoFuture for Reply<T> {
    type Output = Result<T>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<T>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            match self.0 {
                Ok(rx) => rx
                    .await
                    .map_err(|_| anyhow::anyhow!("the store writer stopped"))?,
                Err(e) => Err(anyhow::anyhow!(e)),
            }
        })
    }
}

struct Inner {
    data_dir: PathBuf,
    db_path: PathBuf,
    codec: db::Codec,
    pool: Mutex<Vec<Connection>>,
    searcher: Option<index::Searcher>,
    writer: Mutex<Option<Sender<Cmd>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Jobs for the preparer threads (parse, compress, detect before the writer).
    prep: Mutex<Option<Sender<Job>>>,
    prep_threads: Mutex<Vec<JoinHandle<()>>>,
    detections: Arc<Detections>,
    dict: writer::SharedDict,
    /// The order in which prepared import batches go to the writer.
    order: Mutex<Order>,
}

/// Tickets handed out in call order; prepared batches wait here until every earlier
/// ticket went to the writer (`None`: its preparation failed, nothing to send).
#[derive(Default)]
struct Order {
    next_ticket: u64,
    next_send: u64,
    ready: BTreeMap<u64, Option<Cmd>>,
}

type Job = Box<dyn FnOnce() + Send>;

/// Preparer threads: the CPU-heavy part of storing (JSON parsing, zstd, jaq) runs here,
/// in parallel, so the single writer thread only inserts.
const PREPARERS: usize = 2;

/// The handle over one data directory (see the module docs).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

fn check_dir(data_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let probe = data_dir.join(".m365audit-write-test");
    std::fs::write(&probe, b"")
        .with_context(|| format!("the data directory {} is not writable", data_dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir`: migrations, the writer thread
    /// and the indexer thread (which first catches up with SQLite). Fails if another
    /// process has the same data directory open for writing.
    pub fn open(data_dir: &Path, detections: Arc<Detections>) -> Result<Store> {
        check_dir(data_dir)?;
        let db_path = data_dir.join(DB_FILE);
        let conn = db::open_writer(&db_path)?;
        index::remove_old(data_dir);
        let (idx, fields) = index::open(&data_dir.join(index::INDEX_DIR))?;
        let indexer = index::Indexer::new(&idx, fields)?;
        let searcher = index::Searcher::new(idx, fields)?;
        let codec = db::Codec::default();
        let (itx, irx) = sync_channel::<index::IndexMsg>(8);
        let ipath = db_path.clone();
        let icodec = codec.clone();
        let indexer_thread = std::thread::Builder::new()
            .name("store-indexer".into())
            .spawn(move || indexer.run(irx, ipath, icodec))?;
        let dict: writer::SharedDict = Arc::default();
        let mut w = writer::Writer::new(conn, dict.clone(), itx)?;
        let (ptx, prx) = std::sync::mpsc::channel::<Job>();
        let prx = Arc::new(Mutex::new(prx));
        let mut prep_threads = Vec::new();
        for i in 0..PREPARERS {
            let prx = prx.clone();
            prep_threads.push(
                std::thread::Builder::new()
                    .name(format!("store-prepare-{i}"))
                    .spawn(move || {
                        loop {
                            let job = match prx.lock() {
                                Ok(rx) => rx.recv(),
                                Err(_) => return,
                            };
                            match job {
                                Ok(job) => job(),
                                Err(_) => return,
                            }
                        }
                    })?,
            );
        }
        let (tx, rx) = std::sync::mpsc::channel::<Cmd>();
        let writer_thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                while let Ok(cmd) = rx.recv() {
                    if let Err(e) = w.begin() {
                        // Without a group the command runs alone: its savepoint is then
                        // its own transaction.
                        tracing::warn!(error = %format!("{e:#}"), "cannot start a transaction group");
                        let after = cmd(&mut w);
                        w.send_pending();
                        after(&mut w, None);
                        continue;
                    }
                    let mut afters = vec![cmd(&mut w)];
                    while afters.len() < GROUP_MAX {
                        match rx.try_recv() {
                            Ok(cmd) => afters.push(cmd(&mut w)),
                            Err(_) => break,
                        }
                    }
                    let err = w.commit().err();
                    if let Some(e) = &err {
                        tracing::error!(error = %format!("{e:#}"), "store commit failed; the group is rolled back");
                    }
                    for after in afters {
                        after(&mut w, err.as_ref());
                    }
                }
                w.close_index();
                // Fold the WAL back into the database so a closed store is one file.
                w.checkpoint();
                drop(w);
                if indexer_thread.join().is_err() {
                    tracing::error!("search indexer thread panicked");
                }
            })?;
        Ok(Store {
            inner: Arc::new(Inner {
                data_dir: data_dir.to_path_buf(),
                db_path,
                codec,
                pool: Mutex::new(Vec::new()),
                searcher: Some(searcher),
                writer: Mutex::new(Some(tx)),
                threads: Mutex::new(vec![writer_thread]),
                prep: Mutex::new(Some(ptx)),
                prep_threads: Mutex::new(prep_threads),
                detections,
                dict,
                order: Mutex::default(),
            }),
        })
    }

    /// Opens an existing store for reading only (no threads, no locks); write methods
    /// fail. Safe next to a running collector. A store this process cannot write (evidence
    /// on read-only media, another user's directory) is read without creating or changing
    /// a single file: SQLite immutable, the index through a read-only directory.
    pub fn open_read_only(data_dir: &Path) -> Result<Store> {
        let db_path = data_dir.join(DB_FILE);
        if !db_path.exists() {
            anyhow::bail!(
                "no store in {} (run `m365audit collect` or `m365audit import` first)",
                data_dir.display()
            );
        }
        let conn = db::open_reader(&db_path)?;
        let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if v != db::SCHEMA_VERSION {
            anyhow::bail!(
                "the store in {} has schema version {v}, this build reads {}; run `m365audit collect` to migrate",
                data_dir.display(),
                db::SCHEMA_VERSION
            );
        }
        let idir = data_dir.join(index::INDEX_DIR);
        let searcher = if idir.join("meta.json").exists() {
            Some(index::open_read_only(&idir)?)
        } else {
            None
        };
        Ok(Store {
            inner: Arc::new(Inner {
                data_dir: data_dir.to_path_buf(),
                db_path,
                codec: db::Codec::default(),
                pool: Mutex::new(vec![conn]),
                searcher,
                writer: Mutex::new(None),
                threads: Mutex::new(Vec::new()),
                prep: Mutex::new(None),
                prep_threads: Mutex::new(Vec::new()),
                detections: Arc::new(Detections::empty()),
                dict: Arc::default(),
                order: Mutex::default(),
            }),
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// Stops accepting writes, lets the writer finish every queued command, commits the
    /// index and joins the threads. Other clones see "store closed" afterwards.
    pub fn close(&self) -> Result<()> {
        // preparers first: their queued jobs still hand work to the writer
        let ptx = self.inner.prep.lock().map_err(poisoned)?.take();
        drop(ptx);
        let preps: Vec<_> = self
            .inner
            .prep_threads
            .lock()
            .map_err(poisoned)?
            .drain(..)
            .collect();
        for t in preps {
            t.join()
                .map_err(|_| anyhow::anyhow!("a store preparer thread panicked"))?;
        }
        let tx = self.inner.writer.lock().map_err(poisoned)?.take();
        drop(tx);
        let threads: Vec<_> = self
            .inner
            .threads
            .lock()
            .map_err(poisoned)?
            .drain(..)
            .collect();
        for t in threads {
            t.join()
                .map_err(|_| anyhow::anyhow!("the store writer thread panicked"))?;
        }
        Ok(())
    }

    fn call_with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut writer::Writer, oneshot::Sender<Result<T>>) -> After + Send + 'static,
    ) -> Reply<T> {
        let (tx, rx) = oneshot::channel();
        match self.send_cmd(f, tx) {
            Ok(()) => Reply(Ok(rx)),
            Err(e) => Reply(Err(e)),
        }
    }

    /// Queues a command for the writer; on failure `tx` is dropped (the reply says the
    /// writer stopped) and the reason returned.
    fn send_cmd<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut writer::Writer, oneshot::Sender<Result<T>>) -> After + Send + 'static,
        tx: oneshot::Sender<Result<T>>,
    ) -> std::result::Result<(), String> {
        let guard = self
            .inner
            .writer
            .lock()
            .map_err(|_| "a store lock was poisoned".to_string())?;
        let Some(w) = guard.as_ref() else {
            return Err("the store is read-only or closed; writes are not possible".into());
        };
        let cmd: Cmd = Box::new(move |w| f(w, tx));
        w.send(cmd)
            .map_err(|_| "the store writer stopped".to_string())
    }

    /// Runs `prepare` on a preparer thread, then `f` with its result on the writer
    /// (inside the current group, like `call`).
    fn prepare_then<P: Send + 'static, T: Send + 'static>(
        &self,
        prepare: impl FnOnce(&Detections, &writer::SharedDict) -> Result<P> + Send + 'static,
        f: impl FnOnce(&mut writer::Writer, P) -> Result<T> + Send + 'static,
    ) -> Reply<T> {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let store = self.clone();
        let job: Job = Box::new(move || {
            let p = match prepare(&store.inner.detections, &store.inner.dict) {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let _ = store.send_cmd(
                move |w, tx| {
                    let r = f(w, p);
                    Box::new(move |_, commit_err| {
                        let r = match (r, commit_err) {
                            (Ok(_), Some(e)) => Err(anyhow::anyhow!("{e:#}")),
                            (r, _) => r,
                        };
                        let _ = tx.send(r);
                    })
                },
                tx,
            );
        });
        let sent = match self.inner.prep.lock() {
            Ok(g) => match g.as_ref() {
                Some(p) => p.send(job).is_ok(),
                None => false,
            },
            Err(_) => false,
        };
        if !sent {
            return Reply(Err(
                "the store is read-only or closed; writes are not possible".into(),
            ));
        }
        Reply(Ok(rx))
    }

    /// Like [`Store::prepare_then`], but the writer receives the batches in the order of
    /// the calls, whichever preparer finishes first: an imported file is stored in file
    /// order (rowid order = line order), so importing the same file twice, or an export
    /// of it, gives the same store.
    fn prepare_then_in_order<P: Send + 'static, T: Send + 'static>(
        &self,
        prepare: impl FnOnce(&Detections, &writer::SharedDict) -> Result<P> + Send + 'static,
        f: impl FnOnce(&mut writer::Writer, P) -> Result<T> + Send + 'static,
    ) -> Reply<T> {
        let ticket = match self.inner.order.lock() {
            Ok(mut o) => {
                o.next_ticket += 1;
                o.next_ticket - 1
            }
            Err(_) => return Reply(Err("a store lock was poisoned".into())),
        };
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let store = self.clone();
        let job: Job = Box::new(move || {
            let cmd: Option<Cmd> = match prepare(&store.inner.detections, &store.inner.dict) {
                Ok(p) => Some(Box::new(move |w: &mut writer::Writer| -> After {
                    let r = f(w, p);
                    Box::new(move |_, commit_err| {
                        let r = match (r, commit_err) {
                            (Ok(_), Some(e)) => Err(anyhow::anyhow!("{e:#}")),
                            (r, _) => r,
                        };
                        let _ = tx.send(r);
                    })
                })),
                Err(e) => {
                    let _ = tx.send(Err(e));
                    None
                }
            };
            let Ok(mut o) = store.inner.order.lock() else {
                return;
            };
            o.ready.insert(ticket, cmd);
            loop {
                let n = o.next_send;
                let Some(cmd) = o.ready.remove(&n) else {
                    break;
                };
                o.next_send += 1;
                if let Some(cmd) = cmd {
                    let sent = match store.inner.writer.lock() {
                        Ok(g) => g.as_ref().is_some_and(|w| w.send(cmd).is_ok()),
                        Err(_) => false,
                    };
                    if !sent {
                        tracing::error!("the store writer stopped; an import batch was not stored");
                    }
                }
            }
        });
        let sent = match self.inner.prep.lock() {
            Ok(g) => match g.as_ref() {
                Some(p) => p.send(job).is_ok(),
                None => false,
            },
            Err(_) => false,
        };
        if !sent {
            return Reply(Err(
                "the store is read-only or closed; writes are not possible".into(),
            ));
        }
        Reply(Ok(rx))
    }

    /// Runs `f` on the writer thread inside a savepoint of the current group; the reply
    /// is sent once the group committed (or with the commit error).
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut writer::Writer) -> Result<T> + Send + 'static,
    ) -> Reply<T> {
        self.call_with(move |w, tx| {
            let r = f(w);
            Box::new(move |_, commit_err| {
                let r = match (r, commit_err) {
                    (Ok(_), Some(e)) => Err(anyhow::anyhow!("{e:#}")),
                    (r, _) => r,
                };
                let _ = tx.send(r);
            })
        })
    }

    // ---- writes -------------------------------------------------------------------

    /// TX1: records the blobs of a fully listed window (INSERT OR IGNORE, pending) and
    /// moves the cursor forward to `window_end`. Returns the number of new blobs.
    pub fn note_listing(
        &self,
        tenant: &str,
        ct: ContentType,
        window_end: DateTime<Utc>,
        blobs: Vec<BlobRef>,
    ) -> Reply<usize> {
        let tenant = tenant.to_string();
        self.call(move |w| w.note_listing(&tenant, ct, window_end, &blobs))
    }

    /// Writes a `clamped` gap for [lost_start, lost_end) and moves the cursor to lost_end.
    pub fn clamp_cursor(
        &self,
        tenant: &str,
        ct: ContentType,
        lost_start: DateTime<Utc>,
        lost_end: DateTime<Utc>,
        detail: String,
    ) -> Reply<()> {
        let tenant = tenant.to_string();
        self.call(move |w| w.clamp_cursor(&tenant, ct, lost_start, lost_end, &detail))
    }

    /// TX2: stores a fetched blob's records and hits and marks it done, atomically.
    pub fn ingest_blob(&self, blob_id: i64, body: bytes::Bytes) -> Reply<BlobIngest> {
        self.prepare_then(
            move |d, dict| writer::prepare_blob(&body, d, dict),
            move |w, p| w.ingest_prepared(blob_id, p),
        )
    }

    pub fn retry_blob_later(
        &self,
        blob_id: i64,
        error: String,
        next_attempt_at: DateTime<Utc>,
    ) -> Reply<()> {
        self.call(move |w| w.retry_blob_later(blob_id, &error, next_attempt_at))
    }

    pub fn give_up_blob(&self, blob_id: i64, kind: GapKind, error: String) -> Reply<()> {
        self.call(move |w| w.give_up_blob(blob_id, kind, &error))
    }

    pub fn expire_blobs(&self, tenant: &str, ct: ContentType, now: DateTime<Utc>) -> Reply<usize> {
        let tenant = tenant.to_string();
        self.call(move |w| w.expire_blobs(&tenant, ct, now))
    }

    pub fn record_gap(&self, tenant: &str, gap: NewGap) -> Reply<()> {
        let tenant = tenant.to_string();
        self.call(move |w| w.record_gap(&tenant, &gap))
    }

    /// Stores offline records (raw JSON objects); tenant = OrganizationId or `default_tenant`.
    pub fn import_records(&self, default_tenant: &str, raws: Vec<String>) -> Reply<IngestOutcome> {
        let tenant = default_tenant.to_string();
        self.prepare_then_in_order(
            move |d, dict| writer::prepare_raws(raws, d, dict),
            move |w, p| w.import_prepared(&tenant, p),
        )
    }

    pub fn set_stream_state(&self, tenant: &str, ct: ContentType, state: StreamState) -> Reply<()> {
        let tenant = tenant.to_string();
        self.call(move |w| w.set_stream_state(&tenant, ct, &state))
    }

    pub fn set_status(&self, key: &str, value: Value) -> Reply<()> {
        let key = key.to_string();
        self.call(move |w| w.set_status(&key, &value))
    }

    /// Appends one imported file to the evidence ledger.
    pub fn record_import(&self, row: ImportRow) -> Reply<()> {
        self.call(move |w| w.record_import(&row))
    }

    pub fn bump_counter(&self, name: &str, by: i64) -> Reply<()> {
        let name = name.to_string();
        self.call(move |w| w.bump_counter(&name, by))
    }

    /// Commits the search index with everything written so far; returns the rowid it
    /// now covers.
    pub fn flush(&self) -> Reply<i64> {
        self.call_with(|_, tx| Box::new(move |w, _| w.index_flush(tx)))
    }

    // ---- reads --------------------------------------------------------------------

    fn with_conn<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.inner.pool.lock().map_err(poisoned)?.pop();
        let conn = match conn {
            Some(c) => c,
            None => db::open_reader(&self.inner.db_path)?,
        };
        let r = f(&conn);
        let mut pool = self.inner.pool.lock().map_err(poisoned)?;
        if pool.len() < 8 {
            pool.push(conn);
        }
        r
    }

    pub fn cursor(&self, tenant: &str, ct: ContentType) -> Result<Option<DateTime<Utc>>> {
        self.with_conn(|c| {
            let v: Option<i64> = c
                .query_row(
                    "SELECT cursor FROM cursors JOIN tenants t ON t.id = cursors.tenant \
                     WHERE t.name = ?1 AND content_type = ?2",
                    params![tenant.to_ascii_lowercase(), ct.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(v.map(db::millis_to_time))
        })
    }

    /// Pending blobs of one content type due at `now`, oldest contentCreated first.
    pub fn pending_blobs(
        &self,
        tenant: &str,
        ct: ContentType,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingBlob>> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT b.id, b.content_id, b.content_uri, b.content_created, \
                 b.content_expiration, b.attempts FROM blobs b JOIN tenants t ON t.id = b.tenant \
                 WHERE t.name = ?1 AND b.content_type = ?2 AND b.state = 'pending' \
                 AND b.next_attempt_at <= ?3 ORDER BY b.content_created, b.id LIMIT ?4",
            )?;
            let rows = st.query_map(
                params![
                    tenant.to_ascii_lowercase(),
                    ct.as_str(),
                    now.timestamp_millis(),
                    limit as i64
                ],
                |r| {
                    let created = db::millis_to_time(r.get(3)?);
                    let expires = db::millis_to_time(r.get(4)?);
                    Ok(PendingBlob {
                        blob_id: r.get(0)?,
                        blob: BlobRef {
                            content_type: ct.as_str().to_string(),
                            content_id: r.get(1)?,
                            content_uri: r.get(2)?,
                            content_created: format_api_time(created),
                            content_expiration: format_api_time(expires),
                        },
                        attempts: r.get(5)?,
                        content_created: created,
                        content_expiration: expires,
                    })
                },
            )?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// When the earliest pending blob of a content type becomes due (None: none pending).
    pub fn next_pending_due(&self, tenant: &str, ct: ContentType) -> Result<Option<DateTime<Utc>>> {
        self.with_conn(|c| {
            let v: Option<i64> = c.query_row(
                "SELECT min(b.next_attempt_at) FROM blobs b JOIN tenants t ON t.id = b.tenant \
                 WHERE t.name = ?1 AND b.content_type = ?2 AND b.state = 'pending'",
                params![tenant.to_ascii_lowercase(), ct.as_str()],
                |r| r.get(0),
            )?;
            Ok(v.map(db::millis_to_time))
        })
    }

    pub fn pending_count(&self, tenant: &str, ct: ContentType) -> Result<i64> {
        self.with_conn(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM blobs b JOIN tenants t ON t.id = b.tenant \
                 WHERE t.name = ?1 AND b.content_type = ?2 AND b.state = 'pending'",
                params![tenant.to_ascii_lowercase(), ct.as_str()],
                |r| r.get(0),
            )?)
        })
    }

    fn query_records(
        &self,
        sql_where: &str,
        args: Vec<rusqlite::types::Value>,
        tail: &str,
    ) -> Result<Vec<StoredRecord>> {
        self.with_conn(|c| {
            let sql = format!(
                "SELECT {} FROM {} WHERE {sql_where} {tail}",
                db::RECORD_COLUMNS,
                db::RECORD_FROM
            );
            let mut st = c.prepare_cached(&sql)?;
            let mut rows = st.query(rusqlite::params_from_iter(args))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(db::read_record(&self.inner.codec, c, row)?);
            }
            Ok(out)
        })
    }

    /// Records of one table (ARCHITECTURE §5) with rowid > `after_rowid`, in rowid order.
    pub fn records_page(
        &self,
        table: &str,
        after_rowid: i64,
        limit: usize,
    ) -> Result<Vec<StoredRecord>> {
        let (cond, params) = db::table_filter(table)
            .ok_or_else(|| crate::UsageError(format!("unknown table {table:?}")))?;
        let mut args: Vec<rusqlite::types::Value> = params.into_iter().map(Into::into).collect();
        args.push(after_rowid.into());
        args.push((limit as i64).into());
        self.query_records(
            &format!("({cond}) AND r.rowid > ?"),
            args,
            "ORDER BY r.rowid LIMIT ?",
        )
    }

    /// Streams the records of one table in rowid order; `f` returns false to stop.
    pub fn for_each_record(
        &self,
        table: &str,
        after_rowid: i64,
        mut f: impl FnMut(StoredRecord) -> Result<bool>,
    ) -> Result<()> {
        let mut after = after_rowid;
        loop {
            let page = self.records_page(table, after, 1000)?;
            if page.is_empty() {
                return Ok(());
            }
            for r in page {
                after = r.rowid;
                if !f(r)? {
                    return Ok(());
                }
            }
        }
    }

    pub fn record_by_rowid(&self, rowid: i64) -> Result<Option<StoredRecord>> {
        Ok(self
            .query_records("r.rowid = ?", vec![rowid.into()], "")?
            .into_iter()
            .next())
    }

    /// The record with this Id (the first tenant's, if several tenants have it).
    pub fn record_by_id(&self, id: &str) -> Result<Option<StoredRecord>> {
        Ok(self
            .query_records(
                "r.id = ?",
                vec![id.to_string().into()],
                "ORDER BY r.rowid LIMIT 1",
            )?
            .into_iter()
            .next())
    }

    /// The newest `limit` records of a user (exact UserId, case-insensitive). Answered by
    /// the search index, plus a scan of the few rows it has not indexed yet.
    pub fn records_of_user(&self, user: &str, limit: usize) -> Result<Vec<StoredRecord>> {
        self.records_by_term("user", user, "r.user_id = ? COLLATE NOCASE", limit)
    }

    /// The newest `limit` records from a client IP (normalized as in the header).
    pub fn records_of_ip(&self, ip: &str, limit: usize) -> Result<Vec<StoredRecord>> {
        let ip = crate::model::normalize_ip(ip);
        self.records_by_term("ip", &ip, "r.client_ip = ?", limit)
    }

    fn records_by_term(
        &self,
        field: &str,
        value: &str,
        sql_cond: &str,
        limit: usize,
    ) -> Result<Vec<StoredRecord>> {
        if value.is_empty() {
            return Ok(Vec::new());
        }
        let (upto, mut out) = match &self.inner.searcher {
            Some(s) => {
                let upto = s.indexed_upto()?;
                let mut out = Vec::new();
                for rowid in s.rowids_for_term(field, value, limit)? {
                    if let Some(r) = self.record_by_rowid(rowid)? {
                        out.push(r);
                    }
                }
                (upto, out)
            }
            None => (0, Vec::new()),
        };
        // rows the index does not cover yet (normally a few seconds' worth)
        out.extend(self.query_records(
            &format!("r.rowid > ? AND {sql_cond}"),
            vec![upto.into(), value.to_string().into()],
            "",
        )?);
        out.sort_by(|a, b| {
            b.header
                .creation_time
                .cmp(&a.header.creation_time)
                .then(b.rowid.cmp(&a.rowid))
        });
        out.dedup_by_key(|r| r.rowid);
        out.truncate(limit);
        Ok(out)
    }

    fn query_hits(
        &self,
        sql_where: &str,
        args: Vec<rusqlite::types::Value>,
        tail: &str,
    ) -> Result<Vec<StoredHit>> {
        self.with_conn(|c| {
            let sql = format!(
                "SELECT id, detection, record_rowid, record_id, creation_time, group_key, details \
                 FROM hits WHERE {sql_where} {tail}"
            );
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(args), |r| {
                let gk: String = r.get(5)?;
                let d: String = r.get(6)?;
                Ok(StoredHit {
                    id: r.get(0)?,
                    detection: r.get(1)?,
                    record_rowid: r.get(2)?,
                    record_id: r.get(3)?,
                    creation_time: db::secs_to_time(r.get(4)?),
                    group_key: serde_json::from_str(&gk).unwrap_or(Value::String(gk)),
                    details: serde_json::from_str(&d).unwrap_or(Value::String(d)),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Hits (of one detection, or all) with id > `after_id`, in id order.
    pub fn hits(
        &self,
        detection: Option<&str>,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<StoredHit>> {
        match detection {
            Some(d) => self.query_hits(
                "detection = ? AND id > ?",
                vec![d.to_string().into(), after_id.into()],
                &format!("ORDER BY id LIMIT {limit}"),
            ),
            None => self.query_hits(
                "id > ?",
                vec![after_id.into()],
                &format!("ORDER BY id LIMIT {limit}"),
            ),
        }
    }

    /// Streams hits in id order; `f` returns false to stop.
    pub fn for_each_hit(
        &self,
        detection: Option<&str>,
        mut f: impl FnMut(StoredHit) -> Result<bool>,
    ) -> Result<()> {
        let mut after = 0;
        loop {
            let page = self.hits(detection, after, 1000)?;
            if page.is_empty() {
                return Ok(());
            }
            for h in page {
                after = h.id;
                if !f(h)? {
                    return Ok(());
                }
            }
        }
    }

    pub fn hits_of_record(&self, rowid: i64) -> Result<Vec<StoredHit>> {
        self.query_hits("record_rowid = ?", vec![rowid.into()], "ORDER BY id")
    }

    /// Number of hits per detection.
    pub fn hit_counts(&self) -> Result<BTreeMap<String, i64>> {
        self.with_conn(|c| {
            let mut st =
                c.prepare_cached("SELECT detection, count(*) FROM hits GROUP BY detection")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Every row of the loss ledger, oldest first.
    pub fn gaps(&self) -> Result<Vec<GapRow>> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT g.id, t.name, g.kind, g.content_type, g.window_start, g.window_end, \
                 g.content_id, g.count, g.detail, g.at FROM gaps g JOIN tenants t ON t.id = g.tenant \
                 ORDER BY g.id",
            )?;
            let rows = st.query_map([], |r| {
                let ws: Option<i64> = r.get(4)?;
                let we: Option<i64> = r.get(5)?;
                Ok(GapRow {
                    id: r.get(0)?,
                    tenant: r.get(1)?,
                    kind: r.get(2)?,
                    content_type: r.get(3)?,
                    window_start: ws.map(|m| format_api_time(db::millis_to_time(m))),
                    window_end: we.map(|m| format_api_time(db::millis_to_time(m))),
                    content_id: r.get(6)?,
                    count: r.get(7)?,
                    detail: r.get(8)?,
                    at: db::secs_to_time(r.get(9)?),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Every stored (tenant, Id), sorted: for comparisons with a ground truth.
    pub fn record_keys(&self) -> Result<Vec<(String, String)>> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT t.name, r.id FROM {} ORDER BY t.name, r.id",
                db::RECORD_FROM
            ))?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Everything `stats` shows (ARCHITECTURE §7).
    pub fn stats(&self) -> Result<Stats> {
        let mut stats = self.with_conn(|c| {
            let total: i64 = c.query_row("SELECT count(*) FROM records", [], |r| r.get(0))?;
            let mut by_table = BTreeMap::new();
            by_table.insert(crate::model::TABLE_ALL.to_string(), total);
            {
                let mut st = c.prepare_cached(
                    "SELECT workload, count(*) FROM records WHERE workload <> '' GROUP BY workload",
                )?;
                let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
                for row in rows {
                    let (w, n) = row?;
                    *by_table.entry(crate::model::workload_table(&w)).or_insert(0) += n;
                }
            }
            let auth: i64 = c.query_row(
                &format!(
                    "SELECT count(*) FROM records r WHERE {}",
                    db::table_filter(crate::model::TABLE_AUTH).map(|f| f.0).unwrap_or_default()
                ),
                [],
                |r| r.get(0),
            )?;
            if auth > 0 {
                by_table.insert(crate::model::TABLE_AUTH.to_string(), auth);
            }
            let mut gaps = Vec::new();
            {
                let mut st = c.prepare_cached(
                    "SELECT kind, content_type, sum(count), count(*), min(window_start), \
                     max(window_end), min(at), max(at), \
                     (SELECT detail FROM gaps g2 WHERE g2.kind = g.kind AND g2.content_type = g.content_type ORDER BY id DESC LIMIT 1) \
                     FROM gaps g GROUP BY kind, content_type ORDER BY kind, content_type",
                )?;
                let rows = st.query_map([], |r| {
                    let ws: Option<i64> = r.get(4)?;
                    let we: Option<i64> = r.get(5)?;
                    Ok(GapSummary {
                        kind: r.get(0)?,
                        content_type: r.get(1)?,
                        count: r.get(2)?,
                        events: r.get(3)?,
                        window_start: ws.map(|m| format_api_time(db::millis_to_time(m))),
                        window_end: we.map(|m| format_api_time(db::millis_to_time(m))),
                        first_at: db::secs_to_time(r.get(6)?),
                        last_at: db::secs_to_time(r.get(7)?),
                        last_detail: r.get(8)?,
                    })
                })?;
                for g in rows {
                    gaps.push(g?);
                }
            }
            let mut content_types: BTreeMap<String, ContentTypeStats> = BTreeMap::new();
            {
                let mut st = c.prepare_cached("SELECT content_type, max(cursor) FROM cursors GROUP BY content_type")?;
                for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                    let (ct, cur) = row?;
                    content_types.entry(ct).or_insert_with(empty_ct).cursor =
                        Some(format_api_time(db::millis_to_time(cur)));
                }
                let mut st = c.prepare_cached("SELECT content_type, state, last_error, lag_secs FROM streams")?;
                for row in st.query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                    ))
                })? {
                    let (ct, state, err, lag) = row?;
                    let e = content_types.entry(ct).or_insert_with(empty_ct);
                    e.state = Some(state);
                    e.last_error = err;
                    e.lag_secs = lag;
                }
                let mut st = c.prepare_cached(
                    "SELECT content_type, count(*) FROM blobs WHERE state = 'pending' GROUP BY content_type",
                )?;
                for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                    let (ct, n) = row?;
                    content_types.entry(ct).or_insert_with(empty_ct).pending_blobs = n;
                }
            }
            let mut blobs: BTreeMap<String, i64> = ["pending", "done", "failed", "expired"]
                .into_iter()
                .map(|s| (s.to_string(), 0))
                .collect();
            {
                let mut st = c.prepare_cached("SELECT state, count(*) FROM blobs GROUP BY state")?;
                for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                    let (s, n) = row?;
                    blobs.insert(s, n);
                }
            }
            let counters: BTreeMap<String, i64> = {
                let mut st = c.prepare_cached("SELECT name, value FROM counters")?;
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?
            };
            let auth: Option<String> = c
                .query_row("SELECT value FROM status WHERE key = 'auth'", [], |r| r.get(0))
                .optional()?;
            let max_rowid = db::max_rowid(c)?;
            Ok((
                Stats {
                    records: RecordCounts { total, by_table },
                    duplicates_dropped: counters.get("duplicates_dropped").copied().unwrap_or(0),
                    gaps,
                    content_types,
                    blobs,
                    hits: BTreeMap::new(),
                    counters,
                    auth: auth.and_then(|a| serde_json::from_str(&a).ok()),
                    monitor: None,
                    index: None,
                    db_bytes: 0,
                    index_bytes: 0,
                    imports: Vec::new(),
                },
                max_rowid,
            ))
        })
        .map(|(mut s, max_rowid)| {
            if let Some(searcher) = &self.inner.searcher
                && let Ok(upto) = searcher.indexed_upto()
            {
                s.index = Some(IndexStats {
                    indexed_upto_rowid: upto,
                    records_behind: (max_rowid - upto).max(0),
                });
            }
            s
        })?;
        stats.hits = self.hit_counts()?;
        stats.imports = self.imports()?;
        stats.monitor = self.monitor_stats(Utc::now())?;
        stats.db_bytes = dir_bytes_matching(&self.inner.data_dir, DB_FILE);
        stats.index_bytes = dir_bytes(&self.inner.data_dir.join(index::INDEX_DIR));
        Ok(stats)
    }

    /// Every imported file, oldest first.
    pub fn imports(&self) -> Result<Vec<ImportRow>> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT file, size, sha256, format, records, stored, duplicates, bad, damage, \
                 started_at, seconds FROM imports ORDER BY id",
            )?;
            let rows = st.query_map([], |r| {
                Ok(ImportRow {
                    file: r.get(0)?,
                    size: r.get::<_, i64>(1)?.max(0) as u64,
                    sha256: r.get(2)?,
                    format: r.get(3)?,
                    records: r.get::<_, i64>(4)?.max(0) as u64,
                    stored: r.get::<_, i64>(5)?.max(0) as u64,
                    duplicates: r.get::<_, i64>(6)?.max(0) as u64,
                    bad: r.get::<_, i64>(7)?.max(0) as u64,
                    damage: r.get(8)?,
                    started_at: db::secs_to_time(r.get(9)?),
                    seconds: r.get(10)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Full-text search; `total` counts every match, `hits` are the newest `limit`.
    pub fn search(&self, query: &str, limit: usize) -> Result<SearchResult> {
        let searcher = self.inner.searcher.as_ref().context(
            "the search index does not exist yet (it is built by `collect` or `import`)",
        )?;
        let (total, rowids) = searcher.search(query, limit)?;
        let mut hits = Vec::with_capacity(rowids.len());
        for rowid in rowids {
            if let Some(r) = self.record_by_rowid(rowid)? {
                let table = r
                    .tables()
                    .get(1)
                    .cloned()
                    .unwrap_or_else(|| crate::model::TABLE_ALL.to_string());
                hits.push(SearchHit {
                    id: r.header.id,
                    table,
                    creation_time: crate::model::format_record_time(r.header.creation_time),
                    operation: r.header.operation,
                    workload: r.header.workload,
                    user_id: r.header.user_id,
                    client_ip: r.header.client_ip,
                    rowid,
                });
            }
        }
        Ok(SearchResult { total, hits })
    }

    /// Number of documents in the committed search index (tests, stats).
    pub fn indexed_docs(&self) -> Result<u64> {
        self.inner
            .searcher
            .as_ref()
            .context("no search index")?
            .num_docs()
    }
}

fn empty_ct() -> ContentTypeStats {
    ContentTypeStats {
        cursor: None,
        lag_secs: None,
        state: None,
        last_error: None,
        pending_blobs: 0,
    }
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> anyhow::Error {
    anyhow::anyhow!("a store lock was poisoned by a panic")
}

/// Total size of the files in `dir` whose name starts with `prefix` (db, -wal, -shm).
fn dir_bytes_matching(dir: &Path, prefix: &str) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Total size of the files under `dir`, recursively.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests;
