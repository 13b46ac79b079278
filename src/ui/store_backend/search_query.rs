//! A search form as tantivy's query text.

use crate::ui::backend::{SearchRequest, TimeRange};
use chrono::{DateTime, Utc};

/// Quotes a value for tantivy's query parser.
fn quoted(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
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
}
