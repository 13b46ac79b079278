//! Offline import of audit exports into the store: a JSON array of records, JSON lines,
//! or the Purview / `Search-UnifiedAuditLog` CSV (the raw record is its `AuditData`
//! column), each optionally gzipped (recognised by its magic bytes, whatever its name).
//! Must not talk to Microsoft, and never writes to its input files.
//!
//! Streaming: the file is read once, split into records by [`read`], and handed to the
//! store in bounded batches with a bounded number in flight, so memory does not grow with
//! the file. Damage stays local: a record that is not UTF-8, not JSON or has no `Id` /
//! `CreationTime` is reported as `file:line: why` and skipped; a stream that fails (a
//! truncated gzip, a read error) keeps every record before the failure and says where it
//! stopped. A gzip whose data fails its checksum may have altered any record before that
//! point: gzip files are decoded whole once first, and nothing of a corrupt one is stored. Records are deduplicated like collected ones (tenant = the record's
//! `OrganizationId`, else [`DEFAULT_TENANT`]), so importing a file twice, or an export
//! overlapping another, adds nothing. Each file read is one row of the store's evidence
//! ledger (name, size, SHA-256, counts); a file in none of the formats is a row of format
//! `unknown` with nothing read and the reason as its damage.
//!
//! The input is opened once and read front to back once: its size and SHA-256 are taken
//! from the bytes as they stream past (what a damaged stream left unread is read through
//! the same descriptor afterwards), so a pipe or a FIFO imports like a file. The whole-file
//! check of a gzip reads a regular file by position, without moving that descriptor; a
//! gzip that is not a regular file cannot be read twice and is refused before anything of
//! it is stored.

pub mod progress;
pub mod read;

use crate::model::terminal_safe;
use crate::store::{ImportRow, IngestOutcome, Reply, Store};
use anyhow::{Context, Result};
use sha2::Digest;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

pub use progress::Progress;

/// Tenant of records without an OrganizationId.
pub const DEFAULT_TENANT: &str = "import";
/// Records per batch handed to the store (one preparer job, one unit of work).
const BATCH: usize = 2000;
/// Raw bytes per batch at most (a few huge records make a small batch).
const BATCH_BYTES: usize = 8 << 20;
/// Batches queued in the store at once: enough to keep both preparers and the writer
/// busy, few enough that memory stays bounded.
const IN_FLIGHT: usize = 4;
/// Bad places kept per file for the summary (all are counted).
const KEPT_BAD: usize = 20;
const READ_BUF: usize = 256 << 10;

/// What importing one file did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct FileReport {
    pub file: String,
    pub format: &'static str,
    /// Bytes of the file (compressed, for a gzip) and their SHA-256.
    pub size: u64,
    pub sha256: String,
    /// Records read: stored + duplicates + bad.
    pub records: u64,
    pub new: u64,
    pub duplicates: u64,
    /// Bad records and places; the first [`KEPT_BAD`] of them as `file:line: why`.
    pub bad: u64,
    pub bad_lines: Vec<String>,
    /// `file:line: what` when the file could not be read to its end.
    pub damage: Option<String>,
    pub seconds: f64,
}

impl FileReport {
    /// Whether anything of the file was not stored (bad records or damage).
    pub fn is_clean(&self) -> bool {
        self.bad == 0 && self.damage.is_none()
    }
}

/// Reads the file and counts and hashes the bytes that went through (the progress and
/// the evidence ledger see the file as given, before gunzipping).
struct Counted<R> {
    inner: R,
    seen: Rc<RefCell<(u64, sha2::Sha256)>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut s = self.seen.borrow_mut();
        s.0 += n as u64;
        s.1.update(&buf[..n]);
        Ok(n)
    }
}

/// Reads a file from its start by position (`pread`), so the descriptor the import
/// streams through keeps its offset.
struct ReadAt<'a> {
    file: &'a std::fs::File,
    pos: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// One batch on its way through the store: its records' lines for the bad ones.
struct InFlight {
    reply: Reply<IngestOutcome>,
    lines: Vec<u64>,
}

struct Importer<'a> {
    store: &'a Store,
    name: String,
    report: FileReport,
    raws: Vec<String>,
    lines: Vec<u64>,
    bytes: usize,
    queue: VecDeque<InFlight>,
    progress: &'a mut Progress,
}

impl Importer<'_> {
    fn bad(&mut self, line: u64, why: &str) {
        self.report.bad += 1;
        let msg = format!(
            "{}:{line}: {}",
            terminal_safe(&self.name),
            terminal_safe(why)
        );
        self.progress.bad_line(&msg);
        if self.report.bad_lines.len() < KEPT_BAD {
            self.report.bad_lines.push(msg);
        }
    }

    fn record(&mut self, line: u64, raw: String) -> Result<()> {
        self.report.records += 1;
        self.bytes += raw.len();
        self.raws.push(raw);
        self.lines.push(line);
        if self.raws.len() >= BATCH || self.bytes >= BATCH_BYTES {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> Result<()> {
        if self.raws.is_empty() {
            return Ok(());
        }
        let raws = std::mem::take(&mut self.raws);
        let lines = std::mem::take(&mut self.lines);
        self.bytes = 0;
        let reply = self.store.import_records(DEFAULT_TENANT, raws);
        self.queue.push_back(InFlight { reply, lines });
        while self.queue.len() > IN_FLIGHT {
            self.settle_one()?;
        }
        Ok(())
    }

    fn settle_one(&mut self) -> Result<()> {
        let Some(b) = self.queue.pop_front() else {
            return Ok(());
        };
        let o = b.reply.wait()?;
        self.report.new += o.new as u64;
        self.report.duplicates += o.duplicates as u64;
        for (i, why) in &o.bad_at {
            let line = b.lines.get(*i).copied().unwrap_or(0);
            self.bad(line, why);
        }
        self.progress.stored(o.records as u64);
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.send()?;
        while !self.queue.is_empty() {
            self.settle_one()?;
        }
        Ok(())
    }
}

/// The decoded text of a gzip stream (every member of a concatenated one); a damaged or
/// truncated stream is a read error where it stops, which the splitter reports.
fn gunzip<R: BufRead>(raw: R) -> BufReader<flate2::bufread::MultiGzDecoder<R>> {
    BufReader::with_capacity(READ_BUF, flate2::bufread::MultiGzDecoder::new(raw))
}

/// Decodes a whole gzip file to nothing: how much text came out before its data proved
/// corrupt (a checksum that does not match, an invalid deflate block), if it did. A stream
/// that just ends early (a cut download) is not corrupt: what came before it is intact.
fn gzip_corruption(raw: impl BufRead) -> Option<(u64, String)> {
    let mut dec = flate2::bufread::MultiGzDecoder::new(raw);
    let mut buf = vec![0u8; READ_BUF];
    let mut total = 0u64;
    loop {
        match dec.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                let why = e.to_string();
                let corrupt = e.kind() != std::io::ErrorKind::UnexpectedEof
                    && (why.contains("checksum")
                        || why.contains("corrupt")
                        || why.contains("invalid"))
                    && !why.contains("header");
                return corrupt.then_some((total, why));
            }
        }
    }
}

/// Imports one file into an open store (and records it in the evidence ledger). Every
/// error names the file.
pub fn import_file(store: &Store, path: &Path, progress: &mut Progress) -> Result<FileReport> {
    let start = Instant::now();
    let started_at = chrono::Utc::now();
    let name = path.display().to_string();
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {name}"))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {name}"))?;
    // A second descriptor on the same open file (same offset): what the splitter left
    // unread is hashed through it, with no reopen (a FIFO would wait for a new writer).
    let mut rest = file
        .try_clone()
        .with_context(|| format!("cannot read {name}"))?;
    // a pipe has no size: the progress shows the bytes read without a share
    progress.start_file(&name, meta.len());
    let progress = &mut *progress;
    let seen = Rc::new(RefCell::new((0u64, sha2::Sha256::new())));
    let mut raw = BufReader::with_capacity(
        READ_BUF,
        Counted {
            inner: file,
            seen: seen.clone(),
        },
    );
    let gzip = raw
        .fill_buf()
        .with_context(|| format!("cannot read {name}"))?
        .starts_with(&[0x1f, 0x8b]);
    // A corrupt gzip is only known for one when its checksum is read, after the records
    // it altered: such a file is checked whole first, and nothing of it is stored.
    let corrupt = if !gzip {
        None
    } else if meta.is_file() {
        gzip_corruption(BufReader::with_capacity(
            READ_BUF,
            ReadAt {
                file: &rest,
                pos: 0,
            },
        ))
    } else {
        anyhow::bail!(
            "{}: a gzip that is not a regular file (a pipe, a FIFO) cannot be checked whole \
             before its records are stored; save it to a file and import that",
            terminal_safe(&name)
        );
    };
    let mut input: Box<dyn BufRead> = if corrupt.is_some() {
        Box::new(std::io::empty())
    } else if gzip {
        Box::new(gunzip(raw))
    } else {
        Box::new(raw)
    };
    let mut imp = Importer {
        store,
        name: name.clone(),
        report: FileReport {
            file: name.clone(),
            ..Default::default()
        },
        raws: Vec::with_capacity(BATCH),
        lines: Vec::with_capacity(BATCH),
        bytes: 0,
        queue: VecDeque::new(),
        progress,
    };
    let mut last_tick = Instant::now();
    let end = read::split(&mut *input, &mut |item| {
        match item {
            read::Item::Record { line, raw } => imp.record(line, raw)?,
            read::Item::Bad { line, why } => {
                imp.report.records += 1;
                imp.bad(line, &why)
            }
        }
        if last_tick.elapsed().as_millis() >= 200 {
            last_tick = Instant::now();
            let done = seen.borrow().0;
            imp.progress.tick(done);
        }
        Ok(())
    });
    drop(input);
    let end = end.with_context(|| format!("importing {name}"))?;
    imp.finish().with_context(|| format!("importing {name}"))?;
    imp.progress.finish_file();
    let mut report = imp.report;
    report.format = end.format;
    let safe = terminal_safe(&name);
    if let Some((at, why)) = corrupt {
        report.format = "unknown";
        report.damage = Some(format!(
            "{safe}: the gzip stream is corrupt ({}) after {at} bytes of text: it may have altered \
             any record before that point, so nothing of this file is stored; import an intact copy",
            terminal_safe(&why)
        ));
    } else if let Some(d) = end.damage {
        let at = terminal_safe(d.text());
        report.damage = Some(match d {
            read::Damage::Stopped(_) => {
                let what = if gzip {
                    "the gzip stream is damaged or truncated"
                } else {
                    "the file could not be read to its end"
                };
                format!(
                    "{safe}:{at}; {what}: every record before it is stored, nothing after it was read"
                )
            }
            read::Damage::Unknown(_) => format!("{safe}:{at}; nothing of this file was read"),
            read::Damage::Trailing(_) => {
                format!("{safe}:{at}; the records of the array are read, the text after it is not")
            }
        });
    }
    // the bytes the splitter left unread, for the hash of the whole file
    let mut hashed = Counted {
        inner: &mut rest,
        seen: seen.clone(),
    };
    std::io::copy(&mut hashed, &mut std::io::sink())
        .with_context(|| format!("cannot read {name} to its end"))?;
    let (size, hasher) = {
        let s = seen.borrow();
        (s.0, s.1.clone())
    };
    report.size = size;
    report.sha256 = format!("{:x}", hasher.finalize());
    report.seconds = start.elapsed().as_secs_f64();
    store
        .record_import(ImportRow {
            file: name.clone(),
            size,
            sha256: report.sha256.clone(),
            format: report.format.to_string(),
            records: report.records,
            stored: report.new,
            duplicates: report.duplicates,
            bad: report.bad,
            damage: report.damage.clone(),
            started_at,
            seconds: report.seconds,
        })
        .wait()
        .with_context(|| format!("recording {name} in the evidence ledger"))?;
    Ok(report)
}

/// The one-line summary of a file.
pub fn summary_line(r: &FileReport) -> String {
    let mut s = format!(
        "{}: {} {} records read, {} stored, {} duplicates, {} bad, {:.1} s",
        terminal_safe(&r.file),
        r.records,
        r.format,
        r.new,
        r.duplicates,
        r.bad,
        r.seconds
    );
    if let Some(d) = &r.damage {
        s.push_str("\n  DAMAGED: ");
        s.push_str(&terminal_safe(d));
    }
    for b in r.bad_lines.iter().take(5) {
        s.push_str("\n  bad: ");
        s.push_str(&terminal_safe(b));
    }
    if r.bad > 5 {
        s.push_str(&format!("\n  … and {} more bad (listed above)", r.bad - 5));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const A: &str = r#"{"Id":"a","CreationTime":"2026-11-20T10:00:00","Operation":"X"}"#;
    const B: &str = r#"{"Id":"b","CreationTime":"2026-11-20T10:00:00","Operation":"Y"}"#;

    fn store(dir: &Path) -> Store {
        Store::open(
            &dir.join("data"),
            std::sync::Arc::new(crate::detect::Detections::empty()),
        )
        .unwrap()
    }

    #[test]
    fn gzip_is_recognised_by_its_magic_bytes_and_recorded_in_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.bin");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(format!("{A}\n{B}\n").as_bytes()).unwrap();
        let bytes = enc.finish().unwrap();
        std::fs::write(&p, &bytes).unwrap();
        let s = store(dir.path());
        let mut pr = Progress::quiet();
        let r = import_file(&s, &p, &mut pr).unwrap();
        assert_eq!((r.format, r.records, r.new), ("jsonl", 2, 2));
        assert!(r.is_clean());
        let r = import_file(&s, &p, &mut pr).unwrap();
        assert_eq!((r.new, r.duplicates), (0, 2));
        assert_eq!(s.record_by_id("a").unwrap().unwrap().raw, A);
        let ledger = s.imports().unwrap();
        assert_eq!(ledger.len(), 2);
        assert_eq!(
            ledger[0].sha256,
            format!("{:x}", sha2::Sha256::digest(&bytes))
        );
        assert_eq!(ledger[0].size, bytes.len() as u64);
        assert_eq!((ledger[0].stored, ledger[1].duplicates), (2, 2));
    }

    #[test]
    fn a_truncated_gzip_keeps_what_came_before_and_says_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.jsonl.gz");
        let mut text = String::new();
        for i in 0..5000 {
            text.push_str(&A.replace("\"a\"", &format!("\"r{i}\"")));
            text.push('\n');
        }
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).unwrap();
        let bytes = enc.finish().unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let s = store(dir.path());
        let r = import_file(&s, &p, &mut Progress::quiet()).unwrap();
        assert!(r.new > 100 && r.new < 5000, "{r:?}");
        assert_eq!(r.bad, 0, "{r:?}");
        let d = r.damage.unwrap();
        assert!(
            d.starts_with(&format!("{}:{}: reading stopped", p.display(), r.new + 1)),
            "{d}"
        );
        assert!(d.contains("gzip stream is damaged or truncated"), "{d}");
    }

    #[test]
    fn imported_records_are_queued_for_devo_when_forwarding_is_on() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.jsonl");
        std::fs::write(&p, format!("{A}\n{B}\n")).unwrap();
        let s = store(dir.path());
        s.set_forwarding(true).wait().unwrap();
        let r = import_file(&s, &p, &mut Progress::quiet()).unwrap();
        assert_eq!(r.new, 2);
        s.flush().wait().unwrap();
        assert_eq!(s.outbox_depth().unwrap(), 2);
        // a duplicate is not queued again
        import_file(&s, &p, &mut Progress::quiet()).unwrap();
        s.flush().wait().unwrap();
        assert_eq!(s.outbox_depth().unwrap(), 2);
    }

    #[test]
    fn bad_records_found_by_the_store_are_reported_at_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.jsonl");
        std::fs::write(
            &p,
            format!("{A}\n\nnot json\n{{\"CreationTime\":\"2026-11-20\"}}\n{B}\n"),
        )
        .unwrap();
        let s = store(dir.path());
        let r = import_file(&s, &p, &mut Progress::quiet()).unwrap();
        assert_eq!((r.records, r.new, r.bad), (4, 2, 2));
        assert!(
            r.bad_lines[0].starts_with(&format!("{}:3: record is not valid JSON", p.display())),
            "{r:?}"
        );
        assert!(
            r.bad_lines[1].starts_with(&format!("{}:4: record has no string \"Id\"", p.display())),
            "{r:?}"
        );
    }

    /// Imports `bytes` written into a pipe by another thread, through its `/dev/fd` path.
    fn import_pipe(s: &Store, bytes: Vec<u8>) -> (Result<FileReport>, String) {
        use std::os::fd::AsRawFd;
        let (r, mut w) = std::io::pipe().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = w.write_all(&bytes);
        });
        let path = format!("/dev/fd/{}", r.as_raw_fd());
        let got = import_file(s, Path::new(&path), &mut Progress::quiet());
        drop(r);
        writer.join().unwrap();
        (got, path)
    }

    #[test]
    fn a_pipe_is_read_once_and_ledgered_with_its_size_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let text = format!("{A}\n{B}\n").into_bytes();
        let (r, path) = import_pipe(&s, text.clone());
        let r = r.unwrap();
        assert_eq!((r.format, r.records, r.new), ("jsonl", 2, 2), "{r:?}");
        let ledger = s.imports().unwrap();
        assert_eq!(ledger.len(), 1);
        assert_eq!(ledger[0].file, path);
        assert_eq!(ledger[0].size, text.len() as u64);
        assert_eq!(
            ledger[0].sha256,
            format!("{:x}", sha2::Sha256::digest(&text))
        );
        // a gzip cannot be checked whole before storing: refused, naming it, nothing stored
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"{\"Id\":\"z\",\"CreationTime\":\"2026-11-20T10:00:00\"}\n")
            .unwrap();
        let (r, path) = import_pipe(&s, enc.finish().unwrap());
        let e = format!("{:#}", r.unwrap_err());
        assert!(
            e.starts_with(&format!("{path}: a gzip that is not a regular file")),
            "{e}"
        );
        assert!(s.record_by_id("z").unwrap().is_none());
    }

    #[test]
    fn a_damaged_stream_is_hashed_whole_and_its_size_is_the_file_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        let text = format!("[{A},\n{B}]\ntrailing text\n{}", "x".repeat(1 << 20));
        std::fs::write(&p, &text).unwrap();
        let s = store(dir.path());
        let r = import_file(&s, &p, &mut Progress::quiet()).unwrap();
        assert_eq!((r.records, r.new, r.bad), (2, 2, 0), "{r:?}");
        assert_eq!(
            r.damage.as_deref(),
            Some(
                format!(
                    "{}:3: text after the end of the JSON array; the records of the array \
                     are read, the text after it is not",
                    p.display()
                )
                .as_str()
            )
        );
        assert_eq!(r.size, text.len() as u64);
        assert_eq!(r.sha256, format!("{:x}", sha2::Sha256::digest(&text)));
    }

    #[test]
    fn a_file_in_no_known_format_is_ledgered_as_unknown_with_nothing_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("z.zip");
        std::fs::write(&p, b"PK\x03\x04junk").unwrap();
        let s = store(dir.path());
        let r = import_file(&s, &p, &mut Progress::quiet()).unwrap();
        assert_eq!((r.format, r.records, r.bad), ("unknown", 0, 0), "{r:?}");
        let d = r.damage.unwrap();
        assert!(
            d.starts_with(&format!("{}:1: not a JSON array", p.display())),
            "{d}"
        );
        assert!(d.ends_with("; nothing of this file was read"), "{d}");
        let ledger = s.imports().unwrap();
        assert_eq!(
            (ledger[0].format.as_str(), ledger[0].records),
            ("unknown", 0)
        );
        assert_eq!(ledger[0].damage.as_deref(), Some(d.as_str()));
    }

    #[test]
    fn json_lines_with_a_damaged_first_line_store_every_other_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.jsonl");
        let mut text = format!("{}\n", &A[..20]);
        for i in 0..64 {
            text.push_str(&A.replace("\"a\"", &format!("\"r{i}\"")));
            text.push('\n');
        }
        std::fs::write(&p, &text).unwrap();
        let s = store(dir.path());
        let r = import_file(&s, &p, &mut Progress::quiet()).unwrap();
        assert_eq!(
            (r.format, r.records, r.new, r.bad),
            ("jsonl", 65, 64, 1),
            "{r:?}"
        );
        assert!(r.damage.is_none(), "{r:?}");
        assert!(
            r.bad_lines[0].starts_with(&format!("{}:1: record is not valid JSON", p.display())),
            "{r:?}"
        );
    }

    /// Property: a gzip stream cut anywhere or with any byte changed never panics the
    /// import; the records handed on are the stream's first ones, each whole, and a stream
    /// that does not end cleanly is reported with the line where reading stopped. The seed
    /// corpus `tests/corpus/gzip/` (`clean_*` end cleanly, `damaged_*` do not,
    /// `damaged_corrupt_*` fail their checksum: nothing of them is stored) runs first.
    /// `PROPTEST_CASES` sets the number of generated cases.
    mod proptest_gzip {
        use super::*;
        use proptest::prelude::*;

        fn gz(members: &[&[u8]]) -> Vec<u8> {
            let mut out = Vec::new();
            for m in members {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(m).unwrap();
                out.extend(enc.finish().unwrap());
            }
            out
        }

        /// The records and the damage the splitter reports for a gzip stream.
        fn decode(bytes: &[u8]) -> (Vec<String>, Option<String>) {
            let (recs, damage, _) = decode_all(bytes);
            (recs, damage)
        }

        /// The same and the number of bad places.
        fn decode_all(bytes: &[u8]) -> (Vec<String>, Option<String>, usize) {
            let mut recs = Vec::new();
            let mut bad = 0;
            let end = read::split(&mut gunzip(bytes), &mut |i| {
                match i {
                    read::Item::Record { raw, .. } => recs.push(raw),
                    read::Item::Bad { .. } => bad += 1,
                }
                Ok(())
            })
            .unwrap();
            (recs, end.damage.map(|d| d.text().to_string()), bad)
        }

        fn damage_names_a_line(d: &str) -> bool {
            d.split_once(':')
                .is_some_and(|(n, _)| n.parse::<u64>().is_ok_and(|n| n >= 1))
        }

        fn lines(n: usize, seed: u32) -> Vec<String> {
            (0..n)
                .map(|i| {
                    format!(
                        r#"{{"Id":"r{seed}-{i}","CreationTime":"2026-11-20T10:00:00","N":"{}"}}"#,
                        "x".repeat(i % 97)
                    )
                })
                .collect()
        }

        #[test]
        fn the_gzip_corpus_holds() {
            let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/gzip");
            let mut n = 0;
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                let (recs, damage) = decode(&std::fs::read(&p).unwrap());
                if name.starts_with("clean_") {
                    assert!(damage.is_none(), "{name}: {damage:?}");
                    assert!(!recs.is_empty(), "{name}");
                } else {
                    let d = damage.unwrap_or_else(|| panic!("{name}: no damage reported"));
                    assert!(damage_names_a_line(&d), "{name}: {d}");
                }
                // and through the whole import, into a store and its ledger
                let dir = tempfile::tempdir().unwrap();
                let s = store(dir.path());
                let r = import_file(&s, &p, &mut Progress::quiet()).unwrap();
                if !name.starts_with("damaged_corrupt") {
                    assert_eq!(r.records as usize, recs.len(), "{name}");
                }
                assert_eq!(
                    r.damage.is_some(),
                    !name.starts_with("clean_"),
                    "{name}: {r:?}"
                );
                if name.starts_with("clean_") {
                    assert_eq!(r.new as usize, recs.len(), "{name}");
                }
                // a corrupt stream may have altered what it decoded before its checksum
                // failed: nothing of it is stored
                if name.starts_with("damaged_corrupt") {
                    assert_eq!((r.format, r.records, r.new), ("unknown", 0, 0), "{name}");
                    assert!(
                        r.damage
                            .as_deref()
                            .unwrap()
                            .contains("nothing of this file is stored"),
                        "{r:?}"
                    );
                }
                n += 1;
            }
            assert!(n >= 3, "the corpus is in {}", d.display());
        }

        proptest! {
            #[test]
            fn a_cut_stream_keeps_every_whole_record_before_the_cut(
                n in 1usize..400,
                members in 1usize..4,
                cut in any::<prop::sample::Index>(),
            ) {
                let recs = lines(n, 1);
                let text: Vec<String> = recs.iter().map(|r| format!("{r}\n")).collect();
                let per = text.len().div_ceil(members);
                let parts: Vec<Vec<u8>> = text.chunks(per).map(|c| c.concat().into_bytes()).collect();
                let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
                let full = gz(&refs);
                // a cut between members leaves a whole, shorter stream
                let ends: Vec<usize> = refs
                    .iter()
                    .scan(0, |end, m| {
                        *end += gz(&[m]).len();
                        Some(*end)
                    })
                    .collect();
                let at = cut.index(full.len());
                let (got, damage) = decode(&full[..at]);
                prop_assert!(got.len() <= recs.len());
                prop_assert_eq!(&got[..], &recs[..got.len()]);
                if at > 0 && !ends.contains(&at) {
                    let d = damage.expect("a cut stream is reported");
                    prop_assert!(damage_names_a_line(&d), "{}", d);
                }
                let (all, none) = decode(&full);
                prop_assert_eq!(all, recs);
                prop_assert_eq!(none, None);
            }

            #[test]
            fn a_changed_byte_never_panics_and_a_clean_end_means_every_record(
                n in 1usize..200,
                at in any::<prop::sample::Index>(),
                xor in 1u8..=255,
            ) {
                let recs = lines(n, 2);
                let text: String = recs.iter().map(|r| format!("{r}\n")).collect();
                let mut bytes = gz(&[text.as_bytes()]);
                let i = at.index(bytes.len());
                bytes[i] ^= xor;
                let (got, damage, bad) = decode_all(&bytes);
                // what the import keeps of it: nothing when its data proved corrupt
                if gzip_corruption(&bytes[..]).is_some() {
                    return Ok(());
                }
                match damage {
                    // the checksum held (the change was in a field it does not cover); a
                    // change that made it no gzip at all is damage (unknown, nothing read)
                    None => prop_assert!(got == recs, "{} bad", bad),
                    Some(d) => prop_assert!(damage_names_a_line(&d), "{}", d),
                }
            }

            #[test]
            fn any_bytes_after_the_gzip_magic_never_panic(rest in any::<Vec<u8>>()) {
                let mut bytes = vec![0x1f, 0x8b];
                bytes.extend(rest);
                let _ = decode(&bytes);
            }
        }
    }
}
