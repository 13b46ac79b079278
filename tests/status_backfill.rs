//! The status page tells the truth about the collector: while `m365audit run` backfills
//! from the practice tenant it shows "backfilling (window n of m)" per content type and
//! the token as the collector sees it (never "not started" or "no token requested yet");
//! afterwards "caught up" for every content type, and the log says the backfill is done.
//! Killed with `kill -9`, the collector reads as stopped on the status page (under
//! `serve`) and in `stats`, by the same rule.
//!
//! The tenant answers only 1-hour windows (`max_window_1h`, and the config asks for no
//! longer ones), so the 7-day backfill takes
//! some 170 windows per content type: long enough to be seen. Waits poll with deadlines.

mod collect_common;
mod support;

use collect_common::{BIN, Http, Proc, Sim, setup, stats_json};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Starts `m365audit ARGS`, returns the process, the URL of its `… open URL` line and
/// its stderr as it grows.
fn start(args: &[&str]) -> (Proc, String, Arc<Mutex<String>>) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("M365AUDIT_LOG", "info")
        .env_remove(m365audit::app::serve::TOKEN_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting m365audit");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            log2.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let proc = Proc(child);
    let url = support::ui_url::first_line_url(stdout);
    (proc, url, log)
}

/// The state cell of each content type row of the status page.
fn stream_states(page: &str) -> Vec<(String, String)> {
    let table = page
        .split("<table class=\"streams\">")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap_or("");
    table
        .split("<tr><td>")
        .skip(1)
        .filter_map(|row| {
            // "<ct></td><td><state></td><td class=…>…"
            let mut cells = row
                .split("</td>")
                .map(|c| c.split_once('>').map_or(c, |(_, v)| v).to_string());
            let ct = row.split("</td>").next()?.to_string();
            cells.next();
            Some((ct, cells.next()?))
        })
        .collect()
}

fn poll_status(
    http: &Http,
    url: &str,
    limit: Duration,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let (code, page) = http.get(&format!("{url}status"));
        assert_eq!(code, 200, "{page}");
        if done(&page) {
            return page;
        }
        let states = stream_states(&page);
        assert!(
            !states.iter().any(|(_, s)| s.starts_with("error")),
            "a content type failed: {page}"
        );
        assert!(
            Instant::now() < deadline,
            "status never showed {what}; last: {:?}",
            stream_states(&page)
        );
        std::thread::sleep(Duration::from_millis(30));
    }
}

#[test]
fn the_status_page_follows_a_backfill_and_a_killed_collector() {
    let sim = Sim::start(&["--faults", "max_window_1h", "--records-per-day", "3000"]);
    let s = setup(&sim, serde_json::json!({"max_window_secs": 3600}));
    let (data, config) = (s.data.to_str().unwrap(), s.config.to_str().unwrap());
    let (mut run, url, log) = start(&[
        "run",
        "--config",
        config,
        "--data",
        data,
        "--listen",
        "127.0.0.1:0",
    ]);
    let http = Http::new();

    let during = poll_status(&http, &url, Duration::from_secs(300), "a backfill", |p| {
        p.contains("backfilling (window ")
    });
    let states = stream_states(&during);
    assert_eq!(states.len(), 5, "{states:?}");
    assert!(!during.contains("not started"), "{states:?}");
    assert!(!during.contains("no token requested yet"), "{during}");
    assert!(
        during.contains("id=\"collector-state\">running since"),
        "{during}"
    );
    let window = states
        .iter()
        .find_map(|(_, st)| st.strip_prefix("backfilling (window "))
        .unwrap();
    let (n, m) = window.trim_end_matches(')').split_once(" of ").unwrap();
    let (n, m): (u32, u32) = (n.parse().unwrap(), m.parse().unwrap());
    assert!(n >= 1 && n <= m && m > 100, "window {n} of {m}");
    assert_eq!(
        stats_json(&s.data)["collector"]["state"],
        serde_json::json!("running")
    );
    let (_, metrics) = http.get(&format!("{url}metrics"));
    assert!(
        metrics.contains("\nm365audit_collector_running 1\n"),
        "{metrics}"
    );

    let after = poll_status(
        &http,
        &url,
        Duration::from_secs(600),
        "every content type caught up",
        |p| {
            let st = stream_states(p);
            st.len() == 5 && st.iter().all(|(_, s)| s == "caught up")
        },
    );
    assert!(after.contains("current token valid until"), "{after}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log
        .lock()
        .unwrap()
        .contains("backfill done for every content type")
    {
        assert!(
            Instant::now() < deadline,
            "no log line says the backfill is done:\n{}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // each content type's line counts its own records: together no more than the run's
    let records_new = |line: &str| -> u64 {
        let v = line
            .split("records_new=")
            .nth(1)
            .unwrap_or_else(|| panic!("{line}"));
        v.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let text = log.lock().unwrap().clone();
    let per_type: Vec<u64> = text
        .lines()
        .filter(|l| l.contains("backfill done: caught up to now"))
        .map(records_new)
        .collect();
    let total = text
        .lines()
        .find(|l| l.contains("backfill done for every content type"))
        .map(records_new)
        .unwrap();
    assert_eq!(per_type.len(), 5, "{text}");
    let sum: u64 = per_type.iter().sum();
    assert!(
        sum > 0 && sum <= total,
        "per content type {per_type:?}, in all {total}"
    );

    // kill -9: no "stopped" is written; the page and stats must still know.
    run.0.kill().unwrap();
    run.0.wait().unwrap();
    let (_serve, url, _) = start(&["serve", "--data", data, "--listen", "127.0.0.1:0"]);
    let page = poll_status(
        &http,
        &url,
        Duration::from_secs(120),
        "a stopped collector",
        |p| p.contains("id=\"collector-state\">stopped"),
    );
    assert!(page.contains("is gone"), "{page}");
    assert!(
        stream_states(&page)
            .iter()
            .all(|(_, s)| s == "stopped (last: caught up)"),
        "{:?}",
        stream_states(&page)
    );
    let (_, metrics) = http.get(&format!("{url}metrics"));
    assert!(
        metrics.contains("\nm365audit_collector_running 0\n"),
        "{metrics}"
    );
    let st = stats_json(&s.data);
    assert_eq!(st["collector"]["state"], serde_json::json!("stopped"));
    assert!(
        st["collector"]["stopped_why"]
            .as_str()
            .unwrap()
            .contains("is gone")
    );
}
