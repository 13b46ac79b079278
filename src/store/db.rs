//! SQLite: opening (pragmas, migrations), the compression of raw records and the read
//! queries. The write statements live in `writer.rs`; nothing outside `store` writes SQL.
//!
//! Migrations are `migrations/NNNN_verb_noun.sql`, embedded at compile time and applied in
//! order, each in its own transaction together with `PRAGMA user_version = N`.

use crate::model::{ContentType, RecordHeader};
use anyhow::{Context, Result, bail};
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A stream's lag as of now, not as of its last update: the stored lag plus the time since
/// (a stopped or stuck collector falls behind while nothing rewrites the row).
pub(crate) const LAG_TO_NOW: &str =
    "lag_secs + max(0, CAST(strftime('%s', 'now') AS INTEGER) - updated_at)";

/// The id of the detection whose name is the SQL parameter `param` (hits refer to
/// detections and group keys by id: migration 0008). A constant subquery: SQLite runs it
/// once per statement.
pub(crate) fn detection_id(param: &str) -> String {
    format!("(SELECT id FROM hit_detections WHERE name = {param})")
}

/// The id of the group key `key` of the detection named `detection` (SQL parameters).
pub(crate) fn group_id(detection: &str, key: &str) -> String {
    format!(
        "(SELECT id FROM hit_groups WHERE detection = {} AND group_key = {key})",
        detection_id(detection)
    )
}

/// A hit's emitted details as text, for a hit row named `h` (NULL stored means the
/// details are the group key's text).
pub(crate) const HIT_DETAILS: &str =
    "coalesce(h.details, (SELECT group_key FROM hit_groups WHERE id = h.grp))";

/// Every migration, in order; index + 1 is the `user_version` after it.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_create_tables",
        include_str!("../../migrations/0001_create_tables.sql"),
    ),
    (
        "0002_add_ui_aggregates",
        include_str!("../../migrations/0002_add_ui_aggregates.sql"),
    ),
    (
        "0003_record_blob",
        include_str!("../../migrations/0003_record_blob.sql"),
    ),
    (
        "0004_writer_rollups",
        include_str!("../../migrations/0004_writer_rollups.sql"),
    ),
    (
        "0005_rebuild_outbox",
        include_str!("../../migrations/0005_rebuild_outbox.sql"),
    ),
    (
        "0006_create_imports",
        include_str!("../../migrations/0006_create_imports.sql"),
    ),
    (
        "0007_create_triage",
        include_str!("../../migrations/0007_create_triage.sql"),
    ),
    (
        "0008_compact_hits",
        include_str!("../../migrations/0008_compact_hits.sql"),
    ),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Page size for a new database: records are ~0.3–1.5 KB, so 4 KiB pages waste ~20 %
/// (docs/architecture.md, Design choices).
const PAGE_SIZE: i64 = 8192;
/// The writer connection's page cache, KiB.
const WRITER_CACHE_KIB: i64 = 8_000;

fn set_common_pragmas(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "cache_size", -16_000)?; // KiB
    Ok(())
}

/// Opens (creating if needed) the writable connection and applies pending migrations.
pub fn open_writer(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)
        .with_context(|| format!("opening the database {}", path.display()))?;
    set_common_pragmas(&conn)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version == 0 {
        // Only effective before the first table exists (and before WAL).
        conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    }
    conn.pragma_update(None, "journal_mode", "WAL")
        .with_context(|| format!("switching {} to WAL", path.display()))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // The writer touches the tops of a few B-trees and the pages it appends to; half the
    // readers' page cache printed the same collect rate with 14 MiB less peak RSS.
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    // Until the checkpoint thread hooks this connection (and if it cannot start), SQLite
    // checkpoints here, at the same size the thread uses (`checkpointer.rs` says why).
    conn.pragma_update(
        None,
        "wal_autocheckpoint",
        super::checkpointer::CHECKPOINT_PAGES,
    )?;
    // The writer's statements are all `prepare_cached`; more of them than rusqlite's
    // default 16 slots are in use during a backfill (evicted ones were parsed again).
    conn.set_prepared_statement_cache_capacity(64);
    // A writer command in a savepoint of its own (outside a group, or isolated after a
    // failure: `unit.rs`) has SQLite copy each page it changes into the statement
    // journal, which by default goes to a deleted temporary file beyond 64 KiB: a file
    // created, written and evicted per blob (~10 % of the writer's time in perf when
    // every command had one). In memory instead (a few hundred KiB per blob, freed when
    // the savepoint is released).
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    migrate(&conn)?;
    Ok(conn)
}

/// Opens a read-only connection; fails if the database does not exist.
///
/// A WAL database is read through its `-wal` and `-shm` files, which a reader creates when
/// they are missing. Where that is impossible (a directory this process cannot write) the
/// ordinary open fails without creating anything, and the database is opened
/// `immutable=1` instead: no lock, no journal, no file created or changed. That is only
/// right for a store nobody writes, which a store on read-only media is.
pub fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let ordinary = Connection::open_with_flags(path, flags).and_then(|c| {
        // opening is lazy: the first read is what needs the -wal/-shm files
        c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })?;
        Ok(c)
    });
    let conn = match ordinary {
        Ok(c) => c,
        Err(first) => {
            if !path.exists() {
                return Err(first)
                    .with_context(|| format!("opening the database {} read-only", path.display()));
            }
            Connection::open_with_flags(immutable_uri(path), flags | OpenFlags::SQLITE_OPEN_URI)
                .and_then(|c| {
                    c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                        r.get::<_, i64>(0)
                    })?;
                    Ok(c)
                })
                .with_context(|| {
                    format!(
                        "opening the database {} read-only (the ordinary open failed: {first})",
                        path.display()
                    )
                })?
        }
    };
    set_common_pragmas(&conn)?;
    Ok(conn)
}

/// `file:PATH?immutable=1`, the path percent-encoded where a URI needs it.
fn immutable_uri(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = String::from("file:");
    for &b in abs.as_os_str().as_encoded_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out.push_str("?immutable=1");
    out
}

/// Applies every migration newer than the database's `user_version`.
pub fn migrate(conn: &Connection) -> Result<()> {
    migrate_to(conn, SCHEMA_VERSION)
}

/// Applies the migrations newer than the database's `user_version` up to `upto` (tests
/// build stores of an earlier schema with it).
pub(crate) fn migrate_to(conn: &Connection, upto: i64) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        bail!(
            "the database has schema version {version}, newer than this build ({SCHEMA_VERSION}); \
             use a newer m365audit"
        );
    }
    for (i, (name, sql)) in MIGRATIONS
        .iter()
        .enumerate()
        .take(upto.max(0) as usize)
        .skip(version as usize)
    {
        let n = i as i64 + 1;
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {n};\nCOMMIT;"
        ))
        .with_context(|| format!("applying migration {name}"))?;
    }
    Ok(())
}

pub fn content_type_code(ct: ContentType) -> i64 {
    ContentType::ALL.iter().position(|c| *c == ct).unwrap_or(3) as i64
}

pub fn content_type_from_code(code: i64) -> ContentType {
    ContentType::ALL
        .get(code as usize)
        .copied()
        .unwrap_or(ContentType::General)
}

pub fn secs_to_time(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

pub fn millis_to_time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Decompresses `records.raw`, keeping one zstd context per dictionary (the dictionary
/// is loaded into it once).
#[derive(Clone, Default)]
pub struct Codec {
    ctxs: Arc<Mutex<HashMap<i64, zstd::bulk::Decompressor<'static>>>>,
}

impl Codec {
    /// Returns the raw JSON text of one stored record.
    pub fn decode(&self, conn: &Connection, dict: i64, data: &[u8]) -> Result<String> {
        let size = zstd::zstd_safe::get_frame_content_size(data)
            .ok()
            .flatten()
            .context("stored record has no zstd frame size")? as usize;
        let mut ctxs = self.ctxs.lock().map_err(poisoned)?;
        let dec = match ctxs.entry(dict) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let dec = if dict == 0 {
                    zstd::bulk::Decompressor::new()?
                } else {
                    let bytes: Vec<u8> = conn
                        .query_row("SELECT bytes FROM dicts WHERE id = ?1", [dict], |r| {
                            r.get(0)
                        })
                        .with_context(|| format!("loading compression dictionary {dict}"))?;
                    zstd::bulk::Decompressor::with_dictionary(&bytes)?
                };
                e.insert(dec)
            }
        };
        let bytes = dec
            .decompress(data, size)
            .context("stored record does not decompress")?;
        String::from_utf8(bytes).context("stored record is not UTF-8")
    }
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> anyhow::Error {
    anyhow::anyhow!("a store lock was poisoned by a panic")
}

/// The columns `read_record` expects, in order.
pub const RECORD_COLUMNS: &str = "r.rowid, r.id, r.creation_time, r.workload, r.operation, \
     r.record_type, r.user_id, r.client_ip, r.content_type, r.ingested_at, r.dict, r.raw, \
     t.name";
pub const RECORD_FROM: &str = "records r JOIN tenants t ON t.id = r.tenant";

/// Reads one row selected with `RECORD_COLUMNS`.
pub fn read_record(codec: &Codec, conn: &Connection, row: &Row) -> Result<super::StoredRecord> {
    let dict: i64 = row.get(10)?;
    let data: Vec<u8> = row.get(11)?;
    let raw = codec.decode(conn, dict, &data)?;
    let organization_id = String::new();
    Ok(super::StoredRecord {
        rowid: row.get(0)?,
        header: RecordHeader {
            id: row.get(1)?,
            creation_time: secs_to_time(row.get(2)?),
            workload: row.get(3)?,
            operation: row.get(4)?,
            record_type: row.get(5)?,
            user_id: row.get(6)?,
            client_ip: row.get(7)?,
            organization_id,
        },
        content_type: content_type_from_code(row.get(8)?),
        ingested_at: secs_to_time(row.get(9)?),
        tenant: row.get(12)?,
        raw,
    })
}

/// [`table_filter`], with an unknown table name as the usage error that names it.
pub fn known_table_filter(table: &str) -> anyhow::Result<(String, Vec<String>)> {
    table_filter(table).ok_or_else(|| crate::UsageError(format!("unknown table {table:?}")).into())
}

/// The SQL condition selecting the records of one table (docs/architecture.md, Tables), with its
/// parameter; `None` for an unknown table name.
pub fn table_filter(table: &str) -> Option<(String, Vec<String>)> {
    use crate::model::{TABLE_ALL, TABLE_AUTH};
    if table == TABLE_ALL {
        return Some(("1".into(), vec![]));
    }
    if table == TABLE_AUTH {
        return Some((
            "r.operation IN ('UserLoggedIn', 'UserLoginFailed', 'UserLoggedOut', \
             'UserStrongAuthClientAuthNRequired')"
                .into(),
            vec![],
        ));
    }
    let workload = table.strip_prefix(TABLE_ALL)?.strip_prefix('.')?;
    if workload.is_empty() {
        return None;
    }
    Some((
        "lower(r.workload) = ?".into(),
        vec![workload.to_ascii_lowercase()],
    ))
}

pub fn tenant_id(conn: &Connection, name: &str) -> Result<Option<i64>> {
    Ok(conn
        .query_row("SELECT id FROM tenants WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?)
}

pub fn max_rowid(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT COALESCE(MAX(rowid), 0) FROM records",
        params![],
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_on_an_empty_database_and_twice() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.db");
        let c = open_writer(&p).unwrap();
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let ps: i64 = c
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap();
        assert_eq!(ps, PAGE_SIZE);
        drop(c);
        open_writer(&p).unwrap();
    }

    #[test]
    fn table_filters_follow_the_devo_namespace() {
        assert!(table_filter("cloud.office365.management").is_some());
        assert_eq!(
            table_filter("cloud.office365.management.Exchange")
                .unwrap()
                .1,
            vec!["exchange".to_string()]
        );
        assert!(table_filter("auth.all").is_some());
        assert!(table_filter("nope").is_none());
        assert!(table_filter("cloud.office365.management.").is_none());
    }
}
