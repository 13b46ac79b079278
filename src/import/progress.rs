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
        Progress {
            mode,
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
                let mut e = std::io::stderr().lock();
                let _ = write!(e, "\r\x1b[K{line}");
                let _ = e.flush();
                self.bar_drawn = true;
            }
            Mode::Plain => {
                if self.last_plain.elapsed() >= PLAIN_EVERY {
                    self.last_plain = Instant::now();
                    eprintln!("import: {}", self.line(false));
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
            eprintln!("{msg}");
        } else if self.bad_shown == SHOWN_BAD + 1 {
            eprintln!(
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
            eprint!("\r\x1b[K");
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
