//! What `m365audit detect` prints: per detection the hit count and its groups (count,
//! first_seen, last_seen), threshold rules reduced to their bursts, in the three output
//! formats (table, json, csv). Pure: the results come from the grouper, text goes out.
//! Record values are attacker-controlled: the table makes them terminal-safe.

use super::group::Group;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One detection's grouped result: the `detect --format json` shape of docs/architecture.md (CLI).
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
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub detections: Vec<DetectionResult>,
    /// Records read and records handed to jq (after the prefilter).
    pub records: u64,
    pub candidates: u64,
    /// Candidates parsed and run (the others' text lacked every `contains` word of their
    /// detections). Not part of the JSON output.
    #[serde(skip)]
    pub parsed: u64,
    /// Detection runs served from the memo (same declared fields as an earlier record).
    /// Not part of the JSON output.
    #[serde(skip)]
    pub memo_hits: u64,
    /// Per detection (id order): candidates its prefilter words admitted, and jq runs
    /// (admitted and not served by the memo). Not part of the JSON output.
    #[serde(skip)]
    pub admitted: Vec<u64>,
    #[serde(skip)]
    pub runs: Vec<u64>,
    /// Per detection: how many records it failed on, and the first message.
    pub errors: BTreeMap<String, (u64, String)>,
}

/// Two reports are equal when they say the same: `parsed` and `memo_hits` count how the
/// work was done (they depend on how records met the worker threads), not what was found.
impl PartialEq for Report {
    fn eq(&self, other: &Report) -> bool {
        self.detections == other.detections
            && self.records == other.records
            && self.candidates == other.candidates
            && self.errors == other.errors
    }
}

/// The group key as `name=value …`; values come from records, so they are made
/// terminal-safe here (the table is printed as is).
fn key_text(key: &Value, order: &[String]) -> String {
    use crate::model::terminal_safe;
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
                    Value::String(s) => format!("{k}={}", terminal_safe(s)),
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
    /// `{"detections": [...]}` (docs/architecture.md, CLI), with `records`/`candidates`/`errors` beside.
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
            out.push_str(&format!(
                "\nerror: {d} failed on {n} records; first: {}\n",
                crate::model::terminal_safe(m)
            ));
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
                    // JSON escapes C0 but not DEL, C1 or bidi controls
                    &crate::model::csv_safe(&g.key.to_string()),
                    &g.count.to_string(),
                    &time_text(g.first_seen),
                    &time_text(g.last_seen),
                ])?;
            }
        }
        Ok(String::from_utf8(w.into_inner()?)?)
    }
}
