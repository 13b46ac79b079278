//! The real binary's `run` and `serve`: the URL line, the access-token rule on a
//! non-loopback address, the pages over what was collected or imported, and a clean stop
//! on SIGINT. Processes are killed on drop; waits poll with deadlines.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::chromium::KillOnDrop;
use support::groups::groups_of;

const BIN: &str = env!("CARGO_BIN_EXE_m365audit");

/// Starts `m365audit ARGS`, returns the process and the URL from its
/// `m365audit <cmd>: open URL` line.
fn start(args: &[&str], env: &[(&str, &str)]) -> (KillOnDrop, String) {
    start_cmd(Command::new(BIN), args, env)
}

/// [`start`] in an address space of `kib` KiB (`ulimit -v`): a regression that takes all
/// memory fails the test, not the machine.
fn start_limited(kib: u64, args: &[&str]) -> (KillOnDrop, String) {
    let mut sh = Command::new("sh");
    // `exec`: the process killed on drop and sent SIGINT is m365audit itself
    sh.arg("-c")
        .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
        .arg(BIN);
    start_cmd(sh, args, &[])
}

fn start_cmd(mut cmd: Command, args: &[&str], env: &[(&str, &str)]) -> (KillOnDrop, String) {
    cmd.args(args)
        .env("M365AUDIT_LOG", "warn")
        .env_remove(m365audit::app::serve::TOKEN_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let guard = KillOnDrop(child);
    let url = support::ui_url::first_line_url(stdout);
    (guard, url)
}

fn stop(mut p: KillOnDrop) {
    let ok = Command::new("kill")
        .args(["-INT", &p.0.id().to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "sending SIGINT");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = p.0.try_wait().unwrap() {
            assert!(s.success(), "exit status {s}");
            return;
        }
        assert!(Instant::now() < deadline, "did not stop after SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn client() -> reqwest::Client {
    m365audit::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn import(data: &Path) {
    let file = data.join("in.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"Id":"imp-1","CreationTime":"2026-05-04T09:14:22","RecordType":8,"Operation":"Remove-AuditConfigurationPolicy","Workload":"Exchange","UserId":"admin@contoso.com","ClientIP":"203.0.113.5"}"#,
            "\n",
            r#"{"Id":"imp-2","CreationTime":"2026-05-04T09:15:00","RecordType":15,"Operation":"UserLoggedIn","Workload":"AzureActiveDirectory","UserId":"admin@contoso.com","ClientIP":"203.0.113.5"}"#,
            "\n"
        ),
    )
    .unwrap();
    let st = Command::new(BIN)
        .args(["import", "--data"])
        .arg(data)
        .arg(&file)
        .env("M365AUDIT_LOG", "warn")
        .status()
        .unwrap();
    assert!(st.success(), "import failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_shows_an_imported_store_and_stops_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    import(dir.path());
    let data = dir.path().to_str().unwrap();
    let (p, url) = start(&["serve", "--data", data, "--listen", "127.0.0.1:0"], &[]);
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.contains("token"),
        "{url}"
    );
    let c = client();
    let rec = c.get(format!("{url}records/imp-1")).send().await.unwrap();
    assert_eq!(rec.status(), 200);
    let body = rec.text().await.unwrap();
    assert!(body.contains("Remove-AuditConfigurationPolicy"));
    assert!(body.contains("href=\"/user?id=admin%40contoso.com\""));
    let user = c
        .get(format!("{url}user?id=admin%40contoso.com"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(user.contains("2 records"), "{user}");
    let dash = c.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(dash.contains("2 records"));
    stop(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_a_public_address_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    import(dir.path());
    let data = dir.path().to_str().unwrap();

    let out = Command::new(BIN)
        .args(["serve", "--data", data, "--listen", "0.0.0.0:0"])
        .env_remove(m365audit::app::serve::TOKEN_ENV)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "refuses with a usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("non-loopback"), "{err}");

    let (p, url) = start(
        &["serve", "--data", data, "--listen", "0.0.0.0:0"],
        &[(m365audit::app::serve::TOKEN_ENV, "generate")],
    );
    let (base, token) = url.split_once("?token=").expect("URL carries the token");
    assert_eq!(token.len(), 32);
    let c = client();
    let denied = c.get(base).send().await.unwrap();
    assert_eq!(denied.status(), 401);
    let login = c.get(&url).send().await.unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    let pair = cookie.split(';').next().unwrap();
    let ok = c.get(base).header("cookie", pair).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let bearer = c
        .get(format!("{base}metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    assert!(
        bearer
            .text()
            .await
            .unwrap()
            .contains("m365audit_records_total 2")
    );
    stop(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_collects_from_the_practice_tenant_and_serves() {
    let sim = m365audit::simulate::Simulator::start(m365audit::simulate::SimOptions::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.json");
    std::fs::write(&cfg, m365audit::app::demo::demo_config_text(&sim)).unwrap();
    let data = dir.path().join("data");

    // A public address without a token in the config: refused before anything starts.
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--data")
        .arg(&data)
        .args(["--listen", "0.0.0.0:0"])
        .env_remove(m365audit::app::serve::TOKEN_ENV)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!data.join("m365audit.db").exists(), "nothing started");

    let (p, url) = start(
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let c = client();
    // Poll until the collector has stored something the UI shows.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let m = c.get(format!("{url}metrics")).send().await.unwrap();
        let text = m.text().await.unwrap();
        let n: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("m365audit_records_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if n > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "nothing collected: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = c
        .get(format!("{url}status"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(status.contains(&format!(
        "Collector {}",
        m365audit::app::demo::DEMO_COLLECTOR_ID
    )));
    assert!(status.contains("Audit.Exchange"));
    assert!(
        !status.contains(&sim.client_secret),
        "the client secret is never rendered"
    );
    stop(p);
    sim.shutdown().await;
}

/// `serve` (like `run` and `demo`, which share its loader) reads the detections from
/// `M365AUDIT_QUERIES` when set, as `detect` does: a detection only that directory has is
/// listed with its own title and hits; without the variable it is not loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_loads_detections_from_m365audit_queries() {
    let dir = tempfile::tempdir().unwrap();
    let queries = dir.path().join("queries");
    std::fs::create_dir_all(&queries).unwrap();
    std::fs::write(
        queries.join("custom_admin_login.jq"),
        "# title: Custom admin sign-in rule\n# table: auth.all\n# severity: high\n\
         # group_by: UserId\nselect(.Operation == \"UserLoggedIn\") | {UserId}\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("in.jsonl");
    std::fs::write(
        &file,
        r#"{"Id":"q-1","CreationTime":"2026-05-04T09:15:00","RecordType":15,"Operation":"UserLoggedIn","Workload":"AzureActiveDirectory","UserId":"admin@contoso.com","ClientIP":"203.0.113.5"}"#,
    )
    .unwrap();
    let st = Command::new(BIN)
        .args(["import", "--data"])
        .arg(&data)
        .arg(&file)
        .env("M365AUDIT_LOG", "warn")
        .env("M365AUDIT_QUERIES", &queries)
        .status()
        .unwrap();
    assert!(st.success(), "import failed");
    let data = data.to_str().unwrap();
    let q = queries.to_str().unwrap();
    let c = client();

    let (p, url) = start(
        &["serve", "--data", data, "--listen", "127.0.0.1:0"],
        &[("M365AUDIT_QUERIES", q)],
    );
    let dash = c.get(&url).send().await.unwrap().text().await.unwrap();
    let row = dash
        .split("data-detection=\"custom_admin_login\"")
        .nth(1)
        .unwrap_or_else(|| panic!("custom detection not listed: {dash}"));
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("Custom admin sign-in rule"), "{row}");
    assert!(row.contains("<td class=\"num hits\">1</td>"), "{row}");
    assert!(
        !dash.contains("data-detection=\"authentication\""),
        "only the directory's detections are loaded"
    );
    stop(p);

    let (p, url) = start(&["serve", "--data", data, "--listen", "127.0.0.1:0"], &[]);
    let dash = c.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(dash.contains("data-detection=\"authentication\""));
    assert!(dash.contains("custom_admin_login (not loaded)"), "{dash}");
    stop(p);
}

/// The UI shows the threshold detections of the practice tenant exactly as
/// `detect --format json` reports them: per detection the same hits and the same groups
/// (key, count, first and last seen) in its JSON download, and the same hit count on the
/// dashboard — not the raw hits below the threshold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threshold_detections_in_the_ui_equal_detect_on_the_practice_tenant() {
    use m365audit::simulate::{SimOptions, Simulator};
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let sim = Simulator::start(SimOptions {
        seed: 1,
        days: 7,
        now: Some(now),
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let c = client();
    let truth = c
        .get(format!("{}/__control/truth", sim.control_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    sim.shutdown().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("truth.jsonl");
    std::fs::write(&file, truth).unwrap();
    let data = dir.path().join("data");
    let st = Command::new(BIN)
        .args(["import", "--data"])
        .arg(&data)
        .arg(&file)
        .env("M365AUDIT_LOG", "warn")
        .env_remove("M365AUDIT_QUERIES")
        .status()
        .unwrap();
    assert!(st.success(), "import failed");
    let out = Command::new(BIN)
        .args(["detect", "--format", "json", "--data"])
        .arg(&data)
        .env("M365AUDIT_LOG", "warn")
        .env_remove("M365AUDIT_QUERIES")
        .output()
        .unwrap();
    assert!(out.status.success(), "detect failed");
    let detect: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules: Vec<&serde_json::Value> = detect["detections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d.get("threshold").is_some())
        .collect();
    let ids: Vec<&str> = rules.iter().map(|d| d["id"].as_str().unwrap()).collect();
    for id in [
        "brute_force_user",
        "password_spray",
        "mass_download",
        "mass_file_deletion",
        "teams_mass_deletion",
    ] {
        assert!(ids.contains(&id), "{id} is a threshold detection: {ids:?}");
    }
    // The practice tenant has sub-threshold noise: raw hits would differ.
    let bf = rules
        .iter()
        .find(|d| d["id"] == "brute_force_user")
        .unwrap();
    assert!(bf["hits"].as_u64().unwrap() > 0);
    assert!(bf["matched"].as_u64().unwrap() > bf["hits"].as_u64().unwrap());

    let (p, url) = start(
        &[
            "serve",
            "--data",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let dash = c.get(&url).send().await.unwrap().text().await.unwrap();
    for d in &rules {
        let id = d["id"].as_str().unwrap();
        let ui: serde_json::Value = c
            .get(format!("{url}detections/{id}/json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let u = &ui["detections"][0];
        assert_eq!(u["hits"], d["hits"], "{id}");
        assert_eq!(u["matched"], d["matched"], "{id}");
        assert_eq!(u["threshold"], d["threshold"], "{id}");
        assert_eq!(groups_of(&u["groups"]), groups_of(&d["groups"]), "{id}");
        let row = dash
            .split(&format!("data-detection=\"{id}\""))
            .nth(1)
            .unwrap();
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(
            row.contains(&format!("<td class=\"num hits\">{}</td>", d["hits"])),
            "{id}: {row}"
        );
    }
    stop(p);
}

/// A configured token is the operator's: the start-up line (which lands in service logs)
/// shows a placeholder, never the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_token_is_never_printed() {
    const TOKEN: &str = "Kq3vX9mW2pL7rT4yB8nD5fH1jG6sZ0cA";
    let dir = tempfile::tempdir().unwrap();
    import(dir.path());
    let data = dir.path().to_str().unwrap();
    let (p, url) = start(
        &["serve", "--data", data, "--listen", "0.0.0.0:0"],
        &[(m365audit::app::serve::TOKEN_ENV, TOKEN)],
    );
    assert!(!url.contains(&TOKEN[..8]), "{url}");
    assert!(
        url.ends_with(m365audit::ui::CONFIGURED_TOKEN_PLACEHOLDER),
        "{url}"
    );
    // the token still works
    let base = url.split_once('?').unwrap().0;
    let ok = client()
        .get(format!("{base}metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    stop(p);
}

/// The search index deleted: the UI explains it as the CLI does (what is missing, what
/// rebuilds it), not "Something went wrong".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_search_index_is_explained_on_the_search_page() {
    let dir = tempfile::tempdir().unwrap();
    import(dir.path());
    std::fs::remove_dir_all(dir.path().join("index-v5")).unwrap();
    let data = dir.path().to_str().unwrap();
    let cli = Command::new(BIN)
        .args(["search", "--data", data, "admin"])
        .output()
        .unwrap();
    let cli_err = String::from_utf8_lossy(&cli.stderr).into_owned();
    assert!(cli_err.contains("search index"), "{cli_err}");
    let (p, url) = start(&["serve", "--data", data, "--listen", "127.0.0.1:0"], &[]);
    let page = client()
        .get(format!("{url}search?q=admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 503);
    let body = page.text().await.unwrap();
    assert!(!body.contains("Something went wrong"), "{body}");
    assert!(
        body.contains("search index") && body.contains("rebuild"),
        "{body}"
    );
    stop(p);
}

/// The query page runs the engine's guard rails: a filter that doubles a string fails its
/// page with the memory error, and `serve` (which under `run` also collects) goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doubling_query_on_the_query_page_fails_the_page_not_the_process() {
    let dir = tempfile::tempdir().unwrap();
    import(dir.path());
    let data = dir.path().to_str().unwrap();
    let (p, url) = start_limited(
        3_000_000,
        &["serve", "--data", data, "--listen", "127.0.0.1:0"],
    );
    let jq = r#"reduce range(40) as $i ("x"; . + .) | length"#;
    let jq: String = url::form_urlencoded::byte_serialize(jq.as_bytes()).collect();
    let c = client();
    let page = c
        .get(format!(
            "{url}query?table=cloud.office365.management&jq={jq}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let body = page.text().await.unwrap();
    assert!(body.contains("memory limit exceeded (256 MiB)"), "{body}");
    let health = c.get(format!("{url}healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    stop(p);
}
