//! Thin shell over the library: parse the command line, run it, exit with its code.

use clap::Parser;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc keeps freed pages for 1 s before returning them; a backfill frees and
/// allocates blob bodies and index buffers continuously, so that second of hoarding was
/// ~60 MiB of peak RSS (`bench`: 286 → 260 MiB at 50 ms, same CPU seconds).
#[cfg(feature = "mimalloc")]
fn tune_allocator() {
    // `mi_option_purge_delay` in mimalloc v3's `mi_option_e`; libmimalloc-sys 0.1.49
    // (pinned by Cargo.lock) does not export the constant.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    const PURGE_DELAY_MS: std::ffi::c_long = 50;
    // SAFETY: sets a plain integer option; mimalloc reads options atomically.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
}

/// Every command of the store's writer runs in a savepoint, and SQLite copies each page a
/// savepoint changes into the statement journal: in memory up to this many bytes, in one
/// allocation, then in a deleted temporary file. The default (64 KiB) made that a file
/// created, written and evicted per blob; `temp_store = MEMORY` instead costs a libc
/// malloc and free per KiB journaled. A blob's savepoint journals well under 8 MiB.
const SQLITE_STMT_JOURNAL_SPILL: std::ffi::c_int = 8 << 20;

fn tune_sqlite() {
    // SAFETY: runs first in `main`, before any SQLite connection exists (sqlite3_config
    // must precede SQLite's initialization; it then sets one integer). If SQLite were
    // already initialized the call would only return SQLITE_MISUSE.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_config(
            rusqlite::ffi::SQLITE_CONFIG_STMTJRNL_SPILL,
            SQLITE_STMT_JOURNAL_SPILL,
        )
    };
    if rc != rusqlite::ffi::SQLITE_OK {
        eprintln!("m365audit: sqlite3_config(STMTJRNL_SPILL) returned {rc}; default kept");
    }
}

fn main() {
    #[cfg(feature = "mimalloc")]
    tune_allocator();
    tune_sqlite();
    let cli = m365audit::cli::Cli::parse();
    std::process::exit(m365audit::cli::run(cli));
}
