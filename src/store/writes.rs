//! The write methods: each queues one command for the writer thread and returns a
//! [`Reply`] (`.await` in async code, `.wait()` on plain threads).

use super::*;

impl Store {
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
        self.ingest_blob_holding(blob_id, body, ())
    }

    /// [`Store::ingest_blob`], dropping `held` as soon as the blob's rows are written, before
    /// its group commits: a caller that bounds the blobs it has in the store's pipeline by
    /// a permit gets the permit back when the blob's memory is freed, not a commit later.
    pub fn ingest_blob_holding(
        &self,
        blob_id: i64,
        body: bytes::Bytes,
        held: impl Send + 'static,
    ) -> Reply<BlobIngest> {
        self.prepare_then(
            move |d, dict| writer::prepare_blob(&body, d, dict),
            move |w, p| {
                let r = w.ingest_prepared(blob_id, p);
                drop(held);
                r
            },
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
    /// Batches reach the writer in call order (a file is stored in line order); the
    /// outcome's `bad_at` names each record not stored by its position in `raws`.
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
}
