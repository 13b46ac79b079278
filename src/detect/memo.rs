//! A per-thread memo of what one detection made of one projected input. A detection with
//! `# fields` sees only those top-level fields (`project.rs`; the test suite proves the
//! declaration), and its filter is a pure function of them and of the run's variables: two
//! records whose declared fields have the same raw text give the same outputs. Sign-ins
//! repeat a few (user, address, outcome) shapes over and over, so most candidate records
//! of the busiest detections need neither a parse nor a jq run.
//!
//! It owns the keys and the bound on memory; it must not decide what is cached (the caller
//! stores only complete, error-free runs) nor see the store.
//!
//! Invariants (each guarded by a test below; `memoized_runs_group_exactly_as_plain_runs`
//! in `grouper.rs` checks that memoized and plain evaluation group the same):
//! 1. A key is the exact raw text of the detection's fields present in the record, in
//!    record order, each with its name, length-prefixed: equal keys mean equal projected
//!    values (raw text equality is stricter than value equality).
//! 2. Memory is bounded: the entries of one memo (one worker thread) weigh at most
//!    [`BUDGET`] bytes (key, the caller's weight of the value, and a fixed overhead); an
//!    insert over budget empties the table it goes to, then the largest. A detection whose
//!    inputs rarely repeat (fewer than one hit in [`MIN_HIT_SHARE`] lookups of a [`PROBE`]
//!    window after the first, which only warms the table up) stops being memoized.

use super::meta::Field;
use super::project::{Pairs, Piece};
use foldhash::HashMap;

/// Bytes of entries per memo (per worker thread of `detect`).
pub(crate) const BUDGET: usize = 64 << 20;
/// What an entry weighs besides its key and value: the table slot, the boxed key's and
/// the value's allocation headers.
const ENTRY_OVERHEAD: usize = 96;
/// Lookups per window of the hit-rate check.
pub(crate) const PROBE: u32 = 4096;
/// See the module doc, invariant 2.
pub(crate) const MIN_HIT_SHARE: u32 = 16;

struct Table<T> {
    map: HashMap<Box<[u8]>, T>,
    bytes: usize,
    windows: u32,
    lookups: u32,
    hits: u32,
    off: bool,
}

/// One table per detection (indexed like `Detections::items`).
pub(crate) struct Memo<T> {
    tables: Vec<Table<T>>,
    key: Vec<u8>,
    used: usize,
    budget: usize,
}

impl<T> Memo<T> {
    #[cfg(test)]
    pub(crate) fn new(detections: usize) -> Memo<T> {
        Memo::with_budget(detections, BUDGET)
    }

    /// A memo whose entries weigh at most `budget` bytes.
    pub(crate) fn with_budget(detections: usize, budget: usize) -> Memo<T> {
        Memo {
            tables: (0..detections)
                .map(|_| Table {
                    map: HashMap::default(),
                    bytes: 0,
                    windows: 0,
                    lookups: 0,
                    hits: 0,
                    off: false,
                })
                .collect(),
            key: Vec::with_capacity(512),
            used: 0,
            budget,
        }
    }

    /// Builds the key of detection `i` (reading `fields`) for the scanned record and looks
    /// it up.
    pub(crate) fn get(&mut self, i: usize, fields: &[Field], pairs: &Pairs) -> Lookup<'_, T> {
        let Some(t) = self.tables.get_mut(i) else {
            return Lookup::Off;
        };
        if t.off {
            return Lookup::Off;
        }
        self.key.clear();
        for (k, piece) in pairs {
            let Some(field) = fields.iter().find(|f| f.name == *k) else {
                continue;
            };
            push_text(&mut self.key, k);
            match (piece, &field.entries) {
                (Piece::Entries(kept), Some(entries)) => {
                    // the elements this detection reads, of those the scan kept for all
                    for (name, raw) in kept {
                        if entries.iter().any(|e| e == name) {
                            self.key.push(b'e');
                            push_text(&mut self.key, raw.get());
                        }
                    }
                    self.key.push(b'.');
                }
                // the whole value (also when another detection on the record read it whole)
                (Piece::Whole(raw), _) => {
                    self.key.push(b'w');
                    push_text(&mut self.key, raw.get());
                }
                (Piece::Entries(kept), None) => {
                    // cannot happen: a whole selection makes the scan keep the whole value;
                    // still an exact key
                    for (_, raw) in kept {
                        self.key.push(b'E');
                        push_text(&mut self.key, raw.get());
                    }
                    self.key.push(b'.');
                }
            }
        }
        t.lookups += 1;
        if t.lookups == PROBE {
            t.windows += 1;
            if t.windows > 1 && t.hits * MIN_HIT_SHARE < PROBE {
                t.off = true;
                t.map = HashMap::default();
                self.used -= std::mem::take(&mut t.bytes);
                return Lookup::Off;
            }
            (t.lookups, t.hits) = (0, 0);
        }
        match t.map.get(self.key.as_slice()) {
            Some(v) => {
                t.hits += 1;
                Lookup::Hit(v)
            }
            None => Lookup::Miss(self.key.as_slice().into()),
        }
    }

    /// Stores `v` (which weighs `weight` bytes on the heap) for detection `i` under the
    /// key a [`Lookup::Miss`] gave.
    pub(crate) fn insert(&mut self, i: usize, key: Box<[u8]>, v: T, weight: usize) {
        if self.tables.get(i).is_none_or(|t| t.off) {
            return;
        }
        let cost = key.len() + weight + ENTRY_OVERHEAD;
        if cost > self.budget {
            return;
        }
        if self.used + cost > self.budget {
            self.empty(i);
        }
        while self.used + cost > self.budget {
            let largest = (0..self.tables.len()).max_by_key(|&j| self.tables[j].bytes);
            match largest {
                Some(j) if self.tables[j].bytes > 0 => self.empty(j),
                _ => return,
            }
        }
        let t = &mut self.tables[i];
        t.bytes += cost;
        self.used += cost;
        t.map.insert(key, v);
    }

    fn empty(&mut self, i: usize) {
        let t = &mut self.tables[i];
        t.map.clear();
        self.used -= std::mem::take(&mut t.bytes);
    }
}

/// Heap bytes of a JSON value, roughly (what a memo value weighs).
pub(crate) fn json_weight(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    match v {
        Value::String(s) => s.capacity(),
        Value::Array(a) => a.iter().map(|x| 32 + json_weight(x)).sum(),
        Value::Object(o) => o
            .iter()
            .map(|(k, x)| 64 + k.capacity() + json_weight(x))
            .sum(),
        _ => 0,
    }
}

/// Appends `s` length-prefixed, so that texts in a row never run together.
fn push_text(key: &mut Vec<u8>, s: &str) {
    key.extend_from_slice(&(s.len() as u32).to_le_bytes());
    key.extend_from_slice(s.as_bytes());
}

/// What [`Memo::get`] found.
#[derive(Debug, PartialEq)]
pub(crate) enum Lookup<'a, T> {
    /// The detection is not memoized: evaluate as usual.
    Off,
    /// The value stored for an equal input.
    Hit(&'a T),
    /// Nothing yet: evaluate, then [`Memo::insert`] the result under this key.
    Miss(Box<[u8]>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::project::scan;

    fn fields(f: &[&str]) -> Vec<Field> {
        f.iter().map(|s| Field::whole(s)).collect()
    }

    #[test]
    fn equal_fields_hit_and_any_difference_in_them_misses() {
        let mut m: Memo<u32> = Memo::new(1);
        let f = fields(&["a", "b"]);
        let all = fields(&["a", "b", "c"]);
        let r1 = br#"{"a": "x", "c": 1, "b": [1]}"#;
        let p = scan(r1, &all).unwrap();
        let Lookup::Miss(k) = m.get(0, &f, &p) else {
            panic!("first lookup misses")
        };
        m.insert(0, k, 7, 0);
        // a field the detection does not read may differ
        let r2 = br#"{"a": "x", "c": 2, "b": [1]}"#;
        assert_eq!(m.get(0, &f, &scan(r2, &all).unwrap()), Lookup::Hit(&7));
        // any change in a field it reads, its order, or a field appearing, is another key
        for other in [
            &br#"{"a": "y", "b": [1]}"#[..],
            br#"{"b": [1], "a": "x"}"#,
            br#"{"a": "x", "b": [1], "a": "x"}"#,
            br#"{"a": "x", "b": [ 1]}"#,
            br#"{"a": "x"}"#,
            br#"{"a": "x", "b": "[1]"}"#,
        ] {
            let l = m.get(0, &f, &scan(other, &all).unwrap());
            assert!(matches!(l, Lookup::Miss(_)), "{other:?}");
        }
        // the field name is part of the key: the same texts under other names differ
        let g = fields(&["a", "c"]);
        let mut n: Memo<u32> = Memo::new(1);
        let Lookup::Miss(k) = n.get(0, &g, &scan(br#"{"a": "1", "c": "2"}"#, &all).unwrap()) else {
            panic!("first lookup misses")
        };
        n.insert(0, k, 1, 0);
        let l = n.get(0, &g, &scan(br#"{"a": "12", "c": ""}"#, &all).unwrap());
        assert!(matches!(l, Lookup::Miss(_)));
    }

    #[test]
    fn entries_key_only_the_named_elements_the_detection_reads() {
        let sel = |e: &[&str]| Field {
            name: "P".into(),
            entries: Some(e.iter().map(|s| s.to_string()).collect()),
        };
        // the scan keeps the union (A, B); detection 0 reads A only
        let union = [sel(&["A", "B"])];
        let mine = [sel(&["A"])];
        let rec = |a: &str, b: &str, c: &str| {
            format!(
                r#"{{"P": [{{"Name": "A", "Value": "{a}"}}, {{"Name": "B", "Value": "{b}"}}, {{"Name": "C", "Value": "{c}"}}, 5]}}"#
            )
        };
        let mut m: Memo<u32> = Memo::new(1);
        let r = rec("1", "2", "3");
        let Lookup::Miss(k) = m.get(0, &mine, &scan(r.as_bytes(), &union).unwrap()) else {
            panic!("first lookup misses")
        };
        m.insert(0, k, 1, 0);
        // B and C are not read by detection 0: they may differ
        let r = rec("1", "other", "other");
        assert_eq!(
            m.get(0, &mine, &scan(r.as_bytes(), &union).unwrap()),
            Lookup::Hit(&1)
        );
        // A differs: another key
        let r = rec("9", "2", "3");
        assert!(matches!(
            m.get(0, &mine, &scan(r.as_bytes(), &union).unwrap()),
            Lookup::Miss(_)
        ));
        // a second A element (jq's `first` could see either): another key
        let r = r#"{"P": [{"Name": "A", "Value": "1"}, {"Name": "A", "Value": "1"}]}"#;
        assert!(matches!(
            m.get(0, &mine, &scan(r.as_bytes(), &union).unwrap()),
            Lookup::Miss(_)
        ));
        // P as a non-array is keyed whole
        let r = r#"{"P": {"Name": "A", "Value": "1"}}"#;
        assert!(matches!(
            m.get(0, &mine, &scan(r.as_bytes(), &union).unwrap()),
            Lookup::Miss(_)
        ));
    }

    #[test]
    fn memory_is_bounded_and_unique_inputs_turn_the_memo_off() {
        let mut m: Memo<u32> = Memo::new(2);
        let f = fields(&["a"]);
        // unique inputs: the first window only warms up, the second turns the memo off
        for n in 0..(PROBE as usize * 3) {
            let raw = format!(r#"{{"a": {n}}}"#);
            let p = scan(raw.as_bytes(), &f).unwrap();
            match m.get(0, &f, &p) {
                Lookup::Miss(k) => m.insert(0, k, 0, 0),
                Lookup::Hit(_) => panic!("unique inputs cannot hit"),
                Lookup::Off => {
                    assert_eq!(
                        n + 1,
                        2 * PROBE as usize,
                        "turned off after the second window"
                    );
                    assert!(m.tables[0].map.is_empty());
                    break;
                }
            }
        }
        assert!(m.tables[0].off);
        // inputs that repeat keep it on; the entries never outweigh the budget, an insert
        // over budget empties its own table first, then the largest
        m.budget = 64 << 10;
        let long = "x".repeat(1000);
        for n in 0..2000 {
            let raw = format!(r#"{{"a": "{long}{n}"}}"#);
            let p = scan(raw.as_bytes(), &f).unwrap();
            if let Lookup::Miss(k) = m.get(1, &f, &p) {
                m.insert(1, k, 0, 500);
            }
            let p = scan(br#"{"a": "same"}"#, &f).unwrap();
            if let Lookup::Miss(k) = m.get(1, &f, &p) {
                m.insert(1, k, 0, 10);
            }
            assert!(m.used <= m.budget);
            assert_eq!(m.used, m.tables.iter().map(|t| t.bytes).sum::<usize>());
        }
        assert!(!m.tables[1].map.is_empty());
        let mut m: Memo<u32> = Memo::new(3);
        m.budget = 1000;
        for (i, n) in [(0, 1), (0, 2), (0, 3), (1, 4)] {
            let raw = format!(r#"{{"a": {n}}}"#);
            let Lookup::Miss(k) = m.get(i, &f, &scan(raw.as_bytes(), &f).unwrap()) else {
                panic!("misses")
            };
            m.insert(i, k, 0, 200);
        }
        // table 0 (three entries, 900 bytes) was emptied for table 1's entry
        assert_eq!((m.tables[0].map.len(), m.tables[1].map.len()), (0, 1));
        // a single entry over the whole budget is not stored
        let Lookup::Miss(k) = m.get(2, &f, &scan(br#"{"a": 9}"#, &f).unwrap()) else {
            panic!("misses")
        };
        m.insert(2, k, 0, 5000);
        assert!(m.tables[2].map.is_empty() && m.tables[1].map.len() == 1);
        assert!(!m.tables[1].off);
    }
}
