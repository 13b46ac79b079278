//! Plain data shared by every module: content types, blob references, the record header
//! and the table names of Devo's query namespace.
//!
//! This module owns the vocabulary and the conversions between Microsoft's wire names and
//! ours. It must not do I/O, hold state or know about SQLite, HTTP or HTML: everything here
//! is a pure function of its input, so the simulator, the collector, the importer and the
//! detections all agree on what a record's table or content type is.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// Where the web UI listens unless a flag or the config says otherwise (every command and
/// the config's `ui.listen` share this one default).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8365";

/// The data directory of the commands that take `--data`.
pub const DEFAULT_DATA_DIR: &str = "./m365audit-data";

/// The inactivity monitor's default quiet period: Microsoft documents up to 12 hours of
/// latency.
pub const DEFAULT_QUIET_HOURS: i64 = 12;

/// The five content types of the Office 365 Management Activity API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ContentType {
    #[serde(rename = "Audit.AzureActiveDirectory")]
    AzureActiveDirectory,
    #[serde(rename = "Audit.Exchange")]
    Exchange,
    #[serde(rename = "Audit.SharePoint")]
    SharePoint,
    #[serde(rename = "Audit.General")]
    General,
    #[serde(rename = "DLP.All")]
    DlpAll,
}

impl ContentType {
    pub const ALL: [ContentType; 5] = [
        ContentType::AzureActiveDirectory,
        ContentType::Exchange,
        ContentType::SharePoint,
        ContentType::General,
        ContentType::DlpAll,
    ];

    /// This content type's place in [`ContentType::ALL`] (for per-type counters).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Microsoft's name, as used in `contentType=` and in blob metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::AzureActiveDirectory => "Audit.AzureActiveDirectory",
            ContentType::Exchange => "Audit.Exchange",
            ContentType::SharePoint => "Audit.SharePoint",
            ContentType::General => "Audit.General",
            ContentType::DlpAll => "DLP.All",
        }
    }

    /// The Devo template's service key for this content type.
    pub fn service(self) -> &'static str {
        match self {
            ContentType::AzureActiveDirectory => "azure_active_directory",
            ContentType::Exchange => "exchange",
            ContentType::SharePoint => "sharepoint",
            ContentType::General => "general_audit",
            ContentType::DlpAll => "dlp",
        }
    }

    /// Maps a Devo template service key to its content type.
    pub fn from_service(service: &str) -> Option<ContentType> {
        ContentType::ALL
            .into_iter()
            .find(|ct| ct.service() == service)
    }

    /// The `contentId` segment Microsoft uses for this type, e.g. `audit_exchange$Audit_Exchange`.
    pub fn content_id_segment(self) -> &'static str {
        match self {
            ContentType::AzureActiveDirectory => {
                "audit_azureactivedirectory$Audit_AzureActiveDirectory"
            }
            ContentType::Exchange => "audit_exchange$Audit_Exchange",
            ContentType::SharePoint => "audit_sharepoint$Audit_SharePoint",
            ContentType::General => "audit_general$Audit_General",
            ContentType::DlpAll => "dlp_all$DLP_All",
        }
    }

    /// Where Microsoft publishes a record, by its RecordType and Workload
    /// (docs/management-api.md, Routes: DLP record types first, then the workload).
    pub fn for_record(workload: &str, record_type: i64) -> ContentType {
        if matches!(record_type, 11 | 13 | 33 | 63 | 107) {
            return ContentType::DlpAll;
        }
        match workload {
            "AzureActiveDirectory" => ContentType::AzureActiveDirectory,
            "Exchange" => ContentType::Exchange,
            "SharePoint" | "OneDrive" => ContentType::SharePoint,
            _ => ContentType::General,
        }
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ContentType {
    type Err = String;

    /// Accepts Microsoft's name in any casing, as the API does.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ContentType::ALL
            .into_iter()
            .find(|ct| ct.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "unknown content type {s:?}; valid: {}",
                    ContentType::ALL.map(|c| c.as_str()).join(", ")
                )
            })
    }
}

/// One entry of a `subscriptions/content` listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    #[serde(rename = "contentType")]
    pub content_type: String,
    #[serde(rename = "contentId")]
    pub content_id: String,
    #[serde(rename = "contentUri")]
    pub content_uri: String,
    #[serde(rename = "contentCreated")]
    pub content_created: String,
    #[serde(rename = "contentExpiration")]
    pub content_expiration: String,
}

/// The union table every record lands in.
pub const TABLE_ALL: &str = "cloud.office365.management";
/// Devo's union table of authentication records.
pub const TABLE_AUTH: &str = "auth.all";

/// The per-workload table of a record, e.g. `cloud.office365.management.onedrive`.
pub fn workload_table(workload: &str) -> String {
    if workload.is_empty() {
        return TABLE_ALL.to_string();
    }
    format!("{TABLE_ALL}.{}", workload.to_ascii_lowercase())
}

/// Sign-in operations that Devo's `auth.all` union carries for Office 365.
pub fn is_auth_operation(operation: &str) -> bool {
    matches!(
        operation,
        "UserLoggedIn" | "UserLoginFailed" | "UserLoggedOut" | "UserStrongAuthClientAuthNRequired"
    )
}

/// The columns every stored record carries beside its raw JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordHeader {
    pub id: String,
    pub creation_time: DateTime<Utc>,
    pub workload: String,
    pub operation: String,
    pub record_type: i64,
    pub user_id: String,
    /// The client address without port or brackets; empty when the record has none.
    pub client_ip: String,
    pub organization_id: String,
}

/// Why a JSON value cannot be stored as an audit record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record is not a JSON object")]
    NotAnObject,
    #[error("record has no string \"Id\"")]
    MissingId,
    #[error("record {id} has no parsable \"CreationTime\" (got {got})")]
    BadCreationTime { id: String, got: String },
}

impl RecordHeader {
    /// Extracts the header of one raw record, tolerating the shapes of docs/management-api.md
    /// (Record quirks: numbers as strings, CreationTime without zone, ClientIP with port or brackets).
    pub fn from_value(v: &Value) -> Result<RecordHeader, RecordError> {
        let obj = v.as_object().ok_or(RecordError::NotAnObject)?;
        let id = obj
            .get("Id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(RecordError::MissingId)?
            .to_string();
        let ct = obj.get("CreationTime");
        let creation_time = ct
            .and_then(Value::as_str)
            .and_then(parse_time)
            .ok_or_else(|| RecordError::BadCreationTime {
                id: id.clone(),
                got: ct
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "nothing".into()),
            })?;
        let s = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let record_type = match obj.get("RecordType") {
            Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
            Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
            _ => 0,
        };
        let ip_raw = obj
            .get("ClientIP")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .or_else(|| obj.get("ActorIpAddress").and_then(Value::as_str))
            .or_else(|| obj.get("ClientIPAddress").and_then(Value::as_str))
            .unwrap_or("");
        Ok(RecordHeader {
            id,
            creation_time,
            workload: s("Workload"),
            operation: s("Operation"),
            record_type,
            user_id: s("UserId"),
            client_ip: normalize_ip(ip_raw),
            organization_id: s("OrganizationId"),
        })
    }

    /// Every table this record belongs to, the union table first.
    pub fn tables(&self) -> Vec<String> {
        let mut t = vec![TABLE_ALL.to_string()];
        if !self.workload.is_empty() {
            t.push(workload_table(&self.workload));
        }
        if is_auth_operation(&self.operation) {
            t.push(TABLE_AUTH.to_string());
        }
        t
    }

    pub fn content_type(&self) -> ContentType {
        ContentType::for_record(&self.workload, self.record_type)
    }
}

/// Top-level keys [`RecordHeader::from_value`] reads; [`RecordHeader::scan`] keeps only these.
const HEADER_KEYS: [&str; 10] = [
    "Id",
    "CreationTime",
    "Workload",
    "Operation",
    "RecordType",
    "UserId",
    "ClientIP",
    "ActorIpAddress",
    "ClientIPAddress",
    "OrganizationId",
];

/// Why [`RecordHeader::scan`] refused a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("record is not valid JSON: {0}")]
    Json(String),
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// A record's text known to be JSON: it was parsed whole when it arrived (by
/// [`RecordHeader::scan_json`]) or read back from the store, which keeps only records it
/// parsed. Code that holds one may step over parts of it unchecked.
#[derive(Debug, Clone, Copy)]
pub struct JsonText<'a>(&'a [u8]);

impl<'a> JsonText<'a> {
    /// Checks `raw` in full.
    pub fn check(raw: &'a [u8]) -> Result<JsonText<'a>, serde_json::Error> {
        serde_json::from_slice::<serde::de::IgnoredAny>(raw)?;
        Ok(JsonText(raw))
    }

    /// Text the store kept: it parsed every record before storing it (and its codec
    /// gives back the exact bytes).
    pub(crate) fn stored(raw: &'a [u8]) -> JsonText<'a> {
        JsonText(raw)
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
}

impl RecordHeader {
    /// [`RecordHeader::scan`], which parses the whole record, with the record's text then
    /// known to be JSON.
    pub fn scan_json<'a>(
        raw: &'a [u8],
        text: &mut String,
    ) -> Result<(RecordHeader, JsonText<'a>), ScanError> {
        let header = RecordHeader::scan(raw, text)?;
        Ok((header, JsonText(raw)))
    }

    /// Reads one raw record in a single pass without building its tree: the header (by the
    /// very rules of [`RecordHeader::from_value`], applied to the header keys only) and every
    /// string value at any depth appended to `text`, one per line (what the search index
    /// holds). Far cheaper than parsing into a `Value` first; the result is the same.
    /// A lone surrogate escape is read as U+FFFD ([`parse_record`]'s rule), so such a
    /// record is kept, as received, rather than refused.
    pub fn scan(raw: &[u8], text: &mut String) -> Result<RecordHeader, ScanError> {
        let len = text.len();
        Self::scan_strict(raw, text).or_else(|e| match replace_lone_surrogates(raw) {
            Some(fixed) => {
                text.truncate(len);
                Self::scan_strict(&fixed, text)
            }
            None => Err(e),
        })
    }

    fn scan_strict(raw: &[u8], text: &mut String) -> Result<RecordHeader, ScanError> {
        use serde::de::DeserializeSeed as _;
        let mut de = serde_json::Deserializer::from_slice(raw);
        let top = TopLevel { text }
            .deserialize(&mut de)
            .map_err(|e| ScanError::Json(e.to_string()))?;
        de.end().map_err(|e| ScanError::Json(e.to_string()))?;
        let top = top.ok_or(RecordError::NotAnObject)?;
        Ok(RecordHeader::from_value(&Value::Object(top))?)
    }
}

/// The record's top level: header keys kept as values, every string collected.
struct TopLevel<'t> {
    text: &'t mut String,
}

impl<'de> serde::de::DeserializeSeed<'de> for TopLevel<'_> {
    /// The header keys, or None when the record is not an object.
    type Value = Option<serde_json::Map<String, Value>>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for TopLevel<'_> {
    type Value = Option<serde_json::Map<String, Value>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an audit record")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let mut keep = serde_json::Map::new();
        while let Some(key) = m.next_key_seed(HeaderKey)? {
            match key {
                Some(k) => {
                    let v: Value = m.next_value()?;
                    Strings(&mut *self.text).add_value(&v);
                    keep.insert(k.to_string(), v);
                }
                None => m.next_value_seed(Strings(&mut *self.text))?,
            }
        }
        Ok(Some(keep))
    }
    // anything but an object: consume it (so syntax errors still surface), then refuse
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        while s.next_element_seed(Strings(&mut *self.text))?.is_some() {}
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A top-level key: which of [`HEADER_KEYS`] it is, without allocating.
struct HeaderKey;

impl<'de> serde::de::DeserializeSeed<'de> for HeaderKey {
    type Value = Option<&'static str>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for HeaderKey {
    type Value = Option<&'static str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(HEADER_KEYS.iter().copied().find(|k| *k == s))
    }
}

/// Any value below the top level: its strings go to the text, nothing is kept.
struct Strings<'t>(&'t mut String);

impl Strings<'_> {
    fn push(&mut self, s: &str) {
        self.0.push_str(s);
        self.0.push('\n');
    }
    fn add_value(&mut self, v: &Value) {
        match v {
            Value::String(s) => self.push(s),
            Value::Array(a) => a.iter().for_each(|x| self.add_value(x)),
            Value::Object(o) => o.values().for_each(|x| self.add_value(x)),
            _ => {}
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Strings<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Strings<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_str<E>(mut self, s: &str) -> Result<(), E> {
        self.push(s);
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        while m.next_key::<serde::de::IgnoredAny>()?.is_some() {
            m.next_value_seed(Strings(&mut *self.0))?;
        }
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        while s.next_element_seed(Strings(&mut *self.0))?.is_some() {}
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Parses the time forms seen in records and in the API: with or without zone, with or
/// without fractional seconds, date only. A time without zone is UTC.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let bare = s.strip_suffix('Z').unwrap_or(s);
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(bare, fmt) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    NaiveDate::parse_from_str(bare, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Utc.from_utc_datetime(&t))
}

/// Formats a time the way the API writes `contentCreated`: milliseconds and `Z`.
pub fn format_api_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A record's JSON text with every lone UTF-16 surrogate escape (`\uD800`–`\uDFFF` not
/// part of a pair) written as `\uFFFD`, when it has one. `serde_json` refuses such
/// escapes, jq reads them as U+FFFD, and the API may send them inside attacker-chosen
/// values (file or rule names): the store keeps the text as received, and whoever parses a
/// stored record falls back to this so that one such value cannot hide the record from a
/// detection or a page. None: nothing to replace.
pub fn replace_lone_surrogates(raw: &[u8]) -> Option<Vec<u8>> {
    fn hex4(b: &[u8]) -> Option<u16> {
        let s = std::str::from_utf8(b.get(..4)?).ok()?;
        u16::from_str_radix(s, 16).ok()
    }
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    let mut copied = 0;
    while i < raw.len() {
        if raw[i] != b'\\' {
            i += 1;
            continue;
        }
        if raw.get(i + 1) != Some(&b'u') {
            i += 2;
            continue;
        }
        let Some(u) = hex4(&raw[i + 2..]) else {
            i += 2;
            continue;
        };
        let lone = match u {
            0xD800..=0xDBFF => {
                let low = (raw.get(i + 6..i + 8) == Some(b"\\u".as_slice()))
                    .then(|| hex4(&raw[i + 8..]))
                    .flatten();
                if low.is_some_and(|l| (0xDC00..=0xDFFF).contains(&l)) {
                    i += 12;
                    continue;
                }
                true
            }
            0xDC00..=0xDFFF => true,
            _ => false,
        };
        if lone {
            let o = out.get_or_insert_with(|| Vec::with_capacity(raw.len()));
            o.extend_from_slice(&raw[copied..i]);
            o.extend_from_slice(b"\\uFFFD");
            copied = i + 6;
        }
        i += 6;
    }
    let mut o = out?;
    o.extend_from_slice(&raw[copied..]);
    Some(o)
}

/// Parses a stored record's JSON text, reading lone surrogate escapes as U+FFFD (see
/// [`replace_lone_surrogates`]).
pub fn parse_record<T: serde::de::DeserializeOwned>(raw: &[u8]) -> serde_json::Result<T> {
    match serde_json::from_slice(raw) {
        Ok(v) => Ok(v),
        Err(e) => match replace_lone_surrogates(raw) {
            Some(fixed) => serde_json::from_slice(&fixed),
            None => Err(e),
        },
    }
}

/// Formats a time the way records carry `CreationTime`: seconds, no zone.
pub fn format_record_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Strips ports, brackets and the IPv4-mapped prefix from a ClientIP value; `<null>` and
/// other non-addresses come back as they are (trimmed) so nothing is invented.
pub fn normalize_ip(raw: &str) -> String {
    let s = raw.trim();
    if s.is_empty() || s.eq_ignore_ascii_case("<null>") || s.eq_ignore_ascii_case("null") {
        return String::new();
    }
    // "[2001:db8::1]:443" or "[1.2.3.4]:80" or "[::1]"
    let s = if let Some(rest) = s.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if s.matches(':').count() == 1 {
        // IPv4 with port; an IPv6 address always has at least two colons
        s.split(':').next().unwrap_or(s)
    } else {
        s
    };
    let s = s.strip_prefix("::ffff:").unwrap_or(s);
    s.to_string()
}

/// Whether `c` reorders the text around it: the bidi embeddings and overrides
/// (U+202A–202E), isolates (U+2066–2069) and the invisible direction marks (LRM, RLM, ALM).
/// `admin\u{202e}gnp.exe` reads as "adminexe.png".
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// Whether a terminal would act on `c` instead of showing it: C0 controls (bare CR, ESC,
/// BEL, newline, tab…), DEL, C1 controls (U+0080–009F, 8-bit CSI among them) and the bidi
/// controls of [`is_bidi_control`].
pub fn is_terminal_control(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// Attacker-controlled text (any record value, an API error body, a file name) made safe
/// to print on a terminal: every character of [`is_terminal_control`] is shown as an escape
/// (`\n`, `\t`, `\r`, else `\u{1b}`, `\u{202e}`…), everything else is kept, so an analyst sees
/// what the record holds and no escape sequence, carriage return or direction override
/// reaches the terminal. Borrowed when there is nothing to escape. Every human-readable
/// output of record values goes through this one function.
pub fn terminal_safe(s: &str) -> std::borrow::Cow<'_, str> {
    escape_each(s, is_terminal_control, |c, out| match c {
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
    })
}

/// `s` with every character `hit` picks written by `write` instead (borrowed when none is).
fn escape_each(
    s: &str,
    hit: impl Fn(char) -> bool,
    write: impl Fn(char, &mut String),
) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(&hit) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if hit(c) {
            write(c, &mut out);
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// [`terminal_safe`] for a message of several lines that we laid out (an error with its
/// excerpt): the line breaks stay, everything else in each line is escaped.
pub fn terminal_safe_lines(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && is_terminal_control(c)) {
        return std::borrow::Cow::Borrowed(s);
    }
    let lines: Vec<std::borrow::Cow<'_, str>> = s.split('\n').map(terminal_safe).collect();
    std::borrow::Cow::Owned(lines.join("\n"))
}

/// JSON text (a document we serialized, or a jq program's output) made safe to print on a
/// terminal without changing the value it holds: every character of [`is_terminal_control`]
/// but the whitespace between tokens (`\n`, `\t`, `\r`) becomes a `\uXXXX` escape. A
/// serializer leaves DEL, C1 controls and bidi overrides raw inside strings, the only place
/// JSON allows them, and there the escape reads back as the same character. Every JSON
/// output of record values to stdout goes through this one function.
pub fn json_terminal_safe(s: &str) -> std::borrow::Cow<'_, str> {
    escape_each(
        s,
        |c| is_terminal_control(c) && !matches!(c, '\n' | '\t' | '\r'),
        // every such character is in the Basic Multilingual Plane: four hex digits
        |c, out| out.push_str(&format!("\\u{:04x}", c as u32)),
    )
}

/// A CSV cell made of attacker-controlled text, for spreadsheets: controls escaped as by
/// [`terminal_safe`] (a CSV is often looked at with `cat`, and a raw ESC or CR in a cell
/// is no value anyone needs), and a cell that would start a formula (`=`, `+`, `-`, `@`)
/// prefixed with `'` so Excel and LibreOffice show it as text.
pub fn csv_safe(s: &str) -> std::borrow::Cow<'_, str> {
    let t = terminal_safe(s);
    if t.starts_with(['=', '+', '-', '@']) {
        std::borrow::Cow::Owned(format!("'{t}"))
    } else {
        t
    }
}

/// Text with every bidi control replaced by a visible marker (`⟨U+202E⟩`), for pages: HTML
/// escaping keeps the markup safe but a browser still obeys direction overrides.
pub fn bidi_visible(s: &str) -> std::borrow::Cow<'_, str> {
    escape_each(s, is_bidi_control, |c, out| {
        out.push_str(&format!("\u{27e8}U+{:04X}\u{27e9}", c as u32));
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_content_type_index_is_its_place_in_all() {
        for (i, ct) in super::ContentType::ALL.into_iter().enumerate() {
            assert_eq!(ct.index(), i, "{}", ct.as_str());
        }
    }

    #[test]
    fn lone_surrogate_escapes_are_read_as_replacement_characters() {
        let r =
            |s: &str| replace_lone_surrogates(s.as_bytes()).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(r(r#"{"a":"x\ud83d\ude00y"}"#), None, "a pair stays");
        assert_eq!(
            r(r#"{"a":"\\ud800"}"#),
            None,
            "an escaped backslash is no escape"
        );
        assert_eq!(r(r#"{"a":"\ud800"}"#).as_deref(), Some(r#"{"a":"\uFFFD"}"#));
        assert_eq!(
            r(r#"{"a":"\uDC00\ud800\ud800\udc00\ud8"}"#).as_deref(),
            Some(r#"{"a":"\uFFFD\uFFFD\ud800\udc00\ud8"}"#)
        );
        let v: Value = parse_record(br#"{"a":"x\udbffz"}"#).unwrap();
        assert_eq!(v["a"], "x\u{FFFD}z");
        assert!(parse_record::<Value>(b"{").is_err());
    }

    #[test]
    fn terminal_safe_escapes_every_control_and_keeps_the_rest() {
        use super::terminal_safe;
        assert!(matches!(
            terminal_safe("alice@contoso.com ü 日本"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            terminal_safe("a\u{1b}[2K\u{1b}[1Ab"),
            "a\\u{1b}[2K\\u{1b}[1Ab"
        );
        assert_eq!(
            terminal_safe("x\u{1b}]0;pwned\u{7}"),
            "x\\u{1b}]0;pwned\\u{7}"
        );
        assert_eq!(terminal_safe("ok\rfake"), "ok\\rfake");
        assert_eq!(
            terminal_safe("a\u{7f}\u{9b}\u{85}b"),
            "a\\u{7f}\\u{9b}\\u{85}b"
        );
        assert_eq!(terminal_safe("l1\nl2\tx\0"), "l1\\nl2\\tx\\u{0}");
        for c in [
            '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}',
        ] {
            let s = format!("admin{c}gnp.exe");
            let safe = terminal_safe(&s);
            assert_eq!(safe, format!("admin\\u{{{:x}}}gnp.exe", c as u32));
            assert!(!safe.chars().any(super::is_terminal_control));
        }
        assert_eq!(super::terminal_safe_lines("a\u{1b}\nb\r"), "a\\u{1b}\nb\\r");
        assert_eq!(super::csv_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(super::csv_safe("-1+2"), "'-1+2");
        assert_eq!(super::csv_safe("a\u{1b}[2K\rb"), "a\\u{1b}[2K\\rb");
        assert_eq!(super::csv_safe("\ta"), "\\ta");
        assert_eq!(
            super::bidi_visible("admin\u{202e}gnp.exe"),
            "admin\u{27e8}U+202E\u{27e9}gnp.exe"
        );
    }

    #[test]
    fn json_terminal_safe_escapes_what_a_terminal_obeys_and_keeps_the_value() {
        let v = serde_json::json!({"u": "a\u{1b}[2K\r\u{7f}\u{9b}31m\u{202e}gnp.exe\u{2066}é😀", "n": 1});
        let compact = v.to_string();
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        for text in [compact, pretty] {
            let safe = super::json_terminal_safe(&text);
            let raw = safe
                .chars()
                .find(|&c| super::is_terminal_control(c) && !matches!(c, '\n' | ' '));
            assert_eq!(raw, None, "{safe:?}");
            let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
            assert_eq!(back, v);
        }
        assert!(super::json_terminal_safe(r#"{"a":"\u202e"}"#).contains(r"\u202e"));
        assert!(matches!(
            super::json_terminal_safe(r#"{"a":"plain é"}"#),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    use super::*;

    #[test]
    fn terminal_safe_escapes_an_escape_sequence_and_a_newline() {
        assert_eq!(terminal_safe("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\n");
        assert_eq!(terminal_safe("plain"), "plain");
    }
    use serde_json::json;

    /// Every string value of `v`, sorted (the order of the text lines is not part of the
    /// contract: the search index sees a bag of words).
    fn strings_of(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|x| strings_of(x, out)),
            Value::Object(o) => o.values().for_each(|x| strings_of(x, out)),
            _ => {}
        }
    }

    #[test]
    fn scan_reads_the_same_header_and_strings_as_a_full_parse() {
        let records = [
            r#"{"Id":"a1","CreationTime":"2026-11-20T10:00:00","Workload":"Exchange","Operation":"Send","RecordType":"2","UserId":"u@x.com","ClientIP":"[2001:db8::1]:443","OrganizationId":"o","Item":{"Subject":"Q3 \"plan\" \u00e9","Attachments":[{"Name":"a.pdf","Size":3},{"Name":"b\nc.docx"}]},"Flag":true,"N":null}"#,
            r#"{"CreationTime":"2026-11-20T10:00:00Z","Id":"a2","ActorIpAddress":"203.0.113.7","ExtendedProperties":[{"Name":"ResultStatusDetail","Value":"Redirect"}],"RecordType":15,"Operation":"UserLoggedIn","Workload":"AzureActiveDirectory","UserId":"x"}"#,
            r#"{"Id":"a3","CreationTime":"2026-11-20","Op\u0065ration":"escaped key","Deep":[[[["x"]]],{"a":{"b":{"c":"y"}}}],"ClientIPAddress":"198.51.100.2:1234"}"#,
            r#"{"Id":"dup","Id":"a4","CreationTime":"2026-11-20T10:00:00","Workload":"W","Workload":"SharePoint"}"#,
        ];
        for raw in records {
            let v: Value = serde_json::from_str(raw).unwrap();
            let mut text = String::new();
            let scanned = RecordHeader::scan(raw.as_bytes(), &mut text).unwrap();
            assert_eq!(scanned, RecordHeader::from_value(&v).unwrap(), "{raw}");
            let mut want = Vec::new();
            strings_of(&v, &mut want);
            want.sort();
            let mut got: Vec<String> = text.split_terminator('\n').map(str::to_string).collect();
            got.sort();
            // a key given twice keeps its last value in a parse; scan indexes both
            if raw.contains(r#""Id":"dup""#) {
                got.retain(|s| s != "dup" && s != "W");
            }
            // "b\nc.docx" spans two lines in the text
            if raw.contains("b\\nc.docx") {
                want = want
                    .iter()
                    .flat_map(|s| s.split('\n').map(str::to_string))
                    .collect();
                want.sort();
            }
            assert_eq!(got, want, "{raw}");
        }
    }

    #[test]
    fn only_string_values_are_indexed_text() {
        let mut s = String::new();
        let raw =
            r#"{"Id":"i","CreationTime":"2026-11-20","A":"x y","B":[1,"z",{"C":"w"}],"D":true}"#;
        RecordHeader::scan(raw.as_bytes(), &mut s).unwrap();
        assert_eq!(s, "i\n2026-11-20\nx y\nz\nw\n");
    }

    #[test]
    fn scan_refuses_what_a_full_parse_refuses() {
        let mut t = String::new();
        for (raw, why) in [
            ("[1,2]", "not a JSON object"),
            ("\"x\"", "not a JSON object"),
            (
                "{\"CreationTime\":\"2026-11-20T10:00:00\"}",
                "no string \"Id\"",
            ),
            (
                "{\"Id\":\"a\",\"CreationTime\":\"yesterday\"}",
                "no parsable \"CreationTime\"",
            ),
            ("{\"Id\":\"a\",", "not valid JSON"),
            ("{\"Id\":\"a\"} trailing", "not valid JSON"),
        ] {
            let e = RecordHeader::scan(raw.as_bytes(), &mut t)
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{raw}: {e}");
        }
    }

    #[test]
    fn content_type_round_trips_and_ignores_case() {
        for ct in ContentType::ALL {
            assert_eq!(ct.as_str().parse::<ContentType>().unwrap(), ct);
            assert_eq!(
                ct.as_str().to_lowercase().parse::<ContentType>().unwrap(),
                ct
            );
            assert_eq!(ContentType::from_service(ct.service()), Some(ct));
        }
        assert!("Audit.Nope".parse::<ContentType>().is_err());
    }

    #[test]
    fn header_tolerates_real_shapes() {
        let v = json!({"Id": "a", "CreationTime": "2026-05-04T09:14:22", "RecordType": "15",
            "Operation": "UserLoginFailed", "Workload": "AzureActiveDirectory",
            "ClientIP": "[2001:db8::abcd]:12345", "UserId": "u@x"});
        let h = RecordHeader::from_value(&v).unwrap();
        assert_eq!(h.record_type, 15);
        assert_eq!(h.client_ip, "2001:db8::abcd");
        assert_eq!(
            h.tables(),
            vec![
                "cloud.office365.management",
                "cloud.office365.management.azureactivedirectory",
                "auth.all"
            ]
        );
        assert_eq!(h.content_type(), ContentType::AzureActiveDirectory);
    }

    #[test]
    fn header_rejects_records_without_id_or_time() {
        assert_eq!(
            RecordHeader::from_value(&json!({"CreationTime": "2026-01-01T00:00:00"})),
            Err(RecordError::MissingId)
        );
        assert!(matches!(
            RecordHeader::from_value(&json!({"Id": "x", "CreationTime": "yesterday"})),
            Err(RecordError::BadCreationTime { .. })
        ));
        assert_eq!(
            RecordHeader::from_value(&json!([1])),
            Err(RecordError::NotAnObject)
        );
    }

    #[test]
    fn ip_forms_normalize() {
        for (raw, want) in [
            ("1.2.3.4", "1.2.3.4"),
            ("1.2.3.4:12345", "1.2.3.4"),
            ("[1.2.3.4]:12345", "1.2.3.4"),
            ("::ffff:1.2.3.4", "1.2.3.4"),
            ("[2001:db8::abcd]:12345", "2001:db8::abcd"),
            ("::1", "::1"),
            ("", ""),
            ("<null>", ""),
        ] {
            assert_eq!(normalize_ip(raw), want, "{raw}");
        }
    }

    #[test]
    fn time_forms_parse() {
        for s in [
            "2026-05-04",
            "2026-05-04T09:14",
            "2026-05-04T09:14:22",
            "2026-05-04T09:14:22.123",
            "2026-05-04T09:14:22Z",
            "2026-05-04T09:14:22.123456789Z",
            "2026-05-04T09:14:22+00:00",
        ] {
            assert!(parse_time(s).is_some(), "{s}");
        }
        let t = parse_time("2026-05-04T09:14:22.5Z").unwrap();
        assert_eq!(format_api_time(t), "2026-05-04T09:14:22.500Z");
        assert_eq!(format_record_time(t), "2026-05-04T09:14:22");
    }

    /// Property: `RecordHeader::scan` (one pass, no tree) reads the same header, or refuses
    /// for the same reason, as `RecordHeader::from_value` on the parsed record, for records
    /// with every header field in the shapes the API and exports use and some it should not.
    /// `PROPTEST_CASES` sets the number of cases.
    mod proptest_record_header {
        use super::super::RecordHeader;
        use proptest::prelude::*;
        use serde_json::{Value, json};

        fn maybe(s: impl Strategy<Value = Value>) -> impl Strategy<Value = Option<Value>> {
            prop::option::weighted(0.85, s)
        }

        fn text() -> impl Strategy<Value = Value> {
            prop_oneof![
                "[a-zA-Z0-9@.\\- ]{0,12}".prop_map(Value::String),
                any::<String>().prop_map(Value::String),
                any::<i64>().prop_map(Value::from),
                Just(Value::Null),
                Just(json!(["x"])),
            ]
        }

        fn record() -> impl Strategy<Value = Value> {
            let time = prop_oneof![
                Just(json!("2026-05-04T09:14:22")),
                Just(json!("2026-05-04T09:14:22.123Z")),
                Just(json!("2026-05-04T09:14:22+02:00")),
                Just(json!("2026-05-04")),
                Just(json!("2026-05-04 09:14:22.5")),
                Just(json!("not a time")),
                Just(json!(1_777_000_000)),
                "[0-9T:.Z-]{0,24}".prop_map(Value::String),
            ];
            let ip = prop_oneof![
                Just(json!("203.0.113.7:443")),
                Just(json!("[2001:db8::1]:443")),
                Just(json!("::ffff:203.0.113.7")),
                Just(json!("<null>")),
                text(),
            ];
            let rtype = prop_oneof![
                any::<i64>().prop_map(Value::from),
                "[0-9]{1,3}".prop_map(Value::String),
                Just(json!(1.5)),
                text(),
            ];
            (
                maybe(text()),
                maybe(time),
                maybe(text()),
                maybe(text()),
                maybe(rtype),
                maybe(text()),
                maybe(ip),
                maybe(text()),
                prop::collection::btree_map("[A-Za-z]{1,8}", text(), 0..4),
            )
                .prop_map(|(id, t, w, op, rt, user, ip, org, extra)| {
                    let mut o = serde_json::Map::new();
                    for (k, v) in extra {
                        o.insert(k, v);
                    }
                    for (k, v) in [
                        ("Id", id),
                        ("CreationTime", t),
                        ("Workload", w),
                        ("Operation", op),
                        ("RecordType", rt),
                        ("UserId", user),
                        ("ClientIP", ip),
                        ("OrganizationId", org),
                    ] {
                        if let Some(v) = v {
                            o.insert(k.to_string(), v);
                        }
                    }
                    Value::Object(o)
                })
        }

        proptest! {
            #[test]
            fn scan_reads_what_from_value_reads(r in record()) {
                let raw = r.to_string();
                let mut text = String::new();
                let scanned = RecordHeader::scan(raw.as_bytes(), &mut text);
                let parsed: Value = serde_json::from_str(&raw).unwrap();
                match (scanned, RecordHeader::from_value(&parsed)) {
                    (Ok(a), Ok(b)) => prop_assert_eq!(a, b, "{}", raw),
                    (Err(super::super::ScanError::Record(a)), Err(b)) => {
                        prop_assert_eq!(a, b, "{}", raw)
                    }
                    (a, b) => prop_assert!(false, "{raw}: scan {a:?}, from_value {b:?}"),
                }
            }
        }
    }
}
