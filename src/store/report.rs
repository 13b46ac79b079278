//! The human form of `stats`: text rendered from [`Stats`], no SQL (the store gathers the
//! numbers, the `stats` command prints this).

use super::Stats;
use crate::model::terminal_safe;
use std::fmt::Write as _;

/// The human form of `stats`.
pub fn render_stats(s: &Stats) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "records            {}", s.records.total);
    for (t, n) in &s.records.by_table {
        let _ = writeln!(o, "  {:<44} {n}", terminal_safe(t));
    }
    let _ = writeln!(o, "duplicates dropped {}", s.duplicates_dropped);
    let blobs: Vec<String> = s.blobs.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(o, "blobs              {}", blobs.join(", "));
    if s.gaps.is_empty() {
        let _ = writeln!(o, "gaps               none");
    } else {
        let _ = writeln!(o, "gaps (the loss ledger)");
        for g in &s.gaps {
            let _ = writeln!(
                o,
                "  {:<11} {:<28} count {:<6} {}",
                g.kind,
                g.content_type,
                g.count,
                terminal_safe(&g.last_detail)
            );
        }
    }
    let collector = s.collector.as_ref();
    let field = |k: &str| collector.and_then(|c| c.get(k)).and_then(|v| v.as_str());
    let stopped = field("state") == Some("stopped");
    match (field("state"), field("since")) {
        (Some(state), since) => {
            // How a stop was found out when no "stopped" was written (`liveness`).
            let why = field("stopped_why")
                .map(|w| format!(" ({})", terminal_safe(w)))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "collector          {state} since {}{why}",
                since.unwrap_or("?")
            );
        }
        (None, _) => {
            let _ = writeln!(o, "collector          never ran on this store");
        }
    }
    let _ = writeln!(o, "content types");
    for (ct, c) in &s.content_types {
        // The stored state is what the collector saw last; once it stopped, say so.
        let state = match (c.state.as_deref(), stopped) {
            (Some(st), true) => format!("stopped (last: {st})"),
            (Some(st), false) => st.to_string(),
            (None, _) => "-".into(),
        };
        let _ = writeln!(
            o,
            "  {:<28} cursor {}  lag {}  state {}  pending blobs {}{}",
            ct,
            c.cursor.as_deref().unwrap_or("-"),
            c.lag_secs
                .map(|l| format!("{l}s"))
                .unwrap_or_else(|| "-".into()),
            state,
            c.pending_blobs,
            c.last_error
                .as_deref()
                .map(|e| format!("  last error: {}", terminal_safe(e)))
                .unwrap_or_default()
        );
    }
    if let Some(a) = &s.auth {
        let state = a.get("state").and_then(|v| v.as_str()).unwrap_or("?");
        let label = a.get("label").and_then(|v| v.as_str()).unwrap_or("");
        let _ = writeln!(o, "auth               {state} ({})", terminal_safe(label));
    }
    if let Some(m) = &s.monitor {
        let _ = writeln!(
            o,
            "inactivity monitor collector {}, quiet after {} h: {} of {} sources alert",
            m.collector_id,
            m.quiet_secs / 3600,
            m.alerts,
            m.sources.len()
        );
        for st in m.sources.iter().filter(|st| st.alert) {
            let _ = writeln!(
                o,
                "  ALERT {:<40} {}",
                terminal_safe(&crate::detect::monitor::source_label(&st.source)),
                terminal_safe(&st.reason)
            );
        }
        for t in m.history.iter().take(5) {
            let _ = writeln!(
                o,
                "  {} {} {:<36} {}",
                crate::model::format_api_time(t.at),
                if t.alert { "raised " } else { "cleared" },
                terminal_safe(&crate::detect::monitor::source_label(&t.source)),
                terminal_safe(&t.reason)
            );
        }
    }
    if !s.hits.is_empty() {
        let _ = writeln!(o, "detection hits");
        for (d, n) in &s.hits {
            let _ = writeln!(o, "  {d:<44} {n}");
        }
    }
    if let Some(ob) = &s.outbox {
        let _ = writeln!(
            o,
            "devo outbox        depth {}, oldest {}, sent {}, resent {}, oversized {}{}",
            ob.depth,
            ob.oldest_age_secs
                .map(|a| format!("{a}s"))
                .unwrap_or_else(|| "-".into()),
            ob.sent,
            ob.resent,
            ob.oversized,
            if ob.enabled { "" } else { " (forwarding off)" }
        );
        let _ = writeln!(
            o,
            "  connection       {}{}{}",
            ob.connection,
            ob.target
                .as_deref()
                .map(|t| format!(" to {t}"))
                .unwrap_or_default(),
            ob.down_since
                .map(|d| format!(", down since {}", crate::model::format_api_time(d)))
                .unwrap_or_default()
        );
        if ob.alert {
            let _ = writeln!(o, "  ALERT receiver down longer than the alert time");
        }
        if let Some(e) = &ob.last_error {
            let _ = writeln!(o, "  last error       {e}");
        }
    }
    if let Some(i) = &s.index {
        let _ = writeln!(
            o,
            "search index       up to rowid {} ({} records behind)",
            i.indexed_upto_rowid, i.records_behind
        );
    }
    if !s.imports.is_empty() {
        let _ = writeln!(o, "imported files (the evidence that went in)");
        for i in &s.imports {
            let _ = writeln!(
                o,
                "  {} {} {} bytes sha256 {} {}: {} read, {} stored, {} duplicates, {} bad{}",
                crate::model::format_api_time(i.started_at),
                terminal_safe(&i.file),
                i.size,
                i.sha256,
                i.format,
                i.records,
                i.stored,
                i.duplicates,
                i.bad,
                i.damage
                    .as_deref()
                    .map(|d| format!("; DAMAGED: {}", terminal_safe(d)))
                    .unwrap_or_default()
            );
        }
    }
    let _ = writeln!(
        o,
        "disk               database {} bytes, index {} bytes",
        s.db_bytes, s.index_bytes
    );
    o
}
