//! Writing stored records out, exactly as stored: JSON lines (one raw record per line) or
//! the Purview audit search CSV layout (`CreationDate,UserIds,Operations,AuditData,…`, the
//! raw record in `AuditData`), so that an export imports again to identical records.
//! Streaming: one record at a time goes from the store to the writer.
//!
//! Owns the formats and the record filter; `app::export` (the command) and the UI's
//! downloads both write through [`RecordWriter`]. Must not know SQL or HTML.

use crate::store::{Store, StoredRecord};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format> {
        match s {
            "jsonl" | "json" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            other => Err(crate::UsageError(format!(
                "unknown export format {other:?} (jsonl or csv)"
            ))
            .into()),
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Format::Jsonl => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// The Purview audit search export's columns; `AuditData` holds the record, the others
/// are there for the people who open the file in a spreadsheet.
pub const CSV_HEADER: [&str; 6] = [
    "CreationDate",
    "UserIds",
    "Operations",
    "AuditData",
    "RecordType",
    "Identity",
];

/// Writes records in one format.
pub struct RecordWriter<W: Write> {
    out: Out<W>,
    pub written: u64,
}

enum Out<W: Write> {
    Jsonl(W),
    Csv(Box<csv::Writer<W>>),
}

impl<W: Write> RecordWriter<W> {
    pub fn new(w: W, format: Format) -> Result<RecordWriter<W>> {
        let out = match format {
            Format::Jsonl => Out::Jsonl(w),
            Format::Csv => {
                let mut c = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::CRLF)
                    .from_writer(w);
                c.write_record(CSV_HEADER)?;
                Out::Csv(Box::new(c))
            }
        };
        Ok(RecordWriter { out, written: 0 })
    }

    pub fn write(&mut self, r: &StoredRecord) -> Result<()> {
        match &mut self.out {
            Out::Jsonl(w) => {
                // Raw JSON holds a line break only as whitespace between tokens (a string
                // cannot contain one unescaped): a space keeps the record, and the line.
                if r.raw.contains(['\n', '\r']) {
                    w.write_all(r.raw.replace(['\n', '\r'], " ").as_bytes())?;
                } else {
                    w.write_all(r.raw.as_bytes())?;
                }
                w.write_all(b"\n")?;
            }
            Out::Csv(c) => {
                let h = &r.header;
                let date = crate::model::format_api_time(h.creation_time);
                let rt = h.record_type.to_string();
                c.write_record([
                    date.as_str(),
                    // the columns beside AuditData are for people: the one rule of every
                    // CSV cell of record text (no formula, no raw control or bidi character)
                    &crate::model::csv_safe(&h.user_id),
                    &crate::model::csv_safe(&h.operation),
                    // the record itself keeps its bytes (it is JSON and starts with `{`):
                    // import reads it back exactly
                    r.raw.as_str(),
                    rt.as_str(),
                    &crate::model::csv_safe(&h.id),
                ])?;
            }
        }
        self.written += 1;
        Ok(())
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(self) -> Result<W> {
        match self.out {
            Out::Jsonl(mut w) => {
                w.flush()?;
                Ok(w)
            }
            Out::Csv(c) => c
                .into_inner()
                .map_err(|e| anyhow::anyhow!("writing the CSV: {}", e.error())),
        }
    }
}

/// Which records to export.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// A table name (`model::TABLE_ALL` for everything).
    pub table: String,
    /// CreationTime ≥ since.
    pub since: Option<DateTime<Utc>>,
    /// CreationTime < until.
    pub until: Option<DateTime<Utc>>,
    /// Only records this detection hit.
    pub detection: Option<String>,
    /// Only records of this user (UserId, case-insensitive).
    pub user: Option<String>,
}

/// Streams the records the filter selects, in rowid (arrival) order, into `w`; returns
/// how many were written.
pub fn export<W: Write>(store: &Store, f: &Filter, w: &mut RecordWriter<W>) -> Result<u64> {
    let rowids: Option<HashSet<i64>> = match &f.detection {
        None => None,
        Some(d) => {
            let mut set = HashSet::new();
            store.for_each_hit(Some(d), |h| {
                set.insert(h.record_rowid);
                Ok(true)
            })?;
            Some(set)
        }
    };
    let user = f.user.as_ref().map(|u| u.to_lowercase());
    let before = w.written;
    store.for_each_record(&f.table, 0, |r| {
        let h = &r.header;
        let keep = f.since.is_none_or(|s| h.creation_time >= s)
            && f.until.is_none_or(|u| h.creation_time < u)
            && rowids.as_ref().is_none_or(|s| s.contains(&r.rowid))
            && user.as_ref().is_none_or(|u| h.user_id.to_lowercase() == *u);
        if keep {
            w.write(&r)?;
        }
        Ok(true)
    })?;
    Ok(w.written - before)
}

/// Writes a list of records (a search result, a user's timeline) in one format.
pub fn write_all(records: &[StoredRecord], format: Format) -> Result<Vec<u8>> {
    let mut w = RecordWriter::new(Vec::new(), format)?;
    for r in records {
        w.write(r).context("writing a record")?;
    }
    w.finish()
}
