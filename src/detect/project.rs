//! Parsing a candidate record into a jaq value that holds only some of its top-level
//! fields (the union of the `# fields` of the detections that will run on it): the other
//! fields are skipped by the JSON parser without building values for them, and a Name/Value
//! array declared with entry names (`ExtendedProperties[RequestType]`) keeps only the
//! object elements whose `Name` is one of them. It must not decide which fields a
//! detection reads — the query's header declares them and the test suite proves the
//! declaration (same output as the whole record, in jaq and in real jq). A text its caller
//! knows to be JSON (a stored record) may be scanned without checking the values it skips
//! ([`scan_json`]); any other text is parsed in full.

use super::meta::Field;
use jaq_json::Val;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

fn find<'f>(fields: &'f [Field], key: &str) -> Option<&'f Field> {
    fields.iter().find(|f| f.name == key)
}

/// True when `v` is an object whose (last) `Name` is a string among `entries`.
fn val_entry_kept(v: &Val, entries: &[String]) -> bool {
    let Val::Obj(o) = v else { return false };
    match o.get(&Val::utf8_str(b"Name".to_vec())) {
        Some(Val::TStr(n)) => entries.iter().any(|e| e.as_bytes() == n.as_ref()),
        _ => false,
    }
}

/// A declared field's value as the detection sees it: with `entries`, an array keeps only
/// the elements [`val_entry_kept`]; anything else stays whole.
fn select_val(v: Val, field: &Field) -> Val {
    match (&field.entries, v) {
        (Some(entries), Val::Arr(a)) => {
            let kept: Vec<Val> = a
                .iter()
                .filter(|e| val_entry_kept(e, entries))
                .cloned()
                .collect();
            Val::Arr(kept.into())
        }
        (_, v) => v,
    }
}

struct Projected<'f> {
    fields: &'f [Field],
}

impl<'de> Visitor<'de> for Projected<'_> {
    type Value = Val;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Val, A::Error> {
        let mut out = jaq_json::Map::default();
        while let Some(Key(k)) = m.next_key::<Key>()? {
            if let Some(field) = find(self.fields, &k) {
                let v: Val = m.next_value()?;
                // as the whole-record parse does: a repeated key keeps its first place and
                // its last value
                out.insert(
                    Val::utf8_str(k.into_owned().into_bytes()),
                    select_val(v, field),
                );
            } else {
                m.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Val::obj(out))
    }
}

/// The record `raw` (a JSON object) with only the top-level `fields`, in their order in the
/// record. Anything but an object is parsed whole (detections see it as it is).
pub(crate) fn parse(raw: &[u8], fields: &[Field]) -> Result<Val, String> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let projected = de
        .deserialize_map(Projected { fields })
        .and_then(|v| de.end().map(|()| v));
    match projected {
        Ok(v) => Ok(v),
        // not an object, or not JSON: the whole-record parse decides (and words the error)
        Err(_) => serde_json::from_slice::<Val>(raw).map_err(|e| e.to_string()),
    }
}

/// [`parse`] for a record already parsed as `serde_json`.
pub(crate) fn from_value(raw: &serde_json::Value, fields: &[Field]) -> Result<Val, String> {
    match raw.as_object() {
        Some(o) => {
            let mut out = jaq_json::Map::default();
            for (k, v) in o {
                if let Some(field) = find(fields, k) {
                    let v = Val::deserialize(v).map_err(|e| e.to_string())?;
                    out.insert(Val::utf8_str(k.clone().into_bytes()), select_val(v, field));
                }
            }
            Ok(Val::obj(out))
        }
        None => Val::deserialize(raw).map_err(|e| e.to_string()),
    }
}

/// A declared field's raw text in a scanned record: whole, or the kept entries of a
/// Name/Value array (each with its `Name`).
#[derive(Debug)]
pub(crate) enum Piece<'de> {
    Whole(&'de RawValue),
    Entries(Vec<(Cow<'de, str>, &'de RawValue)>),
}

/// The raw text of each of a record's declared fields, in record order (a repeated key
/// appears each time): what [`parse`] would build its value from, left unparsed so that a
/// memo can key on it. None when the record is not a JSON object or a top-level key has an
/// escape (the caller then parses as usual).
pub(crate) type Pairs<'de> = Vec<(&'de str, Piece<'de>)>;

/// What the scan of a Name/Value array needs of a JSON value: a string (borrowed when it
/// has no escapes), or an object with its `Name` when that is a string (the last `Name`, as
/// jq reads a repeated key); anything else is skipped.
enum Peek<'de> {
    Str(Cow<'de, str>),
    Entry(Option<Cow<'de, str>>),
    Other,
}

impl<'de> Deserialize<'de> for Peek<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Peek<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Peek<'de>, E> {
                Ok(Peek::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Peek<'de>, E> {
                Ok(Peek::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Peek<'de>, E> {
                Ok(Peek::Str(Cow::Owned(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Peek<'de>, A::Error> {
                let mut name = None;
                while let Some(Key(k)) = m.next_key::<Key>()? {
                    if k == "Name" {
                        name = match m.next_value::<Peek>()? {
                            Peek::Str(s) => Some(s),
                            _ => None,
                        };
                    } else {
                        m.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Peek::Entry(name))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> Result<Peek<'de>, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Peek::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Peek<'de>, E> {
                Ok(Peek::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Peek<'de>, E> {
                Ok(Peek::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Peek<'de>, E> {
                Ok(Peek::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Peek<'de>, E> {
                Ok(Peek::Other)
            }
            fn visit_unit<E>(self) -> Result<Peek<'de>, E> {
                Ok(Peek::Other)
            }
        }
        d.deserialize_any(V)
    }
}

struct Scanned<'f> {
    fields: &'f [Field],
}

impl<'de> Visitor<'de> for Scanned<'_> {
    type Value = Pairs<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Pairs<'de>, A::Error> {
        let mut out = Vec::with_capacity(self.fields.len());
        while let Some(Key(k)) = m.next_key::<Key>()? {
            let Cow::Borrowed(k) = k else {
                return Err(serde::de::Error::custom("escaped key"));
            };
            let Some(field) = find(self.fields, k) else {
                m.next_value::<IgnoredAny>()?;
                continue;
            };
            let raw: &RawValue = m.next_value()?;
            out.push((k, piece(raw, field).map_err(serde::de::Error::custom)?));
        }
        Ok(out)
    }
}

/// A declared field's [`Piece`]: with `entries`, an array keeps the elements whose `Name`
/// is listed; anything else is whole.
fn piece<'de>(raw: &'de RawValue, field: &Field) -> Result<Piece<'de>, serde_json::Error> {
    match &field.entries {
        Some(entries) if raw.get().starts_with('[') => {
            let elements: Vec<&RawValue> = serde_json::from_str(raw.get())?;
            let mut kept = Vec::new();
            for e in elements {
                if let Peek::Entry(Some(name)) = serde_json::from_str(e.get())?
                    && entries.iter().any(|x| *x == name)
                {
                    kept.push((name, e));
                }
            }
            Ok(Piece::Entries(kept))
        }
        _ => Ok(Piece::Whole(raw)),
    }
}

/// See [`Pairs`].
pub(crate) fn scan<'de>(raw: &'de [u8], fields: &[Field]) -> Option<Pairs<'de>> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    de.deserialize_map(Scanned { fields })
        .and_then(|v| de.end().map(|()| v))
        .ok()
}

/// [`scan`] for a record known to be JSON (the store keeps only records it parsed when they
/// arrived): the values of undeclared fields are stepped over by their quotes and brackets
/// instead of being parsed, which is most of a record's text. Declared values are parsed as
/// in [`scan`], so the pairs are the same; for text that is not JSON the two may differ
/// (this one does not check what it steps over), which is why only known JSON comes here.
pub(crate) fn scan_json<'de>(raw: &'de [u8], fields: &[Field]) -> Option<Pairs<'de>> {
    let text = std::str::from_utf8(raw).ok()?;
    let b = raw;
    let mut out = Vec::with_capacity(fields.len());
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return (skip_ws(b, i + 1) == b.len()).then_some(out);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let end = i + 1 + memchr::memchr2(b'"', b'\\', &b[i + 1..])?;
        if b[end] != b'"' {
            return None; // an escaped key: left to the parser, as in `scan`
        }
        let key = &text[i + 1..end];
        i = skip_ws(b, end + 1);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_ws(b, i + 1);
        let stop = skip_value(b, start)?;
        if let Some(field) = find(fields, key) {
            let raw: &RawValue = serde_json::from_str(&text[start..stop]).ok()?;
            out.push((key, piece(raw, field).ok()?));
        }
        i = skip_ws(b, stop);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => break,
            _ => return None,
        }
    }
    (skip_ws(b, i + 1) == b.len()).then_some(out)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = b.get(i) {
        i += 1;
    }
    i
}

/// The end of the string whose opening quote is at `i`.
fn skip_str(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        i += memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        if b[i] == b'"' {
            return Some(i + 1);
        }
        i += 2; // a backslash and the character it escapes
    }
}

/// The end of the JSON value that starts at `i` (None when the text ends first).
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_str(b, i),
        b'{' | b'[' => {
            let (mut depth, mut i) = (0usize, i);
            loop {
                match *b.get(i)? {
                    b'"' => {
                        i = skip_str(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let n = b[i..]
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'))
                .unwrap_or(b.len() - i);
            (n > 0).then_some(i + n)
        }
    }
}

/// The projected record of [`parse`] from scanned [`Pairs`] (the same value: a repeated key
/// keeps its first place and its last value).
pub(crate) fn build(pairs: &Pairs) -> Result<Val, String> {
    let parse = |raw: &RawValue| serde_json::from_str::<Val>(raw.get()).map_err(|e| e.to_string());
    let mut out = jaq_json::Map::default();
    for (k, piece) in pairs {
        let v = match piece {
            Piece::Whole(raw) => parse(raw)?,
            Piece::Entries(kept) => {
                let vals: Vec<Val> = kept
                    .iter()
                    .map(|(_, raw)| parse(raw))
                    .collect::<Result<_, _>>()?;
                Val::Arr(vals.into())
            }
        };
        out.insert(Val::utf8_str(k.as_bytes().to_vec()), v);
    }
    Ok(Val::obj(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(names: &[&str]) -> Vec<Field> {
        names.iter().map(|n| Field::whole(n)).collect()
    }

    fn text(p: &Piece) -> String {
        match p {
            Piece::Whole(r) => r.get().to_string(),
            Piece::Entries(kept) => {
                let e: Vec<String> = kept
                    .iter()
                    .map(|(n, r)| format!("{n}={}", r.get()))
                    .collect();
                format!("entries {}", e.join(" "))
            }
        }
    }

    #[test]
    fn keeps_only_the_fields_in_record_order_and_falls_back_for_non_objects() {
        let raw =
            br#"{"b": [1, {"x": 2}], "a\u0041": "esc", "c": {"d": null}, "a": 1.5, "b": "last"}"#;
        let v = parse(raw, &whole(&["a", "aA", "b"])).unwrap();
        assert_eq!(v.to_string(), r#"{"b":"last","aA":"esc","a":1.5}"#);
        let j: serde_json::Value = serde_json::from_slice(raw).unwrap();
        // serde_json's map keeps the last of a repeated key too
        assert_eq!(
            from_value(&j, &whole(&["a", "aA"])).unwrap().to_string(),
            r#"{"a":1.5,"aA":"esc"}"#
        );
        let a = whole(&["a"]);
        assert_eq!(parse(b"[1, 2]", &a).unwrap().to_string(), "[1,2]");
        assert!(parse(br#"{"a": 1,"#, &a).is_err());
        assert!(parse(br#"{"a": 1} x"#, &a).is_err());
    }

    #[test]
    fn scanned_pairs_build_the_same_value_as_parse() {
        let raw =
            br#"{"b": [1, {"x": 2}], "c": {"d": null}, "a": 1.5, "b": "last", "e": "\u00e9"}"#;
        let fields = whole(&["a", "b", "e"]);
        let pairs = scan(raw, &fields).unwrap();
        let texts: Vec<(&str, String)> = pairs.iter().map(|(k, v)| (*k, text(v))).collect();
        assert_eq!(
            texts,
            [
                ("b", r#"[1, {"x": 2}]"#.to_string()),
                ("a", "1.5".into()),
                ("b", r#""last""#.into()),
                ("e", r#""\u00e9""#.into())
            ]
        );
        assert_eq!(build(&pairs).unwrap(), parse(raw, &fields).unwrap());
        // an escaped key, a non-object and broken JSON are left to `parse`
        assert!(scan(br#"{"\u0061": 1}"#, &fields).is_none());
        assert!(scan(b"[1]", &fields).is_none());
        assert!(scan(br#"{"a": 1,"#, &fields).is_none());
    }

    /// `scan_json` finds the same pairs as `scan` on JSON: every test record of every
    /// detection (and the line that wraps it), with its own keys declared (whole, some, or as entry lists), and records
    /// whose strings hold brackets, quotes and escapes.
    #[test]
    fn scan_json_finds_what_scan_finds_on_json() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("queries/tests");
        let mut records: Vec<String> = vec![
            "{}".into(),
            " { } ".into(),
            r#"{"a":"}\"]{[","b":{"c":["\\",{"d":"\u007d"}]},"e":-1.5e3,"f":true,"g":null,"h":[]}"#
                .into(),
            "{\n\t\"a\" :\r[ 1 , {\"Name\" : \"A\" } ] ,\"b\":false }\n".into(),
            r#"{"P":[{"Name":"A","Value":"x\"}"},{"Name":"B"},7,"A"],"Q":{"Name":"A"}}"#.into(),
            // a repeated key is found each time, as the parsing scan finds it
            r#"{"a":1,"b":[2],"a":"\\","b":{"a":3}}"#.into(),
        ];
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "jsonl") {
                let text = std::fs::read_to_string(&path).unwrap();
                // each line wraps one record: test both, the record as written
                for line in text.lines().filter(|l| l.starts_with('{')) {
                    if let Some(p) = scan(line.as_bytes(), &whole(&["record"]))
                        && let Some((_, Piece::Whole(r))) = p.first()
                    {
                        records.push(r.get().to_string());
                    }
                    records.push(line.to_string());
                }
            }
        }
        assert!(records.len() > 300, "{} records", records.len());
        let show = |p: Option<Pairs>| {
            p.map(|p| {
                p.iter()
                    .map(|(k, v)| format!("{k}: {}", text(v)))
                    .collect::<Vec<_>>()
            })
        };
        for raw in &records {
            let keys: Vec<String> = match serde_json::from_str::<serde_json::Value>(raw) {
                Ok(serde_json::Value::Object(o)) => o.keys().cloned().collect(),
                _ => continue,
            };
            let mut sets = vec![
                keys.iter().map(|k| Field::whole(k)).collect::<Vec<_>>(),
                keys.iter().step_by(3).map(|k| Field::whole(k)).collect(),
                vec![Field::whole("absent")],
            ];
            sets.push(
                keys.iter()
                    .map(|k| Field {
                        name: k.clone(),
                        entries: Some(vec!["A".into(), "RequestType".into(), "UserAgent".into()]),
                    })
                    .collect(),
            );
            for fields in &sets {
                let fast = show(scan_json(raw.as_bytes(), fields));
                assert!(fast.is_some(), "{raw}");
                assert_eq!(fast, show(scan(raw.as_bytes(), fields)), "{raw}");
            }
        }
        // what `scan` leaves to the parser, this one does too
        let a = whole(&["a"]);
        for raw in [
            &br#"{"\u0061": 1}"#[..],
            b"[1]",
            br#"{"a": 1,"#,
            br#"{"a": 1} x"#,
            b"",
            b"{",
        ] {
            assert!(
                scan_json(raw, &a).is_none(),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn entries_keep_the_named_objects_of_an_array_and_anything_else_whole() {
        let f = [Field {
            name: "P".into(),
            entries: Some(vec!["A".into(), "B".into()]),
        }];
        let raw = br#"{"P": [{"Name": "A", "Value": 1}, {"Name": "C", "Value": 2}, 3, "A", {"Value": 4},
            {"Name": 5}, {"Name": "x", "Name": "B", "Value": 6}, {"Name": "B", "Name": 7}, {"N\u0061me": "A", "Value": 8}]}"#;
        let pairs = scan(raw, &f).unwrap();
        assert_eq!(
            text(&pairs[0].1),
            r#"entries A={"Name": "A", "Value": 1} B={"Name": "x", "Name": "B", "Value": 6} A={"N\u0061me": "A", "Value": 8}"#
        );
        let expected =
            r#"{"P":[{"Name":"A","Value":1},{"Name":"B","Value":6},{"Name":"A","Value":8}]}"#;
        assert_eq!(build(&pairs).unwrap().to_string(), expected);
        assert_eq!(parse(raw, &f).unwrap().to_string(), expected);
        let j: serde_json::Value = serde_json::from_slice(raw).unwrap();
        assert_eq!(from_value(&j, &f).unwrap().to_string(), expected);
        // not an array: whole
        for raw in [
            &br#"{"P": {"Name": "C"}}"#[..],
            br#"{"P": "text"}"#,
            br#"{"P": null}"#,
        ] {
            let pairs = scan(raw, &f).unwrap();
            assert!(matches!(pairs[0].1, Piece::Whole(_)));
            assert_eq!(build(&pairs).unwrap(), parse(raw, &f).unwrap());
        }
    }

    /// Property: on any JSON object (generated, printed compact or pretty, and the seed
    /// corpus `tests/corpus/scan_json`), `scan_json` with every key declared finds exactly
    /// the top-level values `serde_json` finds, in order, and agrees with `scan`; it
    /// declines only objects with an escaped top-level key. `PROPTEST_CASES` sets the
    /// number of cases (see `tests/corpus/README.md`).
    mod proptest_scan_json {
        use super::*;
        use proptest::prelude::*;
        use serde_json::Value;

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(Value::from),
                any::<String>().prop_map(Value::String),
                "[\\\\\"{}\\[\\],: a-zA]{0,10}".prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 40, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::btree_map("[a-cN\"\\\\ ]{0,4}", inner, 0..6)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn object() -> impl Strategy<Value = String> {
            (
                prop::collection::btree_map("[a-eN\"\\\\é]{0,5}", json(), 0..8),
                any::<bool>(),
            )
                .prop_map(|(m, pretty)| {
                    let v = Value::Object(m.into_iter().collect());
                    if pretty {
                        serde_json::to_string_pretty(&v).unwrap()
                    } else {
                        v.to_string()
                    }
                })
        }

        fn agrees(raw: &str) -> Result<(), TestCaseError> {
            let Ok(Value::Object(o)) = serde_json::from_str::<Value>(raw) else {
                return Ok(());
            };
            let fields: Vec<Field> = o.keys().map(|k| Field::whole(k)).collect();
            let escaped_key = o
                .keys()
                .any(|k| k.contains(['"', '\\']) || k.chars().any(char::is_control));
            let Some(pairs) = scan_json(raw.as_bytes(), &fields) else {
                prop_assert!(escaped_key, "declined {raw}");
                return Ok(());
            };
            let found: Vec<(String, Value)> = pairs
                .iter()
                .map(|(k, p)| match p {
                    Piece::Whole(r) => (k.to_string(), serde_json::from_str(r.get()).unwrap()),
                    Piece::Entries(_) => unreachable!("declared whole"),
                })
                .collect();
            // serde_json keeps the last of a repeated key; the scan finds each
            let mut last = serde_json::Map::new();
            for (k, v) in &found {
                last.insert(k.clone(), v.clone());
            }
            prop_assert_eq!(&Value::Object(last), &Value::Object(o.clone()), "{}", raw);
            let show = |p: Option<Pairs>| {
                p.map(|p| {
                    p.iter()
                        .map(|(k, v)| format!("{k}: {}", text(v)))
                        .collect::<Vec<_>>()
                })
            };
            prop_assert_eq!(
                show(Some(pairs)),
                show(scan(raw.as_bytes(), &fields)),
                "{}",
                raw
            );
            Ok(())
        }

        #[test]
        fn seed_corpus() {
            let dir =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/scan_json");
            let mut n = 0;
            for e in std::fs::read_dir(dir).unwrap() {
                let raw = std::fs::read_to_string(e.unwrap().path()).unwrap();
                agrees(&raw).unwrap();
                n += 1;
            }
            assert!(n >= 4);
        }

        proptest! {
            #[test]
            fn scan_json_finds_what_serde_json_finds(raw in object()) {
                agrees(&raw)?;
            }
        }
    }
}
