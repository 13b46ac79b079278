//! Threshold detections (a header with `threshold`/`window`, optionally `distinct`) as the
//! UI shows them: the same bursts `m365audit detect` reports — `detect::threshold_groups_of_stored`
//! over each hit's group key, CreationTime and distinct value, exactly as
//! `detect::Grouper` feeds it — plus what only the UI needs: the hits inside bursts per
//! hour (the dashboard chart). Raw hits of such a detection are not alerts: a key with nine
//! failed logins in an hour is not a brute force, so nothing here may count them.
//!
//! Pure: the hits come in from `store_backend` (read by the store), bursts go out. No I/O,
//! no HTML.

use crate::detect::{self, Group, Meta, Threshold};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};

/// One stored hit as a threshold rule reads it (see [`detect::StoredHitEvent`]).
pub type HitEvent = detect::StoredHitEvent;

/// The outcome of a threshold rule over a set of hits.
#[derive(Debug, Clone, Default)]
pub struct Bursts {
    /// How many hits were evaluated (the filter's matches, inside bursts or not).
    pub hits_read: i64,
    /// The qualifying groups, as `detect` orders them (first_seen, then key).
    pub groups: Vec<Group>,
    /// Hits inside bursts per hour (CreationTime seconds / 3600).
    pub per_hour: BTreeMap<i64, u64>,
    /// Per group key (canonical JSON text): its bursts' spans `[first, last]` in seconds.
    pub spans: HashMap<String, Vec<(i64, i64)>>,
}

impl Bursts {
    /// Hits inside bursts (what `detect --format json` reports as `hits`).
    pub fn hits(&self) -> u64 {
        self.groups.iter().map(|g| g.count).sum()
    }

    /// The newest hit inside a burst.
    pub fn last_hit(&self) -> Option<DateTime<Utc>> {
        self.groups.iter().map(|g| g.last_seen).max()
    }

    /// Whether a hit of key `key` (stored text) at `secs` lies inside a burst: the test
    /// that tells an alert from a hit below the threshold (user and record pages).
    pub fn contains(&self, key: &str, secs: i64) -> bool {
        self.spans
            .get(key)
            .is_some_and(|s| s.iter().any(|(a, b)| (*a..=*b).contains(&secs)))
    }
}

pub use detect::group::stored_time as time;

/// Applies `t` (and `meta.distinct`) to the hits of one detection.
pub fn evaluate(meta: &Meta, t: Threshold, events: &[HitEvent]) -> Bursts {
    let groups = detect::threshold_groups_of_stored(meta, t, events);

    // A burst holds every hit of its key from first_seen to last_seen, and the bursts of
    // one key never overlap (`threshold_groups_distinct` extends a burst to the end of its
    // last window and merges windows that share a hit), so membership is a span test.
    let mut spans: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
    for g in &groups {
        spans
            .entry(g.key.to_string())
            .or_default()
            .push((g.first_seen.timestamp(), g.last_seen.timestamp()));
    }
    let mut b = Bursts {
        hits_read: events.len() as i64,
        groups,
        per_hour: BTreeMap::new(),
        spans,
    };
    // Stored keys are `Value::to_string` text, which parsing and printing again gives back
    // unchanged, so the stored text finds its group.
    for (key, secs, _) in events {
        if b.contains(key, *secs) {
            *b.per_hour.entry(secs.div_euclid(3600)).or_default() += 1;
        }
    }
    b
}

/// [`evaluate`] per group key: a key's bursts depend on its hits alone, so a cache can
/// re-evaluate only the keys that got new hits. Every key of `events` is in the map (with
/// no groups when it never reached the threshold).
pub fn evaluate_by_key(
    meta: &Meta,
    t: Threshold,
    events: Vec<HitEvent>,
) -> HashMap<String, Bursts> {
    let mut by_key: HashMap<String, Vec<HitEvent>> = HashMap::new();
    for e in events {
        by_key.entry(e.0.clone()).or_default().push(e);
    }
    by_key
        .into_iter()
        .map(|(k, ev)| {
            let b = evaluate(meta, t, &ev);
            (k, b)
        })
        .collect()
}

/// The bursts of several keys as one result, in `detect`'s order (first_seen, then key).
pub fn merge<'a>(parts: impl IntoIterator<Item = &'a Bursts>) -> Bursts {
    let mut out = Bursts::default();
    for b in parts {
        out.hits_read += b.hits_read;
        out.groups.extend(b.groups.iter().cloned());
        for (h, n) in &b.per_hour {
            *out.per_hour.entry(*h).or_default() += n;
        }
        for (k, s) in &b.spans {
            out.spans.entry(k.clone()).or_default().extend(s);
        }
    }
    out.groups.sort_by(|a, b| {
        a.first_seen
            .cmp(&b.first_seen)
            .then_with(|| a.key.to_string().cmp(&b.key.to_string()))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn meta(distinct: Option<&str>) -> Meta {
        let d = crate::detect::Detections::load_sources(
            &[(
                "bf.jq",
                "# title: BF\n# table: auth.all\n# group_by: UserId\n# threshold: 3\n# window: 10m\n.",
            )],
            &[],
            crate::detect::Vars::default(),
        );
        let mut m = d.meta("bf").cloned().expect("the test detection loads");
        m.distinct = distinct.map(str::to_string);
        m
    }

    const T0: i64 = 1_777_885_200; // an hour boundary

    fn ev(user: &str, min: i64) -> HitEvent {
        (json!({"UserId": user}).to_string(), T0 + min * 60, None)
    }

    #[test]
    fn below_the_threshold_is_nothing_at_it_is_a_burst() {
        let m = meta(None);
        let t = m.threshold.expect("threshold");
        let two = [ev("a", 0), ev("a", 5), ev("b", 1), ev("b", 30), ev("b", 60)];
        let b = evaluate(&m, t, &two);
        assert!(b.groups.is_empty(), "{:?}", b.groups);
        assert_eq!((b.hits(), b.last_hit(), b.hits_read), (0, None, 5));
        assert!(b.per_hour.is_empty());

        let mut three = two.to_vec();
        three.push(ev("a", 9));
        // a later, lone hit of the same key is outside the burst
        three.push(ev("a", 70));
        let b = evaluate(&m, t, &three);
        assert_eq!(b.groups.len(), 1);
        let g = &b.groups[0];
        assert_eq!(g.key, json!({"UserId": "a"}));
        assert_eq!(
            (g.count, g.first_seen.timestamp(), g.last_seen.timestamp()),
            (3, T0, T0 + 540)
        );
        assert_eq!(b.hits(), 3);
        assert_eq!(b.per_hour, BTreeMap::from([(T0 / 3600, 3)]));
        let a = json!({"UserId": "a"}).to_string();
        assert!(b.contains(&a, T0 + 300) && b.contains(&a, T0 + 540));
        assert!(!b.contains(&a, T0 + 70 * 60), "the lone later hit");
        assert!(!b.contains(&json!({"UserId": "b"}).to_string(), T0 + 60));
    }

    #[test]
    fn agrees_with_detects_grouper_and_counts_every_burst_hit_once_per_hour() {
        // Two bursts of one key across an hour boundary, one of another key, noise.
        let mut events = Vec::new();
        for m in [50, 52, 55, 58, 61, 63] {
            events.push(ev("a", m));
        }
        for m in [200, 201, 202] {
            events.push(ev("a", m));
        }
        for m in [10, 11, 12, 100] {
            events.push(ev("c", m));
        }
        events.push(ev("d", 0));
        let m = meta(None);
        let t = m.threshold.expect("threshold");
        let b = evaluate(&m, t, &events);
        let want = detect::threshold_groups(
            events.iter().map(|(k, s, _)| {
                (
                    serde_json::from_str::<Value>(k).expect("json key"),
                    time(*s),
                )
            }),
            t,
        );
        assert_eq!(b.groups, want);
        assert_eq!(b.groups.len(), 3);
        assert_eq!(b.per_hour.values().sum::<u64>(), b.hits());
        assert_eq!(b.per_hour[&(T0 / 3600)], 3 + 4);
        assert_eq!(b.per_hour[&(T0 / 3600 + 1)], 2);
        assert_eq!(b.per_hour[&(T0 / 3600 + 3)], 3);

        // per key, then merged: the same answer
        let parts = evaluate_by_key(&m, t, events.clone());
        assert_eq!(parts.len(), 3, "every key, lit or not");
        let merged = merge(parts.values());
        assert_eq!(merged.groups, b.groups);
        assert_eq!(merged.per_hour, b.per_hour);
        assert_eq!(merged.hits_read, events.len() as i64);
    }

    #[test]
    fn distinct_rules_count_values_of_the_emitted_details() {
        let m = meta(Some("UserId"));
        let t = m.threshold.expect("threshold");
        let hit = |u: &str, min: i64| {
            (
                json!({"ip": "x"}).to_string(),
                T0 + min * 60,
                Some(json!(u).to_string()),
            )
        };
        let same: Vec<HitEvent> = (0..5).map(|i| hit("u1", i)).collect();
        assert!(
            evaluate(&m, t, &same).groups.is_empty(),
            "one user is no spray"
        );
        let spray = vec![hit("u1", 0), hit("u2", 1), hit("u1", 2), hit("u3", 3)];
        let b = evaluate(&m, t, &spray);
        assert_eq!(b.groups.len(), 1);
        assert_eq!(b.groups[0].count, 4);
    }
}
