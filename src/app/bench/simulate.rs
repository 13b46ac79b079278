//! Stage `simulate`: the practice tenant's blob serving rate.

use super::{BenchCtx, Row, cpu_seconds, peak_rss_mib};
use anyhow::Result;

/// The practice tenant serving blob content over HTTP on loopback to a local client: it
/// must never be the bottleneck of the collect stage (≥ 100,000 records/s).
pub(super) fn stage_simulate(ctx: &mut BenchCtx) -> Result<Row> {
    let rt = crate::app::runtime()?;
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
