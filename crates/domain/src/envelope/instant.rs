//! Instants as Java's `Instant` reads and prints them.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

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
