//! The Devo forwarder against a real rsyslogd with mutual TLS on 127.0.0.1 (the stand-in
//! of docs/devo.md, Testing against a stand-in): a practice-tenant backfill arrives exactly once and byte-exact,
//! one file per tag; a client whose certificate the receiver does not trust is refused and
//! nothing is lost; an outage of the receiver and kill -9 of the forwarder lose nothing.
//! Skips with a notice without rsyslogd (fails under `M365AUDIT_REQUIRE_EXTERNAL=1`).

mod collect_common;
mod devo_common;

use collect_common::*;
use devo_common::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every tag file line, header checked and stripped, counted.
fn received(r: &Rsyslog) -> BTreeMap<String, BTreeMap<String, usize>> {
    let mut m: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for (tag, lines) in r.tag_files() {
        for l in lines {
            *m.entry(tag.clone())
                .or_default()
                .entry(strip_header(&l).to_string())
                .or_default() += 1;
        }
    }
    m
}

fn total(m: &BTreeMap<String, Vec<String>>) -> usize {
    m.values().map(Vec::len).sum()
}

#[test]
fn a_backfill_arrives_exactly_once_byte_exact_one_file_per_tag() {
    if !have_rsyslog() {
        return;
    }
    let sim = Sim::start(&["--days", "2", "--records-per-day", "1500"]);
    sim.freeze();
    let s = setup(&sim, json!({}));
    let rs = Rsyslog::start(&s.dir.path().join("rsyslog"));
    add_devo(&s.config, rs.devo_config("client.crt", "client.key"));
    let check = run(&["check", "--config", s.config.to_str().unwrap()]);
    assert!(check.status.success(), "check: {}", text(&check.stderr));
    assert!(
        text(&check.stdout).contains("client certificate"),
        "check lists the certificates: {}",
        text(&check.stdout)
    );
    let out = collect_once(&s, &[]);
    assert!(out.status.success(), "collect: {}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("no forwarder"),
        "the not-forwarded warning is gone"
    );
    let expected = expected_lines(&s.data, &default_hostname());
    let n = total(&expected);
    assert!(n > 1000, "a real backfill: {n} records");
    // rsyslogd writes asynchronously; the forwarder's confirmation says it has read them
    assert_eq!(
        rs.wait_lines(n, Duration::from_secs(60)),
        n,
        "raw.log lines"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rs.raw_lines().len(), n, "no line more than the records");
    let got = received(&rs);
    assert_eq!(
        got.keys().collect::<BTreeSet<_>>(),
        expected.keys().collect::<BTreeSet<_>>(),
        "one file per tag"
    );
    for (tag, lines) in &expected {
        let g = &got[tag];
        for l in lines {
            assert_eq!(
                g.get(l).copied(),
                Some(1),
                "{tag}: line not received exactly once: {:.200}",
                l
            );
        }
        assert_eq!(g.values().sum::<usize>(), lines.len(), "{tag}: extra lines");
    }
    let st = stats_json(&s.data);
    let ob = &st["outbox"];
    eprintln!(
        "rsyslogd said: {}",
        std::fs::read_to_string(rs.dir.join("rsyslogd.stderr")).unwrap_or_default()
    );
    assert_eq!(ob["depth"], json!(0), "{ob}");
    assert_eq!(ob["sent"], json!(n), "{ob}");
    assert_eq!(ob["oversized"], json!(0), "{ob}");
    assert!(ob["last_error"].is_null(), "{ob}");
    let text_stats = run(&["stats", "--data", s.data.to_str().unwrap()]);
    assert!(
        text(&text_stats.stdout).contains("devo outbox        depth 0"),
        "{}",
        text(&text_stats.stdout)
    );
}

#[test]
fn a_client_the_receiver_does_not_trust_is_refused_and_keeps_its_outbox() {
    if !have_rsyslog() {
        return;
    }
    let sim = Sim::start(&["--days", "1", "--records-per-day", "300"]);
    sim.freeze();
    let s = setup(&sim, json!({}));
    let rs = Rsyslog::start(&s.dir.path().join("rsyslog"));
    // a client certificate from another CA: a valid certificate, but not Devo's
    make_certs(&rs.dir.join("certs"), "other-");
    let mut devo = rs.devo_config("other-client.crt", "other-client.key");
    devo["drain_secs"] = json!(6);
    add_devo(&s.config, devo);
    let out = collect_once(&s, &[]);
    assert_eq!(out.status.code(), Some(1), "collect: {}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("still in the outbox"), "{err}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(rs.raw_lines(), Vec::<String>::new(), "nothing accepted");
    let st = stats_json(&s.data);
    let ob = &st["outbox"];
    let stored = st["records"]["total"].as_i64().unwrap();
    assert_eq!(ob["depth"].as_i64(), Some(stored), "{ob}");
    assert_eq!(ob["sent"], json!(0), "{ob}");
    assert!(
        ob["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{ob}"
    );
    assert!(ob["down_since"].is_string(), "{ob}");

    // the same outbox with the right certificate: everything goes, once
    let mut devo = rs.devo_config("client.crt", "client.key");
    devo["drain_secs"] = json!(60);
    add_devo(&s.config, devo);
    let out = run(&[
        "forward",
        "--config",
        s.config.to_str().unwrap(),
        "--data",
        s.data.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "forward: {}", text(&out.stderr));
    let n = stored as usize;
    assert_eq!(rs.wait_lines(n, Duration::from_secs(30)), n);
    let st = stats_json(&s.data);
    assert_eq!(st["outbox"]["depth"], json!(0));
}

#[test]
fn a_receiver_outage_during_a_backfill_loses_nothing_and_resends_are_counted() {
    if !have_rsyslog() {
        return;
    }
    let sim = Sim::start(&["--days", "3", "--records-per-day", "6000"]);
    sim.freeze();
    let s = setup(&sim, json!({}));
    // a store filled before forwarding was on: the backfill is one long stream of lines
    let out = collect_once(&s, &[]);
    assert!(out.status.success(), "collect: {}", text(&out.stderr));
    let mut rs = Rsyslog::start(&s.dir.path().join("rsyslog"));
    let mut devo = rs.devo_config("client.crt", "client.key");
    devo["confirm_secs"] = json!(3);
    devo["drain_secs"] = json!(240);
    add_devo(&s.config, devo);
    let child = Command::new(BIN)
        .args(["forward", "--backfill-since", "2000-01-01", "--config"])
        .arg(&s.config)
        .arg("--data")
        .arg(&s.data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("forward");
    // stop the receiver once forwarding is under way
    let start = Instant::now();
    while rs.raw_lines().len() < 200 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "forwarding never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    rs.stop();
    let during = rs.raw_lines().len();
    std::thread::sleep(Duration::from_secs(3));
    rs.restart();
    let out = wait_output(child, Duration::from_secs(400));
    assert!(out.status.success(), "forward: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("queued "),
        "{}",
        text(&out.stdout)
    );
    let expected = expected_lines(&s.data, &default_hostname());
    let n = total(&expected);
    assert!(during < n, "the outage was in the middle ({during} of {n})");
    rs.wait_lines(n, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    let got = received(&rs);
    let mut missing = 0;
    for (tag, lines) in &expected {
        for l in lines {
            if got.get(tag).and_then(|g| g.get(l)).is_none() {
                missing += 1;
            }
        }
    }
    assert_eq!(missing, 0, "records lost in the outage");
    let st = stats_json(&s.data);
    let ob = &st["outbox"];
    assert_eq!(ob["depth"], json!(0), "{ob}");
    assert!(
        ob["resent"].as_i64().unwrap_or(0) > 0,
        "resends counted: {ob}"
    );
    let shown = run(&["stats", "--data", s.data.to_str().unwrap()]);
    assert!(
        text(&shown.stdout).contains("resent "),
        "{}",
        text(&shown.stdout)
    );
}

#[test]
fn kill_9_during_forwarding_loses_nothing() {
    if !have_rsyslog() {
        return;
    }
    let sim = Sim::start(&["--days", "3", "--records-per-day", "6000"]);
    sim.freeze();
    let s = setup(&sim, json!({}));
    let rs = Rsyslog::start(&s.dir.path().join("rsyslog"));
    let mut devo = rs.devo_config("client.crt", "client.key");
    devo["confirm_secs"] = json!(2);
    add_devo(&s.config, devo);
    let mut killed_while_sending = 0;
    for i in 0..4 {
        let mut p = Proc(
            Command::new(BIN)
                .args(["collect", "--once", "--config"])
                .arg(&s.config)
                .arg("--data")
                .arg(&s.data)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("collect"),
        );
        let before = rs.raw_lines().len();
        let start = Instant::now();
        // kill once lines flow (or after a while, at an arbitrary moment)
        while rs.raw_lines().len() < before + 100 * (i + 1)
            && start.elapsed() < Duration::from_secs(20)
            && p.0.try_wait().unwrap().is_none()
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        if p.0.try_wait().unwrap().is_none() {
            killed_while_sending += 1;
        }
        drop(p); // SIGKILL + reap
    }
    assert!(killed_while_sending > 0, "no kill hit a running forwarder");
    let out = collect_once(&s, &[]);
    assert!(out.status.success(), "final collect: {}", text(&out.stderr));
    let expected = expected_lines(&s.data, &default_hostname());
    let n = total(&expected);
    rs.wait_lines(n, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    let got = received(&rs);
    let missing: usize = expected
        .iter()
        .map(|(tag, lines)| {
            lines
                .iter()
                .filter(|l| got.get(tag).and_then(|g| g.get(*l)).is_none())
                .count()
        })
        .sum();
    assert_eq!(missing, 0, "records lost to kill -9 ({n} stored)");
    assert_eq!(stats_json(&s.data)["outbox"]["depth"], json!(0));
}
