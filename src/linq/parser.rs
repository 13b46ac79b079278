//! Turns tokens into the query's tree: the table, then the clauses in order. Every node
//! keeps the column it starts at. Function names, their arity, the table name and where
//! an aggregation may appear are all checked here, so a query either runs whole or fails
//! before reading a record.

use super::LinqError;
use super::lexer::{Tok, Token, lex};
use crate::model::{TABLE_ALL, TABLE_AUTH};

/// A parsed query.
#[derive(Debug, Clone)]
pub struct Ast {
    pub table: String,
    pub clauses: Vec<Clause>,
}

#[derive(Debug, Clone)]
pub enum Clause {
    /// `where a, b` and `having a, b`: every condition must be true.
    Where(Vec<Expr>),
    /// `select e as n, …`
    Select(Vec<(Expr, String)>),
    /// `group [every N<unit>|every -] [by k [as n], …]`
    Group {
        every_secs: Option<i64>,
        keys: Vec<(Expr, String)>,
    },
}

#[derive(Debug, Clone)]
pub struct Expr {
    pub kind: Kind,
    pub col: usize,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Column(String),
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    Call(Func, Vec<Expr>),
    /// `e[k]` on a JSON value
    Index(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    /// `x in {a, b}` / `in(x, a, b)`
    In(Box<Expr>, Vec<Expr>),
    /// `jqcompile(".p")`, compiled once while parsing.
    Jq(JqProgram),
    /// An aggregation after `group`, by its index in the query's aggregation list.
    Agg(usize),
}

/// The scalar functions and operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Has,
    WeakHas,
    Toktains,
    WeakToktains,
    IsNull,
    IsNotNull,
    Str,
    JsonParse,
    JqEval,
    Split,
    Lower,
    Upper,
    Length,
}

/// The aggregation functions (only after `group`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    Count,
    CountDistinct,
    Min,
    Max,
    Avg,
    Sum,
}

#[derive(Debug, Clone)]
pub struct Agg {
    pub func: AggFunc,
    pub arg: Option<Expr>,
    pub col: usize,
}

/// (name, minimum arguments, maximum arguments)
const SCALARS: &[(&str, Func, usize, usize)] = &[
    ("eq", Func::Eq, 2, 2),
    ("has", Func::Has, 2, usize::MAX),
    ("weakhas", Func::WeakHas, 2, usize::MAX),
    ("toktains", Func::Toktains, 2, 4),
    ("weaktoktains", Func::WeakToktains, 2, 4),
    ("isnull", Func::IsNull, 1, 1),
    ("isnotnull", Func::IsNotNull, 1, 1),
    ("str", Func::Str, 1, 1),
    ("jsonparse", Func::JsonParse, 1, 1),
    ("jqeval", Func::JqEval, 2, 2),
    ("split", Func::Split, 2, 3),
    ("lower", Func::Lower, 1, 1),
    ("upper", Func::Upper, 1, 1),
    ("length", Func::Length, 1, 1),
];

const AGGS: &[(&str, AggFunc)] = &[
    ("count", AggFunc::Count),
    ("countdistinct", AggFunc::CountDistinct),
    ("min", AggFunc::Min),
    ("max", AggFunc::Max),
    ("avg", AggFunc::Avg),
    ("sum", AggFunc::Sum),
];

/// Words that start a clause (and therefore end the one before).
const CLAUSES: &[&str] = &["where", "select", "group", "having"];

/// Functions Devo has that this subset does not run: named so the error is not "unknown".
const NOT_IN_SUBSET: &[&str] = &[
    "ifthenelse",
    "eqic",
    "ip4",
    "ispublic",
    "isprivate",
    "peek",
    "subs",
    "replace",
    "substring",
    "stringify",
    "round",
    "toktainsany",
    "matches",
    "re",
    "contains",
    "startswith",
    "endswith",
    "timestamp",
    "now",
    "mm2country",
    "purpose",
    "first",
    "last",
    "collectdistinct",
    "nonnull",
    "median",
    "stddev",
    "hllppcountdistinct",
];

pub fn parse(src: &str) -> Result<(Ast, Vec<Agg>), LinqError> {
    let tokens = lex(src)?;
    let mut p = Parser {
        toks: tokens,
        pos: 0,
        src_len: src.chars().count(),
        aggs: Vec::new(),
        grouped: false,
    };
    let ast = p.query()?;
    Ok((ast, p.aggs))
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    src_len: usize,
    aggs: Vec<Agg>,
    /// True once a `group` clause was read: aggregations are allowed from then on.
    grouped: bool,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    /// Column for "the end of the query" errors.
    fn end_col(&self) -> usize {
        self.src_len + 1
    }

    fn peek_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Ident(s), .. }) if s == w)
    }

    fn expect_word(&mut self, w: &str, what: &str) -> Result<usize, LinqError> {
        match self.next() {
            Some(Token {
                tok: Tok::Ident(s),
                col,
                ..
            }) if s == w => Ok(col),
            Some(t) => Err(LinqError::at(
                t.col,
                format!("expected {what}, found {}", t.tok.describe()),
            )),
            None => Err(LinqError::at(
                self.end_col(),
                format!("expected {what}, found the end of the query"),
            )),
        }
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<Token, LinqError> {
        match self.next() {
            Some(t) if t.tok == tok => Ok(t),
            Some(t) => Err(LinqError::at(
                t.col,
                format!("expected {what}, found {}", t.tok.describe()),
            )),
            None => Err(LinqError::at(
                self.end_col(),
                format!("expected {what}, found the end of the query"),
            )),
        }
    }

    fn query(&mut self) -> Result<Ast, LinqError> {
        self.expect_word("from", "`from <table>` at the start")?;
        let table = match self.next() {
            Some(Token {
                tok: Tok::Ident(t),
                col,
                ..
            }) => check_table(&t, col)?,
            Some(t) => {
                return Err(LinqError::at(
                    t.col,
                    format!("expected a table name, found {}", t.tok.describe()),
                ));
            }
            None => {
                return Err(LinqError::at(
                    self.end_col(),
                    "expected a table name after `from`",
                ));
            }
        };
        let mut clauses = Vec::new();
        while let Some(t) = self.next() {
            let Tok::Ident(word) = &t.tok else {
                return Err(LinqError::at(
                    t.col,
                    format!(
                        "expected where, select, group or having, found {}",
                        t.tok.describe()
                    ),
                ));
            };
            match word.as_str() {
                "where" => clauses.push(Clause::Where(self.conditions()?)),
                "having" => {
                    if !self.grouped {
                        return Err(LinqError::at(
                            t.col,
                            "`having` filters groups: it needs a `group` clause before it",
                        ));
                    }
                    clauses.push(Clause::Where(self.conditions()?))
                }
                "select" => {
                    let mut cols = Vec::new();
                    loop {
                        let e = self.expr()?;
                        self.expect_word("as", "`as <name>` after a selected expression")?;
                        cols.push((e, self.name()?));
                        if !self.comma_then_more() {
                            break;
                        }
                    }
                    clauses.push(Clause::Select(cols));
                }
                "group" => {
                    if self.grouped {
                        return Err(LinqError::at(
                            t.col,
                            "a second `group` clause is outside the subset m365audit runs",
                        ));
                    }
                    let every_secs = if self.peek_word("every") {
                        self.pos += 1;
                        self.every()?
                    } else {
                        None
                    };
                    let mut keys = Vec::new();
                    if self.peek_word("by") {
                        self.pos += 1;
                        loop {
                            let e = self.expr()?;
                            let name = if self.peek_word("as") {
                                self.pos += 1;
                                self.name()?
                            } else {
                                implicit_name(&e)
                            };
                            keys.push((e, name));
                            if !self.comma_then_more() {
                                break;
                            }
                        }
                    } else if every_secs.is_none() {
                        return Err(LinqError::at(
                            t.col,
                            "expected `group by <columns>` or `group every <period> [by …]`",
                        ));
                    }
                    self.grouped = true;
                    clauses.push(Clause::Group { every_secs, keys });
                }
                other => {
                    let hint =
                        if ["order", "limit", "offset", "union", "join", "into"].contains(&other) {
                            format!("`{other}` is outside the subset m365audit runs")
                        } else {
                            format!("expected where, select, group or having, found `{other}`")
                        };
                    return Err(LinqError::at(t.col, hint));
                }
            }
        }
        Ok(Ast { table, clauses })
    }

    /// After an item of a list: consumes a comma and says whether another item follows.
    fn comma_then_more(&mut self) -> bool {
        if matches!(
            self.peek(),
            Some(Token {
                tok: Tok::Comma,
                ..
            })
        ) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn conditions(&mut self) -> Result<Vec<Expr>, LinqError> {
        let mut v = vec![self.expr()?];
        while self.comma_then_more() {
            v.push(self.expr()?);
        }
        Ok(v)
    }

    fn name(&mut self) -> Result<String, LinqError> {
        match self.next() {
            Some(Token {
                tok: Tok::Ident(s),
                col,
                ..
            }) => {
                if s.contains('.') {
                    return Err(LinqError::at(col, "a column name cannot contain `.`"));
                }
                if CLAUSES.contains(&s.as_str())
                    || ["as", "by", "and", "or", "not"].contains(&s.as_str())
                {
                    return Err(LinqError::at(
                        col,
                        format!("`{s}` is a keyword: choose another column name"),
                    ));
                }
                Ok(s)
            }
            Some(t) => Err(LinqError::at(
                t.col,
                format!("expected a column name, found {}", t.tok.describe()),
            )),
            None => Err(LinqError::at(self.end_col(), "expected a column name")),
        }
    }

    /// `every 1h` / `every 30m` / `every -` (no time grouping).
    fn every(&mut self) -> Result<Option<i64>, LinqError> {
        match self.next() {
            Some(Token {
                tok: Tok::Minus, ..
            }) => Ok(None),
            Some(Token {
                tok: Tok::Num(n),
                col,
                end,
            }) => {
                let unit = match self.next() {
                    Some(Token {
                        tok: Tok::Ident(u),
                        col: ucol,
                        ..
                    }) if ucol == end => u,
                    _ => {
                        return Err(LinqError::at(
                            col,
                            "a period needs a unit right after the number: s, m, h or d (e.g. 1h)",
                        ));
                    }
                };
                let mult = match unit.as_str() {
                    "s" => 1,
                    "m" => 60,
                    "h" => 3600,
                    "d" => 86_400,
                    _ => {
                        return Err(LinqError::at(
                            end,
                            format!("unknown period unit `{unit}`: use s, m, h or d"),
                        ));
                    }
                };
                if n.fract() != 0.0 || !(1.0..=1e6).contains(&n) {
                    return Err(LinqError::at(
                        col,
                        "a period is a whole number of at least 1",
                    ));
                }
                Ok(Some(n as i64 * mult))
            }
            Some(t) => Err(LinqError::at(
                t.col,
                format!(
                    "expected a period such as 1h after `every`, found {}",
                    t.tok.describe()
                ),
            )),
            None => Err(LinqError::at(
                self.end_col(),
                "expected a period such as 1h after `every`",
            )),
        }
    }

    fn expr(&mut self) -> Result<Expr, LinqError> {
        self.or()
    }

    fn or(&mut self) -> Result<Expr, LinqError> {
        let mut l = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            let r = self.and()?;
            let col = l.col;
            l = Expr {
                kind: Kind::Or(Box::new(l), Box::new(r)),
                col,
            };
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<Expr, LinqError> {
        let mut l = self.not()?;
        while self.peek_word("and") {
            self.pos += 1;
            let r = self.not()?;
            let col = l.col;
            l = Expr {
                kind: Kind::And(Box::new(l), Box::new(r)),
                col,
            };
        }
        Ok(l)
    }

    fn not(&mut self) -> Result<Expr, LinqError> {
        if self.peek_word("not") {
            let col = self.next().map(|t| t.col).unwrap_or(0);
            let inner = self.not()?;
            return Ok(Expr {
                kind: Kind::Not(Box::new(inner)),
                col,
            });
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, LinqError> {
        let l = self.postfix()?;
        let func = match self.peek().map(|t| &t.tok) {
            Some(Tok::Eq) => Func::Eq,
            Some(Tok::Ne) => Func::Ne,
            Some(Tok::Lt) => Func::Lt,
            Some(Tok::Le) => Func::Le,
            Some(Tok::Gt) => Func::Gt,
            Some(Tok::Ge) => Func::Ge,
            Some(Tok::Arrow) => Func::Has,
            Some(Tok::WeakArrow) => Func::WeakHas,
            Some(Tok::Ident(w)) if w == "in" => {
                self.pos += 1;
                self.expect(Tok::LBrace, "`{` after `in` (x in {\"a\", \"b\"})")?;
                let mut set = vec![self.postfix()?];
                while self.comma_then_more() {
                    set.push(self.postfix()?);
                }
                self.expect(Tok::RBrace, "`}` closing the set of `in`")?;
                let col = l.col;
                return Ok(Expr {
                    kind: Kind::In(Box::new(l), set),
                    col,
                });
            }
            _ => return Ok(l),
        };
        self.pos += 1;
        let r = self.postfix()?;
        let col = l.col;
        Ok(Expr {
            kind: Kind::Call(func, vec![l, r]),
            col,
        })
    }

    fn postfix(&mut self) -> Result<Expr, LinqError> {
        let mut e = self.primary()?;
        while matches!(
            self.peek(),
            Some(Token {
                tok: Tok::LBracket,
                ..
            })
        ) {
            self.pos += 1;
            let k = self.expr()?;
            self.expect(Tok::RBracket, "`]`")?;
            let col = e.col;
            e = Expr {
                kind: Kind::Index(Box::new(e), Box::new(k)),
                col,
            };
        }
        Ok(e)
    }

    fn primary(&mut self) -> Result<Expr, LinqError> {
        let Some(t) = self.next() else {
            return Err(LinqError::at(
                self.end_col(),
                "expected a value, found the end of the query",
            ));
        };
        let col = t.col;
        let kind = match t.tok {
            Tok::Str(s) => Kind::Str(s),
            Tok::Num(n) => Kind::Num(n),
            Tok::LParen => {
                let e = self.expr()?;
                self.expect(Tok::RParen, "`)`")?;
                return Ok(e);
            }
            Tok::Ident(w) => {
                if matches!(
                    self.peek(),
                    Some(Token {
                        tok: Tok::LParen,
                        ..
                    })
                ) {
                    self.pos += 1;
                    return self.call(w, col);
                }
                match w.as_str() {
                    "true" => Kind::Bool(true),
                    "false" => Kind::Bool(false),
                    "null" => Kind::Null,
                    _ if w.contains('.') => {
                        return Err(LinqError::at(
                            col,
                            format!("unknown column `{w}`: column names have no `.`"),
                        ));
                    }
                    _ if CLAUSES.contains(&w.as_str())
                        || ["as", "by", "and", "or", "not", "in", "every"]
                            .contains(&w.as_str()) =>
                    {
                        return Err(LinqError::at(
                            col,
                            format!("expected a value, found the keyword `{w}`"),
                        ));
                    }
                    _ => Kind::Column(w),
                }
            }
            other => {
                return Err(LinqError::at(
                    col,
                    format!("expected a value, found {}", other.describe()),
                ));
            }
        };
        Ok(Expr { kind, col })
    }

    /// `name(` has been read.
    fn call(&mut self, name: String, col: usize) -> Result<Expr, LinqError> {
        let mut args = Vec::new();
        if matches!(
            self.peek(),
            Some(Token {
                tok: Tok::RParen,
                ..
            })
        ) {
            self.pos += 1;
        } else {
            loop {
                args.push(self.expr()?);
                match self.next() {
                    Some(Token {
                        tok: Tok::Comma, ..
                    }) => continue,
                    Some(Token {
                        tok: Tok::RParen, ..
                    }) => break,
                    Some(t) => {
                        return Err(LinqError::at(
                            t.col,
                            format!(
                                "expected `,` or `)` in the arguments of {name}(), found {}",
                                t.tok.describe()
                            ),
                        ));
                    }
                    None => {
                        return Err(LinqError::at(
                            col,
                            format!("{name}( is never closed (missing `)`)"),
                        ));
                    }
                }
            }
        }
        if name == "jqcompile" {
            return jqcompile(args, col);
        }
        if name == "in" {
            if args.len() < 2 {
                return Err(LinqError::at(
                    col,
                    "in() needs a value and at least one candidate",
                ));
            }
            let x = args.remove(0);
            return Ok(Expr {
                kind: Kind::In(Box::new(x), args),
                col,
            });
        }
        if let Some((_, f)) = AGGS.iter().find(|(n, _)| *n == name) {
            if !self.grouped {
                return Err(LinqError::at(
                    col,
                    format!(
                        "{name}() aggregates a group: it needs a `group by` (or `group every`) clause before it"
                    ),
                ));
            }
            let arg = match (f, args.len()) {
                (AggFunc::Count, 0) => None,
                (_, 1) => args.pop(),
                (AggFunc::Count, _) => {
                    return Err(LinqError::at(
                        col,
                        "count() takes no argument or one column",
                    ));
                }
                _ => {
                    return Err(LinqError::at(
                        col,
                        format!("{name}() takes exactly one argument"),
                    ));
                }
            };
            if let Some(a) = &arg
                && contains_agg(a)
            {
                return Err(LinqError::at(
                    a.col,
                    "an aggregation cannot contain another",
                ));
            }
            self.aggs.push(Agg { func: *f, arg, col });
            return Ok(Expr {
                kind: Kind::Agg(self.aggs.len() - 1),
                col,
            });
        }
        let Some((_, f, min, max)) = SCALARS.iter().find(|(n, ..)| *n == name) else {
            if NOT_IN_SUBSET.contains(&name.as_str()) {
                return Err(LinqError::at(
                    col,
                    format!("{name}() is a Devo function outside the subset m365audit runs"),
                ));
            }
            let near = SCALARS
                .iter()
                .map(|s| s.0)
                .chain(AGGS.iter().map(|a| a.0))
                .chain(["jqcompile", "in"])
                .find(|k| k.eq_ignore_ascii_case(&name));
            let hint = near
                .map(|k| format!(" (did you mean {k}?)"))
                .unwrap_or_default();
            return Err(LinqError::at(
                col,
                format!("unknown function {name}(){hint}"),
            ));
        };
        if args.len() < *min || args.len() > *max {
            let want = match (*min, *max) {
                (a, b) if a == b => format!("{a}"),
                (a, usize::MAX) => format!("at least {a}"),
                (a, b) => format!("{a} to {b}"),
            };
            return Err(LinqError::at(
                col,
                format!("{name}() takes {want} arguments, got {}", args.len()),
            ));
        }
        if *f == Func::JqEval && !matches!(args[0].kind, Kind::Jq(_)) {
            return Err(LinqError::at(
                args[0].col,
                "jqeval's first argument must be jqcompile(\"…\")",
            ));
        }
        if *f == Func::Split
            && let Some(n) = args.get(2)
            && !matches!(n.kind, Kind::Num(v) if v.fract() == 0.0 && v >= 0.0)
        {
            return Err(LinqError::at(
                n.col,
                "split's index must be a whole number ≥ 0 (0 is the first piece)",
            ));
        }
        Ok(Expr {
            kind: Kind::Call(*f, args),
            col,
        })
    }
}

fn jqcompile(args: Vec<Expr>, col: usize) -> Result<Expr, LinqError> {
    let [
        Expr {
            kind: Kind::Str(code),
            col: scol,
        },
    ] = args.as_slice()
    else {
        return Err(LinqError::at(
            col,
            "jqcompile() takes one string literal: the jq program",
        ));
    };
    let q = crate::detect::Query::compile(code, crate::detect::Vars::default()).map_err(|e| {
        LinqError::at(
            *scol,
            format!("jqcompile: the jq program does not compile: {e}"),
        )
    })?;
    Ok(Expr {
        kind: Kind::Jq(JqProgram {
            code: code.clone(),
            query: std::sync::Arc::new(q),
        }),
        col,
    })
}

/// A compiled `jqcompile("…")` program (run by jaq, as the detections are).
#[derive(Clone)]
pub struct JqProgram {
    pub code: String,
    pub query: std::sync::Arc<crate::detect::Query>,
}

impl std::fmt::Debug for JqProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "jqcompile({:?})", self.code)
    }
}

fn contains_agg(e: &Expr) -> bool {
    match &e.kind {
        Kind::Agg(_) => true,
        Kind::Call(_, a) => a.iter().any(contains_agg),
        Kind::In(x, a) => contains_agg(x) || a.iter().any(contains_agg),
        Kind::Index(a, b) | Kind::And(a, b) | Kind::Or(a, b) => contains_agg(a) || contains_agg(b),
        Kind::Not(a) => contains_agg(a),
        _ => false,
    }
}

/// The name of an unnamed group key: a column keeps its name, `jsonparse(message)["K"]`
/// is called `K`, anything else needs `as`.
fn implicit_name(e: &Expr) -> String {
    match &e.kind {
        Kind::Column(c) => c.clone(),
        Kind::Index(_, k) => match &k.kind {
            Kind::Str(s) => s.clone(),
            _ => format!("key{}", e.col),
        },
        Kind::Call(Func::Str, a) if a.len() == 1 => implicit_name(&a[0]),
        _ => format!("key{}", e.col),
    }
}

/// Accepts the table namespace of docs/architecture.md (Tables): the union table, `auth.all`,
/// and one table per Workload (lower case).
fn check_table(t: &str, col: usize) -> Result<String, LinqError> {
    if t == TABLE_ALL || t == TABLE_AUTH {
        return Ok(t.to_string());
    }
    if let Some(w) = t.strip_prefix(TABLE_ALL).and_then(|r| r.strip_prefix('.')) {
        if !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            return Ok(t.to_string());
        }
        if !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(LinqError::at(
                col,
                format!(
                    "unknown table {t}: table names are lower case ({TABLE_ALL}.{})",
                    w.to_ascii_lowercase()
                ),
            ));
        }
    }
    Err(LinqError::at(
        col,
        format!(
            "unknown table {t}: use {TABLE_ALL}, {TABLE_ALL}.<workload> (e.g. .exchange, .onedrive) or {TABLE_AUTH}"
        ),
    ))
}
