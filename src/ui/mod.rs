//! The analyst's web UI: the axum router, the askama pages, the security headers, the
//! access-token rule and the embedded static assets.
//!
//! This is the only module that knows HTML and HTTP status codes. It reads through the
//! [`Backend`] trait (implemented over the store in `store_backend`), always from
//! `spawn_blocking`, and writes triage only: `POST /detections/{id}/triage` (`triage.rs`)
//! is its one state-changing request, behind a CSRF token, an Origin check and the access
//! token; `serve --read-only` and a store that cannot be written have none (403). Records,
//! hits, cursors and config are never written from here.
//!
//! Everything rendered is treated as hostile: audit data (file names, subjects, rule names,
//! user agents) is attacker-controlled. Templates rely on askama's HTML escaping (no
//! `|safe` anywhere; the escaper is [`VisibleHtml`], which also shows bidi controls as
//! `⟨U+202E⟩`), links to records, users and addresses are always our own paths with
//! the value percent-encoded, and every response carries a strict Content-Security-Policy
//! without inline script or style, `nosniff`, `frame-ancestors 'none'` and
//! `Referrer-Policy: same-origin` (no URL of the UI leaves it).
//!
//! Access: on a loopback address the UI is open to the local user. On any other address a
//! token is required (configured, or generated and printed once); [`serve`] refuses to
//! start without one. A browser presents it once as `?token=…` and gets an `HttpOnly`,
//! `SameSite=Strict` cookie; scripts send `Authorization: Bearer …`. The query page runs
//! the jq or LINQ of its URL, so it also refuses what another site's page requests (the
//! Origin check of triage, and the browser's `Sec-Fetch-*` marks: `triage.rs`), and a
//! link from another site fills its form without running it.

pub mod backend;
pub mod bench;
mod chart;
pub(crate) mod pages;
mod pivots;
pub mod range;
pub mod store_backend;
pub mod threshold;
pub mod triage;

pub use backend::Backend;

/// The escaper of every page (`askama.toml`): askama's HTML escaping of a value with its
/// bidi controls first made visible ([`crate::model::bidi_visible`], `⟨U+202E⟩`), since
/// escaped text is still reordered by the browser: `admin\u{202e}gnp.exe@fabrikam.com`
/// would read as another address.
#[derive(Debug, Clone, Copy, Default)]
pub struct VisibleHtml;

impl askama::filters::Escaper for VisibleHtml {
    fn write_escaped_str<W: std::fmt::Write>(&self, dest: W, s: &str) -> std::fmt::Result {
        askama::filters::Html.write_escaped_str(dest, &crate::model::bidi_visible(s))
    }
}

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;

/// The cookie that carries the access token.
pub const TOKEN_COOKIE: &str = "m365audit_token";

/// The one Content-Security-Policy of every response: nothing inline, nothing foreign.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub backend: Arc<dyn Backend>,
    /// The access token; `None` means open (loopback only, enforced by [`serve`]).
    pub token: Option<Arc<AccessToken>>,
    /// The token triage forms carry (random per process).
    pub csrf: Arc<triage::CsrfToken>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(backend: Arc<dyn Backend>) -> AppState {
        AppState {
            backend,
            token: None,
            csrf: Arc::new(triage::CsrfToken::generate()),
        }
    }

    pub fn with_token(mut self, token: AccessToken) -> AppState {
        self.token = Some(Arc::new(token));
        self
    }
}

/// The UI access token. Its `Debug` never shows the value (invariant 7).
#[derive(Clone)]
pub struct AccessToken(String);

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

impl AccessToken {
    /// Wraps a configured token; rejects one too short to resist guessing.
    pub fn new(value: impl Into<String>) -> anyhow::Result<AccessToken> {
        let value = value.into();
        if value.len() < 16 {
            return Err(crate::UsageError(
                "the UI token must be at least 16 characters long".into(),
            )
            .into());
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
        {
            return Err(crate::UsageError(
                "the UI token may hold only letters, digits and - _ . ~".into(),
            )
            .into());
        }
        Ok(AccessToken(value))
    }

    /// A fresh random token (32 hex digits from the OS generator).
    pub fn generate() -> AccessToken {
        use rand::RngCore;
        let mut b = [0u8; 16];
        rand::rng().fill_bytes(&mut b);
        AccessToken(b.iter().map(|x| format!("{x:02x}")).collect())
    }

    /// The value, for printing once at start; never log it.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where the first difference is.
    pub fn matches(&self, candidate: &str) -> bool {
        let a = self.0.as_bytes();
        let b = candidate.as_bytes();
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// How the token for a listen address was chosen.
#[derive(Debug)]
pub enum TokenChoice {
    /// Loopback without a configured token: open to the local user.
    Open,
    Configured(AccessToken),
    /// Generated because the configuration asked for it; print it once.
    Generated(AccessToken),
}

/// Applies the access rule: a configured token is always used; the value `generate` asks
/// for a fresh one; a non-loopback address without either refuses to start.
pub fn choose_token(listen: SocketAddr, configured: Option<&str>) -> anyhow::Result<TokenChoice> {
    match configured.map(str::trim) {
        Some("") | None => {
            if listen.ip().is_loopback() {
                Ok(TokenChoice::Open)
            } else {
                Err(crate::UsageError(format!(
                    "refusing to serve the UI on the non-loopback address {listen} without an \
                     access token; set \"ui\": {{\"token\": …}} in the config (or \"generate\"), \
                     or M365AUDIT_UI_TOKEN, or listen on 127.0.0.1"
                ))
                .into())
            }
        }
        Some("generate") => Ok(TokenChoice::Generated(AccessToken::generate())),
        Some(t) => Ok(TokenChoice::Configured(AccessToken::new(t)?)),
    }
}

/// Builds the whole route table.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/detections/{id}", get(pages::detection))
        .route("/detections/{id}/records", get(pages::detection_records))
        .route("/detections/{id}/csv", get(pages::detection_csv))
        .route("/detections/{id}/json", get(pages::detection_json))
        .route("/detections/{id}/export", get(pages::detection_download))
        .route(
            "/detections/{id}/triage",
            get(triage::page).post(triage::post),
        )
        .route("/user/export", get(pages::user_download))
        .route("/search/export", get(pages::search_download))
        .route("/records/{id}", get(pages::record))
        .route("/user", get(pages::user))
        .route("/ip", get(pages::ip))
        .route("/search", get(pages::search))
        .route("/query", get(pages::query))
        .route("/status", get(pages::status))
        .route("/metrics", get(pages::metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        // /healthz and the static files answer without a token: they hold no data (and
        // the 401 page needs its stylesheet).
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/static/{file}", get(static_file))
        .layer(middleware::from_fn_with_state(state.clone(), check_host))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

async fn not_found() -> AppError {
    AppError::NotFound("no such page".into())
}

/// Adds the security headers to every response, error pages included.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // `same-origin`, not `no-referrer`: no other site ever sees a URL of this UI either
    // way, but under `no-referrer` a browser sends `Origin: null` with a form POST, and
    // the triage form's Origin check needs the real one.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == TOKEN_COOKIE)
        .map(|(_, v)| v.to_string())
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim().to_string())
}

/// True for a Host header naming an IP address or `localhost` (with or without a port).
fn host_is_address(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest
            .split(']')
            .next()
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// Without a token the UI trusts the network position (loopback); a page a browser loads
/// from some other site could still reach it through a name that resolves to 127.0.0.1
/// (DNS rebinding). So an open UI answers only requests addressed to an IP address or
/// `localhost`. With a token the token decides.
async fn check_host(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.token.is_none()
        && let Some(host) = req.headers().get(header::HOST)
        && !host.to_str().is_ok_and(host_is_address)
    {
        return AppError::BadRequest(
            "this UI answers only requests addressed to its IP address or localhost".into(),
        )
        .into_response();
    }
    next.run(req).await
}

/// Lets a request through when no token is set or it presents the token; turns
/// `?token=…` into a cookie and a redirect to the same URL without it.
async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(token) = state.token.clone() else {
        return next.run(req).await;
    };
    let headers = req.headers();
    if cookie_token(headers).is_some_and(|t| token.matches(&t))
        || bearer_token(headers).is_some_and(|t| token.matches(&t))
    {
        return next.run(req).await;
    }
    let uri = req.uri().clone();
    let mut given = None;
    let mut rest = Vec::new();
    for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if k == "token" {
            given = Some(v.into_owned());
        } else {
            rest.push((k.into_owned(), v.into_owned()));
        }
    }
    if let Some(t) = given.filter(|t| token.matches(t)) {
        // Only a path of ours: never `//host/…` (another site) or a backslash variant.
        let mut target = uri.path().to_string();
        if !target.starts_with('/') || target.starts_with("//") || target.contains('\\') {
            target = "/".to_string();
        }
        if !rest.is_empty() {
            target.push('?');
            target.push_str(
                &url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(rest)
                    .finish(),
            );
        }
        let cookie = format!("{TOKEN_COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict");
        let mut res = Response::new(Body::empty());
        *res.status_mut() = StatusCode::SEE_OTHER;
        // The target is our own path (it starts with '/'), never a foreign host.
        if let Ok(v) = HeaderValue::from_str(&target) {
            res.headers_mut().insert(header::LOCATION, v);
        }
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().insert(header::SET_COOKIE, v);
        }
        return res;
    }
    AppError::Unauthorized.into_response()
}

const STYLE_CSS: &str = include_str!("../../web/static/style.css");
const APP_JS: &str = include_str!("../../web/static/app.js");

async fn static_file(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, mime) = match file.as_str() {
        "style.css" => (STYLE_CSS, "text/css; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        _ => return AppError::NotFound("no such file".into()).into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Why a page could not be shown. Each variant maps to one status and one page; the cause
/// of an internal error is logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("access token required")]
    Unauthorized,
    /// A write this UI refuses (read-only, foreign Origin, no CSRF token).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The data directory lacks a part the page needs; the message says how to restore it.
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for AppError {
    /// A usage error (bad query, unknown table) is the user's to fix: 400 with its text.
    /// Anything else is ours: 500 without detail.
    fn from(err: anyhow::Error) -> AppError {
        if let Some(u) = err
            .chain()
            .find_map(|e| e.downcast_ref::<crate::UsageError>())
        {
            return AppError::BadRequest(u.0.clone());
        }
        if let Some(u) = err
            .chain()
            .find_map(|e| e.downcast_ref::<crate::Unavailable>())
        {
            return AppError::Unavailable(u.0.clone());
        }
        AppError::Internal(err)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            AppError::NotFound(m) => (StatusCode::NOT_FOUND, "Not found", m.clone()),
            AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Bad request", m.clone()),
            AppError::Forbidden(m) => (StatusCode::FORBIDDEN, "Forbidden", m.clone()),
            AppError::Unavailable(m) => {
                (StatusCode::SERVICE_UNAVAILABLE, "Not available", m.clone())
            }
            AppError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "Access token required",
                "open the URL printed at start (it ends in ?token=…), or send \
                 Authorization: Bearer <token>"
                    .to_string(),
            ),
            AppError::Internal(err) => {
                tracing::error!(error = format!("{err:#}"), "ui page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "the page could not be built; the cause is in the appliance's log".to_string(),
                )
            }
        };
        pages::error_page(status, title, &message)
    }
}

/// Serves the router on an already bound listener until `shutdown` resolves.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| anyhow::anyhow!("serving the UI: {e}"))
}

/// What the start-up URL shows in place of a configured token.
pub const CONFIGURED_TOKEN_PLACEHOLDER: &str = "?token=<the configured ui.token>";

/// Binds `listen` after applying the access rule, and returns the listener, the state and
/// the URL to print. A generated token is in it in full (nobody else knows it; print it
/// once); a configured one only as a placeholder, so a service log never holds it.
pub async fn bind(
    listen: SocketAddr,
    configured_token: Option<&str>,
    backend: Arc<dyn Backend>,
) -> anyhow::Result<(tokio::net::TcpListener, AppState, String)> {
    let choice = choose_token(listen, configured_token)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding the UI to {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let mut state = AppState::new(backend);
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        }
    };
    let mut url = format!("http://{host}:{}/", addr.port());
    match choice {
        TokenChoice::Open => {}
        TokenChoice::Configured(t) => {
            url.push_str(CONFIGURED_TOKEN_PLACEHOLDER);
            state = state.with_token(t);
        }
        TokenChoice::Generated(t) => {
            url.push_str("?token=");
            url.push_str(t.reveal());
            state = state.with_token(t);
        }
    }
    Ok((listener, state, url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rule_refuses_public_addresses_without_a_token() {
        let public: SocketAddr = "0.0.0.0:8365".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8365".parse().unwrap();
        let err = choose_token(public, None).unwrap_err();
        assert!(err.chain().any(|e| e.is::<crate::UsageError>()));
        assert!(matches!(choose_token(local, None), Ok(TokenChoice::Open)));
        assert!(matches!(
            choose_token(public, Some("generate")),
            Ok(TokenChoice::Generated(_))
        ));
        assert!(matches!(
            choose_token(public, Some("0123456789abcdef0")),
            Ok(TokenChoice::Configured(_))
        ));
        assert!(choose_token(public, Some("short")).is_err());
    }

    #[test]
    fn only_address_hosts_are_trusted_without_a_token() {
        for ok in [
            "127.0.0.1:8365",
            "127.0.0.1",
            "localhost:8365",
            "[::1]:8365",
            "10.0.0.5",
        ] {
            assert!(host_is_address(ok), "{ok}");
        }
        for bad in [
            "evil.example:8365",
            "evil.example",
            "[nope]:1",
            "127.0.0.1.nip.io",
        ] {
            assert!(!host_is_address(bad), "{bad}");
        }
    }

    #[test]
    fn token_debug_is_redacted_and_compare_is_exact() {
        let t = AccessToken::generate();
        assert_eq!(t.reveal().len(), 32);
        assert!(!format!("{t:?}").contains(t.reveal()));
        assert!(t.matches(t.reveal()));
        assert!(!t.matches(&t.reveal()[1..]));
        assert_ne!(AccessToken::generate().reveal(), t.reveal());
    }
}
