//! The `detect` and `query` commands over stored records. The caller (the CLI) hands in a
//! record source — a function that streams (header, raw JSON) pairs, typically the store's
//! `for_each_record` — so this module still never touches SQLite (docs/architecture.md: the arrows).

use super::monitor::{self, Activity, Source};
use super::{Detections, Query, Vars};
use crate::model::{ContentType, RecordHeader};
use crate::model::{terminal_safe, terminal_safe_lines};
use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;

/// One stored record as the commands see it.
pub struct SourceRecord<'r> {
    pub header: &'r RecordHeader,
    pub content_type: ContentType,
    pub ingested_at: DateTime<Utc>,
}

/// A record source: calls `f(record, raw JSON)` for every record in order until `f`
/// returns false.
pub type ForEach<'a> =
    dyn FnMut(&mut dyn FnMut(&SourceRecord, &[u8]) -> bool) -> anyhow::Result<()> + 'a;

/// Environment variable: quiet period of the inactivity monitor, in hours.
pub const QUIET_HOURS_ENV: &str = "M365AUDIT_QUIET_HOURS";

/// Last record per Workload and per content type (the guide's "Monitor It"). Kept per
/// plain workload name and content type while records stream by (no allocation per
/// record); turned into [`Source`]s at the end.
#[derive(Default)]
struct Watch {
    first: Option<DateTime<Utc>>,
    by_workload: HashMap<String, DateTime<Utc>>,
    by_content_type: HashMap<ContentType, DateTime<Utc>>,
    collector_id: String,
}

impl Watch {
    fn add(&mut self, header: &RecordHeader, content_type: ContentType, t: DateTime<Utc>) {
        self.first = Some(self.first.map_or(t, |f| f.min(t)));
        match self.by_workload.get_mut(header.workload.as_str()) {
            Some(e) => *e = (*e).max(t),
            None => {
                self.by_workload.insert(header.workload.clone(), t);
            }
        }
        let e = self.by_content_type.entry(content_type).or_insert(t);
        *e = (*e).max(t);
    }

    fn sources(&self) -> BTreeMap<Source, DateTime<Utc>> {
        let w = self.by_workload.iter().map(|(w, t)| {
            let s = Source::Workload {
                collector_id: self.collector_id.clone(),
                workload: w.clone(),
            };
            (s, *t)
        });
        let c = self.by_content_type.iter().map(|(c, t)| {
            let s = Source::ContentType {
                collector_id: self.collector_id.clone(),
                content_type: c.as_str().to_string(),
            };
            (s, *t)
        });
        w.chain(c).collect()
    }

    fn evaluate(self, now: DateTime<Utc>, quiet: Duration) -> Vec<monitor::Status> {
        let activity: Vec<Activity> = self
            .sources()
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

/// The raw JSON of a record handed to [`detect_command_lazy`], read (e.g. decompressed)
/// only when a detection's prefilter accepts the record.
pub trait RawSource {
    fn bytes(&mut self) -> anyhow::Result<&[u8]>;

    /// The record as its source keeps it, for the source's [`super::Unpack`] on the
    /// worker threads; None: use [`RawSource::bytes`].
    fn packed(&self) -> Option<super::Packed<'_>> {
        None
    }
}

impl RawSource for &[u8] {
    fn bytes(&mut self) -> anyhow::Result<&[u8]> {
        Ok(self)
    }
}

/// A record source whose raw JSON is fetched on demand: calls `f(record, raw)` for every
/// record in order until `f` returns false.
pub type ForEachLazy<'a> = dyn FnMut(
        &mut dyn FnMut(&SourceRecord, &mut dyn RawSource) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()>
    + 'a;

/// `m365audit detect`: re-runs the detections ([`Detections::load_default`], or one of
/// them) over the records and prints their grouped results as `table`, `json` or `csv`.
/// The source reads a record's raw JSON only for candidates (the store's
/// `for_each_candidate`): records the prefilter skips are never decompressed.
/// With `make`, candidates whose [`RawSource::packed`] is known are unpacked on the
/// worker threads (the store's `unpackers`).
pub fn detect_command_lazy(
    vars: Vars,
    detection: Option<&str>,
    format: &str,
    make: Option<super::MakeUnpack>,
    for_each: &mut ForEachLazy,
) -> anyhow::Result<()> {
    let mut all = Detections::load_default(vars.clone())?;
    for e in all.errors() {
        eprintln!(
            "warning: detection not loaded: {}",
            terminal_safe_lines(&e.to_string())
        );
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
    let _hold = crate::alloc::hold_freed_pages(crate::alloc::DETECT_HOLD);
    let mut watch = Watch {
        collector_id: vars.collector_id.clone(),
        ..Watch::default()
    };
    let (scanned, report) = super::Grouper::stream_with(&all, make, |grouper| {
        for_each(&mut |r, raw| {
            watch.add(r.header, r.content_type, r.ingested_at);
            match raw.packed() {
                Some(packed) if make.is_some() => grouper.add_packed(r.header, packed)?,
                _ => grouper.add_lazy(r.header, || raw.bytes())?,
            }
            Ok(true)
        })
    });
    scanned?;
    let statuses = watch.evaluate(Utc::now(), quiet);
    let text = match format {
        "json" => {
            let mut v = report.to_json();
            v["monitor"] =
                serde_json::json!({"quiet_secs": quiet.num_seconds(), "sources": statuses});
            format!(
                "{}\n",
                crate::model::json_terminal_safe(&serde_json::to_string_pretty(&v)?)
            )
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
                t.push_str(&format!(
                    "  {}: {}\n",
                    terminal_safe(&source_text(&s.source)),
                    terminal_safe(&s.reason)
                ));
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
/// is counted and skipped (a warning with the first error), and a run in which it failed on
/// every record it ran on is an error (exit 1). The whole run stops (an error) once `timeout` has
/// passed: the per-record guard rails bound one record, not a program like `repeat(.)`
/// that spends its budget on every record of a large store.
pub fn query_command(
    vars: Vars,
    jq: &str,
    timeout: std::time::Duration,
    for_each: &mut ForEach,
) -> anyhow::Result<()> {
    let q = Query::compile(jq, vars)
        .map_err(|e| crate::UsageError(format!("query does not compile:\n{e}")))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failed = 0u64;
    let mut first_error: Option<String> = None;
    let mut write_error: Option<std::io::Error> = None;
    let deadline = std::time::Instant::now() + timeout;
    let mut records = 0u64;
    let mut timed_out = false;
    for_each(&mut |r, raw| {
        if std::time::Instant::now() > deadline {
            timed_out = true;
            return false;
        }
        records += 1;
        match q.run_bytes(raw) {
            Ok(values) => {
                for v in values {
                    let line = v.to_string();
                    if let Err(e) = writeln!(out, "{}", crate::model::json_terminal_safe(&line)) {
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
    // every record failing is a broken query (exit 1), not an empty answer; some failing
    // is data the query did not expect (a warning, the outputs of the others stand)
    if let Some(first) = first_error {
        if failed == records && !timed_out {
            anyhow::bail!(
                "the query failed on every record it ran on ({records}); first: {}",
                terminal_safe(&first)
            );
        }
        eprintln!(
            "warning: the query failed on {failed} of {records} records; first: {}",
            terminal_safe(&first)
        );
    }
    if timed_out {
        anyhow::bail!(
            "the query stopped after {} s (--timeout) having run on {records} records; \
             its output is incomplete. Narrow it (--table, an early select) or give it more \
             time with --timeout SECS",
            timeout.as_secs()
        );
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
