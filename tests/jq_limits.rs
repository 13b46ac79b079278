//! The guard rails of a jq evaluation against the real binary (its counting allocator is
//! what the memory budget reads): a filter that doubles a string fails its record with
//! "memory limit exceeded" under a bounded address space instead of aborting the process,
//! through `query` and through `linq`'s `jqeval`; and `query`'s exit code when the filter
//! fails on every record or on some.

use std::path::{Path, PathBuf};
use std::process::Output;

/// The doubling of the report that took a host's memory: 2^40 bytes in 40 steps.
const BOMB: &str = r#"reduce range(40) as $i ("x"; . + .) | length"#;

/// Address space the binary runs in, in KiB (`ulimit -v`): far below what the bomb wants,
/// far above the budget of one evaluation and what the process needs besides.
const ADDRESS_SPACE_KIB: u64 = 3_000_000;

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs the binary with `args` under `ulimit -v`, so a regression fails this test instead
/// of the machine.
fn run_limited(args: &[&str]) -> Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_m365audit"))
        .args(args)
        .env_remove("M365AUDIT_QUERIES")
        .output()
        .unwrap()
}

/// A store holding two sign-in records (ids ending in 1 and 2).
fn store(dir: &Path) -> PathBuf {
    let record = |n: u32| {
        serde_json::json!({
            "Id": format!("00000000-0000-0000-0000-00000000000{n}"),
            "CreationTime": format!("2026-01-01T00:00:0{n}"),
            "Operation": "UserLoggedIn",
            "Workload": "AzureActiveDirectory",
            "RecordType": 15,
            "UserId": "analyst@example.com",
            "ClientIP": "192.0.2.1",
            "OrganizationId": "tenant-1",
        })
        .to_string()
    };
    let input = dir.join("records.jsonl");
    std::fs::write(&input, format!("{}\n{}\n", record(1), record(2))).unwrap();
    let data = dir.join("data");
    let o = run_limited(&[
        "import",
        "--data",
        data.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    data
}

#[test]
fn a_doubling_query_fails_its_records_with_a_memory_error_and_the_process_lives() {
    let dir = tempfile::tempdir().unwrap();
    let data = store(dir.path());
    let o = run_limited(&["query", "--data", data.to_str().unwrap(), BOMB]);
    let (out, err) = text(&o);
    // not an abort (134) or a kill: the runtime-failure exit of a query failing everywhere
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("memory limit exceeded (256 MiB)"), "{err}");
    assert!(
        err.contains("failed on every record it ran on (2)"),
        "{err}"
    );
    assert!(out.is_empty(), "{out}");

    // one record blows up, the other answers: its output stands
    let o = run_limited(&[
        "query",
        "--data",
        data.to_str().unwrap(),
        &format!(r#"if .Id | endswith("1") then {BOMB} else .Id end"#),
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(out.trim(), r#""00000000-0000-0000-0000-000000000002""#);
    assert!(err.contains("failed on 1 of 2 records"), "{err}");
    assert!(err.contains("memory limit exceeded"), "{err}");
}

#[test]
fn a_doubling_jqeval_gives_null_with_a_memory_warning_and_the_process_lives() {
    let dir = tempfile::tempdir().unwrap();
    let data = store(dir.path());
    let bomb = BOMB.replace('"', "\\\"");
    let o = run_limited(&[
        "linq",
        "--data",
        data.to_str().unwrap(),
        "--format",
        "jsonl",
        &format!("from auth.all select jqeval(jqcompile(\"{bomb}\"), jsonparse(message)) as n"),
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("memory limit exceeded"), "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn a_query_failing_on_every_record_exits_1_and_on_some_warns_with_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let data = store(dir.path());
    let o = run_limited(&[
        "query",
        "--data",
        data.to_str().unwrap(),
        r#"error("boom")"#,
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("failed on every record it ran on (2)"),
        "{err}"
    );
    assert!(err.contains("boom"), "{err}");
    assert!(out.is_empty(), "{out}");

    let o = run_limited(&[
        "query",
        "--data",
        data.to_str().unwrap(),
        r#"if .Id | endswith("1") then error("boom") else .UserId end"#,
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(out.trim(), r#""analyst@example.com""#);
    assert!(err.contains("failed on 1 of 2 records"), "{err}");
}
