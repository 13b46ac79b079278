//! `import FILE...`: offline exports into the store, one summary line per file; a file or
//! line that cannot be read is reported and the others are still stored.

use crate::import::import_file;
use crate::store::Store;
use anyhow::Result;
use std::path::Path;

/// `m365audit import [--data DIR] FILE...`.
pub fn import(data: &Path, files: &[std::path::PathBuf]) -> Result<()> {
    super::init_tracing();
    let store = Store::open(
        data,
        super::load_detections(crate::detect::Vars::default())?,
    )?;
    let mut failures = 0usize;
    let mut bad_lines = 0usize;
    for f in files {
        match import_file(&store, f) {
            Ok(r) => {
                for b in &r.bad {
                    eprintln!("{}", crate::model::terminal_safe(b));
                }
                bad_lines += r.bad.len();
                println!(
                    "{}: {} {} records, {} new, {} duplicates, {} bad lines",
                    crate::model::terminal_safe(&r.file),
                    r.records,
                    r.format,
                    r.new,
                    r.duplicates,
                    r.bad.len()
                );
            }
            Err(e) => {
                failures += 1;
                eprintln!(
                    "error: {}",
                    crate::model::terminal_safe_lines(&format!("{e:#}"))
                );
            }
        }
    }
    store.flush().wait()?;
    store.close()?;
    if failures > 0 || bad_lines > 0 {
        anyhow::bail!(
            "{failures} files unreadable, {bad_lines} bad lines skipped (listed above); every other record is stored"
        );
    }
    Ok(())
}
