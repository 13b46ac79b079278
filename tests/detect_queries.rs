//! Every detection in `queries/` against its test records (`queries/tests/<id>.jsonl`):
//! through jaq via the crate's detect module, and, where `jq` is installed, through the real
//! `jq` with identical per-record output. Also: every query has positive and negative
//! records, the embedded set equals the directory, and the prefilter never changes a result.

use m365audit::detect::{Detections, Input, Vars};
use m365audit::model::RecordHeader;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const COLLECTOR: &str = "12345";
const TENANT: &str = "4f1c2b7e-9a3d-4c8e-b2f6-7d1e0a9c5b31";

struct Case {
    file: String,
    name: String,
    hits: usize,
    expect: Option<Vec<Value>>,
    record: Value,
}

fn queries_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("queries")
}

fn vars() -> Vars {
    Vars {
        collector_id: COLLECTOR.into(),
        tenant_id: TENANT.into(),
    }
}

fn cases(id: &str) -> Vec<Case> {
    let path = queries_dir().join("tests").join(format!("{id}.jsonl"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("detection {id} has no tests ({}): {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let at = format!("{}:{}", path.display(), i + 1);
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{at}: {e}"));
            Case {
                name: v["name"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{at}: no name"))
                    .to_string(),
                hits: v["hits"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{at}: no hits")) as usize,
                expect: v
                    .get("expect")
                    .map(|e| e.as_array().expect("expect is an array").clone()),
                record: v["record"].clone(),
                file: at,
            }
        })
        .collect()
}

fn all_ids(d: &Detections) -> Vec<String> {
    d.metas().iter().map(|m| m.id.clone()).collect()
}

#[test]
fn every_query_loads_and_the_embedded_set_is_the_directory() {
    let dir = Detections::load_dir(&queries_dir(), vars()).unwrap();
    assert!(dir.errors().is_empty(), "{:?}", dir.errors());
    let emb = Detections::load_embedded(vars());
    assert!(emb.errors().is_empty(), "{:?}", emb.errors());
    assert_eq!(all_ids(&dir), all_ids(&emb));
    let files = std::fs::read_dir(queries_dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "jq")
        })
        .count();
    assert_eq!(files, dir.len(), "a .jq file did not load");
}

#[test]
fn every_test_file_belongs_to_a_query() {
    let d = Detections::load_dir(&queries_dir(), vars()).unwrap();
    let ids = all_ids(&d);
    for e in std::fs::read_dir(queries_dir().join("tests")).unwrap() {
        let p = e.unwrap().path();
        let stem = p.file_stem().unwrap().to_string_lossy().to_string();
        assert!(
            p.extension().is_some_and(|x| x == "jsonl"),
            "unexpected file {}",
            p.display()
        );
        assert!(ids.contains(&stem), "{} tests no query", p.display());
    }
}

#[test]
fn every_query_has_positive_and_negative_records_and_jaq_agrees() {
    let d = Detections::load_dir(&queries_dir(), vars()).unwrap();
    let mut failures = Vec::new();
    for id in all_ids(&d) {
        let cs = cases(&id);
        assert!(cs.iter().any(|c| c.hits > 0), "{id}: no positive record");
        assert!(cs.iter().any(|c| c.hits == 0), "{id}: no negative record");
        for c in cs {
            let h =
                RecordHeader::from_value(&c.record).unwrap_or_else(|e| panic!("{}: {e}", c.file));
            let (hits, errs) = d.run(&h, Input::Value(&c.record));
            let errs: Vec<_> = errs.into_iter().filter(|e| e.detection == id).collect();
            let details: Vec<Value> = hits
                .iter()
                .filter(|h| h.detection == id)
                .map(|h| h.details.clone())
                .collect();
            if !errs.is_empty() {
                failures.push(format!("{} [{id}] {}: run errors {errs:?}", c.file, c.name));
            } else if details.len() != c.hits {
                failures.push(format!(
                    "{} [{id}] {}: want {} hits, got {details:?}",
                    c.file, c.name, c.hits
                ));
            } else if let Some(want) = &c.expect
                && &details != want
            {
                failures.push(format!(
                    "{} [{id}] {}: want {want:?}, got {details:?}",
                    c.file, c.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn prefilter_never_changes_a_result_on_any_test_record() {
    let d = Detections::load_dir(&queries_dir(), vars()).unwrap();
    let mut checked = 0;
    for id in all_ids(&d) {
        for c in cases(&id) {
            let h = RecordHeader::from_value(&c.record).unwrap();
            let (filtered, errs) = d.run(&h, Input::Value(&c.record));
            let (all, _) = d.run_unfiltered(&c.record);
            assert_eq!(
                filtered, all,
                "{}: the prefilter changed the hits of {:?}",
                c.file, c.name
            );
            assert!(errs.is_empty(), "{}: {errs:?}", c.file);
            // from the raw text, where the derived words drop candidates too
            let (from_text, errs) = d.run(&h, Input::Text(c.record.to_string().as_bytes()));
            assert_eq!(
                from_text, all,
                "{}: the prefilter (`contains`) changed the hits of {:?}",
                c.file, c.name
            );
            assert!(errs.is_empty(), "{}: {errs:?}", c.file);
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked}");
}

/// Values of every JSON type, put in place of a record's values: the filters meet them on
/// real records (numbers as strings, null, arrays where a string was expected).
fn odd_values() -> Vec<Value> {
    use serde_json::json;
    vec![
        json!(null),
        json!(false),
        json!(true),
        json!(0),
        json!(50053),
        json!(-1.5),
        json!(""),
        json!("EXE"),
        json!([]),
        json!(["x", 1]),
        json!([{"Name": "UserAgent", "Value": 7}]),
        json!({}),
        json!({"HasForeignTenantUsers": true, "a": 1}),
    ]
}

/// `record` with the value at each path (every field, and the fields of objects and array
/// elements one and two levels down) replaced, one at a time, by each of `odd_values`.
fn odd_variants(record: &Value) -> Vec<Value> {
    fn paths(v: &Value, at: &mut Vec<Value>, depth: usize, out: &mut Vec<Vec<Value>>) {
        if depth > 2 {
            return;
        }
        let children: Vec<(Value, &Value)> = match v {
            Value::Object(m) => m
                .iter()
                .map(|(k, x)| (Value::from(k.as_str()), x))
                .collect(),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, x)| (Value::from(i), x))
                .collect(),
            _ => Vec::new(),
        };
        for (k, x) in children {
            at.push(k);
            out.push(at.clone());
            paths(x, at, depth + 1, out);
            at.pop();
        }
    }
    fn slot<'v>(v: &'v mut Value, path: &[Value]) -> &'v mut Value {
        path.iter().fold(v, |v, k| match k {
            Value::String(k) => &mut v[k.as_str()],
            k => &mut v[k.as_u64().unwrap() as usize],
        })
    }
    let mut all = Vec::new();
    paths(record, &mut Vec::new(), 0, &mut all);
    let mut out = Vec::new();
    for path in all {
        for odd in odd_values() {
            let mut v = record.clone();
            *slot(&mut v, &path) = odd;
            out.push(v);
        }
    }
    out
}

/// The words, type guards and header sets the engine derives skip a record unparsed; the
/// fields it derives are all it parses. None may change what a detection gives on any
/// record, hits or errors: on every test record, and on each of them with values of every
/// type in place of its own (where a filter fails rather than skips), the run from the raw
/// text (all of them), compact and pretty-printed, and the run from the parsed record
/// (header sets and fields) give what the detections give with none of them, and each
/// detection on its derived fields gives what it gives on the whole record.
#[test]
fn derived_words_and_fields_never_change_a_result_even_on_values_of_odd_types() {
    let d = Detections::load_dir(&queries_dir(), vars()).unwrap();
    let bare = Detections::load_dir(&queries_dir(), vars())
        .unwrap()
        .without_derived_prefilters();
    let mut failures = Vec::new();
    let (mut checked, mut erring) = (0, 0);
    for id in all_ids(&d) {
        // the whole record against the derived fields: the detection the records are for
        let one = Detections::load_dir(&queries_dir(), vars())
            .unwrap()
            .only(&id)
            .unwrap();
        for c in cases(&id) {
            for v in std::iter::once(c.record.clone()).chain(odd_variants(&c.record)) {
                let Ok(h) = RecordHeader::from_value(&v) else {
                    continue;
                };
                let want = bare.run(&h, Input::Value(&v));
                erring += usize::from(!want.1.is_empty());
                let parsed = d.run(&h, Input::Value(&v));
                if parsed != want {
                    failures.push(format!(
                        "{} {:?}: from the parsed record {parsed:?}\n  want {want:?}\n  record {v}",
                        c.file, c.name
                    ));
                }
                for text in [v.to_string(), serde_json::to_string_pretty(&v).unwrap()] {
                    let from_text = d.run(&h, Input::Text(text.as_bytes()));
                    if from_text != want {
                        failures.push(format!(
                            "{} {:?}: from the text {from_text:?}\n  want {want:?}\n  record {text}",
                            c.file, c.name
                        ));
                    }
                }
                let whole = one.run_unfiltered(&v);
                let projected = one.run_projected(&v);
                if projected != whole {
                    failures.push(format!(
                        "{} {:?}: on the derived fields {projected:?}\n  whole record {whole:?}\n  record {v}",
                        c.file, c.name
                    ));
                }
                checked += 1;
            }
        }
    }
    failures.truncate(5);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // the odd values must make filters fail, or the comparison proves little
    assert!(
        checked > 20_000 && erring >= 10,
        "{checked} records, {erring} with errors"
    );
}

/// `# fields` is a claim about a query (it reads only these top-level fields); the engine
/// parses candidates with only them. Proof: on every test record of every query, each
/// query on its own projection gives exactly its output on the whole record (hits and
/// errors). The real-jq test below compares the projected outputs with jq too.
#[test]
fn declared_fields_give_the_whole_record_output_on_every_test_record() {
    let d = Detections::load_dir(&queries_dir(), vars()).unwrap();
    let ids = all_ids(&d);
    let declared: Vec<String> = d
        .metas()
        .iter()
        .filter(|m| !m.fields.is_empty())
        .map(|m| m.id.clone())
        .collect();
    let mut failures = Vec::new();
    let mut compared = 0;
    for file in &ids {
        for c in cases(file) {
            let (full_hits, full_errs) = d.run_unfiltered(&c.record);
            let (proj_hits, proj_errs) = d.run_projected(&c.record);
            for id in &declared {
                let pick = |hits: &[m365audit::detect::Hit]| -> Vec<m365audit::detect::Hit> {
                    hits.iter()
                        .filter(|h| &h.detection == id)
                        .cloned()
                        .collect()
                };
                let errs =
                    |es: &[m365audit::detect::RunError]| es.iter().any(|e| &e.detection == id);
                if pick(&full_hits) != pick(&proj_hits) || errs(&full_errs) != errs(&proj_errs) {
                    failures.push(format!(
                        "{} {:?}: [{id}] declares fields that do not cover what it reads:\n  whole record {:?}\n  projected    {:?}",
                        c.file,
                        c.name,
                        pick(&full_hits),
                        pick(&proj_hits)
                    ));
                }
                compared += 1;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(declared.is_empty() || compared > 1000, "{compared}");
}

fn jq_available() -> bool {
    let found = Command::new("jq")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("M365AUDIT_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
            panic!("jq is not installed and M365AUDIT_REQUIRE_EXTERNAL=1");
        }
        eprintln!("NOTICE: jq is not installed; skipping the jq/jaq comparison");
    }
    found
}

/// Runs the real jq on one record: its outputs and whether it stopped with an error.
fn real_jq(id: &str, record: &Value) -> (Vec<Value>, bool) {
    use std::io::Write as _;
    let dir = queries_dir();
    let mut child = Command::new("jq")
        .args(["-c", "-L"])
        .arg(dir.join("lib"))
        .args([
            "--arg",
            "collector_id",
            COLLECTOR,
            "--arg",
            "tenant_id",
            TENANT,
            "-f",
        ])
        .arg(dir.join(format!("{id}.jq")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn jq");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(record.to_string().as_bytes())
        .expect("write to jq");
    let out = child.wait_with_output().expect("jq output");
    let values = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("jq printed non-JSON {l:?}: {e}"))
        })
        .collect();
    (values, !out.status.success())
}

#[test]
fn real_jq_gives_identical_output_on_every_test_record() {
    if !jq_available() {
        return;
    }
    let d = Detections::load_dir(&queries_dir(), vars()).unwrap();
    let mut failures = Vec::new();
    let mut compared = 0;
    for id in all_ids(&d) {
        for c in cases(&id) {
            let (jaq_hits, jaq_errs) = d.run_unfiltered(&c.record);
            let jaq_errs: Vec<_> = jaq_errs.into_iter().filter(|e| e.detection == id).collect();
            let jaq: Vec<Value> = jaq_hits
                .into_iter()
                .filter(|h| h.detection == id)
                .map(|h| h.details)
                .collect();
            let (jq, jq_failed) = real_jq(&id, &c.record);
            if jaq != jq || jaq_errs.is_empty() == jq_failed {
                failures.push(format!(
                    "{} [{id}] {}:\n  jaq {jaq:?} errors {jaq_errs:?}\n  jq  {jq:?} failed {jq_failed}",
                    c.file, c.name
                ));
            }
            // the engine's path: only the query's `# fields` parsed, against jq on the
            // whole record
            let (proj_hits, proj_errs) = d.run_projected(&c.record);
            let proj_failed = proj_errs.iter().any(|e| e.detection == id);
            let proj: Vec<Value> = proj_hits
                .into_iter()
                .filter(|h| h.detection == id)
                .map(|h| h.details)
                .collect();
            if proj != jq || proj_failed != jq_failed {
                failures.push(format!(
                    "{} [{id}] {}: with only its `# fields` parsed:\n  jaq {proj:?} failed {proj_failed}\n  jq  {jq:?} failed {jq_failed}",
                    c.file, c.name
                ));
            }
            compared += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(compared > 100, "{compared}");
}
