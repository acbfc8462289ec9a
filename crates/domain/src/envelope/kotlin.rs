//! kotlinx-compatible scalar readers: the leniencies of the TA job's JSON decoder.

use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer};
use serde::Deserialize;

/// The message text with every bare `true`/`false` literal in lower case.
///
/// kotlinx's lexer reads a boolean case-insensitively, quoted or not (`TRUE`, `"False"`), and
/// skips an unknown key's value whatever it is; strict JSON (serde_json) knows only lower-case
/// bare literals. Lower-casing the bare ones, outside strings, is the smallest change that lets
/// serde_json read what kotlinx reads here: a literal that is not a whole `true`/`false` word
/// (`TRUEX`, `tru`) stays as it is and fails both, and a lower-cased literal in a string or number
/// field still fails there, as it does in kotlinx. Quoted literals are left to [`kotlin_boolean`].
pub fn lower_case_boolean_literals(text: &str) -> std::borrow::Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let (mut i, mut in_string) = (0, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
        } else if b == b'"' {
            in_string = true;
            i += 1;
        } else if b.is_ascii_alphabetic() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let word = &text[start..i];
            let boolean = word.eq_ignore_ascii_case("true") || word.eq_ignore_ascii_case("false");
            if boolean && word.bytes().any(|c| c.is_ascii_uppercase()) {
                out.get_or_insert_with(|| text.to_string())[start..i].make_ascii_lowercase();
            }
        } else {
            i += 1;
        }
    }
    out.map_or(std::borrow::Cow::Borrowed(text), std::borrow::Cow::Owned)
}

/// kotlinx `Boolean`: `true`/`false` in any letter case, as a JSON boolean or a string holding
/// exactly that word (no spaces); `null` and anything else are rejected.
pub(super) fn kotlin_boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct BooleanVisitor;

    impl de::Visitor<'_> for BooleanVisitor {
        type Value = bool;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a boolean (true or false in any case, quoted or not)")
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
            if v.eq_ignore_ascii_case("true") {
                Ok(true)
            } else if v.eq_ignore_ascii_case("false") {
                Ok(false)
            } else {
                Err(E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
    }

    d.deserialize_any(BooleanVisitor)
}

/// A JSON number, or a string holding one: kotlinx reads both for numeric fields.
#[derive(Debug, Clone, PartialEq)]
enum NumberOrText {
    Int(i64),
    Float(f64),
    Text(String),
}

struct NumberOrTextVisitor(&'static str);

impl de::Visitor<'_> for NumberOrTextVisitor {
    type Value = NumberOrText;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumberOrText, E> {
        Ok(NumberOrText::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumberOrText, E> {
        Ok(i64::try_from(v).map_or(NumberOrText::Float(v as f64), NumberOrText::Int))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumberOrText, E> {
        Ok(NumberOrText::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<NumberOrText, E> {
        Ok(NumberOrText::Text(v.to_string()))
    }
}

fn number_or_text<'de, D: Deserializer<'de>>(
    d: D,
    expecting: &'static str,
) -> Result<NumberOrText, D::Error> {
    d.deserialize_any(NumberOrTextVisitor(expecting))
}

/// kotlinx `Long`: an integer, possibly quoted; fractions and `null` are rejected.
pub(super) fn kotlin_long<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match number_or_text(d, "an integer (Long)")? {
        NumberOrText::Int(i) => Ok(i),
        NumberOrText::Text(t) => t
            .parse()
            .map_err(|_| de::Error::custom(format!("`{t}` is not an integer (Long)"))),
        NumberOrText::Float(f) => Err(de::Error::custom(format!("{f} is not an integer (Long)"))),
    }
}

/// kotlinx `Int`.
pub(super) fn kotlin_int<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    let value = kotlin_long(d)?;
    i32::try_from(value).map_err(|_| de::Error::custom(format!("{value} is out of Int range")))
}

/// kotlinx `Double`: a number or a numeric string; NaN and infinities are rejected.
pub(super) fn kotlin_double<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let value = match number_or_text(d, "a number (Double)")? {
        NumberOrText::Int(i) => i as f64,
        NumberOrText::Float(f) => f,
        NumberOrText::Text(t) => t
            .trim()
            .parse()
            .map_err(|_| de::Error::custom(format!("`{t}` is not a number (Double)")))?,
    };
    if value.is_finite() {
        Ok(value)
    } else {
        Err(de::Error::custom(format!(
            "{value} is not a finite number (special floating-point values are not allowed)"
        )))
    }
}

/// A payload key the TA job does not declare: any value is accepted, kept only if it has the
/// expected type.
pub(super) fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}
