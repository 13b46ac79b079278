//! The integer ids a hit row refers to (migration 0008): each detection name and each
//! (detection, group key) pair is stored once, in `hit_detections` and `hit_groups`, and
//! the writer keeps the ids it has seen. It must only be used by the writer thread.
//!
//! A blob's keys are resolved before the blob's unit of work opens (`unit.rs`), in the
//! enclosing transaction: a unit rolled back alone (a blob that fails in its own
//! savepoint) therefore never takes away a key row whose id is cached. When the enclosing
//! transaction is rolled back (a unit failed halfway in a shared group, or the commit
//! failed), the writer clears the cache ([`HitKeys::clear`]). A key row whose hits were
//! all rolled back stays; nothing reads keys without hits.

use super::writer::PreparedRecord;
use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension};
use std::collections::HashMap;

/// Group ids cached at most (a detection grouping by a value unique per record would
/// otherwise grow the cache with the store); past it the cache starts over.
const MAX_CACHED_GROUPS: usize = 50_000;

#[derive(Default)]
pub(super) struct HitKeys {
    detections: HashMap<String, i64>,
    /// detection id → group key → group id.
    groups: HashMap<i64, HashMap<String, i64>>,
    cached_groups: usize,
}

impl HitKeys {
    /// Forgets every id (after a rollback of the transaction that may have created them).
    pub(super) fn clear(&mut self) {
        *self = HitKeys::default();
    }

    /// Fills in the ids of every hit of these records, creating the key rows it lacks.
    pub(super) fn resolve(
        &mut self,
        conn: &Connection,
        records: &mut [PreparedRecord],
    ) -> Result<()> {
        for r in records {
            for h in &mut r.hits {
                let d = self.detection(conn, &h.detection)?;
                h.ids = (d, self.group(conn, d, &h.group_key)?);
            }
        }
        Ok(())
    }

    fn detection(&mut self, conn: &Connection, name: &str) -> Result<i64> {
        if let Some(id) = self.detections.get(name) {
            return Ok(*id);
        }
        let id = match conn
            .prepare_cached("SELECT id FROM hit_detections WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?
        {
            Some(id) => id,
            None => {
                conn.prepare_cached("INSERT INTO hit_detections (name) VALUES (?1)")?
                    .execute([name])
                    .with_context(|| format!("storing the detection name {name}"))?;
                conn.last_insert_rowid()
            }
        };
        self.detections.insert(name.to_string(), id);
        Ok(id)
    }

    fn group(&mut self, conn: &Connection, detection: i64, key: &str) -> Result<i64> {
        if let Some(id) = self.groups.get(&detection).and_then(|g| g.get(key)) {
            return Ok(*id);
        }
        let id = match conn
            .prepare_cached("SELECT id FROM hit_groups WHERE detection = ?1 AND group_key = ?2")?
            .query_row(rusqlite::params![detection, key], |r| r.get(0))
            .optional()?
        {
            Some(id) => id,
            None => {
                conn.prepare_cached(
                    "INSERT INTO hit_groups (detection, group_key) VALUES (?1, ?2)",
                )?
                .execute(rusqlite::params![detection, key])
                .context("storing a hit group key")?;
                conn.last_insert_rowid()
            }
        };
        if self.cached_groups >= MAX_CACHED_GROUPS {
            self.groups.clear();
            self.cached_groups = 0;
        }
        self.groups
            .entry(detection)
            .or_default()
            .insert(key.to_string(), id);
        self.cached_groups += 1;
        Ok(id)
    }
}
