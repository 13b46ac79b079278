//! `serve` (the UI over an existing data directory: records read-only, triage written
//! where the store can be written, nothing with `--read-only`) and what the commands that
//! serve the UI share: `run` and `demo` collect and serve through [`collect_and_serve`].
//!
//! Each prints one line `m365audit <cmd>: open <URL>` on stdout once the UI listens (tests
//! read it), runs until SIGINT/SIGTERM, then stops the collector, lets the store finish
//! its queued writes and closes it. Nothing here talks to Microsoft or SQLite directly.

use super::{init_tracing, load_detections, runtime, shutdown_signal};
use crate::collect::{self, CollectOptions};
use crate::detect::Vars;
use crate::store::Store;
use crate::ui::store_backend::StoreBackend;
use crate::ui::{AppState, Backend};
use anyhow::{Context, Result};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Environment variable that sets the UI token for `demo` and `serve` (which take no
/// config file); `generate` asks for a fresh one, printed once.
pub const TOKEN_ENV: &str = "M365AUDIT_UI_TOKEN";

fn announce(cmd: &str, url: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "m365audit {cmd}: open {url}");
    let _ = out.flush();
}

pub(crate) fn env_token() -> Option<String> {
    std::env::var(TOKEN_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty())
}

/// Evaluates the threshold detections in the background while the UI starts listening
/// (`StoreBackend::warm`): the first page would otherwise wait for it.
fn warm(backend: &Arc<StoreBackend>) {
    let b = backend.clone();
    tokio::task::spawn_blocking(move || b.warm());
}

/// Binds the UI and serves it until `cancel` fires.
async fn serve_ui(
    cmd: &str,
    listen: SocketAddr,
    token: Option<String>,
    backend: Arc<dyn Backend>,
    cancel: CancellationToken,
) -> Result<tokio::task::JoinHandle<Result<()>>> {
    let (listener, state, url): (_, AppState, String) =
        crate::ui::bind(listen, token.as_deref(), backend).await?;
    announce(cmd, &url);
    tracing::info!(listen = %listener.local_addr()?, "ui listening");
    Ok(tokio::spawn(crate::ui::serve_on(
        listener,
        state,
        async move { cancel.cancelled().await },
    )))
}

/// Gives the UI its triage writer when the store can be written; says so when it cannot
/// (the UI then shows triage without forms).
fn with_triage(backend: StoreBackend, store: &Store) -> StoreBackend {
    match store.triage_writer() {
        Ok(w) => backend.with_triage_writer(w),
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "triage is read-only in this UI");
            backend
        }
    }
}

/// `m365audit serve [--data DIR] [--listen ADDR] [--read-only]`: the UI over an existing
/// store, its records read-only (safe next to a running collector); triage is written
/// unless `read_only` or the store cannot be written.
pub fn serve(data: &Path, listen: SocketAddr, read_only: bool) -> Result<()> {
    init_tracing();
    let store = Store::open_read_only(data)?;
    // The same detections the collector runs (their titles, severities and group_by).
    // Without a config, the collector id and tenant are the ones the collector stored:
    // the status page names them and detections see them as `$collector_id`/`$tenant_id`.
    let vars = Vars {
        collector_id: store.collector_id()?.unwrap_or_default(),
        tenant_id: store.tenant_names()?.join(", "),
    };
    let dets = load_detections(vars.clone())?;
    let mut backend = StoreBackend::new(store.clone(), dets, vars.collector_id, vars.tenant_id);
    if !read_only {
        backend = with_triage(backend, &store);
    }
    let backend = Arc::new(backend);
    let rt = runtime()?;
    rt.block_on(async {
        let cancel = CancellationToken::new();
        warm(&backend);
        let server = serve_ui("serve", listen, env_token(), backend, cancel.clone()).await?;
        shutdown_signal().await;
        cancel.cancel();
        server.await.context("the UI task failed")?
    })
}

/// Everything `run` and `demo` share: open the store with the detections, collect
/// continuously, serve the UI, stop cleanly on a signal (or when `stop` fires).
pub(crate) async fn collect_and_serve(
    cmd: &str,
    cfg: &crate::config::Config,
    data: &Path,
    listen: SocketAddr,
    token: Option<String>,
    stop: CancellationToken,
) -> Result<()> {
    let o = cfg.office365.clone();
    let vars = Vars {
        collector_id: o.collector_id.clone(),
        tenant_id: o.tenant_id.clone(),
    };
    let dets = load_detections(vars)?;
    let store = Store::open(data, dets.clone())?;
    let fwd = match super::forward::start_async(cfg, &store).await {
        Ok(f) => f,
        Err(e) => {
            let _ = tokio::task::spawn_blocking(move || store.close()).await;
            return Err(e);
        }
    };
    let result = async {
        let api = crate::collect::api::ApiClient::new(&o)?;
        let backend = Arc::new(with_triage(
            StoreBackend::new(
                store.clone(),
                dets,
                o.collector_id.clone(),
                o.tenant_id.clone(),
            ),
            &store,
        ));
        let cancel = CancellationToken::new();
        warm(&backend);
        let server = serve_ui(cmd, listen, token, backend, cancel.clone()).await?;
        let collector = {
            let (o, store, cancel) = (o.clone(), store.clone(), cancel.clone());
            tokio::spawn(async move {
                collect::run(
                    &o,
                    api,
                    store,
                    cancel,
                    CollectOptions {
                        once: false,
                        progress: false,
                    },
                )
                .await
            })
        };
        tokio::select! {
            _ = shutdown_signal() => {}
            _ = stop.cancelled() => {}
        }
        tracing::info!("shutdown requested; stopping the collector and the UI");
        cancel.cancel();
        match collector.await {
            Ok(Ok(summary)) => tracing::info!(
                records_new = summary.records_new,
                duplicates = summary.duplicates,
                "collector stopped"
            ),
            Ok(Err(e)) => tracing::error!(error = format!("{e:#}"), "collector failed"),
            Err(e) => tracing::error!(error = %e, "collector task panicked"),
        }
        let _ = store.flush().await;
        server.await.context("the UI task failed")?
    }
    .await;
    let cfg2 = cfg.clone();
    let closed = tokio::task::spawn_blocking(move || {
        let f = super::forward::finish(&cfg2, fwd, false);
        store.close().and(f)
    })
    .await
    .context("closing the store")?;
    result.and(closed)
}
