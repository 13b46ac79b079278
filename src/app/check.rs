//! `check --config FILE`: validates the config, loads the Devo certificates and compiles
//! every detection; contacts nothing.

use anyhow::Result;
use std::path::Path;

/// `m365audit check --config FILE`: prints the config's summary, then the detections'.
pub fn check(config: &Path) -> Result<()> {
    let cfg = crate::config::load(config)?;
    super::print_results(&cfg.summary())?;
    if let Some(d) = &cfg.outputs.devo {
        // loads the Devo certificates: a bad one fails here, naming the file
        super::print_results(&crate::forward::check(d, &cfg.office365.collector_id)?)?;
    }
    let vars = crate::detect::Vars {
        collector_id: cfg.office365.collector_id.clone(),
        tenant_id: cfg.office365.tenant_id.clone(),
    };
    super::print_results(&crate::detect::check_command(vars)?)
}
