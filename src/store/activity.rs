//! What the inactivity monitor reads from the store, and the stored monitor state: per
//! Workload and per content type the newest record and the last successful listing (from
//! the rollup tables the writer keeps per blob, so this stays cheap on millions of records),
//! plus the `status` rows the collector leaves for `stats`, `detect` and the UI. Judging
//! quiet sources is `detect::monitor`'s; this file only reads and writes rows.

use super::{MonitorStats, Store};
use crate::detect::monitor::{self, Activity, MonitorState, Source};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;
use serde_json::Value;
use std::collections::HashMap;

impl Store {
    /// The JSON value stored under `key` by [`Store::set_status`], if any.
    pub fn status(&self, key: &str) -> Result<Option<Value>> {
        let text: Option<String> = self.with_conn(|c| {
            Ok(
                c.query_row("SELECT value FROM status WHERE key = ?1", [key], |r| {
                    r.get(0)
                })
                .optional()?,
            )
        })?;
        text.map(|t| {
            serde_json::from_str(&t).with_context(|| format!("status {key:?} is not valid JSON"))
        })
        .transpose()
    }

    /// The monitor state the collector stored last, if a collector ran on this store.
    pub fn monitor_state(&self) -> Result<Option<MonitorState>> {
        match self.status(MonitorState::STATUS_KEY)? {
            None => Ok(None),
            Some(v) => serde_json::from_value(v)
                .map(Some)
                .context("the stored inactivity monitor state is unreadable"),
        }
    }

    /// The collector id of the last collector that ran on this store (`$collector_id`).
    pub fn collector_id(&self) -> Result<Option<String>> {
        Ok(self.monitor_state()?.map(|m| m.collector_id))
    }

    /// The tenants records were collected or imported for, by name (the tenant id), in
    /// the order they were first stored.
    pub fn tenant_names(&self) -> Result<Vec<String>> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached("SELECT name FROM tenants ORDER BY id")?;
            let rows = st.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Every watched source under `collector_id`: each Workload with records, and each
    /// content type the collector knows (a cursor, a stream state or blobs). Content types
    /// only imported are not the collector's to watch.
    pub fn monitor_activity(&self, collector_id: &str) -> Result<Vec<Activity>> {
        let mut activity: Vec<Activity> = self
            .ui_workload_last_ingested()?
            .into_iter()
            .map(|(workload, last)| Activity {
                source: Source::Workload {
                    collector_id: collector_id.to_string(),
                    workload,
                },
                last_record: Some(last),
                last_listing: None,
            })
            .collect();
        let mut last_record: HashMap<String, _> =
            self.ui_content_type_last_ingested()?.into_iter().collect();
        for s in self.ui_streams()? {
            activity.push(Activity {
                last_record: last_record.remove(&s.content_type),
                source: Source::ContentType {
                    collector_id: collector_id.to_string(),
                    content_type: s.content_type,
                },
                last_listing: s.listed_at,
            });
        }
        Ok(activity)
    }

    /// The monitor judged at `now` over what is stored, with the stored quiet period and
    /// start; None until a collector ran on this store.
    pub fn monitor_stats(&self, now: DateTime<Utc>) -> Result<Option<MonitorStats>> {
        let Some(state) = self.monitor_state()? else {
            return Ok(None);
        };
        let activity = self.monitor_activity(&state.collector_id)?;
        let sources = monitor::evaluate(now, state.since, state.quiet(), &activity);
        Ok(Some(MonitorStats {
            alerts: sources.iter().filter(|s| s.alert).count(),
            collector_id: state.collector_id,
            quiet_secs: state.quiet_secs,
            since: state.since,
            evaluated_at: now,
            sources,
            history: state.history.into_iter().rev().take(20).collect(),
        }))
    }
}
