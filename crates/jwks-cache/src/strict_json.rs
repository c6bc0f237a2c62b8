//! JSON parsing that refuses duplicate object members.
//!
//! `serde_json::Value` keeps the *last* of two members with the same name, while other JOSE
//! libraries keep the first or refuse: a token whose payload says `"sub":"alice","sub":"admin"`
//! would mean different things to different parsers. RFC 7515 §5.2 and RFC 8725 ask for such
//! input to be refused, so headers and claims go through this parser instead.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why strict parsing failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StrictError {
    /// An object names the same member twice (at any depth).
    Duplicate,
    /// Not JSON, or trailing data.
    Syntax,
}

const DUPLICATE_MARKER: &str = "jwks-cache: duplicate member";

/// Parses `bytes` as one JSON value, refusing duplicate members anywhere and trailing data.
pub(crate) fn parse(bytes: &[u8]) -> Result<Value, StrictError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut de).map_err(classify)?;
    de.end().map_err(|_| StrictError::Syntax)?;
    Ok(value)
}

fn classify(e: serde_json::Error) -> StrictError {
    if e.is_data() && e.to_string().starts_with(DUPLICATE_MARKER) {
        StrictError::Duplicate
    } else {
        StrictError::Syntax
    }
}

struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(DUPLICATE_MARKER));
            }
            let value = map.next_value_seed(StrictValue)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_json_alone_keeps_the_last_duplicate_silently() {
        // The reason this module exists.
        let v: Value = serde_json::from_str(r#"{"sub":"alice","sub":"admin"}"#).unwrap();
        assert_eq!(v["sub"], "admin");
    }

    #[test]
    fn duplicates_are_refused_at_any_depth() {
        assert_eq!(parse(br#"{"sub":"alice","sub":"admin"}"#), Err(StrictError::Duplicate));
        assert_eq!(parse(br#"{"a":{"b":1,"b":2}}"#), Err(StrictError::Duplicate));
        assert_eq!(parse(br#"[{"x":1},{"y":2,"y":3}]"#), Err(StrictError::Duplicate));
        // Escapes are decoded before comparing: "s\u0075b" is "sub".
        assert_eq!(parse(br#"{"sub":1,"s\u0075b":2}"#), Err(StrictError::Duplicate));
    }

    #[test]
    fn ordinary_json_parses_like_serde_json() {
        let text =
            br#"{"iss":"https://i","aud":["a","b"],"exp":1.5e9,"n":-3,"t":true,"z":null,"o":{"k":"v"}}"#;
        let strict = parse(text).unwrap();
        let plain: Value = serde_json::from_slice(text).unwrap();
        assert_eq!(strict, plain);
    }

    #[test]
    fn syntax_errors_and_trailing_data_are_refused() {
        for bad in [&b"{"[..], b"{\"a\":1} x", b"", b"{\"a\":1}{}", b"\xff"] {
            assert_eq!(parse(bad), Err(StrictError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert_eq!(parse(deep.as_bytes()), Err(StrictError::Syntax));
    }
}
