//! A minimal ordered JSON writer for records: fields come out in the order Microsoft
//! writes them (serde_json's map would sort them) and fast enough to render blobs on
//! demand. It only writes; parsing stays with serde_json.

use std::fmt::Write as _;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the 8 bytes in `x` is < 0x20, `"` or `\` (exact, SWAR).
fn needs_escape(x: u64) -> bool {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let less_than_space = x.wrapping_sub(ONES * 0x20) & !x & HIGHS;
    (less_than_space | zero(x ^ (ONES * u64::from(b'"'))) | zero(x ^ (ONES * u64::from(b'\\'))))
        != 0
}

/// Appends `s` as a JSON string literal: runs that need no escaping are copied at once,
/// eight bytes are checked at a time.
pub(crate) fn esc_into(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let b = s.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        if i + 8 <= b.len() {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            if !needs_escape(u64::from_le_bytes(w)) {
                i += 8;
                continue;
            }
        }
        let c = b[i];
        let esc = match c {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{:04x}", c);
        } else {
            out.push_str(esc);
        }
        i += 1;
        start = i;
    }
    out.push_str(&s[start..]);
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
        let mut b = String::with_capacity(2048);
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

    /// A fresh random GUID, written without an intermediate String.
    pub(crate) fn g(&mut self, k: &str, r: &mut super::rng::Rng) -> &mut Obj {
        self.key(k);
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let u = uuid::Uuid::from_u128(super::rng::v4(r.u128()));
        self.b.push('"');
        self.b.push_str(u.hyphenated().encode_lower(&mut buf));
        self.b.push('"');
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
    fn escapes_exactly_like_serde_json() {
        for s in [
            "",
            "plain ascii text that is long enough for words",
            "a\"b",
            "0123456\\89abcdef\"",
            "tab\there\r\nnew\u{1}\u{1f}x",
            "ünïcödé — “quotes” and 🚀 rocket",
            "\"\"\"\"\"\"\"\"\"",
            "x\u{7f}y",
        ] {
            assert_eq!(js(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

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
