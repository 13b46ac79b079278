//! `m365audit linq [--data DIR] [--format table|jsonl|csv] [--from T] [--to T] 'QUERY'`:
//! a Devo LINQ query over the stored records. The store streams the query's table, the
//! `linq` module evaluates; this file only joins them and prints the result.
//!
//! Values are attacker-controlled: the table format passes every cell through
//! [`terminal_safe`]; jsonl and csv are data formats and keep the values exact.

use crate::linq::{Input, Options, Origin, Output, Query};
use crate::model::{csv_safe, json_terminal_safe, terminal_safe};
use anyhow::Context as _;
use std::io::Write as _;
use std::path::Path;

/// Widest cell of the table format (in characters); longer values end with `…`.
const CELL_MAX: usize = 60;

pub fn command(
    data: &Path,
    format: &str,
    from: Option<&str>,
    to: Option<&str>,
    text: &str,
) -> anyhow::Result<()> {
    let query = Query::parse(text).map_err(|e| {
        crate::UsageError(format!(
            "the LINQ query does not parse:\n{}",
            shown(&e, text)
        ))
    })?;
    let opts = Options {
        from: from.map(|t| time_arg("--from", t)).transpose()?,
        to: to.map(|t| time_arg("--to", t)).transpose()?,
        max_rows: None,
    };
    let store = crate::store::Store::open_read_only(data)?;
    let out =
        run(&store, &query, opts).map_err(|e| match e.downcast::<crate::linq::LinqError>() {
            Ok(le) => anyhow::Error::new(crate::UsageError(format!(
                "the LINQ query cannot run:\n{}",
                shown(&le, text)
            ))),
            Err(other) => other,
        })?;
    for w in &out.warnings {
        eprintln!("warning: {}", terminal_safe(w));
    }
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let written = match format {
        "jsonl" => write_jsonl(&mut stdout, &out),
        "csv" => write_csv(&mut stdout, &out),
        "table" => write_table(&mut stdout, &out),
        other => {
            return Err(crate::UsageError(format!(
                "unknown format {other:?}; use table, jsonl or csv"
            ))
            .into());
        }
    };
    match written.and_then(|()| stdout.flush()) {
        // a closed pipe (`| head`) is not a failure of the query
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing the results"),
    }
}

/// Evaluates `query` over the store's records of its table (blocking: SQLite reads).
/// `hostchain` names the collector that last ran on this store and this machine's host
/// name; a store filled only by `import` has no collector, and its `hostchain` is null.
pub fn run(store: &crate::store::Store, query: &Query, opts: Options) -> anyhow::Result<Output> {
    let origin = store
        .collector_id()?
        .filter(|id| !id.is_empty())
        .map(|id| Origin::this_host(&id));
    let mut run = query.start(opts);
    store.for_each_record(query.table(), 0, |r| {
        let input = Input {
            header: &r.header,
            raw: &r.raw,
            ingested_at: r.ingested_at,
            origin: origin.as_ref(),
        };
        Ok(run.push(&input)?)
    })?;
    Ok(run.finish()?)
}

/// The error with the query line and caret; its message may quote a record id, so it is
/// made terminal-safe (the caret layout's own newlines stay).
fn shown(e: &crate::linq::LinqError, text: &str) -> String {
    crate::linq::LinqError::at(e.col, terminal_safe(&e.msg)).with_source(text)
}

fn time_arg(flag: &str, t: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    crate::model::parse_time(t).ok_or_else(|| {
        crate::UsageError(format!(
            "{flag} {t:?} is not a time: use 2026-12-01, 2026-12-01T10:00:00 or RFC 3339"
        ))
        .into()
    })
}

fn write_jsonl(w: &mut impl std::io::Write, out: &Output) -> std::io::Result<()> {
    for row in out.row_objects() {
        writeln!(w, "{}", json_terminal_safe(&row.to_string()))?;
    }
    Ok(())
}

fn write_csv(w: &mut impl std::io::Write, out: &Output) -> std::io::Result<()> {
    let mut c = csv::Writer::from_writer(w);
    let err = |e: csv::Error| std::io::Error::other(e.to_string());
    // cells are record text: the one rule of every CSV cell (no formula, no raw control)
    c.write_record(out.columns.iter().map(|h| csv_safe(h).into_owned()))
        .map_err(err)?;
    for r in &out.rows {
        c.write_record(r.iter().map(|v| csv_safe(&v.to_text()).into_owned()))
            .map_err(err)?;
    }
    c.flush()
}

fn write_table(w: &mut impl std::io::Write, out: &Output) -> std::io::Result<()> {
    let cell = |s: &str| -> String {
        let safe = terminal_safe(s);
        if safe.chars().count() > CELL_MAX {
            let mut t: String = safe.chars().take(CELL_MAX - 1).collect();
            t.push('…');
            t
        } else {
            safe.into_owned()
        }
    };
    let head: Vec<String> = out.columns.iter().map(|c| cell(c)).collect();
    let body: Vec<Vec<String>> = out
        .rows
        .iter()
        .map(|r| r.iter().map(|v| cell(&v.to_text())).collect())
        .collect();
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in &body {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        parts.join("  ").trim_end().to_string()
    };
    writeln!(w, "{}", line(&head))?;
    for r in &body {
        writeln!(w, "{}", line(r))?;
    }
    writeln!(w, "({} rows from {} records)", out.rows.len(), out.scanned)
}
