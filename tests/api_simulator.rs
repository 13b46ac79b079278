//! `collect::api` against the practice tenant (`m365audit::simulate::Simulator`, in-process,
//! 127.0.0.1 only): through `ensure_subscriptions`, `list_window` and `fetch_blob` the client
//! reaches exactly the simulator's ground truth — without faults, with every transient fault
//! on, and with foreign `NextPageUri` / `contentUri` hosts (which never receive the token;
//! the simulator's misbehaviour report stays empty). Audit-off and an expired secret are
//! named as such.

use chrono::{DateTime, Duration, Utc};
use m365audit::collect::api::{ApiClient, ApiError, RetryPolicy};
use m365audit::model::ContentType;
use m365audit::simulate::{SimOptions, Simulator};
use serde_json::Value;
use std::collections::BTreeSet;

fn options(faults: &[&str]) -> SimOptions {
    SimOptions {
        seed: 7,
        days: 7,
        records_per_day: 300,
        page_size: 20,
        blob_interval_secs: 3600,
        now: Some(
            DateTime::parse_from_rfc3339("2026-05-08T10:17:00Z")
                .expect("time")
                .with_timezone(&Utc),
        ),
        start_frozen: true,
        faults: faults.iter().map(|s| s.to_string()).collect(),
        ..SimOptions::default()
    }
}

fn client(sim: &Simulator) -> ApiClient {
    client_with(sim, "v2")
}

fn client_with(sim: &Simulator, auth_version: &str) -> ApiClient {
    let text = serde_json::json!({"inputs": {"office365": {
        "auth_version": auth_version,
        "credentials": {"client_id": sim.client_id, "client_secret": sim.client_secret,
                        "tenant_id": sim.tenant_id},
        "enabled": true, "id": "12345",
        "services": {"azure_active_directory": {}, "general_audit": {}, "exchange": {},
                     "sharepoint": {}, "dlp": {}},
        "login_url": sim.login_url, "api_url": sim.api_url,
        "requests_per_minute": 1_000_000, "max_concurrency": 8}}})
    .to_string();
    let cfg = m365audit::config::parse(&text, "simulator").expect("config");
    let policy = RetryPolicy {
        max_attempts: 10,
        base_delay: std::time::Duration::from_millis(5),
        max_delay: std::time::Duration::from_millis(50),
        max_retry_after: std::time::Duration::from_secs(2),
        ..RetryPolicy::default()
    };
    ApiClient::with_policy(&cfg.office365, policy).expect("client")
}

async fn control(sim: &Simulator, method: &str, path: &str, body: Option<Value>) -> String {
    let http = reqwest::Client::new();
    let url = format!("{}{path}", sim.control_url);
    let mut req = match method {
        "POST" => http.post(&url),
        _ => http.get(&url),
    };
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let r = req.send().await.expect("control plane");
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.text().await.expect("control body")
}

/// Every record Id reachable now: 24 h windows from the 7-day limit to the server's now.
async fn collect_ids(c: &ApiClient, now: DateTime<Utc>) -> Result<BTreeSet<String>, ApiError> {
    let mut ids = BTreeSet::new();
    for ct in ContentType::ALL {
        let mut start = now - Duration::days(7) + Duration::minutes(1);
        while start < now {
            let end = (start + Duration::hours(24)).min(now);
            for blob in c.list_window(ct, start, end).await? {
                let body = c.fetch_blob(&blob).await?;
                let recs: Vec<Value> = serde_json::from_slice(&body).expect("blob is JSON");
                for r in recs {
                    ids.insert(r["Id"].as_str().expect("Id").to_string());
                }
            }
            start = end;
        }
    }
    Ok(ids)
}

async fn truth_ids(sim: &Simulator) -> BTreeSet<String> {
    control(sim, "GET", "/__control/truth", None)
        .await
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("truth line");
            v["Id"].as_str().expect("truth Id").to_string()
        })
        .collect()
}

fn misbehaviours(report: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(report).expect("report JSON");
    v["misbehaviours"].as_array().cloned().unwrap_or_default()
}

/// Collects everything through the client and compares with the truth; returns the client
/// and the simulator's report (already checked for misbehaviours).
async fn run_to_truth(faults: &[&str], fault_percent: u32) -> (ApiClient, String) {
    let sim = Simulator::start(SimOptions {
        fault_percent,
        ..options(faults)
    })
    .await
    .expect("simulator");
    let c = client(&sim);
    for (ct, r) in c.ensure_subscriptions(&ContentType::ALL).await {
        r.unwrap_or_else(|e| panic!("{ct}: {e}"));
    }
    let now = c.server_now();
    let got = collect_ids(&c, now).await.expect("collect");
    let want = truth_ids(&sim).await;
    assert!(!want.is_empty(), "the simulator has no truth");
    let missing: Vec<_> = want.difference(&got).take(5).collect();
    let extra: Vec<_> = got.difference(&want).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "faults {faults:?}: {} missing (e.g. {missing:?}), {} extra (e.g. {extra:?})",
        want.difference(&got).count(),
        got.difference(&want).count()
    );
    let report = control(&sim, "GET", "/__control/report", None).await;
    assert!(misbehaviours(&report).is_empty(), "{report}");
    sim.shutdown().await;
    (c, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaches_the_ground_truth_without_faults() {
    run_to_truth(&[], 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_tokens_work_too() {
    let sim = Simulator::start(options(&[])).await.expect("simulator");
    let c = client_with(&sim, "v1");
    for (ct, r) in c.ensure_subscriptions(&ContentType::ALL).await {
        r.unwrap_or_else(|e| panic!("{ct}: {e}"));
    }
    assert_eq!(c.auth_state().state, "ok");
    assert_eq!(c.auth_state().tokens_issued, 1);
    let report = control(&sim, "GET", "/__control/report", None).await;
    assert!(misbehaviours(&report).is_empty(), "{report}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaches_the_ground_truth_with_every_transient_fault() {
    run_to_truth(
        &[
            "throttle_403",
            "throttle_429",
            "throttle_retry_after",
            "internal_500",
            "unavailable_503",
            "timeout_408",
            "reset_mid_body",
            "truncated_body",
            "non_json_body",
            "clock_skew",
        ],
        20,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_hosts_never_get_the_token_and_nothing_is_lost() {
    let (c, report) = run_to_truth(
        &[
            "foreign_next_page",
            "foreign_content_uri",
            "lowercase_next_page",
        ],
        50,
    )
    .await;
    let v: Value = serde_json::from_str(&report).expect("report");
    for f in ["foreign_next_page", "foreign_content_uri"] {
        assert!(
            v["faults_fired"][f].as_u64().unwrap_or(0) > 0,
            "{f} never fired: {report}"
        );
        assert!(
            c.stats().errors_by_code.get(f).copied().unwrap_or(0) > 0,
            "the client never saw {f}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_off_and_expired_secret_are_named() {
    let sim = Simulator::start(options(&["audit_off"]))
        .await
        .expect("simulator");
    let c = client(&sim);
    let r = c.ensure_subscriptions(&[ContentType::Exchange]).await;
    assert_eq!(r[0].1, Err(ApiError::AuditDisabled));
    sim.shutdown().await;

    let sim = Simulator::start(options(&["secret_expired"]))
        .await
        .expect("simulator");
    let c = client(&sim);
    let r = c.ensure_subscriptions(&[ContentType::Exchange]).await;
    assert!(matches!(r[0].1, Err(ApiError::Auth(_))), "{:?}", r[0].1);
    assert_eq!(c.auth_state().label, "client secret expired");
    assert!(!format!("{:?}", c.auth_state()).contains(&sim.client_secret));
    sim.shutdown().await;
}
