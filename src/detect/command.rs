//! The `detect` and `query` commands over stored records. The caller (the CLI) hands in a
//! record source — a function that streams (header, raw JSON) pairs, typically the store's
//! `for_each_record` — so this module still never touches SQLite (ARCHITECTURE §2 arrows).

use super::{Detections, Query, Vars};
use crate::model::RecordHeader;
use anyhow::Context as _;
use std::io::Write as _;

/// A record source: calls `f(header, raw JSON)` for every record in order until `f` returns
/// false.
pub type ForEach<'a> =
    dyn FnMut(&mut dyn FnMut(&RecordHeader, &[u8]) -> bool) -> anyhow::Result<()> + 'a;

/// `m365audit detect`: re-runs the detections ([`Detections::load_default`], or one of them) over the records and
/// prints their grouped results as `table`, `json` or `csv`.
pub fn detect_command(
    vars: Vars,
    detection: Option<&str>,
    format: &str,
    for_each: &mut ForEach,
) -> anyhow::Result<()> {
    let mut all = Detections::load_default(vars)?;
    for e in all.errors() {
        eprintln!("warning: detection not loaded: {e}");
    }
    if let Some(id) = detection {
        let known: Vec<String> = all.metas().iter().map(|m| m.id.clone()).collect();
        all = all.only(id).ok_or_else(|| {
            crate::UsageError(format!(
                "unknown detection {id:?}; known: {}",
                known.join(", ")
            ))
        })?;
    }
    let mut grouper = super::Grouper::new(&all);
    for_each(&mut |h, raw| {
        grouper.add_record(h, raw);
        true
    })?;
    let report = grouper.finish();
    let text = match format {
        "json" => format!("{}\n", serde_json::to_string_pretty(&report.to_json())?),
        "csv" => report.to_csv()?,
        "table" => report.to_table(),
        other => {
            return Err(crate::UsageError(format!(
                "unknown format {other:?}; use table, json or csv"
            ))
            .into());
        }
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .context("writing the results")?;
    out.flush().context("writing the results")?;
    Ok(())
}

/// `m365audit query JQ`: runs an ad-hoc jq program over every record, one JSON line per
/// output. A compile error is a usage error with line:column; a record the program fails on
/// is reported on stderr and skipped.
pub fn query_command(vars: Vars, jq: &str, for_each: &mut ForEach) -> anyhow::Result<()> {
    let q = Query::compile(jq, vars)
        .map_err(|e| crate::UsageError(format!("query does not compile:\n{e}")))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failed = 0u64;
    let mut first_error: Option<String> = None;
    let mut write_error: Option<std::io::Error> = None;
    for_each(&mut |h, raw| match q.run_bytes(raw) {
        Ok(values) => {
            for v in values {
                if let Err(e) = writeln!(out, "{v}") {
                    write_error = Some(e);
                    return false;
                }
            }
            true
        }
        Err(e) => {
            failed += 1;
            if first_error.is_none() {
                first_error = Some(format!("record {}: {e}", h.id));
            }
            true
        }
    })?;
    if let Some(e) = write_error {
        // a closed pipe (`| head`) is not a failure of the query
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e).context("writing the results");
        }
        return Ok(());
    }
    out.flush().or_else(|e| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    if let Some(first) = first_error {
        eprintln!("warning: the query failed on {failed} records; first: {first}");
    }
    Ok(())
}
