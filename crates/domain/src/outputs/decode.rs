//! A TA output value as bytes → an Avro value → the row model (`model::Microbar`,
//! `model::Signal`) or a [`Heartbeat`].
//!
//! Two encodings reach a topic (`pipeline.md` §1.3): Confluent framing when the job has a schema
//! registry (byte 0 = 0x00, bytes 1–4 the big-endian schema id, then Avro binary written with
//! that schema) and plain Avro binary without one (then the writer schemas are the job's
//! resources, our `fixtures/avro/*.avsc`). A plain value never starts with 0x00: every record
//! starts with `ingest_ts`, a non-empty string, whose zig-zag length is at least 2 (the job's
//! own smoke decoder tells the two apart the same way).
//!
//! Fields are read by name from the writer's record, so a registry schema with more fields than
//! the contract's (the drift `pipeline.md` §9 item 9 warns of) still decodes; a field the row
//! needs that is absent or of another type makes the value undecodable (the schema's fault).

use std::collections::BTreeMap;
use std::sync::OnceLock;

pub use apache_avro::types::Value;
pub use apache_avro::Schema;
use serde::Serialize;
use time::OffsetDateTime;

use super::heartbeat::Heartbeat;
use crate::envelope::IsoInstant;
use crate::model::{Microbar, Signal};

/// The three output topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// `torghut[.sim].ta.bars.1s.v1`: one record per microbar.
    Bars,
    /// `torghut[.sim].ta.signals.v1`: one record per signal, both cadences.
    Signals,
    /// `torghut[.sim].ta.status.v1`: the heartbeat, key `ta`.
    Status,
}

impl Output {
    pub const ALL: [Output; 3] = [Output::Bars, Output::Signals, Output::Status];

    /// The contract's writer schema of this output (`fixtures/avro/`), for plain Avro.
    pub fn fixture_schema(self) -> &'static Schema {
        static SCHEMAS: OnceLock<[Schema; 3]> = OnceLock::new();
        let all = SCHEMAS.get_or_init(|| {
            // The files are part of the build and their parsing is unit-tested below.
            let parse = |text: &str| Schema::parse_str(text).expect("fixture writer schema");
            [parse(BAR_AVSC), parse(SIGNAL_AVSC), parse(STATUS_AVSC)]
        });
        &all[self as usize]
    }

    pub fn name(self) -> &'static str {
        match self {
            Output::Bars => "bars",
            Output::Signals => "signals",
            Output::Status => "status",
        }
    }
}

pub const BAR_AVSC: &str = include_str!("../../../../fixtures/avro/ta-bar-1s.avsc");
pub const SIGNAL_AVSC: &str = include_str!("../../../../fixtures/avro/ta-signal.avsc");
pub const STATUS_AVSC: &str = include_str!("../../../../fixtures/avro/ta-status.avsc");

/// Why a value could not be read. Each names a different hop to look at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The registry answered that it has no schema with this id.
    #[error("schema id {0} is unknown to the schema registry")]
    UnknownSchemaId(u32),
    /// The registry could not be asked (refused, timed out, 5xx, unreadable answer).
    #[error("the schema registry could not be asked for schema id {id}: {detail}")]
    RegistryUnreachable { id: u32, detail: String },
    /// A Confluent-framed value, and no registry configured to look its id up in.
    #[error("value is Confluent-framed (schema id {0}) but no schema registry is configured (schema_registry_url)")]
    RegistryNotConfigured(u32),
    /// The bytes do not decode with the writer schema, or lack a field the row needs.
    #[error("undecodable value: {0}")]
    Undecodable(String),
}

/// A value's framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Confluent wire format: the writer schema is the registry's `id`.
    Registry { id: u32, body: &'a [u8] },
    /// Plain Avro binary, written with the contract's schema.
    Plain(&'a [u8]),
}

/// Splits a value into its framing and Avro body.
pub fn frame(bytes: &[u8]) -> Result<Frame<'_>, DecodeError> {
    match bytes {
        [] => Err(DecodeError::Undecodable("empty value".into())),
        [0, a, b, c, d, body @ ..] => Ok(Frame::Registry {
            id: u32::from_be_bytes([*a, *b, *c, *d]),
            body,
        }),
        [0, ..] => Err(DecodeError::Undecodable(format!(
            "magic byte 0x00 but only {} bytes: no room for a schema id",
            bytes.len()
        ))),
        body => Ok(Frame::Plain(body)),
    }
}

/// The Avro value of `body` written with `writer`; the whole body must be consumed.
pub fn datum(writer: &Schema, body: &[u8]) -> Result<Value, DecodeError> {
    let mut reader = body;
    let value = apache_avro::from_avro_datum(writer, &mut reader, None)
        .map_err(|e| DecodeError::Undecodable(e.to_string()))?;
    if !reader.is_empty() {
        return Err(DecodeError::Undecodable(format!(
            "{} bytes left after the record: written with another schema",
            reader.len()
        )));
    }
    Ok(value)
}

/// A record's fields by name.
struct Record<'a>(BTreeMap<&'a str, &'a Value>);

impl<'a> Record<'a> {
    fn of(value: &'a Value) -> Result<Self, DecodeError> {
        match unwrap(value) {
            Value::Record(fields) => Ok(Record(
                fields
                    .iter()
                    .map(|(k, v)| (k.as_str(), unwrap(v)))
                    .collect(),
            )),
            other => Err(wrong("record", "value", other)),
        }
    }

    fn get(&self, name: &str) -> Result<&'a Value, DecodeError> {
        self.0
            .get(name)
            .copied()
            .ok_or_else(|| DecodeError::Undecodable(format!("field `{name}` is missing")))
    }

    /// A nullable field: absent from the writer's schema counts as null.
    fn opt(&self, name: &str) -> Option<&'a Value> {
        self.0.get(name).copied().filter(|v| **v != Value::Null)
    }

    fn string(&self, name: &str) -> Result<String, DecodeError> {
        match self.get(name)? {
            Value::String(s) => Ok(s.clone()),
            other => Err(wrong("string", name, other)),
        }
    }

    fn opt_string(&self, name: &str) -> Result<Option<String>, DecodeError> {
        match self.opt(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(wrong("string", name, other)),
        }
    }

    fn long(&self, name: &str) -> Result<i64, DecodeError> {
        match self.get(name)? {
            Value::Long(n) => Ok(*n),
            Value::Int(n) => Ok(i64::from(*n)),
            other => Err(wrong("long", name, other)),
        }
    }

    fn unsigned(&self, name: &str) -> Result<u64, DecodeError> {
        let n = self.long(name)?;
        u64::try_from(n)
            .map_err(|_| DecodeError::Undecodable(format!("field `{name}` is negative: {n}")))
    }

    fn double(&self, name: &str) -> Result<f64, DecodeError> {
        self.opt_double(name)?
            .ok_or_else(|| DecodeError::Undecodable(format!("field `{name}` is null")))
    }

    fn opt_double(&self, name: &str) -> Result<Option<f64>, DecodeError> {
        match self.opt(name) {
            None => Ok(None),
            Some(Value::Double(x)) => Ok(Some(*x)),
            Some(Value::Float(x)) => Ok(Some(f64::from(*x))),
            Some(other) => Err(wrong("double", name, other)),
        }
    }

    fn opt_bool(&self, name: &str) -> Result<Option<bool>, DecodeError> {
        match self.opt(name) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(*b)),
            Some(other) => Err(wrong("boolean", name, other)),
        }
    }

    fn opt_record(&self, name: &str) -> Result<Option<Record<'a>>, DecodeError> {
        self.opt(name).map(Record::of).transpose()
    }

    fn instant(&self, name: &str) -> Result<OffsetDateTime, DecodeError> {
        instant(name, &self.string(name)?)
    }

    fn opt_instant(&self, name: &str) -> Result<Option<OffsetDateTime>, DecodeError> {
        self.opt_string(name)?
            .map(|s| instant(name, &s))
            .transpose()
    }
}

fn unwrap(value: &Value) -> &Value {
    match value {
        Value::Union(_, inner) => unwrap(inner),
        v => v,
    }
}

fn wrong(kind: &str, name: &str, got: &Value) -> DecodeError {
    DecodeError::Undecodable(format!("field `{name}` is not a {kind}: {got:?}"))
}

/// An ISO instant (`Instant.toString()`) at the tables' millisecond precision
/// (`DateTime64(3)`), so a record and its row compare equal.
fn instant(name: &str, text: &str) -> Result<OffsetDateTime, DecodeError> {
    let parsed: IsoInstant = text
        .parse()
        .map_err(|e| DecodeError::Undecodable(format!("field `{name}`: {e}")))?;
    IsoInstant::from_unix_millis(parsed.unix_millis())
        .map(IsoInstant::to_offset_datetime)
        .ok_or_else(|| DecodeError::Undecodable(format!("field `{name}` is out of range")))
}

/// The envelope header every output shares, as the table columns hold it.
struct Header {
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

fn header(r: &Record<'_>) -> Result<Header, DecodeError> {
    let window = r.opt_record("window")?;
    let version = match r.opt("version") {
        Some(Value::Int(n)) => u32::try_from(*n).unwrap_or(0),
        Some(Value::Long(n)) => u32::try_from(*n).unwrap_or(0),
        Some(other) => return Err(wrong("int", "version", other)),
        None => 0,
    };
    Ok(Header {
        symbol: r.string("symbol")?,
        event_ts: r.instant("event_ts")?,
        seq: r.unsigned("seq")?,
        ingest_ts: r.instant("ingest_ts")?,
        // The ClickHouse sink writes a missing flag as 0, and so do we: a difference shows.
        is_final: u8::from(r.opt_bool("is_final")?.unwrap_or(false)),
        source: r.opt_string("source")?.unwrap_or_default(),
        window_size: match &window {
            Some(w) => w.string("size")?,
            None => String::new(),
        },
        window_step: window
            .as_ref()
            .map(|w| w.opt_string("step"))
            .transpose()?
            .flatten(),
        window_start: window
            .as_ref()
            .map(|w| w.opt_instant("start"))
            .transpose()?
            .flatten(),
        window_end: window
            .as_ref()
            .map(|w| w.opt_instant("end"))
            .transpose()?
            .flatten(),
        version,
    })
}

/// A `ta.bars.1s` record as its `ta_microbars` row.
pub fn microbar(value: &Value) -> Result<Microbar, DecodeError> {
    let r = Record::of(value)?;
    let h = header(&r)?;
    Ok(Microbar {
        symbol: h.symbol,
        event_ts: h.event_ts,
        seq: h.seq,
        ingest_ts: h.ingest_ts,
        is_final: h.is_final,
        source: h.source,
        window_size: h.window_size,
        window_step: h.window_step,
        window_start: h.window_start,
        window_end: h.window_end,
        version: h.version,
        o: r.double("o")?,
        h: r.double("h")?,
        l: r.double("l")?,
        c: r.double("c")?,
        v: r.double("v")?,
        vwap: r.opt_double("vwap")?,
        count: r.unsigned("count")?,
    })
}

/// A quote size as the job writes it to `UInt64`: Kotlin `Double.toLong()` (saturating, NaN
/// → 0), then the long's bits (`pipeline.md` §9 item 2).
fn size(x: Option<f64>) -> Option<u64> {
    x.map(|x| x as i64 as u64)
}

/// A `ta.signals` record as its `ta_signals` row (either cadence: `window_size` tells).
pub fn signal(value: &Value) -> Result<Signal, DecodeError> {
    let r = Record::of(value)?;
    let h = header(&r)?;
    let part = |name: &str, field: &str| -> Result<Option<f64>, DecodeError> {
        match r.opt_record(name)? {
            Some(rec) => rec.opt_double(field),
            None => Ok(None),
        }
    };
    let imbalance = r.opt_record("imbalance")?;
    let imb = |field: &str| match &imbalance {
        Some(rec) => rec.opt_double(field),
        None => Ok(None),
    };
    Ok(Signal {
        symbol: h.symbol,
        event_ts: h.event_ts,
        seq: h.seq,
        ingest_ts: h.ingest_ts,
        is_final: h.is_final,
        source: h.source,
        window_size: h.window_size,
        window_step: h.window_step,
        window_start: h.window_start,
        window_end: h.window_end,
        version: h.version,
        macd: part("macd", "macd")?,
        macd_signal: part("macd", "signal")?,
        macd_hist: part("macd", "hist")?,
        ema12: part("ema", "ema12")?,
        ema26: part("ema", "ema26")?,
        rsi14: r.opt_double("rsi14")?,
        boll_mid: part("boll", "mid")?,
        boll_upper: part("boll", "upper")?,
        boll_lower: part("boll", "lower")?,
        vwap_session: part("vwap", "session")?,
        vwap_w5m: part("vwap", "w5m")?,
        imbalance_spread: imb("spread")?,
        imbalance_bid_px: imb("bid_px")?,
        imbalance_ask_px: imb("ask_px")?,
        imbalance_bid_sz: size(imb("bid_sz")?),
        imbalance_ask_sz: size(imb("ask_sz")?),
        vol_realized_w60s: part("vol_realized", "w60s")?,
        // The job never sets it (`pipeline.md` §4.6); a set one shows as a difference.
        microstructure_signal_v1: r.opt("microstructure_signal_v1").map(|v| format!("{v:?}")),
    })
}

/// A `ta.status` record.
pub fn heartbeat(value: &Value) -> Result<Heartbeat, DecodeError> {
    let r = Record::of(value)?;
    let per_symbol = match r.get("per_symbol_latest_event_ts")? {
        Value::Map(m) => m
            .iter()
            .map(|(k, v)| match unwrap(v) {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(wrong("string", "per_symbol_latest_event_ts", other)),
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?,
        other => return Err(wrong("map", "per_symbol_latest_event_ts", other)),
    };
    let event_ts: IsoInstant = r
        .string("event_ts")?
        .parse()
        .map_err(|e| DecodeError::Undecodable(format!("field `event_ts`: {e}")))?;
    Ok(Heartbeat {
        seq: r.long("seq")?,
        event_ts: event_ts.to_offset_datetime(),
        status: r.string("status")?,
        status_reason: r.opt_string("status_reason")?,
        input_event_count: r.long("input_event_count")?,
        output_event_count: r.long("output_event_count")?,
        watermark_lag_ms: r.opt("watermark_lag_ms").and_then(as_long),
        source_lag_ms: r.opt("source_lag_ms").and_then(as_long),
        market_session_state: r.opt_string("market_session_state")?,
        clickhouse_sink_enabled: r.opt_bool("clickhouse_sink_enabled")?,
        per_symbol_latest_event_ts: per_symbol,
    })
}

fn as_long(v: &Value) -> Option<i64> {
    match v {
        Value::Long(n) => Some(*n),
        Value::Int(n) => Some(i64::from(*n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
