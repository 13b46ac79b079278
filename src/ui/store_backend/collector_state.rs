//! The collector's state in words for the status page and the dashboard: the stored
//! stream states and token state read against whether the collector still runs
//! ([`crate::store::liveness`], the rule `stats` uses too), so a page never says "not
//! started" while a backfill runs, nor "caught up" about a collector that is gone.

use crate::store::liveness::Liveness;
use chrono::{DateTime, Utc};
use serde_json::Value;

fn at(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| format!(" since {} UTC", t.format("%Y-%m-%d %H:%M:%S")))
        .unwrap_or_default()
}

/// "running since …" / "stopped since … (process 123 is gone …)" / "never ran on this store".
pub fn collector_label(live: &Liveness) -> String {
    match live {
        Liveness::NeverRan => "never ran on this store".into(),
        Liveness::Running { since, .. } => format!("running{}", at(*since)),
        Liveness::Stopped { since, why } => format!("stopped{} ({why})", at(*since)),
    }
}

/// One content type's state: what the collector stored ("backfilling (window 3 of 30)",
/// "ok" → "caught up", an error state), prefixed with "stopped" once the collector is gone.
pub fn stream_label(stored: Option<&str>, live: &Liveness) -> String {
    let now = match stored {
        Some("ok") => "caught up".to_string(),
        Some("catching_up") => "catching up".to_string(),
        Some(s) => s.replace('_', " "),
        None if live.is_running() => "starting (subscribing, first listing)".to_string(),
        None => "not started".to_string(),
    };
    match live {
        Liveness::Stopped { .. } if stored.is_some() => format!("stopped (last: {now})"),
        _ => now,
    }
}

/// The token as the collector last saw it (never the token itself).
pub fn token_label(auth: &Value, live: &Liveness) -> String {
    if auth.is_null() {
        return if live.is_running() {
            "the collector is requesting its first token".into()
        } else {
            "no token requested yet (the collector has not run here)".into()
        };
    }
    let label = auth.get("label").and_then(Value::as_str).unwrap_or("?");
    let state = auth.get("state").and_then(Value::as_str).unwrap_or("?");
    let mut head = if label == state {
        state.to_string()
    } else {
        format!("{state} ({label})")
    };
    if let Some(t) = auth
        .get("token_expires_at")
        .and_then(Value::as_str)
        .and_then(crate::model::parse_time)
    {
        head = format!(
            "{head}; current token valid until {} UTC",
            t.format("%Y-%m-%d %H:%M:%S")
        );
    }
    if !live.is_running() && !matches!(live, Liveness::NeverRan) {
        head.push_str(" — as the collector saw it before it stopped");
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn states_read_against_the_collector() {
        let running = Liveness::Running {
            since: None,
            heartbeat: None,
        };
        let gone = Liveness::Stopped {
            since: None,
            why: "process 7 is gone".into(),
        };
        assert_eq!(
            stream_label(Some("backfilling (window 2 of 9)"), &running),
            "backfilling (window 2 of 9)"
        );
        assert_eq!(stream_label(Some("ok"), &running), "caught up");
        assert_eq!(stream_label(Some("ok"), &gone), "stopped (last: caught up)");
        assert_eq!(
            stream_label(None, &running),
            "starting (subscribing, first listing)"
        );
        assert_eq!(stream_label(None, &Liveness::NeverRan), "not started");
        assert!(token_label(&Value::Null, &running).contains("requesting"));
        let auth = json!({"state": "ok", "label": "ok"});
        assert_eq!(token_label(&auth, &running), "ok");
        assert!(token_label(&auth, &gone).contains("before it stopped"));
        assert!(collector_label(&gone).starts_with("stopped"));
    }
}
