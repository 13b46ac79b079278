//! Stage `soak` (run only when named in `M365AUDIT_BENCH_STAGES`): the appliance's `run`
//! path — the continuous collector and the UI over one store, as `run` assembles them —
//! against an in-process practice tenant at 10× its default volume with every recoverable
//! fault on, while the virtual clock runs days ahead and concurrent clients load the UI's
//! pages. It prints what a long unattended run must keep: no record lost against the
//! ground truth, none stored twice, page latency under load, and a resident set that
//! stops growing.
//!
//! Phases: loaded (the clock runs, the clients load pages), then catch-up (the clock
//! stands still, no clients) until the store holds the whole truth or stops getting closer.
//!
//! Knobs (environment): `M365AUDIT_SOAK_SECS` (wall-clock length of the loaded phase,
//! default 180), `M365AUDIT_SOAK_VIRTUAL_RATE` (virtual seconds per real second, default
//! 1200: three minutes cover 2.5 days), `M365AUDIT_SOAK_CLIENTS` (default 50),
//! `M365AUDIT_SOAK_CATCHUP_SECS` (longest catch-up, default 1200) and
//! `M365AUDIT_SOAK_STALL_SECS` (catch-up ends after this long without progress, default 120).

use super::{BenchCtx, Row, cpu_seconds, load_average, peak_rss_mib, reset_peak_rss};
use crate::detect::{Detections, Vars};
use crate::simulate::{SimOptions, Simulator};
use crate::store::Store;
use crate::ui::bench::percentile;
use crate::ui::store_backend::StoreBackend;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Every fault a correct collector can ride out (the persistent ones — audit off, a
/// disabled subscription, an expired secret — stop any collector and are not soaked).
pub const SOAK_FAULTS: &str = "throttle_403,throttle_429,throttle_retry_after,internal_500,\
unavailable_503,timeout_408,reset_mid_body,truncated_body,non_json_body,foreign_next_page,\
foreign_content_uri,clock_skew,lowercase_next_page";

fn env_u64(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{name}={v:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}

/// Current resident set (VmRSS) in MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

/// Latencies (ms) per page name.
type Samples = Arc<Mutex<BTreeMap<String, Vec<f64>>>>;

pub(super) fn stage_soak(ctx: &mut BenchCtx) -> Result<Row> {
    let secs = env_u64("M365AUDIT_SOAK_SECS", 180)?.max(10);
    let rate = env_u64("M365AUDIT_SOAK_VIRTUAL_RATE", 1200)?.max(1);
    let clients = env_u64("M365AUDIT_SOAK_CLIENTS", 50)?.max(1) as usize;
    let limits = CatchUp {
        stall: env_u64("M365AUDIT_SOAK_STALL_SECS", 120)?,
        max: env_u64("M365AUDIT_SOAK_CATCHUP_SECS", 1200)?,
    };
    let per_day = SimOptions::default().records_per_day * 10;
    reset_peak_rss();
    let data = ctx.dir.join("soak");
    let rt = crate::app::runtime()?;
    let cpu0 = cpu_seconds();
    let load0 = load_average();
    let started = Instant::now();

    // RSS samples, one a second, over the loaded phase.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let on = sampling.clone();
        std::thread::spawn(move || {
            let mut v = Vec::new();
            while on.load(Ordering::Relaxed) {
                v.push(rss_mib());
                std::thread::sleep(Duration::from_secs(1));
            }
            v
        })
    };

    let outcome = rt.block_on(async {
        let sim = Simulator::start(SimOptions {
            seed: 9,
            records_per_day: per_day,
            faults: vec![SOAK_FAULTS.to_string()],
            page_size: 1000,
            ..SimOptions::default()
        })
        .await?;
        let cfg = serde_json::json!({"inputs": {"office365": {
            "credentials": {"client_id": sim.client_id, "client_secret": sim.client_secret, "tenant_id": sim.tenant_id},
            "enabled": true, "id": "12345",
            "services": {"azure_active_directory": {}, "exchange": {}, "sharepoint": {}, "general_audit": {}, "dlp": {}},
            "login_url": sim.login_url, "api_url": sim.api_url,
            "poll_interval_secs": 5
        }}});
        let o = crate::config::parse(&cfg.to_string(), "soak")?.office365;
        let vars = Vars {
            collector_id: o.collector_id.clone(),
            tenant_id: o.tenant_id.clone(),
        };
        let dets = Arc::new(Detections::load_embedded(vars));
        let store = Store::open(&data, dets.clone())?;
        let result = soak(&sim, &o, &store, dets, (secs, rate, clients), limits).await;
        let closing = store.clone();
        tokio::task::spawn_blocking(move || closing.close()).await??;
        sim.shutdown().await;
        result
    });
    sampling.store(false, Ordering::Relaxed);
    let rss = sampler.join().unwrap_or_default();
    let o = outcome?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let load = (load0 + load_average()) / 2.0;

    let mut all: Vec<f64> = o.samples.values().flatten().copied().collect();
    all.sort_by(|a, b| a.total_cmp(b));
    let per_page = o
        .samples
        .iter()
        .map(|(page, v)| {
            let mut v = v.clone();
            v.sort_by(|a, b| a.total_cmp(b));
            format!(
                "{page} {} p50 {:.0} p95 {:.0}",
                v.len(),
                percentile(&v, 0.5),
                percentile(&v, 0.95)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    // Growth: the loaded phase's second half against its first. Stores, caches and the
    // index grow at first; a leak keeps the second half climbing past the first's peak.
    let loaded: Vec<f64> = rss.iter().copied().take(o.loaded_secs as usize).collect();
    let (first, second) = loaded.split_at(loaded.len() / 2);
    let first_max = first.iter().copied().fold(0.0, f64::max);
    let second_max = second.iter().copied().fold(0.0, f64::max);
    let second_end = second.last().copied().unwrap_or(0.0);
    let growing = second_max > first_max * 1.10;
    let peak = peak_rss_mib();
    let pass = o.lost == 0 && o.duplicates == 0 && !growing && o.errors == 0;
    Ok(Row {
        stage: "soak".into(),
        records: o.stored,
        seconds: wall,
        records_per_sec: all.len() as f64 / o.loaded_secs.max(1e-9),
        cpu_seconds: cpu,
        peak_rss_mib: peak,
        disk_ratio: None,
        target: "lost 0, duplicates 0, RSS not growing (rec/s column: page requests/s)".into(),
        pass: Some(pass),
        note: format!(
            "{per_day} records/day, faults {SOAK_FAULTS}; {:.1} virtual days in {:.0} s loaded + {:.0} s catching up; \
             truth {} records, lost {}, duplicates {}; {clients} clients, {} page loads ({} failed): \
             p50 {:.0} ms p95 {:.0} ms [{per_page}]; RSS first half max {first_max:.0} MiB, second half max \
             {second_max:.0} MiB (end {second_end:.0}): {}; load avg {load:.1}{}",
            o.virtual_secs as f64 / 86_400.0,
            o.loaded_secs,
            o.catchup_secs,
            o.truth,
            o.lost,
            o.duplicates,
            all.len(),
            o.errors,
            percentile(&all, 0.5),
            percentile(&all, 0.95),
            if growing { "GROWING" } else { "flat" },
            if o.lost > 0 {
                format!(
                    "; missing {} e.g. {:?}; streams: {}; gaps: {}",
                    o.missing_ages,
                    o.missing_examples,
                    o.streams,
                    if o.gaps.is_empty() { "none" } else { &o.gaps }
                )
            } else {
                String::new()
            }
        ),
    })
}

/// How long the catch-up may take: at most `max` seconds, and `stall` seconds without
/// one more record found.
struct CatchUp {
    stall: u64,
    max: u64,
}

struct Outcome {
    stored: u64,
    truth: u64,
    lost: u64,
    duplicates: u64,
    missing_examples: Vec<String>,
    missing_ages: String,
    /// Per content type: the cursor's lag, pending blobs, the last error.
    streams: String,
    gaps: String,
    samples: BTreeMap<String, Vec<f64>>,
    errors: u64,
    loaded_secs: f64,
    catchup_secs: f64,
    virtual_secs: u64,
}

/// The loaded phase, the catch-up and the comparison with the truth.
async fn soak(
    sim: &Simulator,
    o: &crate::config::Office365,
    store: &Store,
    dets: Arc<Detections>,
    (secs, rate, clients): (u64, u64, usize),
    CatchUp {
        stall,
        max: catchup_max,
    }: CatchUp,
) -> Result<Outcome> {
    crate::install_crypto_provider();
    // The UI and the collector over one store, as `run` puts them together.
    let backend = Arc::new(StoreBackend::new(
        store.clone(),
        dets.clone(),
        o.collector_id.clone(),
        o.tenant_id.clone(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop_ui = CancellationToken::new();
    let server = {
        let stop = stop_ui.clone();
        tokio::spawn(crate::ui::serve_on(
            listener,
            crate::ui::AppState::new(backend),
            async move { stop.cancelled().await },
        ))
    };
    let stop_collector = CancellationToken::new();
    let collector = {
        let (o, store, stop) = (o.clone(), store.clone(), stop_collector.clone());
        let api = crate::collect::api::ApiClient::new(&o)?;
        tokio::spawn(async move {
            crate::collect::run(
                &o,
                api,
                store,
                stop,
                crate::collect::CollectOptions {
                    once: false,
                    progress: false,
                },
            )
            .await
        })
    };

    // The pages the clients load, picked again from the growing store every few seconds.
    let paths: Arc<Mutex<Vec<(String, String)>>> =
        Arc::new(Mutex::new(vec![("dashboard".into(), "/".into())]));
    let samples: Samples = Arc::default();
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop_clients = CancellationToken::new();
    let picker = {
        let (store, dets, paths, stop) = (
            store.clone(),
            dets.clone(),
            paths.clone(),
            stop_clients.clone(),
        );
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let (s, d) = (store.clone(), dets.clone());
                if let Ok(Ok(p)) =
                    tokio::task::spawn_blocking(move || crate::ui::bench::pick_pages(&s, &d)).await
                    && let Ok(mut g) = paths.lock()
                {
                    *g = p;
                }
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        })
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let mut loaders = Vec::new();
    for i in 0..clients {
        let (http, paths, samples, errors, stop) = (
            http.clone(),
            paths.clone(),
            samples.clone(),
            errors.clone(),
            stop_clients.clone(),
        );
        loaders.push(tokio::spawn(async move {
            let mut n = i;
            while !stop.is_cancelled() {
                let pick = paths
                    .lock()
                    .ok()
                    .and_then(|g| g.get(n % g.len().max(1)).cloned());
                n += 1;
                let Some((page, path)) = pick else { continue };
                let t = Instant::now();
                let ok = match http.get(format!("http://{addr}{path}")).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if stop.is_cancelled() {
                    break;
                }
                if ok {
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    if let Ok(mut s) = samples.lock() {
                        s.entry(page).or_default().push(ms);
                    }
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    // The loaded phase: the virtual clock runs `rate` times faster than the wall clock.
    let t0 = Instant::now();
    let mut virtual_secs = 0u64;
    while t0.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        sim.advance(chrono::Duration::seconds(rate as i64));
        virtual_secs += rate;
        if collector.is_finished() {
            break;
        }
    }
    let loaded_secs = t0.elapsed().as_secs_f64();
    stop_clients.cancel();
    for l in loaders {
        let _ = l.await;
    }
    let _ = picker.await;

    // Catch-up: the clock stands still; the collector lists and fetches what is left.
    let server_now = sim.freeze();
    let truth = {
        let sim_ids = sim.truth_ids();
        Arc::new(sim_ids)
    };
    // Until nothing is missing, or the count stops falling for `stall` (a loss, or a
    // collector that cannot catch up: the note tells them apart by the cursors' lag).
    let t1 = Instant::now();
    let mut missing: Vec<String>;
    let mut best = (usize::MAX, Instant::now());
    loop {
        let (s, t) = (store.clone(), truth.clone());
        missing = tokio::task::spawn_blocking(move || -> Result<Vec<String>> {
            let keys = s.record_keys()?;
            let have: std::collections::HashSet<&str> =
                keys.iter().map(|(_, id)| id.as_str()).collect();
            Ok(t.keys()
                .filter(|id| !have.contains(id.as_str()))
                .cloned()
                .collect())
        })
        .await??;
        if missing.len() < best.0 {
            best = (missing.len(), Instant::now());
        }
        if missing.is_empty()
            || best.1.elapsed() > Duration::from_secs(stall)
            || t1.elapsed() > Duration::from_secs(catchup_max)
            || collector.is_finished()
        {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let catchup_secs = t1.elapsed().as_secs_f64();
    let s = store.clone();
    let st = tokio::task::spawn_blocking(move || s.stats()).await??;
    let streams = st
        .content_types
        .iter()
        .map(|(ct, c)| {
            format!(
                "{ct} lag {} s, {} pending{}",
                c.lag_secs
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "?".into()),
                c.pending_blobs,
                c.last_error
                    .as_deref()
                    .map(|e| format!(" ({})", e.chars().take(80).collect::<String>()))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let gaps = st
        .gaps
        .iter()
        .map(|g| format!("{} {} ×{}", g.kind, g.content_type, g.count))
        .collect::<Vec<_>>()
        .join(", ");
    stop_collector.cancel();
    match collector.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(e.context("the collector failed")),
        Err(e) => anyhow::bail!("the collector task failed: {e}"),
    }
    store.flush().await?;
    stop_ui.cancel();
    let _ = server.await;

    let s = store.clone();
    let keys = tokio::task::spawn_blocking(move || s.record_keys()).await??;
    let stored = keys.len() as u64;
    let mut distinct: Vec<&str> = keys.iter().map(|(_, id)| id.as_str()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    missing.retain(|id| distinct.binary_search(&id.as_str()).is_err());
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    missing.sort();
    // How old the missing records are (hours before the server's time): the oldest edge
    // of the 7 days, the newest blobs, or spread across.
    let ages: Vec<f64> = missing
        .iter()
        .filter_map(|id| truth.get(id))
        .map(|t| (server_now - *t).num_seconds() as f64 / 3600.0)
        .collect();
    let missing_ages = if ages.is_empty() {
        String::new()
    } else {
        format!(
            "created {:.1}-{:.1} h before the server's time",
            ages.iter().copied().fold(f64::MAX, f64::min),
            ages.iter().copied().fold(0.0, f64::max)
        )
    };
    Ok(Outcome {
        stored,
        truth: truth.len() as u64,
        lost: missing.len() as u64,
        duplicates: stored - distinct.len() as u64,
        missing_examples: missing.into_iter().take(3).collect(),
        missing_ages,
        streams,
        gaps,
        samples,
        errors: errors.load(Ordering::Relaxed),
        loaded_secs,
        catchup_secs,
        virtual_secs,
    })
}
