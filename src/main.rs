//! Thin shell over the library: parse the command line, run it, exit with its code. It
//! also owns the global allocator (mimalloc, counting bytes per thread for the jq
//! engine's memory budget) and the few process settings that need unsafe code.

use clap::Parser;

#[cfg(feature = "mimalloc")]
type Inner = mimalloc::MiMalloc;
#[cfg(feature = "mimalloc")]
const INNER: Inner = mimalloc::MiMalloc;
#[cfg(not(feature = "mimalloc"))]
type Inner = std::alloc::System;
#[cfg(not(feature = "mimalloc"))]
const INNER: Inner = std::alloc::System;

#[global_allocator]
static GLOBAL: Counting = Counting(INNER);

thread_local! {
    // const-initialized and without a destructor: reading it never allocates and works
    // at any point of a thread's life, which an allocator needs
    static NET_BYTES: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
}

/// The allocator, counting per thread the bytes it allocated minus those it freed, so the
/// jq engine can bound the memory of one evaluation (`m365audit::alloc::thread_net_bytes`).
/// One thread-local add per call: a block freed by another thread than the one that
/// allocated it skews both threads' counts, which is harmless because only the growth of
/// one thread during one evaluation is compared.
struct Counting(Inner);

fn count(delta: i64) {
    let _ = NET_BYTES.try_with(|n| n.set(n.get().wrapping_add(delta)));
}

fn thread_net_bytes() -> i64 {
    NET_BYTES.try_with(std::cell::Cell::get).unwrap_or(0)
}

// A `Layout`'s size never exceeds `isize::MAX`, so it fits an i64 on every target.
#[allow(clippy::cast_possible_wrap)]
fn bytes(n: usize) -> i64 {
    n as i64
}

// SAFETY: every call is forwarded unchanged to the inner allocator; counting touches only a
// thread-local integer.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            count(bytes(layout.size()));
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            count(bytes(layout.size()));
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: same contract as ours.
        unsafe { self.0.dealloc(ptr, layout) };
        count(-bytes(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(bytes(new_size) - bytes(layout.size()));
        }
        p
    }
}

/// mimalloc keeps freed pages for 1 s before returning them; a backfill frees and
/// allocates blob bodies and index buffers continuously, so that second of hoarding was
/// ~60 MiB of peak RSS (`bench`: 286 → 260 MiB at 50 ms, same CPU seconds), and at a
/// million records the 50 ms left were another ~25 MiB of the collector's resident memory
/// (mean anonymous RSS sampled from /proc in a trial build: 183–194 → 162 MiB, same CPU
/// seconds): freed pages go back at once.
/// `detect` holds them longer while it runs (see `m365audit::alloc`).
#[cfg(feature = "mimalloc")]
fn tune_allocator() {
    fn set_purge_delay(delay: std::time::Duration) {
        // `mi_option_purge_delay` in mimalloc v3's `mi_option_e`; libmimalloc-sys 0.1.49
        // (pinned by Cargo.lock) does not export the constant.
        const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
        let ms = std::ffi::c_long::try_from(delay.as_millis()).unwrap_or(std::ffi::c_long::MAX);
        // SAFETY: sets a plain integer option; mimalloc reads options atomically.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ms) };
    }
    let default = std::time::Duration::ZERO;
    set_purge_delay(default);
    m365audit::alloc::install(set_purge_delay, default);
    // Memory the appliance never gives back is memory it cannot promise to stay under:
    // with transparent huge pages, a 2 MiB page stays resident while any 64 KiB of it
    // is in use, and mimalloc's purge of the rest frees nothing; pages committed only
    // when first used keep untouched page memory out of RSS too. Together ~50 MiB of
    // collect's peak RSS (`bench`, 269 → 219 MiB, same CPU seconds).
    // `mi_option_page_commit_on_demand` and `mi_option_allow_thp` in mimalloc v3's
    // `mi_option_e` (see above).
    const MI_OPTION_PAGE_COMMIT_ON_DEMAND: libmimalloc_sys::mi_option_t = 40;
    const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;
    // SAFETY: plain integer options, as above; `prctl(PR_SET_THP_DISABLE)` only sets a
    // flag of this process (mimalloc reserved its first arena before `main`, so the
    // option alone would not reach it).
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PAGE_COMMIT_ON_DEMAND, 1);
        libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0);
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// SQLite and zstd allocate through the C library's malloc, not the Rust allocator. A
/// savepoint of the writer grows its in-memory statement journal in ~1 KiB chunks and
/// frees it at release; glibc then gave the top of the writer's heap back to the kernel
/// (its trim threshold is 128 KiB) and the next savepoint faulted the pages in again.
/// Measured while every write had a savepoint (an eighth of the writer thread's time
/// importing a million records, perf): with heap tops of up to 16 MiB kept, the import
/// took 5–8 % less system time with no more peak RSS (`/usr/bin/time m365audit import`,
/// alternated with the build before). Writes now share their group's transaction and
/// have savepoints only outside a group or after a failure (`store/unit.rs`); the setting
/// stays for those and for SQLite's other short-lived buffers.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_c_heap_tops() {
    const TRIM_THRESHOLD: libc::c_int = 16 << 20;
    // SAFETY: sets one integer parameter of glibc's malloc, before any thread starts.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// A command whose output is piped into `head` ends quietly, like any Unix filter, when the
/// reader goes away: Rust ignores SIGPIPE, so `print!` would panic (exit 101, a backtrace)
/// and a checked write would report an error. The default disposition ends the process at
/// that write, silently. Only filters get it ([`m365audit::cli::Command::is_filter`]): a
/// command that writes to sockets (`run`, `forward`, …) must see a gone peer as an error.
fn end_quietly_on_a_closed_stdout() {
    // SAFETY: sets one signal's disposition to its default, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Everything m365audit creates (the store, the index, the demo's config with the practice
/// tenant's secret) is for its owner only, whatever umask the shell or service manager set:
/// SQLite and tantivy create their files with the process umask.
fn private_files() {
    // SAFETY: sets the process file-mode mask; no other thread exists yet.
    unsafe {
        libc::umask(0o077);
    }
}

fn main() {
    private_files();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    keep_c_heap_tops();
    #[cfg(feature = "mimalloc")]
    tune_allocator();
    m365audit::alloc::install_counter(thread_net_bytes);
    let cli = m365audit::cli::Cli::parse();
    if cli.command.is_filter() {
        end_quietly_on_a_closed_stdout();
    }
    std::process::exit(m365audit::cli::run(cli));
}
