//! Whether a collector runs on this store, judged the same way by `stats`, `/metrics` and
//! the status page: from the `collector` status row the collector keeps (its state, when
//! it started, its process id and machine (boot id, pid namespace), and a heartbeat it
//! rewrites while it runs).
//!
//! A collector that stops cleanly writes "stopped". One killed (`kill -9`, a crash, a power
//! cut) leaves "running" behind, so a stored "running" is believed only while the process
//! it names still exists (when it ran on this host) and its heartbeat is fresh. This file
//! reads the row and judges it; it never writes (the collector does, through `Store`).

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

/// How often a running collector rewrites its heartbeat.
pub const HEARTBEAT_EVERY_SECS: i64 = 10;
/// A heartbeat older than this means the collector is gone (six missed beats: a busy
/// machine delays a beat, it does not skip six).
pub const HEARTBEAT_STALE_SECS: i64 = 60;

/// The collector as `stats` and the UI describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// No collector ever ran on this store.
    NeverRan,
    /// Running since `since`; `heartbeat` is its last sign of life.
    Running {
        since: Option<DateTime<Utc>>,
        heartbeat: Option<DateTime<Utc>>,
    },
    /// Stopped at (or last seen alive at) `since`; `why` says how it is known.
    Stopped {
        since: Option<DateTime<Utc>>,
        why: String,
    },
}

impl Liveness {
    pub fn is_running(&self) -> bool {
        matches!(self, Liveness::Running { .. })
    }
}

/// Where a process id means something: the kernel's boot id (else the host name) and this
/// process's pid namespace, so a reader in another container on the same kernel does not
/// look the collector's pid up in its own namespace; empty when neither is known.
pub fn machine_id() -> String {
    let boot = [
        "/proc/sys/kernel/random/boot_id",
        "/proc/sys/kernel/hostname",
    ]
    .iter()
    .find_map(|p| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
    .unwrap_or_default();
    if boot.is_empty() {
        return boot;
    }
    match std::fs::read_link("/proc/self/ns/pid") {
        Ok(ns) => format!("{boot} {}", ns.display()),
        Err(_) => boot,
    }
}

/// Whether a live process with this id exists here (`/proc`; a zombie, killed but not yet
/// reaped, is gone). Without `/proc` it cannot be told: the heartbeat decides.
fn process_exists(pid: i64) -> bool {
    if pid <= 0 {
        return false;
    }
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S …": the state follows the last ')' (comm may hold one)
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// Judges the stored `collector` row at `now` (see the module docs).
pub fn judge(row: Option<&Value>, now: DateTime<Utc>) -> Liveness {
    judge_with(row, now, &machine_id(), process_exists)
}

fn judge_with(
    row: Option<&Value>,
    now: DateTime<Utc>,
    this_host: &str,
    exists: impl Fn(i64) -> bool,
) -> Liveness {
    let Some(row) = row else {
        return Liveness::NeverRan;
    };
    let time = |k: &str| {
        row.get(k)
            .and_then(Value::as_str)
            .and_then(crate::model::parse_time)
    };
    let since = time("since");
    let heartbeat = time("heartbeat");
    match row.get("state").and_then(Value::as_str) {
        Some("running") => {}
        Some(_) => {
            return Liveness::Stopped {
                since,
                why: "stopped cleanly".into(),
            };
        }
        None => return Liveness::NeverRan,
    }
    let pid = row.get("pid").and_then(Value::as_i64);
    let host = row.get("machine").and_then(Value::as_str).unwrap_or("");
    if let Some(pid) = pid
        && !host.is_empty()
        && host == this_host
        && !exists(pid)
    {
        return Liveness::Stopped {
            since: heartbeat.or(since),
            why: format!("process {pid} is gone (killed or crashed)"),
        };
    }
    if let Some(hb) = heartbeat
        && now - hb > Duration::seconds(HEARTBEAT_STALE_SECS)
    {
        return Liveness::Stopped {
            since: Some(hb),
            why: format!(
                "no heartbeat for {} s (killed, crashed or hung)",
                (now - hb).num_seconds()
            ),
        };
    }
    Liveness::Running { since, heartbeat }
}

/// The stored row as `stats --json` shows it: the judged state replaces a stale "running",
/// and `stopped_why` says how a stop was found out.
pub fn judged_row(row: Option<Value>, now: DateTime<Utc>) -> Option<Value> {
    let mut row = row?;
    if let Liveness::Stopped { since, why } = judge(Some(&row), now)
        && let Some(o) = row.as_object_mut()
    {
        o.insert("state".into(), "stopped".into());
        if let Some(s) = since {
            o.insert("since".into(), crate::model::format_api_time(s).into());
        }
        o.insert("stopped_why".into(), why.into());
    }
    Some(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        crate::model::parse_time(s).unwrap()
    }

    #[test]
    fn a_running_row_is_believed_only_while_its_process_lives_and_beats() {
        let now = at("2026-11-20T01:00:00Z");
        let row = json!({"state": "running", "since": "2026-11-20T00:00:00.000Z",
            "heartbeat": "2026-11-20T00:59:55.000Z", "pid": 42, "machine": "box"});
        assert!(judge_with(Some(&row), now, "box", |_| true).is_running());
        // killed on this host: the pid is gone
        let l = judge_with(Some(&row), now, "box", |_| false);
        assert!(
            matches!(&l, Liveness::Stopped { why, .. } if why.contains("process 42")),
            "{l:?}"
        );
        // on another host the pid says nothing; the heartbeat decides
        assert!(judge_with(Some(&row), now, "other", |_| false).is_running());
        let later = now + Duration::seconds(HEARTBEAT_STALE_SECS + 10);
        let l = judge_with(Some(&row), later, "other", |_| true);
        assert!(
            matches!(&l, Liveness::Stopped { why, since } if why.contains("no heartbeat") && *since == Some(at("2026-11-20T00:59:55Z"))),
            "{l:?}"
        );
    }

    #[test]
    fn stopped_and_never_ran_read_as_stored() {
        let now = at("2026-11-20T01:00:00Z");
        assert_eq!(judge_with(None, now, "box", |_| true), Liveness::NeverRan);
        let row = json!({"state": "stopped", "since": "2026-11-20T00:30:00.000Z"});
        assert!(matches!(
            judge_with(Some(&row), now, "box", |_| true),
            Liveness::Stopped { .. }
        ));
        let j = judged_row(
            Some(
                json!({"state": "running", "since": "2026-11-20T00:00:00.000Z",
                "heartbeat": "2026-11-20T00:00:10.000Z"}),
            ),
            now,
        )
        .unwrap();
        assert_eq!(j["state"], json!("stopped"));
        assert!(j["stopped_why"].as_str().unwrap().contains("heartbeat"));
    }

    #[test]
    fn this_process_exists() {
        assert!(process_exists(i64::from(std::process::id())));
        assert!(!process_exists(0));
        assert!(!process_exists(-5));
    }
}
