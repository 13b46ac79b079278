//! One count per detection on every surface: `stats --json`, `/metrics`, the dashboard and
//! `detect --format json` over the same store collected from the practice tenant. A
//! threshold detection counts its hits inside bursts everywhere, never its raw hits. And
//! `serve`, which has no config, shows the collector id and tenant the collector stored.

mod collect_common;
mod support;

use collect_common::{BIN, Proc, Sim, collect_once, run, setup, stats_json, text};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

use std::path::Path;
use std::process::{Command, Stdio};

/// Starts `m365audit serve` over `data` and returns it with the URL of its `open` line.
fn serve(data: &Path) -> (Proc, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("M365AUDIT_LOG", "warn")
        .env_remove("M365AUDIT_UI_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting m365audit serve");
    let stdout = child.stdout.take().expect("stdout");
    let proc = Proc(child);
    let url = support::ui_url::first_line_url(stdout);
    (proc, url)
}

/// `m365audit_hits_total{detection="ID"} N` lines.
fn metrics_counts(body: &str) -> BTreeMap<String, u64> {
    body.lines()
        .filter_map(|l| l.strip_prefix("m365audit_hits_total{detection=\""))
        .map(|rest| {
            let (id, n) = rest.split_once("\"} ").expect("a metrics sample");
            (id.to_string(), n.trim().parse().expect("a count"))
        })
        .collect()
}

/// The dashboard's rows: `data-detection="ID"` … `<td class="num hits">N</td>`.
fn dashboard_counts(html: &str) -> BTreeMap<String, u64> {
    html.split("data-detection=\"")
        .skip(1)
        .map(|row| {
            let (id, rest) = row.split_once('"').expect("a detection id");
            let n = rest
                .split_once("class=\"num hits\">")
                .and_then(|(_, r)| r.split_once('<'))
                .map(|(n, _)| n.trim())
                .unwrap_or_else(|| panic!("no hits cell in the row of {id}"));
            (id.to_string(), n.parse().expect("a count"))
        })
        .collect()
}

#[test]
fn every_surface_gives_the_same_count_per_detection() {
    let sim = Sim::start(&["--seed", "1"]);
    let s = setup(&sim, json!({}));
    let o = collect_once(&s, &[]);
    assert!(o.status.success(), "collect: {}", text(&o.stderr));
    let tenant = sim.ready["tenant_id"].as_str().unwrap().to_string();
    drop(sim);
    let data = s.data.to_str().unwrap();

    let stats: BTreeMap<String, u64> = stats_json(&s.data)["hits"]
        .as_object()
        .expect("stats --json has hits")
        .iter()
        .map(|(d, n)| (d.clone(), n.as_u64().expect("a count")))
        .collect();

    let o = run(&["detect", "--format", "json", "--data", data]);
    assert!(o.status.success(), "detect: {}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("detect JSON");
    let detect: BTreeMap<String, u64> = v["detections"]
        .as_array()
        .expect("detections")
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().to_string(),
                d["hits"].as_u64().unwrap(),
            )
        })
        .collect();

    let (_serve, url) = serve(&s.data);
    let base = url.trim_end_matches('/');
    let http = collect_common::Http::new();
    let (code, body) = http.get(&format!("{base}/metrics"));
    assert_eq!(code, 200, "{body}");
    let metrics = metrics_counts(&body);
    let (code, html) = http.get(&format!("{base}/"));
    assert_eq!(code, 200, "{html}");
    let dashboard = dashboard_counts(&html);
    // `serve` has no config: it names the collector id and tenant the collector stored.
    let (code, status) = http.get(&format!("{base}/status"));
    assert_eq!(code, 200, "{status}");
    assert!(
        status.contains("12345") && status.contains(&tenant),
        "the status page names neither collector 12345 nor tenant {tenant}"
    );

    let surfaces = [
        ("stats --json", &stats),
        ("detect --format json", &detect),
        ("/metrics", &metrics),
        ("dashboard", &dashboard),
    ];
    let ids: BTreeSet<&String> = surfaces.iter().flat_map(|(_, m)| m.keys()).collect();
    let fired: Vec<&&String> = ids
        .iter()
        .filter(|d| detect.get(**d).copied().unwrap_or(0) > 0)
        .collect();
    // Threshold rules among them (the practice tenant plants brute force, spray and mass
    // download), so the comparison covers the rules whose raw hits are no alerts.
    for planted in ["brute_force_user", "password_spray", "mass_download"] {
        assert!(
            detect.get(planted).copied().unwrap_or(0) > 0,
            "the practice tenant should fire {planted}: {detect:?}"
        );
    }
    assert!(fired.len() >= 5, "too few detections fired: {detect:?}");
    let mut differ = Vec::new();
    for id in ids {
        let counts: Vec<(&str, u64)> = surfaces
            .iter()
            .map(|(name, m)| (*name, m.get(id).copied().unwrap_or(0)))
            .collect();
        if counts.iter().any(|(_, n)| *n != counts[0].1) {
            differ.push(format!("{id}: {counts:?}"));
        }
    }
    assert!(
        differ.is_empty(),
        "counts differ between surfaces:\n{}",
        differ.join("\n")
    );
}
