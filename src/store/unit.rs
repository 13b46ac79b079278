//! Units of work inside the writer's transaction group: what makes one write atomic while
//! up to 64 of them share a transaction. It owns the rule for when a unit needs a savepoint
//! of its own; it must not decide what a write does, nor commit or roll back a group (the
//! writer's loop does, asking [`GroupState::failed`]).
//!
//! A savepoint per write made each write independent of the others in its group, but
//! SQLite copies every existing page a savepoint changes into its statement journal, and
//! a batch of records touches a page of the `UNIQUE (tenant, id)` index per record
//! (docs/architecture.md says what that cost in time and memory). Writes that fail after changing rows are rare
//! (a full disk or an I/O error, which the group's commit would meet anyway), so a unit
//! writes straight into the group's transaction and, if it is left without `commit` after
//! changing rows, marks the group failed: the writer then rolls the whole group back and
//! every write in it is answered with an error, so nothing half-written is ever committed
//! and nothing is reported stored that is not. A write answered with that error is retried
//! like any store error (a collected blob stays pending). For [`ISOLATE_FOR`] after such a
//! failure every unit has its own savepoint again, so a write that keeps failing fails
//! alone and no longer takes the writes beside it along.
//!
//! SQLite itself rolls the whole transaction back after some errors (an I/O error, a full
//! disk) and the connection is then outside any transaction: the group has failed even if
//! no unit noticed, and a unit opened then refuses to write, since its savepoint would
//! commit on its own beside writes answered as failed.

use anyhow::Result;
use rusqlite::{Connection, Savepoint};
use std::cell::Cell;
use std::ops::Deref;
use std::time::{Duration, Instant};

/// How long units have savepoints of their own after a unit failed in a shared group.
pub(super) const ISOLATE_FOR: Duration = Duration::from_secs(120);

/// The state of the open group, kept by the writer.
#[derive(Default)]
pub(super) struct GroupState {
    /// A group transaction is open (between the writer's `begin` and `end_group`).
    open: bool,
    /// A unit left the group's transaction half-written.
    failed: Cell<bool>,
    /// Until then every unit runs in its own savepoint.
    isolate_until: Option<Instant>,
}

impl GroupState {
    /// The writer opened a group transaction.
    pub(super) fn start(&mut self) {
        self.open = true;
    }

    /// A unit of this group failed after changing rows: the group must be rolled back.
    pub(super) fn failed(&self) -> bool {
        self.failed.get()
    }

    /// The group failed for another reason (SQLite rolled its transaction back).
    pub(super) fn fail(&self) {
        self.failed.set(true);
    }

    /// Closes the group: after a failed one, units are isolated for [`ISOLATE_FOR`].
    pub(super) fn end(&mut self, now: Instant) {
        self.open = false;
        if self.failed.replace(false) {
            self.isolate_until = Some(now + ISOLATE_FOR);
        }
    }

    fn isolating(&self, now: Instant) -> bool {
        self.isolate_until.is_some_and(|t| now < t)
    }
}

/// One write's share of the transaction; derefs to the connection it writes through.
pub(super) enum Unit<'c> {
    /// Outside a group, or while isolating: the unit can fail alone.
    Own(Savepoint<'c>),
    Shared(SharedUnit<'c>),
}

/// A unit writing straight into the group's transaction.
pub(super) struct SharedUnit<'c> {
    conn: &'c Connection,
    group: &'c GroupState,
    changes_before: u64,
    committed: bool,
}

impl Drop for SharedUnit<'_> {
    fn drop(&mut self) {
        // Left without commit: an early return that changed nothing is harmless; anything
        // else is half a write in a transaction others share.
        if !self.committed && self.conn.total_changes() != self.changes_before {
            self.group.failed.set(true);
        }
    }
}

impl<'c> Unit<'c> {
    /// Opens a unit on the writer's connection. Without an open transaction (no group)
    /// the savepoint is the unit's own transaction.
    pub(super) fn open(conn: &'c mut Connection, group: &'c GroupState) -> Result<Unit<'c>> {
        if group.open && conn.is_autocommit() {
            // SQLite rolled the group back after an error (I/O, full disk): a savepoint
            // now would commit on its own, beside a group answered as failed
            group.fail();
            anyhow::bail!(
                "the database rolled back this write's transaction group after an error; nothing of it was stored"
            );
        }
        if !group.open && !conn.is_autocommit() {
            // what a failed rollback left: whatever is written now would never commit
            anyhow::bail!(
                "the writer's connection still holds the transaction of a failed group; nothing can be stored until it is rolled back"
            );
        }
        if conn.is_autocommit() || group.isolating(Instant::now()) {
            return Ok(Unit::Own(conn.savepoint()?));
        }
        let conn: &'c Connection = conn;
        Ok(Unit::Shared(SharedUnit {
            conn,
            group,
            changes_before: conn.total_changes(),
            committed: false,
        }))
    }

    pub(super) fn commit(self) -> Result<()> {
        match self {
            Unit::Own(sp) => sp.commit()?,
            Unit::Shared(mut s) => s.committed = true,
        }
        Ok(())
    }
}

impl Deref for Unit<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self {
            Unit::Own(sp) => sp,
            Unit::Shared(s) => s.conn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        c
    }

    fn count(c: &Connection) -> i64 {
        c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn outside_a_group_a_unit_is_its_own_transaction() {
        let mut c = conn();
        let g = GroupState::default();
        {
            let u = Unit::open(&mut c, &g).unwrap();
            assert!(matches!(u, Unit::Own(_)));
            u.execute("INSERT INTO t VALUES (1)", []).unwrap();
            // dropped without commit: rolled back
        }
        assert_eq!(count(&c), 0);
        assert!(!g.failed());
    }

    #[test]
    fn a_group_the_database_rolled_back_refuses_units_and_fails() {
        let mut c = conn();
        let mut g = GroupState::default();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        g.start();
        // what SQLite does itself after an I/O error or a full disk mid-statement
        c.execute_batch("ROLLBACK").unwrap();
        let e = Unit::open(&mut c, &g).err().unwrap();
        assert!(format!("{e:#}").contains("rolled back"), "{e:#}");
        assert!(g.failed());
        assert_eq!(count(&c), 0, "nothing may commit on its own");
        g.end(Instant::now());
        // after the group, outside any group: a unit is its own transaction again
        {
            let u = Unit::open(&mut c, &g).unwrap();
            assert!(matches!(u, Unit::Own(_)));
        }
        // a transaction outside any group (a rollback that failed) takes no writes
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        let e = Unit::open(&mut c, &g).err().unwrap();
        assert!(format!("{e:#}").contains("failed group"), "{e:#}");
    }

    #[test]
    fn a_shared_unit_left_half_written_fails_its_group_and_isolates_the_next() {
        let mut c = conn();
        let mut g = GroupState::default();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        g.start();
        {
            let u = Unit::open(&mut c, &g).unwrap();
            assert!(matches!(u, Unit::Shared(_)));
            u.execute("INSERT INTO t VALUES (1)", []).unwrap();
            u.commit().unwrap();
        }
        assert!(!g.failed(), "a committed unit leaves the group sound");
        {
            // an early return that changed nothing
            let _u = Unit::open(&mut c, &g).unwrap();
        }
        assert!(
            !g.failed(),
            "a unit that wrote nothing leaves the group sound"
        );
        {
            let u = Unit::open(&mut c, &g).unwrap();
            u.execute("INSERT INTO t VALUES (2)", []).unwrap();
        }
        assert!(g.failed(), "half a write must fail the group");
        c.execute_batch("ROLLBACK").unwrap();
        let now = Instant::now();
        g.end(now);
        assert!(!g.failed());
        assert!(g.isolating(now + ISOLATE_FOR / 2));
        assert!(!g.isolating(now + ISOLATE_FOR));
        // while isolating, a unit in a group has its own savepoint and fails alone
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        g.start();
        {
            let u = Unit::open(&mut c, &g).unwrap();
            assert!(matches!(u, Unit::Own(_)));
            u.execute("INSERT INTO t VALUES (3)", []).unwrap();
        }
        assert!(!g.failed());
        {
            let u = Unit::open(&mut c, &g).unwrap();
            u.execute("INSERT INTO t VALUES (4)", []).unwrap();
            u.commit().unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
        let xs: Vec<i64> = c
            .prepare("SELECT x FROM t ORDER BY x")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(xs, vec![4]);
    }
}
