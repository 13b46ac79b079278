//! Splitting one decoded input stream into raw records, each with the line it starts
//! on, without holding more than one record (or CSV row) in memory: a JSON array (its
//! elements), JSON lines (or concatenated pretty-printed objects), and the Purview /
//! `Search-UnifiedAuditLog` CSV (its `AuditData` column).
//!
//! This module only splits and checks that a record is UTF-8 text: whether it is JSON with
//! an `Id` and a `CreationTime` is decided where it is parsed anyway (the store's
//! preparers). It never stops at a bad record; it stops at a failing stream (a truncated
//! gzip, a read error) and says where.
//!
//! The format is sniffed from the first lines: `[` is an array; `{` is JSON lines when the
//! first line is a whole object or the next line starts another one at its first column
//! (so a damaged first line is one bad line, not the start of a multi-line object that
//! swallows the records after it), else pretty-printed objects; anything else is a CSV
//! when its first line names an `AuditData` column, JSON lines after a header or comment
//! line when the next line starts with `{`, and otherwise unknown (nothing read, said as
//! damage). In JSON lines every non-blank line is one record, so records read add up to
//! the lines. Text after a JSON array's closing `]` is damage too: it is not read.

use anyhow::Result;
use std::io::{BufRead, Read};

/// What the splitter found at one place of the file.
pub enum Item {
    Record { line: u64, raw: String },
    Bad { line: u64, why: String },
}

/// How reading one stream ended.
pub struct ReadEnd {
    /// `json`, `jsonl`, `csv`, `empty` or `unknown`.
    pub format: &'static str,
    pub damage: Option<Damage>,
}

/// Why a stream was not read to its end, each as `line: what`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// The stream failed there (a truncated gzip, a read error); what came before was
    /// handed on.
    Stopped(String),
    /// The file is in none of the formats; nothing of it was handed on.
    Unknown(String),
    /// Text follows the JSON array's closing `]`; the array's records were handed on.
    Trailing(String),
}

impl ReadEnd {
    /// The end of a stream of `format` read line by line: to its end, or stopped at `damage`.
    fn lines(format: &'static str, damage: Option<String>) -> ReadEnd {
        ReadEnd {
            format,
            damage: damage.map(Damage::Stopped),
        }
    }
}

impl Damage {
    /// `line: what`.
    pub fn text(&self) -> &str {
        match self {
            Damage::Stopped(s) | Damage::Unknown(s) | Damage::Trailing(s) => s,
        }
    }
}

const UNKNOWN: &str = "not a JSON array, JSON lines or a Purview CSV with an AuditData column";

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Longest record accepted (a line, an array element, a CSV cell): longer ones are
/// reported and skipped so that one runaway line cannot take all memory.
pub const MAX_RECORD: usize = 64 << 20;

/// Reads `input` to its end (or its damage), handing every record and bad place to `on`.
/// An error of `on` (the store failed) stops reading and is returned.
pub fn split(input: &mut dyn BufRead, on: &mut dyn FnMut(Item) -> Result<()>) -> Result<ReadEnd> {
    let mut lines_before = 0u64;
    let first = match skip_blank(input, &mut lines_before) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return Ok(ReadEnd {
                format: "empty",
                damage: None,
            });
        }
        Err(e) => {
            return Ok(ReadEnd {
                format: "unknown",
                damage: Some(Damage::Stopped(format!(
                    "{}: reading stopped: {e}",
                    lines_before + 1
                ))),
            });
        }
    };
    match first {
        b'[' => {
            input.consume(1);
            let mut s = Splitter::new(true, lines_before + 1);
            s.run(input, on).map(|damage| ReadEnd {
                format: "json",
                damage,
            })
        }
        b'{' if !first_line_is_whole(input) && !next_line_starts_an_object(input) => {
            let mut s = Splitter::new(false, lines_before + 1);
            s.run(input, on).map(|damage| ReadEnd {
                format: "json",
                damage,
            })
        }
        b'{' => json_lines(input, lines_before, on).map(|d| ReadEnd::lines("jsonl", d)),
        _ if !first_line_names_audit_data(input) && next_line_starts_an_object(input) => {
            json_lines(input, lines_before, on).map(|d| ReadEnd::lines("jsonl", d))
        }
        _ => csv_rows(input, lines_before, on),
    }
}

/// Consumes a BOM and leading whitespace (counting the lines it passes); the first
/// significant byte, left in the buffer.
fn skip_blank(input: &mut dyn BufRead, lines: &mut u64) -> std::io::Result<Option<u8>> {
    let mut at_start = true;
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(None);
        }
        if at_start {
            at_start = false;
            if buf.starts_with(BOM) {
                input.consume(BOM.len());
                continue;
            }
        }
        let n = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
        *lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        if n < buf.len() {
            let b = buf[n];
            input.consume(n);
            return Ok(Some(b));
        }
        let len = buf.len();
        input.consume(len);
    }
}

/// Whether the object the buffer starts with closes on its first line (JSON lines) rather
/// than spanning lines (pretty-printed objects, one after the other). A first line longer
/// than the buffer is taken for JSON lines.
fn first_line_is_whole(input: &mut dyn BufRead) -> bool {
    let Ok(buf) = input.fill_buf() else {
        return true;
    };
    let Some(end) = memchr::memchr(b'\n', buf) else {
        return true;
    };
    let mut s = Splitter::new(false, 1);
    for &b in &buf[..end] {
        if s.step(b) == Step::End {
            return true;
        }
    }
    false
}

/// Whether the line after the buffer's first one (blank lines skipped) starts with `{` at
/// its first column, as every line of JSON lines does and no line inside a pretty-printed
/// object does (those are indented or start with `}`). Only what the buffer holds is
/// looked at.
fn next_line_starts_an_object(input: &mut dyn BufRead) -> bool {
    let Ok(buf) = input.fill_buf() else {
        return false;
    };
    let Some(end) = memchr::memchr(b'\n', buf) else {
        return false;
    };
    buf[end + 1..]
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .find(|l| !l.trim_ascii().is_empty())
        .is_some_and(|l| l.starts_with(b"{"))
}

/// Whether the buffer's first line holds `AuditData` (a Purview CSV's header); a first line
/// longer than the buffer is given the benefit of the doubt.
fn first_line_names_audit_data(input: &mut dyn BufRead) -> bool {
    let Ok(buf) = input.fill_buf() else {
        return true;
    };
    let Some(end) = memchr::memchr(b'\n', buf) else {
        return true;
    };
    buf[..end]
        .windows(b"auditdata".len())
        .any(|w| w.eq_ignore_ascii_case(b"auditdata"))
}

fn to_text(raw: Vec<u8>, line: u64) -> Item {
    match String::from_utf8(raw) {
        Ok(raw) => Item::Record { line, raw },
        Err(e) => Item::Bad {
            line,
            why: format!(
                "not UTF-8 (invalid byte at offset {} of the record)",
                e.utf8_error().valid_up_to()
            ),
        },
    }
}

fn json_lines(
    input: &mut dyn BufRead,
    lines_before: u64,
    on: &mut dyn FnMut(Item) -> Result<()>,
) -> Result<Option<String>> {
    let mut line = lines_before;
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        match Read::take(&mut *input, MAX_RECORD as u64 + 1).read_until(b'\n', &mut buf) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Ok(Some(format!("{}: reading stopped: {e}", line + 1))),
        }
        line += 1;
        if buf.len() > MAX_RECORD && buf.last() != Some(&b'\n') {
            // skip the rest of the runaway line
            let mut rest = Vec::new();
            loop {
                rest.clear();
                match Read::take(&mut *input, 1 << 20).read_until(b'\n', &mut rest) {
                    Ok(0) => break,
                    Ok(_) if rest.last() == Some(&b'\n') => break,
                    Ok(_) => {}
                    Err(e) => return Ok(Some(format!("{line}: reading stopped: {e}"))),
                }
            }
            on(Item::Bad {
                line,
                why: format!("line longer than {} MiB", MAX_RECORD >> 20),
            })?;
            continue;
        }
        let t = buf.trim_ascii();
        if t.is_empty() {
            continue;
        }
        let raw = if t.len() == buf.len() {
            std::mem::take(&mut buf)
        } else {
            t.to_vec()
        };
        on(to_text(raw, line))?;
    }
}

#[derive(PartialEq, Eq)]
enum Step {
    Outside,
    Inside,
    /// The byte closed a record.
    End,
}

/// Finds the records of a JSON array or of concatenated JSON values by their brackets
/// and strings, one byte at a time, so the array is never held whole.
struct Splitter {
    array: bool,
    depth: u32,
    in_str: bool,
    esc: bool,
    /// A scalar element (not an object): skipped up to the next separator.
    scalar: bool,
    line: u64,
    start_line: u64,
    rec: Vec<u8>,
    too_long: bool,
    /// The array's closing `]` was seen.
    closed: bool,
}

impl Splitter {
    fn new(array: bool, line: u64) -> Splitter {
        Splitter {
            array,
            depth: 0,
            in_str: false,
            esc: false,
            scalar: false,
            line,
            start_line: line,
            rec: Vec::new(),
            too_long: false,
            closed: false,
        }
    }

    /// Advances over one byte (the record bytes themselves are kept by `run`).
    fn step(&mut self, b: u8) -> Step {
        if self.depth == 0 && !self.scalar {
            return match b {
                b'{' | b'[' => {
                    self.depth = 1;
                    Step::Inside
                }
                _ => Step::Outside,
            };
        }
        if self.scalar {
            return Step::Inside;
        }
        if self.in_str {
            if self.esc {
                self.esc = false;
            } else if b == b'\\' {
                self.esc = true;
            } else if b == b'"' {
                self.in_str = false;
            }
            return Step::Inside;
        }
        match b {
            b'"' => self.in_str = true,
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => {
                self.depth -= 1;
                if self.depth == 0 {
                    return Step::End;
                }
            }
            _ => {}
        }
        Step::Inside
    }

    fn emit(&mut self, on: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        let raw = std::mem::take(&mut self.rec);
        if self.too_long {
            self.too_long = false;
            return on(Item::Bad {
                line: self.start_line,
                why: format!("record longer than {} MiB", MAX_RECORD >> 20),
            });
        }
        on(to_text(raw, self.start_line))
    }

    fn run(
        &mut self,
        input: &mut dyn BufRead,
        on: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<Option<Damage>> {
        loop {
            let buf = match input.fill_buf() {
                Ok(b) => b,
                Err(e) => {
                    return Ok(Some(Damage::Stopped(format!(
                        "{}: reading stopped: {e}",
                        self.line
                    ))));
                }
            };
            if buf.is_empty() {
                break;
            }
            let len = buf.len();
            let mut i = 0;
            while i < len {
                let b = buf[i];
                i += 1;
                if self.closed {
                    // Whitespace after the array is its end; anything else is not read
                    // (it is no record of the array), and the file says so as damage.
                    if !b.is_ascii_whitespace() {
                        return Ok(Some(Damage::Trailing(format!(
                            "{}: text after the end of the JSON array",
                            self.line
                        ))));
                    }
                    if b == b'\n' {
                        self.line += 1;
                    }
                    continue;
                }
                if self.scalar {
                    if b == b',' || b == b']' || b.is_ascii_whitespace() {
                        self.scalar = false;
                        on(Item::Bad {
                            line: self.start_line,
                            why: "record is not a JSON object".into(),
                        })?;
                        if b == b']' && self.array {
                            self.closed = true;
                        }
                    }
                    if b == b'\n' {
                        self.line += 1;
                    }
                    continue;
                }
                let was_outside = self.depth == 0;
                match self.step(b) {
                    Step::Outside => {
                        match b {
                            b'\n' => self.line += 1,
                            b']' if self.array => self.closed = true,
                            b',' if self.array => {}
                            _ if b.is_ascii_whitespace() => {}
                            _ => {
                                self.scalar = true;
                                self.start_line = self.line;
                            }
                        }
                        continue;
                    }
                    Step::Inside | Step::End if was_outside => {
                        self.start_line = self.line;
                        self.rec.clear();
                    }
                    _ => {}
                }
                if b == b'\n' {
                    self.line += 1;
                }
                if self.rec.len() < MAX_RECORD {
                    self.rec.push(b);
                } else {
                    self.too_long = true;
                }
                if self.depth == 0 {
                    self.emit(on)?;
                }
            }
            input.consume(len);
        }
        if self.scalar {
            on(Item::Bad {
                line: self.start_line,
                why: "record is not a JSON object".into(),
            })?;
        }
        if self.depth > 0 {
            return Ok(Some(Damage::Stopped(format!(
                "{}: the file ends inside the record that starts here",
                self.start_line
            ))));
        }
        if self.array && !self.closed {
            return Ok(Some(Damage::Stopped(format!(
                "{}: the file ends before the JSON array is closed",
                self.line
            ))));
        }
        Ok(None)
    }
}

/// The csv crate's line numbers run one short after a CRLF (it counts the `\n` of a
/// `\r\n` when it starts the next record), so lines are counted here from the byte
/// offsets it reports: the line of offset `b` is one more than the `\n`s at or before `b`
/// (`b` itself is that `\n` after a CRLF). Only newlines csv has buffered but not yet
/// reported are kept.
struct LineIndex<R> {
    inner: R,
    pos: u64,
    st: std::rc::Rc<std::cell::RefCell<Newlines>>,
}

#[derive(Default)]
struct Newlines {
    ahead: std::collections::VecDeque<u64>,
    passed: u64,
}

impl Newlines {
    fn line_at(&mut self, byte: u64) -> u64 {
        while self.ahead.front().is_some_and(|&n| n <= byte) {
            self.ahead.pop_front();
            self.passed += 1;
        }
        self.passed + 1
    }
}

impl<R: Read> Read for LineIndex<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut st = self.st.borrow_mut();
        for i in memchr::memchr_iter(b'\n', &buf[..n]) {
            st.ahead.push_back(self.pos + i as u64);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

fn csv_rows(
    input: &mut dyn BufRead,
    lines_before: u64,
    on: &mut dyn FnMut(Item) -> Result<()>,
) -> Result<ReadEnd> {
    let newlines = std::rc::Rc::new(std::cell::RefCell::new(Newlines::default()));
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .buffer_capacity(1 << 16)
        .from_reader(LineIndex {
            inner: input,
            pos: 0,
            st: newlines.clone(),
        });
    let mut rec = csv::ByteRecord::new();
    let line_of = |p: Option<&csv::Position>| match p {
        Some(p) => newlines.borrow_mut().line_at(p.byte()) + lines_before,
        None => lines_before + 1,
    };
    let at = |rec: &csv::ByteRecord| line_of(rec.position());
    let io_damage = |e: &csv::Error, line: u64| match e.kind() {
        csv::ErrorKind::Io(io) => Some(format!("{line}: reading stopped: {io}")),
        _ => None,
    };
    let col = match rdr.read_byte_record(&mut rec) {
        Ok(true) => rec.iter().position(|c| {
            let c = c.strip_prefix(BOM).unwrap_or(c).trim_ascii();
            c.eq_ignore_ascii_case(b"AuditData")
        }),
        Ok(false) => None,
        Err(e) => {
            if let Some(d) = io_damage(&e, lines_before + 1) {
                return Ok(ReadEnd::lines("csv", Some(d)));
            }
            None
        }
    };
    let Some(col) = col else {
        return Ok(ReadEnd {
            format: "unknown",
            damage: Some(Damage::Unknown(format!("{}: {UNKNOWN}", lines_before + 1))),
        });
    };
    let mut last_line = lines_before + 1;
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(false) => return Ok(ReadEnd::lines("csv", None)),
            Ok(true) => {
                let line = at(&rec);
                last_line = line;
                match rec.get(col).map(|c| c.trim_ascii()) {
                    Some(c) if c.len() > MAX_RECORD => on(Item::Bad {
                        line,
                        why: format!("AuditData longer than {} MiB", MAX_RECORD >> 20),
                    })?,
                    Some(c) if !c.is_empty() => on(to_text(c.to_vec(), line))?,
                    _ => on(Item::Bad {
                        line,
                        why: "empty AuditData".into(),
                    })?,
                }
            }
            Err(e) => {
                let line = match e.position() {
                    Some(p) => line_of(Some(p)),
                    None => last_line + 1,
                };
                if let Some(d) = io_damage(&e, line) {
                    return Ok(ReadEnd::lines("csv", Some(d)));
                }
                on(Item::Bad {
                    line,
                    why: format!("unreadable CSV row: {e}"),
                })?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Found = Vec<(u64, String)>;

    fn items(text: &[u8]) -> (Found, Found, ReadEnd) {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        let end = split(&mut &text[..], &mut |i| {
            match i {
                Item::Record { line, raw } => good.push((line, raw)),
                Item::Bad { line, why } => bad.push((line, why)),
            }
            Ok(())
        })
        .unwrap();
        (good, bad, end)
    }

    #[test]
    fn json_lines_keep_line_numbers_through_crlf_blank_and_invalid_utf8_lines() {
        let (good, bad, end) =
            items(b"\xEF\xBB\xBF\r\n{\"a\":1}\r\n\r\n{\"b\":\xff}\r\nnot json\n{\"c\":\"x\\\"}\"}");
        assert_eq!(end.format, "jsonl");
        assert!(end.damage.is_none());
        assert_eq!(
            good,
            vec![
                (2, "{\"a\":1}".into()),
                (5, "not json".into()),
                (6, "{\"c\":\"x\\\"}\"}".into())
            ]
        );
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, 4);
        assert!(bad[0].1.starts_with("not UTF-8"), "{bad:?}");
    }

    #[test]
    fn json_array_elements_come_out_one_by_one_with_their_text_and_line() {
        let text = b"[\n  {\"a\": \"]}\\\"\"},\n  5,\n  {\"b\": [1,\n 2]}\n]\n";
        let (good, bad, end) = items(text);
        assert_eq!(end.format, "json");
        assert!(end.damage.is_none());
        assert_eq!(
            good,
            vec![
                (2, "{\"a\": \"]}\\\"\"}".into()),
                (4, "{\"b\": [1,\n 2]}".into())
            ]
        );
        assert_eq!(bad, vec![(3, "record is not a JSON object".into())]);
        let (good, _, end) = items(b"[{\"a\":1},{\"b\":");
        assert_eq!(good.len(), 1);
        assert!(
            end.damage
                .unwrap()
                .text()
                .starts_with("1: the file ends inside")
        );
    }

    #[test]
    fn pretty_printed_objects_one_after_the_other_are_records() {
        let (good, bad, end) = items(b"{\n \"a\": 1\n}\n{\n \"b\": 2\n}\n");
        assert_eq!(end.format, "json");
        assert!(bad.is_empty());
        assert_eq!(good.iter().map(|g| g.0).collect::<Vec<_>>(), vec![1, 4]);
    }

    #[test]
    fn purview_csv_reads_audit_data_with_quotes_newlines_crlf_and_bom() {
        let text = "\u{feff}CreationDate,UserIds,Operations,AuditData\r\n\
                    2026-11-20,u,X,\"{\"\"Id\"\":\"\"a\"\",\"\"T\"\":\"\"say \\\"\"hi\\\"\"\"\"}\"\r\n\
                    2026-11-20,u,Y,\"{\"\"Id\"\":\r\n\"\"b\"\"}\"\r\n\
                    2026-11-20,u,Z,\r\n\
                    2026-11-20,u,Z,\"{\"\"Id\"\":\"\"c\"\"}\"\r\n";
        let (good, bad, end) = items(text.as_bytes());
        assert_eq!(end.format, "csv");
        assert_eq!(
            good,
            vec![
                (2, r#"{"Id":"a","T":"say \"hi\""}"#.into()),
                (3, "{\"Id\":\r\n\"b\"}".into()),
                (6, r#"{"Id":"c"}"#.into())
            ]
        );
        assert_eq!(bad, vec![(5, "empty AuditData".into())]);
    }

    #[test]
    fn a_file_in_no_known_format_is_unknown_with_nothing_read() {
        let gz_in_gz = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        for text in [
            &b"a,b\n1,2\n"[..],
            b"PK\x03\x04junk",
            b"\xff\xfe{\x00\"\x00",
            b"null",
            &gz_in_gz,
        ] {
            let (good, bad, end) = items(text);
            assert!(good.is_empty() && bad.is_empty(), "{text:?}");
            assert_eq!(end.format, "unknown", "{text:?}");
            assert_eq!(
                end.damage,
                Some(Damage::Unknown(format!("1: {UNKNOWN}"))),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_damaged_first_line_of_json_lines_is_one_bad_line_and_the_rest_are_records() {
        let rec = |i: u32| format!("{{\"Id\":\"r{i}\",\"T\":\"a {{ b\"}}");
        let whole: String = (0..5).map(|i| rec(i) + "\n").collect();
        // cut inside a string, after a key, inside a string holding a brace
        for cut in [9, 14, 20] {
            let text = format!("{}\n{whole}", &rec(9)[..cut]);
            let (good, bad, end) = items(text.as_bytes());
            assert_eq!(end.format, "jsonl", "cut {cut}");
            assert!(end.damage.is_none(), "cut {cut}");
            assert!(bad.is_empty(), "cut {cut}: {bad:?}");
            // line 1 goes on as a record, which the store refuses as not JSON
            assert_eq!(good.len(), 6, "cut {cut}");
            assert_eq!(good[0], (1, rec(9)[..cut].trim_end().to_string()));
            for (i, g) in good[1..].iter().enumerate() {
                assert_eq!(*g, (i as u64 + 2, rec(i as u32)), "cut {cut}");
            }
        }
    }

    #[test]
    fn json_lines_after_a_header_line_are_read_and_the_header_is_a_bad_line() {
        let (good, bad, end) = items(b"# exported 2026-11-20\n{\"a\":1}\n{\"b\":2}\n");
        assert_eq!(end.format, "jsonl");
        assert!(bad.is_empty() && end.damage.is_none());
        assert_eq!(
            good,
            vec![
                (1, "# exported 2026-11-20".into()),
                (2, "{\"a\":1}".into()),
                (3, "{\"b\":2}".into())
            ]
        );
    }

    #[test]
    fn text_after_a_json_array_is_damage_not_a_record() {
        let (good, bad, end) = items(b"[{\"a\":1},\n{\"b\":2}]\ntrailing junk\n");
        assert_eq!(good.len(), 2);
        assert!(bad.is_empty());
        assert_eq!(end.format, "json");
        assert_eq!(
            end.damage,
            Some(Damage::Trailing(
                "3: text after the end of the JSON array".into()
            ))
        );
        let (_, _, end) = items(b"[{\"a\":1}]\n\n  \n");
        assert!(end.damage.is_none());
    }

    /// Property: the splitter never panics on any bytes or text; and records written as
    /// JSON lines, a JSON array or a Purview CSV (with bad lines between them, for JSON
    /// lines) come back each once, in order, as they were, with one bad place per bad line
    /// once the store's own check (`RecordHeader::scan`, what its preparers run) has seen
    /// them. `PROPTEST_CASES` sets the number of cases.
    mod proptest_import {
        use super::*;
        use crate::model::RecordHeader;
        use proptest::prelude::*;
        use serde_json::{Value, json};

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

        /// The format, the records the store would keep (as values) and the bad places:
        /// the splitter's own and the records the store's check refuses.
        fn parsed(text: &str) -> (&'static str, Vec<Value>, usize) {
            let (good, bad, end) = items(text.as_bytes());
            let mut kept = Vec::new();
            let mut refused = 0;
            for (_, raw) in good {
                if RecordHeader::scan(raw.as_bytes(), &mut String::new()).is_ok() {
                    kept.push(serde_json::from_str(&raw).unwrap());
                } else {
                    refused += 1;
                }
            }
            (end.format, kept, bad.len() + refused)
        }

        proptest! {
            #[test]
            fn any_bytes_are_split_without_panic(bytes in any::<Vec<u8>>()) {
                let _ = items(&bytes);
            }

            #[test]
            fn any_text_is_split_without_panic(text in any::<String>()) {
                let _ = parsed(&text);
            }

            #[test]
            fn any_json_text_is_split_without_panic(text in "[\\[\\]{}\",:\n a-zA-Z0-9IdCreationTime]{0,200}") {
                let _ = parsed(&text);
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
