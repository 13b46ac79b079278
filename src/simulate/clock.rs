//! The virtual clock of the practice tenant: it starts at the real time (or `--now`), runs
//! with the real clock, can be advanced, frozen and unfrozen by the control plane. It owns
//! time only; it must not know about blobs or HTTP.

use chrono::{DateTime, Duration, Utc};
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
struct ClockState {
    base_virtual: DateTime<Utc>,
    base_real: Instant,
    frozen_at: Option<DateTime<Utc>>,
}

#[derive(Debug)]
pub struct VirtualClock {
    st: Mutex<ClockState>,
}

impl VirtualClock {
    pub fn new(start: DateTime<Utc>, frozen: bool) -> VirtualClock {
        VirtualClock {
            st: Mutex::new(ClockState {
                base_virtual: start,
                base_real: Instant::now(),
                frozen_at: frozen.then_some(start),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn now(&self) -> DateTime<Utc> {
        let st = self.lock();
        if let Some(t) = st.frozen_at {
            return t;
        }
        let elapsed =
            Duration::from_std(st.base_real.elapsed()).unwrap_or_else(|_| Duration::zero());
        st.base_virtual + elapsed
    }

    /// Moves the clock forward (or backward with a negative value).
    pub fn advance(&self, by: Duration) -> DateTime<Utc> {
        let mut st = self.lock();
        if let Some(t) = st.frozen_at.as_mut() {
            *t += by;
            return *t;
        }
        st.base_virtual += by;
        let elapsed =
            Duration::from_std(st.base_real.elapsed()).unwrap_or_else(|_| Duration::zero());
        st.base_virtual + elapsed
    }

    pub fn freeze(&self) -> DateTime<Utc> {
        let now = self.now();
        let mut st = self.lock();
        if st.frozen_at.is_none() {
            st.frozen_at = Some(now);
        }
        st.frozen_at.unwrap_or(now)
    }

    pub fn unfreeze(&self) -> DateTime<Utc> {
        let mut st = self.lock();
        if let Some(t) = st.frozen_at.take() {
            st.base_virtual = t;
            st.base_real = Instant::now();
            return t;
        }
        drop(st);
        self.now()
    }

    pub fn is_frozen(&self) -> bool {
        self.lock().frozen_at.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freeze_advance_unfreeze() {
        let t0 = DateTime::parse_from_rfc3339("2026-05-04T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let c = VirtualClock::new(t0, true);
        assert_eq!(c.now(), t0);
        c.advance(Duration::seconds(90));
        assert_eq!(c.now(), t0 + Duration::seconds(90));
        assert!(c.is_frozen());
        c.unfreeze();
        assert!(c.now() >= t0 + Duration::seconds(90));
        let f = c.freeze();
        assert_eq!(c.now(), f);
    }
}
