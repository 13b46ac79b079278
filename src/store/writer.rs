//! The single writer thread: it owns the writable SQLite connection, the zstd compressor
//! and the shared detections, and runs one transaction per unit of work. Commands arrive
//! as closures over a channel (`Store::call`); nothing here runs on the async runtime
//! (invariant 8).
//!
//! TX1 `note_listing`: blobs INSERT OR IGNORE (pending) + cursor = max(cursor, end).
//! TX2 `ingest_blob`: parse the blob, records INSERT OR IGNORE, hits, the UI rollups, blob
//! `done` — one unit of work (`unit.rs`) of one transaction (invariant 1); committed rows
//! then go to the indexer (invariant 4).
//!
//! The writer thread is the serial path of a backfill, so everything that does not need
//! the connection (parsing, compression, detections, serializing hits) is done before, on
//! the preparer threads, and the rollup tables of the UI (`agg_*`, migration 0002) are
//! added up in memory per blob and written as one UPSERT per touched key ([`Rollups`])
//! instead of per-row triggers (migration 0004).

use super::checkpointer::{CHECKPOINT_PAGES, Checkpointer};
use super::dict_sampler::DictSampler;
use super::hit_keys::HitKeys;
use super::index::{IndexDoc, IndexMsg};
use super::unit::{GroupState, Unit};
use super::{BlobIngest, GapKind, ImportRow, IngestOutcome, NewGap, StreamState, db};
use crate::detect::{Detections, Input, Runner};
use crate::model::{BlobRef, ContentType, RecordHeader, parse_time};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;

/// A malformed blob body is retried this many times (it may be a truncated transfer)
/// before the blob is marked failed and a gap is written.
pub const MAX_MALFORMED_ATTEMPTS: i64 = 3;
/// Size of a zstd dictionary.
const DICT_BYTES: usize = 64 * 1024;
const ZSTD_LEVEL: i32 = 3;
/// Records per message to the indexer (the channel holds a few messages).
pub const INDEX_CHUNK: usize = 256;

pub struct Writer {
    conn: Connection,
    tenants: HashMap<String, i64>,
    index_tx: Option<SyncSender<IndexMsg>>,
    /// The committed dictionary the preparers compress with.
    dict: SharedDict,
    /// A dictionary trained in the open transaction, published after its commit.
    new_dict: Option<Arc<(i64, Vec<u8>)>>,
    /// Chooses the records the next dictionary is trained on; `None` while one trains
    /// and once the store has every dictionary.
    sampler: Option<DictSampler>,
    /// A dictionary being trained on its own thread (training takes ~0.6 s: on the writer
    /// thread it stalled every blob of a backfill meanwhile); None when it failed.
    training: Option<std::sync::mpsc::Receiver<Option<Vec<u8>>>>,
    /// Rows of the open transaction, for the indexer once it commits.
    pending_docs: Vec<IndexDoc>,
    /// Forwarding is on: every new record gets an outbox row in the unit that stores it
    /// (invariant 1). Kept in the store (`outbox.rs`), so `import` queues too.
    pub(super) outbox_on: bool,
    /// The ids of detection names and group keys hits refer to.
    hit_keys: HitKeys,
    /// Checkpoints the WAL on a thread of its own (None: SQLite's automatic checkpoint
    /// on this connection, when the thread could not start).
    checkpointer: Option<Checkpointer>,
    /// Whether the open group is still sound, and whether units need savepoints.
    group: GroupState,
}

fn now_secs() -> i64 {
    Utc::now().timestamp()
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

impl Writer {
    pub fn new(
        conn: Connection,
        dict: SharedDict,
        index_tx: SyncSender<IndexMsg>,
    ) -> Result<Writer> {
        let mut w = Writer {
            conn,
            tenants: HashMap::new(),
            index_tx: Some(index_tx),
            dict,
            new_dict: None,
            sampler: None,
            training: None,
            pending_docs: Vec::new(),
            outbox_on: false,
            hit_keys: HitKeys::default(),
            checkpointer: None,
            group: GroupState::default(),
        };
        // without the thread the WAL is still checkpointed, by SQLite on this connection
        // (an in-memory or temporary database has the path "": nothing to open twice)
        match w
            .conn
            .path()
            .filter(|p| !p.is_empty())
            .map(std::path::PathBuf::from)
        {
            Some(p) => match Checkpointer::start(&mut w.conn, &p, CHECKPOINT_PAGES) {
                Ok(c) => w.checkpointer = Some(c),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "WAL checkpoints stay on the writer thread")
                }
            },
            None => tracing::warn!("WAL checkpoints stay on the writer thread: no database path"),
        }
        w.reload_dict()?;
        w.outbox_on = super::outbox::forwarding_on(&w.conn)?;
        Ok(w)
    }

    /// Checkpoints and truncates the WAL (at close; readers may still hold it).
    pub fn checkpoint(&mut self) {
        if let Some(mut c) = self.checkpointer.take() {
            c.stop(&mut self.conn);
        }
        if let Err(e) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        {
            tracing::debug!(error = %e, "wal checkpoint at close failed");
        }
    }

    /// Stops feeding the indexer (it then commits and exits).
    pub fn close_index(&mut self) {
        self.index_tx = None;
    }

    pub fn index_flush(&mut self, reply: tokio::sync::oneshot::Sender<Result<i64>>) {
        match &self.index_tx {
            Some(tx) => {
                if let Err(std::sync::mpsc::SendError(IndexMsg::Flush(reply))) =
                    tx.send(IndexMsg::Flush(reply))
                {
                    let _ = reply.send(Err(anyhow::anyhow!("the search indexer has stopped")));
                }
            }
            None => {
                let _ = reply.send(Err(anyhow::anyhow!("the search indexer has stopped")));
            }
        }
    }

    /// A unit of the open group, for the outbox commands (`outbox.rs`).
    pub(super) fn unit(&mut self) -> Result<Unit<'_>> {
        Unit::open(&mut self.conn, &self.group)
    }

    fn tenant(&mut self, name: &str) -> Result<i64> {
        let name = name.to_ascii_lowercase();
        if let Some(id) = self.tenants.get(&name) {
            return Ok(*id);
        }
        self.conn
            .execute("INSERT OR IGNORE INTO tenants (name) VALUES (?1)", [&name])?;
        let id = db::tenant_id(&self.conn, &name)?.context("tenant row vanished")?;
        self.tenants.insert(name, id);
        Ok(id)
    }

    /// TX1: notes the blobs of a fully listed window and moves the cursor forward to
    /// `window_end` (never backwards: invariant 3). Returns how many blobs were new.
    pub fn note_listing(
        &mut self,
        tenant: &str,
        ct: ContentType,
        window_end: DateTime<Utc>,
        blobs: &[BlobRef],
    ) -> Result<usize> {
        let t = self.tenant(tenant)?;
        let now = ms(Utc::now());
        let tx = Unit::open(&mut self.conn, &self.group)?;
        let mut new = 0;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO blobs (tenant, content_type, content_id, content_uri, \
                 content_created, content_expiration, listed_at) VALUES (?1,?2,?3,?4,?5,?6,?7)",
            )?;
            // A blob listed again while still pending takes the newest contentUri (the
            // first listing may have carried one we refused to follow).
            let mut refresh = tx.prepare_cached(
                "UPDATE blobs SET content_uri = ?3 WHERE tenant = ?1 AND content_id = ?2 \
                 AND state = 'pending' AND content_uri <> ?3",
            )?;
            for b in blobs {
                let created = parse_time(&b.content_created).map(ms).unwrap_or(now);
                // Without a parsable expiration assume Microsoft's 7 days (docs/management-api.md, Blobs).
                let expires = parse_time(&b.content_expiration)
                    .map(ms)
                    .unwrap_or(created + 7 * 86_400_000);
                let n = st.execute(params![
                    t,
                    ct.as_str(),
                    b.content_id,
                    b.content_uri,
                    created,
                    expires,
                    now
                ])?;
                if n == 0 {
                    refresh.execute(params![t, b.content_id, b.content_uri])?;
                }
                new += n;
            }
        }
        advance_cursor(&tx, t, ct, ms(window_end), now)?;
        tx.commit()?;
        Ok(new)
    }

    /// Moves the cursor over a window that can no longer be listed (older than 7 days)
    /// and writes the clamp into the loss ledger, in one transaction.
    pub fn clamp_cursor(
        &mut self,
        tenant: &str,
        ct: ContentType,
        lost_start: DateTime<Utc>,
        lost_end: DateTime<Utc>,
        detail: &str,
    ) -> Result<()> {
        let t = self.tenant(tenant)?;
        let tx = Unit::open(&mut self.conn, &self.group)?;
        insert_gap(
            &tx,
            t,
            &NewGap {
                kind: GapKind::Clamped,
                content_type: ct.as_str().to_string(),
                window_start: Some(lost_start),
                window_end: Some(lost_end),
                content_id: None,
                count: 1,
                detail: detail.to_string(),
            },
        )?;
        advance_cursor(&tx, t, ct, ms(lost_end), ms(Utc::now()))?;
        tx.commit()?;
        Ok(())
    }

    /// Lets the database grow by at most `pages` more pages (None: no limit), so that
    /// writes meet a full database as they would a full disk.
    #[cfg(test)]
    pub fn limit_growth(&mut self, pages: Option<i64>) -> Result<()> {
        let now: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let max = pages.map_or(i64::from(i32::MAX), |p| now + p);
        self.conn.pragma_update(None, "max_page_count", max)?;
        Ok(())
    }

    /// Ends the open transaction as SQLite does after an I/O error, and reports success.
    #[cfg(test)]
    pub fn roll_back_as_sqlite_would(&mut self) -> Result<()> {
        self.conn.execute_batch("ROLLBACK")?;
        Ok(())
    }

    /// A write that fails after changing rows, as a full disk would make one fail.
    #[cfg(test)]
    pub fn fail_halfway(&mut self, tenant: &str, gap: &NewGap) -> Result<()> {
        let t = self.tenant(tenant)?;
        let tx = Unit::open(&mut self.conn, &self.group)?;
        insert_gap(&tx, t, gap)?;
        anyhow::bail!("failed after writing (test)")
    }

    pub fn record_gap(&mut self, tenant: &str, gap: &NewGap) -> Result<()> {
        let t = self.tenant(tenant)?;
        let tx = Unit::open(&mut self.conn, &self.group)?;
        insert_gap(&tx, t, gap)?;
        tx.commit()?;
        Ok(())
    }

    /// TX2: stores the prepared records of one pending blob and marks it done
    /// (invariant 1).
    pub fn ingest_prepared(&mut self, blob_id: i64, mut p: Prepared) -> Result<BlobIngest> {
        let row: Option<(i64, String, i64, String)> = self
            .conn
            .prepare_cached("SELECT tenant, state, attempts, content_id FROM blobs WHERE id = ?1")?
            .query_row([blob_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        let Some((tenant, state, attempts, content_id)) = row else {
            anyhow::bail!("blob {blob_id} is not in the ledger");
        };
        if state != "pending" {
            return Ok(BlobIngest::AlreadyFinished);
        }
        if let Some(e) = &p.malformed {
            return self.malformed(blob_id, attempts, &content_id, e);
        }
        let now = now_secs();
        let mut out = IngestOutcome {
            records: p.total,
            bad_records: p.bad,
            first_bad: p.first_bad,
            ..Default::default()
        };
        self.hit_keys.resolve(&self.conn, &mut p.records)?;
        let tx = Unit::open(&mut self.conn, &self.group)?;
        let mut docs = Vec::new();
        insert_prepared(
            &tx,
            p.records.into_iter().map(|r| (tenant, r)),
            Origin {
                blob_id: Some(blob_id),
                now,
                outbox: self.outbox_on,
            },
            &mut self.sampler,
            &mut docs,
            &mut out,
        )?;
        if out.bad_records > 0 {
            let ct: String = tx.query_row(
                "SELECT content_type FROM blobs WHERE id = ?1",
                [blob_id],
                |r| r.get(0),
            )?;
            insert_gap(
                &tx,
                tenant,
                &NewGap {
                    kind: GapKind::BadRecord,
                    content_type: ct,
                    window_start: None,
                    window_end: None,
                    content_id: Some(content_id),
                    count: out.bad_records as i64,
                    detail: out.first_bad.clone().unwrap_or_default(),
                },
            )?;
        }
        tx.prepare_cached(
            "UPDATE blobs SET state = 'done', attempts = attempts + 1, last_error = NULL, \
             record_count = ?2, new_records = ?3, finished_at = ?4 WHERE id = ?1",
        )?
        .execute(params![
            blob_id,
            out.records as i64,
            out.new as i64,
            ms(Utc::now())
        ])?;
        tx.commit()?;
        self.send_docs(docs);
        self.train_dict_between_writes();
        Ok(BlobIngest::Stored(out))
    }

    fn malformed(
        &mut self,
        blob_id: i64,
        attempts: i64,
        content_id: &str,
        error: &str,
    ) -> Result<BlobIngest> {
        let attempts = attempts + 1;
        let failed = attempts >= MAX_MALFORMED_ATTEMPTS;
        let error = format!("malformed blob content: {error}");
        let tx = Unit::open(&mut self.conn, &self.group)?;
        if failed {
            let (tenant, ct): (i64, String) = tx.query_row(
                "SELECT tenant, content_type FROM blobs WHERE id = ?1",
                [blob_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            insert_gap(
                &tx,
                tenant,
                &NewGap {
                    kind: GapKind::Failed,
                    content_type: ct,
                    window_start: None,
                    window_end: None,
                    content_id: Some(content_id.to_string()),
                    count: 1,
                    detail: format!("{error} (after {attempts} attempts)"),
                },
            )?;
        }
        tx.execute(
            "UPDATE blobs SET attempts = ?2, last_error = ?3, \
             state = CASE WHEN ?4 THEN 'failed' ELSE state END, \
             finished_at = CASE WHEN ?4 THEN ?5 ELSE finished_at END WHERE id = ?1",
            params![blob_id, attempts, error, failed, ms(Utc::now())],
        )?;
        tx.commit()?;
        Ok(BlobIngest::Malformed { attempts, failed })
    }

    /// A transient failure: the blob stays pending, with one more attempt counted.
    pub fn retry_blob_later(
        &mut self,
        blob_id: i64,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE blobs SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 \
             WHERE id = ?1 AND state = 'pending'",
            params![blob_id, error, ms(next_attempt_at)],
        )?;
        Ok(())
    }

    /// A terminal failure: the blob becomes `expired` or `failed` and a gap is written.
    pub fn give_up_blob(&mut self, blob_id: i64, kind: GapKind, error: &str) -> Result<()> {
        let tx = Unit::open(&mut self.conn, &self.group)?;
        let row: Option<(i64, String, String, i64)> = tx
            .query_row(
                "SELECT tenant, content_type, content_id, content_created FROM blobs \
                 WHERE id = ?1 AND state = 'pending'",
                [blob_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((tenant, ct, content_id, created)) = row else {
            return Ok(());
        };
        let state = if kind == GapKind::Expired {
            "expired"
        } else {
            "failed"
        };
        tx.execute(
            "UPDATE blobs SET state = ?2, attempts = attempts + 1, last_error = ?3, \
             finished_at = ?4 WHERE id = ?1",
            params![blob_id, state, error, ms(Utc::now())],
        )?;
        let created = db::millis_to_time(created);
        insert_gap(
            &tx,
            tenant,
            &NewGap {
                kind,
                content_type: ct,
                window_start: Some(created),
                window_end: Some(created),
                content_id: Some(content_id),
                count: 1,
                detail: error.to_string(),
            },
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Marks every pending blob whose contentExpiration ≤ now as expired, one gap each.
    pub fn expire_blobs(
        &mut self,
        tenant: &str,
        ct: ContentType,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let t = self.tenant(tenant)?;
        let ids: Vec<i64> = {
            let mut st = self.conn.prepare_cached(
                "SELECT id FROM blobs WHERE tenant = ?1 AND content_type = ?2 \
                 AND state = 'pending' AND content_expiration <= ?3",
            )?;
            st.query_map(params![t, ct.as_str(), ms(now)], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        for id in &ids {
            self.give_up_blob(
                *id,
                GapKind::Expired,
                "content expired before it was fetched",
            )?;
        }
        Ok(ids.len())
    }

    /// Stores prepared offline records (import); each record's tenant is its
    /// OrganizationId, or `default_tenant` without one.
    pub fn import_prepared(
        &mut self,
        default_tenant: &str,
        mut p: Prepared,
    ) -> Result<IngestOutcome> {
        let mut tenants = Vec::with_capacity(p.records.len());
        for r in &p.records {
            let t = if r.organization_id.is_empty() {
                default_tenant
            } else {
                r.organization_id.as_str()
            };
            tenants.push(self.tenant(t)?);
        }
        let now = now_secs();
        let mut out = IngestOutcome {
            records: p.total,
            bad_records: p.bad,
            first_bad: p.first_bad,
            bad_at: p.bad_at,
            ..Default::default()
        };
        self.hit_keys.resolve(&self.conn, &mut p.records)?;
        let tx = Unit::open(&mut self.conn, &self.group)?;
        let mut docs = Vec::new();
        insert_prepared(
            &tx,
            tenants.into_iter().zip(p.records),
            Origin {
                blob_id: None,
                now,
                outbox: self.outbox_on,
            },
            &mut self.sampler,
            &mut docs,
            &mut out,
        )?;
        tx.commit()?;
        self.send_docs(docs);
        self.train_dict_between_writes();
        Ok(out)
    }

    pub fn set_stream_state(
        &mut self,
        tenant: &str,
        ct: ContentType,
        s: &StreamState,
    ) -> Result<()> {
        let t = self.tenant(tenant)?;
        self.conn.execute(
            "INSERT INTO streams (tenant, content_type, state, last_error, lag_secs, updated_at) \
             VALUES (?1,?2,?3,?4,?5,?6) ON CONFLICT (tenant, content_type) DO UPDATE SET \
             state = excluded.state, last_error = excluded.last_error, \
             lag_secs = excluded.lag_secs, updated_at = excluded.updated_at",
            params![
                t,
                ct.as_str(),
                s.state,
                s.last_error,
                s.lag_secs,
                now_secs()
            ],
        )?;
        Ok(())
    }

    pub fn set_status(&mut self, key: &str, value: &Value) -> Result<()> {
        self.conn.execute(
            "INSERT INTO status (key, value, updated_at) VALUES (?1,?2,?3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            params![key, value.to_string(), now_secs()],
        )?;
        Ok(())
    }

    /// Appends one row to the evidence ledger of imported files.
    pub fn record_import(&mut self, r: &ImportRow) -> Result<()> {
        self.conn.execute(
            "INSERT INTO imports (file, size, sha256, format, records, stored, duplicates, bad, \
             damage, started_at, seconds) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
            params![
                r.file,
                r.size as i64,
                r.sha256,
                r.format,
                r.records as i64,
                r.stored as i64,
                r.duplicates as i64,
                r.bad as i64,
                r.damage,
                r.started_at.timestamp(),
                r.seconds
            ],
        )?;
        Ok(())
    }

    pub fn bump_counter(&mut self, name: &str, by: i64) -> Result<()> {
        bump(&self.conn, name, by)
    }

    /// Keeps committed-to-be rows for the indexer; they are sent only after the
    /// enclosing transaction commits (invariant 4).
    fn send_docs(&mut self, mut docs: Vec<IndexDoc>) {
        self.pending_docs.append(&mut docs);
    }

    /// Opens the transaction that groups the next commands (each one unit, `unit.rs`).
    pub fn begin(&mut self) -> Result<()> {
        if !self.conn.is_autocommit() {
            // a group whose rollback failed is still open: nothing of it may commit
            self.conn
                .execute_batch("ROLLBACK")
                .context("rolling back what is left of a failed transaction group")?;
            self.forget_uncommitted();
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        self.group.start();
        Ok(())
    }

    /// The open group cannot commit: a unit of it failed halfway, or SQLite rolled the
    /// whole transaction back itself (an I/O error or a full disk can). No command should
    /// join it; [`Writer::end_group`] answers every command in it with an error.
    pub fn group_failed(&self) -> bool {
        self.group.failed() || self.conn.is_autocommit()
    }

    /// Hands the rows written so far to the indexer (they must be committed).
    pub fn send_pending(&mut self) {
        // Small messages on a short channel bound the parsed records in flight. Taken
        // from the front in order, each moved once (splitting the rest off after every
        // chunk copied a group's rows over and over into fresh pages).
        let mut docs = std::mem::take(&mut self.pending_docs).into_iter();
        loop {
            let chunk: Vec<IndexDoc> = docs.by_ref().take(INDEX_CHUNK).collect();
            if chunk.is_empty() {
                break;
            }
            if let Some(tx) = &self.index_tx
                && tx.send(IndexMsg::Docs(chunk)).is_err()
            {
                tracing::warn!("search indexer stopped; the index catches up at next start");
                self.index_tx = None;
            }
        }
    }

    /// Commits the group, then hands its rows to the indexer. A group with a unit that
    /// failed halfway, or whose commit fails, is rolled back whole and the writer's caches
    /// are reloaded; the error is every command's answer in the group (a command that
    /// failed itself answers with its own).
    pub fn end_group(&mut self) -> Result<()> {
        let lost = self.conn.is_autocommit();
        if lost {
            self.group.fail();
        }
        let failed = self.group.failed();
        self.group.end(std::time::Instant::now());
        let err = if lost {
            anyhow::anyhow!(
                "nothing of this write was stored: the database rolled back its transaction \
                 group after an error in a write of the group"
            )
        } else if failed {
            anyhow::anyhow!(
                "nothing of this write was stored: another write in its transaction group \
                 failed halfway, and the group was rolled back"
            )
        } else {
            match self.conn.execute_batch("COMMIT") {
                Ok(()) => {
                    if let Some(d) = self.new_dict.take() {
                        self.dict.publish(Some(d));
                    }
                    self.send_pending();
                    return Ok(());
                }
                Err(e) => anyhow::Error::new(e).context("committing to the database"),
            }
        };
        if let Err(e) = self.conn.execute_batch("ROLLBACK")
            && !self.conn.is_autocommit()
        {
            tracing::error!(error = %e, "rolling back a transaction group failed");
        }
        self.forget_uncommitted();
        Err(err)
    }

    /// After a rollback: drops what the writer kept of the rolled-back rows.
    fn forget_uncommitted(&mut self) {
        self.pending_docs.clear();
        self.tenants.clear();
        self.hit_keys.clear();
        if let Err(e) = self.reload_dict() {
            tracing::error!(error = %format!("{e:#}"), "reloading the compression dictionary failed");
        }
        // a rolled-back switch of forwarding must not stay switched
        match super::outbox::forwarding_on(&self.conn) {
            Ok(on) => self.outbox_on = on,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "reading whether forwarding is on failed")
            }
        }
    }

    /// Samples for the store's next dictionary, if it lacks one (by the dictionaries stored).
    fn sample_for_next_dict(&mut self) -> Result<()> {
        let stored: i64 = self
            .conn
            .query_row("SELECT count(*) FROM dicts", [], |r| r.get(0))?;
        self.set_sampler(DictSampler::for_store(stored.max(0) as usize));
        Ok(())
    }

    /// Starts or stops sampling, and tells the preparers whether to keep raw records.
    fn set_sampler(&mut self, sampler: Option<DictSampler>) {
        self.dict
            .sampling
            .store(sampler.is_some(), std::sync::atomic::Ordering::Relaxed);
        self.sampler = sampler;
    }

    /// Publishes the newest committed dictionary to the preparers (at open and after a
    /// rollback that may have undone a new one).
    fn reload_dict(&mut self) -> Result<()> {
        self.new_dict = None;
        let dict: Option<(i64, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT id, bytes FROM dicts ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if self.training.is_none() {
            self.sample_for_next_dict()?;
        }
        self.dict.publish(dict.map(Arc::new));
        Ok(())
    }

    /// Starts training the zstd dictionary once enough samples exist, and stores it in the
    /// open transaction once trained; records written meanwhile use plain zstd (dict 0).
    /// Trains or stores the next dictionary after a write whose rows are already in the
    /// group: a dictionary that cannot be stored costs compression, never the write.
    fn train_dict_between_writes(&mut self) {
        if let Err(e) = self.maybe_train_dict() {
            tracing::warn!(error = %format!("{e:#}"), "a new zstd dictionary could not be stored; records keep the one before");
        }
    }

    fn maybe_train_dict(&mut self) -> Result<()> {
        if let Some(rx) = &self.training {
            let dict = match rx.try_recv() {
                Err(std::sync::mpsc::TryRecvError::Empty) => return Ok(()),
                Ok(Some(dict)) => dict,
                Ok(None) | Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    tracing::warn!("zstd dictionary training failed; records stay plain zstd");
                    self.training = None;
                    return Ok(());
                }
            };
            self.training = None;
            self.conn.execute(
                "INSERT INTO dicts (created_at, bytes) VALUES (?1, ?2)",
                params![now_secs(), dict],
            )?;
            self.new_dict = Some(Arc::new((self.conn.last_insert_rowid(), dict)));
            return self.sample_for_next_dict();
        }
        let Some(samples) = self.sampler.as_mut().and_then(|s| s.take_if_done()) else {
            return Ok(());
        };
        self.set_sampler(None);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("store-dict".into())
            .spawn(move || {
                let dict = zstd::dict::from_samples(&samples, DICT_BYTES)
                    .map_err(|e| tracing::warn!(error = %e, "zstd dictionary training failed"))
                    .ok();
                // the writer may be gone (store closed): then the dictionary is not needed
                let _ = tx.send(dict);
            })
            .context("starting the dictionary trainer")?;
        self.training = Some(rx);
        Ok(())
    }
}

fn bump(conn: &Connection, name: &str, by: i64) -> Result<()> {
    if by != 0 {
        conn.prepare_cached(
            "INSERT INTO counters (name, value) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
        )?
        .execute(params![name, by])?;
    }
    Ok(())
}

fn advance_cursor(
    tx: &Connection,
    tenant: i64,
    ct: ContentType,
    to_ms: i64,
    now: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO cursors (tenant, content_type, cursor, updated_at) VALUES (?1,?2,?3,?4) \
         ON CONFLICT (tenant, content_type) DO UPDATE SET \
         cursor = max(cursor, excluded.cursor), updated_at = excluded.updated_at",
        params![tenant, ct.as_str(), to_ms, now],
    )?;
    Ok(())
}

fn insert_gap(tx: &Connection, tenant: i64, g: &NewGap) -> Result<()> {
    tx.execute(
        "INSERT INTO gaps (tenant, kind, content_type, window_start, window_end, content_id, \
         count, detail, at) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
        params![
            tenant,
            g.kind.as_str(),
            g.content_type,
            g.window_start.map(ms),
            g.window_end.map(ms),
            g.content_id,
            g.count,
            g.detail,
            now_secs()
        ],
    )?;
    Ok(())
}

/// A record parsed, compressed and run through the detections before it reaches the
/// writer (on a `store-prepare` thread): the writer only inserts.
pub struct PreparedRecord {
    pub header: RecordHeader,
    /// OrganizationId (the tenant of an imported record).
    pub organization_id: String,
    /// The raw JSON, kept only while the writer samples for a dictionary.
    pub raw: Option<String>,
    pub data: Vec<u8>,
    pub dict_id: i64,
    pub hits: Vec<PreparedHit>,
    pub detection_errors: usize,
    /// Every string value, one per line: the search index's text.
    pub text: String,
}

/// A hit with its JSON already written (on the preparer, not the writer).
pub struct PreparedHit {
    pub detection: String,
    pub group_key: String,
    pub details: String,
    /// The ids of `detection` and (`detection`, `group_key`), filled in by the writer
    /// before the hit is inserted ([`HitKeys`]).
    pub ids: (i64, i64),
}

/// A prepared blob (or import batch).
#[derive(Default)]
pub struct Prepared {
    pub records: Vec<PreparedRecord>,
    pub total: usize,
    pub bad: usize,
    pub first_bad: Option<String>,
    /// Each record that could not be stored: its position in the input and why.
    pub bad_at: Vec<(usize, String)>,
    /// The body is not a JSON array.
    pub malformed: Option<String>,
}

/// What the writer shares with the preparers: the newest committed zstd dictionary, and
/// whether the writer is sampling records for the next one. Only while it samples does a
/// prepared record keep its raw JSON (a backfill holds dozens of prepared blobs in flight;
/// the compressed copy is what is stored).
#[derive(Default)]
pub struct DictShare {
    current: std::sync::RwLock<Option<Dict>>,
    sampling: std::sync::atomic::AtomicBool,
}

pub type SharedDict = Arc<DictShare>;

/// A committed dictionary: its id and bytes.
type Dict = Arc<(i64, Vec<u8>)>;

impl DictShare {
    fn current(&self) -> Option<Dict> {
        self.current.read().ok().and_then(|g| g.clone())
    }

    fn publish(&self, d: Option<Dict>) {
        if let Ok(mut g) = self.current.write() {
            *g = d;
        }
    }

    fn sampling(&self) -> bool {
        self.sampling.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The memo of each preparer thread: sign-ins and mail access repeat a few shapes per
/// user, so most candidates are served without a parse or a jq run; small, because a
/// collector keeps running beside everything else.
const INGEST_MEMO_BYTES: usize = 8 << 20;

thread_local! {
    /// Each preparer runs the detections with its own memo (see `detect::Runner`).
    static RUNNER: std::cell::RefCell<Runner> =
        std::cell::RefCell::new(Runner::new(Some(INGEST_MEMO_BYTES)));
    /// Each preparer keeps one compressor with the dictionary loaded (loading is costly).
    static COMPRESSOR: std::cell::RefCell<Option<(i64, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

fn compress(raw: &[u8], dict: &SharedDict) -> Result<(Vec<u8>, i64)> {
    let d = dict.current();
    let id = d.as_ref().map(|d| d.0).unwrap_or(0);
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().map(|(i, _)| *i) != Some(id) {
            let comp = match &d {
                Some(d) => zstd::bulk::Compressor::with_dictionary(ZSTD_LEVEL, &d.1)?,
                None => zstd::bulk::Compressor::new(ZSTD_LEVEL)?,
            };
            *c = Some((id, comp));
        }
        let (_, comp) = c.as_mut().context("compressor vanished")?;
        Ok((comp.compress(raw)?, id))
    })
}

fn prepare_one(
    raw: &str,
    detections: &Detections,
    dict: &SharedDict,
) -> std::result::Result<Result<PreparedRecord>, String> {
    let mut text = String::with_capacity(raw.len());
    let (header, json) =
        RecordHeader::scan_json(raw.as_bytes(), &mut text).map_err(|e| e.to_string())?;
    let (data, dict_id) = match compress(raw.as_bytes(), dict) {
        Ok(x) => x,
        Err(e) => return Ok(Err(e)),
    };
    let (hits, errors) =
        RUNNER.with(|r| r.borrow_mut().run(detections, &header, Input::Json(json)));
    for e in &errors {
        tracing::debug!(detection = %e.detection, record_id = %header.id, error = %e.message, "detection failed on a record");
    }
    let hits = hits
        .into_iter()
        .map(|h| PreparedHit {
            detection: h.detection,
            group_key: h.group_key.to_string(),
            details: h.details.to_string(),
            ids: (0, 0),
        })
        .collect();
    Ok(Ok(PreparedRecord {
        organization_id: header.organization_id.clone(),
        header,
        raw: dict.sampling().then(|| raw.to_string()),
        data,
        dict_id,
        hits,
        detection_errors: errors.len(),
        text,
    }))
}

/// Prepares raw records (an import batch, or the records of one blob).
pub fn prepare_raws(
    raws: impl IntoIterator<Item = impl AsRef<str>>,
    detections: &Detections,
    dict: &SharedDict,
) -> Result<Prepared> {
    let mut p = Prepared::default();
    for (i, raw) in raws.into_iter().enumerate() {
        p.total += 1;
        match prepare_one(raw.as_ref(), detections, dict) {
            Ok(r) => p.records.push(r?),
            Err(e) => {
                p.bad += 1;
                p.first_bad.get_or_insert_with(|| e.clone());
                p.bad_at.push((i, e));
            }
        }
    }
    Ok(p)
}

/// Prepares a blob body: a JSON array of records.
pub fn prepare_blob(body: &[u8], detections: &Detections, dict: &SharedDict) -> Result<Prepared> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let items: Vec<&RawValue> = match serde_json::from_slice(body) {
        Ok(items) => items,
        Err(e) => {
            return Ok(Prepared {
                malformed: Some(e.to_string()),
                ..Default::default()
            });
        }
    };
    prepare_raws(items.iter().map(|r| r.get()), detections, dict)
}

/// Where one batch of rows comes from and what goes with it: the same for every record of
/// a blob (or an import batch).
struct Origin {
    /// The blob the records came from (None for an import).
    blob_id: Option<i64>,
    /// `ingested_at` of every row, seconds.
    now: i64,
    /// Forwarding is on: every new record gets an outbox row in the same unit of work.
    outbox: bool,
}

/// Inserts prepared records (tenant id, record) inside `tx`; duplicates by (tenant, Id)
/// are skipped and counted; hits are inserted for new records only. A new record keeps
/// the blob it came from.
fn insert_prepared(
    tx: &Connection,
    items: impl Iterator<Item = (i64, PreparedRecord)>,
    origin: Origin,
    sampler: &mut Option<DictSampler>,
    docs: &mut Vec<IndexDoc>,
    out: &mut IngestOutcome,
) -> Result<()> {
    let Origin {
        blob_id,
        now,
        outbox,
    } = origin;
    let mut rec = tx.prepare_cached(
        "INSERT OR IGNORE INTO records (tenant, id, creation_time, workload, operation, \
         record_type, user_id, client_ip, content_type, ingested_at, dict, raw, blob_id) \
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)",
    )?;
    let mut hit = tx.prepare_cached(
        "INSERT INTO hits (detection, grp, record_rowid, creation_time, details) \
         VALUES (?1,?2,?3,?4,?5)",
    )?;
    let mut queue = if outbox {
        Some(tx.prepare_cached("INSERT INTO outbox (record_rowid, created_at) VALUES (?1, ?2)")?)
    } else {
        None
    };
    let mut detection_errors = 0;
    let mut rollups = Rollups::default();
    for (tenant, r) in items {
        let header = r.header;
        let creation_time = header.creation_time.timestamp();
        let content_type = db::content_type_code(header.content_type());
        let n = rec.execute(params![
            tenant,
            header.id,
            creation_time,
            header.workload,
            header.operation,
            header.record_type,
            header.user_id,
            header.client_ip,
            content_type,
            now,
            r.dict_id,
            r.data,
            blob_id
        ])?;
        if n == 0 {
            out.duplicates += 1;
            continue;
        }
        out.new += 1;
        let rowid = tx.last_insert_rowid();
        if let Some(q) = queue.as_mut() {
            q.execute(params![rowid, now])?;
        }
        rollups.record(&header.workload, creation_time, content_type, now);
        if let (Some(s), Some(raw)) = (sampler.as_mut(), r.raw) {
            s.offer(raw);
        }
        for h in &r.hits {
            // A detection that groups by everything it emits has details equal to the key:
            // stored once (NULL reads as the key, migration 0008).
            let details = (h.details != h.group_key).then_some(h.details.as_str());
            hit.execute(params![h.ids.0, h.ids.1, rowid, creation_time, details])?;
            rollups.hit(&h.detection, &h.group_key, creation_time);
            out.hits += 1;
        }
        detection_errors += r.detection_errors as i64;
        docs.push(IndexDoc {
            rowid,
            header,
            text: r.text,
        });
    }
    rollups.apply(tx)?;
    bump(tx, "duplicates_dropped", out.duplicates as i64)?;
    bump(tx, "detection_errors", detection_errors)?;
    bump(tx, "bad_records", out.bad_records as i64)?;
    Ok(())
}

/// The UI rollups (`agg_*`, migration 0002) of the rows one `insert_prepared` stored,
/// added up in memory and applied in the same unit of work as the rows, one UPSERT per key.
/// Keyed by workload / detection first (a few of each per blob, searched in place), so a
/// lookup borrows the row's strings and allocates only for a new key.
#[derive(Default)]
struct Rollups {
    /// workload → hour → records.
    record_hours: Keyed<i64, i64>,
    /// workload → content type → (records, newest ingested_at).
    record_sources: Keyed<i64, (i64, i64)>,
    /// detection → hour → (hits, newest creation_time).
    hit_hours: Keyed<i64, (i64, i64)>,
    /// detection → group key → (hits, oldest and newest creation_time).
    hit_groups: Keyed<String, (i64, i64, i64)>,
}

/// A small association list by workload or detection, each with its own map.
type Keyed<K, V> = Vec<(String, HashMap<K, V>)>;

/// The value of `key` in a small association list, added on first use.
fn slot<'a, V: Default>(list: &'a mut Vec<(String, V)>, key: &str) -> &'a mut V {
    let i = match list.iter().position(|(k, _)| k == key) {
        Some(i) => i,
        None => {
            list.push((key.to_string(), V::default()));
            list.len() - 1
        }
    };
    &mut list[i].1
}

impl Rollups {
    /// One new record. `hour` is `creation_time / 3600` as SQLite's integer division
    /// computed it in the triggers (both truncate toward zero).
    fn record(&mut self, workload: &str, creation_time: i64, content_type: i64, ingested: i64) {
        *slot(&mut self.record_hours, workload)
            .entry(creation_time / 3600)
            .or_insert(0) += 1;
        let s = slot(&mut self.record_sources, workload)
            .entry(content_type)
            .or_insert((0, ingested));
        s.0 += 1;
        s.1 = s.1.max(ingested);
    }

    /// One new hit on a record created at `creation_time`.
    fn hit(&mut self, detection: &str, group_key: &str, creation_time: i64) {
        let h = slot(&mut self.hit_hours, detection)
            .entry(creation_time / 3600)
            .or_insert((0, creation_time));
        h.0 += 1;
        h.1 = h.1.max(creation_time);
        let groups = slot(&mut self.hit_groups, detection);
        match groups.get_mut(group_key) {
            Some(g) => {
                g.0 += 1;
                g.1 = g.1.min(creation_time);
                g.2 = g.2.max(creation_time);
            }
            None => {
                groups.insert(group_key.to_string(), (1, creation_time, creation_time));
            }
        }
    }

    /// Adds the sums to the rollup tables (the same arithmetic the triggers did per row).
    fn apply(&self, tx: &Connection) -> Result<()> {
        if !self.record_hours.is_empty() {
            let mut st = tx.prepare_cached(
                "INSERT INTO agg_record_hours (workload, hour, count) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (workload, hour) DO UPDATE SET count = count + excluded.count",
            )?;
            for (w, hours) in &self.record_hours {
                for (h, n) in hours {
                    st.execute(params![w, h, n])?;
                }
            }
        }
        if !self.record_sources.is_empty() {
            let mut st = tx.prepare_cached(
                "INSERT INTO agg_record_sources (workload, content_type, count, last_ingested) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (workload, content_type) DO UPDATE \
                 SET count = count + excluded.count, \
                 last_ingested = max(last_ingested, excluded.last_ingested)",
            )?;
            for (w, cts) in &self.record_sources {
                for (c, (n, last)) in cts {
                    st.execute(params![w, c, n, last])?;
                }
            }
        }
        if !self.hit_hours.is_empty() {
            let mut st = tx.prepare_cached(
                "INSERT INTO agg_hit_hours (detection, hour, count, last_seen) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (detection, hour) DO UPDATE \
                 SET count = count + excluded.count, last_seen = max(last_seen, excluded.last_seen)",
            )?;
            for (d, hours) in &self.hit_hours {
                for (h, (n, last)) in hours {
                    st.execute(params![d, h, n, last])?;
                }
            }
        }
        if !self.hit_groups.is_empty() {
            let mut st = tx.prepare_cached(
                "INSERT INTO agg_hit_groups (detection, group_key, count, first_seen, last_seen) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (detection, group_key) DO UPDATE \
                 SET count = count + excluded.count, first_seen = min(first_seen, excluded.first_seen), \
                 last_seen = max(last_seen, excluded.last_seen)",
            )?;
            for (d, groups) in &self.hit_groups {
                for (g, (n, first, last)) in groups {
                    st.execute(params![d, g, n, first, last])?;
                }
            }
        }
        Ok(())
    }
}
