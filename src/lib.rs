//! m365audit: a one-machine appliance that collects Microsoft 365 audit records from the
//! Office 365 Management Activity API, keeps them in SQLite with a tantivy full-text index,
//! runs detections written in jq, shows them in a local web UI and imports offline exports.
//!
//! # Layout
//!
//! ```text
//! model    ContentType, BlobRef, RecordHeader, table names, the defaults — plain data
//! config   Devo parameters template + appliance extensions; validation; secrets never in Debug
//! detect   load queries/*.jq, compile once, run per record; grouping; inactivity monitor
//! linq     Devo LINQ (the guide's subset) parsed and evaluated over records the caller hands in
//! store    the only owner of SQLite and tantivy: one writer thread, read-only connections
//! collect  auth (client credentials), api (Management Activity API), the per-content-type loop
//! import   offline files (JSON, JSONL, Purview CSV, .gz) → store, streaming
//! export   stored records → JSON lines / Purview CSV (the command and the UI's downloads)
//! forward  the Devo forwarder: outbox → syslog over TLS (or HTTP /stream), one line a record
//! ui       axum router, askama pages, security headers
//! simulate the practice tenant: a faithful Management API + token endpoint + control plane
//! app      the composition root: one file per command puts the pieces above together and
//!          runs them as a process (runtime, tracing, signals); the `bench` stages
//! cli      the command line (flags only) and its exit codes; dispatches to `app`
//! alloc    how long freed pages are kept, bytes allocated per thread (the binary registers both)
//! corpus   deterministic synthetic records for benchmarks and tests
//! ```
//!
//! Arrows point one way:
//! `model/config ← detect/linq ← store ← collect/import/forward/ui ← app ← cli/main`.
//! `ui` never imports `collect` or `simulate`; `simulate` shares `model` only; no module
//! but `main` imports `cli`. `tests/import_rules.rs` holds the table of allowed imports
//! and fails on any other (`linq` and `forward` have their rows before they exist).
//!
//! # Data flow
//!
//! ```text
//! collect: cursor[ct] → window [start,end) ≤ 24 h, ≥ now−7 d, re-listing an overlap
//!   → pages (NextPageUri followed verbatim, host pinned) → blob refs
//!   → store TX1: INSERT OR IGNORE blobs(pending) + advance cursor
//!   → fetch pending blobs (bounded concurrency, rate budget, retries)
//!   → store TX2: records (INSERT OR IGNORE by tenant+Id) + hits + outbox rows + blob done
//!   → tantivy catches up from SQLite (commit payload = highest indexed rowid)
//! forward: outbox rows in id order → lines `<14>TS HOST TAG: JSON` → Devo
//!   → confirmed (closing handshake / HTTP 2xx) → rows deleted
//! ```
//!
//! # Invariants
//!
//! 1. A blob is `done` in the same transaction that stores its records, hits and outbox
//!    rows. After any crash a blob is either fully stored or still pending.
//! 2. Records are unique per (tenant, Id). Re-listing, re-fetching or the API's own
//!    duplicates never create a second row; duplicates dropped are counted.
//! 3. A cursor only moves forward, and never past a window whose listing failed.
//! 4. The tantivy index is never ahead of SQLite and can be deleted and rebuilt at any time.
//! 5. An outbox row is deleted only after the receiver accepted it (at-least-once): for
//!    syslog, once the connection it was written on closed with the closing handshake;
//!    for HTTP, once its request got a 2xx. A crash, an outage or a refused certificate
//!    leaves the row queued and it is sent again (Devo does not deduplicate; the record's
//!    `Id` lets an analyst do it).
//! 6. No silent loss: an expired blob, a blob that failed N times, a window clamped by the
//!    7-day limit — each is a row in the loss ledger, shown in `stats` and in the UI.
//! 7. Secrets (client secret, tokens, Devo key, HTTP token) never appear in logs, the UI,
//!    `stats`, error messages or panics; a bearer token is never sent to a host other than
//!    the configured API host.
//! 8. Blocking work (SQLite, tantivy, jaq) never runs on the async runtime's worker threads.
//!
//! Each invariant is guarded by a test named after it (`invariant_N_…`).

#![forbid(unsafe_code)]

pub mod alloc;
pub mod app;
pub mod cli;
pub mod collect;
pub mod config;
pub mod corpus;
pub mod detect;
pub mod export;
pub mod forward;
pub mod import;
pub mod linq;
pub mod model;
pub mod simulate;
pub mod store;
pub mod ui;

/// An error caused by the user's input (bad flags, bad config, bad query): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A part of the data directory is missing or unusable and the message says how to get it
/// back (e.g. a deleted search index): not the user's input (exit 1), but not our bug
/// either, so the UI shows it (503) instead of "Something went wrong".
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// Installs the process-wide rustls crypto provider (ring). reqwest panics when building a
/// client without one, so every entry point calls this first; repeated calls are harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
