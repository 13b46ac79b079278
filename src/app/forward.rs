//! Forwarding to Devo as the commands use it: start the forwarder beside the collector
//! when `outputs.devo` is configured (`run`, `collect`, `demo`), wait for the outbox to
//! drain at the end of `collect --once`, and the `forward` command (`--backfill-since`
//! queues what was stored before forwarding was switched on, then drains).

use crate::config::Config;
use crate::forward::{Forwarder, Settings};
use crate::store::Store;
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Duration;

/// Starts the forwarder if the config has `outputs.devo`; otherwise switches the store's
/// outbox off (rows already queued stay for a later run with forwarding). Call on a plain
/// thread right after the store opened, before anything is stored.
pub fn start(cfg: &Config, store: &Store) -> Result<Option<Forwarder>> {
    match &cfg.outputs.devo {
        Some(devo) => {
            let settings = Settings::new(devo, &cfg.office365.collector_id)
                .map_err(|e| crate::UsageError(format!("outputs.devo: {e:#}")))?;
            tracing::info!(target = %devo.describe(), hostname = %settings.hostname, "forwarding to Devo");
            Ok(Some(Forwarder::start(store.clone(), settings)?))
        }
        None => {
            let depth = store.outbox_depth().unwrap_or(0);
            store
                .set_forwarding(false)
                .wait()
                .context("switching the outbox off")?;
            if depth > 0 {
                tracing::warn!(
                    rows = depth,
                    "outputs.devo is not configured; {depth} records stay queued in the outbox until forwarding is on again"
                );
            }
            Ok(None)
        }
    }
}

/// [`start`] from async code (the store's `.wait()` must not block a worker).
pub async fn start_async(cfg: &Config, store: &Store) -> Result<Option<Forwarder>> {
    let (cfg, store) = (cfg.clone(), store.clone());
    tokio::task::spawn_blocking(move || start(&cfg, &store))
        .await
        .context("starting the forwarder")?
}

/// Ends forwarding: with `drain`, waits until the outbox is empty (at most
/// `outputs.devo.drain_secs`) and fails saying how many rows are left; otherwise stops at
/// once (unconfirmed rows stay queued). Call on a plain thread.
pub fn finish(cfg: &Config, fwd: Option<Forwarder>, drain: bool) -> Result<()> {
    let Some(f) = fwd else { return Ok(()) };
    if !drain {
        f.stop();
        return Ok(());
    }
    let secs = cfg.outputs.devo.as_ref().map_or(300, |d| d.drain_secs);
    tracing::info!(max_wait_secs = secs, "waiting for the outbox to drain");
    let left = f.drain(Duration::from_secs(secs))?;
    if left > 0 {
        anyhow::bail!(
            "{left} records are still in the outbox after waiting {secs} s for Devo (see `m365audit stats`); they are kept and sent by the next run"
        );
    }
    tracing::info!("outbox drained");
    Ok(())
}

/// `m365audit forward --config FILE [--data DIR] [--backfill-since TIME]`: queues the
/// records stored before forwarding was on (CreationTime ≥ TIME; each range once), then
/// sends the whole outbox and exits (1 with rows left after `drain_secs`). Needs the
/// store to itself: stop `run`/`collect` first.
pub fn command(config: &Path, data: &Path, backfill_since: Option<&str>) -> Result<()> {
    super::init_tracing();
    let cfg = crate::config::load(config)?;
    if cfg.outputs.devo.is_none() {
        return Err(crate::UsageError(format!(
            "config {}: no outputs.devo; nothing to forward to",
            config.display()
        ))
        .into());
    }
    let since = match backfill_since {
        None => None,
        Some(s) => Some(
            crate::model::parse_time(s)
                .or_else(|| {
                    chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                        .ok()
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                        .map(|t| t.and_utc())
                })
                .ok_or_else(|| {
                    crate::UsageError(format!(
                        "--backfill-since {s:?}: expected a time such as 2026-11-01 or 2026-11-01T00:00:00Z"
                    ))
                })?,
        ),
    };
    if !data.join(crate::store::DB_FILE).exists() {
        return Err(crate::UsageError(format!("no store in {}", data.display())).into());
    }
    let store = Store::open(
        data,
        std::sync::Arc::new(crate::detect::Detections::empty()),
    )?;
    let result = (|| {
        let fwd = start(&cfg, &store)?;
        if let Some(t) = since {
            let n = store.queue_backfill(t).wait()?;
            super::print_results(&format!(
                "queued {n} stored records created since {}\n",
                crate::model::format_api_time(t)
            ))?;
        }
        finish(&cfg, fwd, true)
    })();
    let closed = store.close();
    result.and(closed)?;
    super::print_results("outbox drained\n")
}

/// The demo's config text with `outputs.devo` taken from `devo_file` (a JSON object);
/// relative certificate paths in it are made absolute against the file's folder.
pub fn demo_config_with_devo(config_text: &str, devo_file: &Path) -> Result<String> {
    let text = std::fs::read_to_string(devo_file).map_err(|e| {
        crate::UsageError(format!("--devo {}: cannot read: {e}", devo_file.display()))
    })?;
    let mut devo: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        crate::UsageError(format!(
            "--devo {}: {}",
            devo_file.display(),
            crate::config::describe_json_error(&text, &e)
        ))
    })?;
    let base = devo_file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let base = std::path::absolute(&base).unwrap_or(base);
    if let Some(tls) = devo.get_mut("tls").and_then(|t| t.as_object_mut()) {
        for k in ["cert", "key", "chain"] {
            if let Some(serde_json::Value::String(p)) = tls.get_mut(k)
                && Path::new(p.as_str()).is_relative()
            {
                *p = base.join(p.as_str()).display().to_string();
            }
        }
    }
    let mut cfg: serde_json::Value =
        serde_json::from_str(config_text).context("the demo config is not JSON")?;
    cfg["outputs"] = serde_json::json!({ "devo": devo });
    Ok(cfg.to_string())
}
