//! The Office 365 Management Activity API client: subscriptions, content listings (all
//! pages) and blob fetches for one tenant, with every defence management-api.md §0.2 asks
//! for. It is the only code in the crate that talks to Microsoft.
//!
//! What it guarantees:
//! - `PublisherIdentifier=<tenant>` on every request, blob GETs included; timestamps are
//!   URL-encoded.
//! - `NextPageUri` (or `NextPageUrl`, any casing) is followed verbatim — never rebuilt, the
//!   query names may be lower-cased — and only when its scheme, host and port equal the
//!   configured API's; a blob's `contentUri` is pinned the same way. Anything else is
//!   [`ApiError::ForeignHost`] and no request is made, so the bearer token is never sent to
//!   another host (invariant 7). Redirects are never followed.
//! - Pagination is loop-guarded; AF20031 (stale `nextPage`) restarts the window a bounded
//!   number of times.
//! - Bounded concurrency (a semaphore of `max_concurrency`) and a per-tenant token-bucket
//!   budget (`requests_per_minute`) shared by every clone.
//! - Jittered exponential backoff that honours `Retry-After` for AF429 (403 or 429),
//!   AF50000, 5xx, 408, network errors, resets and truncated or non-JSON bodies; after a
//!   bounded number of attempts the caller gets [`ApiError::Throttled`] /
//!   [`ApiError::Transient`] / [`ApiError::Malformed`] and decides.
//! - One token refresh and retry on 401 (see [`super::auth`]).
//! - Clock skew is tracked from the `Date` header; [`ApiClient::server_now`] is the local
//!   clock corrected by it (AF20055 windows are computed from it).
//!
//! What it must not do: write SQL, keep cursors or decide what a failure means for the
//! store (that is the collect loop's job), or log headers, secrets or tokens. Its tracing
//! events carry `content_type`, `window_start`, `content_id` and `attempt` fields.

use super::auth::{AuthFailure, AuthState, TokenSource, error_chain};
use crate::config::Office365;
use crate::model::{BlobRef, ContentType, format_api_time, parse_time};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, RETRY_AFTER};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use url::Url;

/// Everything that can go wrong with one API call, after retries. `Display` never contains
/// a secret or a token (server texts are redacted and shortened).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// AF429 / 429 throttling still after every attempt.
    #[error("throttled by the API ({code}) after {attempts} attempts")]
    Throttled {
        code: String,
        attempts: u32,
        retry_after: Option<Duration>,
    },
    /// Network errors, resets, 5xx, 408, AF50000 — still failing after every attempt.
    #[error("transient failure: {0}")]
    Transient(String),
    #[error("authentication failed: {0}")]
    Auth(AuthFailure),
    /// AF20022: no subscription for this content type (start it).
    #[error("no subscription for this content type (AF20022)")]
    SubscriptionMissing,
    /// AF20023: an admin disabled the subscription, or unified audit is off.
    #[error(
        "subscription disabled (AF20023): an admin disabled it or unified audit logging is off"
    )]
    SubscriptionDisabled,
    /// The malformed "Tenant … does not exist" 400 (DataServiceException).
    #[error(
        "unified audit logging is probably disabled (takes up to 60 min after enabling): the API says the tenant does not exist"
    )]
    AuditDisabled,
    /// AF10001: the app lacks ActivityFeed.Read (or ActivityFeed.ReadDlp for DLP.All).
    #[error(
        "permission missing (AF10001): grant the app ActivityFeed.Read (and ActivityFeed.ReadDlp for DLP.All) as Application permissions with admin consent"
    )]
    PermissionMissing,
    /// AF20055 / AF20030: the window is longer than 24 h, reversed, or older than 7 days.
    #[error(
        "window rejected (AF20055): longer than 24 h, start not before end, or older than 7 days"
    )]
    BadWindow,
    /// AF20051, or `contentExpiration` already passed: the blob can never be fetched.
    #[error("content expired (AF20051)")]
    Expired,
    /// AF20050 / 404: the blob does not exist.
    #[error("content not found (AF20050/404)")]
    NotFound,
    /// AF20052: the content id in the URL is invalid.
    #[error("content id invalid (AF20052)")]
    InvalidContentId,
    /// A URL from a response points away from the configured API host; nothing was sent.
    #[error(
        "refused to follow a URL to foreign host {url_host} (only the configured API host gets the token)"
    )]
    ForeignHost { url_host: String },
    /// The response was not what the API sends (non-JSON listing, truncated blob, loop).
    #[error("malformed response: {0}")]
    Malformed(String),
    /// Anything else: configuration errors (AF20010–AF20020), unexpected statuses.
    #[error("{0}")]
    Fatal(String),
}

impl ApiError {
    /// True when retrying this blob can never help: record a gap instead.
    pub fn is_terminal_for_blob(&self) -> bool {
        matches!(
            self,
            ApiError::Expired
                | ApiError::NotFound
                | ApiError::InvalidContentId
                | ApiError::ForeignHost { .. }
        )
    }

    /// A stable snake_case name for counters, `stats` and the ledger.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Throttled { .. } => "throttled",
            ApiError::Transient(_) => "transient",
            ApiError::Auth(_) => "auth",
            ApiError::SubscriptionMissing => "subscription_missing",
            ApiError::SubscriptionDisabled => "subscription_disabled",
            ApiError::AuditDisabled => "audit_disabled",
            ApiError::PermissionMissing => "permission_missing",
            ApiError::BadWindow => "bad_window",
            ApiError::Expired => "expired",
            ApiError::NotFound => "not_found",
            ApiError::InvalidContentId => "invalid_content_id",
            ApiError::ForeignHost { .. } => "foreign_host",
            ApiError::Malformed(_) => "malformed",
            ApiError::Fatal(_) => "fatal",
        }
    }
}

/// Retry and timing knobs. `Default` is for production; tests shorten the delays.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per request (the first try included).
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is capped (and the attempt still counts).
    pub max_retry_after: Duration,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// How often a window is restarted on AF20031 or a pagination loop.
    pub window_restarts: u32,
    /// Pages per window before the listing is declared a loop.
    pub max_pages: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
            request_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(15),
            window_restarts: 2,
            max_pages: 100_000,
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with jitter (50–100 % of the step) for attempt `n` (1-based).
    pub fn backoff(&self, n: u32) -> Duration {
        let step = self
            .base_delay
            .saturating_mul(1u32 << n.saturating_sub(1).min(16))
            .min(self.max_delay);
        step.mul_f64(rand::random_range(0.5..=1.0))
    }
}

/// A subscription as `subscriptions/list` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Subscription {
    pub content_type: String,
    pub status: String,
}

/// Counters for `stats` and the UI.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ApiStats {
    pub requests: u64,
    pub retries: u64,
    pub throttled: u64,
    /// Errors seen (including retried ones) by AF code or `http_<status>` / `network`.
    pub errors_by_code: BTreeMap<String, u64>,
    /// Server clock minus local clock, from the last `Date` header.
    pub clock_skew_ms: i64,
}

/// The Management Activity API for one tenant. Cheap to clone; clones share the token,
/// the concurrency limit, the request budget and the skew estimate.
#[derive(Clone)]
pub struct ApiClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    auth: TokenSource,
    feed: String,
    pin: Pin,
    tenant: String,
    publisher: String,
    policy: RetryPolicy,
    sem: Semaphore,
    bucket: Mutex<Bucket>,
    /// No request before this (set by a Retry-After so all tasks pause, not just one).
    not_before: Mutex<Option<Instant>>,
    skew_ms: AtomicI64,
    requests: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

/// The configured API origin; every URL taken from a response must match it.
#[derive(Debug, Clone)]
struct Pin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

struct Bucket {
    tokens: f64,
    cap: f64,
    per_sec: f64,
    last: Instant,
}

/// What a log line says about the call.
#[derive(Default, Clone, Copy)]
struct Ctx<'a> {
    op: &'static str,
    content_type: Option<ContentType>,
    window_start: Option<DateTime<Utc>>,
    content_id: Option<&'a str>,
}

impl Ctx<'_> {
    fn ct(&self) -> &'static str {
        self.content_type.map(ContentType::as_str).unwrap_or("")
    }
    fn ws(&self) -> String {
        self.window_start.map(format_api_time).unwrap_or_default()
    }
}

/// A completed HTTP exchange.
struct Resp {
    headers: HeaderMap,
    body: Bytes,
}

/// A failed call: the error and, when the server sent one, its AF code.
struct Failed {
    err: ApiError,
    af: Option<String>,
}

impl From<ApiError> for Failed {
    fn from(err: ApiError) -> Self {
        Failed { err, af: None }
    }
}

enum Outcome {
    Done(Resp),
    Retry {
        why: String,
        key: String,
        throttle: bool,
        retry_after: Option<Duration>,
        malformed: bool,
    },
    Unauthorized(Option<String>),
    Fail(Failed),
}

/// Clock skew below this is Date-header noise (1 s resolution) and is ignored.
const SKEW_THRESHOLD_MS: i64 = 2000;

impl ApiClient {
    /// A client with production retry timing.
    pub fn new(o: &Office365) -> anyhow::Result<ApiClient> {
        ApiClient::with_policy(o, RetryPolicy::default())
    }

    /// A client with the given retry timing (tests use short delays).
    pub fn with_policy(o: &Office365, policy: RetryPolicy) -> anyhow::Result<ApiClient> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(policy.connect_timeout)
            .user_agent(concat!("m365audit/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("building the HTTP client: {}", error_chain(&e)))?;
        let api = Url::parse(&o.api_url)
            .map_err(|e| anyhow::anyhow!("api_url {:?} is not a URL: {e}", o.api_url))?;
        let pin = Pin {
            scheme: api.scheme().to_string(),
            host: api.host_str().unwrap_or("").to_ascii_lowercase(),
            port: api.port_or_known_default(),
        };
        let rpm = f64::from(o.requests_per_minute.max(1));
        let per_sec = rpm / 60.0;
        let cap = (per_sec * 5.0).max(1.0);
        Ok(ApiClient {
            inner: Arc::new(Inner {
                auth: TokenSource::new(o, http.clone(), policy.clone()),
                http,
                feed: format!(
                    "{}/api/v1.0/{}/activity/feed",
                    o.api_url.trim_end_matches('/'),
                    o.tenant_id
                ),
                pin,
                tenant: o.tenant_id.clone(),
                publisher: o.publisher_identifier.clone(),
                sem: Semaphore::new(o.max_concurrency.max(1)),
                bucket: Mutex::new(Bucket {
                    tokens: cap,
                    cap,
                    per_sec,
                    last: Instant::now(),
                }),
                not_before: Mutex::new(None),
                skew_ms: AtomicI64::new(0),
                requests: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                throttled: AtomicU64::new(0),
                errors: Mutex::new(BTreeMap::new()),
                policy,
            }),
        })
    }

    pub fn tenant_id(&self) -> &str {
        &self.inner.tenant
    }

    /// The authentication state for `stats` and the UI; never contains a secret.
    pub fn auth_state(&self) -> AuthState {
        self.inner.auth.state()
    }

    /// The local clock corrected by the skew seen in the API's `Date` headers (skew under
    /// 2 s is ignored). Before the first response it is the local clock.
    pub fn server_now(&self) -> DateTime<Utc> {
        let skew = self.inner.skew_ms.load(Ordering::Relaxed);
        let now = Utc::now();
        if skew.abs() >= SKEW_THRESHOLD_MS {
            now + chrono::Duration::milliseconds(skew)
        } else {
            now
        }
    }

    /// Request counters and the clock skew.
    pub fn stats(&self) -> ApiStats {
        ApiStats {
            requests: self.inner.requests.load(Ordering::Relaxed),
            retries: self.inner.retries.load(Ordering::Relaxed),
            throttled: self.inner.throttled.load(Ordering::Relaxed),
            errors_by_code: lock(&self.inner.errors).clone(),
            clock_skew_ms: self.inner.skew_ms.load(Ordering::Relaxed),
        }
    }

    /// `GET subscriptions/list`.
    pub async fn list_subscriptions(&self) -> Result<Vec<Subscription>, ApiError> {
        let url = format!("{}/subscriptions/list", self.inner.feed);
        let ctx = Ctx {
            op: "list_subscriptions",
            ..Ctx::default()
        };
        let resp = self
            .call(Method::GET, &url, ctx, check_json)
            .await
            .map_err(|f| f.err)?;
        let v: Value = serde_json::from_slice(&resp.body)
            .map_err(|e| ApiError::Malformed(format!("subscriptions/list: {e}")))?;
        let arr = v
            .as_array()
            .ok_or_else(|| ApiError::Malformed("subscriptions/list is not an array".into()))?;
        Ok(arr
            .iter()
            .map(|s| Subscription {
                content_type: field_ci(s, "contentType").unwrap_or_default(),
                status: field_ci(s, "status").unwrap_or_default(),
            })
            .collect())
    }

    /// `POST subscriptions/start?contentType=…`; AF20024 ("already enabled") is success.
    pub async fn start_subscription(&self, ct: ContentType) -> Result<(), ApiError> {
        let url = format!(
            "{}/subscriptions/start?contentType={}",
            self.inner.feed,
            enc(ct.as_str())
        );
        let ctx = Ctx {
            op: "start_subscription",
            content_type: Some(ct),
            ..Ctx::default()
        };
        match self.call(Method::POST, &url, ctx, |_| Ok(())).await {
            Ok(_) => {
                tracing::info!(content_type = ct.as_str(), "subscription started");
                Ok(())
            }
            Err(Failed { af: Some(af), .. }) if af.eq_ignore_ascii_case("AF20024") => {
                tracing::debug!(
                    content_type = ct.as_str(),
                    "subscription already enabled (AF20024)"
                );
                Ok(())
            }
            Err(f) => Err(f.err),
        }
    }

    /// Lists subscriptions and starts only the wanted content types that are not enabled.
    /// When the listing itself fails, every wanted type gets that error.
    pub async fn ensure_subscriptions(
        &self,
        wanted: &[ContentType],
    ) -> Vec<(ContentType, Result<(), ApiError>)> {
        let listed = match self.list_subscriptions().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "listing subscriptions failed");
                return wanted.iter().map(|ct| (*ct, Err(e.clone()))).collect();
            }
        };
        let mut out = Vec::with_capacity(wanted.len());
        for &ct in wanted {
            let enabled = listed.iter().any(|s| {
                s.content_type.eq_ignore_ascii_case(ct.as_str())
                    && s.status.eq_ignore_ascii_case("enabled")
            });
            let r = if enabled {
                Ok(())
            } else {
                self.start_subscription(ct).await
            };
            out.push((ct, r));
        }
        out
    }

    /// Every blob listed for `[start, end)` of content type `ct`, all pages, in listing
    /// order without repeats. Fails (and the caller must not advance its cursor) if any
    /// page fails; a window longer than 24 h or reversed is [`ApiError::BadWindow`] without
    /// a request.
    pub async fn list_window(
        &self,
        ct: ContentType,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<BlobRef>, ApiError> {
        if end <= start || end - start > chrono::Duration::hours(24) {
            return Err(ApiError::BadWindow);
        }
        let first = format!(
            "{}/subscriptions/content?contentType={}&startTime={}&endTime={}",
            self.inner.feed,
            enc(ct.as_str()),
            enc(&format_api_time(start)),
            enc(&format_api_time(end)),
        );
        let ctx = Ctx {
            op: "list_content",
            content_type: Some(ct),
            window_start: Some(start),
            content_id: None,
        };
        let mut restarts = 0;
        'window: loop {
            let mut url = first.clone();
            let mut seen_pages: HashSet<String> = HashSet::new();
            let mut seen_blobs: HashSet<String> = HashSet::new();
            let mut blobs = Vec::new();
            loop {
                if !seen_pages.insert(url.clone()) || seen_pages.len() > self.inner.policy.max_pages
                {
                    restarts += 1;
                    tracing::warn!(
                        content_type = ct.as_str(),
                        window_start = %ctx.ws(),
                        restarts,
                        "pagination loop: the same next page twice in one window"
                    );
                    if restarts > self.inner.policy.window_restarts {
                        return Err(ApiError::Malformed(
                            "pagination loop: the same NextPageUri twice in one window".into(),
                        ));
                    }
                    continue 'window;
                }
                let resp = match self.call(Method::GET, &url, ctx, check_listing).await {
                    Ok(r) => r,
                    Err(Failed { af: Some(af), err }) if af.eq_ignore_ascii_case("AF20031") => {
                        restarts += 1;
                        tracing::warn!(
                            content_type = ct.as_str(),
                            window_start = %ctx.ws(),
                            restarts,
                            "AF20031 invalid nextPage: restarting the window"
                        );
                        if restarts > self.inner.policy.window_restarts {
                            return Err(ApiError::Transient(format!(
                                "AF20031 invalid nextPage persisted after {} window restarts: {err}",
                                restarts - 1
                            )));
                        }
                        continue 'window;
                    }
                    Err(f) => return Err(f.err),
                };
                let page: Vec<BlobRef> = serde_json::from_slice(&resp.body)
                    .map_err(|e| ApiError::Malformed(format!("content listing: {e}")))?;
                for b in page {
                    if seen_blobs.insert(b.content_id.clone()) {
                        blobs.push(b);
                    }
                }
                match next_page(&resp.headers) {
                    None => {
                        tracing::debug!(
                            content_type = ct.as_str(),
                            window_start = %ctx.ws(),
                            blobs = blobs.len(),
                            pages = seen_pages.len(),
                            "window listed"
                        );
                        return Ok(blobs);
                    }
                    Some(next) => {
                        // Checked here (not only in `call`) so a foreign next page fails
                        // the window even if it would repeat an earlier URL.
                        self.pinned(&next)?;
                        url = next;
                    }
                }
            }
        }
    }

    /// The records of one blob: the raw body, verified to be a complete JSON array.
    /// Retries inside; an expired blob (by `contentExpiration` against [`Self::server_now`])
    /// is [`ApiError::Expired`] without a request.
    pub async fn fetch_blob(&self, blob: &BlobRef) -> Result<Bytes, ApiError> {
        if let Some(exp) = parse_time(&blob.content_expiration)
            && exp <= self.server_now()
        {
            return Err(ApiError::Expired);
        }
        let ctx = Ctx {
            op: "fetch_blob",
            content_type: blob.content_type.parse().ok(),
            window_start: None,
            content_id: Some(&blob.content_id),
        };
        let resp = self
            .call(Method::GET, &blob.content_uri, ctx, check_blob)
            .await
            .map_err(|f| f.err)?;
        Ok(resp.body)
    }

    /// Checks a URL against the pin and adds `PublisherIdentifier` if it has none. The rest
    /// of the URL is kept as given.
    fn pinned(&self, raw: &str) -> Result<Url, ApiError> {
        let base = Url::parse(&self.inner.feed)
            .map_err(|e| ApiError::Fatal(format!("bad api_url: {e}")))?;
        let u = base
            .join(raw.trim())
            .map_err(|e| ApiError::Malformed(format!("unparsable URL from the API: {e}")))?;
        let host = u.host_str().unwrap_or("").to_ascii_lowercase();
        let port = u.port_or_known_default();
        let p = &self.inner.pin;
        if u.scheme() != p.scheme || host != p.host || port != p.port {
            return Err(ApiError::ForeignHost {
                url_host: match port {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                },
            });
        }
        let has_publisher = u
            .query_pairs()
            .any(|(k, _)| k.eq_ignore_ascii_case("PublisherIdentifier"));
        if has_publisher {
            return Ok(u);
        }
        let mut s = u.to_string();
        if let Some(i) = s.find('#') {
            s.truncate(i);
        }
        s.push(if u.query().is_some() { '&' } else { '?' });
        s.push_str("PublisherIdentifier=");
        s.push_str(&enc(&self.inner.publisher));
        Url::parse(&s).map_err(|e| ApiError::Malformed(format!("URL: {e}")))
    }

    async fn wait_turn(&self) {
        // A Retry-After pause shared by every task.
        let nb = *lock(&self.inner.not_before);
        if let Some(t) = nb
            && t > Instant::now()
        {
            tokio::time::sleep_until(t).await;
        }
        // The token bucket.
        loop {
            let wait = {
                let mut b = lock(&self.inner.bucket);
                let now = Instant::now();
                let add = now.duration_since(b.last).as_secs_f64() * b.per_sec;
                b.tokens = (b.tokens + add).min(b.cap);
                b.last = now;
                if b.tokens >= 1.0 {
                    b.tokens -= 1.0;
                    None
                } else {
                    Some(Duration::from_secs_f64((1.0 - b.tokens) / b.per_sec))
                }
            };
            match wait {
                None => return,
                Some(d) => tokio::time::sleep(d).await,
            }
        }
    }

    fn count_error(&self, key: &str) {
        *lock(&self.inner.errors).entry(key.to_string()).or_insert(0) += 1;
    }

    /// One API request with pinning, budget, concurrency limit, retries and 401 refresh.
    /// `check` validates a 2xx body; a failing check is retried like a truncated body.
    async fn call(
        &self,
        method: Method,
        raw_url: &str,
        ctx: Ctx<'_>,
        check: fn(&[u8]) -> Result<(), String>,
    ) -> Result<Resp, Failed> {
        let url = self.pinned(raw_url)?;
        let policy = &self.inner.policy;
        let mut attempt: u32 = 0;
        let mut refreshed = false;
        loop {
            attempt += 1;
            self.wait_turn().await;
            let token = self.inner.auth.token().await?;
            let outcome = {
                let _permit = self
                    .inner
                    .sem
                    .acquire()
                    .await
                    .map_err(|_| ApiError::Fatal("client shut down".into()))?;
                self.inner.requests.fetch_add(1, Ordering::Relaxed);
                let mut req = self
                    .inner
                    .http
                    .request(method.clone(), url.clone())
                    .header(AUTHORIZATION, token.bearer()?)
                    .header(ACCEPT, "application/json")
                    .timeout(policy.request_timeout);
                if method == Method::POST {
                    req = req.body(""); // Content-Length: 0; IIS answers 411 without it
                }
                let sent = req.send().await;
                match sent {
                    Err(e) => Outcome::Retry {
                        why: format!("network: {}", error_chain(&e)),
                        key: "network".into(),
                        throttle: false,
                        retry_after: None,
                        malformed: false,
                    },
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let headers = r.headers().clone();
                        self.note_date(&headers);
                        match r.bytes().await {
                            Err(e) => Outcome::Retry {
                                why: format!("reading the body: {}", error_chain(&e)),
                                key: "body".into(),
                                throttle: false,
                                retry_after: None,
                                malformed: false,
                            },
                            Ok(body) => self.classify(status, headers, body, check),
                        }
                    }
                }
            };
            match outcome {
                Outcome::Done(resp) => return Ok(resp),
                Outcome::Fail(f) => {
                    if let Some(af) = &f.af {
                        self.count_error(af);
                    }
                    tracing::warn!(
                        op = ctx.op,
                        content_type = ctx.ct(),
                        window_start = %ctx.ws(),
                        content_id = ctx.content_id.unwrap_or(""),
                        attempt,
                        code = f.err.code(),
                        error = %f.err,
                        "API request failed"
                    );
                    return Err(f);
                }
                Outcome::Unauthorized(af) => {
                    self.count_error(af.as_deref().unwrap_or("http_401"));
                    if !refreshed {
                        refreshed = true;
                        attempt -= 1;
                        tracing::info!(
                            op = ctx.op,
                            content_type = ctx.ct(),
                            "401 from the API: refreshing the token once"
                        );
                        self.inner.auth.refresh_after_401(&token).await?;
                        continue;
                    }
                    let err = if af.as_deref() == Some("AF10001") {
                        ApiError::PermissionMissing
                    } else {
                        ApiError::Auth(AuthFailure::Unauthorized)
                    };
                    return Err(Failed { err, af });
                }
                Outcome::Retry {
                    why,
                    key,
                    throttle,
                    retry_after,
                    malformed,
                } => {
                    self.count_error(&key);
                    if throttle {
                        self.inner.throttled.fetch_add(1, Ordering::Relaxed);
                    }
                    if attempt >= policy.max_attempts {
                        let err = if throttle {
                            ApiError::Throttled {
                                code: key,
                                attempts: attempt,
                                retry_after,
                            }
                        } else if malformed {
                            ApiError::Malformed(format!("{why} (after {attempt} attempts)"))
                        } else {
                            ApiError::Transient(format!("{why} (after {attempt} attempts)"))
                        };
                        tracing::warn!(
                            op = ctx.op,
                            content_type = ctx.ct(),
                            window_start = %ctx.ws(),
                            content_id = ctx.content_id.unwrap_or(""),
                            attempt,
                            code = err.code(),
                            "giving up after {attempt} attempts: {why}"
                        );
                        return Err(err.into());
                    }
                    let delay = match retry_after {
                        Some(ra) => {
                            let ra = ra.min(policy.max_retry_after);
                            let until = Instant::now() + ra;
                            let mut nb = lock(&self.inner.not_before);
                            if nb.is_none_or(|t| t < until) {
                                *nb = Some(until);
                            }
                            ra
                        }
                        None => policy.backoff(attempt),
                    };
                    self.inner.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        op = ctx.op,
                        content_type = ctx.ct(),
                        window_start = %ctx.ws(),
                        content_id = ctx.content_id.unwrap_or(""),
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        "retrying: {why}"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    fn note_date(&self, headers: &HeaderMap) {
        let Some(d) = headers
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| DateTime::parse_from_rfc2822(s).ok())
        else {
            return;
        };
        // The header has whole seconds: compare with the middle of that second.
        let server = d.with_timezone(&Utc) + chrono::Duration::milliseconds(500);
        let skew = (server - Utc::now()).num_milliseconds();
        let old = self.inner.skew_ms.swap(skew, Ordering::Relaxed);
        if (skew.abs() >= SKEW_THRESHOLD_MS) != (old.abs() >= SKEW_THRESHOLD_MS)
            || (skew - old).abs() > 60_000
        {
            tracing::warn!(
                clock_skew_ms = skew,
                "server clock differs from ours; using the server's time for windows"
            );
        }
    }

    fn classify(
        &self,
        status: u16,
        headers: HeaderMap,
        body: Bytes,
        check: fn(&[u8]) -> Result<(), String>,
    ) -> Outcome {
        if (200..300).contains(&status) {
            return match check(&body) {
                Ok(()) => Outcome::Done(Resp { headers, body }),
                Err(why) => Outcome::Retry {
                    why,
                    key: "malformed_body".into(),
                    throttle: false,
                    retry_after: None,
                    malformed: true,
                },
            };
        }
        let (af, message) = error_body(&body);
        let message = self.inner.auth.redact(&message);
        let retry_after = retry_after(&headers);
        let af_upper = af.as_deref().map(str::to_ascii_uppercase);
        let lower = message.to_ascii_lowercase();
        let is_af = |c: &str| af_upper.as_deref() == Some(c);
        let key = af.clone().unwrap_or_else(|| format!("http_{status}"));
        if is_af("AF429") || status == 429 || (status == 403 && lower.contains("too many request"))
        {
            return Outcome::Retry {
                why: format!("throttled (HTTP {status} {key})"),
                key,
                throttle: true,
                retry_after,
                malformed: false,
            };
        }
        let af5 = af_upper.as_deref().is_some_and(|c| c.starts_with("AF5"));
        if af5 || status >= 500 || status == 408 {
            return Outcome::Retry {
                why: format!("HTTP {status} {key}: {}", shorten(&message)),
                key,
                retry_after,
                throttle: false,
                malformed: false,
            };
        }
        if status == 401 {
            return Outcome::Unauthorized(af_upper);
        }
        let err = match af_upper.as_deref() {
            Some("AF10001") => ApiError::PermissionMissing,
            Some("AF20022") => ApiError::SubscriptionMissing,
            Some("AF20023") => ApiError::SubscriptionDisabled,
            Some("AF20055" | "AF20030") => ApiError::BadWindow,
            Some("AF20050") => ApiError::NotFound,
            Some("AF20051") => ApiError::Expired,
            Some("AF20052") => ApiError::InvalidContentId,
            Some("AF20010") => ApiError::Fatal(format!(
                "AF20010 the tenant in the URL does not match the token's tenant: check tenant_id ({})",
                shorten(&message)
            )),
            Some("AF20011" | "AF20012" | "AF20013") => {
                ApiError::Fatal(format!("{key}: tenant problem: {}", shorten(&message)))
            }
            Some("AF20020") => ApiError::Fatal(format!(
                "AF20020 content type not valid: {}",
                shorten(&message)
            )),
            _ if lower.contains("does not exist") || lower.contains("dataserviceexception") => {
                ApiError::AuditDisabled
            }
            _ if status == 404 => ApiError::NotFound,
            _ => ApiError::Fatal(format!("HTTP {status} {key}: {}", shorten(&message))),
        };
        Outcome::Fail(Failed { err, af: af_upper })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Percent-encodes a query value (`:` and `+` included, so `+00:00` survives).
fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn shorten(s: &str) -> String {
    let one_line = s.split(['\r', '\n']).next().unwrap_or("").trim();
    if one_line.chars().count() > 200 {
        let t: String = one_line.chars().take(200).collect();
        format!("{t}…")
    } else {
        one_line.to_string()
    }
}

/// `{"error": {"code": "AF…", "message": "…"}}` → (code, message). The malformed
/// "does not exist" body puts junk in `code`; then only the text matters.
fn error_body(body: &[u8]) -> (Option<String>, String) {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            return (
                None,
                String::from_utf8_lossy(body).chars().take(2000).collect(),
            );
        }
    };
    let e = v.get("error").or_else(|| v.get("Error")).unwrap_or(&v);
    let code = e
        .get("code")
        .or_else(|| e.get("Code"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string();
    let message = e
        .get("message")
        .or_else(|| e.get("Message"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let is_af = code.len() > 2
        && code[..2].eq_ignore_ascii_case("AF")
        && code[2..].bytes().all(|b| b.is_ascii_digit());
    if is_af {
        (Some(code), message)
    } else {
        (None, format!("{code} {message}").trim().to_string())
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let s = h.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let t = DateTime::parse_from_rfc2822(s).ok()?.with_timezone(&Utc);
    (t - Utc::now()).to_std().ok().or(Some(Duration::ZERO))
}

/// The next-page header under any casing of `NextPageUri` / `NextPageUrl`.
fn next_page(h: &HeaderMap) -> Option<String> {
    h.iter()
        .find(|(k, _)| {
            let k = k.as_str();
            k.eq_ignore_ascii_case("NextPageUri") || k.eq_ignore_ascii_case("NextPageUrl")
        })
        .and_then(|(_, v)| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A string field under either casing of its first letter.
fn field_ci(v: &Value, key: &str) -> Option<String> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .and_then(|(_, v)| v.as_str())
        .map(str::to_string)
}

fn check_json(b: &[u8]) -> Result<(), String> {
    serde_json::from_slice::<serde::de::IgnoredAny>(b)
        .map(|_| ())
        .map_err(|e| format!("body is not JSON ({e})"))
}

fn check_listing(b: &[u8]) -> Result<(), String> {
    serde_json::from_slice::<Vec<BlobRef>>(b)
        .map(|_| ())
        .map_err(|e| format!("content listing is not a JSON array of content objects ({e})"))
}

fn check_blob(b: &[u8]) -> Result<(), String> {
    serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(b)
        .map(|_| ())
        .map_err(|e| format!("blob is not a complete JSON array ({e})"))
}

#[cfg(test)]
mod tests {}
