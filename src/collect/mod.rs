//! The collector loop: per content type, subscriptions, window planning, listing, blob
//! fetches — driving [`api::ApiClient`] into the [`Store`]. It owns the decisions about
//! what a failure means (retry later, gap, stop this content type) and never dies on one
//! bad item. It must not write SQL (the store does), talk HTTP itself (the api does) or
//! log a secret.
//!
//! One poll of a content type:
//!
//! ```text
//! ensure subscription (once; AF20023 → state "subscription_disabled", retried ≥ 15 min later)
//! plan_windows(cursor, now, backfill, overlap, max)  pure: ≤ max_window_secs windows (1 h in
//!                                                     the last day), never older than
//!                                                     now − 7 d + 5 min (or a cursor up
//!                                                     to 4 min before that)
//!   clamp?  → store.clamp_cursor  (a "clamped" gap row; invariant 6): a cursor older than
//!             the floor and its grace, or a first backfill that asks for more than can
//!             be listed
//!   for each window: list all pages → store.note_listing (TX1, cursor = window end)
//!                                      a failed listing stops here: cursor stays (invariant 3)
//!                    store.expire_blobs(now) → "expired" gaps
//!                    fetch due pending blobs, max_concurrency at a time and at most
//!                    HELD_BLOB_BYTES of bodies in flight → store.ingest_blob_holding (TX2)
//!                      terminal error (404, AF20051, bad id, foreign host) → give_up_blob (gap)
//!                      malformed body → attempts++, failed + gap after MAX_MALFORMED_ATTEMPTS
//!                      anything else → retry_blob_later (pending, attempts++, backoff)
//! stream state (state, last_error, lag) and auth state → store, for `stats` and the UI:
//!   "backfilling (window n of m)" / "catching up (window n of m)" while a long poll runs,
//!   "ok" when caught up, the error state otherwise; "backfill done" is logged once per run
//! ```
//!
//! Beside the streams, the inactivity monitor (the guide's "Monitor It") is re-evaluated
//! every [`MONITOR_EVERY`] and once at the end; its state (collector id, quiet period,
//! alerts raised and cleared) is stored under status `monitor` for `stats`, `detect`
//! (`$collector_id`) and the UI, and every transition is logged as a warning.
//!
//! The overlap window before the cursor is re-listed on every poll, so a blob listed late
//! (after its contentCreated) is still found; the blob ledger makes that re-listing free
//! of duplicates. `--once` polls until every content type is listed up to "now" with no
//! pending blob left, then returns.

pub mod api;
pub mod auth;

use crate::config::Office365;
use crate::model::ContentType;
use crate::store::{BlobIngest, GapKind, PendingBlob, Store, StreamState};
use anyhow::{Context, Result};
use api::{ApiClient, ApiError};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use tokio_util::sync::CancellationToken;

/// Bytes of blob bodies in flight at once, over every content type: being fetched,
/// queued for a preparer, prepared, waiting for the writer. Without a bound each content
/// type kept `max_concurrency` blobs in flight, so memory grew with the size of the blobs
/// (a tenant's busy hours), not with the work the two preparers can do.
pub const HELD_BLOB_BYTES: usize = 4 << 20;
const HELD_UNIT: usize = 1024;
const HELD_UNITS: u32 = (HELD_BLOB_BYTES / HELD_UNIT) as u32;

/// The budget's units a body of `len` bytes takes: at least one, at most the whole budget
/// (a body larger than the budget takes all of it, so it still goes through, alone).
fn held_units(len: usize) -> u32 {
    u32::try_from(len.div_ceil(HELD_UNIT))
        .unwrap_or(u32::MAX)
        .clamp(1, HELD_UNITS)
}

/// The blob-bytes budget: a fetch reserves the size of the last body fetched before it
/// starts, and settles on the real size once the body is in.
struct HeldBudget {
    sem: Arc<tokio::sync::Semaphore>,
    /// Units of the last body fetched (from [`held_units`]: within the budget): the next
    /// fetch's reservation.
    last: std::sync::atomic::AtomicU32,
}

impl HeldBudget {
    fn new() -> HeldBudget {
        HeldBudget {
            sem: Arc::new(tokio::sync::Semaphore::new(HELD_UNITS as usize)),
            last: std::sync::atomic::AtomicU32::new(1),
        }
    }

    async fn reserve(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        self.take(self.last.load(Ordering::Relaxed)).await
    }

    /// Trades a reservation for one of a body's real size. A larger body gives its
    /// reservation back before it waits for the whole size: waiting while holding part of
    /// the budget could leave every fetch holding a part and waiting for the rest.
    async fn settle(
        &self,
        mut permit: tokio::sync::OwnedSemaphorePermit,
        len: usize,
    ) -> Result<tokio::sync::OwnedSemaphorePermit> {
        let units = held_units(len);
        self.last.store(units, Ordering::Relaxed);
        let held = u32::try_from(permit.num_permits()).unwrap_or(u32::MAX);
        if units <= held {
            drop(permit.split((held - units) as usize));
            return Ok(permit);
        }
        drop(permit);
        self.take(units).await
    }

    async fn take(&self, units: u32) -> Result<tokio::sync::OwnedSemaphorePermit> {
        self.sem
            .clone()
            .acquire_many_owned(units)
            .await
            .context("the budget of blob bytes in flight was closed")
    }
}

/// How often the inactivity monitor is re-evaluated while collecting.
pub const MONITOR_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// The longest window Microsoft's API accepts (`max_window_secs` may ask for less).
pub const MAX_WINDOW_HOURS: i64 = 24;
/// Window length within the last day (docs/management-api.md, Windows).
pub const RECENT_WINDOW_HOURS: i64 = 1;
/// Listable history: now − 7 days + 5 minutes of safety (requests queued behind a
/// throttle must not cross the limit).
pub fn listable_floor(now: DateTime<Utc>) -> DateTime<Utc> {
    now - Duration::days(7) + Duration::minutes(5)
}

/// How far a cursor may lie before the listable floor and still be listed from where it
/// stands: the floor's margin is slack, not a limit of the API. Without it a collector
/// stopped moments after its first backfill clamped (its cursor on the floor of then)
/// clamped the milliseconds since again when it started.
const CURSOR_GRACE_MINUTES: i64 = 4;

/// What one poll of one content type should list.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowPlan {
    /// `[from, to)` that can no longer be listed: a gap, and the cursor jumps to `to`.
    /// On the first poll: the part of the backfill before the listable floor.
    pub clamp: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Adjacent `[start, end)` windows, oldest first, the last one ending at `now`.
    pub windows: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

/// Plans the windows of one poll (pure; the clock is passed in).
///
/// * No cursor yet: start at `now − backfill`. What of that lies before the listable
///   floor (the 5-minute safety margin at the 7-day edge) was asked for and cannot be
///   listed: it is clamped (a gap), like an old cursor.
/// * A cursor older than the floor by more than [`CURSOR_GRACE_MINUTES`]: the part
///   before the floor is clamped (a gap). A cursor within the grace is listed from.
/// * Otherwise start `overlap` before the cursor (re-listing for late blobs), not
///   before the floor.
///
/// Windows are at most `max_window` (and at most 24 h) long; within the last day at most
/// an hour.
pub fn plan_windows(
    cursor: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    backfill: Duration,
    overlap: Duration,
    max_window: Duration,
) -> WindowPlan {
    // The API reads window times to the millisecond; planned in finer steps, a window
    // shorter than 1 ms would reach it as start == end.
    let now = now.trunc_subsecs(3);
    let floor = listable_floor(now);
    let long = max_window.clamp(Duration::seconds(1), Duration::hours(MAX_WINDOW_HOURS));
    let recent = long.min(Duration::hours(RECENT_WINDOW_HOURS));
    let mut clamp = None;
    let start = match cursor {
        None => {
            let asked = now - backfill;
            if asked < floor {
                clamp = Some((asked, floor));
            }
            asked.max(floor)
        }
        Some(c) if c < floor - Duration::minutes(CURSOR_GRACE_MINUTES) => {
            clamp = Some((c, floor));
            floor
        }
        Some(c) => (c - overlap).max(c.min(floor)),
    }
    .trunc_subsecs(3);
    let mut windows = Vec::new();
    let mut s = start;
    while s < now {
        let len = if now - s > Duration::hours(MAX_WINDOW_HOURS) {
            long
        } else {
            recent
        };
        let e = (s + len).min(now);
        windows.push((s, e));
        s = e;
    }
    WindowPlan { clamp, windows }
}

/// Delay before the next fetch of a blob that failed transiently `attempts` times.
pub fn blob_backoff(attempts: i64) -> Duration {
    let secs = 1i64 << attempts.clamp(0, 7);
    Duration::seconds(secs.min(120))
}

/// Under `--once`, a blob that failed transiently this many times stops the run (it stays
/// pending for the next run; the exit code says so).
pub const ONCE_MAX_BLOB_ATTEMPTS: i64 = 8;
/// Under `--once`, a content type whose poll failed this many times in a row is given up.
pub const ONCE_MAX_POLL_FAILURES: u32 = 4;

/// How `run` behaves.
#[derive(Debug, Clone, Default)]
pub struct CollectOptions {
    /// Catch up to now, then return.
    pub once: bool,
    /// Print a progress line on stderr every few seconds while there is work.
    pub progress: bool,
}

/// Counters of one `run`, shared by the stream tasks and the progress line.
#[derive(Debug, Default)]
pub struct Progress {
    /// New records stored, per content type (in the order of [`ContentType::ALL`]).
    pub records_new_by_type: [AtomicU64; ContentType::ALL.len()],
    pub duplicates: AtomicU64,
    pub blobs_done: AtomicU64,
    pub blobs_failed: AtomicU64,
    pub windows_left: AtomicI64,
}

impl Progress {
    /// New records stored, over every content type.
    pub fn records_new(&self) -> u64 {
        self.records_new_by_type
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .sum()
    }
}

/// What `run` did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CollectSummary {
    pub records_new: u64,
    pub duplicates: u64,
    pub blobs_done: u64,
    pub blobs_failed: u64,
    /// Content types that could not be caught up (`--once`), with the reason.
    pub unfinished: Vec<(String, String)>,
}

struct Shared {
    store: Store,
    api: ApiClient,
    tenant: String,
    backfill: Duration,
    overlap: Duration,
    poll_interval: std::time::Duration,
    concurrency: usize,
    /// The [`HELD_BLOB_BYTES`] budget.
    held: HeldBudget,
    cancel: CancellationToken,
    progress: Arc<Progress>,
    once: bool,
    /// Content types collected, and how many of them caught up to now in this run.
    streams: usize,
    backfilled: std::sync::atomic::AtomicUsize,
}

/// The stream state of a content type whose first listing has not finished yet.
pub const STARTING: &str = "starting (subscribing, first listing)";

/// Collects every configured content type until `cancel` fires (or, with `once`, until
/// caught up). Returns an error only for a broken store; per content type failures are
/// in the summary.
pub async fn run(
    o: &Office365,
    api: ApiClient,
    store: Store,
    cancel: CancellationToken,
    opts: CollectOptions,
) -> Result<CollectSummary> {
    let progress = Arc::new(Progress::default());
    let sh = Arc::new(Shared {
        store: store.clone(),
        api,
        tenant: o.tenant_id.to_ascii_lowercase(),
        backfill: Duration::hours(i64::from(o.backfill_hours)),
        overlap: Duration::seconds(o.overlap_secs as i64),
        poll_interval: std::time::Duration::from_secs(o.poll_interval_secs.max(1)),
        concurrency: o.max_concurrency.max(1),
        held: HeldBudget::new(),
        cancel: cancel.clone(),
        progress: progress.clone(),
        once: opts.once,
        streams: o.content_types.len(),
        backfilled: Default::default(),
    });
    let since = Utc::now();
    set_running(&store, "running", since).await;
    let heartbeat_stop = CancellationToken::new();
    let heartbeat = tokio::spawn(beat(store.clone(), since, heartbeat_stop.clone()));
    let reporter_stop = CancellationToken::new();
    let reporter = opts
        .progress
        .then(|| tokio::spawn(report_progress(progress.clone(), reporter_stop.clone())));
    let monitor_stop = CancellationToken::new();
    let monitor = tokio::spawn(watch_inactivity(
        store.clone(),
        o.collector_id.clone(),
        Duration::hours(i64::from(o.quiet_hours)),
        monitor_stop.clone(),
    ));
    // Every content type has its row before any stream lists: the status page shows each
    // one as starting, not missing or "not started", while the first listings run.
    for &ct in &o.content_types {
        let state = StreamState {
            state: STARTING.into(),
            last_error: None,
            lag_secs: None,
        };
        if let Err(e) = store.set_stream_state(&sh.tenant, ct, state).await {
            tracing::warn!(content_type = ct.as_str(), error = %format!("{e:#}"), "cannot store the stream state");
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    for &ct in &o.content_types {
        let sh = sh.clone();
        tasks.spawn(async move { (ct, run_stream(sh, ct).await) });
    }
    let mut summary = CollectSummary::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((ct, Err(reason))) => summary.unfinished.push((ct.as_str().to_string(), reason)),
            Err(e) => summary
                .unfinished
                .push(("?".into(), format!("collector task failed: {e}"))),
        }
    }
    reporter_stop.cancel();
    if let Some(r) = reporter {
        let _ = r.await;
    }
    monitor_stop.cancel();
    let _ = monitor.await;
    heartbeat_stop.cancel();
    let _ = heartbeat.await;
    let _ = store
        .set_status("auth", serde_json::to_value(sh.api.auth_state())?)
        .await;
    set_running(&store, "stopped", Utc::now()).await;
    summary.records_new = progress.records_new();
    summary.duplicates = progress.duplicates.load(Ordering::Relaxed);
    summary.blobs_done = progress.blobs_done.load(Ordering::Relaxed);
    summary.blobs_failed = progress.blobs_failed.load(Ordering::Relaxed);
    Ok(summary)
}

/// Tells `stats` and the UI whether a collector runs on this store, so a stream state
/// ("ok") is not read as current after the collector stopped. While running, the row
/// carries this process's id and machine and a heartbeat, so a collector killed without
/// a word is still seen as stopped (`store::liveness`). A failed write is logged: it never
/// stops collection.
async fn set_running(store: &Store, state: &str, since: DateTime<Utc>) {
    let mut value = serde_json::json!({
        "state": state,
        "since": crate::model::format_api_time(since),
    });
    if state == "running" {
        value["heartbeat"] = crate::model::format_api_time(Utc::now()).into();
        value["pid"] = std::process::id().into();
        value["machine"] = crate::store::liveness::machine_id().into();
    }
    if let Err(e) = store
        .set_status(crate::store::COLLECTOR_STATUS_KEY, value)
        .await
    {
        tracing::warn!(
            error = format!("{e:#}"),
            state,
            "storing the collector state"
        );
    }
}

/// Rewrites the "running" row every [`crate::store::liveness::HEARTBEAT_EVERY_SECS`] until
/// `stop` fires.
async fn beat(store: Store, since: DateTime<Utc>, stop: CancellationToken) {
    let every =
        std::time::Duration::from_secs(crate::store::liveness::HEARTBEAT_EVERY_SECS.unsigned_abs());
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        set_running(&store, "running", since).await;
    }
}

/// The inactivity monitor task: resumes the stored state, then evaluates and stores it
/// every [`MONITOR_EVERY`] and once more when `stop` fires. A failing store read is logged
/// and retried on the next tick: the monitor never stops collection.
async fn watch_inactivity(
    store: Store,
    collector_id: String,
    quiet: Duration,
    stop: CancellationToken,
) {
    use crate::detect::monitor::{MonitorState, source_label};
    let st = store.clone();
    let stored = tokio::task::spawn_blocking(move || st.monitor_state())
        .await
        .map_err(anyhow::Error::from)
        .and_then(|r| r);
    let stored = stored.unwrap_or_else(|e| {
        tracing::warn!(error = %format!("{e:#}"), "inactivity monitor: stored state unreadable; starting afresh");
        None
    });
    let mut state = MonitorState::resume(stored, &collector_id, quiet, Utc::now());
    loop {
        let st = store.clone();
        let id = collector_id.clone();
        match tokio::task::spawn_blocking(move || st.monitor_activity(&id)).await {
            Ok(Ok(activity)) => {
                for t in state.update(Utc::now(), &activity) {
                    if t.alert {
                        tracing::warn!(source = %source_label(&t.source), reason = %t.reason, "inactivity alert raised");
                    } else {
                        tracing::info!(source = %source_label(&t.source), "inactivity alert cleared");
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "inactivity monitor: reading activity failed")
            }
            Err(e) => tracing::warn!(error = %e, "inactivity monitor: reading activity failed"),
        }
        match serde_json::to_value(&state) {
            Ok(v) => {
                if let Err(e) = store.set_status(MonitorState::STATUS_KEY, v).await {
                    tracing::warn!(error = %format!("{e:#}"), "inactivity monitor: storing state failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "inactivity monitor: state not serialisable"),
        }
        if stop.is_cancelled() {
            return;
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(MONITOR_EVERY) => {}
        }
    }
}

async fn report_progress(p: Arc<Progress>, stop: CancellationToken) {
    let start = std::time::Instant::now();
    let mut last = (start, 0u64);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
        }
        let records = p.records_new();
        let windows = p.windows_left.load(Ordering::Relaxed).max(0);
        let dt = last.0.elapsed().as_secs_f64().max(0.001);
        let rate = (records - last.1) as f64 / dt;
        last = (std::time::Instant::now(), records);
        if windows == 0 && rate == 0.0 {
            continue;
        }
        eprintln!(
            "collect: {records} records stored ({rate:.0}/s), {windows} windows left, {} blobs done, {} failed, {:.0}s elapsed",
            p.blobs_done.load(Ordering::Relaxed),
            p.blobs_failed.load(Ordering::Relaxed),
            start.elapsed().as_secs_f64()
        );
    }
}

/// Why a poll stopped early.
struct PollError {
    /// The stream state shown in stats, e.g. "subscription_disabled".
    state: &'static str,
    message: String,
    /// Retrying sooner than this is pointless (or forbidden: subscription starts).
    retry_after: std::time::Duration,
    /// Under `--once`, give up at once (retrying would not help within this run).
    fatal_for_once: bool,
    /// The API no longer has the subscription (AF20022): start it again before the next
    /// listing, or nothing is collected for this content type again.
    resubscribe: bool,
}

impl PollError {
    fn api(e: &ApiError) -> PollError {
        let (state, retry_after, fatal) = match e {
            ApiError::SubscriptionDisabled => ("subscription_disabled", 900, true),
            ApiError::AuditDisabled => ("audit_disabled", 900, true),
            ApiError::PermissionMissing => ("permission_missing", 900, true),
            ApiError::Auth(_) => ("auth_failed", 300, true),
            // started again before the next listing (`resubscribe`), so soon
            ApiError::SubscriptionMissing => ("subscription_missing", 2, false),
            ApiError::Throttled { .. } => ("throttled", 30, false),
            ApiError::NoRoute(_) => ("no_route", 900, true),
            _ => ("error", 15, false),
        };
        PollError {
            state,
            message: e.to_string(),
            retry_after: std::time::Duration::from_secs(retry_after),
            fatal_for_once: fatal,
            resubscribe: matches!(e, ApiError::SubscriptionMissing),
        }
    }

    fn store(e: anyhow::Error) -> PollError {
        PollError {
            state: "store_error",
            message: format!("{e:#}"),
            retry_after: std::time::Duration::from_secs(5),
            fatal_for_once: true,
            resubscribe: false,
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("store read task failed")?
}

/// Runs one content type until cancelled, or (once) until caught up or given up.
async fn run_stream(sh: Arc<Shared>, ct: ContentType) -> std::result::Result<(), String> {
    let mut subscribed = false;
    let mut backfilled = false;
    let mut failures = 0u32;
    loop {
        if sh.cancel.is_cancelled() {
            return Ok(());
        }
        let delay = match poll(&sh, ct, &mut subscribed).await {
            Ok(caught_up) => {
                failures = 0;
                if caught_up && !backfilled {
                    backfilled = true;
                    note_backfill_done(&sh, ct);
                }
                if sh.once && caught_up {
                    return Ok(());
                }
                if caught_up {
                    sh.poll_interval
                } else {
                    std::time::Duration::from_millis(200)
                }
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(content_type = ct.as_str(), state = e.state, error = %e.message, "poll failed");
                if e.resubscribe {
                    subscribed = false;
                }
                let _ = sh
                    .store
                    .set_stream_state(
                        &sh.tenant,
                        ct,
                        StreamState {
                            state: e.state.to_string(),
                            last_error: Some(e.message.clone()),
                            lag_secs: lag(&sh, ct).await,
                        },
                    )
                    .await;
                if sh.once && (e.fatal_for_once || failures >= ONCE_MAX_POLL_FAILURES) {
                    return Err(format!("{}: {}", e.state, e.message));
                }
                if sh.once {
                    std::time::Duration::from_secs(1 << failures.min(4))
                } else {
                    e.retry_after
                        .max(std::time::Duration::from_secs(1 << failures.min(6)))
                }
            }
        };
        tokio::select! {
            _ = sh.cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Logs that a content type caught up to now for the first time in this run, and once
/// more when every content type has.
fn note_backfill_done(sh: &Shared, ct: ContentType) {
    let done = sh.backfilled.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::info!(
        content_type = ct.as_str(),
        records_new = sh.progress.records_new_by_type[ct.index()].load(Ordering::Relaxed),
        "backfill done: caught up to now"
    );
    if done == sh.streams {
        tracing::info!(
            content_types = done,
            records_new = sh.progress.records_new(),
            "backfill done for every content type: caught up to now"
        );
    }
}

async fn lag(sh: &Arc<Shared>, ct: ContentType) -> Option<i64> {
    let (store, tenant) = (sh.store.clone(), sh.tenant.clone());
    let cursor = blocking(move || store.cursor(&tenant, ct)).await.ok()??;
    Some((sh.api.server_now() - cursor).num_seconds().max(0))
}

/// One poll; returns whether the content type is caught up (listed to now, nothing
/// pending).
async fn poll(
    sh: &Arc<Shared>,
    ct: ContentType,
    subscribed: &mut bool,
) -> std::result::Result<bool, PollError> {
    if !*subscribed {
        for (_, r) in sh.api.ensure_subscriptions(&[ct]).await {
            r.map_err(|e| PollError::api(&e))?;
        }
        *subscribed = true;
        // The first token was just obtained: show it now, not after the backfill.
        store_auth_state(sh).await;
    }
    let now = sh.api.server_now();
    let (store, tenant) = (sh.store.clone(), sh.tenant.clone());
    let cursor = blocking(move || store.cursor(&tenant, ct))
        .await
        .map_err(PollError::store)?;
    let plan = plan_windows(cursor, now, sh.backfill, sh.overlap, sh.api.max_window());
    if let Some((from, to)) = plan.clamp {
        let (from_s, to_s) = (
            crate::model::format_api_time(from),
            crate::model::format_api_time(to),
        );
        let detail = if cursor.is_none() {
            tracing::warn!(content_type = ct.as_str(), window_start = %from, until = %to, "the first backfill reaches past what the API lists (7 days less a 5-minute margin, on the server's clock): recorded as a gap");
            format!(
                "the first backfill asked for {} h, but the API lists only the last 7 days (less a 5-minute safety margin, on the server's clock): content created from {from_s} to {to_s} could not be listed",
                sh.backfill.num_hours()
            )
        } else {
            tracing::warn!(content_type = ct.as_str(), window_start = %from, until = %to, "cursor older than the 7-day listing limit: window clamped, recorded as a gap");
            format!(
                "windows from {from_s} to {to_s} were older than the API's 7-day limit and could not be listed"
            )
        };
        sh.store
            .clamp_cursor(&sh.tenant, ct, from, to, detail)
            .await
            .map_err(PollError::store)?;
    }
    let n_windows = plan.windows.len() as i64;
    sh.progress
        .windows_left
        .fetch_add(n_windows, Ordering::Relaxed);
    let mut left = n_windows;
    // A poll of more than the usual window or two (the first backfill, or a catch-up
    // after a pause) says how far it is, window by window, for `stats` and the UI.
    let verb = match cursor {
        None => Some("backfilling"),
        Some(_) if n_windows > 2 => Some("catching up"),
        Some(_) => None,
    };
    let result = async {
        for (i, (start, end)) in plan.windows.into_iter().enumerate() {
            if sh.cancel.is_cancelled() {
                return Ok(false);
            }
            if let Some(verb) = verb {
                let _ = sh
                    .store
                    .set_stream_state(
                        &sh.tenant,
                        ct,
                        StreamState {
                            state: format!("{verb} (window {} of {n_windows})", i + 1),
                            last_error: None,
                            lag_secs: lag(sh, ct).await,
                        },
                    )
                    .await;
                store_auth_state(sh).await;
            }
            let blobs = sh
                .api
                .list_window(ct, start, end)
                .await
                .map_err(|e| PollError::api(&e))?;
            let listed = blobs.len();
            let new = sh
                .store
                .note_listing(&sh.tenant, ct, end, blobs)
                .await
                .map_err(PollError::store)?;
            tracing::debug!(content_type = ct.as_str(), window_start = %start, listed, new, "window listed");
            left -= 1;
            sh.progress.windows_left.fetch_sub(1, Ordering::Relaxed);
            drain(sh, ct).await?;
        }
        drain(sh, ct).await
    }
    .await;
    sh.progress.windows_left.fetch_sub(left, Ordering::Relaxed);
    let caught_up = result?;
    let _ = sh
        .store
        .set_stream_state(
            &sh.tenant,
            ct,
            StreamState {
                state: if caught_up { "ok" } else { "catching_up" }.into(),
                last_error: None,
                lag_secs: lag(sh, ct).await,
            },
        )
        .await;
    store_auth_state(sh).await;
    Ok(caught_up)
}

/// The token state as the collector sees it, for `stats` and the UI (no secret in it).
async fn store_auth_state(sh: &Arc<Shared>) {
    let _ = sh
        .store
        .set_status(
            "auth",
            serde_json::to_value(sh.api.auth_state()).unwrap_or_default(),
        )
        .await;
}

/// Expires, then fetches every due pending blob. Returns true when none is left pending.
/// Under `--once` it also waits for blobs that are pending but not yet due.
async fn drain(sh: &Arc<Shared>, ct: ContentType) -> std::result::Result<bool, PollError> {
    loop {
        if sh.cancel.is_cancelled() {
            return Ok(false);
        }
        let now = sh.api.server_now();
        let expired = sh
            .store
            .expire_blobs(&sh.tenant, ct, now)
            .await
            .map_err(PollError::store)?;
        if expired > 0 {
            tracing::warn!(
                content_type = ct.as_str(),
                expired,
                "blobs expired before they could be fetched: recorded as gaps"
            );
            sh.progress
                .blobs_failed
                .fetch_add(expired as u64, Ordering::Relaxed);
        }
        let (store, tenant) = (sh.store.clone(), sh.tenant.clone());
        let due = blocking(move || store.pending_blobs(&tenant, ct, Utc::now().max(now), 512))
            .await
            .map_err(PollError::store)?;
        if due.is_empty() {
            let (store, tenant) = (sh.store.clone(), sh.tenant.clone());
            let next = blocking(move || store.next_pending_due(&tenant, ct))
                .await
                .map_err(PollError::store)?;
            let Some(next) = next else {
                return Ok(true);
            };
            if !sh.once {
                return Ok(false);
            }
            let wait = (next - Utc::now())
                .to_std()
                .unwrap_or_default()
                .min(std::time::Duration::from_secs(130));
            tokio::select! {
                _ = sh.cancel.cancelled() => return Ok(false),
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        if sh.once
            && let Some(stuck) = due.iter().find(|b| b.attempts >= ONCE_MAX_BLOB_ATTEMPTS)
        {
            return Err(PollError {
                state: "error",
                message: format!(
                    "blob {} still failing after {} attempts; it stays pending for the next run",
                    stuck.blob.content_id, stuck.attempts
                ),
                retry_after: std::time::Duration::from_secs(60),
                fatal_for_once: true,
                resubscribe: false,
            });
        }
        let cancel = sh.cancel.clone();
        let mut relist = Vec::new();
        {
            let mut results = futures_util::stream::iter(due)
                .map(|b| process_blob(sh, ct, b))
                .buffer_unordered(sh.concurrency);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(false),
                    next = results.next() => match next {
                        None => break,
                        Some(Err(e)) => return Err(e),
                        Some(Ok(Some(created))) => relist.push(created),
                        Some(Ok(None)) => {}
                    }
                }
            }
        }
        relist_around(sh, ct, relist).await?;
    }
}

/// Lists again the few seconds around blobs whose contentUri pointed at a foreign host:
/// the API may list them with a proper URI now (the ledger keeps the newest URI of a
/// pending blob). A failed re-listing changes nothing; the blob stays pending.
async fn relist_around(
    sh: &Arc<Shared>,
    ct: ContentType,
    mut created: Vec<DateTime<Utc>>,
) -> std::result::Result<(), PollError> {
    created.sort();
    created.dedup();
    let mut last_end: Option<DateTime<Utc>> = None;
    for c in created {
        if last_end.is_some_and(|e| c < e) {
            continue;
        }
        let (start, end) = (c - Duration::seconds(1), c + Duration::seconds(1));
        last_end = Some(end);
        match sh.api.list_window(ct, start, end).await {
            // `end` may pass the cursor only when [start, end) covers the part beyond it.
            Ok(blobs) => {
                sh.store
                    .note_listing(&sh.tenant, ct, end, blobs)
                    .await
                    .map_err(PollError::store)?;
            }
            Err(e) => {
                tracing::info!(content_type = ct.as_str(), window_start = %start, error = %e, "re-listing around a refused blob failed");
            }
        }
    }
    Ok(())
}

fn gap_kind(e: &ApiError) -> GapKind {
    match e {
        ApiError::Expired => GapKind::Expired,
        ApiError::NotFound => GapKind::NotFound,
        _ => GapKind::Failed,
    }
}

/// Hands a fetched body to the store with its share of the budget of blob bytes in flight
/// (given back once its rows are written).
async fn store_body(
    sh: &Arc<Shared>,
    blob_id: i64,
    reserved: tokio::sync::OwnedSemaphorePermit,
    body: bytes::Bytes,
) -> std::result::Result<BlobIngest, PollError> {
    let held = sh
        .held
        .settle(reserved, body.len())
        .await
        .map_err(PollError::store)?;
    sh.store
        .ingest_blob_holding(blob_id, body, held)
        .await
        .map_err(PollError::store)
}

/// Fetches and stores one blob. Only a store failure is an error; every API outcome is
/// turned into a ledger update. Returns the blob's contentCreated when its window should
/// be listed again (a refused foreign contentUri).
async fn process_blob(
    sh: &Arc<Shared>,
    ct: ContentType,
    b: PendingBlob,
) -> std::result::Result<Option<DateTime<Utc>>, PollError> {
    let p = &sh.progress;
    let id = b.blob_id;
    let reserved = sh.held.reserve().await.map_err(PollError::store)?;
    match sh.api.fetch_blob(&b.blob).await {
        Ok(body) => match store_body(sh, id, reserved, body).await? {
            BlobIngest::Stored(o) => {
                p.records_new_by_type[ct.index()].fetch_add(o.new as u64, Ordering::Relaxed);
                p.duplicates
                    .fetch_add(o.duplicates as u64, Ordering::Relaxed);
                p.blobs_done.fetch_add(1, Ordering::Relaxed);
                if o.bad_records > 0 {
                    tracing::warn!(content_type = ct.as_str(), content_id = %b.blob.content_id, bad = o.bad_records, "records without Id/CreationTime skipped: recorded as a gap");
                }
            }
            BlobIngest::AlreadyFinished => {}
            BlobIngest::Malformed { attempts, failed } => {
                tracing::warn!(content_type = ct.as_str(), content_id = %b.blob.content_id, attempt = attempts, failed, "blob content is not a JSON array");
                if failed {
                    p.blobs_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        },
        Err(ApiError::ForeignHost { url_host }) if b.attempts + 1 < ONCE_MAX_BLOB_ATTEMPTS => {
            tracing::warn!(content_type = ct.as_str(), content_id = %b.blob.content_id, url_host = %url_host, "blob URI points at a foreign host: not followed; listing its window again");
            sh.store
                .retry_blob_later(
                    id,
                    format!("contentUri on foreign host {url_host} refused"),
                    Utc::now() + blob_backoff(b.attempts + 1),
                )
                .await
                .map_err(PollError::store)?;
            return Ok(Some(b.content_created));
        }
        Err(e) if e.is_terminal_for_blob() => {
            tracing::warn!(content_type = ct.as_str(), content_id = %b.blob.content_id, error = %e, "blob cannot be fetched: recorded as a gap");
            sh.store
                .give_up_blob(id, gap_kind(&e), e.to_string())
                .await
                .map_err(PollError::store)?;
            p.blobs_failed.fetch_add(1, Ordering::Relaxed);
        }
        Err(ApiError::Malformed(m)) if b.attempts + 1 >= crate::store::MAX_MALFORMED_ATTEMPTS => {
            tracing::warn!(content_type = ct.as_str(), content_id = %b.blob.content_id, attempt = b.attempts + 1, "blob stays malformed: marked failed, recorded as a gap");
            sh.store
                .give_up_blob(
                    id,
                    GapKind::Failed,
                    format!("malformed response after {} attempts: {m}", b.attempts + 1),
                )
                .await
                .map_err(PollError::store)?;
            p.blobs_failed.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            let next = Utc::now() + blob_backoff(b.attempts + 1);
            tracing::info!(content_type = ct.as_str(), content_id = %b.blob.content_id, attempt = b.attempts + 1, error = %e, "blob fetch failed; retrying later");
            sh.store
                .retry_blob_later(id, e.to_string(), next)
                .await
                .map_err(PollError::store)?;
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap() + Duration::hours(h)
    }

    /// The plan with the defaults: 7 days of backfill, 2 h of overlap, 1-day windows.
    fn plan(cursor: Option<DateTime<Utc>>, now: DateTime<Utc>) -> WindowPlan {
        plan_windows(cursor, now, Duration::hours(168), Duration::hours(2), DAY)
    }

    fn check_adjacent(p: &WindowPlan, now: DateTime<Utc>) {
        for w in p.windows.windows(2) {
            assert_eq!(w[0].1, w[1].0, "windows must be adjacent");
        }
        for (s, e) in &p.windows {
            assert!(s < e);
            assert!(*e - *s <= Duration::hours(24));
            assert!(*s >= listable_floor(now));
        }
        assert_eq!(p.windows.last().map(|w| w.1), Some(now));
    }

    const DAY: Duration = Duration::hours(24);

    #[test]
    fn first_poll_backfills_from_now_minus_backfill_and_the_unlistable_edge_is_a_gap() {
        let now = t(0);
        let p = plan(None, now);
        // 168 h were asked for; the last 5 minutes before the floor cannot be listed
        assert_eq!(
            p.clamp,
            Some((now - Duration::hours(168), listable_floor(now)))
        );
        assert_eq!(p.windows[0].0, listable_floor(now));
        check_adjacent(&p, now);
        // 24 h windows while more than a day behind, then 1 h windows
        assert_eq!(p.windows[0].1 - p.windows[0].0, Duration::hours(24));
        assert!(
            p.windows
                .iter()
                .rev()
                .take(24)
                .all(|(s, e)| *e - *s <= Duration::hours(1))
        );
        let p = plan_windows(None, now, Duration::hours(3), Duration::hours(2), DAY);
        assert_eq!(p.clamp, None, "a backfill inside the floor loses nothing");
        assert_eq!(
            p.windows,
            vec![(t(-3), t(-2)), (t(-2), t(-1)), (t(-1), t(0))]
        );
    }

    #[test]
    fn windows_are_planned_to_the_millisecond_so_none_collapses_when_formatted() {
        let now: DateTime<Utc> = "2026-12-04T20:36:56.500400Z".parse().unwrap();
        let cursors = [
            None,
            Some(
                "2026-12-04T20:36:56.500100Z"
                    .parse::<DateTime<Utc>>()
                    .unwrap(),
            ),
            Some(now - Duration::hours(30) + Duration::microseconds(700)),
        ];
        for cursor in cursors {
            for overlap in [Duration::zero(), Duration::hours(2)] {
                let p = plan_windows(cursor, now, Duration::hours(168), overlap, DAY);
                for (s, e) in &p.windows {
                    assert!(
                        crate::model::format_api_time(*s) < crate::model::format_api_time(*e),
                        "{s} .. {e} collapses on the wire ({cursor:?}, {overlap})"
                    );
                }
            }
        }
    }

    #[test]
    fn no_window_is_longer_than_max_window() {
        let now = t(0);
        let max = Duration::minutes(30);
        let p = plan_windows(None, now, Duration::hours(100), Duration::hours(2), max);
        check_adjacent(&p, now);
        assert!(p.windows.iter().all(|(s, e)| *e - *s <= max));
        assert_eq!(p.windows.len(), 200);
        let p = plan_windows(
            Some(t(-50)),
            now,
            Duration::hours(168),
            Duration::zero(),
            max,
        );
        assert!(p.windows.iter().all(|(s, e)| *e - *s <= max));
        assert_eq!(p.windows[0].0, t(-50));
    }

    #[test]
    fn later_polls_relist_the_overlap_before_the_cursor() {
        let now = t(0) + Duration::minutes(10);
        let p = plan_windows(
            Some(t(0)),
            now,
            Duration::hours(168),
            Duration::hours(1),
            DAY,
        );
        assert_eq!(p.clamp, None);
        assert_eq!(p.windows, vec![(t(-1), t(0)), (t(0), now)]);
    }

    #[test]
    fn a_cursor_older_than_seven_days_is_clamped_as_a_gap() {
        let now = t(0);
        let old = now - Duration::days(9);
        let p = plan(Some(old), now);
        assert_eq!(p.clamp, Some((old, listable_floor(now))));
        check_adjacent(&p, now);
        // the overlap never reaches past the floor either
        let near = listable_floor(now) + Duration::minutes(30);
        let p = plan(Some(near), now);
        assert_eq!(p.clamp, None);
        assert_eq!(p.windows[0].0, listable_floor(now));
    }

    #[test]
    fn a_restart_moments_after_the_first_backfill_clamps_nothing_more() {
        let first = t(0);
        let p = plan(None, first);
        let cursor = p.clamp.map(|c| c.1).unwrap();
        // killed before its first window was listed; started again 150 ms later
        let now = first + Duration::milliseconds(150);
        let p = plan(Some(cursor), now);
        assert_eq!(p.clamp, None, "still listable: nothing may be clamped");
        assert_eq!(p.windows[0].0, cursor);
        assert_eq!(p.windows.last().map(|w| w.1), Some(now));
        // stopped for longer than the grace: what the API no longer lists is a gap
        let later = first + Duration::minutes(CURSOR_GRACE_MINUTES + 1);
        let p = plan(Some(cursor), later);
        assert_eq!(p.clamp, Some((cursor, listable_floor(later))));
        check_adjacent(&p, later);
    }

    #[test]
    fn a_cursor_in_the_future_lists_nothing() {
        let p = plan_windows(
            Some(t(5)),
            t(0),
            Duration::hours(168),
            Duration::hours(2),
            DAY,
        );
        assert!(p.windows.is_empty());
        assert_eq!(p.clamp, None);
    }

    #[test]
    fn a_body_takes_its_size_of_the_budget_within_one_unit_and_the_whole() {
        assert_eq!(held_units(0), 1);
        assert_eq!(held_units(1), 1);
        assert_eq!(held_units(HELD_UNIT + 1), 2);
        assert_eq!(held_units(HELD_BLOB_BYTES), HELD_UNITS);
        assert_eq!(held_units(usize::MAX), HELD_UNITS);
    }

    #[tokio::test]
    async fn fetches_whose_bodies_outgrew_their_reservations_all_get_through() {
        let b = Arc::new(HeldBudget::new());
        // two fetches reserved half the budget each; both bodies need all of it
        b.last.store(HELD_UNITS / 2, Ordering::Relaxed);
        let r1 = b.reserve().await.unwrap();
        let r2 = b.reserve().await.unwrap();
        assert_eq!(b.sem.available_permits(), 0);
        let (b1, b2) = (b.clone(), b.clone());
        let first = tokio::spawn(async move { b1.settle(r1, HELD_BLOB_BYTES).await });
        let second = tokio::spawn(async move { b2.settle(r2, HELD_BLOB_BYTES).await });
        let within = std::time::Duration::from_secs(10);
        // each holding its half while waiting for the rest would wait forever
        let (a, c) = tokio::time::timeout(within, async {
            let mut a = first;
            let mut c = second;
            tokio::select! {
                p = &mut a => {
                    let p = p.unwrap().unwrap();
                    assert_eq!(p.num_permits(), HELD_UNITS as usize);
                    drop(p);
                    (None, Some(c.await.unwrap().unwrap()))
                }
                p = &mut c => {
                    let p = p.unwrap().unwrap();
                    drop(p);
                    (Some(a.await.unwrap().unwrap()), None)
                }
            }
        })
        .await
        .expect("a fetch kept part of the budget while it waited for more");
        let last = a.or(c).unwrap();
        assert_eq!(last.num_permits(), HELD_UNITS as usize);
        drop(last);
        // a smaller body gives back what it reserved beyond its size
        b.last.store(HELD_UNITS, Ordering::Relaxed);
        let r = b.reserve().await.unwrap();
        let p = b.settle(r, 3 * HELD_UNIT).await.unwrap();
        assert_eq!(p.num_permits(), 3);
        assert_eq!(b.sem.available_permits(), HELD_UNITS as usize - 3);
        assert_eq!(
            b.last.load(Ordering::Relaxed),
            3,
            "the next fetch reserves 3 units"
        );
    }

    #[test]
    fn blob_backoff_grows_and_is_capped() {
        assert_eq!(blob_backoff(1), Duration::seconds(2));
        assert!(blob_backoff(3) > blob_backoff(2));
        assert_eq!(blob_backoff(50), Duration::seconds(120));
    }
}
