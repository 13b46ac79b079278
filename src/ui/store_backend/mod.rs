//! The [`Backend`] of the real appliance: the pages' data read from the store (its general
//! read API plus `store::ui_queries`) and the loaded detections. Writes nothing but triage
//! (through the store's `TriageWriter`, when it was given one) and must not run SQL
//! itself (only `store` does); every method is blocking and is called from
//! `spawn_blocking` by the pages.
//!
//! Beside this file: `bursts.rs` (the threshold detections' all-time bursts, cached),
//! `pretty_json.rs` (the record view's JSON text), `record_fields.rs` (the object and user
//! agent of a record), `search_query.rs` (a search form as a tantivy query),
//! `collector_state.rs` (the collector's state in words), `user_view.rs` (the user
//! page's timeline pages and activity, detections narrowed to a user) and `triage.rs`
//! (triage rows and counts; the one write, through the store's triage writer).

mod bursts;
mod collector_state;
mod pretty_json;
mod record_fields;
mod search_query;
mod triage;
mod user_view;

pub use pretty_json::pretty_json;
pub use record_fields::{object_of, user_agent_of};
pub use search_query::{phrase, search_query};

use super::backend::*;
use super::threshold::{self, Bursts};
use crate::detect::{self, Detections, monitor};
use crate::store::ui_queries::{RecordColumn, ValueCount};
use crate::store::{Store, StoredRecord};
use anyhow::Result;
use bursts::BurstCache;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Limits of an ad-hoc query from the UI: a page must come back, so they are tighter than
/// the CLI's streaming `query` (the per-record guard rails are the same: `detect::Query`).
const QUERY_MAX_OUTPUTS: usize = 1000;
const QUERY_MAX_TIME: std::time::Duration = std::time::Duration::from_secs(10);
/// Groups shown on a detection page.
pub(crate) const MAX_GROUPS: usize = 2000;
/// Other records of the same blob listed on a record page (a blob holds up to thousands).
const SAME_BLOB_ROWS: usize = 50;
/// How long a computed dashboard is served again. Its aggregates come from small rollup
/// tables (no scan), but the page shows "as of" and reloads itself every 30 s, so a few
/// seconds of staleness cost nothing and spare the store under many open tabs.
const DASHBOARD_TTL: std::time::Duration = std::time::Duration::from_secs(5);

pub struct StoreBackend {
    store: Store,
    detections: Arc<Detections>,
    collector_id: String,
    tenant_id: String,
    /// When this process began watching (the inactivity monitor's grace period).
    started: DateTime<Utc>,
    quiet: Duration,
    /// How long a built dashboard is served again (`DASHBOARD_TTL`; zero in `bench`).
    dashboard_ttl: std::time::Duration,
    /// The last dashboard: when it was built, for how many hours, and the page data.
    dashboard_cache: std::sync::Mutex<Option<(std::time::Instant, usize, Dashboard)>>,
    /// Per threshold detection, its rule applied to all its hits (see `all_time_bursts`).
    bursts_cache: std::sync::Mutex<HashMap<String, BurstCache>>,
    /// Set when this UI may write triage (`with_triage_writer`).
    triage: Option<crate::store::TriageWriter>,
    /// Groups per detection as of a highest hit id (`triage.rs`).
    group_totals: std::sync::Mutex<(i64, HashMap<String, u64>)>,
}

impl StoreBackend {
    pub fn new(
        store: Store,
        detections: Arc<Detections>,
        collector_id: String,
        tenant_id: String,
    ) -> StoreBackend {
        StoreBackend {
            store,
            detections,
            collector_id,
            tenant_id,
            started: Utc::now(),
            quiet: Duration::hours(monitor::DEFAULT_QUIET_HOURS),
            dashboard_ttl: DASHBOARD_TTL,
            dashboard_cache: std::sync::Mutex::new(None),
            bursts_cache: std::sync::Mutex::new(HashMap::new()),
            triage: None,
            group_totals: std::sync::Mutex::new((-1, HashMap::new())),
        }
    }

    /// Sets how long a built dashboard is served again (zero: build it on every request).
    pub fn with_dashboard_ttl(mut self, ttl: std::time::Duration) -> StoreBackend {
        self.dashboard_ttl = ttl;
        self
    }

    /// Sets the inactivity monitor's quiet period.
    pub fn with_quiet_period(mut self, quiet: Duration) -> StoreBackend {
        self.quiet = quiet;
        self
    }

    fn vars(&self) -> detect::Vars {
        detect::Vars {
            collector_id: self.collector_id.clone(),
            tenant_id: self.tenant_id.clone(),
        }
    }
}

impl StoreBackend {
    /// Hits per detection as the dashboard shows them (and `stats` and `detect` count
    /// them): a threshold rule's hits inside its bursts (`all_time_bursts`, which applies
    /// `detect::threshold_groups_of_stored`), any other detection its `stored` count.
    fn detection_counts(&self, stored: &BTreeMap<String, i64>) -> Result<Vec<(String, u64)>> {
        let mut out: BTreeMap<String, u64> = stored
            .iter()
            .map(|(d, n)| (d.clone(), (*n).max(0) as u64))
            .collect();
        for m in self.detections.metas() {
            if let Some(t) = m.threshold
                && out.get(&m.id).copied().unwrap_or(0) > 0
            {
                out.insert(m.id.clone(), self.all_time_bursts(m, t)?.hits());
            }
        }
        Ok(out.into_iter().collect())
    }
}

impl StoreBackend {
    /// Whether a collector runs on this store, by the rule `stats` uses.
    fn collector_liveness(&self) -> Result<crate::store::liveness::Liveness> {
        Ok(crate::store::liveness::judge(
            self.store
                .status(crate::store::COLLECTOR_STATUS_KEY)?
                .as_ref(),
            Utc::now(),
        ))
    }
}

/// Bursts of a threshold detection as the page's groups, in the UI's order (largest first,
/// like every other detection, then the newest).
fn ranked_bursts<'g>(
    bursts: impl Iterator<Item = &'g crate::detect::Group>,
) -> Vec<(Value, RawGroup)> {
    let mut groups: Vec<(Value, RawGroup)> = bursts
        .map(|g| {
            let raw = RawGroup {
                count: g.count,
                first_seen: g.first_seen,
                last_seen: g.last_seen,
            };
            (g.key.clone(), raw)
        })
        .collect();
    groups.sort_by(|(_, a), (_, b)| {
        b.count
            .cmp(&a.count)
            .then(b.last_seen.cmp(&a.last_seen))
            .then(a.first_seen.cmp(&b.first_seen))
    });
    groups
}

fn load_errors(d: &Detections) -> Vec<String> {
    d.errors().iter().map(|e| e.to_string()).collect()
}

fn row_of(r: &StoredRecord) -> RecordRow {
    let object = serde_json::from_str::<Value>(&r.raw)
        .map(|v| object_of(&v))
        .unwrap_or_default();
    RecordRow {
        id: r.header.id.clone(),
        creation_time: r.header.creation_time,
        workload: r.header.workload.clone(),
        operation: r.header.operation.clone(),
        user_id: r.header.user_id.clone(),
        client_ip: r.header.client_ip.clone(),
        object,
    }
}

fn tally(v: Vec<ValueCount>) -> Vec<Tally> {
    v.into_iter()
        .map(|c| Tally {
            value: c.value,
            count: c.count.max(0) as u64,
            last_seen: Some(c.last_seen),
        })
        .collect()
}

/// The numbers of one group before it becomes a table row.
struct RawGroup {
    count: u64,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
}

/// Detections without group_by are grouped by what they emitted (their group key is `{}`).
fn by_details(meta: Option<&detect::Meta>) -> bool {
    meta.is_none_or(|m| m.group_by.is_empty())
}

/// A value of a group key as a cell: strings as they are, anything else as JSON.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

impl StoreBackend {
    fn build_dashboard(&self, hours: usize) -> Result<Dashboard> {
        let now = Utc::now();

        let this_hour = now.duration_trunc(Duration::hours(1))?;
        let since = this_hour - Duration::hours(hours as i64 - 1);
        let first_hour = since.timestamp() / 3600;
        let series = |counts: &[(i64, i64)]| {
            let mut v = vec![0u64; hours];
            for &(h, n) in counts {
                let i = h - first_hour;
                if (0..hours as i64).contains(&i) {
                    v[i as usize] += n.max(0) as u64;
                }
            }
            v
        };
        let mut per_det: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
        for hc in self.store.ui_hits_per_hour(since)? {
            per_det.entry(hc.key).or_default().push((hc.hour, hc.count));
        }
        let summary: HashMap<String, (i64, DateTime<Utc>)> = self
            .store
            .ui_hit_summary()?
            .into_iter()
            .map(|(d, n, t)| (d, (n, t)))
            .collect();
        let mut detections: Vec<(u8, DetectionSummary)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for m in self.detections.metas() {
            seen.insert(m.id.clone());
            let (hits, last) = summary.get(&m.id).copied().unzip();
            let (hits, last_hit, per_hour) = match m.threshold {
                // Raw hits of a threshold rule are not alerts: show its bursts only.
                Some(t) if hits.unwrap_or(0) > 0 => {
                    let b = self.all_time_bursts(m, t)?;
                    let counts: Vec<(i64, i64)> = b
                        .per_hour
                        .range(first_hour..)
                        .map(|(h, n)| (*h, *n as i64))
                        .collect();
                    (b.hits(), b.last_hit(), series(&counts))
                }
                Some(_) => (0, None, vec![0; hours]),
                None => (
                    hits.unwrap_or(0).max(0) as u64,
                    last,
                    series(per_det.get(&m.id).map(Vec::as_slice).unwrap_or(&[])),
                ),
            };
            detections.push((
                m.severity as u8,
                DetectionSummary {
                    id: m.id.clone(),
                    title: m.title.clone(),
                    severity: m.severity.as_str().to_string(),
                    hits,
                    last_hit,
                    per_hour,
                },
            ));
        }
        // Hits of detections no longer loaded still show.
        for (id, (n, last)) in &summary {
            if !seen.contains(id) {
                detections.push((
                    0,
                    DetectionSummary {
                        id: id.clone(),
                        title: format!("{id} (not loaded)"),
                        severity: "info".into(),
                        hits: (*n).max(0) as u64,
                        last_hit: Some(*last),
                        per_hour: series(per_det.get(id).map(Vec::as_slice).unwrap_or(&[])),
                    },
                ));
            }
        }
        detections.sort_by(|(sa, a), (sb, b)| {
            (b.hits > 0)
                .cmp(&(a.hits > 0))
                .then(sb.cmp(sa))
                .then(b.hits.cmp(&a.hits))
                .then(a.id.cmp(&b.id))
        });

        let streams = self.store.ui_streams()?;
        let live = self.collector_liveness()?;
        // The collector's stored monitor (its id, start and quiet period) when one ran on
        // this store; this process's own start otherwise (a `serve` over an import).
        let (collector_id, watched_since, quiet) = match self.store.monitor_state()? {
            Some(m) => (m.collector_id.clone(), m.since, m.quiet()),
            None => (self.collector_id.clone(), self.started, self.quiet),
        };
        let activity = self.store.monitor_activity(&collector_id)?;
        let inactivity = monitor::evaluate(now, watched_since, quiet, &activity)
            .into_iter()
            .filter(|s| s.alert)
            .map(|s| InactivityAlert {
                scope: format!("{} — {}", monitor::source_label(&s.source), s.reason),
                last_seen: s.last_record,
                quiet_secs: s.quiet_secs.unwrap_or(0),
            })
            .collect();

        let mut per_wl: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
        for hc in self.store.ui_records_per_hour(since)? {
            let key = if hc.key.is_empty() {
                "(none)".to_string()
            } else {
                hc.key
            };
            per_wl.entry(key).or_default().push((hc.hour, hc.count));
        }
        let workloads = per_wl
            .into_iter()
            .map(|(w, c)| {
                let per_hour = series(&c);
                WorkloadSeries {
                    workload: w,
                    total: per_hour.iter().sum(),
                    per_hour,
                }
            })
            .collect();

        let mut warnings = Vec::new();
        let gaps = self.store.gaps()?;
        if !gaps.is_empty() {
            let n: i64 = gaps.iter().map(|g| g.count).sum();
            warnings.push(format!(
                "the loss ledger has {} entries ({n} items known missing) — see Status",
                gaps.len()
            ));
        }
        let errs = load_errors(&self.detections);
        if !errs.is_empty() {
            warnings.push(format!(
                "{} detections failed to load — see Status",
                errs.len()
            ));
        }
        Ok(Dashboard {
            now: Some(now),
            collector_id: self.collector_id.clone(),
            total_records: self.store.ui_record_count()?.max(0) as u64,
            detections: detections.into_iter().map(|(_, d)| d).collect(),
            inactivity,
            lags: streams
                .iter()
                .map(|s| Lag {
                    content_type: s.content_type.clone(),
                    lag_secs: s.lag_secs,
                    state: collector_state::stream_label(s.state.as_deref(), &live),
                })
                .collect(),
            workloads,
            warnings,
        })
    }

    fn detection_detail(&self, id: &str, range: TimeRange) -> Result<Option<DetectionDetail>> {
        let meta = self.detections.meta(id);
        if let Some(m) = meta
            && let Some(t) = m.threshold
        {
            let b = self.bursts_for(m, t, None, range)?;
            let mut groups = ranked_bursts(b.groups.iter());
            groups.truncate(MAX_GROUPS);
            let rule = ThresholdRule {
                count: t.count,
                window_secs: t.window_secs,
                distinct: m.distinct.clone(),
                matched: b.hits_read.max(0) as u64,
            };
            return Ok(Some(self.detail(id, meta, b.hits(), groups, Some(rule))));
        }
        let by_details = by_details(meta);
        let (total, groups) = self
            .store
            .ui_hit_groups(id, by_details, range.from, range.to, MAX_GROUPS)?;
        if meta.is_none()
            && total == 0
            && self.store.ui_hit_groups(id, false, None, None, 1)?.0 == 0
        {
            return Ok(None);
        }
        let groups: Vec<(Value, RawGroup)> = groups
            .into_iter()
            .map(|g| {
                let key: Value =
                    serde_json::from_str(&g.key).unwrap_or_else(|_| Value::String(g.key.clone()));
                let raw = RawGroup {
                    count: g.count.max(0) as u64,
                    first_seen: g.first_seen,
                    last_seen: g.last_seen,
                };
                (key, raw)
            })
            .collect();
        Ok(Some(self.detail(
            id,
            meta,
            total.max(0) as u64,
            groups,
            None,
        )))
    }

    /// The detection page's data from its groups (key, numbers), largest first.
    fn detail(
        &self,
        id: &str,
        meta: Option<&detect::Meta>,
        hits: u64,
        groups: Vec<(Value, RawGroup)>,
        threshold: Option<ThresholdRule>,
    ) -> DetectionDetail {
        let columns: Vec<String> = match meta {
            Some(m) if !m.group_by.is_empty() => m.group_by.clone(),
            _ => {
                // Without group_by the rows are the emitted values: their keys are the
                // columns, in order of first appearance.
                let mut cols: Vec<String> = Vec::new();
                for (k, _) in &groups {
                    match k {
                        Value::Object(o) => {
                            for name in o.keys() {
                                if !cols.contains(name) {
                                    cols.push(name.clone());
                                }
                            }
                        }
                        _ => {
                            if !cols.iter().any(|c| c == "value") {
                                cols.push("value".into());
                            }
                        }
                    }
                }
                cols
            }
        };
        let groups = groups
            .into_iter()
            .map(|(key, g)| {
                let values = columns
                    .iter()
                    .map(|c| match &key {
                        Value::Object(_) => cell(key.get(c)),
                        other if c == "value" => cell(Some(other)),
                        _ => String::new(),
                    })
                    .collect();
                Group {
                    key,
                    values,
                    count: g.count,
                    first_seen: g.first_seen,
                    last_seen: g.last_seen,
                }
            })
            .collect();
        DetectionDetail {
            id: id.to_string(),
            title: meta.map(|m| m.title.clone()).unwrap_or_else(|| id.into()),
            severity: meta
                .map(|m| m.severity.as_str().to_string())
                .unwrap_or_else(|| "info".into()),
            description: meta.map(|m| m.description.clone()).unwrap_or_default(),
            table: meta.map(|m| m.table.clone()).unwrap_or_default(),
            columns,
            hits,
            groups,
            threshold,
        }
    }
}

impl Backend for StoreBackend {
    fn triage_writable(&self) -> bool {
        self.triage.is_some()
    }
    fn triage(&self, detection: &str) -> Result<Vec<crate::store::TriageRow>> {
        self.triage_rows(Some(detection))
    }
    fn triage_counts(&self) -> Result<Vec<crate::ui::triage::TriageCounts>> {
        self.triage_counts_all()
    }
    fn set_triage(&self, change: &crate::store::TriageChange) -> Result<()> {
        self.apply_triage(change)
    }

    fn dashboard(&self, hours: usize) -> Result<Dashboard> {
        if let Ok(cache) = self.dashboard_cache.lock()
            && let Some((at, h, d)) = cache.as_ref()
            && *h == hours
            && at.elapsed() < self.dashboard_ttl
        {
            return Ok(d.clone());
        }
        let d = self.build_dashboard(hours)?;
        if let Ok(mut cache) = self.dashboard_cache.lock() {
            *cache = Some((std::time::Instant::now(), hours, d.clone()));
        }
        Ok(d)
    }

    fn detection(&self, id: &str, range: TimeRange) -> Result<Option<DetectionDetail>> {
        self.detection_detail(id, range)
    }
    fn detection_records(
        &self,
        id: &str,
        key: Option<&Value>,
        range: TimeRange,
        limit: usize,
    ) -> Result<Option<Vec<RecordRow>>> {
        let meta = self.detections.meta(id);
        if meta.is_none() && self.store.ui_hit_groups(id, false, None, None, 1)?.0 == 0 {
            return Ok(None);
        }
        // Group keys are stored as serde_json text; re-serializing the parsed key gives the
        // same canonical text (keys sorted).
        let key_text = key.map(|k| k.to_string());
        if let Some(m) = meta
            && let Some(t) = m.threshold
        {
            return Ok(Some(self.burst_records(
                m,
                t,
                key_text.as_deref(),
                range,
                limit,
            )?));
        }
        let recs = self.store.ui_hit_records(
            id,
            by_details(meta),
            key_text.as_deref(),
            range.from,
            range.to,
            limit,
        )?;
        Ok(Some(recs.iter().map(row_of).collect()))
    }

    fn record(&self, id: &str) -> Result<Option<RecordDetail>> {
        let Some(r) = self.store.record_by_id(id)? else {
            return Ok(None);
        };
        let v: Value = crate::model::parse_record(r.raw.as_bytes()).unwrap_or(Value::Null);
        let mut detections: Vec<String> = Vec::new();
        let mut below_threshold: Vec<String> = Vec::new();
        for h in self.store.hits_of_record(r.rowid)? {
            // A hit of a threshold rule is an alert only inside a burst.
            let alert = match self.detections.meta(&h.detection) {
                Some(m) => match m.threshold {
                    Some(rule) => self
                        .all_time_bursts(m, rule)?
                        .contains(&h.group_key.to_string(), h.creation_time.timestamp()),
                    None => true,
                },
                None => true,
            };
            let list = if alert {
                &mut detections
            } else {
                &mut below_threshold
            };
            if !list.contains(&h.detection) {
                list.push(h.detection);
            }
        }
        below_threshold.retain(|d| !detections.contains(d));
        let same_time = self
            .store
            .ui_neighbours(&r, 60, 50)?
            .iter()
            .map(row_of)
            .collect();
        let (blob, same_blob) = match self.store.ui_same_blob(&r, SAME_BLOB_ROWS)? {
            Some((b, recs)) => (
                Some(BlobSummary {
                    content_id: b.content_id,
                    content_type: b.content_type,
                    records: b.records.max(0) as u64,
                }),
                recs.iter().map(row_of).collect(),
            ),
            None => (None, Vec::new()),
        };
        Ok(Some(RecordDetail {
            row: row_of(&r),
            content_type: r.content_type.as_str().to_string(),
            tenant: r.tenant.clone(),
            ingested_at: Some(r.ingested_at),
            user_agent: user_agent_of(&v),
            raw_pretty: pretty_json(&r.raw),
            detections,
            below_threshold,
            blob,
            same_blob,
            same_time,
        }))
    }

    fn user(
        &self,
        user_id: &str,
        range: TimeRange,
        offset: usize,
        limit: usize,
    ) -> Result<UserDetail> {
        self.user_detail(user_id, range, offset, limit)
    }

    fn detection_for_user(
        &self,
        id: &str,
        range: TimeRange,
        user: &str,
    ) -> Result<Option<DetectionDetail>> {
        self.detection_of_user(id, range, user)
    }

    fn detection_records_for_user(
        &self,
        id: &str,
        key: Option<&Value>,
        range: TimeRange,
        user: &str,
        limit: usize,
    ) -> Result<Option<Vec<RecordRow>>> {
        self.records_of_user(id, key, range, user, limit)
    }

    fn ip(&self, ip: &str, range: TimeRange, limit: usize) -> Result<IpDetail> {
        let ip = crate::model::normalize_ip(ip);
        let p = self.store.ui_profile(
            RecordColumn::ClientIp,
            &ip,
            (range.from, range.to),
            (0, limit),
            &[RecordColumn::UserId, RecordColumn::Operation],
            50,
        )?;
        let mut tallies = p.tallies.into_iter().map(tally);
        Ok(IpDetail {
            total: p.total.max(0) as u64,
            users: tallies.next().unwrap_or_default(),
            operations: tallies.next().unwrap_or_default(),
            records: p.records.iter().map(row_of).collect(),
            ip,
        })
    }

    fn search(&self, req: &SearchRequest) -> Result<SearchResult> {
        let q = search_query(req);
        let res = self.store.search(&q, req.offset + req.limit)?;
        let mut rows = Vec::new();
        for h in res.hits.iter().skip(req.offset).take(req.limit) {
            if let Some(r) = self.store.record_by_rowid(h.rowid)? {
                rows.push(row_of(&r));
            }
        }
        Ok(SearchResult {
            total: res.total as u64,
            rows,
            incomplete: res.incomplete_note(),
        })
    }

    fn tables(&self) -> Result<Vec<String>> {
        // The namespace of docs/architecture.md (Tables): fixed, so listing it costs no scan.
        let mut t = vec![
            crate::model::TABLE_ALL.to_string(),
            crate::model::TABLE_AUTH.to_string(),
        ];
        for w in [
            "AzureActiveDirectory",
            "Exchange",
            "SharePoint",
            "OneDrive",
            "MicrosoftTeams",
            "SecurityComplianceCenter",
            "PowerBI",
            "Yammer",
            "MicrosoftForms",
            "MicrosoftStream",
            "Dynamics365",
        ] {
            t.push(crate::model::workload_table(w));
        }
        Ok(t)
    }

    fn linq(
        &self,
        query: &crate::linq::Query,
        range: TimeRange,
        max_rows: usize,
    ) -> Result<crate::linq::Output> {
        use crate::linq::{Input, Options, Origin};
        let origin = self
            .store
            .collector_id()?
            .filter(|id| !id.is_empty())
            .map(|id| Origin::this_host(&id));
        let mut run = query.start(Options {
            from: range.from,
            to: range.to,
            max_rows: Some(max_rows),
        });
        let started = std::time::Instant::now();
        let mut timed_out = false;
        self.store
            .for_each_record(query.table(), 0, |r| {
                if started.elapsed() > QUERY_MAX_TIME {
                    timed_out = true;
                    return Ok(false);
                }
                let input = Input {
                    header: &r.header,
                    raw: &r.raw,
                    ingested_at: r.ingested_at,
                    origin: origin.as_ref(),
                };
                Ok(run.push(&input)?)
            })
            .map_err(linq_usage)?;
        let mut out = run.finish().map_err(|e| linq_usage(e.into()))?;
        if timed_out {
            out.truncated = true;
            out.warnings.push(format!(
                "stopped at the time limit of {} s: the rows cover only the records read until then",
                QUERY_MAX_TIME.as_secs()
            ));
        }
        Ok(out)
    }

    fn query(&self, table: &str, jq: &str, range: TimeRange) -> Result<QueryResult> {
        let q = detect::Query::compile(jq, self.vars())
            .map_err(|e| crate::UsageError(format!("jq: {e}")))?;
        let started = std::time::Instant::now();
        let mut out = QueryResult::default();
        let mut stop: Option<String> = None;
        self.store.for_each_record(table, 0, |r| {
            if !range.contains(r.header.creation_time) {
                return Ok(true);
            }
            out.scanned += 1;
            match q.run_bytes(r.raw.as_bytes()) {
                Ok(vals) => {
                    for v in vals {
                        if out.lines.len() >= QUERY_MAX_OUTPUTS {
                            stop = Some(format!("the output limit of {QUERY_MAX_OUTPUTS} lines"));
                            return Ok(false);
                        }
                        out.lines.push(v.to_string());
                    }
                }
                Err(e) => {
                    stop = Some(format!("record {}: {e}", r.header.id));
                    return Ok(false);
                }
            }
            if started.elapsed() > QUERY_MAX_TIME {
                stop = Some(format!("the time limit of {} s", QUERY_MAX_TIME.as_secs()));
                return Ok(false);
            }
            Ok(true)
        })?;
        out.truncated = stop;
        Ok(out)
    }

    fn status(&self) -> Result<Status> {
        let stats = self.store.stats()?;
        let live = self.collector_liveness()?;
        let streams = self
            .store
            .ui_streams()?
            .into_iter()
            .map(|s| StreamStatus {
                subscription: collector_state::stream_label(s.state.as_deref(), &live),
                cursor: s.cursor,
                lag_secs: s.lag_secs,
                last_error: s.last_error.unwrap_or_default(),
                blobs_pending: s.pending.max(0) as u64,
                blobs_failed: s.failed.max(0) as u64,
                blobs_expired: s.expired.max(0) as u64,
                content_type: s.content_type,
            })
            .collect();
        let gaps = self
            .store
            .gaps()?
            .into_iter()
            .map(|g| GapRow {
                kind: g.kind,
                content_type: g.content_type,
                window_start: g.window_start.as_deref().and_then(crate::model::parse_time),
                window_end: g.window_end.as_deref().and_then(crate::model::parse_time),
                count: g.count.max(0) as u64,
                detail: g.detail,
                at: Some(g.at),
            })
            .collect();
        let auth = stats.auth.clone().unwrap_or(Value::Null);
        let token_state = collector_state::token_label(&auth, &live);
        Ok(Status {
            collector_state: collector_state::collector_label(&live),
            collector_id: self.collector_id.clone(),
            tenant_id: self.tenant_id.clone(),
            records: stats.records.total.max(0) as u64,
            duplicates_dropped: stats.duplicates_dropped.max(0) as u64,
            hits: stats.hits.values().sum::<i64>().max(0) as u64,
            streams,
            gaps,
            token_state,
            secret_expires_in_days: auth.get("secret_expires_in_days").and_then(Value::as_i64),
            detection_errors: load_errors(&self.detections),
            outbox_depth: stats.outbox.as_ref().map(|o| o.depth.max(0) as u64),
            index_lag: stats.index.map(|i| i.records_behind.max(0) as u64),
            imports: stats.imports,
            outbox: stats.outbox.map(|o| OutboxStatus {
                enabled: o.enabled,
                target: o.target,
                connection: o.connection,
                depth: o.depth.max(0) as u64,
                oldest_age_secs: o.oldest_age_secs,
                sent: o.sent.max(0) as u64,
                resent: o.resent.max(0) as u64,
                oversized: o.oversized.max(0) as u64,
                last_error: o.last_error,
                down_since: o.down_since,
                alert: o.alert,
            }),
        })
    }

    fn download(&self, what: &Download, format: crate::export::Format) -> Result<Vec<u8>> {
        use crate::export::{Filter, RecordWriter, export};
        let mut w = RecordWriter::new(Vec::new(), format)?;
        let filter = |range: &TimeRange| Filter {
            table: crate::model::TABLE_ALL.to_string(),
            since: range.from,
            until: range.to,
            ..Filter::default()
        };
        match what {
            Download::Search(req) => {
                let res = self.store.search(&search_query(req), DOWNLOAD_MAX)?;
                for h in &res.hits {
                    if let Some(r) = self.store.record_by_rowid(h.rowid)? {
                        w.write(&r)?;
                    }
                }
            }
            Download::User { id, range } => {
                let f = Filter {
                    user: Some(id.clone()),
                    ..filter(range)
                };
                export(&self.store, &f, &mut w)?;
            }
            Download::Detection { id, range } => {
                let f = Filter {
                    detection: Some(id.clone()),
                    ..filter(range)
                };
                export(&self.store, &f, &mut w)?;
            }
        }
        w.finish()
    }

    fn metrics(&self) -> Result<Metrics> {
        let stats = self.store.stats()?;
        let live = self.collector_liveness()?;
        let mut gaps: BTreeMap<String, u64> = BTreeMap::new();
        for g in &stats.gaps {
            *gaps.entry(g.kind.clone()).or_default() += g.count.max(0) as u64;
        }
        Ok(Metrics {
            records: stats.records.total.max(0) as u64,
            duplicates_dropped: stats.duplicates_dropped.max(0) as u64,
            hits: self.detection_counts(&stats.hits)?,
            gaps: gaps.into_iter().collect(),
            lag_secs: stats
                .content_types
                .iter()
                .filter_map(|(ct, s)| s.lag_secs.map(|l| (ct.clone(), l)))
                .collect(),
            errors: stats
                .counters
                .iter()
                .filter(|(k, _)| k.contains("error"))
                .map(|(_, v)| (*v).max(0) as u64)
                .sum(),
            blobs_pending: stats.blobs.get("pending").copied().unwrap_or(0).max(0) as u64,
            outbox_depth: stats.outbox.as_ref().map(|o| o.depth.max(0) as u64),
            outbox_counts: stats.outbox.as_ref().map(|o| {
                (
                    o.sent.max(0) as u64,
                    o.resent.max(0) as u64,
                    o.oversized.max(0) as u64,
                    u64::from(o.down_since.is_some()),
                )
            }),
            collector_running: match live {
                crate::store::liveness::Liveness::NeverRan => None,
                l => Some(l.is_running()),
            },
        })
    }
}

/// A LINQ evaluation error is the user's to fix (a 400 page); anything else stays internal.
fn linq_usage(e: anyhow::Error) -> anyhow::Error {
    match e.downcast::<crate::linq::LinqError>() {
        Ok(le) => crate::UsageError(format!("LINQ {le}")).into(),
        Err(other) => other,
    }
}
