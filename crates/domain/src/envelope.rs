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

use std::fmt;
use std::str::FromStr;

use serde::de::{self, DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, Weekday};

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

// ---------------------------------------------------------------------------------------------
// Instants
// ---------------------------------------------------------------------------------------------

/// A point on the UTC time line with nanosecond precision, with Java `Instant` semantics:
/// whole seconds since the epoch (floored) plus a non-negative nanosecond part.
///
/// Parsing accepts what `Instant.parse` (`DateTimeFormatter.ISO_INSTANT`) accepts
/// (`2026-07-21T14:30:00Z`, a fraction of 0–9 digits after the point, `Z` or a `±HH:MM[:SS]`
/// offset, case-insensitive `T`/`Z`), including its two calendar oddities: `24:00:00` is the next
/// day's midnight (pipeline.md §9.3) and the leap second `23:59:60` is read as `23:59:59`. Printing
/// matches `Instant.toString()` (fraction in groups of three digits, none when zero). Years are
/// limited to 0000–9999 (four digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IsoInstant {
    secs: i64,
    nanos: u32,
}

/// Why a text is not an instant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not an ISO-8601 instant like 2026-07-21T14:30:00.123Z: {reason}")]
pub struct InstantError {
    text: String,
    reason: &'static str,
}

impl IsoInstant {
    pub const UNIX_EPOCH: IsoInstant = IsoInstant { secs: 0, nanos: 0 };

    /// From Unix seconds and a nanosecond part (`nanos` < 1e9), if representable as a date.
    pub fn from_unix(secs: i64, nanos: u32) -> Option<Self> {
        if nanos >= 1_000_000_000 {
            return None;
        }
        OffsetDateTime::from_unix_timestamp(secs).ok()?;
        Some(IsoInstant { secs, nanos })
    }

    /// From Unix milliseconds (Java `Instant.ofEpochMilli`), if representable as a date.
    pub fn from_unix_millis(ms: i64) -> Option<Self> {
        let secs = ms.div_euclid(1000);
        let nanos = (ms.rem_euclid(1000) as u32) * 1_000_000;
        Self::from_unix(secs, nanos)
    }

    /// Whole seconds since the epoch, floored (`Instant.getEpochSecond`; also the start of the
    /// instant's 1-second bucket, `truncatedTo(SECONDS)`).
    pub fn unix_seconds(self) -> i64 {
        self.secs
    }

    /// Nanoseconds within the second.
    pub fn subsec_nanos(self) -> u32 {
        self.nanos
    }

    /// `Instant.toEpochMilli()`: floored milliseconds (the Flink record timestamp).
    pub fn unix_millis(self) -> i64 {
        self.secs * 1000 + i64::from(self.nanos / 1_000_000)
    }

    /// Nanoseconds since the epoch.
    pub fn unix_nanos(self) -> i128 {
        i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos)
    }

    pub fn to_offset_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(self.unix_nanos())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

impl From<OffsetDateTime> for IsoInstant {
    fn from(t: OffsetDateTime) -> Self {
        IsoInstant {
            secs: t.unix_timestamp(),
            nanos: t.nanosecond(),
        }
    }
}

impl From<IsoInstant> for OffsetDateTime {
    fn from(t: IsoInstant) -> Self {
        t.to_offset_datetime()
    }
}

impl fmt::Display for IsoInstant {
    /// `Instant.toString()`: `2026-07-21T14:30:00Z`, `…:00.123Z`, `…:00.123456Z`, `…:00.123456789Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.to_offset_datetime();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )?;
        let n = self.nanos;
        if n == 0 {
        } else if n.is_multiple_of(1_000_000) {
            write!(f, ".{:03}", n / 1_000_000)?;
        } else if n.is_multiple_of(1_000) {
            write!(f, ".{:06}", n / 1_000)?;
        } else {
            write!(f, ".{n:09}")?;
        }
        f.write_str("Z")
    }
}

impl FromStr for IsoInstant {
    type Err = InstantError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_instant(text).map_err(|reason| InstantError {
            text: text.to_string(),
            reason,
        })
    }
}

impl Serialize for IsoInstant {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IsoInstant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// A small cursor over the ASCII text of an instant.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize, what: &'static str) -> Result<u32, &'static str> {
        let end = self.at + n;
        let chunk = self.bytes.get(self.at..end).ok_or(what)?;
        let mut value = 0u32;
        for &b in chunk {
            if !b.is_ascii_digit() {
                return Err(what);
            }
            value = value * 10 + u32::from(b - b'0');
        }
        self.at = end;
        Ok(value)
    }

    fn literal(&mut self, options: &[u8], what: &'static str) -> Result<u8, &'static str> {
        match self.bytes.get(self.at) {
            Some(b) if options.contains(b) => {
                self.at += 1;
                Ok(*b)
            }
            _ => Err(what),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }
}

fn parse_instant(text: &str) -> Result<IsoInstant, &'static str> {
    let mut c = Cursor {
        bytes: text.as_bytes(),
        at: 0,
    };
    let year = c.digits(4, "expected a four-digit year")?;
    c.literal(b"-", "expected '-' after the year")?;
    let month = c.digits(2, "expected a two-digit month")?;
    c.literal(b"-", "expected '-' after the month")?;
    let day = c.digits(2, "expected a two-digit day")?;
    c.literal(b"Tt", "expected 'T' between date and time")?;
    let hour = c.digits(2, "expected a two-digit hour")?;
    c.literal(b":", "expected ':' after the hour")?;
    let minute = c.digits(2, "expected two-digit minutes")?;
    c.literal(
        b":",
        "expected ':' after the minutes (seconds are required)",
    )?;
    let second = c.digits(2, "expected two-digit seconds")?;
    let mut nanos = 0u32;
    if c.peek() == Some(b'.') {
        c.at += 1;
        // Java's fraction parser has a minimum width of 0 here: `…:00.Z` is a whole second.
        let mut count = 0;
        while let Some(b) = c.peek().filter(u8::is_ascii_digit) {
            if count == 9 {
                return Err("more than nine fraction digits");
            }
            nanos = nanos * 10 + u32::from(b - b'0');
            count += 1;
            c.at += 1;
        }
        nanos *= 10u32.pow(9 - count);
    }
    let offset_secs = parse_offset(&mut c)?;
    if c.at != c.bytes.len() {
        return Err("unexpected text after the offset");
    }
    // `InstantPrinterParser`: `24:00:00` (no fraction) rolls over to the next day, and the leap
    // second `23:59:60` becomes `23:59:59`; everything else must be a valid time of day.
    let (hour, second, next_day) = match (hour, minute, second) {
        (24, 0, 0) if nanos == 0 => (0, 0, true),
        (23, 59, 60) => (23, 59, false),
        _ => (hour, second, false),
    };
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or("month out of range")?;
    let mut date = Date::from_calendar_date(year as i32, month, day as u8)
        .map_err(|_| "no such calendar date")?;
    if next_day {
        date = date.next_day().ok_or("instant out of range")?;
    }
    let time = Time::from_hms(hour as u8, minute as u8, second as u8)
        .map_err(|_| "time of day out of range")?;
    let local = PrimitiveDateTime::new(date, time).assume_utc();
    let secs = local.unix_timestamp() - i64::from(offset_secs);
    IsoInstant::from_unix(secs, nanos).ok_or("instant out of range")
}

/// `Z`/`z`, or `±HH:MM` with optional `:SS`; returns the offset in seconds east of UTC.
fn parse_offset(c: &mut Cursor<'_>) -> Result<i32, &'static str> {
    match c.literal(b"Zz+-", "expected 'Z' or a ±HH:MM offset")? {
        b'Z' | b'z' => Ok(0),
        sign => {
            let hours = c.digits(2, "expected two-digit offset hours")?;
            c.literal(b":", "expected ':' in the offset")?;
            let minutes = c.digits(2, "expected two-digit offset minutes")?;
            let seconds = if c.peek() == Some(b':') {
                c.at += 1;
                c.digits(2, "expected two-digit offset seconds")?
            } else {
                0
            };
            if hours > 18 || minutes > 59 || seconds > 59 {
                return Err("offset out of range");
            }
            let total = (hours * 3600 + minutes * 60 + seconds) as i32;
            Ok(if sign == b'-' { -total } else { total })
        }
    }
}

/// An instant kept with its original text: the forwarder copies Alpaca's `t` into the payload
/// **unchanged** (§1.4), so the payload's `t` and the envelope's re-printed `eventTs` may differ
/// textually while denoting the same instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawInstant {
    raw: String,
    instant: IsoInstant,
}

impl RawInstant {
    pub fn parse(raw: &str) -> Result<Self, InstantError> {
        Ok(RawInstant {
            raw: raw.to_string(),
            instant: raw.parse()?,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn instant(&self) -> IsoInstant {
        self.instant
    }
}

impl From<IsoInstant> for RawInstant {
    fn from(instant: IsoInstant) -> Self {
        RawInstant {
            raw: instant.to_string(),
            instant,
        }
    }
}

impl Serialize for RawInstant {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for RawInstant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        RawInstant::parse(&text).map_err(de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Market session (FWD-FEED classifyMarketSession)
// ---------------------------------------------------------------------------------------------

/// The forwarder's `marketSession` for an event time: the America/New_York wall-clock time of day
/// `< 04:00` overnight, `< 09:30` pre, `< 16:00` regular, `< 20:00` post, else overnight (no
/// weekend or holiday logic). US daylight-saving time is applied with the rules in force since
/// 2007 (second Sunday of March to first Sunday of November, switching at 02:00 local), so no time
/// zone database is needed; instants before 2007 get those rules too.
pub fn market_session(at: IsoInstant) -> &'static str {
    let offset_secs: i64 = if is_us_eastern_dst(at) {
        -4 * 3600
    } else {
        -5 * 3600
    };
    let minute_of_day = (at.unix_seconds() + offset_secs).rem_euclid(86_400) / 60;
    match minute_of_day {
        m if m < 4 * 60 => "overnight",
        m if m < 9 * 60 + 30 => "pre",
        m if m < 16 * 60 => "regular",
        m if m < 20 * 60 => "post",
        _ => "overnight",
    }
}

/// Whether US Eastern daylight time is in effect at `at`.
fn is_us_eastern_dst(at: IsoInstant) -> bool {
    let year = at.to_offset_datetime().year();
    // 02:00 EST = 07:00 UTC on the second Sunday of March;
    // 02:00 EDT = 06:00 UTC on the first Sunday of November.
    let (Some(start), Some(end)) = (
        nth_sunday(year, Month::March, 2),
        nth_sunday(year, Month::November, 1),
    ) else {
        return false;
    };
    let start = start.midnight().assume_utc().unix_timestamp() + 7 * 3600;
    let end = end.midnight().assume_utc().unix_timestamp() + 6 * 3600;
    (start..end).contains(&at.unix_seconds())
}

fn nth_sunday(year: i32, month: Month, n: u8) -> Option<Date> {
    let first = Date::from_calendar_date(year, month, 1).ok()?;
    let to_sunday = (7 - first.weekday().number_days_from_sunday()) % 7;
    let day = 1 + to_sunday + 7 * (n - 1);
    let date = Date::from_calendar_date(year, month, day).ok()?;
    (date.weekday() == Weekday::Sunday).then_some(date)
}

// ---------------------------------------------------------------------------------------------
// Envelope and payloads
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Parsing one message value
// ---------------------------------------------------------------------------------------------

/// One input message, decoded as the TA job decodes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Trade(Envelope<TradePayload>),
    Quote(Envelope<QuotePayload>),
}

/// Why a message value is not a trade or quote the TA job would accept.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("expected a JSON object, found {0}")]
    NotAnObject(&'static str),
    #[error("channel `{0}` carries 1-minute bars, which the oracle does not model (trades and quotes only)")]
    UnsupportedChannel(String),
    #[error("cannot tell a trade from a quote: channel {channel} is not trades/quotes and the payload has neither `p` nor `bp`")]
    UnknownKind { channel: String },
    #[error("rejected as a trade envelope: {0}")]
    Trade(#[source] serde_json::Error),
    #[error("rejected as a quote envelope: {0}")]
    Quote(#[source] serde_json::Error),
}

/// What a message is, before decoding it fully.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Trade,
    Quote,
}

/// Decodes one Kafka message value (one JSON line) as a trade or a quote envelope.
///
/// In production the topic tells the two apart; a JSON-lines file has no topic, so the `channel`
/// decides (`trades`/`trade` → trade, `quotes`/`quote` → quote) and, for any other channel, the
/// payload's shape (`p` → trade, `bp` → quote). Channels `bars`/`updatedBars` are refused.
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
        Some(bars @ ("bars" | "updatedBars")) => {
            return Err(EnvelopeError::UnsupportedChannel(bars.to_string()))
        }
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

// ---------------------------------------------------------------------------------------------
// kotlinx-compatible scalar readers
// ---------------------------------------------------------------------------------------------

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
fn kotlin_boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
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
fn kotlin_long<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match number_or_text(d, "an integer (Long)")? {
        NumberOrText::Int(i) => Ok(i),
        NumberOrText::Text(t) => t
            .parse()
            .map_err(|_| de::Error::custom(format!("`{t}` is not an integer (Long)"))),
        NumberOrText::Float(f) => Err(de::Error::custom(format!("{f} is not an integer (Long)"))),
    }
}

/// kotlinx `Int`.
fn kotlin_int<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    let value = kotlin_long(d)?;
    i32::try_from(value).map_err(|_| de::Error::custom(format!("{value} is out of Int range")))
}

/// kotlinx `Double`: a number or a numeric string; NaN and infinities are rejected.
fn kotlin_double<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
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
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const EXAMPLE: &str = r#"{"ingestTs":"2026-07-21T14:30:00.131482Z","eventTs":"2026-07-21T14:30:00.123456789Z","feed":"iex","channel":"trades","symbol":"NVDA","seq":48213,"payload":{"S":"NVDA","i":52983525029461,"x":"V","p":172.35,"s":100.0,"c":["@"],"t":"2026-07-21T14:30:00.123456789Z","z":"C"},"accountLabel":null,"isFinal":true,"source":"ws","window":null,"version":2,"provider":"alpaca","marketSession":"regular","delayClass":"real_time_exchange_only"}"#;

    fn trade(json: &str) -> Result<Envelope<TradePayload>, EnvelopeError> {
        match parse_message(json)? {
            Message::Trade(t) => Ok(t),
            Message::Quote(_) => panic!("parsed as a quote"),
        }
    }

    #[test]
    fn the_contract_example_round_trips_byte_for_byte() {
        let env = trade(EXAMPLE).expect("parses");
        assert_eq!(env.payload.price, 172.35);
        assert_eq!(env.payload.size, 100.0);
        assert_eq!(env.payload.id, Some(52983525029461));
        assert_eq!(env.payload.conditions, Some(vec!["@".to_string()]));
        assert_eq!(env.event_ts.subsec_nanos(), 123_456_789);
        assert_eq!(env.to_json(), EXAMPLE);
    }

    #[test]
    fn the_constructor_writes_the_forwarder_defaults() {
        let json = trade_message(
            "NVDA",
            datetime!(2026-07-21 14:30:00.123 UTC),
            172.35,
            100.0,
            7,
            datetime!(2026-07-21 14:30:00.131482 UTC),
        );
        assert_eq!(
            json,
            r#"{"ingestTs":"2026-07-21T14:30:00.131482Z","eventTs":"2026-07-21T14:30:00.123Z","feed":"iex","channel":"trades","symbol":"NVDA","seq":7,"payload":{"S":"NVDA","p":172.35,"s":100.0,"t":"2026-07-21T14:30:00.123Z"},"accountLabel":null,"isFinal":true,"source":"ws","window":null,"version":2,"provider":"alpaca","marketSession":"regular","delayClass":"real_time_exchange_only"}"#
        );
        let quote = quote_message(
            "NVDA",
            datetime!(2026-07-21 14:30:00 UTC),
            172.3,
            200.0,
            172.4,
            300.5,
            8,
            datetime!(2026-07-21 14:30:00.5 UTC),
        );
        assert_eq!(
            quote,
            r#"{"ingestTs":"2026-07-21T14:30:00.500Z","eventTs":"2026-07-21T14:30:00Z","feed":"iex","channel":"quotes","symbol":"NVDA","seq":8,"payload":{"S":"NVDA","bp":172.3,"bs":200.0,"ap":172.4,"as":300.5,"t":"2026-07-21T14:30:00Z"},"accountLabel":null,"isFinal":true,"source":"ws","window":null,"version":2,"provider":"alpaca","marketSession":"regular","delayClass":"real_time_exchange_only"}"#
        );
        assert!(matches!(parse_message(&quote), Ok(Message::Quote(_))));
    }

    #[test]
    fn instants_print_like_java() {
        let cases = [
            (datetime!(2026-07-21 14:30:00 UTC), "2026-07-21T14:30:00Z"),
            (
                datetime!(2026-07-21 14:30:00.1 UTC),
                "2026-07-21T14:30:00.100Z",
            ),
            (
                datetime!(2026-07-21 14:30:00.12345 UTC),
                "2026-07-21T14:30:00.123450Z",
            ),
            (
                datetime!(2026-07-21 14:30:00.000000001 UTC),
                "2026-07-21T14:30:00.000000001Z",
            ),
            (
                datetime!(1969-12-31 23:59:59.5 UTC),
                "1969-12-31T23:59:59.500Z",
            ),
        ];
        for (t, text) in cases {
            assert_eq!(IsoInstant::from(t).to_string(), text);
            assert_eq!(text.parse::<IsoInstant>(), Ok(IsoInstant::from(t)));
        }
    }

    #[test]
    fn instants_parse_like_instant_parse() {
        let base: IsoInstant = "2026-07-21T14:30:00Z".parse().expect("valid");
        assert_eq!("2026-07-21t14:30:00z".parse::<IsoInstant>(), Ok(base));
        assert_eq!("2026-07-21T16:30:00+02:00".parse::<IsoInstant>(), Ok(base));
        assert_eq!("2026-07-21T10:30:00-04:00".parse::<IsoInstant>(), Ok(base));
        assert_eq!(base.unix_millis(), 1_784_644_200_000);
        let neg: IsoInstant = "1969-12-31T23:59:59.999Z".parse().expect("valid");
        assert_eq!((neg.unix_seconds(), neg.unix_millis()), (-1, -1));
        // Java's rollover forms: 24:00 is the next day's midnight, a leap second the one before.
        let midnight: IsoInstant = "2026-07-22T00:00:00Z".parse().expect("valid");
        assert_eq!("2026-07-21T24:00:00Z".parse::<IsoInstant>(), Ok(midnight));
        assert_eq!(
            "2026-07-21T24:00:00.000z".parse::<IsoInstant>(),
            Ok(midnight)
        );
        // Judged on the local time of day, before the offset applies.
        assert_eq!(
            "2026-07-21T23:59:60.25+02:00".parse::<IsoInstant>(),
            "2026-07-21T21:59:59.25Z".parse::<IsoInstant>()
        );
        assert_eq!("2026-07-21T14:30:00.Z".parse::<IsoInstant>(), Ok(base));
        for bad in [
            "2026-07-21T14:30Z",
            "2026-07-21 14:30:00Z",
            "2026-07-21T14:30:00",
            "2026-02-30T14:30:00Z",
            "2026-02-30T24:00:00Z",
            "2026-07-21T14:30:00.1234567891Z",
            "2026-07-21T24:00:00.001Z",
            "2026-07-21T24:01:00Z",
            "2026-07-21T23:58:60Z",
            "2026-07-22T01:59:60+02:00",
            "2026-07-21T23:59:61Z",
            "1784644200000",
            "2026-07-21T14:30:00Zjunk",
        ] {
            let err = bad.parse::<IsoInstant>().expect_err(bad);
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    /// `fixtures/envelopes/kotlinx.toml`, shared with the stand-in TA job's parser.
    #[derive(Deserialize)]
    struct Cases {
        base: String,
        case: Vec<Case>,
    }

    #[derive(Deserialize)]
    struct Case {
        name: String,
        replace: (String, String),
        accept: bool,
        is_final: Option<bool>,
        event_ms: Option<i64>,
        t_ns: Option<i128>,
    }

    #[test]
    fn accepts_and_rejects_the_envelopes_the_job_does() {
        let cases: Cases = toml::from_str(include_str!("../../../fixtures/envelopes/kotlinx.toml"))
            .expect("fixture");
        assert!(cases.case.iter().filter(|c| !c.accept).count() >= 20);
        for case in &cases.case {
            let (from, to) = &case.replace;
            assert!(
                cases.base.contains(from.as_str()),
                "{}: no {from}",
                case.name
            );
            let message = cases.base.replacen(from.as_str(), to, 1);
            let parsed = trade(&message);
            if !case.accept {
                assert!(parsed.is_err(), "{} was accepted", case.name);
                continue;
            }
            let env = parsed.unwrap_or_else(|e| panic!("{} was rejected: {e}", case.name));
            if let Some(is_final) = case.is_final {
                assert_eq!(env.is_final, is_final, "{}", case.name);
            }
            if let Some(ms) = case.event_ms {
                assert_eq!(env.event_ts.unix_millis(), ms, "{}", case.name);
            }
            if let Some(ns) = case.t_ns {
                assert_eq!(env.payload.t.instant().unix_nanos(), ns, "{}", case.name);
            }
        }
    }

    #[test]
    fn boolean_literals_are_lower_cased_only_outside_strings() {
        let text = r#"{"a":TRUE,"b":"FALSE \" TRUE","c":[False],"d":TRUEX,"e":true}"#;
        assert_eq!(
            lower_case_boolean_literals(text),
            r#"{"a":true,"b":"FALSE \" TRUE","c":[false],"d":TRUEX,"e":true}"#
        );
        assert!(matches!(
            lower_case_boolean_literals(EXAMPLE),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn market_sessions_follow_new_york_wall_clock_with_dst() {
        let at = |t: OffsetDateTime| market_session(IsoInstant::from(t));
        // Summer (EDT, UTC-4).
        assert_eq!(at(datetime!(2026-07-21 07:59:59 UTC)), "overnight");
        assert_eq!(at(datetime!(2026-07-21 08:00:00 UTC)), "pre");
        assert_eq!(at(datetime!(2026-07-21 13:30:00 UTC)), "regular");
        assert_eq!(at(datetime!(2026-07-21 20:00:00 UTC)), "post");
        assert_eq!(at(datetime!(2026-07-22 00:00:00 UTC)), "overnight");
        // Winter (EST, UTC-5): 13:30 UTC is 08:30 local.
        assert_eq!(at(datetime!(2026-01-05 13:30:00 UTC)), "pre");
        assert_eq!(at(datetime!(2026-01-05 14:30:00 UTC)), "regular");
        // 2026: DST from Sunday 8 March 07:00 UTC to Sunday 1 November 06:00 UTC.
        assert_eq!(at(datetime!(2026-03-08 06:59:59 UTC)), "overnight"); // 01:59:59 EST
        assert_eq!(at(datetime!(2026-03-08 13:30:00 UTC)), "regular"); // 09:30 EDT
        assert_eq!(at(datetime!(2026-11-01 13:30:00 UTC)), "pre"); // 08:30 EST
        assert_eq!(at(datetime!(2026-10-31 13:30:00 UTC)), "regular"); // 09:30 EDT
        assert_eq!(at(datetime!(2026-11-01 05:59:59 UTC)), "overnight");
    }

    #[test]
    fn parsing_follows_the_ta_job_rules() {
        let with = |from: &str, to: &str| EXAMPLE.replacen(from, to, 1);
        // Unknown keys are ignored; optional envelope keys may be absent.
        let minimal = r#"{"ingestTs":"2026-07-21T14:30:00Z","eventTs":"2026-07-21T14:30:00Z","feed":"x","channel":"trades","symbol":"BTC/USD","seq":1,"payload":{"p":1.5,"s":2,"t":"2026-07-21T14:30:00Z","extra":{}},"more":[1]}"#;
        let env = trade(minimal).expect("minimal payload is enough");
        assert_eq!(
            (env.is_final, env.source.as_str(), env.version),
            (true, "ws", 1)
        );
        assert_eq!(env.payload.size, 2.0);
        // Quoted numbers are accepted, like kotlinx.
        assert_eq!(
            trade(&with("48213", "\"48213\"")).expect("quoted seq").seq,
            48213
        );
        // Undeclared payload keys with odd types do not fail the record.
        assert_eq!(
            trade(&with("\"x\":\"V\"", "\"x\":5"))
                .expect("lenient")
                .payload
                .exchange,
            None
        );
        for (from, to, needle) in [
            ("\"isFinal\":true", "\"isFinal\":null", "boolean"),
            ("\"seq\":48213", "\"seq\":null", "null, expected an integer"),
            ("\"seq\":48213", "\"seq\":1.5", "not an integer"),
            ("\"p\":172.35", "\"p\":\"abc\"", "not a number"),
            ("\"seq\":48213,", "", "missing field `seq`"),
            (
                "\"eventTs\":\"2026-07-21T14:30:00.123456789Z\",",
                "",
                "missing field `eventTs`",
            ),
            ("\"p\":172.35,", "", "missing field `p`"),
            (
                "\"t\":\"2026-07-21T14:30:00.123456789Z\"",
                "\"t\":1784644200000",
                "string",
            ),
            (
                "\"t\":\"2026-07-21T14:30:00.123456789Z\"",
                "\"t\":\"yesterday\"",
                "yesterday",
            ),
            ("\"feed\":\"iex\"", "\"feed\":null", "string"),
            (
                "\"window\":null",
                "\"window\":{\"size\":\"PT1S\"}",
                "missing field `step`",
            ),
            ("\"accountLabel\":null", "\"accountLabel\":5", "string"),
        ] {
            let err = trade(&with(from, to)).expect_err(to).to_string();
            assert!(err.contains(needle), "{to}: {err}");
        }
        assert!(matches!(
            parse_message("[1]"),
            Err(EnvelopeError::NotAnObject(_))
        ));
        assert!(matches!(parse_message("{"), Err(EnvelopeError::Json(_))));
        let bars = with("\"channel\":\"trades\"", "\"channel\":\"bars\"");
        assert!(matches!(
            parse_message(&bars),
            Err(EnvelopeError::UnsupportedChannel(_))
        ));
        // Unknown channel: the payload shape decides.
        let odd = with("\"channel\":\"trades\"", "\"channel\":\"t\"");
        assert!(matches!(parse_message(&odd), Ok(Message::Trade(_))));
    }
}
