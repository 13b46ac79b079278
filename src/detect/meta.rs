//! The `#` header of a detection file: metadata only (title, table, severity, group_by,
//! operations, fields, contains, threshold/window, seed, mitre, description). Pure parsing; it must not
//! compile or run jq.

use super::LoadError;
use crate::model::{TABLE_ALL, TABLE_AUTH};
use serde::Serialize;
use std::fmt;

/// How bad a hit of a detection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    fn parse(s: &str) -> Option<Severity> {
        Some(match s {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of Devo's starter queries a detection implements faithfully or corrects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "query", rename_all = "lowercase")]
pub enum Seed {
    Implements(String),
    Corrects(String),
}

/// A count rule: at least `count` hits with the same group key within `window_secs`
/// (by CreationTime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Threshold {
    pub count: u64,
    pub window_secs: i64,
}

/// The table a detection reads, as the prefilter sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TableSel {
    /// `cloud.office365.management`: every record.
    All,
    /// `auth.all`: sign-in operations.
    Auth,
    /// `cloud.office365.management.<workload>` (lower-case workload).
    Workload(String),
}

/// Everything the header of `queries/<id>.jq` says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Meta {
    /// The file stem.
    pub id: String,
    pub title: String,
    pub table: String,
    pub severity: Severity,
    /// Keys of the grouping (fields of the emitted object, else of the record).
    pub group_by: Vec<String>,
    /// Exact Operation values (or `*` globs) the filter can fire on; empty = any.
    pub operations: Vec<String>,
    /// The top-level fields of the record the filter reads (`# fields`); empty = the whole
    /// record. Candidates are parsed with only these fields (plus the first step of each
    /// `group_by` / `distinct` path); the test suite proves the output is the same.
    pub fields: Vec<Field>,
    /// `# contains`: words (ASCII case ignored) of which the record's JSON text holds at
    /// least one whenever the filter emits or fails; other records skip it unparsed. A test
    /// proves it on every test record, as for `operations`.
    pub contains: Vec<String>,
    pub threshold: Option<Threshold>,
    /// With a threshold: count distinct values of this field (of the hit, else the record)
    /// instead of hits.
    pub distinct: Option<String>,
    pub seed: Option<Seed>,
    pub mitre: Vec<String>,
    pub description: String,
    /// Where it was loaded from (`queries/<id>.jq` or `embedded:<id>.jq`).
    pub source: String,
}

/// One entry of `# fields`: a top-level field, and for a Name/Value array such as
/// `ExtendedProperties[ResultStatusDetail|RequestType]` the entry names the filter reads
/// (its other entries, and elements that are not objects, are left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// None: the whole value.
    pub entries: Option<Vec<String>>,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.entries {
            None => f.write_str(&self.name),
            Some(e) => write!(f, "{}[{}]", self.name, e.join("|")),
        }
    }
}

// as written in the header: `ExtendedProperties[RequestType]`
impl Serialize for Field {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Field {
    /// The whole value of a top-level field.
    pub fn whole(name: &str) -> Field {
        Field {
            name: name.to_string(),
            entries: None,
        }
    }

    fn parse(s: &str) -> Option<Field> {
        let plain = |n: &str| {
            !n.is_empty()
                && !n
                    .chars()
                    .any(|c| c.is_whitespace() || "[]|\"\\".contains(c) || c.is_control())
        };
        match s.split_once('[') {
            None => plain(s).then(|| Field::whole(s)),
            Some((name, rest)) => {
                let inner = rest.strip_suffix(']')?;
                let entries: Vec<String> = inner.split('|').map(|e| e.trim().to_string()).collect();
                (plain(name.trim()) && entries.iter().all(|e| plain(e))).then(|| Field {
                    name: name.trim().to_string(),
                    entries: Some(entries),
                })
            }
        }
    }

    /// The union of two selections of the same field.
    pub(crate) fn merge(&mut self, other: &Field) {
        match (&mut self.entries, &other.entries) {
            (Some(mine), Some(theirs)) => {
                for e in theirs {
                    if !mine.contains(e) {
                        mine.push(e.clone());
                    }
                }
            }
            _ => self.entries = None,
        }
    }
}

const KEYS: &[&str] = &[
    "title",
    "table",
    "severity",
    "group_by",
    "operations",
    "fields",
    "contains",
    "threshold",
    "window",
    "distinct",
    "seed",
    "mitre",
    "description",
];

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses `30s`, `10m`, `1h`, `2d` (a bare number is seconds).
pub(crate) fn parse_duration_secs(s: &str) -> Option<i64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 's') => (&s[..i], 1),
        (i, 'm') => (&s[..i], 60),
        (i, 'h') => (&s[..i], 3600),
        (i, 'd') => (&s[..i], 86_400),
        _ => (s, 1),
    };
    let n: i64 = num.trim().parse().ok()?;
    (n > 0).then_some(n * mult)
}

/// Parses the leading `#` lines of a detection file. `file` names it in errors.
///
/// Header lines are `# key: value`; a line starting with `#` and at least two spaces
/// continues the previous value; a bare `#` is skipped. The header ends at the first line
/// that does not start with `#`.
pub(crate) fn parse_header(id: &str, file: &str, code: &str) -> Result<Meta, LoadError> {
    let err = |line: usize, column: usize, message: String| LoadError {
        file: file.to_string(),
        line,
        column,
        message,
    };
    let mut fields: Vec<(String, String, usize)> = Vec::new();
    for (i, line) in code.lines().enumerate() {
        let lineno = i + 1;
        let Some(rest) = line.strip_prefix('#') else {
            break;
        };
        if rest.trim().is_empty() {
            continue;
        }
        if rest.starts_with("   ") || rest.starts_with('\t') {
            match fields.last_mut() {
                Some((_, v, _)) => {
                    v.push(' ');
                    v.push_str(rest.trim());
                    continue;
                }
                None => {
                    return Err(err(
                        lineno,
                        1,
                        "continuation line before any header key".into(),
                    ));
                }
            }
        }
        let body = rest.trim_start();
        let col = line.len() - body.len() + 1;
        let Some((key, value)) = body.split_once(':') else {
            return Err(err(
                lineno,
                col,
                format!("header line is not `# key: value`: {body:?}"),
            ));
        };
        let key = key.trim();
        if !KEYS.contains(&key) {
            return Err(err(
                lineno,
                col,
                format!(
                    "unknown header key {key:?}; known keys: {}",
                    KEYS.join(", ")
                ),
            ));
        }
        if fields.iter().any(|(k, _, _)| k == key) {
            return Err(err(lineno, col, format!("header key {key:?} given twice")));
        }
        fields.push((key.to_string(), value.trim().to_string(), lineno));
    }
    let get = |k: &str| {
        fields
            .iter()
            .find(|(key, _, _)| key == k)
            .map(|(_, v, l)| (v.as_str(), *l))
    };
    let title = match get("title") {
        Some((v, _)) if !v.is_empty() => v.to_string(),
        _ => return Err(err(1, 1, "missing header key \"title\"".into())),
    };
    let table = match get("table") {
        Some((v, _)) if !v.is_empty() => v.to_string(),
        _ => return Err(err(1, 1, "missing header key \"table\"".into())),
    };
    if let Some((_, l)) = get("table")
        && table_sel(&table).is_none()
    {
        return Err(err(
            l,
            1,
            format!(
                "unknown table {table:?}; use {TABLE_ALL}, {TABLE_ALL}.<workload> or {TABLE_AUTH}"
            ),
        ));
    }
    let severity = match get("severity") {
        None => Severity::Medium,
        Some((v, l)) => Severity::parse(v).ok_or_else(|| {
            err(
                l,
                1,
                format!("unknown severity {v:?}; use info, low, medium, high or critical"),
            )
        })?,
    };
    let threshold = match (get("threshold"), get("window")) {
        (None, None) => None,
        (Some((t, l)), Some((w, lw))) => {
            let count: u64 =
                t.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    err(l, 1, format!("threshold must be a count >= 1, got {t:?}"))
                })?;
            let window_secs = parse_duration_secs(w).ok_or_else(|| {
                err(
                    lw,
                    1,
                    format!("window must look like 30s, 10m, 1h or 1d, got {w:?}"),
                )
            })?;
            Some(Threshold { count, window_secs })
        }
        (Some((_, l)), None) | (None, Some((_, l))) => {
            return Err(err(l, 1, "threshold and window go together".into()));
        }
    };
    let distinct = match get("distinct") {
        None => None,
        Some((_, l)) if threshold.is_none() => {
            return Err(err(l, 1, "distinct needs threshold and window".into()));
        }
        Some((v, _)) => Some(v.to_string()),
    };
    let fields: Vec<Field> = match get("fields") {
        None => Vec::new(),
        Some((v, l)) => {
            let parsed: Option<Vec<Field>> = list(v).iter().map(|f| Field::parse(f)).collect();
            match parsed {
                Some(f) if !f.is_empty() => f,
                _ => {
                    return Err(err(
                        l,
                        1,
                        format!(
                            "fields must list top-level field names, each optionally with the \
                             Name/Value entries it reads (`ExtendedProperties[UserAgent|RequestType]`), got {v:?}"
                        ),
                    ));
                }
            }
        }
    };
    let contains: Vec<String> = get("contains")
        .map(|(v, _)| list(v))
        .unwrap_or_default()
        .into_iter()
        .map(|w| w.to_ascii_lowercase())
        .collect();
    if let Some((v, l)) = get("contains")
        && (contains.is_empty()
            || contains
                .iter()
                .any(|w| w.chars().any(|c| c == '"' || c == '\\' || c.is_control())))
    {
        return Err(err(
            l,
            1,
            format!(
                "contains must list words without quotes, backslashes or control characters, got {v:?}"
            ),
        ));
    }
    let seed = match get("seed") {
        None => None,
        Some((v, l)) => match v.split_once(' ') {
            Some(("implements", q)) => Some(Seed::Implements(q.trim().to_string())),
            Some(("corrects", q)) => Some(Seed::Corrects(q.trim().to_string())),
            _ => {
                return Err(err(
                    l,
                    1,
                    format!("seed must be `implements <id>` or `corrects <id>`, got {v:?}"),
                ));
            }
        },
    };
    Ok(Meta {
        id: id.to_string(),
        title,
        table,
        severity,
        group_by: get("group_by").map(|(v, _)| list(v)).unwrap_or_default(),
        operations: get("operations").map(|(v, _)| list(v)).unwrap_or_default(),
        fields,
        contains,
        threshold,
        distinct,
        seed,
        mitre: get("mitre").map(|(v, _)| list(v)).unwrap_or_default(),
        description: get("description")
            .map(|(v, _)| v.to_string())
            .unwrap_or_default(),
        source: file.to_string(),
    })
}

/// The prefilter form of a table name; None for a name that is not a table.
pub(crate) fn table_sel(table: &str) -> Option<TableSel> {
    if table == TABLE_ALL {
        return Some(TableSel::All);
    }
    if table == TABLE_AUTH {
        return Some(TableSel::Auth);
    }
    let w = table.strip_prefix(TABLE_ALL)?.strip_prefix('.')?;
    (!w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
    .then(|| TableSel::Workload(w.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# title: T\n# table: auth.all\n# severity: high\n# group_by: UserId, ip\n# threshold: 10\n# window: 60m\n# seed: corrects authentication\n# description: first\n#   second\ninclude \"m365\";\n.\n";

    #[test]
    fn parses_a_full_header() {
        let m = parse_header("x", "x.jq", GOOD).unwrap();
        assert_eq!(m.title, "T");
        assert_eq!(m.severity, Severity::High);
        assert_eq!(m.group_by, vec!["UserId", "ip"]);
        assert_eq!(
            m.threshold,
            Some(Threshold {
                count: 10,
                window_secs: 3600
            })
        );
        assert_eq!(m.seed, Some(Seed::Corrects("authentication".into())));
        assert_eq!(m.description, "first second");
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let e = parse_header(
            "x",
            "x.jq",
            "# title: T\n# table: auth.all\n#  colour: red\n.",
        )
        .unwrap_err();
        assert_eq!((e.line, e.column), (3, 4), "{e}");
        assert!(e.message.contains("unknown header key \"colour\""), "{e}");
    }

    #[test]
    fn missing_or_bad_table_is_an_error() {
        let e = parse_header("x", "x.jq", "# title: T\n.").unwrap_err();
        assert!(e.message.contains("missing header key \"table\""), "{e}");
        let e = parse_header("x", "x.jq", "# title: T\n# table: cloud.nope\n.").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unknown table"), "{e}");
    }

    #[test]
    fn threshold_needs_window() {
        let e = parse_header(
            "x",
            "x.jq",
            "# title: T\n# table: auth.all\n# threshold: 5\n.",
        )
        .unwrap_err();
        assert_eq!(e.line, 3);
    }

    #[test]
    fn tables_map_to_prefilters() {
        assert_eq!(table_sel("cloud.office365.management"), Some(TableSel::All));
        assert_eq!(table_sel("auth.all"), Some(TableSel::Auth));
        assert_eq!(
            table_sel("cloud.office365.management.onedrive"),
            Some(TableSel::Workload("onedrive".into()))
        );
        assert_eq!(table_sel("cloud.office365.management."), None);
        assert_eq!(table_sel("cloud.office365.managementx"), None);
        assert_eq!(parse_duration_secs("90"), Some(90));
        assert_eq!(parse_duration_secs("2d"), Some(172_800));
        assert_eq!(parse_duration_secs("0m"), None);
    }
}
