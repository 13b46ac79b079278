//! Re-running detections over many records (what `m365audit detect` does): candidate
//! records are buffered and evaluated in batches on worker threads (each with its own
//! evaluator and memo, see `evaluate.rs`), records of one user always on the same worker,
//! and the outputs folded into per-thread groups (`aggregate.rs`) merged at the end.
//! Pure: records come in from the caller (the only threads it starts are its own scoped
//! workers; it must not read the store itself).

use super::aggregate::{Agg, AggSink, HitParts, Interned, add_into, encode_json, lookup, result};
use super::evaluate::{Evaluator, Input};
use super::report::Report;
use super::{Detections, Hit};
use crate::model::{JsonText, RecordHeader};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::rc::Rc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

/// Candidate records waiting to be evaluated: their raw JSON texts back to back in one
/// buffer (no allocation per record) and their candidate detections in another.
#[derive(Default)]
struct Batch {
    text: Vec<u8>,
    cands: Vec<u16>,
    items: Vec<Item>,
}

struct Item {
    text_end: usize,
    cand_end: usize,
    /// The text is the record as its source keeps it, with this [`Packed::tag`]; the
    /// worker's [`Unpack`] gives its JSON text.
    packed: Option<i64>,
    time: DateTime<Utc>,
    /// Position of the record in the input: "first error" means the lowest.
    seq: u64,
}

/// A record as its source keeps it (the store: zstd with a dictionary): an opaque tag and
/// the bytes, turned into the record's JSON text by the source's [`Unpack`] on a worker
/// thread, beside evaluation rather than on the thread that reads the source.
#[derive(Debug, Clone, Copy)]
pub struct Packed<'a> {
    pub tag: i64,
    pub bytes: &'a [u8],
}

/// Turns [`Packed`] records back into their JSON text; each worker thread gets its own.
/// An implementation vouches that the text is JSON (the store keeps only records it
/// parsed), so the scan for the fields detections read steps over the rest unchecked.
pub trait Unpack: Send {
    fn unpack(&mut self, packed: Packed<'_>, out: &mut Vec<u8>) -> anyhow::Result<()>;
}

/// Makes one [`Unpack`] per worker thread.
pub type MakeUnpack<'m> = &'m (dyn Fn() -> anyhow::Result<Box<dyn Unpack>> + Sync);

/// Candidates per batch, and the text size at which a batch is sent early.
const BATCH: usize = 4096;
const BATCH_BYTES: usize = 8 << 20;

/// Collects hits record by record and groups them at the end. Candidate records are
/// buffered and evaluated in batches on every core (the detections are shared read-only;
/// each thread parses its own records and groups into its own state, merged at the end,
/// so the outcome does not depend on the number of threads). [`Grouper::stream`] also
/// overlaps reading the records with evaluating them.
pub struct Grouper<'a> {
    detections: &'a Detections,
    agg: Agg,
    records: u64,
    candidates: u64,
    /// One batch per lane (per worker thread inside [`Grouper::stream`], else one).
    batches: Vec<Batch>,
    threads: usize,
    /// Inside [`Grouper::stream`]: full batches go to the worker threads.
    /// One sender per worker: a record goes to the lane of its user, so each worker's
    /// memo sees every record of its users (their inputs repeat) and none of the others'.
    senders: Vec<SyncSender<Batch>>,
    /// Emptied batches the workers hand back, so their buffers are reused.
    pool: Arc<Mutex<Vec<Batch>>>,
    /// Where packed records can be unpacked ([`Grouper::stream_with`]).
    make: Option<MakeUnpack<'a>>,
}

impl<'a> Grouper<'a> {
    pub fn new(detections: &'a Detections) -> Grouper<'a> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8);
        Grouper {
            detections,
            agg: Agg::new(detections.items.len()),
            records: 0,
            candidates: 0,
            batches: vec![Batch::default()],
            threads,
            senders: Vec::new(),
            pool: Arc::default(),
            make: None,
        }
    }

    /// Runs `feed` (which adds records with [`Grouper::add_record`] / [`Grouper::add_lazy`])
    /// on this thread while worker threads evaluate the batches it fills: reading and
    /// evaluating overlap. Returns what `feed` returned and the grouped results.
    pub fn stream<T>(
        detections: &'a Detections,
        feed: impl FnOnce(&mut Grouper<'a>) -> T,
    ) -> (T, Report) {
        Grouper::stream_with(detections, None, feed)
    }

    /// [`Grouper::stream`] where `feed` may also add records as their source keeps them
    /// ([`Grouper::add_packed`]): the workers unpack them with unpackers from `make`.
    pub fn stream_with<T>(
        detections: &'a Detections,
        make: Option<MakeUnpack<'a>>,
        feed: impl FnOnce(&mut Grouper<'a>) -> T,
    ) -> (T, Report) {
        let mut g = Grouper::new(detections);
        g.make = make;
        let pool = g.pool.clone();
        let pool = &pool;
        let threads = g.threads;
        let n = detections.items.len();
        // bounded: reading never runs more than a few batches ahead of evaluation
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..threads).map(|_| sync_channel::<Batch>(2)).unzip();
        std::thread::scope(|s| {
            let workers: Vec<_> = receivers
                .into_iter()
                .map(|rx| {
                    s.spawn(move || {
                        let mut agg = Agg::new(n);
                        let mut worker = Worker::new(make, detections);
                        while let Ok(mut batch) = rx.recv() {
                            eval_items(
                                detections,
                                &batch,
                                0..batch.items.len(),
                                &mut agg,
                                &mut worker,
                            );
                            batch.text.clear();
                            batch.cands.clear();
                            batch.items.clear();
                            if let Ok(mut p) = pool.lock() {
                                p.push(batch);
                            }
                        }
                        agg
                    })
                })
                .collect();
            g.batches = (0..threads).map(|_| Batch::default()).collect();
            g.senders = senders;
            let t = feed(&mut g);
            for lane in 0..g.batches.len() {
                g.flush(lane);
            }
            g.senders.clear();
            for w in workers {
                match w.join() {
                    Ok(agg) => g.agg.merge(agg),
                    Err(_) => g
                        .agg
                        .error("*", 0, "a detection thread panicked".to_string()),
                }
            }
            (t, g.finish())
        })
    }

    /// Runs the detections on one stored record (raw JSON text); parses it only when the
    /// prefilter accepts the header.
    pub fn add_record(&mut self, header: &RecordHeader, raw: &[u8]) {
        // the raw text is at hand: fetching it cannot fail
        let _ = self.add_lazy(header, || Ok(raw));
    }

    /// Like [`Grouper::add_record`], but the raw JSON is fetched (e.g. decompressed) only
    /// when a detection's prefilter accepts the header. An error fetching it is returned
    /// and the record is not evaluated.
    pub fn add_lazy<'r>(
        &mut self,
        header: &RecordHeader,
        raw: impl FnOnce() -> anyhow::Result<&'r [u8]>,
    ) -> anyhow::Result<()> {
        self.records += 1;
        let lane = self.lane(header);
        let batch = &mut self.batches[lane];
        let start = batch.cands.len();
        self.detections.candidate_indices(header, &mut batch.cands);
        if batch.cands.len() == start {
            return Ok(());
        }
        let raw = match raw() {
            Ok(r) => r,
            Err(e) => {
                batch.cands.truncate(start);
                return Err(e);
            }
        };
        self.candidates += 1;
        batch.text.extend_from_slice(raw);
        batch.items.push(Item {
            text_end: batch.text.len(),
            cand_end: batch.cands.len(),
            packed: None,
            time: header.creation_time,
            seq: self.records,
        });
        if batch.items.len() >= BATCH || batch.text.len() >= BATCH_BYTES {
            self.flush(lane);
        }
        Ok(())
    }

    /// Like [`Grouper::add_record`] for a record as its source keeps it: only inside
    /// [`Grouper::stream_with`] with an unpacker.
    pub fn add_packed(&mut self, header: &RecordHeader, packed: Packed<'_>) -> anyhow::Result<()> {
        if self.make.is_none() {
            anyhow::bail!("a packed record needs Grouper::stream_with and an unpacker");
        }
        self.records += 1;
        let lane = self.lane(header);
        let batch = &mut self.batches[lane];
        let start = batch.cands.len();
        self.detections.candidate_indices(header, &mut batch.cands);
        if batch.cands.len() == start {
            return Ok(());
        }
        self.candidates += 1;
        batch.text.extend_from_slice(packed.bytes);
        batch.items.push(Item {
            text_end: batch.text.len(),
            cand_end: batch.cands.len(),
            packed: Some(packed.tag),
            time: header.creation_time,
            seq: self.records,
        });
        if batch.items.len() >= BATCH {
            self.flush(lane);
        }
        Ok(())
    }

    /// The lane of a record: by its user (FNV-1a of UserId), so that one worker sees all
    /// of a user's records.
    fn lane(&self, header: &RecordHeader) -> usize {
        if self.batches.len() <= 1 {
            return 0;
        }
        let h = header
            .user_id
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        (h % self.batches.len() as u64) as usize
    }

    /// Hands a lane's buffered candidates to its worker ([`Grouper::stream`]), or
    /// evaluates them here, one slice per thread.
    fn flush(&mut self, lane: usize) {
        if self.batches[lane].items.is_empty() {
            return;
        }
        let spare = self.pool.lock().ok().and_then(|mut p| p.pop());
        let mut batch = std::mem::replace(&mut self.batches[lane], spare.unwrap_or_default());
        if let Some(tx) = self.senders.get(lane) {
            match tx.send(batch) {
                Ok(()) => return,
                // the workers are gone (a panic): evaluate here instead
                Err(e) => batch = e.0,
            }
        }
        let n = batch.items.len();
        let detections = self.detections;
        let make = self.make;
        if self.threads <= 1 || n < 64 {
            eval_items(
                detections,
                &batch,
                0..n,
                &mut self.agg,
                &mut Worker::new(make, detections),
            );
            return;
        }
        let per = n.div_ceil(self.threads);
        let batch = &batch;
        let aggs: Vec<Option<Agg>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..n)
                .step_by(per)
                .map(|lo| {
                    scope.spawn(move || {
                        let mut agg = Agg::new(detections.items.len());
                        let range = lo..(lo + per).min(n);
                        eval_items(
                            detections,
                            batch,
                            range,
                            &mut agg,
                            &mut Worker::new(make, detections),
                        );
                        agg
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().ok()).collect()
        });
        for a in aggs {
            match a {
                Some(a) => self.agg.merge(a),
                None => self
                    .agg
                    .error("*", 0, "a detection thread panicked".to_string()),
            }
        }
    }

    /// Adds hits computed elsewhere (e.g. stored at ingestion) at their record's time.
    pub fn add_hits(&mut self, hits: &[Hit], time: DateTime<Utc>) {
        let mut enc = String::new();
        for h in hits {
            let Some(i) = self
                .detections
                .items
                .iter()
                .position(|d| d.meta.id == h.detection)
            else {
                continue;
            };
            let meta = &self.detections.items[i].meta;
            enc.clear();
            for name in &meta.group_by {
                encode_json(h.group_key.get(name).unwrap_or(&Value::Null), &mut enc);
            }
            let distinct = || match &meta.distinct {
                Some(path) => lookup(&h.details, path).unwrap_or(Value::Null).to_string(),
                None => Value::Null.to_string(),
            };
            self.agg
                .add(i, meta, &enc, || h.group_key.clone(), distinct, time);
        }
    }

    /// The grouped results of every loaded detection (also those without hits), in id order.
    pub fn finish(mut self) -> Report {
        for lane in 0..self.batches.len() {
            self.flush(lane);
        }
        let detections = self
            .detections
            .items
            .iter()
            .zip(std::mem::take(&mut self.agg.per))
            .map(|(d, a)| result(&d.meta, a))
            .collect();
        Report {
            detections,
            records: self.records,
            candidates: self.candidates,
            parsed: self.agg.parsed,
            memo_hits: self.agg.memo_hits,
            admitted: std::mem::take(&mut self.agg.admitted),
            runs: std::mem::take(&mut self.agg.runs),
            errors: std::mem::take(&mut self.agg.errors)
                .into_iter()
                .map(|(d, (n, _, m))| (d, (n, m)))
                .collect(),
        }
    }
}

/// Evaluates `items` of a batch into `agg` through the evaluation core (see
/// `evaluate.rs`); a stored record is decoded first.
fn eval_items(
    d: &Detections,
    b: &Batch,
    items: std::ops::Range<usize>,
    agg: &mut Agg,
    w: &mut Worker,
) {
    let Worker { dec, ev, interned } = w;
    for k in items {
        let it = &b.items[k];
        let (text_start, cand_start) = match k.checked_sub(1) {
            Some(p) => (b.items[p].text_end, b.items[p].cand_end),
            None => (0, 0),
        };
        let text = &b.text[text_start..it.text_end];
        let cands = &b.cands[cand_start..it.cand_end];
        let input = match it.packed {
            // a stored record: the store parsed it when it arrived
            Some(tag) => match dec.decode(tag, text) {
                Ok(t) => Input::Json(JsonText::stored(t)),
                Err(e) => {
                    for &c in cands {
                        let id = &d.items[usize::from(c)].meta.id;
                        agg.error(id, it.seq, format!("stored record does not decode: {e:#}"));
                    }
                    continue;
                }
            },
            None => Input::Text(text),
        };
        let mut sink = AggSink {
            agg: &mut *agg,
            interned: &mut *interned,
            time: it.time,
            seq: it.seq,
        };
        ev.eval(d, cands, input, &mut sink);
    }
    agg.parsed += std::mem::take(&mut ev.parsed);
    agg.memo_hits += std::mem::take(&mut ev.memo_hits);
    add_into(&mut agg.admitted, &ev.admitted_per);
    add_into(&mut agg.runs, &ev.runs_per);
    ev.admitted_per.fill(0);
    ev.runs_per.fill(0);
}

/// A worker thread's state: its decoder, its evaluator (whose memo keeps shared parts)
/// and the parts it shares.
struct Worker {
    dec: Decoding,
    ev: Evaluator<Vec<Rc<HitParts>>>,
    interned: Interned,
}

impl Worker {
    fn new(make: Option<MakeUnpack>, d: &Detections) -> Worker {
        Worker {
            dec: Decoding {
                dec: make.map(|m| m()),
                out: Vec::new(),
            },
            ev: Evaluator::new(d, Some(super::memo::BUDGET)),
            interned: Interned::default(),
        }
    }
}

/// A worker's unpacker and its output buffer.
struct Decoding {
    dec: Option<anyhow::Result<Box<dyn Unpack>>>,
    out: Vec<u8>,
}

impl Decoding {
    fn decode(&mut self, tag: i64, bytes: &[u8]) -> anyhow::Result<&[u8]> {
        match &mut self.dec {
            Some(Ok(dec)) => {
                dec.unpack(Packed { tag, bytes }, &mut self.out)?;
                Ok(&self.out)
            }
            Some(Err(e)) => anyhow::bail!("no unpacker: {e:#}"),
            None => anyhow::bail!("no unpacker"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Vars;
    use serde_json::json;

    fn streamed(d: &Detections, recs: &[(RecordHeader, String)]) -> Report {
        let ((), report) = Grouper::stream(d, |g| {
            for (h, raw) in recs {
                g.add_record(h, raw.as_bytes());
            }
        });
        report
    }

    /// The hits `Detections::run` gives, grouped the old way.
    fn grouped_hits(d: &Detections, recs: &[(RecordHeader, String)]) -> Report {
        let mut hits = Grouper::new(d);
        for (h, raw) in recs {
            let (hs, _) = d.run(h, Input::Text(raw.as_bytes()));
            hits.add_hits(&hs, h.creation_time);
        }
        hits.finish()
    }

    fn rec(i: i64, op: &str, user: &str, min: i64) -> (RecordHeader, String) {
        let v = json!({"Id": format!("r{i}"), "CreationTime": format!("2026-05-04T09:{:02}:00", min), "Operation": op,
            "Workload": "AzureActiveDirectory", "UserId": user, "ActorIpAddress": "203.0.113.66"});
        (RecordHeader::from_value(&v).unwrap(), v.to_string())
    }

    #[test]
    fn memoized_runs_group_exactly_as_plain_runs() {
        // detections with `# fields` (memoized), an error on some inputs (never memoized),
        // a threshold rule with distinct, and a group_by root read from the record
        let d = Detections::load_sources(
            &[
                (
                    "plain.jq",
                    "# title: P\n# table: auth.all\n# fields: Operation, UserId\n# group_by: UserId, ActorIpAddress\nselect(.Operation == \"UserLoginFailed\") | {UserId, n: (.UserId | length)}",
                ),
                (
                    "spray.jq",
                    "# title: S\n# table: auth.all\n# fields: Operation, UserId, ActorIpAddress\n# group_by: ip\n# threshold: 3\n# window: 10m\n# distinct: UserId\nselect(.Operation == \"UserLoginFailed\") | {ip: .ActorIpAddress, UserId}",
                ),
                (
                    "err.jq",
                    "# title: E\n# table: auth.all\n# fields: UserId\n.UserId | if endswith(\"7\") then error(\"bad \\(.)\") else {u: .} end",
                ),
            ],
            &[],
            Vars::default(),
        );
        assert!(d.errors().is_empty(), "{:?}", d.errors());
        let recs: Vec<(RecordHeader, String)> = (0..20_000)
            .map(|i| {
                let (_, raw) = rec(i, "UserLoginFailed", &format!("u{}", i % 13), i % 60);
                // the address varies more than the user: fewer memo hits for spray
                let raw = raw.replace("203.0.113.66", &format!("203.0.113.{}", i % 97));
                let v: Value = serde_json::from_str(&raw).unwrap();
                (RecordHeader::from_value(&v).unwrap(), raw)
            })
            .collect();
        let streamed = streamed(&d, &recs);
        assert!(
            streamed.memo_hits > 10_000,
            "memo hits {}",
            streamed.memo_hits
        );
        let hits = grouped_hits(&d, &recs);
        assert_eq!(streamed.detections, hits.detections);
        let sevens = (0..20_000).filter(|i| i % 13 == 7).count() as u64;
        assert_eq!(streamed.errors["err"].0, sevens);
        assert_eq!(streamed.detections[0].groups.len(), 13 * 97);
    }

    #[test]
    fn groups_plain_and_threshold_rules() {
        let d = Detections::load_sources(
            &[
                (
                    "all.jq",
                    "# title: All\n# table: auth.all\n# group_by: UserId\nselect(.Operation == \"UserLoginFailed\") | {UserId}",
                ),
                (
                    "bf.jq",
                    "# title: BF\n# table: auth.all\n# group_by: UserId\n# threshold: 3\n# window: 10m\nselect(.Operation == \"UserLoginFailed\") | {UserId}",
                ),
                (
                    "none.jq",
                    "# title: None\n# table: cloud.office365.management.exchange\n.",
                ),
            ],
            &[],
            Vars::default(),
        );
        assert!(d.errors().is_empty(), "{:?}", d.errors());
        let mut g = Grouper::new(&d);
        for (i, (u, m)) in [("a", 0), ("a", 1), ("b", 2), ("a", 3), ("a", 40)]
            .iter()
            .enumerate()
        {
            let (h, raw) = rec(i as i64, "UserLoginFailed", u, *m);
            g.add_record(&h, raw.as_bytes());
        }
        let (h, raw) = rec(9, "UserLoggedIn", "a", 5);
        g.add_record(&h, raw.as_bytes());
        let r = g.finish();
        // the header decides `.Operation == "UserLoginFailed"`: the sign-in is no candidate
        assert_eq!((r.records, r.candidates), (6, 5));
        let all = &r.detections[0];
        assert_eq!(
            (all.id.as_str(), all.hits, all.matched, all.groups.len()),
            ("all", 5, 5, 2)
        );
        let bf = &r.detections[1];
        assert_eq!((bf.hits, bf.matched, bf.groups.len()), (3, 5, 1));
        assert_eq!(bf.groups[0].key, json!({"UserId": "a"}));
        assert_eq!(r.detections[2].groups.len(), 0);
        let j = r.to_json();
        assert_eq!(j["detections"][1]["groups"][0]["count"], json!(3));
        assert_eq!(
            j["detections"][1]["groups"][0]["first_seen"],
            json!("2026-05-04T09:00:00Z")
        );
        assert!(
            r.to_table().contains("bf [medium] BF — 3 hits in 1 groups"),
            "{}",
            r.to_table()
        );
        let csv = r.to_csv().unwrap();
        assert_eq!(csv.lines().count(), 1 + 2 + 1, "{csv}");
    }

    #[test]
    fn streamed_batched_and_per_record_grouping_agree() {
        let d = Detections::load_sources(
            &[
                (
                    "plain.jq",
                    "# title: P\n# table: auth.all\n# group_by: UserId, ip, nested.k\nselect(.Operation == \"UserLoginFailed\") | {UserId, ip: .ActorIpAddress, nested: {k: [1, 2.5, \"x\"]}}",
                ),
                (
                    "spray.jq",
                    "# title: S\n# table: auth.all\n# group_by: ip\n# threshold: 3\n# window: 10m\n# distinct: UserId\nselect(.Operation == \"UserLoginFailed\") | {ip: .ActorIpAddress, UserId}",
                ),
                (
                    "err.jq",
                    "# title: E\n# table: auth.all\n.UserId | if endswith(\"7\") then error(\"bad \\(.)\") else empty end",
                ),
            ],
            &[],
            Vars::default(),
        );
        assert!(d.errors().is_empty(), "{:?}", d.errors());
        let recs: Vec<(RecordHeader, String)> = (0..5000)
            .map(|i| rec(i, "UserLoginFailed", &format!("u{}", i % 13), i % 60))
            .collect();
        let mut one = Grouper::new(&d);
        one.threads = 1;
        for (h, raw) in &recs {
            one.add_record(h, raw.as_bytes());
        }
        let one = one.finish();
        let mut batched = Grouper::new(&d);
        batched.threads = 3;
        for (h, raw) in &recs {
            batched.add_record(h, raw.as_bytes());
        }
        let batched = batched.finish();
        let streamed = streamed(&d, &recs);
        assert_eq!(one, batched);
        assert_eq!(one, streamed);
        assert_eq!(one.errors["err"], (385, "jq error: \"bad u7\"".to_string()));
        assert_eq!(one.detections[0].groups.len(), 13);
        assert_eq!(
            (one.detections[1].groups.len(), one.detections[1].hits),
            (1, 5000)
        );
        // the same hits as `run` gives, grouped the old way
        let hits = grouped_hits(&d, &recs);
        assert_eq!(one.detections, hits.detections);
    }
}
