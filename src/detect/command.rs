//! The `detect` and `query` commands over stored records. The caller (the CLI) hands in a
//! record source — a function that streams (header, raw JSON) pairs, typically the store's
//! `for_each_record` — so this module still never touches SQLite (ARCHITECTURE §2 arrows).

use super::monitor::{self, Activity, Source};
use super::{Detections, Query, Vars};
use crate::model::{ContentType, RecordHeader};
use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;
use std::io::Write as _;

/// One stored record as the commands see it.
pub struct SourceRecord<'r> {
    pub header: &'r RecordHeader,
    pub raw: &'r [u8],
    pub content_type: ContentType,
    pub ingested_at: DateTime<Utc>,
}

/// A record source: calls `f(record)` for every record in order until `f` returns false.
pub type ForEach<'a> = dyn FnMut(&mut dyn FnMut(&SourceRecord) -> bool) -> anyhow::Result<()> + 'a;

/// Environment variable: quiet period of the inactivity monitor, in hours.
pub const QUIET_HOURS_ENV: &str = "M365AUDIT_QUIET_HOURS";

/// Last record per Workload and per content type (the guide's "Monitor It").
#[derive(Default)]
struct Watch {
    first: Option<DateTime<Utc>>,
    by_source: BTreeMap<Source, DateTime<Utc>>,
}

impl Watch {
    fn add(&mut self, collector_id: &str, r: &SourceRecord) {
        let t = r.ingested_at;
        self.first = Some(self.first.map_or(t, |f| f.min(t)));
        let sources = [
            Source::Workload {
                collector_id: collector_id.to_string(),
                workload: r.header.workload.clone(),
            },
            Source::ContentType {
                collector_id: collector_id.to_string(),
                content_type: r.content_type.as_str().to_string(),
            },
        ];
        for s in sources {
            let e = self.by_source.entry(s).or_insert(t);
            *e = (*e).max(t);
        }
    }

    fn evaluate(self, now: DateTime<Utc>, quiet: Duration) -> Vec<monitor::Status> {
        let activity: Vec<Activity> = self
            .by_source
            .into_iter()
            .map(|(source, last)| Activity {
                // listings are the store's to report; here a content type is judged by its records
                last_listing: matches!(source, Source::ContentType { .. }).then_some(last),
                source,
                last_record: Some(last),
            })
            .collect();
        monitor::evaluate(now, self.first.unwrap_or(now), quiet, &activity)
    }
}

fn quiet_period() -> anyhow::Result<Duration> {
    match std::env::var(QUIET_HOURS_ENV) {
        Ok(v) if !v.trim().is_empty() => {
            let h: i64 = v.trim().parse().ok().filter(|h| *h > 0).ok_or_else(|| {
                crate::UsageError(format!(
                    "{QUIET_HOURS_ENV} must be a whole number of hours, got {v:?}"
                ))
            })?;
            Ok(Duration::hours(h))
        }
        _ => Ok(Duration::hours(monitor::DEFAULT_QUIET_HOURS)),
    }
}

/// `m365audit detect`: re-runs the detections ([`Detections::load_default`], or one of them) over the records and
/// prints their grouped results as `table`, `json` or `csv`.
pub fn detect_command(
    vars: Vars,
    detection: Option<&str>,
    format: &str,
    for_each: &mut ForEach,
) -> anyhow::Result<()> {
    let mut all = Detections::load_default(vars.clone())?;
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
    let quiet = quiet_period()?;
    let collector_id = vars.collector_id.clone();
    let mut grouper = super::Grouper::new(&all);
    let mut watch = Watch::default();
    for_each(&mut |r| {
        grouper.add_record(r.header, r.raw);
        watch.add(&collector_id, r);
        true
    })?;
    let report = grouper.finish();
    let statuses = watch.evaluate(Utc::now(), quiet);
    let text = match format {
        "json" => {
            let mut v = report.to_json();
            v["monitor"] =
                serde_json::json!({"quiet_secs": quiet.num_seconds(), "sources": statuses});
            format!("{}\n", serde_json::to_string_pretty(&v)?)
        }
        "csv" => report.to_csv()?,
        "table" => {
            let mut t = report.to_table();
            let quiet_ones: Vec<&monitor::Status> = statuses.iter().filter(|s| s.alert).collect();
            t.push_str(&format!(
                "\ninactivity monitor (quiet period {}h): {} of {} sources quiet\n",
                quiet.num_hours(),
                quiet_ones.len(),
                statuses.len()
            ));
            for s in quiet_ones {
                t.push_str(&format!("  {}: {}\n", source_text(&s.source), s.reason));
            }
            t
        }
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
    for_each(&mut |r| match q.run_bytes(r.raw) {
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
                first_error = Some(format!("record {}: {e}", r.header.id));
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

fn source_text(s: &Source) -> String {
    match s {
        Source::Workload {
            collector_id,
            workload,
        } => format!("collector {collector_id:?} workload {workload}"),
        Source::ContentType {
            collector_id,
            content_type,
        } => {
            format!("collector {collector_id:?} content type {content_type}")
        }
    }
}
