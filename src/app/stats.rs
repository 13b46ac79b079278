//! `stats` and `search`: read-only views of a data directory, as text for people or as
//! the stable JSON documents of docs/architecture.md.

use super::print_results;
use crate::model::{json_terminal_safe, terminal_safe, terminal_safe_lines};
use crate::store::Store;
use anyhow::Result;
use std::fmt::Write;
use std::path::Path;

/// `m365audit stats [--data DIR] [--json]`.
pub fn stats(data: &Path, json: bool) -> Result<()> {
    let store = Store::open_read_only(data)?;
    let mut stats = store.stats()?;
    // Counted as the UI and `detect` count them: a threshold rule's raw hits are no alerts.
    let dets = super::load_detections(crate::detect::Vars::default())?;
    stats.hits = store.detection_hit_counts(&dets)?;
    if json {
        print_results(&format!(
            "{}\n",
            json_terminal_safe(&serde_json::to_string_pretty(&stats)?)
        ))
    } else {
        // `render_stats` escapes the values it shows; this keeps anything it missed from
        // reaching the terminal
        print_results(&terminal_safe_lines(&crate::store::render_stats(&stats)))
    }
}

/// `m365audit search [--data DIR] [--limit N] [--json] QUERY`.
pub fn search(data: &Path, query: &str, limit: usize, json: bool) -> Result<()> {
    let store = Store::open_read_only(data)?;
    let r = store.search(query, limit)?;
    if let Some(note) = r.incomplete_note() {
        eprintln!("warning: {note}");
    }
    if json {
        return print_results(&format!(
            "{}\n",
            json_terminal_safe(&serde_json::to_string(&r)?)
        ));
    }
    let mut text = format!(
        "{} records match (newest {} shown)\n",
        r.total,
        r.hits.len()
    );
    for h in &r.hits {
        let _ = writeln!(
            text,
            "{}  {:<40} {:<28} {:<32} {:<15} {}",
            terminal_safe(&h.creation_time),
            terminal_safe(&h.table),
            terminal_safe(&h.operation),
            terminal_safe(&h.user_id),
            terminal_safe(&h.client_ip),
            terminal_safe(&h.id)
        );
    }
    print_results(&text)
}
