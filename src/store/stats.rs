//! `stats`: what is stored, every gap, every cursor and its lag — gathered in one read
//! (`Serialize` gives `stats --json`; `report.rs` renders the text form).

use super::*;

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

/// The `status` row in which the collector says whether it runs (written when it starts,
/// every few seconds as a heartbeat, and when it stops; `liveness` judges a "running" that
/// a killed collector left behind).
pub const COLLECTOR_STATUS_KEY: &str = "collector";

/// `stats --json` (docs/architecture.md, CLI).
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
    /// Whether a collector runs on this store: `{"state": "running"|"stopped", "since": …,
    /// "heartbeat": …, "pid": …}` as the collector left it ([`COLLECTOR_STATUS_KEY`]), with
    /// "stopped" and `stopped_why` when it is known gone (`liveness`); None until one ran.
    pub collector: Option<Value>,
    /// The inactivity monitor, judged at the time of `stats()`; None until a collector ran.
    pub monitor: Option<MonitorStats>,
    pub index: Option<IndexStats>,
    pub db_bytes: u64,
    pub index_bytes: u64,
    /// Every imported file, oldest first: the evidence that went in.
    pub imports: Vec<ImportRow>,
    /// The Devo forwarder's queue and connection; None when forwarding was never used.
    pub outbox: Option<super::OutboxStats>,
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

impl Store {
    /// Everything `stats` shows (docs/architecture.md, CLI).
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
                let mut st = c.prepare_cached(&format!("SELECT content_type, state, last_error, {} FROM streams", db::LAG_TO_NOW))?;
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
                    collector: None,
                    monitor: None,
                    index: None,
                    db_bytes: 0,
                    index_bytes: 0,
                    imports: Vec::new(),
                    outbox: None,
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
        // A "running" left by a killed collector reads as stopped (`liveness`).
        stats.collector =
            super::liveness::judged_row(self.status(COLLECTOR_STATUS_KEY)?, Utc::now());
        stats.imports = self.imports()?;
        stats.monitor = self.monitor_stats(Utc::now())?;
        stats.outbox = self.outbox_stats()?;
        stats.db_bytes = dir_bytes_matching(&self.inner.data_dir, DB_FILE);
        stats.index_bytes = dir_bytes(&self.inner.data_dir.join(index::INDEX_DIR));
        Ok(stats)
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
