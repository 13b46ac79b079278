//! `m365audit export [--data DIR] [--table T] [--since T] [--until T] [--detection ID]
//! [--user U] [--format jsonl|csv] [--out FILE]`: the selected records, exactly as stored,
//! streamed to a file or stdout. Opens the store read-only (works on read-only media).
//! `--table triage` writes the triage of detection groups instead (`app::triage`).
//!
//! Nothing touches `--out` before every argument is checked and the store is open, and
//! `--out` is replaced only by a complete export: it is written to a temporary file beside
//! it, renamed over it on success and removed on failure. An `--out` inside the data
//! directory is refused (it could overwrite the very store being read).

use crate::export::{Filter, Format, RecordWriter};
use crate::store::Store;
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct ExportArgs {
    pub data: PathBuf,
    pub table: String,
    pub since: Option<String>,
    pub until: Option<String>,
    pub detection: Option<String>,
    pub user: Option<String>,
    pub format: String,
    pub out: Option<PathBuf>,
}

fn time_arg(flag: &str, v: &Option<String>) -> Result<Option<DateTime<Utc>>> {
    match v {
        None => Ok(None),
        Some(s) => crate::model::parse_time(s).map(Some).ok_or_else(|| {
            crate::UsageError(format!(
                "{flag} {s:?} is not a time (e.g. 2026-11-20 or 2026-11-20T10:00:00Z)"
            ))
            .into()
        }),
    }
}

/// The pseudo-table `export --table triage` names: the triage of detection groups.
pub const TRIAGE_TABLE: &str = "triage";

/// `export --table triage`: the triage rows (`app::triage::write_export`), not records.
fn export_triage(a: &ExportArgs, format: Format) -> Result<()> {
    if a.since.is_some() || a.until.is_some() || a.detection.is_some() || a.user.is_some() {
        return Err(crate::UsageError(
            "--table triage exports every triaged group; --since, --until, --detection and \
             --user select records and do not apply"
                .into(),
        )
        .into());
    }
    let store = Store::open_read_only(&a.data)?;
    let csv = format == Format::Csv;
    match &a.out {
        Some(path) => {
            let (out, f) = OutFile::create(path, &a.data)?;
            let mut w = std::io::BufWriter::new(f);
            let n = super::triage::write_export(&store, csv, &mut w)
                .with_context(|| format!("writing {}", path.display()))?;
            out.commit(w)?;
            eprintln!("{n} triaged groups written to {}", path.display());
        }
        None => {
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            super::triage::write_export(&store, csv, &mut w)?;
            w.flush()?;
        }
    }
    Ok(())
}

pub fn export(a: &ExportArgs) -> Result<()> {
    let format = Format::parse(&a.format)?;
    if a.table == TRIAGE_TABLE {
        return export_triage(a, format);
    }
    let filter = Filter {
        table: a.table.clone(),
        since: time_arg("--since", &a.since)?,
        until: time_arg("--until", &a.until)?,
        detection: a.detection.clone(),
        user: a.user.clone(),
    };
    Store::check_table(&filter.table)?;
    let store = Store::open_read_only(&a.data)?;
    if let Some(d) = &filter.detection
        && !store.hit_counts()?.contains_key(d)
        && crate::detect::Detections::load_embedded(crate::detect::Vars::default())
            .meta(d)
            .is_none()
    {
        return Err(crate::UsageError(format!("no detection {d:?} in this store")).into());
    }
    match &a.out {
        Some(path) => {
            let (out, f) = OutFile::create(path, &a.data)?;
            let (n, w) = write_to(&store, &filter, format, std::io::BufWriter::new(f), path)?;
            out.commit(w)?;
            eprintln!("{n} records written to {}", path.display());
        }
        None => {
            let out = std::io::stdout().lock();
            write_to(
                &store,
                &filter,
                format,
                std::io::BufWriter::new(out),
                Path::new("-"),
            )?;
        }
    }
    Ok(())
}

/// Exports into `out`; the count and the flushed writer (for the caller to finish).
fn write_to<W: Write>(
    store: &Store,
    filter: &Filter,
    format: Format,
    out: W,
    name: &Path,
) -> Result<(u64, W)> {
    let mut w = RecordWriter::new(out, format)?;
    let n = crate::export::export(store, filter, &mut w)
        .with_context(|| format!("writing {}", name.display()))?;
    let mut inner = w.finish()?;
    inner
        .flush()
        .with_context(|| format!("writing {}", name.display()))?;
    Ok((n, inner))
}

/// Where `--out` is written. A regular file (or a new one) is written as a temporary file
/// in its directory and renamed over it once the export is complete, so a failed export
/// leaves the old file as it was; a device or a FIFO (`/dev/null`, a pipe) is written
/// directly, since it cannot be replaced.
struct OutFile {
    /// The file to replace (a symlink resolved, so the link stays a link).
    target: PathBuf,
    /// The temporary file, `None` when writing the target directly.
    tmp: Option<PathBuf>,
}

impl OutFile {
    fn create(out: &Path, data: &Path) -> Result<(OutFile, std::fs::File)> {
        use std::os::unix::fs::OpenOptionsExt;
        refuse_inside_store(out, data)?;
        let target = match std::fs::metadata(out) {
            Ok(m) if m.is_dir() => {
                return Err(crate::UsageError(format!(
                    "--out {} is a directory; name a file",
                    out.display()
                ))
                .into());
            }
            Ok(m) if !m.is_file() => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(out)
                    .with_context(|| format!("cannot open {}", out.display()))?;
                return Ok((
                    OutFile {
                        target: out.to_path_buf(),
                        tmp: None,
                    },
                    f,
                ));
            }
            Ok(_) => std::fs::canonicalize(out)
                .with_context(|| format!("cannot resolve {}", out.display()))?,
            Err(_) => out.to_path_buf(),
        };
        let (dir, name) = split_path(&target)?;
        for n in 0..1000 {
            let tmp = dir.join(format!(
                ".{}.{}-{n}.tmp",
                name.to_string_lossy(),
                std::process::id()
            ));
            // owner-only like every file of audit data, whatever the umask
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
            {
                Ok(f) => {
                    return Ok((
                        OutFile {
                            target,
                            tmp: Some(tmp),
                        },
                        f,
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "cannot create {} (its temporary file {})",
                            out.display(),
                            tmp.display()
                        )
                    });
                }
            }
        }
        anyhow::bail!(
            "cannot create {}: too many temporary files named .{}.*.tmp in {}",
            out.display(),
            name.to_string_lossy(),
            dir.display()
        )
    }

    /// Makes the export durable and puts it in place of the target.
    fn commit(mut self, w: std::io::BufWriter<std::fs::File>) -> Result<()> {
        let name = self.target.display().to_string();
        let f = w
            .into_inner()
            .map_err(|e| anyhow::anyhow!("writing {name}: {}", e.error()))?;
        let Some(tmp) = self.tmp.take() else {
            return Ok(());
        };
        // Kept as an `Option` in `self` until here, so that `Drop` removes it on failure.
        let done = f
            .sync_all()
            .with_context(|| format!("writing {name}"))
            .and_then(|()| {
                std::fs::rename(&tmp, &self.target)
                    .with_context(|| format!("cannot put the export in place of {name}"))
            });
        if done.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        done
    }
}

impl Drop for OutFile {
    fn drop(&mut self) {
        // an export that failed leaves no partial file behind
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// The directory (`.` for a bare name) and file name of `p`.
fn split_path(p: &Path) -> Result<(PathBuf, std::ffi::OsString)> {
    let name = p
        .file_name()
        .ok_or_else(|| crate::UsageError(format!("--out {} does not name a file", p.display())))?;
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name.to_os_string()))
}

/// Refuses an `--out` that is, or would be, a file of the data directory: by its resolved
/// path (the directory resolved, the file itself if it exists), and for an existing file
/// also by device and inode, which catches a hard link to the database from elsewhere.
fn refuse_inside_store(out: &Path, data: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let data_real = std::fs::canonicalize(data)
        .with_context(|| format!("cannot resolve the data directory {}", data.display()))?;
    let refuse = || -> anyhow::Error {
        crate::UsageError(format!(
            "--out {} is inside the data directory {}: writing there could destroy the \
             store being exported; choose a file outside it",
            out.display(),
            data.display()
        ))
        .into()
    };
    let resolved = match std::fs::canonicalize(out) {
        Ok(p) => p,
        Err(_) => {
            let (dir, name) = split_path(out)?;
            std::fs::canonicalize(&dir)
                .with_context(|| format!("cannot create {}: {}", out.display(), dir.display()))?
                .join(name)
        }
    };
    if resolved.starts_with(&data_real) {
        return Err(refuse());
    }
    let Ok(m) = std::fs::metadata(out) else {
        return Ok(());
    };
    let mut dirs = vec![data_real];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(em) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if em.dev() == m.dev() && em.ino() == m.ino() {
                return Err(refuse());
            }
            if em.is_dir() {
                dirs.push(e.path());
            }
        }
    }
    Ok(())
}
