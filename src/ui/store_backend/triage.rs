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
        let stored = self.store.hit_counts()?;
        let mut untriaged: Vec<(String, u64)> = Vec::new();
        for m in self.detections.metas() {
            if stored.get(&m.id).copied().unwrap_or(0) <= 0 {
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
                    (self.store.group_count(&m.id, bd)?, n)
                }
            };
            untriaged.push((m.id.clone(), total.saturating_sub(triaged)));
        }
        Ok(triage::counts(&rows, &untriaged))
    }

    pub(super) fn apply_triage(&self, change: &TriageChange) -> Result<()> {
        let Some(w) = &self.triage else {
            anyhow::bail!("this UI is read-only: triage cannot be written");
        };
        w.apply(change, chrono::Utc::now())?;
        Ok(())
    }
}
