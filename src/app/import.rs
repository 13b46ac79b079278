//! `m365audit import [--data DIR] FILE...`: opens the store with the detections, imports
//! each file with progress on stderr, prints one summary per file on stdout.
//!
//! Exit code: 0 when every record of every file was stored (or was already there);
//! 1 when anything was not — a bad record, a damaged file, a file in no known format, a
//! file that cannot be read — with everything else stored and each problem listed (the
//! closing line says whether anything was stored at all); 2 for bad usage.

use crate::import::{Progress, import_file, summary_line};
use crate::store::Store;
use anyhow::Result;
use std::path::{Path, PathBuf};

pub fn import(data: &Path, files: &[PathBuf]) -> Result<()> {
    super::init_tracing();
    let store = Store::open(
        data,
        super::load_detections(crate::detect::Vars::default())?,
    )?;
    let mut progress = Progress::stderr();
    let mut unreadable = 0usize;
    let mut bad = 0u64;
    let mut damaged = 0usize;
    // records stored or already there, over every file: the closing line says what is true
    let mut kept = 0u64;
    for f in files {
        match import_file(&store, f, &mut progress) {
            Ok(r) => {
                bad += r.bad;
                kept += r.new + r.duplicates;
                damaged += usize::from(r.damage.is_some());
                if let Some(d) = &r.damage {
                    eprintln!("{}", crate::model::terminal_safe(d));
                }
                // the file is stored and ledgered whatever becomes of its summary line
                if let Err(e) = super::print_results(&format!("{}\n", summary_line(&r))) {
                    eprintln!("warning: {e:#}");
                }
            }
            Err(e) => {
                unreadable += 1;
                eprintln!(
                    "error: {}",
                    crate::model::terminal_safe_lines(&format!("{e:#}"))
                );
            }
        }
    }
    store.flush().wait()?;
    store.close()?;
    if unreadable > 0 || bad > 0 || damaged > 0 {
        let rest = if kept > 0 {
            "every other record is stored"
        } else {
            "no record was stored"
        };
        anyhow::bail!(
            "{unreadable} files unreadable, {damaged} damaged or not recognised, {bad} bad records skipped (listed above); {rest}"
        );
    }
    Ok(())
}
