//! What a long import shows while it runs: a redrawn bar on a terminal (records/s, bytes
//! done of the file, ETA), a plain line every few seconds otherwise (a log, a pipe), and
//! bad records as they are found, never hiding behind the bar.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Bad records printed per file while it is read (all are counted and summarised).
const SHOWN_BAD: u64 = 100;
/// A plain progress line this often when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

enum Mode {
    Quiet,
    Bar,
    Plain,
}

pub struct Progress {
    mode: Mode,
    /// Where the bar and lines go: stderr, or a buffer in tests.
    out: Box<dyn Write>,
    /// How often a plain line is written.
    every: Duration,
    file: String,
    total: u64,
    done: u64,
    records: u64,
    bad_shown: u64,
    started: Instant,
    last_plain: Instant,
    bar_drawn: bool,
}

impl Progress {
    /// Shows nothing (tests, the benchmark).
    pub fn quiet() -> Progress {
        Progress::new(Mode::Quiet)
    }

    /// A bar when stderr is a terminal, plain lines otherwise.
    pub fn stderr() -> Progress {
        Progress::new(if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Plain
        })
    }

    fn new(mode: Mode) -> Progress {
        Progress::to(mode, Box::new(std::io::stderr()), PLAIN_EVERY)
    }

    fn to(mode: Mode, out: Box<dyn Write>, every: Duration) -> Progress {
        Progress {
            mode,
            out,
            every,
            file: String::new(),
            total: 0,
            done: 0,
            records: 0,
            bad_shown: 0,
            started: Instant::now(),
            last_plain: Instant::now(),
            bar_drawn: false,
        }
    }

    pub fn start_file(&mut self, name: &str, total: u64) {
        self.file = crate::model::terminal_safe(name).into_owned();
        self.total = total;
        self.done = 0;
        self.records = 0;
        self.bad_shown = 0;
        self.started = Instant::now();
        self.last_plain = Instant::now();
    }

    /// Records the store has taken so far (stored, duplicate or bad).
    pub fn stored(&mut self, n: u64) {
        self.records += n;
    }

    /// Bytes of the file read so far.
    pub fn tick(&mut self, done: u64) {
        self.done = done;
        match self.mode {
            Mode::Quiet => {}
            Mode::Bar => {
                let line = self.line(true);
                let _ = write!(self.out, "\r\x1b[K{line}");
                let _ = self.out.flush();
                self.bar_drawn = true;
            }
            Mode::Plain => {
                if self.last_plain.elapsed() >= self.every {
                    self.last_plain = Instant::now();
                    let line = self.line(false);
                    let _ = writeln!(self.out, "import: {line}");
                }
            }
        }
    }

    /// A bad record, printed as it is found (the first [`SHOWN_BAD`] of a file).
    pub fn bad_line(&mut self, msg: &str) {
        if matches!(self.mode, Mode::Quiet) {
            return;
        }
        self.bad_shown += 1;
        self.clear_bar();
        if self.bad_shown <= SHOWN_BAD {
            let _ = writeln!(self.out, "{msg}");
        } else if self.bad_shown == SHOWN_BAD + 1 {
            let _ = writeln!(
                self.out,
                "{}: more bad records; only the first {SHOWN_BAD} are shown (the summary counts them all)",
                self.file
            );
        }
    }

    pub fn finish_file(&mut self) {
        self.clear_bar();
    }

    fn clear_bar(&mut self) {
        if self.bar_drawn {
            let _ = write!(self.out, "\r\x1b[K");
            let _ = self.out.flush();
            self.bar_drawn = false;
        }
    }

    fn line(&self, bar: bool) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.records as f64 / secs;
        let frac = if self.total > 0 {
            (self.done as f64 / self.total as f64).min(1.0)
        } else {
            0.0
        };
        let eta = if self.done > 0 && self.total > self.done {
            let left = (self.total - self.done) as f64 * secs / self.done as f64;
            format!("{}:{:02}", left as u64 / 60, left as u64 % 60)
        } else {
            "-".into()
        };
        let mib = |b: u64| b as f64 / 1048576.0;
        let gauge = if bar {
            let w = 24;
            let full = (frac * w as f64) as usize;
            format!("[{}{}] ", "#".repeat(full), "-".repeat(w - full))
        } else {
            String::new()
        };
        format!(
            "{} {gauge}{:.0}% {:.1} of {:.1} MiB, {} records, {:.0} rec/s, ETA {eta}",
            self.file,
            frac * 100.0,
            mib(self.done),
            mib(self.total),
            self.records,
            rate
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A sink the test can read after the progress wrote to it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn without_a_terminal_plain_lines_say_file_share_records_and_rate() {
        let out = Shared::default();
        let mut p = Progress::to(Mode::Plain, Box::new(out.clone()), Duration::ZERO);
        p.start_file("audit\x1b[2K.jsonl", 4 * 1048576);
        p.stored(1000);
        p.tick(1048576);
        p.stored(1000);
        p.tick(2 * 1048576);
        p.finish_file();
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text:?}");
        assert!(
            lines[0]
                .starts_with("import: audit\\u{1b}[2K.jsonl 25% 1.0 of 4.0 MiB, 1000 records, "),
            "{text:?}"
        );
        assert!(
            lines[1].contains(" 50% 2.0 of 4.0 MiB, 2000 records, "),
            "{text:?}"
        );
        assert!(lines.iter().all(|l| l.contains(" rec/s, ETA ")), "{text:?}");
        assert!(
            !text.contains('\x1b'),
            "no control bytes in a log: {text:?}"
        );
    }

    #[test]
    fn plain_lines_come_only_every_interval() {
        let out = Shared::default();
        let mut p = Progress::to(
            Mode::Plain,
            Box::new(out.clone()),
            Duration::from_secs(3600),
        );
        p.start_file("big.jsonl", 100);
        for done in 1..=100 {
            p.tick(done);
        }
        assert_eq!(
            out.text(),
            "",
            "nothing before the first interval has passed"
        );
    }

    #[test]
    fn on_a_terminal_the_bar_is_redrawn_in_place_and_cleared_for_bad_records() {
        let out = Shared::default();
        let mut p = Progress::to(Mode::Bar, Box::new(out.clone()), PLAIN_EVERY);
        p.start_file("x.csv", 1000);
        p.stored(10);
        p.tick(500);
        p.bad_line("x.csv:7: not JSON");
        p.tick(1000);
        p.finish_file();
        let text = out.text();
        assert!(
            text.starts_with("\r\x1b[Kx.csv [############------------] 50% "),
            "{text:?}"
        );
        assert!(
            text.contains("\r\x1b[Kx.csv:7: not JSON\n"),
            "bar cleared first: {text:?}"
        );
        assert!(
            text.contains("[########################] 100% "),
            "{text:?}"
        );
        assert!(
            text.ends_with("\r\x1b[K"),
            "the bar is gone at the end: {text:?}"
        );
    }

    #[test]
    fn only_the_first_bad_records_are_printed_then_one_line_says_so() {
        let out = Shared::default();
        let mut p = Progress::to(
            Mode::Plain,
            Box::new(out.clone()),
            Duration::from_secs(3600),
        );
        p.start_file("f.json", 10);
        for i in 0..SHOWN_BAD + 5 {
            p.bad_line(&format!("f.json:{i}: bad"));
        }
        let text = out.text();
        assert_eq!(text.lines().count() as u64, SHOWN_BAD + 1, "{text}");
        assert!(text.ends_with(
            "f.json: more bad records; only the first 100 are shown (the summary counts them all)\n"
        ));
    }

    #[test]
    fn quiet_shows_nothing() {
        let out = Shared::default();
        let mut p = Progress::to(Mode::Quiet, Box::new(out.clone()), Duration::ZERO);
        p.start_file("f.json", 10);
        p.tick(5);
        p.bad_line("f.json:1: bad");
        p.finish_file();
        assert_eq!(out.text(), "");
    }
}
