//! The test control plane of the practice tenant (docs/management-api.md), on its own port:
//! ground truth, counts, the served/misbehaviour report, the virtual clock (advance,
//! freeze, unfreeze), faults, record injection, plus `info` (extra apps and tenants for
//! tests) and `stories`. Nothing here is reachable from the API port.

use super::faults::Fault;
use super::feed::{BlobMeta, ct_index};
use super::{Sim, feed};
use crate::model::{ContentType, RecordHeader, format_api_time};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Duration;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

type S = State<Arc<Sim>>;

pub(crate) fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/__control/truth", get(truth))
        .route("/__control/truth/count", get(truth_count))
        .route("/__control/report", get(report))
        .route("/__control/advance", post(advance))
        .route("/__control/faults", get(faults_get).post(faults_set))
        .route("/__control/inject", post(inject))
        .route("/__control/freeze", post(freeze))
        .route("/__control/drop_subscriptions", post(drop_subscriptions))
        .route("/__control/unfreeze", post(unfreeze))
        .route("/__control/clock", get(clock))
        .route("/__control/info", get(info))
        .route("/__control/stories", get(stories))
        .with_state(sim)
}

fn jr(status: StatusCode, v: Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn bad(msg: impl Into<String>) -> Response {
    jr(StatusCode::BAD_REQUEST, json!({"error": msg.into()}))
}

#[derive(Deserialize)]
struct CtQuery {
    content_type: Option<String>,
}

fn ct_param(q: &CtQuery) -> Result<Option<ContentType>, Box<Response>> {
    match q.content_type.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<ContentType>()
            .map(Some)
            .map_err(|e| Box::new(bad(e))),
    }
}

async fn truth(State(sim): S, Query(q): Query<CtQuery>) -> Response {
    let only = match ct_param(&q) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let now = sim.now();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        let mut buf = String::with_capacity(1 << 20);
        let mut ok = true;
        sim.for_each_truth(only, now, |_, rec| {
            if !ok {
                return;
            }
            buf.push_str(rec);
            buf.push('\n');
            if buf.len() >= 1 << 20 {
                ok = tx
                    .blocking_send(Ok(Bytes::from(std::mem::take(&mut buf))))
                    .is_ok();
            }
        });
        if ok && !buf.is_empty() {
            let _ = tx.blocking_send(Ok(Bytes::from(buf)));
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn truth_count(State(sim): S) -> Response {
    let now = sim.now();
    let res = tokio::task::spawn_blocking(move || {
        let counts = sim.count_truth(now);
        let by: BTreeMap<&'static str, u64> = ContentType::ALL
            .iter()
            .zip(counts)
            .map(|(c, n)| (c.as_str(), n))
            .collect();
        let total: u64 = counts.iter().sum();
        json!({"total": total, "by_content_type": by, "now": format_api_time(now)})
    })
    .await;
    match res {
        Ok(v) => jr(StatusCode::OK, v),
        Err(e) => jr(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": e.to_string()}),
        ),
    }
}

async fn report(State(sim): S) -> Response {
    let now = sim.now();
    let fired = sim.faults.fired();
    let v = sim.report_lock().to_json(fired, now);
    jr(StatusCode::OK, v)
}

#[derive(Deserialize)]
struct AdvanceQ {
    seconds: Option<i64>,
}

async fn advance(State(sim): S, Query(q): Query<AdvanceQ>) -> Response {
    let Some(s) = q.seconds else {
        return bad("advance needs ?seconds=N");
    };
    sim.clock.advance(Duration::seconds(s));
    jr(
        StatusCode::OK,
        json!({"now": format_api_time(sim.now()), "frozen": sim.clock.is_frozen()}),
    )
}

fn clock_json(sim: &Sim) -> Value {
    json!({"now": format_api_time(sim.now()), "frozen": sim.clock.is_frozen()})
}

async fn freeze(State(sim): S) -> Response {
    sim.clock.freeze();
    jr(StatusCode::OK, clock_json(&sim))
}

/// Forgets every subscription, as the service does when it drops a tenant's subscriptions:
/// listing then answers AF20022 until a client starts them again.
async fn drop_subscriptions(State(sim): S) -> Response {
    let mut d = sim.dyn_lock();
    for s in d.subs.iter_mut() {
        *s = None;
    }
    drop(d);
    jr(StatusCode::OK, json!({"subscriptions": 0}))
}

async fn unfreeze(State(sim): S) -> Response {
    sim.clock.unfreeze();
    jr(StatusCode::OK, clock_json(&sim))
}

async fn clock(State(sim): S) -> Response {
    jr(StatusCode::OK, clock_json(&sim))
}

fn faults_json(sim: &Sim) -> Value {
    json!({"on": sim.faults.active(), "available": Fault::ALL.map(Fault::name), "fired": sim.faults.fired(), "percent": sim.opts.fault_percent})
}

async fn faults_get(State(sim): S) -> Response {
    jr(StatusCode::OK, faults_json(&sim))
}

#[derive(Deserialize, Default)]
struct FaultBody {
    #[serde(default)]
    on: Vec<String>,
    #[serde(default)]
    off: Vec<String>,
}

async fn faults_set(State(sim): S, body: Bytes) -> Response {
    let b: FaultBody = if body.is_empty() {
        FaultBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return bad(format!("body must be {{\"on\":[..],\"off\":[..]}}: {e}")),
        }
    };
    let parse = |v: &[String]| super::faults::parse_list(&v.join(","));
    let (on, off) = match (parse(&b.on), parse(&b.off)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return bad(e),
    };
    for f in off {
        sim.set_fault(f, false);
    }
    for f in on {
        sim.set_fault(f, true);
    }
    jr(StatusCode::OK, faults_json(&sim))
}

async fn inject(State(sim): S, Query(q): Query<CtQuery>, body: Bytes) -> Response {
    let forced = match ct_param(&q) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let now = sim.now();
    let text = String::from_utf8_lossy(&body);
    let mut per_ct: HashMap<usize, Vec<feed::Rec>> = HashMap::new();
    let mut r = super::rng::Rng::new(super::rng::mix(&[
        sim.opts.seed,
        0x1E,
        now.timestamp_micros() as u64,
    ]));
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let mut v: Value = match serde_json::from_str(line) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return bad(format!("line {}: not a JSON object", n + 1)),
            Err(e) => return bad(format!("line {}: {e}", n + 1)),
        };
        if v.get("Id").and_then(Value::as_str).is_none() {
            v["Id"] = json!(r.guid());
        }
        if v.get("CreationTime").and_then(Value::as_str).is_none() {
            v["CreationTime"] = json!(crate::model::format_record_time(now));
        }
        if v.get("OrganizationId").is_none() {
            v["OrganizationId"] = json!(sim.tenant.id);
        }
        let h = match RecordHeader::from_value(&v) {
            Ok(h) => h,
            Err(e) => return bad(format!("line {}: {e}", n + 1)),
        };
        let ct = forced.unwrap_or_else(|| h.content_type());
        per_ct
            .entry(ct_index(ct))
            .or_default()
            .push(Arc::new((super::rng::id_key(&h.id), v.to_string())));
    }
    if per_ct.is_empty() {
        return bad("no records in body (JSON lines expected)");
    }
    let mut out = Vec::new();
    let mut d = sim.dyn_lock();
    let mut keys: Vec<usize> = per_ct.keys().copied().collect();
    keys.sort_unstable();
    for ci in keys {
        let recs = per_ct.remove(&ci).unwrap_or_default();
        let n = d.injected.len() as u64;
        let id = sim.feed.injected_content_id(ci, now, n);
        out.push(json!({"content_type": ContentType::ALL[ci].as_str(), "content_id": id, "records": recs.len()}));
        d.injected.push((BlobMeta::injected(ci, now, id), recs));
    }
    drop(d);
    jr(
        StatusCode::OK,
        json!({"blobs": out, "content_created": format_api_time(now)}),
    )
}

async fn info(State(sim): S) -> Response {
    let t = &sim.tenant;
    let apps: Vec<Value> = t.apps.iter().map(|a| json!({"name": a.name, "client_id": a.client_id, "client_secret": a.client_secret, "roles": a.roles})).collect();
    jr(
        StatusCode::OK,
        json!({
            "tenant_id": t.id, "domain": t.domain, "onmicrosoft_domain": t.onms,
            "other_tenant_id": t.other_tenant_id,
            "apps": apps,
            "api_url": sim.api_base, "foreign_url": sim.foreign_base,
            "now": format_api_time(sim.now()), "anchor": format_api_time(sim.anchor),
            "history_start": format_api_time(sim.feed.h0),
            "seed": sim.opts.seed, "days": sim.opts.days, "records_per_day": sim.opts.records_per_day,
            "page_size": sim.opts.page_size, "blob_interval_secs": sim.feed.slot_secs,
            "users": t.users.iter().map(|u| u.upn.clone()).collect::<Vec<_>>(),
        }),
    )
}

async fn stories(State(sim): S) -> Response {
    jr(
        StatusCode::OK,
        serde_json::to_value(&sim.feed.stories).unwrap_or(Value::Null),
    )
}
