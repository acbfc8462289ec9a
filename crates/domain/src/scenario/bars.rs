//! 1-minute bars a scenario publishes to the lane's `bars.1m` topic, as the forwarder does
//! (`[[bars]]`, pipeline.md §1.4 end, §4.7).
//!
//! A bar names its minute by index: minute `k` starts `k` minutes after the whole minute in
//! which the scenario's offset 0 falls, so the bar's `t` is always a whole minute. It is
//! published at `at_ms` (default: the end of its minute, as the forwarder publishes a bar once
//! its minute is over); never before its minute starts, so no event time lies in the future.
//! `updated = true` makes it an `updatedBars` correction of an earlier bar of the same minute.

use std::ops::Range;

use serde::Deserialize;
use time::OffsetDateTime;
use toml::Spanned;

use super::generate::{MAX_PRICE, MAX_SIZE};
use crate::envelope::MinuteBar;

/// One minute, in milliseconds.
pub const MINUTE_MS: u64 = 60_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BarSpec {
    pub symbol: Spanned<String>,
    /// Which minute: its start is `minute` minutes after the minute of offset 0.
    pub minute: Spanned<u64>,
    /// When it is published (offset from the run's start); default the end of its minute.
    pub at_ms: Option<Spanned<u64>>,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    /// Alpaca's `n` (trades in the minute).
    #[serde(default)]
    pub count: u32,
    /// Alpaca's `vw`; absent: no `vw` key.
    pub vwap: Option<f64>,
    /// An `updatedBars` correction rather than a `bars` message.
    #[serde(default)]
    pub updated: bool,
}

impl BarSpec {
    /// The minute's start offset and the publish offset, or `None` when they overflow.
    pub fn offsets(&self) -> Option<(u64, u64)> {
        let start = self.minute.get_ref().checked_mul(MINUTE_MS)?;
        let at = match &self.at_ms {
            Some(at) => *at.get_ref(),
            None => start.checked_add(MINUTE_MS)?,
        };
        Some((start, at))
    }

    pub fn validate(&self) -> Result<(), String> {
        let prices = [self.open, self.high, self.low, self.close];
        if !prices
            .iter()
            .chain(self.vwap.iter())
            .all(|p| p.is_finite() && *p > 0.0 && *p < MAX_PRICE)
        {
            return Err(format!(
                "bar prices (open, high, low, close, vwap) must be positive and finite (below \
                 {MAX_PRICE:e})"
            ));
        }
        if !(self.volume.is_finite() && (0.0..MAX_SIZE).contains(&self.volume)) {
            return Err(format!(
                "bar volume must be finite and not negative (below {MAX_SIZE:e}), got {}",
                self.volume
            ));
        }
        if self.low > self.open.min(self.close) || self.high < self.open.max(self.close) {
            return Err(format!(
                "bar low {} and high {} must enclose open {} and close {}",
                self.low, self.high, self.open, self.close
            ));
        }
        let (start, at) = self.offsets().ok_or_else(|| {
            "the bar's minute or at_ms overflows: far beyond any span".to_string()
        })?;
        if at < start {
            return Err(format!(
                "the bar of minute {} is published at {at} ms, before its minute starts \
                 ({start} ms): its event time would be in the future",
                self.minute.get_ref()
            ));
        }
        Ok(())
    }

    pub fn bar(&self) -> MinuteBar {
        MinuteBar {
            open: self.open,
            high: self.high,
            low: self.low,
            close: self.close,
            volume: self.volume,
            count: i64::from(self.count),
            vwap: self.vwap,
            updated: self.updated,
        }
    }
}

/// A correction must follow a bar of its symbol and minute, earlier in the file and published no
/// later: the job would take a lone `updatedBars` message as just another bar.
pub fn check_corrections(bars: &[Spanned<BarSpec>]) -> Vec<(Range<usize>, String)> {
    let mut errors = Vec::new();
    for (i, b) in bars.iter().enumerate() {
        let spec = b.get_ref();
        if !spec.updated {
            continue;
        }
        let Some((_, at)) = spec.offsets() else {
            continue;
        };
        let corrected = bars[..i].iter().map(Spanned::get_ref).any(|o| {
            !o.updated
                && o.symbol.get_ref() == spec.symbol.get_ref()
                && o.minute.get_ref() == spec.minute.get_ref()
                && o.offsets().is_some_and(|(_, o_at)| o_at <= at)
        });
        if !corrected {
            errors.push((
                b.span(),
                format!(
                    "updated bar of {} minute {} corrects no earlier bar: declare the bar of \
                     that minute before it, published no later",
                    spec.symbol.get_ref(),
                    spec.minute.get_ref()
                ),
            ));
        }
    }
    errors
}

/// The wall-clock start of minute `minute` of a run whose offset 0 is `base`.
pub fn minute_start(base: OffsetDateTime, minute: u64) -> Option<OffsetDateTime> {
    let whole = base.replace_nanosecond(0).ok()?.replace_second(0).ok()?;
    let minutes = i64::try_from(minute).ok()?;
    whole.checked_add(time::Duration::minutes(minutes))
}
