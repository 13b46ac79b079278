//! Parsing a candidate record into a jaq value that holds only some of its top-level
//! fields (the union of the `# fields` of the detections that will run on it): the other
//! fields are skipped by the JSON parser without building values for them. It must not
//! decide which fields a detection reads — the query's header declares them and the test
//! suite proves the declaration (same output as the whole record, in jaq and in real jq).

use jaq_json::Val;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
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

struct Projected<'f> {
    fields: &'f [&'f str],
}

impl<'de> Visitor<'de> for Projected<'_> {
    type Value = Val;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Val, A::Error> {
        let mut out = jaq_json::Map::default();
        while let Some(Key(k)) = m.next_key::<Key>()? {
            if self.fields.contains(&k.as_ref()) {
                let v: Val = m.next_value()?;
                // as the whole-record parse does: a repeated key keeps its first place and
                // its last value
                out.insert(Val::utf8_str(k.into_owned().into_bytes()), v);
            } else {
                m.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Val::obj(out))
    }
}

/// The record `raw` (a JSON object) with only the top-level `fields`, in their order in the
/// record. Anything but an object is parsed whole (detections see it as it is).
pub(crate) fn parse(raw: &[u8], fields: &[&str]) -> Result<Val, String> {
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
pub(crate) fn from_value(raw: &serde_json::Value, fields: &[&str]) -> Result<Val, String> {
    match raw.as_object() {
        Some(o) => {
            let mut out = jaq_json::Map::default();
            for (k, v) in o {
                if fields.contains(&k.as_str()) {
                    let v = Val::deserialize(v).map_err(|e| e.to_string())?;
                    out.insert(Val::utf8_str(k.clone().into_bytes()), v);
                }
            }
            Ok(Val::obj(out))
        }
        None => Val::deserialize(raw).map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_fields_in_record_order_and_falls_back_for_non_objects() {
        let raw =
            br#"{"b": [1, {"x": 2}], "a\u0041": "esc", "c": {"d": null}, "a": 1.5, "b": "last"}"#;
        let v = parse(raw, &["a", "aA", "b"]).unwrap();
        assert_eq!(v.to_string(), r#"{"b":"last","aA":"esc","a":1.5}"#);
        let j: serde_json::Value = serde_json::from_slice(raw).unwrap();
        // serde_json's map keeps the last of a repeated key too
        assert_eq!(
            from_value(&j, &["a", "aA"]).unwrap().to_string(),
            r#"{"a":1.5,"aA":"esc"}"#
        );
        assert_eq!(parse(b"[1, 2]", &["a"]).unwrap().to_string(), "[1,2]");
        assert!(parse(br#"{"a": 1,"#, &["a"]).is_err());
        assert!(parse(br#"{"a": 1} x"#, &["a"]).is_err());
    }
}
