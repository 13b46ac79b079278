//! The appliance configuration: Devo's Microsoft 365 collector parameters template exactly
//! as the guide prints it (`inputs.office365.{credentials,enabled,id,services}`), plus the
//! documented extensions of ARCHITECTURE.md §4 (`cloud`, `login_url`, `api_url`,
//! `backfill_hours`, `poll_interval_secs`, `overlap_secs`, `max_concurrency`,
//! `requests_per_minute`, `quiet_hours`, `auth_version`, `token_auth`, `max_window_secs`,
//! `resource`, `client_secret_expires`) and the
//! top-level `outputs` and `ui` objects.
//!
//! This module owns parsing, validation and the sovereign-cloud endpoint table. It reads the
//! config file and any `{"file": …}` / `{"env": …}` secret, and nothing else: it must not
//! contact the network. Every error it returns wraps [`crate::UsageError`] (exit code 2) and
//! names the JSON path at fault; a JSON syntax error names line, column and the likely fix
//! (the guide's own template is missing a comma). Secrets live in [`Secret`], whose `Debug`
//! and `Display` print `<redacted>`, so no error, log line or `{:?}` can show one.

//!
//! # Reference
//!
//! ```json
//! { "inputs": { "office365": {
//!     "credentials": { "client_id": "<CLIENT_ID>", "client_secret": "<CLIENT_SECRET>",
//!                      "tenant_id": "<TENANT_ID>" },
//!     "enabled": true,
//!     "id": "12345",
//!     "services": { "azure_active_directory": {}, "general_audit": {}, "exchange": {},
//!                   "sharepoint": {}, "dlp": {} } } },
//!   "outputs": { "devo": { … } },
//!   "ui": { "listen": "127.0.0.1:8365", "token": { "env": "M365AUDIT_UI_TOKEN" } } }
//! ```
//!
//! | key (in `inputs.office365` unless noted) | meaning | default |
//! |---|---|---|
//! | `credentials.tenant_id` | Directory (tenant) ID, a GUID | required |
//! | `credentials.client_id` | Application (client) ID | required |
//! | `credentials.client_secret` | the secret's *Value*: a string, `{"env": "VAR"}` or `{"file": "PATH"}` (relative to the config file) | required |
//! | `credentials.client_secret_expires` or `client_secret_expires` | `"YYYY-MM-DD"`; `check`, `stats` and the UI count the days left | none |
//! | `enabled` | `false` keeps the collector off | `true` |
//! | `id` | collector id, digits (the guide asks for five); `$collector_id` in detections | required |
//! | `services` | keys `azure_active_directory` → Audit.AzureActiveDirectory, `general_audit` → Audit.General, `exchange` → Audit.Exchange, `sharepoint` → Audit.SharePoint, `dlp` → DLP.All; values `{}` | required |
//! | `cloud` | `commercial`, `gcc`, `gcc_high`, `dod` (login and API hosts of §2.4) | `commercial` |
//! | `login_url`, `api_url` | base URL overrides (the practice tenant); `http://` only for loopback | from `cloud` |
//! | `resource` | token audience override | the cloud's API host |
//! | `auth_version` | `"v2"` (`scope=…/.default`) or `"v1"` (`resource=`) | `"v2"` |
//! | `token_auth` | how the client credentials reach the token endpoint: `"post"` (in the form body, `client_secret_post`) or `"basic"` (HTTP Basic, `client_secret_basic`) | `"post"` |
//! | `max_window_secs` | longest listing window the API accepts, 60–86400 (some proxies and doubles allow less than Microsoft's 24 h) | 86400 |
//! | `publisher_identifier` | `PublisherIdentifier` GUID sent on every request | `tenant_id` |
//! | `backfill_hours` | how far back the first run starts, 1–168 | 168 |
//! | `poll_interval_secs` | pause between polls, 1–86400 | 60 |
//! | `overlap_secs` | window re-listed every poll for late-listed blobs, 0–86400 | 7200 |
//! | `max_concurrency` | requests in flight, 1–256 | 8 |
//! | `requests_per_minute` | per-tenant request budget (Microsoft's baseline is 2000) | 1000 |
//! | `quiet_hours` | inactivity monitor: alert when a workload or content type has been quiet this long, 1–168 | 12 |
//! | `ui.listen` (top level) | UI address | `127.0.0.1:8365` |
//! | `ui.token` (top level) | token the UI requires; a secret (string / env / file) | none |
//! | `outputs.devo` (top level) | Devo forwarding settings, kept for the forwarder | none |
//!
//! Unknown keys are errors (a typo must not silently fall back to a default).

use crate::UsageError;
use crate::model::ContentType;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A secret value (client secret, UI token, Devo key). `Debug`/`Display` never show it;
/// [`Secret::expose`] is the one way to read it, used only where it is put on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret's value. Call only to put it on the wire (token request, auth check).
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Microsoft clouds with their own login and Management API hosts (management-api.md §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cloud {
    Commercial,
    Gcc,
    GccHigh,
    Dod,
}

impl Cloud {
    pub const ALL: [Cloud; 4] = [Cloud::Commercial, Cloud::Gcc, Cloud::GccHigh, Cloud::Dod];

    pub fn name(self) -> &'static str {
        match self {
            Cloud::Commercial => "commercial",
            Cloud::Gcc => "gcc",
            Cloud::GccHigh => "gcc_high",
            Cloud::Dod => "dod",
        }
    }

    /// The login authority (token endpoint base).
    pub fn login_url(self) -> &'static str {
        match self {
            Cloud::Commercial | Cloud::Gcc => "https://login.microsoftonline.com",
            Cloud::GccHigh | Cloud::Dod => "https://login.microsoftonline.us",
        }
    }

    /// The Management Activity API base URL; also the token resource / scope audience.
    pub fn api_url(self) -> &'static str {
        match self {
            Cloud::Commercial => "https://manage.office.com",
            Cloud::Gcc => "https://manage-gcc.office.com",
            Cloud::GccHigh => "https://manage.office365.us",
            Cloud::Dod => "https://manage.protection.apps.mil",
        }
    }
}

/// Which token endpoint to use: v2 (`scope=<resource>/.default`, default) or v1 (`resource=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthVersion {
    V1,
    V2,
}

/// How the client credentials reach the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuth {
    /// `client_id` and `client_secret` in the form body (`client_secret_post`).
    Post,
    /// `Authorization: Basic` (`client_secret_basic`), which Microsoft also accepts and
    /// some proxies and doubles of the API require.
    Basic,
}

/// Defaults of the extensions (documented in the README's config reference).
pub const DEFAULT_BACKFILL_HOURS: u32 = 168;
pub const MAX_BACKFILL_HOURS: u32 = 168;
pub const DEFAULT_POLL_INTERVAL_SECS: u64 = 60;
pub const DEFAULT_OVERLAP_SECS: u64 = 7200;
/// Microsoft's longest listing window.
pub const DEFAULT_MAX_WINDOW_SECS: u64 = 86_400;
pub const DEFAULT_MAX_CONCURRENCY: usize = 8;
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 1000;
pub const DEFAULT_UI_LISTEN: &str = "127.0.0.1:8365";

/// `inputs.office365`: one tenant's collector.
#[derive(Debug, Clone)]
pub struct Office365 {
    /// The Devo template's `id`: digits (the guide asks for five). Names the collector in
    /// the UI, in detections (`$collector_id`) and in the Devo hostname.
    pub collector_id: String,
    pub enabled: bool,
    /// The tenant GUID (the API path requires a GUID).
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// When the client secret expires (for "days until the secret expires"), if known.
    pub client_secret_expires: Option<NaiveDate>,
    /// The content types of `services`, in [`ContentType::ALL`] order, without duplicates.
    pub content_types: Vec<ContentType>,
    pub cloud: Cloud,
    /// Token endpoint base, no trailing slash (cloud default or `login_url`).
    pub login_url: String,
    /// Management API base, no trailing slash (cloud default or `api_url`).
    pub api_url: String,
    /// The token audience: `resource` for v1, `<resource>/.default` for v2. The cloud's
    /// API host unless `resource` overrides it (an `api_url` override does not change it).
    pub resource: String,
    pub auth_version: AuthVersion,
    pub token_auth: TokenAuth,
    /// `PublisherIdentifier` sent on every request; the tenant id unless overridden.
    pub publisher_identifier: String,
    pub backfill_hours: u32,
    pub poll_interval_secs: u64,
    pub overlap_secs: u64,
    /// The longest listing window the API accepts (24 h at Microsoft).
    pub max_window_secs: u64,
    pub max_concurrency: usize,
    pub requests_per_minute: u32,
    /// The inactivity monitor's quiet period (the guide's "Monitor It").
    pub quiet_hours: u32,
}

impl Office365 {
    /// Days from `now` until the client secret expires (negative once expired), if known.
    pub fn days_until_secret_expires(&self, now: DateTime<Utc>) -> Option<i64> {
        self.client_secret_expires
            .map(|d| (d - now.date_naive()).num_days())
    }
}

/// `ui`: where the web UI listens and the token it requires, if any.
#[derive(Debug, Clone)]
pub struct UiConfig {
    pub listen: SocketAddr,
    pub token: Option<Secret>,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            listen: DEFAULT_UI_LISTEN.parse().unwrap_or_else(|_| {
                SocketAddr::from(([127, 0, 0, 1], 8365)) // unreachable: the constant parses
            }),
            token: None,
        }
    }
}

/// `outputs.devo`: kept as given for the forwarder (a later issue). `Debug` shows only the
/// keys, because the object may hold a key or a certificate.
#[derive(Clone)]
pub struct DevoOutput {
    pub raw: Map<String, Value>,
}

impl fmt::Debug for DevoOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevoOutput")
            .field("keys", &self.raw.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub devo: Option<DevoOutput>,
}

/// The whole configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    pub office365: Office365,
    pub ui: UiConfig,
    pub outputs: Outputs,
    /// Where it came from (the file path, or a test's name).
    pub origin: String,
    /// Things that are accepted but probably not what the user wants (printed by `check`).
    pub warnings: Vec<String>,
}

/// Reads and validates a config file. Errors wrap [`UsageError`].
pub fn load(path: &Path) -> anyhow::Result<Config> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("config {origin}: cannot read: {e}")))?;
    parse_in(&text, &origin, path.parent())
}

/// Parses and validates config text; `origin` names it in messages. Relative
/// `{"file": …}` secrets resolve against the current directory.
pub fn parse(text: &str, origin: &str) -> anyhow::Result<Config> {
    parse_in(text, origin, None)
}

fn parse_in(text: &str, origin: &str, base: Option<&Path>) -> anyhow::Result<Config> {
    // Editors on Windows like to save a byte-order mark; JSON has none.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let root: Value = serde_json::from_str(text).map_err(|e| {
        UsageError(format!(
            "config {origin}: {}",
            describe_json_error(text, &e)
        ))
    })?;
    let mut v = Validator {
        errors: Vec::new(),
        warnings: Vec::new(),
        base: base.map(Path::to_path_buf),
    };
    let cfg = v.config(&root, origin);
    if !v.errors.is_empty() {
        let mut msg = format!("config {origin}: ");
        if v.errors.len() == 1 {
            msg.push_str(&v.errors[0]);
        } else {
            msg.push_str(&format!("{} problems:", v.errors.len()));
            for e in &v.errors {
                msg.push_str("\n  - ");
                msg.push_str(e);
            }
        }
        return Err(UsageError(msg).into());
    }
    cfg.ok_or_else(|| UsageError(format!("config {origin}: invalid")).into())
}

/// A serde_json syntax error as a human message: line, column, the line with a caret, and
/// the likely fix where one is recognisable (a missing or a trailing comma).
pub fn describe_json_error(text: &str, e: &serde_json::Error) -> String {
    let (line, col) = (e.line(), e.column());
    let inner = e.to_string();
    // serde_json appends " at line L column C"; we say it our way.
    let what = inner
        .rsplit_once(" at line ")
        .map(|(w, _)| w.to_string())
        .unwrap_or(inner.clone());
    let mut msg = format!("invalid JSON at line {line}, column {col}: {what}");
    if line == 0 {
        return msg;
    }
    // The excerpt must not show a secret that sits near the error.
    let masked = mask_secret_values(text);
    let lines: Vec<&str> = masked.split('\n').collect();
    let Some(this_line) = lines.get(line - 1) else {
        return msg;
    };
    let this_line = this_line.trim_end_matches('\r');
    let chars: Vec<char> = this_line.chars().collect();
    // serde_json's column is 1-based and points at the offending character.
    let at = col.saturating_sub(1).min(chars.len());
    let (snippet, caret) = excerpt(&chars, at);
    msg.push_str(&format!("\n  {line:>4} | {snippet}\n       | {caret}^"));

    if what.starts_with("expected `,`") {
        // The comma belongs right after the last non-blank character before the error.
        let mut l = line - 1;
        let mut prefix: Vec<char> = chars[..at].to_vec();
        loop {
            while prefix.last().is_some_and(|c| c.is_whitespace()) {
                prefix.pop();
            }
            if !prefix.is_empty() || l == 0 {
                break;
            }
            l -= 1;
            prefix = lines[l].trim_end_matches('\r').chars().collect();
        }
        if !prefix.is_empty() {
            let end_col = prefix.len();
            let tail = tail_context(&prefix);
            msg.push_str(&format!(
                "\n  likely fix: missing comma after line {} (column {end_col}, after `{tail}`)?",
                l + 1
            ));
        }
    } else if what.starts_with("trailing comma") {
        msg.push_str("\n  likely fix: remove the comma before the closing bracket");
    } else if what.starts_with("key must be a string") {
        msg.push_str("\n  likely fix: keys need double quotes, and no comma after the last member");
    } else if what.starts_with("expected value") && chars.get(at) == Some(&'<') {
        msg.push_str("\n  likely fix: placeholders like <CLIENT_ID> must be inside double quotes");
    }
    msg
}

/// `text` with the value of every secret-looking key (`*secret*`, `*token*`, `*key*`,
/// `*password*`) replaced by `*` of the same length, so lines and columns still match.
/// Tolerates broken JSON: it only tracks strings and colons.
fn mask_secret_values(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = chars.clone();
    let mut i = 0;
    let mut mask_next_string = false;
    let mut last_string: Option<String> = None;
    while i < chars.len() {
        match chars[i] {
            '"' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && chars[j] != '"' && chars[j] != '\n' {
                    j += if chars[j] == '\\' { 2 } else { 1 };
                }
                let end = j.min(chars.len());
                if mask_next_string {
                    for c in &mut out[start..end] {
                        *c = '*';
                    }
                    mask_next_string = false;
                    last_string = None;
                } else {
                    last_string = Some(chars[start..end].iter().collect());
                }
                i = end + 1;
            }
            ':' => {
                mask_next_string = last_string.take().is_some_and(|k| {
                    let k = k.to_ascii_lowercase();
                    ["secret", "token", "key", "password"]
                        .iter()
                        .any(|w| k.contains(w))
                });
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            _ => {
                mask_next_string = false;
                last_string = None;
                i += 1;
            }
        }
    }
    out.into_iter().collect()
}

/// At most ~70 characters of a line around `at`, and the caret's indentation.
fn excerpt(chars: &[char], at: usize) -> (String, String) {
    let start = at.saturating_sub(50);
    let end = (at + 20).min(chars.len());
    let mut s: String = chars[start..end].iter().collect();
    let mut pad = at - start;
    if start > 0 {
        s = format!("…{s}");
        pad += 1;
    }
    if end < chars.len() {
        s.push('…');
    }
    (s, " ".repeat(pad))
}

/// The member that ends `prefix` (e.g. `"azure_active_directory": {}`): scan back to the
/// `,` or unmatched opening bracket before it.
fn tail_context(prefix: &[char]) -> String {
    let mut depth = 0i32;
    let mut start = 0;
    for i in (0..prefix.len()).rev() {
        match prefix[i] {
            '}' | ']' => depth += 1,
            '{' | '[' if depth == 0 => {
                start = i + 1;
                break;
            }
            '{' | '[' => depth -= 1,
            ',' if depth == 0 => {
                start = i + 1;
                break;
            }
            _ => {}
        }
    }
    let s: String = prefix[start..].iter().collect();
    let s = s.trim();
    let n = s.chars().count();
    if n > 60 {
        let t: String = s.chars().skip(n - 60).collect();
        format!("…{t}")
    } else {
        s.to_string()
    }
}

struct Validator {
    errors: Vec<String>,
    warnings: Vec<String>,
    base: Option<PathBuf>,
}

const OFFICE365_KEYS: &[&str] = &[
    "credentials",
    "enabled",
    "id",
    "services",
    "cloud",
    "login_url",
    "api_url",
    "resource",
    "auth_version",
    "token_auth",
    "max_window_secs",
    "publisher_identifier",
    "backfill_hours",
    "poll_interval_secs",
    "overlap_secs",
    "max_concurrency",
    "requests_per_minute",
    "quiet_hours",
    "client_secret_expires",
];
const CREDENTIAL_KEYS: &[&str] = &[
    "client_id",
    "client_secret",
    "tenant_id",
    "client_secret_expires",
];

impl Validator {
    fn err(&mut self, msg: impl Into<String>) {
        self.errors.push(msg.into());
    }

    fn object<'a>(&mut self, v: &'a Value, path: &str) -> Option<&'a Map<String, Value>> {
        match v.as_object() {
            Some(m) => Some(m),
            None => {
                self.err(format!("{path} must be an object, found {}", kind(v)));
                None
            }
        }
    }

    fn unknown_keys(&mut self, m: &Map<String, Value>, path: &str, known: &[&str]) {
        for k in m.keys() {
            if !known.contains(&k.as_str()) {
                self.err(format!(
                    "{path}: unknown key {k:?}; known keys: {}",
                    known.join(", ")
                ));
            }
        }
    }

    fn config(&mut self, root: &Value, origin: &str) -> Option<Config> {
        let root = self.object(root, "the top level")?;
        self.unknown_keys(root, "the top level", &["inputs", "outputs", "ui"]);
        let inputs = match root.get("inputs") {
            Some(v) => self.object(v, "inputs"),
            None => {
                self.err("missing \"inputs\" (expected {\"inputs\": {\"office365\": {…}}})");
                None
            }
        };
        let office365 = inputs.and_then(|m| {
            for k in m.keys().filter(|k| *k != "office365") {
                self.warnings
                    .push(format!("inputs.{k} is not an office365 input; ignored"));
            }
            match m.get("office365") {
                Some(v) => self.office365(v),
                None => {
                    self.err("missing inputs.office365");
                    None
                }
            }
        });
        let ui = match root.get("ui") {
            Some(v) => self.ui(v),
            None => UiConfig::default(),
        };
        let outputs = match root.get("outputs") {
            Some(v) => self.outputs(v),
            None => Outputs::default(),
        };
        Some(Config {
            office365: office365?,
            ui,
            outputs,
            origin: origin.to_string(),
            warnings: std::mem::take(&mut self.warnings),
        })
    }

    fn ui(&mut self, v: &Value) -> UiConfig {
        let mut ui = UiConfig::default();
        let Some(m) = self.object(v, "ui") else {
            return ui;
        };
        self.unknown_keys(m, "ui", &["listen", "token"]);
        if let Some(l) = m.get("listen") {
            match l.as_str().map(str::parse::<SocketAddr>) {
                Some(Ok(a)) => ui.listen = a,
                _ => self.err(format!(
                    "ui.listen must be \"IP:PORT\" such as \"{DEFAULT_UI_LISTEN}\", found {l}"
                )),
            }
        }
        if let Some(t) = m.get("token") {
            ui.token = self.secret(t, "ui.token");
        }
        ui
    }

    fn outputs(&mut self, v: &Value) -> Outputs {
        let mut out = Outputs::default();
        let Some(m) = self.object(v, "outputs") else {
            return out;
        };
        self.unknown_keys(m, "outputs", &["devo"]);
        if let Some(d) = m.get("devo")
            && let Some(dm) = self.object(d, "outputs.devo")
        {
            out.devo = Some(DevoOutput { raw: dm.clone() });
        }
        out
    }

    fn office365(&mut self, v: &Value) -> Option<Office365> {
        let p = "inputs.office365";
        let m = self.object(v, p)?;
        self.unknown_keys(m, p, OFFICE365_KEYS);

        // credentials
        let creds = match m.get("credentials") {
            Some(c) => self.object(c, "inputs.office365.credentials"),
            None => {
                self.err("missing inputs.office365.credentials");
                None
            }
        };
        let (mut tenant_id, mut client_id, mut client_secret) = (None, None, None);
        let mut client_secret_expires = None;
        if let Some(c) = creds {
            let cp = "inputs.office365.credentials";
            self.unknown_keys(c, cp, CREDENTIAL_KEYS);
            tenant_id = self.tenant_id(c.get("tenant_id"), &format!("{cp}.tenant_id"));
            client_id = self.plain_id(c.get("client_id"), &format!("{cp}.client_id"));
            client_secret = match c.get("client_secret") {
                Some(s) => self.secret(s, &format!("{cp}.client_secret")),
                None => {
                    self.err(format!("missing {cp}.client_secret"));
                    None
                }
            };
            if let Some(s) = &client_secret
                && is_placeholder(s.expose())
            {
                self.err(format!(
                    "{cp}.client_secret still holds the template placeholder; put the secret's Value there (or {{\"env\": \"VAR\"}} / {{\"file\": \"PATH\"}})"
                ));
                client_secret = None;
            }
            if let Some(d) = c.get("client_secret_expires") {
                client_secret_expires = self.date(d, &format!("{cp}.client_secret_expires"));
            }
        }
        if let Some(d) = m.get("client_secret_expires") {
            client_secret_expires = self.date(d, "inputs.office365.client_secret_expires");
        }

        let enabled = match m.get("enabled") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.err(format!(
                    "inputs.office365.enabled must be true or false, found {other}"
                ));
                true
            }
        };
        let collector_id = self.collector_id(m.get("id"));
        let content_types = self.services(m.get("services"));

        let cloud = match m.get("cloud") {
            None => Cloud::Commercial,
            Some(c) => {
                match c
                    .as_str()
                    .and_then(|s| Cloud::ALL.into_iter().find(|k| k.name() == s))
                {
                    Some(k) => k,
                    None => {
                        self.err(format!(
                            "inputs.office365.cloud: unknown cloud {c}; valid: {}",
                            Cloud::ALL.map(Cloud::name).join(", ")
                        ));
                        Cloud::Commercial
                    }
                }
            }
        };
        let login_url = self
            .url(m.get("login_url"), "inputs.office365.login_url")
            .unwrap_or_else(|| cloud.login_url().to_string());
        let api_url = self
            .url(m.get("api_url"), "inputs.office365.api_url")
            .unwrap_or_else(|| cloud.api_url().to_string());
        let resource = self
            .url(m.get("resource"), "inputs.office365.resource")
            .unwrap_or_else(|| cloud.api_url().to_string());
        let auth_version = match m.get("auth_version").map(|v| v.as_str()) {
            None | Some(Some("v2")) => AuthVersion::V2,
            Some(Some("v1")) => AuthVersion::V1,
            Some(_) => {
                self.err("inputs.office365.auth_version must be \"v1\" or \"v2\"");
                AuthVersion::V2
            }
        };
        let token_auth = match m.get("token_auth").map(|v| v.as_str()) {
            None | Some(Some("post")) => TokenAuth::Post,
            Some(Some("basic")) => TokenAuth::Basic,
            Some(_) => {
                self.err("inputs.office365.token_auth must be \"post\" (credentials in the form body) or \"basic\" (HTTP Basic)");
                TokenAuth::Post
            }
        };
        let publisher_identifier = match m.get("publisher_identifier") {
            None => None,
            Some(v) => self.tenant_id(Some(v), "inputs.office365.publisher_identifier"),
        };

        let backfill_hours = self.int(
            m.get("backfill_hours"),
            "inputs.office365.backfill_hours",
            1,
            MAX_BACKFILL_HOURS as u64,
            DEFAULT_BACKFILL_HOURS as u64,
            " (the API keeps content for 7 days = 168 h)",
        ) as u32;
        let poll_interval_secs = self.int(
            m.get("poll_interval_secs"),
            "inputs.office365.poll_interval_secs",
            1,
            86_400,
            DEFAULT_POLL_INTERVAL_SECS,
            "",
        );
        let overlap_secs = self.int(
            m.get("overlap_secs"),
            "inputs.office365.overlap_secs",
            0,
            86_400,
            DEFAULT_OVERLAP_SECS,
            " (a listing window is at most 24 h)",
        );
        let max_window_secs = self.int(
            m.get("max_window_secs"),
            "inputs.office365.max_window_secs",
            60,
            DEFAULT_MAX_WINDOW_SECS,
            DEFAULT_MAX_WINDOW_SECS,
            " (the API accepts windows of at most 24 h)",
        );
        let quiet_hours = self.int(
            m.get("quiet_hours"),
            "inputs.office365.quiet_hours",
            1,
            168,
            crate::detect::monitor::DEFAULT_QUIET_HOURS as u64,
            " (the API's own latency is hours)",
        ) as u32;
        let max_concurrency = self.int(
            m.get("max_concurrency"),
            "inputs.office365.max_concurrency",
            1,
            256,
            DEFAULT_MAX_CONCURRENCY as u64,
            "",
        ) as usize;
        let requests_per_minute = self.int(
            m.get("requests_per_minute"),
            "inputs.office365.requests_per_minute",
            1,
            1_000_000,
            DEFAULT_REQUESTS_PER_MINUTE as u64,
            "",
        ) as u32;
        if requests_per_minute > 2000 {
            self.warnings.push(format!(
                "inputs.office365.requests_per_minute = {requests_per_minute} is above Microsoft's documented baseline of 2000/min per tenant; expect AF429 throttling"
            ));
        }
        if let Some(d) = client_secret_expires {
            let days = (d - Utc::now().date_naive()).num_days();
            if days < 0 {
                self.warnings.push(format!(
                    "the client secret expired {} days ago ({d})",
                    -days
                ));
            } else if days <= 30 {
                self.warnings
                    .push(format!("the client secret expires in {days} days ({d})"));
            }
        }

        let tenant_id = tenant_id?;
        Some(Office365 {
            collector_id: collector_id?,
            enabled,
            publisher_identifier: publisher_identifier.unwrap_or_else(|| tenant_id.clone()),
            tenant_id,
            client_id: client_id?,
            client_secret: client_secret?,
            client_secret_expires,
            content_types: content_types?,
            cloud,
            login_url,
            api_url,
            resource,
            auth_version,
            token_auth,
            backfill_hours,
            poll_interval_secs,
            overlap_secs,
            max_window_secs,
            max_concurrency,
            requests_per_minute,
            quiet_hours,
        })
    }

    fn collector_id(&mut self, v: Option<&Value>) -> Option<String> {
        let p = "inputs.office365.id";
        let s = match v {
            None => {
                self.err(format!(
                    "missing {p}: the collector id, a number (the guide asks for five digits, e.g. \"12345\")"
                ));
                return None;
            }
            Some(Value::String(s)) => s.trim().to_string(),
            Some(Value::Number(n)) if n.is_u64() => n.to_string(),
            Some(other) => {
                self.err(format!(
                    "{p} must be the collector id, a number such as \"12345\"; found {other}"
                ));
                return None;
            }
        };
        if is_placeholder(&s) {
            self.err(format!(
                "{p} still holds the template placeholder {s:?}; replace it with the collector id, a five-digit number such as \"12345\""
            ));
            return None;
        }
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 18 {
            self.err(format!(
                "{p} must be the collector id, a number (the guide asks for five digits, e.g. \"12345\"); found {s:?}"
            ));
            return None;
        }
        if s.len() != 5 {
            self.warnings.push(format!(
                "{p} = {s:?}: the guide asks for a five-digit collector id"
            ));
        }
        Some(s)
    }

    fn services(&mut self, v: Option<&Value>) -> Option<Vec<ContentType>> {
        let p = "inputs.office365.services";
        let valid = ContentType::ALL.map(|c| c.service()).join(", ");
        let Some(v) = v else {
            self.err(format!(
                "missing {p}: an object naming the services to collect ({valid})"
            ));
            return None;
        };
        let m = self.object(v, p)?;
        let mut out = Vec::new();
        let mut ok = true;
        for (name, opts) in m {
            match ContentType::from_service(name) {
                Some(ct) => {
                    if !out.contains(&ct) {
                        out.push(ct);
                    }
                    match opts.as_object() {
                        Some(o) if o.is_empty() => {}
                        Some(_) => self
                            .warnings
                            .push(format!("{p}.{name}: options inside a service are ignored")),
                        None => {
                            self.err(format!("{p}.{name} must be an object such as {{}}"));
                            ok = false;
                        }
                    }
                }
                None => {
                    self.err(format!("{p}: unknown service {name:?}; valid: {valid}"));
                    ok = false;
                }
            }
        }
        if ok && out.is_empty() {
            self.err(format!("{p} is empty; name at least one of: {valid}"));
            ok = false;
        }
        out.sort();
        ok.then_some(out)
    }

    fn tenant_id(&mut self, v: Option<&Value>, p: &str) -> Option<String> {
        let s = self.plain_id(v, p)?;
        if uuid::Uuid::try_parse(&s).is_err() {
            self.err(format!(
                "{p} must be the tenant's GUID (Directory (tenant) ID, like 4f1c2b7e-9a3d-4c8e-b2f6-7d1e0a9c5b31); found {s:?}"
            ));
            return None;
        }
        Some(s.to_ascii_lowercase())
    }

    fn plain_id(&mut self, v: Option<&Value>, p: &str) -> Option<String> {
        match v {
            None => {
                self.err(format!("missing {p}"));
                None
            }
            Some(Value::String(s)) if is_placeholder(s) => {
                self.err(format!(
                    "{p} still holds the template placeholder {s:?}; replace it"
                ));
                None
            }
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(other) => {
                self.err(format!(
                    "{p} must be a non-empty string, found {}",
                    kind(other)
                ));
                None
            }
        }
    }

    fn secret(&mut self, v: &Value, p: &str) -> Option<Secret> {
        let s = match v {
            Value::String(s) => Some(s.clone()),
            Value::Object(m) if m.len() == 1 && m.contains_key("env") => {
                match m.get("env").and_then(Value::as_str) {
                    Some(var) => match std::env::var(var) {
                        Ok(val) => Some(val),
                        Err(_) => {
                            self.err(format!(
                                "{p}: environment variable {var} is not set (or not UTF-8)"
                            ));
                            return None;
                        }
                    },
                    None => {
                        self.err(format!("{p}: \"env\" must name a variable"));
                        return None;
                    }
                }
            }
            Value::Object(m) if m.len() == 1 && m.contains_key("file") => {
                match m.get("file").and_then(Value::as_str) {
                    Some(f) => {
                        let path = match &self.base {
                            Some(b) if Path::new(f).is_relative() => b.join(f),
                            _ => PathBuf::from(f),
                        };
                        match std::fs::read_to_string(&path) {
                            Ok(t) => Some(t.trim_end_matches(['\r', '\n']).to_string()),
                            Err(e) => {
                                self.err(format!(
                                    "{p}: cannot read secret file {}: {e}",
                                    path.display()
                                ));
                                return None;
                            }
                        }
                    }
                    None => {
                        self.err(format!("{p}: \"file\" must be a path"));
                        return None;
                    }
                }
            }
            _ => None,
        };
        match s {
            Some(s) if !s.is_empty() => Some(Secret(s)),
            Some(_) => {
                self.err(format!("{p} is empty"));
                None
            }
            None => {
                self.err(format!(
                    "{p} must be a string, {{\"env\": \"VAR\"}} or {{\"file\": \"PATH\"}}; found {}",
                    kind(v)
                ));
                None
            }
        }
    }

    fn url(&mut self, v: Option<&Value>, p: &str) -> Option<String> {
        let v = v?;
        let Some(s) = v.as_str() else {
            self.err(format!("{p} must be a URL string, found {}", kind(v)));
            return None;
        };
        let s = s.trim().trim_end_matches('/').to_string();
        let u = match url::Url::parse(&s) {
            Ok(u) => u,
            Err(e) => {
                self.err(format!("{p}: not a URL ({e}): {s:?}"));
                return None;
            }
        };
        let host = u.host_str().unwrap_or("").to_string();
        if host.is_empty() {
            self.err(format!("{p}: URL has no host: {s:?}"));
            return None;
        }
        match u.scheme() {
            "https" => {}
            "http" if is_loopback_host(&host) => {}
            "http" => {
                self.err(format!(
                    "{p}: plain http is only allowed for a loopback host (the practice tenant); use https for {host}"
                ));
                return None;
            }
            other => {
                self.err(format!("{p}: scheme must be https, found {other}"));
                return None;
            }
        }
        if u.query().is_some() || u.fragment().is_some() {
            self.err(format!("{p}: a base URL takes no query or fragment"));
            return None;
        }
        Some(s)
    }

    fn int(&mut self, v: Option<&Value>, p: &str, min: u64, max: u64, dflt: u64, why: &str) -> u64 {
        let Some(v) = v else { return dflt };
        match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => n,
            _ => {
                self.err(format!(
                    "{p} must be a whole number from {min} to {max}{why}; found {v}"
                ));
                dflt
            }
        }
    }

    fn date(&mut self, v: &Value, p: &str) -> Option<NaiveDate> {
        let s = v.as_str().unwrap_or("");
        let d = NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .or_else(|| crate::model::parse_time(s).map(|t| t.date_naive()));
        if d.is_none() {
            self.err(format!("{p} must be a date \"YYYY-MM-DD\", found {v}"));
        }
        d
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn is_placeholder(s: &str) -> bool {
    let s = s.trim();
    s.len() >= 2 && s.starts_with('<') && s.ends_with('>')
}

fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Config {
    /// The human summary `m365audit check` prints (no secrets).
    pub fn summary(&self) -> String {
        let o = &self.office365;
        let mut s = String::new();
        s.push_str(&format!("config {}: OK\n", self.origin));
        s.push_str(&format!(
            "  collector id   {}{}\n",
            o.collector_id,
            if o.enabled { "" } else { " (disabled)" }
        ));
        s.push_str(&format!("  tenant         {}\n", o.tenant_id));
        s.push_str(&format!("  client id      {}\n", o.client_id));
        s.push_str(&format!(
            "  client secret  {} chars{}\n",
            o.client_secret.expose().chars().count(),
            match o.days_until_secret_expires(Utc::now()) {
                Some(d) if d < 0 => format!(", EXPIRED {} days ago", -d),
                Some(d) => format!(", expires in {d} days"),
                None => String::new(),
            }
        ));
        s.push_str(&format!(
            "  content types  {}\n",
            o.content_types
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        s.push_str(&format!(
            "  cloud          {} (login {}, api {}, auth {:?}, credentials by {:?})\n",
            o.cloud.name(),
            o.login_url,
            o.api_url,
            o.auth_version,
            o.token_auth
        ));
        s.push_str(&format!(
            "  backfill {} h, poll every {} s, overlap {} s, windows ≤ {} s, {} concurrent, {} requests/min, quiet after {} h\n",
            o.backfill_hours,
            o.poll_interval_secs,
            o.overlap_secs,
            o.max_window_secs,
            o.max_concurrency,
            o.requests_per_minute,
            o.quiet_hours
        ));
        s.push_str(&format!(
            "  ui             {}{}\n",
            self.ui.listen,
            if self.ui.token.is_some() {
                " (token required)"
            } else {
                ""
            }
        ));
        s.push_str(&format!(
            "  devo output    {}\n",
            if self.outputs.devo.is_some() {
                "configured (forwarding not in this build)"
            } else {
                "none"
            }
        ));
        for w in &self.warnings {
            s.push_str(&format!("  warning: {w}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guide's template verbatim (000_06875b0c9cd36591.txt, "Run It"), comma missing.
    const GUIDE_BROKEN: &str = r#"{ "inputs": { "office365": { "credentials": { "client_id": "<CLIENT_ID>", "client_secret": "<CLIENT_SECRET>", "tenant_id": "<TENANT_ID>" }, "enabled": true, "id": "<UNIQUE ID>", "services": { "azure_active_directory": {} "general_audit": {}, "exchange": {}, "sharepoint": {}, "dlp": {} } } } }"#;
    const TENANT: &str = "4f1c2b7e-9a3d-4c8e-b2f6-7d1e0a9c5b31";
    const SECRET: &str = "s3cr3t~Value.with-chars_XYZ";

    fn filled() -> String {
        GUIDE_BROKEN
            .replace("{} \"general_audit\"", "{}, \"general_audit\"")
            .replace("<CLIENT_ID>", "0d5a1a0c-1111-2222-3333-444455556666")
            .replace("<CLIENT_SECRET>", SECRET)
            .replace("<TENANT_ID>", TENANT)
            .replace("<UNIQUE ID>", "12345")
    }

    fn err_of(text: &str) -> String {
        let e = parse(text, "t.json").expect_err("should fail");
        assert!(
            e.chain().any(|c| c.is::<UsageError>()),
            "not a UsageError: {e:#}"
        );
        format!("{e:#}")
    }

    #[test]
    fn guide_template_broken_names_line_column_and_fix() {
        let msg = err_of(GUIDE_BROKEN);
        assert!(msg.contains("line 1, column"), "{msg}");
        assert!(msg.contains("missing comma after line 1"), "{msg}");
        assert!(
            msg.contains("after `\"azure_active_directory\": {}`"),
            "{msg}"
        );
        // the caret sits under the token that follows the missing comma
        let col: usize = msg
            .split("column ")
            .nth(1)
            .and_then(|s| s.split(':').next())
            .and_then(|s| s.parse().ok())
            .expect("column");
        let at = GUIDE_BROKEN.find("\"general_audit\"").expect("key") + 1;
        assert_eq!(col, at, "{msg}");
    }

    #[test]
    fn broken_multiline_template_points_at_the_previous_line() {
        let pretty = "{ \"inputs\": { \"office365\": {\n  \"services\": {\n    \"azure_active_directory\": {}\n    \"general_audit\": {}\n  } } } }\n";
        let msg = err_of(pretty);
        assert!(msg.contains("line 4, column 5"), "{msg}");
        assert!(msg.contains("missing comma after line 3"), "{msg}");
    }

    #[test]
    fn guide_template_fixed_but_unfilled_names_each_placeholder() {
        let fixed = GUIDE_BROKEN.replace("{} \"general_audit\"", "{}, \"general_audit\"");
        let msg = err_of(&fixed);
        for key in [
            "client_id",
            "client_secret",
            "tenant_id",
            "inputs.office365.id",
        ] {
            assert!(msg.contains(key), "{key} missing from: {msg}");
        }
        assert!(msg.contains("placeholder"), "{msg}");
    }

    #[test]
    fn guide_template_fixed_and_filled_parses() {
        let cfg = parse(&filled(), "t.json").expect("valid");
        let o = &cfg.office365;
        assert_eq!(o.collector_id, "12345");
        assert!(o.enabled);
        assert_eq!(o.tenant_id, TENANT);
        assert_eq!(o.client_secret.expose(), SECRET);
        assert_eq!(o.content_types, ContentType::ALL.to_vec());
        assert_eq!(o.cloud, Cloud::Commercial);
        assert_eq!(o.login_url, "https://login.microsoftonline.com");
        assert_eq!(o.api_url, "https://manage.office.com");
        assert_eq!(o.resource, "https://manage.office.com");
        assert_eq!(o.auth_version, AuthVersion::V2);
        assert_eq!(o.publisher_identifier, TENANT);
        assert_eq!(o.backfill_hours, 168);
        assert_eq!(cfg.ui.listen.to_string(), "127.0.0.1:8365");
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        assert!(cfg.summary().contains("12345"));
    }

    #[test]
    fn secret_never_in_debug_display_summary_or_errors() {
        let cfg = parse(&filled(), "t.json").expect("valid");
        assert!(!format!("{cfg:?}").contains(SECRET));
        assert!(!cfg.summary().contains(SECRET));
        assert_eq!(format!("{}", cfg.office365.client_secret), "<redacted>");
        // an error elsewhere in a file that holds the secret does not echo it
        let bad = filled().replace("\"12345\"", "\"abc\"");
        assert!(!err_of(&bad).contains(SECRET));
        let bad = filled().replace(SECRET, &format!("{SECRET}\" \"x"));
        assert!(!err_of(&bad).contains(SECRET));
    }

    #[test]
    fn unknown_service_names_the_valid_ones() {
        let msg = err_of(&filled().replace("\"dlp\"", "\"teams\""));
        assert!(msg.contains("unknown service \"teams\""), "{msg}");
        for s in [
            "azure_active_directory",
            "general_audit",
            "exchange",
            "sharepoint",
            "dlp",
        ] {
            assert!(msg.contains(s), "{msg}");
        }
    }

    #[test]
    fn non_numeric_id_is_an_error_and_odd_length_a_warning() {
        let msg = err_of(&filled().replace("\"12345\"", "\"collector-a\""));
        assert!(msg.contains("inputs.office365.id"), "{msg}");
        assert!(msg.contains("five digits"), "{msg}");
        let cfg = parse(&filled().replace("\"12345\"", "123"), "t").expect("numeric ok");
        assert_eq!(cfg.office365.collector_id, "123");
        assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    }

    #[test]
    fn tenant_must_be_a_guid() {
        let msg = err_of(&filled().replace(TENANT, "contoso.onmicrosoft.com"));
        assert!(msg.contains("tenant_id must be the tenant's GUID"), "{msg}");
    }

    fn with_ext(ext: &str) -> String {
        filled().replace("\"enabled\": true,", &format!("\"enabled\": true, {ext},"))
    }

    #[test]
    fn extensions_parse_and_sovereign_clouds_resolve() {
        let cfg = parse(
            &with_ext(
                r#""cloud": "gcc_high", "backfill_hours": 24, "poll_interval_secs": 30, "overlap_secs": 600,
                "max_concurrency": 4, "requests_per_minute": 500, "auth_version": "v1",
                "client_secret_expires": "2099-01-31""#,
            ),
            "t",
        )
        .expect("valid");
        let o = &cfg.office365;
        assert_eq!(o.cloud, Cloud::GccHigh);
        assert_eq!(o.login_url, "https://login.microsoftonline.us");
        assert_eq!(o.api_url, "https://manage.office365.us");
        assert_eq!(o.resource, "https://manage.office365.us");
        assert_eq!(o.auth_version, AuthVersion::V1);
        assert_eq!(
            (o.backfill_hours, o.poll_interval_secs, o.overlap_secs),
            (24, 30, 600)
        );
        assert_eq!((o.max_concurrency, o.requests_per_minute), (4, 500));
        assert!(o.days_until_secret_expires(Utc::now()).unwrap_or(0) > 1000);

        for (cloud, api) in [
            ("commercial", "https://manage.office.com"),
            ("gcc", "https://manage-gcc.office.com"),
            ("dod", "https://manage.protection.apps.mil"),
        ] {
            let c = parse(&with_ext(&format!("\"cloud\": \"{cloud}\"")), "t").expect("cloud");
            assert_eq!(c.office365.api_url, api);
        }
    }

    #[test]
    fn url_overrides_keep_the_cloud_resource_and_refuse_cleartext_to_remote_hosts() {
        let cfg = parse(
            &with_ext(
                r#""login_url": "http://127.0.0.1:9001/", "api_url": "http://127.0.0.1:9002""#,
            ),
            "t",
        )
        .expect("valid");
        assert_eq!(cfg.office365.login_url, "http://127.0.0.1:9001");
        assert_eq!(cfg.office365.api_url, "http://127.0.0.1:9002");
        assert_eq!(cfg.office365.resource, "https://manage.office.com");
        let msg = err_of(&with_ext(r#""api_url": "http://example.com""#));
        assert!(
            msg.contains("plain http is only allowed for a loopback host"),
            "{msg}"
        );
        let msg = err_of(&with_ext(r#""api_url": "not a url""#));
        assert!(msg.contains("api_url: not a URL"), "{msg}");
    }

    #[test]
    fn extension_limits_are_enforced() {
        let msg = err_of(&with_ext(r#""backfill_hours": 200"#));
        assert!(
            msg.contains("backfill_hours must be a whole number from 1 to 168"),
            "{msg}"
        );
        let msg = err_of(&with_ext(r#""max_concurrency": 0"#));
        assert!(msg.contains("max_concurrency"), "{msg}");
        let msg = err_of(&with_ext(r#""cloud": "china""#));
        assert!(
            msg.contains("unknown cloud") && msg.contains("gcc_high"),
            "{msg}"
        );
        let msg = err_of(&with_ext(r#""backfil_hours": 2"#));
        assert!(msg.contains("unknown key \"backfil_hours\""), "{msg}");
        let msg = err_of(&with_ext(r#""auth_version": "v3""#));
        assert!(msg.contains("auth_version"), "{msg}");
    }

    #[test]
    fn token_auth_and_max_window_secs_parse_with_defaults_and_limits() {
        let o = parse(&filled(), "t").expect("valid").office365;
        assert_eq!((o.token_auth, o.max_window_secs), (TokenAuth::Post, 86_400));
        let o = parse(
            &with_ext(r#""token_auth": "basic", "max_window_secs": 3600"#),
            "t",
        )
        .expect("valid")
        .office365;
        assert_eq!((o.token_auth, o.max_window_secs), (TokenAuth::Basic, 3600));
        let msg = err_of(&with_ext(r#""token_auth": "header""#));
        assert!(msg.contains("token_auth must be \"post\""), "{msg}");
        let msg = err_of(&with_ext(r#""max_window_secs": 90000"#));
        assert!(
            msg.contains("max_window_secs must be a whole number from 60 to 86400"),
            "{msg}"
        );
    }

    #[test]
    fn several_problems_are_reported_together() {
        let text = filled()
            .replace("\"12345\"", "\"abc\"")
            .replace("\"dlp\"", "\"teams\"");
        let msg = err_of(&text);
        assert!(msg.contains("2 problems"), "{msg}");
    }

    #[test]
    fn secrets_from_env_and_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("secret.txt"), "from-file-secret\n").expect("write");
        let text = filled().replace(&format!("\"{SECRET}\""), "{\"file\": \"secret.txt\"}");
        let path = dir.path().join("c.json");
        std::fs::write(&path, &text).expect("write");
        let cfg = load(&path).expect("file secret");
        assert_eq!(cfg.office365.client_secret.expose(), "from-file-secret");

        let text = filled().replace(
            &format!("\"{SECRET}\""),
            "{\"env\": \"M365AUDIT_TEST_SURELY_UNSET_VAR\"}",
        );
        let msg = err_of(&text);
        assert!(
            msg.contains("environment variable M365AUDIT_TEST_SURELY_UNSET_VAR is not set"),
            "{msg}"
        );
        let text = filled().replace(&format!("\"{SECRET}\""), "{\"file\": \"/nonexistent/x\"}");
        assert!(err_of(&text).contains("cannot read secret file"));
        let text = filled().replace(&format!("\"{SECRET}\""), "42");
        assert!(err_of(&text).contains("{\"env\": \"VAR\"}"));
    }

    #[test]
    fn ui_and_outputs_are_parsed_and_kept() {
        let text = filled().replacen(
            "{ \"inputs\"",
            r#"{ "ui": {"listen": "127.0.0.1:9999", "token": "ui-token-value"},
                 "outputs": {"devo": {"address": "collector-eu.devo.io:443", "key": "devo-key-value"}},
                 "inputs""#,
            1,
        );
        let cfg = parse(&text, "t").expect("valid");
        assert_eq!(cfg.ui.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(
            cfg.ui.token.as_ref().map(Secret::expose),
            Some("ui-token-value")
        );
        let devo = cfg.outputs.devo.as_ref().expect("devo kept");
        assert_eq!(devo.raw["address"], "collector-eu.devo.io:443");
        let dbg = format!("{cfg:?}");
        assert!(
            !dbg.contains("ui-token-value") && !dbg.contains("devo-key-value"),
            "{dbg}"
        );
        let msg = err_of(&text.replace("127.0.0.1:9999", "nowhere"));
        assert!(msg.contains("ui.listen"), "{msg}");
    }

    #[test]
    fn a_byte_order_mark_and_crlf_are_accepted() {
        let text = format!("\u{feff}{}", filled().replace(", ", ",\r\n"));
        assert!(parse(&text, "t").is_ok());
        let msg = err_of("");
        assert!(msg.contains("line 1"), "{msg}");
    }

    #[test]
    fn unreadable_file_is_a_usage_error() {
        let e = load(Path::new("/nonexistent/m365audit.json")).expect_err("fails");
        assert!(e.chain().any(|c| c.is::<UsageError>()));
        assert!(format!("{e:#}").contains("cannot read"));
    }

    #[test]
    fn trailing_comma_and_unquoted_placeholder_get_hints() {
        let msg = err_of(r#"{"inputs": {"office365": {"services": {"dlp": {},}}}}"#);
        assert!(
            msg.contains("trailing comma") || msg.contains("likely fix"),
            "{msg}"
        );
        let msg = err_of(r#"{"inputs": {"office365": {"id": <UNIQUE ID>}}}"#);
        assert!(msg.contains("inside double quotes"), "{msg}");
    }
}
