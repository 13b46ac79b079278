//! Stage `import`: a JSON-lines export into a fresh store, detections on.

use super::{BenchCtx, Row, cpu_seconds, peak_rss_mib, reset_peak_rss};
use crate::corpus::synthetic_records;
use crate::store::Store;
use anyhow::Result;
use std::sync::Arc;
use std::time::Instant;

/// Import of a JSON-lines export (synthetic records) into a fresh store, detections on.
pub(super) fn stage_import(ctx: &mut BenchCtx) -> Result<Row> {
    reset_peak_rss();
    let file = ctx.dir.join("export.jsonl");
    let raws = synthetic_records(ctx.records, 42);
    let raw_bytes: u64 = raws.iter().map(|r| r.len() as u64).sum();
    std::fs::write(&file, raws.join("\n"))?;
    drop(raws);
    let data = ctx.dir.join("import");
    let dets = crate::detect::Detections::load_embedded(crate::detect::Vars::default());
    let store = Store::open(&data, Arc::new(dets))?;
    let start = Instant::now();
    let cpu0 = cpu_seconds();
    let report = crate::import::import_file(&store, &file)?;
    store.flush().wait()?;
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    store.close()?;
    let rss = peak_rss_mib();
    let disk = crate::store::dir_bytes(&data) as f64;
    let n = report.new as u64;
    Ok(Row {
        stage: "import".into(),
        records: n,
        seconds: secs,
        records_per_sec: n as f64 / secs,
        cpu_seconds: cpu,
        peak_rss_mib: rss,
        disk_ratio: Some(disk / raw_bytes.max(1) as f64),
        target: String::new(),
        pass: None,
        note: format!(
            "JSONL file, {:.0} B/record",
            raw_bytes as f64 / n.max(1) as f64
        ),
    })
}
