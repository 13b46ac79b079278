//! The address `serve`, `run` and `demo` print as their first line on stdout
//! (`…: open http://127.0.0.1:PORT/`), read the way every UI test needs it.

use std::io::{BufRead, BufReader};
use std::process::ChildStdout;
use std::time::Duration;

/// The URL of the first line of `stdout` (what follows `: open `), waiting up to two
/// minutes for it. The rest of the output is drained on a thread of its own, so the
/// process never blocks on a full pipe.
pub fn first_line_url(stdout: ChildStdout) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        let _ = tx.send(lines.next());
        for _ in lines {}
    });
    let line = rx
        .recv_timeout(Duration::from_secs(120))
        .ok()
        .flatten()
        .expect("no URL line on stdout within 120 s");
    line.trim()
        .split(": open ")
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string()
}
