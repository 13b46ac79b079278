//! The command line against hostile records and hostile surroundings, with the real binary:
//! record values with terminal escapes, carriage returns and bidi overrides never reach
//! the terminal raw (`search`, `detect --format table`, `query`'s error lines, `import`);
//! an endless query stops at its `--timeout`; a closed stdout ends a command quietly, a
//! full one is an error that says so (exit 1, never a panic); a store written by a newer
//! m365audit is named as such.

use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Erase the line, move up, retitle the terminal, bell, bare CR, C1 CSI, DEL, a right-to-left
/// override and an isolate: everything a planted UserId could use.
const HOSTILE: &str =
    "\u{1b}[2K\u{1b}[1A\u{1b}]0;pwned\u{7}\rfake\u{9b}31m\u{7f}\u{202e}gnp.exe\u{2066}x\u{2069}";

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_m365audit"));
    c.env_remove("M365AUDIT_QUERIES");
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The first character a terminal would act on (a line break is ours and allowed).
fn raw_control(s: &str) -> Option<char> {
    s.chars().find(|&c| {
        c != '\n'
            && (c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
    })
}

/// Imports the test records of `queries/tests` with [`HOSTILE`] appended to every UserId
/// (and to one Id); returns the data dir.
fn hostile_store(dir: &Path) -> PathBuf {
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
            let mut r = v["record"].clone();
            if let Some(u) = r["UserId"].as_str() {
                r["UserId"] = Value::String(format!("{u}{HOSTILE}"));
            }
            lines.push_str(&r.to_string());
            lines.push('\n');
        }
    }
    // a record whose Id is hostile, for error lines that name the record
    lines.push_str(
        &serde_json::json!({"Id": format!("evil{HOSTILE}"), "CreationTime": "2026-05-04T10:00:00",
            "Operation": "FileAccessed", "Workload": "SharePoint", "RecordType": 6,
            "UserId": format!("mallory{HOSTILE}")})
        .to_string(),
    );
    lines.push('\n');
    // a bad line that echoes hostile text
    lines.push_str(&format!("not json {HOSTILE}\n"));
    let input = dir.join(format!("records{HOSTILE}.jsonl"));
    std::fs::write(&input, lines).unwrap();
    let data = dir.join("data");
    let o = bin()
        .arg("import")
        .arg("--data")
        .arg(&data)
        .arg(&input)
        .output()
        .unwrap();
    // exit 1: the bad line is reported (escaped), every other record stored
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains(r"records\u{1b}[2K"), "{}", text(&o));
    assert_eq!(raw_control(&text(&o)), None, "import: {:?}", text(&o));
    data
}

#[test]
fn record_values_never_reach_the_terminal_raw() {
    let dir = tempfile::tempdir().unwrap();
    let data = hostile_store(dir.path());
    let d = data.to_str().unwrap();
    let runs: [&[&str]; 5] = [
        &["search", "--data", d, "--limit", "200", "pwned"],
        &["search", "--data", d, "--limit", "200", "mallory"],
        &["detect", "--format", "table", "--data", d],
        &["stats", "--data", d],
        &["query", "--data", d, r#".UserId | error"#],
    ];
    for args in runs {
        let o = bin().args(args).output().unwrap();
        let all = text(&o);
        // the query fails on every record by design (its errors carry the values): exit 1
        let expected = if args[0] == "query" { Some(1) } else { Some(0) };
        assert_eq!(o.status.code(), expected, "{args:?}: {all}");
        assert_eq!(raw_control(&all), None, "{args:?}: {all:?}");
    }
    // the values are shown, escaped, not dropped
    let o = bin()
        .args(["search", "--data", d, "--limit", "200", "mallory"])
        .output()
        .unwrap();
    let out = text(&o);
    assert!(out.contains(r"mallory\u{1b}[2K"), "{out}");
    assert!(out.contains(r"\u{202e}gnp.exe"), "{out}");
    let o = bin()
        .args(["detect", "--format", "table", "--data", d])
        .output()
        .unwrap();
    assert!(
        text(&o).contains(r"\u{1b}]0;pwned\u{7}\rfake"),
        "{}",
        text(&o)
    );
    let o = bin()
        .args(["query", "--data", d, r#".UserId | error"#])
        .output()
        .unwrap();
    assert!(text(&o).contains(r"\u{202e}"), "{}", text(&o));
}

#[test]
fn json_and_csv_outputs_carry_record_values_escaped_and_keep_their_meaning() {
    let dir = tempfile::tempdir().unwrap();
    let data = hostile_store(dir.path());
    let d = data.to_str().unwrap();
    let linq = "from cloud.office365.management";
    let runs: [&[&str]; 7] = [
        &["query", "--data", d, "."],
        &["search", "--json", "--data", d, "--limit", "200", "mallory"],
        &["stats", "--json", "--data", d],
        &["detect", "--format", "json", "--data", d],
        &["detect", "--format", "csv", "--data", d],
        &["linq", "--format", "jsonl", "--data", d, linq],
        &["linq", "--format", "csv", "--data", d, linq],
    ];
    for args in runs {
        let o = bin().args(args).output().unwrap();
        let all = text(&o);
        assert!(o.status.success(), "{args:?}: {all}");
        assert_eq!(raw_control(&all), None, "{args:?}: {all:?}");
    }
    // JSON lines still parse to the record's own values
    let o = bin()
        .args(["query", "--data", d, ".UserId"])
        .output()
        .unwrap();
    let users: Vec<Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        users
            .iter()
            .any(|u| u.as_str() == Some(&*format!("mallory{HOSTILE}"))),
        "{users:?}"
    );
    // the Purview CSV: the columns for people are escaped and cannot start a formula; the
    // AuditData cell is the record exactly as stored (import reads it back)
    let o = bin()
        .args(["export", "--format", "csv", "--data", d])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let mut rows = csv::Reader::from_reader(&o.stdout[..]);
    let mut n = 0;
    for row in rows.records() {
        let row = row.unwrap();
        for (i, cell) in row.iter().enumerate() {
            if i != 3 {
                assert_eq!(raw_control(cell), None, "column {i}: {cell:?}");
                assert!(!cell.starts_with(['=', '+', '-', '@']), "{cell:?}");
            }
        }
        let record: Value = serde_json::from_str(&row[3]).unwrap();
        n += usize::from(
            record["UserId"]
                .as_str()
                .is_some_and(|u| u.contains(HOSTILE)),
        );
    }
    assert!(n > 0, "no record kept its hostile UserId in AuditData");
}

#[test]
fn an_endless_query_stops_at_its_timeout_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = hostile_store(dir.path());
    for jq in ["repeat(.)", "limit(1e9; repeat(1))"] {
        let start = Instant::now();
        let o = bin()
            .args(["query", "--timeout", "1", "--data"])
            .arg(&data)
            .arg(jq)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        let err = text(&o);
        assert_eq!(o.status.code(), Some(1), "{jq}: {err}");
        assert!(err.contains("--timeout"), "{jq}: {err}");
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{jq}: took {:?}",
            start.elapsed()
        );
    }
    // the default keeps short queries untouched
    let o = bin()
        .args(["query", "--data"])
        .arg(&data)
        .arg(".Id")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

/// Runs `args` with stdout closed before the command writes a byte: the first write hits
/// a reader that is gone, like `… | head -0`.
fn with_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let mut child = bin()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    (status.code(), err)
}

/// A config `check` accepts, written into `dir`.
fn valid_config(dir: &Path) -> PathBuf {
    let config = dir.join("m365audit.json");
    std::fs::write(
        &config,
        r#"{ "inputs": { "office365": { "credentials": { "client_id": "0d5a1a0c-1111-2222-3333-444455556666", "client_secret": "s3cret-value", "tenant_id": "4f1c2b7e-9a3d-4c8e-b2f6-7d1e0a9c5b31" }, "enabled": true, "id": "12345", "services": { "exchange": {} } } } }"#,
    )
    .unwrap();
    config
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let data = hostile_store(dir.path());
    let d = data.to_str().unwrap();
    let config = valid_config(dir.path());
    let c = config.to_str().unwrap();
    let runs: [&[&str]; 6] = [
        &["check", "--config", c],
        &["search", "--data", d, "pwned"],
        &["detect", "--data", d],
        &["stats", "--data", d],
        &["query", "--data", d, "."],
        &["search", "--json", "--data", d, "pwned"],
    ];
    for args in runs {
        let (code, err) = with_closed_stdout(args);
        assert_ne!(code, Some(101), "{args:?} panicked: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe") && !err.contains("error"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_full_stdout_is_an_error_that_says_so_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let data = hostile_store(dir.path());
    let d = data.to_str().unwrap();
    let config = valid_config(dir.path());
    let c = config.to_str().unwrap();
    let runs: [&[&str]; 8] = [
        &["check", "--config", c],
        &["search", "--data", d, "pwned"],
        &["search", "--json", "--data", d, "pwned"],
        &["stats", "--data", d],
        &["stats", "--json", "--data", d],
        &["detect", "--data", d],
        &["query", "--data", d, "."],
        &["export", "--data", d],
    ];
    for args in runs {
        // /dev/full takes the open and fails every write with "no space left on device"
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let o = bin().args(args).stdout(full).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            err.contains("writing") && err.contains("No space left on device"),
            "{args:?}: {err}"
        );
    }
    // an import stores and ledgers its file whatever becomes of the summary line
    let input = dir.path().join("one.jsonl");
    std::fs::write(
        &input,
        r#"{"Id":"full-1","CreationTime":"2026-05-04T10:00:00","Operation":"FileAccessed","Workload":"SharePoint","RecordType":6,"UserId":"a@b.c"}"#,
    )
    .unwrap();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = bin()
        .args(["import", "--data", d])
        .arg(&input)
        .stdout(full)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let o = bin()
        .args(["query", "--data", d, r#"select(.Id == "full-1") | .Id"#])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), r#""full-1""#);
}

#[test]
fn a_store_from_a_newer_m365audit_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let data = hostile_store(dir.path());
    let conn = rusqlite::Connection::open(data.join("m365audit.db")).unwrap();
    conn.pragma_update(None, "user_version", 9999).unwrap();
    drop(conn);
    for args in [
        &["stats"][..],
        &["search", "x"],
        &["detect"],
        &["query", "."],
    ] {
        let o = bin()
            .args(&args[..1])
            .arg("--data")
            .arg(&data)
            .args(&args[1..])
            .output()
            .unwrap();
        let err = text(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("newer m365audit"), "{args:?}: {err}");
        assert!(!err.contains("to migrate"), "{args:?}: {err}");
    }
}

/// Every directory and file under `dir` with a mode that lets other users in.
fn shared_paths(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.permissions().mode() & 0o077 != 0 {
            out.push(format!(
                "{} {:o}",
                p.display(),
                m.permissions().mode() & 0o777
            ));
        }
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

#[test]
fn the_store_is_private_whatever_the_umask_and_a_shared_one_is_named() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        r#"{"Id":"p-1","CreationTime":"2026-05-04T09:14:22","RecordType":15,"Operation":"UserLoggedIn","Workload":"AzureActiveDirectory","UserId":"admin@contoso.com"}"#,
    )
    .unwrap();
    let data = dir.path().join("a").join("data");
    let o = Command::new("sh")
        .arg("-c")
        .arg("umask 022; exec \"$0\" import --data \"$1\" \"$2\"")
        .arg(env!("CARGO_BIN_EXE_m365audit"))
        .arg(&data)
        .arg(&input)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(data.join("m365audit.db").exists());
    assert_eq!(shared_paths(&data), Vec::<String>::new());
    assert!(!text(&o).contains("warning"), "{}", text(&o));

    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = bin()
        .arg("stats")
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning") && err.contains("other local users") && err.contains("755"),
        "{err}"
    );

    // An export holds the same audit data: new or reused, the file ends up the owner's only.
    let out = dir.path().join("export.jsonl");
    std::fs::write(&out, "old").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
    let fresh = dir.path().join("fresh.csv");
    for (path, format) in [(&out, "jsonl"), (&fresh, "csv")] {
        let o = Command::new("sh")
            .arg("-c")
            .arg("umask 022; exec \"$0\" export --data \"$1\" --format \"$2\" --out \"$3\"")
            .arg(env!("CARGO_BIN_EXE_m365audit"))
            .arg(&data)
            .arg(format)
            .arg(path)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
        assert!(std::fs::read_to_string(path).unwrap().contains("p-1"));
    }
}
