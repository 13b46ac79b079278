//! Component tests of the store on a temp directory: the invariants it keeps alone.

use super::*;
use crate::model::{BlobRef, ContentType, format_api_time};
use chrono::{Duration, TimeZone};
use serde_json::json;
use std::collections::HashSet;

const T: &str = "0b6a3c52-1b7e-4a5e-9f0e-1f2f3a4b5c6d";

fn rec(id: &str, op: &str, user: &str, extra: &str) -> Value {
    json!({
        "Id": id,
        "CreationTime": "2026-11-20T10:00:00",
        "Workload": "Exchange",
        "Operation": op,
        "RecordType": 2,
        "UserId": user,
        "ClientIP": "203.0.113.7:443",
        "OrganizationId": T,
        "Subject": extra,
    })
}

fn blob_ref(n: usize, created: DateTime<Utc>) -> BlobRef {
    BlobRef {
        content_type: "Audit.Exchange".into(),
        content_id: format!("blob{n}"),
        content_uri: format!("http://127.0.0.1/blob{n}"),
        content_created: format_api_time(created),
        content_expiration: format_api_time(created + Duration::days(7)),
    }
}

fn open(dir: &Path) -> Store {
    Store::open(dir, Arc::new(Detections::empty())).unwrap()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap()
}

/// Notes one blob and returns its ledger id.
fn note_one(s: &Store, n: usize) -> i64 {
    s.note_listing(
        T,
        ContentType::Exchange,
        t0() + Duration::hours(1),
        vec![blob_ref(n, t0())],
    )
    .wait()
    .unwrap();
    s.pending_blobs(T, ContentType::Exchange, Utc::now(), 1000)
        .unwrap()
        .into_iter()
        .find(|b| b.blob.content_id == format!("blob{n}"))
        .unwrap()
        .blob_id
}

fn body(records: &[Value]) -> bytes::Bytes {
    bytes::Bytes::from(serde_json::to_vec(records).unwrap())
}

#[test]
fn what_a_blob_holds_is_let_go_once_the_blob_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let b = note_one(&s, 1);
    let held = Arc::new(());
    let out = s
        .ingest_blob_holding(b, body(&[rec("a", "Send", "alice@x", "")]), held.clone())
        .wait()
        .unwrap();
    assert!(matches!(
        out,
        BlobIngest::Stored(IngestOutcome { new: 1, .. })
    ));
    // the collector's budget of blob bytes gets its share back: a leak would stall it
    assert_eq!(
        Arc::strong_count(&held),
        1,
        "the store kept what the blob held"
    );
}

#[test]
fn invariant_2_same_blob_twice_and_duplicates_inside_store_each_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let b1 = note_one(&s, 1);
    let recs = vec![
        rec("a", "Send", "alice@x", ""),
        rec("b", "Send", "bob@x", ""),
        rec("a", "Send", "alice@x", ""),
    ];
    let out = s.ingest_blob(b1, body(&recs)).wait().unwrap();
    assert_eq!(
        out,
        BlobIngest::Stored(IngestOutcome {
            records: 3,
            new: 2,
            duplicates: 1,
            ..Default::default()
        })
    );
    // the same blob again: already done, nothing happens
    assert_eq!(
        s.ingest_blob(b1, body(&recs)).wait().unwrap(),
        BlobIngest::AlreadyFinished
    );
    // another blob carrying the same records
    let b2 = note_one(&s, 2);
    let out = s.ingest_blob(b2, body(&recs[..2])).wait().unwrap();
    assert!(matches!(
        out,
        BlobIngest::Stored(IngestOutcome {
            new: 0,
            duplicates: 2,
            ..
        })
    ));
    let keys = s.record_keys().unwrap();
    assert_eq!(
        keys,
        vec![
            (T.to_string(), "a".to_string()),
            (T.to_string(), "b".to_string())
        ]
    );
    let st = s.stats().unwrap();
    assert_eq!(st.records.total, 2);
    assert_eq!(st.duplicates_dropped, 3);
    assert_eq!(st.blobs["done"], 2);
    s.close().unwrap();
}

#[test]
fn invariant_3_cursor_only_moves_forward() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let ct = ContentType::Exchange;
    s.note_listing(T, ct, t0() + Duration::hours(5), vec![])
        .wait()
        .unwrap();
    assert_eq!(s.cursor(T, ct).unwrap(), Some(t0() + Duration::hours(5)));
    // re-listing an overlap (an earlier end) never moves it back
    s.note_listing(T, ct, t0() + Duration::hours(2), vec![blob_ref(1, t0())])
        .wait()
        .unwrap();
    assert_eq!(s.cursor(T, ct).unwrap(), Some(t0() + Duration::hours(5)));
    assert_eq!(s.pending_count(T, ct).unwrap(), 1);
    s.clamp_cursor(T, ct, t0(), t0() + Duration::hours(1), "test".into())
        .wait()
        .unwrap();
    assert_eq!(s.cursor(T, ct).unwrap(), Some(t0() + Duration::hours(5)));
    s.note_listing(T, ct, t0() + Duration::hours(6), vec![])
        .wait()
        .unwrap();
    assert_eq!(s.cursor(T, ct).unwrap(), Some(t0() + Duration::hours(6)));
    // other content types have their own cursor
    assert_eq!(s.cursor(T, ContentType::SharePoint).unwrap(), None);
}

#[test]
fn invariant_1_malformed_blob_stores_nothing_and_fails_after_n_attempts_with_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let b = note_one(&s, 1);
    let truncated = bytes::Bytes::from_static(
        b"[{\"Id\":\"a\",\"CreationTime\":\"2026-11-20T10:00:00\"},{\"Id\":",
    );
    for i in 1..MAX_MALFORMED_ATTEMPTS {
        assert_eq!(
            s.ingest_blob(b, truncated.clone()).wait().unwrap(),
            BlobIngest::Malformed {
                attempts: i,
                failed: false
            }
        );
        assert_eq!(s.pending_count(T, ContentType::Exchange).unwrap(), 1);
    }
    assert_eq!(
        s.ingest_blob(b, truncated).wait().unwrap(),
        BlobIngest::Malformed {
            attempts: MAX_MALFORMED_ATTEMPTS,
            failed: true
        }
    );
    assert_eq!(s.record_keys().unwrap(), vec![]);
    let st = s.stats().unwrap();
    assert_eq!(st.blobs["failed"], 1);
    assert_eq!(st.gaps.len(), 1);
    assert_eq!(st.gaps[0].kind, "failed");
    assert_eq!(st.gaps[0].count, 1);
}

#[test]
fn invariant_6_expired_blobs_bad_records_and_clamps_are_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let ct = ContentType::Exchange;
    let b = note_one(&s, 1);
    // a record without Id inside a good blob: the rest is stored, the bad one is a gap
    let out = s
        .ingest_blob(
            b,
            body(&[
                rec("a", "Send", "u", ""),
                json!({"CreationTime": "2026-11-20T10:00:00"}),
            ]),
        )
        .wait()
        .unwrap();
    assert!(matches!(
        out,
        BlobIngest::Stored(IngestOutcome {
            new: 1,
            bad_records: 1,
            ..
        })
    ));
    note_one(&s, 2);
    let n = s
        .expire_blobs(T, ct, t0() + Duration::days(8))
        .wait()
        .unwrap();
    assert_eq!(n, 1);
    s.clamp_cursor(
        T,
        ct,
        t0() - Duration::days(9),
        t0() - Duration::days(7),
        "older than 7 days".into(),
    )
    .wait()
    .unwrap();
    let b3 = note_one(&s, 3);
    s.give_up_blob(b3, GapKind::NotFound, "AF20050".into())
        .wait()
        .unwrap();
    let st = s.stats().unwrap();
    let kinds: Vec<(&str, i64)> = st.gaps.iter().map(|g| (g.kind.as_str(), g.count)).collect();
    assert_eq!(
        kinds,
        vec![
            ("bad_record", 1),
            ("clamped", 1),
            ("expired", 1),
            ("not_found", 1)
        ]
    );
    assert_eq!(st.blobs["expired"], 1);
    assert_eq!(st.blobs["failed"], 1);
    assert_eq!(st.blobs["pending"], 0);
    let js = serde_json::to_value(&st).unwrap();
    assert_eq!(js["gaps"][2]["content_type"], "Audit.Exchange");
}

#[test]
fn transient_failures_keep_the_blob_pending_until_due() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let b = note_one(&s, 1);
    let later = Utc::now() + Duration::minutes(5);
    s.retry_blob_later(b, "503".into(), later).wait().unwrap();
    assert!(
        s.pending_blobs(T, ContentType::Exchange, Utc::now(), 10)
            .unwrap()
            .is_empty()
    );
    let due = s
        .pending_blobs(T, ContentType::Exchange, later, 10)
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].attempts, 1);
}

#[test]
fn invariant_4_index_follows_sqlite_and_rebuilds_after_delete() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        let b = note_one(&s, 1);
        let recs: Vec<Value> = (0..50)
            .map(|i| {
                rec(
                    &format!("id{i}"),
                    if i % 2 == 0 {
                        "Send"
                    } else {
                        "MailItemsAccessed"
                    },
                    &format!("user{i}@contoso.com"),
                    "Strategic_Roadmap",
                )
            })
            .collect();
        s.ingest_blob(b, body(&recs)).wait().unwrap();
        assert_eq!(s.flush().wait().unwrap(), 50);
        let r = s.search("strategic_roadmap", 10).unwrap();
        assert_eq!(r.total, 50);
        assert_eq!(r.hits.len(), 10);
        assert_eq!(r.hits[0].table, "cloud.office365.management.exchange");
        assert_eq!(s.search("operation:send", 100).unwrap().total, 25);
        assert_eq!(s.search("user:USER3@contoso.com", 100).unwrap().total, 1);
        assert_eq!(
            // a record's Id is a word of its text
            s.search("ip:203.0.113.7 AND id7", 100).unwrap().hits[0].id,
            "id7"
        );
        s.close().unwrap();
    }
    // the index of an earlier format (its directory name) is never read: the store
    // deletes it at open and rebuilds the current one from SQLite
    std::fs::rename(
        dir.path().join(index::INDEX_DIR),
        dir.path().join("index-v2"),
    )
    .unwrap();
    let s = open(dir.path());
    assert!(!dir.path().join("index-v2").exists());
    assert_eq!(s.flush().wait().unwrap(), 50);
    assert_eq!(s.indexed_docs().unwrap(), 50);
    assert_eq!(s.search("strategic_roadmap", 10).unwrap().total, 50);
    // a bad query is a usage error
    let e = s.search("operation:(", 10).unwrap_err();
    assert!(e.chain().any(|c| c.is::<crate::UsageError>()), "{e:#}");
    // a field the index lacks: the error lists the ones it has and says how to find an Id
    let e = s.search("id:id7", 10).unwrap_err();
    assert!(e.chain().any(|c| c.is::<crate::UsageError>()), "{e:#}");
    assert!(
        format!("{e:#}").contains(index::SEARCH_FIELDS) && format!("{e:#}").contains("Id"),
        "{e:#}"
    );
}

#[test]
fn invariant_4_crash_between_sqlite_and_index_commit_is_healed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        let b = note_one(&s, 1);
        s.ingest_blob(b, body(&[rec("a", "Send", "u", "x")]))
            .wait()
            .unwrap();
        s.flush().wait().unwrap();
        s.close().unwrap();
    }
    // rows committed to SQLite behind the index's back (as if the process died before
    // the index commit): write them with a bare connection
    {
        let conn = db::open_writer(&dir.path().join(DB_FILE)).unwrap();
        let raw = rec("b", "Send", "u", "healme").to_string();
        let data = zstd::bulk::compress(raw.as_bytes(), 3).unwrap();
        conn.execute(
            "INSERT INTO records (tenant, id, creation_time, workload, operation, record_type, \
             user_id, client_ip, content_type, ingested_at, dict, raw) \
             VALUES (1, 'b', 0, 'Exchange', 'Send', 2, 'u', '', 1, 0, 0, ?1)",
            [data],
        )
        .unwrap();
    }
    let ro = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.stats().unwrap().index.unwrap().records_behind, 1);
    // a search that could not see a stored record says so
    let r = ro.search("healme", 10).unwrap();
    assert_eq!((r.total, r.not_indexed), (0, 1));
    assert!(r.incomplete_note().unwrap().contains("newest 1 stored"));
    let s = open(dir.path());
    assert_eq!(s.flush().wait().unwrap(), 2);
    assert_eq!(s.search("healme", 10).unwrap().total, 1);
    let r = ro.search("healme", 10).unwrap();
    assert_eq!((r.total, r.not_indexed, r.incomplete_note()), (1, 0, None));
    assert_eq!(ro.stats().unwrap().index.unwrap().records_behind, 0);
}

#[test]
fn records_round_trip_losslessly_with_and_without_the_dictionary() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    // enough records to train the first dictionary, then more that use it
    let record = |i: usize| {
        format!(
            "{{\"Id\":\"r{i}\", \"CreationTime\":\"2026-11-20T10:{:02}:00\",\"Workload\":\"SharePoint\",\"Operation\":\"FileAccessed\",\"RecordType\":6,\"UserId\":\"user{}@contoso.com\",\"ObjectId\":\"https://contoso.sharepoint.com/sites/s{i}/doc.docx\", \"OrganizationId\":\"{T}\"}}",
            i % 60,
            i % 17
        )
    };
    let mut raws: Vec<String> = (0..2600).map(record).collect();
    raws.push("{\"Id\":\"ü\",\"CreationTime\":\"2026-11-20T10:00:00Z\",\"Workload\":\"\",\"Operation\":\"X\"}".into());
    for chunk in raws.chunks(500) {
        s.import_records("fallback", chunk.to_vec()).wait().unwrap();
    }
    let dicts = || -> i64 {
        s.with_conn(|c| Ok(c.query_row("SELECT count(*) FROM dicts", [], |r| r.get(0))?))
            .unwrap()
    };
    // the dictionary trains on its own thread and is stored by a later write: keep
    // writing (a record at a time) until it is there
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut next = 2600;
    while dicts() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no dictionary after 60 s"
        );
        s.import_records("fallback", vec![record(next)])
            .wait()
            .unwrap();
        raws.push(record(next));
        next += 1;
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(dicts(), 1);
    // records after it are compressed with it
    let after: Vec<String> = (next..next + 100).map(record).collect();
    s.import_records("fallback", after.clone()).wait().unwrap();
    raws.extend(after);
    let with_dict: i64 = s
        .with_conn(|c| {
            Ok(
                c.query_row("SELECT count(*) FROM records WHERE dict > 0", [], |r| {
                    r.get(0)
                })?,
            )
        })
        .unwrap();
    assert!(with_dict >= 100, "{with_dict} records use the dictionary");
    let mut seen = 0;
    s.for_each_record("cloud.office365.management", 0, |r| {
        assert_eq!(r.raw, raws[seen], "record {seen} changed");
        seen += 1;
        Ok(true)
    })
    .unwrap();
    assert_eq!(seen, raws.len());
    // the record without OrganizationId landed in the fallback tenant
    assert_eq!(s.record_by_id("ü").unwrap().unwrap().tenant, "fallback");
    let sharepoint = raws.len() - 1;
    assert_eq!(
        s.records_page("cloud.office365.management.sharepoint", 0, 50_000)
            .unwrap()
            .len(),
        sharepoint
    );
    let user3 = (0..next + 100).filter(|i| i % 17 == 3).count();
    assert_eq!(
        s.records_of_user("USER3@contoso.com", 50_000)
            .unwrap()
            .len(),
        user3
    );
    // the same through the search index once it caught up, newest first
    s.flush().wait().unwrap();
    let u = s.records_of_user("user3@CONTOSO.com", 50_000).unwrap();
    assert_eq!(u.len(), user3);
    assert!(
        u.windows(2)
            .all(|w| w[0].header.creation_time >= w[1].header.creation_time)
    );
    assert_eq!(s.records_of_user("user3@contoso.com", 5).unwrap().len(), 5);
    assert!(s.records_of_ip("203.0.113.9", 10).unwrap().is_empty());
}

#[test]
fn a_guid_is_found_whole_and_words_as_phrases() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let b = note_one(&s, 1);
    let mut r = rec("a", "Send", "sofia.garcia@fabrikam.com", "Q3 board pack");
    r["InterSystemsId"] = json!("deec4d85-e8fb-4b8a-82c0-424f8fbf3209");
    s.ingest_blob(b, body(&[r, rec("b", "Send", "bob@x", "lunch")]))
        .wait()
        .unwrap();
    s.flush().wait().unwrap();
    let ids = |q: &str| -> Vec<String> {
        s.search(q, 10)
            .unwrap()
            .hits
            .into_iter()
            .map(|h| h.id)
            .collect()
    };
    assert_eq!(ids("deec4d85-e8fb-4b8a-82c0-424f8fbf3209"), ["a"]);
    assert_eq!(ids("DEEC4D85-E8FB-4B8A-82C0-424F8FBF3209"), ["a"]);
    assert_eq!(ids("\"deec4d85-e8fb-4b8a-82c0-424f8fbf3209\""), ["a"]);
    // a fragment of a GUID is not a word of the record
    assert!(ids("deec4d85").is_empty());
    assert_eq!(ids("\"sofia.garcia@fabrikam.com\""), ["a"]);
    assert_eq!(ids("\"board pack\""), ["a"]);
    assert_eq!(ids("lunch"), ["b"]);
}

#[test]
fn records_of_an_ip_come_from_index_and_unindexed_tail() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let b = note_one(&s, 1);
    s.ingest_blob(
        b,
        body(&[rec("a", "Send", "u", ""), rec("b", "Send", "v", "")]),
    )
    .wait()
    .unwrap();
    s.flush().wait().unwrap();
    let b = note_one(&s, 2);
    s.ingest_blob(b, body(&[rec("c", "Send", "w", "")]))
        .wait()
        .unwrap();
    // "c" may not be indexed yet; it is found either way, each record once
    let mut ids: Vec<String> = s
        .records_of_ip("[203.0.113.7]:80", 10)
        .unwrap()
        .into_iter()
        .map(|r| r.header.id)
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["a", "b", "c"]);
}

#[test]
fn invariant_1_group_commit_keeps_each_command_atomic_and_independent() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let ids: Vec<i64> = (0..40).map(|n| note_one(&s, n)).collect();
    // queue everything at once so the writer groups them; one command fails
    let mut replies = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        replies.push(s.ingest_blob(*id, body(&[rec(&format!("r{i}"), "Send", "u", "")])));
    }
    let bad = s.ingest_blob(999_999, body(&[rec("x", "Send", "u", "")]));
    let more = s.ingest_blob(ids[0], body(&[rec("r0", "Send", "u", "")]));
    let stored = |b: &BlobIngest| matches!(b, BlobIngest::Stored(IngestOutcome { new: 1, .. }));
    let outcomes: Vec<BlobIngest> = replies.into_iter().map(|r| r.wait().unwrap()).collect();
    for o in &outcomes[1..] {
        assert!(stored(o), "{o:?}");
    }
    assert!(bad.wait().is_err());
    // The same blob queued twice: preparer threads may hand the two copies to the writer
    // in either order, so exactly one of them stores the record and the other finds the
    // blob finished.
    let again = more.wait().unwrap();
    let first = &outcomes[0];
    assert!(
        (stored(first) && again == BlobIngest::AlreadyFinished)
            || (stored(&again) && *first == BlobIngest::AlreadyFinished),
        "{first:?} / {again:?}"
    );
    assert_eq!(s.record_keys().unwrap().len(), 40);
    assert_eq!(s.stats().unwrap().blobs["done"], 40);
}

/// The write that fails in a round of the group test below.
type BadWrite = Box<dyn FnOnce(&mut writer::Writer) -> Result<()> + Send>;

/// A write that fails halfway inside a transaction group: nothing of its group is
/// committed and every write of the group says so; then, for a while, each write has its
/// own savepoint and the same failure takes nothing else along.
#[test]
fn invariant_1_a_write_failing_halfway_rolls_back_its_group_then_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let gap = |detail: &str| NewGap {
        kind: GapKind::Failed,
        content_type: "Audit.Exchange".into(),
        window_start: None,
        window_end: None,
        content_id: None,
        count: 1,
        detail: detail.into(),
    };
    let stored = || -> Vec<String> {
        let mut d: Vec<String> = s.gaps().unwrap().into_iter().map(|g| g.detail).collect();
        d.sort();
        d
    };
    // A command that holds the writer until the others are queued puts them all in one
    // group, in this order.
    let round = |names: [&str; 2], bad: BadWrite| {
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let gate = s.call(move |_| {
            wait.recv().ok();
            Ok(())
        });
        let (g1, g2) = (gap(names[0]), gap(names[1]));
        let first = s.call(move |w| w.record_gap(T, &g1));
        let bad = s.call(bad);
        let after = s.call(move |w| w.record_gap(T, &g2));
        go.send(()).unwrap();
        (gate.wait(), first.wait(), bad.wait(), after.wait())
    };
    let halfway = || -> BadWrite {
        let bad_gap = gap("half");
        Box::new(move |w| w.fail_halfway(T, &bad_gap))
    };

    let (gate, first, bad, after) = round(["one", "two"], halfway());
    let e = format!("{:#}", bad.unwrap_err());
    assert!(e.contains("failed after writing"), "{e}");
    for r in [gate, first] {
        let e = format!("{:#}", r.unwrap_err());
        assert!(e.contains("nothing of this write was stored"), "{e}");
    }
    // the write queued after the failure waited for the next group
    after.unwrap();
    assert_eq!(stored(), ["two"]);

    let (gate, first, bad, after) = round(["three", "four"], halfway());
    assert!(bad.is_err());
    gate.unwrap();
    first.unwrap();
    after.unwrap();
    assert_eq!(stored(), ["four", "three", "two"]);

    // SQLite itself rolls a transaction back after some errors (I/O, a full disk): the
    // group ends there, and no write after it commits on its own beside the failed ones
    let (gate, first, lost, after) =
        round(["five", "six"], Box::new(|w| w.roll_back_as_sqlite_would()));
    for r in [gate, first, lost] {
        let e = format!("{:#}", r.unwrap_err());
        assert!(e.contains("the database rolled back"), "{e}");
    }
    after.unwrap();
    assert_eq!(stored(), ["four", "six", "three", "two"]);
}

/// A database that fills up in the middle of blobs (what a full disk does): every blob is
/// either answered stored with all its records, or answered with an error and still
/// pending with none of them; once there is room again the same blobs are all stored.
#[test]
fn invariant_1_a_full_database_mid_group_commits_no_half_blob() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let big = "x".repeat(3000);
    let blob_records = |b: usize| -> Vec<Value> {
        (0..40)
            .map(|i| rec(&format!("b{b}r{i}"), "Send", &format!("u{i}@x"), &big))
            .collect()
    };
    let ids: Vec<i64> = (0..30).map(|n| note_one(&s, n)).collect();
    s.call(|w| w.limit_growth(Some(30))).wait().unwrap();
    let replies: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(b, id)| s.ingest_blob(*id, body(&blob_records(b))))
        .collect();
    let outcomes: Vec<_> = replies.into_iter().map(|r| r.wait()).collect();
    let keys: HashSet<String> = s.record_keys().unwrap().into_iter().map(|k| k.1).collect();
    let pending: HashSet<i64> = s
        .pending_blobs(T, ContentType::Exchange, Utc::now(), 1000)
        .unwrap()
        .into_iter()
        .map(|b| b.blob_id)
        .collect();
    let mut failed = 0;
    for (b, o) in outcomes.iter().enumerate() {
        let present = (0..40)
            .filter(|i| keys.contains(&format!("b{b}r{i}")))
            .count();
        match o {
            Ok(BlobIngest::Stored(out)) => {
                assert_eq!(out.new, 40, "blob {b}");
                assert_eq!(present, 40, "blob {b} answered stored");
                assert!(!pending.contains(&ids[b]), "blob {b}");
            }
            Ok(other) => panic!("blob {b}: {other:?}"),
            Err(_) => {
                failed += 1;
                assert_eq!(present, 0, "blob {b} answered failed but left records");
                assert!(pending.contains(&ids[b]), "blob {b} must stay pending");
            }
        }
    }
    assert!(
        failed > 0,
        "the database never filled up: the test proves nothing"
    );
    // room again: the failed blobs go in like any retried blob
    s.call(|w| w.limit_growth(None)).wait().unwrap();
    for (b, id) in ids.iter().enumerate() {
        if pending.contains(id) {
            let o = s.ingest_blob(*id, body(&blob_records(b))).wait().unwrap();
            assert!(
                matches!(o, BlobIngest::Stored(IngestOutcome { new: 40, .. })),
                "{o:?}"
            );
        }
    }
    assert_eq!(s.record_keys().unwrap().len(), 30 * 40);
    assert_eq!(s.stats().unwrap().blobs["done"], 30);
}

#[test]
fn unwritable_data_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("afile");
    std::fs::write(&file, b"x").unwrap();
    let e = Store::open(&file.join("sub"), Arc::new(Detections::empty()))
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("data directory"), "{e:#}");
    let e = Store::open_read_only(dir.path()).err().unwrap();
    assert!(format!("{e:#}").contains("no store"), "{e:#}");
}

#[test]
fn a_second_writer_on_the_same_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _s = open(dir.path());
    let e = Store::open(dir.path(), Arc::new(Detections::empty()))
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("another m365audit"), "{e:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invariant_8_writes_run_on_the_writer_thread_not_on_async_workers() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let (name, in_runtime) = s
        .call(|_| {
            let t = std::thread::current();
            Ok((
                t.name().unwrap_or("").to_string(),
                tokio::runtime::Handle::try_current().is_ok(),
            ))
        })
        .await
        .unwrap();
    assert_eq!(name, "store-writer");
    assert!(
        !in_runtime,
        "the writer thread must not be a runtime thread"
    );
    // an async caller awaits writes without blocking its worker
    let b = s
        .note_listing(T, ContentType::Exchange, t0(), vec![blob_ref(1, t0())])
        .await
        .unwrap();
    assert_eq!(b, 1);
    // reads are blocking: async code runs them on the blocking pool
    let s2 = s.clone();
    let n = tokio::task::spawn_blocking(move || s2.pending_count(T, ContentType::Exchange))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn the_inactivity_monitor_is_stored_and_judged_at_the_time_of_stats() {
    use crate::detect::monitor::{MonitorState, Source};
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    // before any collector ran: nothing to judge, no collector id
    assert!(s.monitor_stats(Utc::now()).unwrap().is_none());
    assert_eq!(s.collector_id().unwrap(), None);
    let b = note_one(&s, 1);
    s.ingest_blob(b, body(&[rec("a", "Send", "alice@x", "")]))
        .wait()
        .unwrap();
    let now = Utc::now();
    let mut state = MonitorState::resume(None, "54321", Duration::hours(1), now);
    state.update(now, &s.monitor_activity("54321").unwrap());
    s.set_status(
        MonitorState::STATUS_KEY,
        serde_json::to_value(&state).unwrap(),
    )
    .wait()
    .unwrap();
    assert_eq!(s.collector_id().unwrap().as_deref(), Some("54321"));
    assert_eq!(s.monitor_state().unwrap(), Some(state));

    let fresh = s.monitor_stats(now).unwrap().unwrap();
    let watched: Vec<&Source> = fresh.sources.iter().map(|st| &st.source).collect();
    assert_eq!(
        watched,
        vec![
            &Source::Workload {
                collector_id: "54321".into(),
                workload: "Exchange".into()
            },
            &Source::ContentType {
                collector_id: "54321".into(),
                content_type: "Audit.Exchange".into()
            },
        ]
    );
    assert_eq!(fresh.alerts, 0, "{fresh:?}");
    // three hours later nothing new arrived: both sources alert, even with no collector
    // running to notice (stats judges at its own time)
    let later = s.monitor_stats(now + Duration::hours(3)).unwrap().unwrap();
    assert_eq!(later.alerts, 2, "{later:?}");
    assert!(
        later
            .sources
            .iter()
            .all(|st| st.reason.contains("no record for")),
        "{later:?}"
    );
    assert!(
        render_stats(&Stats {
            monitor: Some(later),
            ..s.stats().unwrap()
        })
        .contains("ALERT 54321 × Audit.Exchange")
    );
}

/// The rows of `sql`, each as its columns' debug text (for comparisons).
fn rows_of(c: &Connection, sql: &str) -> Vec<String> {
    let mut st = c.prepare(sql).unwrap();
    let n = st.column_count();
    st.query_map([], |r| {
        (0..n)
            .map(|i| {
                r.get::<_, rusqlite::types::Value>(i)
                    .map(|v| format!("{v:?}"))
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map(|v| v.join("|"))
    })
    .unwrap()
    .collect::<rusqlite::Result<Vec<_>>>()
    .unwrap()
}

/// Every UI rollup table equals the GROUP BY over `records` / `hits` it summarizes.
fn assert_rollups_equal_scans(c: &Connection) {
    // Hits with names and text: the table itself before migration 0008, its view after.
    let named: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'hits_named'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let hits = if named == 1 { "hits_named" } else { "hits" };
    let pairs = [
        (
            "SELECT workload, hour, count FROM agg_record_hours ORDER BY 1, 2",
            "SELECT workload, creation_time / 3600, count(*) FROM records GROUP BY 1, 2 \
             ORDER BY 1, 2"
                .to_string(),
        ),
        (
            "SELECT workload, content_type, count, last_ingested FROM agg_record_sources \
             ORDER BY 1, 2",
            "SELECT workload, content_type, count(*), max(ingested_at) FROM records \
             GROUP BY 1, 2 ORDER BY 1, 2"
                .to_string(),
        ),
        (
            "SELECT detection, hour, count, last_seen FROM agg_hit_hours ORDER BY 1, 2",
            format!(
                "SELECT detection, creation_time / 3600, count(*), max(creation_time) \
                 FROM {hits} GROUP BY 1, 2 ORDER BY 1, 2"
            ),
        ),
        (
            "SELECT detection, group_key, count, first_seen, last_seen FROM agg_hit_groups \
             ORDER BY 1, 2",
            format!(
                "SELECT detection, group_key, count(*), min(creation_time), max(creation_time) \
                 FROM {hits} GROUP BY 1, 2 ORDER BY 1, 2"
            ),
        ),
    ];
    for (rollup, scan) in pairs {
        let want = rows_of(c, &scan);
        assert!(!want.is_empty(), "{scan}");
        assert_eq!(rows_of(c, rollup), want, "{rollup}");
    }
}

/// Migration 0004 moves the rollups from triggers into the writer: a store filled by the
/// schema-3 triggers migrates, keeps its rollups, and the writer's per-blob sums (blobs,
/// duplicates, imports, hits of the embedded detections) equal the tables afterwards.
/// Migration 0008 (hits by id, details equal to the key stored once) on the way keeps
/// every hit as it read before.
#[test]
fn rollups_kept_by_the_writer_equal_the_tables_also_after_migrating_a_schema_3_store() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
        db::migrate_to(&c, 3).unwrap();
        c.execute("INSERT INTO tenants (id, name) VALUES (1, 'old')", [])
            .unwrap();
        for i in 0..6i64 {
            let wl = if i % 2 == 0 { "Exchange" } else { "SharePoint" };
            let raw = json!({"Id": format!("old{i}"), "Workload": wl}).to_string();
            let data = zstd::bulk::compress(raw.as_bytes(), 3).unwrap();
            c.execute(
                "INSERT INTO records (tenant, id, creation_time, workload, operation, \
                 record_type, user_id, client_ip, content_type, ingested_at, dict, raw) \
                 VALUES (1, ?1, ?2, ?3, 'Op', 1, 'u', '', ?4, ?5, 0, ?6)",
                params![
                    format!("old{i}"),
                    1_790_000_000 + i * 2000,
                    wl,
                    i % 3,
                    100 + i,
                    data
                ],
            )
            .unwrap();
            let key = format!("{{\"UserId\":\"u{}\"}}", i % 2);
            // every third hit emitted exactly its key (stored once after 0008)
            let details = if i % 3 == 0 { key.clone() } else { "{}".into() };
            let detection = if i % 2 == 0 {
                "authentication"
            } else {
                "mass_download"
            };
            c.execute(
                "INSERT INTO hits (detection, record_rowid, record_id, creation_time, \
                 group_key, details) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    detection,
                    c.last_insert_rowid(),
                    format!("old{i}"),
                    1_790_000_000 + i * 2000,
                    key,
                    details
                ],
            )
            .unwrap();
        }
        assert_rollups_equal_scans(&c);
    }
    let hit_columns = "SELECT id, detection, record_rowid, record_id, creation_time, group_key, \
                       details FROM {} ORDER BY id";
    let old_hits = {
        let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
        rows_of(&c, &hit_columns.replace("{}", "hits"))
    };
    {
        let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
        db::migrate(&c).unwrap();
        assert_eq!(
            rows_of(&c, &hit_columns.replace("{}", "hits_named")),
            old_hits
        );
        let stored_once: i64 = c
            .query_row("SELECT count(*) FROM hits WHERE details IS NULL", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(stored_once, 2, "hits 0 and 3 emitted their key");
    }
    let vars = crate::detect::Vars::default();
    let s = Store::open(dir.path(), Arc::new(Detections::load_embedded(vars))).unwrap();
    let b = note_one(&s, 1);
    let recs: Vec<Value> = (0..30)
        .map(|i| rec(&format!("b{i}"), "Send", &format!("u{}", i % 4), ""))
        .collect();
    s.ingest_blob(b, body(&recs)).wait().unwrap();
    let raws = crate::corpus::synthetic_records(1500, 3);
    s.import_records(T, raws.clone()).wait().unwrap();
    s.import_records(T, raws[..50].to_vec()).wait().unwrap();
    s.flush().wait().unwrap();
    s.with_conn(|c| {
        let v: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
        assert_eq!(v, db::SCHEMA_VERSION);
        let triggers: i64 = c.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'",
            [],
            |r| r.get(0),
        )?;
        assert_eq!(triggers, 0);
        let hits: i64 = c.query_row("SELECT count(*) FROM hits", [], |r| r.get(0))?;
        assert!(hits > 6, "the synthetic records fire detections: {hits}");
        assert_rollups_equal_scans(c);
        Ok(())
    })
    .unwrap();
    assert_eq!(s.stats().unwrap().records.total, 6 + 30 + 1500);
    s.close().unwrap();
}

#[test]
fn stats_measure_lag_to_now_and_say_when_the_collector_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.set_stream_state(
        T,
        ContentType::Exchange,
        StreamState {
            state: "ok".into(),
            last_error: None,
            lag_secs: Some(5),
        },
    )
    .wait()
    .unwrap();
    s.set_status(
        COLLECTOR_STATUS_KEY,
        json!({"state": "running", "since": "2026-11-20T00:00:00.000Z"}),
    )
    .wait()
    .unwrap();
    let running = render_stats(&s.stats().unwrap());
    assert!(
        running.contains("collector          running since 2026-11-20"),
        "{running}"
    );
    assert!(running.contains("state ok "), "{running}");
    // Eleven minutes pass without the collector writing: the lag grows with them.
    let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
    c.execute("UPDATE streams SET updated_at = updated_at - 660", [])
        .unwrap();
    let st = s.stats().unwrap();
    let lag = st.content_types["Audit.Exchange"].lag_secs.unwrap();
    assert!((665..700).contains(&lag), "lag {lag}");
    s.set_status(
        COLLECTOR_STATUS_KEY,
        json!({"state": "stopped", "since": "2026-11-20T01:00:00.000Z"}),
    )
    .wait()
    .unwrap();
    let st = s.stats().unwrap();
    assert_eq!(st.collector.as_ref().unwrap()["state"], json!("stopped"));
    let text = render_stats(&st);
    assert!(
        text.contains("collector          stopped since 2026-11-20T01"),
        "{text}"
    );
    assert!(text.contains("state stopped (last: ok)"), "{text}");
    // A collector killed with SIGKILL leaves "running" behind: its process is gone.
    s.set_status(
        COLLECTOR_STATUS_KEY,
        json!({"state": "running", "since": "2026-11-20T00:00:00.000Z",
            "heartbeat": crate::model::format_api_time(chrono::Utc::now()),
            "pid": 2_000_000_000i64, "machine": super::liveness::machine_id()}),
    )
    .wait()
    .unwrap();
    let st = s.stats().unwrap();
    assert_eq!(st.collector.as_ref().unwrap()["state"], json!("stopped"));
    let text = render_stats(&st);
    assert!(
        text.contains("collector          stopped since")
            && text.contains("(process 2000000000 is gone (killed or crashed))"),
        "{text}"
    );
    assert!(text.contains("state stopped (last: ok)"), "{text}");
    assert_eq!(s.tenant_names().unwrap(), vec![T.to_string()]);
}

#[test]
fn invariant_1_outbox_rows_are_written_with_their_records_while_forwarding_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    // off: records are stored, nothing is queued
    let b1 = note_one(&s, 1);
    s.ingest_blob(b1, body(&[rec("a", "Send", "alice@x", "")]))
        .wait()
        .unwrap();
    assert_eq!(s.outbox_depth().unwrap(), 0);
    assert!(s.outbox_stats().unwrap().is_none(), "never forwarded");
    s.set_forwarding(true).wait().unwrap();
    // on: one row per new record, none for a duplicate, none for a malformed blob
    let b2 = note_one(&s, 2);
    let recs = [
        rec("a", "Send", "alice@x", ""),
        rec("b", "Send", "bob@x", ""),
        rec("c", "Send", "carol@x", ""),
    ];
    s.ingest_blob(b2, body(&recs)).wait().unwrap();
    assert_eq!(s.outbox_depth().unwrap(), 2);
    let b3 = note_one(&s, 3);
    s.ingest_blob(b3, bytes::Bytes::from_static(b"[{\"Id\":"))
        .wait()
        .unwrap();
    assert_eq!(s.outbox_depth().unwrap(), 2);
    // the flag is kept in the store: a reopened store (import, a restart) queues too
    s.close().unwrap();
    let s = open(dir.path());
    s.import_records(T, vec![rec("d", "Send", "dave@x", "").to_string()])
        .wait()
        .unwrap();
    assert_eq!(s.outbox_depth().unwrap(), 3);
    // switched off: rows already queued stay, new records are not queued
    s.set_forwarding(false).wait().unwrap();
    s.import_records(T, vec![rec("e", "Send", "eve@x", "").to_string()])
        .wait()
        .unwrap();
    assert_eq!(s.outbox_depth().unwrap(), 3);
    s.close().unwrap();
}

#[test]
fn invariant_5_outbox_rows_are_deleted_only_when_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let b0 = note_one(&s, 9);
    s.ingest_blob(b0, body(&[rec("old", "Send", "o@x", "")]))
        .wait()
        .unwrap();
    s.set_forwarding(true).wait().unwrap();
    let b1 = note_one(&s, 1);
    let recs: Vec<Value> = (0..5)
        .map(|i| rec(&format!("r{i}"), "Send", "alice@x", "ü \"q\""))
        .collect();
    s.ingest_blob(b1, body(&recs)).wait().unwrap();
    // reading is not sending: batches come in order, as often as asked, raw JSON exact
    let batch = s.outbox_batch(0, 3).unwrap();
    assert_eq!(batch.len(), 3);
    assert_eq!(s.outbox_batch(0, 3).unwrap().len(), 3);
    for (item, r) in batch.iter().zip(&recs) {
        assert_eq!(item.raw.as_deref(), Some(r.to_string().as_str()));
        assert_eq!(item.workload, "Exchange");
    }
    let rest = s.outbox_batch(batch[2].id, 100).unwrap();
    assert_eq!(rest.len(), 2);
    assert!(rest[0].id > batch[2].id);
    // a crash before the acknowledgement: every row is still there
    s.close().unwrap();
    let s = open(dir.path());
    assert_eq!(s.outbox_depth().unwrap(), 5);
    // acknowledged rows go, the others stay; counters say what happened
    s.outbox_ack(
        batch.iter().take(2).map(|b| b.id).collect(),
        vec![batch[2].id],
        vec![],
    )
    .wait()
    .unwrap();
    let left = s.outbox_batch(0, 100).unwrap();
    assert_eq!(
        left.iter().map(|i| i.id).collect::<Vec<_>>(),
        rest.iter().map(|i| i.id).collect::<Vec<_>>()
    );
    let st = s.outbox_stats().unwrap().unwrap();
    assert_eq!((st.depth, st.sent, st.oversized), (2, 2, 1));
    s.outbox_ack(left.iter().map(|i| i.id).collect(), vec![], vec![])
        .wait()
        .unwrap();
    assert_eq!(s.outbox_depth().unwrap(), 0);
    // ids are never reused after the queue ran empty (the forwarder reads "after id")
    s.import_records(T, vec![rec("n", "Send", "n@x", "").to_string()])
        .wait()
        .unwrap();
    assert!(s.outbox_batch(0, 10).unwrap()[0].id > rest[1].id);
    // the record stored before forwarding was on goes only with a backfill, and once
    let since = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    assert_eq!(s.queue_backfill(since).wait().unwrap(), 1);
    assert_eq!(s.queue_backfill(since).wait().unwrap(), 0);
    assert_eq!(s.outbox_depth().unwrap(), 2);
    let raws: Vec<String> = s
        .outbox_batch(0, 10)
        .unwrap()
        .into_iter()
        .filter_map(|i| i.raw)
        .collect();
    assert!(raws.iter().any(|r| r.contains("\"old\"")));
    s.close().unwrap();
}
