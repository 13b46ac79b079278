//! The syslog line of one record: `<14>TIMESTAMP HOSTNAME TAG: JSON\n` (docs/devo.md,
//! The line), the tag of a Workload and the collector-style hostname. Pure functions: no I/O.
//!
//! The JSON is the record exactly as Microsoft sent it (the store keeps those bytes); only
//! a record that carries line breaks between its tokens (an import of pretty-printed JSON)
//! is made compact, because one record must stay one line. Nothing is ever cut: a line
//! over the size cap is reported to the caller, which counts it.

use crate::config::TimestampStyle;
use chrono::{DateTime, Utc};

/// PRI 14: facility user (1), severity info (6).
const PRI: &str = "<14>";
/// Every record's tag starts with this; the lowercase Workload completes it.
pub const TAG_PREFIX: &str = "cloud.office365.management.";
/// The collector SDK's own tag length limit.
const MAX_TAG_LEN: usize = 1024;

/// Why a tag is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("a Devo tag has 2 to 6 dot-separated levels; {0:?} has {1}")]
    Levels(String, usize),
    #[error("a Devo tag takes only a-z, 0-9 and _ in its levels; {0:?} does not")]
    Chars(String),
    #[error("a Devo tag is at most {MAX_TAG_LEN} characters")]
    Length,
}

/// Checks a tag against Devo's rules: 2–6 non-empty levels of `[a-z0-9_]`, ≤ 1024 chars.
pub fn validate_tag(tag: &str) -> Result<(), TagError> {
    if tag.len() > MAX_TAG_LEN {
        return Err(TagError::Length);
    }
    let levels: Vec<&str> = tag.split('.').collect();
    if !(2..=6).contains(&levels.len()) {
        return Err(TagError::Levels(tag.to_string(), levels.len()));
    }
    if levels.iter().any(|l| {
        l.is_empty()
            || !l
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }) {
        return Err(TagError::Chars(tag.to_string()));
    }
    Ok(())
}

/// `cloud.office365.management.<lowercase Workload>`. A Workload with characters a tag
/// cannot hold keeps only the ones it can (so it still lands in one table per Workload);
/// an empty one becomes `unknown`.
pub fn tag_for(workload: &str) -> String {
    let mut level: String = workload
        .chars()
        .filter_map(|c| {
            let c = c.to_ascii_lowercase();
            (c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_').then_some(c)
        })
        .collect();
    if level.is_empty() {
        level.push_str("unknown");
    }
    format!("{TAG_PREFIX}{level}")
}

/// `collector-<id>-<host>`: Devo's collector monitoring splits the id out of `hostchain`
/// with `split(hostchain, "-", 1)`, so the id holds no `-`; the host keeps only
/// characters a syslog HOSTNAME may carry.
pub fn default_hostname(collector_id: &str, host: &str) -> String {
    let clean = |s: &str, dash: bool| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.' || (dash && *c == '-'))
            .collect()
    };
    let id = clean(collector_id, false);
    let host = clean(host.trim(), true);
    let host = if host.is_empty() {
        "m365audit".to_string()
    } else {
        host
    };
    format!("collector-{id}-{host}")
}

/// This machine's host name (Linux), or `m365audit`.
pub fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "m365audit".to_string())
}

/// The header timestamp in the configured style.
pub fn timestamp(style: TimestampStyle, t: DateTime<Utc>) -> String {
    match style {
        TimestampStyle::Collector => t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        TimestampStyle::Bsd => t.format("%b %e %H:%M:%S").to_string(),
        TimestampStyle::Rfc3339 => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    }
}

/// The JSON on one line: unchanged unless it holds a CR or LF, which can only be
/// whitespace between tokens (JSON strings escape them), and is then dropped together
/// with the other whitespace outside strings.
pub fn one_line(raw: &str) -> std::borrow::Cow<'_, str> {
    if memchr::memchr2(b'\n', b'\r', raw.as_bytes()).is_none() {
        return std::borrow::Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let (mut in_str, mut esc) = (false, false);
    for c in raw.chars() {
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Appends the line of one record (with its LF) to `out`; returns false — and appends
/// nothing — when the JSON is longer than `max_json` bytes.
pub fn push_line(
    out: &mut Vec<u8>,
    header_time: &str,
    hostname: &str,
    tag: &str,
    raw: &str,
    max_json: usize,
) -> bool {
    let json = one_line(raw);
    if json.len() > max_json {
        return false;
    }
    out.reserve(PRI.len() + header_time.len() + hostname.len() + tag.len() + json.len() + 5);
    out.extend_from_slice(PRI.as_bytes());
    out.extend_from_slice(header_time.as_bytes());
    out.push(b' ');
    out.extend_from_slice(hostname.as_bytes());
    out.push(b' ');
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(json.as_bytes());
    out.push(b'\n');
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn tags_follow_the_workload_and_devos_rules() {
        assert_eq!(
            tag_for("AzureActiveDirectory"),
            "cloud.office365.management.azureactivedirectory"
        );
        assert_eq!(
            tag_for("MicrosoftTeams"),
            "cloud.office365.management.microsoftteams"
        );
        assert_eq!(tag_for("Power BI"), "cloud.office365.management.powerbi");
        assert_eq!(tag_for(""), "cloud.office365.management.unknown");
        assert_eq!(tag_for("a/../b:c"), "cloud.office365.management.abc");
        for w in ["Exchange", "OneDrive", "x y-z", "", "Ünïcode"] {
            assert_eq!(validate_tag(&tag_for(w)), Ok(()), "{w}");
        }
        assert!(matches!(validate_tag("one"), Err(TagError::Levels(_, 1))));
        assert!(matches!(
            validate_tag("a.b.c.d.e.f.g"),
            Err(TagError::Levels(_, 7))
        ));
        assert!(matches!(validate_tag("a.B"), Err(TagError::Chars(_))));
        assert!(matches!(validate_tag("a..b"), Err(TagError::Chars(_))));
        assert!(matches!(validate_tag("a.b-c"), Err(TagError::Chars(_))));
        assert_eq!(validate_tag(&"a.".repeat(600)), Err(TagError::Length));
    }

    #[test]
    fn hostname_puts_the_collector_id_second_when_split_on_dashes() {
        let h = default_hostname("10365", "appl-01 x=y");
        assert_eq!(h, "collector-10365-appl-01xy");
        assert_eq!(h.split('-').nth(1), Some("10365"));
        assert_eq!(default_hostname("1-2", ""), "collector-12-m365audit");
    }

    #[test]
    fn timestamps_in_each_style() {
        let t = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 1).unwrap()
            + chrono::Duration::milliseconds(123);
        assert_eq!(
            timestamp(TimestampStyle::Collector, t),
            "2024-05-01 10:00:01.123"
        );
        assert_eq!(timestamp(TimestampStyle::Bsd, t), "May  1 10:00:01");
        assert_eq!(
            timestamp(TimestampStyle::Rfc3339, t),
            "2024-05-01T10:00:01.123Z"
        );
    }

    #[test]
    fn a_line_carries_the_json_byte_for_byte() {
        let raw = r#"{"Id":"1","Workload":"Exchange","S":"a\nb \"q\" é"}"#;
        let mut out = Vec::new();
        assert!(push_line(
            &mut out,
            "2024-05-01 10:00:01.123",
            "collector-1-h",
            "cloud.office365.management.exchange",
            raw,
            1 << 20
        ));
        let expected = format!(
            "<14>2024-05-01 10:00:01.123 collector-1-h cloud.office365.management.exchange: {raw}\n"
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn pretty_json_becomes_one_line_and_oversized_is_refused_whole() {
        let raw = "{\n  \"Id\": \"1\",\n  \"S\": \"x y\\n\"\n}";
        assert_eq!(one_line(raw), r#"{"Id":"1","S":"x y\n"}"#);
        let mut out = Vec::new();
        assert!(!push_line(
            &mut out,
            "t",
            "h",
            "a.b",
            &"x".repeat(2000),
            1024
        ));
        assert!(out.is_empty());
    }
}
