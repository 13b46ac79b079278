//! What the library may ask of the allocator, which the binary owns (and with it the only
//! unsafe calls: the library forbids unsafe code): how long it keeps freed pages before
//! returning them to the OS, for the stretches of work that want it different from the
//! process default ([`install`], [`hold_freed_pages`]); and how many bytes the current
//! thread has allocated minus freed ([`install_counter`], [`thread_net_bytes`]), which the
//! jq engine compares before and during an evaluation to bound its memory. Without the
//! binary (unit tests, a library user) neither is registered: the delay calls are no-ops
//! and [`thread_net_bytes`] is `None`, so the engine's memory budget is then checked only
//! where it measures values itself. It must not change anything but that delay.
//!
//! Why: collecting frees blob bodies and index buffers continuously, so the binary returns
//! freed pages at once (peak RSS). Re-running detections over a table frees and re-grows
//! its memo tables and batch buffers many times a second; returned at once (or after
//! 50 ms) those pages went back to the kernel and were faulted in (and zeroed) again —
//! 8 % of `detect`'s CPU.

use std::sync::OnceLock;
use std::time::Duration;

struct Setter {
    set: fn(Duration),
    default: Duration,
}

static SETTER: OnceLock<Setter> = OnceLock::new();

/// Registers the allocator's setter and the delay the process runs with by default (the
/// binary calls `set(default)` itself). Only the first call counts.
pub fn install(set: fn(Duration), default: Duration) {
    let _ = SETTER.set(Setter { set, default });
}

/// Keeps freed pages for `delay` until the returned guard is dropped (then the default
/// again).
#[must_use = "the delay lasts as long as the guard"]
pub fn hold_freed_pages(delay: Duration) -> Hold {
    if let Some(s) = SETTER.get() {
        (s.set)(delay);
    }
    Hold(())
}

/// See [`hold_freed_pages`].
pub struct Hold(());

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(s) = SETTER.get() {
            (s.set)(s.default);
        }
    }
}

static COUNTER: OnceLock<fn() -> i64> = OnceLock::new();

/// Registers the allocator's per-thread count of bytes allocated minus freed. Only the
/// first call counts.
pub fn install_counter(net_bytes: fn() -> i64) {
    let _ = COUNTER.set(net_bytes);
}

/// Bytes the current thread has allocated minus those it freed (a block freed on another
/// thread counts there), or `None` when no counting allocator is installed. Only its
/// change over a stretch of work on one thread means anything.
#[inline]
pub fn thread_net_bytes() -> Option<i64> {
    COUNTER.get().map(|f| f())
}

/// How long detection passes over a table hold freed pages.
pub const DETECT_HOLD: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    thread_local! {
        // per thread: other tests (a `detect` run) may hold pages on their own threads
        static SEEN: RefCell<Vec<Duration>> = const { RefCell::new(Vec::new()) };
    }

    #[test]
    fn a_hold_sets_the_delay_and_its_drop_restores_the_default() {
        fn record(d: Duration) {
            SEEN.with(|s| s.borrow_mut().push(d));
        }
        install(record, Duration::from_millis(50));
        let seen = || SEEN.with(|s| s.borrow().clone());
        {
            let _hold = hold_freed_pages(DETECT_HOLD);
            assert_eq!(seen(), [DETECT_HOLD]);
        }
        assert_eq!(seen(), [DETECT_HOLD, Duration::from_millis(50)]);
    }
}
