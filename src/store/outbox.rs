//! The outbox: the durable queue of records the Devo forwarder still has to send. This file
//! owns its SQL — switching forwarding on and off, reading a batch in id order, deleting
//! rows once the receiver accepted them, queuing a backfill — and the forwarding state that
//! `stats` and the UI show. It knows nothing about syslog, TLS or HTTP (`forward` does).
//!
//! Invariant 1: while forwarding is on, `insert_prepared` (writer.rs) writes one outbox row
//! per new record in the unit of work that stores the record (`unit.rs`), so a crash
//! leaves either both or neither. Invariant 5: a row is deleted only by
//! [`Store::outbox_ack`], which the forwarder calls only after the receiver accepted the
//! record.
//!
//! Status keys: `forward` = `{"from_rowid", "backfilled_since"}` (present while forwarding
//! is on: records from `from_rowid` on are queued as they are stored; older ones only by a
//! backfill, and each creation-time range at most once), `forward_state` = what the
//! forwarder last reported (connection, last error, since when the receiver is down).

use super::writer::Writer;
use super::{Reply, Store, db};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::{Value, json};

const STATUS_KEY: &str = "forward";
const STATE_KEY: &str = "forward_state";
/// Counter names (table `counters`).
pub const SENT: &str = "outbox_sent";
pub const RESENT: &str = "outbox_resent";
pub const OVERSIZED: &str = "outbox_oversized";
pub const MISSING: &str = "outbox_missing";

/// One queued record, ready to be put on the wire.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    /// The outbox row id (increasing, never reused).
    pub id: i64,
    pub workload: String,
    /// The record's JSON exactly as received; None if the record row is gone.
    pub raw: Option<String>,
}

/// `stats --json` → `outbox`.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxStats {
    pub depth: i64,
    pub oldest_age_secs: Option<i64>,
    pub sent: i64,
    pub resent: i64,
    pub oversized: i64,
    pub last_error: Option<String>,
    /// "connected", "idle", "connecting", "down", "config_error", "stopped" or "never ran".
    pub connection: String,
    /// Where records go (host:port or the HTTP endpoint; never a token).
    pub target: Option<String>,
    /// Since when the receiver has been unreachable, if it is.
    pub down_since: Option<DateTime<Utc>>,
    /// The receiver has been down longer than `alert_after_secs`.
    pub alert: bool,
    /// Forwarding is switched on for this store.
    pub enabled: bool,
}

/// Whether the store queues new records (read when the writer starts).
pub(super) fn forwarding_on(conn: &Connection) -> Result<bool> {
    Ok(status(conn, STATUS_KEY)?.is_some())
}

fn status(conn: &Connection, key: &str) -> Result<Option<Value>> {
    let v: Option<String> = conn
        .query_row("SELECT value FROM status WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(v.and_then(|v| serde_json::from_str(&v).ok()))
}

fn put_status(conn: &Connection, key: &str, value: &Value) -> Result<()> {
    conn.execute(
        "INSERT INTO status (key, value, updated_at) VALUES (?1,?2,?3) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        params![key, value.to_string(), Utc::now().timestamp()],
    )?;
    Ok(())
}

fn bump(conn: &Connection, name: &str, by: i64) -> Result<()> {
    if by != 0 {
        conn.prepare_cached(
            "INSERT INTO counters (name, value) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
        )?
        .execute(params![name, by])?;
    }
    Ok(())
}

impl Writer {
    fn set_forwarding(&mut self, on: bool) -> Result<()> {
        let tx = self.unit()?;
        let current = status(&tx, STATUS_KEY)?;
        match (on, current) {
            (true, None) => {
                let from = db::max_rowid(&tx)? + 1;
                put_status(
                    &tx,
                    STATUS_KEY,
                    &json!({"from_rowid": from, "backfilled_since": null}),
                )?;
            }
            (false, Some(_)) => {
                // Queued rows stay: they go out when forwarding is back.
                tx.execute("DELETE FROM status WHERE key = ?1", [STATUS_KEY])?;
            }
            _ => {}
        }
        tx.commit()?;
        self.outbox_on = on;
        Ok(())
    }

    fn outbox_ack(&mut self, sent: &[i64], oversized: &[i64], missing: &[i64]) -> Result<()> {
        let tx = self.unit()?;
        {
            let mut del = tx.prepare_cached("DELETE FROM outbox WHERE id = ?1")?;
            for id in sent.iter().chain(oversized).chain(missing) {
                del.execute([id])?;
            }
        }
        bump(&tx, SENT, sent.len() as i64)?;
        bump(&tx, OVERSIZED, oversized.len() as i64)?;
        bump(&tx, MISSING, missing.len() as i64)?;
        tx.commit()?;
        Ok(())
    }

    fn outbox_backfill(&mut self, since: i64) -> Result<usize> {
        let tx = self.unit()?;
        let st = status(&tx, STATUS_KEY)?.context("forwarding is not on for this store")?;
        let from = st.get("from_rowid").and_then(Value::as_i64).unwrap_or(0);
        let before = st.get("backfilled_since").and_then(Value::as_i64);
        let n = match before {
            Some(b) if since >= b => 0,
            _ => tx.execute(
                "INSERT INTO outbox (record_rowid, created_at) \
                 SELECT rowid, ?1 FROM records WHERE rowid < ?2 AND creation_time >= ?3 \
                 AND (?4 IS NULL OR creation_time < ?4) ORDER BY rowid",
                params![Utc::now().timestamp(), from, since, before],
            )?,
        };
        let lowest = before.map_or(since, |b| b.min(since));
        put_status(
            &tx,
            STATUS_KEY,
            &json!({"from_rowid": from, "backfilled_since": lowest}),
        )?;
        tx.commit()?;
        Ok(n)
    }
}

impl Store {
    /// Switches the outbox on (new records are queued from now on) or off (queued rows
    /// are kept). The forwarding commands call it before anything is stored.
    pub fn set_forwarding(&self, on: bool) -> Reply<()> {
        self.call(move |w| w.set_forwarding(on))
    }

    /// Deletes the outbox rows the receiver accepted (`sent`), and those that will never
    /// be sent (`oversized`; `missing`: the record row is gone), counting each kind.
    pub fn outbox_ack(&self, sent: Vec<i64>, oversized: Vec<i64>, missing: Vec<i64>) -> Reply<()> {
        self.call(move |w| w.outbox_ack(&sent, &oversized, &missing))
    }

    /// Queues the records stored before forwarding was switched on whose CreationTime is
    /// at or after `since`; a creation-time range already queued is not queued again.
    /// Returns how many rows were queued.
    pub fn queue_backfill(&self, since: DateTime<Utc>) -> Reply<usize> {
        let since = since.timestamp();
        self.call(move |w| w.outbox_backfill(since))
    }

    /// What the forwarder reports about its connection (shown by `stats` and the UI).
    pub fn set_forward_state(&self, state: Value) -> Reply<()> {
        self.set_status(STATE_KEY, state)
    }

    /// Up to `limit` queued records with an outbox id above `after_id`, in id order.
    pub fn outbox_batch(&self, after_id: i64, limit: usize) -> Result<Vec<OutboxItem>> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT o.id, r.workload, r.dict, r.raw FROM outbox o \
                 LEFT JOIN records r ON r.rowid = o.record_rowid \
                 WHERE o.id > ?1 ORDER BY o.id LIMIT ?2",
            )?;
            let mut rows = st.query(params![after_id, limit as i64])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let workload: Option<String> = row.get(1)?;
                let dict: Option<i64> = row.get(2)?;
                let data: Option<Vec<u8>> = row.get(3)?;
                let raw = match (dict, data) {
                    (Some(d), Some(data)) => Some(self.inner.codec.decode(c, d, &data)?),
                    _ => None,
                };
                out.push(OutboxItem {
                    id: row.get(0)?,
                    workload: workload.unwrap_or_default(),
                    raw,
                });
            }
            Ok(out)
        })
    }

    /// Rows waiting in the outbox.
    pub fn outbox_depth(&self) -> Result<i64> {
        self.with_conn(|c| Ok(c.query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?))
    }

    /// The outbox part of `stats`; None when forwarding was never used on this store.
    pub fn outbox_stats(&self) -> Result<Option<OutboxStats>> {
        self.with_conn(|c| {
            let (depth, oldest): (i64, Option<i64>) =
                c.query_row("SELECT count(*), min(created_at) FROM outbox", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            let counter = |name: &str| -> Result<i64> {
                Ok(
                    c.query_row("SELECT value FROM counters WHERE name = ?1", [name], |r| {
                        r.get(0)
                    })
                    .optional()?
                    .unwrap_or(0),
                )
            };
            let enabled = forwarding_on(c)?;
            let state = status(c, STATE_KEY)?;
            let (sent, resent, oversized) = (counter(SENT)?, counter(RESENT)?, counter(OVERSIZED)?);
            if !enabled && state.is_none() && depth == 0 && sent == 0 {
                return Ok(None);
            }
            let now = Utc::now();
            let st = state.unwrap_or(Value::Null);
            let text = |k: &str| st.get(k).and_then(Value::as_str).map(str::to_string);
            let down_since = st
                .get("down_since")
                .and_then(Value::as_i64)
                .map(db::secs_to_time);
            let alert_after = st.get("alert_after_secs").and_then(Value::as_i64);
            let alert = match (down_since, alert_after) {
                (Some(d), Some(a)) => (now - d).num_seconds() >= a,
                _ => false,
            };
            Ok(Some(OutboxStats {
                depth,
                oldest_age_secs: oldest.map(|o| (now.timestamp() - o).max(0)),
                sent,
                resent,
                oversized,
                last_error: text("last_error"),
                connection: text("connection").unwrap_or_else(|| "never ran".to_string()),
                target: text("target"),
                down_since,
                alert,
                enabled,
            }))
        })
    }
}
