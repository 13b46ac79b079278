//! The Office 365 Management Activity API client: subscriptions, content listings (all
//! pages) and blob fetches for one tenant, with every defence docs/management-api.md asks
//! for. It is the only code in the crate that talks to Microsoft.
//!
//! What it guarantees:
//! - `PublisherIdentifier=<tenant>` on every request, blob GETs included; timestamps are
//!   URL-encoded.
//! - `NextPageUri` (or `NextPageUrl`, any casing) is followed verbatim — never rebuilt, the
//!   query names may be lower-cased — and only when its scheme, host and port equal the
//!   configured API's. A foreign next page is never contacted: the current page is asked
//!   again (a bounded number of times per window), then the window fails with
//!   [`ApiError::ForeignHost`]. A blob's `contentUri` is pinned the same way; a foreign one
//!   is never contacted either — the blob is fetched by its `contentId` from the configured
//!   API host. So the bearer token never leaves the API host (invariant 7) and nothing is
//!   lost. Redirects are never followed.
//! - Pagination is loop-guarded; AF20031 (stale `nextPage`) restarts the window a bounded
//!   number of times.
//! - Bounded concurrency (a semaphore of `max_concurrency`) and a per-tenant token-bucket
//!   budget (`requests_per_minute`) shared by every clone.
//! - Jittered exponential backoff that honours `Retry-After` for AF429 (403 or 429),
//!   AF50000, 5xx, 408, network errors, resets and truncated or non-JSON bodies; after a
//!   bounded number of attempts the caller gets [`ApiError::Throttled`] /
//!   [`ApiError::Transient`] / [`ApiError::Malformed`] and decides.
//! - One token refresh and retry on 401 (see [`super::auth`]).
//! - Interop with other implementations (mocks, proxies): a 404 without an AF code is
//!   labelled by its route (a missing route, an unknown content type) with the body's
//!   excerpt; without a `subscriptions/list` route each content type is started anyway;
//!   no window is longer than `max_window_secs`.
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
    /// AF20055 / AF20030: the window is longer than the API allows (`max_window_secs`),
    /// reversed, or older than 7 days.
    #[error(
        "window rejected (AF20055): longer than the API allows (24 h at Microsoft; see max_window_secs), start not before end, or older than 7 days"
    )]
    BadWindow,
    /// AF20051, or `contentExpiration` already passed: the blob can never be fetched.
    #[error("content expired (AF20051)")]
    Expired,
    /// AF20050, or a 404 on a blob: the blob does not exist.
    #[error("content not found (AF20050/404)")]
    NotFound,
    /// A 404 without an AF code on a route that is not a blob: the API has no such route
    /// or does not know the content type. The text names which and shows the body.
    #[error("{0}")]
    NoRoute(String),
    /// AF20024: the subscription is already enabled. Success for a start.
    #[error("subscription already enabled (AF20024)")]
    AlreadyEnabled,
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
            ApiError::NoRoute(_) => "no_route",
            ApiError::AlreadyEnabled => "already_enabled",
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
    /// How often, per window, a page is requested again because its `NextPageUri`
    /// pointed at a foreign host (nothing is sent there; the same page asked again
    /// usually pages on the API host). Then the window fails with `ForeignHost`.
    pub foreign_retries: u32,
    /// Pages per window before the listing is declared a loop.
    pub max_pages: usize,
    /// Microsoft asks for 15 minutes between start requests: within this interval (on the
    /// server's clock) `start_subscription` returns the previous result without a request.
    pub min_start_interval: Duration,
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
            foreign_retries: 30,
            max_pages: 100_000,
            min_start_interval: Duration::from_secs(15 * 60),
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

impl std::fmt::Debug for ApiClient {
    /// The tenant and the API origin only: never a secret or a token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.inner.pin;
        f.debug_struct("ApiClient")
            .field("tenant", &self.inner.tenant)
            .field(
                "api",
                &format!("{}://{}:{}", p.scheme, p.host, p.port.unwrap_or(0)),
            )
            .finish_non_exhaustive()
    }
}

struct Inner {
    http: reqwest::Client,
    auth: TokenSource,
    feed: String,
    feed_url: Url,
    pin: Pin,
    /// The longest window `list_window` asks for (`max_window_secs`).
    max_window: chrono::Duration,
    /// The last start request per content type (server time) and its result.
    starts: Mutex<BTreeMap<ContentType, StartRecord>>,
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

/// When a subscription start was last requested (server time) and what it returned.
type StartRecord = (DateTime<Utc>, Result<(), ApiError>);

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
        let feed = format!(
            "{}/api/v1.0/{}/activity/feed",
            o.api_url.trim_end_matches('/'),
            o.tenant_id
        );
        let feed_url = Url::parse(&feed)
            .map_err(|e| anyhow::anyhow!("api_url {:?} is not a URL: {e}", o.api_url))?;
        let rpm = f64::from(o.requests_per_minute.max(1));
        let per_sec = rpm / 60.0;
        let cap = (per_sec * 5.0).max(1.0);
        Ok(ApiClient {
            inner: Arc::new(Inner {
                auth: TokenSource::new(o, http.clone(), policy.clone()),
                http,
                feed,
                feed_url,
                pin,
                max_window: chrono::Duration::seconds(o.max_window_secs.clamp(1, 86_400) as i64),
                starts: Mutex::new(BTreeMap::new()),
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

    /// The longest listing window this API accepts (`max_window_secs`).
    pub fn max_window(&self) -> chrono::Duration {
        self.inner.max_window
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
    /// At most one request per content type per `min_start_interval` (15 min, on the
    /// server's clock); within it the previous result is returned.
    pub async fn start_subscription(&self, ct: ContentType) -> Result<(), ApiError> {
        let now = self.server_now();
        if let Some((at, prev)) = lock(&self.inner.starts).get(&ct).cloned() {
            let min = chrono::Duration::from_std(self.inner.policy.min_start_interval)
                .unwrap_or_default();
            if now - at < min {
                tracing::debug!(
                    content_type = ct.as_str(),
                    "start requested less than the minimum interval ago; not asking again"
                );
                return prev;
            }
        }
        let r = self.start_subscription_now(ct).await;
        // A start that was throttled, failed transiently or never got a token may be
        // retried sooner; anything the API decided is remembered.
        if !matches!(
            r,
            Err(ApiError::Throttled { .. } | ApiError::Transient(_) | ApiError::Auth(_))
        ) {
            lock(&self.inner.starts).insert(ct, (now, r.clone()));
        }
        r
    }

    async fn start_subscription_now(&self, ct: ContentType) -> Result<(), ApiError> {
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
            Err(Failed {
                err: ApiError::AlreadyEnabled,
                ..
            }) => {
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
    /// When the listing fails in a way that says nothing about the tenant (an API without
    /// that route, an answer it did not expect), every wanted type is started anyway:
    /// start's own answer decides (AF20024 = enabled). Any other failure of the listing
    /// (auth, permission, audit off, throttling) is every wanted type's error.
    pub async fn ensure_subscriptions(
        &self,
        wanted: &[ContentType],
    ) -> Vec<(ContentType, Result<(), ApiError>)> {
        let listed = match self.list_subscriptions().await {
            Ok(l) => l,
            Err(e @ (ApiError::NoRoute(_) | ApiError::Fatal(_) | ApiError::Malformed(_))) => {
                tracing::warn!(error = %e, "listing subscriptions failed; starting each content type instead");
                Vec::new()
            }
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
    /// page fails; a window longer than `max_window_secs` (at most 24 h) or reversed is
    /// [`ApiError::BadWindow`] without a request.
    pub async fn list_window(
        &self,
        ct: ContentType,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<BlobRef>, ApiError> {
        if end <= start || end - start > self.inner.max_window {
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
        let mut foreign = 0;
        'window: loop {
            let mut url = first.clone();
            let mut seen_pages: HashSet<String> = HashSet::new();
            let mut seen_blobs: HashSet<String> = HashSet::new();
            let mut blobs = Vec::new();
            let mut again = false;
            loop {
                let repeat = std::mem::take(&mut again);
                if !repeat
                    && (!seen_pages.insert(url.clone())
                        || seen_pages.len() > self.inner.policy.max_pages)
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
                let (page, next) = parse_page(&resp.body, &resp.headers)?;
                for b in page {
                    if seen_blobs.insert(b.content_id.clone()) {
                        blobs.push(b);
                    }
                }
                match next {
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
                        // Checked here (not only in `call`) so a foreign next page is
                        // caught even if it would repeat an earlier URL.
                        if let Err(e) = self.pinned(&next) {
                            if !matches!(e, ApiError::ForeignHost { .. }) {
                                return Err(e);
                            }
                            foreign += 1;
                            self.count_error("foreign_next_page");
                            tracing::warn!(
                                content_type = ct.as_str(),
                                window_start = %ctx.ws(),
                                foreign,
                                error = %e,
                                "NextPageUri points at a foreign host: not followed; asking for this page again"
                            );
                            if foreign > self.inner.policy.foreign_retries {
                                return Err(e);
                            }
                            again = true;
                            continue;
                        }
                        url = next;
                    }
                }
            }
        }
    }

    /// The records of one blob: the raw body, verified to be a complete JSON array.
    /// Retries inside; an expired blob (by `contentExpiration` against [`Self::server_now`])
    /// is [`ApiError::Expired`] without a request. A `contentUri` on a foreign host is never
    /// followed: the blob is fetched by its `contentId` from the configured API host
    /// instead (`…/activity/feed/audit/{contentId}`, the documented form), so nothing is
    /// lost and no token leaves the API host.
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
        let uri = match self.pinned(&blob.content_uri) {
            Err(ApiError::ForeignHost { url_host }) => {
                self.count_error("foreign_content_uri");
                tracing::warn!(
                    content_type = ctx.ct(),
                    content_id = %blob.content_id,
                    foreign_host = %url_host,
                    "contentUri points at a foreign host: not followed; fetching the content id from the API host"
                );
                self.own_content_uri(&blob.content_id)
                    .ok_or(ApiError::ForeignHost { url_host })?
            }
            Err(e) => return Err(e),
            Ok(_) => blob.content_uri.clone(),
        };
        let resp = self
            .call(Method::GET, &uri, ctx, check_blob)
            .await
            .map_err(|f| f.err)?;
        Ok(resp.body)
    }

    /// `{api}/api/v1.0/{tenant}/activity/feed/audit/{contentId}` (the id as one path
    /// segment, so it cannot climb out of the feed).
    fn own_content_uri(&self, content_id: &str) -> Option<String> {
        if content_id.is_empty() || content_id == "." || content_id == ".." {
            return None;
        }
        let mut u = self.inner.feed_url.clone();
        u.path_segments_mut().ok()?.push("audit").push(content_id);
        Some(u.to_string())
    }

    /// Checks a URL against the pin and adds `PublisherIdentifier` if it has none. The rest
    /// of the URL is kept as given.
    fn pinned(&self, raw: &str) -> Result<Url, ApiError> {
        let u = self
            .inner
            .feed_url
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
                            Ok(body) => self.classify(status, headers, body, check, &ctx),
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
                    if f.err == ApiError::AlreadyEnabled {
                        // The caller's success, not a failure worth a warning.
                        return Err(f);
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
        ctx: &Ctx<'_>,
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
            Some("AF20024") => ApiError::AlreadyEnabled,
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
            // The malformed 400 of a tenant without unified audit logging (no AF code).
            _ if lower.contains("dataserviceexception")
                || (status == 400 && lower.contains("does not exist")) =>
            {
                ApiError::AuditDisabled
            }
            _ if status == 404 => no_af_404(ctx, &message),
            _ => ApiError::Fatal(format!("HTTP {status} {key}: {}", shorten(&message))),
        };
        Outcome::Fail(Failed { err, af: af_upper })
    }
}

/// A 404 without an AF code, by the route it answered: a blob is not found (a gap); any
/// other route is missing or does not know the content type — said so, with the body.
fn no_af_404(ctx: &Ctx<'_>, message: &str) -> ApiError {
    let body = super::auth::excerpt(message);
    let body = if body.is_empty() {
        "(empty body)".to_string()
    } else {
        body
    };
    let ct = ctx.ct();
    let what = match ctx.op {
        "fetch_blob" => return ApiError::NotFound,
        "list_subscriptions" => {
            "subscriptions/list: this API has no such route (HTTP 404 without an AF code)"
                .to_string()
        }
        "start_subscription" => format!(
            "subscriptions/start for {ct}: unknown content type or no such route on this API (HTTP 404 without an AF code)"
        ),
        "list_content" => format!(
            "subscriptions/content for {ct}: unknown content type or no such route on this API (HTTP 404 without an AF code)"
        ),
        op => format!("{op}: no such route on this API (HTTP 404 without an AF code)"),
    };
    ApiError::NoRoute(format!("{what}: {body}"))
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

/// One page of a content listing: its entries and the next page's URL, if any. The body
/// passed `check_listing` already (`call` retries one that does not), so the two must agree.
fn parse_page(
    body: &[u8],
    headers: &HeaderMap,
) -> Result<(Vec<BlobRef>, Option<String>), ApiError> {
    let page: Vec<BlobRef> = serde_json::from_slice(body)
        .map_err(|e| ApiError::Malformed(format!("content listing: {e}")))?;
    Ok((page, next_page(headers)))
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
mod tests {
    //! A tiny axum server on 127.0.0.1:0 plays login host and API; each test scripts its
    //! answers and then inspects every request the client made.
    use super::*;
    use axum::http::{HeaderMap as AxHeaders, HeaderValue, StatusCode};
    use axum::response::{IntoResponse, Response};
    use std::sync::atomic::AtomicUsize;

    const TENANT: &str = "4f1c2b7e-9a3d-4c8e-b2f6-7d1e0a9c5b31";
    const SECRET: &str = "Zq8~known.secret-value_123";

    #[derive(Clone, Debug)]
    struct Seen {
        method: String,
        path: String,
        query: String,
        auth: Option<String>,
        body: String,
        at: std::time::Instant,
    }

    type Handler = Arc<dyn Fn(&Seen, usize) -> Response + Send + Sync>;

    struct Server {
        base: String,
        addr: std::net::SocketAddr,
        seen: Arc<Mutex<Vec<Seen>>>,
        max_in_flight: Arc<AtomicUsize>,
        _stop: tokio::sync::oneshot::Sender<()>,
    }

    impl Server {
        fn seen(&self) -> Vec<Seen> {
            lock(&self.seen).clone()
        }
        fn api(&self, p: &str) -> Vec<Seen> {
            self.seen()
                .into_iter()
                .filter(|s| s.path.contains("/activity/feed/") && s.path.contains(p))
                .collect()
        }
        fn tokens(&self) -> Vec<Seen> {
            self.seen()
                .into_iter()
                .filter(|s| s.path.contains("/oauth2/"))
                .collect()
        }
    }

    /// Serves `h` (after `delay`) and records every request.
    async fn serve_with(h: Handler, delay: Duration) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let (seen2, inf, maxf) = (seen.clone(), in_flight.clone(), max_in_flight.clone());
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (h, seen, inf, maxf) = (h.clone(), seen2.clone(), inf.clone(), maxf.clone());
            async move {
                let now_in = inf.fetch_add(1, Ordering::SeqCst) + 1;
                maxf.fetch_max(now_in, Ordering::SeqCst);
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap_or_default();
                let s = Seen {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    query: parts.uri.query().unwrap_or("").to_string(),
                    auth: parts
                        .headers
                        .get("authorization")
                        .map(|v| v.to_str().unwrap_or("?").to_string()),
                    body: String::from_utf8_lossy(&body).into_owned(),
                    at: std::time::Instant::now(),
                };
                let n = {
                    let mut g = lock(&seen);
                    g.push(s.clone());
                    g.len() - 1
                };
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let r = h(&s, n);
                inf.fetch_sub(1, Ordering::SeqCst);
                r
            }
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Server {
            base: format!("http://{addr}"),
            addr,
            seen,
            max_in_flight,
            _stop: tx,
        }
    }

    async fn serve(h: Handler) -> Server {
        serve_with(h, Duration::ZERO).await
    }

    fn reply(status: u16, headers: &[(&str, &str)], body: impl Into<String>) -> Response {
        let mut hm = AxHeaders::new();
        hm.insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        for (k, v) in headers {
            hm.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        (
            StatusCode::from_u16(status).expect("status"),
            hm,
            body.into(),
        )
            .into_response()
    }

    fn af(status: u16, code: &str, msg: &str) -> Response {
        reply(
            status,
            &[],
            serde_json::json!({"error": {"code": code, "message": msg}}).to_string(),
        )
    }

    /// The token endpoint: token `tok-N` for the N-th request.
    fn token_reply(s: &Seen, counter: &AtomicUsize) -> Option<Response> {
        if !s.path.contains("/oauth2/") {
            return None;
        }
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Some(reply(
            200,
            &[],
            format!(
                r#"{{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"tok-{n}"}}"#
            ),
        ))
    }

    fn blob(id: &str, base: &str) -> serde_json::Value {
        serde_json::json!({
            "contentType": "Audit.Exchange", "contentId": id,
            "contentUri": format!("{base}/api/v1.0/{TENANT}/activity/feed/audit/{id}"),
            "contentCreated": "2026-11-26T10:00:00.000Z",
            "contentExpiration": "2099-12-03T10:00:00.000Z"})
    }

    fn office(login: &str, api: &str, ext: &str) -> Office365 {
        let text = format!(
            r#"{{"inputs": {{"office365": {{
                "credentials": {{"client_id": "0d5a1a0c-1111-2222-3333-444455556666",
                                 "client_secret": "{SECRET}", "tenant_id": "{TENANT}"}},
                "enabled": true, "id": "12345",
                "services": {{"exchange": {{}}, "sharepoint": {{}}}},
                "login_url": "{login}", "api_url": "{api}",
                "requests_per_minute": 600000 {ext} }}}}}}"#
        );
        crate::config::parse(&text, "test")
            .expect("config")
            .office365
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            window_restarts: 2,
            foreign_retries: 30,
            max_pages: 1000,
            min_start_interval: Duration::from_secs(15 * 60),
        }
    }

    fn client(srv: &Server, ext: &str) -> ApiClient {
        ApiClient::with_policy(&office(&srv.base, &srv.base, ext), fast()).expect("client")
    }

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).expect("time")
    }

    /// Lists the Exchange window the listing tests share: 10:00–11:00 on the test day.
    async fn list_hour(c: &ApiClient) -> Result<Vec<BlobRef>, ApiError> {
        c.list_window(
            ContentType::Exchange,
            t("2026-11-26T10:00:00Z"),
            t("2026-11-26T11:00:00Z"),
        )
        .await
    }

    fn feed() -> String {
        format!("/api/v1.0/{TENANT}/activity/feed")
    }

    /// The collect loop spawns these futures on the multi-threaded runtime.
    #[test]
    fn public_futures_are_send() {
        fn send<T: Send>(_: &T) {}
        let o = office("http://127.0.0.1:1", "http://127.0.0.1:1", "");
        let c = ApiClient::with_policy(&o, fast()).expect("client");
        let b: BlobRef = serde_json::from_value(blob("b", "http://127.0.0.1:1")).expect("blob");
        let (a, z) = (t("2026-11-26T10:00:00Z"), t("2026-11-26T11:00:00Z"));
        send(&c.fetch_blob(&b));
        send(&c.list_window(ContentType::Exchange, a, z));
        send(&c.ensure_subscriptions(&[]));
        send(&c.list_subscriptions());
        send(&c.start_subscription(ContentType::Exchange));
        fn sync_clone<T: Send + Sync + Clone>(_: &T) {}
        sync_clone(&c);
        let dbg = format!("{c:?}");
        assert!(dbg.contains(TENANT) && !dbg.contains(SECRET), "{dbg}");
    }

    #[tokio::test]
    async fn pagination_follows_next_page_verbatim_including_lowercased_params() {
        let tokens = Arc::new(AtomicUsize::new(0));
        let base = Arc::new(Mutex::new(String::new()));
        let (tk, b2) = (tokens.clone(), base.clone());
        let srv = serve(Arc::new(move |s: &Seen, _| {
            if let Some(r) = token_reply(s, &tk) {
                return r;
            }
            let base = lock(&b2).clone();
            let q = s.query.as_str();
            if q.contains("nextpage=p2") {
                // the other header name, lower-cased
                let next = format!(
                    "{base}{}/subscriptions/content?contenttype=Audit.Exchange&starttime=2026-11-26T10%3A00%3A00.000Z&endtime=2026-11-26T11%3A00%3A00.000Z&nextpage=p3&PUBLISHERIDENTIFIER={TENANT}",
                    feed()
                );
                reply(200, &[("nextpageurl", &next)], serde_json::json!([blob("b3", &base)]).to_string())
            } else if q.contains("nextpage=p3") {
                reply(200, &[], serde_json::json!([blob("b2", &base), blob("b4", &base)]).to_string())
            } else {
                let next = format!(
                    "{base}{}/subscriptions/content?contenttype=Audit.Exchange&starttime=2026-11-26T10%3A00%3A00.000Z&endtime=2026-11-26T11%3A00%3A00.000Z&nextpage=p2&publisheridentifier={TENANT}",
                    feed()
                );
                reply(200, &[("NextPageUri", &next)], serde_json::json!([blob("b1", &base), blob("b2", &base)]).to_string())
            }
        }))
        .await;
        *lock(&base) = srv.base.clone();
        let c = client(&srv, "");
        let got = list_hour(&c).await.expect("listing");
        let ids: Vec<_> = got.iter().map(|b| b.content_id.as_str()).collect();
        assert_eq!(ids, ["b1", "b2", "b3", "b4"]);
        let pages = srv.api("/subscriptions/content");
        assert_eq!(pages.len(), 3);
        assert_eq!(
            pages[0].query,
            format!(
                "contentType=Audit.Exchange&startTime=2026-11-26T10%3A00%3A00.000Z&endTime=2026-11-26T11%3A00%3A00.000Z&PublisherIdentifier={TENANT}"
            )
        );
        // followed verbatim: nothing rebuilt, no second PublisherIdentifier appended
        assert_eq!(
            pages[1].query,
            format!(
                "contenttype=Audit.Exchange&starttime=2026-11-26T10%3A00%3A00.000Z&endtime=2026-11-26T11%3A00%3A00.000Z&nextpage=p2&publisheridentifier={TENANT}"
            )
        );
        assert!(
            pages[2]
                .query
                .ends_with(&format!("nextpage=p3&PUBLISHERIDENTIFIER={TENANT}"))
        );
        assert!(
            pages
                .iter()
                .all(|p| p.auth.as_deref() == Some("Bearer tok-1"))
        );
        // the token request: v2 form body, no Authorization header
        let tok = srv.tokens();
        assert_eq!(tok.len(), 1);
        assert_eq!(tok[0].path, format!("/{TENANT}/oauth2/v2.0/token"));
        assert!(tok[0].auth.is_none());
        assert!(tok[0].body.contains("grant_type=client_credentials"));
        assert!(
            tok[0]
                .body
                .contains("scope=https%3A%2F%2Fmanage.office.com%2F.default")
        );
    }

    #[tokio::test]
    async fn foreign_next_page_and_content_uri_never_see_a_token() {
        let foreign = serve(Arc::new(|_: &Seen, _| reply(200, &[], "[]"))).await;
        let fbase = foreign.base.clone();
        let tokens = Arc::new(AtomicUsize::new(0));
        let tk = tokens.clone();
        let srv = serve(Arc::new(move |s: &Seen, _| {
            if let Some(r) = token_reply(s, &tk) {
                return r;
            }
            if s.path.contains("/audit/") {
                return reply(200, &[], r#"[{"Id":"r1"}]"#);
            }
            let next = format!("{fbase}{}/subscriptions/content?nextPage=evil", feed());
            reply(200, &[("NextPageUri", &next)], "[]")
        }))
        .await;
        let c = client(&srv, "");
        let err = list_hour(&c).await.expect_err("foreign host");
        assert_eq!(
            err,
            ApiError::ForeignHost {
                url_host: foreign.addr.to_string()
            }
        );
        assert_eq!(
            srv.api("/subscriptions/content").len(),
            31,
            "the first page and 30 repeats, each stopping at the foreign next page"
        );
        // a contentUri elsewhere (another port, "localhost", another scheme) is never
        // followed: the content id is fetched from the API host instead
        let mut b: BlobRef = serde_json::from_value(blob("b1", &foreign.base)).expect("blob");
        for uri in [
            format!("{}/x/audit/b1", foreign.base),
            format!("http://localhost:{}/x", srv.addr.port()),
            format!("https://{}/x", srv.addr),
        ] {
            b.content_uri = uri;
            assert_eq!(
                &c.fetch_blob(&b).await.expect("fetched by id")[..],
                br#"[{"Id":"r1"}]"#
            );
        }
        let own = srv.api("/audit/");
        assert_eq!(own.len(), 3);
        assert!(own.iter().all(|s| s.path == format!("{}/audit/b1", feed())));
        // a content id that could climb out of the feed is not fetched at all
        b.content_id = "..".into();
        assert!(matches!(
            c.fetch_blob(&b).await,
            Err(ApiError::ForeignHost { .. })
        ));
        b.content_id = "../../../x?y#z".into();
        let _ = c.fetch_blob(&b).await;
        let last = srv.api("/audit/").pop().expect("request");
        assert!(
            last.path.ends_with("/audit/..%2F..%2F..%2Fx%3Fy%23z"),
            "{}",
            last.path
        );
        let f = foreign.seen();
        assert!(f.iter().all(|s| s.auth.is_none()), "{f:?}");
        assert!(f.is_empty(), "the foreign host was contacted: {f:?}");
        assert_eq!(c.stats().errors_by_code.get("foreign_next_page"), Some(&31));
    }

    #[tokio::test]
    async fn a_foreign_next_page_is_not_followed_and_the_page_asked_again() {
        let foreign = serve(Arc::new(|_: &Seen, _| reply(200, &[], "[]"))).await;
        let fbase = foreign.base.clone();
        let tokens = Arc::new(AtomicUsize::new(0));
        let tk = tokens.clone();
        let firsts = Arc::new(AtomicUsize::new(0));
        let fi = firsts.clone();
        let base = Arc::new(Mutex::new(String::new()));
        let b2 = base.clone();
        let srv = serve(Arc::new(move |s: &Seen, _| {
            if let Some(r) = token_reply(s, &tk) {
                return r;
            }
            let base = lock(&b2).clone();
            if s.query.contains("nextPage=2") {
                return reply(200, &[], serde_json::json!([blob("b2", &base)]).to_string());
            }
            // the first listing pages to a foreign host, later ones to the API host
            let host = if fi.fetch_add(1, Ordering::SeqCst) == 0 {
                fbase.clone()
            } else {
                base.clone()
            };
            let next = format!("{host}{}/subscriptions/content?nextPage=2", feed());
            reply(
                200,
                &[("NextPageUri", &next)],
                serde_json::json!([blob("b1", &base)]).to_string(),
            )
        }))
        .await;
        *lock(&base) = srv.base.clone();
        let c = client(&srv, "");
        let got = list_hour(&c).await.expect("listing after one repeat");
        let ids: Vec<_> = got.iter().map(|b| b.content_id.as_str()).collect();
        assert_eq!(ids, ["b1", "b2"]);
        assert!(foreign.seen().is_empty());
        let pages = srv.api("/subscriptions/content");
        assert_eq!(pages.len(), 3);
        assert_eq!(pages[0].query, pages[1].query, "the first page asked again");
    }

    #[tokio::test]
    async fn retry_after_is_honoured_on_af429_403_and_429() {
        // API answers by index: 403 AF429 with Retry-After: 1, then 429, then the blob
        let tokens = Arc::new(AtomicUsize::new(0));
        let tk = tokens.clone();
        let api_calls = Arc::new(AtomicUsize::new(0));
        let ac = api_calls.clone();
        let srv = serve(Arc::new(move |s: &Seen, _| {
            if let Some(r) = token_reply(s, &tk) {
                return r;
            }
            match ac.fetch_add(1, Ordering::SeqCst) {
                0 => reply(
                    403,
                    &[("Retry-After", "1")],
                    r#"{"error":{"code":"AF429","message":"Too many requests. Method=GetBlob, PublisherId=x"}}"#,
                ),
                1 => reply(429, &[], r#"{"error":{"code":"AF429","message":"Too many requests."}}"#),
                _ => reply(200, &[], r#"[{"Id":"r1"}]"#),
            }
        }))
        .await;
        let c = client(&srv, "");
        let b: BlobRef = serde_json::from_value(blob("b1", &srv.base)).expect("blob");
        let body = c.fetch_blob(&b).await.expect("fetched after throttling");
        assert_eq!(&body[..], br#"[{"Id":"r1"}]"#);
        let calls = srv.api("/audit/");
        assert_eq!(calls.len(), 3);
        assert!(
            calls[1].at.duration_since(calls[0].at) >= Duration::from_millis(950),
            "Retry-After: 1 not honoured"
        );
        let st = c.stats();
        assert_eq!(st.throttled, 2);
        assert_eq!(st.errors_by_code.get("AF429"), Some(&2));
        for s in &calls {
            assert!(s.query.contains(&format!("PublisherIdentifier={TENANT}")));
        }
    }

    #[tokio::test]
    async fn persistent_throttling_and_server_errors_end_in_bounded_attempts() {
        let tokens = Arc::new(AtomicUsize::new(0));
        let tk = tokens.clone();
        let srv = serve(Arc::new(move |s: &Seen, _| {
            if let Some(r) = token_reply(s, &tk) {
                return r;
            }
            if s.path.ends_with("/throttled") {
                af(429, "AF429", "Too many requests.")
            } else if s.path.ends_with("/broken") {
                af(
                    500,
                    "AF50000",
                    "An internal error occurred. Retry the request.",
                )
            } else if s.path.ends_with("/truncated") {
                reply(200, &[], r#"[{"Id":"r1"},{"Id":"#)
            } else {
                reply(200, &[], "<html>not json</html>")
            }
        }))
        .await;
        let c = client(&srv, "");
        let mut b: BlobRef = serde_json::from_value(blob("x", &srv.base)).expect("blob");
        b.content_uri = format!("{}{}/audit/throttled", srv.base, feed());
        let e = c.fetch_blob(&b).await.expect_err("throttled");
        assert!(
            matches!(e, ApiError::Throttled { attempts: 4, .. }),
            "{e:?}"
        );
        b.content_uri = format!("{}{}/audit/broken", srv.base, feed());
        let e = c.fetch_blob(&b).await.expect_err("500");
        assert!(
            matches!(e, ApiError::Transient(_)) && !e.is_terminal_for_blob(),
            "{e:?}"
        );
        b.content_uri = format!("{}{}/audit/truncated", srv.base, feed());
        let e = c.fetch_blob(&b).await.expect_err("truncated");
        assert!(matches!(e, ApiError::Malformed(_)), "{e:?}");
        assert_eq!(srv.api("/audit/").len(), 12, "4 attempts each");
        // a non-JSON listing is Malformed (after retries)
        let e = list_hour(&c).await.expect_err("non-json");
        assert!(matches!(e, ApiError::Malformed(_)), "{e:?}");
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let tokens = Arc::new(AtomicUsize::new(0));
        let tk = tokens.clone();
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = n.clone();
        let srv = serve(Arc::new(move |s: &Seen, _| {
            if let Some(r) = token_reply(s, &tk) {
                return r;
            }
            match n2.fetch_add(1, Ordering::SeqCst) {
                0 => af(500, "AF50000", "An internal error occurred."),
                1 => reply(503, &[], "Service Unavailable"),
                2 => reply(200, &[], r#"[{"Id":"#),
                _ => reply(200, &[], r#"[{"Id":"r1"}]"#),
            }
        }))
        .await;
        let c = client(&srv, "");
        let b: BlobRef = serde_json::from_value(blob("b1", &srv.base)).expect("blob");
        assert!(c.fetch_blob(&b).await.is_ok());
        assert_eq!(srv.api("/audit/").len(), 4);
        assert_eq!(c.stats().retries, 3);
    }

    #[tokio::test]
    async fn a_401_refreshes_the_token_once() {
        let tokens = Arc::new(AtomicUsize::new(0));
        let tk = tokens.clone();
        let srv = serve(Arc::new(move |s: &Seen, _| {
            if let Some(r) = token_reply(s, &tk) {
                return r;
            }
            let good = s.auth.as_deref() == Some("Bearer tok-2");
            if s.path.ends_with("/always401") || !good {
                reply(
                    401,
                    &[],
                    r#"{"error":{"code":"","message":"Authorization has been denied"}}"#,
                )
            } else {
                reply(200, &[], "[]")
            }
        }))
        .await;
        let c = client(&srv, "");
        let b: BlobRef = serde_json::from_value(blob("b1", &srv.base)).expect("blob");
        assert!(c.fetch_blob(&b).await.is_ok());
        assert_eq!(srv.tokens().len(), 2);
        let calls = srv.api("/audit/");
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].auth.as_deref(), Some("Bearer tok-1"));
        assert_eq!(calls[1].auth.as_deref(), Some("Bearer tok-2"));

        let mut b2 = b.clone();
        b2.content_uri = format!("{}{}/audit/always401", srv.base, feed());
        let e = c.fetch_blob(&b2).await.expect_err("401 twice");
        assert_eq!(e, ApiError::Auth(AuthFailure::Unauthorized));
        assert_eq!(
            srv.tokens().len(),
            3,
            "exactly one refresh for this request"
        );
        assert_eq!(srv.api("/always401").len(), 2);
    }

    #[tokio::test]
    async fn subscriptions_start_only_missing_and_af20024_is_success() {
        let tokens = Arc::new(AtomicUsize::new(0));
        let tk = tokens.clone();
        let srv = serve(Arc::new(move |s: &Seen, _| {
            if let Some(r) = token_reply(s, &tk) {
                return r;
            }
            if s.path.ends_with("/subscriptions/list") {
                return reply(
                    200,
                    &[],
                    r#"[{"contentType":"Audit.Exchange","status":"enabled","webhook":null},
                        {"contentType":"Audit.SharePoint","status":"disabled","webhook":null}]"#,
                );
            }
            if s.query.contains("contentType=Audit.SharePoint") {
                af(400, "AF20024", "The subscription is already enabled. No property change.")
            } else if s.query.contains("contentType=DLP.All") {
                af(400, "AF20023", "The subscription was disabled.")
            } else if s.query.contains("contentType=Audit.AzureActiveDirectory") {
                af(401, "AF10001", "The permission set () sent in the request does not include the expected permission.")
            } else {
                reply(200, &[], r#"{"contentType":"Audit.General","status":"enabled","webhook":null}"#)
            }
        }))
        .await;
        let c = client(&srv, "");
        let r = c
            .ensure_subscriptions(&[
                ContentType::Exchange,
                ContentType::SharePoint,
                ContentType::General,
                ContentType::DlpAll,
                ContentType::AzureActiveDirectory,
            ])
            .await;
        let r: Vec<_> = r
            .into_iter()
            .map(|(ct, r)| (ct, r.map_err(|e| e.code())))
            .collect();
        assert_eq!(
            r,
            vec![
                (ContentType::Exchange, Ok(())),
                (ContentType::SharePoint, Ok(())),
                (ContentType::General, Ok(())),
                (ContentType::DlpAll, Err("subscription_disabled")),
                (ContentType::AzureActiveDirectory, Err("permission_missing")),
            ]
        );
        let starts = srv.api("/subscriptions/start");
        assert!(starts.iter().all(|s| s.method == "POST"));
        assert!(
            !starts.iter().any(|s| s.query.contains("Audit.Exchange")),
            "started an enabled type"
        );
        assert!(
            starts
                .iter()
                .all(|s| s.query.contains(&format!("PublisherIdentifier={TENANT}")))
        );
        // SharePoint, General, DLP once each; AAD twice (401 → one refresh + retry)
        assert_eq!(starts.len(), 5);
        // within 15 minutes nothing is started again; the previous results stand
        let again = c
            .ensure_subscriptions(&[ContentType::SharePoint, ContentType::DlpAll])
            .await;
        assert_eq!(again[0].1, Ok(()));
        assert_eq!(again[1].1, Err(ApiError::SubscriptionDisabled));
        assert_eq!(srv.api("/subscriptions/start").len(), 5);
    }

    #[tokio::test]
    async fn af20024_already_enabled_is_success_without_a_warning() {
        let buf = Captured::default();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(buf.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(sub);
        let tokens = Arc::new(AtomicUsize::new(0));
        let tk = tokens.clone();
        let srv = serve(Arc::new(move |s: &Seen, _| {
            token_reply(s, &tk).unwrap_or_else(|| {
                af(
                    400,
                    "AF20024",
                    "The subscription is already enabled. No property change.",
                )
            })
        }))
        .await;
        let c = client(&srv, "");
        assert_eq!(c.start_subscription(ContentType::Exchange).await, Ok(()));
        let log = String::from_utf8_lossy(&lock(&buf.0)).into_owned();
        assert!(log.contains("already enabled"), "{log}");
        assert!(
            !log.lines().any(|l| l.contains("WARN")),
            "AF20024 is success, not a warning:\n{log}"
        );
        assert!(!log.contains("fatal"), "{log}");
    }

    #[tokio::test]
    async fn aadsts_codes_surface_as_auth_state_without_secrets() {
        for (code, label) in [
            (7000222u64, "client secret expired"),
            (7000215, "wrong secret"),
            (700016, "app not in tenant"),
            (90002, "wrong tenant"),
            (900023, "wrong tenant"),
        ] {
            let srv = serve(Arc::new(move |s: &Seen, _| {
                if s.path.contains("/oauth2/") {
                    // a hostile server echoes the secret back; it must not reach us
                    reply(
                        401,
                        &[],
                        serde_json::json!({"error": "invalid_client",
                            "error_description": format!("AADSTS{code}: nope for {SECRET}.\r\nTrace ID: abc"),
                            "error_codes": [code]})
                        .to_string(),
                    )
                } else {
                    reply(200, &[], "[]")
                }
            }))
            .await;
            let c = client(&srv, "");
            assert_eq!(c.auth_state().state, "not_yet");
            let e = c.list_subscriptions().await.expect_err("refused");
            let ApiError::Auth(f) = &e else {
                panic!("{e:?}")
            };
            assert_eq!(f.label(), label);
            let st = c.auth_state();
            assert_eq!((st.state, st.label.as_str()), ("failed", label));
            for text in [
                format!("{e}"),
                format!("{e:?}"),
                format!("{st:?}"),
                serde_json::to_string(&st).unwrap_or_default(),
            ] {
                assert!(!text.contains(SECRET), "{text}");
            }
            assert!(srv.api("").is_empty(), "no API call without a token");
            // the refusal is remembered: no token storm
            let _ = c.list_subscriptions().await;
            assert_eq!(srv.tokens().len(), 1);
        }
    }

    /// A `MakeWriter` that appends every log line to a shared buffer.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[tokio::test]
    async fn invariant_7_trace_logs_never_carry_the_secret_or_a_token() {
        let buf = Captured::default();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(buf.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(sub);

        let tokens = Arc::new(AtomicUsize::new(0));
        let tk = tokens.clone();
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = n.clone();
        let srv = serve(Arc::new(move |s: &Seen, _| {
            if let Some(r) = token_reply(s, &tk) {
                return r;
            }
            let echo = format!("{} {SECRET}", s.auth.clone().unwrap_or_default());
            match n2.fetch_add(1, Ordering::SeqCst) {
                0 => reply(401, &[], r#"{"error":{"code":"","message":"denied"}}"#),
                1 => af(403, "AF429", &echo),
                2 => af(500, "AF50000", &echo),
                3 => reply(200, &[], "[{\"Id\":"),
                4 => reply(200, &[], "[]"),
                _ => af(400, "AF20002", &echo),
            }
        }))
        .await;
        let c = client(&srv, "");
        let b: BlobRef = serde_json::from_value(blob("b1", &srv.base)).expect("blob");
        assert!(c.fetch_blob(&b).await.is_ok());
        assert!(c.list_subscriptions().await.is_err());
        // and a refusing login host that echoes the secret
        let refuse = serve(Arc::new(|_: &Seen, _| {
            reply(401, &[], serde_json::json!({"error": "invalid_client",
                "error_description": format!("AADSTS7000215: Invalid client secret {SECRET} provided."),
                "error_codes": [7000215]}).to_string())
        }))
        .await;
        let c2 =
            ApiClient::with_policy(&office(&refuse.base, &srv.base, ""), fast()).expect("client");
        assert!(c2.list_subscriptions().await.is_err());

        let log = String::from_utf8_lossy(&lock(&buf.0)).into_owned();
        assert!(
            log.contains("retrying") && log.contains("wrong secret"),
            "{log}"
        );
        assert!(log.contains("content_id=\"b1\""), "{log}");
        for needle in [SECRET, "tok-1", "tok-2"] {
            assert!(
                !log.contains(needle),
                "{needle} leaked into the log:\n{log}"
            );
        }
    }

    #[tokio::test]
    async fn error_texts_never_carry_the_secret_or_the_token() {
        let tokens = Arc::new(AtomicUsize::new(0));
        let tk = tokens.clone();
        let srv = serve(Arc::new(move |s: &Seen, _| {
            if let Some(r) = token_reply(s, &tk) {
                return r;
            }
            // echo the Authorization header and the secret in an error message
            af(
                400,
                "AF20002",
                &format!("bad {} and {SECRET}", s.auth.clone().unwrap_or_default()),
            )
        }))
        .await;
        let c = client(&srv, "");
        let e = c.list_subscriptions().await.expect_err("400");
        for text in [format!("{e}"), format!("{e:?}")] {
            assert!(!text.contains(SECRET) && !text.contains("tok-1"), "{text}");
            assert!(text.contains("<redacted>"), "{text}");
        }
    }

    #[tokio::test]
    async fn audit_off_window_errors_and_expiry_map_to_their_variants() {
        let tokens = Arc::new(AtomicUsize::new(0));
        let tk = tokens.clone();
        let srv = serve(Arc::new(move |s: &Seen, _| {
            if let Some(r) = token_reply(s, &tk) {
                return r;
            }
            if s.path.ends_with("/subscriptions/list") {
                reply(400, &[], format!(r#"{{"error":{{"code":"StartSubscription [CorrId=1][TenantId={TENANT},ContentType=Audit.Exchange,ApplicationId=x,PublisherId=y][AppId","message":"x] failed. Exception: Microsoft.Office.Compliance.Audit.DataServiceException: Tenant {TENANT} does not exist.\r\n   at Microsoft.Office.Compliance.Audit.API.AzureManager.d__0.MoveNext()"}}}}"#))
            } else if s.path.ends_with("/subscriptions/content")
                && s.query.contains("Audit.SharePoint")
            {
                af(400, "AF20022", "No subscription found for the specified content type.")
            } else if s.path.ends_with("/subscriptions/content") {
                af(400, "AF20055", "Start time and end time must both be specified (or both omitted) and must be less than or equal to 24 hours apart, with the start time prior to end time and start time no more than 7 days in the past.")
            } else if s.path.ends_with("/gone") {
                af(404, "AF20051", "Content requested with the key x has already expired.")
            } else if s.path.ends_with("/bad") {
                af(400, "AF20052", "Content ID x in the URL is invalid.")
            } else {
                reply(404, &[], "")
            }
        }))
        .await;
        let c = client(&srv, "");
        let e = c.list_subscriptions().await.expect_err("audit off");
        assert_eq!(e, ApiError::AuditDisabled);
        assert!(e.to_string().contains(
            "unified audit logging is probably disabled (takes up to 60 min after enabling)"
        ));
        let r = c.ensure_subscriptions(&[ContentType::Exchange]).await;
        assert_eq!(r[0].1, Err(ApiError::AuditDisabled));

        let (a, b) = (t("2026-11-26T10:00:00Z"), t("2026-11-26T11:00:00Z"));
        assert_eq!(
            c.list_window(ContentType::Exchange, a, b).await,
            Err(ApiError::BadWindow)
        );
        assert_eq!(
            c.list_window(ContentType::SharePoint, a, b).await,
            Err(ApiError::SubscriptionMissing)
        );
        let before = srv.seen().len();
        let long = t("2026-11-27T10:00:01Z");
        assert_eq!(
            c.list_window(ContentType::Exchange, a, long).await,
            Err(ApiError::BadWindow)
        );
        assert_eq!(
            c.list_window(ContentType::Exchange, b, a).await,
            Err(ApiError::BadWindow)
        );
        assert_eq!(srv.seen().len(), before, "invalid windows are not sent");

        let mut bl: BlobRef = serde_json::from_value(blob("b1", &srv.base)).expect("blob");
        for (path, want) in [
            ("gone", ApiError::Expired),
            ("bad", ApiError::InvalidContentId),
            ("missing", ApiError::NotFound),
        ] {
            bl.content_uri = format!("{}{}/audit/{path}", srv.base, feed());
            let e = c.fetch_blob(&bl).await.expect_err(path);
            assert_eq!(e, want);
            assert!(e.is_terminal_for_blob());
        }
        // expired by contentExpiration: not even requested
        let before = srv.seen().len();
        bl.content_expiration = "2020-01-01T00:00:00.000Z".into();
        assert_eq!(c.fetch_blob(&bl).await, Err(ApiError::Expired));
        assert_eq!(srv.seen().len(), before);
    }

    #[tokio::test]
    async fn af20031_restarts_the_window_and_loops_are_guarded() {
        let tokens = Arc::new(AtomicUsize::new(0));
        let tk = tokens.clone();
        let stale_once = Arc::new(AtomicUsize::new(0));
        let so = stale_once.clone();
        let base = Arc::new(Mutex::new(String::new()));
        let b2 = base.clone();
        let srv = serve(Arc::new(move |s: &Seen, _| {
            if let Some(r) = token_reply(s, &tk) {
                return r;
            }
            let base = lock(&b2).clone();
            let q = &s.query;
            let is_loop = q.contains("Audit.SharePoint");
            let next = |p: &str| {
                format!(
                    "{base}{}/subscriptions/content?{}&nextPage={p}",
                    feed(),
                    q.split("&nextPage").next().unwrap_or("")
                )
            };
            if is_loop {
                // every page points at page "again": a loop
                return reply(200, &[("NextPageUri", &next("again"))], "[]");
            }
            if q.contains("nextPage=p2") {
                if so.fetch_add(1, Ordering::SeqCst) == 0 {
                    return af(400, "AF20031", "Invalid nextPage Input: p2.");
                }
                return reply(200, &[], serde_json::json!([blob("b2", &base)]).to_string());
            }
            reply(
                200,
                &[("NextPageUri", &next("p2"))],
                serde_json::json!([blob("b1", &base)]).to_string(),
            )
        }))
        .await;
        *lock(&base) = srv.base.clone();
        let c = client(&srv, "");
        let (a, b) = (t("2026-11-26T10:00:00Z"), t("2026-11-26T11:00:00Z"));
        let got = c
            .list_window(ContentType::Exchange, a, b)
            .await
            .expect("restarted");
        let ids: Vec<_> = got.iter().map(|b| b.content_id.as_str()).collect();
        assert_eq!(ids, ["b1", "b2"]);
        let pages = srv.api("/subscriptions/content");
        assert_eq!(pages.len(), 4, "page 1, stale page 2, page 1 again, page 2");
        assert_eq!(pages[0].query, pages[2].query);

        let e = c
            .list_window(ContentType::SharePoint, a, b)
            .await
            .expect_err("loop");
        assert!(
            matches!(e, ApiError::Malformed(ref m) if m.contains("loop")),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn date_header_skew_moves_server_now() {
        let tokens = Arc::new(AtomicUsize::new(0));
        let tk = tokens.clone();
        let srv = serve(Arc::new(move |s: &Seen, _| {
            if let Some(r) = token_reply(s, &tk) {
                return r;
            }
            let ahead = (Utc::now() + chrono::Duration::hours(3))
                .to_rfc2822()
                .replace("+0000", "GMT");
            reply(200, &[("date", &ahead)], "[]")
        }))
        .await;
        let c = client(&srv, "");
        let before = c.server_now();
        assert!((before - Utc::now()).num_seconds().abs() < 5);
        c.list_subscriptions().await.expect("list");
        let skew = (c.server_now() - Utc::now()).num_seconds();
        assert!((3 * 3600 - 5..=3 * 3600 + 5).contains(&skew), "skew {skew}");
        assert!(c.stats().clock_skew_ms > 3 * 3_600_000 - 5000);
    }

    #[tokio::test]
    async fn concurrency_is_bounded_by_max_concurrency() {
        let tokens = Arc::new(AtomicUsize::new(0));
        let tk = tokens.clone();
        let srv = serve_with(
            Arc::new(move |s: &Seen, _| {
                token_reply(s, &tk).unwrap_or_else(|| reply(200, &[], "[]"))
            }),
            Duration::from_millis(100),
        )
        .await;
        let c = client(&srv, r#", "max_concurrency": 2"#);
        c.list_subscriptions().await.expect("warm token"); // token fetched before the race
        let mut tasks = Vec::new();
        for i in 0..8 {
            let c = c.clone();
            let b: BlobRef =
                serde_json::from_value(blob(&format!("b{i}"), &srv.base)).expect("blob");
            tasks.push(tokio::spawn(async move { c.fetch_blob(&b).await }));
        }
        for t in tasks {
            assert!(t.await.expect("join").is_ok());
        }
        let max = srv.max_in_flight.load(Ordering::SeqCst);
        assert!(max <= 2, "{max} requests in flight with max_concurrency 2");
        assert_eq!(srv.api("/audit/").len(), 8);
    }

    #[tokio::test]
    async fn the_request_budget_spaces_requests() {
        let tokens = Arc::new(AtomicUsize::new(0));
        let tk = tokens.clone();
        let srv = serve(Arc::new(move |s: &Seen, _| {
            token_reply(s, &tk).unwrap_or_else(|| reply(200, &[], "[]"))
        }))
        .await;
        // 60/min = 1/s with a burst of 5: the 7th request waits about 2 s
        let o = office(&srv.base, &srv.base, "").clone();
        let o = Office365 {
            requests_per_minute: 60,
            ..o
        };
        let c = ApiClient::with_policy(&o, fast()).expect("client");
        for _ in 0..7 {
            c.list_subscriptions().await.expect("list");
        }
        let calls = srv.api("/subscriptions/list");
        let spread = calls[6].at.duration_since(calls[0].at);
        assert!(
            spread >= Duration::from_millis(1500),
            "budget not enforced: {spread:?}"
        );
    }

    #[tokio::test]
    async fn v1_token_with_string_expiry_is_refreshed_proactively() {
        let tokens = Arc::new(AtomicUsize::new(0));
        let tk = tokens.clone();
        let srv = serve(Arc::new(move |s: &Seen, _| {
            if s.path.contains("/oauth2/") {
                let n = tk.fetch_add(1, Ordering::SeqCst) + 1;
                return reply(200, &[], format!(r#"{{"token_type":"Bearer","expires_in":"2","expires_on":"1","resource":"https://manage.office.com","access_token":"tok-{n}"}}"#));
            }
            reply(200, &[], "[]")
        }))
        .await;
        let c = client(
            &srv,
            r#", "auth_version": "v1", "client_secret_expires": "2099-01-01""#,
        );
        assert!(c.auth_state().secret_expires_in_days.unwrap_or(0) > 365);
        c.list_subscriptions().await.expect("first");
        c.list_subscriptions().await.expect("second, same token");
        assert_eq!(srv.tokens().len(), 1);
        // 75 % of 2 s = 1.5 s: after that the next call gets a fresh token
        tokio::time::sleep(Duration::from_millis(1600)).await;
        c.list_subscriptions().await.expect("third");
        let tok = srv.tokens();
        assert_eq!(tok.len(), 2);
        assert_eq!(tok[0].path, format!("/{TENANT}/oauth2/token"));
        assert!(
            tok[0]
                .body
                .contains("resource=https%3A%2F%2Fmanage.office.com")
        );
        let calls = srv.api("/subscriptions/list");
        assert_eq!(calls[2].auth.as_deref(), Some("Bearer tok-2"));
        assert_eq!(c.auth_state().tokens_issued, 2);
    }

    /// Property tests of what turns the API's bytes into pages and records: a listing
    /// page (its body and its next-page header) and a blob (its record array, as the fetch
    /// checks it and the store splits it). Nothing panics; the check that decides a retry
    /// and the parser after it agree; what is kept agrees with `serde_json`. The seed
    /// corpus `tests/corpus/{pages,blobs}/` runs first. `PROPTEST_CASES` sets the number
    /// of generated cases.
    mod proptest_pages {
        use super::*;
        use proptest::prelude::*;

        fn corpus(dir: &str) -> Vec<(String, Vec<u8>)> {
            let d = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/corpus")
                .join(dir);
            let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&d)
                .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
                .map(|e| {
                    let p = e.unwrap().path();
                    (p.display().to_string(), std::fs::read(&p).unwrap())
                })
                .collect();
            v.sort();
            assert!(!v.is_empty(), "empty corpus {}", d.display());
            v
        }

        /// The listing page's properties for one body.
        fn check_page(body: &[u8]) -> Result<(), TestCaseError> {
            let parsed = parse_page(body, &HeaderMap::new());
            prop_assert_eq!(
                check_listing(body).is_ok(),
                parsed.is_ok(),
                "check and parser disagree"
            );
            if let Ok((page, next)) = parsed {
                prop_assert!(next.is_none());
                // serde_json's reading of the members that matter (an unknown member is
                // skipped unread, as it may hold what a `Value` refuses, e.g. `1E310`)
                type Entry = BTreeMap<String, Box<serde_json::value::RawValue>>;
                let items: Vec<Entry> = serde_json::from_slice(body)
                    .expect("serde_json refuses a page the parser took");
                prop_assert_eq!(items.len(), page.len());
                for (b, v) in page.iter().zip(items) {
                    for (k, got) in [
                        ("contentType", &b.content_type),
                        ("contentId", &b.content_id),
                        ("contentUri", &b.content_uri),
                        ("contentCreated", &b.content_created),
                        ("contentExpiration", &b.content_expiration),
                    ] {
                        let s: String = serde_json::from_str(v[k].get()).expect("a string");
                        prop_assert_eq!(&s, got);
                    }
                }
            }
            Ok(())
        }

        /// The blob's properties for one body: whatever the fetch accepts the store splits;
        /// what the store keeps is, record for record, what `serde_json` reads.
        fn check_blob_body(body: &[u8]) -> Result<(), TestCaseError> {
            let dets = crate::detect::Detections::empty();
            let dict = crate::store::SharedDict::default();
            let p = crate::store::prepare_blob(body, &dets, &dict).expect("prepare_blob");
            let reference = serde_json::from_slice::<Vec<Value>>(body);
            if check_blob(body).is_ok() {
                prop_assert!(
                    p.malformed.is_none(),
                    "the fetch took a blob the store calls malformed: {:?}",
                    p.malformed
                );
            }
            if reference.is_ok() {
                prop_assert!(
                    check_blob(body).is_ok(),
                    "the fetch refuses a blob serde_json reads"
                );
            }
            if p.malformed.is_some() {
                return Ok(());
            }
            // Record by record: kept exactly when serde_json reads the element as an
            // object the header rules accept (lone surrogate escapes read as U+FFFD, the
            // rule of every reader of a stored record: `model::parse_record`), as received.
            let unbommed = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
            let elems = serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(unbommed);
            prop_assert!(
                elems.is_ok(),
                "the store split a blob serde_json cannot: {:?}",
                elems.err()
            );
            let elems = elems.unwrap();
            prop_assert_eq!(p.total, elems.len());
            let bad: HashSet<usize> = p.bad_at.iter().map(|(i, _)| *i).collect();
            prop_assert_eq!(p.records.len() + bad.len(), elems.len());
            let mut kept = p.records.iter();
            for (i, e) in elems.iter().enumerate() {
                let v = crate::model::parse_record::<Value>(e.get().as_bytes());
                let valid = v
                    .as_ref()
                    .is_ok_and(|v| crate::model::RecordHeader::from_value(v).is_ok());
                prop_assert_eq!(
                    !bad.contains(&i),
                    valid,
                    "element {} kept/refused against serde_json: {}",
                    i,
                    e.get()
                );
                if valid {
                    let r = kept.next().unwrap();
                    // what the store keeps (compressed, no dictionary yet) is the element
                    let kept = zstd::decode_all(&r.data[..]).unwrap();
                    prop_assert_eq!(String::from_utf8(kept).unwrap(), e.get());
                    let v = v.unwrap();
                    prop_assert_eq!(Some(r.header.id.as_str()), v["Id"].as_str());
                }
            }
            Ok(())
        }

        #[test]
        fn the_page_corpus_holds() {
            for (name, body) in corpus("pages") {
                check_page(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }

        #[test]
        fn the_blob_corpus_holds() {
            for (name, body) in corpus("blobs") {
                check_blob_body(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }

        /// JSON text with numbers and strings in every form serde_json knows, including
        /// escapes of lone surrogates and numbers beyond f64.
        fn scalar() -> impl Strategy<Value = String> {
            prop_oneof![
                "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,5})?([eE][+-]?[0-9]{1,4})?",
                "\"([a-zA-Z0-9 /:.-]|\\\\[\"\\\\/bfnrt]|\\\\u[0-9a-fA-F]{4}|\\\\u[dD][89abAB][0-9a-fA-F]{2}|[\u{80}-\u{10FFFF}])*\"",
                Just("true".to_string()),
                Just("null".to_string()),
                Just("[]".to_string()),
                Just("{}".to_string()),
            ]
        }

        fn record_text() -> impl Strategy<Value = String> {
            (
                prop::option::of("[a-z0-9-]{1,8}"),
                prop::bool::ANY,
                prop::collection::vec(("[A-Za-z]{1,6}", scalar()), 0..4),
            )
                .prop_map(|(id, time, extra)| {
                    let mut parts = Vec::new();
                    if let Some(id) = id {
                        parts.push(format!("\"Id\":\"{id}\""));
                    }
                    if time {
                        parts.push("\"CreationTime\":\"2026-05-04T09:14:22\"".to_string());
                    }
                    for (k, v) in extra {
                        parts.push(format!("\"{k}\":{v}"));
                    }
                    format!("{{{}}}", parts.join(","))
                })
        }

        fn blob_text() -> impl Strategy<Value = Vec<u8>> {
            (
                prop::collection::vec(prop_oneof![record_text(), scalar()], 0..6),
                prop::bool::ANY,
                prop::option::of(any::<prop::sample::Index>()),
            )
                .prop_map(|(items, bom, cut)| {
                    let mut b = Vec::new();
                    if bom {
                        b.extend_from_slice(b"\xEF\xBB\xBF");
                    }
                    b.extend_from_slice(format!("[{}]", items.join(" , ")).as_bytes());
                    if let Some(c) = cut {
                        b.truncate(c.index(b.len() + 1));
                    }
                    b
                })
        }

        fn blob_ref() -> impl Strategy<Value = String> {
            (
                prop::collection::vec(
                    (
                        prop_oneof![
                            Just("contentType"),
                            Just("contentId"),
                            Just("contentUri"),
                            Just("contentCreated"),
                            Just("contentExpiration"),
                            Just("other"),
                        ],
                        scalar(),
                    ),
                    0..7,
                ),
                prop::bool::ANY,
            )
                .prop_map(|(fields, complete)| {
                    let mut parts: Vec<String> =
                        fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    if complete {
                        for k in [
                            "contentType",
                            "contentId",
                            "contentUri",
                            "contentCreated",
                            "contentExpiration",
                        ] {
                            if !fields.iter().any(|(f, _)| *f == k) {
                                parts.push(format!("\"{k}\":\"x\""));
                            }
                        }
                    }
                    format!("{{{}}}", parts.join(","))
                })
        }

        proptest! {
            #[test]
            fn any_bytes_as_a_page_or_blob(body in any::<Vec<u8>>()) {
                check_page(&body)?;
                check_blob_body(&body)?;
            }

            #[test]
            fn json_like_text_as_a_page_or_blob(body in "[\\[\\]{}\",:\\\\ a-zA-Z0-9.eE+-]{0,120}") {
                check_page(body.as_bytes())?;
                check_blob_body(body.as_bytes())?;
            }

            #[test]
            fn record_arrays(body in blob_text()) {
                check_blob_body(&body)?;
            }

            #[test]
            fn content_listings(items in prop::collection::vec(blob_ref(), 0..5), cut in prop::option::of(any::<prop::sample::Index>())) {
                let mut body = format!("[{}]", items.join(",")).into_bytes();
                if let Some(c) = cut {
                    body.truncate(c.index(body.len() + 1));
                }
                check_page(&body)?;
            }

            /// Any next-page header: found under any casing of its name, never panics, and
            /// a URL followed is on the API's own scheme, host and port with a
            /// `PublisherIdentifier`.
            #[test]
            fn next_page_headers(
                name in prop_oneof![Just("NextPageUri".to_string()), Just("nextpageurl".to_string()), Just("NEXTPAGEURI".to_string()), "[a-zA-Z-]{1,12}"],
                value in prop_oneof![
                    any::<Vec<u8>>(),
                    "(https?://)?(127\\.0\\.0\\.1(:[0-9]{1,5})?|api\\.example|[a-z.:@\\[\\]]{0,12})?(/[a-zA-Z0-9%?&=#./:@ -]{0,30})?".prop_map(String::into_bytes),
                ],
            ) {
                let mut h = HeaderMap::new();
                let (Ok(n), Ok(v)) = (
                    reqwest::header::HeaderName::from_bytes(name.as_bytes()),
                    reqwest::header::HeaderValue::from_bytes(&value),
                ) else {
                    return Ok(());
                };
                h.insert(n, v);
                let is_next = name.eq_ignore_ascii_case("NextPageUri") || name.eq_ignore_ascii_case("NextPageUrl");
                let (_, next) = parse_page(b"[]", &h).expect("an empty page");
                let expected = std::str::from_utf8(&value)
                    .ok()
                    .filter(|s| is_next && s.bytes().all(|b| b == b'\t' || (b' '..0x7f).contains(&b)))
                    .map(str::trim)
                    .filter(|s| !s.is_empty());
                prop_assert_eq!(next.as_deref(), expected);
                if let Some(next) = next {
                    let c = ApiClient::with_policy(&office("http://127.0.0.1:9", "http://127.0.0.1:9", ""), fast()).expect("client");
                    if let Ok(u) = c.pinned(&next) {
                        prop_assert_eq!(u.scheme(), "http");
                        prop_assert_eq!(u.host_str(), Some("127.0.0.1"));
                        prop_assert_eq!(u.port_or_known_default(), Some(9));
                        prop_assert!(u.query_pairs().any(|(k, _)| k.eq_ignore_ascii_case("PublisherIdentifier")));
                    }
                }
            }
        }
    }
}
