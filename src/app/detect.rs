//! `detect` and `query`: detections and ad-hoc jq re-run over a stored data directory,
//! read-only. Here the store's record scan is handed to the detection engine: headers
//! first, the raw JSON only for candidates, decompressed on the engine's workers.

use crate::detect::command::SourceRecord;
use crate::store::Store;
use anyhow::Result;
use std::path::Path;

/// `$collector_id` as the collector that filled this store knew it ("" before any
/// collector ran: an import-only store), for detections re-run over stored records.
fn stored_vars(store: &Store) -> Result<crate::detect::Vars> {
    Ok(crate::detect::Vars {
        collector_id: store.collector_id()?.unwrap_or_default(),
        ..crate::detect::Vars::default()
    })
}

/// `m365audit detect [--data DIR] [--detection NAME] [--format table|json|csv]`.
pub fn detect(data: &Path, detection: Option<&str>, format: &str) -> Result<()> {
    let store = Store::open_read_only(data)?;
    // headers first, raw JSON only for candidates, decompressed on the workers
    let make = store.unpackers()?;
    crate::detect::command::detect_command_lazy(
        stored_vars(&store)?,
        detection,
        format,
        Some(&make),
        &mut |f| {
            store.for_each_candidate(crate::model::TABLE_ALL, 0, |row, raw| {
                f(
                    &SourceRecord {
                        header: row.header,
                        content_type: row.content_type,
                        ingested_at: row.ingested_at,
                    },
                    raw,
                )
            })
        },
    )
}

/// `m365audit query [--data DIR] [--table T] [--timeout SECS] JQ`: JSON lines out, the
/// whole run bounded by `timeout`.
pub fn query(data: &Path, table: &str, timeout: std::time::Duration, jq: &str) -> Result<()> {
    let store = Store::open_read_only(data)?;
    crate::detect::command::query_command(stored_vars(&store)?, jq, timeout, &mut |f| {
        store.for_each_record(table, 0, |r| {
            Ok(f(
                &SourceRecord {
                    header: &r.header,
                    content_type: r.content_type,
                    ingested_at: r.ingested_at,
                },
                r.raw.as_bytes(),
            ))
        })
    })
}
