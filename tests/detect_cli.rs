//! `detect`, `query` and `check` against the real binary: test records imported into a
//! fresh store, grouped results in the three formats (the JSON shape of docs/architecture.md, CLI),
//! ad-hoc jq as JSON lines, and broken queries reported as file:line:column with exit 2.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_m365audit"));
    c.env_remove("M365AUDIT_QUERIES");
    c
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Imports every test record of `queries/tests` into `<dir>/data`; returns the data dir.
fn store_with_test_records(dir: &Path) -> PathBuf {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries/tests");
    let mut lines = String::new();
    let mut files: Vec<_> = std::fs::read_dir(&tests)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        for l in std::fs::read_to_string(&f)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            let v: Value = serde_json::from_str(l).unwrap();
            lines.push_str(&v["record"].to_string());
            lines.push('\n');
        }
    }
    let input = dir.join("records.jsonl");
    std::fs::write(&input, lines).unwrap();
    let data = dir.join("data");
    let o = bin()
        .arg("import")
        .arg("--data")
        .arg(&data)
        .arg(&input)
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", text(&o));
    data
}

#[test]
fn detect_prints_grouped_results_in_three_formats() {
    let dir = tempfile::tempdir().unwrap();
    let data = store_with_test_records(dir.path());

    let o = bin()
        .args(["detect", "--format", "json", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let dets = v["detections"].as_array().unwrap();
    assert!(dets.len() >= 30, "{}", dets.len());
    for d in dets {
        for k in ["id", "title", "severity", "hits", "groups"] {
            assert!(d.get(k).is_some(), "{k} missing in {d}");
        }
        for g in d["groups"].as_array().unwrap() {
            for k in ["key", "count", "first_seen", "last_seen"] {
                assert!(g.get(k).is_some(), "{k} missing in {g}");
            }
        }
    }
    // the inactivity monitor: one source per Workload and per content type, none quiet yet
    let sources = v["monitor"]["sources"].as_array().unwrap();
    assert!(
        sources
            .iter()
            .any(|s| s["source"]["kind"] == "workload" && s["source"]["workload"] == "Exchange"),
        "{sources:?}"
    );
    assert!(
        sources.iter().any(|s| s["source"]["kind"] == "content_type"
            && s["source"]["content_type"] == "Audit.SharePoint"),
        "{sources:?}"
    );
    assert!(sources.iter().all(|s| s["alert"] == false), "{sources:?}");
    assert_eq!(v["monitor"]["quiet_secs"], 12 * 3600);
    let o = bin()
        .args(["detect", "--data"])
        .arg(&data)
        .env("M365AUDIT_QUIET_HOURS", "soon")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));

    let by_id = |id: &str| {
        dets.iter()
            .find(|d| d["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing"))
    };
    // one group per (user, address, failure reason) in the corrected authentication rule
    let auth = by_id("authentication_outcomes");
    assert!(auth["hits"].as_u64().unwrap() >= 5, "{auth}");
    assert!(
        auth["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["key"]["LogonError"] == "IdsLocked"),
        "{auth}"
    );
    // the test records hold single failures: no threshold rule reaches its count
    assert_eq!(
        by_id("brute_force_user")["groups"],
        Value::Array(vec![]),
        "{}",
        by_id("brute_force_user")
    );
    assert!(by_id("brute_force_user")["matched"].as_u64().unwrap() >= 1);

    let o = bin()
        .args([
            "detect",
            "--format",
            "csv",
            "--detection",
            "external_sharing",
            "--data",
        ])
        .arg(&data)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("detection,title,severity,key,count,first_seen,last_seen")
    );
    let rows: Vec<&str> = lines.collect();
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r.starts_with("external_sharing,")),
        "{out}"
    );

    let o = bin()
        .args(["detect", "--detection", "external_sharing", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let (out, _) = text(&o);
    assert!(out.contains("external_sharing [medium]"), "{out}");

    let o = bin()
        .args(["detect", "--detection", "no_such_rule", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown detection \"no_such_rule\""), "{err}");
}

#[test]
fn query_streams_json_lines_and_reports_syntax_errors_with_position() {
    let dir = tempfile::tempdir().unwrap();
    let data = store_with_test_records(dir.path());
    let o = bin()
        .args(["query", "--table", "auth.all", "--data"])
        .arg(&data)
        .arg(r#"include "m365"; select(.Operation == "UserLoginFailed") | {UserId, ip: actor_ip}"#)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.len() >= 5, "{out}");
    assert!(
        rows.iter()
            .all(|r| r.get("UserId").is_some() && r.get("ip").is_some()),
        "{out}"
    );

    let o = bin()
        .args(["query", "--data"])
        .arg(&data)
        .arg(".a |\n (1 +")
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("<query>:2:2:"), "{err}");

    let o = bin()
        .args(["query", "--data"])
        .arg(&data)
        .arg("now")
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("not available in detections"), "{err}");

    let o = bin()
        .args(["query", "--table", "cloud.nope", "--data"])
        .arg(&data)
        .arg(".")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));
}

#[test]
fn check_reports_a_broken_query_as_file_line_column() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("m365audit.json");
    std::fs::write(
        &config,
        r#"{ "inputs": { "office365": { "credentials": { "client_id": "0d5a1a0c-1111-2222-3333-444455556666", "client_secret": "s3cret-value", "tenant_id": "4f1c2b7e-9a3d-4c8e-b2f6-7d1e0a9c5b31" }, "enabled": true, "id": "12345", "services": { "exchange": {} } } } }"#,
    )
    .unwrap();
    let o = bin()
        .arg("check")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains("detections: ") && out.contains("compiled (embedded)"),
        "{out}"
    );

    let queries = dir.path().join("queries");
    std::fs::create_dir_all(queries.join("lib")).unwrap();
    std::fs::write(queries.join("lib/m365.jq"), "def ok: true;\n").unwrap();
    std::fs::write(
        queries.join("good.jq"),
        "# title: Good\n# table: auth.all\ninclude \"m365\";\nselect(ok)\n",
    )
    .unwrap();
    std::fs::write(
        queries.join("broken.jq"),
        "# title: Broken\n# table: auth.all\nselect(.Operation ==\n",
    )
    .unwrap();
    std::fs::write(
        queries.join("header.jq"),
        "# title: Header\n# table: auth.all\n# colour: red\n.\n",
    )
    .unwrap();
    // a hand-written `# fields` that leaves out what a helper reads (`ip` reads ClientIP)
    std::fs::write(queries.join("lib/net.jq"), "def ip: .ClientIP // null;\n").unwrap();
    std::fs::write(
        queries.join("claim.jq"),
        "# title: Claim\n# table: auth.all\n# fields: Operation, UserId\ninclude \"net\";\nselect(.Operation == \"UserLoggedIn\") | {UserId, ip: ip}\n",
    )
    .unwrap();
    // without the line the engine works the fields out itself: it loads
    std::fs::write(
        queries.join("noclaim.jq"),
        "# title: No claim\n# table: auth.all\ninclude \"net\";\nselect(.Operation == \"UserLoggedIn\") | {UserId, ip: ip}\n",
    )
    .unwrap();
    let o = bin()
        .arg("check")
        .arg("--config")
        .arg(&config)
        .env("M365AUDIT_QUERIES", &queries)
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("broken.jq:3:7:"), "{err}");
    assert!(
        err.contains("header.jq:3:3: unknown header key \"colour\""),
        "{err}"
    );
    assert!(!err.contains("good.jq"), "{err}");
    assert!(
        err.contains("claim.jq:3:1: `# fields` leaves out `ClientIP`, which the filter reads"),
        "{err}"
    );
    assert!(!err.contains("noclaim.jq"), "{err}");
}
