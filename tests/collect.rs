//! End to end: `m365audit collect --once` against the practice tenant, then the store is
//! compared with `/__control/truth` record by record; the simulator's misbehaviour report
//! must be empty. One test per fault, plus all transient faults together.

mod collect_common;

use collect_common::*;
use serde_json::{Value, json};

/// Starts a frozen practice tenant, collects once, and checks store = truth.
fn collect_matches_truth(sim_args: &[&str], extra: Value) -> (Sim, Setup, String) {
    let sim = Sim::start(sim_args);
    sim.freeze();
    let s = setup(&sim, extra);
    let out = collect_once(&s, &[]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "collect --once failed:\n{err}");
    let truth = sim.truth();
    assert!(!truth.is_empty(), "the practice tenant has no records");
    assert_store_equals_truth(&s.data, &truth);
    assert_eq!(
        misbehaviours(&sim),
        Vec::<Value>::new(),
        "the simulator saw misbehaviour"
    );
    assert!(
        !err.contains(&sim.secret()),
        "the client secret is in the log"
    );
    (sim, s, err)
}

#[test]
fn collect_once_stores_exactly_the_truth_and_a_second_run_adds_nothing() {
    let (sim, s, _) =
        collect_matches_truth(&["--days", "7", "--records-per-day", "2000"], json!({}));
    let st = stats_json(&s.data);
    let mut truth = sim.truth();
    assert_eq!(st["records"]["total"], json!(truth.len()));
    assert_eq!(st["blobs"]["pending"], json!(0));
    // the only gaps: the first backfill's unlistable edge (the 5-minute safety margin at
    // the 7-day limit), one per content type
    let gaps = st["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 5, "{gaps:?}");
    for g in gaps {
        assert_eq!(g["kind"], json!("clamped"), "{g}");
        assert!(
            g["last_detail"]
                .as_str()
                .unwrap()
                .contains("first backfill"),
            "{g}"
        );
        let start = m365audit::model::parse_time(g["window_start"].as_str().unwrap()).unwrap();
        let end = m365audit::model::parse_time(g["window_end"].as_str().unwrap()).unwrap();
        assert_eq!(end - start, chrono::Duration::minutes(5), "{g}");
    }
    // duplicates delivered by the API were dropped and counted
    let served = sim.report()["served"]["duplicates"].as_u64().unwrap();
    assert!(served > 0, "delivery realism should include duplicates");
    assert!(st["duplicates_dropped"].as_u64().unwrap() >= served);
    for ct in [
        "Audit.AzureActiveDirectory",
        "Audit.Exchange",
        "Audit.SharePoint",
        "Audit.General",
        "DLP.All",
    ] {
        assert_eq!(
            st["content_types"][ct]["state"],
            json!("ok"),
            "{ct}: {}",
            st["content_types"][ct]
        );
        assert!(st["content_types"][ct]["cursor"].is_string());
    }
    assert_eq!(st["auth"]["state"], json!("ok"));
    // detections ran on every stored record, inside the same transaction
    let hits = st["hits"].as_object().unwrap();
    assert!(
        hits.get("authentication")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            > 0,
        "{hits:?}"
    );
    // search finds a stored record by its operation
    let out = run(&[
        "search",
        "--json",
        "--limit",
        "3",
        "--data",
        s.data.to_str().unwrap(),
        "operation:UserLoggedIn",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["total"].as_u64().unwrap() > 0);
    assert_eq!(
        r["hits"][0]["table"],
        json!("cloud.office365.management.azureactivedirectory")
    );
    assert!(truth.contains_key(r["hits"][0]["id"].as_str().unwrap()));
    // the clock moves on: a second run only adds what is new, nothing twice
    sim.unfreeze();
    sim.advance(3 * 3600);
    sim.freeze();
    let out = collect_once(&s, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // the truth of now lacks what expired meanwhile; the store keeps it: store = union
    let later = sim.truth();
    assert!(
        later.keys().any(|k| !truth.contains_key(k)),
        "nothing new in 3 hours?"
    );
    truth.extend(later);
    assert_store_equals_truth(&s.data, &truth);
    assert_eq!(misbehaviours(&sim), Vec::<Value>::new());
}

#[test]
fn the_inactivity_monitor_is_in_stats_and_collector_id_in_detect() {
    let sim = Sim::start(&["--days", "1", "--records-per-day", "400"]);
    sim.freeze();
    let s = setup(&sim, json!({"id": "54321", "quiet_hours": 2}));
    let out = collect_once(&s, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let st = stats_json(&s.data);
    let m = &st["monitor"];
    assert_eq!(m["collector_id"], json!("54321"), "{m}");
    assert_eq!(m["quiet_secs"], json!(7200));
    assert_eq!(m["alerts"], json!(0), "a fresh store alerts: {m}");
    let sources = m["sources"].as_array().unwrap();
    let content_types: Vec<&str> = sources
        .iter()
        .filter(|x| x["source"]["kind"] == json!("content_type"))
        .map(|x| x["source"]["content_type"].as_str().unwrap())
        .collect();
    assert_eq!(content_types.len(), 5, "{m}");
    // every Workload of the truth is watched
    let mut workloads: Vec<String> = sim
        .truth()
        .values()
        .filter_map(|r| r["Workload"].as_str().map(str::to_string))
        .collect();
    workloads.sort();
    workloads.dedup();
    for w in &workloads {
        assert!(
            sources.iter().any(|x| x["source"]["workload"] == json!(w)),
            "{w} is not watched: {m}"
        );
    }
    let text_stats = run(&["stats", "--data", s.data.to_str().unwrap()]);
    assert!(text(&text_stats.stdout).contains("inactivity monitor collector 54321"));
    // `detect` binds $collector_id to the stored collector id, as the collector did
    let out = run(&[
        "detect",
        "--detection",
        "authentication",
        "--format",
        "csv",
        "--data",
        s.data.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    assert!(csv.lines().count() > 1, "{csv}");
    assert!(
        csv.lines().skip(1).all(|l| l.contains("54321")),
        "every group carries the collector id:\n{csv}"
    );
}

macro_rules! fault_test {
    ($name:ident, $fault:expr) => {
        #[test]
        fn $name() {
            collect_matches_truth(
                &[
                    "--days",
                    "2",
                    "--records-per-day",
                    "1500",
                    "--faults",
                    $fault,
                ],
                json!({}),
            );
        }
    };
}

fault_test!(fault_throttle_403, "throttle_403");
fault_test!(fault_throttle_429, "throttle_429");
fault_test!(fault_throttle_retry_after, "throttle_retry_after");
fault_test!(fault_internal_500, "internal_500");
fault_test!(fault_unavailable_503, "unavailable_503");
fault_test!(fault_timeout_408, "timeout_408");
fault_test!(fault_reset_mid_body, "reset_mid_body");
fault_test!(fault_truncated_body, "truncated_body");
fault_test!(fault_non_json_body, "non_json_body");
fault_test!(fault_foreign_next_page, "foreign_next_page");
fault_test!(fault_foreign_content_uri, "foreign_content_uri");
fault_test!(fault_clock_skew, "clock_skew");
fault_test!(fault_lowercase_next_page, "lowercase_next_page");

#[test]
fn all_recoverable_faults_together() {
    collect_matches_truth(
        &[
            "--days",
            "2",
            "--records-per-day",
            "1500",
            "--faults",
            "throttle_403,throttle_429,throttle_retry_after,internal_500,unavailable_503,timeout_408,reset_mid_body,truncated_body,non_json_body,foreign_next_page,foreign_content_uri,clock_skew,lowercase_next_page",
        ],
        json!({}),
    );
}

/// Faults no client can work around: the run stops with a clear message and exit 1,
/// stats shows the state, nothing is invented.
fn unrecoverable(fault: &str, expect_state: &str, expect_text: &str) {
    let sim = Sim::start(&["--days", "1", "--records-per-day", "500", "--faults", fault]);
    sim.freeze();
    let s = setup(&sim, json!({}));
    let out = collect_once(&s, &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "collect should fail:\n{err}");
    assert!(
        err.to_lowercase().contains(expect_text),
        "message should mention {expect_text:?}:\n{err}"
    );
    assert!(
        !err.contains(&sim.secret()),
        "the client secret is in the log"
    );
    let st = stats_json(&s.data);
    assert_eq!(st["records"]["total"], json!(0));
    let states: Vec<String> = st["content_types"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["state"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        states.iter().any(|s| s == expect_state),
        "states {states:?}, want {expect_state}"
    );
    let bad: Vec<Value> = misbehaviours(&sim)
        .into_iter()
        .filter(|m| m["kind"] != "start_too_often")
        .collect();
    assert_eq!(bad, Vec::<Value>::new());
}

#[test]
fn fault_subscription_disabled_is_a_visible_state() {
    unrecoverable(
        "subscription_disabled",
        "subscription_disabled",
        "subscription disabled",
    );
}

#[test]
fn fault_audit_off_is_a_visible_state() {
    unrecoverable("audit_off", "audit_disabled", "audit");
}

#[test]
fn fault_secret_expired_is_a_visible_state() {
    unrecoverable("secret_expired", "auth_failed", "secret expired");
}

#[test]
fn invariant_7_a_traced_run_logs_no_secret_and_no_token() {
    let sim = Sim::start(&[
        "--days",
        "1",
        "--records-per-day",
        "500",
        "--faults",
        "foreign_next_page,foreign_content_uri",
    ]);
    sim.freeze();
    let s = setup(&sim, json!({}));
    let out = collect_once(&s, &[("M365AUDIT_LOG", "trace")]);
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{log}");
    assert!(log.len() > 1000, "trace log unexpectedly short");
    assert!(!log.contains(&sim.secret()), "client secret in the log");
    assert!(
        !log.contains("eyJ"),
        "something token-like (JWT) in the log"
    );
    assert!(
        !log.to_lowercase().contains("bearer "),
        "a bearer token in the log"
    );
    let mis = misbehaviours(&sim);
    assert!(
        !mis.iter()
            .any(|m| m["kind"] == "token_sent_to_foreign_host"),
        "the token reached the foreign host: {mis:?}"
    );
    let st = stats_json(&s.data).to_string();
    assert!(!st.contains(&sim.secret()));
    no_secret_anywhere_after_a_collect(&sim, &s);
}

/// The first 8-character fragment of `secret` in `text`, or a bearer token, if any.
fn leak(text: &str, secret: &str) -> Option<String> {
    let c: Vec<char> = secret.chars().collect();
    if let Some(f) = c
        .windows(8)
        .map(|w| w.iter().collect::<String>())
        .find(|f| text.contains(f.as_str()))
    {
        return Some(format!("secret fragment {f:?}"));
    }
    if text.contains("eyJ") || text.to_lowercase().contains("bearer ") {
        return Some("a bearer token".into());
    }
    None
}

/// After a trace-level collect: the output of every command, every file of the data
/// directory and every UI page hold no 8 characters of the client secret and no bearer
/// token; nor does the error of a config whose secret was pasted with the wrong quotes.
fn no_secret_anywhere_after_a_collect(sim: &Sim, s: &Setup) {
    let secret = sim.secret();
    let d = s.data.to_str().unwrap();
    let c = s.config.to_str().unwrap();
    let trace = [("M365AUDIT_LOG", "trace")];
    let run_traced = |args: &[&str]| -> String {
        let child = std::process::Command::new(BIN)
            .args(args)
            .envs(trace)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let o = wait_output(child, std::time::Duration::from_secs(300));
        format!("{}{}", text(&o.stdout), text(&o.stderr))
    };
    let commands: [&[&str]; 10] = [
        &["check", "--config", c],
        &["stats", "--data", d],
        &["stats", "--json", "--data", d],
        &["search", "--data", d, "UserLoggedIn"],
        &["search", "--json", "--data", d, "UserLoggedIn"],
        &["detect", "--data", d],
        &["detect", "--format", "json", "--data", d],
        &["detect", "--format", "csv", "--data", d],
        &["query", "--data", d, "."],
        &["query", "--data", d, "error"],
    ];
    for args in commands {
        let out = run_traced(args);
        assert_eq!(leak(&out, &secret), None, "{args:?}");
    }
    // the secret pasted with typographic, single or no quotes: a JSON error with an excerpt
    let good = std::fs::read_to_string(&s.config).unwrap();
    for paste in [
        format!("\u{201c}{secret}\u{201d}"),
        format!("\u{2018}{secret}\u{2019}"),
        format!("'{secret}'"),
        secret.clone(),
    ] {
        let bad = s.dir.path().join("bad.json");
        std::fs::write(&bad, good.replace(&format!("\"{secret}\""), &paste)).unwrap();
        let b = bad.to_str().unwrap();
        for args in [
            &["check", "--config", b][..],
            &["collect", "--once", "--config", b, "--data", d],
        ] {
            let out = run_traced(args);
            assert!(out.contains("invalid JSON"), "{args:?}: {out}");
            assert_eq!(leak(&out, &secret), None, "{args:?}: {out}");
        }
    }
    // every file of the data directory
    let mut stack = vec![s.data.clone()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            let bytes = std::fs::read(&p).unwrap();
            assert_eq!(
                leak(&String::from_utf8_lossy(&bytes), &secret),
                None,
                "{}",
                p.display()
            );
        }
    }
    // every UI page reachable from the dashboard, and the fixed ones
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data", d])
        .envs(trace)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _guard = Proc(child);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    let base = line
        .trim()
        .split(": open ")
        .nth(1)
        .unwrap_or_else(|| panic!("no URL line: {line:?}"))
        .trim_end_matches('/')
        .to_string();
    let mut todo: Vec<String> = [
        "/",
        "/status",
        "/search?q=UserLoggedIn",
        "/query?jq=.",
        "/metrics",
        "/healthz",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    let mut seen = std::collections::BTreeSet::new();
    while let Some(path) = todo.pop() {
        if seen.len() >= 80 || !seen.insert(path.clone()) {
            continue;
        }
        let (code, body) = sim.http.get(&format!("{base}{path}"));
        assert!(code < 500, "{path}: {code}");
        assert_eq!(leak(&body, &secret), None, "{path}");
        if path == "/" {
            for href in body.split("href=\"").skip(1) {
                let h = href
                    .split('"')
                    .next()
                    .unwrap_or("")
                    .replace("&amp;", "&")
                    .replace("&#38;", "&");
                if h.starts_with('/') && !h.starts_with("/static") {
                    todo.push(h);
                }
            }
        }
    }
    assert!(seen.len() > 6, "{seen:?}");
}

#[test]
fn invariant_6_expired_blobs_and_the_seven_day_clamp_are_gaps_in_stats() {
    let sim = Sim::start(&["--days", "2", "--records-per-day", "3000"]);
    sim.freeze();
    let s = setup(&sim, json!({}));
    // Stop a collector right after it listed its first window, so blobs stay pending.
    let mut pending = 0;
    for _ in 0..5 {
        let child = std::process::Command::new(BIN)
            .args(["collect", "--once", "--config"])
            .arg(&s.config)
            .arg("--data")
            .arg(&s.data)
            .env("M365AUDIT_LOG", "m365audit::collect=debug")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut p = Proc(child);
        let stderr = p.0.stderr.take().unwrap();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let Ok(line) = line else { break };
            if line.contains("window listed") && line.contains(" new=") && !line.contains(" new=0")
            {
                break;
            }
        }
        drop(p); // SIGKILL
        let st = stats_json(&s.data);
        pending = st["blobs"]["pending"].as_u64().unwrap();
        if pending > 0 {
            break;
        }
    }
    assert!(
        pending > 0,
        "could not stop the collector with blobs pending"
    );
    // eight days later: the pending blobs have expired and the cursor is past the limit
    sim.unfreeze();
    sim.advance(8 * 86400);
    sim.freeze();
    let out = collect_once(&s, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let st = stats_json(&s.data);
    let gaps = st["gaps"].as_array().unwrap();
    let count = |kind: &str| -> u64 {
        gaps.iter()
            .filter(|g| g["kind"] == kind)
            .map(|g| g["count"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(
        count("expired"),
        pending,
        "every pending blob became an expired gap: {gaps:?}"
    );
    assert!(count("clamped") >= 1, "the 7-day clamp is a gap: {gaps:?}");
    assert!(gaps.iter().all(|g| g["content_type"].is_string()));
    assert_eq!(st["blobs"]["expired"], json!(pending));
    let out = run(&["stats", "--data", s.data.to_str().unwrap()]);
    let human = text(&out.stdout);
    assert!(
        human.contains("expired") && human.contains("clamped"),
        "{human}"
    );
}

#[test]
fn bad_input_unreadable_data_dir_is_a_clear_error() {
    let sim = Sim::start(&["--days", "1", "--records-per-day", "100"]);
    let s = setup(&sim, json!({}));
    std::fs::write(&s.data, b"a file, not a directory").unwrap();
    let out = collect_once(&s, &[]);
    // a --data that names a file is bad usage, named as such
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("data directory")
            && text(&out.stderr).contains("is not a directory"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[
        "stats",
        "--data",
        s.dir.path().join("nothing").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no store"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn sigterm_stops_a_running_collector_gracefully() {
    let sim = Sim::start(&["--days", "7", "--records-per-day", "6000"]);
    let s = setup(&sim, json!({"poll_interval_secs": 5}));
    let child = std::process::Command::new(BIN)
        .args(["collect", "--config"])
        .arg(&s.config)
        .arg("--data")
        .arg(&s.data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // poll until it stored something, then ask it to stop
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing stored within 120 s"
        );
        if s.data.join("m365audit.db").exists()
            && let Ok(st) =
                m365audit::store::Store::open_read_only(&s.data).and_then(|st| st.stats())
            && st.records.total > 0
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let k = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(k.success());
    let out = wait_output(child, std::time::Duration::from_secs(60));
    assert!(
        out.status.success(),
        "SIGTERM should end collect with 0:\n{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("shutdown requested"));
    // everything it stored is consistent: blobs done have their records, index caught up
    let st = stats_json(&s.data);
    assert_eq!(st["index"]["records_behind"], json!(0));
    assert!(st["records"]["total"].as_u64().unwrap() > 0);
    // and a later run finishes the job exactly
    sim.freeze();
    let out = collect_once(&s, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_store_equals_truth(&s.data, &sim.truth());
}

/// The service can drop a tenant's subscriptions mid-run (listing answers AF20022): a
/// running collector starts them again and collects what came after, instead of reporting
/// `subscription_missing` forever.
#[test]
fn a_subscription_dropped_mid_run_is_started_again() {
    let sim = Sim::start(&["--days", "1", "--records-per-day", "2000"]);
    sim.freeze();
    let s = setup(&sim, json!({"poll_interval_secs": 1}));
    let child = std::process::Command::new(BIN)
        .args(["collect", "--config"])
        .arg(&s.config)
        .arg("--data")
        .arg(&s.data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _collector = collect_common::Proc(child);
    let wait_for_truth = |what: &str| {
        let want = sim.truth().len();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let have = m365audit::store::Store::open_read_only(&s.data)
                .and_then(|st| st.stats())
                .map(|st| st.records.total)
                .unwrap_or(0);
            if have as usize == want {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: {have} of {want} records stored within 120 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    wait_for_truth("first backfill");
    let (code, body) = sim
        .http
        .post(&sim.control("/__control/drop_subscriptions"), String::new());
    assert!(code < 300, "drop_subscriptions: {code} {body}");
    // an hour of new content, listed only for a client that starts its subscriptions again
    sim.advance(3600);
    wait_for_truth("after the subscriptions were dropped");
    assert_store_equals_truth(&s.data, &sim.truth());
}
