//! Runs a checked query over records pushed by the caller: the clauses before `group` per
//! record, then the groups and the clauses after it. Values carry Devo's types (string,
//! number, boolean, JSON, timestamp, null); every function's null and case behaviour is
//! here, next to the reason for it.
//!
//! It must not read anything but the [`Input`] it is handed. A value of the wrong type (a
//! JSON value where a string is needed, `not` of a string) stops the query with the column
//! of the expression: a query that cannot be answered the way Devo would answer it fails
//! rather than return different rows.

use super::parser::{Agg, AggFunc, Clause, Expr, Func, JqProgram, Kind};
use super::{Input, LinqError, Options, Output, Query, in_table};
use chrono::{DateTime, TimeZone as _, Utc};
use serde_json::Value as J;
use std::cell::OnceCell;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

/// One value of a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    /// A JSON value (`jsonparse`, `jqeval`, or an object/array field); never JSON null.
    Json(J),
    Time(DateTime<Utc>),
}

/// The columns Devo's Office 365 tables parse out of every record; `from <table>` without
/// `group` shows them (after `eventdate` and `hostchain`), then `message`, then what
/// `select` added.
pub const PARSED_COLUMNS: [&str; 6] = [
    "Operation",
    "UserId",
    "Workload",
    "ActorIpAddress",
    "ObjectId",
    "ClientIP",
];

impl Value {
    fn from_json(v: J) -> Value {
        match v {
            J::Null => Value::Null,
            other => Value::Json(other),
        }
    }

    /// A top-level field as a column: scalars keep their type, objects/arrays are JSON.
    fn from_field(v: Option<&J>) -> Value {
        match v {
            None | Some(J::Null) => Value::Null,
            Some(J::String(s)) => Value::Str(s.clone()),
            Some(J::Bool(b)) => Value::Bool(*b),
            Some(J::Number(n)) => n.as_f64().map_or(Value::Null, Value::Num),
            Some(other) => Value::Json(other.clone()),
        }
    }

    /// The value in a JSON result row (`--format jsonl`).
    pub fn to_json(&self) -> J {
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Num(n) => num_json(*n),
            Value::Str(s) => J::String(s.clone()),
            Value::Json(j) => j.clone(),
            Value::Time(t) => J::String(time_text(*t)),
        }
    }

    /// The value as a table or CSV cell: null is empty, a JSON string keeps its quotes
    /// (as Devo shows a JSON-typed value), everything else is its plain text.
    pub fn to_text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Num(n) => num_json(*n).to_string(),
            Value::Str(s) => s.clone(),
            Value::Json(j) => j.to_string(),
            Value::Time(t) => time_text(*t),
        }
    }

    /// Identity for grouping and `countdistinct`: type and content.
    fn key(&self) -> String {
        match self {
            Value::Null => "n".into(),
            Value::Bool(b) => format!("b{b}"),
            Value::Num(n) => format!("#{}", num_json(*n)),
            Value::Str(s) => format!("s{s}"),
            Value::Json(j) => format!("j{j}"),
            Value::Time(t) => format!("t{}", t.timestamp_millis()),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Num(_) => "a number",
            Value::Str(_) => "a string",
            Value::Json(J::String(_)) => "a JSON string",
            Value::Json(J::Array(_)) => "a JSON array",
            Value::Json(J::Object(_)) => "a JSON object",
            Value::Json(_) => "a JSON value",
            Value::Time(_) => "a timestamp",
        }
    }

    /// A JSON scalar compares as the plain value it holds.
    fn unwrap_scalar(&self) -> std::borrow::Cow<'_, Value> {
        use std::borrow::Cow;
        match self {
            Value::Json(J::String(s)) => Cow::Owned(Value::Str(s.clone())),
            Value::Json(J::Bool(b)) => Cow::Owned(Value::Bool(*b)),
            Value::Json(J::Number(n)) => Cow::Owned(n.as_f64().map_or(Value::Null, Value::Num)),
            other => Cow::Borrowed(other),
        }
    }
}

fn num_json(n: f64) -> J {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        J::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(J::Null, J::Number)
    }
}

/// Devo's timestamp display, in UTC.
fn time_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// Static checks that need the whole query: column names after `group`, duplicate names.
pub fn check(q: &Query) -> Result<(), LinqError> {
    let mut names: Vec<String> = Vec::new();
    let mut grouped = false;
    let fixed: Vec<&str> = ["eventdate", "hostchain", "message"]
        .into_iter()
        .chain(PARSED_COLUMNS)
        .collect();
    for c in &q.ast.clauses {
        match c {
            Clause::Where(conds) => {
                for e in conds {
                    if grouped {
                        check_columns(e, &names)?;
                    }
                }
            }
            Clause::Select(cols) => {
                for (e, n) in cols {
                    if grouped {
                        check_columns(e, &names)?;
                    } else if fixed.contains(&n.as_str()) {
                        return Err(LinqError::at(
                            e.col,
                            format!("the table already has a column `{n}`: choose another name"),
                        ));
                    }
                    if names.contains(n) {
                        return Err(LinqError::at(
                            e.col,
                            format!("a column `{n}` was already selected: choose another name"),
                        ));
                    }
                    names.push(n.clone());
                }
            }
            Clause::Group { every_secs, keys } => {
                grouped = true;
                let mut after = Vec::new();
                if every_secs.is_some() {
                    after.push("eventdate".to_string());
                }
                for (e, n) in keys {
                    if after.contains(n) {
                        return Err(LinqError::at(e.col, format!("`{n}` is grouped twice")));
                    }
                    after.push(n.clone());
                }
                names = after;
            }
        }
    }
    Ok(())
}

fn check_columns(e: &Expr, names: &[String]) -> Result<(), LinqError> {
    match &e.kind {
        Kind::Column(c) if !names.contains(c) => Err(LinqError::at(
            e.col,
            format!(
                "column `{c}` is not available after `group`: use a group key ({}) or an aggregation",
                names.join(", ")
            ),
        )),
        Kind::Call(_, args) => args.iter().try_for_each(|a| check_columns(a, names)),
        Kind::In(x, set) => {
            check_columns(x, names)?;
            set.iter().try_for_each(|a| check_columns(a, names))
        }
        Kind::Index(a, b) | Kind::And(a, b) | Kind::Or(a, b) => {
            check_columns(a, names)?;
            check_columns(b, names)
        }
        Kind::Not(a) => check_columns(a, names),
        // an aggregation's argument is read from the records of the group
        _ => Ok(()),
    }
}

/// One record while the clauses before `group` run on it.
struct Rec<'a> {
    input: &'a Input<'a>,
    parsed: OnceCell<Option<serde_json::Map<String, J>>>,
}

impl Rec<'_> {
    fn fields(&self) -> Option<&serde_json::Map<String, J>> {
        self.parsed
            .get_or_init(|| match serde_json::from_str::<J>(self.input.raw) {
                Ok(J::Object(m)) => Some(m),
                _ => None,
            })
            .as_ref()
    }
}

/// Where a column's value comes from.
enum Ctx<'a> {
    /// Before `group`: the record, plus the columns `select` added.
    Record {
        rec: &'a Rec<'a>,
        cols: &'a [(String, Value)],
    },
    /// After `group`: the group's keys and selected columns, and its aggregations.
    Group {
        cols: &'a [(String, Value)],
        aggs: &'a [Value],
    },
}

impl Ctx<'_> {
    fn column(&self, name: &str) -> Value {
        match self {
            Ctx::Record { rec, cols } => {
                if let Some((_, v)) = cols.iter().rev().find(|(n, _)| n == name) {
                    return v.clone();
                }
                match name {
                    "message" => Value::Str(rec.input.raw.to_string()),
                    "eventdate" => Value::Time(rec.input.ingested_at),
                    "hostchain" => rec
                        .input
                        .origin
                        .map_or(Value::Null, |o| Value::Str(o.hostchain().to_string())),
                    _ => Value::from_field(rec.fields().and_then(|m| m.get(name))),
                }
            }
            Ctx::Group { cols, .. } => cols
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map_or(Value::Null, |(_, v)| v.clone()),
        }
    }
}

/// What the run noticed without stopping.
#[derive(Default)]
struct Diag {
    jq_errors: u64,
    first_jq_error: Option<String>,
}

fn type_err(e: &Expr, msg: String) -> LinqError {
    LinqError::at(e.col, msg)
}

/// A string argument, or None for null; anything else is an error naming the function.
fn want_str<'v>(e: &Expr, v: &'v Value, func: &str) -> Result<Option<&'v str>, LinqError> {
    match v {
        Value::Null => Ok(None),
        Value::Str(s) => Ok(Some(s)),
        Value::Json(J::String(_)) => Err(type_err(
            e,
            format!("{func}() needs a string, got a JSON string: wrap it in str(…)"),
        )),
        other => Err(type_err(
            e,
            format!("{func}() needs a string, got {}", other.type_name()),
        )),
    }
}

fn eval(e: &Expr, ctx: &Ctx, diag: &mut Diag) -> Result<Value, LinqError> {
    Ok(match &e.kind {
        Kind::Column(c) => ctx.column(c),
        Kind::Str(s) => Value::Str(s.clone()),
        Kind::Num(n) => Value::Num(*n),
        Kind::Bool(b) => Value::Bool(*b),
        Kind::Null => Value::Null,
        Kind::Agg(i) => match ctx {
            Ctx::Group { aggs, .. } => aggs.get(*i).cloned().unwrap_or(Value::Null),
            Ctx::Record { .. } => {
                return Err(LinqError::at(
                    e.col,
                    "an aggregation needs `group` before it",
                ));
            }
        },
        Kind::Jq(_) => {
            return Err(LinqError::at(
                e.col,
                "jqcompile(…) is only usable as the first argument of jqeval",
            ));
        }
        Kind::Not(a) => match eval(a, ctx, diag)? {
            Value::Bool(b) => Value::Bool(!b),
            // Devo: `not` on null stays null, and `where` drops the row
            Value::Null => Value::Null,
            other => {
                return Err(type_err(
                    a,
                    format!("`not` needs a condition, got {}", other.type_name()),
                ));
            }
        },
        Kind::And(a, b) => {
            let l = cond(a, eval(a, ctx, diag)?)?;
            if l == Some(false) {
                return Ok(Value::Bool(false));
            }
            let r = cond(b, eval(b, ctx, diag)?)?;
            tri(match (l, r) {
                (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            })
        }
        Kind::Or(a, b) => {
            let l = cond(a, eval(a, ctx, diag)?)?;
            if l == Some(true) {
                return Ok(Value::Bool(true));
            }
            let r = cond(b, eval(b, ctx, diag)?)?;
            tri(match (l, r) {
                (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            })
        }
        Kind::In(x, set) => {
            let v = eval(x, ctx, diag)?;
            if v == Value::Null {
                return Ok(Value::Null);
            }
            let mut unknown = false;
            for s in set {
                match equal(&v, &eval(s, ctx, diag)?) {
                    Some(true) => return Ok(Value::Bool(true)),
                    Some(false) => {}
                    None => unknown = true,
                }
            }
            tri((!unknown).then_some(false))
        }
        Kind::Index(base, key) => {
            let b = eval(base, ctx, diag)?;
            let k = eval(key, ctx, diag)?;
            match (&b, &k) {
                (Value::Null, _) | (_, Value::Null) => Value::Null,
                (Value::Json(J::Object(m)), Value::Str(k)) => {
                    Value::from_json(m.get(k).cloned().unwrap_or(J::Null))
                }
                (Value::Json(J::Array(a)), Value::Num(i)) if *i >= 0.0 && i.fract() == 0.0 => {
                    Value::from_json(a.get(*i as usize).cloned().unwrap_or(J::Null))
                }
                (Value::Json(_), Value::Str(_) | Value::Num(_)) => Value::Null,
                (Value::Str(_), _) => {
                    return Err(type_err(
                        base,
                        "[…] reads inside a JSON value: parse the string first, jsonparse(…)[…]"
                            .into(),
                    ));
                }
                _ => {
                    return Err(type_err(
                        key,
                        format!("cannot index {} with {}", b.type_name(), k.type_name()),
                    ));
                }
            }
        }
        Kind::Call(f, args) => call(*f, e, args, ctx, diag)?,
    })
}

fn tri(b: Option<bool>) -> Value {
    b.map_or(Value::Null, Value::Bool)
}

/// A condition's truth: true, false, or unknown (null).
fn cond(e: &Expr, v: Value) -> Result<Option<bool>, LinqError> {
    match v {
        Value::Bool(b) => Ok(Some(b)),
        Value::Json(J::Bool(b)) => Ok(Some(b)),
        Value::Null => Ok(None),
        other => Err(type_err(
            e,
            format!("expected a condition, got {}", other.type_name()),
        )),
    }
}

/// Devo equality: exact and case-sensitive; null on either side is unknown; values of
/// different types (a string and a number) are not equal.
fn equal(a: &Value, b: &Value) -> Option<bool> {
    let (a, b) = (a.unwrap_scalar(), b.unwrap_scalar());
    match (a.as_ref(), b.as_ref()) {
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Num(x), Value::Num(y)) => Some(x == y),
        (Value::Time(x), Value::Time(y)) => Some(x == y),
        (x, y) => Some(x == y),
    }
}

fn order(e: &Expr, a: &Value, b: &Value) -> Result<Option<Ordering>, LinqError> {
    let (a, b) = (a.unwrap_scalar(), b.unwrap_scalar());
    match (a.as_ref(), b.as_ref()) {
        (Value::Null, _) | (_, Value::Null) => Ok(None),
        (Value::Num(x), Value::Num(y)) => Ok(x.partial_cmp(y)),
        (Value::Str(x), Value::Str(y)) => Ok(Some(x.cmp(y))),
        (Value::Time(x), Value::Time(y)) => Ok(Some(x.cmp(y))),
        (Value::Bool(x), Value::Bool(y)) => Ok(Some(x.cmp(y))),
        // stringly numbers ("RecordType":"15") are real: unknown, like null, not an error
        (Value::Num(_), Value::Str(_)) | (Value::Str(_), Value::Num(_)) => Ok(None),
        (x, y) => Err(type_err(
            e,
            format!("cannot order {} against {}", x.type_name(), y.type_name()),
        )),
    }
}

fn is_delim(c: char) -> bool {
    c.is_ascii() && !c.is_ascii_alphanumeric()
}

/// Devo `toktains`: `tok` occurs in `s` as whole tokens (runs of letters and digits
/// between ASCII symbols). `left`/`right` allow more letters or digits before/after it.
fn toktains(s: &str, tok: &str, left: bool, right: bool) -> bool {
    let (Some(first), Some(last)) = (tok.chars().next(), tok.chars().last()) else {
        return false;
    };
    // every start, overlapping ones included ("ab-ab" in "ab-ab-ab" may match at either)
    s.char_indices().any(|(i, _)| {
        if !s[i..].starts_with(tok) {
            return false;
        }
        let before = s[..i].chars().next_back();
        let after = s[i + tok.len()..].chars().next();
        let start_ok = left || is_delim(first) || before.is_none_or(is_delim);
        let end_ok = right || is_delim(last) || after.is_none_or(is_delim);
        start_ok && end_ok
    })
}

fn call(f: Func, e: &Expr, args: &[Expr], ctx: &Ctx, diag: &mut Diag) -> Result<Value, LinqError> {
    if f == Func::JqEval {
        let Kind::Jq(JqProgram { query, .. }) = &args[0].kind else {
            return Err(LinqError::at(
                args[0].col,
                "jqeval needs jqcompile(…) first",
            ));
        };
        return match eval(&args[1], ctx, diag)? {
            Value::Null => Ok(Value::Null),
            Value::Json(j) => match query.run(&j) {
                Ok(outs) => Ok(outs
                    .into_iter()
                    .next()
                    .map_or(Value::Null, Value::from_json)),
                Err(err) => {
                    // Devo gives null when the path cannot be followed; say how often
                    diag.jq_errors += 1;
                    diag.first_jq_error.get_or_insert(err);
                    Ok(Value::Null)
                }
            },
            other => Err(type_err(
                &args[1],
                format!(
                    "jqeval() runs on a JSON value, got {}: use jsonparse(message)",
                    other.type_name()
                ),
            )),
        };
    }
    let vals: Vec<Value> = args
        .iter()
        .map(|a| eval(a, ctx, diag))
        .collect::<Result<_, _>>()?;
    let name = func_name(f);
    Ok(match f {
        Func::Eq => tri(equal(&vals[0], &vals[1])),
        Func::Ne => tri(equal(&vals[0], &vals[1]).map(|b| !b)),
        Func::Lt | Func::Le | Func::Gt | Func::Ge => {
            tri(order(e, &vals[0], &vals[1])?.map(|o| match f {
                Func::Lt => o == Ordering::Less,
                Func::Le => o != Ordering::Greater,
                Func::Gt => o == Ordering::Greater,
                _ => o != Ordering::Less,
            }))
        }
        Func::Has | Func::WeakHas => {
            let weak = f == Func::WeakHas;
            let needles = args[1..]
                .iter()
                .zip(&vals[1..])
                .map(|(a, v)| want_str(a, v, name))
                .collect::<Result<Vec<_>, _>>()?;
            match &vals[0] {
                Value::Null => Value::Null,
                // on an array, `has` is element membership (Devo's complex data types)
                Value::Json(J::Array(items)) => {
                    let hit = needles.iter().flatten().any(|n| {
                        items.iter().any(|i| match i {
                            J::String(s) if weak => s.to_lowercase() == n.to_lowercase(),
                            J::String(s) => s == n,
                            _ => false,
                        })
                    });
                    Value::Bool(hit)
                }
                _ => {
                    let Some(s) = want_str(&args[0], &vals[0], name)? else {
                        return Ok(Value::Null);
                    };
                    let present: Vec<&str> = needles.into_iter().flatten().collect();
                    if present.is_empty() {
                        return Ok(Value::Null);
                    }
                    // weak: Devo's case-insensitive form; Unicode case folding, not ASCII only
                    let hit = if weak {
                        let s = s.to_lowercase();
                        present.iter().any(|n| s.contains(&n.to_lowercase()))
                    } else {
                        present.iter().any(|n| s.contains(n))
                    };
                    Value::Bool(hit)
                }
            }
        }
        Func::Toktains | Func::WeakToktains => {
            let flag = |i: usize| -> Result<bool, LinqError> {
                match vals.get(i) {
                    None => Ok(false),
                    Some(Value::Bool(b)) => Ok(*b),
                    Some(other) => Err(type_err(
                        &args[i],
                        format!(
                            "{name}()'s extension flags are true or false, got {}",
                            other.type_name()
                        ),
                    )),
                }
            };
            let (left, right) = (flag(2)?, flag(3)?);
            let (Some(s), Some(t)) = (
                want_str(&args[0], &vals[0], name)?,
                want_str(&args[1], &vals[1], name)?,
            ) else {
                return Ok(Value::Null);
            };
            if f == Func::WeakToktains {
                Value::Bool(toktains(&s.to_lowercase(), &t.to_lowercase(), left, right))
            } else {
                Value::Bool(toktains(s, t, left, right))
            }
        }
        Func::IsNull => Value::Bool(vals[0] == Value::Null),
        Func::IsNotNull => Value::Bool(vals[0] != Value::Null),
        Func::Str => match &vals[0] {
            Value::Null => Value::Null,
            Value::Json(J::String(s)) => Value::Str(s.clone()),
            Value::Str(s) => Value::Str(s.clone()),
            other => Value::Str(other.to_text()),
        },
        Func::JsonParse => match &vals[0] {
            Value::Null => Value::Null,
            Value::Json(j) => Value::Json(j.clone()),
            // invalid JSON is null, as a missing value would be
            Value::Str(s) => serde_json::from_str::<J>(s).map_or(Value::Null, Value::from_json),
            other => {
                return Err(type_err(
                    &args[0],
                    format!("jsonparse() needs a string, got {}", other.type_name()),
                ));
            }
        },
        Func::Split => {
            let (Some(s), Some(sep)) = (
                want_str(&args[0], &vals[0], name)?,
                want_str(&args[1], &vals[1], name)?,
            ) else {
                return Ok(Value::Null);
            };
            if sep.is_empty() {
                return Err(type_err(
                    &args[1],
                    "split() needs a non-empty separator".into(),
                ));
            }
            match vals.get(2) {
                // the parser allows only whole numbers ≥ 0 here; 0 is the first piece
                Some(Value::Num(n)) => s
                    .split(sep)
                    .nth(*n as usize)
                    .map_or(Value::Null, |p| Value::Str(p.to_string())),
                Some(_) => {
                    return Err(type_err(
                        &args[2],
                        "split()'s index must be a number".into(),
                    ));
                }
                None => Value::Json(J::Array(
                    s.split(sep).map(|p| J::String(p.to_string())).collect(),
                )),
            }
        }
        Func::Lower | Func::Upper => match want_str(&args[0], &vals[0], name)? {
            None => Value::Null,
            Some(s) if f == Func::Lower => Value::Str(s.to_lowercase()),
            Some(s) => Value::Str(s.to_uppercase()),
        },
        Func::Length => match &vals[0] {
            Value::Json(J::Array(a)) => Value::Num(a.len() as f64),
            _ => match want_str(&args[0], &vals[0], name)? {
                None => Value::Null,
                Some(s) => Value::Num(s.chars().count() as f64),
            },
        },
        Func::JqEval => Value::Null,
    })
}

fn func_name(f: Func) -> &'static str {
    match f {
        Func::Eq => "eq",
        Func::Ne => "!=",
        Func::Lt => "<",
        Func::Le => "<=",
        Func::Gt => ">",
        Func::Ge => ">=",
        Func::Has => "has",
        Func::WeakHas => "weakhas",
        Func::Toktains => "toktains",
        Func::WeakToktains => "weaktoktains",
        Func::IsNull => "isnull",
        Func::IsNotNull => "isnotnull",
        Func::Str => "str",
        Func::JsonParse => "jsonparse",
        Func::JqEval => "jqeval",
        Func::Split => "split",
        Func::Lower => "lower",
        Func::Upper => "upper",
        Func::Length => "length",
    }
}

/// The running state of one aggregation in one group.
#[derive(Debug, Clone)]
enum Acc {
    Count(u64),
    Distinct(HashSet<String>),
    Extreme(Option<Value>),
    Mean(f64, u64),
    Sum(Option<f64>),
}

impl Acc {
    fn new(a: &Agg) -> Acc {
        match a.func {
            AggFunc::Count => Acc::Count(0),
            AggFunc::CountDistinct => Acc::Distinct(HashSet::new()),
            AggFunc::Min | AggFunc::Max => Acc::Extreme(None),
            AggFunc::Avg => Acc::Mean(0.0, 0),
            AggFunc::Sum => Acc::Sum(None),
        }
    }

    /// Adds one record's value (already evaluated; None for `count()`). Nulls are skipped
    /// by every aggregation but `count()`.
    fn add(&mut self, a: &Agg, v: Option<Value>) -> Result<(), LinqError> {
        let col = a.arg.as_ref().map_or(a.col, |e| e.col);
        match (self, v) {
            (Acc::Count(n), None) => *n += 1,
            // the parser gives every aggregation but count() its argument
            (_, None) | (_, Some(Value::Null)) => {}
            (Acc::Count(n), Some(_)) => *n += 1,
            (Acc::Distinct(s), Some(v)) => {
                s.insert(v.unwrap_scalar().key());
            }
            (Acc::Extreme(cur), Some(v)) => {
                let v = v.unwrap_scalar().into_owned();
                if !matches!(v, Value::Num(_) | Value::Str(_) | Value::Time(_)) {
                    return Err(LinqError::at(
                        col,
                        format!(
                            "min()/max() compare numbers, strings or timestamps, got {}",
                            v.type_name()
                        ),
                    ));
                }
                let replace = match cur {
                    None => true,
                    Some(c) => {
                        let o = order(a.arg.as_ref().unwrap_or(&dummy(col)), &v, c)?;
                        match a.func {
                            AggFunc::Min => o == Some(Ordering::Less),
                            _ => o == Some(Ordering::Greater),
                        }
                    }
                };
                if replace {
                    *cur = Some(v);
                }
            }
            (Acc::Mean(sum, n), Some(v)) => {
                let x = number(&v, col, "avg")?;
                *sum += x;
                *n += 1;
            }
            (Acc::Sum(s), Some(v)) => {
                let x = number(&v, col, "sum")?;
                *s = Some(s.unwrap_or(0.0) + x);
            }
        }
        Ok(())
    }

    fn value(&self) -> Value {
        match self {
            Acc::Count(n) => Value::Num(*n as f64),
            Acc::Distinct(s) => Value::Num(s.len() as f64),
            Acc::Extreme(v) => v.clone().unwrap_or(Value::Null),
            Acc::Mean(_, 0) => Value::Null,
            Acc::Mean(s, n) => Value::Num(s / *n as f64),
            Acc::Sum(s) => s.map_or(Value::Null, Value::Num),
        }
    }
}

fn dummy(col: usize) -> Expr {
    Expr {
        kind: Kind::Null,
        col,
    }
}

fn number(v: &Value, col: usize, func: &str) -> Result<f64, LinqError> {
    match v.unwrap_scalar().as_ref() {
        Value::Num(x) => Ok(*x),
        other => Err(LinqError::at(
            col,
            format!("{func}() needs numbers, got {}", other.type_name()),
        )),
    }
}

struct GroupState {
    bucket: Option<i64>,
    keys: Vec<Value>,
    accs: Vec<Acc>,
}

/// One evaluation: push records, then [`Run::finish`].
pub struct Run<'q> {
    q: &'q Query,
    opts: Options,
    /// Index of the `group` clause, if any.
    group_at: Option<usize>,
    rows: Vec<Vec<Value>>,
    groups: Vec<GroupState>,
    group_index: HashMap<String, usize>,
    scanned: u64,
    truncated: bool,
    diag: Diag,
}

impl<'q> Run<'q> {
    pub(super) fn new(q: &'q Query, opts: Options) -> Run<'q> {
        Run {
            q,
            opts,
            group_at: q
                .ast
                .clauses
                .iter()
                .position(|c| matches!(c, Clause::Group { .. })),
            rows: Vec::new(),
            groups: Vec::new(),
            group_index: HashMap::new(),
            scanned: 0,
            truncated: false,
            diag: Diag::default(),
        }
    }

    /// Evaluates one record; false once no more records are wanted (the row cap of an
    /// ungrouped query is reached). Records outside the table or time range are skipped.
    pub fn push(&mut self, input: &Input) -> Result<bool, LinqError> {
        self.push_one(input).map_err(|e| LinqError {
            col: e.col,
            msg: format!("{} (record {})", e.msg, input.header.id),
        })
    }

    fn push_one(&mut self, input: &Input) -> Result<bool, LinqError> {
        if !in_table(self.q.table(), input.header)
            || self.opts.from.is_some_and(|f| input.ingested_at < f)
            || self.opts.to.is_some_and(|t| input.ingested_at >= t)
        {
            return Ok(true);
        }
        self.scanned += 1;
        let rec = Rec {
            input,
            parsed: OnceCell::new(),
        };
        let mut cols: Vec<(String, Value)> = Vec::new();
        let pre = &self.q.ast.clauses[..self.group_at.unwrap_or(self.q.ast.clauses.len())];
        for c in pre {
            match c {
                Clause::Where(conds) => {
                    for e in conds {
                        let v = eval(
                            e,
                            &Ctx::Record {
                                rec: &rec,
                                cols: &cols,
                            },
                            &mut self.diag,
                        )?;
                        if cond(e, v)? != Some(true) {
                            return Ok(true);
                        }
                    }
                }
                Clause::Select(sel) => {
                    for (e, n) in sel {
                        let v = eval(
                            e,
                            &Ctx::Record {
                                rec: &rec,
                                cols: &cols,
                            },
                            &mut self.diag,
                        )?;
                        cols.push((n.clone(), v));
                    }
                }
                Clause::Group { .. } => {}
            }
        }
        let ctx = Ctx::Record {
            rec: &rec,
            cols: &cols,
        };
        match self.group_at.map(|i| &self.q.ast.clauses[i]) {
            Some(Clause::Group { every_secs, keys }) => {
                let bucket = every_secs.map(|p| input.ingested_at.timestamp().div_euclid(p) * p);
                let mut kv = Vec::with_capacity(keys.len());
                let mut id = bucket.map(|b| b.to_string()).unwrap_or_default();
                for (e, _) in keys {
                    let v = eval(e, &ctx, &mut self.diag)?;
                    id.push('\u{1}');
                    id.push_str(&v.key());
                    kv.push(v);
                }
                let gi = match self.group_index.get(&id) {
                    Some(i) => *i,
                    None => {
                        self.groups.push(GroupState {
                            bucket,
                            keys: kv,
                            accs: self.q.aggs.iter().map(Acc::new).collect(),
                        });
                        self.group_index.insert(id, self.groups.len() - 1);
                        self.groups.len() - 1
                    }
                };
                for (i, a) in self.q.aggs.iter().enumerate() {
                    let v = match &a.arg {
                        Some(arg) => Some(eval(arg, &ctx, &mut self.diag)?),
                        None => None,
                    };
                    self.groups[gi].accs[i].add(a, v)?;
                }
                Ok(true)
            }
            _ => {
                let mut row: Vec<Value> = ["eventdate", "hostchain"]
                    .into_iter()
                    .chain(PARSED_COLUMNS)
                    .chain(["message"])
                    .map(|c| ctx.column(c))
                    .collect();
                row.extend(cols.into_iter().map(|(_, v)| v));
                self.rows.push(row);
                if self.opts.max_rows.is_some_and(|m| self.rows.len() >= m) {
                    self.truncated = true;
                    return Ok(false);
                }
                Ok(true)
            }
        }
    }

    /// The result table: for a grouped query the groups (ordered by period, then first
    /// seen) after the clauses that follow `group`.
    pub fn finish(mut self) -> Result<Output, LinqError> {
        let mut columns: Vec<String> = Vec::new();
        let rows = match self.group_at {
            None => {
                columns.extend(
                    ["eventdate", "hostchain"]
                        .into_iter()
                        .chain(PARSED_COLUMNS)
                        .chain(["message"])
                        .map(str::to_string),
                );
                for c in &self.q.ast.clauses {
                    if let Clause::Select(sel) = c {
                        columns.extend(sel.iter().map(|(_, n)| n.clone()));
                    }
                }
                std::mem::take(&mut self.rows)
            }
            Some(gi) => {
                let Clause::Group { every_secs, keys } = &self.q.ast.clauses[gi] else {
                    return Err(LinqError::at(1, "internal: group clause expected"));
                };
                if every_secs.is_some() {
                    columns.push("eventdate".into());
                }
                columns.extend(keys.iter().map(|(_, n)| n.clone()));
                let post = &self.q.ast.clauses[gi + 1..];
                for c in post {
                    if let Clause::Select(sel) = c {
                        columns.extend(sel.iter().map(|(_, n)| n.clone()));
                    }
                }
                let mut groups = std::mem::take(&mut self.groups);
                groups.sort_by_key(|g| g.bucket);
                let mut out = Vec::new();
                'groups: for g in groups {
                    let mut cols: Vec<(String, Value)> = Vec::new();
                    if let Some(b) = g.bucket {
                        let t = Utc.timestamp_opt(b, 0).single().unwrap_or_default();
                        cols.push(("eventdate".into(), Value::Time(t)));
                    }
                    for ((_, n), v) in keys.iter().zip(g.keys) {
                        cols.push((n.clone(), v));
                    }
                    let aggs: Vec<Value> = g.accs.iter().map(Acc::value).collect();
                    for c in post {
                        match c {
                            Clause::Where(conds) => {
                                for e in conds {
                                    let v = eval(
                                        e,
                                        &Ctx::Group {
                                            cols: &cols,
                                            aggs: &aggs,
                                        },
                                        &mut self.diag,
                                    )?;
                                    if cond(e, v)? != Some(true) {
                                        continue 'groups;
                                    }
                                }
                            }
                            Clause::Select(sel) => {
                                for (e, n) in sel {
                                    let v = eval(
                                        e,
                                        &Ctx::Group {
                                            cols: &cols,
                                            aggs: &aggs,
                                        },
                                        &mut self.diag,
                                    )?;
                                    cols.push((n.clone(), v));
                                }
                            }
                            Clause::Group { .. } => {}
                        }
                    }
                    out.push(cols.into_iter().map(|(_, v)| v).collect());
                    if self.opts.max_rows.is_some_and(|m| out.len() >= m) {
                        self.truncated = true;
                        break;
                    }
                }
                out
            }
        };
        let mut warnings = Vec::new();
        if let Some(first) = &self.diag.first_jq_error {
            warnings.push(format!(
                "jqeval failed on {} records and gave null there (first: {first})",
                self.diag.jq_errors
            ));
        }
        Ok(Output {
            columns,
            rows,
            scanned: self.scanned,
            truncated: self.truncated,
            warnings,
        })
    }
}
