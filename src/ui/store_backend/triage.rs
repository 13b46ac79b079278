//! Triage over the store for the UI: the triaged rows of a detection, the counts by state
//! per detection (every group without a row is new), and the one write, through the
//! store's [`TriageWriter`] (absent: this UI is read-only).

use super::{StoreBackend, by_details};
use crate::store::{TriageChange, TriageRow, TriageWriter};
use crate::ui::triage::{self, TriageCounts};
use anyhow::Result;

impl StoreBackend {
    /// Lets this UI write triage through `w`.
    pub fn with_triage_writer(mut self, w: TriageWriter) -> StoreBackend {
        self.triage = Some(w);
        self
    }

    pub(super) fn triage_rows(&self, detection: Option<&str>) -> Result<Vec<TriageRow>> {
        self.store.triage_rows(detection, &self.detections)
    }

    /// Counts by state of every loaded detection with hits: its triaged rows, and as new
    /// its groups without one (all groups less the triaged ones that still are groups).
    /// Reads counts and single keys, never every group key of a detection.
    pub(super) fn triage_counts_all(&self) -> Result<Vec<TriageCounts>> {
        let rows = self.triage_rows(None)?;
        let lit: std::collections::HashSet<String> = self
            .store
            .ui_hit_summary()?
            .into_iter()
            .filter(|(_, n, _)| *n > 0)
            .map(|(d, _, _)| d)
            .collect();
        let mut untriaged: Vec<(String, u64)> = Vec::new();
        for m in self.detections.metas() {
            if !lit.contains(&m.id) {
                continue;
            }
            let mine = rows.iter().filter(|r| r.detection == m.id);
            let (total, triaged) = match m.threshold {
                Some(t) => {
                    let b = self.all_time_bursts(m, t)?;
                    let n = mine.filter(|r| b.spans.contains_key(&r.key)).count();
                    (b.spans.len() as u64, n as u64)
                }
                None => {
                    let bd = by_details(Some(m));
                    let mut n = 0u64;
                    for r in mine {
                        if self.store.group_exists(&m.id, &r.key, bd)? {
                            n += 1;
                        }
                    }
                    (self.group_total(&m.id, bd)?, n)
                }
            };
            untriaged.push((m.id.clone(), total.saturating_sub(triaged)));
        }
        Ok(triage::counts(&rows, &untriaged))
    }

    /// A detection's number of groups, kept until a new hit is stored: counting the
    /// distinct details of a detection without group_by reads its hits, which the
    /// dashboard must not do on every request.
    fn group_total(&self, detection: &str, by_details: bool) -> Result<u64> {
        let upto = self.store.max_hit_id()?;
        if let Ok(c) = self.group_totals.lock()
            && c.0 == upto
            && let Some(n) = c.1.get(detection)
        {
            return Ok(*n);
        }
        let n = self.store.group_count(detection, by_details)?;
        if let Ok(mut c) = self.group_totals.lock() {
            if c.0 != upto {
                *c = (upto, std::collections::HashMap::new());
            }
            c.1.insert(detection.to_string(), n);
        }
        Ok(n)
    }

    pub(super) fn apply_triage(&self, change: &TriageChange) -> Result<()> {
        let Some(w) = &self.triage else {
            anyhow::bail!("this UI is read-only: triage cannot be written");
        };
        self.store
            .check_group(&self.detections, &change.detection, &change.key)?;
        w.apply(change, chrono::Utc::now())?;
        Ok(())
    }
}
