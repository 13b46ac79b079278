//! Stage `import`: a JSON-lines export streamed into a fresh store, detections on, end to
//! end as `m365audit import` runs it.

use super::{BenchCtx, Row, cpu_seconds, load_average, peak_rss_mib, reset_peak_rss};
use crate::store::Store;
use anyhow::Result;
use std::sync::Arc;
use std::time::Instant;

/// Import end to end, as `m365audit import` runs it: a JSON-lines export of synthetic
/// records, written first, streamed into a fresh store with the detections on (parse,
/// store, detect, index, until the index is committed).
pub(super) fn stage_import(ctx: &mut BenchCtx) -> Result<Row> {
    use std::io::Write as _;
    let file = ctx.dir.join("export.jsonl");
    let mut raw_bytes = 0u64;
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file)?);
        for r in crate::corpus::synthetic_iter(ctx.records, 42) {
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
