//! `bench_serve`: how fast the practice tenant serves blob content over HTTP to a local
//! client (records/s), so collector benchmarks can show the simulator is never their
//! bottleneck. Printed by `m365audit bench`; never a timed test.

use super::{SimOptions, Simulator};
use anyhow::Context as _;
use futures_util::StreamExt as _;
use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub records: u64,
    pub blobs: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub records_per_sec: f64,
    pub mib_per_sec: f64,
}

/// Counts the records of a blob served by the practice tenant (each starts with
/// `{"CreationTime"`), at memory speed.
fn count_generated(b: &[u8]) -> u64 {
    match std::str::from_utf8(b) {
        Ok(s) => s.matches("{\"CreationTime\"").count() as u64,
        Err(_) => count_records(b),
    }
}

/// Renders `records` records of the default mix without HTTP: the generator's own speed.
pub fn bench_generate(records: u64) -> BenchReport {
    let per_day = (records.max(1000) as f64 * 24.0 / 22.5) as u64;
    let now = chrono::Utc::now();
    let anchor = super::anchor_of(now);
    let tenant = std::sync::Arc::new(super::tenant::Tenant::generate(1, per_day));
    let feed = super::feed::Feed::new(
        1,
        tenant,
        anchor,
        super::feed::FeedShape {
            days: 1,
            records_per_day: per_day,
            slot_secs: 600,
            late: true,
            dups: true,
        },
    );
    let t0 = Instant::now();
    let (mut recs, mut bytes, mut blobs) = (0u64, 0u64, 0u64);
    for ci in 0..5 {
        for m in feed.blobs_between(ci, feed.h0, now) {
            blobs += 1;
            for r in feed.records(&m) {
                recs += 1;
                bytes += r.1.len() as u64;
            }
        }
    }
    let seconds = t0.elapsed().as_secs_f64().max(1e-9);
    BenchReport {
        records: recs,
        blobs,
        bytes,
        seconds,
        records_per_sec: recs as f64 / seconds,
        mib_per_sec: bytes as f64 / seconds / 1_048_576.0,
    }
}

/// Counts the top-level objects of a JSON array without parsing it.
fn count_records(b: &[u8]) -> u64 {
    let (mut depth, mut in_str, mut esc, mut n) = (0i32, false, false, 0u64);
    for &c in b {
        if in_str {
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'{' | b'[' => {
                if c == b'{' && depth == 1 {
                    n += 1;
                }
                depth += 1;
            }
            b'}' | b']' => depth -= 1,
            _ => {}
        }
    }
    n
}

/// Starts a practice tenant holding about `records` records of the last day, lists every
/// blob, then fetches them all (8 in flight) and measures the fetch phase.
pub async fn bench_serve(records: u64) -> anyhow::Result<BenchReport> {
    crate::install_crypto_provider();
    let per_day = (records.max(1000) as f64 * 24.0 / 22.5) as u64;
    let sim = Simulator::start(SimOptions {
        days: 1,
        records_per_day: per_day,
        start_frozen: true,
        page_size: 1000,
        ..SimOptions::default()
    })
    .await?;
    let client = reqwest::Client::builder()
        .build()
        .context("building the bench client")?;
    let tok: serde_json::Value = client
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            sim.login_url, sim.tenant_id
        ))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &sim.client_id)
                .append_pair("client_secret", &sim.client_secret)
                .append_pair("scope", "https://manage.office.com/.default")
                .finish(),
        )
        .send()
        .await?
        .json()
        .await?;
    let bearer = format!(
        "Bearer {}",
        tok["access_token"].as_str().unwrap_or_default()
    );
    let feed = format!("{}/api/v1.0/{}/activity/feed", sim.api_url, sim.tenant_id);
    let now = sim.now();
    let start = crate::model::format_api_time(
        now - chrono::Duration::hours(24) + chrono::Duration::minutes(1),
    );
    let end = crate::model::format_api_time(now + chrono::Duration::seconds(1));
    let mut uris = Vec::new();
    for ct in crate::model::ContentType::ALL {
        client
            .post(format!(
                "{feed}/subscriptions/start?contentType={ct}&PublisherIdentifier={}",
                sim.tenant_id
            ))
            .header("Authorization", &bearer)
            .send()
            .await?;
        let mut url = Some(format!(
            "{feed}/subscriptions/content?contentType={ct}&startTime={start}&endTime={end}&PublisherIdentifier={}",
            sim.tenant_id
        ));
        while let Some(u) = url.take() {
            let resp = client
                .get(&u)
                .header("Authorization", &bearer)
                .send()
                .await?;
            url = resp
                .headers()
                .get("NextPageUri")
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            let v: Vec<serde_json::Value> = resp.json().await?;
            uris.extend(
                v.into_iter()
                    .filter_map(|b| b["contentUri"].as_str().map(String::from)),
            );
        }
    }
    let t0 = Instant::now();
    let results: Vec<anyhow::Result<(u64, u64)>> =
        futures_util::stream::iter(uris.iter().map(|u| {
            let client = client.clone();
            let bearer = bearer.clone();
            async move {
                let b = client
                    .get(u)
                    .header("Authorization", bearer)
                    .send()
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await?;
                Ok::<_, anyhow::Error>((count_generated(&b), b.len() as u64))
            }
        }))
        .buffer_unordered(8)
        .collect()
        .await;
    let seconds = t0.elapsed().as_secs_f64().max(1e-9);
    let (mut recs, mut bytes) = (0, 0);
    for r in results {
        let (n, b) = r?;
        recs += n;
        bytes += b;
    }
    sim.shutdown().await;
    Ok(BenchReport {
        records: recs,
        blobs: uris.len() as u64,
        bytes,
        seconds,
        records_per_sec: recs as f64 / seconds,
        mib_per_sec: bytes as f64 / seconds / 1_048_576.0,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_top_level_objects() {
        assert_eq!(super::count_records(br#"[{"a":{"b":"}{"}},{"c":[{}]}]"#), 2);
        assert_eq!(super::count_records(b"[]"), 0);
        assert_eq!(
            super::count_generated(br#"[{"CreationTime":"x","A":{}},{"CreationTime":"y"}]"#),
            2
        );
    }
}
