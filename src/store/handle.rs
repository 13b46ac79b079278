//! The store's handle and its threads: [`Store`] over one data directory, opening and
//! closing it (migrations, the writer, preparer and indexer threads), and how a write
//! travels to the writer thread and its [`Reply`] comes back.

use super::*;

/// Why a write could not even be queued.
const READ_ONLY: &str = "the store is read-only or closed; writes are not possible";

/// What a command leaves for after the commit of its group: it receives the writer and
/// the commit error, if the commit failed.
pub(super) type After = Box<dyn FnOnce(&mut writer::Writer, Option<&anyhow::Error>) + Send>;
pub(super) type Cmd = Box<dyn FnOnce(&mut writer::Writer) -> After + Send>;

/// Commands grouped into one transaction at most (group commit: each one unit of work,
/// `unit.rs`; replies sent after the commit or the rollback).
pub(super) const GROUP_MAX: usize = 64;

/// The answer of the writer thread to one write.
pub struct Reply<T>(pub(super) std::result::Result<oneshot::Receiver<Result<T>>, String>);

impl<T> Reply<T> {
    /// Waits on a plain thread. Panics if called on an async runtime thread (use `.await`).
    pub fn wait(self) -> Result<T> {
        match self.0 {
            Ok(rx) => rx
                .blocking_recv()
                .map_err(|_| anyhow::anyhow!("the store writer stopped"))?,
            Err(e) => Err(anyhow::anyhow!(e)),
        }
    }
}

impl<T: Send + 'static> IntoFuture for Reply<T> {
    type Output = Result<T>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<T>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            match self.0 {
                Ok(rx) => rx
                    .await
                    .map_err(|_| anyhow::anyhow!("the store writer stopped"))?,
                Err(e) => Err(anyhow::anyhow!(e)),
            }
        })
    }
}

pub(super) struct Inner {
    pub(super) data_dir: PathBuf,
    pub(super) db_path: PathBuf,
    pub(super) codec: db::Codec,
    pub(super) pool: Mutex<Vec<Connection>>,
    pub(super) searcher: Option<index::Searcher>,
    pub(super) writer: Mutex<Option<Sender<Cmd>>>,
    pub(super) threads: Mutex<Vec<JoinHandle<()>>>,
    /// Jobs for the preparer threads (parse, compress, detect before the writer).
    pub(super) prep: Mutex<Option<Sender<Job>>>,
    pub(super) prep_threads: Mutex<Vec<JoinHandle<()>>>,
    pub(super) detections: Arc<Detections>,
    pub(super) dict: writer::SharedDict,
    /// The order in which prepared import batches go to the writer.
    pub(super) order: Mutex<Order>,
}

/// Tickets handed out in call order; prepared batches wait here until every earlier
/// ticket went to the writer (`None`: its preparation failed, nothing to send).
#[derive(Default)]
pub(super) struct Order {
    next_ticket: u64,
    next_send: u64,
    ready: std::collections::BTreeMap<u64, Option<Cmd>>,
}

pub(super) type Job = Box<dyn FnOnce() + Send>;

/// Preparer threads: the CPU-heavy part of storing (JSON parsing, zstd, jaq) runs here,
/// in parallel, so the single writer thread only inserts.
pub(super) const PREPARERS: usize = 2;

/// The handle over one data directory (see the module docs).
#[derive(Clone)]
pub struct Store {
    pub(super) inner: Arc<Inner>,
}

/// Creates `dir` (and missing parents) readable by its owner only, whatever the umask:
/// audit data is for the analyst, not every local user.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Creates (or truncates) a file readable by its owner only, whatever the umask, and
/// restricts a file that already existed with a wider mode: an export or a config holding
/// a secret must not become readable by every local user because the path was reused.
pub(crate) fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

/// Restricts an existing file to its owner (the database and its WAL: SQLite creates them
/// with the umask's mode).
fn make_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r.with_context(|| format!("restricting {} to its owner", path.display())),
    }
}

/// Says so (stderr, once per open) when other local users can read an existing store (made
/// by an older m365audit, or copied): the directory's mode is the operator's to change
/// (the database files are restricted on every writable open).
fn warn_if_shared(data_dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for p in [data_dir.to_path_buf(), data_dir.join(DB_FILE)] {
        if let Ok(m) = std::fs::metadata(&p)
            && m.permissions().mode() & 0o077 != 0
        {
            eprintln!(
                "warning: {} can be read by other local users (mode {:o}); audit data is \
                 sensitive: chmod -R go-rwx {}",
                p.display(),
                m.permissions().mode() & 0o777,
                data_dir.display()
            );
            tracing::warn!(path = %p.display(), "the store can be read by other local users");
            return;
        }
    }
}

fn check_dir(data_dir: &Path) -> Result<()> {
    // Said first: a file there is not a store, whatever its mode.
    if std::fs::metadata(data_dir).is_ok_and(|m| !m.is_dir()) {
        return Err(crate::UsageError(format!(
            "the data directory {} is not a directory",
            data_dir.display()
        ))
        .into());
    }
    warn_if_shared(data_dir);
    create_private_dir(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let probe = data_dir.join(".m365audit-write-test");
    std::fs::write(&probe, b"")
        .with_context(|| format!("the data directory {} is not writable", data_dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir`: migrations, the writer thread
    /// and the indexer thread (which first catches up with SQLite). Fails if another
    /// process has the same data directory open for writing.
    pub fn open(data_dir: &Path, detections: Arc<Detections>) -> Result<Store> {
        check_dir(data_dir)?;
        let db_path = data_dir.join(DB_FILE);
        let conn = db::open_writer(&db_path)?;
        for suffix in ["", "-wal", "-shm"] {
            make_private(&data_dir.join(format!("{DB_FILE}{suffix}")))?;
        }
        index::remove_old(data_dir);
        let (idx, fields) = index::open(&data_dir.join(index::INDEX_DIR))?;
        let indexer = index::Indexer::new(&idx, fields)?;
        let searcher = index::Searcher::new(idx, fields)?;
        let codec = db::Codec::default();
        let (itx, irx) = sync_channel::<index::IndexMsg>(8);
        let ipath = db_path.clone();
        let icodec = codec.clone();
        let indexer_thread = std::thread::Builder::new()
            .name("store-indexer".into())
            .spawn(move || indexer.run(irx, ipath, icodec))?;
        let dict: writer::SharedDict = Arc::default();
        let mut w = writer::Writer::new(conn, dict.clone(), itx)?;
        let (ptx, prx) = std::sync::mpsc::channel::<Job>();
        let prx = Arc::new(Mutex::new(prx));
        let mut prep_threads = Vec::new();
        for i in 0..PREPARERS {
            let prx = prx.clone();
            prep_threads.push(
                std::thread::Builder::new()
                    .name(format!("store-prepare-{i}"))
                    .spawn(move || {
                        loop {
                            let job = match prx.lock() {
                                Ok(rx) => rx.recv(),
                                Err(_) => return,
                            };
                            match job {
                                Ok(job) => job(),
                                Err(_) => return,
                            }
                        }
                    })?,
            );
        }
        let (tx, rx) = std::sync::mpsc::channel::<Cmd>();
        let writer_thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                while let Ok(cmd) = rx.recv() {
                    if let Err(e) = w.begin() {
                        // Without a group the command runs alone: its savepoint is then
                        // its own transaction.
                        tracing::warn!(error = %format!("{e:#}"), "cannot start a transaction group");
                        let after = cmd(&mut w);
                        w.send_pending();
                        after(&mut w, None);
                        continue;
                    }
                    let mut afters = vec![cmd(&mut w)];
                    // a failed unit ends the group: the commands after it wait for the next
                    while afters.len() < GROUP_MAX && !w.group_failed() {
                        match rx.try_recv() {
                            Ok(cmd) => afters.push(cmd(&mut w)),
                            Err(_) => break,
                        }
                    }
                    let err = w.end_group().err();
                    if let Some(e) = &err {
                        tracing::error!(error = %format!("{e:#}"), "a transaction group of the writer was rolled back");
                    }
                    for after in afters {
                        after(&mut w, err.as_ref());
                    }
                }
                w.close_index();
                // Fold the WAL back into the database so a closed store is one file.
                w.checkpoint();
                drop(w);
                if indexer_thread.join().is_err() {
                    tracing::error!("search indexer thread panicked");
                }
            })?;
        Ok(Store {
            inner: Arc::new(Inner {
                data_dir: data_dir.to_path_buf(),
                db_path,
                codec,
                pool: Mutex::new(Vec::new()),
                searcher: Some(searcher),
                writer: Mutex::new(Some(tx)),
                threads: Mutex::new(vec![writer_thread]),
                prep: Mutex::new(Some(ptx)),
                prep_threads: Mutex::new(prep_threads),
                detections,
                dict,
                order: Mutex::default(),
            }),
        })
    }

    /// Opens an existing store for reading only (no threads, no locks); write methods
    /// fail. Safe next to a running collector. A store this process cannot write (evidence
    /// on read-only media, another user's directory) is read without creating or changing
    /// a single file: SQLite immutable, the index through a read-only directory.
    pub fn open_read_only(data_dir: &Path) -> Result<Store> {
        let db_path = data_dir.join(DB_FILE);
        if !db_path.exists() {
            anyhow::bail!(
                "no store in {} (run `m365audit collect` or `m365audit import` first)",
                data_dir.display()
            );
        }
        warn_if_shared(data_dir);
        let conn = db::open_reader(&db_path)?;
        let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if v > db::SCHEMA_VERSION {
            // `collect` cannot help here: it refuses a newer schema too
            anyhow::bail!(
                "the store in {} was written by a newer m365audit (schema version {v}, this build reads up to {}); use that newer m365audit to read it",
                data_dir.display(),
                db::SCHEMA_VERSION
            );
        }
        if v != db::SCHEMA_VERSION {
            anyhow::bail!(
                "the store in {} has schema version {v}, this build reads {}; run `m365audit collect` to migrate",
                data_dir.display(),
                db::SCHEMA_VERSION
            );
        }
        let idir = data_dir.join(index::INDEX_DIR);
        let searcher = if idir.join("meta.json").exists() {
            Some(index::open_read_only(&idir)?)
        } else {
            None
        };
        Ok(Store {
            inner: Arc::new(Inner {
                data_dir: data_dir.to_path_buf(),
                db_path,
                codec: db::Codec::default(),
                pool: Mutex::new(vec![conn]),
                searcher,
                writer: Mutex::new(None),
                threads: Mutex::new(Vec::new()),
                prep: Mutex::new(None),
                prep_threads: Mutex::new(Vec::new()),
                detections: Arc::new(Detections::empty()),
                dict: Arc::default(),
                order: Mutex::default(),
            }),
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// Stops accepting writes, lets the writer finish every queued command, commits the
    /// index and joins the threads. Other clones see "store closed" afterwards.
    pub fn close(&self) -> Result<()> {
        // preparers first: their queued jobs still hand work to the writer
        let ptx = self.inner.prep.lock().map_err(poisoned)?.take();
        drop(ptx);
        let preps: Vec<_> = self
            .inner
            .prep_threads
            .lock()
            .map_err(poisoned)?
            .drain(..)
            .collect();
        for t in preps {
            t.join()
                .map_err(|_| anyhow::anyhow!("a store preparer thread panicked"))?;
        }
        let tx = self.inner.writer.lock().map_err(poisoned)?.take();
        drop(tx);
        let threads: Vec<_> = self
            .inner
            .threads
            .lock()
            .map_err(poisoned)?
            .drain(..)
            .collect();
        for t in threads {
            t.join()
                .map_err(|_| anyhow::anyhow!("the store writer thread panicked"))?;
        }
        Ok(())
    }

    pub(super) fn call_with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut writer::Writer, oneshot::Sender<Result<T>>) -> After + Send + 'static,
    ) -> Reply<T> {
        let (tx, rx) = oneshot::channel();
        match self.send_cmd(f, tx) {
            Ok(()) => Reply(Ok(rx)),
            Err(e) => Reply(Err(e)),
        }
    }

    /// Hands `job` to the preparer threads; its reply arrives on `rx`.
    fn submit_prep<T>(&self, job: Job, rx: oneshot::Receiver<Result<T>>) -> Reply<T> {
        let sent = match self.inner.prep.lock() {
            Ok(g) => g.as_ref().is_some_and(|p| p.send(job).is_ok()),
            Err(_) => false,
        };
        if !sent {
            return Reply(Err(READ_ONLY.into()));
        }
        Reply(Ok(rx))
    }

    /// Queues a command for the writer; on failure `tx` is dropped (the reply says the
    /// writer stopped) and the reason returned.
    pub(super) fn send_cmd<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut writer::Writer, oneshot::Sender<Result<T>>) -> After + Send + 'static,
        tx: oneshot::Sender<Result<T>>,
    ) -> std::result::Result<(), String> {
        let guard = self
            .inner
            .writer
            .lock()
            .map_err(|_| "a store lock was poisoned".to_string())?;
        let Some(w) = guard.as_ref() else {
            return Err(READ_ONLY.into());
        };
        let cmd: Cmd = Box::new(move |w| f(w, tx));
        w.send(cmd)
            .map_err(|_| "the store writer stopped".to_string())
    }

    /// Like [`Store::prepare_then`], but the writer receives the batches in the order of
    /// the calls, whichever preparer finishes first: an imported file is stored in file
    /// order (rowid order = line order), so importing the same file twice, or an export
    /// of it, gives the same store.
    pub(super) fn prepare_then_in_order<P: Send + 'static, T: Send + 'static>(
        &self,
        prepare: impl FnOnce(&Detections, &writer::SharedDict) -> Result<P> + Send + 'static,
        f: impl FnOnce(&mut writer::Writer, P) -> Result<T> + Send + 'static,
    ) -> Reply<T> {
        let ticket = match self.inner.order.lock() {
            Ok(mut o) => {
                o.next_ticket += 1;
                o.next_ticket - 1
            }
            Err(_) => return Reply(Err("a store lock was poisoned".into())),
        };
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let store = self.clone();
        let job: Job = Box::new(move || {
            let cmd: Option<Cmd> = match prepare(&store.inner.detections, &store.inner.dict) {
                Ok(p) => Some(Box::new(move |w: &mut writer::Writer| -> After {
                    let r = f(w, p);
                    Box::new(move |_, commit_err| {
                        let r = match (r, commit_err) {
                            (Ok(_), Some(e)) => Err(anyhow::anyhow!("{e:#}")),
                            (r, _) => r,
                        };
                        let _ = tx.send(r);
                    })
                })),
                Err(e) => {
                    let _ = tx.send(Err(e));
                    None
                }
            };
            let Ok(mut o) = store.inner.order.lock() else {
                return;
            };
            o.ready.insert(ticket, cmd);
            loop {
                let n = o.next_send;
                let Some(cmd) = o.ready.remove(&n) else {
                    break;
                };
                o.next_send += 1;
                if let Some(cmd) = cmd {
                    let sent = match store.inner.writer.lock() {
                        Ok(g) => g.as_ref().is_some_and(|w| w.send(cmd).is_ok()),
                        Err(_) => false,
                    };
                    if !sent {
                        tracing::error!("the store writer stopped; an import batch was not stored");
                    }
                }
            }
        });
        self.submit_prep(job, rx)
    }

    /// Runs `prepare` on a preparer thread, then `f` with its result on the writer
    /// (inside the current group, like `call`).
    pub(super) fn prepare_then<P: Send + 'static, T: Send + 'static>(
        &self,
        prepare: impl FnOnce(&Detections, &writer::SharedDict) -> Result<P> + Send + 'static,
        f: impl FnOnce(&mut writer::Writer, P) -> Result<T> + Send + 'static,
    ) -> Reply<T> {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let store = self.clone();
        let job: Job = Box::new(move || {
            let p = match prepare(&store.inner.detections, &store.inner.dict) {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let _ = store.send_cmd(
                move |w, tx| {
                    let r = f(w, p);
                    Box::new(move |_, commit_err| {
                        let r = match (r, commit_err) {
                            (Ok(_), Some(e)) => Err(anyhow::anyhow!("{e:#}")),
                            (r, _) => r,
                        };
                        let _ = tx.send(r);
                    })
                },
                tx,
            );
        });
        self.submit_prep(job, rx)
    }

    /// Runs `f` on the writer thread as a unit of the current group; the reply
    /// is sent once the group committed (or with the commit error).
    pub(super) fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut writer::Writer) -> Result<T> + Send + 'static,
    ) -> Reply<T> {
        self.call_with(move |w, tx| {
            let r = f(w);
            Box::new(move |_, commit_err| {
                let r = match (r, commit_err) {
                    (Ok(_), Some(e)) => Err(anyhow::anyhow!("{e:#}")),
                    (r, _) => r,
                };
                let _ = tx.send(r);
            })
        })
    }
}
