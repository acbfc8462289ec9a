//! API rows back into table rows, checking each field's JSON encoding on the way
//! (`jangar.md` §1.4: ClickHouse `FORMAT JSON` passed through `JSON.parse`/`JSON.stringify`).

use std::collections::BTreeSet;

use serde_json::Value;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::domain::model::{Microbar, Signal};
use crate::domain::model::{MICROBAR_SCHEMA, SIGNAL_SCHEMA};

/// How a row's fields were encoded, beyond their values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoding {
    /// Contract breaks, one line each, e.g. `event_ts "2026-…Z" is not zone-less UTC`.
    pub problems: BTreeSet<String>,
    /// UInt64 columns seen as JSON numbers: ClickHouse 25.8+ no longer quotes 64-bit integers
    /// by default, and JavaScript rounds them above 2^53.
    pub unquoted_u64: BTreeSet<String>,
    /// Columns of the reference schema that are absent.
    pub missing_columns: BTreeSet<String>,
    /// Columns the reference schema does not have (production adds columns over time).
    pub extra_columns: BTreeSet<String>,
}

impl Encoding {
    #[cfg(test)]
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.unquoted_u64.is_empty() && self.missing_columns.is_empty()
    }

    /// Whether a check on this encoding passes: UInt64 as JSON numbers is drift the page
    /// survives (`jangar.md` §6.7), tolerated unless `strict` (the values are compared anyway).
    pub fn is_acceptable(&self, strict: bool) -> bool {
        self.problems.is_empty()
            && self.missing_columns.is_empty()
            && (self.unquoted_u64.is_empty() || !strict)
    }

    /// Whether this encoding holds drift that [`Self::is_acceptable`] tolerates.
    pub fn tolerated_drift(&self, strict: bool) -> bool {
        !strict && !self.unquoted_u64.is_empty()
    }

    pub fn merge(&mut self, other: Encoding) {
        self.problems.extend(other.problems);
        self.unquoted_u64.extend(other.unquoted_u64);
        self.missing_columns.extend(other.missing_columns);
        self.extra_columns.extend(other.extra_columns);
    }

    /// One line for a check's detail.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.missing_columns.is_empty() {
            parts.push(format!("missing columns {}", join(&self.missing_columns)));
        }
        if !self.unquoted_u64.is_empty() {
            parts.push(format!(
                "UInt64 columns {} are JSON numbers, not quoted strings",
                join(&self.unquoted_u64)
            ));
        }
        parts.extend(self.problems.iter().take(5).cloned());
        if self.problems.len() > 5 {
            parts.push(format!("{} more", self.problems.len() - 5));
        }
        if !self.extra_columns.is_empty() {
            parts.push(format!(
                "extra columns {} (allowed)",
                join(&self.extra_columns)
            ));
        }
        parts.join("; ")
    }
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Parses `YYYY-MM-DD HH:MM:SS.mmm` as UTC, the only form the contract allows for DateTime64(3).
pub fn parse_zoneless(text: &str) -> Option<OffsetDateTime> {
    let format =
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]");
    PrimitiveDateTime::parse(text, format)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

/// Formats an instant the way Jangar echoes `range.requested` (`2026-03-05T19:59:58.123`).
pub fn range_form(t: OffsetDateTime) -> String {
    let iso = crate::domain::model::iso_millis(t);
    iso.trim_end_matches('Z').to_string()
}

/// Reads one item's fields by their ClickHouse types, noting encoding problems.
struct Reader<'a> {
    item: &'a serde_json::Map<String, Value>,
    enc: Encoding,
}

impl<'a> Reader<'a> {
    fn new(item: &'a serde_json::Map<String, Value>, schema: &[(&str, &str)]) -> Self {
        let mut enc = Encoding::default();
        for (name, _) in schema {
            if !item.contains_key(*name) {
                enc.missing_columns.insert((*name).to_string());
            }
        }
        for key in item.keys() {
            if !schema.iter().any(|(n, _)| n == key) {
                enc.extra_columns.insert(key.clone());
            }
        }
        Self { item, enc }
    }

    fn problem(&mut self, column: &str, value: &Value, expected: &str) {
        self.enc
            .problems
            .insert(format!("{column} {value} is not {expected}"));
    }

    /// `None` when absent or null; a problem when null in a non-nullable column is for the
    /// caller (which knows whether the column is nullable).
    fn value(&self, column: &str) -> Option<&'a Value> {
        self.item.get(column).filter(|v| !v.is_null())
    }

    fn text(&mut self, column: &str) -> Option<String> {
        let v = self.value(column)?;
        match v.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.problem(column, v, "a string");
                None
            }
        }
    }

    fn time(&mut self, column: &str) -> Option<OffsetDateTime> {
        let v = self.value(column)?;
        match v.as_str().and_then(parse_zoneless) {
            Some(t) => Some(t),
            None => {
                self.problem(column, v, "zone-less UTC \"YYYY-MM-DD HH:MM:SS.mmm\"");
                None
            }
        }
    }

    /// UInt64: a quoted decimal string per the contract; a bare number is decoded and reported.
    fn u64(&mut self, column: &str) -> Option<u64> {
        let v = self.value(column)?;
        if let Some(s) = v.as_str() {
            let parsed = s
                .parse()
                .ok()
                .filter(|_| s.bytes().all(|b| b.is_ascii_digit()));
            if parsed.is_none() {
                self.problem(column, v, "a UInt64");
            }
            return parsed;
        }
        match v.as_u64() {
            Some(n) => {
                self.enc.unquoted_u64.insert(column.to_string());
                Some(n)
            }
            None => {
                self.problem(column, v, "a UInt64 string");
                None
            }
        }
    }

    /// UInt8 / UInt32: JSON numbers.
    fn small_uint(&mut self, column: &str, max: u64) -> Option<u64> {
        let v = self.value(column)?;
        match v.as_u64().filter(|n| *n <= max) {
            Some(n) => Some(n),
            None => {
                self.problem(column, v, "a JSON number in range");
                None
            }
        }
    }

    fn float(&mut self, column: &str) -> Option<f64> {
        let v = self.value(column)?;
        match v.as_f64() {
            Some(x) => Some(x),
            None => {
                self.problem(column, v, "a JSON number");
                None
            }
        }
    }

    /// A value required by a non-nullable column.
    fn required<T>(&mut self, column: &str, value: Option<T>) -> Option<T> {
        if value.is_none() && self.item.get(column).is_some_and(Value::is_null) {
            self.enc
                .problems
                .insert(format!("{column} is null in a non-nullable column"));
        }
        value
    }
}

/// The fields both tables share; `None` when a required one is unusable.
struct Common {
    symbol: String,
    event_ts: OffsetDateTime,
    seq: u64,
    ingest_ts: OffsetDateTime,
    is_final: u8,
    source: String,
    window_size: String,
    window_step: Option<String>,
    window_start: Option<OffsetDateTime>,
    window_end: Option<OffsetDateTime>,
    version: u32,
}

fn common(r: &mut Reader<'_>) -> Option<Common> {
    let symbol = r.text("symbol");
    let event_ts = r.time("event_ts");
    let seq = r.u64("seq");
    let ingest_ts = r.time("ingest_ts");
    let is_final = r.small_uint("is_final", u8::MAX as u64);
    let source = r.text("source");
    let window_size = r.text("window_size");
    let window_step = r.text("window_step");
    let window_start = r.time("window_start");
    let window_end = r.time("window_end");
    let version = r.small_uint("version", u32::MAX as u64);
    Some(Common {
        symbol: r.required("symbol", symbol)?,
        event_ts: r.required("event_ts", event_ts)?,
        seq: r.required("seq", seq)?,
        ingest_ts: r.required("ingest_ts", ingest_ts)?,
        is_final: r.required("is_final", is_final)? as u8,
        source: r.required("source", source)?,
        window_size: r.required("window_size", window_size)?,
        window_step,
        window_start,
        window_end,
        version: r.required("version", version)? as u32,
    })
}

/// A decoded item, or only its encoding problems when it cannot become a row.
pub struct Decoded<R> {
    pub row: Option<R>,
    pub encoding: Encoding,
}

fn as_object(item: &Value) -> Result<&serde_json::Map<String, Value>, Encoding> {
    item.as_object().ok_or_else(|| {
        let mut enc = Encoding::default();
        enc.problems.insert(format!("item {item} is not an object"));
        enc
    })
}

pub fn microbar(item: &Value) -> Decoded<Microbar> {
    let map = match as_object(item) {
        Ok(m) => m,
        Err(encoding) => {
            return Decoded {
                row: None,
                encoding,
            }
        }
    };
    let mut r = Reader::new(map, MICROBAR_SCHEMA);
    let c = common(&mut r);
    let (o, h, l, cl, v) = (
        r.float("o"),
        r.float("h"),
        r.float("l"),
        r.float("c"),
        r.float("v"),
    );
    let vwap = r.float("vwap");
    let count = r.u64("count");
    let row = (|| {
        Some(Microbar {
            o: r.required("o", o)?,
            h: r.required("h", h)?,
            l: r.required("l", l)?,
            c: r.required("c", cl)?,
            v: r.required("v", v)?,
            vwap,
            count: r.required("count", count)?,
            ..from_common_bar(c?)
        })
    })();
    Decoded {
        row,
        encoding: r.enc,
    }
}

fn from_common_bar(c: Common) -> Microbar {
    Microbar {
        symbol: c.symbol,
        event_ts: c.event_ts,
        seq: c.seq,
        ingest_ts: c.ingest_ts,
        is_final: c.is_final,
        source: c.source,
        window_size: c.window_size,
        window_step: c.window_step,
        window_start: c.window_start,
        window_end: c.window_end,
        version: c.version,
        o: 0.0,
        h: 0.0,
        l: 0.0,
        c: 0.0,
        v: 0.0,
        vwap: None,
        count: 0,
    }
}

pub fn signal(item: &Value) -> Decoded<Signal> {
    let map = match as_object(item) {
        Ok(m) => m,
        Err(encoding) => {
            return Decoded {
                row: None,
                encoding,
            }
        }
    };
    let mut r = Reader::new(map, SIGNAL_SCHEMA);
    let row = common(&mut r).map(|c| Signal {
        symbol: c.symbol,
        event_ts: c.event_ts,
        seq: c.seq,
        ingest_ts: c.ingest_ts,
        is_final: c.is_final,
        source: c.source,
        window_size: c.window_size,
        window_step: c.window_step,
        window_start: c.window_start,
        window_end: c.window_end,
        version: c.version,
        macd: r.float("macd"),
        macd_signal: r.float("macd_signal"),
        macd_hist: r.float("macd_hist"),
        ema12: r.float("ema12"),
        ema26: r.float("ema26"),
        rsi14: r.float("rsi14"),
        boll_mid: r.float("boll_mid"),
        boll_upper: r.float("boll_upper"),
        boll_lower: r.float("boll_lower"),
        vwap_session: r.float("vwap_session"),
        vwap_w5m: r.float("vwap_w5m"),
        imbalance_spread: r.float("imbalance_spread"),
        imbalance_bid_px: r.float("imbalance_bid_px"),
        imbalance_ask_px: r.float("imbalance_ask_px"),
        imbalance_bid_sz: r.u64("imbalance_bid_sz"),
        imbalance_ask_sz: r.u64("imbalance_ask_sz"),
        vol_realized_w60s: r.float("vol_realized_w60s"),
        microstructure_signal_v1: r.text("microstructure_signal_v1"),
    });
    Decoded {
        row,
        encoding: r.enc,
    }
}

/// Decodes every item; rows that cannot be decoded are left out (and their problems kept).
pub fn all<R>(items: &[Value], decode: fn(&Value) -> Decoded<R>) -> (Vec<R>, Encoding) {
    let mut rows = Vec::with_capacity(items.len());
    let mut enc = Encoding::default();
    for item in items {
        let d = decode(item);
        rows.extend(d.row);
        enc.merge(d.encoding);
    }
    (rows, enc)
}
