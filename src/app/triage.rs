//! `m365audit triage [--data DIR] [DETECTION [KEY]] [--state S] [--assignee A] [--note N]
//! [--author A] [--format table|json]`: lists triaged detection groups, or changes one
//! (for scripts; the UI's form does the same). Listing opens the store read-only (works on
//! read-only media); a change goes through the store's triage writer, which writes the
//! triage tables and nothing else, safe next to a running collector.
//!
//! Also the triage part of `export --table triage` ([`write_export`]).

use crate::store::{Store, TriageChange, TriageRow, TriageState};
use anyhow::Result;
use std::io::Write;
use std::path::Path;

/// What the command was asked to do.
#[derive(Debug, Clone, Default)]
pub struct TriageArgs {
    pub detection: Option<String>,
    pub key: Option<String>,
    pub state: Option<String>,
    pub assignee: Option<String>,
    pub note: Option<String>,
    pub author: Option<String>,
    pub format: String,
}

/// The triaged rows of a store (of one detection, or all), the reopen rule applied with
/// the loaded detections' grouping.
pub fn rows(store: &Store, detection: Option<&str>) -> Result<Vec<TriageRow>> {
    let dets = super::load_detections(crate::detect::Vars::default())?;
    store.triage_rows(detection, &dets)
}

fn default_author() -> String {
    match std::env::var("USER") {
        Ok(u) if !u.trim().is_empty() => format!("cli:{}", u.trim()),
        _ => "cli".into(),
    }
}

pub fn triage(data: &Path, a: &TriageArgs) -> Result<()> {
    let store = Store::open_read_only(data)?;
    let changing = a.state.is_some() || a.assignee.is_some() || a.note.is_some();
    match (&a.detection, &a.key) {
        (Some(det), Some(key)) if changing => {
            let state = a.state.as_deref().map(TriageState::parse).transpose()?;
            let dets = super::load_detections(crate::detect::Vars::default())?;
            store.check_group(&dets, det, key)?;
            let w = store.triage_writer()?;
            let key = w.apply(
                &TriageChange {
                    detection: det.clone(),
                    key: key.clone(),
                    state,
                    assignee: a.assignee.clone(),
                    note: a.note.clone().unwrap_or_default(),
                    author: a.author.clone().unwrap_or_else(default_author),
                },
                chrono::Utc::now(),
            )?;
            let row: Vec<TriageRow> = rows(&store, Some(det))?
                .into_iter()
                .filter(|r| r.key == key)
                .collect();
            let mut out = std::io::stdout().lock();
            print_rows(&mut out, &row, &a.format)
        }
        (_, Some(_)) if !changing => Err(crate::UsageError(
            "a group key without a change: add --state, --assignee or --note (or leave the \
             key out to list)"
                .into(),
        )
        .into()),
        (_, None) if changing => Err(crate::UsageError(
            "--state, --assignee and --note need a DETECTION and a group KEY".into(),
        )
        .into()),
        _ => {
            let rows = rows(&store, a.detection.as_deref())?;
            let mut out = std::io::stdout().lock();
            print_rows(&mut out, &rows, &a.format)
        }
    }
}

/// One row as JSON: the key as JSON (not text), the state as set and as it is now.
pub fn row_json(r: &TriageRow) -> serde_json::Value {
    let key: serde_json::Value =
        serde_json::from_str(&r.key).unwrap_or_else(|_| serde_json::Value::String(r.key.clone()));
    serde_json::json!({
        "detection": r.detection,
        "key": key,
        "state": r.state.as_str(),
        "effective": r.effective(),
        "reopened": r.reopened,
        "new_hits": r.new_hits,
        "assignee": r.assignee,
        "state_at": crate::model::format_api_time(r.state_at),
        "updated_at": crate::model::format_api_time(r.updated_at),
        "notes": r.notes.iter().map(|n| serde_json::json!({
            "at": crate::model::format_api_time(n.at),
            "author": n.author,
            "state": n.state.as_str(),
            "assignee": n.assignee,
            "note": n.note,
        })).collect::<Vec<_>>(),
    })
}

fn print_rows(out: &mut impl Write, rows: &[TriageRow], format: &str) -> Result<()> {
    match format {
        "json" => {
            let doc: Vec<_> = rows.iter().map(row_json).collect();
            serde_json::to_writer_pretty(&mut *out, &doc)?;
            writeln!(out)?;
        }
        _ => {
            if rows.is_empty() {
                writeln!(out, "no triaged groups")?;
                return Ok(());
            }
            // Keys, assignees and notes are attacker- or analyst-written text: escaped.
            let safe = |s: &str| crate::model::terminal_safe(s).into_owned();
            writeln!(
                out,
                "{:<28} {:<15} {:>8}  {:<16} {:<19}  KEY / LAST NOTE",
                "DETECTION", "STATE", "NEW HITS", "ASSIGNEE", "UPDATED (UTC)"
            )?;
            for r in rows {
                let note = r
                    .notes
                    .iter()
                    .rev()
                    .find(|n| !n.note.is_empty())
                    .map(|n| n.note.replace('\n', " "))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{:<28} {:<15} {:>8}  {:<16} {:<19}  {}",
                    safe(&r.detection),
                    r.effective(),
                    r.new_hits,
                    safe(&r.assignee),
                    r.updated_at.format("%Y-%m-%d %H:%M:%S"),
                    safe(&r.key)
                )?;
                if !note.is_empty() {
                    writeln!(out, "{:>95}{}", "", safe(&note))?;
                }
            }
        }
    }
    Ok(())
}

/// `export --table triage`: one triaged group per JSON line, or per CSV row (the history
/// as one cell, its entries separated by ` | `). Returns the number of groups.
pub fn write_export(store: &Store, csv: bool, out: &mut dyn Write) -> Result<u64> {
    let rows = rows(store, None)?;
    if csv {
        let mut w = csv::Writer::from_writer(out);
        w.write_record([
            "detection",
            "key",
            "state",
            "effective",
            "new_hits",
            "assignee",
            "state_at",
            "updated_at",
            "history",
        ])?;
        for r in &rows {
            let history: Vec<String> = r
                .notes
                .iter()
                .map(|n| {
                    format!(
                        "{} {} [{}{}] {}",
                        crate::model::format_api_time(n.at),
                        n.author,
                        n.state.as_str(),
                        if n.assignee.is_empty() {
                            String::new()
                        } else {
                            format!(", {}", n.assignee)
                        },
                        n.note
                    )
                })
                .collect();
            let cells = [
                r.detection.clone(),
                r.key.clone(),
                r.state.as_str().to_string(),
                r.effective().to_string(),
                r.new_hits.to_string(),
                r.assignee.clone(),
                crate::model::format_api_time(r.state_at),
                crate::model::format_api_time(r.updated_at),
                history.join(" | "),
            ];
            w.write_record(cells.iter().map(|c| crate::model::csv_safe(c).into_owned()))?;
        }
        w.flush()?;
    } else {
        for r in &rows {
            serde_json::to_writer(&mut *out, &row_json(r))?;
            out.write_all(b"\n")?;
        }
    }
    Ok(rows.len() as u64)
}
