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

/// The stages, in order. Other modules append theirs here.
pub const STAGES: &[(&str, Stage)] = &[
    ("simulate", stage_simulate),
    ("collect", stage_collect),
    ("collect-nodet", stage_collect_no_detect),
    ("import", stage_import),
    ("detect", stage_detect),
    ("ui", crate::ui::bench::stage_ui),
    ("hits-listing", crate::ui::bench::stage_hits_listing),
];

/// The practice tenant serving blob content over HTTP on loopback to a local client: it
/// must never be the bottleneck of the collect stage (issue #2: ≥ 100,000 records/s).
fn stage_simulate(ctx: &mut BenchCtx) -> Result<Row> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let cpu0 = cpu_seconds();
    let r = rt.block_on(crate::simulate::bench_serve(ctx.records))?;
    Ok(Row {
        stage: "simulate".into(),
        records: r.records,
        seconds: r.seconds,
        cpu_seconds: cpu_seconds() - cpu0,
        records_per_sec: r.records_per_sec,
        peak_rss_mib: peak_rss_mib(),
        disk_ratio: None,
        target: "≥ 100000 rec/s served".into(),
        pass: Some(r.records_per_sec >= 100_000.0),
        note: format!(
            "{} blobs, {:.0} MiB/s of blob content over HTTP on 127.0.0.1, client in-process",
            r.blobs, r.mib_per_sec
        ),
    })
}

/// CPU seconds (user + system) of this process so far, from `/proc/self/stat`.
pub fn cpu_seconds() -> f64 {
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
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

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
    // `M365AUDIT_BENCH_STAGES=ui,hits-listing`: only these stages (iterating on one).
    let only = std::env::var("M365AUDIT_BENCH_STAGES").ok();
    for (name, stage) in STAGES {
        if let Some(only) = &only
            && !only.split(',').any(|s| s.trim() == *name)
        {
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

/// Collect end to end with the embedded detections (the appliance's real path).
fn stage_collect(ctx: &mut BenchCtx) -> Result<Row> {
    collect_row(ctx, "collect", true)
}

/// The same without detections: the collector and store alone.
fn stage_collect_no_detect(ctx: &mut BenchCtx) -> Result<Row> {
    collect_row(ctx, "collect-nodet", false)
}

/// Resets VmHWM so each stage reports its own peak (Linux; ignored elsewhere).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Collect end to end: an in-process practice tenant with 7 days of history → API
/// client → collect loop (`--once`) → SQLite + tantivy, until the index is committed.
fn collect_row(ctx: &mut BenchCtx, name: &str, detections: bool) -> Result<Row> {
    use crate::simulate::{SimOptions, Simulator};
    reset_peak_rss();
    let data = ctx.dir.join(name);
    let vars = crate::detect::Vars {
        collector_id: "12345".into(),
        tenant_id: String::new(),
    };
    let dets = if detections {
        crate::detect::Detections::load_embedded(vars)
    } else {
        crate::detect::Detections::empty()
    };
    let store = Store::open(&data, Arc::new(dets))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let per_day = (ctx.records / 7).max(100);
    let (summary, secs, cpu, load) = rt.block_on(async {
        let sim = Simulator::start(SimOptions {
            days: 7,
            records_per_day: per_day,
            page_size: 1000,
            ..SimOptions::default()
        })
        .await?;
        let cfg = serde_json::json!({"inputs": {"office365": {
            "credentials": {"client_id": sim.client_id, "client_secret": sim.client_secret, "tenant_id": sim.tenant_id},
            "enabled": true, "id": "12345",
            "services": {"azure_active_directory": {}, "exchange": {}, "sharepoint": {}, "general_audit": {}, "dlp": {}},
            "login_url": sim.login_url, "api_url": sim.api_url,
            "requests_per_minute": 1_000_000, "max_concurrency": 8
        }}});
        let o = crate::config::parse(&cfg.to_string(), "bench")?.office365;
        let api = crate::collect::api::ApiClient::new(&o)?;
        let start = Instant::now();
        let cpu0 = cpu_seconds();
        let load0 = load_average();
        let summary = crate::collect::run(
            &o,
            api,
            store.clone(),
            tokio_util::sync::CancellationToken::new(),
            crate::collect::CollectOptions {
                once: true,
                progress: false,
            },
        )
        .await?;
        store.flush().await?;
        let secs = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        let load = (load0 + load_average()) / 2.0;
        sim.shutdown().await;
        anyhow::Ok((summary, secs, cpu, load))
    })?;
    drop(rt);
    store.close()?;
    let rss = peak_rss_mib();
    if !summary.unfinished.is_empty() {
        anyhow::bail!("collect did not finish: {:?}", summary.unfinished);
    }
    let ro = Store::open_read_only(&data)?;
    let mut raw_bytes = 0u64;
    ro.for_each_record(crate::model::TABLE_ALL, 0, |r| {
        raw_bytes += r.raw.len() as u64;
        Ok(true)
    })?;
    let disk = crate::store::dir_bytes(&data) as f64;
    let st = ro.stats()?;
    let hits: i64 = st.hits.values().sum();
    let (db_mib, index_mib) = (
        st.db_bytes as f64 / 1048576.0,
        st.index_bytes as f64 / 1048576.0,
    );
    ctx.raw_bytes = raw_bytes;
    ctx.data = Some(data);
    let n = summary.records_new;
    let rate = n as f64 / secs;
    let ratio = disk / raw_bytes.max(1) as f64;
    Ok(Row {
        stage: name.into(),
        records: n,
        seconds: secs,
        records_per_sec: rate,
        cpu_seconds: cpu,
        peak_rss_mib: rss,
        disk_ratio: Some(ratio),
        target: "≥ 20000 rec/s, RSS < 300 MiB, disk ≤ 1.0×".into(),
        pass: Some(rate >= 20_000.0 && rss < 300.0 && ratio <= 1.0),
        note: format!(
            "{} blobs, {:.0} B raw JSON/record, {hits} hits, SQLite {db_mib:.0} MiB + index {index_mib:.0} MiB, simulator in-process (its CPU included), load avg {load:.1}",
            summary.blobs_done,
            raw_bytes as f64 / n.max(1) as f64
        ),
    })
}

/// Import end to end, as `m365audit import` runs it: a JSON-lines export of synthetic
/// records, written first, streamed into a fresh store with the detections on (parse,
/// store, detect, index, until the index is committed).
fn stage_import(ctx: &mut BenchCtx) -> Result<Row> {
    use std::io::Write as _;
    let file = ctx.dir.join("export.jsonl");
    let mut raw_bytes = 0u64;
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file)?);
        for r in synthetic_iter(ctx.records, 42) {
            raw_bytes += r.len() as u64;
            w.write_all(r.as_bytes())?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
    }
    let data = ctx.dir.join("import");
    reset_peak_rss();
    let dets = crate::detect::Detections::load_embedded(crate::detect::Vars::default());
    let store = Store::open(&data, Arc::new(dets))?;
    let start = Instant::now();
    let cpu0 = cpu_seconds();
    let load0 = load_average();
    let report = crate::import::import_file(&store, &file, &mut crate::import::Progress::quiet())?;
    store.flush().wait()?;
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let load = (load0 + load_average()) / 2.0;
    store.close()?;
    let rss = peak_rss_mib();
    let disk = crate::store::dir_bytes(&data) as f64;
    let _ = std::fs::remove_file(&file);
    if !report.is_clean() || report.new != ctx.records {
        anyhow::bail!(
            "the import stage stored {} of {} records ({} bad, damage {:?})",
            report.new,
            ctx.records,
            report.bad,
            report.damage
        );
    }
    let n = report.new;
    let rate = n as f64 / secs;
    Ok(Row {
        stage: "import".into(),
        records: n,
        seconds: secs,
        records_per_sec: rate,
        cpu_seconds: cpu,
        peak_rss_mib: rss,
        disk_ratio: Some(disk / raw_bytes.max(1) as f64),
        target: "≥ 25000 rec/s, RSS < 300 MiB (1 M records)".into(),
        pass: Some(rate >= 25_000.0 && rss < 300.0),
        note: format!(
            "JSONL file of {:.0} MiB, {:.0} B/record, detections on, load avg {load:.1}",
            raw_bytes as f64 / 1048576.0,
            raw_bytes as f64 / n.max(1) as f64
        ),
    })
}

/// Detections over the store the collect stage filled, as `m365audit detect` runs them
/// (header columns → prefilter → parse candidates → jaq, on every core); then the real `jq`
/// running the same detection files over a sample of the same records, scaled.
fn stage_detect(ctx: &mut BenchCtx) -> Result<Row> {
    use crate::detect::{Detections, Grouper, Vars};
    // `M365AUDIT_BENCH_DETECT_DATA=DIR`: an existing data dir (one 1 M-record store built
    // once, then iterated on), instead of the collect stage's.
    let data = match std::env::var_os("M365AUDIT_BENCH_DETECT_DATA") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => ctx.data.clone().context(
            "the detect stage reads the collect stage's store (or set M365AUDIT_BENCH_DETECT_DATA)",
        )?,
    };
    let store = Store::open_read_only(&data)?;
    let detections = Detections::load_embedded(Vars::default());
    let mut sample = Vec::new();
    store.for_each_record(crate::model::TABLE_ALL, 0, |r| {
        sample.push(r.raw);
        Ok(sample.len() < 20_000)
    })?;
    let _hold = crate::alloc::hold_freed_pages(crate::alloc::DETECT_HOLD);
    let cpu0 = cpu_seconds();
    let load0 = load_average();
    let start = Instant::now();
    // as `detect` reads the store: header columns for every record; the raw JSON of the
    // candidates only, decompressed on the worker threads beside evaluation (the scanning
    // thread was the bottleneck when it decompressed)
    let decoder = store.packed_decoder()?;
    let make = || -> Result<crate::detect::Decoder> {
        let mut d = decoder.clone();
        Ok(Box::new(move |dict, data, out| d.decode(dict, data, out)))
    };
    let (scanned, report) = Grouper::stream_with(&detections, Some(&make), |g| {
        store.for_each_candidate(crate::model::TABLE_ALL, 0, |row, raw| {
            let (dict, data) = raw.packed();
            g.add_packed(row.header, dict, data)?;
            Ok(true)
        })
    });
    scanned?;
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let cpu = cpu_seconds() - cpu0;
    let load = (load0 + load_average()) / 2.0;
    let n = report.records;
    let rate = n as f64 / secs;
    let jq = crate::detect::measure::time_real_jq(&sample, &ctx.dir)?;
    let counts = format!(
        "{} detections, {} candidates ({} parsed after `contains`, {} detection runs served by the memo)",
        detections.len(),
        report.candidates,
        report.parsed,
        report.memo_hits
    );
    let note = match jq {
        Some(jq_secs) if !sample.is_empty() => {
            let scaled = jq_secs * n as f64 / sample.len() as f64;
            format!(
                "{counts}; real jq {:.1} s (scaled from {} records): {:.1}× faster; load avg {load:.1}",
                scaled,
                sample.len(),
                scaled / secs
            )
        }
        _ => format!("{counts}; jq not installed; load avg {load:.1}"),
    };
    Ok(Row {
        stage: "detect".into(),
        records: n,
        seconds: secs,
        cpu_seconds: cpu,
        records_per_sec: rate,
        peak_rss_mib: peak_rss_mib(),
        disk_ratio: None,
        target: "≥ 200000 rec/s, ≥ 10× jq".into(),
        pass: Some(rate >= 200_000.0),
        note,
    })
}

/// Deterministic records shaped like the Management API's (stack.md §3 corpus).
pub fn synthetic_records(n: u64, seed: u64) -> Vec<String> {
    synthetic_iter(n, seed).collect()
}

/// [`synthetic_records`] one at a time (a file of a million of them is written without
/// holding them).
pub fn synthetic_iter(n: u64, seed: u64) -> impl Iterator<Item = String> {
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
        .map(move |i| {
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
}
