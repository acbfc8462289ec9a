//! Forwarder JSON envelopes (pipeline.md §1.2, §1.4), built and parsed the way production does.
//!
//! * **Writing** follows the forwarder (torghut-ws): every envelope key is present, in the Kotlin
//!   class's order, with explicit `null`s (its Json instance has `encodeDefaults = true`), while the
//!   payload omits absent optional Alpaca fields (the mapper's Json instance does not encode
//!   defaults). Instants print like Java's `Instant.toString()`.
//! * **Reading** follows the TA job's `ParseEnvelopeFlatMap` (§2.1): kotlinx-serialization with
//!   `ignoreUnknownKeys = true` and nothing else. Required keys must be present, `null` in a
//!   non-nullable field fails, unknown keys are ignored, instants must parse like `Instant.parse`.
//!   kotlinx also accepts numbers written as JSON strings (`"seq":"7"`), so this parser does too;
//!   it rejects non-finite numbers, as kotlinx does without `allowSpecialFloatingPointValues`.
//!   Its boolean reader is case-insensitive and takes the literal quoted or not (`"isFinal":"true"`,
//!   `"False"`, a bare `TRUE`: pipeline.md §9.3), which JSON itself does not allow: see
//!   [`lower_case_boolean_literals`]. `fixtures/envelopes/kotlinx.toml` lists the forms the job
//!   accepts and rejects; the stand-in TA job reads the same file.
//!   Payload keys the TA job does not declare (`S`, `i`, `x`, `c`, `z`, `bx`, `ax`) cannot fail a
//!   record there, so they are read leniently here: a value of the wrong type becomes `None`.

mod bar;
mod instant;
mod kotlin;
mod session;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use kotlin::{kotlin_boolean, kotlin_double, kotlin_int, kotlin_long, lenient};

pub use bar::{BarPayload, CHANNEL_BARS, CHANNEL_UPDATED_BARS};
pub use instant::{InstantError, IsoInstant, RawInstant};
pub use kotlin::lower_case_boolean_literals;
pub use session::market_session;

/// `feed` of the production core feed (`ALPACA_FEED=iex`, lower-cased).
pub const FEED_IEX: &str = "iex";
/// `channel` of equity and crypto trades.
pub const CHANNEL_TRADES: &str = "trades";
/// `channel` of equity quotes.
pub const CHANNEL_QUOTES: &str = "quotes";
/// `source` of live websocket messages.
pub const SOURCE_WS: &str = "ws";
/// `version` the live forwarder writes.
pub const FORWARDER_VERSION: i32 = 2;
/// `provider` the live forwarder writes.
pub const PROVIDER_ALPACA: &str = "alpaca";
/// `delayClass` of the IEX feed.
pub const DELAY_CLASS_IEX: &str = "real_time_exchange_only";

/// The forwarder's envelope (ENV), keys and order as serialized (§1.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<P> {
    pub ingest_ts: IsoInstant,
    pub event_ts: IsoInstant,
    pub feed: String,
    pub channel: String,
    pub symbol: String,
    #[serde(deserialize_with = "kotlin_long")]
    pub seq: i64,
    pub payload: P,
    #[serde(default)]
    pub account_label: Option<String>,
    #[serde(default = "default_is_final", deserialize_with = "kotlin_boolean")]
    pub is_final: bool,
    #[serde(default = "default_source")]
    pub source: String,
    #[serde(default)]
    pub window: Option<Window>,
    #[serde(default = "default_version", deserialize_with = "kotlin_int")]
    pub version: i32,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub market_session: Option<String>,
    #[serde(default)]
    pub delay_class: Option<String>,
}

fn default_is_final() -> bool {
    true
}

fn default_source() -> String {
    SOURCE_WS.to_string()
}

/// The Kotlin class default (1); the live forwarder writes 2.
fn default_version() -> i32 {
    1
}

/// The envelope's window (ENV `Window`): all four fields are non-nullable strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub size: String,
    pub step: String,
    pub start: String,
    pub end: String,
}

/// An Alpaca trade as the forwarder re-encodes it (§1.4): keys `S, i, x, p, s, c, t, z` in this
/// order, optional ones omitted when absent. `S` is optional too because the TA job does not read
/// it (a minimal `{p, s, t}` payload is valid there).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TradePayload {
    #[serde(rename = "S", default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "lenient")]
    pub symbol: Option<String>,
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "lenient")]
    pub id: Option<i64>,
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "lenient")]
    pub exchange: Option<String>,
    #[serde(rename = "p", deserialize_with = "kotlin_double")]
    pub price: f64,
    /// A double on the wire (`100` is written `100.0`); fractional sizes are allowed.
    #[serde(rename = "s", deserialize_with = "kotlin_double")]
    pub size: f64,
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "lenient")]
    pub conditions: Option<Vec<String>>,
    /// Alpaca's raw timestamp text; the TA job buckets trades by this instant, not by `eventTs`.
    #[serde(rename = "t")]
    pub t: RawInstant,
    #[serde(rename = "z", default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "lenient")]
    pub tape: Option<String>,
}

/// An Alpaca quote as the forwarder re-encodes it: `S, bx, bp, bs, ax, ap, as, c, t, z`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotePayload {
    #[serde(rename = "S", default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "lenient")]
    pub symbol: Option<String>,
    #[serde(rename = "bx", default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "lenient")]
    pub bid_exchange: Option<String>,
    #[serde(rename = "bp", deserialize_with = "kotlin_double")]
    pub bid_price: f64,
    #[serde(rename = "bs", deserialize_with = "kotlin_double")]
    pub bid_size: f64,
    #[serde(rename = "ax", default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "lenient")]
    pub ask_exchange: Option<String>,
    #[serde(rename = "ap", deserialize_with = "kotlin_double")]
    pub ask_price: f64,
    #[serde(rename = "as", deserialize_with = "kotlin_double")]
    pub ask_size: f64,
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "lenient")]
    pub conditions: Option<Vec<String>>,
    #[serde(rename = "t")]
    pub t: RawInstant,
    #[serde(rename = "z", default, skip_serializing_if = "Option::is_none")]
    #[serde(deserialize_with = "lenient")]
    pub tape: Option<String>,
}

impl<P> Envelope<P> {
    /// An envelope with the live forwarder's defaults for an IEX message on `channel`.
    fn forwarder(
        channel: &str,
        symbol: &str,
        at: IsoInstant,
        seq: i64,
        ingest: IsoInstant,
        payload: P,
    ) -> Self {
        Envelope {
            ingest_ts: ingest,
            event_ts: at,
            feed: FEED_IEX.to_string(),
            channel: channel.to_string(),
            symbol: symbol.to_string(),
            seq,
            payload,
            account_label: None,
            is_final: true,
            source: SOURCE_WS.to_string(),
            window: None,
            version: FORWARDER_VERSION,
            provider: Some(PROVIDER_ALPACA.to_string()),
            market_session: Some(market_session(at).to_string()),
            delay_class: Some(DELAY_CLASS_IEX.to_string()),
        }
    }
}

impl<P: Serialize> Envelope<P> {
    /// The Kafka message value: one line of compact JSON.
    pub fn to_json(&self) -> String {
        // Cannot fail: no maps with non-string keys, no fallible custom serializers.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Envelope<TradePayload> {
    /// A trade exactly as the live forwarder would write it: `eventTs` = payload `t` = `at`
    /// (§7.2.3), feed `iex`, channel `trades`, version 2, provider `alpaca`, the market session of
    /// `at`, delay class `real_time_exchange_only`; payload `{S, p, s, t}`.
    pub fn trade(
        symbol: &str,
        at: OffsetDateTime,
        price: f64,
        size: f64,
        seq: i64,
        ingest: OffsetDateTime,
    ) -> Self {
        let at = IsoInstant::from(at);
        let payload = TradePayload {
            symbol: Some(symbol.to_string()),
            id: None,
            exchange: None,
            price,
            size,
            conditions: None,
            t: RawInstant::from(at),
            tape: None,
        };
        Envelope::forwarder(CHANNEL_TRADES, symbol, at, seq, ingest.into(), payload)
    }
}

/// A quote's prices and sizes, in Alpaca's order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuoteBook {
    pub bid_price: f64,
    pub bid_size: f64,
    pub ask_price: f64,
    pub ask_size: f64,
}

impl Envelope<QuotePayload> {
    /// A quote as the live forwarder would write it (channel `quotes`, payload
    /// `{S, bp, bs, ap, as, t}`), with the same envelope defaults as [`Envelope::trade`].
    pub fn quote(
        symbol: &str,
        at: OffsetDateTime,
        book: QuoteBook,
        seq: i64,
        ingest: OffsetDateTime,
    ) -> Self {
        let at = IsoInstant::from(at);
        let payload = QuotePayload {
            symbol: Some(symbol.to_string()),
            bid_exchange: None,
            bid_price: book.bid_price,
            bid_size: book.bid_size,
            ask_exchange: None,
            ask_price: book.ask_price,
            ask_size: book.ask_size,
            conditions: None,
            t: RawInstant::from(at),
            tape: None,
        };
        Envelope::forwarder(CHANNEL_QUOTES, symbol, at, seq, ingest.into(), payload)
    }
}

/// One 1-minute bar as the scenario states it (the envelope adds symbol, time and `seq`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinuteBar {
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    pub count: i64,
    pub vwap: Option<f64>,
    /// An `updatedBars` correction of an earlier bar of the same minute, not a `bars` message.
    pub updated: bool,
}

impl Envelope<BarPayload> {
    /// A 1-minute bar as the live forwarder would write it: `eventTs` = payload `t` = the
    /// minute's start `minute`, channel `bars` (or `updatedBars`), `seq` the per-symbol counter
    /// shared by both channels, with the same envelope defaults as [`Envelope::trade`].
    pub fn bar(
        symbol: &str,
        minute: OffsetDateTime,
        bar: MinuteBar,
        seq: i64,
        ingest: OffsetDateTime,
    ) -> Self {
        let at = IsoInstant::from(minute);
        let payload = BarPayload {
            t: RawInstant::from(at),
            open: bar.open,
            high: bar.high,
            low: bar.low,
            close: bar.close,
            volume: bar.volume,
            count: bar.count,
            vwap: bar.vwap,
        };
        let channel = if bar.updated {
            CHANNEL_UPDATED_BARS
        } else {
            CHANNEL_BARS
        };
        Envelope::forwarder(channel, symbol, at, seq, ingest.into(), payload)
    }
}

/// The message value of a forwarder 1-minute bar (see [`Envelope::bar`]).
pub fn bar_message(
    symbol: &str,
    minute: OffsetDateTime,
    bar: MinuteBar,
    seq: i64,
    ingest: OffsetDateTime,
) -> String {
    Envelope::bar(symbol, minute, bar, seq, ingest).to_json()
}

/// The message value of a forwarder trade (see [`Envelope::trade`]).
pub fn trade_message(
    symbol: &str,
    at: OffsetDateTime,
    price: f64,
    size: f64,
    seq: i64,
    ingest: OffsetDateTime,
) -> String {
    Envelope::trade(symbol, at, price, size, seq, ingest).to_json()
}

/// The message value of a forwarder quote (see [`Envelope::quote`]).
#[allow(clippy::too_many_arguments)] // mirrors the scenario's quote event field for field
pub fn quote_message(
    symbol: &str,
    at: OffsetDateTime,
    bid_price: f64,
    bid_size: f64,
    ask_price: f64,
    ask_size: f64,
    seq: i64,
    ingest: OffsetDateTime,
) -> String {
    let book = QuoteBook {
        bid_price,
        bid_size,
        ask_price,
        ask_size,
    };
    Envelope::quote(symbol, at, book, seq, ingest).to_json()
}

/// One input message, decoded as the TA job decodes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Trade(Envelope<TradePayload>),
    Quote(Envelope<QuotePayload>),
    /// A 1-minute bar (`bars` or `updatedBars`).
    Bar(Envelope<BarPayload>),
}

/// Why a message value is not a trade or quote the TA job would accept.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("expected a JSON object, found {0}")]
    NotAnObject(&'static str),
    #[error("cannot tell a trade from a quote: channel {channel} is not trades/quotes and the payload has neither `p` nor `bp`")]
    UnknownKind { channel: String },
    #[error("rejected as a trade envelope: {0}")]
    Trade(#[source] serde_json::Error),
    #[error("rejected as a quote envelope: {0}")]
    Quote(#[source] serde_json::Error),
    #[error("rejected as a 1-minute bar envelope: {0}")]
    Bar(#[source] serde_json::Error),
}

/// What a message is, before decoding it fully.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Trade,
    Quote,
    Bar,
}

/// Decodes one Kafka message value (one JSON line) as a trade or a quote envelope.
///
/// In production the topic tells the two apart; a JSON-lines file has no topic, so the `channel`
/// decides (`trades`/`trade` → trade, `quotes`/`quote` → quote) and, for any other channel, the
/// payload's shape (`p` → trade, `bp` → quote). Channels `bars`/`updatedBars` are 1-minute bars.
pub fn parse_message(value: &str) -> Result<Message, EnvelopeError> {
    let value = lower_case_boolean_literals(value);
    let json: serde_json::Value = serde_json::from_str(&value).map_err(EnvelopeError::Json)?;
    match kind_of(&json)? {
        Kind::Trade => serde_json::from_value(json)
            .map(Message::Trade)
            .map_err(EnvelopeError::Trade),
        Kind::Quote => serde_json::from_value(json)
            .map(Message::Quote)
            .map_err(EnvelopeError::Quote),
        Kind::Bar => serde_json::from_value(json)
            .map(Message::Bar)
            .map_err(EnvelopeError::Bar),
    }
}

fn kind_of(json: &serde_json::Value) -> Result<Kind, EnvelopeError> {
    let object = json
        .as_object()
        .ok_or_else(|| EnvelopeError::NotAnObject(json_type(json)))?;
    let channel = object.get("channel");
    match channel.and_then(serde_json::Value::as_str) {
        Some("trades" | "trade") => return Ok(Kind::Trade),
        Some("quotes" | "quote") => return Ok(Kind::Quote),
        Some(CHANNEL_BARS | CHANNEL_UPDATED_BARS) => return Ok(Kind::Bar),
        _ => {}
    }
    let payload = object.get("payload").and_then(serde_json::Value::as_object);
    match payload {
        Some(p) if p.contains_key("p") => Ok(Kind::Trade),
        Some(p) if p.contains_key("bp") => Ok(Kind::Quote),
        _ => Err(EnvelopeError::UnknownKind {
            channel: channel.map_or_else(|| "(absent)".to_string(), |c| c.to_string()),
        }),
    }
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
