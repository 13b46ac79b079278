//! `run --config FILE`: the appliance — collect continuously, detect, serve the UI.

use super::init_tracing;
use super::serve::{collect_and_serve, env_token};
use anyhow::Result;
use std::net::SocketAddr;
use std::path::Path;
use tokio_util::sync::CancellationToken;

/// `m365audit run --config FILE [--data DIR] [--listen ADDR]`: the appliance.
pub fn run(config: &Path, data: &Path, listen: SocketAddr) -> Result<()> {
    init_tracing();
    let cfg = crate::config::load(config)?;
    if !cfg.office365.enabled {
        return Err(crate::UsageError(format!(
            "config {}: inputs.office365.enabled is false; nothing to collect",
            config.display()
        ))
        .into());
    }
    // The flag has a default; a config's ui.listen wins over that default only.
    let listen = if listen.to_string() == crate::model::DEFAULT_LISTEN {
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
    crate::ui::choose_token(listen, token.as_deref())?;
    let rt = super::runtime()?;
    rt.block_on(collect_and_serve(
        "run",
        &cfg,
        data,
        listen,
        token,
        CancellationToken::new(),
    ))
}
