//! `m365audit import` with the real binary: every format, bad lines reported as
//! `file:line`, everything else stored once, a second import adds nothing.

use serde_json::{Value, json};
use std::io::Write;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_m365audit");

fn rec(id: &str, op: &str) -> Value {
    json!({"Id": id, "CreationTime": "2026-11-20T10:00:00", "Workload": "Exchange",
           "Operation": op, "RecordType": 2, "UserId": "alice@contoso.com",
           "OrganizationId": "0b6a3c52-1b7e-4a5e-9f0e-1f2f3a4b5c6d", "ClientIP": "203.0.113.7"})
}

#[test]
fn import_every_format_reports_bad_lines_and_stores_the_rest_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let jsonl = d.join("a.jsonl");
    std::fs::write(
        &jsonl,
        format!(
            "{}\nnot json at all\n{}\n",
            rec("j1", "Send"),
            rec("j2", "Send")
        ),
    )
    .unwrap();
    let array = d.join("b.json");
    std::fs::write(
        &array,
        serde_json::to_string_pretty(&json!([rec("a1", "Set-Mailbox"), rec("j1", "Send")]))
            .unwrap(),
    )
    .unwrap();
    let csv = d.join("c.csv");
    let cell = |v: &Value| format!("\"{}\"", v.to_string().replace('"', "\"\""));
    std::fs::write(
        &csv,
        format!(
            "CreationDate,UserIds,Operations,AuditData\n2026-11-20T10:00:00,alice,MailItemsAccessed,{}\n2026-11-20T10:00:00,alice,X,\"{{\"\"Operation\"\":\"\"NoId\"\"}}\"\n",
            cell(&rec("c1", "MailItemsAccessed"))
        ),
    )
    .unwrap();
    let gz = d.join("d.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    writeln!(enc, "{}", rec("g1", "FileAccessed")).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let data = d.join("data");
    let out = Command::new(BIN)
        .arg("import")
        .arg("--data")
        .arg(&data)
        .args([&jsonl, &array, &csv, &gz])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "bad lines make the exit code 1:\n{err}"
    );
    assert!(
        err.contains(&format!("{}:2: record is not valid JSON", jsonl.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}:3: record has no string \"Id\"", csv.display())),
        "{err}"
    );
    assert!(err.contains("every other record is stored"), "{err}");
    let store = m365audit::store::Store::open_read_only(&data).unwrap();
    let ids: Vec<String> = store
        .record_keys()
        .unwrap()
        .into_iter()
        .map(|k| k.1)
        .collect();
    assert_eq!(ids, vec!["a1", "c1", "g1", "j1", "j2"]);
    assert_eq!(
        store.record_by_id("a1").unwrap().unwrap().value().unwrap(),
        rec("a1", "Set-Mailbox")
    );
    // search sees imported records
    let out = Command::new(BIN)
        .args(["search", "--json", "--data"])
        .arg(&data)
        .arg("operation:set-mailbox")
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["total"], json!(1));
    assert_eq!(r["hits"][0]["id"], json!("a1"));
    // importing again adds nothing and succeeds for clean files
    let out = Command::new(BIN)
        .arg("import")
        .arg("--data")
        .arg(&data)
        .args([&array, &gz])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("0 stored, 2 duplicates"), "{stdout}");
    assert_eq!(store.record_keys().unwrap().len(), 5);
}

#[test]
fn import_of_a_missing_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("import")
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg(dir.path().join("nope.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read") && err.contains("nope.json"),
        "{err}"
    );
}
