//! Every fault of the practice tenant, by name: its exact shape, and that a correct
//! retrying, host-pinning client still gets exactly the ground truth with faults on.

mod simulate_common;
use simulate_common::*;

use chrono::Duration;
use m365audit::simulate::SimOptions;
use serde_json::{Value, json};

async fn set(c: &Client, on: &[&str], off: &[&str]) {
    let r = c
        .control(
            "POST",
            "/__control/faults",
            Some(json!({"on": on, "off": off}).to_string()),
        )
        .await;
    assert_eq!(r.status(), 200);
}

/// Requests `url` until `pred` accepts an outcome (status, headers, body or error).
async fn until<F>(c: &Client, url: &str, what: &str, pred: F)
where
    F: Fn(Result<(u16, reqwest::header::HeaderMap, Vec<u8>), String>) -> bool,
{
    for _ in 0..300 {
        let out = match c.http.get(url).bearer_auth(&c.token).send().await {
            Err(e) => Err(e.to_string()),
            Ok(r) => {
                let s = r.status().as_u16();
                let h = r.headers().clone();
                match r.bytes().await {
                    Ok(b) => Ok((s, h, b.to_vec())),
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        if pred(out) {
            return;
        }
    }
    panic!("fault {what} never showed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_transient_fault_has_its_shape() {
    let c = Client::start(opts()).await;
    c.start_all().await;
    let blobs = c
        .list_window(
            "Audit.AzureActiveDirectory",
            c.sim.now() - Duration::hours(24),
            c.sim.now(),
        )
        .await;
    let blob = format!(
        "{}?{}",
        blobs[3]["contentUri"].as_str().unwrap(),
        c.publisher()
    );
    let af = |b: &[u8]| {
        serde_json::from_slice::<Value>(b)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(String::from))
            .unwrap_or_default()
    };
    set(&c, &["throttle_403"], &[]).await;
    until(&c, &blob, "throttle_403", |o| matches!(o, Ok((403, h, b)) if af(&b) == "AF429" && !h.contains_key("retry-after") && String::from_utf8_lossy(&b).contains("Method=GetBlob"))).await;
    set(&c, &["throttle_429"], &["throttle_403"]).await;
    until(
        &c,
        &blob,
        "throttle_429",
        |o| matches!(o, Ok((429, h, b)) if af(&b) == "AF429" && !h.contains_key("retry-after")),
    )
    .await;
    set(&c, &["throttle_retry_after"], &["throttle_429"]).await;
    until(
        &c,
        &blob,
        "throttle_retry_after",
        |o| matches!(o, Ok((429, h, _)) if h.get("retry-after").is_some_and(|v| v == "1")),
    )
    .await;
    set(&c, &["internal_500"], &["throttle_retry_after"]).await;
    until(
        &c,
        &blob,
        "internal_500",
        |o| matches!(o, Ok((500, _, b)) if af(&b) == "AF50000"),
    )
    .await;
    set(&c, &["unavailable_503"], &["internal_500"]).await;
    until(&c, &blob, "unavailable_503", |o| {
        matches!(o, Ok((503, _, _)))
    })
    .await;
    set(&c, &["timeout_408"], &["unavailable_503"]).await;
    until(&c, &blob, "timeout_408", |o| matches!(o, Ok((408, _, _)))).await;
    set(&c, &["reset_mid_body"], &["timeout_408"]).await;
    until(&c, &blob, "reset_mid_body", |o| o.is_err()).await;
    set(&c, &["truncated_body"], &["reset_mid_body"]).await;
    until(&c, &blob, "truncated_body", |o| matches!(o, Ok((200, _, b)) if !b.is_empty() && serde_json::from_slice::<Value>(&b).is_err() && b[0] == b'[')).await;
    set(&c, &["non_json_body"], &["truncated_body"]).await;
    until(&c, &blob, "non_json_body", |o| matches!(o, Ok((200, h, b)) if h["content-type"].to_str().unwrap().starts_with("text/html") && serde_json::from_slice::<Value>(&b).is_err())).await;
    set(&c, &[], &["non_json_body"]).await;
    let f = c.control_json("GET", "/__control/faults", None).await;
    for n in [
        "throttle_403",
        "throttle_429",
        "throttle_retry_after",
        "internal_500",
        "unavailable_503",
        "timeout_408",
        "reset_mid_body",
        "truncated_body",
        "non_json_body",
    ] {
        assert!(f["fired"][n].as_u64().unwrap() >= 1, "{n}: {f}");
    }
    assert_eq!(f["on"], json!([]));
    c.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_client_gets_exactly_the_truth_through_every_transient_and_foreign_fault() {
    let faults = [
        "throttle_403",
        "throttle_429",
        "throttle_retry_after",
        "internal_500",
        "unavailable_503",
        "timeout_408",
        "reset_mid_body",
        "truncated_body",
        "non_json_body",
        "foreign_next_page",
        "foreign_content_uri",
        "lowercase_next_page",
    ];
    let c = Client::start(SimOptions {
        page_size: 20,
        faults: faults.iter().map(|s| s.to_string()).collect(),
        ..opts()
    })
    .await;
    // subscriptions may be hit by transient faults too: retry
    for ct in m365audit::model::ContentType::ALL {
        for _ in 0..20 {
            let r = c
                .post(&format!(
                    "{}/subscriptions/start?contentType={ct}&{}",
                    c.feed(),
                    c.publisher()
                ))
                .await;
            if r.status() == 200 {
                break;
            }
        }
    }
    let got = c.walk_all(Duration::hours(24)).await;
    let truth = c.truth_lines().await;
    let norm = |v: &[String]| {
        let mut x: Vec<String> = v
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap().to_string())
            .collect();
        x.sort();
        x
    };
    assert_eq!(got.len(), truth.len());
    assert_eq!(norm(&got), norm(&truth));
    let rep = c.control_json("GET", "/__control/report", None).await;
    let kinds: Vec<&str> = rep["misbehaviours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert!(!kinds.contains(&"token_sent_to_foreign_host"), "{kinds:?}");
    assert!(!kinds.contains(&"window_gap"), "{rep:#}");
    assert!(rep["faults_fired"]["foreign_next_page"].as_u64().unwrap() > 0);
    assert!(rep["faults_fired"]["foreign_content_uri"].as_u64().unwrap() > 0);
    c.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_hosts_catch_a_leaking_client() {
    let c = Client::start(SimOptions {
        page_size: 3,
        faults: vec!["foreign_next_page".into(), "foreign_content_uri".into()],
        fault_percent: 50,
        ..opts()
    })
    .await;
    c.start_all().await;
    let api_host = url::Url::parse(&c.sim.api_url).unwrap();
    let foreign = url::Url::parse(&c.sim.foreign_url).unwrap();
    assert_ne!(
        (api_host.host_str(), api_host.port()),
        (foreign.host_str(), foreign.port())
    );
    assert_ne!(
        api_host.host_str(),
        foreign.host_str(),
        "the foreign host differs by name, not only by port"
    );
    let (mut leaked, mut saw_foreign_uri) = (false, false);
    for _ in 0..40 {
        let r = c
            .get(&format!(
                "{}/subscriptions/content?contentType=Audit.SharePoint&{}",
                c.feed(),
                c.publisher()
            ))
            .await;
        let next = r
            .headers()
            .get("NextPageUri")
            .map(|v| v.to_str().unwrap().to_string());
        let blobs: Vec<Value> = r.json().await.unwrap();
        if let Some(n) = next.filter(|n| n.starts_with(&c.sim.foreign_url)) {
            // a careless client follows it with its token
            assert_eq!(c.get(&n).await.status(), 200);
            leaked = true;
        }
        saw_foreign_uri |= blobs.iter().any(|b| {
            b["contentUri"]
                .as_str()
                .unwrap()
                .starts_with(&c.sim.foreign_url)
        });
        if leaked && saw_foreign_uri {
            break;
        }
    }
    assert!(leaked, "no foreign NextPageUri in 40 listings");
    assert!(saw_foreign_uri, "no foreign contentUri in 40 listings");
    let rep = c.control_json("GET", "/__control/report", None).await;
    assert!(
        rep["misbehaviours"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["kind"] == "token_sent_to_foreign_host"),
        "{rep:#}"
    );
    c.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_faults_subscription_disabled_audit_off_secret_expired_clock_skew() {
    let c = Client::start(opts()).await;
    c.start_all().await;
    let (feed, p) = (c.feed(), c.publisher());
    let content = format!("{feed}/subscriptions/content?contentType=Audit.Exchange&{p}");
    // clock skew: the server's Date moves 20 minutes ahead
    let d0 = c.get(&content).await.headers()["date"]
        .to_str()
        .unwrap()
        .to_string();
    set(&c, &["clock_skew"], &[]).await;
    let d1 = c.get(&content).await.headers()["date"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        (d0.as_str(), d1.as_str()),
        (
            "Fri, 08 May 2026 10:17:00 GMT",
            "Fri, 08 May 2026 10:37:00 GMT"
        )
    );
    set(&c, &[], &["clock_skew"]).await;
    // subscription disabled mid-run
    set(&c, &["subscription_disabled"], &[]).await;
    let r = c.get(&content).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "AF20023");
    let l: Value = c
        .get(&format!("{feed}/subscriptions/list?{p}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        l.as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "disabled"),
        "{l}"
    );
    let v: Value = c
        .post(&format!(
            "{feed}/subscriptions/start?contentType=Audit.Exchange&{p}"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["error"]["code"], "AF20023");
    set(&c, &[], &["subscription_disabled"]).await;
    assert_eq!(
        c.get(&content).await.status(),
        400,
        "stays disabled until started again"
    );
    assert_eq!(
        c.post(&format!(
            "{feed}/subscriptions/start?contentType=Audit.Exchange&{p}"
        ))
        .await
        .status(),
        200
    );
    assert_eq!(c.get(&content).await.status(), 200);
    // unified audit logging off: the malformed "Tenant … does not exist" 400
    set(&c, &["audit_off"], &[]).await;
    let r = c
        .post(&format!(
            "{feed}/subscriptions/start?contentType=Audit.General&{p}"
        ))
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["x-aspnet-version"], "4.0.30319");
    let v: Value = r.json().await.unwrap();
    let code = v["error"]["code"].as_str().unwrap();
    assert!(
        code.starts_with("StartSubscription [CorrId=") && code.ends_with("[AppId"),
        "{code}"
    );
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("Tenant {} does not exist.", c.sim.tenant_id))
            && msg.contains("DataServiceException"),
        "{msg}"
    );
    let v: Value = c.get(&content).await.json().await.unwrap();
    assert!(
        v["error"]["code"]
            .as_str()
            .unwrap()
            .starts_with("ListContent [")
    );
    set(&c, &[], &["audit_off"]).await;
    assert_eq!(c.get(&content).await.status(), 200);
    // expired secret at the token endpoint
    set(&c, &["secret_expired"], &[]).await;
    let v: Value = token_for(
        &c.http,
        &c.sim,
        &c.sim.tenant_id,
        &c.sim.client_id,
        &c.sim.client_secret,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["error_codes"][0], 7000222);
    set(&c, &[], &["secret_expired"]).await;
    let f = c.control_json("GET", "/__control/faults", None).await;
    for n in ["subscription_disabled", "audit_off", "secret_expired"] {
        assert!(f["fired"][n].as_u64().unwrap() >= 1, "{n}");
    }
    c.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_per_publisher_identifier() {
    let c = Client::start(SimOptions {
        requests_per_minute: Some(5),
        ..opts()
    })
    .await;
    let list = format!("{}/subscriptions/list?{}", c.feed(), c.publisher());
    let mut throttled = 0;
    for _ in 0..12 {
        let r = c.get(&list).await;
        if r.status() == 403 {
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], "AF429");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("PublisherId={}", c.sim.tenant_id))
            );
            throttled += 1;
        }
    }
    assert!(throttled >= 6, "{throttled}");
    // another PublisherIdentifier has its own bucket
    let other = format!(
        "{}/subscriptions/list?PublisherIdentifier=00000000-1111-2222-3333-444444444444",
        c.feed()
    );
    assert_eq!(c.get(&other).await.status(), 200);
    c.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_blob_delay_after_a_new_subscription() {
    let c = Client::start(SimOptions {
        first_blob_delay_secs: 3600,
        ..opts()
    })
    .await;
    c.start_all().await;
    let now = c.sim.now();
    assert!(
        c.list_window("Audit.Exchange", now - Duration::hours(24), now)
            .await
            .is_empty()
    );
    c.control("POST", "/__control/advance?seconds=3601", None)
        .await;
    assert!(
        !c.list_window("Audit.Exchange", now - Duration::hours(20), now)
            .await
            .is_empty()
    );
    c.sim.shutdown().await;
}
