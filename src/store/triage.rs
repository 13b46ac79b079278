//! Triage of detection groups: the analyst's state (new, investigating, false positive,
//! resolved), assignee and notes per (detection, group key), in the tables `triage` and
//! `triage_notes` (migration 0007), and the reopen rule.
//!
//! These are the only rows the web UI and `m365audit triage` write. They go through a
//! [`TriageWriter`], a connection of its own that touches nothing but these two tables:
//! records, hits, cursors and config are never written here. It is opened next to a
//! read-only store too (`serve`, safe beside a running collector: SQLite serialises the
//! two writers), and refused where the database cannot be written (read-only media).
//!
//! The reopen rule: a group whose state is resolved or false positive and that received
//! hits after that state was set (hits.id above the stored `hit_mark`) is *reopened*; the
//! stored state stays as the analyst set it, the reopening is derived on every read, so
//! it cannot be lost or raced. Setting a state again moves the mark (the analyst saw them).

use super::*;
use anyhow::bail;

/// An analyst's decision on a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TriageState {
    New,
    Investigating,
    FalsePositive,
    Resolved,
}

impl TriageState {
    pub const ALL: [TriageState; 4] = [
        TriageState::New,
        TriageState::Investigating,
        TriageState::FalsePositive,
        TriageState::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TriageState::New => "new",
            TriageState::Investigating => "investigating",
            TriageState::FalsePositive => "false_positive",
            TriageState::Resolved => "resolved",
        }
    }

    /// Words for a page or a table ("false positive").
    pub fn label(self) -> &'static str {
        match self {
            TriageState::FalsePositive => "false positive",
            s => s.as_str(),
        }
    }

    /// Parses `new`, `investigating`, `false_positive` (or `false-positive`, `false
    /// positive`) and `resolved`; anything else is a usage error naming the choices.
    pub fn parse(s: &str) -> Result<TriageState> {
        let norm = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        TriageState::ALL
            .into_iter()
            .find(|t| t.as_str() == norm)
            .ok_or_else(|| {
                crate::UsageError(format!(
                    "unknown triage state {s:?}: use new, investigating, false_positive or resolved"
                ))
                .into()
            })
    }

    /// States that close a group until new hits reopen it.
    pub fn is_closed(self) -> bool {
        matches!(self, TriageState::FalsePositive | TriageState::Resolved)
    }
}

/// Longest note kept (characters); a longer one is refused, not cut.
pub const MAX_NOTE_CHARS: usize = 4000;
/// Longest assignee or author text.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest group key (bytes of its JSON text).
pub const MAX_KEY_BYTES: usize = 64 * 1024;

/// One change to a group's triage. `None` leaves the state or assignee as it is; an empty
/// note adds none (a change of state or assignee is still written to the history).
#[derive(Debug, Clone, Default)]
pub struct TriageChange {
    pub detection: String,
    /// The group key as the detection page shows it (JSON); stored in canonical form.
    pub key: String,
    pub state: Option<TriageState>,
    pub assignee: Option<String>,
    pub note: String,
    /// Who wrote it, as free text (the UI has no accounts): e.g. `web UI`, `cli:alice`.
    pub author: String,
}

/// One entry of a group's history.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TriageNote {
    pub at: DateTime<Utc>,
    pub author: String,
    pub state: TriageState,
    pub assignee: String,
    pub note: String,
}

/// A group's triage as read, with the reopen rule applied.
#[derive(Debug, Clone, Serialize)]
pub struct TriageRow {
    pub detection: String,
    pub key: String,
    /// The state the analyst set.
    pub state: TriageState,
    pub assignee: String,
    /// When the state was last set.
    pub state_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The highest hits.id when the state was set.
    #[serde(skip)]
    pub hit_mark: i64,
    /// Hits of the group stored after the state was set (for a threshold detection: only
    /// those inside a burst).
    pub new_hits: u64,
    /// A closed state (resolved, false positive) with new hits since.
    pub reopened: bool,
    /// Oldest first.
    pub notes: Vec<TriageNote>,
}

impl TriageRow {
    /// What the group is now: `reopened` for a closed group with new hits, else its state.
    pub fn effective(&self) -> &'static str {
        if self.reopened {
            "reopened"
        } else {
            self.state.as_str()
        }
    }

    /// "reopened: 3 new hits since resolved", "2 new hits since investigating", or empty.
    pub fn since_text(&self) -> String {
        if self.new_hits == 0 {
            return String::new();
        }
        let hits = if self.new_hits == 1 { "hit" } else { "hits" };
        let head = if self.reopened { "reopened: " } else { "" };
        format!(
            "{head}{} new {hits} since {}",
            self.new_hits,
            self.state.label()
        )
    }
}

/// The canonical text of a group key: JSON re-serialised (object keys sorted), as the
/// store keeps group keys and details, so the page's key and the stored one compare equal.
pub fn canonical_key(key: &str) -> Result<String> {
    if key.len() > MAX_KEY_BYTES {
        bail!(crate::UsageError(format!(
            "the group key is longer than {MAX_KEY_BYTES} bytes"
        )));
    }
    let v: Value = serde_json::from_str(key.trim()).map_err(|e| {
        crate::UsageError(format!(
            "the group key is not JSON ({e}): give it as the detection page or `detect \
             --format json` shows it, e.g. '{{\"UserId\":\"alice@contoso.com\"}}'"
        ))
    })?;
    Ok(v.to_string())
}

fn check_text(what: &str, s: &str, max: usize) -> Result<()> {
    if s.chars().count() > max {
        bail!(crate::UsageError(format!(
            "the {what} is longer than {max} characters"
        )));
    }
    if s.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        bail!(crate::UsageError(format!(
            "the {what} holds control characters"
        )));
    }
    Ok(())
}

/// The connection that writes triage, and only triage (see the module docs).
pub struct TriageWriter {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for TriageWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TriageWriter")
    }
}

impl Store {
    /// Opens the triage writer of this store's database, or says why it cannot be
    /// written (read-only media, a file of another user, an older schema). Creates no
    /// database: the store must exist.
    pub fn triage_writer(&self) -> Result<TriageWriter> {
        let path = &self.inner.db_path;
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .with_context(|| format!("opening {} for triage", path.display()))?;
        // SQLite opens a file it may not write read-only instead of failing.
        if conn.is_readonly(rusqlite::MAIN_DB)? {
            bail!(
                "{} cannot be written (read-only file or media)",
                path.display()
            );
        }
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if v != db::SCHEMA_VERSION {
            bail!(
                "the store has schema version {v}, triage needs {}; run `m365audit collect` \
                 or `m365audit import` once to migrate it",
                db::SCHEMA_VERSION
            );
        }
        // Proves the file can be written now (not only opened): takes and drops the
        // write lock.
        conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
            .with_context(|| format!("{} cannot be written", path.display()))?;
        Ok(TriageWriter {
            conn: Mutex::new(conn),
        })
    }

    /// Every triaged group (of one detection, or all), with its notes and the reopen rule
    /// applied, hits matched as `detections` groups them: a detection without group_by
    /// on its emitted details, and a threshold detection counting only its hits inside a
    /// burst (raw hits of such a rule are not alerts: they reopen nothing).
    pub fn triage_rows(
        &self,
        detection: Option<&str>,
        detections: &Detections,
    ) -> Result<Vec<TriageRow>> {
        let mut rows = self.with_conn(|c| read_rows(c, detection))?;
        for r in &mut rows {
            let meta = detections.meta(&r.detection);
            r.new_hits = match meta.and_then(|m| m.threshold.map(|t| (m, t))) {
                Some((m, t)) => self.new_burst_hits(m, t, &r.key, r.hit_mark)?,
                None => {
                    let by_details = meta.is_none_or(|m| m.group_by.is_empty());
                    self.with_conn(|c| {
                        new_hits_since(c, &r.detection, &r.key, r.hit_mark, by_details)
                    })?
                }
            };
            r.reopened = r.state.is_closed() && r.new_hits > 0;
        }
        Ok(rows)
    }

    /// Hits of one key of a threshold detection stored after `mark` that lie inside one of
    /// the key's bursts (`detect::threshold_groups_of_stored`, the rule every surface
    /// counts by).
    fn new_burst_hits(
        &self,
        meta: &crate::detect::Meta,
        t: crate::detect::Threshold,
        key: &str,
        mark: i64,
    ) -> Result<u64> {
        let times: Vec<i64> = self.with_conn(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT creation_time FROM hits INDEXED BY hits_group \
                 WHERE detection = {} AND grp = {} AND id > ?3",
                db::detection_id("?1"),
                db::group_id("?1", "?2")
            ))?;
            let rows = st.query_map(params![meta.id, key, mark], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })?;
        if times.is_empty() {
            return Ok(0);
        }
        let events =
            self.ui_hit_events(&meta.id, Some(key), meta.distinct.as_deref(), None, None)?;
        let bursts = crate::detect::threshold_groups_of_stored(meta, t, &events);
        let inside = times
            .iter()
            .filter(|s| {
                bursts
                    .iter()
                    .any(|g| g.first_seen.timestamp() <= **s && **s <= g.last_seen.timestamp())
            })
            .count();
        Ok(inside as u64)
    }
}

impl Store {
    /// The highest hits.id (0 without hits): what a cache of group counts is valid for.
    pub fn max_hit_id(&self) -> Result<i64> {
        self.with_conn(|c| {
            Ok(c.prepare_cached("SELECT coalesce(max(id), 0) FROM hits")?
                .query_row([], |r| r.get(0))?)
        })
    }

    /// How many groups one detection has: stored group keys, or with `by_details` distinct
    /// emitted details (a detection without group_by). Reads the rollup table, or that
    /// detection's hits for `by_details`.
    pub fn group_count(&self, detection: &str, by_details: bool) -> Result<u64> {
        self.with_conn(|c| {
            let sql = if by_details {
                format!(
                    "SELECT count(DISTINCT {}) FROM hits h WHERE h.detection = {}",
                    db::HIT_DETAILS,
                    db::detection_id("?1")
                )
            } else {
                "SELECT count(*) FROM agg_hit_groups WHERE detection = ?1".to_string()
            };
            let n: i64 = c
                .prepare_cached(&sql)?
                .query_row([detection], |r| r.get(0))?;
            Ok(n.max(0) as u64)
        })
    }

    /// Whether `key` (any JSON spelling) names a group of `detection` as its page shows
    /// them: a usage error naming what is wrong when not (an unknown detection, a key that
    /// is no group of it). A change is only written for a group that exists.
    pub fn check_group(&self, detections: &Detections, detection: &str, key: &str) -> Result<()> {
        let key = canonical_key(key)?;
        let meta = detections.meta(detection);
        let known = match meta {
            Some(m) => match m.threshold {
                Some(t) => {
                    let events =
                        self.ui_hit_events(&m.id, Some(&key), m.distinct.as_deref(), None, None)?;
                    !crate::detect::threshold_groups_of_stored(m, t, &events).is_empty()
                }
                None => self.group_exists(detection, &key, m.group_by.is_empty())?,
            },
            None => {
                if self.group_count(detection, false)? == 0 {
                    bail!(crate::UsageError(format!(
                        "there is no detection {detection:?} with hits in this store"
                    )));
                }
                self.group_exists(detection, &key, true)?
                    || self.group_exists(detection, &key, false)?
            }
        };
        if !known {
            bail!(crate::UsageError(format!(
                "{key} is no group of {detection}: give the key as its detection page or \
                 `detect --format json` shows it"
            )));
        }
        Ok(())
    }

    /// Whether `key` (canonical JSON text) is a group of the detection, as `group_count`
    /// counts them.
    pub fn group_exists(&self, detection: &str, key: &str, by_details: bool) -> Result<bool> {
        self.with_conn(|c| {
            let sql = if by_details {
                format!(
                    "SELECT 1 FROM hits h WHERE h.detection = {} AND {} = ?2 LIMIT 1",
                    db::detection_id("?1"),
                    db::HIT_DETAILS
                )
            } else {
                "SELECT 1 FROM agg_hit_groups WHERE detection = ?1 AND group_key = ?2".to_string()
            };
            Ok(c.prepare_cached(&sql)?
                .query_row(params![detection, key], |_| Ok(()))
                .optional()?
                .is_some())
        })
    }
}

/// The stored rows with their notes; `new_hits` and `reopened` are left for the caller.
fn read_rows(c: &Connection, detection: Option<&str>) -> Result<Vec<TriageRow>> {
    let mut st = c.prepare_cached(
        "SELECT detection, group_key, state, assignee, state_at, hit_mark, updated_at \
         FROM triage WHERE ?1 IS NULL OR detection = ?1 ORDER BY detection, updated_at DESC",
    )?;
    let rows = st
        .query_map([detection], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (det, key, state, assignee, state_at, mark, updated_at) in rows {
        // A state this build does not know (a newer one wrote it) shows as new.
        let state = TriageState::parse(&state).unwrap_or(TriageState::New);
        out.push(TriageRow {
            notes: notes_of(c, &det, &key)?,
            reopened: false,
            detection: det,
            key,
            state,
            assignee,
            state_at: db::secs_to_time(state_at),
            updated_at: db::secs_to_time(updated_at),
            hit_mark: mark,
            new_hits: 0,
        });
    }
    Ok(out)
}

/// Hits of one group stored after `mark` (a hits.id). The stored group key is read from
/// the covering index `hits_group` (by group id); emitted details from the hits themselves.
fn new_hits_since(
    c: &Connection,
    detection: &str,
    key: &str,
    mark: i64,
    by_details: bool,
) -> Result<u64> {
    let det = db::detection_id("?1");
    let sql = if by_details {
        format!(
            "SELECT count(*) FROM hits h WHERE h.detection = {det} AND {} = ?2 AND h.id > ?3",
            db::HIT_DETAILS
        )
    } else {
        format!(
            "SELECT count(*) FROM hits INDEXED BY hits_group \
             WHERE detection = {det} AND grp = {} AND id > ?3",
            db::group_id("?1", "?2")
        )
    };
    let n: i64 = c
        .prepare_cached(&sql)?
        .query_row(params![detection, key, mark], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

fn notes_of(c: &Connection, detection: &str, key: &str) -> Result<Vec<TriageNote>> {
    let mut st = c.prepare_cached(
        "SELECT at, author, state, assignee, note FROM triage_notes \
         WHERE detection = ?1 AND group_key = ?2 ORDER BY id",
    )?;
    let rows = st.query_map(params![detection, key], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (at, author, state, assignee, note) = row?;
        out.push(TriageNote {
            at: db::secs_to_time(at),
            author,
            state: TriageState::parse(&state).unwrap_or(TriageState::New),
            assignee,
            note,
        });
    }
    Ok(out)
}

impl TriageWriter {
    /// Applies one change at `now` in one transaction: the group's row (created as `new`
    /// when missing) and one history entry. Setting a state moves the group's hit mark to
    /// the newest stored hit. A change that changes nothing and has no note is refused.
    /// Returns the group key as stored (canonical).
    pub fn apply(&self, change: &TriageChange, now: DateTime<Utc>) -> Result<String> {
        let detection = change.detection.trim();
        if detection.is_empty() {
            bail!(crate::UsageError("which detection? give its id".into()));
        }
        check_text("detection id", detection, MAX_NAME_CHARS)?;
        let key = canonical_key(&change.key)?;
        let note = change.note.trim();
        check_text("note", note, MAX_NOTE_CHARS)?;
        let assignee = change.assignee.as_deref().map(str::trim);
        if let Some(a) = assignee {
            check_text("assignee", a, MAX_NAME_CHARS)?;
        }
        let author = change.author.trim();
        check_text("author", author, MAX_NAME_CHARS)?;
        if change.state.is_none() && assignee.is_none() && note.is_empty() {
            bail!(crate::UsageError(
                "nothing to change: give a state, an assignee or a note".into()
            ));
        }
        let mut conn = self.conn.lock().map_err(poisoned)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now_s = now.timestamp();
        let old: Option<(String, String)> = tx
            .query_row(
                "SELECT state, assignee FROM triage WHERE detection = ?1 AND group_key = ?2",
                params![detection, key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (old_state, old_assignee) = match &old {
            Some((s, a)) => (TriageState::parse(s).unwrap_or(TriageState::New), a.clone()),
            None => (TriageState::New, String::new()),
        };
        let state = change.state.unwrap_or(old_state);
        let assignee = assignee.map(str::to_string).unwrap_or(old_assignee);
        let mark: i64 = tx.query_row("SELECT coalesce(max(id), 0) FROM hits", [], |r| r.get(0))?;
        match (old.is_some(), change.state.is_some()) {
            (false, _) => {
                tx.execute(
                    "INSERT INTO triage (detection, group_key, state, assignee, state_at, \
                     hit_mark, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?5)",
                    params![detection, key, state.as_str(), assignee, now_s, mark],
                )?;
            }
            (true, true) => {
                tx.execute(
                    "UPDATE triage SET state = ?3, assignee = ?4, state_at = ?5, hit_mark = ?6, \
                     updated_at = ?5 WHERE detection = ?1 AND group_key = ?2",
                    params![detection, key, state.as_str(), assignee, now_s, mark],
                )?;
            }
            (true, false) => {
                tx.execute(
                    "UPDATE triage SET assignee = ?3, updated_at = ?4 \
                     WHERE detection = ?1 AND group_key = ?2",
                    params![detection, key, assignee, now_s],
                )?;
            }
        }
        tx.execute(
            "INSERT INTO triage_notes (detection, group_key, at, author, state, assignee, note) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                detection,
                key,
                now_s,
                author,
                state.as_str(),
                assignee,
                note
            ],
        )?;
        tx.commit()?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Detections;
    use chrono::Duration;

    fn brute_force_record(id: &str, user: &str, minute: u32) -> String {
        failure_at(id, user, 10, minute)
    }

    fn failure_at(id: &str, user: &str, hour: u32, minute: u32) -> String {
        serde_json::json!({
            "Id": id,
            "CreationTime": format!("2026-05-04T{hour:02}:{minute:02}:00"),
            "Operation": "UserLoginFailed",
            "Workload": "AzureActiveDirectory",
            "RecordType": 15,
            "UserId": user,
            "ClientIP": "203.0.113.9",
            "OrganizationId": "org",
            "LogonError": "InvalidPassword",
        })
        .to_string()
    }

    fn store_with_hits() -> (tempfile::TempDir, Store, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let dets = Arc::new(Detections::load_embedded(crate::detect::Vars::default()));
        let store = Store::open(dir.path(), dets).unwrap();
        let raws = (0..3)
            .map(|i| brute_force_record(&format!("r{i}"), "alice@contoso.com", i))
            .collect();
        let out = store.import_records("t", raws).wait().unwrap();
        assert!(out.hits > 0, "the records must fire a detection: {out:?}");
        let hit = store
            .hits_of_record(1)
            .unwrap()
            .into_iter()
            .find(|h| h.detection == "authentication_outcomes")
            .expect("authentication_outcomes fired");
        let key = hit.group_key.to_string();
        (dir, store, hit.detection, key)
    }

    fn row(store: &Store, det: &str, key: &str) -> TriageRow {
        let dets = Detections::load_embedded(crate::detect::Vars::default());
        store
            .triage_rows(Some(det), &dets)
            .unwrap()
            .into_iter()
            .find(|r| r.key == key)
            .unwrap()
    }

    fn set(w: &TriageWriter, det: &str, key: &str, s: TriageState, at: DateTime<Utc>) {
        w.apply(
            &TriageChange {
                detection: det.into(),
                key: key.into(),
                state: Some(s),
                author: "test".into(),
                ..Default::default()
            },
            at,
        )
        .unwrap();
    }

    #[test]
    fn states_parse_in_every_spelling_and_refuse_others() {
        for s in TriageState::ALL {
            assert_eq!(TriageState::parse(s.as_str()).unwrap(), s);
            assert_eq!(TriageState::parse(s.label()).unwrap(), s);
        }
        assert_eq!(
            TriageState::parse("False-Positive").unwrap(),
            TriageState::FalsePositive
        );
        let e = TriageState::parse("closed").unwrap_err();
        assert!(e.is::<crate::UsageError>());
        assert!(TriageState::Resolved.is_closed() && TriageState::FalsePositive.is_closed());
        assert!(!TriageState::New.is_closed() && !TriageState::Investigating.is_closed());
    }

    #[test]
    fn transitions_keep_state_assignee_and_history() {
        let (_d, store, det, key) = store_with_hits();
        let w = store.triage_writer().unwrap();
        let t0 = Utc::now();
        // an assignee alone creates the group as new
        w.apply(
            &TriageChange {
                detection: det.clone(),
                key: key.clone(),
                assignee: Some("bob".into()),
                author: "test".into(),
                ..Default::default()
            },
            t0,
        )
        .unwrap();
        let r = row(&store, &det, &key);
        assert_eq!((r.state, r.assignee.as_str()), (TriageState::New, "bob"));
        set(&w, &det, &key, TriageState::Investigating, t0);
        // a note alone keeps state and assignee
        w.apply(
            &TriageChange {
                detection: det.clone(),
                key: key.clone(),
                note: "looked at the sign-ins".into(),
                author: "carol".into(),
                ..Default::default()
            },
            t0 + Duration::seconds(5),
        )
        .unwrap();
        set(
            &w,
            &det,
            &key,
            TriageState::Resolved,
            t0 + Duration::seconds(9),
        );
        set(
            &w,
            &det,
            &key,
            TriageState::Investigating,
            t0 + Duration::seconds(12),
        );
        let r = row(&store, &det, &key);
        assert_eq!(r.state, TriageState::Investigating);
        assert_eq!(r.assignee, "bob");
        let states: Vec<&str> = r.notes.iter().map(|n| n.state.as_str()).collect();
        assert_eq!(
            states,
            [
                "new",
                "investigating",
                "investigating",
                "resolved",
                "investigating"
            ]
        );
        assert_eq!(r.notes[2].note, "looked at the sign-ins");
        assert_eq!(r.notes[2].author, "carol");
        assert!(!r.reopened && r.new_hits == 0);
        // nothing to change, a key that is no JSON, an overlong note: refused
        for bad in [
            TriageChange {
                detection: det.clone(),
                key: key.clone(),
                ..Default::default()
            },
            TriageChange {
                detection: det.clone(),
                key: "alice".into(),
                note: "x".into(),
                ..Default::default()
            },
            TriageChange {
                detection: det.clone(),
                key: key.clone(),
                note: "x".repeat(MAX_NOTE_CHARS + 1),
                ..Default::default()
            },
            TriageChange {
                detection: det.clone(),
                key: key.clone(),
                note: "bell\u{7}".into(),
                ..Default::default()
            },
        ] {
            let e = w.apply(&bad, t0).unwrap_err();
            assert!(e.chain().any(|e| e.is::<crate::UsageError>()), "{e:#}");
        }
        assert_eq!(row(&store, &det, &key).notes.len(), 5);
        store.close().unwrap();
    }

    #[test]
    fn new_hits_reopen_a_closed_group_until_it_is_set_again() {
        let (_d, store, det, key) = store_with_hits();
        let w = store.triage_writer().unwrap();
        // the key in another spelling (spaces) is the same group
        let spaced = key.replace(':', ": ");
        set(&w, &det, &spaced, TriageState::Resolved, Utc::now());
        let r = row(&store, &det, &key);
        assert!(!r.reopened && r.new_hits == 0 && r.since_text().is_empty());

        let more = (3..5)
            .map(|i| brute_force_record(&format!("r{i}"), "alice@contoso.com", i))
            .collect();
        store.import_records("t", more).wait().unwrap();
        // a hit of another group does not count
        let other = vec![brute_force_record("r9", "mallory@contoso.com", 9)];
        store.import_records("t", other).wait().unwrap();
        assert_eq!(store.group_count(&det, false).unwrap(), 2);
        let dets = Detections::load_embedded(crate::detect::Vars::default());
        store.check_group(&dets, &det, &spaced).unwrap();
        for (d, k) in [(det.as_str(), "{}"), ("no_such_detection", key.as_str())] {
            let e = store.check_group(&dets, d, k).unwrap_err();
            assert!(e.is::<crate::UsageError>(), "{e:#}");
        }
        assert!(store.group_exists(&det, &key, false).unwrap());
        assert!(!store.group_exists(&det, "{}", false).unwrap());
        let r = row(&store, &det, &key);
        assert!(r.reopened, "{r:?}");
        assert_eq!(r.new_hits, 2);
        assert_eq!(r.effective(), "reopened");
        assert_eq!(r.since_text(), "reopened: 2 new hits since resolved");
        assert_eq!(r.state, TriageState::Resolved, "the stored state stays");

        // setting a state again moves the mark: the new hits are seen
        set(&w, &det, &key, TriageState::FalsePositive, Utc::now());
        let r = row(&store, &det, &key);
        assert!(!r.reopened && r.new_hits == 0);

        // an open state is never reopened, but says what is new
        set(&w, &det, &key, TriageState::Investigating, Utc::now());
        let again = vec![brute_force_record("r7", "alice@contoso.com", 7)];
        store.import_records("t", again).wait().unwrap();
        let r = row(&store, &det, &key);
        assert!(!r.reopened);
        assert_eq!(r.since_text(), "1 new hit since investigating");
        store.close().unwrap();
    }

    #[test]
    fn only_hits_inside_a_burst_reopen_a_threshold_group() {
        let dir = tempfile::tempdir().unwrap();
        let dets = Arc::new(Detections::load_embedded(crate::detect::Vars::default()));
        let m = dets
            .meta("brute_force_user")
            .expect("brute_force_user is embedded");
        let need = m.threshold.expect("a threshold rule").count as u32;
        let store = Store::open(dir.path(), dets.clone()).unwrap();
        let user = "erin@contoso.com";
        let burst = |hour: u32, tag: &str| -> Vec<String> {
            (0..need)
                .map(|i| failure_at(&format!("{tag}{i}"), user, hour, i))
                .collect()
        };
        let key = serde_json::json!({"UserId": user}).to_string();
        // hits below the threshold are no group of a threshold rule
        let few: Vec<String> = burst(8, "f").into_iter().take(2).collect();
        store.import_records("t", few).wait().unwrap();
        assert!(store.check_group(&dets, "brute_force_user", &key).is_err());
        store.import_records("t", burst(10, "a")).wait().unwrap();
        store.check_group(&dets, "brute_force_user", &key).unwrap();
        let w = store.triage_writer().unwrap();
        set(
            &w,
            "brute_force_user",
            &key,
            TriageState::Resolved,
            Utc::now(),
        );
        let row = |s: &Store| {
            s.triage_rows(Some("brute_force_user"), &dets)
                .unwrap()
                .into_iter()
                .find(|r| r.key == key)
                .unwrap()
        };
        // one more failure hours later is a hit of the key, but below the threshold
        let lone = vec![failure_at("lone", user, 14, 0)];
        store.import_records("t", lone).wait().unwrap();
        let r = row(&store);
        assert!(!r.reopened && r.new_hits == 0, "{r:?}");
        // a new burst reopens it, counting the hits inside it only
        store.import_records("t", burst(18, "b")).wait().unwrap();
        let r = row(&store);
        assert!(r.reopened, "{r:?}");
        assert_eq!(r.new_hits, u64::from(need));
        store.close().unwrap();
    }

    #[test]
    fn a_read_only_store_cannot_be_triaged() {
        let (d, store, _det, _key) = store_with_hits();
        store.close().unwrap();
        let ro = Store::open_read_only(d.path()).unwrap();
        assert!(ro.triage_writer().is_ok(), "a writable file can be triaged");
        use std::os::unix::fs::PermissionsExt;
        let db = d.path().join(DB_FILE);
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o400)).unwrap();
        // root writes anyway; the rule is then only checkable as another user
        let writable_anyway = std::fs::OpenOptions::new().write(true).open(&db).is_ok();
        if !writable_anyway {
            let ro = Store::open_read_only(d.path()).unwrap();
            assert!(ro.triage_writer().is_err());
        }
    }
}
