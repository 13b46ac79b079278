//! A search form as tantivy's query text.

use crate::ui::backend::{SearchRequest, TimeRange};
use chrono::{DateTime, Utc};

/// Quotes a value for tantivy's query parser.
fn quoted(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A free-text query that finds `v` as a phrase: its words in order, as in the record
/// (a user agent, a file name), not each word anywhere.
pub fn phrase(v: &str) -> String {
    quoted(v.trim())
}

/// Builds the tantivy query of a search request: the free text in parentheses, AND each
/// field filter, AND the time range.
pub fn search_query(req: &SearchRequest) -> String {
    let mut parts = Vec::new();
    if !req.text.is_empty() {
        parts.push(format!("({})", req.text));
    }
    for (field, v) in [
        ("user", &req.user),
        ("ip", &req.ip),
        ("operation", &req.operation),
        ("workload", &req.workload),
        ("table", &req.table),
    ] {
        if !v.is_empty() {
            parts.push(format!("{field}:{}", quoted(v)));
        }
    }
    if req.range != TimeRange::default() {
        let t = |x: Option<DateTime<Utc>>| {
            x.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|| "*".into())
        };
        parts.push(format!(
            "time:[{} TO {}}}",
            t(req.range.from),
            t(req.range.to)
        ));
    }
    if parts.is_empty() {
        "*".into()
    } else {
        parts.join(" AND ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_queries_quote_field_values() {
        let req = SearchRequest {
            text: "strategic".into(),
            user: "a\"b@x".into(),
            table: "auth.all".into(),
            ..Default::default()
        };
        assert_eq!(
            search_query(&req),
            r#"(strategic) AND user:"a\"b@x" AND table:"auth.all""#
        );
        assert_eq!(search_query(&SearchRequest::default()), "*");
    }

    #[test]
    fn a_pivot_is_one_phrase() {
        let ua = r#"Mozilla/5.0 (Windows NT 10.0; Win64; x64) "x\y""#;
        assert_eq!(
            phrase(ua),
            r#""Mozilla/5.0 (Windows NT 10.0; Win64; x64) \"x\\y\"""#
        );
        let req = SearchRequest {
            text: phrase("a b"),
            ..Default::default()
        };
        assert_eq!(search_query(&req), r#"("a b")"#);
    }

    /// Property tests of search query parsing over a real store and index: any free text
    /// (the UI's search box, the CLI's `search QUERY`) is answered or refused with a
    /// "bad search query" error, never a panic; any value of a field filter (user, IP,
    /// operation, workload, table) makes a query tantivy accepts, and the hostile values of
    /// the seed corpus `tests/corpus/search/` find exactly their record. `PROPTEST_CASES`
    /// sets the number of generated cases.
    mod proptest_search {
        use super::*;
        use crate::store::Store;
        use proptest::prelude::*;
        use std::sync::OnceLock;

        fn corpus(file: &str) -> Vec<String> {
            let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/corpus/search")
                .join(file);
            serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
        }

        /// One store for every case: a record per corpus value (as its user, operation and
        /// workload), indexed.
        fn store() -> &'static Store {
            static S: OnceLock<(tempfile::TempDir, Store)> = OnceLock::new();
            &S.get_or_init(|| {
                let dir = tempfile::tempdir().unwrap();
                let store = Store::open(
                    &dir.path().join("data"),
                    std::sync::Arc::new(crate::detect::Detections::empty()),
                )
                .unwrap();
                let raws = corpus("field_values.json")
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        serde_json::json!({"Id": format!("r{i}"), "CreationTime": "2026-05-04T09:14:22",
                            "UserId": v, "ClientIP": v, "Operation": v, "Workload": v})
                        .to_string()
                    })
                    .collect();
                store.import_records("t", raws).wait().unwrap();
                store.flush().wait().unwrap();
                (dir, store)
            })
            .1
        }

        fn answered_or_refused(q: &str) -> Result<(), TestCaseError> {
            if let Err(e) = store().search(q, 5) {
                let m = format!("{e:#}");
                // a 400 page and a clear CLI message, not an internal error
                prop_assert!(m.contains("bad search query"), "{q:?}: {m}");
                prop_assert!(e.chain().any(|c| c.is::<crate::UsageError>()), "{q:?}: {m}");
            }
            Ok(())
        }

        fn with_field(i: usize, v: &str) -> SearchRequest {
            let mut req = SearchRequest::default();
            *[
                &mut req.user,
                &mut req.ip,
                &mut req.operation,
                &mut req.workload,
                &mut req.table,
            ][i % 5] = v.to_string();
            req
        }

        #[test]
        fn the_search_corpus_holds() {
            for q in corpus("free_text.json") {
                answered_or_refused(&q).unwrap();
                answered_or_refused(&search_query(&SearchRequest {
                    text: q.clone(),
                    ..Default::default()
                }))
                .unwrap();
            }
            for (i, v) in corpus("field_values.json").iter().enumerate() {
                for f in 0..4 {
                    // the store keeps a client IP without its port (`model::normalize_ip`)
                    let v = if f == 1 {
                        crate::model::normalize_ip(v)
                    } else {
                        v.clone()
                    };
                    let q = search_query(&with_field(f, &v));
                    let r = store()
                        .search(&q, 5)
                        .unwrap_or_else(|e| panic!("{q:?}: {e:#}"));
                    let ids: Vec<&str> = r.hits.iter().map(|h| h.id.as_str()).collect();
                    assert!(
                        ids.contains(&format!("r{i}").as_str()),
                        "{q:?} found {ids:?}"
                    );
                }
            }
        }

        proptest! {
            #[test]
            fn any_free_text_is_answered_or_refused(text in any::<String>()) {
                answered_or_refused(&text)?;
                answered_or_refused(&search_query(&SearchRequest { text, ..Default::default() }))?;
            }

            #[test]
            fn query_syntax_is_answered_or_refused(text in "([a-z*?~^:\"()\\[\\]{}+\\-!\\\\/ ]|AND|OR|NOT|TO|user:|time:|ip:|id:){0,12}") {
                answered_or_refused(&text)?;
                answered_or_refused(&search_query(&SearchRequest { text, ..Default::default() }))?;
            }

            #[test]
            fn any_field_value_makes_a_valid_query(
                v in (any::<char>(), any::<String>()).prop_map(|(c, s)| format!("{c}{s}")),
                field in 0usize..5,
            ) {
                let q = search_query(&with_field(field, &v));
                let r = store().search(&q, 5);
                prop_assert!(r.is_ok(), "{:?}: {:#}", q, r.err().unwrap());
            }
        }
    }
}
