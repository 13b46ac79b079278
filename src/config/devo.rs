//! `outputs.devo`: the Devo forwarding settings, parsed and validated into [`DevoOutput`].
//!
//! This file owns the keys, their defaults and the errors that name a bad key. It resolves
//! certificate paths against the config file's folder but does not read the certificates:
//! loading and checking them (PEM, expiry, key matches certificate) is the forwarder's job
//! (`forward::tls`), which `check` and every forwarding command run before sending.
//!
//! ```json
//! "outputs": {"devo": {
//!   "mode": "syslog",
//!   "address": "collector-eu.devo.io:443",            // or "region": "us" | "eu" | "ca" | "ap"
//!   "tls": {"cert": "devo.crt", "key": "devo.key", "chain": "chain.crt",
//!           "verify_hostname": false},                 // or "tls": false (plain TCP relay)
//!   "timestamp": "collector",                          // "bsd" | "rfc3339"
//!   "gzip": false
//! }}
//! ```
//!
//! HTTP mode: `"mode": "http"`, `"endpoint"` (or `"region"`), `"domain"`, `"token"` (a
//! secret: string, `{"env"}` or `{"file"}`).

use super::Secret;
use super::validate::{Validator, kind};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Devo's regional syslog endpoints (docs/devo.md, Syslog over TLS) and HTTP endpoints (docs/devo.md, HTTP ingestion).
pub const REGIONS: &[(&str, &str, &str)] = &[
    ("us", "collector-us.devo.io", "https://http-us.devo.io"),
    ("eu", "collector-eu.devo.io", "https://http-eu.devo.io"),
    ("ca", "collector-ca.devo.io", "https://http-ca.devo.io"),
    ("ap", "collector-ap.devo.io", "https://http-ap.devo.io"),
];

/// Largest record sent, in bytes of the line's JSON, unless `max_record_bytes` says
/// otherwise (Devo documents no limit for syslog; larger records are counted, never cut).
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 1024 * 1024;
/// Records read from the outbox per batch, unless `batch_records` says otherwise.
pub const DEFAULT_BATCH_RECORDS: u64 = 2000;
/// Seconds lines may stay unconfirmed on one connection, unless `confirm_secs` says so.
pub const DEFAULT_CONFIRM_SECS: u64 = 2;
/// Devo's HTTP ingestion takes at most 32 MB per request.
pub const HTTP_MAX_BODY: u64 = 32 * 1000 * 1000;

const KEYS: &[&str] = &[
    "mode",
    "address",
    "region",
    "tls",
    "timestamp",
    "gzip",
    "hostname",
    "max_record_bytes",
    "batch_records",
    "confirm_secs",
    "alert_after_secs",
    "drain_secs",
    "endpoint",
    "domain",
    "token",
];
const TLS_KEYS: &[&str] = &["cert", "key", "chain", "verify_hostname", "pkcs12"];

/// The syslog header timestamp style (docs/devo.md, The line); Devo dates events on arrival, so
/// the value only has to be well-formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampStyle {
    /// `YYYY-MM-DD HH:MM:SS.mmm` UTC, what Devo's own collectors send.
    Collector,
    /// `Mmm dd HH:MM:SS`, the day padded with a space.
    Bsd,
    /// RFC 3339 with milliseconds and `Z`.
    Rfc3339,
}

/// The TLS material of syslog mode: three PEM files, as Devo hands them out.
#[derive(Debug, Clone)]
pub struct DevoTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub chain: PathBuf,
    /// Devo's own collectors switch hostname checking off; the default here is on.
    pub verify_hostname: bool,
}

/// How records leave the appliance.
#[derive(Debug, Clone)]
pub enum DevoTransport {
    /// One line per record over TCP, TLS unless `tls` is None (an in-house relay).
    Syslog {
        host: String,
        port: u16,
        tls: Option<DevoTls>,
        gzip: bool,
    },
    /// `POST {endpoint}/stream/{domain}/token!{token}/{host}/{tag}`, gzip bodies.
    Http {
        endpoint: String,
        domain: String,
        token: Secret,
    },
}

/// `outputs.devo`, validated. `Debug` never shows the HTTP token (a [`Secret`]).
#[derive(Debug, Clone)]
pub struct DevoOutput {
    pub transport: DevoTransport,
    pub timestamp: TimestampStyle,
    /// The syslog HOSTNAME; None means `collector-<id>-<host name>`.
    pub hostname: Option<String>,
    pub max_record_bytes: u64,
    /// Records read from the outbox per batch.
    pub batch_records: usize,
    /// How long lines may stay unconfirmed on one syslog connection before the forwarder
    /// closes it with the closing handshake (the only acknowledgement syslog has).
    pub confirm_secs: u64,
    /// The UI raises an alert once the receiver has been unreachable this long.
    pub alert_after_secs: u64,
    /// `collect --once` and `forward` wait at most this long for the outbox to drain.
    pub drain_secs: u64,
}

impl DevoOutput {
    /// Where records go, for `check`, `stats` and logs (never the token).
    pub fn describe(&self) -> String {
        match &self.transport {
            DevoTransport::Syslog {
                host,
                port,
                tls,
                gzip,
            } => format!(
                "syslog {host}:{port} ({}{})",
                match tls {
                    Some(t) if t.verify_hostname => "TLS",
                    Some(_) => "TLS, hostname not checked",
                    None => "plain TCP",
                },
                if *gzip { ", gzip" } else { "" }
            ),
            DevoTransport::Http {
                endpoint, domain, ..
            } => format!("http {endpoint}/stream/{domain}/…"),
        }
    }
}

fn resolve(base: Option<&Path>, f: &str) -> PathBuf {
    match base {
        Some(b) if Path::new(f).is_relative() => b.join(f),
        _ => PathBuf::from(f),
    }
}

impl Validator {
    pub(super) fn devo(&mut self, m: &Map<String, Value>) -> Option<DevoOutput> {
        let p = "outputs.devo";
        self.unknown_keys(m, p, KEYS);
        let errors_before = self.errors.len();
        let mode = match m.get("mode") {
            None => "syslog",
            Some(Value::String(s)) if s == "syslog" || s == "http" => s.as_str(),
            Some(v) => {
                self.err(format!(
                    "{p}.mode must be \"syslog\" or \"http\", found {v}"
                ));
                "syslog"
            }
        };
        let region = match m.get("region") {
            None => None,
            Some(v) => {
                let r = v
                    .as_str()
                    .and_then(|s| REGIONS.iter().find(|(n, _, _)| *n == s));
                if r.is_none() {
                    self.err(format!(
                        "{p}.region must be one of {}, found {v}",
                        REGIONS
                            .iter()
                            .map(|(n, _, _)| format!("\"{n}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                r
            }
        };
        let timestamp = match m.get("timestamp").map(|v| (v, v.as_str())) {
            None | Some((_, Some("collector"))) => TimestampStyle::Collector,
            Some((_, Some("bsd"))) => TimestampStyle::Bsd,
            Some((_, Some("rfc3339"))) => TimestampStyle::Rfc3339,
            Some((v, _)) => {
                self.err(format!(
                    "{p}.timestamp must be \"collector\", \"bsd\" or \"rfc3339\", found {v}"
                ));
                TimestampStyle::Collector
            }
        };
        let gzip = match m.get("gzip") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                self.err(format!("{p}.gzip must be true or false, found {}", kind(v)));
                false
            }
        };
        let hostname = match m.get("hostname") {
            None => None,
            Some(Value::String(h))
                if !h.is_empty()
                    && h.len() <= 255
                    && h.bytes().all(|b| b.is_ascii_graphic() && b != b'=') =>
            {
                Some(h.clone())
            }
            Some(v) => {
                self.err(format!(
                    "{p}.hostname must be printable ASCII without spaces or '=', found {v}"
                ));
                None
            }
        };
        let max_record_bytes = self.int(
            m.get("max_record_bytes"),
            &format!("{p}.max_record_bytes"),
            1024,
            HTTP_MAX_BODY,
            DEFAULT_MAX_RECORD_BYTES,
            "",
        );
        let batch_records = self.int(
            m.get("batch_records"),
            &format!("{p}.batch_records"),
            1,
            100_000,
            DEFAULT_BATCH_RECORDS,
            "",
        ) as usize;
        let confirm_secs = self.int(
            m.get("confirm_secs"),
            &format!("{p}.confirm_secs"),
            1,
            3600,
            DEFAULT_CONFIRM_SECS,
            " (at most the 1 h a Devo connection may live)",
        );
        let alert_after_secs = self.int(
            m.get("alert_after_secs"),
            &format!("{p}.alert_after_secs"),
            1,
            7 * 86400,
            600,
            "",
        );
        let drain_secs = self.int(
            m.get("drain_secs"),
            &format!("{p}.drain_secs"),
            1,
            86400,
            300,
            "",
        );
        let transport = if mode == "http" {
            for k in ["address", "tls", "gzip"] {
                if m.contains_key(k) {
                    self.err(format!("{p}.{k} is a syslog setting; mode is \"http\""));
                }
            }
            let endpoint = match (m.get("endpoint"), region) {
                (Some(_), Some(_)) => {
                    self.err(format!("{p}: give \"endpoint\" or \"region\", not both"));
                    None
                }
                (Some(v), None) => self.url(Some(v), &format!("{p}.endpoint")),
                (None, Some((_, _, http))) => Some(http.to_string()),
                (None, None) => {
                    self.err(format!(
                        "{p}: mode \"http\" needs \"endpoint\" (e.g. \"https://http-eu.devo.io\") or \"region\""
                    ));
                    None
                }
            };
            let domain = match m.get("domain") {
                Some(Value::String(d))
                    if !d.is_empty()
                        && d.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) =>
                {
                    Some(d.clone())
                }
                Some(v) => {
                    self.err(format!(
                        "{p}.domain must be a Devo domain name (letters, digits, _ - .), found {v}"
                    ));
                    None
                }
                None => {
                    self.err(format!("missing {p}.domain (mode \"http\")"));
                    None
                }
            };
            let token = match m.get("token") {
                Some(t) => self.secret(t, &format!("{p}.token")),
                None => {
                    self.err(format!("missing {p}.token (mode \"http\")"));
                    None
                }
            };
            DevoTransport::Http {
                endpoint: endpoint.unwrap_or_default(),
                domain: domain.unwrap_or_default(),
                token: token.unwrap_or_else(|| Secret::new("")),
            }
        } else {
            for k in ["endpoint", "domain", "token"] {
                if m.contains_key(k) {
                    self.err(format!("{p}.{k} is an http setting; mode is \"syslog\""));
                }
            }
            let (host, port) = match (m.get("address"), region) {
                (Some(_), Some(_)) => {
                    self.err(format!("{p}: give \"address\" or \"region\", not both"));
                    (String::new(), 0)
                }
                (Some(v), None) => self.host_port(v, &format!("{p}.address")),
                (None, Some((_, host, _))) => (host.to_string(), 443),
                (None, None) => {
                    self.err(format!(
                        "{p}: mode \"syslog\" needs \"address\" (\"HOST:PORT\") or \"region\" (\"us\", \"eu\", \"ca\", \"ap\")"
                    ));
                    (String::new(), 0)
                }
            };
            let tls = match m.get("tls") {
                Some(Value::Bool(false)) => None,
                Some(Value::Object(t)) => self.devo_tls(t),
                None => {
                    self.err(format!(
                        "missing {p}.tls: {{\"cert\", \"key\", \"chain\"}} (Devo's X.509 credentials), or false for a plain TCP relay"
                    ));
                    None
                }
                Some(v) => {
                    self.err(format!(
                        "{p}.tls must be an object {{\"cert\", \"key\", \"chain\"}} or false, found {}",
                        kind(v)
                    ));
                    None
                }
            };
            DevoTransport::Syslog {
                host,
                port,
                tls,
                gzip,
            }
        };
        if self.errors.len() > errors_before {
            return None;
        }
        Some(DevoOutput {
            transport,
            timestamp,
            hostname,
            max_record_bytes,
            batch_records,
            confirm_secs,
            alert_after_secs,
            drain_secs,
        })
    }

    fn host_port(&mut self, v: &Value, p: &str) -> (String, u16) {
        let parsed = v.as_str().and_then(|s| {
            let (h, port) = s.rsplit_once(':')?;
            let h = h.trim_start_matches('[').trim_end_matches(']');
            let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
            (!h.is_empty() && !h.contains(['/', ' '])).then(|| (h.to_string(), port))
        });
        match parsed {
            Some(hp) => hp,
            None => {
                self.err(format!(
                    "{p} must be \"HOST:PORT\" such as \"collector-eu.devo.io:443\", found {v}"
                ));
                (String::new(), 0)
            }
        }
    }

    fn devo_tls(&mut self, t: &Map<String, Value>) -> Option<DevoTls> {
        let p = "outputs.devo.tls";
        self.unknown_keys(t, p, TLS_KEYS);
        if t.contains_key("pkcs12") {
            self.err(format!(
                "{p}.pkcs12: PKCS#12 is not supported; convert it to PEM with `openssl pkcs12 -in devo.pfx -nokeys -clcerts -out devo.crt` and `openssl pkcs12 -in devo.pfx -nocerts -nodes -out devo.key`"
            ));
            return None;
        }
        let base = self.base.clone();
        let mut file = |name: &str| -> Option<PathBuf> {
            match t.get(name) {
                Some(Value::String(f)) if !f.is_empty() => Some(resolve(base.as_deref(), f)),
                Some(v) => {
                    self.err(format!("{p}.{name} must be a file path, found {v}"));
                    None
                }
                None => {
                    self.err(format!("missing {p}.{name}"));
                    None
                }
            }
        };
        let (cert, key, chain) = (file("cert"), file("key"), file("chain"));
        let verify_hostname = match t.get("verify_hostname") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                self.err(format!(
                    "{p}.verify_hostname must be true or false, found {}",
                    kind(v)
                ));
                true
            }
        };
        Some(DevoTls {
            cert: cert?,
            key: key?,
            chain: chain?,
            verify_hostname,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    fn with_devo(devo: &str) -> String {
        format!(
            r#"{{"inputs": {{"office365": {{"credentials": {{"client_id": "c", "client_secret": "s3cr3t-value", "tenant_id": "0b6e5d0c-2f4e-4d9b-9c1e-8a7b6c5d4e3f"}}, "enabled": true, "id": "12345", "services": {{"exchange": {{}}}}}}}}, "outputs": {{"devo": {devo}}}}}"#
        )
    }

    fn devo_of(devo: &str) -> anyhow::Result<DevoOutput> {
        let cfg = parse(&with_devo(devo), "test")?;
        cfg.outputs.devo.ok_or_else(|| anyhow::anyhow!("no devo"))
    }

    #[test]
    fn the_issue_example_parses_with_its_defaults() {
        let d = devo_of(
            r#"{"mode": "syslog", "address": "collector-eu.devo.io:443",
                "tls": {"cert": "devo.crt", "key": "devo.key", "chain": "chain.crt", "verify_hostname": false},
                "timestamp": "collector", "gzip": false}"#,
        )
        .expect("parses");
        let DevoTransport::Syslog {
            host,
            port,
            tls,
            gzip,
        } = &d.transport
        else {
            panic!("syslog expected");
        };
        assert_eq!(
            (host.as_str(), *port, *gzip),
            ("collector-eu.devo.io", 443, false)
        );
        let tls = tls.as_ref().expect("tls");
        assert!(!tls.verify_hostname);
        assert_eq!(tls.chain, PathBuf::from("chain.crt"));
        assert_eq!(d.timestamp, TimestampStyle::Collector);
        assert_eq!(d.max_record_bytes, DEFAULT_MAX_RECORD_BYTES);
    }

    #[test]
    fn region_presets_and_plain_tcp() {
        let d = devo_of(r#"{"region": "us", "tls": false, "timestamp": "bsd"}"#).expect("parses");
        assert!(matches!(&d.transport,
            DevoTransport::Syslog { host, port: 443, tls: None, .. } if host == "collector-us.devo.io"));
        assert_eq!(d.timestamp, TimestampStyle::Bsd);
        let d =
            devo_of(r#"{"mode": "http", "region": "eu", "domain": "acme", "token": "tok-123"}"#)
                .expect("parses");
        assert!(matches!(&d.transport,
            DevoTransport::Http { endpoint, .. } if endpoint == "https://http-eu.devo.io"));
        assert!(!format!("{d:?}").contains("tok-123"));
    }

    #[test]
    fn bad_settings_name_the_key() {
        for (devo, needle) in [
            (r#"{"region": "mars", "tls": false}"#, "outputs.devo.region"),
            (
                r#"{"address": "nohostport", "tls": false}"#,
                "outputs.devo.address",
            ),
            (r#"{"address": "h:1"}"#, "missing outputs.devo.tls"),
            (
                r#"{"address": "h:1", "tls": {"cert": "a"}}"#,
                "missing outputs.devo.tls.key",
            ),
            (
                r#"{"address": "h:1", "tls": false, "timestamp": "x"}"#,
                "outputs.devo.timestamp",
            ),
            (
                r#"{"address": "h:1", "tls": false, "colour": 1}"#,
                "unknown key \"colour\"",
            ),
            (
                r#"{"mode": "http", "endpoint": "https://x"}"#,
                "missing outputs.devo.domain",
            ),
            (
                r#"{"address": "h:1", "tls": {"pkcs12": "x.pfx"}}"#,
                "PKCS#12",
            ),
        ] {
            let e = format!("{:#}", devo_of(devo).expect_err(devo));
            assert!(e.contains(needle), "{devo}: {e}");
        }
    }

    #[test]
    fn the_http_token_never_shows_in_errors() {
        let e = format!(
            "{:#}",
            devo_of(
                r#"{"mode": "http", "endpoint": "ftp://x", "domain": "d", "token": "tok-SECRET-1"}"#
            )
            .expect_err("bad endpoint")
        );
        assert!(!e.contains("tok-SECRET-1"), "{e}");
    }
}
