//! Measurement of re-running the detections over records, and of the real `jq` doing the
//! same work (for `m365audit bench`): plain numbers, no assertions. Writes only under the
//! temp directory it is given; runs `jq` only when it is installed.

use super::{Detections, Grouper, Vars};
use crate::model::RecordHeader;
use anyhow::Context as _;
use serde::Serialize;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// What [`measure`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub records: u64,
    /// Records the prefilter handed to jaq.
    pub candidates: u64,
    pub detections: usize,
    pub seconds: f64,
    pub records_per_sec: f64,
    /// Records the real jq was timed on (a prefix of the input), and its time scaled to all.
    pub jq_records: u64,
    pub jq_seconds_scaled: Option<f64>,
    /// jq time / jaq time for the same records and detections (None without jq).
    pub speedup_vs_jq: Option<f64>,
    pub note: String,
}

/// Re-runs every embedded detection over `raws` (one raw record per string) the way
/// `detect` does — headers known, prefilter, parse only candidates — and times the real `jq`
/// running the same detection files over the first `jq_sample` records (every record, no
/// prefilter: that is what a jq pipeline does).
pub fn measure(raws: &[String], jq_sample: usize, tmp: &Path) -> anyhow::Result<Measurement> {
    let detections = Detections::load_embedded(Vars::default());
    let headers: Vec<RecordHeader> = raws
        .iter()
        .map(|r| {
            let v: serde_json::Value =
                serde_json::from_str(r).context("bench record is not JSON")?;
            RecordHeader::from_value(&v).context("bench record has no header")
        })
        .collect::<anyhow::Result<_>>()?;
    let t = Instant::now();
    let mut g = Grouper::new(&detections);
    for (h, raw) in headers.iter().zip(raws) {
        g.add_record(h, raw.as_bytes());
    }
    let report = g.finish();
    let seconds = t.elapsed().as_secs_f64().max(1e-9);
    let n = raws.len() as u64;
    let mut m = Measurement {
        records: n,
        candidates: report.candidates,
        detections: detections.len(),
        seconds,
        records_per_sec: n as f64 / seconds,
        jq_records: 0,
        jq_seconds_scaled: None,
        speedup_vs_jq: None,
        note: String::new(),
    };
    let sample = &raws[..jq_sample.min(raws.len())];
    if sample.is_empty() {
        return Ok(m);
    }
    match time_real_jq(sample, tmp) {
        Ok(Some(jq_secs)) => {
            let scaled = jq_secs * n as f64 / sample.len() as f64;
            m.jq_records = sample.len() as u64;
            m.jq_seconds_scaled = Some(scaled);
            m.speedup_vs_jq = Some(scaled / seconds);
        }
        Ok(None) => m.note = "jq not installed: no comparison".into(),
        Err(e) => m.note = format!("jq comparison failed: {e:#}"),
    }
    Ok(m)
}

/// Wall time of the real jq running every embedded detection file over `sample` (None when
/// jq is not installed).
pub fn time_real_jq(sample: &[String], tmp: &Path) -> anyhow::Result<Option<f64>> {
    if Command::new("jq")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        return Ok(None);
    }
    let dir = tmp.join("jq-queries");
    std::fs::create_dir_all(dir.join("lib"))
        .with_context(|| format!("creating {}", dir.display()))?;
    for (f, code) in super::embedded::EMBEDDED_LIBS {
        std::fs::write(dir.join("lib").join(f), code)?;
    }
    let input = tmp.join("jq-records.jsonl");
    std::fs::write(&input, sample.join("\n"))?;
    let mut total = 0.0;
    for (f, code) in super::embedded::EMBEDDED_QUERIES {
        let q = dir.join(f);
        std::fs::write(&q, code)?;
        let t = Instant::now();
        let status = Command::new("jq")
            .args(["-c", "-L"])
            .arg(dir.join("lib"))
            .args(["--arg", "collector_id", "", "--arg", "tenant_id", "", "-f"])
            .arg(&q)
            .arg(&input)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running jq")?;
        total += t.elapsed().as_secs_f64();
        if !status.success() {
            anyhow::bail!("jq failed on {f}");
        }
    }
    Ok(Some(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_and_compares_when_jq_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let raws = crate::corpus::synthetic_records(200, 3);
        let m = measure(&raws, 50, dir.path()).unwrap();
        assert!(
            m.note.is_empty() || m.note.starts_with("jq not installed"),
            "{}",
            m.note
        );
        assert_eq!(m.records, 200);
        assert!(m.candidates > 0 && m.candidates <= 200);
        assert!(m.detections >= 30);
        if m.note.is_empty() {
            assert_eq!(m.jq_records, 50);
            assert!(m.speedup_vs_jq.is_some());
        }
    }
}
