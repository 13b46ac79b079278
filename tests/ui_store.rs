//! The UI over a real store: records imported into a fresh data directory with the
//! embedded detections, then every page read through `StoreBackend` with
//! `tower::ServiceExt::oneshot` — the store's read queries, grouping, drill-down, search,
//! jq and the status/metrics numbers, with hostile values in the records.

mod support;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use m365audit::detect::{Detections, Vars};
use m365audit::store::Store;
use m365audit::ui::store_backend::StoreBackend;
use m365audit::ui::{self, AppState};
use std::sync::Arc;
use support::groups::groups_of;
use tower::ServiceExt;

const EVIL_FILE: &str =
    "https://contoso-my.sharepoint.com/personal/bob/Strategic_<script>alert(1)</script>.docx";

fn records() -> Vec<String> {
    let now = chrono::Utc::now() - chrono::Duration::minutes(30);
    let t = |m: i64| m365audit::model::format_record_time(now + chrono::Duration::minutes(m));
    vec![
        serde_json::json!({
            "Id": "rec-share-1", "CreationTime": t(0), "RecordType": 6, "Operation": "SharingSet",
            "Workload": "OneDrive", "UserId": "bob@contoso.com", "ClientIP": "198.51.100.9:443",
            "ObjectId": EVIL_FILE, "TargetUserOrGroupName": "eve\"><img src=x onerror=alert(2)>",
            "UserAgent": "Mozilla/5.0 <svg onload=alert(3)>", "OrganizationId": "org-1"
        })
        .to_string(),
        serde_json::json!({
            "Id": "rec-login-1", "CreationTime": t(1), "RecordType": 15, "Operation": "UserLoggedIn",
            "Workload": "AzureActiveDirectory", "UserId": "bob@contoso.com", "ClientIP": "198.51.100.9",
            "ResultStatus": "Success", "OrganizationId": "org-1",
            "ExtendedProperties": [{"Name": "UserAgent", "Value": "curl/8.0"}]
        })
        .to_string(),
        // Written by hand: Microsoft's key order (Id before CreationTime), not sorted.
        format!(
            r#"{{"Id":"rec-other-1","CreationTime":"{}","RecordType":6,"Operation":"FileAccessed","Workload":"SharePoint","UserId":"alice@contoso.com","ClientIP":"203.0.113.7","ObjectId":"https://contoso.sharepoint.com/sites/x/report.xlsx","OrganizationId":"org-1"}}"#,
            t(2)
        ),
    ]
}

async fn setup() -> (tempfile::TempDir, Store, axum::Router) {
    setup_with(records()).await
}

async fn setup_with(records: Vec<String>) -> (tempfile::TempDir, Store, axum::Router) {
    let n = records.len();
    let dir = tempfile::tempdir().unwrap();
    let vars = Vars {
        collector_id: "12345".into(),
        tenant_id: "tenant-1".into(),
    };
    let dets = Arc::new(Detections::load_embedded(vars));
    assert!(dets.errors().is_empty(), "{:?}", dets.errors());
    let store = Store::open(dir.path(), dets.clone()).unwrap();
    let out = store.import_records("tenant-1", records).await.unwrap();
    assert_eq!(out.new, n);
    store.flush().await.unwrap();
    let backend = StoreBackend::new(store.clone(), dets, "12345".into(), "tenant-1".into());
    let router = ui::router(AppState::new(Arc::new(backend)));
    (dir, store, router)
}

async fn get(router: &axum::Router, uri: &str) -> (StatusCode, String) {
    let res = router
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = to_bytes(res.into_body(), 10 << 20).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn assert_inert(body: &str) {
    assert!(!body.contains("<script>alert"), "raw script in page");
    assert!(!body.contains("<img src=x"), "raw img in page");
    assert!(!body.contains("<svg onload"), "raw svg in page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_reads_the_real_store() {
    let (_dir, store, r) = setup().await;

    let (s, dash) = get(&r, "/").await;
    assert_eq!(s, StatusCode::OK);
    assert_inert(&dash);
    assert!(dash.contains("data-detection=\"onedrive_exfiltration\""));
    assert!(dash.contains("3 records"), "record count");
    // The lit detection is listed with one hit and a bar in this hour.
    let row = dash
        .split("data-detection=\"onedrive_exfiltration\"")
        .nth(1)
        .unwrap();
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("<td class=\"num hits\">1</td>"), "{row}");
    assert!(row.contains("<rect "), "a bar for the hit: {row}");
    assert!(
        dash.contains("OneDrive · 1"),
        "records per workload: {dash}"
    );

    let (s, det) = get(&r, "/detections/onedrive_exfiltration").await;
    assert_eq!(s, StatusCode::OK);
    assert_inert(&det);
    assert!(
        det.contains("<th>ClientIP</th><th>TargetUserOrGroupName</th><th>file</th>"),
        "{det}"
    );
    assert!(det.contains("198.51.100.9"));
    let drill = det
        .split("class=\"drill\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    let (s, recs) = get(&r, &drill).await;
    assert_eq!(s, StatusCode::OK, "{drill}");
    assert!(
        recs.contains("href=\"/records/rec-share-1\""),
        "drill-down lists the record"
    );
    assert!(!recs.contains("rec-other-1"));

    let (s, csv) = get(&r, "/detections/onedrive_exfiltration/csv").await;
    assert_eq!(s, StatusCode::OK);
    assert!(csv.starts_with("ClientIP,TargetUserOrGroupName,file,count,first_seen,last_seen"));
    assert!(csv.contains(EVIL_FILE));

    let (s, rec) = get(&r, "/records/rec-share-1").await;
    assert_eq!(s, StatusCode::OK);
    assert_inert(&rec);
    assert!(rec.contains("id=\"user-link\" href=\"/user?id=bob%40contoso.com\""));
    assert!(rec.contains("id=\"ip-link\" href=\"/ip?addr=198.51.100.9\""));
    assert!(rec.contains("href=\"/detections/onedrive_exfiltration\""));
    assert!(
        rec.contains("href=\"/records/rec-login-1\""),
        "same user within a minute"
    );
    assert!(
        rec.contains("Mozilla/5.0 &#60;svg"),
        "user agent shown as text"
    );
    // Raw keeps Microsoft's key order.
    let (_, other) = get(&r, "/records/rec-other-1").await;
    let raw = other.split("<pre class=\"raw\">").nth(1).unwrap();
    assert!(raw.find("&#34;Id&#34;").unwrap() < raw.find("&#34;CreationTime&#34;").unwrap());

    let (s, user) = get(&r, "/user?id=bob%40contoso.com").await;
    assert_eq!(s, StatusCode::OK);
    assert_inert(&user);
    assert!(user.contains("2 records"));
    assert!(user.contains("href=\"/ip?addr=198.51.100.9\""));
    assert!(
        user.contains("curl/8.0"),
        "user agent from ExtendedProperties"
    );
    assert!(user.contains("href=\"/detections/onedrive_exfiltration?user=bob%40contoso.com\""));
    assert!(user.contains("AzureActiveDirectory") && user.contains("OneDrive"));

    let (s, ip) = get(&r, "/ip?addr=198.51.100.9").await;
    assert_eq!(s, StatusCode::OK);
    assert!(ip.contains("href=\"/user?id=bob%40contoso.com\""));
    assert!(ip.contains("2 records"));

    let (s, found) = get(&r, "/search?q=report").await;
    assert_eq!(s, StatusCode::OK);
    assert!(found.contains("1 records"), "{found}");
    assert!(found.contains("href=\"/records/rec-other-1\""));
    let (s, filtered) = get(&r, "/search?user=bob%40contoso.com&workload=OneDrive").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        filtered.contains("href=\"/records/rec-share-1\""),
        "{filtered}"
    );
    assert!(!filtered.contains("rec-login-1"));
    let (s, ranged) = get(
        &r,
        "/search?user=bob%40contoso.com&from=2020-01-01&to=2020-01-02",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(ranged.contains("0 records"), "{ranged}");
    let (s, _) = get(&r, "/search?q=%28unclosed").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let (s, q) = get(&r, "/query?table=auth.all&jq=.UserId").await;
    assert_eq!(s, StatusCode::OK);
    assert!(q.contains("&#34;bob@contoso.com&#34;"), "{q}");
    assert!(q.contains("1 outputs from 1 records"));
    let (s, bad) = get(&r, "/query?jq=select(").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(bad.contains("jq"));

    // LINQ over the store: the hostile recipient comes back as an escaped table cell
    let linq = url::form_urlencoded::byte_serialize(
        br#"from cloud.office365.management.onedrive where Operation = "SharingSet" select str(jsonparse(message)["TargetUserOrGroupName"]) as recipient"#,
    )
    .collect::<String>();
    let (s, l) = get(&r, &format!("/query?linq={linq}")).await;
    assert_eq!(s, StatusCode::OK, "{l}");
    assert_inert(&l);
    assert!(l.contains("1 rows from 1 records"), "{l}");
    assert!(
        l.contains("<td>eve&#34;&#62;&#60;img src=x onerror=alert(2)&#62;</td>"),
        "{l}"
    );
    let (s, bad) = get(&r, "/query?linq=from%20auth.all%20where%20nope(1)").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(bad.contains("column 21: unknown function nope()"), "{bad}");

    let (s, st) = get(&r, "/status").await;
    assert_eq!(s, StatusCode::OK);
    assert!(st.contains("3 records"));
    assert!(st.contains("Every detection loaded."));

    let (s, m) = get(&r, "/metrics").await;
    assert_eq!(s, StatusCode::OK);
    assert!(m.contains("m365audit_records_total 3\n"), "{m}");
    assert!(m.contains("m365audit_hits_total{detection=\"onedrive_exfiltration\"} 1\n"));

    let (s, _) = get(&r, "/records/nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = get(&r, "/detections/nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    store.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_times_the_main_pages_over_http() {
    let (_dir, store, _r) = setup().await;
    let dets = Arc::new(Detections::load_embedded(Vars::default()));
    let t = m365audit::ui::bench::page_latencies(store.clone(), dets, 3)
        .await
        .unwrap();
    let pages: Vec<&str> = t.iter().map(|p| p.page.as_str()).collect();
    assert_eq!(
        pages,
        [
            "dashboard",
            "detection",
            "record",
            "user",
            "ip",
            "ip-busiest",
            "search"
        ]
    );
    for p in &t {
        assert_eq!(p.samples, 3);
        assert!(p.p50_ms > 0.0 && p.p50_ms <= p.p95_ms, "{p:?}");
    }
    store.close().unwrap();
}

/// A failed sign-in `min` minutes after `t0`.
fn failed_login(
    n: &str,
    t0: chrono::DateTime<chrono::Utc>,
    min: i64,
    user: &str,
    ip: &str,
) -> String {
    serde_json::json!({
        "Id": n, "CreationTime": m365audit::model::format_record_time(t0 + chrono::Duration::minutes(min)),
        "RecordType": 15, "Operation": "UserLoginFailed", "Workload": "AzureActiveDirectory",
        "UserId": user, "ClientIP": ip, "ResultStatus": "Failed", "LogonError": "InvalidPassword",
        "OrganizationId": "org-1"
    })
    .to_string()
}

/// Number of record rows a records page lists.
fn listed(html: &str) -> usize {
    html.matches("class=\"record-link\"").count()
}

/// Threshold detections (brute_force_user: 10 per UserId in 60 min; password_spray: 10
/// distinct UserIds per address in 60 min) show only their bursts, as `detect` reports
/// them: a key below the threshold is not on the dashboard, the detection page, its
/// downloads or its drill-downs; a key at the threshold is, with exactly its burst's
/// records. The numbers equal `detect::Grouper` over the same records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threshold_detections_show_only_bursts_like_detect() {
    let dir = tempfile::tempdir().unwrap();
    let dets = Arc::new(Detections::load_embedded(Vars::default()));
    let store = Store::open(dir.path(), dets.clone()).unwrap();
    let t0 = chrono::Utc::now() - chrono::Duration::hours(5);
    let mut raws = Vec::new();
    // 9 failures of `slow` in 50 minutes: below the threshold.
    for i in 0..9 {
        raws.push(failed_login(
            &format!("slow-{i}"),
            t0,
            i * 6,
            "slow@contoso.com",
            "198.51.100.1",
        ));
    }
    // 10 failures of `fast` in 45 minutes: at the threshold; one more 3 h later is alone.
    for i in 0..10 {
        raws.push(failed_login(
            &format!("fast-{i}"),
            t0,
            i * 5,
            "fast@contoso.com",
            "198.51.100.2",
        ));
    }
    raws.push(failed_login(
        "fast-late",
        t0,
        180,
        "fast@contoso.com",
        "198.51.100.2",
    ));
    // One address tries 10 distinct users in 20 minutes (a spray), another 9 (not one).
    for i in 0..10 {
        raws.push(failed_login(
            &format!("spray-{i}"),
            t0,
            60 + i * 2,
            &format!("s{i}@contoso.com"),
            "203.0.113.99",
        ));
    }
    for i in 0..9 {
        raws.push(failed_login(
            &format!("near-{i}"),
            t0,
            60 + i * 2,
            &format!("n{i}@contoso.com"),
            "203.0.113.98",
        ));
    }
    store
        .import_records("tenant-1", raws.clone())
        .await
        .unwrap();
    store.flush().await.unwrap();
    let backend = StoreBackend::new(
        store.clone(),
        dets.clone(),
        "12345".into(),
        "tenant-1".into(),
    );
    let r = ui::router(AppState::new(Arc::new(backend)));

    // What `detect` says over the same records.
    let mut grouper = m365audit::detect::Grouper::new(&dets);
    store
        .for_each_record("cloud.office365.management", 0, |rec| {
            grouper.add_record(&rec.header, rec.raw.as_bytes());
            Ok(true)
        })
        .unwrap();
    let report = grouper.finish();
    let want = |id: &str| {
        report
            .detections
            .iter()
            .find(|d| d.id == id)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (
            want("brute_force_user").hits,
            want("brute_force_user").matched
        ),
        (10, 39)
    );
    assert_eq!(
        (want("password_spray").hits, want("password_spray").matched),
        (10, 39)
    );

    let (s, dash) = get(&r, "/").await;
    assert_eq!(s, StatusCode::OK);
    let hits_cell = |id: &str| {
        let row = dash
            .split(&format!("data-detection=\"{id}\""))
            .nth(1)
            .unwrap();
        let row = &row[..row.find("</tr>").unwrap()];
        let cell = row.split("class=\"num hits\">").nth(1).unwrap();
        cell[..cell.find('<').unwrap()]
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(hits_cell("brute_force_user"), 10, "raw hits are 39");
    assert_eq!(hits_cell("password_spray"), 10, "raw hits are 39");

    let (s, page) = get(&r, "/detections/brute_force_user").await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("fast@contoso.com"));
    assert!(
        !page.contains("slow@contoso.com"),
        "below the threshold: {page}"
    );
    assert!(page.contains("10 hits in 1 groups"), "{page}");
    assert!(page.contains("39 hits matched the filter"), "{page}");
    let drill = page
        .split("class=\"drill\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    let (s, recs) = get(&r, &drill).await;
    assert_eq!(s, StatusCode::OK, "{drill}");
    assert_eq!(listed(&recs), 10, "{recs}");
    assert!(!recs.contains("/records/fast-late") && !recs.contains("slow-"));
    let (_, all) = get(&r, "/detections/brute_force_user/records").await;
    assert_eq!(listed(&all), 10);
    assert!(!all.contains("slow-") && !all.contains("fast-late"));

    let (_, spray) = get(&r, "/detections/password_spray").await;
    assert!(
        spray.contains("203.0.113.99") && !spray.contains("203.0.113.98"),
        "{spray}"
    );
    let (_, all) = get(&r, "/detections/password_spray/records").await;
    assert_eq!(listed(&all), 10);
    assert!(!all.contains("near-") && !all.contains("slow-"));

    // The user and record pages tell an alert from a hit below the threshold.
    let (_, slow) = get(&r, "/user?id=slow%40contoso.com").await;
    assert!(slow.contains("9 records"), "{slow}");
    assert!(
        !slow.contains("href=\"/detections/brute_force_user?user=slow%40contoso.com\""),
        "{slow}"
    );
    let (_, fast) = get(&r, "/user?id=fast%40contoso.com").await;
    let bf = fast
        .split("href=\"/detections/brute_force_user?user=fast%40contoso.com\"")
        .nth(1)
        .expect("fast's brute force is listed");
    let bf = &bf[..bf.find("</tr>").unwrap()];
    assert!(
        bf.contains(">10<"),
        "10 of its 11 hits are in the burst: {bf}"
    );
    // narrowed to fast, the detection shows fast's burst whole; slow has none
    let (_, mine) = get(&r, "/detections/brute_force_user?user=fast%40contoso.com").await;
    assert_eq!(
        mine.matches("class=\"drill\"").count(),
        1,
        "fast's one burst: {mine}"
    );
    let (_, fast_recs) = get(
        &r,
        "/detections/brute_force_user/records?user=fast%40contoso.com",
    )
    .await;
    assert_eq!(
        listed(&fast_recs),
        10,
        "only the hits inside the burst: {fast_recs}"
    );
    let (_, none) = get(&r, "/detections/brute_force_user?user=slow%40contoso.com").await;
    assert!(none.contains("No hits"), "{none}");
    let (_, rec) = get(&r, "/records/slow-0").await;
    assert!(
        rec.contains("class=\"below-threshold\" href=\"/detections/brute_force_user\""),
        "{rec}"
    );
    assert!(!rec.contains("class=\"hit\" href=\"/detections/brute_force_user\""));
    let (_, rec) = get(&r, "/records/fast-3").await;
    assert!(rec.contains("class=\"hit\" href=\"/detections/brute_force_user\""));
    let (_, rec) = get(&r, "/records/fast-late").await;
    assert!(rec.contains("class=\"below-threshold\" href=\"/detections/brute_force_user\""));

    let (_, csv) = get(&r, "/detections/brute_force_user/csv").await;
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.contains("fast@contoso.com,10,") && !csv.contains("slow@"));

    // The JSON download equals `detect`'s groups for every threshold detection.
    for id in [
        "brute_force_user",
        "password_spray",
        "mass_download",
        "mass_file_deletion",
    ] {
        let (s, json) = get(&r, &format!("/detections/{id}/json")).await;
        assert_eq!(s, StatusCode::OK);
        let ui: serde_json::Value = serde_json::from_str(&json).unwrap();
        let d = &ui["detections"][0];
        let w = want(id);
        assert_eq!(d["hits"], w.hits, "{id}");
        assert_eq!(d["matched"], w.matched, "{id}");
        assert_eq!(
            groups_of(&d["groups"]),
            groups_of(&serde_json::to_value(&w.groups).unwrap()),
            "{id}"
        );
    }

    // New hits reach the cached evaluation: a 10th failure of `slow` within the hour
    // makes its burst, and only its key was read again.
    store
        .import_records(
            "tenant-1",
            vec![failed_login(
                "slow-9",
                t0,
                50,
                "slow@contoso.com",
                "198.51.100.1",
            )],
        )
        .await
        .unwrap();
    store.flush().await.unwrap();
    let (_, page) = get(&r, "/detections/brute_force_user").await;
    assert!(page.contains("slow@contoso.com"), "{page}");
    assert!(page.contains("20 hits in 2 groups"), "{page}");
    let (_, json) = get(&r, "/detections/brute_force_user/json").await;
    let ui: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut grouper = m365audit::detect::Grouper::new(&dets);
    store
        .for_each_record("cloud.office365.management", 0, |rec| {
            grouper.add_record(&rec.header, rec.raw.as_bytes());
            Ok(true)
        })
        .unwrap();
    let again = grouper.finish();
    let bf = again
        .detections
        .iter()
        .find(|d| d.id == "brute_force_user")
        .unwrap();
    assert_eq!(
        groups_of(&ui["detections"][0]["groups"]),
        groups_of(&serde_json::to_value(&bf.groups).unwrap())
    );

    // `bench` times a threshold detection's page and drill-down when one has hits.
    let t = m365audit::ui::bench::page_latencies(store.clone(), dets, 1)
        .await
        .unwrap();
    let paths: Vec<&str> = t.iter().map(|p| p.path.as_str()).collect();
    assert!(
        paths.contains(&"/detections/brute_force_user")
            || paths.contains(&"/detections/password_spray"),
        "{paths:?}"
    );
    assert!(t.iter().any(|p| p.page == "threshold-records"), "{paths:?}");
    store.close().unwrap();
}

/// The record page names the blob a record was first stored from and lists that blob's
/// other records (a duplicate in a later blob keeps its first blob); an imported record
/// has no blob. Also the store query behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_page_lists_the_other_records_of_its_blob() {
    use m365audit::model::{BlobRef, ContentType, format_api_time};
    let (_dir, store, r) = setup().await;
    let now = chrono::Utc::now();
    let blob = |id: &str| BlobRef {
        content_type: "Audit.Exchange".into(),
        content_id: id.into(),
        content_uri: format!("http://127.0.0.1/{id}"),
        content_created: format_api_time(now - chrono::Duration::minutes(20)),
        content_expiration: format_api_time(now + chrono::Duration::days(6)),
    };
    store
        .note_listing(
            "tenant-1",
            ContentType::Exchange,
            now - chrono::Duration::minutes(10),
            vec![blob("blob-A"), blob("blob-B")],
        )
        .await
        .unwrap();
    let ids: std::collections::HashMap<String, i64> = store
        .pending_blobs("tenant-1", ContentType::Exchange, now, 10)
        .unwrap()
        .into_iter()
        .map(|p| (p.blob.content_id, p.blob_id))
        .collect();
    let rec = |id: &str, m: i64| {
        serde_json::json!({
            "Id": id, "RecordType": 2, "Operation": "Send", "Workload": "Exchange",
            "CreationTime": m365audit::model::format_record_time(now - chrono::Duration::minutes(m)),
            "UserId": format!("{id}@contoso.com"), "ClientIP": "192.0.2.1", "OrganizationId": "tenant-1"
        })
    };
    let body = |v: Vec<serde_json::Value>| bytes::Bytes::from(serde_json::to_vec(&v).unwrap());
    store
        .ingest_blob(
            ids["blob-A"],
            body(vec![rec("a1", 30), rec("a2", 29), rec("a3", 28)]),
        )
        .await
        .unwrap();
    store
        .ingest_blob(ids["blob-B"], body(vec![rec("b1", 27), rec("a1", 30)]))
        .await
        .unwrap();
    store.flush().await.unwrap();

    let a1 = store.record_by_id("a1").unwrap().unwrap();
    let (info, same) = store.ui_same_blob(&a1, 10).unwrap().expect("a1 has a blob");
    assert_eq!((info.content_id.as_str(), info.records), ("blob-A", 3));
    let same: Vec<&str> = same.iter().map(|r| r.header.id.as_str()).collect();
    assert_eq!(same, ["a2", "a3"]);
    let (_, limited) = store.ui_same_blob(&a1, 1).unwrap().unwrap();
    assert_eq!(limited.len(), 1);
    let imported = store.record_by_id("rec-share-1").unwrap().unwrap();
    assert!(store.ui_same_blob(&imported, 10).unwrap().is_none());

    let (s, page) = get(&r, "/records/a1").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        page.contains("id=\"blob-link\" href=\"#same-blob\">blob-A (Audit.Exchange, 3 records)"),
        "{page}"
    );
    let blob_part = page.split("id=\"same-blob\"").nth(1).unwrap();
    let blob_part = &blob_part[..blob_part.find("</table>").unwrap()];
    assert!(
        blob_part.contains("href=\"/records/a2\"") && blob_part.contains("href=\"/records/a3\"")
    );
    assert!(!blob_part.contains("/records/b1"), "b1 is of another blob");
    // b1's blob also carried a1, but a1 was first stored from blob-A.
    let (_, b1) = get(&r, "/records/b1").await;
    assert!(b1.contains("blob-B (Audit.Exchange, 1 records)"), "{b1}");
    assert!(b1.contains("No other record was first stored from this blob."));
    let (_, imp) = get(&r, "/records/rec-share-1").await;
    assert!(imp.contains("— (imported, or stored before blobs were kept)"));
    assert!(!imp.contains("id=\"same-blob\""));
    store.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_and_metrics_show_the_devo_outbox_and_alert_when_the_receiver_is_down() {
    let (_dir, store, r) = setup().await;
    let (_, st) = get(&r, "/status").await;
    assert!(st.contains("Not configured"), "no forwarding yet");
    store.set_forwarding(true).await.unwrap();
    store
        .import_records(
            "tenant-1",
            vec![serde_json::json!({"Id": "fwd-1", "CreationTime": "2026-11-20T10:00:00", "Workload": "Exchange", "Operation": "Send"}).to_string()],
        )
        .await
        .unwrap();
    // down for 20 minutes, alert after 10
    let down_since = chrono::Utc::now().timestamp() - 1200;
    store
        .set_forward_state(serde_json::json!({
            "connection": "down", "last_error": "connecting to 127.0.0.1:6514: refused <b>x</b>",
            "down_since": down_since, "alert_after_secs": 600, "target": "syslog 127.0.0.1:6514 (TLS)"
        }))
        .await
        .unwrap();
    let (s, st) = get(&r, "/status").await;
    assert_eq!(s, StatusCode::OK);
    assert!(st.contains("role=\"alert\""), "{st}");
    assert!(st.contains("Devo receiver down since"), "{st}");
    assert!(st.contains("syslog 127.0.0.1:6514 (TLS)"), "{st}");
    assert!(st.contains("1 records"), "outbox depth: {st}");
    assert!(!st.contains("<b>x</b>"), "escaped error text");
    let (_, m) = get(&r, "/metrics").await;
    assert!(m.contains("m365audit_outbox_depth 1\n"), "{m}");
    assert!(m.contains("m365audit_devo_down 1\n"), "{m}");
    assert!(m.contains("m365audit_outbox_resent_total 0\n"), "{m}");
    // up again, not down long enough: no alert
    store
        .set_forward_state(serde_json::json!({
            "connection": "connected", "last_error": null, "down_since": null, "alert_after_secs": 600
        }))
        .await
        .unwrap();
    let (_, st) = get(&r, "/status").await;
    assert!(!st.contains("role=\"alert\""), "{st}");
    store.close().unwrap();
}

/// The user page over a real store: every record reachable page by page, the user agent
/// pivot finds that agent as a phrase (not records that merely share its words), and the
/// detection link shows only the groups of this user's hits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_page_pages_pivots_by_phrase_and_narrows_detections() {
    const UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Edge/120";
    let now = chrono::Utc::now() - chrono::Duration::hours(2);
    let t = |s: i64| m365audit::model::format_record_time(now + chrono::Duration::seconds(s));
    let mut recs: Vec<String> = (0..205)
        .map(|i| {
            serde_json::json!({
                "Id": format!("carol-{i:03}"), "CreationTime": t(i), "RecordType": 15,
                "Operation": "UserLoggedIn", "Workload": "AzureActiveDirectory",
                "UserId": "carol@contoso.com", "ClientIP": "198.51.100.20",
                "UserAgent": UA, "OrganizationId": "org-1"
            })
            .to_string()
        })
        .collect();
    let share = |id: &str, user: &str, to: &str, ua: &str| {
        serde_json::json!({
            "Id": id, "CreationTime": t(300), "RecordType": 6, "Operation": "SharingSet",
            "Workload": "OneDrive", "UserId": user, "ClientIP": "198.51.100.30",
            "ObjectId": "https://contoso-my.sharepoint.com/personal/x/Strategic_plan.docx",
            "TargetUserOrGroupName": to, "UserAgent": ua, "OrganizationId": "org-1"
        })
        .to_string()
    };
    recs.push(share(
        "carol-share",
        "carol@contoso.com",
        "eve@evil.example",
        UA,
    ));
    // the same words as carol's agent, in another order: a phrase search must miss it
    recs.push(share(
        "dave-share",
        "dave@contoso.com",
        "mallory@evil.example",
        "x64 Win64 Windows NT 10.0 Edge/120 Mozilla/5.0",
    ));
    let (_dir, store, r) = setup_with(recs).await;

    let (s, page0) = get(&r, "/user?id=carol%40contoso.com").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        page0.contains("records 1–200 of 206, newest first"),
        "{page0}"
    );
    assert!(page0.contains("href=\"/records/carol-share\""));
    assert!(page0.contains("class=\"chart activity\""));
    let (_, page1) = get(&r, "/user?id=carol%40contoso.com&page=1").await;
    assert!(page1.contains("records 201–206 of 206"), "{page1}");
    for i in 0..6 {
        assert!(
            page1.contains(&format!("href=\"/records/carol-{i:03}\"")),
            "{i}"
        );
    }
    assert!(!page1.contains("href=\"/records/carol-006\""));

    // the user agent pivot
    let pivot = page0
        .split("<a href=\"/search?q=")
        .nth(1)
        .and_then(|x| x.split('"').next())
        .map(|q| format!("/search?q={}", q.replace("&#38;", "&")))
        .unwrap();
    let (s, found) = get(&r, &pivot).await;
    assert_eq!(s, StatusCode::OK, "{pivot}");
    assert!(found.contains("206 records"), "{pivot}: {found}");
    assert!(!found.contains("dave-share"), "{pivot}");

    // the detection narrowed to carol: her recipient, not dave's
    let link = "/detections/onedrive_exfiltration?user=carol%40contoso.com";
    assert!(page0.contains(&format!("href=\"{link}\"")), "{page0}");
    let (s, det) = get(&r, link).await;
    assert_eq!(s, StatusCode::OK);
    assert!(det.contains("eve@evil.example"), "{det}");
    assert!(!det.contains("mallory@evil.example"), "{det}");
    // its record lists keep the filter
    let drill = det
        .split("class=\"drill\" href=\"")
        .nth(1)
        .and_then(|x| x.split('"').next())
        .unwrap()
        .replace("&#38;", "&");
    assert!(drill.ends_with("&user=carol%40contoso.com"), "{drill}");
    let (s, recs) = get(&r, &drill).await;
    assert_eq!(s, StatusCode::OK, "{drill}");
    assert!(recs.contains("href=\"/records/carol-share\""), "{recs}");
    assert!(!recs.contains("dave-share"));
    let (_, every) = get(
        &r,
        "/detections/onedrive_exfiltration/records?user=carol%40contoso.com",
    )
    .await;
    assert!(every.contains("carol-share") && !every.contains("dave-share"));
    assert!(every.contains("only records by carol@contoso.com"));
    let (_, all) = get(&r, "/detections/onedrive_exfiltration").await;
    assert!(all.contains("mallory@evil.example") && all.contains("eve@evil.example"));
    let (_, both) = get(&r, "/detections/onedrive_exfiltration/records").await;
    assert!(both.contains("carol-share") && both.contains("dave-share"));
    // an address in a group column is a pivot
    assert!(
        all.contains("<a class=\"pivot\" href=\"/ip?addr=198.51.100.30\">"),
        "{all}"
    );
    store.close().unwrap();
}
