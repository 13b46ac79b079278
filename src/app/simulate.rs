//! `simulate`: the practice tenant as a process of its own — prints its ready line (the
//! control plane's address and credentials, for tests and the curious) and serves until a
//! signal.

use crate::simulate::{SimOptions, Simulator};
use chrono::{DateTime, Utc};
use std::net::SocketAddr;

/// The `simulate` flags as given on the command line (the CLI fills this in; the simulator
/// itself takes [`SimOptions`]).
#[derive(Debug, Clone)]
pub struct SimulateFlags {
    pub listen: SocketAddr,
    pub seed: u64,
    pub days: u32,
    pub records_per_day: u64,
    /// Comma-separated fault names switched on at start.
    pub faults: String,
    /// Start time of the virtual clock (RFC 3339); `None`: now.
    pub now: Option<String>,
}

/// `m365audit simulate`: checks the flags, starts, prints the ready line, serves until
/// SIGINT/SIGTERM.
pub fn simulate(args: &SimulateFlags) -> anyhow::Result<()> {
    let now = match args.now.as_deref() {
        Some(s) => Some(
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    crate::UsageError(format!("--now {s:?} is not an RFC 3339 time: {e}"))
                })?,
        ),
        None => None,
    };
    let faults: Vec<String> = crate::simulate::faults::parse_list(&args.faults)
        .map_err(crate::UsageError)?
        .into_iter()
        .map(|f| f.name().to_string())
        .collect();
    let opts = SimOptions {
        listen: args.listen,
        seed: args.seed,
        days: args.days,
        records_per_day: args.records_per_day,
        faults,
        now,
        ..SimOptions::default()
    };
    let rt = super::runtime()?;
    rt.block_on(async move {
        let sim = Simulator::start(opts).await?;
        {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", sim.ready_line())?;
            out.flush()?;
        }
        super::shutdown_signal().await;
        sim.shutdown().await;
        anyhow::Ok(())
    })
}
