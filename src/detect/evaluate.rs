//! The one evaluation core of the detections: given a record's candidate detections (from
//! the table/operation prefilter) and its text, it drops the candidates whose words the text
//! lacks, scans the fields they read, serves each from the memo when an earlier record had
//! the same fields, else parses (only those fields) once, runs jaq and hands the outputs to
//! a [`Sink`]. Storing a record (the store's preparers, through [`Runner`]) and grouping a
//! table (`detect`, through `report::Grouper`) differ only in their sink: the hits as JSON,
//! or folded into groups.
//!
//! It owns the per-thread state of evaluation (memo, field unions, buffers); it must not
//! decide what becomes of a hit (the sink does) nor know where records come from.
//!
//! Invariants (each guarded by a test in `tests.rs` or `grouper.rs`):
//! 1. The outcome of a record does not depend on the memo, the words or the projection: a
//!    memoized run gives what a plain run gives (`memoized_runs_group_exactly_as_plain_runs`,
//!    `a_runner_with_its_memo_gives_what_a_plain_run_gives`), and the prefilters never change
//!    a result (`tests/detect_queries.rs`).
//! 2. Only a complete run is memoized: a detection that failed on a record is run again on
//!    the next record with the same fields.

use super::memo::{Lookup, Memo};
use super::meta::Field;
use super::{Detections, Hit, Meta, RunError, RunFailure, project, val_path, val_to_json};
use crate::model::{JsonText, RecordHeader};
use foldhash::HashMap;
use jaq_json::Val;
use serde::Deserialize as _;
use std::rc::Rc;

/// A record as the evaluator gets it.
#[derive(Clone, Copy)]
pub enum Input<'a> {
    /// Raw text not known to be JSON (a test record, a query's input): checked in full.
    Text(&'a [u8]),
    /// Text known to be JSON: the declared fields are found by a scan that steps over the
    /// rest unchecked.
    Json(JsonText<'a>),
    /// A record already parsed: no text, so no word prefilter and no memo.
    Value(&'a serde_json::Value),
}

/// What becomes of the outputs of the detections on one record.
pub(crate) trait Sink {
    /// What one detection made of one input; the memo keeps it for later records with the
    /// same fields.
    type Made;
    /// The outputs of detection `i` on `record` (its projected value) as what is folded in
    /// and memoized, with the heap bytes it weighs.
    fn make(&mut self, d: &Detections, i: usize, outs: &[Val], record: &Val)
    -> (Self::Made, usize);
    /// Folds in what detection `i` made of the record, fresh or from the memo.
    fn take(&mut self, d: &Detections, i: usize, made: &Self::Made);
    /// Detection `i` failed on the record.
    fn failed(&mut self, d: &Detections, i: usize, message: String);
}

/// The per-thread state of evaluation.
pub(crate) struct Evaluator<M> {
    memo: Option<Memo<M>>,
    /// The fields to scan per set of candidate detections (few distinct sets recur).
    unions: HashMap<Vec<u16>, Option<Vec<Field>>>,
    lower: Vec<u8>,
    admitted: Vec<u16>,
    /// Records parsed and runs served from the memo (how the work was done).
    pub(crate) parsed: u64,
    pub(crate) memo_hits: u64,
    /// Per detection: records its words admitted, and jq runs (not served by the memo).
    pub(crate) admitted_per: Vec<u64>,
    pub(crate) runs_per: Vec<u64>,
}

impl<M> Evaluator<M> {
    /// An evaluator for `d`; `memo_budget` bytes of memo (None: no memo).
    pub(crate) fn new(d: &Detections, memo_budget: Option<usize>) -> Evaluator<M> {
        Evaluator {
            memo: memo_budget.map(|b| Memo::with_budget(d.items.len(), b)),
            unions: HashMap::default(),
            lower: Vec::new(),
            admitted: Vec::new(),
            parsed: 0,
            memo_hits: 0,
            admitted_per: vec![0; d.items.len()],
            runs_per: vec![0; d.items.len()],
        }
    }

    /// Evaluates the candidate detections `cands` (indices into `d.items`, from
    /// [`Detections::candidate_indices`]) on one record.
    pub(crate) fn eval(
        &mut self,
        d: &Detections,
        cands: &[u16],
        input: Input<'_>,
        sink: &mut impl Sink<Made = M>,
    ) {
        let mut admitted = std::mem::take(&mut self.admitted);
        admitted.clear();
        match input {
            Input::Text(t) => d.admitted(cands, t, false, &mut self.lower, &mut admitted),
            Input::Json(j) => d.admitted(cands, j.as_bytes(), true, &mut self.lower, &mut admitted),
            Input::Value(_) => admitted.extend_from_slice(cands),
        }
        for &c in &admitted {
            self.admitted_per[usize::from(c)] += 1;
        }
        if !admitted.is_empty() {
            self.eval_admitted(d, &admitted, input, sink);
        }
        self.admitted = admitted;
    }

    fn eval_admitted(
        &mut self,
        d: &Detections,
        cands: &[u16],
        input: Input<'_>,
        sink: &mut impl Sink<Made = M>,
    ) {
        if !self.unions.contains_key(cands) {
            self.unions.insert(cands.to_vec(), d.fields_for(cands));
        }
        let fields = self.unions.get(cands).and_then(Option::as_ref);
        let pairs = match (fields, input) {
            (Some(f), Input::Json(j)) => project::scan_json(j.as_bytes(), f),
            (Some(f), Input::Text(t)) => project::scan(t, f),
            _ => None,
        };
        let mut record: Option<Val> = None;
        let mut vars = None;
        for (n, &c) in cands.iter().enumerate() {
            let i = usize::from(c);
            let det = &d.items[i];
            let key = match (&pairs, &det.proj, self.memo.as_mut()) {
                (Some(p), Some(f), Some(memo)) => match memo.get(i, f, p) {
                    Lookup::Hit(made) => {
                        sink.take(d, i, made);
                        self.memo_hits += 1;
                        continue;
                    }
                    Lookup::Miss(key) => Some(key),
                    Lookup::Off => None,
                },
                _ => None,
            };
            let rec = match &record {
                Some(v) => v,
                None => {
                    self.parsed += 1;
                    let parsed = match (&pairs, input) {
                        (Some(p), _) => project::build(p),
                        (None, Input::Value(v)) => match fields {
                            Some(f) => project::from_value(v, f),
                            None => Val::deserialize(v).map_err(|e| e.to_string()),
                        },
                        // no pairs: parse and check it all
                        (None, Input::Json(j)) => d.parse_for(cands, j.as_bytes()),
                        (None, Input::Text(t)) => d.parse_for(cands, t),
                    };
                    // The declared fields failed to parse: the whole text decides, with its
                    // fallbacks (a lone surrogate escape reads as U+FFFD).
                    let parsed = match (parsed, input) {
                        (Err(_), Input::Json(j)) if pairs.is_some() => {
                            d.parse_for(cands, j.as_bytes())
                        }
                        (Err(_), Input::Text(t)) if pairs.is_some() => d.parse_for(cands, t),
                        (p, _) => p,
                    };
                    match parsed {
                        Ok(v) => record.insert(v),
                        Err(e) => {
                            for &c in &cands[n..] {
                                sink.failed(d, usize::from(c), format!("record is not JSON: {e}"));
                            }
                            return;
                        }
                    }
                }
            };
            self.runs_per[i] += 1;
            let vars = vars.get_or_insert_with(|| d.vars.vals());
            let (outs, failure) = det.program.run(rec.clone(), vars.clone(), &d.limits);
            let (made, weight) = sink.make(d, i, &outs, rec);
            sink.take(d, i, &made);
            match failure {
                Some(f) => sink.failed(d, i, failure_message(f)),
                // only a complete run stands for every record with these fields
                None => {
                    if let (Some(key), Some(memo)) = (key, self.memo.as_mut()) {
                        memo.insert(i, key, made, weight);
                    }
                }
            }
        }
    }
}

/// One output of a detection as a [`Hit`]: the output as JSON and its group key (the
/// `group_by` paths in the output, else in the record).
pub(super) fn hit(meta: &Meta, v: &Val, record: &Val) -> Hit {
    let details = val_to_json(v);
    let group_key =
        super::group::group_key_with(&meta.group_by, &details, |path| val_path(record, path));
    Hit {
        detection: meta.id.clone(),
        details,
        group_key,
    }
}

pub(crate) fn failure_message(f: RunFailure) -> String {
    match f {
        RunFailure::Error(m) => format!("jq error: {m}"),
        RunFailure::Limit(m) => m,
    }
}

/// The sink of [`Runner`]: each output as a [`Hit`], each failure as a [`RunError`].
#[derive(Default)]
struct HitSink {
    hits: Vec<Hit>,
    errors: Vec<RunError>,
}

impl Sink for HitSink {
    type Made = Rc<[Hit]>;

    fn make(&mut self, d: &Detections, i: usize, outs: &[Val], record: &Val) -> (Rc<[Hit]>, usize) {
        let meta = &d.items[i].meta;
        let mut weight = 0;
        let hits: Rc<[Hit]> = outs
            .iter()
            .map(|v| {
                let h = hit(meta, v, record);
                weight += std::mem::size_of::<Hit>()
                    + h.detection.len()
                    + super::memo::json_weight(&h.details)
                    + super::memo::json_weight(&h.group_key);
                h
            })
            .collect();
        (hits, weight)
    }

    fn take(&mut self, _: &Detections, _: usize, made: &Rc<[Hit]>) {
        self.hits.extend(made.iter().cloned());
    }

    fn failed(&mut self, d: &Detections, i: usize, message: String) {
        self.errors.push(RunError {
            detection: d.items[i].meta.id.clone(),
            message,
        });
    }
}

/// Runs the detections record by record, keeping what it learnt between records (the
/// memo): one per thread that stores records. A runner used with another set of
/// detections than before starts afresh.
pub struct Runner {
    ev: Option<(u64, Evaluator<Rc<[Hit]>>)>,
    memo_budget: Option<usize>,
    cands: Vec<u16>,
}

impl Runner {
    /// A runner whose memo weighs at most `memo_budget` bytes (None: no memo).
    pub fn new(memo_budget: Option<usize>) -> Runner {
        Runner {
            ev: None,
            memo_budget,
            cands: Vec::new(),
        }
    }

    /// Runs every detection whose prefilter accepts the record; returns its hits and the
    /// detections that failed on it.
    pub fn run(
        &mut self,
        d: &Detections,
        header: &RecordHeader,
        input: Input<'_>,
    ) -> (Vec<Hit>, Vec<RunError>) {
        let mut sink = HitSink::default();
        self.cands.clear();
        d.candidate_indices(header, &mut self.cands);
        if self.cands.is_empty() {
            return (sink.hits, sink.errors);
        }
        let ev = match &mut self.ev {
            Some((id, ev)) if *id == d.id => ev,
            slot => &mut slot.insert((d.id, Evaluator::new(d, self.memo_budget))).1,
        };
        ev.eval(d, &self.cands, input, &mut sink);
        (sink.hits, sink.errors)
    }
}
