//! Offline import of audit exports into the store: a JSON array of records, JSON lines,
//! or the Purview / `Search-UnifiedAuditLog` CSV (the raw record is its `AuditData`
//! column), each optionally gzipped. Must not talk to Microsoft.
//!
//! A bad line (not JSON, no `Id`, no `CreationTime`) is reported as `file:line: why` and
//! skipped; every other record of the file is still stored. Records are deduplicated like
//! collected ones (tenant = the record's `OrganizationId`), so importing a file twice, or
//! importing what the collector already has, adds nothing.

use crate::model::RecordHeader;
use crate::store::{IngestOutcome, Store};
use anyhow::{Context, Result};
use serde_json::Value;
use serde_json::value::RawValue;
use std::io::Read;
use std::path::Path;

/// Tenant of records without an OrganizationId.
pub const DEFAULT_TENANT: &str = "import";
const BATCH: usize = 2000;

/// What importing one file did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct FileReport {
    pub file: String,
    pub format: &'static str,
    pub records: usize,
    pub new: usize,
    pub duplicates: usize,
    /// `file:line: why`, one per skipped line.
    pub bad: Vec<String>,
}

/// The file's text, gunzipped when it is gzip (by magic bytes, whatever its name).
fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .with_context(|| format!("{} is not a valid gzip file", path.display()))?;
        out
    } else {
        bytes
    };
    let text = String::from_utf8(bytes)
        .map_err(|e| anyhow::anyhow!("{} is not UTF-8 text: {e}", path.display()))?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(&text).to_string())
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Checks one raw record; the reason when it cannot be stored.
fn check(raw: &str) -> std::result::Result<(), String> {
    let v: Value = serde_json::from_str(raw).map_err(|e| format!("not JSON: {e}"))?;
    RecordHeader::from_value(&v).map_err(|e| e.to_string())?;
    Ok(())
}

/// A raw record and its line: borrowed from the file text, owned only for CSV cells.
pub type Line<'a> = (usize, std::borrow::Cow<'a, str>);

/// Splits a file into (line, raw record) pairs and bad-line messages.
pub fn parse_file<'a>(name: &str, text: &'a str) -> (&'static str, Vec<Line<'a>>, Vec<String>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let first = text.trim_start().chars().next();
    let mut push = |line: usize, raw: std::borrow::Cow<'a, str>| match check(&raw) {
        Ok(()) => good.push((line, raw)),
        Err(why) => bad.push(format!("{name}:{line}: {why}")),
    };
    match first {
        None => ("empty", good, bad),
        Some('[') => match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(items) => {
                for raw in items {
                    let off = raw.get().as_ptr() as usize - text.as_ptr() as usize;
                    push(line_of(text, off), raw.get().into());
                }
                ("json", good, bad)
            }
            Err(e) => {
                bad.push(format!(
                    "{name}:{}:{}: the JSON array is broken ({e}); nothing of this file was stored",
                    e.line(),
                    e.column()
                ));
                ("json", good, bad)
            }
        },
        Some('{') => {
            // JSON lines; a single pretty-printed object is accepted too.
            let whole = serde_json::from_str::<&RawValue>(text);
            if let (Ok(raw), true) = (whole, text.trim().lines().count() > 1) {
                let off = raw.get().as_ptr() as usize - text.as_ptr() as usize;
                if check(raw.get()).is_ok() {
                    push(line_of(text, off), raw.get().into());
                    return ("json", good, bad);
                }
            }
            for (i, line) in text.lines().enumerate() {
                let l = line.trim();
                if !l.is_empty() {
                    push(i + 1, l.into());
                }
            }
            ("jsonl", good, bad)
        }
        Some(_) => {
            let mut csv_bad = Vec::new();
            for (line, raw) in parse_csv(name, text, &mut csv_bad) {
                push(line, raw.into());
            }
            bad.extend(csv_bad);
            ("csv", good, bad)
        }
    }
}

/// The AuditData cells of a Purview CSV with their line numbers.
fn parse_csv(name: &str, text: &str, bad: &mut Vec<String>) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let col = match rdr.headers() {
        Ok(h) => h.iter().position(|c| {
            c.trim()
                .trim_start_matches('\u{feff}')
                .eq_ignore_ascii_case("AuditData")
        }),
        Err(e) => {
            bad.push(format!("{name}:1: unreadable CSV header: {e}"));
            return out;
        }
    };
    let Some(col) = col else {
        bad.push(format!(
            "{name}:1: not a JSON array, JSON lines or a Purview CSV with an AuditData column"
        ));
        return out;
    };
    for rec in rdr.records() {
        match rec {
            Ok(r) => {
                let line = r.position().map(|p| p.line() as usize).unwrap_or(0);
                match r.get(col) {
                    Some(raw) if !raw.trim().is_empty() => out.push((line, raw.trim().to_string())),
                    _ => bad.push(format!("{name}:{line}: empty AuditData")),
                }
            }
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                bad.push(format!("{name}:{line}: unreadable CSV row: {e}"));
            }
        }
    }
    out
}

/// Imports one file into an open store.
pub fn import_file(store: &Store, path: &Path) -> Result<FileReport> {
    let name = path.display().to_string();
    let text = read_text(path)?;
    let (format, good, bad) = parse_file(&name, &text);
    let mut report = FileReport {
        file: name,
        format,
        bad,
        ..Default::default()
    };
    for chunk in good.chunks(BATCH) {
        let raws: Vec<String> = chunk.iter().map(|(_, r)| r.to_string()).collect();
        let o: IngestOutcome = store.import_records(DEFAULT_TENANT, raws).wait()?;
        report.records += o.records;
        report.new += o.new;
        report.duplicates += o.duplicates;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"{"Id":"a","CreationTime":"2026-11-20T10:00:00","Operation":"X"}"#;
    const B: &str = r#"{"Id":"b","CreationTime":"2026-11-20T10:00:00","Operation":"Y"}"#;

    #[test]
    fn jsonl_reports_bad_lines_with_their_number_and_keeps_the_rest() {
        let text = format!("{A}\n\nnot json\n{{\"CreationTime\":\"2026-11-20\"}}\n{B}\n");
        let (fmt, good, bad) = parse_file("f.jsonl", &text);
        assert_eq!(fmt, "jsonl");
        assert_eq!(good.iter().map(|g| g.0).collect::<Vec<_>>(), vec![1, 5]);
        assert_eq!(bad.len(), 2);
        assert!(bad[0].starts_with("f.jsonl:3: not JSON"), "{bad:?}");
        assert!(
            bad[1].starts_with("f.jsonl:4: record has no string \"Id\""),
            "{bad:?}"
        );
    }

    #[test]
    fn json_array_elements_keep_their_exact_text_and_line() {
        let text = format!("[\n  {A},\n  {{\"Id\": 5}},\n  {B}\n]");
        let (fmt, good, bad) = parse_file("f.json", &text);
        assert_eq!(fmt, "json");
        assert_eq!(good, vec![(2, A.into()), (4, B.into())]);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].starts_with("f.json:3:"));
        let (_, good, bad) = parse_file("g.json", "[ {\"Id\": \"x\" ");
        assert!(good.is_empty());
        assert!(bad[0].starts_with("g.json:1:"), "{bad:?}");
    }

    #[test]
    fn purview_csv_takes_the_audit_data_column() {
        let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let text = format!(
            "\u{feff}CreationDate,UserIds,Operations,AuditData\n2026-11-20T10:00:00,u,X,{}\n2026-11-20T10:00:00,u,Y,{}\n2026-11-20,u,Z,{}\n",
            q(A),
            q("{broken"),
            q(B)
        );
        let (fmt, good, bad) = parse_file("f.csv", text.trim_start_matches('\u{feff}'));
        assert_eq!(fmt, "csv");
        assert_eq!(
            good.iter().map(|g| g.1.as_ref()).collect::<Vec<&str>>(),
            vec![A, B]
        );
        assert_eq!(bad.len(), 1);
        assert!(bad[0].starts_with("f.csv:3: not JSON"), "{bad:?}");
        let (_, good, bad) = parse_file("n.csv", "a,b\n1,2\n");
        assert!(good.is_empty());
        assert!(bad[0].contains("AuditData"));
    }

    #[test]
    fn gzip_is_recognised_by_its_magic_bytes() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.jsonl.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(format!("{A}\n{B}\n").as_bytes()).unwrap();
        std::fs::write(&p, enc.finish().unwrap()).unwrap();
        let store = Store::open(
            &dir.path().join("data"),
            std::sync::Arc::new(crate::detect::Detections::empty()),
        )
        .unwrap();
        let r = import_file(&store, &p).unwrap();
        assert_eq!((r.format, r.records, r.new), ("jsonl", 2, 2));
        let r = import_file(&store, &p).unwrap();
        assert_eq!((r.new, r.duplicates), (0, 2));
        assert_eq!(store.record_by_id("a").unwrap().unwrap().raw, A);
    }

    /// Property: the import line parser never panics on any text; every record it keeps is
    /// one `check` accepts; and records written as JSON lines, a JSON array or a Purview CSV
    /// (with bad lines between them, for JSON lines) come back each once, in order, as they
    /// were, with one bad-line message per bad line. `PROPTEST_CASES` sets the number of
    /// cases.
    mod proptest_import {
        use super::*;
        use proptest::prelude::*;
        use serde_json::json;

        fn record() -> impl Strategy<Value = Value> {
            (
                "[a-z0-9-]{1,12}",
                any::<String>(),
                "[A-Za-z]{1,12}",
                prop::option::of(any::<i64>()),
            )
                .prop_map(|(id, user, op, n)| {
                    let mut r = json!({"Id": id, "CreationTime": "2026-05-04T09:14:22",
                        "Operation": op, "Workload": "Exchange", "RecordType": 2, "UserId": user});
                    if let Some(n) = n {
                        r["N"] = json!(n);
                    }
                    r
                })
        }

        fn parsed(text: &str) -> (&'static str, Vec<Value>, usize) {
            let (format, good, bad) = parse_file("f", text);
            let good = good
                .iter()
                .map(|(_, raw)| serde_json::from_str(raw).unwrap())
                .collect();
            (format, good, bad.len())
        }

        proptest! {
            #[test]
            fn any_text_is_parsed_without_panic(text in any::<String>()) {
                let (_, good, _) = parse_file("f", &text);
                for (_, raw) in good {
                    prop_assert!(check(&raw).is_ok());
                }
            }

            #[test]
            fn any_json_text_is_parsed_without_panic(text in "[\\[\\]{}\",:\n a-zA-Z0-9IdCreationTime]{0,200}") {
                let (_, good, _) = parse_file("f", &text);
                for (_, raw) in good {
                    prop_assert!(check(&raw).is_ok());
                }
            }

            #[test]
            fn records_come_back_in_every_format(
                records in prop::collection::vec(record(), 1..8),
                garbage in prop::collection::vec(prop::bool::ANY, 1..8),
            ) {
                // JSON lines with bad lines between the records
                let mut text = String::new();
                let mut bad_lines = 0;
                for (r, g) in records.iter().zip(garbage.iter().cycle()) {
                    text.push_str(&r.to_string());
                    text.push('\n');
                    if *g {
                        text.push_str("{not json\n");
                        bad_lines += 1;
                    }
                }
                prop_assert_eq!(parsed(&text), ("jsonl", records.clone(), bad_lines));
                // a JSON array
                let text = serde_json::to_string_pretty(&records).unwrap();
                prop_assert_eq!(parsed(&text), ("json", records.clone(), 0));
                // a Purview CSV
                let mut w = csv::Writer::from_writer(Vec::new());
                w.write_record(["CreationDate", "UserIds", "Operations", "AuditData"]).unwrap();
                for r in &records {
                    w.write_record(["2026-05-04T09:14:22", "u", "op", &r.to_string()]).unwrap();
                }
                let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
                prop_assert_eq!(parsed(&text), ("csv", records.clone(), 0));
            }
        }
    }
}
