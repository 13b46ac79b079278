//! The collector against implementations of the Management API that are not Microsoft's:
//! the practice tenant's interop switches make it answer like a mock or a proxy would
//! (plain-text token errors, a Basic-only token endpoint, no `subscriptions/list` route,
//! an unknown content type, at most 1 h per window). Plus the first backfill's edge: what
//! it cannot list is a gap in the loss ledger, and everything missing lies inside one.

mod collect_common;

use collect_common::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Every truth record of the given content types, by Id.
fn truth_of(sim: &Sim, cts: &[&str]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for ct in cts {
        let (s, body) = sim
            .http
            .get(&sim.control(&format!("/__control/truth?content_type={ct}")));
        assert_eq!(s, 200, "truth: {body}");
        for l in body.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(l).expect("truth line is JSON");
            out.insert(v["Id"].as_str().expect("Id").to_string(), v);
        }
    }
    out
}

fn misbehaviour_kinds(sim: &Sim) -> Vec<String> {
    misbehaviours(sim)
        .iter()
        .map(|m| m["kind"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn a_plain_text_token_error_is_shown_truncated_and_without_the_secret() {
    // A Basic-only endpoint refusing credentials in the body, in plain text.
    let sim = Sim::start(&[
        "--days",
        "1",
        "--records-per-day",
        "100",
        "--faults",
        "token_basic_only",
    ]);
    sim.freeze();
    let s = setup(&sim, json!({}));
    let out = collect_once(&s, &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "collect should fail:\n{err}");
    assert!(
        err.contains("bad credentials in authorization header"),
        "the token endpoint's plain-text body must be in the error:\n{err}"
    );
    assert!(!err.contains("no error description"), "{err}");
    let st = stats_json(&s.data).to_string();
    assert!(
        st.contains("bad credentials in authorization header"),
        "stats shows why: {st}"
    );

    // Plain-text AADSTS errors that echo the (wrong) secret they were given.
    let sim = Sim::start(&[
        "--days",
        "1",
        "--records-per-day",
        "100",
        "--faults",
        "token_text_errors",
    ]);
    sim.freeze();
    let wrong = "Wr0ng~Secret.Value_0123456789abcdefghijkl";
    let s = setup(
        &sim,
        json!({"credentials": {
            "client_id": sim.ready["client_id"],
            "client_secret": wrong,
            "tenant_id": sim.ready["tenant_id"],
        }}),
    );
    let out = collect_once(&s, &[("M365AUDIT_LOG", "trace")]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "collect should fail:\n{err}");
    assert!(
        err.contains("invalid_client: AADSTS7000215"),
        "the plain-text body must be in the error:\n{err}"
    );
    assert!(!err.contains(wrong), "the secret is in the log:\n{err}");
    assert!(
        !err.contains(&wrong[..12]),
        "part of the secret is in the log"
    );
    let st = stats_json(&s.data).to_string();
    assert!(st.contains("invalid_client"), "{st}");
    assert!(!st.contains(wrong), "the secret is in stats");
    // (the excerpt's length limit and control-character escaping: the unit test
    // `a_plain_text_refusal_is_kept_short_on_one_line_and_redacted`)
}

#[test]
fn client_secret_basic_gets_everything_from_a_basic_only_token_endpoint() {
    let sim = Sim::start(&[
        "--days",
        "2",
        "--records-per-day",
        "1000",
        "--faults",
        "token_basic_only",
    ]);
    sim.freeze();
    let s = setup(&sim, json!({"token_auth": "basic"}));
    let out = collect_once(&s, &[]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "collect --once failed:\n{err}");
    assert!(
        !err.contains(&sim.secret()),
        "the client secret is in the log"
    );
    assert_store_equals_truth(&s.data, &sim.truth());
    assert_eq!(misbehaviour_kinds(&sim), Vec::<String>::new());
}

#[test]
fn without_a_subscriptions_list_route_start_is_tried_and_404s_are_labelled_by_route() {
    let sim = Sim::start(&[
        "--days",
        "2",
        "--records-per-day",
        "1000",
        "--faults",
        "no_subscription_list",
    ]);
    sim.freeze();
    let s = setup(&sim, json!({}));
    let out = collect_once(&s, &[]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "collect --once failed:\n{err}");
    assert_store_equals_truth(&s.data, &sim.truth());
    // the 404 is labelled by what it was, with the body, and not as missing content
    assert!(!err.contains("AF20050"), "{err}");
    assert!(!err.contains("content not found"), "{err}");
    assert!(
        err.contains("subscriptions/list") && err.contains("404 page not found"),
        "the missing route and the body are named:\n{err}"
    );
    // A second run starts again (no listing tells it the subscriptions exist): AF20024
    // "already enabled" is success, not a fatal warning.
    sim.unfreeze();
    sim.advance(3600);
    sim.freeze();
    let out = collect_once(&s, &[]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "second collect --once failed:\n{err}");
    assert!(
        !err.contains("code=\"fatal\"") && !err.contains("code=fatal"),
        "AF20024 logged as fatal:\n{err}"
    );
    assert!(
        !err.lines()
            .any(|l| l.contains("WARN") && l.contains("AF20024")),
        "AF20024 is success, no warning:\n{err}"
    );
    let kinds = misbehaviour_kinds(&sim);
    assert!(
        kinds.iter().all(|k| k == "start_too_often"),
        "misbehaviour: {kinds:?}"
    );
}

#[test]
fn an_unknown_content_type_is_labelled_and_the_others_are_collected() {
    let sim = Sim::start(&[
        "--days",
        "1",
        "--records-per-day",
        "1000",
        "--faults",
        "dlp_unknown",
    ]);
    sim.freeze();
    let s = setup(&sim, json!({}));
    let out = collect_once(&s, &[]);
    let err = text(&out.stderr);
    // DLP.All cannot be caught up: --once says so and exits 1
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("AF20050"), "{err}");
    assert!(!err.contains("content not found"), "{err}");
    assert!(
        err.contains("DLP.All") && err.contains("unknown content type"),
        "the unknown content type and the body are named:\n{err}"
    );
    let truth = truth_of(
        &sim,
        &[
            "Audit.AzureActiveDirectory",
            "Audit.Exchange",
            "Audit.SharePoint",
            "Audit.General",
        ],
    );
    assert_store_equals_truth(&s.data, &truth);
    let st = stats_json(&s.data);
    let dlp = &st["content_types"]["DLP.All"];
    assert!(
        dlp["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("unknown content type")),
        "{dlp}"
    );
}

#[test]
fn max_window_secs_keeps_every_window_within_the_apis_limit() {
    let sim = Sim::start(&[
        "--days",
        "2",
        "--records-per-day",
        "1000",
        "--faults",
        "max_window_1h",
    ]);
    sim.freeze();
    let s = setup(&sim, json!({"max_window_secs": 3600}));
    let out = collect_once(&s, &[]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "collect --once failed:\n{err}");
    assert_store_equals_truth(&s.data, &sim.truth());
    assert_eq!(misbehaviour_kinds(&sim), Vec::<String>::new());
}

const ALL_FAULTS: &str = "throttle_403,throttle_429,throttle_retry_after,internal_500,unavailable_503,timeout_408,reset_mid_body,truncated_body,non_json_body,foreign_next_page,foreign_content_uri,clock_skew,lowercase_next_page";

/// `--now` late in the current hour, so the practice tenant's oldest blobs sit near the
/// 7-day edge of a clock 20 minutes ahead.
fn late_in_the_hour() -> String {
    let now = chrono::Utc::now();
    let now = chrono::DurationRound::duration_trunc(now, chrono::Duration::hours(1)).unwrap()
        + chrono::Duration::minutes(58);
    now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The run: every fault on from the start, seed 9, 5,000 records a day, truth
/// taken before the run. Nothing may be missing outside a gap.
#[test]
fn every_fault_from_the_start_loses_nothing_outside_a_gap() {
    let now = late_in_the_hour();
    let sim = Sim::start(&[
        "--seed",
        "9",
        "--records-per-day",
        "5000",
        "--now",
        &now,
        "--faults",
        ALL_FAULTS,
    ]);
    sim.freeze();
    first_backfill_edge_is_a_gap(&sim, true);
}

/// The skew switched on while running (the history was laid out on the unskewed clock):
/// blobs at the 7-day edge of the skewed clock cannot be listed; each missing record must
/// lie inside the first backfill's gap.
#[test]
fn what_the_first_backfill_cannot_list_is_a_gap_and_nothing_is_lost_outside_one() {
    let now = late_in_the_hour();
    let sim = Sim::start(&[
        "--seed",
        "9",
        "--records-per-day",
        "5000",
        "--now",
        &now,
        "--faults",
        &ALL_FAULTS.replace(",clock_skew", ""),
    ]);
    sim.freeze();
    sim.faults(&["clock_skew"], &[]);
    first_backfill_edge_is_a_gap(&sim, false);
}

/// Collects once; checks nothing is stored twice or invented, every missing record lies
/// inside a gap (none may be missing when `none_missing`: the truth follows the server's
/// clock), and the first backfill's edge is a gap of every content type.
fn first_backfill_edge_is_a_gap(sim: &Sim, none_missing: bool) {
    let truth = sim.truth();
    let s = setup(sim, json!({}));
    let out = collect_once(&s, &[]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "collect --once failed:\n{err}");
    let store = m365audit::store::Store::open_read_only(&s.data).expect("store");
    let ids: std::collections::BTreeSet<String> = store
        .record_keys()
        .unwrap()
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    assert!(
        ids.iter().all(|id| truth.contains_key(id)),
        "a stored record is not in the truth"
    );
    let st = stats_json(&s.data);
    let gaps = st["gaps"].as_array().cloned().unwrap_or_default();
    let clamped: Vec<&Value> = gaps.iter().filter(|g| g["kind"] == "clamped").collect();
    let missing: Vec<&Value> = truth
        .iter()
        .filter(|(id, _)| !ids.contains(*id))
        .map(|(_, v)| v)
        .collect();
    eprintln!(
        "{} truth records, {} stored, {} missing; gaps: {gaps:?}",
        truth.len(),
        ids.len(),
        missing.len()
    );
    assert!(
        !none_missing || missing.is_empty(),
        "{} records missing although the truth follows the server's clock",
        missing.len()
    );
    for r in &missing {
        let created = m365audit::model::parse_time(r["CreationTime"].as_str().unwrap())
            .expect("CreationTime");
        // A record is created before the blob that carries it, so a record whose blob was
        // in the unlistable range was created before that range's end.
        let inside = clamped.iter().any(|g| {
            m365audit::model::parse_time(g["window_end"].as_str().unwrap_or(""))
                .is_some_and(|end| created < end)
        });
        assert!(
            inside,
            "record {} (created {created}) is missing outside every gap: {gaps:?}",
            r["Id"]
        );
    }
    // The first backfill asked for 168 h: its unlistable edge is a gap of each content type.
    for ct in [
        "Audit.AzureActiveDirectory",
        "Audit.Exchange",
        "Audit.SharePoint",
        "Audit.General",
        "DLP.All",
    ] {
        assert!(
            clamped.iter().any(|g| g["content_type"] == ct
                && g["window_start"].is_string()
                && g["window_end"].is_string()),
            "{ct}: no gap for the first backfill's edge: {gaps:?}"
        );
    }
    let human = text(&run(&["stats", "--data", s.data.to_str().unwrap()]).stdout);
    assert!(human.contains("clamped"), "{human}");
}
