//! The 1-minute path (JOB `ta-signals-1m`, pipeline.md §4.1, §4.6, §4.7): the forwarder's
//! 1-minute bars and `updatedBars` go straight to a second signal operator, one `PT1M` row per
//! message, no microbar.
//!
//! The operator is the 1-second one with other settings ([`SignalConfig::minute`]): anchor START
//! (payload `t` is the minute's start, the bar ends 60 s later; the series, the 5-minute VWAP
//! window and the quote freshness all use that end), 65 retained bars, realized volatility over
//! one return. What differs is the row: the forwarder's key, version and flags.

use time::OffsetDateTime;

use super::signals::{BarInput, SignalConfig, SignalValues};
use super::{datetime_from_millis, with_values, RowHead, ROW_VERSION};
use crate::envelope::{BarPayload, Envelope, CHANNEL_UPDATED_BARS, SOURCE_WS};
use crate::model::{Signal, SOURCE_TA, WINDOW_1M};

/// A 1-minute bar lasts this long; its `t` is its start.
pub const MINUTE_MS: i64 = 60_000;

impl SignalConfig {
    /// The 1-minute path of a deployment whose 1-second path is `self`:
    /// `max(realizedVolBars + 5, ceil(300 s / 60 s) + 60)` = 65 retained bars, and the 60 s
    /// realized-volatility window is `ceil(60 s / 60 s)` = 1 bar, i.e. one log return.
    pub fn minute(self) -> Self {
        SignalConfig {
            history_limit: 65,
            realized_vol_returns: 1,
            ..self
        }
    }
}

/// A 1-minute bar as the minute operator reads it, with the envelope fields its row keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct MinuteInput {
    /// The minute's start (payload `t`), Unix milliseconds.
    pub start_ms: i64,
    pub close: f64,
    pub volume: f64,
    /// The forwarder's per-symbol bar counter (`bars:<SYMBOL>`).
    pub seq: u64,
    /// The forwarder's `ingestTs`: the row's `ingest_ts` (pipeline.md §4.6).
    pub ingest_ts: OffsetDateTime,
    /// `bars` → 1, `updatedBars` → 0.
    pub is_final: u8,
    /// `ws` is written as `ta`; a REST backfill keeps `rest`.
    pub source: String,
    /// The envelope's `version` (2 from the live forwarder).
    pub version: u32,
}

impl MinuteInput {
    /// The bar input of the signal operator: the series is ordered by bar end, `t + 60 s`.
    pub fn bar(&self) -> BarInput {
        BarInput {
            end_ms: self.start_ms.saturating_add(MINUTE_MS),
            close: self.close,
            volume: self.volume,
        }
    }
}

impl From<&Envelope<BarPayload>> for MinuteInput {
    fn from(env: &Envelope<BarPayload>) -> Self {
        MinuteInput {
            start_ms: env.payload.t.instant().unix_millis(),
            close: env.payload.close,
            volume: env.payload.volume,
            // A negative forwarder seq lands in the UInt64 column by two's complement.
            seq: env.seq as u64,
            ingest_ts: env.ingest_ts.to_offset_datetime(),
            is_final: u8::from(env.channel != CHANNEL_UPDATED_BARS),
            source: if env.source == SOURCE_WS {
                SOURCE_TA.to_string()
            } else {
                env.source.clone()
            },
            version: u32::try_from(env.version).unwrap_or(ROW_VERSION),
        }
    }
}

/// The `ta_signals` row of a 1-minute bar (§4.6, 1 min column): `event_ts` and `window_start`
/// the minute's start, `window_end` a minute later, window `PT1M`/`PT1M`.
pub fn minute_signal_row(symbol: &str, bar: &MinuteInput, v: &SignalValues) -> Signal {
    let start = datetime_from_millis(bar.start_ms);
    let end = datetime_from_millis(bar.start_ms.saturating_add(MINUTE_MS));
    with_values(
        RowHead {
            symbol: symbol.to_string(),
            event_ts: start,
            seq: bar.seq,
            ingest_ts: bar.ingest_ts,
            is_final: bar.is_final,
            source: bar.source.clone(),
            window: WINDOW_1M,
            window_start: start,
            window_end: end,
            version: bar.version,
        },
        v,
    )
}

#[cfg(test)]
mod tests;
