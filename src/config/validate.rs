//! The validator: walks the parsed JSON, checks every key and value against the reference
//! table in the module doc of `config`, and collects every problem (not only the first)
//! with its JSON path.

use super::*;
use std::path::PathBuf;

pub(super) struct Validator {
    pub(super) errors: Vec<String>,
    pub(super) warnings: Vec<String>,
    pub(super) base: Option<PathBuf>,
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
    pub(super) fn new(base: Option<&Path>) -> Validator {
        Validator {
            errors: Vec::new(),
            warnings: Vec::new(),
            base: base.map(Path::to_path_buf),
        }
    }

    pub(super) fn err(&mut self, msg: impl Into<String>) {
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

    pub(super) fn unknown_keys(&mut self, m: &Map<String, Value>, path: &str, known: &[&str]) {
        for k in m.keys() {
            if !known.contains(&k.as_str()) {
                self.err(format!(
                    "{path}: unknown key {k:?}; known keys: {}",
                    known.join(", ")
                ));
            }
        }
    }

    pub(super) fn config(&mut self, root: &Value, origin: &str) -> Option<Config> {
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
            out.devo = self.devo(dm);
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
        let token_auth = match m.get("token_auth").map(|v| v.as_str()) {
            None | Some(Some("post")) => TokenAuth::Post,
            Some(Some("basic")) => TokenAuth::Basic,
            Some(_) => {
                self.err("inputs.office365.token_auth must be \"post\" (credentials in the form body) or \"basic\" (HTTP Basic)");
                TokenAuth::Post
            }
        };
        let max_window_secs = self.int(
            m.get("max_window_secs"),
            "inputs.office365.max_window_secs",
            60,
            DEFAULT_MAX_WINDOW_SECS,
            DEFAULT_MAX_WINDOW_SECS,
            " (the API accepts windows of at most 24 h)",
        );
        let overlap_secs = self.int(
            m.get("overlap_secs"),
            "inputs.office365.overlap_secs",
            0,
            86_400,
            DEFAULT_OVERLAP_SECS,
            " (a listing window is at most 24 h)",
        );
        let quiet_hours = self.int(
            m.get("quiet_hours"),
            "inputs.office365.quiet_hours",
            1,
            168,
            crate::model::DEFAULT_QUIET_HOURS as u64,
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
            max_window_secs,
            backfill_hours,
            poll_interval_secs,
            overlap_secs,
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

    pub(super) fn secret(&mut self, v: &Value, p: &str) -> Option<Secret> {
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

    pub(super) fn url(&mut self, v: Option<&Value>, p: &str) -> Option<String> {
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

    pub(super) fn int(
        &mut self,
        v: Option<&Value>,
        p: &str,
        min: u64,
        max: u64,
        dflt: u64,
        why: &str,
    ) -> u64 {
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

pub(super) fn kind(v: &Value) -> &'static str {
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
