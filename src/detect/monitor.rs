//! The inactivity monitor of the guide's "Monitor It": per collector id × Workload and per
//! content type, the last record seen and the last successful listing, and an alert once a
//! source has been quiet longer than a configurable period (hours by default: the API's
//! latency is hours). Pure functions over what the store reports; no I/O, no clock reads.
//!
//! The collector evaluates the sources as it runs and stores a [`MonitorState`] (who watches,
//! since when, how quiet is too quiet, the alert transitions); `stats` re-evaluates the
//! stored sources at its own `now`, so a collector that died is still reported as quiet.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The default quiet period (defined with the other defaults in `model`).
pub use crate::model::DEFAULT_QUIET_HOURS;

/// What is watched.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// Devo's monitor: records per collector and Workload (Exchange, AzureActiveDirectory, …).
    Workload {
        collector_id: String,
        workload: String,
    },
    /// A subscribed content type: records and successful listings.
    ContentType {
        collector_id: String,
        content_type: String,
    },
}

/// What the store knows about one source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Activity {
    pub source: Source,
    /// Ingestion time of the newest record from this source.
    pub last_record: Option<DateTime<Utc>>,
    /// Last listing of the content type that succeeded (content types only).
    pub last_listing: Option<DateTime<Utc>>,
}

/// The monitor's verdict on one source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub source: Source,
    pub last_record: Option<DateTime<Utc>>,
    pub last_listing: Option<DateTime<Utc>>,
    /// Seconds since the newest of the relevant times (None: never seen).
    pub quiet_secs: Option<i64>,
    /// True once the source has been quiet longer than the period.
    pub alert: bool,
    /// Why it alerts (empty when it does not).
    pub reason: String,
}

/// Evaluates every source at `now` with the quiet period `quiet`. `since` is when
/// monitoring began (the collector's start): a source never seen alerts only once `quiet`
/// has passed since then. Statuses come out in source order.
pub fn evaluate(
    now: DateTime<Utc>,
    since: DateTime<Utc>,
    quiet: Duration,
    activity: &[Activity],
) -> Vec<Status> {
    let mut out: Vec<Status> = activity
        .iter()
        .map(|a| {
            let quiet_for = |t: Option<DateTime<Utc>>| t.map(|t| (now - t).num_seconds().max(0));
            let rec = quiet_for(a.last_record);
            let lst = quiet_for(a.last_listing);
            let limit = quiet.num_seconds();
            let never_grace_over = (now - since) > quiet;
            let mut reasons = Vec::new();
            match rec {
                Some(q) if q > limit => reasons.push(format!("no record for {}", human(q))),
                None if never_grace_over => reasons.push("no record ever seen".to_string()),
                _ => {}
            }
            if let Source::ContentType { .. } = a.source {
                match lst {
                    Some(q) if q > limit => {
                        reasons.push(format!("no successful listing for {}", human(q)))
                    }
                    None if never_grace_over => {
                        reasons.push("no successful listing ever".to_string())
                    }
                    _ => {}
                }
            }
            Status {
                source: a.source.clone(),
                last_record: a.last_record,
                last_listing: a.last_listing,
                quiet_secs: match (rec, lst) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                },
                alert: !reasons.is_empty(),
                reason: reasons.join("; "),
            }
        })
        .collect();
    out.sort_by(|a, b| a.source.cmp(&b.source));
    out
}

/// How many alert transitions [`MonitorState`] keeps (oldest dropped first).
pub const HISTORY_MAX: usize = 200;

/// The monitor as the collector stores it (status key [`MonitorState::STATUS_KEY`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorState {
    /// The collector id (`$collector_id`, the guide's `split(hostchain,"-",1)`).
    pub collector_id: String,
    /// When this collector id first watched this store: sources never seen alert only once
    /// the quiet period has passed since then.
    pub since: DateTime<Utc>,
    pub quiet_secs: i64,
    /// When the collector last evaluated the sources.
    pub evaluated_at: DateTime<Utc>,
    /// Sources alerting at `evaluated_at`.
    pub alerting: Vec<Source>,
    /// Raised and cleared alerts, oldest first, at most [`HISTORY_MAX`].
    pub history: Vec<Transition>,
}

/// An alert raised or cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub at: DateTime<Utc>,
    pub source: Source,
    /// True: raised; false: cleared.
    pub alert: bool,
    pub reason: String,
}

impl MonitorState {
    pub const STATUS_KEY: &'static str = "monitor";

    /// The state to continue from: the stored one when it belongs to the same collector id
    /// (its `since` and history carry on), a fresh one otherwise.
    pub fn resume(
        stored: Option<MonitorState>,
        collector_id: &str,
        quiet: Duration,
        now: DateTime<Utc>,
    ) -> MonitorState {
        match stored {
            Some(mut s) if s.collector_id == collector_id => {
                s.quiet_secs = quiet.num_seconds();
                s
            }
            _ => MonitorState {
                collector_id: collector_id.to_string(),
                since: now,
                quiet_secs: quiet.num_seconds(),
                evaluated_at: now,
                alerting: Vec::new(),
                history: Vec::new(),
            },
        }
    }

    pub fn quiet(&self) -> Duration {
        Duration::seconds(self.quiet_secs)
    }

    /// Evaluates `activity` at `now` and records what changed since the last evaluation;
    /// returns the transitions of this step (for the log).
    pub fn update(&mut self, now: DateTime<Utc>, activity: &[Activity]) -> Vec<Transition> {
        let statuses = evaluate(now, self.since, self.quiet(), activity);
        let mut changes = Vec::new();
        for s in &statuses {
            let was = self.alerting.contains(&s.source);
            if s.alert != was {
                changes.push(Transition {
                    at: now,
                    source: s.source.clone(),
                    alert: s.alert,
                    reason: if s.alert {
                        s.reason.clone()
                    } else {
                        "records and listings arrive again".into()
                    },
                });
            }
        }
        // a source that vanished from the activity (cannot happen with the store's rollups,
        // which only grow) keeps its alert rather than clearing silently
        let vanished: Vec<Source> = self
            .alerting
            .iter()
            .filter(|a| !statuses.iter().any(|s| &s.source == *a))
            .cloned()
            .collect();
        self.alerting = statuses
            .iter()
            .filter(|s| s.alert)
            .map(|s| s.source.clone())
            .chain(vanished)
            .collect();
        self.evaluated_at = now;
        self.history.extend(changes.iter().cloned());
        let over = self.history.len().saturating_sub(HISTORY_MAX);
        self.history.drain(..over);
        changes
    }
}

/// A source as one line: `12345 × Exchange`.
pub fn source_label(s: &Source) -> String {
    match s {
        Source::Workload {
            collector_id,
            workload,
        } => format!("{collector_id} × {workload}"),
        Source::ContentType {
            collector_id,
            content_type,
        } => format!("{collector_id} × {content_type}"),
    }
}

fn human(secs: i64) -> String {
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    } else {
        format!("{}m", secs / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 4, 0, 0, 0).unwrap() + Duration::hours(h)
    }

    fn wl(w: &str, last: Option<i64>) -> Activity {
        Activity {
            source: Source::Workload {
                collector_id: "12345".into(),
                workload: w.into(),
            },
            last_record: last.map(t),
            last_listing: None,
        }
    }

    #[test]
    fn quiet_longer_than_the_period_alerts() {
        let s = evaluate(
            t(30),
            t(0),
            Duration::hours(12),
            &[wl("Exchange", Some(29)), wl("MicrosoftTeams", Some(10))],
        );
        assert!(!s[0].alert, "{s:?}");
        assert!(s[1].alert);
        assert_eq!(s[1].quiet_secs, Some(20 * 3600));
        assert!(
            s[1].reason.contains("no record for 20h00m"),
            "{}",
            s[1].reason
        );
    }

    #[test]
    fn never_seen_alerts_only_after_the_grace_period() {
        assert!(!evaluate(t(5), t(0), Duration::hours(12), &[wl("Exchange", None)])[0].alert);
        assert!(evaluate(t(13), t(0), Duration::hours(12), &[wl("Exchange", None)])[0].alert);
    }

    #[test]
    fn the_state_records_raised_and_cleared_alerts_once() {
        let mut st = MonitorState::resume(None, "12345", Duration::hours(12), t(0));
        assert!(st.update(t(1), &[wl("Exchange", Some(1))]).is_empty());
        let raised = st.update(t(20), &[wl("Exchange", Some(1))]);
        assert_eq!(raised.len(), 1);
        assert!(raised[0].alert && raised[0].reason.contains("no record for 19h"));
        // still quiet: no second transition
        assert!(st.update(t(21), &[wl("Exchange", Some(1))]).is_empty());
        assert_eq!(st.alerting.len(), 1);
        let cleared = st.update(t(22), &[wl("Exchange", Some(22))]);
        assert_eq!(cleared.len(), 1);
        assert!(!cleared[0].alert);
        assert!(st.alerting.is_empty());
        assert_eq!(st.history.len(), 2);
        assert_eq!(st.evaluated_at, t(22));
    }

    #[test]
    fn resume_keeps_since_and_history_for_the_same_collector_only() {
        let mut st = MonitorState::resume(None, "12345", Duration::hours(12), t(0));
        st.update(t(20), &[wl("Exchange", Some(1))]);
        let same = MonitorState::resume(Some(st.clone()), "12345", Duration::hours(6), t(30));
        assert_eq!(same.since, t(0));
        assert_eq!(same.history.len(), 1);
        assert_eq!(same.quiet_secs, 6 * 3600);
        let other = MonitorState::resume(Some(st), "99999", Duration::hours(12), t(30));
        assert_eq!(other.since, t(30));
        assert!(other.history.is_empty() && other.alerting.is_empty());
    }

    #[test]
    fn history_is_bounded() {
        let mut st = MonitorState::resume(None, "1", Duration::hours(1), t(0));
        for i in 0..(HISTORY_MAX as i64 + 10) {
            // alternately quiet and active: one transition per step
            let last = if i % 2 == 0 { 0 } else { 3 * i + 3 };
            st.update(t(3 * i + 3), &[wl("Exchange", Some(last))]);
        }
        assert_eq!(st.history.len(), HISTORY_MAX);
    }

    #[test]
    fn content_type_alerts_on_failed_listings_even_with_recent_records() {
        let a = Activity {
            source: Source::ContentType {
                collector_id: "12345".into(),
                content_type: "Audit.Exchange".into(),
            },
            last_record: Some(t(29)),
            last_listing: Some(t(2)),
        };
        let s = evaluate(t(30), t(0), Duration::hours(12), &[a]);
        assert!(s[0].alert);
        assert!(
            s[0].reason.contains("no successful listing"),
            "{}",
            s[0].reason
        );
    }
}
