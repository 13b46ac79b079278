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
    #[command(after_help = "Example:\n  m365audit demo --listen 127.0.0.1:8365 --data ./demo-data")]
    Demo {
        /// Address the web UI listens on; a non-loopback address needs M365AUDIT_UI_TOKEN.
        #[arg(long, default_value = DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// Data directory to keep; without it a temporary one is used and removed at exit.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Forward to Devo: a JSON file holding an `outputs.devo` object.
        #[arg(long)]
        devo: Option<PathBuf>,
    },
    /// The appliance: collect continuously, detect, forward, serve the UI.
    #[command(
        after_help = "Example:\n  m365audit run --config /etc/m365audit/config.json --data /var/lib/m365audit"
    )]
    Run {
        /// Configuration file (JSON): credentials, content types, UI and outputs.
        #[arg(long)]
        config: PathBuf,
        /// Data directory: the store (SQLite database and search index).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// Address the web UI listens on [default: the config's ui.listen, else
        /// 127.0.0.1:8365]; a non-loopback address needs a UI token.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Collect from the Management Activity API into the store.
    #[command(
        after_help = "Example:\n  m365audit collect --config config.json --data ./m365audit-data --once"
    )]
    Collect {
        /// Configuration file (JSON): credentials and content types to collect.
        #[arg(long)]
        config: PathBuf,
        /// Data directory the records are stored in (created when missing).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// Catch up to now, then exit 0 (without it: poll until stopped).
        #[arg(long)]
        once: bool,
    },
    /// Serve the web UI over an existing data directory.
    #[command(
        after_help = "Example:\n  m365audit serve --data ./m365audit-data --listen 127.0.0.1:8365\n  m365audit serve --data /mnt/evidence --read-only"
    )]
    Serve {
        /// Data directory to read (records read-only; a collector may keep writing to it);
        /// the UI writes triage only, where the store can be written.
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// Address the web UI listens on; a non-loopback address needs M365AUDIT_UI_TOKEN.
        #[arg(long, default_value = DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// Write nothing, not even triage: no triage forms, and a triage POST is 403.
        #[arg(long)]
        read_only: bool,
    },
    /// Run the practice tenant: a Management Activity API simulator.
    #[command(
        after_help = "Example:\n  m365audit simulate --seed 7 --days 7 --faults throttle_429"
    )]
    Simulate(SimulateArgs),
    /// Validate a config file and compile every detection; contacts nothing.
    #[command(after_help = "Example:\n  m365audit check --config config.json")]
    Check {
        /// Configuration file (JSON) to validate.
        #[arg(long)]
        config: PathBuf,
    },
    /// What is stored, every gap, every cursor and its lag.
    #[command(after_help = "Example:\n  m365audit stats --data ./m365audit-data --json")]
    Stats {
        /// Data directory to read (opened read-only).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// Print one JSON document instead of the text report.
        #[arg(long)]
        json: bool,
    },
    /// Grouped detection results over the store.
    #[command(
        after_help = "Example:\n  m365audit detect --data ./m365audit-data --detection brute_force_user --format json"
    )]
    Detect {
        /// Data directory to read (opened read-only).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// Run only the detection with this id (default: every detection).
        #[arg(long)]
        detection: Option<String>,
        /// Output format: a table for people, JSON or CSV for scripts.
        #[arg(long, default_value = "table", value_parser = ["table", "json", "csv"])]
        format: String,
    },
    /// Ad-hoc jq over a table, JSON lines out. Each record has the detections' guard rails
    /// (1,000,000 loop steps, 250 ms, 256 MiB of memory); a record the filter fails on is
    /// skipped with a warning, and the exit code is 1 when it failed on every record.
    #[command(
        after_help = "Example:\n  m365audit query --data ./m365audit-data 'select(.Operation == \"FileDownloaded\") | .UserId'"
    )]
    Query {
        /// Data directory to read (opened read-only).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// Table to read: `cloud.office365.management` (all records), `….<workload>` (e.g.
        /// `cloud.office365.management.exchange`) or `auth.all`.
        #[arg(long, default_value = crate::model::TABLE_ALL)]
        table: String,
        /// Stop the whole query after this many seconds (each record has its own,
        /// smaller guard).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
        timeout: u64,
        /// jq program run on every record; each output is printed as one JSON line.
        jq: String,
    },
    /// A Devo LINQ query (the guide's subset) over the stored records.
    #[command(
        after_help = "Example:\n  m365audit linq --from 2026-12-01 --format jsonl 'from cloud.office365.management.exchange where eq(Operation,\"AttachmentDownload\") group by UserId'"
    )]
    Linq {
        /// Data directory to read (opened read-only).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// Output format: a table for people, JSON lines or CSV for scripts.
        #[arg(long, default_value = "table", value_parser = ["table", "jsonl", "csv"])]
        format: String,
        /// Start of Devo's time range (on eventdate, the ingestion time), inclusive.
        #[arg(long)]
        from: Option<String>,
        /// End of the time range, exclusive.
        #[arg(long)]
        to: Option<String>,
        /// LINQ query: `from TABLE` then `where`, `select … as NAME`, `group [every 1h] by …`,
        /// `having` (the README lists the functions).
        query: String,
    },
    /// Full-text search (tantivy).
    #[command(
        after_help = "Example:\n  m365audit search --data ./m365audit-data --limit 50 'user:alice@contoso.com AND operation:FileDownloaded'"
    )]
    Search {
        /// Data directory to read (opened read-only).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// Most records to print (newest first); the total is always counted.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print one JSON document instead of a table.
        #[arg(long)]
        json: bool,
        /// Search query: words, "phrases", field:value (user, ip, operation, workload, table),
        /// AND/OR/NOT. A record's Id is a word: search for it without a field.
        query: String,
    },
    /// Import offline audit exports (JSON, JSONL, Purview CSV, .gz).
    #[command(
        after_help = "Example:\n  m365audit import --data ./m365audit-data AuditLog.csv export.jsonl.gz"
    )]
    Import {
        /// Data directory to import into (created when missing).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// Files to import; duplicates of stored records are skipped.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Stored records, exactly as stored, as JSON lines or Purview CSV (re-importable).
    #[command(
        after_help = "Example:\n  m365audit export --data ./m365audit-data --detection authentication --format csv --out auth.csv"
    )]
    Export {
        /// Data directory to read (opened read-only; read-only media work).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// Table to export, e.g. cloud.office365.management.exchange or auth.all; `triage`
        /// exports the triage of detection groups instead of records.
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
        /// jsonl: one record per line; csv: the Purview layout (CreationDate, UserIds,
        /// Operations, AuditData, …).
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
        format: String,
        /// File to write (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Send the Devo outbox; with --backfill-since, first queue the records stored
    /// before forwarding was on (CreationTime at or after TIME).
    #[command(
        after_help = "Example:\n  m365audit forward --config config.json --data ./m365audit-data --backfill-since 2026-12-01"
    )]
    Forward {
        /// Configuration file (JSON) whose `outputs.devo` says where and how to send.
        #[arg(long)]
        config: PathBuf,
        /// Data directory whose outbox is sent.
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// First queue the records stored before forwarding was on, CreationTime at or
        /// after TIME (2026-12-01, 2026-12-01T10:00:00 or RFC 3339).
        #[arg(long, value_name = "TIME")]
        backfill_since: Option<String>,
    },
    /// List triaged detection groups, or set a group's triage state, assignee and note.
    #[command(
        long_about = "List triaged detection groups (state, assignee, new hits since triage, \
            last note), or change one group's triage: a group is a detection id and its group \
            key as the detection page and `detect --format json` show it. A resolved or \
            false-positive group that gets new hits reads as reopened until its state is set \
            again. Only the triage tables are written, never records, hits or cursors.",
        after_help = "Examples:\n  m365audit triage --data ./m365audit-data\n  m365audit triage --data ./m365audit-data --format json authentication_outcomes\n  m365audit triage --data ./m365audit-data mfa_disabled '{\"UserId\":\"bob@contoso.com\",\"target\":\"bob@contoso.com\"}' --state investigating --assignee alice --note 'called the user'\n  m365audit triage --data ./m365audit-data mfa_disabled '{\"UserId\":\"bob@contoso.com\",\"target\":\"bob@contoso.com\"}' --state resolved --author 'alice (SOC)'"
    )]
    Triage {
        /// Data directory whose triage is listed or changed (listing works read-only).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// Detection id, e.g. mfa_disabled: list only its groups, or the one to change.
        detection: Option<String>,
        /// Group key as JSON, as the detection page shows it, e.g.
        /// '{"UserId":"bob@contoso.com"}'; with --state, --assignee or --note: the group
        /// to change.
        key: Option<String>,
        /// New state: new, investigating, false_positive or resolved.
        #[arg(long)]
        state: Option<String>,
        /// Who works on the group (free text; an empty value clears it).
        #[arg(long)]
        assignee: Option<String>,
        /// A note added to the group's history, with the time and the author.
        #[arg(long)]
        note: Option<String>,
        /// Author text of the change (default: cli:$USER).
        #[arg(long)]
        author: Option<String>,
        /// table: one line per group, for people; json: every group with its history.
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Sizing benchmark: every stage, one table.
    #[command(after_help = "Example:\n  m365audit bench --records 1000000 --json")]
    Bench {
        /// Number of synthetic records to run every stage with.
        #[arg(long, default_value_t = 200_000)]
        records: u64,
        /// Print one JSON document instead of the table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Address to listen on (port 0: any free port; the ready line says which).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Seed of the generated tenant: the same seed gives the same records.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Days of history before the start time (at most 7 are listable).
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// Records generated per day of history.
    #[arg(long, default_value_t = 2000)]
    pub records_per_day: u64,
    /// Comma-separated fault names switched on at start (e.g. throttle_429,reset_mid_body).
    #[arg(long, default_value = "")]
    pub faults: String,
    /// Start time of the virtual clock (RFC 3339); default: now.
    #[arg(long)]
    pub now: Option<String>,
}

impl Command {
    /// Filters: commands that only read local files and print (`check`, `stats`,
    /// `detect`, `query`, `linq`, `search`, `import`, `export`), whose output may be piped
    /// into `head` (see `main`). Every other command talks to sockets (services, the
    /// forwarder, the benchmark's in-process servers), where a gone peer is an error to
    /// handle, never a reason to die: a positive list, so a new command is safe by default.
    pub fn is_filter(&self) -> bool {
        matches!(
            self,
            Command::Check { .. }
                | Command::Stats { .. }
                | Command::Detect { .. }
                | Command::Query { .. }
                | Command::Linq { .. }
                | Command::Search { .. }
                | Command::Import { .. }
                | Command::Export { .. }
                | Command::Triage { .. }
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
        Command::Serve {
            data,
            listen,
            read_only,
        } => app::serve::serve(&data, listen, read_only),
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
        Command::Triage {
            data,
            detection,
            key,
            state,
            assignee,
            note,
            author,
            format,
        } => app::triage::triage(
            &data,
            &app::triage::TriageArgs {
                detection,
                key,
                state,
                assignee,
                note,
                author,
                format,
            },
        ),
        Command::Forward {
            config,
            data,
            backfill_since,
        } => app::forward::command(&config, &data, backfill_since.as_deref()),
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::{CommandFactory, Parser};

    #[test]
    fn only_commands_that_just_print_die_quietly_on_a_closed_pipe() {
        let filter = |args: &[&str]| Cli::parse_from(args).command.is_filter();
        assert!(filter(&["m365audit", "stats"]));
        assert!(filter(&["m365audit", "search", "x"]));
        // a receiver that goes away mid-write is an outage to ride out, not the end
        assert!(!filter(&["m365audit", "forward", "--config", "c.json"]));
        assert!(!filter(&["m365audit", "collect", "--config", "c.json"]));
        assert!(!filter(&["m365audit", "bench"]));
    }

    /// Every option and argument an analyst can pass, as `command path: --option`, that has
    /// no help text; clap's own `--help`/`--version` are left out.
    fn undocumented(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let has_help = arg
                .get_help()
                .or(arg.get_long_help())
                .is_some_and(|h| !h.to_string().trim().is_empty());
            if !has_help {
                let name = match arg.get_long() {
                    Some(l) => format!("--{l}"),
                    None => format!("<{id}>"),
                };
                out.push(format!("{path}: {name}"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            undocumented(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_option_of_every_command_has_help_text() {
        let cmd = Cli::command();
        let mut missing = Vec::new();
        undocumented(&cmd, "m365audit", &mut missing);
        assert!(
            missing.is_empty(),
            "options without help text (add a /// doc comment):\n  {}",
            missing.join("\n  ")
        );
    }

    #[test]
    fn every_command_has_a_description_and_an_example() {
        let cmd = Cli::command();
        let mut missing = Vec::new();
        for sub in cmd.get_subcommands() {
            let name = sub.get_name();
            if name == "help" {
                continue;
            }
            if sub.get_about().is_none() {
                missing.push(format!("m365audit {name}: no description"));
            }
            let example = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            if !example.contains(&format!("m365audit {name}")) {
                missing.push(format!(
                    "m365audit {name}: no example (after_help with `m365audit {name} …`)"
                ));
            }
        }
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }
}
