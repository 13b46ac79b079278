//! The user page's reads: a page of the timeline anywhere in it, the activity chart's
//! buckets, and a detection's groups narrowed to the hits of one user's records (the
//! user page's detection links lead there).

use super::{RawGroup, StoreBackend, by_details, ranked_bursts, row_of, tally, user_agent_of};
use crate::store::ui_queries::RecordColumn;
use crate::ui::backend::*;
use anyhow::Result;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::Value;
use std::collections::HashMap;

/// Records read to tally a user's user agents.
const UA_SAMPLE: usize = 2000;
/// Hits of one user read for a filtered detection page.
const USER_HITS_MAX: usize = 100_000;
/// At most this many bars in an activity chart: the bucket grows until they fit.
const MAX_BUCKETS: i64 = 200;

/// Counts CreationTimes (seconds) into buckets from `start` to `end`: hours when that
/// fits in [`MAX_BUCKETS`], else days, weeks or 30-day spans. Empty buckets are kept, so
/// the chart's x axis is time.
pub fn activity(times: &[i64], start: DateTime<Utc>, end: DateTime<Utc>) -> Activity {
    let widths = [
        ("hour", Duration::hours(1)),
        ("day", Duration::days(1)),
        ("week", Duration::days(7)),
        ("30 days", Duration::days(30)),
    ];
    let span = (end - start).max(Duration::seconds(1));
    let (unit, width) = widths
        .iter()
        .copied()
        .find(|(_, w)| span.num_seconds() / w.num_seconds() < MAX_BUCKETS)
        .unwrap_or(widths[3]);
    // Buckets start on whole hours / UTC midnights, so their labels read as times.
    let first = start
        .duration_trunc(width.min(Duration::days(1)))
        .unwrap_or(start);
    let n = ((end - first).num_seconds() / width.num_seconds() + 1).clamp(1, 2 * MAX_BUCKETS);
    let mut buckets: Vec<(DateTime<Utc>, u64)> =
        (0..n).map(|i| (first + width * i as i32, 0)).collect();
    for &t in times {
        let i = (t - first.timestamp()).div_euclid(width.num_seconds());
        if let Some(b) = usize::try_from(i).ok().and_then(|i| buckets.get_mut(i)) {
            b.1 += 1;
        }
    }
    Activity { unit, buckets }
}

impl StoreBackend {
    pub(super) fn user_detail(
        &self,
        user_id: &str,
        range: TimeRange,
        offset: usize,
        limit: usize,
    ) -> Result<UserDetail> {
        let groups = [
            RecordColumn::ClientIp,
            RecordColumn::Workload,
            RecordColumn::Operation,
        ];
        let p = self.store.ui_profile(
            RecordColumn::UserId,
            user_id,
            (range.from, range.to),
            (0, limit.max(UA_SAMPLE)),
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
        let timeline: Vec<RecordRow> = if offset + limit <= recs.len() {
            recs.iter().skip(offset).take(limit).map(row_of).collect()
        } else {
            let ids: Vec<i64> = p.rowids.iter().skip(offset).take(limit).copied().collect();
            let mut page = self.store.records_by_rowids(&ids)?;
            page.sort_by(|x, y| {
                y.header
                    .creation_time
                    .cmp(&x.header.creation_time)
                    .then(y.rowid.cmp(&x.rowid))
            });
            page.iter().map(row_of).collect()
        };
        let now = Utc::now();
        let newest = p
            .times
            .first()
            .copied()
            .and_then(|t| DateTime::from_timestamp(t, 0));
        let oldest = p
            .times
            .last()
            .copied()
            .and_then(|t| DateTime::from_timestamp(t, 0));
        let end = range.to.unwrap_or(now).max(newest.unwrap_or(now));
        let start = range.from.or(oldest).unwrap_or(end);
        let activity = activity(&p.times, start, end);
        let mut detections = tally(self.store.ui_detections_of_rowids(&p.rowids)?);
        self.burst_tally(&mut detections, &p.rowids)?;
        let mut tallies = p.tallies.into_iter().map(tally);
        Ok(UserDetail {
            user_id: user_id.to_string(),
            total: p.total.max(0) as u64,
            timeline,
            activity,
            detections,
            ips: tallies.next().unwrap_or_default(),
            user_agents,
            workloads: tallies.next().unwrap_or_default(),
            operations: tallies.next().unwrap_or_default(),
        })
    }

    pub(super) fn detection_of_user(
        &self,
        id: &str,
        range: TimeRange,
        user: &str,
    ) -> Result<Option<DetectionDetail>> {
        let meta = self.detections.meta(id);
        let hits = self
            .store
            .ui_user_hits(id, user, range.from, range.to, USER_HITS_MAX)?;
        if meta.is_none() && self.store.ui_hit_groups(id, false, None, None, 1)?.0 == 0 {
            return Ok(None);
        }
        if let Some(m) = meta
            && let Some(t) = m.threshold
        {
            // The bursts this user's hits fall in, whole (a burst is the alert).
            let b = self.bursts_for(m, t, None, range)?;
            let groups = ranked_bursts(b.groups.iter().filter(|g| {
                let key = g.key.to_string();
                hits.iter()
                    .any(|h| h.group_key == key && h.time >= g.first_seen && h.time <= g.last_seen)
            }));
            let total = groups.iter().map(|(_, g)| g.count).sum();
            let rule = ThresholdRule {
                count: t.count,
                window_secs: t.window_secs,
                distinct: m.distinct.clone(),
                matched: hits.len() as u64,
            };
            return Ok(Some(self.detail(id, meta, total, groups, Some(rule))));
        }
        let details = by_details(meta);
        let mut by_key: HashMap<&str, RawGroup> = HashMap::new();
        for h in &hits {
            let k = if details { &h.details } else { &h.group_key };
            let g = by_key.entry(k.as_str()).or_insert(RawGroup {
                count: 0,
                first_seen: h.time,
                last_seen: h.time,
            });
            g.count += 1;
            g.first_seen = g.first_seen.min(h.time);
            g.last_seen = g.last_seen.max(h.time);
        }
        let mut groups: Vec<(Value, RawGroup)> = by_key
            .into_iter()
            .map(|(k, g)| {
                let key = serde_json::from_str(k).unwrap_or_else(|_| Value::String(k.into()));
                (key, g)
            })
            .collect();
        groups.sort_by(|(ka, a), (kb, b)| {
            b.count
                .cmp(&a.count)
                .then(b.last_seen.cmp(&a.last_seen))
                .then(ka.to_string().cmp(&kb.to_string()))
        });
        groups.truncate(super::MAX_GROUPS);
        Ok(Some(self.detail(id, meta, hits.len() as u64, groups, None)))
    }
}

impl StoreBackend {
    pub(super) fn records_of_user(
        &self,
        id: &str,
        key: Option<&Value>,
        range: TimeRange,
        user: &str,
        limit: usize,
    ) -> Result<Option<Vec<RecordRow>>> {
        let meta = self.detections.meta(id);
        if meta.is_none() && self.store.ui_hit_groups(id, false, None, None, 1)?.0 == 0 {
            return Ok(None);
        }
        let key_text = key.map(|k| k.to_string());
        let details = by_details(meta);
        let bursts = match meta.and_then(|m| m.threshold.map(|t| (m, t))) {
            Some((m, t)) => Some(self.all_time_bursts(m, t)?),
            None => None,
        };
        let hits = self
            .store
            .ui_user_hits(id, user, range.from, range.to, USER_HITS_MAX)?;
        let mut rowids: Vec<i64> = Vec::new();
        for h in &hits {
            let k = if details && bursts.is_none() {
                &h.details
            } else {
                &h.group_key
            };
            if key_text.as_deref().is_some_and(|want| want != k) {
                continue;
            }
            // A threshold detection's hit is an alert only inside a burst.
            if let Some(b) = &bursts
                && !b.contains(&h.group_key, h.time.timestamp())
            {
                continue;
            }
            if !rowids.contains(&h.record_rowid) {
                rowids.push(h.record_rowid);
            }
            if rowids.len() >= limit {
                break;
            }
        }
        let mut recs = self.store.records_by_rowids(&rowids)?;
        recs.sort_by(|x, y| {
            y.header
                .creation_time
                .cmp(&x.header.creation_time)
                .then(y.rowid.cmp(&x.rowid))
        });
        Ok(Some(recs.iter().map(row_of).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_picks_a_bucket_that_fits_and_keeps_empty_ones() {
        let t = |s: &str| crate::model::parse_time(s).unwrap();
        let start = t("2026-05-01T10:20:00Z");
        let end = t("2026-05-04T09:00:00Z");
        let times = [
            t("2026-05-01T10:30:00Z"),
            t("2026-05-03T23:59:59Z"),
            t("2026-05-04T08:00:00Z"),
        ]
        .map(|x| x.timestamp());
        let a = activity(&times, start, end);
        assert_eq!(a.unit, "hour");
        assert_eq!(a.buckets.first().unwrap().0, t("2026-05-01T10:00:00Z"));
        assert_eq!(a.buckets.iter().map(|b| b.1).sum::<u64>(), 3);
        let a = activity(&times, t("2026-04-01T00:00:00Z"), end);
        assert_eq!(a.unit, "day");
        assert_eq!(a.buckets.len(), 34);
        assert_eq!(a.buckets[32], (t("2026-05-03T00:00:00Z"), 1));
        let a = activity(&times, t("2024-01-01T00:00:00Z"), end);
        assert_eq!(a.unit, "week");
        assert_eq!(a.buckets.iter().map(|b| b.1).sum::<u64>(), 3);
    }
}
