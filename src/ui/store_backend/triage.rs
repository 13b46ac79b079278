//! Triage over the store for the UI: the triaged rows of a detection, the counts by state
//! per detection (every group without a row is new), and the one write, through the
//! store's [`TriageWriter`] (absent: this UI is read-only).

use super::{StoreBackend, by_details};
use crate::store::{TriageChange, TriageRow, TriageWriter};
use crate::ui::triage::{self, TriageCounts};
use anyhow::Result;
use std::collections::HashSet;

impl StoreBackend {
    /// Lets this UI write triage through `w`.
    pub fn with_triage_writer(mut self, w: TriageWriter) -> StoreBackend {
        self.triage = Some(w);
        self
    }

    pub(super) fn triage_rows(&self, detection: Option<&str>) -> Result<Vec<TriageRow>> {
        self.store.triage_rows(detection, &self.detections)
    }

    pub(super) fn triage_counts_all(&self) -> Result<Vec<TriageCounts>> {
        let rows = self.triage_rows(None)?;
        let stored = self.store.hit_counts()?;
        let mut groups: Vec<(String, HashSet<String>)> = Vec::new();
        for m in self.detections.metas() {
            if stored.get(&m.id).copied().unwrap_or(0) <= 0 {
                continue;
            }
            let keys: HashSet<String> = match m.threshold {
                Some(t) => self.all_time_bursts(m, t)?.spans.keys().cloned().collect(),
                None => self
                    .store
                    .group_keys(&m.id, by_details(Some(m)))?
                    .into_iter()
                    .collect(),
            };
            if !keys.is_empty() {
                groups.push((m.id.clone(), keys));
            }
        }
        Ok(triage::counts(&rows, &groups))
    }

    pub(super) fn apply_triage(&self, change: &TriageChange) -> Result<()> {
        let Some(w) = &self.triage else {
            anyhow::bail!("this UI is read-only: triage cannot be written");
        };
        w.apply(change, chrono::Utc::now())?;
        Ok(())
    }
}
