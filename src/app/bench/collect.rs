//! Stages `collect`, `collect-nodet` and `collect-fwd`: the collector end to end against an
//! in-process practice tenant, with and without detections, and with forwarding to a
//! loopback TLS receiver on.

use super::{BenchCtx, Row, cpu_seconds, load_average, peak_rss_mib, reset_peak_rss};
use crate::store::Store;
use anyhow::Result;
use std::sync::Arc;
use std::time::Instant;

/// Collect end to end with the embedded detections (the appliance's real path).
pub(super) fn stage_collect(ctx: &mut BenchCtx) -> Result<Row> {
    collect_row(ctx, "collect", true, false)
}

/// Collect as `stage_collect` with forwarding to a loopback TLS receiver on: the rate
/// counts until every record is stored and its outbox row confirmed and deleted.
pub(super) fn stage_collect_forward(ctx: &mut BenchCtx) -> Result<Row> {
    collect_row(ctx, "collect-fwd", true, true)
}

/// The same without detections: the collector and store alone.
pub(super) fn stage_collect_no_detect(ctx: &mut BenchCtx) -> Result<Row> {
    collect_row(ctx, "collect-nodet", false, false)
}

/// Collect end to end: an in-process practice tenant with 7 days of history → API
/// client → collect loop (`--once`) → SQLite + tantivy, until the index is committed.
fn collect_row(ctx: &mut BenchCtx, name: &str, detections: bool, forward: bool) -> Result<Row> {
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
    let receiver = if forward {
        Some(crate::forward::bench::Receiver::start()?)
    } else {
        None
    };
    let fwd = match &receiver {
        Some(r) => Some(crate::forward::Forwarder::start(
            store.clone(),
            crate::forward::bench::settings(r.port, &ctx.dir.join(format!("{name}-certs")))?,
        )?),
        None => None,
    };
    let fwd_start = Instant::now();
    let rt = crate::app::runtime()?;
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
    let mut secs = secs;
    let mut fwd_note = String::new();
    if let (Some(f), Some(r)) = (fwd, &receiver) {
        let left = f.drain(std::time::Duration::from_secs(600))?;
        let all = fwd_start.elapsed().as_secs_f64();
        fwd_note = format!(
            "; stored in {secs:.1} s, all forwarded and confirmed after {all:.1} s ({} lines received, {left} left)",
            r.lines()
        );
        if left > 0 {
            anyhow::bail!("forwarding did not drain: {left} rows left");
        }
        secs = all;
    }
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
    // With detections, the path every user takes, collect must cost what collecting
    // alone costs; memory must not grow with the store (a million records or more).
    let (min_rate, max_ratio) = if detections {
        (30_000.0, 0.8)
    } else {
        (20_000.0, 1.0)
    };
    let max_rss = match (ctx.records >= 1_000_000, detections) {
        (true, _) => 250.0,
        (false, true) => 200.0,
        (false, false) => 300.0,
    };
    Ok(Row {
        stage: name.into(),
        records: n,
        seconds: secs,
        records_per_sec: rate,
        cpu_seconds: cpu,
        peak_rss_mib: rss,
        disk_ratio: Some(ratio),
        target: format!("≥ {min_rate:.0} rec/s, RSS < {max_rss:.0} MiB, disk ≤ {max_ratio}×"),
        pass: Some(rate >= min_rate && rss < max_rss && ratio <= max_ratio),
        note: format!(
            "{} blobs, {:.0} B raw JSON/record, {hits} hits, SQLite {db_mib:.0} MiB + index {index_mib:.0} MiB, simulator in-process (its CPU included), load avg {load:.1}{fwd_note}",
            summary.blobs_done,
            raw_bytes as f64 / n.max(1) as f64
        ),
    })
}
