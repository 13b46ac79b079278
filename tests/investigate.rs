//! Offline investigation with the real binary: exports in every format and quirk import
//! to the expected records with their damage reported as `file:line`; `export` → `import`
//! round-trips; the practice tenant's ground truth imported as JSON lines and as Purview CSV
//! gives the detections of collecting it; a store on read-only media, opened by a user who
//! cannot write it, answers every read command and UI page without changing a byte.

mod collect_common;
mod support;

use collect_common::{BIN, Proc, Sim, collect_once, run, setup, text};
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

const ORG: &str = "0b6a3c52-1b7e-4a5e-9f0e-1f2f3a4b5c6d";

fn rec(id: &str, op: &str) -> Value {
    json!({"Id": id, "CreationTime": "2026-11-20T10:00:00", "Workload": "Exchange",
           "Operation": op, "RecordType": 2, "UserId": "alice@contoso.com",
           "OrganizationId": ORG, "ClientIP": "203.0.113.7"})
}

fn csv_cell(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn sha256(p: &Path) -> String {
    format!("{:x}", sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

fn import(data: &Path, files: &[&Path]) -> Output {
    let mut c = Command::new(BIN);
    c.args(["import", "--data"]).arg(data).args(files);
    c.env("M365AUDIT_LOG", "warn");
    c.output().unwrap()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "failed: {}", text(&o.stderr));
    text(&o.stdout)
}

/// The Ids stored, sorted.
fn ids(data: &Path) -> Vec<String> {
    let s = m365audit::store::Store::open_read_only(data).unwrap();
    let mut v: Vec<String> = s.record_keys().unwrap().into_iter().map(|k| k.1).collect();
    v.sort();
    v
}

#[test]
fn every_format_and_quirk_imports_the_good_records_and_reports_each_bad_one_at_file_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // JSON lines: BOM, CRLF, a blank line, an invalid UTF-8 line, a line that is not JSON,
    // a record without Id, a 3 MB line.
    let long = {
        let mut v = rec("j-long", "Send");
        v["Body"] = json!("x".repeat(3 << 20));
        v
    };
    let mut jl = b"\xEF\xBB\xBF".to_vec();
    jl.extend_from_slice(format!("{}\r\n\r\n", rec("j1", "Send")).as_bytes());
    jl.extend_from_slice(b"{\"Id\":\"bad-utf8\",\"Operation\":\"\xff\xfe\"}\r\n");
    jl.extend_from_slice(b"this is not json\r\n");
    jl.extend_from_slice(b"{\"CreationTime\":\"2026-11-20T10:00:00\"}\r\n");
    jl.extend_from_slice(format!("{long}\r\n{}", rec("j2", "Send")).as_bytes());
    let jsonl = d.join("a.jsonl");
    std::fs::write(&jsonl, &jl).unwrap();
    // a pretty-printed JSON array with a scalar and a broken element
    let array = d.join("b.json");
    std::fs::write(
        &array,
        format!(
            "[\n{},\n  42,\n  {{\"Id\": \"a-broken\" \"CreationTime\": 1}},\n{}\n]\n",
            serde_json::to_string_pretty(&rec("a1", "Set-Mailbox")).unwrap(),
            serde_json::to_string_pretty(&rec("a2", "Set-Mailbox")).unwrap()
        ),
    )
    .unwrap();
    // Purview CSV: BOM, CRLF, embedded quotes and newlines, invalid UTF-8, empty AuditData
    let pretty_c2 = serde_json::to_string_pretty(&{
        let mut v = rec("c2", "MailItemsAccessed");
        v["Subject"] = json!("he said \"hi\", then left");
        v
    })
    .unwrap();
    let mut cv = b"\xEF\xBB\xBFCreationDate,UserIds,Operations,AuditData\r\n".to_vec();
    cv.extend_from_slice(
        format!(
            "2026-11-20T10:00:00,alice,Send,{}\r\n",
            csv_cell(&rec("c1", "Send").to_string())
        )
        .as_bytes(),
    );
    cv.extend_from_slice(
        format!("2026-11-20T10:00:00,alice,X,{}\r\n", csv_cell(&pretty_c2)).as_bytes(),
    );
    let c2_lines = pretty_c2.lines().count() as u64;
    cv.extend_from_slice(b"2026-11-20T10:00:00,alice,X,\"{\"\"Id\"\":\"\"\xff\"\"}\"\r\n");
    cv.extend_from_slice(b"2026-11-20T10:00:00,alice,X,\r\n");
    cv.extend_from_slice(
        format!(
            "2026-11-20T10:00:00,alice,Y,{}\r\n",
            csv_cell(&rec("c3", "Send").to_string())
        )
        .as_bytes(),
    );
    let csv = d.join("c.csv");
    std::fs::write(&csv, &cv).unwrap();
    // a truncated gzip of JSON lines
    let mut many = String::new();
    for i in 0..20_000 {
        many.push_str(&rec(&format!("g{i:05}"), "FileAccessed").to_string());
        many.push('\n');
    }
    let gz_full = gzip(many.as_bytes());
    let gz = d.join("d.jsonl.gz");
    std::fs::write(&gz, &gz_full[..gz_full.len() * 2 / 3]).unwrap();
    // a gzipped CSV whose name does not say so
    let dat = d.join("e.dat");
    std::fs::write(
        &dat,
        gzip(
            format!(
                "CreationDate,UserIds,Operations,AuditData\n2026-11-20,bob,Send,{}\n",
                csv_cell(&rec("e1", "Send").to_string())
            )
            .as_bytes(),
        ),
    )
    .unwrap();
    // an export overlapping the others
    let overlap = d.join("f.jsonl");
    std::fs::write(
        &overlap,
        format!(
            "{}\n{}\n{}\n",
            rec("j1", "Send"),
            rec("a1", "Set-Mailbox"),
            rec("f1", "Send")
        ),
    )
    .unwrap();

    let inputs = [&jsonl, &array, &csv, &gz, &dat, &overlap];
    let hashes: Vec<String> = inputs.iter().map(|p| sha256(p)).collect();
    let data = d.join("data");
    let out = import(&data, &inputs.map(|p| p.as_path()));
    let (stdout, err) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(1),
        "bad records make the exit code 1:\n{err}"
    );
    let at = |p: &Path, line: u64, why: &str| {
        let want = format!("{}:{line}: {why}", p.display());
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    };
    at(&jsonl, 3, "not UTF-8");
    at(&jsonl, 4, "record is not valid JSON");
    at(&jsonl, 5, "record has no string \"Id\"");
    let a1_lines = serde_json::to_string_pretty(&rec("a1", "x"))
        .unwrap()
        .lines()
        .count() as u64;
    at(&array, 2 + a1_lines, "record is not a JSON object");
    at(&array, 3 + a1_lines, "record is not valid JSON");
    at(&csv, 3 + c2_lines, "not UTF-8");
    at(&csv, 4 + c2_lines, "empty AuditData");
    assert!(
        err.contains(&format!("{}:", gz.display()))
            && err.contains(
                "the gzip stream is damaged or truncated: every record before it is stored"
            ),
        "{err}"
    );
    // nothing else is reported bad
    assert_eq!(
        err.lines()
            .filter(|l| l.contains(": record ")
                || l.contains("not UTF-8")
                || l.contains("empty AuditData"))
            .count(),
        7,
        "{err}"
    );
    let stored = ids(&data);
    let g: Vec<&String> = stored.iter().filter(|i| i.starts_with('g')).collect();
    assert!(
        g.len() > 1000 && g.len() < 20_000,
        "{} of the truncated gzip",
        g.len()
    );
    // every record before the damage, in order: g00000 .. g(n-1)
    assert_eq!(g.last().unwrap().as_str(), format!("g{:05}", g.len() - 1));
    let others: Vec<&str> = stored
        .iter()
        .filter(|i| !i.starts_with('g'))
        .map(|s| s.as_str())
        .collect();
    assert_eq!(
        others,
        [
            "a1", "a2", "c1", "c2", "c3", "e1", "f1", "j-long", "j1", "j2"
        ]
    );
    let s = m365audit::store::Store::open_read_only(&data).unwrap();
    assert_eq!(
        s.record_by_id("j-long").unwrap().unwrap().value().unwrap(),
        long
    );
    assert_eq!(
        s.record_by_id("c2").unwrap().unwrap().raw,
        pretty_c2,
        "CSV cells keep their bytes"
    );
    assert!(
        stdout.contains("f.jsonl: 3 jsonl records read, 1 stored, 2 duplicates, 0 bad"),
        "{stdout}"
    );
    // the input files are untouched
    for (p, h) in inputs.iter().zip(&hashes) {
        assert_eq!(&sha256(p), h, "{} changed", p.display());
    }
    // the evidence ledger: every file with its size and hash, in stats --json and text
    let st = collect_common::stats_json(&data);
    let imports = st["imports"].as_array().unwrap();
    assert_eq!(imports.len(), inputs.len());
    for ((imp, p), h) in imports.iter().zip(inputs).zip(&hashes) {
        assert_eq!(imp["file"], json!(p.display().to_string()));
        assert_eq!(imp["sha256"], json!(h));
        assert_eq!(imp["size"], json!(std::fs::metadata(p).unwrap().len()));
    }
    assert_eq!(imports[5]["duplicates"], json!(2));
    assert!(
        imports[3]["damage"]
            .as_str()
            .unwrap()
            .contains("reading stopped")
    );
    let txt = ok(run(&["stats", "--data", data.to_str().unwrap()]));
    assert!(txt.contains(&hashes[2]), "{txt}");
    // a second import of a clean file adds nothing and exits 0
    let again = import(&data, &[&overlap]);
    assert!(ok(again).contains("3 jsonl records read, 0 stored, 3 duplicates, 0 bad"));
}

/// One store collected from the practice tenant, and its ground truth, shared by the
/// tests below (collecting is the slow part).
struct Practice {
    _dir: tempfile::TempDir,
    data: PathBuf,
    truth: String,
}

fn practice() -> &'static Practice {
    static P: OnceLock<Practice> = OnceLock::new();
    P.get_or_init(|| {
        let sim = Sim::start(&["--days", "2", "--records-per-day", "2500"]);
        let s = setup(&sim, json!({}));
        let out = collect_once(&s, &[]);
        assert!(out.status.success(), "collect: {}", text(&out.stderr));
        let (code, truth) = sim.http.get(&sim.control("/__control/truth"));
        assert_eq!(code, 200);
        drop(sim);
        Practice {
            data: s.data.clone(),
            truth,
            _dir: s.dir,
        }
    })
}

fn cmd(args: &[&str], data: &Path) -> String {
    let mut a: Vec<&str> = args.to_vec();
    a.push("--data");
    a.push(data.to_str().unwrap());
    ok(run(&a))
}

/// The detections of `detect --format json`: what the records gave, without the
/// inactivity monitor (judged against the clock of the run) and without the collector's
/// id in group keys (`$collector_id` is the collector's; an import-only store has none).
fn detections(data: &Path) -> Value {
    let mut v: Value = serde_json::from_str(&cmd(&["detect", "--format", "json"], data)).unwrap();
    strip(&mut v);
    v
}

fn strip(v: &mut Value) {
    v.as_object_mut().unwrap().remove("monitor");
    for d in v["detections"].as_array_mut().unwrap() {
        for g in d["groups"].as_array_mut().unwrap() {
            if let Some(k) = g["key"].as_object_mut() {
                k.remove("collector_id");
            }
        }
    }
}

#[test]
fn the_ground_truth_as_json_lines_and_as_purview_csv_imports_to_the_detections_of_collecting_it() {
    let p = practice();
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("truth.jsonl");
    std::fs::write(&jsonl, &p.truth).unwrap();
    let csv = dir.path().join("truth.csv");
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_path(&csv)
        .unwrap();
    w.write_record([
        "CreationDate",
        "UserIds",
        "Operations",
        "AuditData",
        "RecordType",
    ])
    .unwrap();
    let mut n = 0;
    for l in p.truth.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(l).unwrap();
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        w.write_record([
            s("CreationTime"),
            s("UserId"),
            s("Operation"),
            l.to_string(),
            v["RecordType"].to_string(),
        ])
        .unwrap();
        n += 1;
    }
    w.flush().unwrap();
    drop(w);
    assert!(n > 3000, "{n} truth records");
    let collected = detections(&p.data);
    let hits: u64 = collected["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["hits"].as_u64().unwrap())
        .sum();
    assert!(hits > 0, "the practice tenant plants stories");
    for f in [&jsonl, &csv] {
        let data = dir
            .path()
            .join(format!("from-{}", f.extension().unwrap().to_str().unwrap()));
        let out = ok(import(&data, &[f]));
        assert!(out.contains(&format!("{n} stored")), "{out}");
        assert!(
            detections(&data) == collected,
            "{}: detections differ from collecting",
            f.display()
        );
        assert_eq!(ids(&data), ids(&p.data));
    }
}

#[test]
fn export_then_import_into_a_fresh_store_round_trips_in_jsonl_and_csv() {
    let p = practice();
    let dir = tempfile::tempdir().unwrap();
    let original = cmd(&["query", "."], &p.data);
    assert!(original.lines().count() > 3000);
    for format in ["jsonl", "csv"] {
        let file = dir.path().join(format!("export.{format}"));
        cmd(
            &[
                "export",
                "--format",
                format,
                "--out",
                file.to_str().unwrap(),
            ],
            &p.data,
        );
        let data = dir.path().join(format!("data-{format}"));
        ok(import(&data, &[&file]));
        assert!(
            cmd(&["query", "."], &data) == original,
            "{format}: query . differs after the round trip"
        );
        // stdout and --out write the same bytes
        let o = run(&[
            "export",
            "--format",
            format,
            "--data",
            p.data.to_str().unwrap(),
        ]);
        assert!(
            o.stdout == std::fs::read(&file).unwrap(),
            "{format}: stdout differs from --out"
        );
    }
    // the filters: a user, a time window, a detection
    let all: Vec<Value> = original
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let user = all[all.len() / 2]["UserId"].as_str().unwrap().to_string();
    let of_user = cmd(&["export", "--user", &user.to_uppercase()], &p.data);
    let want = all
        .iter()
        .filter(|v| v["UserId"].as_str() == Some(user.as_str()))
        .count();
    assert_eq!(of_user.lines().count(), want);
    let times: Vec<&str> = all
        .iter()
        .map(|v| v["CreationTime"].as_str().unwrap())
        .collect();
    let mid = {
        let mut t = times.clone();
        t.sort();
        t[t.len() / 2].to_string()
    };
    let since = cmd(&["export", "--since", &mid], &p.data).lines().count();
    let until = cmd(&["export", "--until", &mid], &p.data).lines().count();
    assert_eq!(since + until, all.len());
    assert!(since > 0 && until > 0);
    let det = detections(&p.data)["detections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["hits"].as_u64().unwrap() > 0)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let hit = cmd(&["export", "--detection", &det], &p.data);
    assert!(hit.lines().count() > 0);
    let bad = run(&[
        "export",
        "--detection",
        "no-such-detection",
        "--data",
        p.data.to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
}

/// Every file and directory under `dir` with its SHA-256 (files) and mode.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if m.is_dir() {
                stack.push(p.clone());
                out.insert(rel, format!("dir {:o}", m.permissions().mode()));
            } else {
                out.insert(
                    rel,
                    format!(
                        "{:o} {} {:?}",
                        m.permissions().mode(),
                        sha256(&p),
                        m.modified().unwrap()
                    ),
                );
            }
        }
    }
    out
}

fn chmod(args: &[&str], p: &Path) {
    assert!(
        Command::new("chmod")
            .args(args)
            .arg(p)
            .status()
            .unwrap()
            .success()
    );
}

/// How to run the binary as a user who cannot write the copy: as root, through
/// `setpriv` to `nobody`; as anyone else, directly (the copy is `chmod a-w`).
fn unprivileged() -> Option<Vec<String>> {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root {
        return Some(vec![BIN.to_string()]);
    }
    let found = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let msg = "running as root without setpriv: cannot drop privileges";
        assert!(
            std::env::var("M365AUDIT_REQUIRE_EXTERNAL").as_deref() != Ok("1"),
            "{msg}"
        );
        eprintln!("skipping: {msg}");
        return None;
    }
    Some(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
        ]
        .map(String::from)
        .to_vec(),
    )
}

#[test]
fn a_read_only_store_answers_every_read_command_and_page_without_changing_a_byte() {
    let Some(runner) = unprivileged() else { return };
    let p = practice();
    let dir = tempfile::tempdir().unwrap();
    chmod(&["755"], dir.path());
    let ro = dir.path().join("evidence");
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(&p.data)
            .arg(&ro)
            .status()
            .unwrap()
            .success()
    );
    chmod(&["-R", "a+rX"], &ro);
    chmod(&["-R", "a-w"], &ro);
    let before = tree(&ro);
    let as_user = |args: &[&str]| -> String {
        let o = Command::new(&runner[0])
            .args(&runner[1..])
            .args(args)
            .arg("--data")
            .arg(&ro)
            .env("M365AUDIT_LOG", "warn")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?} on the read-only store: {}",
            text(&o.stderr)
        );
        text(&o.stdout)
    };
    let writable_query = cmd(&["query", "."], &p.data);
    assert!(as_user(&["stats"]).contains("records"));
    let mut ro_detect: Value =
        serde_json::from_str(&as_user(&["detect", "--format", "json"])).unwrap();
    strip(&mut ro_detect);
    assert!(
        ro_detect == detections(&p.data),
        "detect differs on the read-only copy"
    );
    assert!(as_user(&["query", "."]) == writable_query);
    let s: Value =
        serde_json::from_str(&as_user(&["search", "--json", "workload:exchange"])).unwrap();
    assert!(s["total"].as_u64().unwrap() > 0, "{s}");
    assert!(as_user(&["export", "--format", "csv"]).lines().count() > 3000);

    // serve, and every page
    let mut child = Command::new(&runner[0])
        .args(&runner[1..])
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&ro)
        .env("M365AUDIT_LOG", "warn")
        .env_remove(m365audit::app::serve::TOKEN_ENV)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Proc(child);
    let url = support::ui_url::first_line_url(stdout)
        .trim_end_matches('/')
        .to_string();
    let http = collect_common::Http::new();
    let get = |path: &str| -> String {
        let (code, body) = http.get(&format!("{url}{path}"));
        assert_eq!(code, 200, "{path} on the read-only store: {body}");
        body
    };
    let dash = get("/");
    let all: Vec<Value> = writable_query
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let r = &all[all.len() / 3];
    let user = r["UserId"].as_str().unwrap();
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mut pages = vec![
        "/status".to_string(),
        "/metrics".into(),
        "/search?q=exchange".into(),
        "/search/export?q=exchange&format=csv".into(),
        format!("/user?id={}", enc(user)),
        format!("/user/export?id={}&format=jsonl", enc(user)),
        format!("/records/{}", enc(r["Id"].as_str().unwrap())),
        "/query?table=cloud.office365.management&jq=.Operation".into(),
    ];
    if let Some(ip) = all.iter().find_map(|v| v["ClientIP"].as_str()) {
        pages.push(format!("/ip?addr={}", enc(ip)));
    }
    let mut det_pages = 0;
    for part in dash.split("href=\"/detections/").skip(1) {
        let id = &part[..part.find('"').unwrap()];
        if id.contains('/') || id.contains('?') {
            continue;
        }
        det_pages += 1;
        for suffix in [
            "",
            "/records",
            "/csv",
            "/json",
            "/export?format=csv",
            "/export?format=jsonl",
        ] {
            pages.push(format!("/detections/{id}{suffix}"));
        }
    }
    assert!(det_pages > 0, "the dashboard links its detections");
    for page in &pages {
        let body = get(page);
        // A store that cannot be written cannot be triaged: no form anywhere.
        assert!(!body.contains("name=\"csrf\""), "{page}: a write control");
    }
    let (code, body) = http.post(
        &format!("{url}/detections/authentication_outcomes/triage"),
        "key=%7B%7D&state=resolved&csrf=x".into(),
    );
    assert_eq!(code, 403, "a triage POST on the read-only store: {body}");
    // the user download is what `export --user` writes
    let (_, body) = http.get(&format!("{url}/user/export?id={}&format=jsonl", enc(user)));
    assert_eq!(body, as_user(&["export", "--user", user]));
    drop(server);

    assert_eq!(tree(&ro), before, "the read-only store changed");
    chmod(&["-R", "u+w"], &ro);
}

/// The files of `dir` (not recursive), sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn export_never_writes_into_the_store_and_leaves_out_alone_until_it_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("in.jsonl");
    std::fs::write(
        &input,
        format!("{}\n{}\n", rec("x1", "Send"), rec("x2", "Send")),
    )
    .unwrap();
    let data = d.join("data");
    ok(import(&data, &[&input]));
    let db = data.join("m365audit.db");
    let db_hash = sha256(&db);
    let data_s = data.to_str().unwrap();
    let export = |out: &Path, extra: &[&str]| {
        let mut args = vec!["export", "--data", data_s, "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        run(&args)
    };
    // the database itself, by another spelling of its path, through a symlink and through
    // a hard link from outside, and a new file inside the data directory: all refused
    let elsewhere = d.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&db, elsewhere.join("sym.db")).unwrap();
    std::fs::hard_link(&db, elsewhere.join("hard.db")).unwrap();
    for out in [
        db.clone(),
        d.join("elsewhere/../data/./m365audit.db"),
        elsewhere.join("sym.db"),
        elsewhere.join("hard.db"),
        data.join("new.jsonl"),
    ] {
        let o = export(&out, &[]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{}: {err}", out.display());
        assert!(err.contains("is inside the data directory"), "{err}");
        assert_eq!(sha256(&db), db_hash, "{} changed the store", out.display());
    }
    assert!(!data.join("new.jsonl").exists());
    ok(run(&["stats", "--data", data_s]));
    // a refused argument leaves an existing --out as it was, and is not called a write error
    let keep = d.join("keep.txt");
    for extra in [
        &["--table", "nope"][..],
        &["--since", "yesterday-ish"],
        &["--detection", "nope"],
        &["--format", "xml"],
        &["--table", "triage", "--user", "x"],
    ] {
        std::fs::write(&keep, "precious\n").unwrap();
        let o = export(&keep, extra);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert!(!err.contains("writing"), "{extra:?}: {err}");
        assert_eq!(std::fs::read_to_string(&keep).unwrap(), "precious\n");
    }
    let o = run(&["export", "--data", data_s, "--table", "nope"]);
    assert!(
        !text(&o.stderr).contains("writing -"),
        "{}",
        text(&o.stderr)
    );
    // a successful export replaces the file whole and leaves no temporary file beside it
    let o = export(&keep, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_to_string(&keep).unwrap().lines().count(), 2);
    let o = export(&keep, &["--table", "triage"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(names(d), ["data", "elsewhere", "in.jsonl", "keep.txt"]);
    // a symlinked --out stays a symlink to the file it names, which gets the export
    let real = d.join("real.jsonl");
    std::fs::write(&real, "old\n").unwrap();
    std::os::unix::fs::symlink(&real, elsewhere.join("link.jsonl")).unwrap();
    ok(export(&elsewhere.join("link.jsonl"), &[]));
    assert!(
        std::fs::symlink_metadata(elsewhere.join("link.jsonl"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&real).unwrap().lines().count(), 2);
    // a device is written in place
    ok(export(Path::new("/dev/null"), &[]));
}

/// Waits for `child` at most `secs` seconds; kills it and fails if it is still running.
fn wait_at_most(mut child: std::process::Child, secs: u64, what: &str) -> Output {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > until {
            let _ = child.kill();
            panic!("{what} still running after {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn import_reads_a_pipe_or_a_fifo_once_and_ledgers_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let five: String = (0..5)
        .map(|i| format!("{}\n", rec(&format!("p{i}"), "Send")))
        .collect();
    let f = d.join("five.jsonl");
    std::fs::write(&f, &five).unwrap();
    // a pipe, as the shell's process substitution gives it
    let data = d.join("pipe");
    let o = Command::new("bash")
        .arg("-c")
        .arg(r#"exec "$0" import --data "$1" <(cat "$2")"#)
        .arg(BIN)
        .arg(&data)
        .arg(&f)
        .env("M365AUDIT_LOG", "warn")
        .output()
        .unwrap();
    let out = ok(o);
    assert!(
        out.contains(": 5 jsonl records read, 5 stored, 0 duplicates, 0 bad"),
        "{out}"
    );
    let st = collect_common::stats_json(&data);
    assert_eq!(st["imports"][0]["sha256"], json!(sha256(&f)));
    assert_eq!(st["imports"][0]["size"], json!(five.len()));
    // a named FIFO is read once: the import ends when its writer does
    let fifo = d.join("ff");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let writer = {
        let (fifo, five) = (fifo.clone(), five.clone());
        std::thread::spawn(move || std::fs::write(fifo, five).unwrap())
    };
    let data = d.join("fifo");
    let child = Command::new(BIN)
        .args(["import", "--data"])
        .arg(&data)
        .arg(&fifo)
        .env("M365AUDIT_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = ok(wait_at_most(child, 60, "import of a FIFO"));
    writer.join().unwrap();
    assert!(out.contains("ff: 5 jsonl records read, 5 stored"), "{out}");
    assert_eq!(
        collect_common::stats_json(&data)["imports"][0]["sha256"],
        json!(sha256(&f))
    );
}

#[test]
fn import_summaries_and_the_ledger_say_what_was_read_and_stored() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let five: String = (0..5)
        .map(|i| format!("{}\n", rec(&format!("t{i}"), "Send")))
        .collect();
    // JSON lines whose first line was cut: one bad line, every other line stored
    let cut = d.join("firsttrunc.jsonl");
    std::fs::write(&cut, format!("{}\n{five}", &five[..60])).unwrap();
    let data = d.join("cut");
    let o = import(&data, &[&cut]);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        out.contains("firsttrunc.jsonl: 6 jsonl records read, 5 stored, 0 duplicates, 1 bad"),
        "{out}"
    );
    assert!(
        err.contains("firsttrunc.jsonl:1: record is not valid JSON"),
        "{err}"
    );
    assert!(err.contains("every other record is stored"), "{err}");
    // a file in no known format: unknown, nothing read, the reason as its damage
    let z = d.join("z.zip");
    std::fs::write(&z, b"PK\x03\x04junk").unwrap();
    let data = d.join("unknown");
    let o = import(&data, &[&z]);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        out.contains("z.zip: 0 unknown records read, 0 stored, 0 duplicates, 0 bad"),
        "{out}"
    );
    assert!(err.contains("z.zip:1: not a JSON array"), "{err}");
    assert!(err.contains("; no record was stored"), "{err}");
    assert!(!err.contains("every other record"), "{err}");
    let imp = &collect_common::stats_json(&data)["imports"][0];
    assert_eq!(
        (&imp["format"], &imp["records"], &imp["bad"]),
        (&json!("unknown"), &json!(0), &json!(0))
    );
    assert!(
        imp["damage"]
            .as_str()
            .unwrap()
            .contains("nothing of this file was read"),
        "{imp}"
    );
}

#[test]
fn import_into_a_data_directory_that_is_a_file_says_so() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("afile");
    std::fs::write(&f, format!("{}\n", rec("n1", "Send"))).unwrap();
    // readable by others: no warning about that before the real problem
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = import(&f, &[&f]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{} is not a directory", f.display())),
        "{err}"
    );
    assert!(!err.contains("can be read by other"), "{err}");
}
