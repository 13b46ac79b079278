//! HTTP mode: `POST {endpoint}/stream/{domain}/token!{token}/{hostname}/{tag}` with a gzip
//! body of LF-terminated lines (docs/devo.md, HTTP ingestion). One tag per request, bodies at most
//! 32 MB before compression. A 2xx means received: those rows are deleted. 429 and 5xx
//! (and network errors) are retried with backoff; 413 splits the request in halves (one
//! record alone that is refused counts as oversized); any other 4xx is a configuration
//! error (token, domain, tables): it is shown, the rows stay queued and the request is
//! tried again with backoff. The URL holds the token, so no error or log
//! line carries it.

use super::{Worker, line};
use crate::config::{DevoTransport, HTTP_MAX_BODY};
use anyhow::{Result, anyhow};
use chrono::Utc;
use std::io::Write as _;
use std::time::Duration;

/// One request's rows and lines.
struct Chunk {
    ids: Vec<i64>,
    body: Vec<u8>,
}

enum Outcome {
    Accepted,
    /// 413: split and try the halves.
    TooLarge,
    /// Retry after a wait (429, 5xx, network).
    Retry(anyhow::Error),
    /// 4xx: the settings are wrong; retry only after the longest wait.
    Config(anyhow::Error),
}

pub(super) fn run(w: &mut Worker) {
    let DevoTransport::Http {
        endpoint,
        domain,
        token,
    } = w.s.devo.transport.clone()
    else {
        return;
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            w.down("stopped", &anyhow!("cannot start the HTTP runtime: {e}"));
            return;
        }
    };
    crate::install_crypto_provider();
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .user_agent(concat!("m365audit/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            w.down(
                "stopped",
                &anyhow!("building the HTTP client: {}", e.without_url()),
            );
            return;
        }
    };
    let base = format!(
        "{}/stream/{domain}/token!{}/{}/",
        endpoint.trim_end_matches('/'),
        token.expose(),
        w.s.hostname
    );
    let max_json = w.s.devo.max_record_bytes as usize;
    let max_body = (HTTP_MAX_BODY as usize).min(32 * 1000 * 1000);
    let mut after = 0i64;
    loop {
        if w.stopping() {
            break;
        }
        let Some(batch) = w.batch(after) else {
            continue;
        };
        if batch.is_empty() {
            if w.draining() {
                break;
            }
            w.pause(super::IDLE_POLL);
            continue;
        }
        let last = batch.last().map(|b| b.id).unwrap_or(after);
        // group by tag, keeping each tag's order
        let ts = line::timestamp(w.s.devo.timestamp, Utc::now());
        let mut groups: Vec<(String, Vec<Chunk>)> = Vec::new();
        let (mut oversized, mut missing) = (Vec::new(), Vec::new());
        for item in &batch {
            let Some(raw) = &item.raw else {
                missing.push(item.id);
                continue;
            };
            let tag = line::tag_for(&item.workload);
            let gi = match groups.iter().position(|(t, _)| *t == tag) {
                Some(i) => i,
                None => {
                    groups.push((
                        tag.clone(),
                        vec![Chunk {
                            ids: Vec::new(),
                            body: Vec::new(),
                        }],
                    ));
                    groups.len() - 1
                }
            };
            let chunks = &mut groups[gi].1;
            let mut l = Vec::new();
            if !line::push_line(&mut l, &ts, &w.s.hostname, &tag, raw, max_json) {
                oversized.push(item.id);
                continue;
            }
            if let Some(c) = chunks.last_mut()
                && c.body.len() + l.len() > max_body
                && !c.ids.is_empty()
            {
                chunks.push(Chunk {
                    ids: Vec::new(),
                    body: Vec::new(),
                });
            }
            if let Some(c) = chunks.last_mut() {
                c.ids.push(item.id);
                c.body.extend_from_slice(&l);
            }
        }
        if (!oversized.is_empty() || !missing.is_empty())
            && let Err(e) = w.store.outbox_ack(Vec::new(), oversized, missing).wait()
        {
            tracing::warn!(error = %format!("{e:#}"), "cannot drop oversized outbox rows");
        }
        let mut done = true;
        'groups: for (tag, chunks) in groups {
            let url = format!("{base}{tag}");
            let mut queue: Vec<Chunk> = chunks.into_iter().rev().collect();
            while let Some(chunk) = queue.pop() {
                let mut tries = 0usize;
                loop {
                    if w.stopping() {
                        done = false;
                        break 'groups;
                    }
                    w.state.connection = "connecting";
                    let outcome = rt.block_on(post(&client, &url, &chunk.body));
                    match outcome {
                        Outcome::Accepted => {
                            if tries > 0 {
                                w.bump_resent(chunk.ids.len() * tries);
                            }
                            if let Err(e) = w
                                .store
                                .outbox_ack(chunk.ids.clone(), Vec::new(), Vec::new())
                                .wait()
                            {
                                tracing::error!(error = %format!("{e:#}"), "cannot delete accepted outbox rows; they will be sent again");
                            }
                            w.up("connected");
                            break;
                        }
                        Outcome::TooLarge if chunk.ids.len() > 1 => {
                            let (a, b) = split(chunk);
                            queue.push(b);
                            queue.push(a);
                            break;
                        }
                        Outcome::TooLarge => {
                            tracing::warn!(
                                outbox_id = chunk.ids[0],
                                "Devo refused one record as too large (413); counted as oversized"
                            );
                            let _ = w
                                .store
                                .outbox_ack(Vec::new(), chunk.ids.clone(), Vec::new())
                                .wait();
                            break;
                        }
                        Outcome::Retry(e) => {
                            tries += 1;
                            w.down("down", &e);
                            let d = w.backoff.take();
                            w.pause(d);
                        }
                        Outcome::Config(e) => {
                            tries += 1;
                            w.down("config_error", &e);
                            let d = w.backoff.take();
                            w.pause(d);
                        }
                    }
                }
            }
        }
        if done {
            after = last;
            w.up("idle");
        } else {
            break;
        }
    }
}

/// Halves a chunk at a line end.
fn split(c: Chunk) -> (Chunk, Chunk) {
    let half = c.ids.len() / 2;
    let mut cut = 0;
    for _ in 0..half {
        cut += memchr::memchr(b'\n', &c.body[cut..]).map_or(0, |i| i + 1);
    }
    (
        Chunk {
            ids: c.ids[..half].to_vec(),
            body: c.body[..cut].to_vec(),
        },
        Chunk {
            ids: c.ids[half..].to_vec(),
            body: c.body[cut..].to_vec(),
        },
    )
}

fn gzip(body: &[u8]) -> Result<Vec<u8>> {
    let mut z = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    z.write_all(body)?;
    Ok(z.finish()?)
}

async fn post(client: &reqwest::Client, url: &str, body: &[u8]) -> Outcome {
    let z = match gzip(body) {
        Ok(z) => z,
        Err(e) => return Outcome::Retry(anyhow!("gzip: {e}")),
    };
    let r = client
        .post(url)
        .header("Content-Encoding", "gzip")
        .header("Content-Type", "text/plain")
        .body(z)
        .send()
        .await;
    match r {
        Err(e) => Outcome::Retry(anyhow!("HTTP request failed: {}", e.without_url())),
        Ok(resp) => {
            let st = resp.status();
            if st.is_success() {
                Outcome::Accepted
            } else if st.as_u16() == 413 {
                Outcome::TooLarge
            } else if st.as_u16() == 429 || st.is_server_error() {
                Outcome::Retry(anyhow!("Devo answered HTTP {st}; retrying"))
            } else {
                Outcome::Config(anyhow!(
                    "Devo answered HTTP {st}: a configuration error (check outputs.devo.domain, token and the tables the token allows); records stay queued"
                ))
            }
        }
    }
}
