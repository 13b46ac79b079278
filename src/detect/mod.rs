//! Detections written in jq: loading `queries/*.jq` (embedded in the binary or
//! from a directory), parsing their `#` headers, compiling them once with jaq, running them
//! per record behind a prefilter and guard rails; grouping and threshold evaluation
//! ([`group`]); the inactivity monitor ([`monitor`]).
//!
//! This module must not touch SQLite, tantivy or the network: the store calls [`Detections::run`]
//! inside its write transaction and stores the hits; `detect`/`query` read records through the
//! store and hand them here. One broken query never stops the others or ingestion: load errors
//! are collected with file:line:column, run errors are returned per record.
//!
//! # The cost of a record (why it is shaped this way)
//!
//! Evaluating jq dominates (perf on 1 M practice-tenant records: ~65 % of the CPU in jaq's
//! interpreter), then parsing. So a record reaches jaq only through three filters, each
//! proven by `tests/detect_queries.rs` on every test record (and, for what the engine
//! derives, on each with values of every type in place of its own): `table`/`operations`
//! from the header, and the `Operation`/`Workload` values the filter compares with (from
//! the stored header columns, before the raw JSON is even decompressed — see
//! `store::scan`), words the raw text must hold, with type guards (`words.rs`), and the
//! fields read (`reads.rs`, `project.rs`: only the top-level fields the candidates read
//! are parsed into a jaq value). Re-running over a table ([`Grouper::stream`]) evaluates
//! batches of candidates on worker threads while the caller scans, and folds hits into
//! per-thread groups straight from the jaq values; [`Runner`] (the store's per-record
//! path) and [`Detections::run`] return [`Hit`]s. Both go through one evaluation core
//! (`evaluate.rs`).

mod aggregate;
pub mod command;
mod engine;
mod evaluate;
pub mod group;
mod grouper;
pub mod measure;
mod memo;
mod meta;
pub mod monitor;
mod project;
mod reads;
pub mod report;
mod scope;
mod words;

pub use engine::{Limits, RunFailure};
pub use evaluate::{Input, Runner};
pub use group::{
    Group, StoredHitEvent, group_hits, group_key, threshold_groups, threshold_groups_distinct,
    threshold_groups_of_stored,
};
pub use grouper::{Grouper, MakeUnpack, Packed, Unpack};
pub use meta::{Field, Meta, Seed, Severity, Threshold};
pub use report::{DetectionResult, Report};

use crate::model::{RecordHeader, is_auth_operation};
use engine::{Libs, Program};
use jaq_json::Val;
use memchr::memmem;
use meta::TableSel;
use serde::{Deserialize as _, Serialize};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_queries.rs"));
}

/// Environment variable naming a directory of detections that replaces the embedded set.
pub const QUERIES_ENV: &str = "M365AUDIT_QUERIES";

/// Values bound to `$collector_id` and `$tenant_id` in every detection.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub collector_id: String,
    pub tenant_id: String,
}

impl Vars {
    fn vals(&self) -> [Val; 2] {
        [
            Val::from(self.collector_id.clone()),
            Val::from(self.tenant_id.clone()),
        ]
    }
}

/// One output of one detection on one record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// The detection id (file stem of `queries/<id>.jq`).
    pub detection: String,
    /// The value the filter emitted.
    pub details: serde_json::Value,
    /// The `group_by` key of this hit as a JSON object (empty object without group_by).
    pub group_key: serde_json::Value,
}

/// A detection that failed on one record (limit hit, runtime error); ingestion goes on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunError {
    pub detection: String,
    pub message: String,
}

/// A query that could not be loaded: where and why. Displays as `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct LoadError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Several load errors at once (what `check` prints).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct LoadErrors(pub Vec<LoadError>);

/// Operation prefilter of one detection (from its `operations` header).
#[derive(Debug, Clone, Default)]
struct OpFilter {
    exact: HashSet<String>,
    /// `*` patterns, split at the stars.
    globs: Vec<Vec<String>>,
}

impl OpFilter {
    fn new(ops: &[String]) -> OpFilter {
        let mut f = OpFilter::default();
        for op in ops {
            if op.contains('*') {
                f.globs.push(op.split('*').map(str::to_string).collect());
            } else {
                f.exact.insert(op.clone());
            }
        }
        f
    }

    fn is_any(&self) -> bool {
        self.exact.is_empty() && self.globs.is_empty()
    }

    fn accepts(&self, op: &str) -> bool {
        self.is_any() || self.exact.contains(op) || self.globs.iter().any(|g| glob_match(g, op))
    }
}

fn glob_match(parts: &[String], s: &str) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return s.is_empty();
    };
    let Some(mut s) = s.strip_prefix(first.as_str()) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return s.is_empty();
    };
    for m in middle {
        match s.find(m.as_str()) {
            Some(i) => s = &s[i + m.len()..],
            None => return false,
        }
    }
    s.ends_with(last.as_str())
}

struct Detection {
    meta: Meta,
    program: Program,
    table: TableSel,
    ops: OpFilter,
    /// The top-level fields to parse for it (what `reads.rs` finds the filter reads, plus
    /// the first step of every `group_by`/`distinct` path, which grouping may read from the
    /// record); None: all.
    proj: Option<Vec<Field>>,
    /// Prefilter words and type guards (`words.rs`) as searchers: the text must hold one
    /// of every set.
    words: Vec<Vec<Probe>>,
    /// Prefilter sets the header decides (`.Workload == "x" or …`): the record's header
    /// field must equal one value of every set.
    heads: Vec<Vec<(words::Head, String)>>,
    /// What derivation found the filter reads.
    reads: reads::Reads,
}

impl Detection {
    fn table_accepts(&self, h: &RecordHeader) -> bool {
        let table = match &self.table {
            TableSel::All => true,
            TableSel::Auth => is_auth_operation(&h.operation),
            TableSel::Workload(w) => h.workload.eq_ignore_ascii_case(w),
        };
        table
            && self
                .heads
                .iter()
                .all(|set| set.iter().any(|(f, v)| f.in_header(h) == v))
    }

    fn accepts(&self, h: &RecordHeader) -> bool {
        self.table_accepts(h) && self.ops.accepts(&h.operation)
    }
}

/// Every loaded detection, compiled once; shared read-only (Send + Sync).
#[derive(Default)]
pub struct Detections {
    items: Vec<Detection>,
    /// Prefilter index: exact Operation → detections naming it; `open` are those with no
    /// operations list or with globs (checked one by one). Indices in id order.
    by_op: HashMap<String, Vec<u16>>,
    open: Vec<u16>,
    errors: Vec<LoadError>,
    vars: Vars,
    limits: Limits,
    /// Tells one set of detections from another (a [`Runner`] keeps per-set state):
    /// every constructor and every change of the set takes a fresh one.
    id: u64,
}

/// A new [`Detections::id`].
fn fresh_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl fmt::Debug for Detections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Detections")
            .field(
                "ids",
                &self
                    .items
                    .iter()
                    .map(|d| d.meta.id.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("errors", &self.errors)
            .finish()
    }
}

/// One source file of a detection set.
struct Source {
    id: String,
    file: String,
    code: String,
}

impl Detections {
    /// No detections at all (tests of the store that do not care about hits).
    pub fn empty() -> Detections {
        Detections {
            id: fresh_id(),
            ..Detections::default()
        }
    }

    /// The detections built into the binary (`queries/*.jq` at build time). A query that
    /// does not load is left out and listed in [`Detections::errors`].
    pub fn load_embedded(vars: Vars) -> Detections {
        let libs = Libs {
            files: embedded::EMBEDDED_LIBS
                .iter()
                .map(|(f, c)| (module_name(f), (format!("queries/lib/{f}"), c.to_string())))
                .collect(),
        };
        let sources = embedded::EMBEDDED_QUERIES
            .iter()
            .map(|(f, c)| Source {
                id: module_name(f),
                file: format!("queries/{f}"),
                code: c.to_string(),
            })
            .collect();
        Detections::build(sources, libs, vars)
    }

    /// The detections in `dir/*.jq` (helpers in `dir/lib/*.jq`). Fails only when the
    /// directory cannot be read; broken queries are listed in [`Detections::errors`].
    pub fn load_dir(dir: &Path, vars: Vars) -> anyhow::Result<Detections> {
        use anyhow::Context as _;
        let read_jq = |d: &Path| -> anyhow::Result<Vec<(String, String, String)>> {
            let mut out = Vec::new();
            let rd = match std::fs::read_dir(d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && d != dir => return Ok(out),
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("reading detections from {}", d.display()));
                }
            };
            for entry in rd {
                let path = entry
                    .with_context(|| format!("reading {}", d.display()))?
                    .path();
                if path.is_file() && path.extension().is_some_and(|x| x == "jq") {
                    let name = path
                        .file_name()
                        .and_then(|s| s.to_str())
                        .unwrap_or_default()
                        .to_string();
                    let code = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    out.push((name, path.display().to_string(), code));
                }
            }
            out.sort();
            Ok(out)
        };
        let libs = Libs {
            files: read_jq(&dir.join("lib"))?
                .into_iter()
                .map(|(name, file, code)| (module_name(&name), (file, code)))
                .collect(),
        };
        let sources = read_jq(dir)?
            .into_iter()
            .map(|(name, file, code)| Source {
                id: module_name(&name),
                file,
                code,
            })
            .collect();
        Ok(Detections::build(sources, libs, vars))
    }

    /// The detections the appliance runs: those in the directory named by the environment
    /// variable `M365AUDIT_QUERIES` when it is set (to add or change queries without a
    /// rebuild), else the embedded ones.
    pub fn load_default(vars: Vars) -> anyhow::Result<Detections> {
        match std::env::var_os(QUERIES_ENV) {
            Some(dir) if !dir.is_empty() => Detections::load_dir(Path::new(&dir), vars),
            _ => Ok(Detections::load_embedded(vars)),
        }
    }

    /// Loads detections from in-memory sources: `(file name, code)` pairs for queries and
    /// for helper modules (tests, `check` of a single file).
    pub fn load_sources(queries: &[(&str, &str)], libs: &[(&str, &str)], vars: Vars) -> Detections {
        let libs = Libs {
            files: libs
                .iter()
                .map(|(f, c)| (module_name(f), (format!("lib/{f}"), c.to_string())))
                .collect(),
        };
        let sources = queries
            .iter()
            .map(|(f, c)| Source {
                id: module_name(f),
                file: f.to_string(),
                code: c.to_string(),
            })
            .collect();
        Detections::build(sources, libs, vars)
    }

    fn build(sources: Vec<Source>, libs: Libs, vars: Vars) -> Detections {
        let mut errors = Vec::new();
        let mut lib_names: Vec<&String> = libs.files.keys().collect();
        lib_names.sort();
        for name in lib_names {
            let (file, code) = &libs.files[name];
            errors.extend(engine::check_no_recursion(file, code));
        }
        let mut items = Vec::new();
        for src in sources {
            let meta = match meta::parse_header(&src.id, &src.file, &src.code) {
                Ok(m) => m,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let Some(table) = meta::table_sel(&meta.table) else {
                continue; // parse_header already refused it
            };
            match Program::compile(&src.file, &src.code, &libs) {
                Ok(program) => {
                    let (masked, includes) = engine::masked_and_includes(&src.code);
                    let reads = reads::derive_file(&src.file, &masked, &includes, |m| {
                        libs.files.get(m).cloned()
                    });
                    if let Some(e) = check_claim(&meta, &reads, &src.file, &src.code) {
                        errors.push(e);
                        continue;
                    }
                    let derived_words = words::derive_file(
                        &masked,
                        &includes,
                        |m| libs.files.get(m).cloned(),
                        &meta.operations,
                    );
                    // a set naming the table's workload holds for every candidate
                    let sets = derived_words.iter().filter(|set| match &table {
                        TableSel::Workload(w) => !set.iter().any(|a| match a {
                            words::Atom::Word(x) => x.eq_ignore_ascii_case(w),
                            words::Atom::Is(words::Head::Workload, x) => x.eq_ignore_ascii_case(w),
                            _ => false,
                        }),
                        _ => true,
                    });
                    // sets of header values only are checked against the header
                    let (mut words, mut heads) = (Vec::new(), Vec::new());
                    for set in sets {
                        let head: Option<Vec<(words::Head, String)>> = set
                            .iter()
                            .map(|a| match a {
                                words::Atom::Is(h, v) => Some((*h, v.clone())),
                                _ => None,
                            })
                            .collect();
                        match head {
                            Some(h) => heads.push(h),
                            None => words.push(finders(set)),
                        }
                    }
                    let ops = OpFilter::new(&meta.operations);
                    let proj = match &reads {
                        reads::Reads::Fields(f) => Some(projection(f, &meta)),
                        reads::Reads::Whole(_) => None,
                    };
                    items.push(Detection {
                        meta,
                        program,
                        table,
                        ops,
                        proj,
                        words,
                        heads,
                        reads,
                    });
                }
                Err(es) => errors.extend(es),
            }
        }
        errors.dedup();
        let mut d = Detections {
            items,
            errors,
            vars,
            ..Detections::default()
        };
        d.index();
        d
    }

    fn index(&mut self) {
        self.id = fresh_id();
        self.by_op.clear();
        self.open.clear();
        for (i, d) in self.items.iter().enumerate() {
            // more than 65,535 detections cannot be indexed; the loader never gets there
            let Ok(i) = u16::try_from(i) else { break };
            if d.ops.is_any() || !d.ops.globs.is_empty() {
                self.open.push(i);
            }
            for op in &d.ops.exact {
                self.by_op.entry(op.clone()).or_default().push(i);
            }
        }
    }

    /// Indices (into `items`, id order) of the detections whose prefilter accepts the
    /// record, appended to `out` without allocating per record.
    pub(crate) fn candidate_indices(&self, h: &RecordHeader, out: &mut Vec<u16>) {
        let start = out.len();
        if let Some(v) = self.by_op.get(h.operation.as_str()) {
            out.extend(
                v.iter()
                    .copied()
                    .filter(|&i| self.items[usize::from(i)].table_accepts(h)),
            );
        }
        let before = out.len();
        out.extend(
            self.open
                .iter()
                .copied()
                .filter(|&i| self.items[usize::from(i)].accepts(h)),
        );
        if before > start && out.len() > before {
            out[start..].sort_unstable();
            let mut w = start;
            for r in start..out.len() {
                if w == start || out[w - 1] != out[r] {
                    out[w] = out[r];
                    w += 1;
                }
            }
            out.truncate(w);
        }
    }

    /// The same detections run the way the engine did before it derived what they read:
    /// trusting each header's hand-written `# fields` (the whole record without one) and
    /// `# contains` words. Only `bench` uses it, to compare the two; nothing proves these
    /// claims beyond the load-time check of `# fields`.
    pub fn trusting_claims(mut self) -> Detections {
        for d in &mut self.items {
            d.heads = Vec::new();
            d.proj = (!d.meta.fields.is_empty()).then(|| projection(&d.meta.fields, &d.meta));
            d.words = if d.meta.contains.is_empty() {
                Vec::new()
            } else {
                let set: Vec<words::Atom> = d
                    .meta
                    .contains
                    .iter()
                    .map(|w| words::Atom::Word(w.clone()))
                    .collect();
                vec![finders(&set)]
            };
        }
        self.id = fresh_id();
        self
    }

    /// The same detections with nothing derived to spare work: no prefilter words, type
    /// guards or header sets, whole records parsed. Tests compare it with the engine as it
    /// runs (the table and `operations` prefilter stay); nothing else should need it.
    pub fn without_derived_prefilters(mut self) -> Detections {
        for d in &mut self.items {
            d.heads = Vec::new();
            d.words = Vec::new();
            d.proj = None;
        }
        self.index();
        self
    }

    /// What detection `id` reads of a record: its fields (`ExtendedProperties[RequestType]`
    /// for the entries of a Name/Value array), or why it needs the whole record.
    pub fn reads(&self, id: &str) -> Option<Result<Vec<String>, String>> {
        let d = self.items.iter().find(|d| d.meta.id == id)?;
        Some(match &d.reads {
            reads::Reads::Fields(f) => Ok(f.iter().map(Field::to_string).collect()),
            reads::Reads::Whole(why) => Err(why.clone()),
        })
    }

    /// The same detections with other per-record limits.
    pub fn with_limits(mut self, limits: Limits) -> Detections {
        self.limits = limits;
        self.id = fresh_id();
        self
    }

    /// Only the detection `id` (for `detect --detection ID`); None if it is not loaded.
    pub fn only(mut self, id: &str) -> Option<Detections> {
        self.items.retain(|d| d.meta.id == id);
        self.index();
        (!self.items.is_empty()).then_some(self)
    }

    /// Metadata of every loaded detection, in id order.
    pub fn metas(&self) -> Vec<&Meta> {
        self.items.iter().map(|d| &d.meta).collect()
    }

    /// Metadata of one detection.
    pub fn meta(&self, id: &str) -> Option<&Meta> {
        self.items.iter().map(|d| &d.meta).find(|m| m.id == id)
    }

    /// The queries that did not load, each with file:line:column.
    pub fn errors(&self) -> &[LoadError] {
        &self.errors
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// True when at least one detection's prefilter (table, operation) accepts the record:
    /// callers re-running detections over stored records parse only these.
    pub fn wants(&self, header: &RecordHeader) -> bool {
        let exact = self.by_op.get(header.operation.as_str()).is_some_and(|v| {
            v.iter()
                .any(|&i| self.items[usize::from(i)].table_accepts(header))
        });
        exact
            || self
                .open
                .iter()
                .any(|&i| self.items[usize::from(i)].accepts(header))
    }

    /// Runs every detection whose prefilter accepts the record; returns its hits and the
    /// detections that failed on it. The one way to run detections on a record (a
    /// [`Runner`] does the same and remembers what it learnt for the next record).
    pub fn run(&self, header: &RecordHeader, input: Input<'_>) -> (Vec<Hit>, Vec<RunError>) {
        Runner::new(None).run(self, header, input)
    }

    /// The union of the fields of the detections `cands`; None when one of them reads the
    /// whole record.
    fn fields_for(&self, cands: &[u16]) -> Option<Vec<Field>> {
        let mut fields: Vec<Field> = Vec::with_capacity(16);
        for &c in cands {
            for f in self.items[usize::from(c)].proj.as_ref()? {
                union_into(&mut fields, f);
            }
        }
        Some(fields)
    }

    /// Appends to `out` the detections of `cands` whose prefilter sets (words and type
    /// guards) admit the record's JSON text (those without any always). Where the text
    /// could spell a word with an escape (`\u0041`, `\/`), every word is taken as present;
    /// so it is where the text is not UTF-8, which is checked unless `utf8` says the text
    /// is known to be (JSON that was parsed is: a full check of every record was ~2 % of
    /// `detect`'s CPU).
    pub(crate) fn admitted(
        &self,
        cands: &[u16],
        raw: &[u8],
        utf8: bool,
        lower: &mut Vec<u8>,
        out: &mut Vec<u16>,
    ) {
        let guarded = |c: &u16| !self.items[usize::from(*c)].words.is_empty();
        if !cands.iter().any(guarded) {
            out.extend_from_slice(cands);
            return;
        }
        lower.clear();
        lower.extend(raw.iter().map(u8::to_ascii_lowercase));
        let plain =
            (utf8 || std::str::from_utf8(lower).is_ok()) && memmem::find(lower, b"\\u").is_none();
        let mut slash_escape = None;
        let mut slash = |lower: &[u8]| {
            *slash_escape.get_or_insert_with(|| memmem::find(lower, b"\\/").is_some())
        };
        for &c in cands {
            let sets = &self.items[usize::from(c)].words;
            let admit = !plain
                || sets.iter().all(|set| {
                    set.iter().any(|p| match p {
                        Probe::Word(w, s) => w.find(lower).is_some() || (*s && slash(lower)),
                        Probe::NotString(k, s) => not_a_string(lower, k) || (*s && slash(lower)),
                    })
                });
            if admit {
                out.push(c);
            }
        }
    }

    /// Parses and checks a candidate record for the detections `cands` (indices into
    /// `items`): only the fields they read when none of them needs the whole record.
    pub(crate) fn parse_for(&self, cands: &[u16], raw: &[u8]) -> Result<Val, String> {
        let parse = |raw: &[u8]| match self.fields_for(cands) {
            Some(f) => project::parse(raw, &f),
            None => serde_json::from_slice::<Val>(raw).map_err(|e| e.to_string()),
        };
        // A lone surrogate escape in a value (serde_json refuses it, jq reads U+FFFD) must
        // not hide the record from the detections.
        parse(raw).or_else(|e| match crate::model::replace_lone_surrogates(raw) {
            Some(fixed) => parse(&fixed),
            None => Err(e),
        })
    }

    /// Runs every detection on the record, ignoring the table/operation prefilter. Tests
    /// use it to prove the prefilter never changes a result; nothing else should need it.
    pub fn run_unfiltered(&self, raw: &serde_json::Value) -> (Vec<Hit>, Vec<RunError>) {
        self.run_each(|_| Val::deserialize(raw).map_err(|e| e.to_string()))
    }

    /// Runs every detection on the record parsed with only its own `# fields` (the whole
    /// record for a detection without them), ignoring the prefilter. Tests use it to prove
    /// each declaration: the output must equal [`Detections::run_unfiltered`]'s (and real
    /// jq's on the whole record).
    pub fn run_projected(&self, raw: &serde_json::Value) -> (Vec<Hit>, Vec<RunError>) {
        self.run_each(|d| match &d.proj {
            Some(f) => project::from_value(raw, f),
            None => Val::deserialize(raw).map_err(|e| e.to_string()),
        })
    }

    fn run_each(
        &self,
        input: impl Fn(&Detection) -> Result<Val, String>,
    ) -> (Vec<Hit>, Vec<RunError>) {
        let mut hits = Vec::new();
        let mut errors = Vec::new();
        for d in &self.items {
            match input(d) {
                Ok(v) => {
                    let (h, e) = self.eval(d, &v);
                    hits.extend(h);
                    errors.extend(e);
                }
                Err(e) => errors.push(RunError {
                    detection: d.meta.id.clone(),
                    message: format!("record is not JSON: {e}"),
                }),
            }
        }
        (hits, errors)
    }

    /// One detection on one parsed input, outside the core (the test oracles above).
    fn eval(&self, d: &Detection, input: &Val) -> (Vec<Hit>, Option<RunError>) {
        let (outs, failure) = d.program.run(input.clone(), self.vars.vals(), &self.limits);
        let hits = outs
            .iter()
            .map(|v| evaluate::hit(&d.meta, v, input))
            .collect();
        let err = failure.map(|f| RunError {
            detection: d.meta.id.clone(),
            message: evaluate::failure_message(f),
        });
        (hits, err)
    }
}

/// One atom of a prefilter set, as it is looked for in a record's lower-cased text. Each
/// says whether it holds a `/`, which the text may spell `\\/` (then the atom is taken
/// as present).
enum Probe {
    /// The word anywhere.
    Word(memmem::Finder<'static>, bool),
    /// `"key"` (quotes included) followed by `:` and a value that is not a string.
    NotString(memmem::Finder<'static>, bool),
}

/// Searchers for one prefilter set.
fn finders(set: &[words::Atom]) -> Vec<Probe> {
    set.iter()
        .map(|a| match a {
            // in the text, the value is spelled as it is (it is a word)
            words::Atom::Word(w) | words::Atom::Is(_, w) => {
                let w = w.to_ascii_lowercase();
                Probe::Word(
                    memmem::Finder::new(w.as_bytes()).into_owned(),
                    w.contains('/'),
                )
            }
            words::Atom::NotString(k) => {
                let quoted = format!("\"{}\"", k.to_ascii_lowercase());
                Probe::NotString(
                    memmem::Finder::new(quoted.as_bytes()).into_owned(),
                    k.contains('/'),
                )
            }
        })
        .collect()
}

/// Whether the JSON text has the key `key` (a searcher for it in quotes) followed by a
/// value that is not a string, anywhere. Wherever the record has that key with such a
/// value, its text (without `\\u` escapes) spells exactly this; elsewhere a match only
/// admits a record that did not need to be.
fn not_a_string(text: &[u8], key: &memmem::Finder<'_>) -> bool {
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    key.find_iter(text).any(|at| {
        let mut rest = text[at + key.needle().len()..]
            .iter()
            .skip_while(|b| space(b));
        rest.next() == Some(&b':') && rest.find(|b| !space(b)).is_some_and(|b| *b != b'"')
    })
}

/// A hand-written `# fields` line must name everything the filter reads (what
/// [`reads::derive_file`] finds): the first thing it leaves out is a load error at that line.
fn check_claim(meta: &Meta, reads: &reads::Reads, file: &str, code: &str) -> Option<LoadError> {
    if meta.fields.is_empty() {
        return None;
    }
    let line = code
        .lines()
        .position(|l| {
            l.strip_prefix('#')
                .is_some_and(|r| r.trim_start().starts_with("fields:"))
        })
        .map_or(1, |i| i + 1);
    let err = |message: String| LoadError {
        file: file.to_string(),
        line,
        column: 1,
        message,
    };
    let derived = match reads {
        reads::Reads::Whole(why) => {
            return Some(err(format!(
                "`# fields` lists some fields, but the filter reads the whole record ({why}); remove the line"
            )));
        }
        reads::Reads::Fields(f) => f,
    };
    for d in derived {
        let Some(claim) = meta.fields.iter().find(|c| c.name == d.name) else {
            return Some(err(format!(
                "`# fields` leaves out `{}`, which the filter reads (the line is optional: the engine works it out)",
                d.name
            )));
        };
        match (&claim.entries, &d.entries) {
            (None, _) => {}
            (Some(_), None) => {
                return Some(err(format!(
                    "`# fields` names entries of `{}`, but the filter reads all of it",
                    d.name
                )));
            }
            (Some(c), Some(e)) => {
                if let Some(missing) = e.iter().find(|x| !c.contains(x)) {
                    return Some(err(format!(
                        "`# fields` leaves out `{}[{missing}]`, which the filter reads",
                        d.name
                    )));
                }
            }
        }
    }
    None
}

/// The fields to parse for a detection: those it reads and the first step of each
/// `group_by` and `distinct` path (grouping falls back to the record for those).
fn projection(fields: &[Field], meta: &Meta) -> Vec<Field> {
    let roots = meta
        .group_by
        .iter()
        .chain(&meta.distinct)
        .filter_map(|p| p.split('.').next())
        .map(Field::whole);
    let mut out: Vec<Field> = Vec::new();
    for f in fields.iter().cloned().chain(roots) {
        union_into(&mut out, &f);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Adds `f` to the selection `out` (merging it with a selection of the same field).
fn union_into(out: &mut Vec<Field>, f: &Field) {
    match out.iter_mut().find(|o| o.name == f.name) {
        Some(o) => o.merge(f),
        None => out.push(f.clone()),
    }
}

/// The value at a dotted path of a record (`AppAccessContext.ClientAppId`), as JSON.
fn val_path(v: &Val, path: &[&str]) -> Option<serde_json::Value> {
    let mut cur = v;
    for key in path {
        match cur {
            Val::Obj(map) => cur = map.get(&Val::utf8_str(key.to_string()))?,
            _ => return None,
        }
    }
    Some(val_to_json(cur))
}

/// `authentication.jq` → `authentication`.
fn module_name(file: &str) -> String {
    file.strip_suffix(".jq").unwrap_or(file).to_string()
}

/// A jaq value as serde_json: what parsing its JSON text gives (the text of a value that is
/// not JSON — a byte string, a non-string key — becomes one JSON string).
pub(crate) fn val_to_json(v: &Val) -> serde_json::Value {
    plain_to_json(v).unwrap_or_else(|| {
        let text = v.to_string();
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    })
}

/// [`val_to_json`] without the text round trip, for values made of JSON only (None for
/// anything else, which takes the text path). Same result: strings and integers convert
/// exactly, other numbers go through their own text, as the whole value's text would.
fn plain_to_json(v: &Val) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    Some(match v {
        Val::Null => J::Null,
        Val::Bool(b) => J::Bool(*b),
        Val::Num(jaq_json::Num::Int(i)) => J::from(i64::try_from(*i).ok()?),
        Val::Num(_) => match serde_json::from_str(&v.to_string()).ok()? {
            n @ J::Number(_) => n,
            // e.g. NaN printed as null: keep what the whole text would have parsed to
            other => other,
        },
        Val::TStr(b) => J::String(std::str::from_utf8(b).ok()?.to_owned()),
        Val::BStr(_) => return None,
        Val::Arr(a) => J::Array(a.iter().map(plain_to_json).collect::<Option<_>>()?),
        Val::Obj(o) => {
            let mut m = serde_json::Map::new();
            for (k, v) in o.iter() {
                let Val::TStr(k) = k else { return None };
                m.insert(std::str::from_utf8(k).ok()?.to_owned(), plain_to_json(v)?);
            }
            J::Object(m)
        }
    })
}

/// An ad-hoc jq program (`m365audit query`): same prelude, helpers and guard rails as the
/// detections, with larger output limits.
pub struct Query {
    program: Program,
    vars: Vars,
    limits: Limits,
}

impl Query {
    /// Compiles `code`; `include "m365";` loads the embedded helpers.
    pub fn compile(code: &str, vars: Vars) -> Result<Query, LoadErrors> {
        let libs = Libs {
            files: embedded::EMBEDDED_LIBS
                .iter()
                .map(|(f, c)| (module_name(f), (format!("queries/lib/{f}"), c.to_string())))
                .collect(),
        };
        let program = Program::compile("<query>", code, &libs).map_err(LoadErrors)?;
        let limits = Limits {
            max_outputs: 1_000_000,
            ..Limits::default()
        };
        Ok(Query {
            program,
            vars,
            limits,
        })
    }

    /// Runs the program on one record; its outputs, or the error that stopped it.
    pub fn run(&self, record: &serde_json::Value) -> Result<Vec<serde_json::Value>, String> {
        let input = Val::deserialize(record).map_err(|e| e.to_string())?;
        self.run_val(input)
    }

    /// Runs the program on a record's raw JSON text.
    pub fn run_bytes(&self, raw: &[u8]) -> Result<Vec<serde_json::Value>, String> {
        let input: Val = crate::model::parse_record(raw).map_err(|e| e.to_string())?;
        self.run_val(input)
    }

    fn run_val(&self, input: Val) -> Result<Vec<serde_json::Value>, String> {
        let (outs, failure) = self.program.run(input, self.vars.vals(), &self.limits);
        match failure {
            None => Ok(outs.iter().map(val_to_json).collect()),
            Some(RunFailure::Error(m)) => Err(format!("jq error: {m}")),
            Some(RunFailure::Limit(m)) => Err(m),
        }
    }
}

/// `check`: compiles every detection the appliance would run ([`Detections::load_default`]);
/// a one-line summary, or every broken query as `file:line:column: message` (a usage error).
pub fn check_command(vars: Vars) -> anyhow::Result<String> {
    let d = Detections::load_default(vars)?;
    if d.errors.is_empty() {
        let source = std::env::var(QUERIES_ENV).ok().filter(|s| !s.is_empty());
        Ok(format!(
            "detections: {} compiled ({})\n",
            d.len(),
            source.map_or_else(|| "embedded".to_string(), |s| format!("from {s}"))
        ))
    } else {
        Err(crate::UsageError(format!(
            "{} of the detections do not compile:\n{}",
            d.errors.len(),
            LoadErrors(d.errors)
        ))
        .into())
    }
}

#[cfg(test)]
mod tests;
