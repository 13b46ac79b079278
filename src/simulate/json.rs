//! A minimal ordered JSON writer for records: fields come out in the order Microsoft
//! writes them (serde_json's map would sort them) and fast enough to render blobs on
//! demand. It only writes; parsing stays with serde_json.

use std::fmt::Write as _;

/// Appends `s` as a JSON string literal.
pub(crate) fn esc_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `s` as a JSON string literal.
pub(crate) fn js(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    esc_into(&mut o, s);
    o
}

/// An object being written; `done` closes it.
pub(crate) struct Obj {
    b: String,
    first: bool,
}

impl Obj {
    pub(crate) fn new() -> Obj {
        let mut b = String::with_capacity(1024);
        b.push('{');
        Obj { b, first: true }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.b.push(',');
        }
        self.first = false;
        esc_into(&mut self.b, k);
        self.b.push(':');
    }

    pub(crate) fn s(&mut self, k: &str, v: &str) -> &mut Obj {
        self.key(k);
        esc_into(&mut self.b, v);
        self
    }

    pub(crate) fn n(&mut self, k: &str, v: i64) -> &mut Obj {
        self.key(k);
        let _ = write!(self.b, "{v}");
        self
    }

    pub(crate) fn b(&mut self, k: &str, v: bool) -> &mut Obj {
        self.key(k);
        self.b.push_str(if v { "true" } else { "false" });
        self
    }

    /// A value that is already JSON text.
    pub(crate) fn raw(&mut self, k: &str, json: &str) -> &mut Obj {
        self.key(k);
        self.b.push_str(json);
        self
    }

    pub(crate) fn done(mut self) -> String {
        self.b.push('}');
        self.b
    }
}

/// `[{"Name":n,"Value":v},…]`
pub(crate) fn nv(pairs: &[(&str, &str)]) -> String {
    let mut o = String::from("[");
    for (i, (n, v)) in pairs.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str("{\"Name\":");
        esc_into(&mut o, n);
        o.push_str(",\"Value\":");
        esc_into(&mut o, v);
        o.push('}');
    }
    o.push(']');
    o
}

/// `["a","b"]`
pub(crate) fn str_array(items: &[&str]) -> String {
    let mut o = String::from("[");
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        esc_into(&mut o, s);
    }
    o.push(']');
    o
}

/// `[a,b]` from JSON texts.
pub(crate) fn raw_array(items: &[String]) -> String {
    let mut o = String::from("[");
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str(s);
    }
    o.push(']');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_ordered_json() {
        let mut o = Obj::new();
        o.s("B", "x\"y\\\n\u{1}")
            .n("A", -3)
            .b("C", true)
            .raw("E", &nv(&[("k", "v")]))
            .raw("F", &str_array(&["a"]));
        let s = o.done();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["B"], "x\"y\\\n\u{1}");
        assert_eq!(v["E"][0]["Value"], "v");
        assert!(s.starts_with("{\"B\":"));
        assert_eq!(raw_array(&["1".into(), "2".into()]), "[1,2]");
    }
}
