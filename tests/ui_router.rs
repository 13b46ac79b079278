//! Router tests: every page and every error path of `ui::router`, driven with
//! `tower::ServiceExt::oneshot` over a fixed in-memory backend whose data carries hostile
//! strings, so each page also proves it escapes them.

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
mod support;

use m365audit::ui::{self, AccessToken, AppState};
use std::sync::Arc;
use support::fake::{EVIL, Fake};
use tower::ServiceExt;

fn app() -> axum::Router {
    ui::router(AppState::new(Arc::new(Fake::default())))
}

struct Got {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn get_with(router: axum::Router, req: Request<Body>) -> Got {
    let res = router.oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = to_bytes(res.into_body(), 10 << 20).await.unwrap();
    Got {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn get(uri: &str) -> Got {
    get_with(app(), Request::get(uri).body(Body::empty()).unwrap()).await
}

/// Every HTML page: security headers present, the hostile string never raw.
fn assert_safe_page(g: &Got) {
    let csp = g.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(g.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(g.headers[header::REFERRER_POLICY], "same-origin");
    assert!(
        !g.body.contains("<script>fetch"),
        "raw payload in page:\n{}",
        g.body
    );
    assert!(!g.body.contains("<img src=x"), "raw payload in page");
    assert!(
        !g.body.contains("\"'>"),
        "an attribute could be closed by data"
    );
    // The only script tag is our own file.
    assert_eq!(g.body.matches("<script").count(), 1, "{}", g.body);
    assert!(
        g.body
            .contains("<script src=\"/static/app.js\" defer></script>")
    );
    assert!(
        !g.body.contains(" style="),
        "inline style would break the CSP"
    );
}

#[tokio::test]
async fn dashboard_lists_detections_charts_alerts_and_ingestion() {
    let g = get("/").await;
    assert_eq!(g.status, StatusCode::OK);
    assert_safe_page(&g);
    assert!(
        g.body.contains("&#60;script&#62;fetch"),
        "payload shown as text"
    );
    assert!(
        g.body
            .contains("href=\"/detections/onedrive_exfiltration\"")
    );
    assert!(g.body.contains("1 of 2 detections with hits"));
    assert!(g.body.contains("<svg class=\"chart small\""));
    assert!(g.body.contains("<title>this hour: 3</title>"));
    assert!(g.body.contains("12345 × Exchange"));
    assert!(g.body.contains("9 h 0 min"));
    assert!(g.body.contains("Audit.Exchange") && g.body.contains("2 min"));
    assert!(g.body.contains("OneDrive · 10"));
}

#[tokio::test]
async fn detection_page_shows_groups_downloads_and_drill_links() {
    let g = get("/detections/onedrive_exfiltration").await;
    assert_eq!(g.status, StatusCode::OK);
    assert_safe_page(&g);
    assert!(g.body.contains("<th>ClientIP</th><th>file</th>"));
    assert!(g.body.contains("/detections/onedrive_exfiltration/csv"));
    assert!(g.body.contains("/detections/onedrive_exfiltration/json"));
    // The drill link carries the group key as encoded JSON.
    assert!(
        g.body
            .contains("/detections/onedrive_exfiltration/records?key=%7B%22ClientIP%22")
    );

    let empty = get("/detections/onedrive_exfiltration?from=2026-05-05").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert!(empty.body.contains("No hits in this time range"));
}

#[tokio::test]
async fn detection_drill_down_lists_records() {
    let key = r#"{"ClientIP":"203.0.113.7"}"#;
    let uri = format!(
        "/detections/onedrive_exfiltration/records?key={}",
        url::form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>()
    );
    let g = get(&uri).await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.body);
    assert_safe_page(&g);
    assert!(g.body.contains("href=\"/records/rec-1\""));
    let all = get("/detections/onedrive_exfiltration/records").await;
    assert_eq!(all.status, StatusCode::OK);
    let bad = get("/detections/onedrive_exfiltration/records?key=%7Bnot-json").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("not JSON"));
    let unknown = get("/detections/nope/records").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn detection_downloads_are_csv_and_json() {
    let csv = get("/detections/onedrive_exfiltration/csv").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        csv.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains("onedrive_exfiltration.csv")
    );
    let mut lines = csv.body.lines();
    assert_eq!(
        lines.next().unwrap(),
        "ClientIP,file,TargetUserOrGroupName,count,first_seen,last_seen"
    );
    let first = lines.next().unwrap();
    assert!(first.starts_with("203.0.113.7,"));
    // A formula in attacker data is neutralised.
    assert!(
        first.contains("\"'=HYPERLINK(\"\"http://x\"\")\""),
        "{first}"
    );
    assert!(first.ends_with(",3,2026-05-04T08:00:00.000Z,2026-05-04T09:00:00.000Z"));

    let json = get("/detections/onedrive_exfiltration/json").await;
    assert_eq!(json.status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    let d = &v["detections"][0];
    assert_eq!(d["id"], "onedrive_exfiltration");
    assert_eq!(d["hits"], 3);
    assert_eq!(d["groups"][0]["count"], 3);
    assert_eq!(d["groups"][0]["key"]["file"], EVIL);
}

#[tokio::test]
async fn record_page_shows_raw_and_links() {
    let g = get("/records/rec-1").await;
    assert_eq!(g.status, StatusCode::OK);
    assert_safe_page(&g);
    assert!(g.body.contains("<pre class=\"raw\">"));
    assert!(g.body.contains("&#34;Id&#34;: &#34;rec-1&#34;"));
    assert!(
        g.body
            .contains("id=\"user-link\" href=\"/user?id=alice%3Cscript%3E")
    );
    assert!(
        g.body
            .contains("id=\"ip-link\" href=\"/ip?addr=203.0.113.7\"")
    );
    assert!(g.body.contains("id=\"object-link\" href=\"/search?q="));
    assert!(g.body.contains("href=\"/records/rec-2\""), "same blob");
    assert!(
        g.body
            .contains("id=\"blob-link\" href=\"#same-blob\">blob-&#60;script&#62;fetch"),
        "the blob's content id, escaped"
    );
    assert!(g.body.contains("<h2 id=\"same-blob\">"));
    assert!(
        g.body
            .contains("class=\"below-threshold\" href=\"/detections/brute_force_user\""),
        "a threshold rule's hit outside a burst is told apart"
    );
    assert!(g.body.contains("href=\"/records/rec-3\""), "same time");
    assert!(
        g.body
            .contains("href=\"/detections/onedrive_exfiltration\"")
    );
}

#[tokio::test]
async fn unknown_record_and_detection_are_clear_404_pages() {
    for uri in [
        "/records/does-not-exist",
        "/detections/does-not-exist",
        "/detections/does-not-exist/csv",
        "/no/such/page",
        "/static/nothing.js",
    ] {
        let g = get(uri).await;
        assert_eq!(g.status, StatusCode::NOT_FOUND, "{uri}");
        assert_safe_page(&g);
        assert!(g.body.contains("404 · Not found"), "{uri}: {}", g.body);
    }
    let g = get("/records/%3Cscript%3Ealert(1)%3C%2Fscript%3E").await;
    assert_eq!(g.status, StatusCode::NOT_FOUND);
    assert_safe_page(&g);
    assert!(g.body.contains("&#60;script&#62;alert(1)"), "{}", g.body);
}

#[tokio::test]
async fn internal_errors_show_no_detail() {
    for uri in ["/records/boom", "/detections/boom", "/user?id=boom"] {
        let g = get(uri).await;
        assert_eq!(g.status, StatusCode::INTERNAL_SERVER_ERROR, "{uri}");
        assert_safe_page(&g);
        assert!(!g.body.contains("xyzzy"), "internal detail leaked");
        assert!(g.body.contains("Something went wrong"));
    }
}

#[tokio::test]
async fn bad_time_ranges_are_400_pages() {
    for uri in [
        "/detections/onedrive_exfiltration?from=yesterday",
        "/detections/onedrive_exfiltration?from=2026-05-05&to=2026-05-04",
        "/user?id=alice&to=not-a-time",
        "/ip?addr=1.2.3.4&from=%3Cscript%3E",
        "/search?q=x&from=2026-13-45",
        "/query?jq=.&from=soon",
    ] {
        let g = get(uri).await;
        assert_eq!(g.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_safe_page(&g);
        assert!(g.body.contains("400 · Bad request"), "{uri}");
    }
}

#[tokio::test]
async fn user_page_is_the_decision_page() {
    let g = get("/user?id=alice%40contoso.com").await;
    assert_eq!(g.status, StatusCode::OK);
    assert_safe_page(&g);
    assert!(g.body.contains("alice@contoso.com"));
    assert!(g.body.contains("href=\"/ip?addr=203.0.113.7\""));
    // its detections open filtered to this user
    assert!(
        g.body
            .contains("href=\"/detections/onedrive_exfiltration?user=alice%40contoso.com\""),
        "{}",
        g.body
    );
    assert!(g.body.contains("<h3>User agents</h3>"));
    assert!(g.body.contains("<h2 id=\"timeline\">Timeline</h2>"));
    // the activity chart: one bar per day, with its dates
    assert!(g.body.contains("class=\"chart activity\""));
    assert!(g.body.contains("aria-label=\"day, peak 400\""));
    assert!(g.body.contains("<title>2026-05-04: 400</title>"));
    // the user agent pivot is one phrase, not its words ANDed
    assert!(
        g.body.contains("href=\"/search?q=%22curl%20%3Cscript%3E"),
        "{}",
        g.body
    );
    assert!(!g.body.contains("curl%20AND"));
    let missing = get("/user").await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_user_timeline_pages_through_every_record() {
    let first = get("/user?id=alice%40contoso.com&range=7d").await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(first.body.contains("records 1–200 of 450, newest first"));
    assert!(first.body.contains("href=\"/records/rec-200\""));
    assert!(!first.body.contains("href=\"/records/rec-201\""));
    assert!(!first.body.contains("← newer"));
    // the next page keeps the user and the time range
    let next = "/user?id=alice%40contoso.com&range=7d&page=1";
    assert!(
        first
            .body
            .contains(&format!("href=\"{}#timeline\"", next.replace('&', "&#38;"))),
        "{}",
        first.body
    );
    let second = get(next).await;
    assert!(second.body.contains("records 201–400 of 450"));
    assert!(second.body.contains("href=\"/records/rec-201\""));
    assert!(
        second
            .body
            .contains("href=\"/user?id=alice%40contoso.com&#38;range=7d&#38;page=0#timeline\"")
    );
    let last = get("/user?id=alice%40contoso.com&page=2").await;
    assert!(last.body.contains("records 401–450 of 450"));
    assert!(last.body.contains("href=\"/records/rec-450\""));
    assert!(!last.body.contains("older →"));
    assert_eq!(
        get("/user?id=alice%40contoso.com&page=x").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn a_detection_page_narrows_to_a_user_and_links_users_and_addresses() {
    let all = get("/detections/onedrive_exfiltration").await;
    assert_eq!(all.status, StatusCode::OK);
    // a group column holding an address is a pivot
    assert!(
        all.body
            .contains("<a class=\"pivot\" href=\"/ip?addr=203.0.113.7\">")
    );
    assert!(!all.body.contains("Only the hits of records by"));
    let alice = get("/detections/onedrive_exfiltration?user=alice%40contoso.com").await;
    assert_safe_page(&alice);
    assert!(
        alice
            .body
            .contains("Only the hits of records by <a href=\"/user?id=alice%40contoso.com\">")
    );
    assert!(
        alice
            .body
            .contains("id=\"all-users\" href=\"/detections/onedrive_exfiltration\"")
    );
    assert!(
        alice
            .body
            .contains("<input type=\"hidden\" name=\"user\" value=\"alice@contoso.com\">")
    );
    assert!(alice.body.contains("class=\"drill\""));
    let bob = get("/detections/onedrive_exfiltration?user=bob%40contoso.com").await;
    assert!(bob.body.contains("No hits"), "{}", bob.body);
    assert!(!bob.body.contains("class=\"drill\""));
}

#[tokio::test]
async fn time_filters_take_relative_and_absolute_ranges_without_fake_values() {
    // the fake's hits are on 2026-05-04: inside that day, outside the last 24 h
    let day = get("/detections/onedrive_exfiltration?from=2026-05-04&to=2026-05-05").await;
    assert!(day.body.contains("class=\"drill\""));
    let recent = get("/detections/onedrive_exfiltration?range=24h").await;
    assert_eq!(recent.status, StatusCode::OK);
    assert!(recent.body.contains("No hits in this time range"));
    assert!(
        recent
            .body
            .contains("<option value=\"24h\" selected>last 24 h</option>")
    );
    assert!(
        recent
            .body
            .contains("href=\"/detections/onedrive_exfiltration/csv?range=24h\"")
    );
    let all = get("/detections/onedrive_exfiltration?range=all").await;
    assert!(all.body.contains("class=\"drill\""));
    for bad in [
        "/detections/onedrive_exfiltration?range=2d",
        "/detections/onedrive_exfiltration?range=24h&from=2026-05-04",
        "/search?q=x&range=forever",
    ] {
        let g = get(bad).await;
        assert_eq!(g.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    // every page with a time filter offers the ranges, and no field shows a made-up time
    for uri in [
        "/detections/onedrive_exfiltration",
        "/user?id=alice",
        "/ip?addr=203.0.113.7",
        "/search",
        "/query",
    ] {
        let g = get(uri).await;
        assert_eq!(g.status, StatusCode::OK, "{uri}");
        for v in ["1h", "24h", "7d", "30d", "all"] {
            assert!(
                g.body.contains(&format!("<option value=\"{v}\"")),
                "{uri}: {v}"
            );
        }
        assert!(!g.body.contains("placeholder=\"2026"), "{uri}");
        assert!(!g.body.contains("placeholder=\"(now)"), "{uri}");
    }
    let search = get("/search?q=x&range=1h").await;
    assert!(search.body.contains("range=1h"), "links keep the range");
}

#[tokio::test]
async fn the_dashboard_charts_the_last_7_days_per_day_and_24_h_per_hour() {
    let g = get("/").await;
    assert_eq!(g.status, StatusCode::OK);
    assert!(g.body.contains("Last 7 days, per day"));
    assert!(g.body.contains("Last 24 h, per hour"));
    assert!(g.body.contains("aria-label=\"per day, peak"));
    assert!(g.body.contains("aria-label=\"per hour, peak"));
    // the fake's now is 2026-05-04 10:00: a bar for that day
    assert!(g.body.contains("<title>2026-05-04: "), "{}", g.body);
}

#[tokio::test]
async fn ip_page_lists_users_and_records() {
    let g = get("/ip?addr=203.0.113.7").await;
    assert_eq!(g.status, StatusCode::OK);
    assert_safe_page(&g);
    assert!(g.body.contains("href=\"/user?id=mallory%3Cscript%3E"));
    assert!(g.body.contains("href=\"/records/rec-1\""));
    assert_eq!(get("/ip").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn search_page_form_results_help_and_bad_query() {
    let form = get("/search").await;
    assert_eq!(form.status, StatusCode::OK);
    assert_safe_page(&form);
    assert!(form.body.contains("<summary>Syntax</summary>"));
    assert!(!form.body.contains("records · showing"));

    let g = get("/search?q=strategic&user=alice&table=auth.all").await;
    assert_eq!(g.status, StatusCode::OK);
    assert_safe_page(&g);
    assert!(g.body.contains("120 records · showing 1–1"));
    assert!(g.body.contains("<option selected>auth.all</option>"));
    assert!(g.body.contains("page=1"), "a next page link");

    let bad = get("/search?q=%28unclosed").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_safe_page(&bad);
    assert!(bad.body.contains("cannot parse query"));
    assert_eq!(
        get("/search?q=x&page=-1").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn query_page_runs_jq_and_reports_errors() {
    let form = get("/query").await;
    assert_eq!(form.status, StatusCode::OK);
    assert_safe_page(&form);
    let g = get("/query?table=auth.all&jq=.UserId").await;
    assert_eq!(g.status, StatusCode::OK);
    assert_safe_page(&g);
    assert!(g.body.contains("1 outputs from 42 records"));
    assert!(g.body.contains("stopped: output limit of 1 reached"));
    let bad = get("/query?jq=%7C%7C%7C").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("syntax error"));
    let table = get("/query?table=nope&jq=.").await;
    assert_eq!(table.status, StatusCode::BAD_REQUEST);
    assert!(table.body.contains("unknown table"));
}

#[tokio::test]
async fn query_page_runs_linq_escaped_and_points_at_errors() {
    let form = get("/query").await;
    assert!(form.body.contains("name=\"linq\""));
    let q = url::form_urlencoded::byte_serialize(
        br#"from cloud.office365.management.onedrive group by UserId, split(hostchain,"-",1) as collector_id select count() as n"#,
    )
    .collect::<String>();
    let g = get(&format!("/query?linq={q}")).await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.body);
    assert_safe_page(&g);
    assert!(g.body.contains("1 rows from 1 records"), "{}", g.body);
    assert!(g.body.contains("<th>collector_id</th>") && g.body.contains("<td>12345</td>"));
    let bad = get("/query?linq=from%20auth.all%20where%20foo(1)").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body.contains("column 21: unknown function foo()"),
        "{}",
        bad.body
    );
    let table = get("/query?linq=from%20nope").await;
    assert_eq!(table.status, StatusCode::BAD_REQUEST);
    assert!(table.body.contains("unknown table"));
}

#[tokio::test]
async fn status_page_shows_streams_ledger_and_credentials() {
    let g = get("/status").await;
    assert_eq!(g.status, StatusCode::OK);
    assert_safe_page(&g);
    for want in [
        "Audit.Exchange",
        "enabled",
        "Loss ledger",
        "blob expired before fetch",
        "token valid until 11:00 UTC",
        "in 30 days",
        "broken.jq: 1:5",
        "forwarding off",
        "7 duplicates dropped",
    ] {
        assert!(g.body.contains(want), "missing {want}");
    }
}

#[tokio::test]
async fn healthz_and_metrics() {
    let h = get("/healthz").await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.body, "ok\n");
    let m = get("/metrics").await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(
        m.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    for want in [
        "m365audit_records_total 42\n",
        "m365audit_hits_total{detection=\"onedrive_exfiltration\"} 3\n",
        "m365audit_gaps_total{kind=\"expired\"} 1\n",
        "m365audit_lag_seconds{content_type=\"Audit.Exchange\"} 60\n",
        "m365audit_errors_total 2\n",
        "m365audit_collector_running 1\n",
    ] {
        assert!(m.body.contains(want), "missing {want:?} in\n{}", m.body);
    }
}

#[tokio::test]
async fn static_assets_are_embedded() {
    let css = get("/static/style.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(
        css.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert!(css.body.contains("svg.chart rect"));
    let js = get("/static/app.js").await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(
        js.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
}

#[tokio::test]
async fn token_gate_cookie_login_and_bearer() {
    let token = AccessToken::new("0123456789abcdef0123").unwrap();
    let router = ui::router(AppState::new(Arc::new(Fake::default())).with_token(token));
    let req = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();

    let denied = get_with(router.clone(), req("/")).await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert_safe_page(&denied);
    assert_eq!(
        get_with(router.clone(), req("/metrics")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get_with(router.clone(), req("/?token=wrong-token-wrong-token"))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // /healthz stays open: it says nothing but "up".
    assert_eq!(
        get_with(router.clone(), req("/healthz")).await.status,
        StatusCode::OK
    );

    let login = get_with(
        router.clone(),
        req("/search?q=x&token=0123456789abcdef0123"),
    )
    .await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    assert_eq!(login.headers[header::LOCATION], "/search?q=x");
    let cookie = login.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let pair = cookie.split(';').next().unwrap();

    let with_cookie = Request::get("/")
        .header(header::COOKIE, pair)
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        get_with(router.clone(), with_cookie).await.status,
        StatusCode::OK
    );
    let with_bearer = Request::get("/metrics")
        .header(header::AUTHORIZATION, "Bearer 0123456789abcdef0123")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        get_with(router.clone(), with_bearer).await.status,
        StatusCode::OK
    );
    let bad_cookie = Request::get("/")
        .header(header::COOKIE, "m365audit_token=0123456789abcdef0124")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        get_with(router, bad_cookie).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn open_ui_refuses_foreign_host_names_and_login_redirects_stay_local() {
    let rebinding = Request::get("/")
        .header(header::HOST, "attacker.example:8365")
        .body(Body::empty())
        .unwrap();
    let g = get_with(app(), rebinding).await;
    assert_eq!(g.status, StatusCode::BAD_REQUEST);
    assert_safe_page(&g);
    let local = Request::get("/")
        .header(header::HOST, "127.0.0.1:8365")
        .body(Body::empty())
        .unwrap();
    assert_eq!(get_with(app(), local).await.status, StatusCode::OK);

    let token = AccessToken::new("0123456789abcdef0123").unwrap();
    let router = ui::router(AppState::new(Arc::new(Fake::default())).with_token(token));
    let login = Request::get("//evil.example/x?token=0123456789abcdef0123")
        .body(Body::empty())
        .unwrap();
    let g = get_with(router.clone(), login).await;
    assert_eq!(g.status, StatusCode::SEE_OTHER);
    assert_eq!(g.headers[header::LOCATION], "/");
    // The stylesheet of the 401 page loads without the token.
    let css = Request::get("/static/style.css")
        .body(Body::empty())
        .unwrap();
    assert_eq!(get_with(router, css).await.status, StatusCode::OK);
}

#[tokio::test]
async fn bind_refuses_a_public_address_without_a_token() {
    let public: std::net::SocketAddr = "0.0.0.0:0".parse().unwrap();
    let err = ui::bind(public, None, Arc::new(Fake::default()))
        .await
        .unwrap_err();
    assert!(
        err.chain().any(|e| e.is::<m365audit::UsageError>()),
        "{err:#}"
    );
    assert!(format!("{err:#}").contains("non-loopback"));

    let (_l, state, url) = ui::bind(public, Some("generate"), Arc::new(Fake::default()))
        .await
        .unwrap();
    assert!(state.token.is_some());
    assert!(
        url.starts_with("http://127.0.0.1:") && url.contains("/?token="),
        "{url}"
    );

    let local: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (_l, state, url) = ui::bind(local, None, Arc::new(Fake::default()))
        .await
        .unwrap();
    assert!(state.token.is_none());
    assert!(!url.contains("token"));
}

/// Bidi controls in record values are shown as a visible marker on every page (HTML
/// escaping alone leaves the browser reordering the text), and the CSV download carries
/// no raw control characters.
#[tokio::test]
async fn bidi_controls_are_visible_and_csv_has_no_raw_controls() {
    let evil = "admin\u{202e}gnp.exe\u{2066}x\u{2069}\u{1b}[2K=1+1";
    let app = || {
        ui::router(AppState::new(Arc::new(Fake {
            evil: evil.to_string(),
        })))
    };
    let page = |uri: &'static str| {
        let router = app();
        async move { get_with(router, Request::get(uri).body(Body::empty()).unwrap()).await }
    };
    for uri in [
        "/",
        "/detections/onedrive_exfiltration",
        "/records/rec-1",
        "/search?q=x",
        "/user?id=alice",
    ] {
        let g = page(uri).await;
        assert_eq!(g.status, StatusCode::OK, "{uri}");
        for c in ['\u{202e}', '\u{2066}', '\u{2069}'] {
            assert!(!g.body.contains(c), "{uri}: raw {c:?} in the page");
        }
        assert!(g.body.contains("⟨U+202E⟩"), "{uri}: no visible marker");
    }
    let csv = page("/detections/onedrive_exfiltration/csv").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        !csv.body.replace("\r\n", "\n").chars().any(|c| c != '\n'
            && (c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))),
        "{:?}",
        csv.body
    );
    assert!(csv.body.contains(r"\u{202e}gnp.exe"), "{}", csv.body);
}

#[tokio::test]
async fn the_query_page_refuses_requests_other_sites_make() {
    let run = |headers: &[(&str, &str)]| {
        let mut req = Request::get("/query?table=auth.all&jq=.UserId");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        get_with(app(), req.body(Body::empty()).unwrap())
    };
    // `<img src=…>` or `fetch()` from another site's page
    for headers in [
        &[
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-dest", "image"),
        ][..],
        &[("sec-fetch-site", "same-site"), ("sec-fetch-dest", "empty")][..],
        &[("sec-fetch-site", "cross-site")][..],
        &[
            ("host", "127.0.0.1:8365"),
            ("origin", "http://evil.example"),
        ][..],
    ] {
        let g = run(headers).await;
        assert_eq!(g.status, StatusCode::FORBIDDEN, "{headers:?}");
        assert_safe_page(&g);
        assert!(g.body.contains("another site"), "{headers:?}: {}", g.body);
        assert!(!g.body.contains("outputs from"), "{headers:?}: it ran");
    }
    // a link on another site's page the analyst followed: the query is shown, not run
    for site in ["cross-site", "same-site"] {
        let g = run(&[("sec-fetch-site", site), ("sec-fetch-dest", "document")]).await;
        assert_eq!(g.status, StatusCode::OK, "{site}: {}", g.body);
        assert_safe_page(&g);
        assert!(!g.body.contains("outputs from"), "{site}: it ran");
        assert!(g.body.contains("was not run"), "{site}: {}", g.body);
        assert!(g.body.contains(">.UserId</textarea>"), "{site}: {}", g.body);
    }
    // the analyst's own page, the address bar, curl
    for headers in [
        &[
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-dest", "document"),
        ][..],
        &[("sec-fetch-site", "none"), ("sec-fetch-dest", "document")][..],
        &[
            ("host", "127.0.0.1:8365"),
            ("origin", "http://127.0.0.1:8365"),
        ][..],
        &[][..],
    ] {
        let g = run(headers).await;
        assert_eq!(g.status, StatusCode::OK, "{headers:?}: {}", g.body);
        assert!(g.body.contains("1 outputs from 42 records"), "{headers:?}");
    }
}
