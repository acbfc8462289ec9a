//! What the snapshots keep of a response: its shape, with run-specific values redacted and keys
//! in a stable order.

use super::*;

/// A value's contract form instead of the value: run-specific data never enters a snapshot,
/// while its encoding (quoted UInt64, zone-less timestamps, nulls) does.
pub(super) fn shape(value: Content, _: insta::internals::ContentPath<'_>) -> Content {
    if value.is_nil() || value.as_bool().is_some() {
        return value;
    }
    let Some(s) = value.as_str() else {
        return Content::from("[number]");
    };
    let label = if zoneless(s, b' ') {
        "[datetime64(3) \"YYYY-MM-DD HH:MM:SS.mmm\"]".to_string()
    } else if zoneless(s, b'T') {
        "[range \"YYYY-MM-DDTHH:MM:SS.mmm\"]".to_string()
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        "[UInt64 as string]".to_string()
    } else if s.starts_with("ZZT2E-") {
        "[synthetic symbol]".to_string()
    } else {
        s.to_string()
    };
    Content::from(label)
}

/// `YYYY-MM-DD?HH:MM:SS.mmm` with `sep` at `?` and no zone.
pub(super) fn zoneless(s: &str, sep: u8) -> bool {
    let b = s.as_bytes();
    b.len() == 23
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == sep,
            13 | 16 => *c == b':',
            19 => *c == b'.',
            _ => c.is_ascii_digit(),
        })
}

/// JSON with object keys in the order received (serde_json's `Value` sorts them, and the order
/// of `SELECT *` columns is part of what the snapshots pin).
#[derive(Debug, Clone)]
pub(super) enum Ordered {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Ordered>),
    Object(Vec<(String, Ordered)>),
}

impl Ordered {
    /// Keeps the first and the last item of `items`: the warm-up nulls and the warm values.
    pub(super) fn keep_first_and_last_item(&mut self) {
        if let Ordered::Object(entries) = self {
            for (k, v) in entries.iter_mut() {
                if let (true, Ordered::Array(items)) = (k == "items", v) {
                    if items.len() > 2 {
                        let last = items.pop();
                        items.truncate(1);
                        items.extend(last);
                    }
                }
            }
        }
    }
}

impl Serialize for Ordered {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Ordered::Null => s.serialize_unit(),
            Ordered::Bool(b) => s.serialize_bool(*b),
            Ordered::Number(n) => n.serialize(s),
            Ordered::String(t) => s.serialize_str(t),
            Ordered::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Ordered::Object(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Ordered, E> {
                Ok(Ordered::Bool(b))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Ordered, E> {
                Ok(Ordered::Number(n.into()))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Ordered, E> {
                Ok(Ordered::Number(n.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, x: f64) -> Result<Ordered, E> {
                serde_json::Number::from_f64(x)
                    .map(Ordered::Number)
                    .ok_or_else(|| E::custom("non-finite number"))
            }
            fn visit_str<E>(self, t: &str) -> Result<Ordered, E> {
                Ok(Ordered::String(t.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
                let mut items = Vec::new();
                while let Some(i) = seq.next_element()? {
                    items.push(i);
                }
                Ok(Ordered::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry()? {
                    entries.push((k, v));
                }
                Ok(Ordered::Object(entries))
            }
        }
        d.deserialize_any(V)
    }
}
