//! `demo`: the practice tenant, the collector, the detections and the UI in one process,
//! on embedded defaults (a temporary data directory unless `--data` is given).

use super::serve::{collect_and_serve, env_token};
use super::{init_tracing, runtime};
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// The collector id the demo's config carries (five digits, as the guide asks).
pub const DEMO_COLLECTOR_ID: &str = "10365";

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
    init_tracing();
    crate::ui::choose_token(listen, env_token().as_deref())?;
    let (dir, temporary): (PathBuf, bool) = match data {
        Some(d) => (d.to_path_buf(), false),
        None => {
            let d = std::env::temp_dir().join(format!(
                "m365audit-demo-{}-{}",
                std::process::id(),
                crate::ui::AccessToken::generate().reveal()
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
            text = super::forward::demo_config_with_devo(&text, d)?;
        }
        crate::store::create_private_dir(&dir)
            .with_context(|| format!("creating the data directory {}", dir.display()))?;
        // The practice tenant's ready line (its control plane), for tests and the curious.
        let ready = dir.join("demo-simulator.json");
        std::fs::write(&ready, sim.ready_line())
            .with_context(|| format!("writing {}", ready.display()))?;
        let cfg_path = dir.join("demo-config.json");
        crate::store::create_private_file(&cfg_path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
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
