//! The command line of ARCHITECTURE.md §7 — the exact forms tests and benchmarks drive —
//! and the mapping of failures to exit codes (0 ok, 1 runtime failure, 2 bad usage/config).
//!
//! This module parses flags and hands plain options to the module that owns each command;
//! it must not hold any logic of its own beyond that dispatch.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

pub const DEFAULT_DATA_DIR: &str = "./m365audit-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8365";

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
        jq: String,
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

/// Runs one parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    crate::install_crypto_provider();
    match dispatch(cli) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("error: {err:#}");
            if err.chain().any(|e| e.is::<crate::UsageError>()) {
                2
            } else {
                1
            }
        }
    }
}

/// `$collector_id` as the collector that filled this store knew it ("" before any
/// collector ran: an import-only store), for detections re-run over stored records.
fn stored_vars(store: &crate::store::Store) -> anyhow::Result<crate::detect::Vars> {
    Ok(crate::detect::Vars {
        collector_id: store.collector_id()?.unwrap_or_default(),
        ..crate::detect::Vars::default()
    })
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo { listen, data } => crate::ui::command::demo(listen, data.as_deref()),
        Command::Run {
            config,
            data,
            listen,
        } => crate::ui::command::run(&config, &data, listen),
        Command::Collect { config, data, once } => crate::collect::command(&config, &data, once),
        Command::Serve { data, listen } => crate::ui::command::serve(&data, listen),
        Command::Simulate(args) => crate::simulate::run_cli(&args),
        Command::Check { config } => {
            let cfg = crate::config::load(&config)?;
            print!("{}", cfg.summary());
            let vars = crate::detect::Vars {
                collector_id: cfg.office365.collector_id.clone(),
                tenant_id: cfg.office365.tenant_id.clone(),
            };
            print!("{}", crate::detect::check_command(vars)?);
            Ok(())
        }
        Command::Stats { data, json } => crate::store::stats_command(&data, json),
        Command::Detect {
            data,
            detection,
            format,
        } => {
            let store = crate::store::Store::open_read_only(&data)?;
            // headers first, raw JSON only for candidates, decompressed on the workers
            let decoder = store.packed_decoder()?;
            let make = || -> anyhow::Result<crate::detect::Decoder> {
                let mut d = decoder.clone();
                Ok(Box::new(move |dict, data, out| d.decode(dict, data, out)))
            };
            crate::detect::command::detect_command_lazy(
                stored_vars(&store)?,
                detection.as_deref(),
                &format,
                Some(&make),
                &mut |f| {
                    store.for_each_candidate(crate::model::TABLE_ALL, 0, |row, raw| {
                        f(
                            &crate::detect::command::SourceRecord {
                                header: row.header,
                                raw: &[],
                                content_type: row.content_type,
                                ingested_at: row.ingested_at,
                            },
                            raw,
                        )
                    })
                },
            )
        }
        Command::Query { data, table, jq } => {
            let store = crate::store::Store::open_read_only(&data)?;
            crate::detect::command::query_command(stored_vars(&store)?, &jq, &mut |f| {
                store.for_each_record(&table, 0, |r| {
                    Ok(f(&crate::detect::command::SourceRecord {
                        header: &r.header,
                        raw: r.raw.as_bytes(),
                        content_type: r.content_type,
                        ingested_at: r.ingested_at,
                    }))
                })
            })
        }
        Command::Search {
            data,
            limit,
            json,
            query,
        } => crate::store::search_command(&data, &query, limit, json),
        Command::Import { data, files } => crate::app::import::command(&data, &files),
        Command::Export {
            data,
            table,
            since,
            until,
            detection,
            user,
            format,
            out,
        } => crate::app::export::command(&crate::app::export::ExportArgs {
            data,
            table,
            since,
            until,
            detection,
            user,
            format,
            out,
        }),
        Command::Bench { records, json } => crate::bench::command(records, json),
    }
}
