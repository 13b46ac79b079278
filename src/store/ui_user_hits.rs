//! The hits of one detection on records of one user, for the detection page filtered to
//! a user (the user page links there). Reads only; the UI aggregates them.

use super::{Store, db};
use anyhow::Result;
use chrono::{DateTime, Utc};

/// One hit of a user's record: its stored group key, the emitted details and the
/// record's CreationTime.
#[derive(Debug, Clone, PartialEq)]
pub struct UserHit {
    pub record_rowid: i64,
    pub group_key: String,
    pub details: String,
    pub time: DateTime<Utc>,
}

impl Store {
    /// Every hit of `detection` in `[from, to)` whose record's UserId is exactly `user`
    /// (at most `limit`, newest first).
    pub fn ui_user_hits(
        &self,
        detection: &str,
        user: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<UserHit>> {
        let a = from.map(|t| t.timestamp()).unwrap_or(i64::MIN);
        let b = to.map(|t| t.timestamp()).unwrap_or(i64::MAX);
        self.with_conn(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT h.record_rowid, g.group_key, coalesce(h.details, g.group_key), \
                 h.creation_time FROM hits h INDEXED BY hits_detection \
                 JOIN records r ON r.rowid = h.record_rowid JOIN hit_groups g ON g.id = h.grp \
                 WHERE h.detection = {} AND h.creation_time >= ?2 AND h.creation_time < ?3 \
                 AND r.user_id = ?4 ORDER BY h.creation_time DESC LIMIT ?5",
                db::detection_id("?1")
            ))?;
            let rows = st.query_map(
                rusqlite::params![detection, a, b, user, limit.min(i64::MAX as usize) as i64],
                |r| {
                    Ok(UserHit {
                        record_rowid: r.get(0)?,
                        group_key: r.get(1)?,
                        details: r.get(2)?,
                        time: db::secs_to_time(r.get(3)?),
                    })
                },
            )?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}
