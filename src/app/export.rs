//! `m365audit export [--data DIR] [--table T] [--since T] [--until T] [--detection ID]
//! [--user U] [--format jsonl|csv] [--out FILE]`: the selected records, exactly as stored,
//! streamed to a file or stdout. Opens the store read-only (works on read-only media).
//! `--table triage` writes the triage of detection groups instead (`app::triage`).

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
            let f = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut w = std::io::BufWriter::new(f);
            let n = super::triage::write_export(&store, csv, &mut w)?;
            w.flush()?;
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
            let f = crate::store::create_private_file(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let n = write_to(&store, &filter, format, std::io::BufWriter::new(f), path)?;
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

fn write_to<W: Write>(
    store: &Store,
    filter: &Filter,
    format: Format,
    out: W,
    name: &Path,
) -> Result<u64> {
    let mut w = RecordWriter::new(out, format)?;
    let n = crate::export::export(store, filter, &mut w)
        .with_context(|| format!("writing {}", name.display()))?;
    let mut inner = w.finish()?;
    inner.flush()?;
    Ok(n)
}
