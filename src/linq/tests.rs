//! The Devo meaning of every clause and function of the subset, on hand-made records.

use super::*;
use chrono::TimeZone as _;
use serde_json::json;

struct Rec {
    header: RecordHeader,
    raw: String,
    at: DateTime<Utc>,
}

fn rec(v: serde_json::Value, minute: u32) -> Rec {
    let mut v = v;
    let n = v.as_object().map_or(0, |m| m.len());
    if v.get("Id").is_none() {
        v["Id"] = json!(format!("id-{minute}-{n}"));
    }
    if v.get("CreationTime").is_none() {
        v["CreationTime"] = json!("2026-12-01T10:00:00");
    }
    let header = RecordHeader::from_value(&v).unwrap();
    Rec {
        header,
        raw: v.to_string(),
        at: Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()
            + chrono::Duration::minutes(i64::from(minute)),
    }
}

fn run_on(q: &str, recs: &[Rec]) -> Output {
    let origin = Origin::new("12345", "node-a");
    let query = Query::parse(q).unwrap_or_else(|e| panic!("{}", e.with_source(q)));
    query
        .run(
            recs.iter().map(|r| Input {
                header: &r.header,
                raw: &r.raw,
                ingested_at: r.at,
                origin: Some(&origin),
            }),
            Options::default(),
        )
        .unwrap_or_else(|e| panic!("{}", e.with_source(q)))
}

/// The values of one column, as JSON.
fn col(out: &Output, name: &str) -> Vec<serde_json::Value> {
    let i = out
        .columns
        .iter()
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", out.columns));
    out.rows.iter().map(|r| r[i].to_json()).collect()
}

/// Ids of the records a where-only query keeps.
fn kept(q: &str, recs: &[Rec]) -> Vec<String> {
    let out = run_on(
        &format!("{q} select str(jsonparse(message)[\"Id\"]) as rid"),
        recs,
    );
    col(&out, "rid")
        .into_iter()
        .map(|v| v.as_str().unwrap_or("").to_string())
        .collect()
}

fn err(q: &str) -> LinqError {
    match Query::parse(q) {
        Ok(_) => panic!("{q:?} parsed"),
        Err(e) => e,
    }
}

fn ops() -> Vec<Rec> {
    vec![
        rec(
            json!({"Id":"a","Operation":"UserLoggedIn","Workload":"AzureActiveDirectory"}),
            0,
        ),
        rec(
            json!({"Id":"b","Operation":"userloggedin","Workload":"AzureActiveDirectory"}),
            1,
        ),
        rec(json!({"Id":"c","Workload":"AzureActiveDirectory"}), 2),
        rec(
            json!({"Id":"d","Operation":"Get-InsiderRiskPolicy","Workload":"SecurityComplianceCenter"}),
            3,
        ),
        rec(
            json!({"Id":"e","Operation":"New-InsiderRiskPolicy","Workload":"SecurityComplianceCenter"}),
            4,
        ),
    ]
}

const T: &str = "from cloud.office365.management";

#[test]
fn eq_and_equals_are_case_sensitive_and_false_on_null() {
    assert_eq!(
        kept(&format!("{T} where Operation = \"UserLoggedIn\""), &ops()),
        ["a"]
    );
    assert_eq!(
        kept(
            &format!("{T} where eq(Operation, \"UserLoggedIn\")"),
            &ops()
        ),
        ["a"]
    );
    // a missing Operation is null: neither equal nor (under not) unequal
    assert_eq!(
        kept(
            &format!("{T} where not eq(Operation, \"UserLoggedIn\")"),
            &ops()
        ),
        ["b", "d", "e"]
    );
}

#[test]
fn has_is_a_case_sensitive_substring_any_of_several_and_not_on_null_drops_the_row() {
    assert_eq!(
        kept(&format!("{T} where has(Operation, \"Insider\")"), &ops()),
        ["d", "e"]
    );
    assert_eq!(
        kept(&format!("{T} where has(Operation, \"insider\")"), &ops()),
        Vec::<String>::new()
    );
    assert_eq!(
        kept(
            &format!("{T} where has(Operation, \"New-\", \"LoggedIn\")"),
            &ops()
        ),
        ["a", "e"]
    );
    assert_eq!(
        kept(&format!("{T} where Operation -> \"Get\""), &ops()),
        ["d"]
    );
    // `not has` on a record without Operation is null: Devo drops it
    assert_eq!(
        kept(&format!("{T} where not has(Operation, \"Get\")"), &ops()),
        ["a", "b", "e"]
    );
    // on a JSON array, has is element membership
    let recs = vec![
        rec(json!({"Id":"x","Members":["ann","bob"]}), 0),
        rec(json!({"Id":"y","Members":["annabel"]}), 1),
    ];
    assert_eq!(
        kept(&format!("{T} where has(Members, \"ann\")"), &recs),
        ["x"]
    );
}

#[test]
fn weakhas_ignores_case_unicode_included() {
    assert_eq!(
        kept(
            &format!("{T} where weakhas(Operation, \"USERLOGGEDIN\")"),
            &ops()
        ),
        ["a", "b"]
    );
    assert_eq!(
        kept(&format!("{T} where Operation ->> \"insiderrisk\""), &ops()),
        ["d", "e"]
    );
    let recs = vec![rec(
        json!({"Id":"u","ObjectId":"/Plan_STRATÉGIQUE.docx"}),
        0,
    )];
    assert_eq!(
        kept(
            &format!("{T} where weakhas(ObjectId, \"stratégique\")"),
            &recs
        ),
        ["u"]
    );
    assert_eq!(
        kept(&format!("{T} where not weakhas(ObjectId, \"x\")"), &ops()),
        Vec::<String>::new()
    );
}

#[test]
fn toktains_matches_whole_tokens_with_optional_extension() {
    let recs = vec![
        rec(json!({"Id":"1","H":"collector-123-abc"}), 0),
        rec(json!({"Id":"2","H":"mycollector-123"}), 1),
        rec(json!({"Id":"3","H":"host=10.1.2.3"}), 2),
        rec(json!({"Id":"4","H":"Collector-9"}), 3),
    ];
    assert_eq!(
        kept(&format!("{T} where toktains(H, \"collector-\")"), &recs),
        ["1"]
    );
    assert_eq!(
        kept(
            &format!("{T} where toktains(H, \"collector\", true, false)"),
            &recs
        ),
        ["1", "2"]
    );
    // IP components are tokens; a partial component is not
    assert_eq!(
        kept(&format!("{T} where toktains(H, \"10.1\")"), &recs),
        ["3"]
    );
    assert_eq!(
        kept(&format!("{T} where toktains(H, \"0.1\")"), &recs),
        Vec::<String>::new()
    );
    assert_eq!(
        kept(
            &format!("{T} where toktains(H, \"0.1\", true, false)"),
            &recs
        ),
        ["3"]
    );
    assert_eq!(
        kept(
            &format!("{T} where toktains(H, \"12\", false, true)"),
            &recs
        ),
        ["1", "2"]
    );
    // case: toktains is sensitive, weaktoktains is not
    assert_eq!(
        kept(&format!("{T} where weaktoktains(H, \"collector-\")"), &recs),
        ["1", "4"]
    );
    // overlapping candidates: the second "aa" of "aaa-aa" is a whole token
    let over = vec![rec(json!({"Id":"o","H":"aaa-aa"}), 0)];
    assert_eq!(
        kept(&format!("{T} where toktains(H, \"aa\")"), &over),
        ["o"]
    );
    assert_eq!(
        kept(&format!("{T} where toktains(H, \"a\")"), &over),
        Vec::<String>::new()
    );
    // hostchain is collector-<id>-<host> of the collector that stored the record
    assert_eq!(
        kept(
            &format!("{T} where toktains(hostchain, \"collector-\")"),
            &recs
        )
        .len(),
        4
    );
}

#[test]
fn split_counts_from_zero_and_is_null_out_of_range() {
    let recs = vec![rec(json!({"Id":"s","U":"alice@contoso.com"}), 0)];
    let out = run_on(
        &format!(
            "{T} select split(hostchain, \"-\", 1) as id, split(hostchain, \"-\", 0) as first, \
             split(hostchain, \"-\", 9) as none, split(U, \"@\", 1) as domain, \
             split(Missing, \"@\", 0) as nul, split(U, \"@\") as parts"
        ),
        &recs,
    );
    assert_eq!(col(&out, "id"), [json!("12345")]);
    assert_eq!(col(&out, "first"), [json!("collector")]);
    assert_eq!(col(&out, "none"), [json!(null)]);
    assert_eq!(col(&out, "domain"), [json!("contoso.com")]);
    assert_eq!(col(&out, "nul"), [json!(null)]);
    assert_eq!(col(&out, "parts"), [json!(["alice", "contoso.com"])]);
    assert!(
        err(&format!("{T} select split(U, \"@\", -1) as x"))
            .msg
            .contains("≥ 0")
    );
}

#[test]
fn str_jsonparse_and_jqeval() {
    let recs = vec![
        rec(
            json!({"Id":"t1","ParticipantInfo":{"HasForeignTenantUsers":false},"N":3,"O":{"a":1}}),
            0,
        ),
        rec(
            json!({"Id":"t2","ParticipantInfo":{"HasForeignTenantUsers":true}}),
            1,
        ),
        rec(json!({"Id":"t3"}), 2),
        rec(json!({"Id":"t4","ParticipantInfo":"stringly"}), 3),
    ];
    let q = format!(
        "{T} select jqeval(jqcompile(\".ParticipantInfo.HasForeignTenantUsers\"), jsonparse(message)) as foreign \
         where isnotnull(foreign)"
    );
    // isnotnull is presence: false is not null
    assert_eq!(kept(&q, &recs), ["t1", "t2"]);
    let out = run_on(&q, &recs);
    assert_eq!(col(&out, "foreign"), [json!(false), json!(true)]);
    // the jq error on the string ParticipantInfo reads as null, and is reported
    assert!(out.warnings[0].contains("1 records"), "{:?}", out.warnings);
    let out = run_on(
        &format!(
            "{T} where eq(str(jsonparse(message)[\"Id\"]), \"t1\") select str(jsonparse(message)[\"Id\"]) as s, \
             jsonparse(message)[\"Id\"] as j, str(N) as n, str(O) as o, str(Missing) as m, \
             jsonparse(message)[\"O\"][\"a\"] as deep, jsonparse(\"not json\") as bad"
        ),
        &recs,
    );
    assert_eq!(col(&out, "s"), [json!("t1")]);
    assert_eq!(
        out.rows[0][out.columns.iter().position(|c| c == "j").unwrap()].to_text(),
        "\"t1\""
    );
    assert_eq!(col(&out, "n"), [json!("3")]);
    assert_eq!(col(&out, "o"), [json!("{\"a\":1}")]);
    assert_eq!(col(&out, "m"), [json!(null)]);
    assert_eq!(col(&out, "deep"), [json!(1)]);
    assert_eq!(col(&out, "bad"), [json!(null)]);
    // a JSON string needs str() before string functions
    let q = format!("{T} where weakhas(jsonparse(message)[\"Id\"], \"t\")");
    let e = Query::parse(&q).unwrap().run(
        recs.iter().map(|r| Input {
            header: &r.header,
            raw: &r.raw,
            ingested_at: r.at,
            origin: None,
        }),
        Options::default(),
    );
    let e = e.unwrap_err();
    assert!(e.msg.contains("str(") && e.msg.contains("record t1"), "{e}");
    assert_eq!(e.col, q.find("jsonparse").unwrap() + 1);
}

#[test]
fn where_comma_is_and_and_or_and_not_follow_null_logic() {
    assert_eq!(
        kept(
            &format!(
                "{T} where has(Operation, \"InsiderRiskPolicy\"), not has(Operation, \"Get\")"
            ),
            &ops()
        ),
        ["e"]
    );
    assert_eq!(
        kept(
            &format!("{T} where Operation = \"UserLoggedIn\" or Operation = \"userloggedin\""),
            &ops()
        ),
        ["a", "b"]
    );
    // null or true is true; null and false is false; where drops null
    assert_eq!(
        kept(
            &format!("{T} where has(Operation, \"x\") or eq(Workload, \"AzureActiveDirectory\")"),
            &ops()
        ),
        ["a", "b", "c"]
    );
    assert_eq!(
        kept(
            &format!("{T} where not (has(Operation, \"x\") and eq(Workload, \"Nope\"))"),
            &ops()
        )
        .len(),
        5
    );
    assert_eq!(kept(&format!("{T} where isnull(Operation)"), &ops()), ["c"]);
}

#[test]
fn in_is_exact_membership() {
    assert_eq!(
        kept(
            &format!("{T} where Operation in {{\"UserLoggedIn\", \"New-InsiderRiskPolicy\"}}"),
            &ops()
        ),
        ["a", "e"]
    );
    assert_eq!(
        kept(
            &format!("{T} where in(Operation, \"userloggedin\")"),
            &ops()
        ),
        ["b"]
    );
    assert_eq!(
        kept(
            &format!("{T} where not Operation in {{\"UserLoggedIn\"}}"),
            &ops()
        ),
        ["b", "d", "e"]
    );
}

#[test]
fn lower_upper_length_keep_null() {
    let recs = vec![
        rec(json!({"Id":"l1","U":"ÅSA@Contoso.com"}), 0),
        rec(json!({"Id":"l2"}), 1),
    ];
    let out = run_on(
        &format!("{T} select lower(U) as lo, upper(U) as up, length(U) as len"),
        &recs,
    );
    assert_eq!(col(&out, "lo"), [json!("åsa@contoso.com"), json!(null)]);
    assert_eq!(col(&out, "up"), [json!("ÅSA@CONTOSO.COM"), json!(null)]);
    assert_eq!(col(&out, "len"), [json!(15), json!(null)]);
}

#[test]
fn comparisons_order_numbers_and_strings_and_null_is_unknown() {
    let recs = vec![
        rec(json!({"Id":"n1","RecordType":15}), 0),
        rec(json!({"Id":"n2","RecordType":"15"}), 1),
        rec(json!({"Id":"n3","RecordType":8}), 2),
        rec(json!({"Id":"n4"}), 3),
    ];
    // a number and a string are never equal
    assert_eq!(kept(&format!("{T} where RecordType = 15"), &recs), ["n1"]);
    assert_eq!(
        kept(&format!("{T} where RecordType = \"15\""), &recs),
        ["n2"]
    );
    assert_eq!(
        kept(&format!("{T} where RecordType != 15"), &recs),
        ["n2", "n3"]
    );
    // ordering a string against a number is unknown: the row is dropped
    assert_eq!(
        kept(
            &format!("{T} where RecordType >= 8, RecordType < 15"),
            &recs
        ),
        ["n3"]
    );
    assert_eq!(kept(&format!("{T} where RecordType > 9"), &recs), ["n1"]);
    assert_eq!(
        kept(&format!("{T} where not RecordType > 9"), &recs),
        ["n3"]
    );
}

#[test]
fn group_by_gives_one_row_per_combination_and_named_keys() {
    let recs = ops();
    let out = run_on(
        &format!("{T} group by Workload, split(hostchain, \"-\", 1) as collector_id"),
        &recs,
    );
    assert_eq!(out.columns, ["Workload", "collector_id"]);
    assert_eq!(
        col(&out, "Workload"),
        [
            json!("AzureActiveDirectory"),
            json!("SecurityComplianceCenter")
        ]
    );
    assert_eq!(col(&out, "collector_id"), [json!("12345"), json!("12345")]);
    // a null key is a group of its own
    let out = run_on(
        &format!("{T} group by Operation select count() as n"),
        &recs,
    );
    assert_eq!(
        col(&out, "n"),
        [json!(1), json!(1), json!(1), json!(1), json!(1)]
    );
    assert_eq!(col(&out, "Operation")[2], json!(null));
    // an unnamed jsonparse key is named after its field
    let out = run_on(
        &format!("{T} group by jsonparse(message)[\"Workload\"]"),
        &recs,
    );
    assert_eq!(out.columns, ["Workload"]);
}

#[test]
fn aggregations_skip_nulls_and_having_filters_groups() {
    let recs = vec![
        rec(
            json!({"Id":"g1","Workload":"Exchange","UserId":"a","Size":10}),
            0,
        ),
        rec(
            json!({"Id":"g2","Workload":"Exchange","UserId":"a","Size":30}),
            1,
        ),
        rec(json!({"Id":"g3","Workload":"Exchange","UserId":"b"}), 2),
        rec(
            json!({"Id":"g4","Workload":"SharePoint","UserId":"c","Size":5}),
            3,
        ),
    ];
    let out = run_on(
        &format!(
            "{T} group by Workload select count() as n, count(Size) as sized, countdistinct(UserId) as users, \
             min(Size) as lo, max(Size) as hi, avg(Size) as mean, sum(Size) as total, min(UserId) as first_user, \
             max(eventdate) as last"
        ),
        &recs,
    );
    assert_eq!(col(&out, "n"), [json!(3), json!(1)]);
    assert_eq!(col(&out, "sized"), [json!(2), json!(1)]);
    assert_eq!(col(&out, "users"), [json!(2), json!(1)]);
    assert_eq!(col(&out, "lo"), [json!(10), json!(5)]);
    assert_eq!(col(&out, "hi"), [json!(30), json!(5)]);
    assert_eq!(col(&out, "mean"), [json!(20), json!(5)]);
    assert_eq!(col(&out, "total"), [json!(40), json!(5)]);
    assert_eq!(col(&out, "first_user"), [json!("a"), json!("c")]);
    assert_eq!(
        col(&out, "last"),
        [
            json!("2026-12-01 10:02:00.000"),
            json!("2026-12-01 10:03:00.000")
        ]
    );
    let out = run_on(
        &format!("{T} group by UserId select count() as n having n > 1"),
        &recs,
    );
    assert_eq!(col(&out, "UserId"), [json!("a")]);
    let out = run_on(
        &format!("{T} where Workload = \"Nope\" group by UserId select avg(Size) as m"),
        &recs,
    );
    assert!(out.rows.is_empty());
    let out = run_on(&format!("{T} group by UserId select avg(Size) as m"), &recs);
    assert_eq!(col(&out, "m"), [json!(20), json!(null), json!(5)]);
}

#[test]
fn group_every_buckets_eventdate_by_period() {
    let recs: Vec<Rec> = (0..5)
        .map(|i| {
            rec(
                json!({"Id": format!("p{i}"), "Workload":"Exchange"}),
                i * 25,
            )
        })
        .collect();
    // minutes 0, 25, 50 | 75, 100 → hours 10:00 and 11:00
    let out = run_on(
        &format!("{T} group every 1h by Workload select count() as n"),
        &recs,
    );
    assert_eq!(out.columns, ["eventdate", "Workload", "n"]);
    assert_eq!(
        col(&out, "eventdate"),
        [
            json!("2026-12-01 10:00:00.000"),
            json!("2026-12-01 11:00:00.000")
        ]
    );
    assert_eq!(col(&out, "n"), [json!(3), json!(2)]);
    // minutes 0, 25 | 50 | 75 | 100
    let out = run_on(&format!("{T} group every 30m select count() as n"), &recs);
    assert_eq!(col(&out, "n"), [json!(2), json!(1), json!(1), json!(1)]);
}

#[test]
fn tables_filter_by_workload_and_auth_operations() {
    let recs = ops();
    assert_eq!(
        kept(
            "from cloud.office365.management.securitycompliancecenter",
            &recs
        ),
        ["d", "e"]
    );
    assert_eq!(kept("from auth.all", &recs), ["a"]);
    assert_eq!(
        kept("from cloud.office365.management.onedrive", &recs),
        Vec::<String>::new()
    );
}

#[test]
fn time_range_is_on_eventdate_half_open() {
    let recs = ops();
    let q = Query::parse(T).unwrap();
    let out = q
        .run(
            recs.iter().map(|r| Input {
                header: &r.header,
                raw: &r.raw,
                ingested_at: r.at,
                origin: None,
            }),
            Options {
                from: Some(recs[1].at),
                to: Some(recs[3].at),
                max_rows: None,
            },
        )
        .unwrap();
    assert_eq!(out.scanned, 2);
    assert_eq!(out.rows.len(), 2);
    // imported records have no collector: hostchain is null
    assert_eq!(out.rows[0][1], Value::Null);
}

#[test]
fn ungrouped_rows_carry_the_table_columns_then_the_selected_ones() {
    let out = run_on(
        &format!("{T} where Operation = \"UserLoggedIn\" select 1 as one"),
        &ops(),
    );
    assert_eq!(
        out.columns,
        [
            "eventdate",
            "hostchain",
            "Operation",
            "UserId",
            "Workload",
            "ActorIpAddress",
            "ObjectId",
            "ClientIP",
            "message",
            "one"
        ]
    );
    assert_eq!(col(&out, "hostchain"), [json!("collector-12345-node-a")]);
    assert_eq!(col(&out, "one"), [json!(1)]);
}

#[test]
fn errors_name_the_problem_and_its_column() {
    let e = err("from cloud.office365.managment where x = 1");
    assert_eq!(e.col, 6);
    assert!(e.msg.contains("unknown table"), "{e}");
    let e = err("from cloud.office365.management.Exchange");
    assert!(e.msg.contains("lower case"), "{e}");
    let e = err("from cloud.office365.management where weakhaz(Operation, \"x\")");
    assert_eq!((e.col, e.msg.as_str()), (39, "unknown function weakhaz()"));
    let e = err("from cloud.office365.management where Lower(Operation) = \"x\"");
    assert!(e.msg.contains("did you mean lower"), "{e}");
    let e = err("from cloud.office365.management where ifthenelse(a, b, c)");
    assert!(e.msg.contains("outside the subset"), "{e}");
    let e = err("from cloud.office365.management select count() as n");
    assert!(e.msg.contains("group"), "{e}");
    let e = err(
        "from cloud.office365.management group by UserId select count() as n where Operation = \"x\"",
    );
    assert!(e.msg.contains("not available after `group`"), "{e}");
    let e = err("from cloud.office365.management order by eventdate");
    assert!(e.msg.contains("outside the subset"), "{e}");
    let e = err("from cloud.office365.management where a + 1");
    assert_eq!(e.col, 41);
    let e = err("from cloud.office365.management select Operation");
    assert!(e.msg.contains("`as <name>`"), "{e}");
    let e = err("from cloud.office365.management where eq(Operation)");
    assert!(e.msg.contains("takes 2 arguments"), "{e}");
    let e = err("from cloud.office365.management select jqeval(\".x\", message) as x");
    assert!(e.msg.contains("jqcompile"), "{e}");
    let e = err(
        "from cloud.office365.management select jqeval(jqcompile(\".x |\"), jsonparse(message)) as x",
    );
    assert!(e.msg.contains("does not compile"), "{e}");
    let e = err("from cloud.office365.management group every 1w by UserId");
    assert!(e.msg.contains("unit"), "{e}");
    let e = err("from cloud.office365.management having x > 1");
    assert!(e.msg.contains("needs a `group`"), "{e}");
    let e = err("from cloud.office365.management select 1 as Operation");
    assert!(e.msg.contains("already has a column"), "{e}");
    // the caret sits under the problem
    let q = "from auth.all where foo(1)";
    assert_eq!(
        err(q).with_source(q),
        "column 21: unknown function foo()\n  from auth.all where foo(1)\n                      ^"
    );
}

#[test]
fn a_condition_of_the_wrong_type_fails_instead_of_guessing() {
    let recs = ops();
    let q = Query::parse(&format!("{T} where not Operation")).unwrap();
    let e = q
        .run(
            recs.iter().map(|r| Input {
                header: &r.header,
                raw: &r.raw,
                ingested_at: r.at,
                origin: None,
            }),
            Options::default(),
        )
        .unwrap_err();
    assert!(e.msg.contains("`not` needs a condition"), "{e}");
}

#[test]
fn terminal_safe_escapes_controls_and_bidi() {
    use crate::model::terminal_safe;
    assert_eq!(terminal_safe("plain é"), "plain é");
    assert_eq!(
        terminal_safe("a\u{1b}[31mb\n\u{7f}\u{9b}"),
        "a\\u{1b}[31mb\\n\\u{7f}\\u{9b}"
    );
    assert_eq!(terminal_safe("x\u{202e}y\u{2066}"), "x\\u{202e}y\\u{2066}");
}
