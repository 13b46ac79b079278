//! Devo LINQ, offline: the subset of Devo's query language that the guide's seven detections
//! and its monitor query use, plus the aggregations Devo users write next, evaluated over
//! stored records with Devo's semantics as docs/detections.md (Devo semantics) records them.
//!
//! `lexer` cuts the text into tokens with columns, `parser` builds the tree and rejects
//! anything outside the subset (unknown function or table, an aggregation without `group`)
//! before a record is read, `eval` runs it. Records come from the caller ([`Run::push`]):
//! this module never touches SQLite, the network or the clock (it reads only the host
//! name, for `hostchain`), and `jqeval` reuses the
//! detections' jaq engine. What a Devo table shows is rebuilt per record: `message` is the
//! raw JSON, top-level fields are columns, `eventdate` is the ingestion time and
//! `hostchain` is `collector-<id>-<host>` of the collector that stored the record.
//!
//! Where Devo's documentation is silent the choice is written beside the code and tested:
//! `split` counts from 0 and gives null out of range; a predicate on null is null, `not`
//! keeps it null, and `where` keeps only rows whose condition is true (so `not has(x,…)`
//! drops rows where x is null, as Devo does); comparing a string with a number is false.

mod eval;
mod lexer;
mod parser;
#[cfg(test)]
mod tests;

pub use eval::{Run, Value};

use crate::model::RecordHeader;
use chrono::{DateTime, Utc};

/// A query that cannot run: what is wrong and where (1-based character position in the
/// query text; the column when the query is one line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {col}: {msg}")]
pub struct LinqError {
    pub col: usize,
    pub msg: String,
}

impl LinqError {
    pub fn at(col: usize, msg: impl Into<String>) -> LinqError {
        LinqError {
            col,
            msg: msg.into(),
        }
    }

    /// `line L, column C: message` (just `column C` for a one-line query).
    pub fn place(&self, src: &str) -> String {
        let (line_no, col, _) = self.locate(src);
        if src.contains('\n') {
            format!("line {line_no}, column {col}: {}", self.msg)
        } else {
            format!("column {col}: {}", self.msg)
        }
    }

    /// (line, column in that line, the line's text) of the error's position.
    fn locate(&self, src: &str) -> (usize, usize, String) {
        let mut line_no = 1;
        let mut line_start = 0;
        for (i, c) in src.chars().enumerate() {
            if i + 1 >= self.col {
                break;
            }
            if c == '\n' {
                line_no += 1;
                line_start = i + 1;
            }
        }
        let col = self.col.saturating_sub(line_start).max(1);
        let line: String = src
            .chars()
            .skip(line_start)
            .take_while(|c| *c != '\n')
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        (line_no, col, line)
    }

    /// [`LinqError::place`], then the line of the query it points at and a caret under
    /// the place (for a terminal: pass it through `terminal_safe`).
    pub fn with_source(&self, src: &str) -> String {
        let (_, col, line) = self.locate(src);
        format!("{}\n  {line}\n  {}^", self.place(src), " ".repeat(col - 1))
    }
}

/// The collector that stored a record: Devo's `hostchain` is `collector-<id>-<host>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    hostchain: String,
}

impl Origin {
    pub fn new(collector_id: &str, host: &str) -> Origin {
        Origin {
            hostchain: format!("collector-{collector_id}-{host}"),
        }
    }

    pub fn hostchain(&self) -> &str {
        &self.hostchain
    }

    /// The collector `collector_id` running on this machine. The store keeps the id of
    /// the collector that filled it but not its host, so the host is this machine's name
    /// (read from the kernel; "localhost" when unknown).
    pub fn this_host(collector_id: &str) -> Origin {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "localhost".to_string());
        Origin::new(collector_id, &host)
    }
}

/// One stored record as the evaluator sees it.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub header: &'a RecordHeader,
    /// The record exactly as Microsoft sent it (`message`).
    pub raw: &'a str,
    /// When the appliance stored it: Devo's `eventdate`.
    pub ingested_at: DateTime<Utc>,
    /// None for imported records (no collector stored them: `hostchain` is null).
    pub origin: Option<&'a Origin>,
}

/// What the caller restricts: Devo's time range (on `eventdate`, half-open `[from, to)`)
/// and, for the UI, a cap on the rows kept.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub max_rows: Option<usize>,
}

/// The result table.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// Records of the table inside the time range.
    pub scanned: u64,
    /// True when `max_rows` cut the result.
    pub truncated: bool,
    /// Things the user should know that did not stop the query (e.g. jq errors read as null).
    pub warnings: Vec<String>,
}

impl Output {
    /// One JSON object per row, keyed by column name.
    pub fn row_objects(&self) -> impl Iterator<Item = serde_json::Value> + '_ {
        self.rows.iter().map(|r| {
            serde_json::Value::Object(
                self.columns
                    .iter()
                    .zip(r)
                    .map(|(c, v)| (c.clone(), v.to_json()))
                    .collect(),
            )
        })
    }
}

/// A parsed, checked query.
#[derive(Debug, Clone)]
pub struct Query {
    pub(crate) ast: parser::Ast,
    pub(crate) aggs: Vec<parser::Agg>,
}

impl Query {
    /// Parses and checks `src`; every error carries the column of the problem.
    pub fn parse(src: &str) -> Result<Query, LinqError> {
        let (ast, aggs) = parser::parse(src)?;
        let q = Query { ast, aggs };
        eval::check(&q)?;
        Ok(q)
    }

    /// The table after `from`, e.g. `cloud.office365.management.exchange`.
    pub fn table(&self) -> &str {
        &self.ast.table
    }

    /// Starts an evaluation; feed it records with [`Run::push`].
    pub fn start(&self, opts: Options) -> Run<'_> {
        Run::new(self, opts)
    }

    /// Runs over an iterator of records (tests and small callers).
    pub fn run<'a>(
        &self,
        records: impl IntoIterator<Item = Input<'a>>,
        opts: Options,
    ) -> Result<Output, LinqError> {
        let mut run = self.start(opts);
        for r in records {
            if !run.push(&r)? {
                break;
            }
        }
        run.finish()
    }
}

/// True when a record with this header belongs to `table` (docs/architecture.md, Tables).
pub fn in_table(table: &str, header: &RecordHeader) -> bool {
    use crate::model::{TABLE_ALL, TABLE_AUTH, is_auth_operation};
    if table == TABLE_ALL {
        return true;
    }
    if table == TABLE_AUTH {
        return is_auth_operation(&header.operation);
    }
    match table
        .strip_prefix(TABLE_ALL)
        .and_then(|r| r.strip_prefix('.'))
    {
        Some(w) => !w.is_empty() && header.workload.eq_ignore_ascii_case(w),
        None => false,
    }
}
