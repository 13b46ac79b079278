//! The HTTP face of the practice tenant: the token endpoints and the Management Activity
//! API routes under `/api/v1.0/{tenant}/activity/feed/` (and the `/api/v1/` variant), with
//! Microsoft's response headers (NextPageUri right before X-AspNet-Version), error bodies,
//! time-window rules, pagination, the subscription state machine and the faults. It only
//! answers requests; blob contents come from `feed`, accounting goes to `report`.

use super::auth::{self, TokenCheck};
use super::faults::Fault;
use super::feed::{self, BlobMeta, Lookup, ct_index};
use super::json::{Obj, raw_array};
use super::rng::mix;
use super::tenant::{ROLE_DLP, ROLE_READ};
use super::{Sim, SubStatus};
use crate::model::{ContentType, format_api_time, parse_time};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use std::sync::Arc;

pub(crate) const JSON_CT: &str = "application/json; charset=utf-8";

#[derive(Clone)]
struct Ctx {
    sim: Arc<Sim>,
    foreign: bool,
}

pub(crate) fn router(sim: Arc<Sim>, foreign: bool) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Ctx { sim, foreign })
}

async fn handle(State(ctx): State<Ctx>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 8 << 20)
        .await
        .unwrap_or_default();
    let resp = dispatch(&ctx.sim, ctx.foreign, &parts, &body).await;
    ctx.sim.report_lock().status(resp.status().as_u16());
    resp
}

pub(crate) fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// A response with Microsoft's headers, in Microsoft's order.
fn ms(sim: &Sim, status: StatusCode, body: Body, next: Option<&str>, ctype: &str) -> Response {
    let mut b = Response::builder()
        .status(status)
        .header("Cache-Control", "no-cache")
        .header("Pragma", "no-cache")
        .header("Content-Type", ctype)
        .header("Expires", "-1")
        .header("Server", "Microsoft-IIS/10.0");
    if let Some(n) = next {
        b = b.header("NextPageUri", n);
    }
    b = b
        .header("X-AspNet-Version", "4.0.30319")
        .header("X-Powered-By", "ASP.NET")
        .header("Date", http_date(sim.now()));
    b.body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// A `text/plain` answer, the way mocks, proxies and other doubles of the API answer.
fn text_resp(sim: &Sim, status: StatusCode, text: &str) -> Response {
    Response::builder()
        .status(status)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("Date", http_date(sim.now()))
        .body(Body::from(text.to_string()))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn json_resp(sim: &Sim, status: StatusCode, v: &Value) -> Response {
    ms(sim, status, Body::from(v.to_string()), None, JSON_CT)
}

/// `{"error":{"code":…,"message":…}}`
fn af(sim: &Sim, status: StatusCode, code: &str, message: &str) -> Response {
    sim.report_lock().api_error(code);
    json_resp(
        sim,
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug, Clone, PartialEq)]
enum Route {
    Start,
    Stop,
    List,
    Content,
    Notifications,
    Blob(String),
    DlpTypes,
}

impl Route {
    fn name(&self) -> &'static str {
        match self {
            Route::Start => "start",
            Route::Stop => "stop",
            Route::List => "list",
            Route::Content => "content",
            Route::Notifications => "notifications",
            Route::Blob(_) => "blob",
            Route::DlpTypes => "dlp_sensitive_types",
        }
    }
    fn method_name(&self) -> &'static str {
        match self {
            Route::Start => "StartSubscription",
            Route::Stop => "StopSubscription",
            Route::List => "ListSubscriptions",
            Route::Content => "ListContent",
            Route::Notifications => "ListNotifications",
            Route::Blob(_) => "GetBlob",
            Route::DlpTypes => "GetDlpSensitiveTypes",
        }
    }
    fn method(&self) -> Method {
        match self {
            Route::Start | Route::Stop => Method::POST,
            _ => Method::GET,
        }
    }
}

struct Q(Vec<(String, String)>);

impl Q {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn message(sim: &Sim, status: StatusCode, text: &str) -> Response {
    json_resp(sim, status, &json!({"Message": text}))
}

async fn dispatch(sim: &Arc<Sim>, foreign: bool, parts: &Parts, body: &Bytes) -> Response {
    let now = sim.now();
    let path = parts.uri.path();
    if foreign && parts.headers.contains_key("authorization") {
        sim.report_lock().misbehaviour(
            "token_sent_to_foreign_host",
            None,
            &format!("Authorization header sent to {}{path}", sim.foreign_base),
            now,
        );
    }
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // Token endpoints: /{tenant}/oauth2/v2.0/token and /{tenant}/oauth2/token
    let is_v2 = segs.len() == 4
        && segs[1].eq_ignore_ascii_case("oauth2")
        && segs[2].eq_ignore_ascii_case("v2.0")
        && segs[3].eq_ignore_ascii_case("token");
    let is_v1 = segs.len() == 3
        && segs[1].eq_ignore_ascii_case("oauth2")
        && segs[2].eq_ignore_ascii_case("token");
    if is_v1 || is_v2 {
        sim.report_lock()
            .request(if is_v2 { "token_v2" } else { "token_v1" });
        if parts.method != Method::POST {
            return message(
                sim,
                StatusCode::METHOD_NOT_ALLOWED,
                "The token endpoint only supports POST.",
            );
        }
        if sim.faults.is_on(Fault::TokenBasicOnly) && !auth::basic_only_ok(&parts.headers, body) {
            // A mock or proxy that takes the client credentials only from HTTP Basic
            // (client_secret_basic) and says so in plain text.
            sim.faults.count(Fault::TokenBasicOnly);
            sim.report_lock().token_error("basic_only");
            return text_resp(
                sim,
                StatusCode::BAD_REQUEST,
                "bad credentials in authorization header\n",
            );
        }
        let (status, v) = auth::token(sim, &pct_decode(segs[0]), is_v2, &parts.headers, body);
        if status != StatusCode::OK && sim.faults.is_on(Fault::TokenTextErrors) {
            sim.faults.count(Fault::TokenTextErrors);
            sim.report_lock().token_error("text");
            return text_resp(sim, StatusCode::BAD_REQUEST, &auth::text_error(&v, body));
        }
        {
            let mut rep = sim.report_lock();
            if status == StatusCode::OK {
                rep.token_issued();
            } else {
                let code = v["error_codes"][0]
                    .as_u64()
                    .map(|c| format!("AADSTS{c}"))
                    .unwrap_or_default();
                rep.token_error(&code);
            }
        }
        return Response::builder()
            .status(status)
            .header("Cache-Control", "no-store, no-cache")
            .header("Pragma", "no-cache")
            .header("Content-Type", JSON_CT)
            .header("Expires", "-1")
            .header("Date", http_date(now))
            .body(Body::from(v.to_string()))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    let api = segs.len() >= 6
        && segs[0].eq_ignore_ascii_case("api")
        && (segs[1].eq_ignore_ascii_case("v1.0") || segs[1].eq_ignore_ascii_case("v1"))
        && segs[3].eq_ignore_ascii_case("activity")
        && segs[4].eq_ignore_ascii_case("feed");
    let route = if !api {
        None
    } else {
        let rest: Vec<String> = segs[5..].iter().map(|s| s.to_ascii_lowercase()).collect();
        match rest
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["subscriptions", "start"] => Some(Route::Start),
            ["subscriptions", "stop"] => Some(Route::Stop),
            ["subscriptions", "list"] => Some(Route::List),
            ["subscriptions", "content"] => Some(Route::Content),
            ["subscriptions", "notifications"] => Some(Route::Notifications),
            ["audit", _] => Some(Route::Blob(pct_decode(segs[6]))),
            ["resources", "dlpsensitivetypes"] => Some(Route::DlpTypes),
            _ => None,
        }
    };
    let Some(route) = route else {
        sim.report_lock().request("unknown");
        return message(
            sim,
            StatusCode::NOT_FOUND,
            &format!(
                "No HTTP resource was found that matches the request URI '{}{}'.",
                sim.api_base, parts.uri
            ),
        );
    };
    if route == Route::List && sim.faults.is_on(Fault::NoSubscriptionList) {
        // An implementation without this route: a bare 404, no AF code.
        sim.faults.count(Fault::NoSubscriptionList);
        sim.report_lock().request("unknown");
        return text_resp(sim, StatusCode::NOT_FOUND, "404 page not found\n");
    }
    sim.report_lock().request(route.name());
    if parts.method != route.method() {
        return message(
            sim,
            StatusCode::METHOD_NOT_ALLOWED,
            &format!(
                "The requested resource does not support http method '{}'.",
                parts.method
            ),
        );
    }
    let q = Q(parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default());
    let publisher = q.get("PublisherIdentifier").map(String::from);
    if publisher.is_none() {
        sim.report_lock().misbehaviour(
            "publisher_identifier_missing",
            None,
            route.method_name(),
            now,
        );
    }
    let tenant_seg = pct_decode(segs[2]).to_ascii_lowercase();
    if uuid::Uuid::parse_str(&tenant_seg).is_err() {
        return af(
            sim,
            StatusCode::BAD_REQUEST,
            "AF20013",
            &format!("The tenant ID passed in the URL ({tenant_seg}) is not a valid GUID."),
        );
    }
    let claims = match auth::check(sim, &parts.headers, now) {
        TokenCheck::Ok(c) => c,
        TokenCheck::Missing | TokenCheck::Invalid | TokenCheck::Expired => {
            sim.report_lock().api_error("401");
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header("Cache-Control", "no-cache")
                .header("Content-Type", JSON_CT)
                .header("Server", "Microsoft-IIS/10.0")
                .header("WWW-Authenticate", "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", error=\"invalid_token\"")
                .header("X-AspNet-Version", "4.0.30319")
                .header("X-Powered-By", "ASP.NET")
                .header("Date", http_date(now))
                .body(Body::from(json!({"Message": "Authorization has been denied for this request."}).to_string()))
                .unwrap_or_else(|_| StatusCode::UNAUTHORIZED.into_response());
        }
    };
    if claims.tid != tenant_seg {
        sim.report_lock().misbehaviour(
            "token_for_wrong_tenant",
            None,
            &format!("token for {} used on {}", claims.tid, tenant_seg),
            now,
        );
        return af(
            sim,
            StatusCode::UNAUTHORIZED,
            "AF20010",
            &format!(
                "The tenant ID passed in the URL ({tenant_seg}) does not match the tenant ID passed in the access token ({}).",
                claims.tid
            ),
        );
    }
    if tenant_seg != sim.tenant.id {
        return af(
            sim,
            StatusCode::BAD_REQUEST,
            "AF20011",
            &format!(
                "Specified tenant ID ({tenant_seg}) does not exist in the system or has been deleted."
            ),
        );
    }
    if !claims.roles.iter().any(|r| r == ROLE_READ) {
        return af(
            sim,
            StatusCode::UNAUTHORIZED,
            "AF10001",
            &format!(
                "The permission set ({}) sent in the request does not include the expected permission ActivityFeed.Read.",
                claims.roles.join(",")
            ),
        );
    }
    // content type (where the route takes one)
    let ct: Option<ContentType> = match route {
        Route::Start | Route::Stop | Route::Content | Route::Notifications => {
            let Some(raw) = q.get("contentType") else {
                return af(
                    sim,
                    StatusCode::BAD_REQUEST,
                    "AF20001",
                    "Missing parameter: contentType.",
                );
            };
            match raw.parse::<ContentType>() {
                Ok(c) => Some(c),
                Err(_) => {
                    return af(
                        sim,
                        StatusCode::BAD_REQUEST,
                        "AF20020",
                        "The specified content type is not valid.",
                    );
                }
            }
        }
        _ => None,
    };
    if ct == Some(ContentType::DlpAll) && sim.faults.is_on(Fault::DlpUnknown) {
        // An implementation that does not know DLP.All: a bare 404, no AF code.
        sim.faults.count(Fault::DlpUnknown);
        return text_resp(sim, StatusCode::NOT_FOUND, "unknown content type DLP.All\n");
    }
    let needs_dlp = ct == Some(ContentType::DlpAll) || route == Route::DlpTypes;
    if needs_dlp && !claims.roles.iter().any(|r| r == ROLE_DLP) {
        return af(
            sim,
            StatusCode::UNAUTHORIZED,
            "AF10001",
            &format!(
                "The permission set ({}) sent in the request does not include the expected permission ActivityFeed.ReadDlp.",
                claims.roles.join(",")
            ),
        );
    }
    if sim.faults.is_on(Fault::AuditOff) {
        sim.faults.count(Fault::AuditOff);
        return audit_off(sim, &route, ct, &claims.appid, publisher.as_deref(), now);
    }
    if !sim.take_token(publisher.as_deref()) {
        return transient(sim, Fault::Throttle403, &route, publisher.as_deref());
    }
    let key = format!("{}?{}", path, parts.uri.query().unwrap_or(""));
    let has_body = matches!(route, Route::Content | Route::Blob(_) | Route::List);
    let fault = sim.faults.pick(&key, has_body);
    if let Some(f) = fault.filter(|f| !f.needs_body()) {
        return transient(sim, f, &route, publisher.as_deref());
    }
    let broken = fault.is_some();
    let resp = match &route {
        Route::Start => start(sim, ct.unwrap_or(ContentType::General), body, now),
        Route::Stop => stop(sim, ct.unwrap_or(ContentType::General), now),
        Route::List => list(sim),
        Route::Content => content(
            sim,
            ct.unwrap_or(ContentType::General),
            &q,
            publisher.as_deref(),
            now,
            broken,
            false,
        ),
        Route::Notifications => content(
            sim,
            ct.unwrap_or(ContentType::General),
            &q,
            publisher.as_deref(),
            now,
            broken,
            true,
        ),
        Route::Blob(id) => blob(sim, id, now, broken).await,
        Route::DlpTypes => dlp_types(sim, &parts.headers),
    };
    match fault {
        Some(f) if resp.status() == StatusCode::OK => break_body(sim, f, resp).await,
        _ => resp,
    }
}

fn audit_off(
    sim: &Sim,
    route: &Route,
    ct: Option<ContentType>,
    appid: &str,
    publisher: Option<&str>,
    now: DateTime<Utc>,
) -> Response {
    let mut r = super::rng::Rng::new(mix(&[sim.opts.seed, now.timestamp_micros() as u64]));
    let corr = r.guid();
    let pubid = publisher.unwrap_or("00000000-0000-0000-0000-000000000000");
    let ctn = ct.map(|c| c.as_str()).unwrap_or("");
    let t = &sim.tenant.id;
    // The real body is split badly between "code" and "message" (docs/management-api.md, Error codes).
    let code = format!(
        "{} [CorrId={corr}][TenantId={t},ContentType={ctn},ApplicationId={appid},PublisherId={pubid}][AppId",
        route.method_name()
    );
    let msg = format!(
        "{appid}] failed. Exception: Microsoft.Office.Compliance.Audit.DataServiceException: Tenant {t} does not exist.\r\n   at Microsoft.Office.Compliance.Audit.API.AzureManager.<GetSubscriptionsAsync>d__52.MoveNext()\r\n--- End of stack trace from previous location where exception was thrown ---\r\n   at System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw()\r\n   at Microsoft.Office.Compliance.Audit.API.StartController.<{}>d__5.MoveNext()",
        route.method_name()
    );
    sim.report_lock().api_error("TenantDoesNotExist");
    json_resp(
        sim,
        StatusCode::BAD_REQUEST,
        &json!({"error": {"code": code, "message": msg}}),
    )
}

fn transient(sim: &Sim, f: Fault, route: &Route, publisher: Option<&str>) -> Response {
    let pubid = publisher.unwrap_or("00000000-0000-0000-0000-000000000000");
    let throttle = json!({"error": {"code": "AF429", "message": format!("Too many requests. Method={}, PublisherId={pubid}", route.method_name())}}).to_string();
    match f {
        Fault::Throttle403 => {
            sim.report_lock().api_error("AF429");
            ms(
                sim,
                StatusCode::FORBIDDEN,
                Body::from(throttle),
                None,
                JSON_CT,
            )
        }
        Fault::Throttle429 => {
            sim.report_lock().api_error("AF429");
            ms(
                sim,
                StatusCode::TOO_MANY_REQUESTS,
                Body::from(throttle),
                None,
                JSON_CT,
            )
        }
        Fault::ThrottleRetryAfter => {
            sim.report_lock().api_error("AF429");
            let mut r = ms(
                sim,
                StatusCode::TOO_MANY_REQUESTS,
                Body::from(throttle),
                None,
                JSON_CT,
            );
            r.headers_mut()
                .insert("Retry-After", axum::http::HeaderValue::from_static("1"));
            r
        }
        Fault::Internal500 => af(
            sim,
            StatusCode::INTERNAL_SERVER_ERROR,
            "AF50000",
            "An internal error occurred. Retry the request.",
        ),
        Fault::Unavailable503 => ms(
            sim,
            StatusCode::SERVICE_UNAVAILABLE,
            Body::from(
                "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\"\"http://www.w3.org/TR/html4/strict.dtd\">\r\n<HTML><HEAD><TITLE>Service Unavailable</TITLE></HEAD><BODY><h2>Service Unavailable</h2><hr><p>HTTP Error 503. The service is unavailable.</p></BODY></HTML>\r\n",
            ),
            None,
            "text/html; charset=us-ascii",
        ),
        _ => ms(
            sim,
            StatusCode::REQUEST_TIMEOUT,
            Body::from(
                "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\"\"http://www.w3.org/TR/html4/strict.dtd\">\r\n<HTML><HEAD><TITLE>Request Timeout</TITLE></HEAD><BODY><h2>Request Timeout</h2><hr><p>HTTP Error 408. The request timed out.</p></BODY></HTML>\r\n",
            ),
            None,
            "text/html; charset=us-ascii",
        ),
    }
}

/// Breaks a successful response's body the way `f` says.
async fn break_body(sim: &Sim, f: Fault, resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    parts.headers.remove("NextPageUri");
    match f {
        Fault::ResetMidBody => {
            let half = bytes.slice(..bytes.len() / 2);
            let stream = futures_util::stream::iter(vec![
                Ok::<Bytes, std::io::Error>(half),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "practice tenant: connection reset mid-body",
                )),
            ]);
            parts.headers.remove("content-length");
            Response::from_parts(parts, Body::from_stream(stream))
        }
        Fault::TruncatedBody => {
            let cut = bytes.slice(..(bytes.len() * 2 / 3).max(1).min(bytes.len()));
            parts.headers.remove("content-length");
            Response::from_parts(parts, Body::from(cut))
        }
        _ => ms(
            sim,
            StatusCode::OK,
            Body::from(
                "<html><head><title>Service maintenance</title></head><body><p>The Office 365 Management Activity API is under maintenance. Please retry.</p></body></html>",
            ),
            None,
            "text/html; charset=utf-8",
        ),
    }
}

fn start(sim: &Sim, ct: ContentType, body: &Bytes, now: DateTime<Utc>) -> Response {
    let ci = ct_index(ct);
    if sim.report_lock().start_called(ct, now) {
        sim.report_lock().misbehaviour(
            "start_too_often",
            Some(ct),
            "subscriptions/start called less than 15 minutes after the previous start",
            now,
        );
    }
    if sim.faults.is_on(Fault::SubscriptionDisabled) {
        sim.faults.count(Fault::SubscriptionDisabled);
        return af(
            sim,
            StatusCode::BAD_REQUEST,
            "AF20023",
            "The subscription was disabled by a tenant admin.",
        );
    }
    let webhook: Option<Value> = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(v) => v.get("webhook").cloned().filter(|w| !w.is_null()),
            Err(_) => {
                return af(
                    sim,
                    StatusCode::BAD_REQUEST,
                    "AF20002",
                    "Invalid parameter type: webhook. Expected type: Webhook",
                );
            }
        }
    };
    if let Some(w) = &webhook {
        let addr = w["address"].as_str().unwrap_or("");
        if !addr.to_ascii_lowercase().starts_with("https://") {
            return af(
                sim,
                StatusCode::BAD_REQUEST,
                "AF20021",
                &format!(
                    "The webhook endpoint {{{addr}}} could not be validated. The address must begin with HTTPS."
                ),
            );
        }
    }
    let mut d = sim.dyn_lock();
    let enabled = d.subs[ci]
        .as_ref()
        .is_some_and(|s| s.status == SubStatus::Enabled);
    if enabled && webhook.is_none() {
        drop(d);
        return af(
            sim,
            StatusCode::BAD_REQUEST,
            "AF20024",
            "The subscription is already enabled. No property change.",
        );
    }
    d.enable(ci, now, webhook.clone());
    drop(d);
    let wh = webhook
        .map(|w| json!({"status": "enabled", "address": w["address"], "authId": w.get("authId").cloned().unwrap_or(Value::Null), "expiration": w.get("expiration").cloned().unwrap_or(Value::Null)}))
        .unwrap_or(Value::Null);
    json_resp(
        sim,
        StatusCode::OK,
        &json!({"contentType": ct.as_str(), "status": "enabled", "webhook": wh}),
    )
}

fn stop(sim: &Sim, ct: ContentType, now: DateTime<Utc>) -> Response {
    let ci = ct_index(ct);
    let mut d = sim.dyn_lock();
    if d.subs[ci].is_none() {
        drop(d);
        return af(
            sim,
            StatusCode::BAD_REQUEST,
            "AF20022",
            "No subscription found for the specified content type.",
        );
    }
    d.disable(ci, now, false);
    drop(d);
    ms(sim, StatusCode::OK, Body::empty(), None, JSON_CT)
}

fn list(sim: &Sim) -> Response {
    let d = sim.dyn_lock();
    let v: Vec<Value> = ContentType::ALL
        .iter()
        .enumerate()
        .filter_map(|(ci, ct)| {
            d.subs[ci].as_ref().map(|s| {
                json!({"contentType": ct.as_str(), "status": if s.status == SubStatus::Enabled { "enabled" } else { "disabled" },
                       "webhook": s.webhook.as_ref().map(|w| json!({"status": "enabled", "address": w["address"], "authId": w.get("authId").cloned().unwrap_or(Value::Null), "expiration": Value::Null})).unwrap_or(Value::Null)})
            })
        })
        .collect();
    drop(d);
    json_resp(sim, StatusCode::OK, &Value::Array(v))
}

/// Parses a startTime/endTime in every form clients send (docs/management-api.md, Windows),
/// including an unencoded `+00:00` that arrived as ` 00:00`.
pub(crate) fn parse_window_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim_start();
    if let Some(t) = parse_time(s) {
        return Some(t);
    }
    if let Some((a, b)) = s.rsplit_once(' ')
        && b.len() == 5
        && b.as_bytes()[2] == b':'
    {
        return parse_time(&format!("{a}+{b}"));
    }
    None
}

fn page_token(
    sim: &Sim,
    ci: usize,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    offset: usize,
) -> String {
    let check = mix(&[
        sim.opts.seed,
        0x9A6E,
        ci as u64,
        start.timestamp_millis() as u64,
        end.timestamp_millis() as u64,
        offset as u64,
    ]) % 10_000_000;
    format!("{}R{:06}{:07}", start.format("%Y%m%d%H"), offset, check)
}

fn parse_page_token(
    sim: &Sim,
    ci: usize,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    tok: &str,
) -> Option<usize> {
    let (_, rest) = tok.split_once('R')?;
    if rest.len() != 13 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let offset: usize = rest[..6].parse().ok()?;
    (page_token(sim, ci, start, end, offset) == tok).then_some(offset)
}

/// One content object, keys in Microsoft's order.
fn content_object(sim: &Sim, m: &BlobMeta, base: &str, notification: bool) -> String {
    let uri = format!(
        "{base}/api/v1.0/{}/activity/feed/audit/{}",
        sim.tenant.id, m.content_id
    );
    let mut o = Obj::new();
    if notification {
        o.s("tenantId", &sim.tenant.id)
            .s("clientId", &sim.tenant.main_app().client_id);
    }
    o.s("contentType", m.ct().as_str())
        .s("contentId", &m.content_id)
        .s("contentUri", &uri)
        .s("contentCreated", &format_api_time(m.created))
        .s("contentExpiration", &format_api_time(m.expiration));
    if notification {
        o.s(
            "notificationSent",
            &format_api_time(m.listed_at + Duration::seconds(30)),
        )
        .s("notificationStatus", "Succeeded");
    }
    o.done()
}

fn content(
    sim: &Sim,
    ct: ContentType,
    q: &Q,
    publisher: Option<&str>,
    now: DateTime<Utc>,
    broken: bool,
    notifications: bool,
) -> Response {
    let ci = ct_index(ct);
    let sub = sim.dyn_lock().subs[ci].clone();
    let Some(sub) = sub else {
        sim.report_lock().misbehaviour(
            "listing_unsubscribed",
            Some(ct),
            "subscriptions/content before subscriptions/start",
            now,
        );
        return af(
            sim,
            StatusCode::BAD_REQUEST,
            "AF20022",
            "No subscription found for the specified content type.",
        );
    };
    if sub.status == SubStatus::Disabled {
        let msg = if sub.disabled_by_admin {
            "The subscription was disabled by a tenant admin."
        } else {
            "The subscription was disabled."
        };
        return af(sim, StatusCode::BAD_REQUEST, "AF20023", msg);
    }
    let af20055 = "Start time and end time must both be specified (or both omitted) and must be less than or equal to 24 hours apart, with the start time prior to end time and start time no more than 7 days in the past.";
    let (s_raw, e_raw) = (q.get("startTime"), q.get("endTime"));
    let next_tok = q.get("nextPage");
    let (start, end, s_str, e_str) = match (s_raw, e_raw) {
        (None, None) => {
            let (s, e) = (now - Duration::hours(24), now);
            (s, e, format_api_time(s), format_api_time(e))
        }
        (Some(s), Some(e)) => {
            let Some(st) = parse_window_time(s) else {
                return af(
                    sim,
                    StatusCode::BAD_REQUEST,
                    "AF20002",
                    "Invalid parameter type: startTime. Expected type: DateTime",
                );
            };
            let Some(en) = parse_window_time(e) else {
                return af(
                    sim,
                    StatusCode::BAD_REQUEST,
                    "AF20002",
                    "Invalid parameter type: endTime. Expected type: DateTime",
                );
            };
            (st, en, s.to_string(), e.to_string())
        }
        _ => {
            sim.report_lock().misbehaviour(
                "window_half_open",
                Some(ct),
                "only one of startTime/endTime given",
                now,
            );
            return af(sim, StatusCode::BAD_REQUEST, "AF20055", af20055);
        }
    };
    if end <= start {
        sim.report_lock().misbehaviour(
            "window_start_not_before_end",
            Some(ct),
            &format!("{s_str} .. {e_str}"),
            now,
        );
        return af(sim, StatusCode::BAD_REQUEST, "AF20055", af20055);
    }
    if end - start > Duration::hours(24) {
        sim.report_lock().misbehaviour(
            "window_over_24h",
            Some(ct),
            &format!("{s_str} .. {e_str}"),
            now,
        );
        if !sim.opts.lenient_window {
            return af(sim, StatusCode::BAD_REQUEST, "AF20055", af20055);
        }
    }
    if sim.faults.is_on(Fault::MaxWindow1h) && end - start > Duration::hours(1) {
        // An implementation (or proxy) that allows at most an hour per window.
        sim.faults.count(Fault::MaxWindow1h);
        sim.report_lock().misbehaviour(
            "window_over_max",
            Some(ct),
            &format!("{s_str} .. {e_str} is longer than the 1 h this API allows"),
            now,
        );
        return af(
            sim,
            StatusCode::BAD_REQUEST,
            "AF20055",
            "Start time and end time must be less than or equal to 1 hour apart.",
        );
    }
    if next_tok.is_none() && start < now - Duration::days(feed::RETENTION_DAYS) {
        sim.report_lock().misbehaviour(
            "window_past_7_days",
            Some(ct),
            &format!(
                "startTime {s_str} is more than 7 days before {}",
                format_api_time(now)
            ),
            now,
        );
        if start
            < now
                - Duration::days(feed::RETENTION_DAYS)
                - Duration::seconds(sim.opts.seven_day_grace_secs)
        {
            return af(sim, StatusCode::BAD_REQUEST, "AF20055", af20055);
        }
    }
    let offset = match next_tok {
        None => 0,
        Some(t) => match parse_page_token(sim, ci, start, end, t) {
            Some(o) => o,
            None => {
                return af(
                    sim,
                    StatusCode::BAD_REQUEST,
                    "AF20031",
                    &format!("Invalid nextPage Input: {t}."),
                );
            }
        },
    };
    let delayed = sim.opts.first_blob_delay_secs > 0
        && now < sub.created + Duration::seconds(sim.opts.first_blob_delay_secs);
    if notifications {
        let v: Vec<String> = if sub.webhook.is_none() || delayed {
            Vec::new()
        } else {
            sim.listable(ci, start, end, now)
                .iter()
                .take(sim.opts.page_size.max(1))
                .map(|m| content_object(sim, m, &sim.api_base, true))
                .collect()
        };
        return ms(
            sim,
            StatusCode::OK,
            Body::from(raw_array(&v)),
            None,
            JSON_CT,
        );
    }
    let all = if delayed {
        Vec::new()
    } else {
        sim.listable(ci, start, end, now)
    };
    let size = sim.opts.page_size.max(1);
    let page: Vec<&BlobMeta> = all.iter().skip(offset).take(size).collect();
    let more = offset + page.len() < all.len();
    let items: Vec<String> = page
        .iter()
        .map(|m| {
            let base = if sim.faults.draw(Fault::ForeignContentUri) {
                sim.foreign_base.as_str()
            } else {
                sim.api_base.as_str()
            };
            content_object(sim, m, base, false)
        })
        .collect();
    let next = more.then(|| {
        let base = if sim.faults.draw(Fault::ForeignNextPage) {
            sim.foreign_base.as_str()
        } else {
            sim.api_base.as_str()
        };
        let lower = sim.opts.lowercase_next_page || sim.faults.is_on(Fault::LowercaseNextPage);
        let n = |s: &'static str| {
            if lower {
                s.to_ascii_lowercase()
            } else {
                s.to_string()
            }
        };
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        ser.append_pair(&n("contentType"), ct.as_str());
        ser.append_pair(&n("startTime"), &s_str);
        ser.append_pair(&n("endTime"), &e_str);
        if let Some(p) = publisher {
            ser.append_pair(&n("PublisherIdentifier"), p);
        }
        ser.append_pair(
            &n("nextPage"),
            &page_token(sim, ci, start, end, offset + page.len()),
        );
        let ver = if sim.opts.api_v1_next_page {
            "v1"
        } else {
            "v1.0"
        };
        format!(
            "{base}/api/{ver}/{}/activity/feed/subscriptions/content?{}",
            sim.tenant.id,
            ser.finish()
        )
    });
    {
        let mut rep = sim.report_lock();
        rep.page(offset == 0, page.len());
        if next.is_none() && !broken {
            rep.window_done(ct, start, end);
        }
    }
    ms(
        sim,
        StatusCode::OK,
        Body::from(raw_array(&items)),
        next.as_deref(),
        JSON_CT,
    )
}

async fn blob(sim: &Arc<Sim>, id: &str, now: DateTime<Utc>, broken: bool) -> Response {
    let injected = sim
        .dyn_lock()
        .injected
        .iter()
        .find(|(m, _)| m.content_id == id)
        .map(|(m, _)| m.clone());
    let m = match injected {
        Some(m) => m,
        None => match sim.feed.lookup(id) {
            Lookup::Invalid => {
                return af(
                    sim,
                    StatusCode::BAD_REQUEST,
                    "AF20052",
                    &format!("Content ID {id} in the URL is invalid."),
                );
            }
            Lookup::NotFound => {
                return af(
                    sim,
                    StatusCode::NOT_FOUND,
                    "AF20050",
                    &format!("The specified content ({id}) does not exist."),
                );
            }
            Lookup::Found(m) => m,
        },
    };
    if m.listed_at > now || sim.dyn_lock().is_hidden(m.ci, m.created) {
        return af(
            sim,
            StatusCode::NOT_FOUND,
            "AF20050",
            &format!("The specified content ({id}) does not exist."),
        );
    }
    if m.expiration <= now {
        sim.report_lock().misbehaviour(
            "expired_blob_fetched",
            Some(m.ct()),
            &format!("{id} expired at {}", format_api_time(m.expiration)),
            now,
        );
        return af(
            sim,
            StatusCode::BAD_REQUEST,
            "AF20051",
            &format!(
                "Content requested with the key {id} has already expired. Content older than 7 days cannot be retrieved."
            ),
        );
    }
    let ct = m.ct();
    let recs = if m.approx_records() > 200 {
        let s = sim.clone();
        let mm = m.clone();
        match tokio::task::spawn_blocking(move || s.blob_records(&mm)).await {
            Ok(r) => r,
            Err(_) => {
                return af(
                    sim,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "AF50000",
                    "An internal error occurred. Retry the request.",
                );
            }
        }
    } else {
        sim.blob_records(&m)
    };
    let mut body = String::with_capacity(recs.iter().map(|r| r.1.len() + 1).sum::<usize>() + 2);
    body.push('[');
    for (i, r) in recs.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&r.1);
    }
    body.push(']');
    if !broken {
        sim.report_lock().blob_served(ct, recs.iter().map(|r| r.0));
    }
    ms(sim, StatusCode::OK, Body::from(body), None, JSON_CT)
}

fn dlp_types(sim: &Sim, headers: &HeaderMap) -> Response {
    if let Some(l) = headers.get("accept-language").and_then(|v| v.to_str().ok()) {
        if l.contains(',') {
            return af(
                sim,
                StatusCode::BAD_REQUEST,
                "AF20053",
                "Only one language may be present in the Accept-Language header.",
            );
        }
        if !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') || l.is_empty() {
            return af(
                sim,
                StatusCode::BAD_REQUEST,
                "AF20054",
                "Invalid syntax in Accept-Language header.",
            );
        }
    }
    let types = [
        ("50842eb7-edc8-4019-85dd-5a5c1f2bb085", "Credit Card Number"),
        (
            "a44669fe-0d48-453d-a9b1-2cc83f2cba77",
            "U.S. Social Security Number (SSN)",
        ),
        (
            "e7dc4711-11b7-4cb0-b88b-2c394a771f0e",
            "International Banking Account Number (IBAN)",
        ),
        ("c840e719-0896-45bb-84fd-1ed5c95e45ff", "EU Passport Number"),
        (
            "3008b884-8c8c-4cd8-a289-99f34fc7ff5d",
            "EU Debit Card Number",
        ),
        (
            "178ec42a-18b4-47cc-85c7-d62c92fd67f8",
            "Netherlands Citizen's Service (BSN) Number",
        ),
        ("cb353f78-2b72-4c3c-8827-92ebe4f69fdf", "ABA Routing Number"),
        (
            "0e9b3178-9678-47dd-a509-37222ca96b42",
            "Azure Storage Account Key",
        ),
    ];
    let v: Vec<Value> = types
        .iter()
        .map(|(id, name)| json!({"id": id, "name": name}))
        .collect();
    json_resp(sim, StatusCode::OK, &Value::Array(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_times_in_every_form() {
        for s in [
            "2026-05-04",
            "2026-05-04T09:14",
            "2026-05-04T09:14:22",
            "2026-05-04T09:14:22.123",
            "2026-05-04T09:14:22Z",
            "2026-05-04T09:14:22.123456789Z",
            "2026-05-04T09:14:22+00:00",
            "2026-05-04T09:14:22 00:00",
        ] {
            assert!(parse_window_time(s).is_some(), "{s}");
        }
        assert!(parse_window_time("yesterday").is_none());
        assert_eq!(pct_decode("a%24b%2"), "a$b%2");
    }
}
