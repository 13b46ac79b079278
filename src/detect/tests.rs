//! Unit tests of the engine: loading, errors with positions, guard rails, prefilter.

use super::*;
use serde_json::json;

const LIB: &str = "def twice: . + .;\n";

fn header(v: &serde_json::Value) -> RecordHeader {
    RecordHeader::from_value(v).unwrap()
}

fn rec(op: &str, workload: &str) -> serde_json::Value {
    json!({"Id": "1", "CreationTime": "2026-05-04T09:14:22", "Operation": op, "Workload": workload, "UserId": "a@x.com", "ActorIpAddress": "1.2.3.4"})
}

fn load(queries: &[(&str, &str)]) -> Detections {
    Detections::load_sources(
        queries,
        &[("m365.jq", LIB)],
        Vars {
            collector_id: "12345".into(),
            tenant_id: "t".into(),
        },
    )
}

#[test]
fn runs_with_vars_helpers_and_group_key() {
    let d = load(&[(
        "a.jq",
        "# title: A\n# table: auth.all\n# group_by: UserId, collector_id\ninclude \"m365\";\nselect(.Operation == \"UserLoginFailed\") | {UserId, collector_id: $collector_id, n: (1 | twice)}\n",
    )]);
    assert!(d.errors().is_empty(), "{:?}", d.errors());
    let r = rec("UserLoginFailed", "AzureActiveDirectory");
    let (hits, errs) = d.run(&header(&r), Input::Value(&r));
    assert!(errs.is_empty());
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].details,
        json!({"UserId": "a@x.com", "collector_id": "12345", "n": 2})
    );
    assert_eq!(
        hits[0].group_key,
        json!({"UserId": "a@x.com", "collector_id": "12345"})
    );
    let (hits2, _) = d.run(&header(&r), Input::Text(r.to_string().as_bytes()));
    assert_eq!(hits, hits2);
}

#[test]
fn prefilter_skips_other_tables_and_operations() {
    let d = load(&[
        (
            "a.jq",
            "# title: A\n# table: cloud.office365.management.exchange\n# operations: New-InboxRule, Set-*Rule\n.",
        ),
        ("b.jq", "# title: B\n# table: auth.all\n."),
    ]);
    assert!(d.errors().is_empty(), "{:?}", d.errors());
    let cases = [
        (rec("New-InboxRule", "Exchange"), vec!["a"]),
        (rec("Set-TransportRule", "Exchange"), vec!["a"]),
        (rec("Set-Mailbox", "Exchange"), vec![]),
        (rec("New-InboxRule", "SharePoint"), vec![]),
        (rec("UserLoggedIn", "AzureActiveDirectory"), vec!["b"]),
    ];
    for (r, want) in cases {
        let (hits, _) = d.run(&header(&r), Input::Value(&r));
        let got: Vec<&str> = hits.iter().map(|h| h.detection.as_str()).collect();
        assert_eq!(got, want, "{r}");
        assert_eq!(d.wants(&header(&r)), !want.is_empty());
    }
}

#[test]
fn broken_queries_report_file_line_column_and_the_rest_load() {
    let d = load(&[
        ("good.jq", "# title: G\n# table: auth.all\n."),
        ("syntax.jq", "# title: S\n# table: auth.all\nselect(.a ==\n"),
        ("paren.jq", "# title: P\n# table: auth.all\n.a | (1 +\n"),
        ("undef.jq", "# title: U\n# table: auth.all\n.a | nosuchfn\n"),
        ("now.jq", "# title: N\n# table: auth.all\n. | now\n"),
        ("env.jq", "# title: E\n# table: auth.all\n$ENV\n"),
        ("key.jq", "# title: K\n# table: auth.all\n# colour: red\n."),
        ("notable.jq", "# title: T\n."),
        ("rec.jq", "# title: R\n# table: auth.all\ndef f: f; f\n"),
        (
            "nomod.jq",
            "# title: M\n# table: auth.all\ninclude \"nope\";\n.\n",
        ),
    ]);
    assert_eq!(
        d.metas().iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        vec!["good"]
    );
    let errs = d.errors();
    let find = |f: &str| {
        errs.iter()
            .find(|e| e.file == f)
            .unwrap_or_else(|| panic!("no error for {f}: {errs:?}"))
    };
    assert_eq!(find("syntax.jq").line, 3, "{errs:?}");
    assert_eq!(find("paren.jq").line, 3, "{errs:?}");
    let u = find("undef.jq");
    assert_eq!((u.line, u.column), (3, 6), "{u}");
    assert!(u.message.contains("nosuchfn"), "{u}");
    let n = find("now.jq");
    assert_eq!((n.line, n.column), (3, 5), "{n}");
    assert!(n.message.contains("not available in detections"), "{n}");
    assert!(find("env.jq").message.contains("$ENV"), "{errs:?}");
    assert_eq!(find("key.jq").line, 3);
    assert!(find("notable.jq").message.contains("table"));
    let r = find("rec.jq");
    assert_eq!((r.line, r.column), (3, 8), "{r}");
    assert!(r.message.contains("recursive"), "{r}");
    assert!(find("nomod.jq").message.contains("nope"), "{errs:?}");
    assert!(
        find("syntax.jq").to_string().starts_with("syntax.jq:3:"),
        "{}",
        find("syntax.jq")
    );
}

#[test]
fn guard_rails_stop_runaway_filters_and_others_still_run() {
    let d = load(&[
        ("a_repeat.jq", "# title: R\n# table: auth.all\nrepeat(.)"),
        (
            "b_range.jq",
            "# title: G\n# table: auth.all\nlast(range(1e12))",
        ),
        (
            "c_until.jq",
            "# title: U\n# table: auth.all\nuntil(false; .)",
        ),
        (
            "d_recurse.jq",
            "# title: C\n# table: auth.all\n[recurse(1)] | length",
        ),
        ("e_ok.jq", "# title: O\n# table: auth.all\n.UserId"),
        (
            "f_err.jq",
            "# title: E\n# table: auth.all\n.UserId, .UserId.x",
        ),
        (
            "g_while.jq",
            "# title: W\n# table: auth.all\n[while(true; .)] | length",
        ),
    ])
    .with_limits(Limits {
        max_outputs: 50,
        max_steps: 100_000,
        max_time: std::time::Duration::from_secs(5),
        ..Limits::default()
    });
    assert!(d.errors().is_empty(), "{:?}", d.errors());
    let r = rec("UserLoggedIn", "AzureActiveDirectory");
    let (hits, errs) = d.run(&header(&r), Input::Value(&r));
    let failed: Vec<&str> = errs.iter().map(|e| e.detection.as_str()).collect();
    assert_eq!(
        failed,
        vec![
            "a_repeat",
            "b_range",
            "c_until",
            "d_recurse",
            "f_err",
            "g_while"
        ],
        "{errs:?}"
    );
    assert!(errs[0].message.contains("output limit"), "{errs:?}");
    assert!(errs[1].message.contains("step limit"), "{errs:?}");
    assert!(errs[4].message.contains("jq error"), "{errs:?}");
    let got: Vec<(&str, &serde_json::Value)> = hits
        .iter()
        .map(|h| (h.detection.as_str(), &h.details))
        .collect();
    assert_eq!(
        got,
        vec![("e_ok", &json!("a@x.com")), ("f_err", &json!("a@x.com"))]
    );
}

#[test]
fn time_limit_stops_a_slow_filter() {
    let d = load(&[(
        "slow.jq",
        "# title: S\n# table: auth.all\n[range(1e9)] | length",
    )])
    .with_limits(Limits {
        max_outputs: 10,
        max_steps: u64::MAX,
        max_time: std::time::Duration::from_millis(50),
        ..Limits::default()
    });
    let r = rec("UserLoggedIn", "AzureActiveDirectory");
    let (hits, errs) = d.run(&header(&r), Input::Value(&r));
    assert!(hits.is_empty());
    assert!(errs[0].message.contains("time limit"), "{errs:?}");
}

#[test]
fn a_run_whose_heap_grows_past_the_memory_limit_fails_with_the_memory_error() {
    use std::cell::Cell;
    thread_local! {
        // per thread: tests on other threads see a heap that never grows
        static GROWING: Cell<bool> = const { Cell::new(false) };
        static NET: Cell<i64> = const { Cell::new(0) };
    }
    // stands for the binary's counting allocator: 64 MiB more at every look while on
    fn net_bytes() -> i64 {
        if GROWING.with(Cell::get) {
            NET.with(|n| n.set(n.get() + (64 << 20)));
        }
        NET.with(Cell::get)
    }
    crate::alloc::install_counter(net_bytes);
    let q = Query::compile("[range(100)] | length", Vars::default()).unwrap();
    GROWING.with(|g| g.set(true));
    let grown = q.run(&json!(null));
    GROWING.with(|g| g.set(false));
    let e = grown.unwrap_err();
    assert!(e.contains("memory limit exceeded (256 MiB)"), "{e}");
    assert_eq!(q.run(&json!(null)).unwrap(), vec![json!(100)]);
    // `add` and `join` take a step per element, so the budget is looked at between them
    let q = Query::compile("[range(3) | \"ab\"] | [add, join(\",\")]", Vars::default()).unwrap();
    assert_eq!(
        q.run(&json!(null)).unwrap(),
        vec![json!(["ababab", "ab,ab,ab"])]
    );
    let q = Query::compile("[range(100) | \"ab\"] | add", Vars::default()).unwrap();
    let mut limits = q.limits;
    limits.max_steps = 150;
    let q = Query { limits, ..q };
    assert!(q.run(&json!(null)).unwrap_err().contains("step limit"));
}

#[test]
fn repeat_has_jq_meaning() {
    let q = Query::compile("[limit(3; 1 | repeat(. * 2))]", Vars::default()).unwrap();
    assert_eq!(q.run(&json!(null)).unwrap(), vec![json!([1, 2, 4])]);
}

#[test]
fn embedded_detections_all_load() {
    let d = Detections::load_embedded(Vars::default());
    assert!(d.errors().is_empty(), "{}", LoadErrors(d.errors().to_vec()));
    assert!(d.len() >= 29, "{}", d.len());
    for id in [
        "authentication",
        "email_attachments",
        "exchange_auditing_disabled",
        "insider_risk_policies",
        "onedrive_exfiltration",
        "teams_exfiltration",
        "sharepoint_data_destruction",
    ] {
        let m = d.meta(id).unwrap_or_else(|| panic!("{id} missing"));
        assert_eq!(m.seed, Some(Seed::Implements(id.to_string())));
    }
}

#[test]
fn detections_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Detections>();
}

#[test]
fn recursion_is_found_after_an_include_with_non_ascii_metadata() {
    let d = load(&[(
        "r.jq",
        "# title: R ü\n# table: auth.all\ninclude \"m365\" {\"note\": \"schön\"};\ndef f: 1 + f; f\n",
    )]);
    let e = &d.errors()[0];
    assert_eq!((e.file.as_str(), e.line, e.column), ("r.jq", 4, 12), "{e}");
}

#[test]
fn fields_are_derived_and_a_claim_that_leaves_one_out_is_refused_at_its_line() {
    let d = load(&[
        (
            "ok.jq",
            "# title: OK\n# table: auth.all\n# fields: Operation, UserId\n# group_by: ActorIpAddress\nselect(.Operation == \"UserLoginFailed\") | {UserId}",
        ),
        (
            "bare.jq",
            "# title: Bare\n# table: auth.all\n# group_by: ActorIpAddress\nselect(.Operation == \"UserLoginFailed\") | {UserId, ua: .UserAgent}",
        ),
        (
            "short.jq",
            "# title: Short\n# table: auth.all\n# fields: Operation\nselect(.Operation == \"UserLoginFailed\")\n| {UserId}",
        ),
        (
            "whole.jq",
            "# title: Whole\n# severity: low\n# table: auth.all\n# fields: Operation, UserId\nselect(.Operation == \"UserLoginFailed\") | {UserId, n: length}",
        ),
        ("bad.jq", "# title: B\n# table: auth.all\n# fields: ,\n."),
    ]);
    let errs = d.errors();
    assert_eq!(errs.len(), 3, "{errs:?}");
    let find = |f: &str| errs.iter().find(|e| e.file == f).unwrap();
    let short = find("short.jq");
    assert_eq!(short.line, 3, "{short}");
    assert!(short.message.contains("`UserId`"), "{short}");
    let whole = find("whole.jq");
    assert_eq!(whole.line, 4, "{whole}");
    assert!(whole.message.contains("`length`"), "{whole}");
    assert_eq!(find("bad.jq").line, 3);
    assert_eq!(
        d.reads("ok"),
        Some(Ok(vec!["Operation".into(), "UserId".into()]))
    );
    assert_eq!(
        d.reads("bare"),
        Some(Ok(vec![
            "Operation".into(),
            "UserAgent".into(),
            "UserId".into()
        ]))
    );
    let r = rec("UserLoginFailed", "AzureActiveDirectory");
    let (full, _) = d.run_unfiltered(&r);
    let (proj, _) = d.run_projected(&r);
    // group_by roots are parsed too: the key comes from the record
    assert_eq!(proj, full);
    assert_eq!(proj[0].group_key, json!({"ActorIpAddress": "1.2.3.4"}));
    // the engine's own path parses the union of the candidates' fields
    let (hits, _) = d.run(&header(&r), Input::Text(r.to_string().as_bytes()));
    assert_eq!(hits, full);
}

#[test]
fn entry_lists_keep_only_the_named_entries_and_a_short_list_is_refused() {
    let q = |entries: &str| {
        format!(
            "# title: UA\n# table: auth.all\n# fields: ExtendedProperties[{entries}]\ndef ep($n): first(.ExtendedProperties[]? | objects | select(.Name == $n) | .Value) // null;\n{{ua: ep(\"UserAgent\"), rt: ep(\"RequestType\")}}"
        )
    };
    let (ok, short) = (q("UserAgent|RequestType"), q("RequestType"));
    let bare = "# title: UA\n# table: auth.all\ndef ep($n): first(.ExtendedProperties[]? | objects | select(.Name == $n) | .Value) // null;\n{ua: ep(\"UserAgent\"), rt: ep(\"RequestType\")}";
    let d = load(&[
        ("ok.jq", ok.as_str()),
        ("short.jq", short.as_str()),
        ("bare.jq", bare),
    ]);
    assert_eq!(d.errors().len(), 1, "{:?}", d.errors());
    let e = &d.errors()[0];
    assert_eq!((e.file.as_str(), e.line), ("short.jq", 3), "{e}");
    assert!(e.message.contains("ExtendedProperties[UserAgent]"), "{e}");
    assert_eq!(
        d.reads("bare"),
        Some(Ok(vec!["ExtendedProperties[RequestType|UserAgent]".into()]))
    );
    let mut r = rec("UserLoggedIn", "AzureActiveDirectory");
    r["ExtendedProperties"] = json!([
        {"Name": "UserAgent", "Value": "curl/8"},
        {"Name": "Other", "Value": "x"},
        {"Name": "RequestType", "Value": "Cmsi:Cmsi"}
    ]);
    let (full, _) = d.run_unfiltered(&r);
    let (proj, _) = d.run_projected(&r);
    assert_eq!(proj, full);
    assert_eq!(full[0].details, json!({"ua": "curl/8", "rt": "Cmsi:Cmsi"}));
    // a list that is not `Name[A|B]` is a load error
    for bad in [
        "ExtendedProperties[]",
        "ExtendedProperties[A",
        "Ext[A|]",
        "[A]",
    ] {
        let text = format!("# title: B\n# table: auth.all\n# fields: {bad}\n.");
        let d = load(&[("b.jq", text.as_str())]);
        assert_eq!(d.errors().len(), 1, "{bad}: {:?}", d.errors());
    }
}

#[test]
fn contains_words_skip_records_without_them_unless_an_escape_could_hide_them() {
    let d = load(&[(
        "ua.jq",
        "# title: UA\n# table: auth.all\n# contains: BAV2ROPC, curl/\nselect(.UserAgent | ascii_downcase | (contains(\"bav2ropc\") or contains(\"curl/\"))) | {UserId}",
    )])
    .trusting_claims();
    assert!(d.errors().is_empty(), "{:?}", d.errors());
    let run = |text: &str| {
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let (hits, _) = d.run(&header(&v), Input::Text(text.as_bytes()));
        let (want, _) = d.run_unfiltered(&v);
        assert_eq!(hits, want, "{text}");
        hits.len()
    };
    let base =
        r#""Id":"1","CreationTime":"2026-05-04T09:14:22","Operation":"UserLoggedIn","UserId":"a""#;
    assert_eq!(run(&format!(r#"{{{base},"UserAgent":"x BAV2ROPC y"}}"#)), 1);
    assert_eq!(run(&format!(r#"{{{base},"UserAgent":"curl/8"}}"#)), 1);
    assert_eq!(run(&format!(r#"{{{base},"UserAgent":"Mozilla"}}"#)), 0);
    // escapes that spell a word: the guard steps aside
    assert_eq!(
        run(&format!(r#"{{{base},"UserAgent":"\u0062av2ropc"}}"#)),
        1
    );
    assert_eq!(run(&format!(r#"{{{base},"UserAgent":"curl\/8"}}"#)), 1);
    let bad = load(&[("q.jq", "# title: Q\n# table: auth.all\n# contains: a\"b\n.")]);
    assert_eq!(bad.errors().len(), 1, "{:?}", bad.errors());
}

/// `null`, `true`, `false`, `empty`, `not`, `type` and the `is…` tests are natives
/// (engine.rs); they must answer what jaq's own definitions (copied here under other
/// names) answer: on every kind of value, as path expressions and in updates.
#[test]
fn native_prelude_filters_agree_with_jaq_definitions() {
    let code = r#"
def def_null: [][0];
def def_true: 0 == 0;
def def_false: 0 != 0;
def def_empty: {}[] as $x | .;
def def_not: if . then def_false else def_true end;
def def_select(f): if f then . else def_empty end;
def def_type:
    if . == def_null then "null"
  elif . == def_true or . == def_false then "boolean"
  elif . < "" then "number"
  elif . < [] then "string"
  elif . < {} then "array"
  else             "object" end;
def both(f; g): [[f], [g]];
def err(f): try f catch "error: \(.)";
[null, true, false, 0, -1.5, 1e300, nan, infinite, "", "a", ("é" | tobytes), [], [null], {}, {"a": {}}]
| map(both(type; def_type),
      both(isboolean; . == true or . == false),
      both(isnumber; . > true and . < ""),
      both(isstring; . >= "" and . < []),
      both(isarray; . >= [] and . < {}),
      both(isobject; . >= {}),
      both(not; def_not),
      both(null, true, false, empty; def_null, def_true, def_false, def_empty))
+ [both([path(empty)]; [path(def_empty)]),
   both({"a": 1} | (.a | empty) |= 5; {"a": 1} | (.a | def_empty) |= 5),
   both([1, 2, 3] | del(.[] | select(. > 1)); [1, 2, 3] | del(.[] | def_select(. > 1))),
   both([1, 2, 3] | (.[] | select(. > 1)) |= 0; [1, 2, 3] | (.[] | def_select(. > 1)) |= 0),
   both(err(path(null)); err(path(def_null))),
   both(err(path(true)); err(path(def_true))),
   both(err({} | path(not)); err({} | path(def_not))),
   both(err("a" | path(type)); err("a" | path(def_type))),
   both(err(null |= 1); err(def_null |= 1)),
   both(err(type |= 1); err(def_type |= 1))]
"#;
    let q = Query::compile(code, Vars::default()).unwrap();
    let out = q.run(&json!(null)).unwrap();
    let pairs = out[0].as_array().unwrap();
    assert_eq!(pairs.len(), 15 * 8 + 10);
    for p in pairs {
        assert_eq!(p[0], p[1], "native vs definition: {p}");
    }
    let kinds: Vec<&serde_json::Value> =
        pairs.iter().step_by(8).take(15).map(|p| &p[0][0]).collect();
    assert_eq!(
        kinds,
        [
            "null", "boolean", "boolean", "number", "number", "number", "number", "number",
            "string", "string", "string", "array", "array", "object", "object"
        ]
    );
    // the error cases did fail (both ways alike)
    assert!(
        pairs[pairs.len() - 1][0][0]
            .as_str()
            .unwrap()
            .starts_with("error: ")
    );
}

/// Known JSON (the store's preparer: text it has just parsed) finds the same hits and
/// errors as unchecked text on every test record of every embedded detection, as
/// written; and a [`Runner`] with its memo, fed every record three times, gives what a
/// plain run gives each time (the evaluation core's invariant 1).
#[test]
fn a_runner_with_its_memo_gives_what_a_plain_run_gives() {
    let d = Detections::load_embedded(Vars::default());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("queries/tests");
    let wrapper = [meta::Field::whole("record")];
    let (mut records, mut hits) = (0, 0);
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let Some(pairs) = project::scan(line.as_bytes(), &wrapper) else {
                continue;
            };
            let Some((_, project::Piece::Whole(raw))) = pairs.first() else {
                continue;
            };
            let value: serde_json::Value = serde_json::from_str(raw.get()).unwrap();
            let Ok(h) = RecordHeader::from_value(&value) else {
                continue;
            };
            let text = raw.get().as_bytes();
            let json = crate::model::JsonText::check(text).unwrap();
            let (a, b) = (d.run(&h, Input::Json(json)), d.run(&h, Input::Text(text)));
            assert_eq!(a.0, b.0, "{}: {line}", path.display());
            assert_eq!(a.1, b.1, "{}: {line}", path.display());
            records += 1;
            hits += a.0.len();
            seen.push((h, text.to_vec(), a));
        }
    }
    assert!(records > 150 && hits > 50, "{records} records, {hits} hits");
    let mut runner = Runner::new(Some(1 << 20));
    for round in 0..3 {
        for (h, text, want) in &seen {
            let json = crate::model::JsonText::check(text).unwrap();
            let got = runner.run(&d, h, Input::Json(json));
            assert_eq!(
                &got,
                want,
                "round {round}: {}",
                String::from_utf8_lossy(text)
            );
        }
    }
}

/// A run that failed is not memoized (invariant 2): the next record with the same fields
/// is run again and fails again, so every failing record is counted.
#[test]
fn a_failed_run_is_run_again_not_served_from_the_memo() {
    let d = load(&[(
        "f.jq",
        "# title: F\n# table: auth.all\n# group_by: UserId\nselect(.Operation == \"UserLoginFailed\") | {UserId}, error(\"boom\")\n",
    )]);
    assert!(d.errors().is_empty(), "{:?}", d.errors());
    let r = rec("UserLoginFailed", "AzureActiveDirectory");
    let text = r.to_string();
    let mut runner = Runner::new(Some(1 << 20));
    for _ in 0..3 {
        let json = crate::model::JsonText::check(text.as_bytes()).unwrap();
        let (hits, errs) = runner.run(&d, &header(&r), Input::Json(json));
        assert_eq!(hits.len(), 1);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].message.contains("boom"), "{errs:?}");
    }
}

/// A runner used with another set of detections starts afresh: what it memoized for one
/// set is never served for another.
#[test]
fn a_runner_keeps_its_memo_to_one_set_of_detections() {
    let one = "# title: A\n# table: auth.all\n# group_by: UserId\nselect(.Operation == \"UserLoginFailed\") | {UserId, n: 1}\n";
    let two = "# title: A\n# table: auth.all\n# group_by: UserId\nselect(.Operation == \"UserLoginFailed\") | {UserId, n: 2}\n";
    let (d1, d2) = (load(&[("a.jq", one)]), load(&[("a.jq", two)]));
    let r = rec("UserLoginFailed", "AzureActiveDirectory");
    let text = r.to_string();
    let mut runner = Runner::new(Some(1 << 20));
    for (d, n) in [(&d1, 1), (&d1, 1), (&d2, 2), (&d1, 1)] {
        let json = crate::model::JsonText::check(text.as_bytes()).unwrap();
        let (hits, _) = runner.run(d, &header(&r), Input::Json(json));
        assert_eq!(hits[0].details["n"], n);
    }
}

/// A lone surrogate escape in a value (serde_json refuses it; jq reads U+FFFD) made the
/// store refuse the whole record and a detection's parse fail: an attacker-chosen name could
/// keep a record from the store and the detections. It is kept and read as U+FFFD.
#[test]
fn a_lone_surrogate_in_a_read_field_does_not_hide_the_record() {
    let d = load(&[
        (
            "whole.jq",
            "# title: W\n# table: cloud.office365.management\nselect(.Operation == \"New-InboxRule\") | {Name}\n",
        ),
        (
            "fields.jq",
            "# title: F\n# table: cloud.office365.management\n# fields: Operation, Name\nselect(.Operation == \"New-InboxRule\") | {Name}\n",
        ),
    ]);
    assert!(d.errors().is_empty(), "{:?}", d.errors());
    let raw = br#"{"Id":"1","CreationTime":"2026-05-04T09:14:22","Operation":"New-InboxRule","Workload":"Exchange","Name":"x\ud800y"}"#;
    let (h, json) = RecordHeader::scan_json(raw, &mut String::new()).expect("the store keeps it");
    for (hits, errs) in [d.run(&h, Input::Json(json)), d.run(&h, Input::Text(raw))] {
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(hits.len(), 2, "{hits:?}");
        assert_eq!(hits[0].details, json!({"Name": "x\u{FFFD}y"}));
    }
}

/// Property tests of the query loader: any text as a query file loads or is refused with
/// errors that name the file and a line inside it, never a panic; and whatever loads keeps
/// its claims on sample records: its `# fields` projection gives the hits and errors of the
/// whole record, the table/operation/word prefilters never change them, and the raw-text
/// paths (known JSON, unchecked text) agree. The seed corpus `tests/corpus/query_loader/*.jq`
/// runs first. `PROPTEST_CASES` sets the number of generated cases.
mod proptest_loader {
    use super::*;
    use proptest::prelude::*;

    fn records() -> Vec<serde_json::Value> {
        vec![
            rec("UserLoginFailed", "AzureActiveDirectory"),
            json!({"Id": "2", "CreationTime": "2026-05-04T09:14:22", "Operation": "New-InboxRule",
                "Workload": "Exchange", "UserId": "B@x.com", "ClientIP": "[2001:db8::1]:443",
                "Parameters": [{"Name": "DeleteMessage", "Value": "True"}, {"Name": "Name", "Value": "x\u{202e}y"}],
                "N": 3, "Nested": {"a": [1, "two", null]}}),
            json!({"Id": "3", "CreationTime": "2026-05-04T09:14:22", "Operation": "FileDownloaded",
                "Workload": "SharePoint", "UserId": "", "ObjectId": "https://x/y.docx", "N": -1.5e3,
                "ExtendedProperties": [{"Name": "UserAgent", "Value": "curl"}]}),
        ]
    }

    /// Loads one query file; checks the error places; runs what loaded on the records.
    fn check(code: &str) -> Result<(), TestCaseError> {
        let d = load(&[("fuzz.jq", code)]);
        let lines = code.lines().count().max(1);
        for e in d.errors() {
            prop_assert!(e.file == "fuzz.jq" || e.file.starts_with("lib/"), "{:?}", e);
            prop_assert!(
                e.line >= 1 && e.line <= lines + 1,
                "line {} of {}: {:?}",
                e.line,
                lines,
                e
            );
            prop_assert!(!e.message.trim().is_empty(), "{:?}", e);
            prop_assert!(e.to_string().contains("fuzz.jq"), "{}", e);
        }
        prop_assert!(
            d.len() + usize::from(!d.errors().is_empty()) == 1,
            "loaded and refused at once: {:?}",
            d
        );
        if d.is_empty() {
            return Ok(());
        }
        let d = d.with_limits(Limits {
            max_outputs: 50,
            ..Limits::default()
        });
        for r in records() {
            let raw = r.to_string();
            let h = header(&r);
            let whole = d.run_unfiltered(&r);
            prop_assert_eq!(
                &d.run_projected(&r),
                &whole,
                "`# fields` changed the result on {}",
                raw
            );
            let (_, json) = RecordHeader::scan_json(raw.as_bytes(), &mut String::new()).unwrap();
            let by_json = d.run(&h, Input::Json(json));
            prop_assert_eq!(
                &by_json,
                &d.run(&h, Input::Text(raw.as_bytes())),
                "on {}",
                raw
            );
            if d.items[0].accepts(&h) {
                prop_assert_eq!(
                    &by_json,
                    &whole,
                    "the prefilter changed the result on {}",
                    raw
                );
            }
        }
        Ok(())
    }

    #[test]
    fn the_query_loader_corpus_holds() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/query_loader");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let code = std::fs::read_to_string(&p).unwrap();
            check(&code).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
        assert!(n > 0, "empty corpus {}", dir.display());
    }

    fn header_lines() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("title"),
            Just("table"),
            Just("severity"),
            Just("operations"),
            Just("fields"),
            Just("contains"),
            Just("group_by"),
            Just("threshold"),
            Just("distinct"),
            Just("mitre"),
            Just("description"),
            Just("bogus"),
        ];
        let value = prop_oneof![
            Just("A".to_string()),
            Just("auth.all".to_string()),
            Just("cloud.office365.management".to_string()),
            Just("cloud.office365.management.exchange".to_string()),
            Just("high".to_string()),
            Just("UserLoginFailed, New-*".to_string()),
            Just("Operation, UserId".to_string()),
            Just("Operation, Parameters[Name=DeleteMessage]".to_string()),
            Just("Operation".to_string()),
            Just("inboxrule, 50053".to_string()),
            Just("3 in 10m".to_string()),
            "[ -~]{0,20}",
        ];
        prop::collection::vec((key, value, prop::bool::weighted(0.1)), 0..7).prop_map(|ls| {
            let mut s = String::from("# title: T\n# table: cloud.office365.management\n");
            for (k, v, cont) in ls {
                if cont {
                    s.push_str(&format!("#   {v}\n"));
                } else if !s.contains(&format!("# {k}:")) {
                    s.push_str(&format!("# {k}: {v}\n"));
                }
            }
            s
        })
    }

    fn body() -> impl Strategy<Value = String> {
        let step = prop_oneof![
            Just("select(.Operation == \"UserLoginFailed\")"),
            Just("select(.Workload | ascii_downcase == \"exchange\")"),
            Just("{UserId}"),
            Just("{ip: .ClientIP, n: (.N // 0)}"),
            Just("(.Parameters // [] | map(select(.Name == \"DeleteMessage\")) | .[0].Value)"),
            Just("select(.UserId | test(\"b\"; \"i\"))"),
            Just("."),
            Just(".[]?"),
            Just("empty"),
            Just("error(\"boom\")"),
            Just("select(has(\"Nested\"))"),
            Just(".Nested.a[]"),
            Just("(.. | strings)"),
            Just("keys"),
            Just("tojson"),
            Just("$collector_id"),
            Just("(.N + 1)"),
            Just("select(.Operation | startswith(\"New-\"))"),
            Just("first(.[]?)"),
            Just("reduce (.. | numbers) as $x (0; . + $x)"),
            Just("{op: .Operation, u: .UserId}"),
            Just("select(contains({Operation: \"File\"}))"),
            Just("twice"),
            Just("(.ExtendedProperties // [] | from_entries? // {})"),
            Just("("),
            Just("]"),
            Just("$nosuchvar"),
            Just("nosuchfn"),
            Just("def f: f; f"),
        ];
        (prop::bool::ANY, prop::collection::vec(step, 1..5)).prop_map(|(inc, steps)| {
            format!(
                "{}{}\n",
                if inc { "include \"m365\";\n" } else { "" },
                steps.join(" | ")
            )
        })
    }

    proptest! {
        #[test]
        fn any_text_loads_or_is_refused_with_its_place(code in any::<String>()) {
            check(&code)?;
        }

        #[test]
        fn headers_and_filters_load_or_are_refused_and_keep_their_claims(h in header_lines(), b in body()) {
            check(&format!("{h}{b}"))?;
        }
    }
}
