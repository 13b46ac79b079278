//! Grouped results of detections over many records (what `m365audit detect` prints): per
//! detection the hit count and its groups (count, first_seen, last_seen), threshold rules
//! reduced to their bursts; and the three output formats (table, json, csv). Pure: records
//! come in from the caller, text goes out.

use super::group::{Group, group_hits, threshold_groups_distinct};
use super::{Detections, Hit, Meta, RunError};
use crate::model::RecordHeader;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One detection's grouped result: the `detect --format json` shape of ARCHITECTURE §7.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectionResult {
    pub id: String,
    pub title: String,
    pub severity: String,
    /// The fields of each group's key, in the header's order.
    pub group_by: Vec<String>,
    /// Hits in the groups shown (for a threshold rule: hits inside bursts).
    pub hits: u64,
    /// Every record the filter matched (equals `hits` without a threshold).
    pub matched: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Value>,
    pub groups: Vec<Group>,
}

/// Everything `detect` prints, plus what went wrong on the way.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub detections: Vec<DetectionResult>,
    /// Records read and records handed to jq (after the prefilter).
    pub records: u64,
    pub candidates: u64,
    /// Per detection: how many records it failed on, and the first message.
    pub errors: BTreeMap<String, (u64, String)>,
}

#[derive(Default)]
struct Acc {
    events: Vec<(Value, DateTime<Utc>, Value)>,
}

/// Collects hits record by record and groups them at the end. Candidate records are
/// buffered and evaluated in batches on every core (the detections are shared read-only;
/// each thread parses its own records).
pub struct Grouper<'a> {
    detections: &'a Detections,
    acc: BTreeMap<String, Acc>,
    records: u64,
    candidates: u64,
    errors: BTreeMap<String, (u64, String)>,
    batch: Vec<(RecordHeader, Vec<u8>)>,
    threads: usize,
}

const BATCH: usize = 4096;

/// The hits and errors of one record, at its CreationTime.
type Evaluated = (Vec<Hit>, Vec<RunError>, DateTime<Utc>);

impl<'a> Grouper<'a> {
    pub fn new(detections: &'a Detections) -> Grouper<'a> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8);
        Grouper {
            detections,
            acc: BTreeMap::new(),
            records: 0,
            candidates: 0,
            errors: BTreeMap::new(),
            batch: Vec::new(),
            threads,
        }
    }

    /// Runs the detections on one stored record (raw JSON text); parses it only when the
    /// prefilter accepts the header.
    pub fn add_record(&mut self, header: &RecordHeader, raw: &[u8]) {
        self.records += 1;
        if !self.detections.wants(header) {
            return;
        }
        self.candidates += 1;
        if self.threads == 1 {
            let (hits, errors) = self.detections.run_bytes(header, raw);
            self.add_hits(&hits, header.creation_time);
            self.add_errors(errors);
            return;
        }
        self.batch.push((header.clone(), raw.to_vec()));
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    /// Evaluates the buffered candidates, one slice per thread; results are merged in
    /// record order, so the outcome does not depend on the number of threads.
    fn flush(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        if batch.is_empty() {
            return;
        }
        let per = batch.len().div_ceil(self.threads);
        let detections = self.detections;
        let results: Vec<Vec<Evaluated>> = std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .chunks(per)
                .map(|chunk| {
                    scope.spawn(move || {
                        chunk
                            .iter()
                            .map(|(h, raw)| {
                                let (hits, errs) = detections.run_bytes(h, raw);
                                (hits, errs, h.creation_time)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        let e = RunError {
                            detection: "*".into(),
                            message: "a detection thread panicked".into(),
                        };
                        vec![(Vec::new(), vec![e], Utc::now())]
                    })
                })
                .collect()
        });
        for (hits, errors, time) in results.into_iter().flatten() {
            self.add_hits(&hits, time);
            self.add_errors(errors);
        }
    }

    /// Adds hits computed elsewhere (e.g. stored at ingestion) at their record's time.
    pub fn add_hits(&mut self, hits: &[Hit], time: DateTime<Utc>) {
        for h in hits {
            let Some(meta) = self.detections.meta(&h.detection) else {
                continue;
            };
            let distinct = match &meta.distinct {
                Some(path) => lookup(&h.details, path).unwrap_or(Value::Null),
                None => Value::Null,
            };
            self.acc
                .entry(h.detection.clone())
                .or_default()
                .events
                .push((h.group_key.clone(), time, distinct));
        }
    }

    fn add_errors(&mut self, errors: Vec<RunError>) {
        for e in errors {
            let entry = self.errors.entry(e.detection).or_insert((0, e.message));
            entry.0 += 1;
        }
    }

    /// The grouped results of every loaded detection (also those without hits), in id order.
    pub fn finish(mut self) -> Report {
        self.flush();
        let mut acc = self.acc;
        let detections = self
            .detections
            .metas()
            .into_iter()
            .map(|m| result(m, acc.remove(&m.id).unwrap_or_default()))
            .collect();
        Report {
            detections,
            records: self.records,
            candidates: self.candidates,
            errors: self.errors,
        }
    }
}

fn lookup(v: &Value, path: &str) -> Option<Value> {
    let mut cur = v;
    for k in path.split('.') {
        cur = cur.as_object()?.get(k)?;
    }
    Some(cur.clone())
}

fn result(m: &Meta, acc: Acc) -> DetectionResult {
    let matched = acc.events.len() as u64;
    let (groups, threshold) = match m.threshold {
        None => (
            group_hits(acc.events.into_iter().map(|(k, t, _)| (k, t))),
            None,
        ),
        Some(t) => {
            let distinct = m.distinct.is_some();
            let events = acc
                .events
                .into_iter()
                .enumerate()
                .map(|(i, (k, time, d))| (k, time, if distinct { d } else { Value::from(i) }));
            let mut th = serde_json::json!({"count": t.count, "window_secs": t.window_secs});
            if let Some(d) = &m.distinct {
                th["distinct"] = Value::from(d.clone());
            }
            (threshold_groups_distinct(events, t), Some(th))
        }
    };
    DetectionResult {
        id: m.id.clone(),
        title: m.title.clone(),
        severity: m.severity.to_string(),
        group_by: m.group_by.clone(),
        hits: groups.iter().map(|g| g.count).sum(),
        matched,
        threshold,
        groups,
    }
}

fn key_text(key: &Value, order: &[String]) -> String {
    match key.as_object() {
        Some(o) if !o.is_empty() => {
            let mut names: Vec<&String> = order
                .iter()
                .filter(|k| o.contains_key(k.as_str()))
                .collect();
            names.extend(o.keys().filter(|k| !order.contains(k)));
            names
                .into_iter()
                .map(|k| match &o[k.as_str()] {
                    Value::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        }
        _ => "(all)".to_string(),
    }
}

fn time_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Report {
    /// `{"detections": [...]}` (ARCHITECTURE §7), with `records`/`candidates`/`errors` beside.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "detections": self.detections,
            "records": self.records,
            "candidates": self.candidates,
            "errors": self.errors.iter().map(|(d, (n, m))| serde_json::json!({"detection": d, "records": n, "first": m})).collect::<Vec<_>>(),
        })
    }

    /// A human table: one block per detection with hits, one line per group.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let with_hits: Vec<&DetectionResult> = self
            .detections
            .iter()
            .filter(|d| !d.groups.is_empty())
            .collect();
        out.push_str(&format!(
            "{} records, {} handed to jq, {} of {} detections with results\n",
            self.records,
            self.candidates,
            with_hits.len(),
            self.detections.len()
        ));
        for d in with_hits {
            out.push_str(&format!(
                "\n{} [{}] {} — {} hits in {} groups\n",
                d.id,
                d.severity,
                d.title,
                d.hits,
                d.groups.len()
            ));
            out.push_str(&format!(
                "  {:>6}  {:<20}  {:<20}  {}\n",
                "count", "first_seen", "last_seen", "key"
            ));
            for g in &d.groups {
                out.push_str(&format!(
                    "  {:>6}  {:<20}  {:<20}  {}\n",
                    g.count,
                    time_text(g.first_seen),
                    time_text(g.last_seen),
                    key_text(&g.key, &d.group_by)
                ));
            }
        }
        for (d, (n, m)) in &self.errors {
            out.push_str(&format!("\nerror: {d} failed on {n} records; first: {m}\n"));
        }
        out
    }

    /// CSV: one row per group.
    pub fn to_csv(&self) -> anyhow::Result<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "detection",
            "title",
            "severity",
            "key",
            "count",
            "first_seen",
            "last_seen",
        ])?;
        for d in &self.detections {
            for g in &d.groups {
                w.write_record([
                    d.id.as_str(),
                    d.title.as_str(),
                    d.severity.as_str(),
                    &g.key.to_string(),
                    &g.count.to_string(),
                    &time_text(g.first_seen),
                    &time_text(g.last_seen),
                ])?;
            }
        }
        Ok(String::from_utf8(w.into_inner()?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Vars;
    use serde_json::json;

    fn rec(i: i64, op: &str, user: &str, min: i64) -> (RecordHeader, String) {
        let v = json!({"Id": format!("r{i}"), "CreationTime": format!("2026-05-04T09:{:02}:00", min), "Operation": op,
            "Workload": "AzureActiveDirectory", "UserId": user, "ActorIpAddress": "203.0.113.66"});
        (RecordHeader::from_value(&v).unwrap(), v.to_string())
    }

    #[test]
    fn groups_plain_and_threshold_rules() {
        let d = Detections::load_sources(
            &[
                (
                    "all.jq",
                    "# title: All\n# table: auth.all\n# group_by: UserId\nselect(.Operation == \"UserLoginFailed\") | {UserId}",
                ),
                (
                    "bf.jq",
                    "# title: BF\n# table: auth.all\n# group_by: UserId\n# threshold: 3\n# window: 10m\nselect(.Operation == \"UserLoginFailed\") | {UserId}",
                ),
                (
                    "none.jq",
                    "# title: None\n# table: cloud.office365.management.exchange\n.",
                ),
            ],
            &[],
            Vars::default(),
        );
        assert!(d.errors().is_empty(), "{:?}", d.errors());
        let mut g = Grouper::new(&d);
        for (i, (u, m)) in [("a", 0), ("a", 1), ("b", 2), ("a", 3), ("a", 40)]
            .iter()
            .enumerate()
        {
            let (h, raw) = rec(i as i64, "UserLoginFailed", u, *m);
            g.add_record(&h, raw.as_bytes());
        }
        let (h, raw) = rec(9, "UserLoggedIn", "a", 5);
        g.add_record(&h, raw.as_bytes());
        let r = g.finish();
        assert_eq!((r.records, r.candidates), (6, 6));
        let all = &r.detections[0];
        assert_eq!(
            (all.id.as_str(), all.hits, all.matched, all.groups.len()),
            ("all", 5, 5, 2)
        );
        let bf = &r.detections[1];
        assert_eq!((bf.hits, bf.matched, bf.groups.len()), (3, 5, 1));
        assert_eq!(bf.groups[0].key, json!({"UserId": "a"}));
        assert_eq!(r.detections[2].groups.len(), 0);
        let j = r.to_json();
        assert_eq!(j["detections"][1]["groups"][0]["count"], json!(3));
        assert_eq!(
            j["detections"][1]["groups"][0]["first_seen"],
            json!("2026-05-04T09:00:00Z")
        );
        assert!(
            r.to_table().contains("bf [medium] BF — 3 hits in 1 groups"),
            "{}",
            r.to_table()
        );
        let csv = r.to_csv().unwrap();
        assert_eq!(csv.lines().count(), 1 + 2 + 1, "{csv}");
    }
}
