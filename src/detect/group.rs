//! Grouping of hits and threshold rules, as pure functions: the group key of a hit (from
//! the `group_by` paths over its details, else over the record), grouped counts with
//! first/last seen, and "N hits per key within a window" over CreationTime. No I/O.

use super::meta::Threshold;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

/// One row of a detection's grouped result (Devo's `group by` table plus the counts).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    pub key: Value,
    pub count: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

fn lookup(v: &Value, path: &[&str]) -> Option<Value> {
    let mut cur = v;
    for k in path {
        cur = cur.as_object()?.get(*k)?;
    }
    Some(cur.clone())
}

/// The group key of a hit: an object with one entry per `group_by` name, taken from the
/// emitted details when they are an object holding that (dotted) path, else from the record.
/// A path found in neither is null. Without group_by the key is `{}`.
pub fn group_key(group_by: &[String], details: &Value, record: &Value) -> Value {
    group_key_with(group_by, details, |path| lookup(record, path))
}

pub(crate) fn group_key_with(
    group_by: &[String],
    details: &Value,
    record: impl Fn(&[&str]) -> Option<Value>,
) -> Value {
    let mut key = Map::new();
    for name in group_by {
        let path: Vec<&str> = name.split('.').collect();
        let v = lookup(details, &path)
            .or_else(|| record(&path))
            .unwrap_or(Value::Null);
        key.insert(name.clone(), v);
    }
    Value::Object(key)
}

fn key_text(k: &Value) -> String {
    k.to_string()
}

/// Groups (key, CreationTime) events: count, first_seen, last_seen per key. Groups come out
/// by first_seen, then key.
pub fn group_hits(events: impl IntoIterator<Item = (Value, DateTime<Utc>)>) -> Vec<Group> {
    let mut by_key: BTreeMap<String, Group> = BTreeMap::new();
    for (key, t) in events {
        by_key
            .entry(key_text(&key))
            .and_modify(|g| {
                g.count += 1;
                g.first_seen = g.first_seen.min(t);
                g.last_seen = g.last_seen.max(t);
            })
            .or_insert(Group {
                key,
                count: 1,
                first_seen: t,
                last_seen: t,
            });
    }
    let mut groups: Vec<Group> = by_key.into_values().collect();
    sort_groups(&mut groups);
    groups
}

/// Threshold rule over (key, CreationTime) events: for each key, the bursts in which at
/// least `t.count` events fall within `t.window_secs` of each other. Every event that lies in
/// such a window belongs to the burst; windows that share an event merge into one group.
/// Events may come in any order; groups come out by first_seen, then key.
pub fn threshold_groups(
    events: impl IntoIterator<Item = (Value, DateTime<Utc>)>,
    t: Threshold,
) -> Vec<Group> {
    let events = events
        .into_iter()
        .enumerate()
        .map(|(i, (k, time))| (k, time, Value::from(i)));
    threshold_groups_distinct(events, t)
}

/// An event time with its distinct value (as JSON text).
pub(crate) type TimedValue = (DateTime<Utc>, String);

/// One stored hit as a threshold rule reads it: group key text (canonical JSON),
/// CreationTime in seconds, and for a `distinct` rule the JSON text of the counted value
/// (`None` when missing or null).
pub type StoredHitEvent = (String, i64, Option<String>);

/// A threshold detection's groups (bursts) over stored hits, exactly as [`Grouper`] forms
/// them over records: the one rule by which every surface (`detect`, `stats`, `/metrics`,
/// the dashboard) counts a threshold detection. Raw hits of such a rule are not alerts —
/// nine failed logins in an hour are not a brute force — so nothing may count them.
///
/// [`Grouper`]: super::Grouper
pub fn threshold_groups_of_stored(
    meta: &super::Meta,
    t: Threshold,
    events: &[StoredHitEvent],
) -> Vec<Group> {
    let keyed = events.iter().enumerate().map(|(i, (key, secs, value))| {
        let k = serde_json::from_str::<Value>(key).unwrap_or_else(|_| Value::String(key.clone()));
        let d = match (&meta.distinct, value) {
            // The value's JSON text stands for the value: equal texts, equal values
            // (the store returns canonical text), and `Grouper` compares them as text too.
            (Some(_), Some(text)) => Value::String(text.clone()),
            // missing or null, one bucket as in `Grouper`
            (Some(_), None) => Value::Null,
            // Every hit its own value: the rule counts hits (as `Grouper` does).
            (None, _) => Value::from(i),
        };
        (k, stored_time(*secs), d)
    });
    threshold_groups_distinct(keyed, t)
}

/// CreationTime seconds as a time (the epoch for an impossible value).
pub fn stored_time(secs: i64) -> DateTime<Utc> {
    use chrono::TimeZone;
    Utc.timestamp_opt(secs, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Like [`threshold_groups`], but a window qualifies when it holds at least `t.count`
/// *distinct* values (the third element: e.g. the UserIds one address tried, for a
/// password spray). Counts in the groups are still numbers of events.
pub fn threshold_groups_distinct(
    events: impl IntoIterator<Item = (Value, DateTime<Utc>, Value)>,
    t: Threshold,
) -> Vec<Group> {
    let mut by_key: BTreeMap<String, (Value, Vec<TimedValue>)> = BTreeMap::new();
    for (key, time, distinct) in events {
        by_key
            .entry(key_text(&key))
            .or_insert_with(|| (key, Vec::new()))
            .1
            .push((time, distinct.to_string()));
    }
    let mut groups = Vec::new();
    for (_, (key, mut ev)) in by_key {
        groups.extend(bursts(&key, &mut ev, t));
    }
    sort_groups(&mut groups);
    groups
}

/// The bursts of one key's (CreationTime, distinct value as JSON text) events: windows of
/// `t.window_secs` holding at least `t.count` distinct values; windows that share an event
/// merge. Sorts `ev`.
pub(crate) fn bursts(key: &Value, ev: &mut [TimedValue], t: Threshold) -> Vec<Group> {
    let need = usize::try_from(t.count.max(1)).unwrap_or(usize::MAX);
    let window = chrono::Duration::seconds(t.window_secs);
    let mut groups = Vec::new();
    ev.sort();
    // every window [ev[s], ev[s] + window] holding >= need distinct values, as index
    // ranges s..end; ranges that share an event merge into one burst
    let mut bursts: Vec<(usize, usize)> = Vec::new();
    let mut in_window: HashMap<&str, usize> = HashMap::new();
    let mut end = 0;
    for s in 0..ev.len() {
        while end < ev.len() && ev[end].0 - ev[s].0 <= window {
            *in_window.entry(ev[end].1.as_str()).or_default() += 1;
            end += 1;
        }
        if in_window.len() >= need {
            match bursts.last_mut() {
                Some(last) if s < last.1 => last.1 = last.1.max(end),
                _ => bursts.push((s, end)),
            }
        }
        if let Some(c) = in_window.get_mut(ev[s].1.as_str()) {
            *c -= 1;
            if *c == 0 {
                in_window.remove(ev[s].1.as_str());
            }
        }
    }
    for (s, e) in bursts {
        groups.push(Group {
            key: key.clone(),
            count: (e - s) as u64,
            first_seen: ev[s].0,
            last_seen: ev[e - 1].0,
        });
    }
    groups
}

/// The order groups come out in: by first_seen, then by the key's JSON text.
pub(crate) fn sort_groups(groups: &mut [Group]) {
    groups.sort_by_cached_key(|g| (g.first_seen, key_text(&g.key)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn at(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 4, 9, 0, 0).unwrap() + chrono::Duration::minutes(min)
    }

    #[test]
    fn key_prefers_details_then_record() {
        let k = group_key(
            &[
                "UserId".into(),
                "ip".into(),
                "AppAccessContext.ClientAppId".into(),
                "nope".into(),
            ],
            &json!({"UserId": "a@x", "ip": "1.2.3.4"}),
            &json!({"UserId": "other", "AppAccessContext": {"ClientAppId": "app"}}),
        );
        assert_eq!(
            k,
            json!({"UserId": "a@x", "ip": "1.2.3.4", "AppAccessContext.ClientAppId": "app", "nope": null})
        );
        assert_eq!(group_key(&[], &json!({"a": 1}), &json!({})), json!({}));
    }

    #[test]
    fn groups_count_and_span() {
        let g = group_hits([
            (json!({"u": "a"}), at(5)),
            (json!({"u": "b"}), at(1)),
            (json!({"u": "a"}), at(2)),
        ]);
        assert_eq!(g.len(), 2);
        assert_eq!(
            (
                g[0].key.clone(),
                g[0].count,
                g[0].first_seen,
                g[0].last_seen
            ),
            (json!({"u": "b"}), 1, at(1), at(1))
        );
        assert_eq!(
            (g[1].count, g[1].first_seen, g[1].last_seen),
            (2, at(2), at(5))
        );
    }

    #[test]
    fn ten_failures_in_an_hour_alert_nine_do_not() {
        let t = Threshold {
            count: 10,
            window_secs: 3600,
        };
        let nine: Vec<_> = (0..9)
            .map(|i| (json!({"UserId": "a"}), at(i * 5)))
            .collect();
        assert!(threshold_groups(nine.clone(), t).is_empty());
        let mut ten = nine;
        ten.push((json!({"UserId": "a"}), at(60)));
        let g = threshold_groups(ten, t);
        assert_eq!(g.len(), 1);
        assert_eq!(
            (g[0].count, g[0].first_seen, g[0].last_seen),
            (10, at(0), at(60))
        );
    }

    #[test]
    fn spread_out_events_never_alert_and_keys_do_not_mix() {
        let t = Threshold {
            count: 3,
            window_secs: 600,
        };
        // one every 6 minutes: any 10-minute window holds at most 2
        let spread: Vec<_> = (0..20).map(|i| (json!({"u": "a"}), at(i * 6))).collect();
        assert!(threshold_groups(spread, t).is_empty());
        let mixed = vec![
            (json!({"u": "a"}), at(0)),
            (json!({"u": "b"}), at(1)),
            (json!({"u": "a"}), at(2)),
        ];
        assert!(threshold_groups(mixed, t).is_empty());
    }

    #[test]
    fn distinct_threshold_counts_values_not_events() {
        let t = Threshold {
            count: 3,
            window_secs: 600,
        };
        // one address, the same user 10 times: not a spray
        let same: Vec<_> = (0..10)
            .map(|i| (json!({"ip": "x"}), at(i), json!("a")))
            .collect();
        assert!(threshold_groups_distinct(same, t).is_empty());
        // three users within 10 minutes: a spray of 4 events
        let users = ["a", "b", "a", "c"];
        let ev: Vec<_> = users
            .iter()
            .enumerate()
            .map(|(i, u)| (json!({"ip": "x"}), at(i as i64), json!(u)))
            .collect();
        let g = threshold_groups_distinct(ev, t);
        assert_eq!(g.len(), 1);
        assert_eq!(
            (g[0].count, g[0].first_seen, g[0].last_seen),
            (4, at(0), at(3))
        );
    }

    #[test]
    fn two_bursts_are_two_groups_and_order_does_not_matter() {
        let t = Threshold {
            count: 3,
            window_secs: 600,
        };
        let mut ev: Vec<_> = [0, 1, 2, 3, 100, 101, 102, 50]
            .iter()
            .map(|m| (json!({"u": "a"}), at(*m)))
            .collect();
        ev.reverse();
        let g = threshold_groups(ev, t);
        assert_eq!(g.len(), 2, "{g:?}");
        assert_eq!(
            (g[0].count, g[0].first_seen, g[0].last_seen),
            (4, at(0), at(3))
        );
        assert_eq!(
            (g[1].count, g[1].first_seen, g[1].last_seen),
            (3, at(100), at(102))
        );
        // no quiet event between the bursts: still two groups
        let ev: Vec<_> = [0, 1, 2, 100, 101, 102]
            .iter()
            .map(|m| (json!({"u": "a"}), at(*m)))
            .collect();
        assert_eq!(threshold_groups(ev, t).len(), 2);
    }
}
