//! Stage `detect`: every detection over the collect stage's store as `m365audit detect`
//! reads it, compared with the real `jq`.

use super::{BenchCtx, Row, cpu_seconds, load_average, peak_rss_mib};
use crate::store::Store;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Instant;

/// Detections over the store the collect stage filled, as `m365audit detect` runs them
/// (header columns → prefilter → parse candidates → jaq, on every core); then the real `jq`
/// running the same detection files over a sample of the same records, scaled.
pub(super) fn stage_detect(ctx: &mut BenchCtx) -> Result<Row> {
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
    // the same queries run trusting their hand-written `# fields` / `# contains` lines, as
    // the engine did before it worked out what each one reads: the two rates side by side
    let claimed = Detections::load_embedded(Vars::default()).trusting_claims();
    let mut sample = Vec::new();
    store.for_each_record(crate::model::TABLE_ALL, 0, |r| {
        sample.push(r.raw);
        Ok(sample.len() < 20_000)
    })?;
    let _hold = crate::alloc::hold_freed_pages(crate::alloc::DETECT_HOLD);
    let make = store.unpackers()?;
    let run = |detections: &Detections| -> Result<(f64, f64, f64, crate::detect::Report)> {
        let cpu0 = cpu_seconds();
        let load0 = load_average();
        let start = Instant::now();
        // as `detect` reads the store: header columns for every record; the raw JSON of the
        // candidates only, decompressed on the worker threads beside evaluation (the
        // scanning thread was the bottleneck when it decompressed)
        let (scanned, report) = Grouper::stream_with(detections, Some(&make), |g| {
            store.for_each_candidate(crate::model::TABLE_ALL, 0, |row, raw| {
                g.add_packed(row.header, raw.packed())?;
                Ok(true)
            })
        });
        scanned?;
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        let cpu = cpu_seconds() - cpu0;
        let load = (load0 + load_average()) / 2.0;
        Ok((secs, cpu, load, report))
    };
    // one pass to warm the page cache (not counted), then alternating, three times each, so
    // that neither gets the warmer cache or the quieter minute; the medians are compared
    run(&detections)?;
    let mut derived = Vec::new();
    let mut hand = Vec::new();
    // CPU seconds too: on a busy machine wall time swings with the neighbours, CPU time less
    let (mut derived_cpu, mut hand_cpu) = (Vec::new(), Vec::new());
    let mut first = None;
    let mut claimed_report = None;
    for _ in 0..3 {
        let (secs, cpu, load, report) = run(&detections)?;
        derived.push(secs);
        derived_cpu.push(cpu);
        first.get_or_insert((cpu, load, report));
        let (c, c_cpu, _, r) = run(&claimed)?;
        hand.push(c);
        hand_cpu.push(c_cpu);
        claimed_report.get_or_insert(r);
    }
    let (cpu, load, report) = first.context("no detect run")?;
    let claimed_report = claimed_report.context("no detect run")?;
    let n = report.records;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let secs = median(&mut derived);
    let rate = n as f64 / secs;
    let hand_rate = n as f64 / median(&mut hand);
    let each = |v: &[f64]| {
        v.iter()
            .map(|s| format!("{:.0}", n as f64 / s))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cpu_rate = n as f64 / median(&mut derived_cpu).max(1e-9);
    let hand_cpu_rate = n as f64 / median(&mut hand_cpu).max(1e-9);
    let versus = format!(
        "derived fields and words: median {rate:.0} rec/s ({}); hand-written # fields/# contains trusted: median {hand_rate:.0} rec/s ({}); derived/hand-written {:.0} % ({} parsed, {} served by the memo with the hand-written lines); per CPU second: derived median {cpu_rate:.0} rec/cpu-s ({}), hand-written {hand_cpu_rate:.0} rec/cpu-s ({}), {:.0} %",
        each(&derived),
        each(&hand),
        100.0 * rate / hand_rate,
        claimed_report.parsed,
        claimed_report.memo_hits,
        each(&derived_cpu),
        each(&hand_cpu),
        100.0 * cpu_rate / hand_cpu_rate
    );
    let jq = crate::detect::measure::time_real_jq(&sample, &ctx.dir)?;
    let counts = format!(
        "{} detections, {} candidates ({} parsed, {} detection runs served by the memo)",
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
    // where the two differ, per detection: which derivation admits or runs more
    let ids = detections.metas();
    let apart: Vec<String> = ids
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let get = |v: &[u64]| v.get(i).copied().unwrap_or(0);
            let (a, ha) = (get(&report.admitted), get(&claimed_report.admitted));
            let (r, hr) = (get(&report.runs), get(&claimed_report.runs));
            (a != ha || r != hr).then(|| format!("{} admitted {a}/{ha}, jq runs {r}/{hr}", m.id))
        })
        .collect();
    let apart = if apart.is_empty() {
        "every detection admits and runs the same records either way".to_string()
    } else {
        format!("derived/hand-written per detection: {}", apart.join("; "))
    };
    let note = format!("{note}; {versus}; {apart}");
    // A store of a million records or more is what `detect` must get through fastest: the
    // speed work asks 300,000 rec/s there (median of the three runs).
    let min_rate = if ctx.records >= 1_000_000 {
        300_000.0
    } else {
        200_000.0
    };
    Ok(Row {
        stage: "detect".into(),
        records: n,
        seconds: secs,
        cpu_seconds: cpu,
        records_per_sec: rate,
        peak_rss_mib: peak_rss_mib(),
        disk_ratio: None,
        target: format!("≥ {min_rate:.0} rec/s, ≥ 10× jq"),
        pass: Some(rate >= min_rate),
        note,
    })
}
