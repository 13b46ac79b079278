//! The Microsoft identity platform side of the practice tenant: the v2 and v1
//! client-credentials token endpoints (secret in the body or HTTP Basic), AADSTS errors in
//! Microsoft's JSON shape, and the checks every API route makes on a bearer token (tenant,
//! audience, roles, expiry on the virtual clock). Tokens are HMAC-signed JWT-shaped
//! strings; clients must treat them as opaque. Secrets and tokens never appear in errors.

use super::Sim;
use super::faults::Fault;
use super::rng::Rng;
use super::tenant::App;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

pub(crate) const RESOURCES: &[&str] = &[
    "https://manage.office.com",
    "https://manage-gcc.office.com",
    "https://manage.office365.us",
    "https://manage.protection.apps.mil",
    "https://manage.office.cn",
];

#[derive(Debug, Clone)]
pub(crate) struct Claims {
    pub tid: String,
    pub appid: String,
    pub roles: Vec<String>,
}

pub(crate) enum TokenCheck {
    Missing,
    Invalid,
    Expired,
    Ok(Claims),
}

fn sign(key: &[u8], data: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(data.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

pub(crate) fn issue(
    sim: &Sim,
    app: &App,
    tid: &str,
    aud: &str,
    now: DateTime<Utc>,
    lifetime: i64,
) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"HS256","x5t":"practice-tenant"}"#);
    let iat = now.timestamp();
    let claims = json!({
        "aud": aud, "iss": format!("https://sts.windows.net/{tid}/"), "iat": iat, "nbf": iat,
        "exp": iat + lifetime, "appid": app.client_id, "appidacr": "1",
        "idp": format!("https://sts.windows.net/{tid}/"), "oid": sim.tenant.users[0].oid,
        "roles": app.roles, "sub": app.client_id, "tid": tid, "ver": "1.0",
    });
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let body = format!("{header}.{payload}");
    let sig = sign(&sim.key, &body);
    format!("{body}.{sig}")
}

pub(crate) fn check(sim: &Sim, headers: &HeaderMap, now: DateTime<Utc>) -> TokenCheck {
    let Some(h) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return TokenCheck::Missing;
    };
    let Some(tok) = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))
    else {
        return TokenCheck::Invalid;
    };
    let parts: Vec<&str> = tok.trim().split('.').collect();
    if parts.len() != 3 {
        return TokenCheck::Invalid;
    }
    let expected = sign(&sim.key, &format!("{}.{}", parts[0], parts[1]));
    if expected.is_empty() || expected != parts[2] {
        return TokenCheck::Invalid;
    }
    let Some(v) = URL_SAFE_NO_PAD
        .decode(parts[1])
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    else {
        return TokenCheck::Invalid;
    };
    let exp = v["exp"].as_i64().unwrap_or(0);
    if exp <= now.timestamp() {
        return TokenCheck::Expired;
    }
    TokenCheck::Ok(Claims {
        tid: v["tid"].as_str().unwrap_or("").to_string(),
        appid: v["appid"].as_str().unwrap_or("").to_string(),
        roles: v["roles"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// An AADSTS error body exactly as Entra shapes it.
pub(crate) fn aadsts(
    status: StatusCode,
    error: &str,
    code: u32,
    text: &str,
    now: DateTime<Utc>,
    r: &mut Rng,
) -> (StatusCode, Value) {
    let ts = now.format("%Y-%m-%d %H:%M:%SZ").to_string();
    let trace = r.guid();
    let corr = r.guid();
    (
        status,
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {ts}"),
            "error_codes": [code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

/// The token endpoint. `v2` selects `scope` (v2) or `resource` (v1).
pub(crate) fn token(
    sim: &Sim,
    tenant_seg: &str,
    v2: bool,
    headers: &HeaderMap,
    body: &[u8],
) -> (StatusCode, Value) {
    let now = sim.now();
    let mut r = Rng::new(super::rng::mix(&[
        sim.opts.seed,
        now.timestamp_micros() as u64,
    ]));
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let bad = StatusCode::BAD_REQUEST;
    let unauth = StatusCode::UNAUTHORIZED;
    let Some(tid) = sim.tenant.resolve(tenant_seg).map(String::from) else {
        return aadsts(
            bad,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant_seg}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
            now,
            &mut r,
        );
    };
    // HTTP Basic: client_id:client_secret, each form-urlencoded (RFC 6749 §2.3.1).
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Basic ")
                .or_else(|| h.strip_prefix("basic "))
        })
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let (u, p) = s.split_once(':')?;
            let dec = |x: &str| {
                url::form_urlencoded::parse(format!("a={x}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((dec(u)?, dec(p)?))
        });
    let grant = get("grant_type").unwrap_or_default();
    if grant != "client_credentials" {
        return aadsts(
            bad,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type. Only client_credentials is supported by the practice tenant.",
            now,
            &mut r,
        );
    }
    let client_id = get("client_id").or_else(|| basic.as_ref().map(|b| b.0.clone()));
    let Some(client_id) = client_id else {
        return aadsts(
            bad,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
            now,
            &mut r,
        );
    };
    let Some(app) = sim
        .tenant
        .apps
        .iter()
        .find(|a| a.client_id.eq_ignore_ascii_case(&client_id))
    else {
        return aadsts(
            bad,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant_seg}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
            now,
            &mut r,
        );
    };
    let secret = get("client_secret").or_else(|| basic.as_ref().map(|b| b.1.clone()));
    let Some(secret) = secret else {
        return aadsts(
            unauth,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            now,
            &mut r,
        );
    };
    if secret != app.client_secret {
        return aadsts(
            unauth,
            "invalid_client",
            7000215,
            &format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                app.client_id
            ),
            now,
            &mut r,
        );
    }
    if std::ptr::eq(app, sim.tenant.main_app()) && sim.faults.is_on(Fault::SecretExpired) {
        sim.faults.count(Fault::SecretExpired);
        return aadsts(
            unauth,
            "invalid_client",
            7000222,
            &format!(
                "The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.",
                app.client_id
            ),
            now,
            &mut r,
        );
    }
    let api = sim.api_base.trim_end_matches('/');
    let known = |res: &str| {
        let res = res.trim_end_matches('/');
        RESOURCES.iter().any(|k| k.eq_ignore_ascii_case(res)) || res.eq_ignore_ascii_case(api)
    };
    let aud = if v2 {
        let scope = get("scope").unwrap_or_default();
        let Some(res) = scope.trim().strip_suffix("/.default").filter(|r| known(r)) else {
            let text = if scope.is_empty() {
                "The provided request must include a 'scope' input parameter.".to_string()
            } else {
                format!(
                    "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
                )
            };
            return aadsts(bad, "invalid_scope", 70011, &text, now, &mut r);
        };
        res.trim_end_matches('/').to_string()
    } else {
        let res = get("resource").unwrap_or_default();
        if !known(&res) {
            return aadsts(
                bad,
                "invalid_resource",
                500011,
                &format!(
                    "The resource principal named {res} was not found in the tenant named {tenant_seg}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."
                ),
                now,
                &mut r,
            );
        }
        res.trim_end_matches('/').to_string()
    };
    let (lo, hi) = sim.opts.token_lifetime_secs;
    let lifetime = r.range(lo, hi.max(lo));
    let tok = issue(sim, app, &tid, &aud, now, lifetime);
    if v2 {
        (
            StatusCode::OK,
            json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": tok}),
        )
    } else {
        let t = now.timestamp();
        (
            StatusCode::OK,
            json!({"token_type": "Bearer", "expires_in": lifetime.to_string(), "ext_expires_in": "0",
                   "expires_on": (t + lifetime).to_string(), "not_before": t.to_string(), "resource": aud, "access_token": tok}),
        )
    }
}

/// With `token_basic_only`: the request carries HTTP Basic credentials and none in the body.
pub(crate) fn basic_only_ok(headers: &HeaderMap, body: &[u8]) -> bool {
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|h| h.len() > 6 && h[..6].eq_ignore_ascii_case("basic "));
    let in_body = url::form_urlencoded::parse(body).any(|(k, _)| k == "client_secret");
    basic && !in_body
}

/// With `token_text_errors`: an AADSTS error as the one-line plain text a careless double
/// sends — including, for a wrong secret, the secret it was given (clients must not show it).
pub(crate) fn text_error(v: &Value, body: &[u8]) -> String {
    let error = v["error"].as_str().unwrap_or("error");
    let desc = v["error_description"].as_str().unwrap_or("");
    let first = desc.split(['\r', '\n']).next().unwrap_or("");
    let given = url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "client_secret")
        .map(|(_, v)| format!(" (client_secret given: {v})"))
        .unwrap_or_default();
    let code = v["error_codes"][0].as_u64();
    let given = if code == Some(7000215) {
        given
    } else {
        String::new()
    };
    format!("{error}: {first}{given}\n")
}
