//! Read-only queries the web UI needs beyond the store's general read API: aggregates per
//! hour, per detection group, per user and per address, and record pages filtered by a
//! time range. Written by the UI's owner (issue #5) and kept here because only `store`
//! runs SQL. Every statement is a SELECT on a read-only connection; nothing here writes.
//!
//! Times in `records` and `hits` are integer seconds; a range is `[from, to)` with either
//! end open (`None`).

use super::{Store, StoredRecord, db};
use anyhow::Result;
use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;

/// `[from, to)` in seconds, open ends as the widest values.
fn bounds(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> (i64, i64) {
    (
        from.map(|t| t.timestamp()).unwrap_or(i64::MIN),
        to.map(|t| t.timestamp()).unwrap_or(i64::MAX),
    )
}

/// A count per key and hour (`hour` = seconds / 3600).
#[derive(Debug, Clone, PartialEq)]
pub struct HourCount {
    pub key: String,
    pub hour: i64,
    pub count: i64,
}

/// One aggregated group of a detection's hits.
#[derive(Debug, Clone, PartialEq)]
pub struct HitGroup {
    /// The stored group key text (canonical JSON).
    pub key: String,
    pub count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// A value, how often it occurs and when last.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueCount {
    pub value: String,
    pub count: i64,
    pub last_seen: DateTime<Utc>,
}

/// The columns a tally may group records by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordColumn {
    UserId,
    ClientIp,
    Workload,
    Operation,
}

impl RecordColumn {
    fn sql(self) -> &'static str {
        match self {
            RecordColumn::UserId => "r.user_id",
            RecordColumn::ClientIp => "r.client_ip",
            RecordColumn::Workload => "r.workload",
            RecordColumn::Operation => "r.operation",
        }
    }
}

/// Per collector state of one content type, as the status page shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamRow {
    pub content_type: String,
    pub state: Option<String>,
    pub last_error: Option<String>,
    pub lag_secs: Option<i64>,
    pub cursor: Option<DateTime<Utc>>,
    /// When the cursor last moved: the last successful listing.
    pub listed_at: Option<DateTime<Utc>>,
    pub pending: i64,
    pub failed: i64,
    pub expired: i64,
}

impl Store {
    /// Hits per detection and hour since `since`.
    pub fn ui_hits_per_hour(&self, since: DateTime<Utc>) -> Result<Vec<HourCount>> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT detection, creation_time / 3600, count(*) FROM hits \
                 WHERE creation_time >= ?1 GROUP BY 1, 2",
            )?;
            let rows = st.query_map([since.timestamp()], |r| {
                Ok(HourCount {
                    key: r.get(0)?,
                    hour: r.get(1)?,
                    count: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Per detection: hit count and the CreationTime of the newest hit.
    pub fn ui_hit_summary(&self) -> Result<Vec<(String, i64, DateTime<Utc>)>> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT detection, count(*), max(creation_time) FROM hits GROUP BY detection",
            )?;
            let rows = st.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, db::secs_to_time(r.get(2)?)))
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Records per workload and hour (by CreationTime) since `since`.
    pub fn ui_records_per_hour(&self, since: DateTime<Utc>) -> Result<Vec<HourCount>> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT workload, creation_time / 3600, count(*) FROM records \
                 WHERE creation_time >= ?1 GROUP BY 1, 2",
            )?;
            let rows = st.query_map([since.timestamp()], |r| {
                Ok(HourCount {
                    key: r.get(0)?,
                    hour: r.get(1)?,
                    count: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Per workload: the ingestion time of its newest record (for the inactivity monitor).
    pub fn ui_workload_last_ingested(&self) -> Result<Vec<(String, DateTime<Utc>)>> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT workload, max(ingested_at) FROM records WHERE workload <> '' \
                 GROUP BY workload",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, db::secs_to_time(r.get(1)?))))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Per content type: the ingestion time of its newest record.
    pub fn ui_content_type_last_ingested(&self) -> Result<Vec<(String, DateTime<Utc>)>> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT content_type, max(ingested_at) FROM records GROUP BY content_type",
            )?;
            let rows = st.query_map([], |r| {
                Ok((
                    db::content_type_from_code(r.get(0)?).as_str().to_string(),
                    db::secs_to_time(r.get(1)?),
                ))
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Every content type the collector knows (cursor, stream state or blobs), with its
    /// state, cursor, last listing and blob counts by state.
    pub fn ui_streams(&self) -> Result<Vec<StreamRow>> {
        self.with_conn(|c| {
            let mut out: std::collections::BTreeMap<String, StreamRow> = Default::default();
            let row = |out: &mut std::collections::BTreeMap<String, StreamRow>, ct: &str| {
                out.entry(ct.to_string())
                    .or_insert_with(|| StreamRow {
                        content_type: ct.to_string(),
                        ..StreamRow::default()
                    })
                    .clone()
            };
            {
                let mut st = c.prepare_cached(
                    "SELECT content_type, max(cursor), max(updated_at) FROM cursors \
                     GROUP BY content_type",
                )?;
                let rows = st.query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?;
                for x in rows {
                    let (ct, cur, upd) = x?;
                    let mut s = row(&mut out, &ct);
                    s.cursor = Some(db::millis_to_time(cur));
                    s.listed_at = Some(db::millis_to_time(upd));
                    out.insert(ct, s);
                }
            }
            {
                let mut st = c.prepare_cached(
                    "SELECT content_type, state, last_error, lag_secs FROM streams",
                )?;
                let rows = st.query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                    ))
                })?;
                for x in rows {
                    let (ct, state, err, lag) = x?;
                    let mut s = row(&mut out, &ct);
                    s.state = Some(state);
                    s.last_error = err;
                    s.lag_secs = lag;
                    out.insert(ct, s);
                }
            }
            {
                let mut st = c.prepare_cached(
                    "SELECT content_type, state, count(*) FROM blobs GROUP BY 1, 2",
                )?;
                let rows = st.query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?;
                for x in rows {
                    let (ct, state, n) = x?;
                    let mut s = row(&mut out, &ct);
                    match state.as_str() {
                        "pending" => s.pending = n,
                        "failed" => s.failed = n,
                        "expired" => s.expired = n,
                        _ => {}
                    }
                    out.insert(ct, s);
                }
            }
            Ok(out.into_values().collect())
        })
    }

    /// Hits of one detection in a range: their number and the groups, largest first.
    /// Groups are by the stored group key, or with `by_details` by the emitted value (for
    /// detections without group_by, whose group key is always `{}`).
    pub fn ui_hit_groups(
        &self,
        detection: &str,
        by_details: bool,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<(i64, Vec<HitGroup>)> {
        let (a, b) = bounds(from, to);
        self.with_conn(|c| {
            let total: i64 = c.query_row(
                "SELECT count(*) FROM hits WHERE detection = ?1 \
                 AND creation_time >= ?2 AND creation_time < ?3",
                rusqlite::params![detection, a, b],
                |r| r.get(0),
            )?;
            let col = if by_details { "details" } else { "group_key" };
            let mut st = c.prepare_cached(&format!(
                "SELECT {col}, count(*), min(creation_time), max(creation_time) FROM hits \
                 WHERE detection = ?1 AND creation_time >= ?2 AND creation_time < ?3 \
                 GROUP BY {col} ORDER BY count(*) DESC, max(creation_time) DESC LIMIT ?4"
            ))?;
            let rows = st.query_map(rusqlite::params![detection, a, b, limit as i64], |r| {
                Ok(HitGroup {
                    key: r.get(0)?,
                    count: r.get(1)?,
                    first_seen: db::secs_to_time(r.get(2)?),
                    last_seen: db::secs_to_time(r.get(3)?),
                })
            })?;
            Ok((total, rows.collect::<rusqlite::Result<_>>()?))
        })
    }

    /// The records behind one detection (optionally one stored group key, or with
    /// `by_details` one emitted value), newest first.
    pub fn ui_hit_records(
        &self,
        detection: &str,
        by_details: bool,
        group_key: Option<&str>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>> {
        let (a, b) = bounds(from, to);
        let mut args: Vec<SqlValue> = vec![detection.to_string().into(), a.into(), b.into()];
        let mut cond = String::from(
            "r.rowid IN (SELECT record_rowid FROM hits WHERE detection = ? \
             AND creation_time >= ? AND creation_time < ?",
        );
        if let Some(k) = group_key {
            cond.push_str(if by_details {
                " AND details = ?"
            } else {
                " AND group_key = ?"
            });
            args.push(k.to_string().into());
        }
        cond.push(')');
        args.push((limit as i64).into());
        self.query_records(&cond, args, "ORDER BY r.creation_time DESC LIMIT ?")
    }

    /// Records where `column` equals `value` in a range, newest first, and their number.
    pub fn ui_records_where(
        &self,
        column: RecordColumn,
        value: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<(i64, Vec<StoredRecord>)> {
        let (a, b) = bounds(from, to);
        let cond = format!(
            "{c} = ? AND {c} <> '' AND r.creation_time >= ? AND r.creation_time < ?",
            c = column.sql()
        );
        let total = self.with_conn(|c| {
            Ok(c.query_row(
                &format!("SELECT count(*) FROM records r WHERE {cond}"),
                rusqlite::params![value, a, b],
                |r| r.get::<_, i64>(0),
            )?)
        })?;
        let args: Vec<SqlValue> = vec![
            value.to_string().into(),
            a.into(),
            b.into(),
            (limit as i64).into(),
        ];
        let rows = self.query_records(&cond, args, "ORDER BY r.creation_time DESC LIMIT ?")?;
        Ok((total, rows))
    }

    /// Among records where `filter` equals `value` in a range: the values of `group`,
    /// most frequent first.
    pub fn ui_tally(
        &self,
        filter: RecordColumn,
        value: &str,
        group: RecordColumn,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<ValueCount>> {
        let (a, b) = bounds(from, to);
        self.with_conn(|c| {
            let sql = format!(
                "SELECT {g}, count(*), max(r.creation_time) FROM records r \
                 WHERE {f} = ?1 AND {f} <> '' AND r.creation_time >= ?2 \
                 AND r.creation_time < ?3 AND {g} <> '' GROUP BY {g} ORDER BY 2 DESC, 3 DESC LIMIT ?4",
                g = group.sql(),
                f = filter.sql()
            );
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(rusqlite::params![value, a, b, limit as i64], |r| {
                Ok(ValueCount {
                    value: r.get(0)?,
                    count: r.get(1)?,
                    last_seen: db::secs_to_time(r.get(2)?),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Detections that fired on records where `filter` equals `value`, in a range.
    pub fn ui_detections_of(
        &self,
        filter: RecordColumn,
        value: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Vec<ValueCount>> {
        let (a, b) = bounds(from, to);
        self.with_conn(|c| {
            let sql = format!(
                "SELECT h.detection, count(*), max(h.creation_time) FROM hits h \
                 JOIN records r ON r.rowid = h.record_rowid \
                 WHERE {f} = ?1 AND {f} <> '' AND r.creation_time >= ?2 \
                 AND r.creation_time < ?3 GROUP BY h.detection ORDER BY 2 DESC",
                f = filter.sql()
            );
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(rusqlite::params![value, a, b], |r| {
                Ok(ValueCount {
                    value: r.get(0)?,
                    count: r.get(1)?,
                    last_seen: db::secs_to_time(r.get(2)?),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Other records of the same user within `secs` either side of `rec`, oldest first.
    pub fn ui_neighbours(
        &self,
        rec: &StoredRecord,
        secs: i64,
        limit: usize,
    ) -> Result<Vec<StoredRecord>> {
        if rec.header.user_id.is_empty() {
            return Ok(Vec::new());
        }
        let t = rec.header.creation_time.timestamp();
        self.query_records(
            "r.user_id = ? AND r.user_id <> '' AND r.creation_time >= ? AND r.creation_time <= ? AND r.rowid <> ?",
            vec![
                rec.header.user_id.clone().into(),
                (t - secs).into(),
                (t + secs).into(),
                rec.rowid.into(),
                (limit as i64).into(),
            ],
            "ORDER BY r.creation_time, r.rowid LIMIT ?",
        )
    }

    /// Number of stored records.
    pub fn ui_record_count(&self) -> Result<i64> {
        self.with_conn(|c| Ok(c.query_row("SELECT count(*) FROM records", [], |r| r.get(0))?))
    }
}
