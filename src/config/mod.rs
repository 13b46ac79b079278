//! The appliance configuration: Devo's Microsoft 365 collector parameters template exactly
//! as the guide prints it (`inputs.office365.{credentials,enabled,id,services}`), plus the
//! documented extensions of docs/architecture.md, Configuration (`cloud`, `login_url`, `api_url`,
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
//! | `cloud` | `commercial`, `gcc`, `gcc_high`, `dod` (login and API hosts: docs/management-api.md, Authentication) | `commercial` |
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
//! | `outputs.devo` (top level) | Devo forwarding: syslog (TLS) or http; keys in `config/devo.rs` | none |
//!
//! Unknown keys are errors (a typo must not silently fall back to a default).

mod devo;
mod json_error;
mod secret;
mod summary;
mod validate;

pub use devo::{
    DEFAULT_BATCH_RECORDS, DEFAULT_CONFIRM_SECS, DEFAULT_MAX_RECORD_BYTES, DevoOutput, DevoTls,
    DevoTransport, HTTP_MAX_BODY, REGIONS, TimestampStyle,
};
pub use json_error::describe_json_error;
pub use secret::{AuthVersion, Cloud, Secret, TokenAuth};

use crate::UsageError;
use crate::model::ContentType;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};
use std::net::SocketAddr;
use std::path::Path;
use validate::Validator;

/// Defaults of the extensions (documented in the README's config reference).
pub const DEFAULT_BACKFILL_HOURS: u32 = 168;
pub const MAX_BACKFILL_HOURS: u32 = 168;
pub const DEFAULT_POLL_INTERVAL_SECS: u64 = 60;
pub const DEFAULT_OVERLAP_SECS: u64 = 7200;
/// Microsoft's longest listing window.
pub const DEFAULT_MAX_WINDOW_SECS: u64 = 86_400;
pub const DEFAULT_MAX_CONCURRENCY: usize = 8;
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 1000;
pub const DEFAULT_UI_LISTEN: &str = crate::model::DEFAULT_LISTEN;

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
    let mut v = Validator::new(base);
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

#[cfg(test)]
mod tests;
