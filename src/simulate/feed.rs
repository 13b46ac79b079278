//! The blob catalogue: which blobs exist for each content type, when each was created and
//! listed, and which records each holds. Everything is a pure function of (seed, anchor,
//! volume): blob k of a content type lives in the k-th slot after the history start and
//! is regenerated on demand, so a million records need no memory. Delivery realism lives
//! here: per-workload availability delay, late-listed blobs, records out of order,
//! duplicates within and across blobs. This module must not know about HTTP or the clock.

use super::factory;
use super::rng::{Rng, guid_string, mix, v4};
use super::stories::Story;
use super::tenant::Tenant;
use crate::model::ContentType;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// How much history a feed has and how it is published.
pub(crate) struct FeedShape {
    pub(crate) days: u32,
    pub(crate) records_per_day: u64,
    /// Seconds between two blobs of a content type (at least 60).
    pub(crate) slot_secs: i64,
    /// Blobs listable only after they were created (late-listed blobs).
    pub(crate) late: bool,
    /// Duplicate records within and across blobs.
    pub(crate) dups: bool,
}

/// Share of the volume per content type (ContentType::ALL order).
pub(crate) const SHARE: [f64; 5] = [0.30, 0.20, 0.30, 0.17, 0.03];
pub(crate) const RETENTION_DAYS: i64 = 7;

/// The first blob slot of a history of `days` days ending at `anchor`: late enough that
/// the oldest blob is still inside the 7-day window (by ≥ 10 minutes) when the simulator
/// starts within the anchor's hour.
pub(crate) fn history_start(anchor: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    anchor - Duration::days(i64::from(days.max(1))) + Duration::minutes(70)
}

pub(crate) fn ct_index(ct: ContentType) -> usize {
    ContentType::ALL.iter().position(|c| *c == ct).unwrap_or(0)
}

/// One record of a blob: its de-duplication key and its JSON text.
pub(crate) type Rec = Arc<(u128, String)>;

#[derive(Debug, Clone)]
pub(crate) struct BlobMeta {
    pub ci: usize,
    pub k: i64,
    pub created: DateTime<Utc>,
    pub listed_at: DateTime<Utc>,
    pub expiration: DateTime<Utc>,
    pub content_id: String,
    n: u32,
    dup_prev: Option<u64>,
    dup_within: Option<(u64, u64)>,
}

impl BlobMeta {
    pub(crate) fn ct(&self) -> ContentType {
        ContentType::ALL[self.ci]
    }

    /// Generated record count (before stories and duplicates); an estimate for listings.
    pub(crate) fn approx_records(&self) -> u32 {
        self.n
    }

    pub(crate) fn injected(ci: usize, created: DateTime<Utc>, content_id: String) -> BlobMeta {
        BlobMeta {
            ci,
            k: -1,
            created,
            listed_at: created,
            expiration: created + Duration::days(RETENTION_DAYS),
            content_id,
            n: 0,
            dup_prev: None,
            dup_within: None,
        }
    }
}

pub(crate) enum Lookup {
    Invalid,
    NotFound,
    Found(BlobMeta),
}

pub(crate) struct Feed {
    pub seed: u64,
    pub tenant: Arc<Tenant>,
    pub h0: DateTime<Utc>,
    pub slot_secs: i64,
    lambda: [f64; 5],
    late: bool,
    dups: bool,
    story: HashMap<(usize, i64), Vec<Rec>>,
    pub stories: Vec<Story>,
}

/// `yyyyMMddHHmmssfff`
fn ts17(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d%H%M%S%3f").to_string()
}

fn parse_ts17(s: &str) -> Option<DateTime<Utc>> {
    if s.len() < 17 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |a: usize, b: usize| s[a..b].parse::<u32>().ok();
    let d = NaiveDate::from_ymd_opt(n(0, 4)? as i32, n(4, 6)?, n(6, 8)?)?;
    let t = d.and_hms_milli_opt(n(8, 10)?, n(10, 12)?, n(12, 14)?, n(14, 17)?)?;
    Some(Utc.from_utc_datetime(&t))
}

impl Feed {
    pub(crate) fn new(
        seed: u64,
        tenant: Arc<Tenant>,
        anchor: DateTime<Utc>,
        shape: FeedShape,
    ) -> Feed {
        let FeedShape {
            days,
            records_per_day,
            slot_secs,
            late,
            dups,
        } = shape;
        let slot_secs = slot_secs.max(60);
        let h0 = history_start(anchor, days);
        let mut lambda = [0.0; 5];
        for (i, l) in lambda.iter_mut().enumerate() {
            *l = records_per_day as f64 * SHARE[i] * slot_secs as f64 / 86_400.0;
        }
        let stories = super::stories::build(&tenant, seed, h0, anchor);
        let mut story: HashMap<(usize, i64), Vec<Rec>> = HashMap::new();
        for s in &stories {
            for (j, r) in s.records.iter().enumerate() {
                let ci = ct_index(r.content_type);
                let mut rng = Rng::new(mix(&[seed, 0x5107, super::rng::hash_str(&r.id), j as u64]));
                let avail = r.creation_time + Duration::seconds(rng.range(600, 2400));
                let rel = (avail - h0).num_milliseconds() - (ci as i64) * slot_secs * 100;
                let k = (rel + slot_secs * 1000 - 1)
                    .div_euclid(slot_secs * 1000)
                    .max(0);
                story
                    .entry((ci, k))
                    .or_default()
                    .push(Arc::new((super::rng::id_key(&r.id), r.json.clone())));
            }
        }
        Feed {
            seed,
            tenant,
            h0,
            slot_secs,
            lambda,
            late,
            dups,
            story,
            stories,
        }
    }

    fn slot_start(&self, ci: usize, k: i64) -> DateTime<Utc> {
        self.h0
            + Duration::seconds(k * self.slot_secs)
            + Duration::milliseconds(ci as i64 * self.slot_secs * 100)
    }

    /// The blob of slot `k` of content type `ci`, if it holds any record.
    pub(crate) fn meta(&self, ci: usize, k: i64) -> Option<BlobMeta> {
        if k < 0 {
            return None;
        }
        let mut r = Rng::new(mix(&[self.seed, 0xB10B, ci as u64, k as u64]));
        let n = r.poisson(self.lambda[ci]) as u32;
        let off = r.below((self.slot_secs * 500) as u64) as i64;
        let created = self.slot_start(ci, k) + Duration::milliseconds(off);
        if n == 0 && !self.story.contains_key(&(ci, k)) {
            return None;
        }
        let lag = if self.late && r.chance(0.08) {
            r.range(120, 2700)
        } else {
            r.range(0, 20)
        };
        let dup_prev = (self.dups && r.chance(0.05)).then(|| r.next_u64());
        let dup_within =
            (self.dups && n > 0 && r.chance(0.03)).then(|| (r.below(u64::from(n)), r.next_u64()));
        let t1 = created - Duration::milliseconds(r.range(1_000, 20_000));
        let seg = ContentType::ALL[ci].content_id_segment();
        let content_id = format!(
            "{}{}${}{:06}${}${}",
            ts17(t1),
            r.digits(6),
            ts17(created),
            k.rem_euclid(1_000_000),
            seg,
            self.tenant.region
        );
        Some(BlobMeta {
            ci,
            k,
            created,
            listed_at: created + Duration::seconds(lag),
            expiration: created + Duration::days(RETENTION_DAYS),
            content_id,
            n,
            dup_prev,
            dup_within,
        })
    }

    fn delay(ci: usize, r: &mut Rng) -> Duration {
        if r.chance(0.01) {
            return Duration::minutes(r.range(6 * 60, 53 * 60));
        }
        let (lo, hi) = match ci {
            0 => (2, 30),
            1 | 2 => (20, 90),
            _ => (30, 120),
        };
        Duration::seconds(r.range(lo * 60, hi * 60))
    }

    fn make(&self, ci: usize, k: i64, j: u64, created: DateTime<Utc>) -> Rec {
        let mut r = Rng::new(mix(&[self.seed, 0x4EC, ci as u64, k as u64, j]));
        let key = v4(r.u128());
        let id = guid_string(key);
        let time = created - Self::delay(ci, &mut r);
        let json = factory::background(&self.tenant, &mut r, ContentType::ALL[ci], time, &id);
        Arc::new((key, json))
    }

    /// The records of a blob, in the order they are served (not time order; duplicates
    /// included).
    pub(crate) fn records(&self, m: &BlobMeta) -> Vec<Rec> {
        let mut out: Vec<Rec> = (0..u64::from(m.n))
            .map(|j| self.make(m.ci, m.k, j, m.created))
            .collect();
        if let Some(s) = self.story.get(&(m.ci, m.k)) {
            out.extend(s.iter().cloned());
        }
        if let Some(x) = m.dup_prev
            && let Some(prev) = self.meta(m.ci, m.k - 1)
            && prev.n > 0
        {
            let rec = self.make(m.ci, prev.k, x % u64::from(prev.n), prev.created);
            let pos = ((x >> 32) % (out.len() as u64 + 1)) as usize;
            out.insert(pos, rec);
        }
        if let Some((src, p)) = m.dup_within
            && let Some(rec) = out.get(src as usize).cloned()
        {
            let pos = (p % (out.len() as u64 + 1)) as usize;
            out.insert(pos, rec);
        }
        out
    }

    fn key_of(&self, ci: usize, k: i64, j: u64) -> u128 {
        v4(Rng::new(mix(&[self.seed, 0x4EC, ci as u64, k as u64, j])).u128())
    }

    /// The de-duplication keys of `records(m)`, in the same order, without rendering.
    pub(crate) fn keys(&self, m: &BlobMeta) -> Vec<u128> {
        let mut out: Vec<u128> = (0..u64::from(m.n))
            .map(|j| self.key_of(m.ci, m.k, j))
            .collect();
        if let Some(s) = self.story.get(&(m.ci, m.k)) {
            out.extend(s.iter().map(|r| r.0));
        }
        if let Some(x) = m.dup_prev
            && let Some(prev) = self.meta(m.ci, m.k - 1)
            && prev.n > 0
        {
            let key = self.key_of(m.ci, prev.k, x % u64::from(prev.n));
            let pos = ((x >> 32) % (out.len() as u64 + 1)) as usize;
            out.insert(pos, key);
        }
        if let Some((src, p)) = m.dup_within
            && let Some(key) = out.get(src as usize).copied()
        {
            let pos = (p % (out.len() as u64 + 1)) as usize;
            out.insert(pos, key);
        }
        out
    }

    /// Candidate slots whose blob may have `from <= created < to`.
    pub(crate) fn slots(
        &self,
        ci: usize,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> std::ops::Range<i64> {
        let ms = self.slot_secs * 1000;
        let base =
            |t: DateTime<Utc>| (t - self.h0).num_milliseconds() - ci as i64 * self.slot_secs * 100;
        let lo = (base(from) - self.slot_secs * 500).div_euclid(ms).max(0);
        let hi = (base(to).div_euclid(ms) + 1).max(0);
        lo..hi.max(lo)
    }

    /// Generated blobs with `from <= created < to` (not filtered by listing time).
    pub(crate) fn blobs_between(
        &self,
        ci: usize,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<BlobMeta> {
        self.slots(ci, from, to)
            .filter_map(|k| self.meta(ci, k))
            .filter(|m| m.created >= from && m.created < to)
            .collect()
    }

    /// Resolves a contentId of a generated blob.
    pub(crate) fn lookup(&self, content_id: &str) -> Lookup {
        let parts: Vec<&str> = content_id.split('$').collect();
        if parts.len() < 5 || parts[0].len() != 23 || parts[1].len() != 23 {
            return Lookup::Invalid;
        }
        if !parts[0]
            .bytes()
            .chain(parts[1].bytes())
            .all(|b| b.is_ascii_digit())
        {
            return Lookup::Invalid;
        }
        let seg = format!("{}${}", parts[2], parts[3]);
        let Some(ci) = ContentType::ALL
            .iter()
            .position(|c| c.content_id_segment().eq_ignore_ascii_case(&seg))
        else {
            return Lookup::Invalid;
        };
        let Some(created) = parse_ts17(parts[1]) else {
            return Lookup::Invalid;
        };
        let rel = (created - self.h0).num_milliseconds() - ci as i64 * self.slot_secs * 100;
        let k = rel.div_euclid(self.slot_secs * 1000);
        match self.meta(ci, k) {
            Some(m) if m.content_id == content_id => Lookup::Found(m),
            _ => Lookup::NotFound,
        }
    }

    /// Content id for an injected blob (same shape, `IsFromNotification`-free, distinct digits).
    pub(crate) fn injected_content_id(&self, ci: usize, created: DateTime<Utc>, n: u64) -> String {
        format!(
            "{}{:06}${}{:06}${}${}",
            ts17(created - Duration::seconds(1)),
            900_000 + n % 100_000,
            ts17(created),
            900_000 + n % 100_000,
            ContentType::ALL[ci].content_id_segment(),
            self.tenant.region
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(rpd: u64) -> Feed {
        let t = Arc::new(Tenant::generate(5, rpd));
        let anchor = Utc.with_ymd_and_hms(2026, 5, 8, 10, 0, 0).unwrap();
        Feed::new(
            5,
            t,
            anchor,
            FeedShape {
                days: 7,
                records_per_day: rpd,
                slot_secs: 600,
                late: true,
                dups: true,
            },
        )
    }

    #[test]
    fn content_ids_round_trip_and_are_well_formed() {
        let f = feed(2000);
        let mut seen = 0;
        for ci in 0..5 {
            for k in 0..200 {
                if let Some(m) = f.meta(ci, k) {
                    seen += 1;
                    assert!(m.created >= f.slot_start(ci, k));
                    assert!(m.created < f.slot_start(0, k + 1));
                    match f.lookup(&m.content_id) {
                        Lookup::Found(x) => assert_eq!((x.ci, x.k), (ci, k)),
                        _ => panic!("lookup failed for {}", m.content_id),
                    }
                    let t2 = m.content_id.split('$').nth(1).unwrap();
                    assert!(t2.starts_with(&ts17(m.created)));
                    let slots = f.slots(ci, m.created, m.created + Duration::milliseconds(1));
                    assert!(slots.contains(&k));
                }
            }
        }
        assert!(seen > 500);
        assert!(matches!(f.lookup("nonsense"), Lookup::Invalid));
        assert!(matches!(f.lookup("20260101000000000000000$20260101000000000000000$audit_exchange$Audit_Exchange$na0036"), Lookup::NotFound));
    }

    #[test]
    fn records_are_deterministic_and_records_precede_their_blob() {
        let f = feed(2000);
        let g = feed(2000);
        let mut dups = 0;
        for k in 0..300 {
            if let (Some(a), Some(b)) = (f.meta(0, k), g.meta(0, k)) {
                let ra = f.records(&a);
                let rb = g.records(&b);
                assert_eq!(ra.iter().map(|r| r.0).collect::<Vec<_>>(), f.keys(&a));
                assert_eq!(ra.len(), rb.len());
                let mut ids = std::collections::HashSet::new();
                for (x, y) in ra.iter().zip(rb.iter()) {
                    assert_eq!(x.1, y.1);
                    if !ids.insert(x.0) {
                        dups += 1;
                    }
                    let v: serde_json::Value = serde_json::from_str(&x.1).unwrap();
                    let h = crate::model::RecordHeader::from_value(&v).unwrap();
                    assert!(h.creation_time <= a.created);
                }
            }
        }
        assert!(dups > 0, "expected some in-blob duplicates");
    }

    #[test]
    fn volume_matches_records_per_day() {
        let f = feed(2000);
        let from = f.h0 + Duration::days(1);
        let to = from + Duration::days(1);
        let total: usize = (0..5)
            .map(|ci| {
                f.blobs_between(ci, from, to)
                    .iter()
                    .map(|m| m.n as usize)
                    .sum::<usize>()
            })
            .sum();
        assert!((1700..2300).contains(&total), "{total}");
    }
}
