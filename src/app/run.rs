//! `run --config FILE`: the appliance — collect continuously, detect, serve the UI.

use super::init_tracing;
use super::serve::{collect_and_serve, env_token};
use anyhow::Result;
use std::net::SocketAddr;
use std::path::Path;
use tokio_util::sync::CancellationToken;

/// `m365audit run --config FILE [--data DIR] [--listen ADDR]`: the appliance.
pub fn run(config: &Path, data: &Path, listen: Option<SocketAddr>) -> Result<()> {
    init_tracing();
    let cfg = crate::config::load(config)?;
    if !cfg.office365.enabled {
        return Err(crate::UsageError(format!(
            "config {}: inputs.office365.enabled is false; nothing to collect",
            config.display()
        ))
        .into());
    }
    let listen = ui_address(listen, &cfg);
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

/// The UI's address: the `--listen` flag when given (also when it names the default
/// address), else the config's `ui.listen` (itself 127.0.0.1:8365 unless set).
fn ui_address(flag: Option<SocketAddr>, cfg: &crate::config::Config) -> SocketAddr {
    flag.unwrap_or(cfg.ui.listen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(ui: &str) -> crate::config::Config {
        let text = format!(
            r#"{{"inputs": {{"office365": {{"credentials": {{"client_id": "0d5a1a0c-1111-2222-3333-444455556666",
                "client_secret": "s3cr3t~Value.with-chars_XYZ", "tenant_id": "4f1c2b7e-9a3d-4c8e-b2f6-7d1e0a9c5b31"}},
                "enabled": true, "id": "12345", "services": {{"exchange": {{}}}}}}}}{ui}}}"#
        );
        crate::config::parse(&text, "test.json").unwrap()
    }

    #[test]
    fn an_explicit_listen_flag_wins_over_the_config_even_when_it_is_the_default() {
        let cfg = config(r#", "ui": {"listen": "127.0.0.1:9999"}"#);
        let default: SocketAddr = crate::model::DEFAULT_LISTEN.parse().unwrap();
        assert_eq!(ui_address(Some(default), &cfg), default);
        let other: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        assert_eq!(ui_address(Some(other), &cfg), other);
        assert_eq!(ui_address(None, &cfg).to_string(), "127.0.0.1:9999");
        assert_eq!(ui_address(None, &config("")), default);
    }
}
