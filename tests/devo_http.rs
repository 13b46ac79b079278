//! The Devo forwarder's HTTP mode against an in-process `/stream` receiver on 127.0.0.1
//! (docs/devo.md, Testing against a stand-in): gzip bodies, one tag per request, batching; 401 is shown as a
//! configuration error while the outbox is kept, 413 makes the forwarder split its
//! request, 429 and 503 are retried — and every record arrives exactly once.

mod collect_common;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use collect_common::*;
use serde_json::json;
use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "tok-SECRET-123";
/// Requests with more lines than this get 413.
const MAX_LINES: usize = 100;

#[derive(Default)]
struct Receiver {
    deny: AtomicBool,
    /// Statuses to answer the next requests with (before accepting).
    plan: Mutex<VecDeque<u16>>,
    /// Accepted lines by tag.
    lines: Mutex<BTreeMap<String, Vec<String>>>,
    /// Every status answered, counted.
    answered: Mutex<BTreeMap<u16, usize>>,
    /// Requests without `Content-Encoding: gzip`.
    plain: Mutex<usize>,
}

async fn stream(
    State(r): State<Arc<Receiver>>,
    UrlPath((domain, token, host, tag)): UrlPath<(String, String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let answer = |code: u16| {
        *r.answered.lock().unwrap().entry(code).or_default() += 1;
        StatusCode::from_u16(code).unwrap()
    };
    if domain != "acme" || token != format!("token!{TOKEN}") || r.deny.load(Ordering::SeqCst) {
        return answer(401);
    }
    let gz = headers.get("content-encoding").is_some_and(|v| v == "gzip");
    let text = if gz {
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(&body[..])
            .read_to_string(&mut s)
            .expect("gzip body");
        s
    } else {
        *r.plain.lock().unwrap() += 1;
        String::from_utf8(body.to_vec()).expect("UTF-8 body")
    };
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.len() > MAX_LINES {
        return answer(413);
    }
    if let Some(code) = r.plan.lock().unwrap().pop_front() {
        return answer(code);
    }
    for l in &lines {
        // `<14>TS HOST TAG: JSON` with the URL's host and tag
        let after = l.split_once(&format!(" {host} {tag}: "));
        assert!(
            after.is_some(),
            "line does not carry {host} {tag}: {l:.200}"
        );
    }
    r.lines
        .lock()
        .unwrap()
        .entry(tag)
        .or_default()
        .extend(lines);
    answer(200)
}

fn start_receiver() -> (Arc<Receiver>, u16, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let r = Arc::new(Receiver::default());
    let app = axum::Router::new()
        .route(
            "/stream/{domain}/{token}/{host}/{tag}",
            axum::routing::post(stream),
        )
        .with_state(r.clone());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move { axum::serve(listener, app).await });
    (r, port, rt)
}

#[test]
fn http_mode_gzips_batches_per_tag_and_survives_401_413_429_503() {
    let (recv, port, _rt) = start_receiver();
    recv.deny.store(true, Ordering::SeqCst);
    let sim = Sim::start(&["--days", "1", "--records-per-day", "800"]);
    sim.freeze();
    let s = setup(&sim, json!({}));
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&s.config).unwrap()).unwrap();
    cfg["outputs"] = json!({"devo": {
        "mode": "http",
        "endpoint": format!("http://127.0.0.1:{port}"),
        "domain": "acme",
        "token": TOKEN,
        "hostname": "collector-12345-test",
        "batch_records": 300,
        "drain_secs": 180,
    }});
    std::fs::write(&s.config, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let child = Command::new(BIN)
        .args(["collect", "--once", "--config"])
        .arg(&s.config)
        .arg("--data")
        .arg(&s.data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("collect");
    // 401: a configuration error, shown, and nothing leaves the outbox
    let start = Instant::now();
    let shown = loop {
        if s.data.join("m365audit.db").exists() {
            let out = run(&["stats", "--json", "--data", s.data.to_str().unwrap()]);
            if out.status.success() {
                let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                if st["outbox"]["connection"] == "config_error" {
                    break st;
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the 401 was never shown as a configuration error"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let ob = &shown["outbox"];
    assert!(ob["last_error"].as_str().unwrap().contains("401"), "{ob}");
    assert!(ob["depth"].as_i64().unwrap() > 0, "{ob}");
    assert_eq!(ob["sent"], json!(0), "{ob}");
    assert!(
        !shown.to_string().contains(TOKEN),
        "the token is never shown"
    );
    // the settings are fixed; the receiver is busy a moment
    recv.plan.lock().unwrap().extend([503, 429, 503]);
    recv.deny.store(false, Ordering::SeqCst);
    let out = wait_output(child, Duration::from_secs(300));
    assert!(out.status.success(), "collect: {}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains(TOKEN),
        "the token is never logged"
    );

    let store = m365audit::store::Store::open_read_only(&s.data).unwrap();
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    store
        .for_each_record("cloud.office365.management", 0, |r| {
            let tag = m365audit::forward::line::tag_for(&r.header.workload);
            expected
                .entry(tag.clone())
                .or_default()
                .push(format!("collector-12345-test {tag}: {}", r.raw));
            Ok(true)
        })
        .unwrap();
    let got = recv.lines.lock().unwrap().clone();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (tag, lines) in &expected {
        let mut g: Vec<String> = got[tag]
            .iter()
            .map(|l| {
                assert!(l.starts_with("<14>"), "{l:.80}");
                l[4 + 24..].to_string()
            })
            .collect();
        let mut e = lines.clone();
        g.sort();
        e.sort();
        assert_eq!(g.len(), e.len(), "{tag}: each record exactly once");
        assert!(g == e, "{tag}: lines differ from the stored records");
    }
    let answered = recv.answered.lock().unwrap().clone();
    for code in [200u16, 401, 413, 429, 503] {
        assert!(
            answered.get(&code).is_some_and(|n| *n > 0),
            "{code} in {answered:?}"
        );
    }
    assert_eq!(*recv.plain.lock().unwrap(), 0, "every body is gzip");
    let st = stats_json(&s.data);
    let ob = &st["outbox"];
    assert_eq!(ob["depth"], json!(0), "{ob}");
    assert!(
        ob["resent"].as_i64().unwrap() > 0,
        "retries are counted: {ob}"
    );
    assert!(ob["last_error"].is_null(), "{ob}");
}
