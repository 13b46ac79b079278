//! The inactivity monitor of the guide's "Monitor It": per collector id × Workload and per
//! content type, the last record seen and the last successful listing, and an alert once a
//! source has been quiet longer than a configurable period (hours by default: the API's
//! latency is hours). Pure functions over what the store reports; no I/O, no clock reads.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// The default quiet period: Microsoft documents up to 12 hours of latency.
pub const DEFAULT_QUIET_HOURS: i64 = 12;

/// What is watched.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
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
