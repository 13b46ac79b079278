//! `collect --config FILE [--once]`: the collector (and the Devo forwarder when
//! `outputs.devo` is set) until a signal, or with `--once` until it has caught up and the
//! outbox has drained.

use crate::collect::{self, CollectOptions, api::ApiClient};
use crate::store::Store;
use anyhow::Result;
use tokio_util::sync::CancellationToken;

/// `m365audit collect --config FILE [--data DIR] [--once]`.
pub fn collect(config: &std::path::Path, data: &std::path::Path, once: bool) -> Result<()> {
    super::init_tracing();
    let cfg = crate::config::load(config)?;
    let o = cfg.office365.clone();
    if !o.enabled {
        return Err(crate::UsageError(format!(
            "config {}: inputs.office365.enabled is false; nothing to collect",
            config.display()
        ))
        .into());
    }
    let vars = crate::detect::Vars {
        collector_id: o.collector_id.clone(),
        tenant_id: o.tenant_id.clone(),
    };
    let store = Store::open(data, super::load_detections(vars)?)?;
    let fwd = match super::forward::start(&cfg, &store) {
        Ok(f) => f,
        Err(e) => {
            let _ = store.close();
            return Err(e);
        }
    };
    let rt = super::runtime()?;
    let result = rt.block_on(async {
        let api = ApiClient::new(&o)?;
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            super::shutdown_signal().await;
            tracing::info!("shutdown requested; finishing the current step");
            c2.cancel();
        });
        tracing::info!(
            collector_id = %o.collector_id,
            content_types = o.content_types.len(),
            once,
            "collecting"
        );
        let summary = collect::run(
            &o,
            api,
            store.clone(),
            cancel,
            CollectOptions {
                once,
                progress: true,
            },
        )
        .await?;
        let _ = store.flush().await;
        anyhow::Ok(summary)
    });
    drop(rt);
    // with --once, the outbox must be empty before the command says it is done
    let forwarded = super::forward::finish(&cfg, fwd, once && result.is_ok());
    store.close()?;
    let summary = result?;
    forwarded?;
    tracing::info!(
        records_new = summary.records_new,
        duplicates = summary.duplicates,
        blobs_done = summary.blobs_done,
        blobs_failed = summary.blobs_failed,
        "collect finished"
    );
    if once && !summary.unfinished.is_empty() {
        let list: Vec<String> = summary
            .unfinished
            .iter()
            .map(|(ct, why)| format!("{ct}: {why}"))
            .collect();
        anyhow::bail!(
            "not caught up ({}); what was fetched is stored, run again to continue",
            list.join("; ")
        );
    }
    Ok(())
}
