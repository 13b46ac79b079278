//! Moving the WAL into the database file beside the writer instead of on its thread.
//!
//! SQLite checkpoints on the committing connection by default: the writer copies every
//! page of the WAL into the database and waits for two fsyncs, and the whole ingest path
//! waits behind it (at a million records a checkpoint took 30 ms of fsync alone, 4.8 s of
//! one import's 43 s on the writer thread, strace). Here the writer's WAL hook only
//! signals a thread of its own connection, which runs a PASSIVE checkpoint: it copies
//! what is committed, never blocks the writer, and the WAL restarts from its beginning at
//! the writer's next transaction once all of it is in the database.
//!
//! Must not: change what is committed (a checkpoint only moves committed pages), or let
//! the WAL grow without bound — once it holds [`WRITER_CHECKPOINT_PAGES`] the writer
//! checkpoints itself after every commit, as SQLite would (a try that meets the thread's
//! checkpoint in progress is repeated at the next commit).

use anyhow::{Context, Result};
use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};

/// WAL pages after which the checkpointer is asked to run. Every checkpoint rewrites the
/// same random index pages of `UNIQUE(tenant, id)`: 8192 pages (64 MiB of WAL) cut the
/// writer's kernel time by a quarter against SQLite's 1000.
pub const CHECKPOINT_PAGES: i32 = 8192;
/// WAL pages after which the writer checkpoints itself (the checkpointer cannot keep up,
/// or a reader holds old pages): four times the usual size bounds the WAL's disk use.
pub const WRITER_CHECKPOINT_PAGES: i32 = 4 * CHECKPOINT_PAGES;

/// The checkpoint thread and the writer connection's hook that wakes it.
pub struct Checkpointer {
    thread: Option<std::thread::JoinHandle<()>>,
    done: Arc<AtomicU64>,
}

impl Checkpointer {
    /// Opens a connection of its own to `path` (WAL already on), starts the thread and
    /// hooks `writer` to wake it once the WAL holds `pages` pages.
    pub fn start(writer: &mut Connection, path: &Path, pages: i32) -> Result<Checkpointer> {
        let conn = Connection::open(path)
            .with_context(|| format!("opening {} for checkpoints", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        // it reads WAL frames and writes them to the database; it caches nothing
        conn.pragma_update(None, "cache_size", -256)?;
        let (tx, rx) = sync_channel::<()>(1);
        let done = Arc::new(AtomicU64::new(0));
        let counted = done.clone();
        // the WAL size at which the hook wakes the thread next: a checkpoint that could not
        // take the frames committed while it ran leaves them for the next one, once as many
        // again have come (not at every commit)
        let next_at = Arc::new(AtomicI32::new(pages));
        let moved = next_at.clone();
        let thread = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    let frames = conn
                        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i32>(1));
                    match frames {
                        Ok(in_wal) => {
                            moved.store(in_wal.saturating_add(pages), Ordering::Relaxed);
                            counted.fetch_add(1, Ordering::Relaxed);
                        }
                        // the writer's own checkpoint at the larger size still bounds the WAL
                        Err(e) => tracing::warn!(error = %e, "checkpointing the WAL failed"),
                    }
                }
            })
            .context("starting the checkpoint thread")?;
        hook(writer, Some((tx, next_at)), pages)?;
        Ok(Checkpointer {
            thread: Some(thread),
            done,
        })
    }

    /// Checkpoints the thread has finished.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Unhooks `writer` (the thread's channel closes with the hook) and waits for the
    /// checkpoint in progress, if any.
    pub fn stop(&mut self, writer: &mut Connection) {
        if let Err(e) = hook(writer, None, 0) {
            tracing::warn!(error = %e, "cannot unhook the checkpoint thread");
        }
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("the checkpoint thread panicked");
        }
        tracing::debug!(checkpoints = self.done(), "the checkpoint thread stopped");
    }
}

/// Sets (or with `None`, removes) the writer's WAL hook. SQLite calls it after every
/// commit with the pages in the WAL; it replaces SQLite's own automatic checkpoint, which
/// comes back (at the larger size) when the hook is removed.
fn hook(
    writer: &mut Connection,
    wake: Option<(SyncSender<()>, Arc<AtomicI32>)>,
    pages: i32,
) -> Result<()> {
    let Some((wake, next_at)) = wake else {
        writer.wal_hook(None::<fn(&mut rusqlite::hooks::Wal, i32) -> rusqlite::Result<()>>)?;
        writer.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
        return Ok(());
    };
    let big = pages.saturating_mul(WRITER_CHECKPOINT_PAGES / CHECKPOINT_PAGES);
    let mut last = 0;
    writer.wal_hook(Some(
        move |wal: &mut rusqlite::hooks::Wal, in_wal: i32| -> rusqlite::Result<()> {
            if in_wal < last {
                // the WAL started over from its beginning
                next_at.store(pages, Ordering::Relaxed);
            }
            last = in_wal;
            if in_wal >= big {
                // PASSIVE never waits; what it cannot take now, a later commit retries
                let _ = wal.checkpoint_v2(CheckpointMode::PASSIVE);
            } else if in_wal >= next_at.load(Ordering::Relaxed) {
                // a wake-up already pending, or a thread gone, both leave it to later commits
                let _ = wake.try_send(());
            }
            Ok(())
        },
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u64 = 4096;

    fn wal_db(dir: &Path) -> (Connection, std::path::PathBuf) {
        let path = dir.join("t.db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "page_size", PAGE as i64).unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
            .unwrap();
        (conn, path)
    }

    /// Commits `n` transactions of a few pages each (random blobs: nothing compresses).
    fn commit_many(conn: &Connection, n: usize) {
        for i in 0..n {
            conn.execute_batch("BEGIN").unwrap();
            for j in 0..4 {
                conn.execute(
                    "INSERT INTO t (id, v) VALUES (?1, randomblob(3000))",
                    [(i * 4 + j) as i64],
                )
                .unwrap();
            }
            conn.execute_batch("COMMIT").unwrap();
        }
    }

    fn wal_bytes(path: &Path) -> u64 {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
    }

    #[test]
    fn the_thread_checkpoints_what_the_writer_commits() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, path) = wal_db(dir.path());
        let mut c = Checkpointer::start(&mut conn, &path, 40).unwrap();
        // ~20 times the checkpoint size in all
        commit_many(&conn, 200);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while c.done() == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(c.done() > 0, "the checkpoint thread never ran");
        c.stop(&mut conn);
        drop(conn);
        let reader = Connection::open(&path).unwrap();
        let n: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 800);
    }

    #[test]
    fn a_writer_whose_thread_cannot_keep_up_checkpoints_itself() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, path) = wal_db(dir.path());
        let pages = 40;
        // a thread that never runs: every wake-up is lost
        let (wake, gone) = sync_channel::<()>(1);
        drop(gone);
        hook(
            &mut conn,
            Some((wake, Arc::new(AtomicI32::new(pages)))),
            pages,
        )
        .unwrap();
        commit_many(&conn, 200);
        // the WAL file is as long as the most frames it ever held: the size at which the
        // writer checkpoints, plus the one transaction that crossed it
        let big = (WRITER_CHECKPOINT_PAGES / CHECKPOINT_PAGES * pages) as u64;
        let most = (big + 10) * (PAGE + 24);
        let wal = wal_bytes(&path);
        assert!(wal <= most, "the WAL grew to {wal} bytes (at most {most})");
        // and not because SQLite checkpointed on its own at its default 1000 pages
        assert!(
            wal >= big * (PAGE + 24),
            "the WAL never reached {big} pages: {wal} bytes"
        );
    }

    #[test]
    fn after_stop_the_writer_checkpoints_on_its_own_again() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, path) = wal_db(dir.path());
        let mut c = Checkpointer::start(&mut conn, &path, 40).unwrap();
        c.stop(&mut conn);
        let every: i64 = conn
            .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
            .unwrap();
        assert_eq!(every, i64::from(WRITER_CHECKPOINT_PAGES));
        // with the hook gone nothing wakes the stopped thread, and commits still work
        commit_many(&conn, 10);
        assert_eq!(c.done(), 0);
    }
}
