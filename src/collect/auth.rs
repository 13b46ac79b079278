//! Client-credentials authentication against the Microsoft identity platform: v2
//! (`scope=<resource>/.default`, the default) or v1 (`resource=`), a form body, `expires_in`
//! as a number or a string, the client credentials in the form body (`client_secret_post`,
//! the default) or as HTTP Basic (`client_secret_basic`, `token_auth: "basic"`), a
//! proactive refresh at 75 % of the token's lifetime, one forced
//! refresh when the API answers 401, and AADSTS error codes mapped to the states `stats` and
//! the UI show ("client secret expired", "wrong secret", "app not in tenant", "wrong tenant").
//! A refusal that is not Microsoft's JSON (a proxy's or a double's plain text) is shown as
//! a short one-line excerpt of its body.
//!
//! This module owns the token cache and [`AuthState`]. It talks only to the configured login
//! host; [`super::api`] is its only caller. It must never put the client secret or a token in
//! a log line, an error, a `Debug` string or [`AuthState`]: tokens are [`AccessToken`]s with
//! a redacted `Debug`, the `Authorization` header is marked sensitive, and every text that
//! comes back from a server passes through [`TokenSource::redact`] before it is kept.

use super::api::{ApiError, RetryPolicy};
use crate::config::{AuthVersion, Office365, Secret, TokenAuth};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::Value;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Why the identity platform refused us, as the UI and `stats` show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum AuthFailure {
    #[error(
        "client secret expired (AADSTS7000222): create a new client secret in the app registration and update the config"
    )]
    SecretExpired,
    #[error(
        "wrong secret (AADSTS7000215): client_secret must be the secret's Value, not its Secret ID"
    )]
    WrongSecret,
    #[error(
        "app not in tenant (AADSTS700016): check client_id and tenant_id, and that an admin consented to the app"
    )]
    AppNotInTenant,
    #[error("wrong tenant (AADSTS{code}): tenant_id names no tenant")]
    WrongTenant { code: u64 },
    #[error("app disabled (AADSTS7000112)")]
    AppDisabled,
    #[error("invalid scope (AADSTS70011): check the cloud / resource setting")]
    BadScope,
    #[error("the API rejected a freshly issued token (401)")]
    Unauthorized,
    #[error("token request refused (HTTP {status}{}): {message}", code.map(|c| format!(", AADSTS{c}")).unwrap_or_default())]
    Other {
        status: u16,
        code: Option<u64>,
        message: String,
    },
}

impl AuthFailure {
    /// The short state name shown in the UI and `stats`.
    pub fn label(&self) -> &'static str {
        match self {
            AuthFailure::SecretExpired => "client secret expired",
            AuthFailure::WrongSecret => "wrong secret",
            AuthFailure::AppNotInTenant => "app not in tenant",
            AuthFailure::WrongTenant { .. } => "wrong tenant",
            AuthFailure::AppDisabled => "app disabled",
            AuthFailure::BadScope => "invalid scope",
            AuthFailure::Unauthorized => "token rejected",
            AuthFailure::Other { .. } => "token request refused",
        }
    }

    /// Maps an AADSTS number (from `error_codes` or the `error_description` prefix).
    pub fn from_aadsts(code: u64, status: u16, message: String) -> AuthFailure {
        match code {
            7000222 => AuthFailure::SecretExpired,
            7000215 => AuthFailure::WrongSecret,
            700016 => AuthFailure::AppNotInTenant,
            90002 | 900023 => AuthFailure::WrongTenant { code },
            7000112 => AuthFailure::AppDisabled,
            70011 => AuthFailure::BadScope,
            _ => AuthFailure::Other {
                status,
                code: Some(code),
                message,
            },
        }
    }
}

/// The authentication state for `stats` and the UI. Holds no secret and no token.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuthState {
    /// `"not_yet"` (no token requested), `"ok"`, `"failing"` (transient; retrying) or
    /// `"failed"` (the identity platform refused; see `failure`).
    pub state: &'static str,
    /// Human label: "ok", "client secret expired", "wrong secret", …
    pub label: String,
    pub failure: Option<AuthFailure>,
    /// When the current token expires.
    pub token_expires_at: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    /// The last error, already redacted.
    pub last_error: Option<String>,
    /// Tokens obtained since start.
    pub tokens_issued: u64,
    /// Days until the client secret expires (negative once expired), when the config
    /// says (`client_secret_expires`) — the top cause of silent outages.
    pub secret_expires_in_days: Option<i64>,
}

impl Default for AuthState {
    fn default() -> Self {
        AuthState {
            state: "not_yet",
            label: "no token requested yet".into(),
            failure: None,
            token_expires_at: None,
            last_success: None,
            last_error: None,
            tokens_issued: 0,
            secret_expires_in_days: None,
        }
    }
}

/// A bearer token. `Debug` never shows it; [`AccessToken::bearer`] builds the sensitive
/// header value, the only place it is used.
#[derive(Clone)]
pub struct AccessToken {
    value: Arc<str>,
    /// Increments with every token this source obtains (to detect a refresh by another task).
    pub generation: u64,
    pub refresh_at: Instant,
    pub expires_at: Instant,
    pub expires_at_utc: DateTime<Utc>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"<redacted>")
            .field("generation", &self.generation)
            .field("expires_at_utc", &self.expires_at_utc)
            .finish()
    }
}

impl AccessToken {
    /// `Authorization: Bearer …`, marked sensitive so no HTTP-level debug output shows it.
    pub fn bearer(&self) -> Result<HeaderValue, ApiError> {
        let mut v = HeaderValue::from_str(&format!("Bearer {}", self.value)).map_err(|_| {
            ApiError::Malformed("token has characters not allowed in a header".into())
        })?;
        v.set_sensitive(true);
        Ok(v)
    }
}

struct State {
    token: Option<AccessToken>,
    /// The token before the current one (a server may still echo it).
    previous: Option<Arc<str>>,
    generation: u64,
    public: AuthState,
    /// After the identity platform refused us: don't ask again before this instant.
    refused_until: Option<(Instant, AuthFailure)>,
}

/// Obtains and caches tokens for one tenant's app registration.
pub struct TokenSource {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    secret: Secret,
    version: AuthVersion,
    token_auth: TokenAuth,
    resource: String,
    secret_expires: Option<chrono::NaiveDate>,
    policy: RetryPolicy,
    state: Mutex<State>,
    refresh_lock: tokio::sync::Mutex<()>,
}

/// How long a refusal (wrong secret, …) is remembered before the token endpoint is asked
/// again, so a hundred blob fetches don't become a hundred token requests.
const REFUSAL_MEMORY: Duration = Duration::from_secs(30);

impl TokenSource {
    pub fn new(o: &Office365, http: reqwest::Client, policy: RetryPolicy) -> TokenSource {
        let token_url = match o.auth_version {
            AuthVersion::V2 => format!("{}/{}/oauth2/v2.0/token", o.login_url, o.tenant_id),
            AuthVersion::V1 => format!("{}/{}/oauth2/token", o.login_url, o.tenant_id),
        };
        TokenSource {
            http,
            token_url,
            client_id: o.client_id.clone(),
            secret: o.client_secret.clone(),
            version: o.auth_version,
            token_auth: o.token_auth,
            resource: o.resource.clone(),
            secret_expires: o.client_secret_expires,
            policy,
            state: Mutex::new(State {
                token: None,
                previous: None,
                generation: 0,
                public: AuthState::default(),
                refused_until: None,
            }),
            refresh_lock: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another task panicked mid-update; the data is plain.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state for `stats` and the UI.
    pub fn state(&self) -> AuthState {
        let mut st = self.lock().public.clone();
        st.secret_expires_in_days = self
            .secret_expires
            .map(|d| (d - Utc::now().date_naive()).num_days());
        st
    }

    /// Replaces the client secret and any current token in server-supplied text.
    pub fn redact(&self, text: &str) -> String {
        let mut s = text.to_string();
        if !self.secret.is_empty() {
            s = s.replace(self.secret.expose(), "<redacted>");
        }
        let st = self.lock();
        let current = st.token.as_ref().map(|t| &t.value);
        for t in current.into_iter().chain(st.previous.as_ref()) {
            if !t.is_empty() {
                s = s.replace(&**t, "<redacted>");
            }
        }
        s
    }

    fn current(&self) -> Option<AccessToken> {
        self.lock().token.clone()
    }

    /// A token that is not yet due for refresh, obtaining one if needed.
    pub async fn token(&self) -> Result<AccessToken, ApiError> {
        if let Some(t) = self.current()
            && Instant::now() < t.refresh_at
        {
            return Ok(t);
        }
        let _g = self.refresh_lock.lock().await;
        if let Some(t) = self.current()
            && Instant::now() < t.refresh_at
        {
            return Ok(t);
        }
        match self.obtain().await {
            Ok(t) => Ok(t),
            Err(e) => {
                // A refresh failed but the old token is still good: keep using it.
                if let Some(t) = self.current()
                    && Instant::now() + Duration::from_secs(30) < t.expires_at
                {
                    tracing::warn!(error = %e, "token refresh failed; using the current token until it expires");
                    return Ok(t);
                }
                Err(e)
            }
        }
    }

    /// After a 401: obtain a new token unless another task already replaced `stale`.
    pub async fn refresh_after_401(&self, stale: &AccessToken) -> Result<AccessToken, ApiError> {
        let _g = self.refresh_lock.lock().await;
        if let Some(t) = self.current()
            && t.generation != stale.generation
        {
            return Ok(t);
        }
        {
            let mut st = self.lock();
            if let Some(t) = st.token.take() {
                st.previous = Some(t.value);
            }
        }
        self.obtain().await
    }

    /// Asks the token endpoint (with retries for transient failures) and stores the result.
    async fn obtain(&self) -> Result<AccessToken, ApiError> {
        if let Some((until, f)) = self.lock().refused_until.clone()
            && Instant::now() < until
        {
            return Err(ApiError::Auth(f));
        }
        let attempts = self.policy.max_attempts.clamp(1, 4);
        let mut last = String::new();
        for attempt in 1..=attempts {
            match self.request_once().await {
                Ok((value, lifetime)) => {
                    let now = Instant::now();
                    let mut st = self.lock();
                    st.generation += 1;
                    let t = AccessToken {
                        value: value.into(),
                        generation: st.generation,
                        refresh_at: now + lifetime.mul_f64(0.75),
                        expires_at: now + lifetime,
                        expires_at_utc: Utc::now()
                            + chrono::Duration::from_std(lifetime).unwrap_or_default(),
                    };
                    if let Some(old) = st.token.replace(t.clone()) {
                        st.previous = Some(old.value);
                    }
                    st.refused_until = None;
                    st.public.state = "ok";
                    st.public.label = "ok".into();
                    st.public.failure = None;
                    st.public.token_expires_at = Some(t.expires_at_utc);
                    st.public.last_success = Some(Utc::now());
                    st.public.tokens_issued += 1;
                    tracing::info!(
                        expires_in_secs = lifetime.as_secs(),
                        "obtained an access token"
                    );
                    return Ok(t);
                }
                Err(Attempt::Refused(f)) => {
                    let mut st = self.lock();
                    st.public.state = "failed";
                    st.public.label = f.label().into();
                    st.public.failure = Some(f.clone());
                    st.public.last_error = Some(f.to_string());
                    st.refused_until = Some((Instant::now() + REFUSAL_MEMORY, f.clone()));
                    tracing::error!(state = f.label(), "token request refused: {f}");
                    return Err(ApiError::Auth(f));
                }
                Err(Attempt::Transient(why)) => {
                    last = self.redact(&why);
                    {
                        let mut st = self.lock();
                        if st.public.state != "ok" {
                            st.public.state = "failing";
                            st.public.label = "token endpoint unreachable".into();
                        }
                        st.public.last_error = Some(last.clone());
                    }
                    tracing::warn!(attempt, error = %last, "token request failed; will retry");
                    if attempt < attempts {
                        tokio::time::sleep(self.policy.backoff(attempt)).await;
                    }
                }
            }
        }
        Err(ApiError::Transient(format!(
            "token endpoint failed {attempts} times: {last}"
        )))
    }

    async fn request_once(&self) -> Result<(String, Duration), Attempt> {
        // The serializer is not Send: build the body in its own scope.
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if self.token_auth == TokenAuth::Post {
                form.append_pair("client_id", &self.client_id)
                    .append_pair("client_secret", self.secret.expose());
            }
            match self.version {
                AuthVersion::V2 => {
                    form.append_pair("scope", &format!("{}/.default", self.resource))
                }
                AuthVersion::V1 => form.append_pair("resource", &self.resource),
            };
            form.finish()
        };
        let mut req = self
            .http
            .post(&self.token_url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json");
        if self.token_auth == TokenAuth::Basic {
            req = req.header(AUTHORIZATION, self.basic_credentials()?);
        }
        let resp = req
            .body(body)
            .timeout(self.policy.request_timeout)
            .send()
            .await
            .map_err(|e| Attempt::Transient(format!("token request: {}", error_chain(&e))))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Attempt::Transient(format!("token response body: {}", error_chain(&e))))?;
        if (200..300).contains(&status) {
            return parse_token(&bytes).map_err(Attempt::Transient);
        }
        if status >= 500 || status == 408 || status == 429 {
            let text = excerpt(&self.redact(&String::from_utf8_lossy(&bytes)));
            return Err(Attempt::Transient(if text.is_empty() {
                format!("token endpoint HTTP {status}")
            } else {
                format!("token endpoint HTTP {status}: {text}")
            }));
        }
        Err(Attempt::Refused(parse_refusal(status, &bytes, |s| {
            self.redact(s)
        })))
    }
}

impl TokenSource {
    /// `Authorization: Basic base64(urlencode(client_id) ":" urlencode(secret))`, as
    /// RFC 6749 section 2.3.1 says; marked sensitive.
    fn basic_credentials(&self) -> Result<HeaderValue, Attempt> {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let pair = format!("{}:{}", enc(&self.client_id), enc(self.secret.expose()));
        let b64 = base64::engine::general_purpose::STANDARD.encode(pair);
        let mut v = HeaderValue::from_str(&format!("Basic {b64}"))
            .map_err(|_| Attempt::Transient("client credentials do not fit in a header".into()))?;
        v.set_sensitive(true);
        Ok(v)
    }
}

/// The most of a server's text an error carries.
const EXCERPT_CHARS: usize = 300;

/// Server text fit for an error or a terminal: one line, control and bidi characters
/// replaced by spaces, runs of spaces collapsed, at most [`EXCERPT_CHARS`] characters.
/// Redact before calling it, so a secret cannot be cut into a fragment that escapes.
pub(crate) fn excerpt(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
                ' '
            } else {
                c
            }
        })
        .collect();
    let one_line = clean.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > EXCERPT_CHARS {
        let t: String = one_line.chars().take(EXCERPT_CHARS).collect();
        format!("{t}…")
    } else {
        one_line
    }
}

enum Attempt {
    Refused(AuthFailure),
    Transient(String),
}

/// `{"access_token": …, "expires_in": 3599 | "3599", …}` → (token, lifetime).
fn parse_token(bytes: &[u8]) -> Result<(String, Duration), String> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("token response is not JSON ({e})"))?;
    let token = v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("token response has no access_token")?
        .to_string();
    let secs = match v.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    // Entra randomises lifetimes (60–90 min); when absent assume a conservative hour.
    let secs = secs.unwrap_or(3599).clamp(1, 86_400);
    Ok((token, Duration::from_secs(secs)))
}

/// An AADSTS error body → the failure. Falls back to the `AADSTSnnn:` prefix of
/// `error_description` when `error_codes` is missing, and to an excerpt of the body when
/// it is not Microsoft's JSON (a proxy's or a double's plain text).
fn parse_refusal(status: u16, bytes: &[u8], redact: impl Fn(&str) -> String) -> AuthFailure {
    let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let has_fields = ["error", "error_description", "error_codes"]
        .iter()
        .any(|k| v.get(k).is_some());
    if !has_fields {
        let text = excerpt(&redact(&String::from_utf8_lossy(bytes)));
        return AuthFailure::Other {
            status,
            code: None,
            message: if text.is_empty() {
                "no error description (empty body)".into()
            } else {
                text
            },
        };
    }
    let desc = v
        .get("error_description")
        .and_then(Value::as_str)
        .unwrap_or("");
    let code = v
        .get("error_codes")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_u64)
        .or_else(|| {
            let rest = desc.trim_start().strip_prefix("AADSTS")?;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        });
    // The first line of the description, without trace and correlation ids.
    let first = desc.split(['\r', '\n']).next().unwrap_or("").trim();
    let message = if first.is_empty() {
        v.get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error description")
            .to_string()
    } else {
        first.chars().take(300).collect()
    };
    let message = excerpt(&redact(&message));
    match code {
        Some(c) => AuthFailure::from_aadsts(c, status, message),
        None => AuthFailure::Other {
            status,
            code: None,
            message,
        },
    }
}

/// A reqwest error with its sources, e.g. "error sending request: connection refused".
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_as_number_or_string() {
        let (t, d) =
            parse_token(br#"{"token_type":"Bearer","expires_in":3599,"access_token":"abc"}"#)
                .expect("v2");
        assert_eq!((t.as_str(), d.as_secs()), ("abc", 3599));
        let (_, d) = parse_token(
            br#"{"token_type":"Bearer","expires_in":"4000","expires_on":"1431659094","access_token":"x"}"#,
        )
        .expect("v1");
        assert_eq!(d.as_secs(), 4000);
        assert!(parse_token(b"<html>").is_err());
        assert!(parse_token(br#"{"expires_in":1}"#).is_err());
    }

    #[test]
    fn aadsts_codes_map_to_states() {
        let body = |code: u64| {
            format!(
                r#"{{"error":"invalid_client","error_description":"AADSTS{code}: something.\r\nTrace ID: 1\r\nCorrelation ID: 2","error_codes":[{code}]}}"#
            )
        };
        let f = |code| parse_refusal(401, body(code).as_bytes(), |s| s.to_string());
        assert_eq!(f(7000222), AuthFailure::SecretExpired);
        assert_eq!(f(7000222).label(), "client secret expired");
        assert_eq!(f(7000215).label(), "wrong secret");
        assert_eq!(f(700016).label(), "app not in tenant");
        assert_eq!(f(90002).label(), "wrong tenant");
        assert_eq!(f(900023).label(), "wrong tenant");
        assert!(matches!(
            f(12345),
            AuthFailure::Other {
                code: Some(12345),
                ..
            }
        ));
        // description prefix only, no error_codes
        let g = parse_refusal(
            400,
            br#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'x' not found."}"#,
            |s| s.to_string(),
        );
        assert_eq!(g, AuthFailure::WrongTenant { code: 90002 });
        // an echoed secret is redacted
        let h = parse_refusal(
            400,
            br#"{"error":"x","error_description":"bad value hunter2 given"}"#,
            |s| s.replace("hunter2", "<redacted>"),
        );
        assert!(!h.to_string().contains("hunter2"), "{h}");
    }

    #[test]
    fn a_plain_text_refusal_is_kept_short_on_one_line_and_redacted() {
        let f = parse_refusal(400, b"bad credentials in authorization header\n", |s| {
            s.to_string()
        });
        assert_eq!(
            f.to_string(),
            "token request refused (HTTP 400): bad credentials in authorization header"
        );
        let long = format!(
            "invalid client hunter2-secret\r\n\x1b[2K{}\u{202e}end",
            "x".repeat(1000)
        );
        let f = parse_refusal(401, long.as_bytes(), |s| {
            s.replace("hunter2-secret", "<redacted>")
        });
        let m = f.to_string();
        assert!(!m.contains("hunter2"), "{m}");
        assert!(
            !m.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{m:?}"
        );
        assert!(m.chars().count() < 400, "{}", m.len());
        assert!(m.contains("invalid client <redacted> [2K"), "{m}");
        let f = parse_refusal(400, b"", |s| s.to_string());
        assert!(f.to_string().contains("empty body"), "{f}");
    }

    #[test]
    fn token_debug_is_redacted() {
        let t = AccessToken {
            value: "eyJsecret-token".into(),
            generation: 1,
            refresh_at: Instant::now(),
            expires_at: Instant::now(),
            expires_at_utc: Utc::now(),
        };
        assert!(!format!("{t:?}").contains("eyJsecret-token"));
        let h = t.bearer().expect("header");
        assert!(h.is_sensitive());
        assert!(!format!("{h:?}").contains("eyJsecret-token"));
    }
}
