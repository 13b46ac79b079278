//! The practice tenant: a faithful Office 365 Management Activity API, Microsoft
//! identity token endpoint and test control plane, on a virtual clock. It shares `model`
//! and must never use `store`; it owns no files and listens on 127.0.0.1 by default.
//!
//! # Shape
//!
//! ```text
//! clock    virtual time: starts at --now or the real time, runs, advances, freezes
//! tenant   the seeded tenant: ids, secret, apps, users, sites, IP pools, user agents
//! factory  record builders with the real shapes and quirks (docs/management-api.md, Record quirks)
//! stories  the planted attack stories and their near-misses (docs/detections.md) — see `stories()`
//! feed     blob catalogue: slot k of a content type → blob metadata + records, lazily
//! auth     token endpoints v1/v2 (AADSTS errors) and bearer-token checks (AF10001, AF20010)
//! api      the Management Activity API routes, time-window rules, pagination, errors
//! faults   fault names, switches and the seeded fraction of requests they hit
//! report   what was served and every client misbehaviour
//! control  /__control/* on its own port
//! bench    `bench_serve`: blob-serving throughput over HTTP
//! ```
//!
//! Three listeners: the API + login host (`api_url` = `login_url`), the control plane
//! (`control_url`), and a "foreign host" (127.0.0.2, or `localhost` when 127.0.0.2 cannot
//! be bound) that the `foreign_next_page` / `foreign_content_uri` faults point at; any
//! `Authorization` header arriving there is reported as `token_sent_to_foreign_host`.
//!
//! # Try it with curl
//!
//! ```text
//! m365audit simulate --seed 7            # prints {"login_url":…,"api_url":…,"control_url":…,…}
//! TOK=$(curl -s -X POST "$LOGIN/$TENANT/oauth2/v2.0/token" -d grant_type=client_credentials \
//!        --data-urlencode client_id=$ID --data-urlencode client_secret=$SECRET \
//!        --data-urlencode scope=https://manage.office.com/.default | jq -r .access_token)
//! FEED=$API/api/v1.0/$TENANT/activity/feed
//! curl -s -X POST -H "Authorization: Bearer $TOK" "$FEED/subscriptions/start?contentType=Audit.Exchange&PublisherIdentifier=$TENANT"
//! curl -s -D- -H "Authorization: Bearer $TOK" "$FEED/subscriptions/content?contentType=Audit.Exchange&PublisherIdentifier=$TENANT"
//! #   → a JSON array of blobs; the NextPageUri header (if any) is the next page, follow it verbatim
//! curl -s -H "Authorization: Bearer $TOK" "<contentUri>?PublisherIdentifier=$TENANT"   # → the records
//! curl -s $CONTROL/__control/truth/count ; curl -s $CONTROL/__control/report
//! curl -s -X POST $CONTROL/__control/faults -d '{"on":["throttle_429","reset_mid_body"]}'
//! ```
//!
//! Control plane: `GET /__control/truth[?content_type=CT]` (JSON lines), `GET
//! /__control/truth/count`, `GET /__control/report`, `POST /__control/advance?seconds=N`,
//! `GET|POST /__control/faults` (`{"on":[..],"off":[..]}`), `POST
//! /__control/inject[?content_type=CT]` (JSON lines → new blobs, listed now), `POST
//! /__control/freeze`, `POST /__control/unfreeze`, `GET /__control/clock`, `GET
//! /__control/info` (the other apps — one without admin consent, one without ReadDlp —, the
//! other tenant, the foreign host), `GET /__control/stories`.
//!
//! Faults ([`Fault`]): transient `throttle_403`, `throttle_429`, `throttle_retry_after`,
//! `internal_500`, `unavailable_503`, `timeout_408`, `reset_mid_body`, `truncated_body`,
//! `non_json_body` (a seeded `fault_percent` of API requests, never the same request more
//! than twice running); per-response `foreign_next_page`, `foreign_content_uri` (same
//! fraction of pages / content objects); switches `subscription_disabled`, `audit_off`,
//! `secret_expired`, `clock_skew` (server clock +20 min), `lowercase_next_page`.
//!
//! # Ground truth
//!
//! `truth` is every unique record (by Id, first copy) of every blob that is listable now:
//! `listed_at <= now`, `now - 7 d <= contentCreated`, not expired, and not created while
//! the subscription of its content type was stopped or disabled. It ignores the
//! first-blob delay and whether a subscription was ever started. Order: content type
//! (ContentType::ALL order), contentCreated, contentId, position in the blob. Same seed and
//! same anchor (start time rounded down to the hour) ⇒ byte-identical truth at the same
//! virtual instant; tests use `start_frozen` so the instant is exact. Truth, windows and
//! history all follow the server's own clock: with `clock_skew` on from the start, the
//! anchor is taken from the skewed start, so the oldest blob is inside the 7-day window
//! of the server's clock, where a correct collector can list it.
//!
//! Interop switches make the practice tenant answer like other implementations of the
//! API (mocks, proxies): `token_text_errors` (token errors as 400 `text/plain`, a wrong
//! secret echoed), `token_basic_only` (client credentials only by HTTP Basic, else 400
//! "bad credentials in authorization header"), `no_subscription_list` (a bare 404 there),
//! `dlp_unknown` (a bare 404 for DLP.All), `max_window_1h` (AF20055 for windows over 1 h).

mod api;
mod auth;
mod bench;
pub mod clock;
mod control;
mod factory;
pub mod faults;
mod feed;
mod json;
mod report;
mod rng;
pub mod stories;
mod tenant;

pub use bench::{BenchReport, bench_generate, bench_serve};
pub use faults::Fault;
pub use stories::{Story, StoryRecord, stories};

use anyhow::Context as _;
use chrono::{DateTime, Duration, DurationRound, Utc};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::model::ContentType;
use faults::Faults;
use feed::{BlobMeta, Feed, Rec};
use report::Report;
use tenant::Tenant;

/// Options of a practice tenant. `Default` = 127.0.0.1:0, seed 1, 7 days, 2,000 records a
/// day, no faults, pages of 100, realism on.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub listen: SocketAddr,
    pub seed: u64,
    pub days: u32,
    pub records_per_day: u64,
    /// Fault names (see [`Fault`]); unknown names make `start` fail.
    pub faults: Vec<String>,
    /// Start of the virtual clock; default: the real time.
    pub now: Option<DateTime<Utc>>,
    pub page_size: usize,
    /// Control plane address; default: the API's IP with port 0.
    pub control_listen: Option<SocketAddr>,
    /// Start with the virtual clock frozen (tests: exact, reproducible instants).
    pub start_frozen: bool,
    /// Emit lower-cased parameter names in NextPageUri (the API since ~Sept 2025).
    pub lowercase_next_page: bool,
    /// Emit the `/api/v1/` path variant in NextPageUri (the documentation example).
    pub api_v1_next_page: bool,
    /// Blobs listable only after they were created (late-listed blobs).
    pub late_listing: bool,
    /// Duplicate records within and across blobs.
    pub duplicates: bool,
    /// No blob is listed until this long after a subscription's first start.
    pub first_blob_delay_secs: i64,
    /// Percentage of requests a transient fault hits.
    pub fault_percent: u32,
    /// Accept a startTime this much older than 7 days (real service: about an hour).
    pub seven_day_grace_secs: i64,
    /// Length of a blob slot per content type.
    pub blob_interval_secs: i64,
    /// Access-token lifetime range in seconds (Entra: 60–90 min).
    pub token_lifetime_secs: (i64, i64),
    /// Accept windows longer than 24 h (the documented "partial results" leniency).
    pub lenient_window: bool,
    /// A per-PublisherIdentifier token bucket (requests per minute, real time); over it,
    /// AF429 with 403. None = unlimited.
    pub requests_per_minute: Option<u32>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            seed: 1,
            days: 7,
            records_per_day: 2000,
            faults: Vec::new(),
            now: None,
            page_size: 100,
            control_listen: None,
            start_frozen: false,
            lowercase_next_page: false,
            api_v1_next_page: false,
            late_listing: true,
            duplicates: true,
            first_blob_delay_secs: 0,
            fault_percent: 20,
            seven_day_grace_secs: 0,
            blob_interval_secs: 600,
            token_lifetime_secs: (3599, 5399),
            lenient_window: false,
            requests_per_minute: None,
        }
    }
}

/// The anchor of a start time: rounded down to the hour.
pub(crate) fn anchor_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::hours(1)).unwrap_or(t)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubStatus {
    Enabled,
    Disabled,
}

#[derive(Debug, Clone)]
pub(crate) struct Sub {
    pub status: SubStatus,
    pub created: DateTime<Utc>,
    pub webhook: Option<serde_json::Value>,
    pub disabled_by_admin: bool,
}

/// A contentCreated range hidden forever: from, and until (open while still stopped).
pub(crate) type Hidden = (DateTime<Utc>, Option<DateTime<Utc>>);

#[derive(Default)]
pub(crate) struct Dyn {
    pub subs: [Option<Sub>; 5],
    /// contentCreated ranges hidden forever (stopped/disabled), per content type.
    pub hidden: [Vec<Hidden>; 5],
    pub injected: Vec<(BlobMeta, Vec<Rec>)>,
}

impl Dyn {
    pub(crate) fn is_hidden(&self, ci: usize, t: DateTime<Utc>) -> bool {
        self.hidden[ci]
            .iter()
            .any(|(a, b)| t >= *a && b.is_none_or(|b| t < b))
    }

    pub(crate) fn disable(&mut self, ci: usize, now: DateTime<Utc>, by_admin: bool) {
        if let Some(s) = self.subs[ci].as_mut()
            && s.status == SubStatus::Enabled
        {
            s.status = SubStatus::Disabled;
            s.disabled_by_admin = by_admin;
            self.hidden[ci].push((now, None));
        }
    }

    pub(crate) fn enable(
        &mut self,
        ci: usize,
        now: DateTime<Utc>,
        webhook: Option<serde_json::Value>,
    ) {
        match self.subs[ci].as_mut() {
            Some(s) => {
                s.status = SubStatus::Enabled;
                s.disabled_by_admin = false;
                s.webhook = webhook;
                if let Some(last) = self.hidden[ci].last_mut()
                    && last.1.is_none()
                {
                    last.1 = Some(now);
                }
            }
            None => {
                self.subs[ci] = Some(Sub {
                    status: SubStatus::Enabled,
                    created: now,
                    webhook,
                    disabled_by_admin: false,
                });
            }
        }
    }
}

/// Shared state of one running practice tenant.
pub(crate) struct Sim {
    pub opts: SimOptions,
    pub tenant: Arc<Tenant>,
    pub feed: Feed,
    pub clock: clock::VirtualClock,
    pub anchor: DateTime<Utc>,
    pub key: [u8; 32],
    pub api_base: String,
    pub foreign_base: String,
    pub st: Mutex<Dyn>,
    pub faults: Faults,
    pub report: Mutex<Report>,
    pub blob_cache: Mutex<std::collections::HashMap<String, Arc<Vec<Rec>>>>,
    /// Token buckets per PublisherIdentifier ("shared" without one): (tokens, last refill).
    pub buckets: Mutex<std::collections::HashMap<String, (f64, std::time::Instant)>>,
}

pub(crate) const CLOCK_SKEW_SECS: i64 = 20 * 60;

impl Sim {
    /// The server's time: the virtual clock, plus the skew while `clock_skew` is on.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        let t = self.clock.now();
        if self.faults.is_on(Fault::ClockSkew) {
            t + Duration::seconds(CLOCK_SKEW_SECS)
        } else {
            t
        }
    }

    pub(crate) fn dyn_lock(&self) -> std::sync::MutexGuard<'_, Dyn> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn report_lock(&self) -> std::sync::MutexGuard<'_, Report> {
        self.report.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Switches a fault, applying its side effects (subscription_disabled disables every
    /// enabled subscription).
    pub(crate) fn set_fault(&self, f: Fault, on: bool) {
        self.faults.set(f, on);
        if f == Fault::SubscriptionDisabled && on {
            let now = self.now();
            let mut d = self.dyn_lock();
            for ci in 0..5 {
                d.disable(ci, now, true);
            }
        }
    }

    /// Takes one request from the bucket of `publisher`; false when over the rate.
    pub(crate) fn take_token(&self, publisher: Option<&str>) -> bool {
        let Some(rpm) = self.opts.requests_per_minute else {
            return true;
        };
        let cap = f64::from(rpm.max(1));
        let key = publisher.unwrap_or("shared").to_ascii_lowercase();
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        let e = b.entry(key).or_insert((cap, now));
        e.0 = (e.0 + now.duration_since(e.1).as_secs_f64() * cap / 60.0).min(cap);
        e.1 = now;
        if e.0 >= 1.0 {
            e.0 -= 1.0;
            true
        } else {
            false
        }
    }

    /// The records of a blob (cached for a few blobs: retries and duplicates re-fetch).
    pub(crate) fn blob_records(&self, m: &BlobMeta) -> Arc<Vec<Rec>> {
        if m.k < 0 {
            let d = self.dyn_lock();
            return Arc::new(
                d.injected
                    .iter()
                    .find(|(b, _)| b.content_id == m.content_id)
                    .map(|(_, r)| r.clone())
                    .unwrap_or_default(),
            );
        }
        if let Some(r) = self
            .blob_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&m.content_id)
        {
            return r.clone();
        }
        let recs = Arc::new(self.feed.records(m));
        let mut c = self.blob_cache.lock().unwrap_or_else(|e| e.into_inner());
        // Enough for the retries and duplicates of the blobs being fetched at once; a
        // blob of a busy day is ~250 KB of records, so the cache is kept small.
        if c.len() >= 16 {
            c.clear();
        }
        c.insert(m.content_id.clone(), recs.clone());
        recs
    }

    /// Blobs of a content type listable now with `start <= created < end`, in the order
    /// they became available (listed_at, then contentId).
    pub(crate) fn listable(
        &self,
        ci: usize,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Vec<BlobMeta> {
        let end = end.min(now + Duration::milliseconds(1));
        if end <= start {
            return Vec::new();
        }
        let mut v = self.feed.blobs_between(ci, start, end);
        let d = self.dyn_lock();
        v.retain(|m| m.listed_at <= now && !d.is_hidden(ci, m.created));
        for (m, _) in &d.injected {
            if m.ci == ci && m.created >= start && m.created < end && m.listed_at <= now {
                v.push(m.clone());
            }
        }
        drop(d);
        v.sort_by(|a, b| {
            a.listed_at
                .cmp(&b.listed_at)
                .then_with(|| a.content_id.cmp(&b.content_id))
        });
        v
    }

    /// The blobs of the ground truth at `now`, in truth order.
    pub(crate) fn truth_blobs(&self, ci: usize, now: DateTime<Utc>) -> Vec<BlobMeta> {
        let lo = now - Duration::days(feed::RETENTION_DAYS);
        let mut v = self.listable(ci, lo, now + Duration::milliseconds(1), now);
        v.retain(|m| m.expiration > now);
        v.sort_by(|a, b| {
            a.created
                .cmp(&b.created)
                .then_with(|| a.content_id.cmp(&b.content_id))
        });
        v
    }

    /// Counts the unique truth records per content type without rendering them.
    pub(crate) fn count_truth(&self, now: DateTime<Utc>) -> [u64; 5] {
        let mut seen = std::collections::HashSet::new();
        let mut out = [0u64; 5];
        for (ci, n) in out.iter_mut().enumerate() {
            for m in self.truth_blobs(ci, now) {
                let keys: Vec<u128> = if m.k < 0 {
                    self.blob_records(&m).iter().map(|r| r.0).collect()
                } else {
                    self.feed.keys(&m)
                };
                for k in keys {
                    if seen.insert(k) {
                        *n += 1;
                    }
                }
            }
        }
        out
    }

    /// Calls `f` for every unique truth record at `now`, content types in order.
    pub(crate) fn for_each_truth(
        &self,
        only: Option<ContentType>,
        now: DateTime<Utc>,
        mut f: impl FnMut(ContentType, &str),
    ) {
        let mut seen = std::collections::HashSet::new();
        for (ci, ct) in ContentType::ALL.into_iter().enumerate() {
            if only.is_some_and(|o| o != ct) {
                continue;
            }
            for m in self.truth_blobs(ci, now) {
                let recs = if m.k < 0 {
                    self.blob_records(&m)
                } else {
                    Arc::new(self.feed.records(&m))
                };
                for r in recs.iter() {
                    if seen.insert(r.0) {
                        f(ct, &r.1);
                    }
                }
            }
        }
    }
}

/// A running practice tenant.
pub struct Simulator {
    pub login_url: String,
    pub api_url: String,
    pub control_url: String,
    pub foreign_url: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    sim: Arc<Sim>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("api_url", &self.api_url)
            .field("control_url", &self.control_url)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

async fn bind_foreign(port_hint: SocketAddr) -> anyhow::Result<(TcpListener, String)> {
    if port_hint.ip().is_loopback() {
        if let Ok(l) =
            TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), 0)).await
        {
            let a = l.local_addr()?;
            return Ok((l, format!("http://{a}")));
        }
        let l = TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)).await?;
        let a = l.local_addr()?;
        return Ok((l, format!("http://localhost:{}", a.port())));
    }
    // Not on loopback: the foreign host is this machine under the name "localhost" (the
    // API is advertised by address), on its own port.
    let l = TcpListener::bind(SocketAddr::new(port_hint.ip(), 0)).await?;
    let a = l.local_addr()?;
    Ok((l, format!("http://localhost:{}", a.port())))
}

/// The URL clients use for a bound address (an unspecified IP is advertised as loopback).
fn url_of(a: SocketAddr) -> String {
    if a.ip().is_unspecified() {
        let ip = if a.is_ipv4() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        };
        return format!("http://{}", SocketAddr::new(ip, a.port()));
    }
    format!("http://{a}")
}

impl Simulator {
    /// Binds the three listeners and starts serving on the current tokio runtime.
    pub async fn start(opts: SimOptions) -> anyhow::Result<Simulator> {
        crate::install_crypto_provider();
        let mut initial = Vec::new();
        for name in &opts.faults {
            initial.extend(faults::parse_list(name).map_err(crate::UsageError)?);
        }
        let mut opts = opts;
        if initial.contains(&Fault::LowercaseNextPage) {
            opts.lowercase_next_page = true;
        }
        let start = opts.now.unwrap_or_else(Utc::now);
        // The history is laid out on the server's own clock: with `clock_skew` on from the
        // start, that clock is ahead, and so are its 7-day window and its truth.
        let anchor = if initial.contains(&Fault::ClockSkew) {
            anchor_of(start + Duration::seconds(CLOCK_SKEW_SECS))
        } else {
            anchor_of(start)
        };
        let tenant = Arc::new(Tenant::generate(opts.seed, opts.records_per_day));
        let feed = Feed::new(
            opts.seed,
            tenant.clone(),
            anchor,
            feed::FeedShape {
                days: opts.days,
                records_per_day: opts.records_per_day,
                slot_secs: opts.blob_interval_secs,
                late: opts.late_listing,
                dups: opts.duplicates,
            },
        );
        let api_l = TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("binding the practice tenant to {}", opts.listen))?;
        let api_addr = api_l.local_addr()?;
        let control_addr = opts
            .control_listen
            .unwrap_or_else(|| SocketAddr::new(api_addr.ip(), 0));
        let control_l = TcpListener::bind(control_addr)
            .await
            .with_context(|| format!("binding the control plane to {control_addr}"))?;
        let control_addr = control_l.local_addr()?;
        let (foreign_l, foreign_base) = bind_foreign(api_addr)
            .await
            .context("binding the foreign-host listener")?;
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        let api_base = url_of(api_addr);
        let sim = Arc::new(Sim {
            faults: Faults::new(opts.seed, opts.fault_percent, &initial),
            clock: clock::VirtualClock::new(start, opts.start_frozen),
            opts,
            tenant: tenant.clone(),
            feed,
            anchor,
            key,
            api_base: api_base.clone(),
            foreign_base: foreign_base.clone(),
            st: Mutex::new(Dyn::default()),
            report: Mutex::new(Report::default()),
            blob_cache: Mutex::new(Default::default()),
            buckets: Mutex::new(Default::default()),
        });
        if initial.contains(&Fault::SubscriptionDisabled) {
            sim.set_fault(Fault::SubscriptionDisabled, true);
        }
        let (stop, rx) = watch::channel(false);
        let serve = |l: TcpListener, router: axum::Router, mut rx: watch::Receiver<bool>| {
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = rx.wait_for(|v| *v).await;
                };
                if let Err(e) = axum::serve(l, router)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    tracing::warn!(error = %e, "practice tenant listener stopped");
                }
            })
        };
        let tasks = vec![
            serve(api_l, api::router(sim.clone(), false), rx.clone()),
            serve(foreign_l, api::router(sim.clone(), true), rx.clone()),
            serve(control_l, control::router(sim.clone()), rx),
        ];
        let app = tenant.main_app();
        Ok(Simulator {
            login_url: api_base.clone(),
            api_url: api_base,
            control_url: url_of(control_addr),
            foreign_url: foreign_base,
            tenant_id: tenant.id.clone(),
            client_id: app.client_id.clone(),
            client_secret: app.client_secret.clone(),
            sim,
            stop,
            tasks,
        })
    }

    /// The JSON line of docs/architecture.md (CLI).
    pub fn ready_line(&self) -> String {
        serde_json::json!({
            "login_url": self.login_url,
            "api_url": self.api_url,
            "control_url": self.control_url,
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        })
        .to_string()
    }

    /// The virtual clock's current time.
    pub fn now(&self) -> DateTime<Utc> {
        self.sim.now()
    }

    /// Moves the virtual clock forward (what `POST /__control/advance` does), for
    /// in-process harnesses such as the bench's soak.
    pub fn advance(&self, by: Duration) -> DateTime<Utc> {
        self.sim.clock.advance(by)
    }

    /// Stops the virtual clock (what `POST /__control/freeze` does).
    pub fn freeze(&self) -> DateTime<Utc> {
        self.sim.clock.freeze()
    }

    /// The ground truth at the server's current time (see the module's "Ground truth") as
    /// Id → CreationTime, without rendering it as JSON lines.
    pub fn truth_ids(&self) -> std::collections::HashMap<String, DateTime<Utc>> {
        let now = self.sim.now();
        let mut ids = std::collections::HashMap::new();
        self.sim.for_each_truth(None, now, |_, raw| {
            if let Ok(h) = crate::model::RecordHeader::scan(raw.as_bytes(), &mut String::new()) {
                ids.insert(h.id, h.creation_time);
            }
        });
        ids
    }

    /// The planted stories of this tenant.
    pub fn stories(&self) -> &[Story] {
        &self.sim.feed.stories
    }

    /// Stops the listeners and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With `clock_skew` on from the start, late in the hour, every blob of the truth is
    /// one a correct collector can list on the server's clock: created at or after the
    /// listable floor (now − 7 d + 5 min of that clock).
    #[tokio::test]
    async fn with_clock_skew_the_truth_follows_the_servers_clock() {
        let start = anchor_of(Utc::now()) + Duration::minutes(58);
        let sim = Simulator::start(SimOptions {
            seed: 9,
            records_per_day: 5000,
            faults: vec!["clock_skew".into()],
            now: Some(start),
            start_frozen: true,
            ..SimOptions::default()
        })
        .await
        .expect("start");
        let now = sim.now();
        assert_eq!(now, start + Duration::seconds(CLOCK_SKEW_SECS));
        let floor = now - Duration::days(7) + Duration::minutes(5);
        for ci in 0..5 {
            let blobs = sim.sim.truth_blobs(ci, now);
            assert!(!blobs.is_empty());
            let early: Vec<_> = blobs.iter().filter(|m| m.created < floor).collect();
            assert!(
                early.is_empty(),
                "content type {ci}: {} truth blobs created before the listable floor {floor}, e.g. {}",
                early.len(),
                early[0].created
            );
        }
        sim.shutdown().await;
    }
}
