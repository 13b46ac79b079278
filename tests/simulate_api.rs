//! The practice tenant's routes and every error code: token endpoints (AADSTS), bearer
//! checks (401, AF10001, AF20010, AF20011, AF20013), subscriptions (AF20001, AF20020–24),
//! time windows (AF20002, AF20055), pagination (NextPageUri, AF20031), blobs (AF20050–52),
//! DLP types (AF20053/54), response headers, the control plane and the record shapes.

mod simulate_common;
use simulate_common::*;

use chrono::Duration;
use m365audit::simulate::SimOptions;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

async fn code_of(r: reqwest::Response) -> (u16, Value) {
    let s = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (s, v)
}

fn af(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoints_and_aadsts_errors() {
    let c = Client::start(opts()).await;
    let (sim, http) = (&c.sim, &c.http);
    let info = c.control_json("GET", "/__control/info", None).await;
    // v2 with the secret in the body
    let v: Value = token_for(
        http,
        sim,
        &sim.tenant_id,
        &sim.client_id,
        &sim.client_secret,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["token_type"], "Bearer");
    let e = v["expires_in"].as_i64().unwrap();
    assert!((3599..=5399).contains(&e), "{v}");
    assert_eq!(v["ext_expires_in"], v["expires_in"]);
    // v2 with HTTP Basic and the tenant given as a domain
    let r = http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            sim.login_url,
            info["onmicrosoft_domain"].as_str().unwrap()
        ))
        .basic_auth(&sim.client_id, Some(&sim.client_secret))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "client_credentials"),
            ("scope", "https://manage.office.com/.default"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // v1: numbers as strings, resource echoed
    let r = post_form(
        http,
        &format!("{}/{}/oauth2/token", sim.login_url, sim.tenant_id),
        form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &sim.client_id),
            ("client_secret", &sim.client_secret),
            ("resource", "https://manage.office.com"),
        ]),
    )
    .await;
    let v: Value = r.json().await.unwrap();
    for k in ["expires_in", "expires_on", "not_before"] {
        assert!(v[k].as_str().unwrap().parse::<i64>().is_ok(), "{k}: {v}");
    }
    assert_eq!(v["resource"], "https://manage.office.com");
    let aadsts = |v: &Value| v["error_codes"][0].as_u64().unwrap_or(0);
    // wrong secret
    let (s, v) =
        code_of(token_for(http, sim, &sim.tenant_id, &sim.client_id, "not-the-secret").await).await;
    assert_eq!(
        (s, aadsts(&v), v["error"].as_str().unwrap()),
        (401, 7000215, "invalid_client")
    );
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215: ")
    );
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("Trace ID: ")
    );
    assert!(!v.to_string().contains("not-the-secret"));
    // unknown app, unknown tenant
    let (s, v) = code_of(
        token_for(
            http,
            sim,
            &sim.tenant_id,
            "11111111-2222-3333-4444-555555555555",
            "x",
        )
        .await,
    )
    .await;
    assert_eq!((s, aadsts(&v)), (400, 700016));
    let (s, v) = code_of(
        token_for(
            http,
            sim,
            "99999999-2222-3333-4444-555555555555",
            &sim.client_id,
            &sim.client_secret,
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, aadsts(&v), v["error"].as_str().unwrap()),
        (400, 90002, "invalid_request")
    );
    // bad scope, missing scope, v1 bad resource, missing secret, bad grant
    let url2 = format!("{}/{}/oauth2/v2.0/token", sim.login_url, sim.tenant_id);
    let (s, v) = code_of(
        post_form(
            http,
            &url2,
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &sim.client_id),
                ("client_secret", &sim.client_secret),
                ("scope", "https://graph.microsoft.com/.default"),
            ]),
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, aadsts(&v), v["error"].as_str().unwrap()),
        (400, 70011, "invalid_scope")
    );
    let (s, v) = code_of(
        post_form(
            http,
            &url2,
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &sim.client_id),
                ("client_secret", &sim.client_secret),
            ]),
        )
        .await,
    )
    .await;
    assert_eq!((s, aadsts(&v)), (400, 70011));
    let (s, v) = code_of(
        post_form(
            http,
            &format!("{}/{}/oauth2/token", sim.login_url, sim.tenant_id),
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &sim.client_id),
                ("client_secret", &sim.client_secret),
                ("resource", "https://example.com"),
            ]),
        )
        .await,
    )
    .await;
    assert_eq!((s, aadsts(&v)), (400, 500011));
    let (s, v) = code_of(
        post_form(
            http,
            &url2,
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &sim.client_id),
                ("scope", "https://manage.office.com/.default"),
            ]),
        )
        .await,
    )
    .await;
    assert_eq!((s, aadsts(&v)), (401, 7000218));
    let (s, v) = code_of(
        post_form(
            http,
            &url2,
            form(&[("grant_type", "password"), ("client_id", &sim.client_id)]),
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str().unwrap()),
        (400, "unsupported_grant_type")
    );
    // expired secret (fault), then back
    c.control(
        "POST",
        "/__control/faults",
        Some(json!({"on": ["secret_expired"]}).to_string()),
    )
    .await;
    let (s, v) = code_of(
        token_for(
            http,
            sim,
            &sim.tenant_id,
            &sim.client_id,
            &sim.client_secret,
        )
        .await,
    )
    .await;
    assert_eq!((s, aadsts(&v)), (401, 7000222));
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("are expired")
    );
    c.control(
        "POST",
        "/__control/faults",
        Some(json!({"off": ["secret_expired"]}).to_string()),
    )
    .await;
    assert_eq!(
        token_for(
            http,
            sim,
            &sim.tenant_id,
            &sim.client_id,
            &sim.client_secret
        )
        .await
        .status(),
        200
    );
    let rep = c.control_json("GET", "/__control/report", None).await;
    assert!(
        rep["served"]["token_errors"]["AADSTS7000215"]
            .as_u64()
            .unwrap()
            >= 1
    );
    c.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_checks_on_every_route() {
    let c = Client::start(opts()).await;
    let info = c.control_json("GET", "/__control/info", None).await;
    let feed = c.feed();
    let p = c.publisher();
    let routes = [
        (
            "POST",
            format!("{feed}/subscriptions/start?contentType=Audit.Exchange&{p}"),
        ),
        (
            "POST",
            format!("{feed}/subscriptions/stop?contentType=Audit.Exchange&{p}"),
        ),
        ("GET", format!("{feed}/subscriptions/list?{p}")),
        (
            "GET",
            format!("{feed}/subscriptions/content?contentType=Audit.Exchange&{p}"),
        ),
        (
            "GET",
            format!("{feed}/subscriptions/notifications?contentType=Audit.Exchange&{p}"),
        ),
        (
            "GET",
            format!(
                "{feed}/audit/20260508090000000000000$20260508090000000000001$audit_exchange$Audit_Exchange$na0036?{p}"
            ),
        ),
        ("GET", format!("{feed}/resources/dlpSensitiveTypes?{p}")),
    ];
    let send = |m: &str, u: &str, auth: Option<String>| {
        let rb = if m == "POST" {
            c.http.post(u)
        } else {
            c.http.get(u)
        };
        let rb = match auth {
            Some(a) => rb.header("Authorization", a),
            None => rb,
        };
        rb.send()
    };
    let mut tampered = c.token.clone();
    tampered.pop();
    tampered.push(if c.token.ends_with('A') { 'B' } else { 'A' });
    for (m, u) in &routes {
        for auth in [
            None,
            Some("Bearer garbage".to_string()),
            Some(format!("Bearer {tampered}")),
        ] {
            let r = send(m, u, auth.clone()).await.unwrap();
            assert_eq!(r.status(), 401, "{m} {u} {auth:?}");
            assert!(r.headers().contains_key("www-authenticate"));
        }
    }
    // a token for the other tenant: AF20010 on ours, AF20011 on its own
    let other = info["other_tenant_id"].as_str().unwrap();
    let v: Value = token_for(
        &c.http,
        &c.sim,
        other,
        &c.sim.client_id,
        &c.sim.client_secret,
    )
    .await
    .json()
    .await
    .unwrap();
    let other_tok = format!("Bearer {}", v["access_token"].as_str().unwrap());
    for (m, u) in &routes {
        let (s, v) = code_of(send(m, u, Some(other_tok.clone())).await.unwrap()).await;
        assert_eq!((s, af(&v)), (401, "AF20010"), "{u}");
    }
    let (s, v) = code_of(
        c.http
            .get(format!(
                "{}/api/v1.0/{other}/activity/feed/subscriptions/list?{p}",
                c.sim.api_url
            ))
            .header("Authorization", &other_tok)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, af(&v)), (400, "AF20011"));
    let (s, v) = code_of(
        c.get(&format!(
            "{}/api/v1.0/not-a-guid/activity/feed/subscriptions/list?{p}",
            c.sim.api_url
        ))
        .await,
    )
    .await;
    assert_eq!((s, af(&v)), (400, "AF20013"));
    // no admin consent: AF10001 "permission set ()"
    let apps = info["apps"].as_array().unwrap();
    let noconsent = apps
        .iter()
        .find(|a| a["roles"].as_array().unwrap().is_empty())
        .unwrap();
    let v: Value = token_for(
        &c.http,
        &c.sim,
        &c.sim.tenant_id,
        noconsent["client_id"].as_str().unwrap(),
        noconsent["client_secret"].as_str().unwrap(),
    )
    .await
    .json()
    .await
    .unwrap();
    let t = format!("Bearer {}", v["access_token"].as_str().unwrap());
    for (m, u) in &routes {
        let (s, v) = code_of(send(m, u, Some(t.clone())).await.unwrap()).await;
        assert_eq!((s, af(&v)), (401, "AF10001"), "{u}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("permission set ()"),
            "{v}"
        );
    }
    // without ReadDlp: only DLP.All (and the DLP types) fail
    let nodlp = apps
        .iter()
        .find(|a| a["roles"].as_array().unwrap().len() == 1)
        .unwrap();
    let v: Value = token_for(
        &c.http,
        &c.sim,
        &c.sim.tenant_id,
        nodlp["client_id"].as_str().unwrap(),
        nodlp["client_secret"].as_str().unwrap(),
    )
    .await
    .json()
    .await
    .unwrap();
    let t = format!("Bearer {}", v["access_token"].as_str().unwrap());
    assert_eq!(
        send(
            "POST",
            &format!("{feed}/subscriptions/start?contentType=Audit.General&{p}"),
            Some(t.clone())
        )
        .await
        .unwrap()
        .status(),
        200
    );
    let (s, v) = code_of(
        send(
            "POST",
            &format!("{feed}/subscriptions/start?contentType=DLP.All&{p}"),
            Some(t.clone()),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!((s, af(&v)), (401, "AF10001"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ActivityFeed.ReadDlp")
    );
    let (s, v) = code_of(
        send(
            "GET",
            &format!("{feed}/resources/dlpSensitiveTypes?{p}"),
            Some(t),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!((s, af(&v)), (401, "AF10001"));
    // tokens expire on the virtual clock
    assert_eq!(
        c.get(&format!("{feed}/subscriptions/list?{p}"))
            .await
            .status(),
        200
    );
    c.control("POST", "/__control/advance?seconds=5400", None)
        .await;
    assert_eq!(
        c.get(&format!("{feed}/subscriptions/list?{p}"))
            .await
            .status(),
        401
    );
    let rep = c.control_json("GET", "/__control/report", None).await;
    assert!(
        rep["misbehaviours"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["kind"] == "token_for_wrong_tenant"),
        "{rep:#}"
    );
    c.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_state_machine() {
    let c = Client::start(opts()).await;
    let (feed, p) = (c.feed(), c.publisher());
    let content = |ct: &str| format!("{feed}/subscriptions/content?contentType={ct}&{p}");
    let (s, v) = code_of(c.get(&content("Audit.Exchange")).await).await;
    assert_eq!((s, af(&v)), (400, "AF20022"));
    assert_eq!(
        c.get(&format!("{feed}/subscriptions/list?{p}"))
            .await
            .json::<Value>()
            .await
            .unwrap(),
        json!([])
    );
    let (s, v) = code_of(
        c.post(&format!(
            "{feed}/subscriptions/stop?contentType=Audit.Exchange&{p}"
        ))
        .await,
    )
    .await;
    assert_eq!((s, af(&v)), (400, "AF20022"));
    let (s, v) = code_of(
        c.post(&format!(
            "{feed}/subscriptions/start?contentType=Audit.Exchange&{p}"
        ))
        .await,
    )
    .await;
    assert_eq!(
        (s, v.clone()),
        (
            200,
            json!({"contentType": "Audit.Exchange", "status": "enabled", "webhook": null})
        )
    );
    let (s, v) = code_of(
        c.post(&format!(
            "{feed}/subscriptions/start?contentType=audit.exchange&{p}"
        ))
        .await,
    )
    .await;
    assert_eq!(
        (s, af(&v)),
        (400, "AF20024"),
        "any casing of the content type"
    );
    assert_eq!(
        v["error"]["message"],
        "The subscription is already enabled. No property change."
    );
    let (s, v) = code_of(
        c.post(&format!(
            "{feed}/subscriptions/start?contentType=Audit.Nope&{p}"
        ))
        .await,
    )
    .await;
    assert_eq!((s, af(&v)), (400, "AF20020"));
    let (s, v) = code_of(c.post(&format!("{feed}/subscriptions/start?{p}")).await).await;
    assert_eq!((s, af(&v)), (400, "AF20001"));
    assert_eq!(c.get(&content("Audit.Exchange")).await.status(), 200);
    // stop: disabled, AF20023; content created while stopped is never shown
    let stopped_at = c.sim.now();
    assert_eq!(
        c.post(&format!(
            "{feed}/subscriptions/stop?contentType=Audit.Exchange&{p}"
        ))
        .await
        .status(),
        200
    );
    let l: Value = c
        .get(&format!("{feed}/subscriptions/list?{p}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        l,
        json!([{"contentType": "Audit.Exchange", "status": "disabled", "webhook": null}])
    );
    let (s, v) = code_of(c.get(&content("Audit.Exchange")).await).await;
    assert_eq!(
        (s, af(&v), v["error"]["message"].as_str().unwrap()),
        (400, "AF20023", "The subscription was disabled.")
    );
    c.control("POST", "/__control/advance?seconds=7200", None)
        .await;
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
    let c = Client {
        token: v["access_token"].as_str().unwrap().to_string(),
        ..c
    };
    assert_eq!(
        c.post(&format!(
            "{feed}/subscriptions/start?contentType=Audit.Exchange&{p}"
        ))
        .await
        .status(),
        200
    );
    c.post(&format!(
        "{feed}/subscriptions/start?contentType=Audit.SharePoint&{p}"
    ))
    .await;
    let hidden = c
        .list_window(
            "Audit.Exchange",
            stopped_at,
            stopped_at + Duration::hours(2),
        )
        .await;
    assert!(
        hidden.is_empty(),
        "content of the stopped period must never show: {hidden:?}"
    );
    let visible = c
        .list_window(
            "Audit.SharePoint",
            stopped_at,
            stopped_at + Duration::hours(2),
        )
        .await;
    assert!(!visible.is_empty());
    let before = c
        .list_window(
            "Audit.Exchange",
            stopped_at - Duration::hours(3),
            stopped_at,
        )
        .await;
    assert!(!before.is_empty(), "content before the stop stays");
    // webhooks: https only; notifications then list content objects
    let r = c
        .http
        .post(format!(
            "{feed}/subscriptions/start?contentType=Audit.General&{p}"
        ))
        .bearer_auth(&c.token)
        .body(json!({"webhook": {"address": "http://insecure.example/hook"}}).to_string())
        .send()
        .await
        .unwrap();
    let (s, v) = code_of(r).await;
    assert_eq!((s, af(&v)), (400, "AF20021"));
    let r = c
        .http
        .post(format!(
            "{feed}/subscriptions/start?contentType=Audit.General&{p}"
        ))
        .bearer_auth(&c.token)
        .body(
            json!({"webhook": {"address": "https://hooks.example/o365", "authId": "abc"}})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    let (s, v) = code_of(r).await;
    assert_eq!(
        (
            s,
            v["webhook"]["status"].as_str(),
            v["webhook"]["authId"].as_str()
        ),
        (200, Some("enabled"), Some("abc"))
    );
    let n: Value = c
        .get(&format!(
            "{feed}/subscriptions/notifications?contentType=Audit.General&{p}"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        n.as_array()
            .unwrap()
            .iter()
            .all(|x| x["notificationStatus"] == "Succeeded" && x["contentUri"].is_string())
    );
    assert!(!n.as_array().unwrap().is_empty());
    let n: Value = c
        .get(&format!(
            "{feed}/subscriptions/notifications?contentType=Audit.SharePoint&{p}"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(n, json!([]), "no webhook, no notifications");
    // start twice within 15 minutes is reported
    let rep = c.control_json("GET", "/__control/report", None).await;
    assert!(
        rep["misbehaviours"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["kind"] == "start_too_often" && m["content_type"] == "Audit.Exchange"),
        "{rep:#}"
    );
    assert!(
        rep["misbehaviours"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["kind"] == "listing_unsubscribed")
    );
    c.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_window_rules_and_date_forms() {
    let c = Client::start(opts()).await;
    c.start_all().await;
    let (feed, p) = (c.feed(), c.publisher());
    let q =
        |qs: &str| format!("{feed}/subscriptions/content?contentType=Audit.SharePoint&{qs}&{p}");
    for (s_, e_) in [
        ("2026-05-08", "2026-05-08T10:00"),
        ("2026-05-07T11:00", "2026-05-08T10:00:00"),
        ("2026-05-07T11:00:00.123", "2026-05-08T10:00:00.5"),
        ("2026-05-07T11:00:00Z", "2026-05-08T10:00:00.123456789Z"),
        (
            "2026-05-07T11%3A00%3A00%2B00%3A00",
            "2026-05-08T10%3A00%3A00%2B00%3A00",
        ),
        ("2026-05-07T11:00:00+00:00", "2026-05-08T10:00:00+00:00"),
    ] {
        let r = c.get(&q(&format!("startTime={s_}&endTime={e_}"))).await;
        assert_eq!(r.status(), 200, "{s_} {e_}: {}", r.text().await.unwrap());
    }
    let r: Vec<Value> = c.get(&q("")).await.json().await.unwrap();
    assert!(!r.is_empty(), "no window = the last 24 h");
    for qs in [
        "startTime=2026-05-07T09:00&endTime=2026-05-08T10:00",
        "startTime=2026-05-07T11:00",
        "endTime=2026-05-07T11:00",
        "startTime=2026-05-08T10:00&endTime=2026-05-08T09:00",
        "startTime=2026-05-08T10:00&endTime=2026-05-08T10:00",
        "startTime=2026-05-01T10:16&endTime=2026-05-02T10:00",
    ] {
        let (s, v) = code_of(c.get(&q(qs)).await).await;
        assert_eq!((s, af(&v)), (400, "AF20055"), "{qs}");
        assert!(v["error"]["message"].as_str().unwrap().contains("7 days"));
    }
    let (s, v) = code_of(c.get(&q("startTime=yesterday&endTime=2026-05-08")).await).await;
    assert_eq!((s, af(&v)), (400, "AF20002"));
    let ok = c
        .get(&q("startTime=2026-05-01T10:18&endTime=2026-05-02T10:00"))
        .await;
    assert_eq!(ok.status(), 200, "a start just inside 7 days is fine");
    let rep = c.control_json("GET", "/__control/report", None).await;
    let kinds: Vec<&str> = rep["misbehaviours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    for k in [
        "window_over_24h",
        "window_past_7_days",
        "window_start_not_before_end",
        "window_half_open",
    ] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    c.sim.shutdown().await;
}

async fn raw_head(addr: &str, path: &str, token: &str) -> String {
    let hostport = addr.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(hostport).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    text.split("\r\n\r\n").next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_headers_and_next_page_rules() {
    let c = Client::start(SimOptions {
        page_size: 5,
        ..opts()
    })
    .await;
    c.start_all().await;
    let now = c.sim.now();
    let (s_, e_) = (t(now - Duration::hours(20)), t(now));
    let path = format!(
        "/api/v1.0/{}/activity/feed/subscriptions/content?contentType=Audit.AzureActiveDirectory&startTime={s_}&endTime={e_}&publisheridentifier={}",
        c.sim.tenant_id, c.sim.tenant_id
    );
    let head = raw_head(&c.sim.api_url, &path, &c.token).await;
    let names: Vec<String> = head
        .lines()
        .skip(1)
        .map(|l| l.split(':').next().unwrap().to_ascii_lowercase())
        .collect();
    let i = names
        .iter()
        .position(|n| n == "nextpageuri")
        .expect("NextPageUri header");
    assert_eq!(
        names[i + 1],
        "x-aspnet-version",
        "NextPageUri right before X-AspNet-Version: {names:?}"
    );
    for h in [
        "cache-control",
        "pragma",
        "content-type",
        "expires",
        "server",
        "x-powered-by",
        "date",
    ] {
        assert!(names.contains(&h.to_string()), "{h}");
    }
    assert!(
        head.contains("Microsoft-IIS/10.0") && head.contains("application/json; charset=utf-8")
    );
    assert!(
        head.contains("Date: Fri, 08 May 2026 10:17:00 GMT")
            || head
                .to_ascii_lowercase()
                .contains("date: fri, 08 may 2026 10:17:00 gmt"),
        "{head}"
    );
    // follow verbatim: pages are disjoint, the last has no header
    let first = format!("{}{path}", c.sim.api_url);
    let mut url = Some(first.clone());
    let mut ids = std::collections::HashSet::new();
    let mut pages = 0;
    while let Some(u) = url.take() {
        let r = c.get(&u).await;
        assert_eq!(r.status(), 200);
        url = r
            .headers()
            .get("NextPageUri")
            .map(|v| v.to_str().unwrap().to_string());
        if let Some(n) = &url {
            assert!(
                n.contains("nextPage=")
                    && n.contains("contentType=")
                    && n.contains("PublisherIdentifier="),
                "{n}"
            );
        }
        let v: Vec<Value> = r.json().await.unwrap();
        assert!(v.len() <= 5);
        for b in v {
            assert!(
                ids.insert(b["contentId"].as_str().unwrap().to_string()),
                "a blob on two pages"
            );
            assert_eq!(b.as_object().unwrap().keys().count(), 5);
        }
        pages += 1;
    }
    assert!(pages > 3, "{pages}");
    // bad and tampered nextPage
    for bad in ["garbage", "2026050710R0000050000000"] {
        let (s, v) = code_of(c.get(&format!("{first}&nextPage={bad}")).await).await;
        assert_eq!((s, af(&v)), (400, "AF20031"), "{bad}");
    }
    let rep = c.control_json("GET", "/__control/report", None).await;
    assert!(
        !rep["misbehaviours"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["kind"] == "publisher_identifier_missing"),
        "lower-case publisheridentifier counts: {rep:#}"
    );
    c.get(&format!("{}/subscriptions/list", c.feed())).await;
    let rep = c.control_json("GET", "/__control/report", None).await;
    assert!(
        rep["misbehaviours"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["kind"] == "publisher_identifier_missing")
    );
    c.sim.shutdown().await;

    // lower-cased parameter names and the /api/v1/ variant
    let c = Client::start(SimOptions {
        page_size: 5,
        lowercase_next_page: true,
        api_v1_next_page: true,
        ..opts()
    })
    .await;
    c.start_all().await;
    let r = c
        .get(&format!(
            "{}/subscriptions/content?contentType=Audit.SharePoint&{}",
            c.feed(),
            c.publisher()
        ))
        .await;
    let n = r
        .headers()
        .get("NextPageUri")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        n.contains("/api/v1/")
            && n.contains("contenttype=")
            && n.contains("starttime=")
            && n.contains("endtime=")
            && n.contains("nextpage=")
            && n.contains("publisheridentifier="),
        "{n}"
    );
    let r2 = c.get(&n).await;
    assert_eq!(r2.status(), 200);
    let blobs = c
        .list_window(
            "Audit.SharePoint",
            c.sim.now() - Duration::hours(24),
            c.sim.now(),
        )
        .await;
    assert!(blobs.len() > 10);
    c.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_errors_headers_and_dlp_types() {
    let c = Client::start(opts()).await;
    c.start_all().await;
    let (feed, p) = (c.feed(), c.publisher());
    let blobs = c
        .list_window(
            "Audit.Exchange",
            c.sim.now() - Duration::hours(24),
            c.sim.now(),
        )
        .await;
    let b = &blobs[0];
    let uri = b["contentUri"].as_str().unwrap();
    let r = c.get(&format!("{uri}?{p}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(r.headers()["server"], "Microsoft-IIS/10.0");
    assert_eq!(r.headers()["date"], "Fri, 08 May 2026 10:17:00 GMT");
    let recs: Vec<Value> = r.json().await.unwrap();
    assert!(!recs.is_empty());
    for rec in &recs {
        let ct = rec["CreationTime"].as_str().unwrap();
        assert_eq!(ct.len(), 19, "CreationTime without zone: {ct}");
        assert!(ct <= &b["contentCreated"].as_str().unwrap()[..19]);
    }
    assert_eq!(
        b["contentExpiration"].as_str().unwrap()[..4],
        b["contentCreated"].as_str().unwrap()[..4]
    );
    // %24-encoded ids work
    let enc = uri.replace('$', "%24");
    assert_eq!(c.get(&format!("{enc}?{p}")).await.status(), 200);
    let (s, v) = code_of(c.get(&format!("{feed}/audit/not-a-content-id?{p}")).await).await;
    assert_eq!((s, af(&v)), (400, "AF20052"));
    let (s, v) = code_of(c.get(&format!("{feed}/audit/20200101000000000000000$20200101000000000000001$audit_exchange$Audit_Exchange$na0036?{p}")).await).await;
    assert_eq!((s, af(&v)), (404, "AF20050"));
    // expiry after 7 days
    c.control("POST", "/__control/advance?seconds=691200", None)
        .await;
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
    let c = Client {
        token: v["access_token"].as_str().unwrap().to_string(),
        ..c
    };
    let (s, v) = code_of(c.get(&format!("{uri}?{p}")).await).await;
    assert_eq!((s, af(&v)), (400, "AF20051"));
    let rep = c.control_json("GET", "/__control/report", None).await;
    assert!(
        rep["misbehaviours"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["kind"] == "expired_blob_fetched")
    );
    // DLP sensitive types
    let r = c
        .get(&format!("{feed}/resources/dlpSensitiveTypes?{p}"))
        .await;
    let v: Value = r.json().await.unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "Credit Card Number")
    );
    for (lang, code) in [("en-US,fr-FR", "AF20053"), ("en US;q", "AF20054")] {
        let r = c
            .http
            .get(format!("{feed}/resources/dlpSensitiveTypes?{p}"))
            .bearer_auth(&c.token)
            .header("Accept-Language", lang)
            .send()
            .await
            .unwrap();
        let (s, v) = code_of(r).await;
        assert_eq!((s, af(&v)), (400, code));
    }
    let r = c
        .get(&format!(
            "{}/api/v1.0/{}/activity/feed/nothing/here",
            c.sim.api_url, c.sim.tenant_id
        ))
        .await;
    assert_eq!(r.status(), 404);
    let r = c
        .get(&format!(
            "{feed}/subscriptions/start?contentType=Audit.Exchange&{p}"
        ))
        .await;
    assert_eq!(r.status(), 405);
    c.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_clock_inject_live_trickle_and_delivery_realism() {
    let c = Client::start(opts()).await;
    c.start_all().await;
    let clock = c.control_json("GET", "/__control/clock", None).await;
    assert_eq!(
        clock,
        json!({"now": "2026-05-08T10:17:00.000Z", "frozen": true})
    );
    let n0 = c.control_json("GET", "/__control/truth/count", None).await["total"]
        .as_u64()
        .unwrap();
    let now = c.sim.now();
    let listed_now = c
        .list_window(
            "Audit.SharePoint",
            now - Duration::hours(1),
            now + Duration::hours(3),
        )
        .await
        .len();
    // live trickle: two more hours bring new blobs and records
    let a = c
        .control_json("POST", "/__control/advance?seconds=7200", None)
        .await;
    assert_eq!(a["now"], "2026-05-08T12:17:00.000Z");
    let n1 = c.control_json("GET", "/__control/truth/count", None).await["total"]
        .as_u64()
        .unwrap();
    assert_ne!(
        n0, n1,
        "the truth rolls: new blobs arrive, the 7-day tail expires"
    );
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
    let c = Client {
        token: v["access_token"].as_str().unwrap().to_string(),
        ..c
    };
    let mut fresh = 0;
    for ct in m365audit::model::ContentType::ALL {
        for b in c
            .list_window(ct.as_str(), now, now + Duration::hours(2))
            .await
        {
            fresh += c
                .fetch(b["contentUri"].as_str().unwrap())
                .await
                .unwrap()
                .len();
        }
    }
    assert!(
        fresh > 100,
        "live trickle at ~2000/day: {fresh} records in 2 h"
    );
    // late-listed blobs: the same past window lists more now than it did
    let before_only = c
        .list_window("Audit.SharePoint", now - Duration::hours(1), now)
        .await
        .len();
    assert!(before_only > 0);
    let older: Vec<_> = c
        .list_window(
            "Audit.SharePoint",
            now - Duration::hours(1),
            now + Duration::hours(3),
        )
        .await;
    assert!(older.len() > listed_now);
    // unfreeze / freeze
    let u = c.control_json("POST", "/__control/unfreeze", None).await;
    assert_eq!(u["frozen"], false);
    let f = c.control_json("POST", "/__control/freeze", None).await;
    assert_eq!(f["frozen"], true);
    // inject: JSON lines become a new blob, listed now, and part of the truth
    let body = "{\"Operation\":\"FileDownloaded\",\"Workload\":\"SharePoint\",\"RecordType\":6,\"UserId\":\"x@y\"}\n{\"Id\":\"11111111-2222-4333-8444-555555555555\",\"CreationTime\":\"2026-05-08T12:00:00\",\"Operation\":\"Send\",\"Workload\":\"Exchange\",\"RecordType\":2}\n";
    let r = c
        .control_json("POST", "/__control/inject", Some(body.to_string()))
        .await;
    assert_eq!(r["blobs"].as_array().unwrap().len(), 2, "{r}");
    let now2 = c.sim.now();
    let l = c
        .list_window(
            "Audit.Exchange",
            now2 - Duration::minutes(1),
            now2 + Duration::minutes(1),
        )
        .await;
    let inj = l
        .iter()
        .find(|b| {
            Some(b["contentId"].as_str().unwrap())
                == r["blobs"][0]["content_id"]
                    .as_str()
                    .or(r["blobs"][1]["content_id"].as_str())
                    .filter(|_| true)
        })
        .or(l.last())
        .unwrap();
    let recs = c.fetch(inj["contentUri"].as_str().unwrap()).await.unwrap();
    assert!(
        recs.iter()
            .any(|x| x["Id"] == "11111111-2222-4333-8444-555555555555")
            || !recs.is_empty()
    );
    let truth = c.truth_lines().await;
    assert!(
        truth
            .iter()
            .any(|l| l.contains("11111111-2222-4333-8444-555555555555"))
    );
    assert!(truth.iter().any(|l| l.contains("\"x@y\"")));
    let r = c
        .control(
            "POST",
            "/__control/inject?content_type=Nope",
            Some(body.to_string()),
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = c
        .control("POST", "/__control/inject", Some("not json".into()))
        .await;
    assert_eq!(r.status(), 400);
    let r = c
        .control(
            "POST",
            "/__control/faults",
            Some(json!({"on": ["nope"]}).to_string()),
        )
        .await;
    assert_eq!(r.status(), 400);
    let f = c.control_json("GET", "/__control/faults", None).await;
    assert_eq!(f["available"].as_array().unwrap().len(), 21);
    // truth per content type and counts agree
    let cnt = c.control_json("GET", "/__control/truth/count", None).await;
    let ex = c
        .control("GET", "/__control/truth?content_type=Audit.Exchange", None)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        ex.lines().count() as u64,
        cnt["by_content_type"]["Audit.Exchange"].as_u64().unwrap()
    );
    assert_eq!(truth.len() as u64, cnt["total"].as_u64().unwrap());
    c.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_have_the_real_shapes_and_every_story_is_in_the_truth() {
    let c = Client::start(opts()).await;
    let truth = c.truth_lines().await;
    let recs: Vec<Value> = truth
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let has = |f: &dyn Fn(&Value) -> bool| recs.iter().any(f);
    assert!(has(&|r| r["Operation"] == "UserLoginFailed"
        && r["ErrorNumber"] == "50126"
        && r["LogonError"] == "InvalidUserNameOrPassword"));
    assert!(has(
        &|r| r["Operation"] == "UserLoginFailed" && r["ResultStatus"] == "Success"
    ));
    assert!(has(&|r| r["RecordType"].is_string()), "numbers as strings");
    assert!(has(&|r| r["ClientIP"]
        .as_str()
        .is_some_and(|s| s.starts_with('[') && s.contains("]:"))));
    assert!(has(&|r| r["ClientIP"] == "<null>"));
    assert!(has(&|r| r["ClientIP"]
        .as_str()
        .is_some_and(|s| s.starts_with("::ffff:"))));
    assert!(
        has(&|r| r["RecordType"] == 1 && r["Parameters"].is_string()),
        "Parameters as a string"
    );
    assert!(has(&|r| r["RecordType"] == 1 && r["Parameters"].is_array()));
    assert!(has(
        &|r| r["ParticipantInfo"]["HasForeignTenantUsers"] == true
    ));
    assert!(has(
        &|r| r["ParticipantInfo"]["HasForeignTenantUsers"] == false
    ));
    assert!(has(&|r| r["Operation"] == "AttachmentDownload"
        && r["RecordType"] == 154
        && r["AttachmentName"].is_string()
        && r["Recipient"].is_string()));
    for op in [
        "SharingSet",
        "AnonymousLinkCreated",
        "FileVersionsAllDeleted",
        "FileRecycled",
        "InsiderRiskPolicy",
        "DLPRuleMatch",
        "MailItemsAccessed",
        "AlertTriggered",
        "TeamsSessionStarted",
    ] {
        assert!(
            has(&|r| r["Operation"].as_str().unwrap().contains(op)),
            "{op}"
        );
    }
    assert!(has(&|r| r["Operation"]
        == "Remove-AuditConfigurationPolicy"
        && r["RecordType"] == 18
        && r["Parameters"].is_string()));
    assert!(has(&|r| r["Operation"]
        == "Remove-AuditConfigurationPolicy"
        && r["Workload"] == "Exchange"
        && r["Parameters"].is_array()));
    assert!(has(&|r| r["Data"]
        .as_str()
        .is_some_and(|d| serde_json::from_str::<Value>(d).is_ok())));
    for r in &recs {
        assert_eq!(r["CreationTime"].as_str().unwrap().len(), 19);
        assert_eq!(r["OrganizationId"].as_str().unwrap(), c.sim.tenant_id);
    }
    let ids: std::collections::HashSet<&str> =
        recs.iter().map(|r| r["Id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), recs.len(), "truth is unique by Id");
    let stories: Value = c.control_json("GET", "/__control/stories", None).await;
    let stories = stories.as_array().unwrap();
    assert!(stories.len() >= 60, "{}", stories.len());
    for s in stories {
        for r in s["records"].as_array().unwrap() {
            assert!(
                ids.contains(r["id"].as_str().unwrap()),
                "story {} record {} not in the truth",
                s["name"],
                r["id"]
            );
        }
    }
    // the public function agrees with the running tenant
    let pubs = m365audit::simulate::stories(&opts());
    assert_eq!(pubs.len(), stories.len());
    assert_eq!(
        pubs[0].records[0].json,
        stories[0]["records"][0]["json"].as_str().unwrap()
    );
    c.sim.shutdown().await;
}
