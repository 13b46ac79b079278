//! End to end, in real headless Chromium against the real binary's `demo` (practice
//! tenant + collector + detections + UI in one process):
//!
//! * the dashboard lists each of the guide's seven detections with hits;
//! * following the rendered links detection → records → record → user works;
//! * screenshots of the main pages land in `target/test-output/e2e-demo/`;
//! * an XSS corpus planted through the practice tenant (`POST /__control/inject`) in file
//!   names, user agents, mail subjects and rule names renders inert: every payload would
//!   call a loopback canary, and none arrives (a control page proves the canary works);
//! * SIGINT stops the demo cleanly (exit 0).
//!
//! Waits poll with deadlines; nothing sleeps and hopes. The demo is killed on drop.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::chromium::{
    Canary, Chromium, KillOnDrop, assert_no_payload_ran, output_dir, xss_payloads,
};

/// The guide's seven detections (docs/detections.md, The guide's seven).
const GUIDE: [&str; 7] = [
    "authentication",
    "email_attachments",
    "exchange_auditing_disabled",
    "insider_risk_policies",
    "onedrive_exfiltration",
    "teams_exfiltration",
    "sharepoint_data_destruction",
];

/// How long a debug build may take to collect the practice tenant's week (the 60 s
/// promise is for a release build; this is only a deadline for a stuck test).
const COLLECT_DEADLINE: Duration = Duration::from_secs(600);

struct Demo {
    proc: KillOnDrop,
    url: String,
    control_url: Option<String>,
    _data: tempfile::TempDir,
}

fn start_demo() -> Demo {
    let data = tempfile::tempdir().unwrap();
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_m365audit"))
        .args(["demo", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .env("M365AUDIT_LOG", "warn")
        .env_remove(m365audit::app::serve::TOKEN_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let proc = KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("demo printed no URL line");
    let url = line
        .strip_prefix("m365audit demo: open ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .trim_end_matches('/')
        .to_string();
    // demo writes the practice tenant's ready line (docs/architecture.md, CLI) into the data dir.
    let control_url = std::fs::read_to_string(data.path().join("demo-simulator.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["control_url"].as_str().map(str::to_string));
    Demo {
        proc,
        url,
        control_url,
        _data: data,
    }
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, String) {
    match client.get(url).send().await {
        Ok(r) => {
            let s = r.status().as_u16();
            (s, r.text().await.unwrap_or_default())
        }
        Err(_) => (0, String::new()),
    }
}

/// The hit count the dashboard shows for one detection, if it lists it.
fn dashboard_hits(html: &str, id: &str) -> Option<u64> {
    let row = html.split(&format!("data-detection=\"{id}\"")).nth(1)?;
    let row = &row[..row.find("</tr>")?];
    let cell = row.split("class=\"num hits\">").nth(1)?;
    cell[..cell.find('<')?].trim().parse().ok()
}

/// The first `href` after `marker` in `html`, unescaped.
fn href_after(html: &str, marker: &str) -> Option<String> {
    let rest = html.split(marker).nth(1)?;
    let rest = rest.split("href=\"").nth(1)?;
    Some(rest[..rest.find('"')?].replace("&amp;", "&"))
}

/// Sends SIGINT (Ctrl-C) to the demo with the `kill` program: no unsafe code needed.
fn sigint(child: &Child) {
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "sending SIGINT");
}

/// The target of the first link with `class` in `html`.
fn link_of_class(html: &str, class: &str) -> Option<String> {
    let rest = html.split(&format!("class=\"{class}\" href=\"")).nth(1)?;
    Some(rest[..rest.find('"')?].replace("&amp;", "&"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_in_chromium_lights_the_guide_detections_and_stays_inert() {
    let Some(chrome) = Chromium::find() else {
        return;
    };
    let chrome = Arc::new(chrome);
    m365audit::install_crypto_provider();
    let client = reqwest::Client::new();
    let canary = Canary::start();
    let mut demo = start_demo();
    let base = demo.url.clone();

    let (s, body) = get(&client, &format!("{base}/healthz")).await;
    assert_eq!((s, body.as_str()), (200, "ok\n"));

    // Plant the XSS corpus through the practice tenant, one record per hostile field.
    let control = demo
        .control_url
        .clone()
        .expect("demo wrote no demo-simulator.json with the control_url");
    let payloads = xss_payloads(&canary);
    let mut lines = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        lines.push(serde_json::json!({
            "RecordType": 6, "Operation": "SharingSet", "Workload": "OneDrive",
            "UserId": format!("xss{i}@contoso.com"), "ClientIP": "198.51.100.77",
            "ObjectId": format!("https://contoso-my.sharepoint.com/personal/x/Strategic {p}.svg"),
            "SourceFileName": format!("{p}.svg"),
            "TargetUserOrGroupName": p, "UserAgent": p,
        }));
        lines.push(serde_json::json!({
            "RecordType": 2, "Operation": "New-InboxRule", "Workload": "Exchange",
            "UserId": format!("xss{i}@contoso.com"), "ClientIP": "198.51.100.77",
            "Subject": p, "ObjectId": p,
            "Parameters": [{"Name": "Name", "Value": p}, {"Name": "SubjectContainsWords", "Value": p}],
        }));
        lines.push(serde_json::json!({
            "RecordType": 2, "Operation": "Send", "Workload": "Exchange",
            "UserId": format!("xss{i}@contoso.com"), "ClientIP": "198.51.100.77",
            "Item": {"Subject": p, "Attachments": format!("{p}.svg (1234b)")},
        }));
        lines.push(serde_json::json!({
            "RecordType": 11, "Operation": "DlpRuleMatch", "Workload": "Exchange",
            "UserId": format!("xss{i}@contoso.com"), "ClientIP": "198.51.100.77",
            "PolicyDetails": [{"PolicyName": p, "Rules": [{"RuleName": p, "Severity": "High"}]}],
        }));
    }
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let res = client
        .post(format!("{control}/__control/inject"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_success(),
        "inject failed: {}",
        res.text().await.unwrap_or_default()
    );

    // Wait until every guide detection has hits and the planted records are stored.
    let deadline = Instant::now() + COLLECT_DEADLINE;
    let dash = loop {
        let (s, html) = get(&client, &format!("{base}/")).await;
        let missing: Vec<&str> = GUIDE
            .iter()
            .copied()
            .filter(|d| s != 200 || dashboard_hits(&html, d).unwrap_or(0) == 0)
            .collect();
        let (_, planted) = get(&client, &format!("{base}/ip?addr=198.51.100.77")).await;
        let planted_in = planted.contains(&format!("{} records", lines.len()));
        if missing.is_empty() && planted_in {
            break html;
        }
        assert!(
            Instant::now() < deadline,
            "after {COLLECT_DEADLINE:?}: no hits yet for {missing:?}; planted stored: {planted_in}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for d in GUIDE {
        assert!(dashboard_hits(&dash, d).unwrap_or(0) > 0, "{d}");
    }

    // Positive control: the browser reaches the canary when a page asks it to.
    let ch = chrome.clone();
    let ctl = canary.url("/control-page");
    tokio::task::spawn_blocking(move || ch.dump_dom(&ctl))
        .await
        .unwrap();
    assert!(
        canary.wait_for("/control-hit", Duration::from_secs(10)),
        "canary unreachable"
    );

    // Click through in Chromium: the DOM it rendered gives the next link each time.
    let out = output_dir("e2e-demo");
    let render = |path: String, shot: &'static str| {
        let ch = chrome.clone();
        let url = format!("{base}{path}");
        let file = out.join(format!("{shot}.png"));
        async move {
            tokio::task::spawn_blocking(move || {
                let dom = ch.dump_dom(&url);
                ch.screenshot(&url, &file);
                dom
            })
            .await
            .unwrap()
        }
    };
    let dom = render("/".into(), "dashboard").await;
    for d in GUIDE {
        assert!(
            dom.contains(&format!("data-detection=\"{d}\"")),
            "Chromium DOM lacks {d}"
        );
    }
    let det_href = href_after(&dom, "data-detection=\"onedrive_exfiltration\"").unwrap();
    assert_eq!(det_href, "/detections/onedrive_exfiltration");
    let dom = render(det_href, "detection").await;
    assert!(dom.contains("<table class=\"groups\">"), "no group table");
    let drill = link_of_class(&dom, "drill").expect("no drill-down link");
    let dom = render(drill, "detection_records").await;
    let rec_href = link_of_class(&dom, "record-link").expect("no record link on the drill-down");
    let dom = render(rec_href, "record").await;
    assert!(dom.contains("<pre class=\"raw\">"));
    let user_href = href_after(&dom, "<dt>User</dt>").expect("no user link");
    assert!(user_href.starts_with("/user?id="), "{user_href}");
    let dom = render(user_href, "user").await;
    assert!(
        dom.contains("<h2 id=\"timeline\">Timeline</h2>") && dom.contains("class=\"record-link\"")
    );
    render("/status".into(), "status").await;
    render("/search?q=strategic".into(), "search").await;

    // Every page that shows the planted records, in Chromium: nothing ran.
    for path in [
        "/".to_string(),
        "/detections/onedrive_exfiltration".into(),
        "/detections/onedrive_exfiltration/records".into(),
        "/ip?addr=198.51.100.77".into(),
        "/user?id=xss0%40contoso.com".into(),
        "/search?ip=198.51.100.77".into(),
        "/query?jq=select(.ClientIP%20%3D%3D%20%22198.51.100.77%22)".into(),
    ] {
        let dom = render(path.clone(), "xss").await;
        assert_eq!(
            dom.matches("<script").count(),
            1,
            "{path}: injected script element"
        );
        assert_no_payload_ran(&canary, &path);
    }
    let (_, ip_page) = get(&client, &format!("{base}/ip?addr=198.51.100.77")).await;
    for (i, _) in payloads.iter().enumerate() {
        let (_, user) = get(&client, &format!("{base}/user?id=xss{i}%40contoso.com")).await;
        let rec = link_of_class(&user, "record-link").expect("planted user has no record");
        let dom = render(rec.clone(), "xss_record").await;
        assert_eq!(
            dom.matches("<script").count(),
            1,
            "{rec}: injected script element"
        );
        assert_no_payload_ran(&canary, &rec);
    }
    assert!(ip_page.contains("xss0@contoso.com"));
    assert_no_payload_ran(&canary, "the whole run");

    // Ctrl-C stops the demo cleanly.
    sigint(&demo.proc.0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = demo.proc.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "demo did not stop after SIGINT");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "demo exited with {status}");
}
