//! Stage `forward`: forwarding throughput to a loopback TLS receiver
//! (`forward::bench::Receiver`), every record of the collect stage's store sent once.

use super::{BenchCtx, Row, cpu_seconds, load_average, peak_rss_mib};
use crate::forward::bench::{Receiver, settings};
use crate::store::Store;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Target of the forwarding stage.
const TARGET_RECORDS_PER_SEC: f64 = 50_000.0;

/// Forwarding throughput: every record of the collect stage's store queued (a backfill),
/// then sent to the loopback TLS receiver until the outbox is empty and confirmed.
pub(super) fn stage_forward(ctx: &mut BenchCtx) -> Result<Row> {
    let data = ctx
        .data
        .clone()
        .context("the forward stage sends the collect stage's store")?;
    let recv = Receiver::start()?;
    let s = settings(recv.port, &ctx.dir.join("forward-certs"))?;
    let store = Store::open(&data, Arc::new(crate::detect::Detections::empty()))?;
    store.set_forwarding(true).wait()?;
    let start = Instant::now();
    let cpu0 = cpu_seconds();
    let load0 = load_average();
    let n = store
        .queue_backfill(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH)
        .wait()? as u64;
    let fwd = crate::forward::Forwarder::start(store.clone(), s)?;
    let left = fwd.drain(Duration::from_secs(600))?;
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let load = (load0 + load_average()) / 2.0;
    store.close()?;
    let got = recv.lines();
    if left > 0 || got < n {
        anyhow::bail!("forwarding did not finish: {left} rows left, {got} of {n} lines received");
    }
    let rate = n as f64 / secs;
    Ok(Row {
        stage: "forward".into(),
        records: n,
        seconds: secs,
        records_per_sec: rate,
        cpu_seconds: cpu,
        peak_rss_mib: peak_rss_mib(),
        disk_ratio: None,
        target: format!("≥ {TARGET_RECORDS_PER_SEC:.0} rec/s to a loopback TLS receiver"),
        pass: Some(rate >= TARGET_RECORDS_PER_SEC),
        note: format!(
            "outbox → syslog lines over mutual TLS on 127.0.0.1, confirmed by the closing handshake; {got} lines received (receiver in-process, its CPU included), load avg {load:.1}"
        ),
    })
}
