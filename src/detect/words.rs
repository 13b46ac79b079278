//! Prefilter words worked out from a detection's parse tree: sets of words (ASCII case
//! ignored) of which the record's JSON text must hold one whenever the filter emits
//! anything or fails. A record whose text lacks every word of one set skips the detection
//! unparsed (`Detections::admitted`); a set of header values only is checked against the
//! record's header, before the record is a candidate (`Detection::table_accepts`).
//!
//! The walk follows the filter's pipeline from the record on: a `select` whose condition can
//! only be true when a value of the record equals a string constant (`.Operation == "x"`,
//! `(ext_prop("RequestType") // "") == "x"`), or contains one (`ascii_downcase |
//! contains("x")`, `ci_any([...])`), gives that constant as a word; `and` keeps the words of
//! each side that must hold, `or` joins them. Errors count like outputs: a step that may
//! fail (`.a.b` on a string, `ascii_downcase` on a number) ends the walk there, so a record
//! that would make the filter fail is never skipped — unless it fails only on a value of
//! another type under a known key (`.k // "" | ascii_downcase`): then what follows holds
//! under a type guard ([`Atom::NotString`]), a set that also holds when the text has that
//! key with a value that is not a string. A value compared that is the record's own
//! `Operation` or `Workload` gives [`Atom::Is`], which the header can decide. Anything not
//! understood gives no word (the detection runs on every candidate). It must not run jq.

use super::scope::{self, Bound, bind};
use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Def, Pattern, Term};
use jaq_core::ops::Cmp;
use jaq_core::path::{Opt, Part};
use std::fmt;

type T<'s> = Term<&'s str>;

/// Abstract values: where a value comes from, as far as words are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum V {
    /// The record (an object).
    Root,
    /// A value found in the record, unchanged (any type).
    Sub,
    /// A value found in the record under this object key (lower-cased, a [`word`]),
    /// unchanged: when it is not null, the record's text spells the key. True: known to be
    /// neither null nor false (`.k // x`), so the key is present. A header field: the
    /// record's own field of that name (the record header holds its value).
    Keyed(String, bool, Option<Head>),
    /// `tostring` of a value found in the record: the value itself when a string, else
    /// its JSON text (which the record's text spells for `true`, `false`, `null` and
    /// integers).
    ToStr,
    /// A constant that is not null and not a string (a number, `true`, `false`).
    Const,
    /// An array collected from a generator (`[f]`): not empty only when `f` emitted, and
    /// then these word sets hold.
    Coll(Need),
    /// The `length` of a [`V::Coll`]: above 0 only when its word sets hold.
    Len(Need),
    /// A value found in the record that is an object.
    SubObj,
    /// A value found in the record that is a string.
    SubStr,
    /// `ascii_downcase` of a string found in the record.
    Lower,
    /// `null`.
    Null,
    /// A string constant.
    Lit(String),
    /// An array of string constants.
    Lits(Vec<String>),
    /// Anything else.
    Any,
}

/// A top-level field of the record that its header holds as it is (when a string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Head {
    Operation,
    Workload,
}

impl Head {
    fn of_key(k: &str) -> Option<Head> {
        match k {
            "Operation" => Some(Head::Operation),
            "Workload" => Some(Head::Workload),
            _ => None,
        }
    }

    /// The header's value of this field (empty when the record's is not a string).
    pub(crate) fn in_header(self, h: &crate::model::RecordHeader) -> &str {
        match self {
            Head::Operation => &h.operation,
            Head::Workload => &h.workload,
        }
    }
}

/// One thing a record may hold (a word: ASCII case ignored).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Atom {
    /// The record's header field equals this string exactly (its text then also spells
    /// it: it is a [`word`]).
    Is(Head, String),
    /// The word, lower-cased, anywhere in the text.
    Word(String),
    /// The key (lower-cased, a [`word`]) followed by a value that is not a string: a type
    /// guard, for a filter that fails on such a value (`.k // "" | ascii_downcase`).
    NotString(String),
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Atom::Is(h, v) => write!(f, "{h:?}={v}"),
            Atom::Word(w) => f.write_str(w),
            Atom::NotString(k) => write!(f, "\"{k}\": not a string"),
        }
    }
}

/// Conjunction of sets (each set: the text holds one of its atoms). An empty set can
/// never hold: the term cannot get there.
pub(crate) type Need = Vec<Vec<Atom>>;

/// When a term may fail: None, for reasons not worked out; else only when the text holds
/// one of these atoms (none: never).
type Fail = Option<Vec<Atom>>;

/// Fails when either does.
fn fail_either(a: &Fail, b: &Fail) -> Fail {
    let (a, b) = (a.as_ref()?, b.as_ref()?);
    let mut out = a.clone();
    for x in b {
        if !out.contains(x) {
            out.push(x.clone());
        }
    }
    Some(out)
}

/// What holds of a term that runs after one that may fail (`fail`): `need`, unless the
/// first one failed.
fn unless_failed(need: Need, fail: &Fail) -> Need {
    match fail {
        None => Vec::new(),
        Some(g) => need
            .into_iter()
            .map(|mut set| {
                for x in g {
                    if !set.contains(x) {
                        set.push(x.clone());
                    }
                }
                set
            })
            .collect(),
    }
}

#[derive(Debug, Clone)]
struct Res {
    outs: Vec<V>,
    /// When it may fail.
    fail: Fail,
    /// Holds whenever the term emits or fails.
    need: Need,
    /// Holds whenever the term emits a truthy value or fails.
    truth: Need,
}

impl Res {
    fn any() -> Res {
        Res {
            outs: vec![V::Any],
            fail: None,
            need: Vec::new(),
            truth: Vec::new(),
        }
    }
    fn total(outs: Vec<V>) -> Res {
        Res {
            outs,
            fail: Some(Vec::new()),
            need: Vec::new(),
            truth: Vec::new(),
        }
    }
}

type Env<'a, 's> = scope::Env<'a, 's, Vec<V>>;

/// At most this many sets come out of [`either`] (each costs a search per record).
const MAX_SETS: usize = 8;

/// What holds when either side does (`a or b`): every set made of one set of each side
/// (the first [`MAX_SETS`]; fewer sets hold no less), less those another one implies.
fn either(a: &Need, b: &Need) -> Need {
    let mut out: Need = Vec::new();
    for x in a {
        for y in b {
            let mut s = x.clone();
            for w in y {
                if !s.contains(w) {
                    s.push(w.clone());
                }
            }
            if out.len() < MAX_SETS {
                out.push(s);
            }
        }
    }
    simplest(out)
}

/// `need` without the sets that another one implies (a set that holds whenever a smaller
/// one does) and without repeats.
fn simplest(need: Need) -> Need {
    let mut out: Need = Vec::new();
    for (i, s) in need.iter().enumerate() {
        let implied = need.iter().enumerate().any(|(j, t)| {
            j != i && t.iter().all(|x| s.contains(x)) && (t.len() < s.len() || j < i)
        });
        if !implied {
            out.push(s.clone());
        }
    }
    out
}

fn and(mut a: Need, b: &Need) -> Need {
    a.extend(b.iter().cloned());
    a
}

/// A word the JSON text spells as it is (modulo `\/`), lower-cased.
fn word(s: &str) -> Option<String> {
    (!s.is_empty() && !s.chars().any(|c| c == '"' || c == '\\' || c.is_control()))
        .then(|| s.to_ascii_lowercase())
}

fn words(s: &[String]) -> Vec<Atom> {
    s.iter().map(|w| Atom::Word(w.clone())).collect()
}

fn lit_str(t: &T<'_>) -> Option<String> {
    let Term::Str(None, parts) = t else {
        return None;
    };
    let mut s = String::new();
    for p in parts {
        match p {
            StrPart::Str(x) => s.push_str(x),
            StrPart::Char(c) => s.push(*c),
            StrPart::Term(_) => return None,
        }
    }
    Some(s)
}

const MAX_DEPTH: usize = 100;

struct Cx {
    depth: usize,
}

impl Cx {
    /// Runs `f` once per abstract input and merges: outputs joined, failing when one does,
    /// and a word set only where every input gives one.
    fn each(&mut self, input: &[V], mut f: impl FnMut(&mut Cx, &V) -> Res) -> Res {
        let mut out: Option<Res> = None;
        for v in input {
            let r = f(self, v);
            out = Some(match out {
                None => r,
                Some(o) => Res {
                    outs: {
                        let mut x = o.outs;
                        for v in r.outs {
                            if !x.contains(&v) {
                                x.push(v);
                            }
                        }
                        x
                    },
                    fail: fail_either(&o.fail, &r.fail),
                    need: either(&o.need, &r.need),
                    truth: either(&o.truth, &r.truth),
                },
            });
        }
        out.unwrap_or_else(|| Res::total(Vec::new()))
    }

    fn term<'a, 's>(&mut self, t: &'a T<'s>, input: &[V], env: &Env<'a, 's>) -> Res {
        match t {
            Term::Id => Res::total(input.to_vec()),
            Term::Num(_) => Res::total(vec![V::Const]),
            Term::Str(None, _) => match lit_str(t) {
                Some(s) => Res::total(vec![V::Lit(s)]),
                None => Res::any(),
            },
            Term::Arr(Some(x)) => {
                let r = self.term(x, input, env);
                let lits: Option<Vec<String>> = r
                    .outs
                    .iter()
                    .map(|v| match v {
                        V::Lit(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                match lits {
                    Some(l) if r.fail == Some(Vec::new()) && comma_only(x) => {
                        Res::total(vec![V::Lits(l)])
                    }
                    // always an array (empty when `x` emits nothing): nothing is needed
                    // for it, but whoever tests it for emptiness learns `x`'s words
                    _ => Res {
                        outs: vec![V::Coll(r.need)],
                        fail: r.fail,
                        need: Vec::new(),
                        truth: Vec::new(),
                    },
                }
            }
            Term::Var(v) => match scope::var(env, v) {
                Some(vs) => Res::total(vs.clone()),
                None => Res::total(vec![V::Any]),
            },
            Term::Path(x, path) => {
                let r = self.term(x, input, env);
                let mut out = self.each(&r.outs, |_, v| path_of(v, &path.0));
                // index terms other than constants are not followed
                if path.0.iter().any(|(p, _)| match p {
                    Part::Index(i) => lit_str(i).is_none(),
                    Part::Range(a, b) => a.is_some() || b.is_some(),
                }) {
                    return Res::any();
                }
                out.need = and(r.need.clone(), &unless_failed(out.need, &r.fail));
                out.truth = and(r.need, &unless_failed(out.truth, &r.fail));
                out.fail = fail_either(&r.fail, &out.fail);
                out
            }
            Term::BinOp(l, op, r) => self.binop(l, op, r, input, env),
            Term::Call(name, args) => self.call(name, args, input, env),
            Term::Def(defs, rest) => {
                let env = scope::with_defs(env.clone(), defs);
                self.term(rest, input, &env)
            }
            _ => Res::any(),
        }
    }

    fn binop<'a, 's>(
        &mut self,
        l: &'a T<'s>,
        op: &'a BinaryOp<&'s str>,
        r: &'a T<'s>,
        input: &[V],
        env: &Env<'a, 's>,
    ) -> Res {
        match op {
            BinaryOp::Pipe(None) => {
                let a = self.term(l, input, env);
                let b = self.term(r, &a.outs, env);
                pipe(a, b)
            }
            BinaryOp::Pipe(Some(Pattern::Var(v))) => {
                let a = self.term(l, input, env);
                let env = bind(env, Bound::Var(v, a.outs.clone()));
                let b = self.term(r, input, &env);
                let mut res = pipe(a, b.clone());
                res.outs = b.outs;
                res
            }
            BinaryOp::And => {
                let a = self.term(l, input, env);
                // `type == "string" and …`: the right side sees a string
                let refined: Vec<V> = if is_string_test(l) {
                    input
                        .iter()
                        .filter_map(|v| match v {
                            V::Sub | V::Keyed(..) | V::SubStr => Some(V::SubStr),
                            V::Lit(s) => Some(V::Lit(s.clone())),
                            V::Lower => Some(V::Lower),
                            V::Any => Some(V::Any),
                            _ => None,
                        })
                        .collect()
                } else {
                    input.to_vec()
                };
                let b = if refined.is_empty() {
                    // the left side is never true: the right side never runs
                    Res {
                        outs: Vec::new(),
                        fail: Some(Vec::new()),
                        need: Vec::new(),
                        truth: vec![Vec::new()],
                    }
                } else {
                    self.term(r, &refined, env)
                };
                Res {
                    outs: vec![V::Any],
                    fail: fail_either(&a.fail, &b.fail),
                    need: a.need.clone(),
                    truth: and(and(a.need, &a.truth), &unless_failed(b.truth, &a.fail)),
                }
            }
            BinaryOp::Or => {
                let a = self.term(l, input, env);
                let b = self.term(r, input, env);
                Res {
                    outs: vec![V::Any],
                    fail: fail_either(&a.fail, &b.fail),
                    need: a.need.clone(),
                    // true or failing: the left side is, or it was false and the right
                    // side is
                    truth: and(a.need, &either(&a.truth, &b.truth)),
                }
            }
            BinaryOp::Comma => {
                let a = self.term(l, input, env);
                let b = self.term(r, input, env);
                let mut outs = a.outs;
                for v in b.outs {
                    if !outs.contains(&v) {
                        outs.push(v);
                    }
                }
                Res {
                    outs,
                    fail: fail_either(&a.fail, &b.fail),
                    need: either(&a.need, &b.need),
                    truth: either(&a.truth, &b.truth),
                }
            }
            BinaryOp::Alt => {
                let a = self.term(l, input, env);
                let b = self.term(r, input, env);
                // what passes of the left side is neither null nor false
                let mut outs: Vec<V> = a
                    .outs
                    .into_iter()
                    .map(|v| match v {
                        V::Keyed(k, _, h) => V::Keyed(k, true, h),
                        v => v,
                    })
                    .collect();
                for v in b.outs {
                    if !outs.contains(&v) {
                        outs.push(v);
                    }
                }
                Res {
                    outs,
                    fail: fail_either(&a.fail, &b.fail),
                    need: Vec::new(),
                    truth: Vec::new(),
                }
            }
            BinaryOp::Cmp(cmp @ (Cmp::Eq | Cmp::Ne)) => {
                let a = self.term(l, input, env);
                let b = self.term(r, input, env);
                let equal = matches!(cmp, Cmp::Eq);
                let mut sets = Vec::new();
                if equal
                    && let Some(w) =
                        equal_words(&a.outs, &b.outs).or_else(|| equal_words(&b.outs, &a.outs))
                {
                    sets.push(w);
                }
                // the key only where no value word says more (one search fewer per record)
                if sets.is_empty()
                    && let Some(k) = key_words(&a.outs, &b.outs, equal)
                        .or_else(|| key_words(&b.outs, &a.outs, equal))
                {
                    sets.push(k);
                }
                let fail = fail_either(&a.fail, &b.fail);
                let need = and(a.need, &b.need);
                Res {
                    outs: vec![V::Any],
                    truth: and(need.clone(), &unless_failed(sets, &fail)),
                    fail,
                    need,
                }
            }
            BinaryOp::Cmp(c @ (Cmp::Gt | Cmp::Ge)) if is_num(r, matches!(c, Cmp::Gt)) => {
                // `length > 0` / `length >= 1` of a collected array: its generator emitted
                let a = self.term(l, input, env);
                let lens: Option<Vec<&Need>> = a
                    .outs
                    .iter()
                    .map(|v| match v {
                        V::Len(n) => Some(n),
                        _ => None,
                    })
                    .collect();
                let sets = match lens {
                    Some(ns) => ns
                        .into_iter()
                        .cloned()
                        .reduce(|x, y| either(&x, &y))
                        .unwrap_or_default(),
                    _ => Vec::new(),
                };
                Res {
                    outs: vec![V::Any],
                    truth: and(a.need.clone(), &unless_failed(sets, &a.fail)),
                    fail: a.fail,
                    need: a.need,
                }
            }
            BinaryOp::Cmp(_) => {
                let a = self.term(l, input, env);
                let b = self.term(r, input, env);
                let need = and(a.need, &b.need);
                Res {
                    outs: vec![V::Any],
                    fail: fail_either(&a.fail, &b.fail),
                    truth: need.clone(),
                    need,
                }
            }
            _ => Res::any(),
        }
    }

    fn call<'a, 's>(
        &mut self,
        name: &'s str,
        args: &'a [T<'s>],
        input: &[V],
        env: &Env<'a, 's>,
    ) -> Res {
        if self.depth >= MAX_DEPTH || name.contains("::") {
            return Res::any();
        }
        let mut cur = env.clone();
        while let Some(n) = cur {
            match &n.b {
                Bound::Arg(a, body, cenv) if *a == name && args.is_empty() => {
                    self.depth += 1;
                    let r = self.term(body, input, cenv);
                    self.depth -= 1;
                    return r;
                }
                Bound::Fun(d, denv) if d.name == name && d.args.len() == args.len() => {
                    let mut fenv = denv.clone();
                    let mut pre_fail = Some(Vec::new());
                    let mut pre_need = Vec::new();
                    for (p, a) in d.args.iter().zip(args) {
                        if p.starts_with('$') {
                            let r = self.term(a, input, env);
                            pre_fail = fail_either(&pre_fail, &r.fail);
                            pre_need = and(pre_need, &r.need);
                            fenv = bind(&fenv, Bound::Var(p, r.outs));
                        }
                        let plain = p.strip_prefix('$').unwrap_or(p);
                        fenv = bind(&fenv, Bound::Arg(plain, a, env.clone()));
                    }
                    self.depth += 1;
                    let mut r = self.term(&d.body, input, &fenv);
                    self.depth -= 1;
                    // the arguments bound to `$` parameters run first
                    r.need = and(pre_need.clone(), &unless_failed(r.need, &pre_fail));
                    r.truth = and(pre_need, &unless_failed(r.truth, &pre_fail));
                    r.fail = fail_either(&pre_fail, &r.fail);
                    return r;
                }
                _ => {}
            }
            cur = n.next.clone();
        }
        self.builtin(name, args, input, env)
    }

    fn builtin<'a, 's>(
        &mut self,
        name: &'s str,
        args: &'a [T<'s>],
        input: &[V],
        env: &Env<'a, 's>,
    ) -> Res {
        match (name, args) {
            ("null", []) => Res::total(vec![V::Null]),
            ("true" | "false", []) => Res::total(vec![V::Const]),
            ("type" | "not" | "isstring" | "isobject" | "isarray", []) => Res::total(vec![V::Any]),
            ("tostring", []) => self.each(input, |_, v| {
                Res::total(vec![match v {
                    V::Sub | V::Keyed(..) | V::SubStr => V::ToStr,
                    V::Lit(s) => V::Lit(s.clone()),
                    _ => V::Any,
                }])
            }),
            ("empty", []) => Res {
                outs: Vec::new(),
                fail: Some(Vec::new()),
                need: vec![Vec::new()],
                truth: vec![Vec::new()],
            },
            ("objects", []) => self.each(input, |_, v| {
                Res::total(match v {
                    V::Root => vec![V::Root],
                    V::Sub | V::Keyed(..) | V::SubObj => vec![V::SubObj],
                    V::Any => vec![V::Any],
                    _ => Vec::new(),
                })
            }),
            ("strings", []) => self.each(input, |_, v| {
                Res::total(match v {
                    V::Sub | V::Keyed(..) | V::SubStr => vec![V::SubStr],
                    V::Lit(s) => vec![V::Lit(s.clone())],
                    V::Lower => vec![V::Lower],
                    V::Any => vec![V::Any],
                    _ => Vec::new(),
                })
            }),
            ("select", [c]) => self.each(input, |cx, v| {
                let r = cx.term(c, std::slice::from_ref(v), env);
                let need = r.truth.clone();
                Res {
                    outs: vec![v.clone()],
                    fail: r.fail,
                    truth: need.clone(),
                    need,
                }
            }),
            ("first", [f]) => {
                let mut r = self.term(f, input, env);
                r.truth = r.need.clone();
                r
            }
            ("length", []) => self.each(input, |_, v| match v {
                V::Coll(n) => Res::total(vec![V::Len(n.clone())]),
                _ => Res::any(),
            }),
            ("ascii_downcase", []) => self.each(input, |_, v| match v {
                V::SubStr | V::Lower => Res::total(vec![V::Lower]),
                // present (not null): fails only on a value that is not a string
                V::Keyed(k, true, _) => Res {
                    outs: vec![V::Lower],
                    fail: Some(vec![Atom::NotString(k.clone())]),
                    need: Vec::new(),
                    truth: Vec::new(),
                },
                V::Lit(s) => Res::total(vec![V::Lit(s.to_ascii_lowercase())]),
                _ => Res::any(),
            }),
            ("contains", [x]) => {
                let r = self.term(x, input, env);
                let arg: Option<Vec<String>> = r
                    .outs
                    .iter()
                    .map(|v| match v {
                        V::Lit(s) => word(s),
                        _ => None,
                    })
                    .collect();
                let stringy = input
                    .iter()
                    .all(|v| matches!(v, V::SubStr | V::Lower | V::Lit(_)));
                let from_record = input.iter().all(|v| matches!(v, V::SubStr | V::Lower));
                match arg {
                    Some(ws) if r.fail == Some(Vec::new()) && stringy && !ws.is_empty() => Res {
                        outs: vec![V::Any],
                        fail: Some(Vec::new()),
                        need: Vec::new(),
                        truth: if from_record {
                            vec![words(&ws)]
                        } else {
                            Vec::new()
                        },
                    },
                    _ => Res::any(),
                }
            }
            ("any", [g, c]) => {
                let source = self.term(g, input, env);
                let r = self.each(&source.outs, |cx, v| {
                    cx.term(c, std::slice::from_ref(v), env)
                });
                Res {
                    outs: vec![V::Any],
                    fail: fail_either(&source.fail, &r.fail),
                    need: source.need.clone(),
                    truth: and(source.need, &unless_failed(r.truth, &source.fail)),
                }
            }
            _ => Res::any(),
        }
    }
}

/// `a | b`: fails or emits only when `a` does, and then also when `b` (on one of `a`'s
/// outputs) does, unless `a` failed.
fn pipe(a: Res, b: Res) -> Res {
    Res {
        outs: b.outs,
        fail: fail_either(&a.fail, &b.fail),
        need: and(a.need.clone(), &unless_failed(b.need, &a.fail)),
        truth: and(a.need, &unless_failed(b.truth, &a.fail)),
    }
}

/// `.[]` steps and constant keys applied to an abstract value.
fn path_of(v: &V, parts: &[(Part<T<'_>>, Opt)]) -> Res {
    let mut cur = vec![v.clone()];
    let mut total = true;
    for (part, opt) in parts {
        let optional = matches!(opt, Opt::Optional);
        let mut next = Vec::new();
        // a constant key that is a word: a value found under it names it
        // (of the record itself: `top`, a header field perhaps)
        let keyed = |top: bool| match part {
            Part::Index(i) => lit_str(i).and_then(|k| {
                let head = if top { Head::of_key(&k) } else { None };
                word(&k).map(|w| V::Keyed(w, false, head))
            }),
            Part::Range(..) => None,
        };
        for v in &cur {
            let (out, ok) = match (part, v) {
                (Part::Index(_), V::Root) => (keyed(true).unwrap_or(V::Sub), true),
                (Part::Index(_), V::SubObj) => (keyed(false).unwrap_or(V::Sub), true),
                (Part::Index(_), V::Sub | V::Keyed(..)) => {
                    (keyed(false).unwrap_or(V::Sub), optional)
                }
                (Part::Range(None, None), V::Sub | V::Keyed(..) | V::SubObj) => (V::Sub, optional),
                (Part::Range(None, None), V::Lits(l)) => {
                    for s in l {
                        next.push(V::Lit(s.clone()));
                    }
                    continue;
                }
                _ => (V::Any, false),
            };
            total &= ok;
            if !next.contains(&out) {
                next.push(out);
            }
        }
        cur = next;
    }
    // a truthy value is not null: its key is in the text
    let truth = match (total, keys_of(&cur)) {
        (true, Some(keys)) => vec![words(&keys)],
        _ => Vec::new(),
    };
    Res {
        outs: cur,
        fail: total.then(Vec::new),
        need: Vec::new(),
        truth,
    }
}

/// The keys the values `vs` were found under, when every one was found under a key.
fn keys_of(vs: &[V]) -> Option<Vec<String>> {
    let keys: Vec<String> = vs
        .iter()
        .map(|v| match v {
            V::Keyed(k, ..) => Some(k.clone()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    (!keys.is_empty()).then_some(keys)
}

/// `a == b` (or `a != null` when `b` is null) can only be true when the text spells the
/// key every value of `a` was found under: only a present key holds a value that is not
/// null.
fn key_words(a: &[V], b: &[V], equal: bool) -> Option<Vec<Atom>> {
    let keys = keys_of(a)?;
    let other_ok = !b.is_empty()
        && b.iter().all(|v| {
            if equal {
                matches!(v, V::Lit(_) | V::Const)
            } else {
                *v == V::Null
            }
        });
    other_ok.then(|| words(&keys))
}

/// `a == b` can only be true when the text holds one of these words: every value of `a`
/// comes from the record (or is a constant other than `b`'s) and `b` is string constants.
fn equal_words(a: &[V], b: &[V]) -> Option<Vec<Atom>> {
    let lits: Vec<&String> = b
        .iter()
        .map(|v| match v {
            V::Lit(s) => Some(s),
            _ => None,
        })
        .collect::<Option<_>>()?;
    if lits.is_empty() {
        return None;
    }
    let ok = a.iter().all(|v| match v {
        V::Sub | V::Keyed(..) | V::SubStr | V::Lower | V::Null => true,
        V::ToStr => lits.iter().all(|l| spelled_as_is(l)),
        V::Lit(x) => !lits.contains(&x),
        _ => false,
    });
    let from_record = |v: &V| matches!(v, V::Sub | V::Keyed(..) | V::SubStr | V::Lower | V::ToStr);
    if !ok || !a.iter().any(from_record) {
        return None;
    }
    // every value is the record's own header field: the header decides
    let heads: Option<Vec<Head>> = a
        .iter()
        .map(|v| match v {
            V::Keyed(_, _, h) => *h,
            _ => None,
        })
        .collect();
    if let Some(hs) = heads
        && let Some(&h) = hs.first()
        && hs.iter().all(|x| *x == h)
    {
        return lits
            .into_iter()
            .map(|s| word(s).map(|_| Atom::Is(h, s.clone())))
            .collect();
    }
    lits.into_iter().map(|s| word(s).map(Atom::Word)).collect()
}

/// `tostring` of a record value can equal `s` only where the text spells `s` itself: a
/// string is itself; `true`, `false` and `null` start with a letter and are written as
/// they read; a number's JSON text starts with a digit or `-`, and only an integer's is
/// all digits and spelled the same in the record (a float reads back as `100.0` from
/// `1e2`). Arrays and objects start with `[` or `{`.
fn spelled_as_is(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
}

/// The number constant `0` (`zero`) or `1`.
fn is_num(t: &T<'_>, zero: bool) -> bool {
    matches!(t, Term::Num(n) if *n == if zero { "0" } else { "1" })
}

/// `type == "string"` or `isstring`.
fn is_string_test(t: &T<'_>) -> bool {
    match t {
        Term::Call(n, a) => *n == "isstring" && a.is_empty(),
        Term::BinOp(l, BinaryOp::Cmp(Cmp::Eq), r) => {
            matches!(&**l, Term::Call("type", a) if a.is_empty())
                && lit_str(r).as_deref() == Some("string")
        }
        _ => false,
    }
}

/// An array body made of constants joined by `,` (one output each).
fn comma_only(t: &T<'_>) -> bool {
    match t {
        Term::BinOp(l, BinaryOp::Comma, r) => comma_only(l) && comma_only(r),
        t => lit_str(t).is_some(),
    }
}

/// The word sets of the filter `body` with `libs` (the definitions of the modules it
/// includes, in order) in scope: the record's text holds a word of each set whenever the
/// filter emits or fails. Sets implied by the `operations` header are left out.
pub(crate) fn derive(body: &T<'_>, libs: &[&[Def<&str>]], operations: &[String]) -> Need {
    let env: Env = scope::with_defs(None, libs.iter().flat_map(|defs| defs.iter()));
    let r = Cx { depth: 0 }.term(body, &[V::Root], &env);
    let exact: Vec<&String> = operations.iter().filter(|o| !o.contains('*')).collect();
    let implied = |set: &Vec<Atom>| {
        !exact.is_empty()
            && exact.len() == operations.len()
            && exact.iter().all(|o| {
                set.contains(&Atom::Word(o.to_ascii_lowercase()))
                    || set.contains(&Atom::Is(Head::Operation, o.to_string()))
            })
    };
    let mut out: Need = Vec::new();
    for mut set in r.need {
        set.sort();
        set.dedup();
        if !implied(&set) && !out.contains(&set) {
            out.push(set);
        }
    }
    simplest(out)
}

/// [`derive`] for a detection file (see `reads::derive_file` for the arguments); no words
/// when anything does not parse.
pub(crate) fn derive_file(
    masked: &str,
    includes: &[String],
    module: impl Fn(&str) -> Option<(String, String)>,
    operations: &[String],
) -> Need {
    let mods: Vec<(String, String)> = includes.iter().filter_map(|m| module(m)).collect();
    if mods.len() != includes.len() {
        return Vec::new();
    }
    let mut defs = Vec::new();
    for (_, code) in &mods {
        match jaq_core::load::parse(code, |p| p.defs()) {
            Some(d) => defs.push(d),
            None => return Vec::new(),
        }
    }
    let Some(body) = jaq_core::load::parse(masked, |p| p.term()) else {
        return Vec::new();
    };
    let libs: Vec<&[Def<&str>]> = defs.iter().map(Vec::as_slice).collect();
    derive(&body, &libs, operations)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIB: &str = include_str!("../../queries/lib/m365.jq");

    fn words(code: &str, ops: &[&str]) -> Vec<Vec<String>> {
        let ops: Vec<String> = ops.iter().map(|s| s.to_string()).collect();
        derive_file(
            code,
            &["m365".to_string()],
            |_| Some(("m365.jq".into(), LIB.into())),
            &ops,
        )
        .iter()
        .map(|set| set.iter().map(Atom::to_string).collect())
        .collect()
    }

    #[test]
    fn constants_a_selected_value_must_equal_or_contain_are_words() {
        let w = |c: &str| words(c, &[]);
        assert_eq!(
            w("select(.Operation == \"X\") | {UserId}"),
            [["Operation=X"]]
        );
        assert_eq!(
            w("select(.A == \"a\" or .B == \"b\") | select(.C == \"c\")"),
            [vec!["a", "b"], vec!["c"]]
        );
        assert_eq!(
            w("select((ext_prop(\"RequestType\") // \"\") == \"Cmsi:Cmsi\") | 1"),
            [["cmsi:cmsi"]]
        );
        assert_eq!(
            w("select(ext_prop(\"UserAgent\") | ci_contains(\"BAV2ROPC\")) | 1"),
            [["bav2ropc"]]
        );
        assert_eq!(
            w("select(.UserAgent | ci_any([\"curl/\", \"wget/\"])) | 1"),
            [["curl/", "wget/"]]
        );
        // implied by the operations header: left out
        assert!(words("select(.Operation == \"X\") | 1", &["X"]).is_empty());
    }

    #[test]
    fn the_records_own_operation_or_workload_is_a_header_value() {
        let w = |c: &str| words(c, &[]);
        assert_eq!(
            w("select(.Workload == \"SharePoint\" or .Workload == \"OneDrive\") | 1"),
            [["Workload=OneDrive", "Workload=SharePoint"]]
        );
        // another field, or one further down, is a word of the text
        assert_eq!(
            w("select(.Workload == \"A\" or .Operation == \"B\") | 1"),
            [["Operation=B", "Workload=A"]]
        );
        assert_eq!(
            w("select(.P.Workload == \"A\") | 1"),
            Vec::<Vec<String>>::new()
        );
        assert_eq!(w("select(.P?.Workload? == \"A\") | 1"), [["a"]]);
        assert_eq!(w("select(.workload == \"A\") | 1"), [["a"]]);
        // a value not from the field itself: words only
        assert_eq!(w("select((.Workload // \"B\") == \"A\") | 1"), [["a"]]);
    }

    #[test]
    fn a_value_that_fails_only_when_not_a_string_keeps_its_words_under_a_type_guard() {
        let w = |c: &str| words(c, &[]);
        let guarded = vec!["exe", "js", "\"ext\": not a string"];
        assert_eq!(
            w("select((.Ext // \"\") | ascii_downcase | one_of([\"exe\", \"js\"])) | 1"),
            std::slice::from_ref(&guarded)
        );
        assert_eq!(
            w(
                "select(.Op == \"u\" and ((.Ext // \"\") | ascii_downcase | . == \"exe\" or . == \"js\")) | 1"
            ),
            [vec!["u"], guarded]
        );
        // `or` keeps every pair of sets
        assert_eq!(
            w(
                "select(.A == \"m\" or (.Op == \"u\" and ((.Ext // \"\") | ascii_downcase) == \"exe\")) | 1"
            ),
            [vec!["m", "u"], vec!["exe", "m", "\"ext\": not a string"]]
        );
        // a missing key is null, and null fails too: no guard without `//`
        assert!(w("select(.Ext | ascii_downcase | . == \"exe\") | 1").is_empty());
        // a failure after the guarded step still ends the walk
        assert!(w("select((.Ext // \"\") | ascii_downcase | .x == \"exe\") | 1").is_empty());
    }

    #[test]
    fn a_step_that_may_fail_ends_the_walk() {
        let w = |c: &str| words(c, &[]);
        // `.a.b` fails on a string `.a`: the record must not be skipped
        assert!(w("select(.a.b == \"x\")").is_empty());
        // ascii_downcase fails on a number
        assert!(w("select(.a | ascii_downcase | contains(\"x\"))").is_empty());
        assert!(w(".a | ascii_downcase | select(. == \"x\")").is_empty());
        // words before the failing step still hold
        assert_eq!(w("select(.a == \"x\") | .b | ascii_downcase"), [["x"]]);
        // `and` keeps the left side's words only when the left side cannot fail
        assert!(w("select((.a | ascii_downcase) == \"x\" and .b == \"y\")").is_empty());
        assert_eq!(w("select(.a == \"x\" and .b.c == \"y\")"), [["x"]]);
        // `or` needs words on both sides
        assert!(w("select(.a == \"x\" or (.b | length) == 1)").is_empty());
        // computed values give none
        assert!(w("select((.a | ascii_downcase) == \"x\")").is_empty());
        assert!(w("select((.a | length) == 3)").is_empty());
        assert!(w("select(.a == \"x\" | not)").is_empty());
        assert!(w("select(.a != \"x\")").is_empty());
        assert!(w("keys").is_empty());
    }

    #[test]
    fn a_value_that_is_not_null_names_its_key() {
        let w = |c: &str| words(c, &[]);
        assert_eq!(w("select(.P.Foreign? == true) | 1"), [["foreign"]]);
        assert_eq!(w("select(.P.Foreign? == false) | 1"), [["foreign"]]);
        assert_eq!(w("select(.Count == 3) | 1"), [["count"]]);
        assert_eq!(
            w("(.P.Foreign?) as $f | select($f != null) | 1"),
            [["foreign"]]
        );
        assert_eq!(w("select(.P.Foreign?) | 1"), [["foreign"]]);
        assert_eq!(w("select(.a == \"x\" or .b == 1)"), [["b", "x"]]);
        // a string constant's own word says more than the key
        assert_eq!(w("select(.Op == \"x\") | 1"), [["x"]]);
        // null compares equal to a missing key; `!=` anything else holds without it
        assert!(w("select(.a == null) | 1").is_empty());
        assert!(w("select(.a != 1) | 1").is_empty());
        assert!(w("select((.a // 1) == 1) | 1").is_empty());
        // `.P.Foreign` fails on a string `.P`: no word
        assert!(w("select(.P.Foreign == true) | 1").is_empty());
        // a key that is not a word (quotes, escapes) gives none
        assert!(w("select(.[\"a\\\"b\"] == 1) | 1").is_empty());
    }

    #[test]
    fn tostring_of_a_record_value_equals_only_what_the_text_spells() {
        let w = |c: &str| words(c, &[]);
        assert_eq!(
            w("select(((.E // \"\") | tostring) == \"50053\") | 1"),
            [["50053"]]
        );
        assert_eq!(
            w("select((.a | tostring) == \"IdsLocked\") | 1"),
            [["idslocked"]]
        );
        // a float's text is not the record's (`1e2` reads back as `100.0`)
        assert!(w("select((.a | tostring) == \"100.0\") | 1").is_empty());
        assert!(w("select((.a | tostring) == \"-3\") | 1").is_empty());
        assert!(w("select((.a | tostring) == \"[1]\") | 1").is_empty());
    }

    #[test]
    fn a_collected_array_tested_for_emptiness_gives_its_generators_words() {
        let w = |c: &str| words(c, &[]);
        assert_eq!(
            w(
                "[.Items[]? | objects | .Subject | strings | select(ci_any([\"mfa\", \"new device\"]))] as $s | select($s | length > 0) | 1"
            ),
            [["mfa", "new device"]]
        );
        assert_eq!(
            w("select([.a[]? | select(. == \"x\")] | length >= 1) | 1"),
            [["x"]]
        );
        // an empty array is still an array: no word without the emptiness test
        assert!(w("[.a[]? | select(. == \"x\")] | 1").is_empty());
        assert!(w("select([.a[]? | select(. == \"x\")] | length > 1) | 1").is_empty());
        assert!(w("select([.a[]? | select(. == \"x\")] | length == 0) | 1").is_empty());
        // `.a[]` (not optional) may fail on a string: no word
        assert!(w("select([.a[] | select(. == \"x\")] | length > 0) | 1").is_empty());
    }
}
