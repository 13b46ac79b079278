//! What the practice tenant served and every client misbehaviour it saw: the request
//! audit modelled on Elastic's mock (docs/management-api.md). Window coverage per content
//! type yields gaps (a misbehaviour) and overlap seconds (informational: m365audit
//! re-lists an overlap on purpose). This module records and summarises; it must not
//! decide responses.

use crate::model::{ContentType, format_api_time};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};

type Span = (DateTime<Utc>, DateTime<Utc>);

#[derive(Debug, Clone)]
struct Mis {
    count: u64,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub(crate) struct Report {
    requests: BTreeMap<String, u64>,
    statuses: BTreeMap<u16, u64>,
    tokens_issued: u64,
    token_errors: BTreeMap<String, u64>,
    api_errors: BTreeMap<String, u64>,
    listings: u64,
    pages: u64,
    blobs_listed: u64,
    blobs_served: u64,
    records_served: u64,
    duplicates_served: u64,
    /// The records served at least once, by 64 bits of their GUID: half the memory of
    /// the whole key (the set is the practice tenant's largest: 36 MB for a million
    /// records), and two records share 64 random bits with probability ~n²/2⁶⁵.
    served: HashSet<u64>,
    by_ct: BTreeMap<&'static str, (u64, u64)>,
    windows: BTreeMap<&'static str, Vec<Span>>,
    mis: BTreeMap<(String, String, String), Mis>,
    last_start: BTreeMap<&'static str, DateTime<Utc>>,
}

impl Report {
    pub(crate) fn request(&mut self, route: &str) {
        *self.requests.entry(route.to_string()).or_default() += 1;
    }

    pub(crate) fn status(&mut self, s: u16) {
        *self.statuses.entry(s).or_default() += 1;
    }

    pub(crate) fn token_issued(&mut self) {
        self.tokens_issued += 1;
    }

    pub(crate) fn token_error(&mut self, code: &str) {
        *self.token_errors.entry(code.to_string()).or_default() += 1;
    }

    pub(crate) fn api_error(&mut self, code: &str) {
        *self.api_errors.entry(code.to_string()).or_default() += 1;
    }

    pub(crate) fn misbehaviour(
        &mut self,
        kind: &str,
        ct: Option<ContentType>,
        detail: &str,
        now: DateTime<Utc>,
    ) {
        let key = (
            kind.to_string(),
            ct.map(|c| c.as_str().to_string()).unwrap_or_default(),
            detail.to_string(),
        );
        let m = self.mis.entry(key).or_insert(Mis {
            count: 0,
            first: now,
            last: now,
        });
        m.count += 1;
        m.last = now;
    }

    pub(crate) fn page(&mut self, first: bool, blobs: usize) {
        if first {
            self.listings += 1;
        }
        self.pages += 1;
        self.blobs_listed += blobs as u64;
    }

    /// A window whose last page was served successfully.
    pub(crate) fn window_done(
        &mut self,
        ct: ContentType,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) {
        self.windows
            .entry(ct.as_str())
            .or_default()
            .push((start, end));
    }

    /// Returns true when `start` came less than 15 minutes after the previous one.
    pub(crate) fn start_called(&mut self, ct: ContentType, now: DateTime<Utc>) -> bool {
        let prev = self.last_start.insert(ct.as_str(), now);
        prev.is_some_and(|p| (now - p).num_seconds() < 15 * 60)
    }

    pub(crate) fn blob_served(&mut self, ct: ContentType, keys: impl Iterator<Item = u128>) {
        self.blobs_served += 1;
        let e = self.by_ct.entry(ct.as_str()).or_default();
        e.0 += 1;
        for k in keys {
            self.records_served += 1;
            e.1 += 1;
            if !self.served.insert((k as u64) ^ ((k >> 64) as u64)) {
                self.duplicates_served += 1;
            }
        }
    }

    pub(crate) fn to_json(
        &self,
        faults_fired: BTreeMap<&'static str, u64>,
        now: DateTime<Utc>,
    ) -> Value {
        let mut misbehaviours: Vec<Value> = self
            .mis
            .iter()
            .map(|((kind, ct, detail), m)| {
                json!({"kind": kind, "content_type": ct, "detail": detail, "count": m.count,
                       "first_at": format_api_time(m.first), "last_at": format_api_time(m.last)})
            })
            .collect();
        let mut windows = serde_json::Map::new();
        for (ct, ws) in &self.windows {
            let mut v = ws.clone();
            v.sort();
            let total: i64 = v.iter().map(|(a, b)| (*b - *a).num_milliseconds()).sum();
            let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
            for (a, b) in v {
                match merged.last_mut() {
                    Some(last) if a <= last.1 => {
                        if b > last.1 {
                            last.1 = b;
                        }
                    }
                    _ => merged.push((a, b)),
                }
            }
            let covered: i64 = merged
                .iter()
                .map(|(a, b)| (*b - *a).num_milliseconds())
                .sum();
            let mut gaps = Vec::new();
            for w in merged.windows(2) {
                let (from, to) = (w[0].1, w[1].0);
                gaps.push(json!([format_api_time(from), format_api_time(to)]));
                misbehaviours.push(json!({"kind": "window_gap", "content_type": ct,
                    "detail": format!("nothing listed from {} to {}", format_api_time(from), format_api_time(to)),
                    "count": 1, "first_at": format_api_time(now), "last_at": format_api_time(now)}));
            }
            windows.insert(
                (*ct).to_string(),
                json!({
                    "windows": ws.len(),
                    "covered": merged.iter().map(|(a, b)| json!([format_api_time(*a), format_api_time(*b)])).collect::<Vec<_>>(),
                    "gaps": gaps,
                    "overlap_secs": (total - covered) as f64 / 1000.0,
                }),
            );
        }
        let by_ct: serde_json::Map<String, Value> = self
            .by_ct
            .iter()
            .map(|(k, (b, r))| ((*k).to_string(), json!({"blobs": b, "records": r})))
            .collect();
        json!({
            "now": format_api_time(now),
            "served": {
                "requests": self.requests,
                "statuses": self.statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
                "tokens_issued": self.tokens_issued,
                "token_errors": self.token_errors,
                "api_errors": self.api_errors,
                "listings": self.listings,
                "pages": self.pages,
                "blobs_listed": self.blobs_listed,
                "blobs": self.blobs_served,
                "records": self.records_served,
                "unique_records": self.served.len(),
                "duplicates": self.duplicates_served,
                "by_content_type": by_ct,
            },
            "faults_fired": faults_fired,
            "windows": windows,
            "misbehaviours": misbehaviours,
            "notes": "overlap_secs is informational: re-listing an overlap is correct; window_gap is a misbehaviour",
        })
    }
}
