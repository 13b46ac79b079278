//! The threshold detections' bursts over all their hits, cached per detection and group
//! key and brought up to date incrementally; and the bursts of a page's range or key.

use super::*;

/// One threshold detection's all-time bursts, current up to hit id `upto`.
pub(super) struct BurstCache {
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
    pub(super) fn all_time_bursts(
        &self,
        meta: &detect::Meta,
        t: detect::Threshold,
    ) -> Result<Arc<Bursts>> {
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
    pub(super) fn bursts(
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
    pub(super) fn bursts_for(
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
    pub(super) fn burst_records(
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
    pub(super) fn burst_tally(&self, tallies: &mut Vec<Tally>, rowids: &[i64]) -> Result<()> {
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
}
