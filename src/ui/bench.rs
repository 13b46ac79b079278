//! Page latencies for `bench`'s `ui` stage (dashboard, detection and user page p50 < 50 ms
//! on 1 M records): serves the real router over a store on 127.0.0.1:0 and times real HTTP
//! GETs of the main pages. Reads only; picks its detection, record and user from the
//! store itself. The stage that reports them lives with the other stages in `app::bench`.

use super::store_backend::StoreBackend;
use super::{AppState, pages};
use crate::detect::Detections;
use crate::store::Store;
use anyhow::{Context, Result};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// Timings of one page.
#[derive(Debug, Clone, Serialize)]
pub struct PageLatency {
    pub page: String,
    pub path: String,
    /// The first request (cold caches).
    pub first_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub samples: usize,
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The pages to time: dashboard, the detection with most hits, one of its records, that
/// record's user and IP, the address with most records, a search; and when a threshold detection has hits, the one with
/// most (its bursts are evaluated by the UI, not read from a rollup) and its drill-down.
pub fn pick_pages(store: &Store, detections: &Detections) -> Result<Vec<(String, String)>> {
    let mut pages = vec![("dashboard".to_string(), "/".to_string())];
    let counts = store.hit_counts()?;
    if let Some((det, _)) = counts.iter().max_by_key(|(_, n)| **n) {
        pages.push((
            "detection".into(),
            format!("/detections/{}", pages::enc(det)),
        ));
        if let Some(hit) = store.hits(Some(det), 0, 1)?.into_iter().next()
            && let Some(rec) = store.record_by_rowid(hit.record_rowid)?
        {
            pages.push((
                "record".into(),
                format!("/records/{}", pages::enc(&rec.header.id)),
            ));
            if !rec.header.user_id.is_empty() {
                pages.push((
                    "user".into(),
                    format!("/user?id={}", pages::enc(&rec.header.user_id)),
                ));
            }
            if !rec.header.client_ip.is_empty() {
                pages.push((
                    "ip".into(),
                    format!("/ip?addr={}", pages::enc(&rec.header.client_ip)),
                ));
            }
        }
    }
    // the address with most records (the record's above is usually a busy one, not the
    // busiest: an address's page reads every record of it)
    if let Some(ip) = store.ui_busiest_address()? {
        pages.push(("ip-busiest".into(), format!("/ip?addr={}", pages::enc(&ip))));
    }
    pages.push(("search".into(), "/search?q=strategic".into()));
    let threshold = counts
        .iter()
        .filter(|(d, n)| **n > 0 && detections.meta(d).is_some_and(|m| m.threshold.is_some()))
        .max_by_key(|(_, n)| **n);
    if let Some((det, _)) = threshold {
        let path = format!("/detections/{}", pages::enc(det));
        pages.push(("threshold".into(), path.clone()));
        pages.push(("threshold-records".into(), format!("{path}/records")));
    }
    Ok(pages)
}

/// Times `rounds` GETs of each main page (after the first, reported apart).
pub async fn page_latencies(
    store: Store,
    detections: Arc<Detections>,
    rounds: usize,
) -> Result<Vec<PageLatency>> {
    crate::install_crypto_provider();
    let (s2, d2) = (store.clone(), detections.clone());
    let paths = tokio::task::spawn_blocking(move || pick_pages(&s2, &d2)).await??;
    // No dashboard cache: every request builds the page.
    let backend = Arc::new(
        StoreBackend::new(store, detections, String::new(), String::new())
            .with_dashboard_ttl(std::time::Duration::ZERO),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(super::serve_on(
        listener,
        AppState::new(backend),
        async move {
            let _ = rx.await;
        },
    ));
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    for (page, path) in paths {
        let url = format!("http://{addr}{path}");
        let mut times = Vec::with_capacity(rounds + 1);
        for _ in 0..=rounds.max(1) {
            let t = Instant::now();
            let res = client.get(&url).send().await.context("ui bench request")?;
            let status = res.status();
            res.bytes().await?;
            anyhow::ensure!(status.is_success(), "{path} answered {status}");
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let first_ms = times.remove(0);
        times.sort_by(|a, b| a.total_cmp(b));
        out.push(PageLatency {
            page,
            path,
            first_ms,
            p50_ms: percentile(&times, 0.5),
            p95_ms: percentile(&times, 0.95),
            samples: times.len(),
        });
    }
    let _ = tx.send(());
    let _ = server.await;
    Ok(out)
}
