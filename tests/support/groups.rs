//! Grouped detection results (`detect --format json` and the UI's JSON) in a form two
//! sources can be compared in.

/// Groups as comparable tuples (key text, count, first, last), sorted.
pub fn groups_of(v: &serde_json::Value) -> Vec<(String, u64, i64, i64)> {
    let t = |x: &serde_json::Value| {
        m365audit::model::parse_time(x.as_str().unwrap())
            .unwrap()
            .timestamp()
    };
    let mut g: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["key"].to_string(),
                g["count"].as_u64().unwrap(),
                t(&g["first_seen"]),
                t(&g["last_seen"]),
            )
        })
        .collect();
    g.sort();
    g
}
