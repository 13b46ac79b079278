//! The command line (docs/architecture.md lists its forms) — the exact forms tests and
//! benchmarks drive — and the mapping of failures to exit codes (0 ok, 1 runtime failure,
//! 2 bad usage/config).
//!
//! This module parses flags and hands plain options to `app`, which assembles each
//! command; it must not hold any logic of its own beyond that dispatch.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::model::{DEFAULT_DATA_DIR, DEFAULT_LISTEN};

#[derive(Debug, Parser)]
#[command(
    name = "m365audit",
    version,
    about = "Microsoft 365 audit appliance: collect, store, detect, investigate"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Practice tenant + collector + detections + UI in one process, on embedded defaults.
    Demo {
        #[arg(long, default_value = DEFAULT_LISTEN)]
        listen: SocketAddr,
        #[arg(long)]
        data: Option<PathBuf>,
        /// Forward to Devo: a JSON file holding an `outputs.devo` object.
        #[arg(long)]
        devo: Option<PathBuf>,
    },
    /// The appliance: collect continuously, detect, forward, serve the UI.
    Run {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        #[arg(long, default_value = DEFAULT_LISTEN)]
        listen: SocketAddr,
    },
    /// Collect from the Management Activity API into the store.
    Collect {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// Catch up to now, then exit 0.
        #[arg(long)]
        once: bool,
    },
    /// Serve the web UI over an existing data directory.
    Serve {
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        #[arg(long, default_value = DEFAULT_LISTEN)]
        listen: SocketAddr,
    },
    /// Run the practice tenant: a Management Activity API simulator.
    Simulate(SimulateArgs),
    /// Validate a config file and compile every detection; contacts nothing.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// What is stored, every gap, every cursor and its lag.
    Stats {
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Grouped detection results over the store.
    Detect {
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        #[arg(long)]
        detection: Option<String>,
        #[arg(long, default_value = "table", value_parser = ["table", "json", "csv"])]
        format: String,
    },
    /// Ad-hoc jq over a table, JSON lines out.
    Query {
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        #[arg(long, default_value = crate::model::TABLE_ALL)]
        table: String,
        /// Stop the whole query after this many seconds (each record has its own,
        /// smaller guard).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
        timeout: u64,
        jq: String,
    },
    /// A Devo LINQ query (the guide's subset) over the stored records.
    Linq {
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        #[arg(long, default_value = "table", value_parser = ["table", "jsonl", "csv"])]
        format: String,
        /// Start of Devo's time range (on eventdate, the ingestion time), inclusive.
        #[arg(long)]
        from: Option<String>,
        /// End of the time range, exclusive.
        #[arg(long)]
        to: Option<String>,
        query: String,
    },
    /// Full-text search (tantivy).
    Search {
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
        query: String,
    },
    /// Import offline audit exports (JSON, JSONL, Purview CSV, .gz).
    Import {
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Stored records, exactly as stored, as JSON lines or Purview CSV (re-importable).
    Export {
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        #[arg(long, default_value = crate::model::TABLE_ALL)]
        table: String,
        /// CreationTime at or after this time.
        #[arg(long)]
        since: Option<String>,
        /// CreationTime before this time.
        #[arg(long)]
        until: Option<String>,
        /// Only the records this detection hit.
        #[arg(long)]
        detection: Option<String>,
        /// Only the records of this user (UserId).
        #[arg(long)]
        user: Option<String>,
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
        format: String,
        /// Default: stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Send the Devo outbox; with --backfill-since, first queue the records stored
    /// before forwarding was on (CreationTime at or after TIME).
    Forward {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        #[arg(long, value_name = "TIME")]
        backfill_since: Option<String>,
    },
    /// Sizing benchmark: every stage, one table.
    Bench {
        #[arg(long, default_value_t = 200_000)]
        records: u64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Days of history before the start time (at most 7 are listable).
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    #[arg(long, default_value_t = 2000)]
    pub records_per_day: u64,
    /// Comma-separated fault names switched on at start.
    #[arg(long, default_value = "")]
    pub faults: String,
    /// Start time of the virtual clock (RFC 3339); default: now.
    #[arg(long)]
    pub now: Option<String>,
}

impl Command {
    /// Long-running services (`run`, `serve`, `demo`, `simulate`, `collect`): they write to
    /// sockets and logs, where a gone peer is an error to handle. Every other command is a
    /// filter whose output may be piped into `head` (see `main`).
    pub fn is_service(&self) -> bool {
        matches!(
            self,
            Command::Demo { .. }
                | Command::Run { .. }
                | Command::Serve { .. }
                | Command::Simulate(_)
                | Command::Collect { .. }
        )
    }
}

/// Runs one parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    crate::install_crypto_provider();
    match dispatch(cli) {
        Ok(()) => 0,
        Err(err) => {
            // errors quote record values, file names and API bodies: escape them, keep
            // the lines of our own layout (config excerpts)
            eprintln!(
                "error: {}",
                crate::model::terminal_safe_lines(&format!("{err:#}"))
            );
            if err.chain().any(|e| e.is::<crate::UsageError>()) {
                2
            } else {
                1
            }
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    use crate::app;
    match cli.command {
        Command::Demo { listen, data, devo } => {
            app::demo::demo(listen, data.as_deref(), devo.as_deref())
        }
        Command::Run {
            config,
            data,
            listen,
        } => app::run::run(&config, &data, listen),
        Command::Collect { config, data, once } => app::collect::collect(&config, &data, once),
        Command::Serve { data, listen } => app::serve::serve(&data, listen),
        Command::Simulate(a) => app::simulate::simulate(&app::simulate::SimulateFlags {
            listen: a.listen,
            seed: a.seed,
            days: a.days,
            records_per_day: a.records_per_day,
            faults: a.faults,
            now: a.now,
        }),
        Command::Check { config } => app::check::check(&config),
        Command::Stats { data, json } => app::stats::stats(&data, json),
        Command::Detect {
            data,
            detection,
            format,
        } => app::detect::detect(&data, detection.as_deref(), &format),
        Command::Query {
            data,
            table,
            timeout,
            jq,
        } => app::detect::query(&data, &table, std::time::Duration::from_secs(timeout), &jq),
        Command::Linq {
            data,
            format,
            from,
            to,
            query,
        } => app::linq::command(&data, &format, from.as_deref(), to.as_deref(), &query),
        Command::Search {
            data,
            limit,
            json,
            query,
        } => app::stats::search(&data, &query, limit, json),
        Command::Import { data, files } => app::import::import(&data, &files),
        Command::Export {
            data,
            table,
            since,
            until,
            detection,
            user,
            format,
            out,
        } => app::export::export(&app::export::ExportArgs {
            data,
            table,
            since,
            until,
            detection,
            user,
            format,
            out,
        }),
        Command::Bench { records, json } => app::bench::bench(records, json),
        Command::Forward {
            config,
            data,
            backfill_since,
        } => app::forward::command(&config, &data, backfill_since.as_deref()),
    }
}
