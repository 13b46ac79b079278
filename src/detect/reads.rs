//! What a detection reads of its record, worked out from its parse tree: the top-level
//! fields it looks at (and, for a Name/Value array, the entry names it picks), so that a
//! candidate record is parsed with only those fields (`project.rs`) and the memo keys on
//! them (`memo.rs`). The analyst writes none of it; a `# fields` line in a header is
//! checked against what is found here.
//!
//! The walk is an abstract run of the filter in which every value is one of a few kinds:
//! the record itself (`Root`), a value that depends only on fields read whole (`Val`), a
//! string constant, or a step of the one Name/Value idiom the projection narrows
//! (`.F[]? | objects | select(.Name == "x")`). Reading `.F` of the record marks `F` read;
//! user and helper definitions are followed with their arguments (they cannot recurse:
//! the loader refuses that); jaq's own functions are values-in, value-out, so the record
//! reaching one of them as input or argument (`keys`, `length`, `tojson`, `to_entries`,
//! `paths`, `has`, …), or any other use of the record as a value (`..`, `.[]`, `.[$k]`,
//! `. == x`, `{r: .}`, emitting it, updating it), makes the whole record read. When in
//! doubt the answer is the whole record: this module must never leave out something the
//! filter can see. It must not run jq or know about headers other than `# fields`.

use super::meta::Field;
use super::scope::{self, Bound, bind};
use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Def, Pattern, Term};
use jaq_core::path::{Opt, Part};
use std::collections::BTreeMap;

type T<'s> = Term<&'s str>;

/// What a filter reads of its input record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reads {
    /// Only these top-level fields (sorted by name); entries: see [`Field`].
    Fields(Vec<Field>),
    /// The record as a whole; the string says why (`keys` at file:line).
    Whole(String),
}

/// One source file the filter comes from (for positions in the reasons).
pub(crate) struct Src<'a> {
    pub(crate) file: &'a str,
    pub(crate) code: &'a str,
}

/// The kinds of value the abstract run tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// The record itself.
    Root,
    /// Anything computed from constants and fields read whole.
    Val,
    /// A string constant (what `.Name == $name` may be compared with).
    Lit(String),
    /// An element of the top-level field's array (`.F[]?`), not yet narrowed.
    Elem(String),
    /// An element of the field's array that is an object (`… | objects`).
    Obj(String),
}

impl Kind {
    fn is_entry(&self) -> bool {
        matches!(self, Kind::Elem(_) | Kind::Obj(_))
    }
}

type Kinds = Vec<Kind>;

fn push(out: &mut Kinds, k: Kind) {
    if !out.contains(&k) {
        out.push(k);
    }
}

type Env<'a, 's> = scope::Env<'a, 's, Kinds>;

/// jaq functions whose input may be the record without exposing it: they ignore their
/// input (beyond its being an object) and evaluate their arguments on it.
const IGNORE_INPUT: &[(&str, usize)] = &[
    ("empty", 0),
    ("null", 0),
    ("true", 0),
    ("false", 0),
    ("not", 0),
    ("type", 0),
    ("isobject", 0),
    ("isarray", 0),
    ("isstring", 0),
    ("isnumber", 0),
    ("isboolean", 0),
    ("error", 1),
    ("range", 1),
    ("range", 2),
    ("range", 3),
];

/// Deeper nesting of calls than this is not followed (the whole record is read).
const MAX_DEPTH: usize = 200;

struct Cx<'c> {
    srcs: &'c [Src<'c>],
    fields: BTreeMap<String, Option<Vec<String>>>,
    whole: Option<String>,
    depth: usize,
}

impl Cx<'_> {
    /// `file:line` of a slice of one of the sources.
    fn at(&self, s: &str) -> String {
        for src in self.srcs {
            let (w, p) = (src.code.as_ptr() as usize, s.as_ptr() as usize);
            if p >= w && p + s.len() <= w + src.code.len() {
                let line = src.code[..p - w].matches('\n').count() + 1;
                return format!("{}:{line}", src.file);
            }
        }
        "?".to_string()
    }

    fn whole(&mut self, what: &str, at: &str) {
        if self.whole.is_none() {
            let at = self.at(at);
            self.whole = Some(format!("{what} at {at}"));
        }
    }

    fn read(&mut self, field: &str, entry: Option<&str>) {
        match (self.fields.get_mut(field), entry) {
            (None, e) => {
                self.fields
                    .insert(field.to_string(), e.map(|e| vec![e.to_string()]));
            }
            (Some(slot), None) => *slot = None,
            (Some(None), Some(_)) => {}
            (Some(Some(list)), Some(e)) => {
                if !list.iter().any(|x| x == e) {
                    list.push(e.to_string());
                }
            }
        }
    }

    /// An entry step used any other way than the idiom: its field is read whole.
    fn demote(&mut self, k: Kind) -> Kind {
        match k {
            Kind::Elem(f) | Kind::Obj(f) => {
                self.read(&f, None);
                Kind::Val
            }
            k => k,
        }
    }

    fn demote_all(&mut self, ks: Kinds) -> Kinds {
        let mut out = Vec::new();
        for k in ks {
            let k = self.demote(k);
            push(&mut out, k);
        }
        out
    }

    /// Outputs that become part of another value (an operand, an element, an argument
    /// of a jaq function): the record among them makes it read whole.
    fn value(&mut self, ks: Kinds, what: &str, at: &str) {
        for k in ks {
            if k == Kind::Root {
                self.whole(what, at);
            } else {
                self.demote(k);
            }
        }
    }

    fn term<'a, 's>(&mut self, t: &'a T<'s>, input: &Kinds, env: &Env<'a, 's>) -> Kinds {
        if self.whole.is_some() {
            return vec![Kind::Val];
        }
        let passes_entries = matches!(
            t,
            Term::Id | Term::Call(..) | Term::Def(..) | Term::Label(..)
        ) || matches!(t, Term::BinOp(_, BinaryOp::Pipe(None), _));
        let input = if !passes_entries && input.iter().any(Kind::is_entry) {
            self.demote_all(input.clone())
        } else {
            input.clone()
        };
        let has_root = input.contains(&Kind::Root);
        match t {
            Term::Id => input,
            Term::Recurse => {
                if has_root {
                    self.whole("`..`", "..");
                }
                vec![Kind::Val]
            }
            Term::Num(_) => vec![Kind::Val],
            Term::Break(_) => Vec::new(),
            Term::Str(fmt, parts) => {
                if let Some(f) = fmt
                    && has_root
                {
                    self.whole(&format!("`{f}` on the record"), f);
                }
                let mut lit = Some(String::new());
                for p in parts {
                    match p {
                        StrPart::Str(s) => {
                            if let Some(l) = &mut lit {
                                l.push_str(s)
                            }
                        }
                        StrPart::Char(c) => {
                            if let Some(l) = &mut lit {
                                l.push(*c)
                            }
                        }
                        StrPart::Term(x) => {
                            lit = None;
                            let ks = self.term(x, &input, env);
                            self.value(ks, "the record in a string", first_str(x));
                        }
                    }
                }
                match (fmt, lit) {
                    (None, Some(l)) => vec![Kind::Lit(l)],
                    _ => vec![Kind::Val],
                }
            }
            Term::Arr(a) => {
                if let Some(a) = a {
                    let ks = self.term(a, &input, env);
                    self.value(ks, "the record in an array", first_str(a));
                }
                vec![Kind::Val]
            }
            Term::Obj(kvs) => {
                for (k, v) in kvs {
                    match (k, v) {
                        (Term::Var(_), None) => {
                            let ks = self.term(k, &input, env);
                            self.value(ks, "the record in an object", first_str(k));
                        }
                        (k, None) => {
                            // `{k}` is `{k: .[k]}`
                            match lit_str(k) {
                                Some(name) => {
                                    if has_root {
                                        self.read(&name, None);
                                    }
                                }
                                None => {
                                    let ks = self.term(k, &input, env);
                                    self.value(ks, "the record as a key", first_str(k));
                                    if has_root {
                                        self.whole("a computed key", first_str(k));
                                    }
                                }
                            }
                        }
                        (k, Some(v)) => {
                            let ks = self.term(k, &input, env);
                            self.value(ks, "the record as a key", first_str(k));
                            let vs = self.term(v, &input, env);
                            self.value(vs, "the record in an object", first_str(v));
                        }
                    }
                }
                vec![Kind::Val]
            }
            Term::Neg(x) => {
                let ks = self.term(x, &input, env);
                self.value(ks, "negating the record", first_str(x));
                vec![Kind::Val]
            }
            Term::Label(_, x) => self.term(x, &input, env),
            Term::Var(v) => self.var(v, env),
            Term::Def(defs, rest) => {
                let env = scope::with_defs(env.clone(), defs);
                self.term(rest, &input, &env)
            }
            Term::TryCatch(x, c) => {
                let mut out = self.term(x, &input, env);
                if let Some(c) = c {
                    for k in self.term(c, &vec![Kind::Val], env) {
                        push(&mut out, k);
                    }
                }
                out
            }
            Term::IfThenElse(branches, els) => {
                let mut out = Vec::new();
                for (c, b) in branches {
                    let cs = self.term(c, &input, env);
                    self.demote_all(cs);
                    for k in self.term(b, &input, env) {
                        push(&mut out, k);
                    }
                }
                let rest = match els {
                    Some(e) => self.term(e, &input, env),
                    None => input.clone(),
                };
                for k in rest {
                    push(&mut out, k);
                }
                out
            }
            Term::Fold(_, xs, pat, args) => {
                let ks = self.term(xs, &input, env);
                let ks = self.demote_all(ks);
                // the initial value does not see the pattern's variables
                let mut acc = match args.first() {
                    Some(init) => self.term(init, &input, env),
                    None => vec![Kind::Val],
                };
                let env = self.pattern(pat, ks, &input, env);
                if let Some(update) = args.get(1) {
                    for _ in 0..4 {
                        let next = self.term(update, &acc, &env);
                        let before = acc.len();
                        for k in self.demote_all(next) {
                            push(&mut acc, k);
                        }
                        if acc.len() == before {
                            break;
                        }
                    }
                }
                match args.get(2) {
                    Some(extract) => {
                        let out = self.term(extract, &acc, &env);
                        self.demote_all(out)
                    }
                    None => self.demote_all(acc),
                }
            }
            Term::Path(x, path) => {
                let ks = self.term(x, &input, env);
                let mut out = Vec::new();
                for k in ks {
                    for o in self.path(k, &path.0, &input, env) {
                        push(&mut out, o);
                    }
                }
                out
            }
            Term::Call(name, args) => self.call(name, args, &input, env),
            Term::BinOp(l, op, r) => self.binop(l, op, r, &input, env),
        }
    }

    fn var<'a, 's>(&mut self, v: &'s str, env: &Env<'a, 's>) -> Kinds {
        if let Some(ks) = scope::var(env, v) {
            return ks.clone();
        }
        if v != "$collector_id" && v != "$tenant_id" {
            self.whole(&format!("`{v}`"), v);
        }
        vec![Kind::Val]
    }

    /// Binds a pattern's variables to `ks` (the values it destructures).
    fn pattern<'a, 's>(
        &mut self,
        pat: &'a Pattern<&'s str>,
        ks: Kinds,
        input: &Kinds,
        env: &Env<'a, 's>,
    ) -> Env<'a, 's> {
        match pat {
            Pattern::Var(v) => bind(env, Bound::Var(v, ks)),
            Pattern::Arr(_) | Pattern::Obj(_) => {
                if ks.contains(&Kind::Root) {
                    self.whole("destructuring the record", pat_str(pat));
                }
                let mut vars = Vec::new();
                pattern_vars(pat, &mut vars);
                if let Pattern::Obj(kvs) = pat {
                    let mut keys = Vec::new();
                    pattern_keys(kvs, &mut keys);
                    for k in keys {
                        let out = self.term(k, input, env);
                        self.value(out, "the record as a key", first_str(k));
                    }
                }
                let mut env = env.clone();
                for v in vars {
                    env = bind(&env, Bound::Var(v, vec![Kind::Val]));
                }
                env
            }
        }
    }

    fn path<'a, 's>(
        &mut self,
        k: Kind,
        parts: &'a [(Part<T<'s>>, Opt)],
        input: &Kinds,
        env: &Env<'a, 's>,
    ) -> Kinds {
        let k = self.demote(k);
        let mut rest = parts;
        if k == Kind::Root {
            match parts.first() {
                Some((Part::Index(i), _)) if lit_str(i).is_some() => {
                    let name = lit_str(i).unwrap_or_default();
                    if let [_, (Part::Range(None, None), _)] = parts {
                        return vec![Kind::Elem(name)];
                    }
                    self.read(&name, None);
                    rest = &parts[1..];
                }
                Some((part, _)) => {
                    let at = match part {
                        Part::Index(i) => first_str(i),
                        Part::Range(Some(i), _) | Part::Range(None, Some(i)) => first_str(i),
                        Part::Range(None, None) => "",
                    };
                    self.whole("iterating or indexing the record dynamically", at);
                }
                None => return vec![k],
            }
        }
        for (part, _) in rest {
            let idx: Vec<&T<'s>> = match part {
                Part::Index(i) => vec![i],
                Part::Range(a, b) => [a, b].into_iter().flatten().collect(),
            };
            for i in idx {
                let ks = self.term(i, input, env);
                self.value(ks, "the record as an index", first_str(i));
            }
        }
        vec![Kind::Val]
    }

    fn binop<'a, 's>(
        &mut self,
        l: &'a T<'s>,
        op: &'a BinaryOp<&'s str>,
        r: &'a T<'s>,
        input: &Kinds,
        env: &Env<'a, 's>,
    ) -> Kinds {
        let has_root = input.contains(&Kind::Root);
        match op {
            BinaryOp::Pipe(None) => {
                let ks = self.term(l, input, env);
                if ks.is_empty() {
                    return ks;
                }
                self.term(r, &ks, env)
            }
            BinaryOp::Pipe(Some(pat)) => {
                let ks = self.term(l, input, env);
                let ks = self.demote_all(ks);
                let env = self.pattern(pat, ks, input, env);
                self.term(r, input, &env)
            }
            BinaryOp::Comma => {
                let mut out = self.term(l, input, env);
                for k in self.term(r, input, env) {
                    push(&mut out, k);
                }
                out
            }
            BinaryOp::Alt => {
                let a = self.term(l, input, env);
                let mut out = self.demote_all(a);
                let b = self.term(r, input, env);
                for k in self.demote_all(b) {
                    push(&mut out, k);
                }
                out
            }
            BinaryOp::And | BinaryOp::Or => {
                let a = self.term(l, input, env);
                self.demote_all(a);
                let b = self.term(r, input, env);
                self.demote_all(b);
                vec![Kind::Val]
            }
            BinaryOp::Math(_) | BinaryOp::Cmp(_) => {
                let a = self.term(l, input, env);
                self.value(a, "the record as an operand", first_str(l));
                let b = self.term(r, input, env);
                self.value(b, "the record as an operand", first_str(r));
                vec![Kind::Val]
            }
            BinaryOp::Assign | BinaryOp::Update | BinaryOp::UpdateMath(_) | BinaryOp::UpdateAlt => {
                if has_root {
                    self.whole("updating the record", first_str(l));
                }
                let a = self.term(l, input, env);
                self.value(a, "the record as an operand", first_str(l));
                let b = self.term(r, input, env);
                self.value(b, "the record as an operand", first_str(r));
                vec![Kind::Val]
            }
        }
    }

    fn call<'a, 's>(
        &mut self,
        name: &'s str,
        args: &'a [T<'s>],
        input: &Kinds,
        env: &Env<'a, 's>,
    ) -> Kinds {
        if name.contains("::") {
            self.whole(&format!("`{name}` (a module import)"), name);
            return vec![Kind::Val];
        }
        if self.depth >= MAX_DEPTH {
            self.whole("calls nested too deeply to follow", name);
            return vec![Kind::Val];
        }
        let mut cur = env.clone();
        while let Some(n) = cur {
            match &n.b {
                Bound::Arg(a, body, cenv) if *a == name && args.is_empty() => {
                    self.depth += 1;
                    let out = self.term(body, input, cenv);
                    self.depth -= 1;
                    return out;
                }
                Bound::Fun(d, denv) if d.name == name && d.args.len() == args.len() => {
                    let mut fenv = denv.clone();
                    for (p, a) in d.args.iter().zip(args) {
                        if let Some(plain) = p.strip_prefix('$') {
                            let ks = self.term(a, input, env);
                            let ks = self.demote_all(ks);
                            fenv = bind(&fenv, Bound::Var(p, ks));
                            fenv = bind(&fenv, Bound::Arg(plain, a, env.clone()));
                        } else {
                            fenv = bind(&fenv, Bound::Arg(p, a, env.clone()));
                        }
                    }
                    self.depth += 1;
                    let out = self.term(&d.body, input, &fenv);
                    self.depth -= 1;
                    return out;
                }
                _ => {}
            }
            cur = n.next.clone();
        }
        self.builtin(name, args, input, env)
    }

    /// A function of jaq's prelude or a native.
    fn builtin<'a, 's>(
        &mut self,
        name: &'s str,
        args: &'a [T<'s>],
        input: &Kinds,
        env: &Env<'a, 's>,
    ) -> Kinds {
        match (name, args) {
            ("objects", []) => {
                let mut out = Vec::new();
                for k in input {
                    let k = match k {
                        Kind::Elem(f) | Kind::Obj(f) => Kind::Obj(f.clone()),
                        Kind::Lit(_) => continue,
                        k => k.clone(),
                    };
                    push(&mut out, k);
                }
                return out;
            }
            ("select", [c]) => {
                let mut out = Vec::new();
                for k in input {
                    if let Kind::Obj(f) = k
                        && let Some(names) = self.name_test(c, env)
                    {
                        for n in names {
                            self.read(f, Some(&n));
                        }
                        push(&mut out, Kind::Val);
                        continue;
                    }
                    let k = self.demote(k.clone());
                    let cs = self.term(c, &vec![k.clone()], env);
                    self.demote_all(cs);
                    push(&mut out, k);
                }
                return out;
            }
            ("first" | "last", [f]) => {
                let input = self.demote_all(input.clone());
                let out = self.term(f, &input, env);
                return self.demote_all(out);
            }
            _ => {}
        }
        let input = self.demote_all(input.clone());
        if input.contains(&Kind::Root) && !IGNORE_INPUT.contains(&(name, args.len())) {
            self.whole(&format!("`{name}` on the record"), name);
        }
        for a in args {
            let ks = self.term(a, &input, env);
            self.value(ks, &format!("the record as an argument of `{name}`"), name);
        }
        match (name, args.len()) {
            ("empty", 0) | ("error", _) => Vec::new(),
            _ => vec![Kind::Val],
        }
    }

    /// The names `c` tests an entry's `Name` against when it is `.Name == "x"` (or
    /// `"x" == .Name`, or a variable holding only constants).
    fn name_test<'a, 's>(&mut self, c: &'a T<'s>, env: &Env<'a, 's>) -> Option<Vec<String>> {
        let Term::BinOp(l, BinaryOp::Cmp(jaq_core::ops::Cmp::Eq), r) = c else {
            return None;
        };
        let (lhs, rhs) = if is_dot_name(l) { (l, r) } else { (r, l) };
        if !is_dot_name(lhs) {
            return None;
        }
        if let Some(s) = lit_str(rhs) {
            return Some(vec![s]);
        }
        let Term::Var(v) = &**rhs else { return None };
        let mut cur = env.clone();
        while let Some(n) = cur {
            if let Bound::Var(name, ks) = &n.b
                && name == v
            {
                return ks
                    .iter()
                    .map(|k| match k {
                        Kind::Lit(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .filter(|v| !v.is_empty());
            }
            cur = n.next.clone();
        }
        None
    }
}

/// `.Name`
fn is_dot_name(t: &T<'_>) -> bool {
    match t {
        Term::Path(x, p) => {
            matches!(**x, Term::Id)
                && matches!(&p.0[..], [(Part::Index(i), _)] if lit_str(i).as_deref() == Some("Name"))
        }
        _ => false,
    }
}

/// The text of a string constant without interpolation or format.
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

/// Some slice of the source inside `t`, to say where it is.
fn first_str<'s>(t: &T<'s>) -> &'s str {
    match t {
        Term::Num(s) | Term::Var(s) | Term::Break(s) | Term::Call(s, _) | Term::Label(s, _) => s,
        Term::Fold(s, ..) => s,
        Term::Str(Some(s), _) => s,
        Term::Str(None, parts) => parts
            .iter()
            .find_map(|p| match p {
                StrPart::Str(s) => Some(*s),
                StrPart::Term(t) => Some(first_str(t)),
                StrPart::Char(_) => None,
            })
            .unwrap_or(""),
        Term::Arr(Some(t)) | Term::Neg(t) | Term::TryCatch(t, _) => first_str(t),
        Term::BinOp(l, _, _) => first_str(l),
        Term::Path(x, p) => match (&**x, p.0.first()) {
            (Term::Id, Some((Part::Index(i), _))) => first_str(i),
            _ => first_str(x),
        },
        Term::Def(ds, _) => ds.first().map_or("", |d| d.name),
        Term::IfThenElse(b, _) => b.first().map_or("", |(c, _)| first_str(c)),
        Term::Obj(kvs) => kvs.first().map_or("", |(k, _)| first_str(k)),
        Term::Id | Term::Recurse | Term::Arr(None) => "",
    }
}

fn pat_str<'s>(p: &Pattern<&'s str>) -> &'s str {
    let mut vars = Vec::new();
    pattern_vars(p, &mut vars);
    vars.first().copied().unwrap_or("")
}

fn pattern_vars<'s>(p: &Pattern<&'s str>, out: &mut Vec<&'s str>) {
    match p {
        Pattern::Var(v) => out.push(v),
        Pattern::Arr(ps) => ps.iter().for_each(|p| pattern_vars(p, out)),
        Pattern::Obj(kvs) => kvs.iter().for_each(|(_, p)| pattern_vars(p, out)),
    }
}

fn pattern_keys<'a, 's>(kvs: &'a [(T<'s>, Pattern<&'s str>)], out: &mut Vec<&'a T<'s>>) {
    for (k, p) in kvs {
        out.push(k);
        match p {
            Pattern::Obj(inner) => pattern_keys(inner, out),
            Pattern::Arr(ps) => {
                for p in ps {
                    if let Pattern::Obj(inner) = p {
                        pattern_keys(inner, out);
                    }
                }
            }
            Pattern::Var(_) => {}
        }
    }
}

/// What the filter `body` (a parsed main term) reads, with `libs` (the definitions of the
/// modules it includes, in order) in scope. `srcs` name the files for the reasons.
pub(crate) fn derive(body: &T<'_>, libs: &[&[Def<&str>]], srcs: &[Src<'_>]) -> Reads {
    let mut cx = Cx {
        srcs,
        fields: BTreeMap::new(),
        whole: None,
        depth: 0,
    };
    let env: Env = scope::with_defs(None, libs.iter().flat_map(|defs| defs.iter()));
    let out = cx.term(body, &vec![Kind::Root], &env);
    cx.value(out, "the record as an output", first_str(body));
    match cx.whole {
        Some(why) => Reads::Whole(why),
        None => Reads::Fields(
            cx.fields
                .into_iter()
                .map(|(name, entries)| Field {
                    name,
                    entries: entries.map(|mut e| {
                        e.sort();
                        e
                    }),
                })
                .collect(),
        ),
    }
}

/// What a detection file reads: its body parsed with the `include`d helper modules in
/// scope. `includes` are the module names in directive order; `module(name)` gives a
/// module's file and code. Anything that does not parse reads the whole record (the
/// compiler has the last word on such files).
pub(crate) fn derive_file(
    file: &str,
    masked: &str,
    includes: &[String],
    module: impl Fn(&str) -> Option<(String, String)>,
) -> Reads {
    let mods: Vec<(String, String)> = includes.iter().filter_map(|m| module(m)).collect();
    if mods.len() != includes.len() {
        return Reads::Whole("a module that cannot be read".into());
    }
    let mut defs = Vec::new();
    for (f, code) in &mods {
        match jaq_core::load::parse(code, |p| p.defs()) {
            Some(d) => defs.push(d),
            None => return Reads::Whole(format!("{f} does not parse as definitions only")),
        }
    }
    let Some(body) = jaq_core::load::parse(masked, |p| p.term()) else {
        return Reads::Whole(format!("{file} does not parse as one filter"));
    };
    let mut srcs = vec![Src { file, code: masked }];
    srcs.extend(mods.iter().map(|(f, c)| Src { file: f, code: c }));
    let libs: Vec<&[Def<&str>]> = defs.iter().map(Vec::as_slice).collect();
    derive(&body, &libs, &srcs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(code: &str, lib: &str) -> Reads {
        let libs = if lib.is_empty() {
            vec![]
        } else {
            vec!["m".to_string()]
        };
        derive_file("q.jq", code, &libs, |_| {
            Some(("lib/m.jq".to_string(), lib.to_string()))
        })
    }

    fn fields(r: &Reads) -> Vec<String> {
        match r {
            Reads::Fields(f) => f.iter().map(|f| f.to_string()).collect(),
            Reads::Whole(why) => vec![format!("WHOLE: {why}")],
        }
    }

    #[test]
    fn plain_paths_shorthands_helpers_and_variables_are_fields() {
        let lib = "def ip: (.A // .B) | ascii_downcase; def sel(f): select(f);";
        let r = reads(
            "sel(.Operation == \"x\") | . as $r | .C.D as $d | {UserId, ip: ip, e: $r.E, d: $d, s: \"\\(.S)\"}",
            lib,
        );
        assert_eq!(fields(&r), ["A", "B", "C", "E", "Operation", "S", "UserId"]);
    }

    #[test]
    fn the_name_value_idiom_names_its_entries_and_anything_else_reads_the_field() {
        let lib = "def ep($n): first(.ExtendedProperties[]? | objects | select(.Name == $n) | .Value) // null;";
        let r = reads("{a: ep(\"UserAgent\"), b: ep(\"RequestType\")}", lib);
        assert_eq!(fields(&r), ["ExtendedProperties[RequestType|UserAgent]"]);
        let r = reads(
            "{a: ep(\"UserAgent\"), n: (.ExtendedProperties | length)}",
            lib,
        );
        assert_eq!(fields(&r), ["ExtendedProperties"]);
        let r = reads("[.ExtendedProperties[]? | objects] | length", "");
        assert_eq!(fields(&r), ["ExtendedProperties"]);
        let r = reads(
            "[.ExtendedProperties[]? | objects | select(.Name == .Value)]",
            "",
        );
        assert_eq!(fields(&r), ["ExtendedProperties"]);
        let r = reads(".ExtendedProperties[]? | select(.Name == \"x\")", "");
        assert_eq!(fields(&r), ["ExtendedProperties"]);
    }

    #[test]
    fn whole_record_uses_fall_back() {
        for code in [
            "keys",
            "length",
            "tojson",
            ".[]",
            "..",
            "to_entries",
            "paths",
            ".[$__loc__.file]",
            "\"k\" as $k | .[$k]",
            ".",
            "{r: .}",
            "select(.a == 1)",
            ". == {}",
            ".a = 1",
            "def f(x): x | keys; f(.)",
            "def f($x): $x | keys; f(.)",
            ". as $r | $r | has(\"a\")",
            "tostring",
            "[.[] | .a]",
            "reduce .[] as $x (0; . + 1)",
            ". as {a: $x} | $x",
            "@json",
            "\"\\(.)\"",
            "if .a then . else 1 end",
        ] {
            assert!(
                matches!(reads(code, ""), Reads::Whole(_)),
                "{code}: {:?}",
                reads(code, "")
            );
        }
        // and these are fine
        for (code, want) in [
            ("select(.a == 1) | .b", vec!["a", "b"]),
            ("if .a then .b else empty end", vec!["a", "b"]),
            ("type as $t | .a", vec!["a"]),
            ("reduce (.a[]?) as $x (0; . + $x)", vec!["a"]),
            ("def f(x): x | ascii_downcase; f(.u)", vec!["u"]),
            ("first(.a, .b)", vec!["a", "b"]),
            (".a.b.c?", vec!["a"]),
        ] {
            assert_eq!(fields(&reads(code, "")), want, "{code}");
        }
    }

    #[test]
    fn the_reason_names_the_construct_and_line() {
        let Reads::Whole(why) = reads(".a,\n keys", "") else {
            panic!()
        };
        assert!(why.contains("keys") && why.contains("q.jq:2"), "{why}");
    }
}
