//! The commands that serve the UI (ARCHITECTURE §7): `demo` (practice tenant + collector +
//! detections + UI in one process), `run --config FILE` (the appliance: collect, detect,
//! serve) and `serve` (the UI over an existing data directory, read-only).
//!
//! Each prints one line `m365audit <cmd>: open <URL>` on stdout once the UI listens (tests
//! read it), runs until SIGINT/SIGTERM, then stops the collector, lets the store finish
//! its queued writes and closes it. Nothing here talks to Microsoft or SQLite directly.

use super::store_backend::StoreBackend;
use super::{AppState, Backend};
use crate::collect::{self, CollectOptions};
use crate::detect::Vars;
use crate::store::Store;
use anyhow::{Context, Result};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Environment variable that sets the UI token for `demo` and `serve` (which take no
/// config file); `generate` asks for a fresh one, printed once.
pub const TOKEN_ENV: &str = "M365AUDIT_UI_TOKEN";

/// The collector id the demo's config carries (five digits, as the guide asks).
pub const DEMO_COLLECTOR_ID: &str = "10365";

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn announce(cmd: &str, url: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "m365audit {cmd}: open {url}");
    let _ = out.flush();
}

fn env_token() -> Option<String> {
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
        super::bind(listen, token.as_deref(), backend).await?;
    announce(cmd, &url);
    tracing::info!(listen = %listener.local_addr()?, "ui listening");
    Ok(tokio::spawn(super::serve_on(listener, state, async move {
        cancel.cancelled().await
    })))
}

/// `m365audit serve [--data DIR] [--listen ADDR]`: the UI over an existing store,
/// read-only (safe next to a running collector).
pub fn serve(data: &Path, listen: SocketAddr) -> Result<()> {
    collect::init_tracing();
    let store = Store::open_read_only(data)?;
    // The same detections the collector runs (their titles, severities and group_by).
    let dets = collect::load_detections(Vars::default())?;
    let backend = Arc::new(StoreBackend::new(store, dets, String::new(), String::new()));
    let rt = runtime()?;
    rt.block_on(async {
        let cancel = CancellationToken::new();
        warm(&backend);
        let server = serve_ui("serve", listen, env_token(), backend, cancel.clone()).await?;
        collect::shutdown_signal().await;
        cancel.cancel();
        server.await.context("the UI task failed")?
    })
}

/// Everything `run` and `demo` share: open the store with the detections, collect
/// continuously, serve the UI, stop cleanly on a signal (or when `stop` fires).
async fn collect_and_serve(
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
    let dets = collect::load_detections(vars)?;
    let store = Store::open(data, dets.clone())?;
    let fwd = match crate::app::forward::start_async(cfg, &store).await {
        Ok(f) => f,
        Err(e) => {
            let _ = tokio::task::spawn_blocking(move || store.close()).await;
            return Err(e);
        }
    };
    let result = async {
        let api = crate::collect::api::ApiClient::new(&o)?;
        let backend = Arc::new(StoreBackend::new(
            store.clone(),
            dets,
            o.collector_id.clone(),
            o.tenant_id.clone(),
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
            _ = collect::shutdown_signal() => {}
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
        let f = crate::app::forward::finish(&cfg2, fwd, false);
        store.close().and(f)
    })
    .await
    .context("closing the store")?;
    result.and(closed)
}

/// `m365audit run --config FILE [--data DIR] [--listen ADDR]`: the appliance.
pub fn run(config: &Path, data: &Path, listen: SocketAddr) -> Result<()> {
    collect::init_tracing();
    let cfg = crate::config::load(config)?;
    if !cfg.office365.enabled {
        return Err(crate::UsageError(format!(
            "config {}: inputs.office365.enabled is false; nothing to collect",
            config.display()
        ))
        .into());
    }
    // The flag has a default; a config's ui.listen wins over that default only.
    let listen = if listen.to_string() == crate::cli::DEFAULT_LISTEN {
        cfg.ui.listen
    } else {
        listen
    };
    let token = cfg
        .ui
        .token
        .as_ref()
        .map(|s| s.expose().to_string())
        .or_else(env_token);
    // Refuse a public address without a token before anything starts.
    super::choose_token(listen, token.as_deref())?;
    let rt = runtime()?;
    rt.block_on(collect_and_serve(
        "run",
        &cfg,
        data,
        listen,
        token,
        CancellationToken::new(),
    ))
}

/// The config `demo` writes for the practice tenant: Devo's template with the base URLs
/// pointed at the simulator, a short poll interval, and a request budget fit for a
/// local simulator rather than Microsoft's (the backfill of 7 days is thousands of blobs).
pub fn demo_config_text(sim: &crate::simulate::Simulator) -> String {
    serde_json::json!({
        "inputs": {"office365": {
            "credentials": {
                "client_id": sim.client_id,
                "client_secret": sim.client_secret,
                "tenant_id": sim.tenant_id,
            },
            "enabled": true,
            "id": DEMO_COLLECTOR_ID,
            "services": {
                "azure_active_directory": {}, "general_audit": {}, "exchange": {},
                "sharepoint": {}, "dlp": {}
            },
            "login_url": sim.login_url,
            "api_url": sim.api_url,
            "backfill_hours": 168,
            "poll_interval_secs": 5,
            "max_concurrency": 32,
            "requests_per_minute": 120_000,
            "client_secret_expires": (chrono::Utc::now() + chrono::Duration::days(90))
                .format("%Y-%m-%d").to_string(),
        }},
    })
    .to_string()
}

/// `m365audit demo [--listen ADDR] [--data DIR] [--devo FILE]`; FILE holds an
/// `outputs.devo` object (paths in it relative to FILE), e.g. a local rsyslog.
pub fn demo(listen: SocketAddr, data: Option<&Path>, devo: Option<&Path>) -> Result<()> {
    collect::init_tracing();
    super::choose_token(listen, env_token().as_deref())?;
    let (dir, temporary): (PathBuf, bool) = match data {
        Some(d) => (d.to_path_buf(), false),
        None => {
            let d = std::env::temp_dir().join(format!(
                "m365audit-demo-{}-{}",
                std::process::id(),
                super::AccessToken::generate().reveal()
            ));
            (d, true)
        }
    };
    let rt = runtime()?;
    let result = rt.block_on(async {
        let sim = crate::simulate::Simulator::start(crate::simulate::SimOptions::default())
            .await
            .context("starting the practice tenant")?;
        tracing::info!(api_url = %sim.api_url, "practice tenant started");
        let mut text = demo_config_text(&sim);
        if let Some(d) = devo {
            text = crate::app::forward::demo_config_with_devo(&text, d)?;
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the data directory {}", dir.display()))?;
        // The practice tenant's ready line (its control plane), for tests and the curious.
        let ready = dir.join("demo-simulator.json");
        std::fs::write(&ready, sim.ready_line())
            .with_context(|| format!("writing {}", ready.display()))?;
        let cfg_path = dir.join("demo-config.json");
        std::fs::write(&cfg_path, &text)
            .with_context(|| format!("writing {}", cfg_path.display()))?;
        let cfg = crate::config::parse(&text, &cfg_path.display().to_string())?;
        let r = collect_and_serve(
            "demo",
            &cfg,
            &dir,
            listen,
            env_token(),
            CancellationToken::new(),
        )
        .await;
        sim.shutdown().await;
        r
    });
    drop(rt);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}
