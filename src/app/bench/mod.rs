//! `m365audit bench`: the sizing benchmark. Every stage measures itself on this machine
//! and adds one row to one table (records/s, peak RSS, disk per raw JSON byte), printed
//! as text or as JSON. It is the one harness for the README's numbers.
//!
//! Adding a stage: write `fn stage_x(ctx: &mut BenchCtx) -> Result<Row>` in a file of its
//! own here and list it in `STAGES`. A stage may use what an earlier one left in the
//! context (the data dir of the collect stage, for example). Measurements that need a
//! module's internals (`simulate::bench_serve`, `ui::bench::page_latencies`,
//! `detect::measure::time_real_jq`) stay in that module; the stages only call them.

mod collect;
mod detect;
mod forward;
mod import;
mod simulate;
mod soak;
mod ui;

use anyhow::{Context, Result};
use serde::Serialize;
use std::path::PathBuf;

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub stage: String,
    pub records: u64,
    pub seconds: f64,
    pub records_per_sec: f64,
    /// CPU seconds (user + system) the process spent in the stage: on a shared machine
    /// this is steadier than the wall clock.
    pub cpu_seconds: f64,
    /// Peak resident set of the process so far (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// On-disk bytes (SQLite + index) per raw JSON byte, where the stage stores data.
    pub disk_ratio: Option<f64>,
    /// The target for this stage, e.g. "≥ 20000 rec/s, RSS < 300 MiB, disk ≤ 1.0×".
    pub target: String,
    pub pass: Option<bool>,
    pub note: String,
}

/// What stages share.
pub struct BenchCtx {
    pub records: u64,
    /// A fresh directory under the system temp dir, removed at the end.
    pub dir: PathBuf,
    /// The data dir the collect stage filled (later stages read it).
    pub data: Option<PathBuf>,
    pub raw_bytes: u64,
}

type Stage = fn(&mut BenchCtx) -> Result<Row>;

/// The stages, in order (one file per stage beside this one).
pub const STAGES: &[(&str, Stage)] = &[
    ("simulate", simulate::stage_simulate),
    ("collect", collect::stage_collect),
    ("collect-nodet", collect::stage_collect_no_detect),
    ("forward", forward::stage_forward),
    ("collect-fwd", collect::stage_collect_forward),
    ("import", import::stage_import),
    ("detect", detect::stage_detect),
    ("ui", ui::stage_ui),
    ("hits-listing", ui::stage_hits_listing),
];

/// Stages that run only when `M365AUDIT_BENCH_STAGES` names them (they take minutes).
pub const OPT_IN_STAGES: &[(&str, Stage)] = &[("soak", soak::stage_soak)];

/// CPU seconds (user + system) of this process so far, from `/proc/self/stat`.
pub(crate) fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // the fields after the command name "(…)": utime and stime are the 12th and 13th
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

/// The 1-minute load average (other work on the machine skews wall-clock rates).
pub(crate) fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Peak RSS of this process in MiB (Linux `/proc/self/status` VmHWM; 0 elsewhere).
pub(crate) fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<f64>().ok())
            })
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

/// `m365audit bench [--records N] [--json]`.
pub fn bench(records: u64, json: bool) -> Result<()> {
    let mut ctx = BenchCtx {
        records,
        dir: std::env::temp_dir().join(format!(
            "m365audit-bench-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_millis()
        )),
        data: None,
        raw_bytes: 0,
    };
    std::fs::create_dir_all(&ctx.dir).with_context(|| format!("creating {}", ctx.dir.display()))?;
    let mut rows = Vec::new();
    let mut result = Ok(());
    // `M365AUDIT_BENCH_STAGES=ui,hits-listing`: only these stages (iterating on one);
    // the opt-in stages (`soak`) run only when named.
    let only = std::env::var("M365AUDIT_BENCH_STAGES").ok();
    let named = |name: &str| {
        only.as_ref()
            .is_some_and(|only| only.split(',').any(|s| s.trim() == name))
    };
    let opt_in = OPT_IN_STAGES.iter().filter(|(name, _)| named(name));
    for (name, stage) in STAGES.iter().chain(opt_in) {
        if only.is_some() && !named(name) {
            continue;
        }
        if !json {
            eprintln!("bench: {name} …");
        }
        match stage(&mut ctx).with_context(|| format!("bench stage {name}")) {
            Ok(row) => rows.push(row),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if std::env::var("M365X_KEEP").is_err() {
        let _ = std::fs::remove_dir_all(&ctx.dir);
    }
    result?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "stages": rows }))?
        );
    } else {
        print!("{}", render(&rows));
    }
    Ok(())
}

/// The text table.
pub fn render(rows: &[Row]) -> String {
    let mut o = format!(
        "{:<14} {:>10} {:>8} {:>10} {:>8} {:>10} {:>10} {:>6}  {:<4}  {}\n",
        "stage",
        "records",
        "secs",
        "rec/s",
        "cpu s",
        "rec/cpu-s",
        "peak MiB",
        "disk×",
        "ok",
        "target / note"
    );
    for r in rows {
        o.push_str(&format!(
            "{:<14} {:>10} {:>8.2} {:>10.0} {:>8.1} {:>10.0} {:>10.1} {:>6} {:<4}  {} {}\n",
            r.stage,
            r.records,
            r.seconds,
            r.records_per_sec,
            r.cpu_seconds,
            r.records as f64 / r.cpu_seconds.max(0.001),
            r.peak_rss_mib,
            r.disk_ratio
                .map(|d| format!("{d:.2}"))
                .unwrap_or_else(|| "-".into()),
            match r.pass {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            },
            r.target,
            r.note
        ));
    }
    o
}

/// Resets VmHWM so each stage reports its own peak (Linux; ignored elsewhere).
pub(crate) fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
