//! jq compilation and evaluation with jaq 3: the prelude (only record-only functions, and
//! natives in place of a few of jaq's hottest definitions, with the same results), module
//! loading for `include "m365";`, static checks, and the per-record guard rails (an
//! output-count limit and a step/time/memory budget). It must not know about tables,
//! headers or grouping, nor change what any jq filter means.
//!
//! Every evaluation (detections, `query`, `linq`'s `jqeval`, the UI's query page) goes
//! through [`Program::run`], and so through the same budget. The memory budget
//! ([`MAX_MEMORY`]) is the growth of the evaluating thread's heap since the run began, as
//! the binary's counting allocator reports it (`crate::alloc`); it is compared at every
//! loop step (`range`, `repeat`, `recurse`, `while`, `until`, each element of `add` and
//! `join`) and after every output, and fails the run with "memory limit exceeded (N MiB)".
//! What it cannot guard: one step of jaq is not interrupted, so a value built by a single
//! operator or native is measured only when it returns. `"x" * N` repeats a string `N`
//! times in one allocation, `+` and `*` written out (or through definitions) many times
//! without a loop double a value per operator, `reduce`/`foreach` over an array that
//! already exists take no step per element, and `tojson`/`tostring`/`@format`s of a value
//! that holds one large string many times serialize each copy: jaq's operators and
//! natives give no hook before they allocate. Without the binary's allocator (unit tests,
//! a library user) the memory budget is not checked at all.

use super::LoadError;
use jaq_core::load::parse::{BinaryOp, Def, Pattern, Term};
use jaq_core::load::{Arena, File, Import, Loader, lex};
use jaq_core::path::Part;
use jaq_core::{Bind, Compiler, Ctx, Error, Exn, Native, RunPtr, Vars, data};
use jaq_json::Val;
use std::cell::Cell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

type D = data::JustLut<Val>;
type JqFilter = jaq_core::Filter<D>;

/// Per-record limits of one detection run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// More outputs than this on one record stop the run (reported as a RunError).
    pub max_outputs: usize,
    /// Loop steps (`range`, `repeat`, `recurse`, `while`, `until`, `limit`-free generators).
    pub max_steps: u64,
    /// Wall time of one detection on one record.
    pub max_time: Duration,
    /// Bytes one run may grow its thread's heap by (see [`MAX_MEMORY`]).
    pub max_memory: usize,
}

/// The memory one evaluation (one program on one record) may take: 256 MiB. A filter can
/// double a value in one step (`. + .`), so neither the step nor the time budget stops it
/// before it takes the host's memory; this does. The input record is parsed before the
/// run and does not count; what detections and ad-hoc queries build from one record is
/// far smaller.
pub const MAX_MEMORY: usize = 256 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_outputs: 1000,
            max_steps: 1_000_000,
            max_time: Duration::from_millis(250),
            max_memory: MAX_MEMORY,
        }
    }
}

/// Natives left out of the prelude: environment, time of day, process control, logging.
const FORBIDDEN_NATIVES: &[&str] = &[
    "env",
    "now",
    "halt",
    "localtime",
    "strflocaltime",
    "debug_empty",
    "stderr_empty",
    "input",
    "inputs",
];
/// Prelude definitions that depend on the forbidden natives.
const FORBIDDEN_DEFS: &[&str] = &["halt", "halt_error", "stderr", "debug", "input", "inputs"];

/// Names a user may not call, with the reason shown in the load error.
pub(crate) fn forbidden_reason(name: &str) -> Option<&'static str> {
    (FORBIDDEN_NATIVES.contains(&name) || FORBIDDEN_DEFS.contains(&name) || name == "input_filename")
        .then_some("is not available in detections: they see one record only (no env, input, time of day or process control)")
}

/// Defined before jaq's own prelude so that `range/1` and `range/2` go through it.
const HEAD: &str = r#"
def range($from; $upto; $by): m365_range_native($from; $upto; $by) | m365_tick;
"#;

/// Defined after jaq's prelude: the generators that can loop forever count steps, and
/// `repeat` gets jq 1.6's meaning (`., f, f|f, …`) so both engines agree. `add` and
/// `join` (jaq's definitions, with a step per element) concatenate: an array holding one
/// large string many times grows by that string at each element, so each is a step where
/// the memory budget is checked.
const TAIL: &str = r#"
def repeat(f): def rec: ., (f | m365_tick | rec); rec;
def recurse(f): def rec: ., (f | m365_tick | rec); rec;
def recurse(f; cond): recurse(f | select(cond));
def recurse: recurse(.[]?);
def while(cond; update): def rec: if cond then ., (update | m365_tick | rec) else empty end; rec;
def until(cond; update): def rec: if cond then . else update | m365_tick | rec end; rec;
def add(f): reduce (f | m365_tick) as $x (null; . + $x);
def add: add(.[]);
def join($s): .[] |= tostring | .[:-1][] += $s | reduce (.[] | m365_tick) as $x (""; . + $x);
"#;

struct Budget {
    steps_left: u64,
    deadline: Instant,
    /// The thread's net allocated bytes when the run began (None: no counting allocator).
    mem_start: Option<i64>,
    mem_limit: i64,
    exhausted: Option<&'static str>,
}

const MEMORY_EXCEEDED: &str = "memory limit exceeded";

impl Budget {
    /// True when the thread's heap grew by more than the limit since the run began. One
    /// call through a function pointer and a thread-local read: cheap enough for every step.
    fn over_memory(&self) -> bool {
        match (self.mem_start, crate::alloc::thread_net_bytes()) {
            (Some(start), Some(now)) => now.saturating_sub(start) > self.mem_limit,
            _ => false,
        }
    }
}

thread_local! {
    static BUDGET: Cell<Option<Budget>> = const { Cell::new(None) };
}

fn tick() -> Result<(), &'static str> {
    BUDGET.with(|b| {
        let Some(mut budget) = b.take() else {
            return Ok(());
        };
        let r = if let Some(why) = budget.exhausted {
            Err(why)
        } else if budget.steps_left == 0 {
            budget.exhausted = Some("step limit exceeded");
            Err("step limit exceeded")
        } else if budget.over_memory() {
            budget.exhausted = Some(MEMORY_EXCEEDED);
            Err(MEMORY_EXCEEDED)
        } else {
            budget.steps_left -= 1;
            if budget.steps_left % 1024 == 0 && Instant::now() > budget.deadline {
                budget.exhausted = Some("time limit exceeded");
                Err("time limit exceeded")
            } else {
                Ok(())
            }
        };
        b.set(Some(budget));
        r
    })
}

/// Marks the running evaluation's budget exhausted when its memory grew past the limit
/// (after an output, which is no loop step).
fn exhaust_if_over_memory() -> bool {
    BUDGET.with(|b| {
        let Some(mut budget) = b.take() else {
            return false;
        };
        let over = budget.exhausted.is_none() && budget.over_memory();
        if over {
            budget.exhausted = Some(MEMORY_EXCEEDED);
        }
        b.set(Some(budget));
        over
    })
}

fn tick_run<'a>(cv: jaq_core::Cv<'a, D>) -> jaq_core::ValXs<'a, Val> {
    let r = tick()
        .map(|()| cv.1)
        .map_err(|why| Exn::from(Error::str(why)));
    Box::new(std::iter::once(r))
}

fn prelude() -> Vec<Def<&'static str>> {
    let parse_defs =
        |code: &'static str| jaq_core::load::parse(code, |p| p.defs()).unwrap_or_default();
    parse_defs(HEAD)
        .into_iter()
        .chain(jaq_core::defs())
        .chain(jaq_std::defs())
        .chain(jaq_json::defs())
        .filter(|d| !FORBIDDEN_DEFS.contains(&d.name) && !NATIVE_DEFS.contains(&d.name))
        .chain(parse_defs(TAIL))
        .collect()
}

/// Definitions of jaq's prelude replaced by natives that give the same results. `null` is
/// `[][0]` there, `true` is `0 == 0`, `empty` iterates `{}`, `not` calls `true`/`false`,
/// and `type` and the `is…` tests compare with sample values (`type` of a string takes
/// five comparisons); detections evaluate these on nearly every field, so as definitions
/// they were the largest part of a sign-in's jq time. The natives answer from the value
/// itself (JSON kinds order null < boolean < number < string < array < object, which is
/// what the comparisons test). A unit test compares each with jaq's definition.
const NATIVE_DEFS: &[&str] = &[
    "null",
    "true",
    "false",
    "empty",
    "not",
    "type",
    "isboolean",
    "isnumber",
    "isstring",
    "isarray",
    "isobject",
];

/// The JSON kind of a value, as `type` names it.
fn kind(v: &Val) -> &'static str {
    match v {
        Val::Null => "null",
        Val::Bool(_) => "boolean",
        Val::Num(_) => "number",
        Val::BStr(_) | Val::TStr(_) => "string",
        Val::Arr(_) => "array",
        Val::Obj(_) => "object",
    }
}

/// The natives of [`NATIVE_DEFS`].
fn prelude_natives() -> Vec<jaq_core::native::Fun<D>> {
    use jaq_core::{Cv, ValT, ValXs};
    fn one<'a>(v: Val) -> ValXs<'a, Val> {
        Box::new(std::iter::once(Ok(v)))
    }
    fn null<'a>(_: Cv<'a, D>) -> ValXs<'a, Val> {
        one(Val::Null)
    }
    fn true_<'a>(_: Cv<'a, D>) -> ValXs<'a, Val> {
        one(Val::Bool(true))
    }
    fn false_<'a>(_: Cv<'a, D>) -> ValXs<'a, Val> {
        one(Val::Bool(false))
    }
    fn empty<'a>(_: Cv<'a, D>) -> ValXs<'a, Val> {
        Box::new(std::iter::empty())
    }
    fn not<'a>(cv: Cv<'a, D>) -> ValXs<'a, Val> {
        one(Val::Bool(!cv.1.as_bool()))
    }
    fn type_<'a>(cv: Cv<'a, D>) -> ValXs<'a, Val> {
        one(Val::utf8_str(kind(&cv.1).as_bytes().to_vec()))
    }
    fn is_boolean<'a>(cv: Cv<'a, D>) -> ValXs<'a, Val> {
        one(Val::Bool(kind(&cv.1) == "boolean"))
    }
    fn is_number<'a>(cv: Cv<'a, D>) -> ValXs<'a, Val> {
        one(Val::Bool(kind(&cv.1) == "number"))
    }
    fn is_string<'a>(cv: Cv<'a, D>) -> ValXs<'a, Val> {
        one(Val::Bool(kind(&cv.1) == "string"))
    }
    fn is_array<'a>(cv: Cv<'a, D>) -> ValXs<'a, Val> {
        one(Val::Bool(kind(&cv.1) == "array"))
    }
    fn is_object<'a>(cv: Cv<'a, D>) -> ValXs<'a, Val> {
        one(Val::Bool(kind(&cv.1) == "object"))
    }
    let runs: [(&'static str, RunPtr<D>); 11] = [
        ("null", null),
        ("true", true_),
        ("false", false_),
        ("empty", empty),
        ("not", not),
        ("type", type_),
        ("isboolean", is_boolean),
        ("isnumber", is_number),
        ("isstring", is_string),
        ("isarray", is_array),
        ("isobject", is_object),
    ];
    debug_assert!(runs.iter().map(|r| r.0).eq(NATIVE_DEFS.iter().copied()));
    runs.into_iter()
        .map(|(name, f)| {
            let native = match name {
                // `{}[] as $x | .` has no paths, and updating them changes nothing
                "empty" => Native::<D>::new(f)
                    .with_paths(|_| Box::new(std::iter::empty()))
                    .with_update(|cv, _| one(cv.1)),
                // the others are no path expressions, as their definitions are not
                _ => Native::<D>::new(f),
            };
            (name, Box::from([]) as Box<[Bind]>, native)
        })
        .collect()
}

fn natives() -> Vec<jaq_core::native::Fun<D>> {
    let tick_ptr: RunPtr<D> = tick_run;
    let tick_native = Native::<D>::new(tick_ptr)
        .with_paths(|cv| {
            let r = tick()
                .map(|()| cv.1)
                .map_err(|why| Exn::from(Error::str(why)));
            Box::new(std::iter::once(r))
        })
        .with_update(|cv, f| match tick() {
            Ok(()) => f(cv.1),
            Err(why) => Box::new(std::iter::once(Err(Exn::from(Error::str(why))))),
        });
    jaq_core::funs::<D>()
        .chain(jaq_std::funs::<D>())
        .chain(jaq_json::funs::<D>())
        .filter(|(name, _, _)| !FORBIDDEN_NATIVES.contains(name))
        .map(|(name, args, f)| {
            if name == "range" {
                ("m365_range_native", args, f)
            } else {
                (name, args, f)
            }
        })
        .chain(prelude_natives())
        .chain(std::iter::once((
            "m365_tick",
            Box::from([]) as Box<[Bind]>,
            tick_native,
        )))
        .collect()
}

/// Source of `include`d modules: module name (`m365`) → (file name, code).
#[derive(Debug, Clone, Default)]
pub(crate) struct Libs {
    pub(crate) files: HashMap<String, (String, String)>,
}

/// A compiled jq program with its guard rails.
pub struct Program {
    filter: JqFilter,
}

// The compiled filter holds no `Rc` value (values are created per run); sharing it across
// the store's writer thread and readers is the point of compiling once.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Program>()
};

/// Why one run stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunFailure {
    /// A jq runtime error (e.g. indexing a string); outputs before it are kept.
    Error(String),
    /// A guard rail stopped the run; no output is kept.
    Limit(String),
}

fn line_col(code: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(code.len());
    let before = &code[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Byte offset of `part` inside `whole`, when it is a sub-slice of it.
fn offset_in(whole: &str, part: &str) -> Option<usize> {
    let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
    (p >= w && p + part.len() <= w + whole.len()).then(|| p - w)
}

fn load_error(file: &str, code: &str, at: &str, message: String) -> LoadError {
    let (line, column) = offset_in(code, at).map_or((1, 1), |o| line_col(code, o));
    LoadError {
        file: file.to_string(),
        line,
        column,
        message,
    }
}

impl Program {
    /// Compiles `code` (a whole file, header comments included, so positions match the
    /// file) with `$collector_id` and `$tenant_id` as globals. Returns every error found,
    /// each with file:line:column.
    pub(crate) fn compile(file: &str, code: &str, libs: &Libs) -> Result<Program, Vec<LoadError>> {
        let arena = Arena::default();
        let read = |imp: Import<&str, String>| -> Result<File<String, String>, String> {
            let (path, code) = libs.files.get(*imp.path).ok_or_else(|| {
                format!("no module {:?} (available: {})", imp.path, {
                    let mut names: Vec<&str> = libs.files.keys().map(String::as_str).collect();
                    names.sort();
                    names.join(", ")
                })
            })?;
            Ok(File {
                code: code.clone(),
                path: path.clone(),
            })
        };
        let loader = Loader::new(prelude()).with_read(read);
        let modules = loader
            .load(
                &arena,
                File {
                    code,
                    path: file.to_string(),
                },
            )
            .map_err(|errs| {
                errs.into_iter()
                    .flat_map(|(f, e)| load_errors(&f.path, f.code, e))
                    .collect::<Vec<_>>()
            })?;
        let filter = Compiler::default()
            .with_funs(natives())
            .with_global_vars(["$collector_id", "$tenant_id"])
            .compile(modules)
            .map_err(|errs| {
                errs.into_iter()
                    .flat_map(|(f, es)| {
                        es.into_iter().map(move |(name, undef)| {
                            let message = match forbidden_reason(name) {
                                Some(why) => format!("`{name}` {why}"),
                                None => match undef {
                                    jaq_core::compile::Undefined::Filter(arity) => {
                                        format!("undefined filter {name}/{arity}")
                                    }
                                    other => format!("undefined {} {name}", other.as_str()),
                                },
                            };
                            load_error(&f.path, f.code, name, message)
                        })
                    })
                    .collect::<Vec<_>>()
            })?;
        let errs = check_no_recursion(file, code);
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Program { filter })
    }

    /// Runs the program on one input under `limits`; returns the outputs and, if the run
    /// stopped early, why.
    pub(crate) fn run(
        &self,
        input: Val,
        vars: [Val; 2],
        limits: &Limits,
    ) -> (Vec<Val>, Option<RunFailure>) {
        let start = Instant::now();
        BUDGET.with(|b| {
            b.set(Some(Budget {
                steps_left: limits.max_steps,
                deadline: start + limits.max_time,
                mem_start: crate::alloc::thread_net_bytes(),
                mem_limit: i64::try_from(limits.max_memory).unwrap_or(i64::MAX),
                exhausted: None,
            }))
        });
        let ctx = Ctx::<D>::new(&self.filter.lut, Vars::new(vars));
        let mut out = Vec::new();
        let mut failure = None;
        for item in self.filter.id.run((ctx, input)) {
            match item {
                Ok(v) => {
                    if out.len() >= limits.max_outputs {
                        failure = Some(RunFailure::Limit(format!(
                            "output limit exceeded: more than {} outputs on one record",
                            limits.max_outputs
                        )));
                        break;
                    }
                    out.push(v);
                    // outputs are kept until the run ends: they count, ticked or not
                    if exhaust_if_over_memory() {
                        break;
                    }
                }
                Err(exn) => {
                    let msg = match exn.get_err() {
                        Ok(e) => e.to_string(),
                        Err(_) => "halt is not allowed in detections".to_string(),
                    };
                    failure = Some(RunFailure::Error(msg));
                    break;
                }
            }
        }
        let exhausted = BUDGET
            .with(|b| b.take())
            .and_then(|b| b.exhausted.or(b.over_memory().then_some(MEMORY_EXCEEDED)));
        if exhausted == Some(MEMORY_EXCEEDED) {
            failure = Some(RunFailure::Limit(format!(
                "{MEMORY_EXCEEDED} ({} MiB): the filter built values larger than one \
                 evaluation may hold, after {:?}",
                limits.max_memory >> 20,
                start.elapsed()
            )));
        } else if let Some(why) = exhausted {
            failure = Some(RunFailure::Limit(format!(
                "{why}: stopped after {} steps / {:?} (limits {} steps, {:?})",
                limits.max_steps,
                start.elapsed(),
                limits.max_steps,
                limits.max_time
            )));
        }
        if matches!(failure, Some(RunFailure::Limit(_))) {
            out.clear();
        }
        (out, failure)
    }
}

fn load_errors(path: &str, code: &str, e: jaq_core::load::Error<&str>) -> Vec<LoadError> {
    use jaq_core::load::Error as E;
    match e {
        E::Io(items) => items
            .into_iter()
            .map(|(p, msg)| load_error(path, code, p, format!("cannot load module {p:?}: {msg}")))
            .collect(),
        E::Lex(items) => items
            .into_iter()
            .map(|(expect, at)| match expect {
                lex::Expect::Delim(open) => load_error(
                    path,
                    code,
                    open,
                    format!(
                        "syntax error: `{open}` is never closed (expected {})",
                        expect.as_str()
                    ),
                ),
                _ => load_error(
                    path,
                    code,
                    at,
                    format!("syntax error: expected {}", expect.as_str()),
                ),
            })
            .collect(),
        E::Parse(items) => items
            .into_iter()
            .map(|(expect, found)| {
                let found_txt = if found.is_empty() {
                    "end of file".to_string()
                } else {
                    format!("{found:?}")
                };
                let at = if found.is_empty() {
                    &code[code.len()..]
                } else {
                    found
                };
                load_error(
                    path,
                    code,
                    at,
                    format!(
                        "syntax error: expected {}, found {found_txt}",
                        expect.as_str()
                    ),
                )
            })
            .collect(),
    }
}

/// Replaces the leading `include`/`import` directives by spaces (keeping every offset) so
/// the body can be parsed as a plain term for the static checks.
fn mask_directives(code: &str) -> String {
    masked_and_includes(code).0
}

/// The file with its directives masked (see [`mask_directives`]) and the names of the
/// modules its `include` directives load, in order.
pub(crate) fn masked_and_includes(code: &str) -> (String, Vec<String>) {
    let mut masked = code.to_string();
    let mut includes = Vec::new();
    let Ok(tokens) = lex::Lexer::new(code).lex() else {
        return (masked, includes);
    };
    let mut i = 0;
    while let Some(lex::Token(word, lex::Tok::Word)) = tokens.get(i) {
        if *word != "include" && *word != "import" && *word != "module" {
            break;
        }
        let start = offset_in(code, word).unwrap_or(0);
        let mut end = start;
        while let Some(lex::Token(s, tok)) = tokens.get(i) {
            i += 1;
            end = offset_in(code, s).map_or(end, |o| o + s.len());
            if matches!(tok, lex::Tok::Sym) && *s == ";" {
                break;
            }
        }
        if *word == "include"
            && let Some((_, rest)) = code[start..end].split_once('"')
            && let Some((name, _)) = rest.split_once('"')
        {
            includes.push(name.to_string());
        }
        // SAFETY of slicing: start..end are token boundaries inside `code`.
        // same byte length, so every offset after it still points at the same text
        let blank: String = code[start..end]
            .chars()
            .map(|c| {
                if c == '\n' {
                    "\n".to_string()
                } else {
                    " ".repeat(c.len_utf8())
                }
            })
            .collect();
        masked.replace_range(start..end, &blank);
    }
    (masked, includes)
}

/// Guard rail at load time: a definition that calls itself (directly, or through a nested
/// definition) could loop without ever reaching a counted generator, so it is refused.
/// The prelude's generators (`repeat`, `recurse`, `while`, `until`, `range`) are counted.
pub(crate) fn check_no_recursion(file: &str, code: &str) -> Vec<LoadError> {
    let masked = mask_directives(code);
    let mut errs = Vec::new();
    let mut stack: Vec<(&str, usize)> = Vec::new();
    if let Some(term) = jaq_core::load::parse(&masked, |p| p.term()) {
        walk(&term, &mut stack, &mut |name| errs.push(name));
    } else if let Some(defs) = jaq_core::load::parse(&masked, |p| p.defs()) {
        for d in &defs {
            walk_def(d, &mut stack, &mut |name| errs.push(name));
        }
    }
    errs.into_iter()
        .map(|name: &str| {
            let (line, column) = offset_in(&masked, name).map_or((1, 1), |o| line_col(&masked, o));
            LoadError {
                file: file.to_string(),
                line,
                column,
                message: format!(
                    "recursive definition `{name}` is not allowed in detections (guard rail); use repeat/recurse/while/until/range, which are step-limited"
                ),
            }
        })
        .collect()
}

fn walk_def<'s>(
    d: &Def<&'s str>,
    stack: &mut Vec<(&'s str, usize)>,
    found: &mut impl FnMut(&'s str),
) {
    stack.push((d.name, d.args.len()));
    walk(&d.body, stack, found);
    stack.pop();
}

fn walk<'s>(t: &Term<&'s str>, stack: &mut Vec<(&'s str, usize)>, found: &mut impl FnMut(&'s str)) {
    use jaq_core::load::lex::StrPart;
    match t {
        Term::Id | Term::Recurse | Term::Num(_) | Term::Var(_) | Term::Break(_) => {}
        Term::Str(_, parts) => {
            for p in parts {
                if let StrPart::Term(t) = p {
                    walk(t, stack, found);
                }
            }
        }
        Term::Arr(a) => {
            if let Some(a) = a {
                walk(a, stack, found);
            }
        }
        Term::Obj(kvs) => {
            for (k, v) in kvs {
                walk(k, stack, found);
                if let Some(v) = v {
                    walk(v, stack, found);
                }
            }
        }
        Term::Neg(t) | Term::Label(_, t) => walk(t, stack, found),
        Term::BinOp(l, op, r) => {
            walk(l, stack, found);
            if let BinaryOp::Pipe(Some(p)) = op {
                walk_pattern(p, stack, found);
            }
            walk(r, stack, found);
        }
        Term::Fold(_, x, p, args) => {
            walk(x, stack, found);
            walk_pattern(p, stack, found);
            for a in args {
                walk(a, stack, found);
            }
        }
        Term::TryCatch(t, c) => {
            walk(t, stack, found);
            if let Some(c) = c {
                walk(c, stack, found);
            }
        }
        Term::IfThenElse(branches, els) => {
            for (c, b) in branches {
                walk(c, stack, found);
                walk(b, stack, found);
            }
            if let Some(e) = els {
                walk(e, stack, found);
            }
        }
        Term::Def(defs, rest) => {
            for d in defs {
                walk_def(d, stack, found);
            }
            walk(rest, stack, found);
        }
        Term::Call(name, args) => {
            if stack.iter().any(|(n, a)| n == name && *a == args.len()) {
                found(name);
            }
            for a in args {
                walk(a, stack, found);
            }
        }
        Term::Path(t, path) => {
            walk(t, stack, found);
            for (part, _) in &path.0 {
                match part {
                    Part::Index(i) => walk(i, stack, found),
                    Part::Range(a, b) => {
                        for x in [a, b].into_iter().flatten() {
                            walk(x, stack, found);
                        }
                    }
                }
            }
        }
    }
}

fn walk_pattern<'s>(
    p: &Pattern<&'s str>,
    stack: &mut Vec<(&'s str, usize)>,
    found: &mut impl FnMut(&'s str),
) {
    match p {
        Pattern::Var(_) => {}
        Pattern::Arr(ps) => {
            for p in ps {
                walk_pattern(p, stack, found);
            }
        }
        Pattern::Obj(kvs) => {
            for (k, p) in kvs {
                walk(k, stack, found);
                walk_pattern(p, stack, found);
            }
        }
    }
}
