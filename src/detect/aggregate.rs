//! Grouping of detection outputs: a hit is keyed by its `group_by` values' JSON identity
//! (see `encode_json`), one group per key per worker thread (a threshold rule keeps its
//! events per key, bursts need them all); merging is order-independent, so the result is
//! the same for any number of threads and equals grouping the [`super::Hit`]s of
//! `Detections::run` (a unit test in `grouper.rs` checks both).

use super::evaluate::Sink;
use super::group::{Group, TimedValue, bursts, group_key_with, sort_groups};
use super::report::DetectionResult;
use super::{Detections, Meta, val_to_json};
use chrono::{DateTime, Utc};
use foldhash::HashMap;
use jaq_json::Val;
use serde_json::Value;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Grouping state of one detection. Hits are folded in as they come: a plain detection
/// keeps one [`Group`] per key, a threshold rule its events per key (bursts need them all).
#[derive(Default)]
pub(super) struct DetAgg {
    pub(super) matched: u64,
    pub(super) groups: HashMap<String, Group>,
    pub(super) events: HashMap<String, (Value, Vec<TimedValue>)>,
}

/// What one thread has grouped so far; merged at the end (merging is order-independent:
/// counts add, first/last seen are min/max, the first error is the lowest `seq`).
pub(super) struct Agg {
    pub(super) per: Vec<DetAgg>,
    pub(super) errors: BTreeMap<String, (u64, u64, String)>,
    /// Unique values for the events of threshold rules without `distinct`.
    unique: u64,
    pub(super) parsed: u64,
    pub(super) memo_hits: u64,
    /// Per detection: records admitted by its words, jq runs.
    pub(super) admitted: Vec<u64>,
    pub(super) runs: Vec<u64>,
}

impl Agg {
    pub(super) fn new(n: usize) -> Agg {
        Agg {
            per: (0..n).map(|_| DetAgg::default()).collect(),
            errors: BTreeMap::new(),
            unique: 0,
            parsed: 0,
            memo_hits: 0,
            admitted: vec![0; n],
            runs: vec![0; n],
        }
    }

    pub(super) fn error(&mut self, detection: &str, seq: u64, message: String) {
        match self.errors.get_mut(detection) {
            Some(e) => {
                e.0 += 1;
                if seq < e.1 {
                    (e.1, e.2) = (seq, message);
                }
            }
            None => {
                self.errors.insert(detection.to_string(), (1, seq, message));
            }
        }
    }

    pub(super) fn merge(&mut self, other: Agg) {
        self.parsed += other.parsed;
        self.memo_hits += other.memo_hits;
        add_into(&mut self.admitted, &other.admitted);
        add_into(&mut self.runs, &other.runs);
        for (mine, theirs) in self.per.iter_mut().zip(other.per) {
            mine.matched += theirs.matched;
            for (k, g) in theirs.groups {
                match mine.groups.get_mut(&k) {
                    Some(m) => {
                        m.count += g.count;
                        m.first_seen = m.first_seen.min(g.first_seen);
                        m.last_seen = m.last_seen.max(g.last_seen);
                    }
                    None => {
                        mine.groups.insert(k, g);
                    }
                }
            }
            for (k, (key, ev)) in theirs.events {
                mine.events
                    .entry(k)
                    .or_insert_with(|| (key, Vec::new()))
                    .1
                    .extend(ev);
            }
        }
        for (d, (n, seq, m)) in other.errors {
            match self.errors.get_mut(&d) {
                Some(e) => {
                    e.0 += n;
                    if seq < e.1 {
                        (e.1, e.2) = (seq, m);
                    }
                }
                None => {
                    self.errors.insert(d, (n, seq, m));
                }
            }
        }
    }

    /// Folds one hit in: `enc` is the key's identity (see [`key_identity`]), `key` builds
    /// the key's JSON only when the group is new, `distinct` the event's distinct text.
    pub(super) fn add(
        &mut self,
        i: usize,
        meta: &Meta,
        enc: &str,
        key: impl FnOnce() -> Value,
        distinct: impl FnOnce() -> String,
        time: DateTime<Utc>,
    ) {
        let a = &mut self.per[i];
        a.matched += 1;
        if meta.threshold.is_none() {
            match a.groups.get_mut(enc) {
                Some(g) => {
                    g.count += 1;
                    g.first_seen = g.first_seen.min(time);
                    g.last_seen = g.last_seen.max(time);
                }
                None => {
                    a.groups.insert(
                        enc.to_string(),
                        Group {
                            key: key(),
                            count: 1,
                            first_seen: time,
                            last_seen: time,
                        },
                    );
                }
            }
            return;
        }
        let d = if meta.distinct.is_some() {
            distinct()
        } else {
            // every event its own value: the window counts events
            self.unique += 1;
            format!("u{}", self.unique)
        };
        match a.events.get_mut(enc) {
            Some(e) => e.1.push((time, d)),
            None => {
                a.events.insert(enc.to_string(), (key(), vec![(time, d)]));
            }
        }
    }
}

/// Folds a record's outputs into a thread's groups; memoizes them as shared parts.
pub(super) struct AggSink<'a> {
    pub(super) agg: &'a mut Agg,
    pub(super) interned: &'a mut Interned,
    pub(super) time: DateTime<Utc>,
    pub(super) seq: u64,
}

impl Sink for AggSink<'_> {
    type Made = Vec<Rc<HitParts>>;

    fn make(
        &mut self,
        d: &Detections,
        i: usize,
        outs: &[Val],
        record: &Val,
    ) -> (Vec<Rc<HitParts>>, usize) {
        let meta = &d.items[i].meta;
        let mut weight = 0;
        let parts = outs
            .iter()
            .map(|v| {
                self.interned
                    .get(i, hit_parts(meta, v, record), &mut weight)
            })
            .collect();
        (parts, weight)
    }

    fn take(&mut self, d: &Detections, i: usize, made: &Vec<Rc<HitParts>>) {
        let meta = &d.items[i].meta;
        for h in made {
            self.agg.add(
                i,
                meta,
                &h.enc,
                || h.key.clone(),
                || h.distinct.clone(),
                self.time,
            );
        }
    }

    fn failed(&mut self, d: &Detections, i: usize, message: String) {
        self.agg.error(&d.items[i].meta.id, self.seq, message);
    }
}

/// One [`HitParts`] per detection and group (many memo keys land in the same group).
#[derive(Default)]
pub(super) struct Interned {
    parts: HashMap<(usize, String, String), Rc<HitParts>>,
}

/// Interned parts kept for sharing; beyond it the table starts over (the memo's entries
/// keep theirs).
const MAX_INTERNED: usize = 32_768;

impl Interned {
    /// The shared copy of `h` for detection `i`; adds to `weight` what a new one weighs.
    pub(super) fn get(&mut self, i: usize, h: HitParts, weight: &mut usize) -> Rc<HitParts> {
        *weight += std::mem::size_of::<Rc<HitParts>>();
        let id = (i, h.enc, h.distinct);
        if let Some(p) = self.parts.get(&id) {
            return p.clone();
        }
        if self.parts.len() >= MAX_INTERNED {
            self.parts.clear();
        }
        let (_, enc, distinct) = id;
        let p = Rc::new(HitParts {
            enc,
            key: h.key,
            distinct,
        });
        *weight += p.weight();
        self.parts
            .insert((i, p.enc.clone(), p.distinct.clone()), p.clone());
        p
    }
}

/// What grouping needs of one output: the key's identity (see `encode_json`), the key as
/// JSON and the `distinct` value's text (empty without `distinct`).
pub(super) struct HitParts {
    pub(super) enc: String,
    pub(super) key: Value,
    pub(super) distinct: String,
}

impl HitParts {
    /// Heap bytes, roughly (what the memo's budget counts).
    fn weight(&self) -> usize {
        std::mem::size_of::<HitParts>()
            + self.enc.capacity()
            + self.distinct.capacity()
            + super::memo::json_weight(&self.key)
    }
}

/// The [`HitParts`] of one output, keyed the way [`super::Detections::run`] would key it
/// (`group_key`: the `group_by` paths in the output, else in the record), without first
/// turning a plain output into a `serde_json::Value`.
fn hit_parts(meta: &Meta, v: &Val, record: &Val) -> HitParts {
    let mut enc = String::new();
    if is_plain(v) {
        let component = |name: &String| {
            val_lookup(v, name.split('.')).or_else(|| val_lookup(record, name.split('.')))
        };
        let mut key = serde_json::Map::new();
        for name in &meta.group_by {
            let x = component(name);
            match x {
                Some(x) => encode_val(x, &mut enc),
                None => enc.push('n'),
            }
            key.insert(name.clone(), x.map_or(Value::Null, val_to_json));
        }
        let distinct = match &meta.distinct {
            Some(path) => val_lookup(v, path.split('.'))
                .map_or(Value::Null, val_to_json)
                .to_string(),
            None => String::new(),
        };
        HitParts {
            enc,
            key: Value::Object(key),
            distinct,
        }
    } else {
        // not plain JSON (a byte string, a non-string key): the output as JSON first,
        // exactly as `Detections::run` does
        let details = val_to_json(v);
        let key = group_key_with(&meta.group_by, &details, |path| {
            val_lookup(record, path.iter().copied()).map(val_to_json)
        });
        for name in &meta.group_by {
            encode_json(key.get(name).unwrap_or(&Value::Null), &mut enc);
        }
        let distinct = match &meta.distinct {
            Some(path) => lookup(&details, path).unwrap_or(Value::Null).to_string(),
            None => String::new(),
        };
        HitParts { enc, key, distinct }
    }
}

/// True when the value is JSON only (no byte string, only string keys, UTF-8 text):
/// then walking it equals walking its `serde_json` form.
fn is_plain(v: &Val) -> bool {
    match v {
        Val::Null | Val::Bool(_) | Val::Num(_) => true,
        Val::TStr(b) => std::str::from_utf8(b).is_ok(),
        Val::BStr(_) => false,
        Val::Arr(a) => a.iter().all(is_plain),
        Val::Obj(o) => o
            .iter()
            .all(|(k, v)| matches!(k, Val::TStr(_)) && is_plain(k) && is_plain(v)),
    }
}

/// The value at a dotted path of an object (None when a step is not an object or lacks
/// the key), like `lookup` over the JSON form. Keys are compared in place (objects here are
/// a hit or a projected record: a few entries), so no key value is built per lookup.
fn val_lookup<'v, 'p>(v: &'v Val, path: impl IntoIterator<Item = &'p str>) -> Option<&'v Val> {
    let mut cur = v;
    for key in path {
        match cur {
            Val::Obj(map) => {
                cur = map
                    .iter()
                    .find(|(k, _)| matches!(k, Val::TStr(b) if b.as_ref() == key.as_bytes()))?
                    .1;
            }
            _ => return None,
        }
    }
    Some(cur)
}

/// Appends the identity of a key component: two components get the same text exactly when
/// their JSON forms print the same (what grouping compared before), and the texts of a
/// sequence of components never run together (strings are length-prefixed).
pub(super) fn encode_json(j: &Value, out: &mut String) {
    use std::fmt::Write as _;
    match j {
        Value::Null => out.push('n'),
        Value::Bool(true) => out.push('t'),
        Value::Bool(false) => out.push('f'),
        Value::Number(n) if n.as_i64().is_some() => {
            let _ = write!(out, "i{};", n.as_i64().unwrap_or_default());
        }
        Value::String(s) => {
            let _ = write!(out, "s{}:", s.len());
            out.push_str(s);
        }
        other => {
            let t = other.to_string();
            let _ = write!(out, "j{}:", t.len());
            out.push_str(&t);
        }
    }
}

/// [`encode_json`] of [`val_to_json`]`(v)`, without building the JSON for the common cases.
fn encode_val(v: &Val, out: &mut String) {
    use std::fmt::Write as _;
    match v {
        Val::Null => out.push('n'),
        Val::Bool(true) => out.push('t'),
        Val::Bool(false) => out.push('f'),
        Val::Num(jaq_json::Num::Int(i)) => {
            let _ = write!(out, "i{i};");
        }
        Val::TStr(b) if std::str::from_utf8(b).is_ok() => {
            let _ = write!(out, "s{}:", b.len());
            out.push_str(std::str::from_utf8(b).unwrap_or_default());
        }
        other => encode_json(&val_to_json(other), out),
    }
}

pub(super) fn lookup(v: &Value, path: &str) -> Option<Value> {
    let mut cur = v;
    for k in path.split('.') {
        cur = cur.as_object()?.get(k)?;
    }
    Some(cur.clone())
}

pub(super) fn result(m: &Meta, acc: DetAgg) -> DetectionResult {
    let (groups, threshold) = match m.threshold {
        None => {
            let mut groups: Vec<Group> = acc.groups.into_values().collect();
            sort_groups(&mut groups);
            (groups, None)
        }
        Some(t) => {
            let mut groups = Vec::new();
            for (_, (key, mut ev)) in acc.events {
                groups.extend(bursts(&key, &mut ev, t));
            }
            sort_groups(&mut groups);
            let mut th = serde_json::json!({"count": t.count, "window_secs": t.window_secs});
            if let Some(d) = &m.distinct {
                th["distinct"] = Value::from(d.clone());
            }
            (groups, Some(th))
        }
    };
    DetectionResult {
        id: m.id.clone(),
        title: m.title.clone(),
        severity: m.severity.to_string(),
        group_by: m.group_by.clone(),
        hits: groups.iter().map(|g| g.count).sum(),
        matched: acc.matched,
        threshold,
        groups,
    }
}

/// Adds `from` to `to` element by element.
pub(super) fn add_into(to: &mut [u64], from: &[u64]) {
    for (t, f) in to.iter_mut().zip(from) {
        *t += f;
    }
}
