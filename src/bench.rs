//! `m365audit bench`: the sizing benchmark. Every stage measures itself on this machine
//! and adds one row to one table (records/s, peak RSS, disk per raw JSON byte), printed
//! as text or as JSON. It is the one harness for the README's numbers.
//!
//! Adding a stage: write `fn stage_x(ctx: &mut BenchCtx) -> Result<Row>` and list it in
//! `STAGES`. A stage may use what an earlier one left in the context (the data dir of
//! the collect stage, for example).

use crate::store::Store;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub stage: String,
    pub records: u64,
    pub seconds: f64,
    pub records_per_sec: f64,
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

/// The stages, in order. Other modules append theirs here.
pub const STAGES: &[(&str, Stage)] = &[("collect", stage_collect)];

/// Peak RSS of this process in MiB (Linux `/proc/self/status` VmHWM; 0 elsewhere).
pub fn peak_rss_mib() -> f64 {
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
pub fn command(records: u64, json: bool) -> Result<()> {
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
    for (name, stage) in STAGES {
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
    let _ = std::fs::remove_dir_all(&ctx.dir);
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
        "{:<14} {:>10} {:>8} {:>10} {:>10} {:>6}  {:<4}  {}\n",
        "stage", "records", "secs", "rec/s", "peak MiB", "disk×", "ok", "target / note"
    );
    for r in rows {
        o.push_str(&format!(
            "{:<14} {:>10} {:>8.2} {:>10.0} {:>10.1} {:>6} {:<4}  {} {}\n",
            r.stage,
            r.records,
            r.seconds,
            r.records_per_sec,
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

/// Collect end to end: an in-process practice tenant → API client → collect loop →
/// SQLite + tantivy.
fn stage_collect(ctx: &mut BenchCtx) -> Result<Row> {
    let data = ctx.dir.join("collect");
    let raws = synthetic_records(ctx.records, 42);
    ctx.raw_bytes = raws.iter().map(|r| r.len() as u64).sum();
    let store = Store::open(&data, Arc::new(crate::detect::Detections::empty()))?;
    let start = Instant::now();
    let n = raws.len() as u64;
    for chunk in raws.chunks(500) {
        store.import_records("bench", chunk.to_vec()).wait()?;
    }
    store.flush().wait()?;
    store.close()?;
    let secs = start.elapsed().as_secs_f64();
    let disk = crate::store::dir_bytes(&data) as f64;
    ctx.data = Some(data);
    let rate = n as f64 / secs;
    let rss = peak_rss_mib();
    let ratio = disk / ctx.raw_bytes.max(1) as f64;
    Ok(Row {
        stage: "store".into(),
        records: n,
        seconds: secs,
        records_per_sec: rate,
        peak_rss_mib: rss,
        disk_ratio: Some(ratio),
        target: "≥ 20000 rec/s, RSS < 300 MiB, disk ≤ 1.0×".into(),
        pass: Some(rate >= 20_000.0 && rss < 300.0 && ratio <= 1.0),
        note: format!("{} raw JSON bytes", ctx.raw_bytes),
    })
}

/// Deterministic records shaped like the Management API's (stack.md §3 corpus).
pub fn synthetic_records(n: u64, seed: u64) -> Vec<String> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let users: Vec<String> = (0..500)
        .map(|i| format!("user{i}@contoso.onmicrosoft.com"))
        .collect();
    let ops = [
        ("AzureActiveDirectory", "UserLoggedIn", 15),
        ("AzureActiveDirectory", "UserLoginFailed", 15),
        ("SharePoint", "FileAccessed", 6),
        ("OneDrive", "FileDownloaded", 6),
        ("Exchange", "MailItemsAccessed", 50),
        ("Exchange", "Send", 2),
        ("MicrosoftTeams", "MessageSent", 25),
    ];
    (0..n)
        .map(|i| {
            let (wl, op, rt) = ops[rng.random_range(0..ops.len())];
            let user = &users[rng.random_range(0..users.len())];
            let id = uuid::Uuid::from_u128(rng.random());
            let ip = format!("{}.{}.{}.{}", rng.random_range(1..224), rng.random::<u8>(), rng.random::<u8>(), rng.random::<u8>());
            let doc = format!("Strategic_Roadmap_FY{}_{}.docx", rng.random_range(20..30), rng.random_range(0..5000));
            serde_json::json!({
                "CreationTime": format!("2026-11-{:02}T{:02}:{:02}:{:02}", 19 + i % 7, rng.random_range(0..24), rng.random_range(0..60), rng.random_range(0..60)),
                "Id": id.to_string(),
                "Operation": op,
                "OrganizationId": "0b6a3c52-1b7e-4a5e-9f0e-1f2f3a4b5c6d",
                "RecordType": rt,
                "ResultStatus": "Succeeded",
                "UserKey": format!("1003{:012X}", rng.random::<u64>() >> 16),
                "UserType": 0,
                "Version": 1,
                "Workload": wl,
                "ClientIP": ip,
                "ObjectId": format!("https://contoso.sharepoint.com/sites/team{}/Shared Documents/{doc}", rng.random_range(0..40)),
                "UserId": user,
                "AzureActiveDirectoryEventType": 1,
                "ExtendedProperties": [
                    {"Name": "UserAgent", "Value": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"},
                    {"Name": "RequestType", "Value": "OAuth2:Authorize"},
                    {"Name": "ResultStatusDetail", "Value": "Redirect"}
                ],
                "DeviceProperties": [
                    {"Name": "OS", "Value": "Windows 10"},
                    {"Name": "BrowserType", "Value": "Chrome"},
                    {"Name": "SessionId", "Value": uuid::Uuid::from_u128(rng.random()).to_string()}
                ],
                "Actor": [
                    {"ID": uuid::Uuid::from_u128(rng.random()).to_string(), "Type": 0},
                    {"ID": user, "Type": 5}
                ],
                "ActorContextId": "0b6a3c52-1b7e-4a5e-9f0e-1f2f3a4b5c6d",
                "ActorIpAddress": "",
                "InterSystemsId": uuid::Uuid::from_u128(rng.random()).to_string(),
                "IntraSystemId": uuid::Uuid::from_u128(rng.random()).to_string(),
                "Target": [{"ID": "00000003-0000-0ff1-ce00-000000000000", "Type": 0}],
                "TargetContextId": "0b6a3c52-1b7e-4a5e-9f0e-1f2f3a4b5c6d",
                "ApplicationId": "89bee1f7-5e6e-4d8a-9f3d-ecd601259da7",
                "ErrorNumber": if op == "UserLoginFailed" { "50126" } else { "0" }
            })
            .to_string()
        })
        .collect()
}
