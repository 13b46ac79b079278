//! The scope of a walk over a jq parse tree (`reads.rs`, `words.rs`): variables bound to
//! what the walk knows of their values (`V`), functions with the scope they were defined
//! in, and a function's arguments with the scope of its caller. A linked list, so a
//! binding shadows the ones behind it and a closure keeps its scope by one `Rc` clone.
//! It must not evaluate anything.

use jaq_core::load::parse::{Def, Term};
use std::rc::Rc;

pub(super) enum Bound<'a, 's, V> {
    Var(&'s str, V),
    Fun(&'a Def<&'s str>, Env<'a, 's, V>),
    Arg(&'s str, &'a Term<&'s str>, Env<'a, 's, V>),
}

pub(super) struct Node<'a, 's, V> {
    pub(super) b: Bound<'a, 's, V>,
    pub(super) next: Env<'a, 's, V>,
}

pub(super) type Env<'a, 's, V> = Option<Rc<Node<'a, 's, V>>>;

/// `env` with `b` in front.
pub(super) fn bind<'a, 's, V>(env: &Env<'a, 's, V>, b: Bound<'a, 's, V>) -> Env<'a, 's, V> {
    Some(Rc::new(Node {
        b,
        next: env.clone(),
    }))
}

/// `env` with the definitions `defs` in order, each seeing those before it.
pub(super) fn with_defs<'a, 's, V>(
    mut env: Env<'a, 's, V>,
    defs: impl IntoIterator<Item = &'a Def<&'s str>>,
) -> Env<'a, 's, V> {
    for d in defs {
        let e = env.clone();
        env = bind(&e, Bound::Fun(d, e.clone()));
    }
    env
}

/// The innermost binding of the variable `v`.
pub(super) fn var<'e, 'a, 's, V>(env: &'e Env<'a, 's, V>, v: &str) -> Option<&'e V> {
    let mut cur = env.as_ref();
    while let Some(n) = cur {
        if let Bound::Var(name, x) = &n.b
            && *name == v
        {
            return Some(x);
        }
        cur = n.next.as_ref();
    }
    None
}
