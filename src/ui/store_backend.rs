//! The [`Backend`] of the real appliance: the pages' data read from the store (its general
//! read API plus `store::ui_queries`) and the loaded detections. Must not write and must
//! not run SQL itself (only `store` does); every method is blocking and is called from
//! `spawn_blocking` by the pages.

use super::backend::*;
use super::threshold::{self, Bursts};
use crate::detect::{self, Detections, monitor};
use crate::store::ui_queries::{RecordColumn, ValueCount};
use crate::store::{Store, StoredRecord};
use anyhow::Result;
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
/// Records read to tally a user's user agents.
const UA_SAMPLE: usize = 2000;
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
}

/// One threshold detection's all-time bursts, current up to hit id `upto`.
struct BurstCache {
    upto: i64,
    /// Per stored group key: its bursts (empty when it never reached the threshold).
    by_key: HashMap<String, Bursts>,
    /// `by_key` merged, as pages read it.
    all: Arc<Bursts>,
}

/// Changed group keys a threshold refresh re-reads one by one; beyond this it re-reads
/// the detection's hits in one go.
const REFRESH_KEYS_MAX: usize = 200;

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

    /// Evaluates every threshold detection over all its hits once, so the first dashboard
    /// does not pay for it (on 1 M records: a few hundred ms, mostly reading the
    /// `distinct` rules' hits). Blocking; `serve`, `run` and `demo` call it on a blocking
    /// thread at start. A failure is logged: the pages then try again themselves.
    pub fn warm(&self) {
        for m in self.detections.metas() {
            let Some(t) = m.threshold else {
                continue;
            };
            let started = std::time::Instant::now();
            match self.all_time_bursts(m, t) {
                Ok(b) => tracing::info!(
                    detection = %m.id,
                    hits = b.hits_read,
                    bursts = b.groups.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "threshold rule evaluated"
                ),
                Err(e) => tracing::warn!(
                    detection = %m.id,
                    error = format!("{e:#}"),
                    "evaluating a threshold rule"
                ),
            }
        }
    }

    /// A threshold detection's bursts over all its hits, kept per group key and brought
    /// up to date incrementally: hits are only ever added, so when the newest hit id
    /// moved, only the keys that got a hit since are read again (one indexed range each)
    /// and re-evaluated. The first call reads the detection's hits once. Under a live
    /// collector a dashboard thus costs a read of the new hits, not of all of them.
    fn all_time_bursts(&self, meta: &detect::Meta, t: detect::Threshold) -> Result<Arc<Bursts>> {
        // Held while refreshing: concurrent pages wait for one evaluation instead of
        // each running their own (a poisoned lock only means a panic mid-refresh; the
        // entry is then rebuilt below because its `upto` did not move).
        let mut cache = self
            .bursts_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let upto = self.store.ui_max_hit_id()?;
        let distinct = meta.distinct.as_deref();
        if let Some(c) = cache.get_mut(&meta.id) {
            if c.upto == upto {
                return Ok(c.all.clone());
            }
            let keys = self.store.ui_hit_keys_since(&meta.id, c.upto, upto)?;
            if keys.len() <= REFRESH_KEYS_MAX {
                for k in &keys {
                    let ev = self
                        .store
                        .ui_hit_events(&meta.id, Some(k), distinct, None, None)?;
                    c.by_key
                        .insert(k.clone(), threshold::evaluate(meta, t, &ev));
                }
                if !keys.is_empty() {
                    c.all = Arc::new(threshold::merge(c.by_key.values()));
                }
                c.upto = upto;
                return Ok(c.all.clone());
            }
        }
        // First use, or so many changed keys that one read of everything is cheaper.
        let ev = self
            .store
            .ui_hit_events(&meta.id, None, distinct, None, None)?;
        let by_key = threshold::evaluate_by_key(meta, t, ev);
        let all = Arc::new(threshold::merge(by_key.values()));
        cache.insert(
            meta.id.clone(),
            BurstCache {
                upto,
                by_key,
                all: all.clone(),
            },
        );
        Ok(all)
    }

    /// A threshold detection's bursts among its hits in `range` (of one stored group key
    /// when given): the rule applied to exactly those hits, as `detect` would over the
    /// records of that range.
    fn bursts(
        &self,
        meta: &detect::Meta,
        t: detect::Threshold,
        key: Option<&str>,
        range: TimeRange,
    ) -> Result<Bursts> {
        let events = self.store.ui_hit_events(
            &meta.id,
            key,
            meta.distinct.as_deref(),
            range.from,
            range.to,
        )?;
        Ok(threshold::evaluate(meta, t, &events))
    }

    /// Bursts for a page: the cached all-time evaluation, or a fresh one for a range or key.
    fn bursts_for(
        &self,
        meta: &detect::Meta,
        t: detect::Threshold,
        key: Option<&str>,
        range: TimeRange,
    ) -> Result<Arc<Bursts>> {
        if key.is_none() && range == TimeRange::default() {
            self.all_time_bursts(meta, t)
        } else {
            Ok(Arc::new(self.bursts(meta, t, key, range)?))
        }
    }

    /// The records of a threshold detection's bursts (of one key when given) in `range`,
    /// newest first: exactly the hits that count, never one outside a qualifying window.
    fn burst_records(
        &self,
        meta: &detect::Meta,
        t: detect::Threshold,
        key: Option<&str>,
        range: TimeRange,
        limit: usize,
    ) -> Result<Vec<RecordRow>> {
        let b = self.bursts_for(meta, t, key, range)?;
        let mut spans: Vec<&detect::Group> = b.groups.iter().collect();
        spans.sort_by_key(|g| std::cmp::Reverse(g.last_seen));
        let mut recs: Vec<crate::store::StoredRecord> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for g in spans {
            if recs.len() >= limit {
                break;
            }
            // A burst is every hit of its key from first_seen to last_seen (inclusive).
            let part = self.store.ui_hit_records(
                &meta.id,
                false,
                Some(&g.key.to_string()),
                Some(g.first_seen),
                Some(g.last_seen + Duration::seconds(1)),
                limit,
            )?;
            recs.extend(part.into_iter().filter(|r| seen.insert(r.rowid)));
        }
        recs.sort_by(|x, y| {
            y.header
                .creation_time
                .cmp(&x.header.creation_time)
                .then(y.rowid.cmp(&x.rowid))
        });
        recs.truncate(limit);
        Ok(recs.iter().map(row_of).collect())
    }

    /// In a tally of the detections that fired on some records (`rowids`), a threshold
    /// detection counts only its hits inside bursts, and is dropped without any: one failed
    /// sign-in is not a brute force.
    fn burst_tally(&self, tallies: &mut Vec<Tally>, rowids: &[i64]) -> Result<()> {
        for t in tallies.iter_mut() {
            let Some(m) = self.detections.meta(&t.value) else {
                continue;
            };
            let Some(rule) = m.threshold else {
                continue;
            };
            let b = self.all_time_bursts(m, rule)?;
            let inside: Vec<i64> = self
                .store
                .ui_hit_events_of_rowids(&m.id, rowids)?
                .into_iter()
                .filter(|(k, secs)| b.contains(k, *secs))
                .map(|(_, secs)| secs)
                .collect();
            t.count = inside.len() as u64;
            t.last_seen = inside.iter().max().map(|s| threshold::time(*s));
        }
        tallies.retain(|t| t.count > 0);
        tallies.sort_by(|a, b| b.count.cmp(&a.count).then(a.value.cmp(&b.value)));
        Ok(())
    }

    fn vars(&self) -> detect::Vars {
        detect::Vars {
            collector_id: self.collector_id.clone(),
            tenant_id: self.tenant_id.clone(),
        }
    }
}

fn load_errors(d: &Detections) -> Vec<String> {
    d.errors().iter().map(|e| e.to_string()).collect()
}

/// The first string found at any of these paths of a record.
fn first_str(v: &Value, paths: &[&[&str]]) -> String {
    for path in paths {
        let mut cur = v;
        let mut ok = true;
        for k in *path {
            match cur.get(*k) {
                Some(x) => cur = x,
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok
            && let Some(s) = cur.as_str()
            && !s.is_empty()
        {
            return s.to_string();
        }
    }
    String::new()
}

/// The object an operation touched: a file, a mail subject, a policy, a target.
pub fn object_of(v: &Value) -> String {
    first_str(
        v,
        &[
            &["ObjectId"],
            &["SourceFileName"],
            &["Subject"],
            &["Item", "Subject"],
            &["AffectedItems"],
            &["ItemName"],
            &["PolicyName"],
        ],
    )
}

/// The user agent of a record, wherever the workload puts it.
pub fn user_agent_of(v: &Value) -> String {
    let direct = first_str(v, &[&["UserAgent"], &["ClientInfoString"]]);
    if !direct.is_empty() {
        return direct;
    }
    for list in ["ExtendedProperties", "DeviceProperties"] {
        if let Some(items) = v.get(list).and_then(Value::as_array) {
            for it in items {
                if it.get("Name").and_then(Value::as_str) == Some("UserAgent")
                    && let Some(s) = it.get("Value").and_then(Value::as_str)
                {
                    return s.to_string();
                }
            }
        }
    }
    String::new()
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

/// Re-indents valid JSON text two spaces per level, keeping its key order and every
/// value's exact text (a parse + re-serialize would sort keys and reformat numbers).
pub fn pretty_json(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 2);
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    let mut chars = raw.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // Keep empty containers on one line.
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}') | Some(']')) {
                    if let Some(close) = chars.next() {
                        out.push(close);
                    }
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
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

/// Quotes a value for tantivy's query parser.
fn quoted(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Builds the tantivy query of a search request: the free text in parentheses, AND each
/// field filter, AND the time range.
pub fn search_query(req: &SearchRequest) -> String {
    let mut parts = Vec::new();
    if !req.text.is_empty() {
        parts.push(format!("({})", req.text));
    }
    for (field, v) in [
        ("user", &req.user),
        ("ip", &req.ip),
        ("operation", &req.operation),
        ("workload", &req.workload),
        ("table", &req.table),
    ] {
        if !v.is_empty() {
            parts.push(format!("{field}:{}", quoted(v)));
        }
    }
    if req.range != TimeRange::default() {
        let t = |x: Option<DateTime<Utc>>| {
            x.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|| "*".into())
        };
        parts.push(format!(
            "time:[{} TO {}}}",
            t(req.range.from),
            t(req.range.to)
        ));
    }
    if parts.is_empty() {
        "*".into()
    } else {
        parts.join(" AND ")
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
                    state: s.state.clone().unwrap_or_else(|| "—".into()),
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
            let mut groups: Vec<(Value, RawGroup)> = b
                .groups
                .iter()
                .map(|g| {
                    let raw = RawGroup {
                        count: g.count,
                        first_seen: g.first_seen,
                        last_seen: g.last_seen,
                    };
                    (g.key.clone(), raw)
                })
                .collect();
            // The UI's order (largest first, like every other detection), then the newest.
            groups.sort_by(|(_, a), (_, b)| {
                b.count
                    .cmp(&a.count)
                    .then(b.last_seen.cmp(&a.last_seen))
                    .then(a.first_seen.cmp(&b.first_seen))
            });
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
        let v: Value = serde_json::from_str(&r.raw).unwrap_or(Value::Null);
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

    fn user(&self, user_id: &str, range: TimeRange, limit: usize) -> Result<UserDetail> {
        let col = RecordColumn::UserId;
        let groups = [
            RecordColumn::ClientIp,
            RecordColumn::Workload,
            RecordColumn::Operation,
        ];
        let p = self.store.ui_profile(
            col,
            user_id,
            (range.from, range.to),
            limit.max(UA_SAMPLE),
            &groups,
            50,
        )?;
        let recs = p.records;
        let mut agents: HashMap<String, (u64, DateTime<Utc>)> = HashMap::new();
        for r in &recs {
            if let Ok(v) = serde_json::from_str::<Value>(&r.raw) {
                let ua = user_agent_of(&v);
                if !ua.is_empty() {
                    let e = agents.entry(ua).or_insert((0, r.header.creation_time));
                    e.0 += 1;
                    e.1 = e.1.max(r.header.creation_time);
                }
            }
        }
        let mut user_agents: Vec<Tally> = agents
            .into_iter()
            .map(|(value, (count, last))| Tally {
                value,
                count,
                last_seen: Some(last),
            })
            .collect();
        user_agents.sort_by(|a, b| b.count.cmp(&a.count).then(a.value.cmp(&b.value)));
        let mut detections = tally(self.store.ui_detections_of_rowids(&p.rowids)?);
        self.burst_tally(&mut detections, &p.rowids)?;
        let mut tallies = p.tallies.into_iter().map(tally);
        Ok(UserDetail {
            user_id: user_id.to_string(),
            total: p.total.max(0) as u64,
            timeline: recs.iter().take(limit).map(row_of).collect(),
            detections,
            ips: tallies.next().unwrap_or_default(),
            user_agents,
            workloads: tallies.next().unwrap_or_default(),
            operations: tallies.next().unwrap_or_default(),
        })
    }

    fn ip(&self, ip: &str, range: TimeRange, limit: usize) -> Result<IpDetail> {
        let ip = crate::model::normalize_ip(ip);
        let p = self.store.ui_profile(
            RecordColumn::ClientIp,
            &ip,
            (range.from, range.to),
            limit,
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
        })
    }

    fn tables(&self) -> Result<Vec<String>> {
        // The namespace of ARCHITECTURE §5: fixed, so listing it costs no scan.
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
        let streams = self
            .store
            .ui_streams()?
            .into_iter()
            .map(|s| StreamStatus {
                subscription: s.state.unwrap_or_else(|| "not started".into()),
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
        let token_state = if auth.is_null() {
            "no token requested yet (the collector has not run here)".to_string()
        } else {
            let label = auth.get("label").and_then(Value::as_str).unwrap_or("?");
            let state = auth.get("state").and_then(Value::as_str).unwrap_or("?");
            let head = if label == state {
                state.to_string()
            } else {
                format!("{state} ({label})")
            };
            match auth
                .get("token_expires_at")
                .and_then(Value::as_str)
                .and_then(crate::model::parse_time)
            {
                Some(t) => format!(
                    "{head}; current token valid until {} UTC",
                    t.format("%Y-%m-%d %H:%M:%S")
                ),
                None => head,
            }
        };
        Ok(Status {
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
            outbox_depth: None,
            index_lag: stats.index.map(|i| i.records_behind.max(0) as u64),
            imports: stats.imports,
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
        let mut gaps: BTreeMap<String, u64> = BTreeMap::new();
        for g in &stats.gaps {
            *gaps.entry(g.kind.clone()).or_default() += g.count.max(0) as u64;
        }
        Ok(Metrics {
            records: stats.records.total.max(0) as u64,
            duplicates_dropped: stats.duplicates_dropped.max(0) as u64,
            hits: stats
                .hits
                .iter()
                .map(|(d, n)| (d.clone(), (*n).max(0) as u64))
                .collect(),
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
            outbox_depth: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pretty_json_keeps_order_and_text() {
        let raw = r#"{"Id":"a","B":[1,2.50,{}],"A":{"x":"q\"uo,te:{"},"E":[]}"#;
        let p = pretty_json(raw);
        assert_eq!(
            p,
            "{\n  \"Id\": \"a\",\n  \"B\": [\n    1,\n    2.50,\n    {}\n  ],\n  \"A\": {\n    \"x\": \"q\\\"uo,te:{\"\n  },\n  \"E\": []\n}"
        );
        let back: Value = serde_json::from_str(&p).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(raw).unwrap());
    }

    #[test]
    fn objects_and_user_agents_are_found_where_workloads_put_them() {
        assert_eq!(object_of(&json!({"ObjectId": "f.docx"})), "f.docx");
        assert_eq!(object_of(&json!({"Item": {"Subject": "hi"}})), "hi");
        assert_eq!(user_agent_of(&json!({"UserAgent": "curl"})), "curl");
        assert_eq!(
            user_agent_of(&json!({"ExtendedProperties": [
                {"Name": "x", "Value": "y"}, {"Name": "UserAgent", "Value": "Edge"}]})),
            "Edge"
        );
        assert_eq!(user_agent_of(&json!({})), "");
    }

    #[test]
    fn search_queries_quote_field_values() {
        let req = SearchRequest {
            text: "strategic".into(),
            user: "a\"b@x".into(),
            table: "auth.all".into(),
            ..Default::default()
        };
        assert_eq!(
            search_query(&req),
            r#"(strategic) AND user:"a\"b@x" AND table:"auth.all""#
        );
        assert_eq!(search_query(&SearchRequest::default()), "*");
    }
}
