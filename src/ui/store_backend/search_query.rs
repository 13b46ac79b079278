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
}
