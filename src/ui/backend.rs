//! The read model the pages are drawn from: one trait, [`Backend`], with one method per
//! page, and the plain data each method returns.
//!
//! The UI never sees SQL or tantivy: `store_backend` implements this trait over the store's
//! read API, and the router tests implement it over fixed data. Every method is blocking
//! (SQLite, tantivy, jaq) and is called from `spawn_blocking` only (invariant 8). A method
//! returns `Ok(None)` for "no such thing" (a 404 page) and an error wrapping
//! [`crate::UsageError`] for a bad query or filter (a 400 page); any other error is an
//! internal failure whose text is logged and never shown.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A half-open time range `[from, to)`; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl TimeRange {
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|e| t < e)
    }
}

/// One detection as the dashboard lists it.
#[derive(Debug, Clone, Serialize)]
pub struct DetectionSummary {
    pub id: String,
    pub title: String,
    pub severity: String,
    pub hits: u64,
    pub last_hit: Option<DateTime<Utc>>,
    /// Hits per hour, oldest first, ending with the hour of `Dashboard::now`.
    pub per_hour: Vec<u64>,
}

/// A quiet collector × workload or content type (the guide's "Monitor It").
#[derive(Debug, Clone, Serialize)]
pub struct InactivityAlert {
    /// What went quiet, e.g. `12345 × Exchange` or `Audit.General`.
    pub scope: String,
    pub last_seen: Option<DateTime<Utc>>,
    pub quiet_secs: i64,
}

/// Records per hour of one workload.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadSeries {
    pub workload: String,
    pub total: u64,
    pub per_hour: Vec<u64>,
}

/// Ingestion lag of one content type.
#[derive(Debug, Clone, Serialize)]
pub struct Lag {
    pub content_type: String,
    pub lag_secs: Option<i64>,
    pub state: String,
}

/// Everything on the dashboard.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Dashboard {
    pub now: Option<DateTime<Utc>>,
    pub collector_id: String,
    pub total_records: u64,
    pub detections: Vec<DetectionSummary>,
    pub inactivity: Vec<InactivityAlert>,
    pub lags: Vec<Lag>,
    pub workloads: Vec<WorkloadSeries>,
    /// Problems worth a banner (gaps, load errors), already phrased for the analyst.
    pub warnings: Vec<String>,
}

/// One aggregated row of a detection: the group key's values, in `columns` order.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// The group key as stored (a JSON object); used to drill down to its records.
    pub key: serde_json::Value,
    pub values: Vec<String>,
    pub count: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// One detection and its grouped hits.
#[derive(Debug, Clone, Serialize)]
pub struct DetectionDetail {
    pub id: String,
    pub title: String,
    pub severity: String,
    pub description: String,
    pub table: String,
    /// The group_by column names; empty without group_by (then one group per hit key).
    pub columns: Vec<String>,
    /// Hits in the groups shown (for a threshold rule: hits inside bursts, as `detect`).
    pub hits: u64,
    pub groups: Vec<Group>,
    /// Set for a threshold detection: its groups are bursts (each group's span is
    /// `first_seen..=last_seen`, and one key may have several).
    pub threshold: Option<ThresholdRule>,
}

/// A detection's count rule, as its page explains it.
#[derive(Debug, Clone, Serialize)]
pub struct ThresholdRule {
    pub count: u64,
    pub window_secs: i64,
    /// Count distinct values of this field instead of hits.
    pub distinct: Option<String>,
    /// Hits the filter matched in the range, inside bursts or not.
    pub matched: u64,
}

/// One record as a table row.
#[derive(Debug, Clone, Serialize)]
pub struct RecordRow {
    pub id: String,
    pub creation_time: DateTime<Utc>,
    pub workload: String,
    pub operation: String,
    pub user_id: String,
    pub client_ip: String,
    /// The object the operation touched (ObjectId, or a subject / file name), if any.
    pub object: String,
}

/// One record, raw, with its neighbourhood.
#[derive(Debug, Clone, Serialize)]
pub struct RecordDetail {
    pub row: RecordRow,
    pub content_type: String,
    pub tenant: String,
    pub ingested_at: Option<DateTime<Utc>>,
    pub user_agent: String,
    /// The raw record, pretty-printed.
    pub raw_pretty: String,
    /// Detections that fired on this record (for a threshold rule: inside a burst).
    pub detections: Vec<String>,
    /// Threshold detections whose filter matched this record outside any burst.
    pub below_threshold: Vec<String>,
    /// The blob the record was first stored from; `None` for an imported record.
    pub blob: Option<BlobSummary>,
    /// Other records of the same blob (the first of them, by CreationTime).
    pub same_blob: Vec<RecordRow>,
    /// Other records of the same user within a minute either side.
    pub same_time: Vec<RecordRow>,
}

/// The blob (Management API content) a record came from.
#[derive(Debug, Clone, Serialize)]
pub struct BlobSummary {
    /// The API's contentId (attacker-influenced only as far as the API is: escape it).
    pub content_id: String,
    pub content_type: String,
    /// Records stored from this blob, this one included.
    pub records: u64,
}

/// A value and how often it occurs.
#[derive(Debug, Clone, Serialize)]
pub struct Tally {
    pub value: String,
    pub count: u64,
    pub last_seen: Option<DateTime<Utc>>,
}

/// Records over time: one count per bucket of `unit` ("hour", "day", "week" or "30 days"),
/// oldest first, each with the bucket's start; empty buckets included.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Activity {
    pub unit: &'static str,
    pub buckets: Vec<(DateTime<Utc>, u64)>,
}

/// Everything one UserId did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct UserDetail {
    pub user_id: String,
    pub total: u64,
    /// One page of the timeline, newest first (the `offset` asked for is skipped).
    pub timeline: Vec<RecordRow>,
    /// All `total` records over time.
    pub activity: Activity,
    pub detections: Vec<Tally>,
    pub ips: Vec<Tally>,
    pub user_agents: Vec<Tally>,
    pub workloads: Vec<Tally>,
    pub operations: Vec<Tally>,
}

/// Every user and operation from one address.
#[derive(Debug, Clone, Serialize, Default)]
pub struct IpDetail {
    pub ip: String,
    pub total: u64,
    pub users: Vec<Tally>,
    pub operations: Vec<Tally>,
    pub records: Vec<RecordRow>,
}

/// A full-text search with field filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchRequest {
    /// Free text in tantivy's query syntax.
    pub text: String,
    pub user: String,
    pub ip: String,
    pub operation: String,
    pub workload: String,
    pub table: String,
    pub range: TimeRange,
    pub limit: usize,
    pub offset: usize,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct SearchResult {
    pub total: u64,
    pub rows: Vec<RecordRow>,
    /// Set when the search index is behind the store: what was not searched.
    pub incomplete: Option<String>,
}

/// Output of an ad-hoc jq query over a table.
#[derive(Debug, Clone, Serialize, Default)]
pub struct QueryResult {
    /// Compact JSON, one output value per entry.
    pub lines: Vec<String>,
    pub scanned: u64,
    /// Set when a limit (outputs, records, time) stopped the query early.
    pub truncated: Option<String>,
}

/// One content type on the status page.
#[derive(Debug, Clone, Serialize, Default)]
pub struct StreamStatus {
    pub content_type: String,
    pub subscription: String,
    pub cursor: Option<DateTime<Utc>>,
    pub lag_secs: Option<i64>,
    pub last_error: String,
    pub blobs_pending: u64,
    pub blobs_failed: u64,
    pub blobs_expired: u64,
}

/// One row of the loss ledger.
#[derive(Debug, Clone, Serialize)]
pub struct GapRow {
    pub kind: String,
    pub content_type: String,
    pub window_start: Option<DateTime<Utc>>,
    pub window_end: Option<DateTime<Utc>>,
    pub count: u64,
    pub detail: String,
    pub at: Option<DateTime<Utc>>,
}

/// Everything on the status page. Holds no secret: token and secret are described, never
/// shown.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Status {
    /// "running since …", "stopped since … (why)" or "never ran on this store".
    pub collector_state: String,
    pub collector_id: String,
    pub tenant_id: String,
    pub records: u64,
    pub duplicates_dropped: u64,
    pub hits: u64,
    pub streams: Vec<StreamStatus>,
    pub gaps: Vec<GapRow>,
    /// e.g. "token valid until 12:00 UTC" or "no token yet" — never the token.
    pub token_state: String,
    /// Days until the client secret expires (negative once expired), when configured.
    pub secret_expires_in_days: Option<i64>,
    pub detection_errors: Vec<String>,
    pub outbox_depth: Option<u64>,
    pub index_lag: Option<u64>,
    /// Every imported file (the evidence that went in), oldest first.
    pub imports: Vec<crate::store::ImportRow>,
    /// Forwarding to Devo; None when this store never forwarded.
    pub outbox: Option<OutboxStatus>,
}

/// The Devo forwarder as the status page shows it (never a token or key).
#[derive(Debug, Clone, Serialize, Default)]
pub struct OutboxStatus {
    pub enabled: bool,
    pub target: Option<String>,
    pub connection: String,
    pub depth: u64,
    pub oldest_age_secs: Option<i64>,
    pub sent: u64,
    pub resent: u64,
    pub oversized: u64,
    pub last_error: Option<String>,
    pub down_since: Option<DateTime<Utc>>,
    /// Down longer than the configured alert time.
    pub alert: bool,
}

/// The numbers `/metrics` exports.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Metrics {
    pub records: u64,
    pub duplicates_dropped: u64,
    pub hits: Vec<(String, u64)>,
    pub gaps: Vec<(String, u64)>,
    pub lag_secs: Vec<(String, i64)>,
    pub errors: u64,
    pub blobs_pending: u64,
    pub outbox_depth: Option<u64>,
    /// sent, resent, oversized, receiver down (0/1): present when forwarding was used.
    pub outbox_counts: Option<(u64, u64, u64, u64)>,
    /// Whether a collector runs on this store (the rule of `stats`); None until one ran.
    pub collector_running: Option<bool>,
}

/// The records behind a download, written by [`crate::export`] exactly as `m365audit
/// export` writes them.
#[derive(Debug, Clone)]
pub enum Download {
    /// The records a search finds (newest first, at most [`DOWNLOAD_MAX`]).
    Search(SearchRequest),
    /// A user's timeline.
    User { id: String, range: TimeRange },
    /// The records a detection hit.
    Detection { id: String, range: TimeRange },
}

/// Records one search download holds at most (it is built in memory).
pub const DOWNLOAD_MAX: usize = 100_000;

/// The reads behind every page. Implementations are blocking; see the module docs.
pub trait Backend: Send + Sync + 'static {
    fn dashboard(&self, hours: usize) -> anyhow::Result<Dashboard>;
    fn detection(&self, id: &str, range: TimeRange) -> anyhow::Result<Option<DetectionDetail>>;
    /// The records behind one detection, optionally only those of one group key.
    fn detection_records(
        &self,
        id: &str,
        key: Option<&serde_json::Value>,
        range: TimeRange,
        limit: usize,
    ) -> anyhow::Result<Option<Vec<RecordRow>>>;
    fn record(&self, id: &str) -> anyhow::Result<Option<RecordDetail>>;
    /// A user's records: tallies and activity over all of them, and `limit` timeline rows
    /// after the newest `offset`.
    fn user(
        &self,
        user_id: &str,
        range: TimeRange,
        offset: usize,
        limit: usize,
    ) -> anyhow::Result<UserDetail>;
    /// A detection's groups made only of the hits of records by `user` (for a threshold
    /// detection: the bursts those hits fall in).
    fn detection_for_user(
        &self,
        id: &str,
        range: TimeRange,
        user: &str,
    ) -> anyhow::Result<Option<DetectionDetail>> {
        let _ = (id, range, user);
        Err(crate::UsageError("this backend cannot filter a detection by user".into()).into())
    }
    /// The records of `user` behind one detection (of one group key when given; for a
    /// threshold detection only those inside its bursts), newest first.
    fn detection_records_for_user(
        &self,
        id: &str,
        key: Option<&serde_json::Value>,
        range: TimeRange,
        user: &str,
        limit: usize,
    ) -> anyhow::Result<Option<Vec<RecordRow>>> {
        let _ = (id, key, range, user, limit);
        Err(crate::UsageError("this backend cannot filter a detection by user".into()).into())
    }
    fn ip(&self, ip: &str, range: TimeRange, limit: usize) -> anyhow::Result<IpDetail>;
    fn search(&self, req: &SearchRequest) -> anyhow::Result<SearchResult>;
    /// The tables a query may name.
    fn tables(&self) -> anyhow::Result<Vec<String>>;
    fn query(&self, table: &str, jq: &str, range: TimeRange) -> anyhow::Result<QueryResult>;
    /// A Devo LINQ query over its table; `range` is on `eventdate` (ingestion time), as in
    /// Devo; at most `max_rows` rows are kept (`Output::truncated` says when more existed).
    fn linq(
        &self,
        query: &crate::linq::Query,
        range: TimeRange,
        max_rows: usize,
    ) -> anyhow::Result<crate::linq::Output>;
    fn status(&self) -> anyhow::Result<Status>;
    fn metrics(&self) -> anyhow::Result<Metrics>;
    /// Whether this UI may write triage (the only write it has; `ui::triage`). False for
    /// `serve --read-only` and a store that cannot be written: no forms, POST is 403.
    fn triage_writable(&self) -> bool {
        false
    }
    /// The triaged groups of one detection, the reopen rule applied.
    fn triage(&self, detection: &str) -> anyhow::Result<Vec<crate::store::TriageRow>> {
        let _ = detection;
        Ok(Vec::new())
    }
    /// Per detection with groups: its groups by triage state (the dashboard).
    fn triage_counts(&self) -> anyhow::Result<Vec<super::triage::TriageCounts>> {
        Ok(Vec::new())
    }
    /// Applies one triage change (only called when `triage_writable`).
    fn set_triage(&self, change: &crate::store::TriageChange) -> anyhow::Result<()> {
        let _ = change;
        anyhow::bail!("this backend cannot write triage")
    }
    /// The body of a records download (JSON lines or Purview CSV).
    fn download(&self, what: &Download, format: crate::export::Format) -> anyhow::Result<Vec<u8>> {
        let _ = (what, format);
        anyhow::bail!("this backend has no record downloads")
    }
}
