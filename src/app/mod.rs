//! The composition root: one file per command puts config, store, collector, detections,
//! UI and simulator together and runs them as a process (runtime, tracing, signals).
//!
//! Library modules below `app` hold the logic and stay ignorant of each other where the
//! arrows say so (the UI does not know the collector or the simulator, the simulator does
//! not know the store); only here are they wired to one another. `cli` parses flags and
//! calls one function of this module per command; nothing here parses flags.

pub mod bench;
pub mod check;
pub mod collect;
pub mod demo;
pub mod detect;
pub mod export;
pub mod forward;
pub mod import;
pub mod linq;
pub mod run;
pub mod serve;
pub mod simulate;
pub mod stats;
pub mod triage;

use anyhow::{Context, Result};
use std::sync::Arc;

/// Threads for blocking work (SQLite reads of the collector and the UI, the practice
/// tenant's blob generation). Two cores do not run more at once; with tokio's default of
/// 512 a million-record backfill ran fifteen, each keeping its own allocator pages.
const BLOCKING_THREADS: usize = 8;

/// The multi-threaded tokio runtime a command runs its async parts on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(BLOCKING_THREADS)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The detections run on every stored record (by `collect` and `import`):
/// `M365AUDIT_QUERIES` or the embedded queries; a query that does not load is logged
/// and left out.
/// Writes a command's output to stdout. Every command's output goes through here or
/// through a writer that handles errors the same way: a full disk or a closed descriptor
/// is an error naming what failed (exit 1), not a panic; a reader that closed the pipe
/// (`| head`) has what it wanted and is no failure.
pub(crate) fn print_results(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing the results"),
    }
}

pub fn load_detections(vars: crate::detect::Vars) -> Result<Arc<crate::detect::Detections>> {
    let d = crate::detect::Detections::load_default(vars)?;
    for e in d.errors() {
        tracing::warn!(error = %e, "detection not loaded");
    }
    Ok(Arc::new(d))
}

/// Installs the stderr tracing subscriber (`M365AUDIT_LOG`, default `info`) unless one
/// is already installed.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("M365AUDIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal as _;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .try_init();
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
