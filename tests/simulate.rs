//! The practice tenant end to end: the real binary's ready line, a full 7-day walk with
//! pagination that must equal the ground truth, determinism.

mod simulate_common;
use simulate_common::*;

use chrono::Duration;
use m365audit::simulate::SimOptions;
use serde_json::Value;
use std::io::BufRead as _;

fn sorted_normalized(lines: &[String]) -> Vec<String> {
    let mut v: Vec<String> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn binary_prints_ready_line_and_serves_tokens() {
    let mut child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_m365audit"))
            .args([
                "simulate",
                "--seed",
                "7",
                "--now",
                NOW,
                "--faults",
                "lowercase_next_page",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    for k in [
        "login_url",
        "api_url",
        "control_url",
        "tenant_id",
        "client_id",
        "client_secret",
    ] {
        assert!(
            v[k].as_str().is_some_and(|s| !s.is_empty()),
            "{k} in {line}"
        );
    }
    assert!(
        v["api_url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = http();
        let r = post_form(
            &http,
            &format!(
                "{}/{}/oauth2/token",
                v["login_url"].as_str().unwrap(),
                v["tenant_id"].as_str().unwrap()
            ),
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", v["client_id"].as_str().unwrap()),
                ("client_secret", v["client_secret"].as_str().unwrap()),
                ("resource", "https://manage.office.com"),
            ]),
        )
        .await;
        assert_eq!(r.status(), 200);
        let tok: Value = r.json().await.unwrap();
        assert!(
            tok["expires_in"].is_string(),
            "v1 returns numbers as strings: {tok}"
        );
        let c: Value = http
            .get(format!(
                "{}/__control/truth/count",
                v["control_url"].as_str().unwrap()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(c["total"].as_u64().unwrap() > 10_000, "{c}");
    });
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_m365audit"))
        .args(["simulate", "--faults", "nope"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("throttle_403"));
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_m365audit"))
        .args(["simulate", "--now", "yesterday"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walking_every_window_for_seven_days_gets_exactly_the_truth() {
    let c = Client::start(SimOptions {
        page_size: 7,
        ..opts()
    })
    .await;
    c.start_all().await;
    let got = c.walk_all(Duration::hours(24)).await;
    let truth = c.truth_lines().await;
    assert!(truth.len() > 12_000, "{}", truth.len());
    assert_eq!(got.len(), truth.len());
    assert_eq!(sorted_normalized(&got), sorted_normalized(&truth));
    let count = c.control_json("GET", "/__control/truth/count", None).await;
    assert_eq!(count["total"].as_u64().unwrap() as usize, truth.len());
    let rep = c.control_json("GET", "/__control/report", None).await;
    assert_eq!(rep["misbehaviours"], serde_json::json!([]), "{rep:#}");
    assert_eq!(
        rep["served"]["unique_records"].as_u64().unwrap() as usize,
        truth.len()
    );
    assert!(
        rep["served"]["duplicates"].as_u64().unwrap() > 0,
        "the API duplicates by design"
    );
    assert!(rep["served"]["pages"].as_u64().unwrap() > rep["served"]["listings"].as_u64().unwrap());
    c.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_same_truth_other_seed_other_tenant() {
    let a = Client::start(opts()).await;
    let b = Client::start(opts()).await;
    let d = Client::start(SimOptions { seed: 2, ..opts() }).await;
    let ta = a
        .control("GET", "/__control/truth", None)
        .await
        .bytes()
        .await
        .unwrap();
    let tb = b
        .control("GET", "/__control/truth", None)
        .await
        .bytes()
        .await
        .unwrap();
    let td = d
        .control("GET", "/__control/truth", None)
        .await
        .bytes()
        .await
        .unwrap();
    assert!(ta.len() > 1_000_000);
    assert_eq!(ta, tb, "same seed and --now must give byte-identical truth");
    assert_ne!(a.sim.tenant_id, d.sim.tenant_id);
    assert_ne!(ta, td);
    assert_eq!(a.sim.client_secret, b.sim.client_secret);
    for s in [a, b, d] {
        s.sim.shutdown().await;
    }
}
