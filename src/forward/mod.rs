//! The Devo forwarder: drains the store's outbox to Devo — syslog over TLS (or plain TCP to
//! an in-house relay), or HTTP `/stream` — one line per record in the format Devo's own
//! collector sends (`line.rs`). It is the only module that talks to Devo; it never writes
//! SQL (the store's outbox methods do) and never sees the collector.
//!
//! Delivery is at least once (invariant 5). Syslog has no acknowledgement, so lines written
//! on a connection stay *unconfirmed* until the connection is closed with the closing
//! handshake (`syslog.rs`): the server answering our close with its own means it read every
//! byte before it. Only then are their outbox rows deleted. A write, connect or close that
//! fails drops the connection and every unconfirmed row is written again on the next one
//! (counted as resent). A connection is confirmed and closed after `confirm_secs` or
//! [`CONFIRM_MAX`] lines, and whenever the outbox runs empty, so no connection sits idle
//! or lives an hour (docs/devo.md, Syslog over TLS). HTTP mode deletes rows once their request got a 2xx.
//!
//! Runs on its own thread (blocking sockets; SQLite reads; no async worker is blocked);
//! its state (connection, last error, down since) goes to the store for `stats` and the UI.

pub mod bench;
mod http;
pub mod line;
mod syslog;
pub mod tls;

use crate::config::{DevoOutput, DevoTransport};
use crate::store::{OutboxItem, Store};
use anyhow::{Context, Result};
use chrono::Utc;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Unconfirmed lines on one connection before it is confirmed (closed) regardless of time.
pub const CONFIRM_MAX: usize = 100_000;
/// Plain bytes per gzip member in gzip mode (what Devo's collectors use).
const GZIP_MEMBER_BYTES: usize = 51_200;
/// How often an idle forwarder looks at the outbox again.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// The settings the forwarder runs with, resolved once (certificates loaded).
#[derive(Clone)]
pub struct Settings {
    pub devo: DevoOutput,
    pub hostname: String,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Settings {
    /// Resolves the hostname and loads the TLS material (errors name the file).
    pub fn new(devo: &DevoOutput, collector_id: &str) -> Result<Settings> {
        let tls = match &devo.transport {
            DevoTransport::Syslog { tls: Some(t), .. } => Some(tls::load(t, Utc::now())?.config),
            _ => None,
        };
        Ok(Settings {
            hostname: devo
                .hostname
                .clone()
                .unwrap_or_else(|| line::default_hostname(collector_id, &line::machine_hostname())),
            devo: devo.clone(),
            tls,
        })
    }
}

/// What `check` prints about `outputs.devo`: the target, the hostname and tag form, and
/// each certificate with its expiry. Fails with the file and what is wrong.
pub fn check(devo: &DevoOutput, collector_id: &str) -> Result<String> {
    let mut s = String::new();
    s.push_str(&format!("  devo target    {}\n", devo.describe()));
    let hostname = devo
        .hostname
        .clone()
        .unwrap_or_else(|| line::default_hostname(collector_id, &line::machine_hostname()));
    s.push_str(&format!(
        "  devo lines     <14>TIMESTAMP {hostname} {}<workload>: JSON\n",
        line::TAG_PREFIX
    ));
    if let DevoTransport::Syslog { tls: Some(t), .. } = &devo.transport {
        let m = tls::load(t, Utc::now()).map_err(|e| crate::UsageError(format!("{e:#}")))?;
        for l in m.summary {
            s.push_str(&format!("  devo tls       {l}\n"));
            if let Some(na) = m.cert_not_after
                && (na - Utc::now()).num_days() < 30
                && l.starts_with("client certificate")
            {
                s.push_str("  warning: the Devo client certificate expires within 30 days\n");
            }
        }
    }
    Ok(s)
}

struct Shared {
    stop: AtomicBool,
    drain: AtomicBool,
}

/// A running forwarder.
pub struct Forwarder {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    store: Store,
}

impl Forwarder {
    /// Switches the store's outbox on and starts draining it. Call on a plain thread (not
    /// an async worker) before anything is stored, so every new record is queued.
    pub fn start(store: Store, settings: Settings) -> Result<Forwarder> {
        store
            .set_forwarding(true)
            .wait()
            .context("switching the outbox on")?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            drain: AtomicBool::new(false),
        });
        let thread = {
            let (shared, store) = (shared.clone(), store.clone());
            std::thread::Builder::new()
                .name("devo-forward".into())
                .spawn(move || {
                    let mut w = Worker::new(store, settings, shared);
                    w.run();
                })
                .context("starting the forwarder thread")?
        };
        Ok(Forwarder {
            shared,
            thread: Some(thread),
            store,
        })
    }

    /// Stops at once (unconfirmed rows stay queued) and joins the thread.
    pub fn stop(mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Waits until the outbox is empty and confirmed, at most `timeout`; then stops.
    /// Returns the rows left.
    pub fn drain(mut self, timeout: Duration) -> Result<i64> {
        self.shared.drain.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        if let Some(t) = self.thread.take() {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            self.shared.stop.store(true, Ordering::SeqCst);
            let _ = t.join();
        }
        self.store.outbox_depth()
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits grow from 2 s, doubling, to at most 60 s (Devo's collectors do the same).
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_secs(2);
    const MAX: Duration = Duration::from_secs(60);
    fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }
    fn take(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        d
    }
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// What the forwarder reports to the store when it changes.
#[derive(Clone, PartialEq)]
struct State {
    connection: &'static str,
    last_error: Option<String>,
    down_since: Option<i64>,
}

pub(crate) struct Worker {
    store: Store,
    s: Settings,
    shared: Arc<Shared>,
    state: State,
    reported: Option<State>,
    backoff: Backoff,
}

/// Rows handled on the current connection but not yet confirmed.
#[derive(Default)]
struct Pending {
    sent: Vec<i64>,
    oversized: Vec<i64>,
    missing: Vec<i64>,
    since: Option<Instant>,
}

impl Pending {
    fn first_id(&self) -> Option<i64> {
        [&self.sent, &self.oversized, &self.missing]
            .iter()
            .filter_map(|v| v.first().copied())
            .min()
    }
    fn is_empty(&self) -> bool {
        self.sent.is_empty() && self.oversized.is_empty() && self.missing.is_empty()
    }
}

impl Worker {
    fn new(store: Store, s: Settings, shared: Arc<Shared>) -> Worker {
        Worker {
            store,
            s,
            shared,
            state: State {
                connection: "idle",
                last_error: None,
                down_since: None,
            },
            reported: None,
            backoff: Backoff::new(),
        }
    }

    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    fn draining(&self) -> bool {
        self.shared.drain.load(Ordering::SeqCst)
    }

    /// Sleeps `d`, waking early when asked to stop.
    fn pause(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stopping() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(25).min(end - Instant::now()));
        }
    }

    fn report(&mut self) {
        if self.reported.as_ref() == Some(&self.state) {
            return;
        }
        let target = self.s.devo.describe();
        let v = json!({
            "connection": self.state.connection,
            "last_error": self.state.last_error,
            "down_since": self.state.down_since,
            "alert_after_secs": self.s.devo.alert_after_secs,
            "target": target,
        });
        match self.store.set_forward_state(v).wait() {
            Ok(()) => self.reported = Some(self.state.clone()),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot record the forwarder state")
            }
        }
    }

    /// The receiver works again: the error and the outage are over.
    fn up(&mut self, connection: &'static str) {
        self.state.connection = connection;
        self.state.down_since = None;
        self.state.last_error = None;
        self.backoff.reset();
        self.report();
    }

    fn down(&mut self, connection: &'static str, err: &anyhow::Error) {
        let msg = format!("{err:#}");
        tracing::warn!(target = %self.s.devo.describe(), error = %msg, "devo receiver unavailable; records stay in the outbox");
        self.state.connection = connection;
        self.state.last_error = Some(msg);
        self.state.down_since.get_or_insert(Utc::now().timestamp());
        self.report();
    }

    fn bump_resent(&self, n: usize) {
        if n > 0
            && let Err(e) = self
                .store
                .bump_counter(crate::store::OUTBOX_RESENT, n as i64)
                .wait()
        {
            tracing::warn!(error = %format!("{e:#}"), "cannot count resent records");
        }
    }

    fn batch(&mut self, after: i64) -> Option<Vec<OutboxItem>> {
        match self.store.outbox_batch(after, self.s.devo.batch_records) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot read the outbox");
                self.pause(Backoff::FIRST);
                None
            }
        }
    }

    fn run(&mut self) {
        self.report();
        match self.s.devo.transport.clone() {
            DevoTransport::Syslog {
                host, port, gzip, ..
            } => {
                let ep = syslog::Endpoint {
                    host,
                    port,
                    tls: self.s.tls.clone(),
                };
                self.run_syslog(&ep, gzip)
            }
            DevoTransport::Http { .. } => http::run(self),
        }
        self.state.connection = "stopped";
        self.report();
    }

    fn run_syslog(&mut self, ep: &syslog::Endpoint, gzip: bool) {
        let mut conn: Option<syslog::Conn> = None;
        let mut pending = Pending::default();
        let mut after = 0i64;
        let max_json = self.s.devo.max_record_bytes as usize;
        let confirm_after = Duration::from_secs(self.s.devo.confirm_secs);
        let mut buf = Vec::with_capacity(1 << 20);
        loop {
            if self.stopping() {
                break;
            }
            let due = pending.since.is_some_and(|t| t.elapsed() >= confirm_after)
                || pending.sent.len() >= CONFIRM_MAX;
            let batch = if due {
                Vec::new()
            } else {
                match self.batch(after) {
                    Some(b) => b,
                    None => continue,
                }
            };
            if batch.is_empty() {
                if !pending.is_empty() {
                    let r = match conn.take() {
                        Some(c) => c.close(),
                        // lines of a lost connection: only oversized/missing rows are left
                        None => Ok(()),
                    };
                    match r {
                        Ok(()) => {
                            let p = std::mem::take(&mut pending);
                            if let Err(e) =
                                self.store.outbox_ack(p.sent, p.oversized, p.missing).wait()
                            {
                                tracing::error!(error = %format!("{e:#}"), "cannot delete confirmed outbox rows; they will be sent again");
                                after = 0;
                            }
                            self.up("idle");
                        }
                        Err(e) => {
                            after = self.resend(&mut pending);
                            self.down("down", &e.context("confirming (closing handshake)"));
                            let d = self.backoff.take();
                            self.pause(d);
                        }
                    }
                    continue;
                }
                if self.draining() {
                    break;
                }
                self.pause(IDLE_POLL);
                continue;
            }
            // connect, or notice that the server closed since the last write
            if let Some(c) = conn.as_mut()
                && c.peer_closed()
            {
                conn = None;
                after = self.resend(&mut pending);
                self.down("down", &anyhow::anyhow!("the server closed the connection"));
                continue;
            }
            if conn.is_none() {
                self.state.connection = "connecting";
                match syslog::Conn::open(ep) {
                    Ok(c) => {
                        conn = Some(c);
                        self.up("connected");
                    }
                    Err(e) => {
                        self.down("down", &e);
                        let d = self.backoff.take();
                        self.pause(d);
                        continue;
                    }
                }
            }
            let Some(c) = conn.as_mut() else { continue };
            buf.clear();
            let ts = line::timestamp(self.s.devo.timestamp, Utc::now());
            let mut ids = Vec::with_capacity(batch.len());
            let mut tag_cache: (String, String) = (String::new(), String::new());
            for item in &batch {
                let Some(raw) = &item.raw else {
                    pending.missing.push(item.id);
                    continue;
                };
                if tag_cache.0 != item.workload {
                    tag_cache = (item.workload.clone(), line::tag_for(&item.workload));
                }
                if line::push_line(&mut buf, &ts, &self.s.hostname, &tag_cache.1, raw, max_json) {
                    ids.push(item.id);
                } else {
                    tracing::warn!(
                        outbox_id = item.id,
                        bytes = raw.len(),
                        max = max_json,
                        "record larger than outputs.devo.max_record_bytes; counted as oversized, not sent"
                    );
                    pending.oversized.push(item.id);
                }
            }
            let written = if gzip {
                gzip_members(&buf).and_then(|z| c.write_all(&z))
            } else {
                c.write_all(&buf)
            };
            let last = batch.last().map(|b| b.id).unwrap_or(after);
            pending.sent.extend(ids);
            pending.since.get_or_insert_with(Instant::now);
            match written {
                Ok(()) => after = last,
                Err(e) => {
                    conn = None;
                    after = self.resend(&mut pending);
                    self.down("down", &e);
                    let d = self.backoff.take();
                    self.pause(d);
                }
            }
        }
        // Stopping: confirm what was written if the server still answers; otherwise
        // those rows stay queued and go again next time.
        if let Some(c) = conn
            && !pending.is_empty()
            && c.close().is_ok()
        {
            let _ = self
                .store
                .outbox_ack(pending.sent, pending.oversized, pending.missing)
                .wait();
        }
    }

    /// The connection is lost: everything unconfirmed goes again. Returns the id to read
    /// after.
    fn resend(&mut self, pending: &mut Pending) -> i64 {
        let after = pending.first_id().map(|i| i - 1).unwrap_or(0);
        self.bump_resent(pending.sent.len());
        *pending = Pending::default();
        after
    }
}

/// `buf` (whole lines) as gzip members of at most [`GZIP_MEMBER_BYTES`] plain bytes each,
/// cut at line ends.
fn gzip_members(buf: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write as _;
    let mut out = Vec::with_capacity(buf.len() / 4);
    let mut rest = buf;
    while !rest.is_empty() {
        let mut end = rest.len().min(GZIP_MEMBER_BYTES);
        if end < rest.len() {
            end = match memchr::memrchr(b'\n', &rest[..end]) {
                Some(i) => i + 1,
                // one line longer than a member: it goes whole
                None => memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1),
            };
        }
        let mut z = flate2::write::GzEncoder::new(&mut out, flate2::Compression::fast());
        z.write_all(&rest[..end])?;
        z.finish()?;
        rest = &rest[end..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_members_cut_at_line_ends_and_inflate_back() {
        let mut buf = Vec::new();
        for i in 0..5000 {
            buf.extend_from_slice(format!("<14>x h a.b: {{\"i\":{i}}}\n").as_bytes());
        }
        let z = gzip_members(&buf).expect("gzip");
        let mut d = flate2::read::MultiGzDecoder::new(&z[..]);
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut back).expect("inflate");
        assert_eq!(back, buf);
        assert!(z.len() < buf.len());
    }

    #[test]
    fn backoff_doubles_to_a_minute() {
        let mut b = Backoff::new();
        let waits: Vec<u64> = (0..7).map(|_| b.take().as_secs()).collect();
        assert_eq!(waits, vec![2, 4, 8, 16, 32, 60, 60]);
        b.reset();
        assert_eq!(b.take().as_secs(), 2);
    }
}
