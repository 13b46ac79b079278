//! Fault injection: the fault names (docs/management-api.md), which are on, and whether one fires for
//! a given request. Transient faults hit a seeded fraction of requests and never the same
//! request key more than twice in a row, so a correct retrying client still gets
//! everything. Persistent faults (`subscription_disabled`, `audit_off`, `secret_expired`,
//! `clock_skew`, `foreign_*` when chosen, `lowercase_next_page`) are plain switches, and so
//! are the interop switches that make the practice tenant behave like other implementations
//! of the API (mocks, proxies): `token_text_errors`, `token_basic_only`,
//! `no_subscription_list`, `dlp_unknown`, `max_window_1h`. This module decides; it must not
//! build responses.

use super::rng::mix;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    Throttle403,
    Throttle429,
    ThrottleRetryAfter,
    Internal500,
    Unavailable503,
    Timeout408,
    ResetMidBody,
    TruncatedBody,
    NonJsonBody,
    SubscriptionDisabled,
    AuditOff,
    SecretExpired,
    ForeignNextPage,
    ForeignContentUri,
    ClockSkew,
    LowercaseNextPage,
    TokenTextErrors,
    TokenBasicOnly,
    NoSubscriptionList,
    DlpUnknown,
    MaxWindow1h,
}

impl Fault {
    pub const ALL: [Fault; 21] = [
        Fault::Throttle403,
        Fault::Throttle429,
        Fault::ThrottleRetryAfter,
        Fault::Internal500,
        Fault::Unavailable503,
        Fault::Timeout408,
        Fault::ResetMidBody,
        Fault::TruncatedBody,
        Fault::NonJsonBody,
        Fault::SubscriptionDisabled,
        Fault::AuditOff,
        Fault::SecretExpired,
        Fault::ForeignNextPage,
        Fault::ForeignContentUri,
        Fault::ClockSkew,
        Fault::LowercaseNextPage,
        Fault::TokenTextErrors,
        Fault::TokenBasicOnly,
        Fault::NoSubscriptionList,
        Fault::DlpUnknown,
        Fault::MaxWindow1h,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Throttle403 => "throttle_403",
            Fault::Throttle429 => "throttle_429",
            Fault::ThrottleRetryAfter => "throttle_retry_after",
            Fault::Internal500 => "internal_500",
            Fault::Unavailable503 => "unavailable_503",
            Fault::Timeout408 => "timeout_408",
            Fault::ResetMidBody => "reset_mid_body",
            Fault::TruncatedBody => "truncated_body",
            Fault::NonJsonBody => "non_json_body",
            Fault::SubscriptionDisabled => "subscription_disabled",
            Fault::AuditOff => "audit_off",
            Fault::SecretExpired => "secret_expired",
            Fault::ForeignNextPage => "foreign_next_page",
            Fault::ForeignContentUri => "foreign_content_uri",
            Fault::ClockSkew => "clock_skew",
            Fault::LowercaseNextPage => "lowercase_next_page",
            Fault::TokenTextErrors => "token_text_errors",
            Fault::TokenBasicOnly => "token_basic_only",
            Fault::NoSubscriptionList => "no_subscription_list",
            Fault::DlpUnknown => "dlp_unknown",
            Fault::MaxWindow1h => "max_window_1h",
        }
    }

    pub fn parse(s: &str) -> Option<Fault> {
        Fault::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Faults that hit a seeded fraction of API requests.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Fault::Throttle403
                | Fault::Throttle429
                | Fault::ThrottleRetryAfter
                | Fault::Internal500
                | Fault::Unavailable503
                | Fault::Timeout408
                | Fault::ResetMidBody
                | Fault::TruncatedBody
                | Fault::NonJsonBody
        )
    }

    /// Faults that only make sense on a response with a body to break (GET listing / blob).
    pub fn needs_body(self) -> bool {
        matches!(
            self,
            Fault::ResetMidBody | Fault::TruncatedBody | Fault::NonJsonBody
        )
    }
}

/// Parses a comma-separated list; unknown names are an error naming the valid ones.
pub fn parse_list(s: &str) -> Result<Vec<Fault>, String> {
    let mut out = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match Fault::parse(name) {
            Some(f) => out.push(f),
            None => {
                return Err(format!(
                    "unknown fault {name:?}; valid: {}",
                    Fault::ALL.map(Fault::name).join(", ")
                ));
            }
        }
    }
    Ok(out)
}

pub(crate) struct Faults {
    seed: u64,
    percent: u64,
    on: Mutex<BTreeSet<Fault>>,
    streak: Mutex<HashMap<String, u32>>,
    fired: Mutex<BTreeMap<&'static str, u64>>,
    counter: AtomicU64,
}

impl Faults {
    pub(crate) fn new(seed: u64, percent: u32, initial: &[Fault]) -> Faults {
        Faults {
            seed,
            percent: u64::from(percent.min(100)),
            on: Mutex::new(initial.iter().copied().collect()),
            streak: Mutex::new(HashMap::new()),
            fired: Mutex::new(BTreeMap::new()),
            counter: AtomicU64::new(0),
        }
    }

    pub(crate) fn is_on(&self, f: Fault) -> bool {
        self.on
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&f)
    }

    pub(crate) fn set(&self, f: Fault, on: bool) {
        let mut s = self.on.lock().unwrap_or_else(|e| e.into_inner());
        if on {
            s.insert(f);
        } else {
            s.remove(&f);
        }
    }

    pub(crate) fn active(&self) -> Vec<&'static str> {
        self.on
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|f| f.name())
            .collect()
    }

    pub(crate) fn count(&self, f: Fault) {
        *self
            .fired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(f.name())
            .or_default() += 1;
    }

    pub(crate) fn fired(&self) -> BTreeMap<&'static str, u64> {
        self.fired.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A seeded draw for a per-response switch (e.g. foreign hosts): true for `percent`
    /// of calls while `f` is on.
    pub(crate) fn draw(&self, f: Fault) -> bool {
        if !self.is_on(f) {
            return false;
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let hit = mix(&[self.seed, 0xFA, f as u64, n]) % 100 < self.percent.max(1);
        if hit {
            self.count(f);
        }
        hit
    }

    /// Which transient fault (if any) hits this request. `key` identifies the request
    /// (path and query) so the same one is never failed more than twice in a row.
    pub(crate) fn pick(&self, key: &str, has_body: bool) -> Option<Fault> {
        let candidates: Vec<Fault> = self
            .on
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .filter(|f| f.is_transient() && (has_body || !f.needs_body()))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let mut streak = self.streak.lock().unwrap_or_else(|e| e.into_inner());
        if streak.get(key).copied().unwrap_or(0) >= 2 {
            streak.remove(key);
            return None;
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let x = mix(&[self.seed, 0xFA17, n]);
        if x % 100 >= self.percent {
            streak.remove(key);
            return None;
        }
        let f = candidates[((x >> 8) % candidates.len() as u64) as usize];
        if streak.len() > 100_000 {
            streak.clear();
        }
        *streak.entry(key.to_string()).or_default() += 1;
        drop(streak);
        self.count(f);
        Some(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_an_error() {
        for f in Fault::ALL {
            assert_eq!(Fault::parse(f.name()), Some(f));
        }
        assert_eq!(
            parse_list(" throttle_403, audit_off ,").unwrap(),
            vec![Fault::Throttle403, Fault::AuditOff]
        );
        assert!(parse_list("nope").unwrap_err().contains("throttle_429"));
    }

    #[test]
    fn transient_faults_never_hit_one_key_three_times_running() {
        let f = Faults::new(1, 100, &[Fault::Internal500]);
        let hits: Vec<bool> = (0..9).map(|_| f.pick("/x", true).is_some()).collect();
        assert_eq!(
            hits,
            vec![true, true, false, true, true, false, true, true, false]
        );
        let g = Faults::new(1, 20, &[Fault::ResetMidBody]);
        assert!(
            (0..50).all(|_| g.pick("/y", false).is_none()),
            "body faults need a body"
        );
        let h = Faults::new(1, 20, &[Fault::Throttle403]);
        let n = (0..1000)
            .filter(|i| h.pick(&format!("/k{i}"), true).is_some())
            .count();
        assert!((120..280).contains(&n), "{n}");
    }
}
