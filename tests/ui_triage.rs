//! Triage through the real binary: an analyst triages a group with the detection page's
//! form in headless Chromium (state and note), the decision survives a reload, a new hit
//! planted into that group with `m365audit import` (while `serve` runs on the same store)
//! reopens it, and the dashboard's counts follow; screenshots of the dashboard, the
//! detection page and the user page land in `target/test-output/triage/`.
//!
//! And the write's guards, without a browser: a POST without the CSRF token, from a foreign
//! Origin, or without the UI token is refused; `serve --read-only` shows no form and
//! refuses every POST with 403; what was refused changed nothing. And `m365audit triage`
//! and `export --table triage`, as a script uses them.

mod collect_common;
mod support;

use collect_common::{BIN, Proc, Sim, collect_once, run, setup, text};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::cdp::Cdp;
use support::chromium::Chromium;

const DETECTION: &str = "authentication_outcomes";

/// `serve` on a free port; its URL without the trailing slash.
struct Serve {
    _proc: Proc,
    url: String,
}

impl Serve {
    fn start(data: &Path, extra: &[&str], token: Option<&str>) -> Serve {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .env("M365AUDIT_LOG", "warn")
            .env_remove(m365audit::app::serve::TOKEN_ENV)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(t) = token {
            cmd.env(m365audit::app::serve::TOKEN_ENV, t);
        }
        let mut child = cmd.spawn().expect("starting serve");
        let stdout = child.stdout.take().unwrap();
        let proc = Proc(child);
        let url = support::ui_url::first_line_url(stdout);
        let url = url
            .split('?')
            .next()
            .unwrap()
            .trim_end_matches('/')
            .to_string();
        Serve { _proc: proc, url }
    }
}

/// Where screenshots go: `$CARGO_TARGET_DIR/test-output/triage` (`target/` by default).
fn output_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let d = target.join("test-output").join("triage");
    std::fs::create_dir_all(&d).expect("test output dir");
    d
}

/// A sign-in record that lands in the authentication_outcomes group `key`.
fn record_for(key: &Value, id: &str) -> Value {
    let success = key["outcome"] == "success";
    let mut r = json!({
        "Id": id,
        "CreationTime": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
        "Operation": if success { "UserLoggedIn" } else { "UserLoginFailed" },
        "Workload": "AzureActiveDirectory",
        "RecordType": 15,
        "UserId": key["UserId"],
        "OrganizationId": "planted",
        "UserKey": "planted",
    });
    if let Some(ip) = key["ip"].as_str() {
        r["ClientIP"] = ip.into();
        r["ActorIpAddress"] = ip.into();
    }
    if let Some(e) = key["LogonError"].as_str() {
        r["LogonError"] = e.into();
    }
    r
}

fn import(data: &Path, records: &[Value], dir: &Path, name: &str) {
    let file = dir.join(name);
    let lines: Vec<String> = records.iter().map(Value::to_string).collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = run(&[
        "import",
        "--data",
        data.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "import: {}", text(&out.stderr));
}

fn triage_json(data: &Path) -> Vec<Value> {
    let out = run(&[
        "triage",
        "--data",
        data.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "triage: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The dashboard's triage cell of one detection (its visible text).
fn dashboard_triage(c: &mut Cdp) -> String {
    c.eval(&format!(
        "(function(){{ var r = document.querySelector('tr[data-detection=\"{DETECTION}\"] td.triage'); \
         return r ? r.innerText : null; }})()"
    ))
    .as_str()
    .unwrap_or_else(|| panic!("no triage cell for {DETECTION} on the dashboard"))
    .to_string()
}

#[test]
fn a_group_triaged_in_the_browser_is_kept_and_reopened_by_new_hits() {
    let Some(chrome) = Chromium::find() else {
        return;
    };
    let sim = Sim::start(&["--days", "1", "--records-per-day", "1500"]);
    let s = setup(&sim, json!({}));
    let out = collect_once(&s, &[]);
    assert!(out.status.success(), "collect: {}", text(&out.stderr));
    drop(sim);
    let serve = Serve::start(&s.data, &[], None);
    let shots = output_dir();
    let mut c = Cdp::start(&chrome);

    c.goto(&format!("{}/", serve.url));
    let before = dashboard_triage(&mut c);
    assert!(
        before.contains(" new"),
        "untriaged groups are new: {before:?}"
    );

    // The largest group of the detection, triaged with its row's form.
    let page = format!("{}/detections/{DETECTION}", serve.url);
    c.goto(&page);
    let key_text = c
        .eval("document.querySelector('form.triage input[name=key]').value")
        .as_str()
        .expect("a triage form on the detection page")
        .to_string();
    let key: Value = serde_json::from_str(&key_text).unwrap();
    let filled = c.eval(
        "(function(){ var f = document.querySelector('form.triage'); \
         f.closest('details').open = true; \
         f.querySelector('select[name=state]').value = 'resolved'; \
         f.querySelector('input[name=assignee]').value = 'alice'; \
         f.querySelector('textarea[name=note]').value = 'known pattern: the helpdesk test account'; \
         f.querySelector('button').setAttribute('data-test', 'save'); \
         return f.querySelector('input[name=csrf]').value.length; })()",
    );
    assert!(
        filled.as_u64().unwrap() >= 16,
        "the form carries a csrf token"
    );
    c.click_and_wait("button[data-test=save]");
    let after_post = c.eval("location.pathname");
    assert_eq!(
        after_post,
        json!(format!("/detections/{DETECTION}")),
        "the POST did not lead back to the detection page:\n{}",
        c.text()
    );

    // Kept: after a reload, and in the store.
    c.reload();
    let row = c
        .eval(
            "(function(){ var f = document.querySelector('form.triage'); \
             return f.closest('td').innerText; })()",
        )
        .as_str()
        .unwrap()
        .to_string();
    let state = c.eval(
        "document.querySelector('form.triage').closest('td').querySelector('.triage-state').innerText",
    );
    assert_eq!(state, json!("resolved"), "{row:?}");
    assert!(row.contains("alice"), "{row:?}");
    assert!(
        row.contains("known pattern: the helpdesk test account"),
        "{row:?}"
    );
    let selected = c.eval("document.querySelector('form.triage select[name=state]').value");
    assert_eq!(selected, json!("resolved"));
    let t = triage_json(&s.data);
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0]["key"], key);
    assert_eq!(t[0]["state"], "resolved");
    assert_eq!(t[0]["notes"][0]["author"], "web UI");
    c.goto(&format!("{}/", serve.url));
    let resolved = dashboard_triage(&mut c);
    assert!(resolved.contains("1 resolved"), "{resolved:?}");

    // A new hit of that group, stored by another process while serve runs, reopens it.
    import(
        &s.data,
        &[record_for(&key, "planted-triage-1")],
        s.dir.path(),
        "plant.jsonl",
    );
    c.goto(&page);
    let body = c.text();
    assert!(
        body.contains("reopened: 1 new hit since resolved"),
        "the detection page shows the reopening:\n{body}"
    );
    assert!(
        body.contains("1 reopened"),
        "the page's counts follow:\n{body}"
    );
    c.screenshot(&shots.join("detection.png"));
    // The group's own page: its history, newest first, with time and author.
    let history = c
        .eval(
            "document.querySelector('form.triage').closest('td').querySelector('a.triage-link').href",
        )
        .as_str()
        .unwrap()
        .to_string();
    c.goto(&history);
    let page_text = c.text();
    assert!(
        page_text.contains("known pattern: the helpdesk test account")
            && page_text.contains("web UI")
            && page_text.contains("reopened: 1 new hit since resolved"),
        "{page_text}"
    );
    c.screenshot(&shots.join("group-triage.png"));
    c.goto(&format!("{}/", serve.url));
    let reopened = dashboard_triage(&mut c);
    assert!(
        reopened.contains("1 reopened") && reopened.contains("1 new hit since triage"),
        "{reopened:?}"
    );
    assert!(!reopened.contains("resolved"), "{reopened:?}");
    c.screenshot(&shots.join("dashboard.png"));
    let t = triage_json(&s.data);
    assert_eq!(
        (t[0]["effective"].clone(), t[0]["new_hits"].clone()),
        (json!("reopened"), json!(1))
    );

    let user = key["UserId"].as_str().unwrap();
    let enc: String = url::form_urlencoded::byte_serialize(user.as_bytes()).collect();
    c.goto(&format!("{}/user?id={enc}", serve.url));
    assert!(c.text().contains(user));
    c.screenshot(&shots.join("user.png"));
}

/// Blocking form POSTs with chosen headers: the status and the body (for a redirect, its
/// Location).
fn post(url: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> (u16, String) {
    m365audit::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.expect("POST");
        let s = r.status().as_u16();
        if let Some(loc) = r.headers().get("location") {
            return (s, loc.to_str().unwrap().to_string());
        }
        (s, r.text().await.unwrap())
    })
}

fn attr(html: &str, before: &str) -> Option<String> {
    let at = html.find(before)? + before.len();
    let rest = &html[at..];
    Some(rest[..rest.find('"')?].to_string())
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#x22;", "\"")
        .replace("&amp;", "&")
}

#[test]
fn writes_without_token_from_other_origins_or_on_read_only_serve_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = json!({"LogonError": "InvalidPassword", "UserId": "bob@contoso.com",
                     "ip": "198.51.100.7", "outcome": "failure"});
    import(
        &data,
        &[record_for(&key, "a-1"), record_for(&key, "a-2")],
        dir.path(),
        "a.jsonl",
    );
    let http = collect_common::Http::new();
    let page_of = |url: &str| {
        let (code, html) = http.get(&format!("{url}/detections/{DETECTION}"));
        assert_eq!(code, 200, "{html}");
        html
    };

    {
        let serve = Serve::start(&data, &[], None);
        let html = page_of(&serve.url);
        assert_eq!(html.matches("<script").count(), 1, "still no inline script");
        let csrf = attr(&html, "name=\"csrf\" value=\"").expect("a csrf input");
        let form_key = unescape(&attr(&html, "name=\"key\" value=\"").expect("a key input"));
        assert_eq!(serde_json::from_str::<Value>(&form_key).unwrap(), key);
        let url = format!("{}/detections/{DETECTION}/triage", serve.url);
        let own = serve.url.clone();
        let good = [
            ("key", form_key.as_str()),
            ("state", "investigating"),
            ("assignee", "carol"),
            ("note", "refused writes must not land"),
        ];
        fn with<'a>(good: &[(&'a str, &'a str)], csrf: &'a str) -> Vec<(&'a str, &'a str)> {
            let mut f = good.to_vec();
            f.push(("csrf", csrf));
            f
        }
        let (code, body) = post(&url, &good, &[("origin", &own)]);
        assert_eq!(code, 403, "no csrf token: {body}");
        let (code, _) = post(&url, &with(&good, "0123456789abcdef0123456789abcdef"), &[]);
        assert_eq!(code, 403, "a wrong csrf token");
        for foreign in ["http://evil.example", "null", "http://127.0.0.1:1"] {
            let (code, body) = post(&url, &with(&good, &csrf), &[("origin", foreign)]);
            assert_eq!(code, 403, "Origin {foreign}: {body}");
        }
        let nogroup = [
            ("key", r#"{"UserId":"nobody@contoso.com"}"#),
            ("state", "resolved"),
            ("csrf", csrf.as_str()),
        ];
        let (code, body) = post(&url, &nogroup, &[("origin", &own)]);
        assert_eq!(code, 400, "a key that is no group: {body}");
        assert!(
            triage_json(&data).is_empty(),
            "a refused write changed triage"
        );
        let (code, to) = post(&url, &with(&good, &csrf), &[("origin", &own)]);
        assert_eq!(code, 303, "the form's own POST");
        assert_eq!(to, format!("/detections/{DETECTION}"));
        // A save returns to the page with its filters, and only to that page.
        let page = format!("/detections/{DETECTION}?range=7d&user=bob%40contoso.com");
        for (back, expect) in [
            (page.as_str(), page.as_str()),
            ("//evil.example/", "/detections/authentication_outcomes"),
            (
                "/detections/other?x=1",
                "/detections/authentication_outcomes",
            ),
        ] {
            let mut f = with(&good, &csrf);
            f.push(("back", back));
            f.retain(|(k, _)| *k != "note");
            let (code, to) = post(&url, &f, &[("origin", &own)]);
            assert_eq!((code, to.as_str()), (303, expect), "back={back}");
        }
        let t = triage_json(&data);
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0]["state"].clone(), t[0]["assignee"].clone()),
            (json!("investigating"), json!("carol"))
        );
        // GET of the same path is the group's triage page, never a write.
        let enc: String = url::form_urlencoded::byte_serialize(form_key.as_bytes()).collect();
        let (code, page) = http.get(&format!("{url}?key={enc}"));
        assert_eq!(code, 200);
        assert!(page.contains("refused writes must not land") && page.contains("carol"));
    }

    {
        let token = "0123456789abcdef-triage";
        let serve = Serve::start(&data, &[], Some(token));
        let url = format!("{}/detections/{DETECTION}/triage", serve.url);
        let (code, _) = post(
            &url,
            &[("key", "{}"), ("state", "resolved"), ("csrf", "x")],
            &[],
        );
        assert_eq!(code, 401, "a POST without the UI token");
    }

    {
        let serve = Serve::start(&data, &["--read-only"], None);
        let html = page_of(&serve.url);
        assert!(!html.contains("name=\"csrf\""), "read-only: no form");
        assert!(!html.contains("method=\"post\""), "read-only: no form");
        assert!(html.contains("investigating"), "triage is still shown");
        let url = format!("{}/detections/{DETECTION}/triage", serve.url);
        let (code, body) = post(
            &url,
            &[
                ("key", &key.to_string()),
                ("state", "resolved"),
                ("csrf", "x"),
            ],
            &[("origin", &serve.url)],
        );
        assert_eq!(code, 403, "{body}");
        assert!(body.contains("read-only"), "{body}");
        assert_eq!(triage_json(&data)[0]["state"], "investigating");
    }
}

fn cli(args: &[&str], data: &Path) -> std::process::Output {
    let mut a: Vec<&str> = args.to_vec();
    a.extend(["--data", data.to_str().unwrap()]);
    run(&a)
}

#[test]
fn the_triage_command_sets_lists_and_exports_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = json!({"LogonError": "InvalidPassword", "UserId": "dave@contoso.com",
                     "ip": "198.51.100.9", "outcome": "failure"});
    import(&data, &[record_for(&key, "c-1")], dir.path(), "c.jsonl");
    let k = key.to_string();
    // The key in any JSON spelling names the same group.
    let spaced = serde_json::to_string_pretty(&key).unwrap();
    let out = cli(
        &[
            "triage",
            DETECTION,
            &spaced,
            "--state",
            "false-positive",
            "--assignee",
            "erin",
            "--note",
            "a scanner we run",
            "--author",
            "erin (SOC)",
            "--format",
            "json",
        ],
        &data,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let set: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(set.len(), 1);
    assert_eq!(set[0]["key"], key);
    assert_eq!(set[0]["state"], "false_positive");
    assert_eq!(set[0]["notes"][0]["author"], "erin (SOC)");

    // A note alone keeps the state; the table names the state and the note.
    let out = cli(
        &["triage", DETECTION, &k, "--note", "second\u{1b}[31m look"],
        &data,
    );
    assert_eq!(out.status.code(), Some(2), "control characters are refused");
    let out = cli(&["triage", DETECTION, &k, "--note", "second look"], &data);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&cli(&["triage"], &data).stdout);
    assert!(
        table.contains("false_positive") && table.contains("second look") && table.contains("erin"),
        "{table}"
    );

    // Bad usage: unknown state, a key that is no JSON, a key without a change, a change
    // without a key.
    for args in [
        vec!["triage", DETECTION, k.as_str(), "--state", "closed"],
        vec!["triage", DETECTION, "dave", "--state", "resolved"],
        vec!["triage", DETECTION, k.as_str()],
        vec!["triage", DETECTION, "--state", "resolved"],
    ] {
        let out = cli(&args, &data);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(!text(&out.stderr).is_empty());
    }

    // A new hit reopens the false positive, for scripts too.
    import(&data, &[record_for(&key, "c-2")], dir.path(), "c2.jsonl");
    let rows = triage_json(&data);
    assert_eq!(rows[0]["effective"], "reopened");
    assert_eq!(rows[0]["new_hits"], 1);

    // Exports: one group per JSON line, or per CSV row with its history.
    let out = cli(&["export", "--table", "triage"], &data);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["key"], key);
    assert_eq!(lines[0]["notes"].as_array().unwrap().len(), 2);
    let out = cli(&["export", "--table", "triage", "--format", "csv"], &data);
    let csv = text(&out.stdout);
    assert!(
        csv.starts_with("detection,key,state,effective,new_hits,assignee"),
        "{csv}"
    );
    assert!(
        csv.contains("a scanner we run") && csv.contains("reopened"),
        "{csv}"
    );
    let out = cli(&["export", "--table", "triage", "--user", "x"], &data);
    assert_eq!(out.status.code(), Some(2));
}
