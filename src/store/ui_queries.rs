//! Read-only queries the web UI needs beyond the store's general read API: aggregates per
//! hour, per detection group, per user and per address, and record pages filtered by a
//! time range. Written by the UI's owner and kept here because only `store`
//! runs SQL. Every statement is a SELECT on a read-only connection; nothing here writes.
//!
//! Times in `records` and `hits` are integer seconds; a range is `[from, to)` with either
//! end open (`None`).
//!
//! Speed (pages < 50 ms on 1 M records): nothing a page runs on every request
//! scans `records` or `hits`. The dashboard reads the rollup tables `agg_record_hours`,
//! `agg_record_sources` and `agg_hit_hours` (migration 0002) that the writer keeps current
//! per blob (migration 0004); a detection's groups read only the covering
//! index `hits_group`; a user's or an address's records come from the search
//! index (rowids) and are then read by rowid. A threshold detection's hits (the UI applies
//! the rule itself) are read once from `hits_group`; after that only the hits
//! newer than the last read (an id range) and the index ranges of the keys they touched.

use super::{Store, StoredRecord, db};
use anyhow::Result;
use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;
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

/// The blob a record came from, as the record page names it.
#[derive(Debug, Clone, PartialEq)]
pub struct BlobInfo {
    pub id: i64,
    /// The Management API's contentId.
    pub content_id: String,
    pub content_type: String,
    /// Records stored from it (first seen there).
    pub records: i64,
}

/// What the user and IP pages show (`Store::ui_profile`).
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub total: i64,
    /// Every matching record's rowid, newest first (`total` of them).
    pub rowids: Vec<i64>,
    /// Their CreationTimes in seconds, in the same order (for an activity chart).
    pub times: Vec<i64>,
    /// The newest records, newest first.
    pub records: Vec<StoredRecord>,
    /// One tally per requested column, in the order requested.
    pub tallies: Vec<Vec<ValueCount>>,
}

/// The records of a profile, header columns only (no `raw`): rowid and CreationTime of
/// each, and per read column an index into `names`. Values are interned as they are read,
/// so tens of thousands of records cost one String per distinct value, not six per record.
#[derive(Default)]
struct Heads {
    /// (rowid, CreationTime seconds), unique rowids, in no particular order.
    rows: Vec<(i64, i64)>,
    /// `cols` values per row, row-major: `vals[i * cols + j]` is column `j` of row `i`.
    vals: Vec<u32>,
    cols: usize,
    names: Vec<String>,
    ids: foldhash::HashMap<String, u32>,
}

impl Heads {
    fn intern(&mut self, v: &str) -> u32 {
        if let Some(&id) = self.ids.get(v) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(v.to_string());
        self.ids.insert(v.to_string(), id);
        id
    }

    /// Appends one row `rowid, creation_time, col…` of a profile statement.
    fn push(&mut self, r: &rusqlite::Row) -> Result<()> {
        self.rows.push((r.get(0)?, r.get(1)?));
        for j in 0..self.cols {
            let id = self.intern(r.get_ref(2 + j)?.as_str()?);
            self.vals.push(id);
        }
        Ok(())
    }

    /// Count and newest time of each value of column `j`, ordered as the pages show them
    /// (count desc, last seen desc, value asc), the empty value left out, `limit` at most.
    fn tally(&self, j: usize, limit: usize) -> Vec<ValueCount> {
        let mut per: Vec<(i64, i64)> = vec![(0, i64::MIN); self.names.len()];
        for (i, &(_, time)) in self.rows.iter().enumerate() {
            let e = &mut per[self.vals[i * self.cols + j] as usize];
            e.0 += 1;
            e.1 = e.1.max(time);
        }
        let mut v: Vec<(usize, i64, i64)> = per
            .into_iter()
            .enumerate()
            .filter(|(id, (n, _))| *n > 0 && !self.names[*id].is_empty())
            .map(|(id, (n, last))| (id, n, last))
            .collect();
        v.sort_by(|x, y| {
            y.1.cmp(&x.1)
                .then(y.2.cmp(&x.2))
                .then(self.names[x.0].cmp(&self.names[y.0]))
        });
        v.truncate(limit);
        v.into_iter()
            .map(|(id, count, last)| ValueCount {
                value: self.names[id].clone(),
                count,
                last_seen: db::secs_to_time(last),
            })
            .collect()
    }
}

/// Rowids per `IN (…)` statement.
const ROWID_CHUNK: usize = 500;

/// Every group key of one detection by group id (hits name their group by id).
fn group_keys_of(
    c: &rusqlite::Connection,
    detection: &str,
) -> rusqlite::Result<std::collections::HashMap<i64, String>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT id, group_key FROM hit_groups WHERE detection = {}",
        db::detection_id("?1")
    ))?;
    let rows = st.query_map([detection], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

fn placeholders(n: usize) -> String {
    let mut s = "?,".repeat(n);
    s.pop();
    s
}

impl Store {
    /// The records with these rowids (any order), read `ROWID_CHUNK` at a time.
    pub fn records_by_rowids(&self, rowids: &[i64]) -> Result<Vec<StoredRecord>> {
        let mut out = Vec::with_capacity(rowids.len());
        for chunk in rowids.chunks(ROWID_CHUNK) {
            out.extend(self.query_records(
                &format!("r.rowid IN ({})", placeholders(chunk.len())),
                chunk.iter().map(|r| SqlValue::from(*r)).collect(),
                "",
            )?);
        }
        Ok(out)
    }
}

impl Store {
    /// Hits per detection and hour, from the hour `since` falls in (rollup table).
    pub fn ui_hits_per_hour(&self, since: DateTime<Utc>) -> Result<Vec<HourCount>> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT detection, hour, count FROM agg_hit_hours WHERE hour >= ?1",
            )?;
            let rows = st.query_map([since.timestamp().div_euclid(3600)], |r| {
                Ok(HourCount {
                    key: r.get(0)?,
                    hour: r.get(1)?,
                    count: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Per detection: hit count and the CreationTime of the newest hit (rollup table).
    pub fn ui_hit_summary(&self) -> Result<Vec<(String, i64, DateTime<Utc>)>> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT detection, sum(count), max(last_seen) FROM agg_hit_hours \
                 GROUP BY detection",
            )?;
            let rows = st.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, db::secs_to_time(r.get(2)?)))
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Records per workload and hour (by CreationTime), from the hour `since` falls in
    /// (rollup table).
    pub fn ui_records_per_hour(&self, since: DateTime<Utc>) -> Result<Vec<HourCount>> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT workload, hour, count FROM agg_record_hours WHERE hour >= ?1",
            )?;
            let rows = st.query_map([since.timestamp().div_euclid(3600)], |r| {
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
                "SELECT workload, max(last_ingested) FROM agg_record_sources \
                 WHERE workload <> '' GROUP BY workload",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, db::secs_to_time(r.get(1)?))))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Per content type: the ingestion time of its newest record.
    pub fn ui_content_type_last_ingested(&self) -> Result<Vec<(String, DateTime<Utc>)>> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT content_type, max(last_ingested) FROM agg_record_sources \
                 GROUP BY content_type",
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
                let mut st = c.prepare_cached(&format!(
                    "SELECT content_type, state, last_error, {} FROM streams",
                    db::LAG_TO_NOW
                ))?;
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
            let total: i64 = if from.is_none() && to.is_none() {
                c.prepare_cached(
                    "SELECT coalesce(sum(count), 0) FROM agg_hit_hours WHERE detection = ?1",
                )?
                .query_row([detection], |r| r.get(0))?
            } else {
                c.prepare_cached(&format!(
                    "SELECT count(*) FROM hits INDEXED BY hits_detection WHERE detection = {} \
                     AND creation_time >= ?2 AND creation_time < ?3",
                    db::detection_id("?1")
                ))?
                .query_row(rusqlite::params![detection, a, b], |r| r.get(0))?
            };
            if from.is_none() && to.is_none() && !by_details {
                // All time by group key: the rollup table.
                let mut st = c.prepare_cached(
                    "SELECT group_key, count, first_seen, last_seen FROM agg_hit_groups \
                     WHERE detection = ?1 ORDER BY count DESC, last_seen DESC LIMIT ?2",
                )?;
                let rows = st.query_map(rusqlite::params![detection, limit as i64], |r| {
                    Ok(HitGroup {
                        key: r.get(0)?,
                        count: r.get(1)?,
                        first_seen: db::secs_to_time(r.get(2)?),
                        last_seen: db::secs_to_time(r.get(3)?),
                    })
                })?;
                return Ok((total, rows.collect::<rusqlite::Result<_>>()?));
            }
            // By group key: counted on the covering index by group id, then named. Ties
            // are in key order, as when the key itself was the index's column.
            let det = db::detection_id("?1");
            let sql = if by_details {
                format!(
                    "SELECT {d} AS v, count(*), min(h.creation_time), max(h.creation_time) \
                     FROM hits h WHERE h.detection = {det} AND h.creation_time >= ?2 \
                     AND h.creation_time < ?3 GROUP BY v \
                     ORDER BY count(*) DESC, max(h.creation_time) DESC, v LIMIT ?4",
                    d = db::HIT_DETAILS
                )
            } else {
                format!(
                    "SELECT g.group_key, n.count, n.first, n.last FROM \
                     (SELECT grp, count(*) AS count, min(creation_time) AS first, \
                      max(creation_time) AS last FROM hits INDEXED BY hits_group \
                      WHERE detection = {det} AND creation_time >= ?2 AND creation_time < ?3 \
                      GROUP BY grp) n JOIN hit_groups g ON g.id = n.grp \
                     ORDER BY n.count DESC, n.last DESC, g.group_key LIMIT ?4"
                )
            };
            let mut st = c.prepare_cached(&sql)?;
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

    /// Every hit of one detection in a range (optionally of one stored group key), as a
    /// threshold rule needs them: (group key text, CreationTime seconds, and with
    /// `distinct` the JSON text of the value at that dotted path of the emitted details —
    /// `None` where it is missing or null), in no particular order.
    ///
    /// Without `distinct` this reads only the covering index `hits_group` (no
    /// table lookups); with a key, only that key's index range. `distinct` costs one
    /// table lookup per hit; SQLite extracts the value (`->`), so the caller parses
    /// neither the details nor the value.
    pub fn ui_hit_events(
        &self,
        detection: &str,
        group_key: Option<&str>,
        distinct: Option<&str>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Vec<(String, i64, Option<String>)>> {
        let (a, b) = bounds(from, to);
        let mut args: Vec<SqlValue> = vec![detection.to_string().into(), a.into(), b.into()];
        let mut key_cond = String::new();
        if let Some(k) = group_key {
            args.push(k.to_string().into());
            key_cond = format!("AND h.grp = {}", db::group_id("?1", "?4"));
        }
        // A path of plain names becomes a JSON path SQLite evaluates; any other name
        // (never seen in a header) is looked up here in the parsed details instead.
        let sql_path = distinct
            .filter(|p| {
                p.split('.').all(|k| {
                    !k.is_empty() && k.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
                })
            })
            .map(|p| format!("$.{p}"));
        let third = match (distinct, &sql_path) {
            (None, _) => "NULL".to_string(),
            (Some(_), Some(path)) => {
                args.push(path.clone().into());
                format!("{} -> ?{}", db::HIT_DETAILS, args.len())
            }
            (Some(_), None) => db::HIT_DETAILS.to_string(),
        };
        let rows = self.with_conn(|c| {
            // The covering index gives group ids; their keys are read once per group.
            let keys = group_keys_of(c, detection)?;
            let mut st = c.prepare_cached(&format!(
                "SELECT h.grp, h.creation_time, {third} FROM hits h \
                 INDEXED BY hits_group WHERE h.detection = {det} {key_cond} \
                 AND h.creation_time >= ?2 AND h.creation_time < ?3",
                det = db::detection_id("?1")
            ))?;
            let rows = st.query_map(rusqlite::params_from_iter(args), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (g, t, v) = row.map_err(|e| {
                    anyhow::anyhow!("reading the hits of detection {detection}: {e}")
                })?;
                let key = keys.get(&g).cloned().ok_or_else(|| {
                    anyhow::anyhow!("detection {detection}: a hit refers to a missing group {g}")
                })?;
                out.push((key, t, v));
            }
            Ok(out)
        })?;
        let Some(path) = distinct.filter(|_| sql_path.is_none()) else {
            return Ok(rows
                .into_iter()
                .map(|(k, t, v)| (k, t, v.filter(|v| v != "null")))
                .collect());
        };
        Ok(rows
            .into_iter()
            .map(|(k, t, details)| {
                let v = details
                    .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
                    .and_then(|d| {
                        path.split('.')
                            .try_fold(d, |cur, name| cur.get(name).cloned())
                    })
                    .filter(|v| !v.is_null())
                    .map(|v| v.to_string());
                (k, t, v)
            })
            .collect())
    }

    /// The id of the newest hit (0 without hits). Hits are only ever added, so a cache of
    /// hit-derived results is current while this does not move.
    pub fn ui_max_hit_id(&self) -> Result<i64> {
        self.with_conn(|c| {
            Ok(c.prepare_cached("SELECT coalesce(max(id), 0) FROM hits")?
                .query_row([], |r| r.get(0))?)
        })
    }

    /// The group keys of one detection's hits with id in `(after, upto]`. Reads only those
    /// rows, by id range (the `+` keeps SQLite from walking the detection's whole index).
    pub fn ui_hit_keys_since(&self, detection: &str, after: i64, upto: i64) -> Result<Vec<String>> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT DISTINCT g.group_key FROM hits h JOIN hit_groups g ON g.id = h.grp \
                 WHERE h.id > ?1 AND h.id <= ?2 AND +h.detection = {}",
                db::detection_id("?3")
            ))?;
            let rows = st.query_map(rusqlite::params![after, upto, detection], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// The hits of one detection on these records: (group key text, CreationTime
    /// seconds) each, by the `hits_record` index.
    pub fn ui_hit_events_of_rowids(
        &self,
        detection: &str,
        rowids: &[i64],
    ) -> Result<Vec<(String, i64)>> {
        let mut out = Vec::new();
        self.with_conn(|c| {
            for chunk in rowids.chunks(ROWID_CHUNK) {
                let mut st = c.prepare_cached(&format!(
                    "SELECT g.group_key, h.creation_time FROM hits h INDEXED BY hits_record \
                     JOIN hit_groups g ON g.id = h.grp \
                     WHERE h.record_rowid IN ({}) AND h.detection = {}",
                    placeholders(chunk.len()),
                    db::detection_id("?")
                ))?;
                let mut args: Vec<SqlValue> = chunk.iter().map(|r| SqlValue::from(*r)).collect();
                args.push(detection.to_string().into());
                let rows = st.query_map(rusqlite::params_from_iter(args), |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
                for x in rows {
                    out.push(x?);
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Number of hits of one detection, all time (rollup table).
    pub fn ui_hit_count(&self, detection: &str) -> Result<i64> {
        self.with_conn(|c| {
            Ok(c.prepare_cached(
                "SELECT coalesce(sum(count), 0) FROM agg_hit_hours WHERE detection = ?1",
            )?
            .query_row([detection], |r| r.get(0))?)
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
        let mut cond = format!(
            "r.rowid IN (SELECT h.record_rowid FROM hits h WHERE h.detection = {} \
             AND h.creation_time >= ? AND h.creation_time < ?",
            db::detection_id("?")
        );
        if let Some(k) = group_key {
            // A group id is unique to its detection, so the key alone selects the group
            // among this detection's hits.
            cond.push_str(&if by_details {
                format!(" AND {} = ?", db::HIT_DETAILS)
            } else {
                " AND h.grp IN (SELECT id FROM hit_groups WHERE group_key = ?)".to_string()
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
                "SELECT d.name, count(*), max(h.creation_time) FROM hits h \
                 JOIN records r ON r.rowid = h.record_rowid \
                 JOIN hit_detections d ON d.id = h.detection \
                 WHERE {f} = ?1 AND {f} <> '' AND r.creation_time >= ?2 \
                 AND r.creation_time < ?3 GROUP BY h.detection ORDER BY 2 DESC, 1",
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

    /// Everything the user and IP pages show of the records where `filter` (a user or an
    /// address) equals `value` in a range `(from, to)`: their number, `limit` of them after the
    /// newest `offset` (a page, newest first), a tally of
    /// each column of `groups` (`tally_limit` values each) and every matching rowid (for
    /// `ui_detections_of_rowids`, which only the user page needs).
    ///
    /// The records are found through the search index (their rowids and times; the few
    /// rows not indexed yet by a rowid range scan) and then read by rowid, the grouped
    /// header columns only, with the exact comparison of the SQL variant; without an index
    /// (or for another column) it falls back to a scan of `records`. Only the page's
    /// records are read whole.
    pub fn ui_profile(
        &self,
        filter: RecordColumn,
        value: &str,
        (from, to): (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
        (offset, limit): (usize, usize),
        groups: &[RecordColumn],
        tally_limit: usize,
    ) -> Result<Profile> {
        let mut cols: Vec<RecordColumn> = Vec::new();
        for g in groups {
            if !cols.contains(g) {
                cols.push(*g);
            }
        }
        let heads = self.profile_headers(filter, value, bounds(from, to), &cols)?;
        let tallies = groups
            .iter()
            .map(|g| {
                let j = cols.iter().position(|c| c == g).unwrap_or_default();
                heads.tally(j, tally_limit)
            })
            .collect();
        let mut order: Vec<(i64, i64)> = heads.rows;
        order.sort_unstable_by(|x, y| y.1.cmp(&x.1).then(y.0.cmp(&x.0)));
        let rowids: Vec<i64> = order.iter().map(|r| r.0).collect();
        let times: Vec<i64> = order.iter().map(|r| r.1).collect();
        let newest: Vec<i64> = rowids.iter().skip(offset).take(limit).copied().collect();
        let mut records = self.records_by_rowids(&newest)?;
        records.sort_by(|x, y| {
            y.header
                .creation_time
                .cmp(&x.header.creation_time)
                .then(y.rowid.cmp(&x.rowid))
        });
        Ok(Profile {
            total: rowids.len() as i64,
            rowids,
            times,
            records,
            tallies,
        })
    }

    /// The records where `filter` = `value` (exactly, never the empty value) with
    /// CreationTime in `[a, b)`, and of each the columns `cols`.
    ///
    /// With the search index: its postings give every candidate's rowid and time (a
    /// superset: the index compares users case-insensitively), the time range is applied
    /// there, and SQLite reads only the candidates in range, in rowid order, comparing
    /// exactly; the rows the index does not cover yet (normally seconds' worth) come from
    /// a rowid range scan.
    fn profile_headers(
        &self,
        filter: RecordColumn,
        value: &str,
        (a, b): (i64, i64),
        cols: &[RecordColumn],
    ) -> Result<Heads> {
        let mut heads = Heads {
            cols: cols.len(),
            ..Heads::default()
        };
        if value.is_empty() {
            return Ok(heads);
        }
        let field = match filter {
            RecordColumn::UserId => Some("user"),
            RecordColumn::ClientIp => Some("ip"),
            _ => None,
        };
        let indexed = match (field, &self.inner.searcher) {
            (Some(field), Some(s)) => {
                // the payload before the search: the reader then holds at least these rows
                let upto = s.indexed_upto()?;
                let mut rowids: Vec<i64> = s
                    .rows_for_term(field, value)?
                    .into_iter()
                    .filter(|&(_, t)| t >= a && t < b)
                    .map(|(r, _)| r)
                    .collect();
                rowids.sort_unstable();
                rowids.dedup();
                Some((upto, rowids))
            }
            _ => None,
        };
        let mut select = String::from("SELECT r.rowid, r.creation_time");
        for c in cols {
            select.push_str(", ");
            select.push_str(c.sql());
        }
        let f = filter.sql();
        self.with_conn(|c| {
            match &indexed {
                Some((upto, rowids)) => {
                    for chunk in rowids.chunks(ROWID_CHUNK) {
                        let n = chunk.len();
                        let mut st = c.prepare_cached(&format!(
                            "{select} FROM records r WHERE r.rowid IN ({}) AND {f} = ?{} \
                             AND r.creation_time >= ?{} AND r.creation_time < ?{}",
                            placeholders(n),
                            n + 1,
                            n + 2,
                            n + 3
                        ))?;
                        let mut args: Vec<SqlValue> =
                            chunk.iter().map(|r| SqlValue::from(*r)).collect();
                        args.extend([value.to_string().into(), a.into(), b.into()]);
                        let mut q = st.query(rusqlite::params_from_iter(args))?;
                        while let Some(r) = q.next()? {
                            heads.push(r)?;
                        }
                    }
                    // The rows above the payload; the searcher may have seen some of them
                    // already (a commit between reading the payload and the search).
                    let mut st = c.prepare_cached(&format!(
                        "{select} FROM records r WHERE r.rowid > ?1 AND {f} = ?2 \
                         AND r.creation_time >= ?3 AND r.creation_time < ?4"
                    ))?;
                    let mut q = st.query(rusqlite::params![upto, value, a, b])?;
                    while let Some(r) = q.next()? {
                        if rowids.binary_search(&r.get(0)?).is_err() {
                            heads.push(r)?;
                        }
                    }
                }
                None => {
                    let mut st = c.prepare_cached(&format!(
                        "{select} FROM records r WHERE {f} = ?1 \
                         AND r.creation_time >= ?2 AND r.creation_time < ?3"
                    ))?;
                    let mut q = st.query(rusqlite::params![value, a, b])?;
                    while let Some(r) = q.next()? {
                        heads.push(r)?;
                    }
                }
            }
            Ok(())
        })?;
        Ok(heads)
    }

    /// The address with most records (not the empty one), for the bench's page of the
    /// busiest address: from the search index's term statistics, else a scan.
    pub fn ui_busiest_address(&self) -> Result<Option<String>> {
        if let Some(s) = &self.inner.searcher {
            return Ok(s.most_frequent_term("ip")?.map(|(ip, _)| ip));
        }
        self.with_conn(|c| {
            Ok(c.query_row(
                "SELECT client_ip FROM records WHERE client_ip <> '' GROUP BY client_ip \
                 ORDER BY count(*) DESC, client_ip LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    /// Detections that fired on these records: hit count and newest hit time each,
    /// most hits first.
    pub fn ui_detections_of_rowids(&self, rowids: &[i64]) -> Result<Vec<ValueCount>> {
        let mut m: std::collections::HashMap<String, (i64, i64)> = Default::default();
        self.with_conn(|c| {
            for chunk in rowids.chunks(ROWID_CHUNK) {
                let mut st = c.prepare_cached(&format!(
                    "SELECT d.name, count(*), max(h.creation_time) FROM hits h \
                     JOIN hit_detections d ON d.id = h.detection \
                     WHERE h.record_rowid IN ({}) GROUP BY h.detection",
                    placeholders(chunk.len())
                ))?;
                let rows = st.query_map(rusqlite::params_from_iter(chunk), |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?;
                for x in rows {
                    let (d, n, t) = x?;
                    let e = m.entry(d).or_insert((0, t));
                    e.0 += n;
                    e.1 = e.1.max(t);
                }
            }
            Ok(())
        })?;
        let mut v: Vec<ValueCount> = m
            .into_iter()
            .map(|(value, (count, last))| ValueCount {
                value,
                count,
                last_seen: db::secs_to_time(last),
            })
            .collect();
        v.sort_by(|x, y| y.count.cmp(&x.count).then(x.value.cmp(&y.value)));
        Ok(v)
    }

    /// Other records of the same user within `secs` either side of `rec`, oldest first.
    /// The user's records come from the search index (see `ui_profile`).
    pub fn ui_neighbours(
        &self,
        rec: &StoredRecord,
        secs: i64,
        limit: usize,
    ) -> Result<Vec<StoredRecord>> {
        let user = &rec.header.user_id;
        if user.is_empty() {
            return Ok(Vec::new());
        }
        let t = rec.header.creation_time.timestamp();
        let heads = self.profile_headers(
            RecordColumn::UserId,
            user,
            (
                t.saturating_sub(secs),
                t.saturating_add(secs).saturating_add(1),
            ),
            &[],
        )?;
        let mut rows: Vec<(i64, i64)> = heads
            .rows
            .into_iter()
            .filter(|&(rowid, _)| rowid != rec.rowid)
            .collect();
        rows.sort_unstable_by(|x, y| x.1.cmp(&y.1).then(x.0.cmp(&y.0)));
        rows.truncate(limit);
        let rowids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let mut out = self.records_by_rowids(&rowids)?;
        out.sort_by(|x, y| {
            x.header
                .creation_time
                .cmp(&y.header.creation_time)
                .then(x.rowid.cmp(&y.rowid))
        });
        Ok(out)
    }

    /// The blob `rec` was first stored from (its content id and record count), and up to
    /// `limit` other records of that blob in CreationTime order. `None` for a record
    /// without a blob (imported, or stored before migration 0003). Reads the partial index
    /// `records_blob`, never a scan.
    pub fn ui_same_blob(
        &self,
        rec: &StoredRecord,
        limit: usize,
    ) -> Result<Option<(BlobInfo, Vec<StoredRecord>)>> {
        let found = self.with_conn(|c| {
            Ok(c.prepare_cached(
                "SELECT b.id, b.content_id, b.content_type, \
                 (SELECT count(*) FROM records x WHERE x.blob_id = b.id) \
                 FROM records r JOIN blobs b ON b.id = r.blob_id WHERE r.rowid = ?1",
            )?
            .query_row([rec.rowid], |r| {
                Ok(BlobInfo {
                    id: r.get(0)?,
                    content_id: r.get(1)?,
                    content_type: r.get(2)?,
                    records: r.get(3)?,
                })
            })
            .optional()?)
        })?;
        let Some(blob) = found else {
            return Ok(None);
        };
        let rows = self.query_records(
            "r.blob_id = ? AND r.rowid <> ?",
            vec![blob.id.into(), rec.rowid.into(), (limit as i64).into()],
            "ORDER BY r.creation_time, r.rowid LIMIT ?",
        )?;
        Ok(Some((blob, rows)))
    }

    /// Number of stored records (rollup table).
    pub fn ui_record_count(&self) -> Result<i64> {
        self.with_conn(|c| {
            Ok(c.query_row(
                "SELECT coalesce(sum(count), 0) FROM agg_record_sources",
                [],
                |r| r.get(0),
            )?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{Detections, Vars};
    use std::sync::Arc;

    /// The rollups the writer keeps equal what a scan of `records` and `hits` says, and
    /// the index-backed profile equals the SQL scan.
    #[test]
    fn rollups_and_profiles_match_the_tables() {
        let dir = tempfile::tempdir().unwrap();
        let dets = Arc::new(Detections::load_embedded(Vars::default()));
        let store = Store::open(dir.path(), dets).unwrap();
        let raws = crate::corpus::synthetic_records(3000, 7);
        store.import_records("t", raws.clone()).wait().unwrap();
        // a duplicate changes nothing
        store
            .import_records("t", raws[..10].to_vec())
            .wait()
            .unwrap();
        store.flush().wait().unwrap();

        let scan = |sql: &str| -> Vec<(String, i64, i64)> {
            store
                .with_conn(|c| {
                    let mut st = c.prepare(sql)?;
                    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
                })
                .unwrap()
        };
        assert_eq!(store.ui_record_count().unwrap(), 3000);
        let mut hits: Vec<(String, i64, i64)> = store
            .ui_hit_summary()
            .unwrap()
            .into_iter()
            .map(|(d, n, t)| (d, n, t.timestamp()))
            .collect();
        hits.sort();
        let want = scan(
            "SELECT detection, count(*), max(creation_time) FROM hits_named GROUP BY 1 ORDER BY 1",
        );
        assert!(!want.is_empty(), "the synthetic records fire detections");
        assert_eq!(hits, want);
        // A distinct rule's values, extracted by SQLite, equal the details' own.
        let (det, _) = store
            .hit_counts()
            .unwrap()
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .unwrap();
        let first = store.hits(Some(&det), 0, 1).unwrap();
        let field = first[0]
            .details
            .as_object()
            .and_then(|o| o.keys().next().cloned())
            .expect("the busiest detection emits objects");
        let mut got: Vec<(String, i64, Option<String>)> = store
            .ui_hit_events(&det, None, Some(&field), None, None)
            .unwrap();
        let mut want: Vec<(String, i64, Option<String>)> = store
            .hits(Some(&det), 0, 1_000_000)
            .unwrap()
            .into_iter()
            .map(|h| {
                let v = h.details.get(&field).filter(|v| !v.is_null());
                (
                    h.group_key.to_string(),
                    h.creation_time.timestamp(),
                    v.map(|v| v.to_string()),
                )
            })
            .collect();
        assert!(
            !want.is_empty(),
            "the synthetic records hold failed sign-ins"
        );
        got.sort();
        want.sort();
        assert_eq!(got, want);
        for det in ["authentication", "brute_force_user"] {
            let (n, mut g) = store
                .ui_hit_groups(det, false, None, None, 100_000)
                .unwrap();
            let (m, mut h) = store
                .ui_hit_groups(det, false, Some(DateTime::<Utc>::UNIX_EPOCH), None, 100_000)
                .unwrap();
            assert_eq!(n, m);
            g.sort_by(|a, b| a.key.cmp(&b.key));
            h.sort_by(|a, b| a.key.cmp(&b.key));
            assert_eq!(g, h, "rollup and index agree for {det}");
        }
        let mut per_hour: Vec<(String, i64, i64)> = store
            .ui_records_per_hour(DateTime::<Utc>::UNIX_EPOCH)
            .unwrap()
            .into_iter()
            .map(|h| (h.key, h.hour, h.count))
            .collect();
        per_hour.sort();
        assert_eq!(
            per_hour,
            scan(
                "SELECT workload, creation_time / 3600, count(*) FROM records \
                 GROUP BY 1, 2 ORDER BY 1, 2"
            )
        );
        let mut last: Vec<(String, DateTime<Utc>)> = store.ui_workload_last_ingested().unwrap();
        last.sort();
        let want: Vec<(String, DateTime<Utc>)> =
            scan("SELECT workload, max(ingested_at), 0 FROM records GROUP BY 1 ORDER BY 1")
                .into_iter()
                .map(|(w, t, _)| (w, db::secs_to_time(t)))
                .collect();
        assert_eq!(last, want);

        let user = "user7@contoso.onmicrosoft.com";
        let p = store
            .ui_profile(
                RecordColumn::UserId,
                user,
                (None, None),
                (0, 5),
                &[RecordColumn::ClientIp, RecordColumn::Operation],
                1000,
            )
            .unwrap();
        // a later page holds the next records, newest first
        let page2 = store
            .ui_profile(RecordColumn::UserId, user, (None, None), (2, 2), &[], 0)
            .unwrap();
        let ids = |rs: &[StoredRecord]| rs.iter().map(|r| r.rowid).collect::<Vec<_>>();
        assert_eq!(ids(&page2.records), p.rowids[2..4.min(p.rowids.len())]);
        assert_eq!(page2.times.len(), p.rowids.len());
        let (total, recs) = store
            .ui_records_where(RecordColumn::UserId, user, None, None, 5)
            .unwrap();
        assert!(total > 0);
        assert_eq!(p.total, total);
        assert_eq!(p.records.len(), recs.len());
        assert!(p.records.iter().all(|r| r.header.user_id == user));
        let ops = store
            .ui_tally(
                RecordColumn::UserId,
                user,
                RecordColumn::Operation,
                None,
                None,
                1000,
            )
            .unwrap();
        let mut a: Vec<(String, i64)> = p.tallies[1]
            .iter()
            .map(|v| (v.value.clone(), v.count))
            .collect();
        let mut b: Vec<(String, i64)> = ops.iter().map(|v| (v.value.clone(), v.count)).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        let mut d: Vec<(String, i64)> = store
            .ui_detections_of_rowids(&p.rowids)
            .unwrap()
            .iter()
            .map(|v| (v.value.clone(), v.count))
            .collect();
        let mut e: Vec<(String, i64)> = store
            .ui_detections_of(RecordColumn::UserId, user, None, None)
            .unwrap()
            .iter()
            .map(|v| (v.value.clone(), v.count))
            .collect();
        d.sort();
        e.sort();
        assert_eq!(d, e);
        store.close().unwrap();
    }

    /// Records for the profile tests: few users and addresses, so each has hundreds of
    /// records; one user also appears with other letter case (the index matches both,
    /// the pages must not), some records have no address.
    fn profile_raws(n: u64) -> Vec<String> {
        let users = [
            "user1@contoso.onmicrosoft.com",
            "User1@Contoso.onmicrosoft.com",
            "user2@contoso.onmicrosoft.com",
            "user3@contoso.onmicrosoft.com",
            "user4@contoso.onmicrosoft.com",
        ];
        let ips = [
            "203.0.113.1",
            "203.0.113.2",
            "203.0.113.3",
            "198.51.100.7",
            "",
        ];
        crate::corpus::synthetic_records(n, 11)
            .into_iter()
            .enumerate()
            .map(|(i, raw)| {
                let mut v: serde_json::Value = serde_json::from_str(&raw).unwrap();
                // uneven shares, so counts differ and tallies have an order to keep
                v["UserId"] = users[(i * i + i / 3) % users.len()].into();
                v["ClientIP"] = ips[(i / 2 + i % 3) % ips.len()].into();
                v.to_string()
            })
            .collect()
    }

    /// Copies the store files of `from` into a new directory, the search index only
    /// when `index` names the index directory to take (it may come from elsewhere).
    fn copy_store(from: &std::path::Path, index: Option<&std::path::Path>) -> tempfile::TempDir {
        let to = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
            }
        }
        if let Some(ix) = index {
            let dst = to.path().join(super::super::index::INDEX_DIR);
            std::fs::create_dir(&dst).unwrap();
            for e in std::fs::read_dir(ix).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
            }
        }
        to
    }

    fn column(r: &StoredRecord, c: RecordColumn) -> &str {
        match c {
            RecordColumn::UserId => &r.header.user_id,
            RecordColumn::ClientIp => &r.header.client_ip,
            RecordColumn::Workload => &r.header.workload,
            RecordColumn::Operation => &r.header.operation,
        }
    }

    /// The user and IP pages (`ui_profile`) and the record page's neighbours
    /// (`ui_neighbours`) equal a plain computation over every stored record: total, order
    /// and times, the page, and each tally (values, counts, newest times, order, limit),
    /// with and without a time range; through the search index, through an index that
    /// lacks the newest records (the rows above its payload), and without an index.
    #[test]
    fn profiles_equal_a_plain_computation() {
        let raws = profile_raws(2400);
        let src = tempfile::tempdir().unwrap();
        let dets = Arc::new(Detections::load_embedded(Vars::default()));
        let ix = src.path().join(super::super::index::INDEX_DIR);
        let early_index = tempfile::tempdir().unwrap();
        {
            let store = Store::open(src.path(), dets.clone()).unwrap();
            store
                .import_records("t", raws[..1700].to_vec())
                .wait()
                .unwrap();
            store.flush().wait().unwrap();
            store.close().unwrap();
        }
        for e in std::fs::read_dir(&ix).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), early_index.path().join(e.file_name())).unwrap();
        }
        {
            let store = Store::open(src.path(), dets).unwrap();
            store
                .import_records("t", raws[1700..].to_vec())
                .wait()
                .unwrap();
            store.flush().wait().unwrap();
            store.close().unwrap();
        }
        let full = copy_store(src.path(), Some(&ix));
        let partial = copy_store(src.path(), Some(early_index.path()));
        let none = copy_store(src.path(), None);

        let all = Store::open_read_only(full.path())
            .unwrap()
            .query_records("1 = 1", vec![], "")
            .unwrap();
        assert_eq!(all.len(), 2400);
        assert!(
            all.iter()
                .any(|r| r.header.user_id == "User1@Contoso.onmicrosoft.com")
                && all.iter().any(|r| r.header.client_ip.is_empty()),
            "the records hold the cases the test is about"
        );
        let times: Vec<i64> = {
            let mut t: Vec<i64> = all
                .iter()
                .map(|r| r.header.creation_time.timestamp())
                .collect();
            t.sort();
            t
        };
        let at = |q: usize| DateTime::from_timestamp(times[times.len() * q / 4], 0).unwrap();
        let ranges = [
            (None, None),
            (Some(at(1)), Some(at(3))),
            (Some(at(2)), None),
        ];
        let user_groups = [
            RecordColumn::ClientIp,
            RecordColumn::Workload,
            RecordColumn::Operation,
        ];
        let ip_groups = [RecordColumn::UserId, RecordColumn::Operation];
        let cases: Vec<(RecordColumn, &str, &[RecordColumn])> = vec![
            (
                RecordColumn::UserId,
                "user1@contoso.onmicrosoft.com",
                &user_groups,
            ),
            (
                RecordColumn::UserId,
                "User1@Contoso.onmicrosoft.com",
                &user_groups,
            ),
            (
                RecordColumn::UserId,
                "USER1@CONTOSO.ONMICROSOFT.COM",
                &user_groups,
            ),
            (
                RecordColumn::UserId,
                "user3@contoso.onmicrosoft.com",
                &user_groups,
            ),
            (RecordColumn::ClientIp, "203.0.113.1", &ip_groups),
            (RecordColumn::ClientIp, "198.51.100.7", &ip_groups),
            (RecordColumn::ClientIp, "192.0.2.99", &ip_groups),
            (RecordColumn::ClientIp, "", &ip_groups),
        ];

        for (name, dir) in [
            ("index", &full),
            ("index and tail", &partial),
            ("scan", &none),
        ] {
            let store = Store::open_read_only(dir.path()).unwrap();
            match (name, &store.inner.searcher) {
                ("scan", s) => assert!(s.is_none()),
                ("index and tail", Some(s)) => {
                    let upto = s.indexed_upto().unwrap();
                    assert!(upto > 0 && all.iter().any(|r| r.rowid > upto));
                }
                (_, s) => assert!(s.is_some()),
            }
            for (filter, value, groups) in &cases {
                for (from, to) in ranges {
                    let (a, b) = bounds(from, to);
                    let mut want: Vec<&StoredRecord> = all
                        .iter()
                        .filter(|r| {
                            let t = r.header.creation_time.timestamp();
                            !value.is_empty() && column(r, *filter) == *value && t >= a && t < b
                        })
                        .collect();
                    want.sort_by(|x, y| {
                        y.header
                            .creation_time
                            .cmp(&x.header.creation_time)
                            .then(y.rowid.cmp(&x.rowid))
                    });
                    let ctx = format!("{name}: {filter:?} {value:?} {from:?}..{to:?}");
                    let p = store
                        .ui_profile(*filter, value, (from, to), (7, 5), groups, 3)
                        .unwrap();
                    assert_eq!(p.total as usize, want.len(), "{ctx}");
                    let ids = |rs: &[&StoredRecord]| rs.iter().map(|r| r.rowid).collect::<Vec<_>>();
                    assert_eq!(p.rowids, ids(&want), "{ctx}");
                    let t: Vec<i64> = want
                        .iter()
                        .map(|r| r.header.creation_time.timestamp())
                        .collect();
                    assert_eq!(p.times, t, "{ctx}");
                    let page: Vec<i64> = p.records.iter().map(|r| r.rowid).collect();
                    let want_page: Vec<&StoredRecord> =
                        want.iter().skip(7).take(5).copied().collect();
                    assert_eq!(page, ids(&want_page), "{ctx}");
                    assert_eq!(p.tallies.len(), groups.len());
                    for (g, got) in groups.iter().zip(&p.tallies) {
                        let mut m: std::collections::BTreeMap<&str, (i64, i64)> =
                            Default::default();
                        for r in &want {
                            let v = column(r, *g);
                            if !v.is_empty() {
                                let t = r.header.creation_time.timestamp();
                                let e = m.entry(v).or_insert((0, t));
                                e.0 += 1;
                                e.1 = e.1.max(t);
                            }
                        }
                        let mut expect: Vec<(String, i64, i64)> = m
                            .into_iter()
                            .map(|(v, (n, t))| (v.to_string(), n, t))
                            .collect();
                        expect
                            .sort_by(|x, y| y.1.cmp(&x.1).then(y.2.cmp(&x.2)).then(x.0.cmp(&y.0)));
                        expect.truncate(3);
                        let got: Vec<(String, i64, i64)> = got
                            .iter()
                            .map(|v| (v.value.clone(), v.count, v.last_seen.timestamp()))
                            .collect();
                        assert_eq!(got, expect, "{ctx}: tally of {g:?}");
                    }
                }
            }
            if name != "index and tail" {
                let mut per: std::collections::BTreeMap<&str, i64> = Default::default();
                for r in all.iter().filter(|r| !r.header.client_ip.is_empty()) {
                    *per.entry(&r.header.client_ip).or_default() += 1;
                }
                let busiest = per
                    .into_iter()
                    .max_by(|x, y| x.1.cmp(&y.1).then(y.0.cmp(x.0)))
                    .map(|(ip, _)| ip.to_string());
                assert_eq!(store.ui_busiest_address().unwrap(), busiest, "{name}");
            }
            // the record page's neighbours: same user exactly, within the window
            for r in all.iter().step_by(97) {
                let t0 = r.header.creation_time.timestamp();
                let secs = 3600;
                let mut want: Vec<&StoredRecord> = all
                    .iter()
                    .filter(|x| {
                        let t = x.header.creation_time.timestamp();
                        x.header.user_id == r.header.user_id
                            && x.rowid != r.rowid
                            && t >= t0 - secs
                            && t <= t0 + secs
                    })
                    .collect();
                want.sort_by_key(|x| (x.header.creation_time, x.rowid));
                want.truncate(4);
                let got: Vec<i64> = store
                    .ui_neighbours(r, secs, 4)
                    .unwrap()
                    .iter()
                    .map(|x| x.rowid)
                    .collect();
                assert_eq!(
                    got,
                    want.iter().map(|x| x.rowid).collect::<Vec<_>>(),
                    "{name}: neighbours of {}",
                    r.rowid
                );
            }
        }
    }
}
