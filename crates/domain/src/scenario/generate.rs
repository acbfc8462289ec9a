//! Explicit trades and quotes, and the generators that expand into them.
//!
//! Offsets are event-time milliseconds from the run's start. The order of the expanded list is
//! the publish order: events sort by offset, except the ones a generator deliberately publishes
//! late (out-of-order trades), which keep their place after the trades before them.
//!
//! Nothing is generated before it is known to fit: [`Generator::extent`] computes, with checked
//! arithmetic, how many trades a generator makes and its latest offset, and the scenario's limits
//! are applied to those numbers. Expansion runs only on scenarios within them, so its offsets
//! never exceed the (checked) latest one and cannot overflow.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradeSpec {
    pub symbol: Spanned<String>,
    pub at_ms: Spanned<u64>,
    pub price: f64,
    pub size: f64,
}

impl TradeSpec {
    pub fn validate(&self) -> Result<(), String> {
        check_trade(self.price, self.size)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteSpec {
    pub symbol: Spanned<String>,
    pub at_ms: Spanned<u64>,
    pub bid: f64,
    pub bid_size: f64,
    pub ask: f64,
    pub ask_size: f64,
}

impl QuoteSpec {
    pub fn validate(&self) -> Result<(), String> {
        let prices_ok = [self.bid, self.ask]
            .iter()
            .all(|v| v.is_finite() && (0.0..MAX_PRICE).contains(v));
        let sizes_ok = [self.bid_size, self.ask_size]
            .iter()
            .all(|v| v.is_finite() && (0.0..MAX_SIZE).contains(v));
        if !(prices_ok && sizes_ok) {
            return Err(format!(
                "quote prices must be in [0, {MAX_PRICE:e}) and sizes in [0, {MAX_SIZE:e})"
            ));
        }
        if self.ask < self.bid {
            return Err(format!("ask {} is below bid {}", self.ask, self.bid));
        }
        Ok(())
    }
}

/// A generator of trades; `kind` selects it.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Generator {
    /// `per_second` trades each second for `seconds`, price rising by `step` per trade.
    Ramp {
        symbol: String,
        #[serde(default)]
        start_ms: u64,
        seconds: u64,
        per_second: u32,
        price: f64,
        step: f64,
        size: f64,
    },
    /// A seeded random walk: relative moves of up to `volatility` per trade, sizes 1..=`max_size`.
    RandomWalk {
        symbol: String,
        #[serde(default)]
        start_ms: u64,
        seconds: u64,
        per_second: u32,
        price: f64,
        volatility: f64,
        max_size: u32,
        seed: u64,
    },
    /// `count` trades packed into the second starting at `at_ms`.
    Burst {
        symbol: String,
        at_ms: u64,
        count: u32,
        price: f64,
        size: f64,
    },
    /// One trade every `every_secs` seconds: the empty seconds in between make no bars.
    Gaps {
        symbol: String,
        #[serde(default)]
        start_ms: u64,
        trades: u32,
        every_secs: u64,
        price: f64,
        size: f64,
    },
    /// A trade published at `at_ms` but stamped `late_by_ms` earlier (within or beyond the 2 s
    /// out-of-orderness bound): it closes the open bucket early and makes an extra bar (§2.4).
    OutOfOrder {
        symbol: String,
        at_ms: u64,
        late_by_ms: u64,
        price: f64,
        size: f64,
    },
    /// The same trade `copies` times (the TA job does not deduplicate).
    Duplicates {
        symbol: String,
        at_ms: u64,
        copies: u32,
        price: f64,
        size: f64,
    },
    /// Trades on the first and last millisecond of each second, for `seconds` seconds.
    Boundaries {
        symbol: String,
        #[serde(default)]
        start_ms: u64,
        seconds: u64,
        price: f64,
        size: f64,
    },
    /// `count` trades in the one millisecond `at_ms`, the price moving by `step` from trade to
    /// trade: an order sweeping the book, printed as several trades with one timestamp (real
    /// feeds do this; the job merges them in arrival order, so `o` and `c` are the first and
    /// last published, not the lowest and highest).
    Sweep {
        symbol: String,
        at_ms: u64,
        count: u32,
        price: f64,
        step: f64,
        size: f64,
    },
    /// A trade of size zero (counted, but no volume).
    ZeroSize {
        symbol: String,
        at_ms: u64,
        price: f64,
    },
}

impl Generator {
    pub fn symbol(&self) -> &str {
        match self {
            Generator::Ramp { symbol, .. }
            | Generator::RandomWalk { symbol, .. }
            | Generator::Burst { symbol, .. }
            | Generator::Gaps { symbol, .. }
            | Generator::OutOfOrder { symbol, .. }
            | Generator::Duplicates { symbol, .. }
            | Generator::Boundaries { symbol, .. }
            | Generator::Sweep { symbol, .. }
            | Generator::ZeroSize { symbol, .. } => symbol,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        match self {
            Generator::Ramp {
                price,
                step,
                size,
                per_second,
                seconds,
                ..
            } => {
                check_trade(*price, *size)?;
                check_count("per_second", *per_second as u64, 1, 1000)?;
                check_count("seconds", *seconds, 1, 3600)?;
                // Both bounds above hold, so the count is small and exact as a float.
                let last = price + step * (seconds * *per_second as u64 - 1) as f64;
                if !(last.is_finite() && last > 0.0 && last < MAX_PRICE) {
                    return Err(format!(
                        "step {step} takes the price to {last} by the last trade: prices must \
                         stay positive and below {MAX_PRICE:e}"
                    ));
                }
                Ok(())
            }
            Generator::RandomWalk {
                price,
                volatility,
                per_second,
                seconds,
                max_size,
                ..
            } => {
                check_trade(*price, 1.0)?;
                if !(0.0..0.5).contains(volatility) {
                    return Err("volatility must be in [0, 0.5)".into());
                }
                check_count("per_second", *per_second as u64, 1, 1000)?;
                check_count("max_size", *max_size as u64, 1, 1_000_000)?;
                check_count("seconds", *seconds, 1, 3600)
            }
            Generator::Burst {
                price, size, count, ..
            } => {
                check_trade(*price, *size)?;
                check_count("count", *count as u64, 1, 1000)
            }
            Generator::Gaps {
                price,
                size,
                trades,
                every_secs,
                ..
            } => {
                check_trade(*price, *size)?;
                check_count("trades", *trades as u64, 1, 3600)?;
                check_count("every_secs", *every_secs, 2, 3600)
            }
            Generator::OutOfOrder {
                price,
                size,
                at_ms,
                late_by_ms,
                ..
            } => {
                check_trade(*price, *size)?;
                if late_by_ms > at_ms || *late_by_ms == 0 {
                    return Err("late_by_ms must be positive and not exceed at_ms".into());
                }
                Ok(())
            }
            Generator::Duplicates {
                price,
                size,
                copies,
                ..
            } => {
                check_trade(*price, *size)?;
                check_count("copies", *copies as u64, 2, 100)
            }
            Generator::Boundaries {
                price,
                size,
                seconds,
                ..
            } => {
                check_trade(*price, *size)?;
                check_count("seconds", *seconds, 1, 3600)
            }
            Generator::Sweep {
                price,
                step,
                size,
                count,
                ..
            } => {
                check_trade(*price, *size)?;
                check_count("count", *count as u64, 2, 1000)?;
                let last = price + step * (*count - 1) as f64;
                if !(last.is_finite() && last > 0.0 && last < MAX_PRICE) {
                    return Err(format!(
                        "step {step} takes the price to {last} by the last trade: prices must \
                         stay positive and below {MAX_PRICE:e}"
                    ));
                }
                Ok(())
            }
            Generator::ZeroSize { price, .. } => check_trade(*price, 0.0),
        }
    }

    /// How many trades the generator makes and the latest offset it publishes or stamps, by
    /// checked arithmetic on its parameters alone (nothing is generated); `None` when that
    /// offset does not fit in 64 bits. Call it on a generator that [`validate`]s.
    ///
    /// [`validate`]: Generator::validate
    pub fn extent(&self) -> Option<Extent> {
        let (count, last_ms) = match self {
            Generator::Ramp {
                start_ms,
                seconds,
                per_second,
                ..
            }
            | Generator::RandomWalk {
                start_ms,
                seconds,
                per_second,
                ..
            } => {
                let per_second = u64::from(*per_second);
                (
                    seconds.checked_mul(per_second)?,
                    spread_at(
                        *start_ms,
                        seconds.checked_sub(1)?,
                        per_second - 1,
                        per_second,
                    )?,
                )
            }
            Generator::Burst { at_ms, count, .. } => {
                let count = u64::from(*count);
                (count, burst_at(*at_ms, count.checked_sub(1)?, count)?)
            }
            Generator::Gaps {
                start_ms,
                trades,
                every_secs,
                ..
            } => {
                let trades = u64::from(*trades);
                (
                    trades,
                    gap_at(*start_ms, trades.checked_sub(1)?, *every_secs)?,
                )
            }
            Generator::Boundaries {
                start_ms, seconds, ..
            } => (
                seconds.checked_mul(2)?,
                boundary_second(*start_ms, seconds.checked_sub(1)?)?.checked_add(999)?,
            ),
            // Published at `at_ms`, stamped earlier (validate: late_by_ms <= at_ms).
            Generator::OutOfOrder { at_ms, .. } | Generator::ZeroSize { at_ms, .. } => (1, *at_ms),
            Generator::Duplicates { at_ms, copies, .. } => (u64::from(*copies), *at_ms),
            Generator::Sweep { at_ms, count, .. } => (u64::from(*count), *at_ms),
        };
        Some(Extent { count, last_ms })
    }
}

/// What a generator amounts to, known before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub count: u64,
    /// The latest offset it publishes or stamps.
    pub last_ms: u64,
}

// The offset formulas, shared by `extent` (called with the last index) and the expansion. Each
// grows with its index, so an expansion never computes more than the checked last offset;
// the expansion still goes through the checked forms (and skips a `None` that cannot occur).

/// Trade `k` of second `s` of a ramp or random walk: spread over 50..950 ms of the second.
fn spread_at(start_ms: u64, s: u64, k: u64, per_second: u64) -> Option<u64> {
    start_ms
        .checked_add(s.checked_mul(1000)?)?
        .checked_add(50 + (k * 900) / per_second.max(1))
}

/// Trade `i` of a burst of `count`, packed into the second of `at_ms`.
pub(super) fn burst_at(at_ms: u64, i: u64, count: u64) -> Option<u64> {
    (at_ms - at_ms % 1000).checked_add(i.checked_mul(1000)? / count.max(1))
}

/// Trade `i` of a gaps generator, 250 ms into every `every_secs`-th second.
pub(super) fn gap_at(start_ms: u64, i: u64, every_secs: u64) -> Option<u64> {
    start_ms
        .checked_add(i.checked_mul(every_secs)?.checked_mul(1000)?)?
        .checked_add(250)
}

/// The start of the `s`-th whole second from `start_ms`'s.
pub(super) fn boundary_second(start_ms: u64, s: u64) -> Option<u64> {
    (start_ms / 1000).checked_add(s)?.checked_mul(1000)
}

pub(super) fn spread(start_ms: u64, seconds: u64, per_second: u32) -> impl Iterator<Item = u64> {
    let per_second = u64::from(per_second);
    (0..seconds).flat_map(move |s| {
        (0..per_second).filter_map(move |k| spread_at(start_ms, s, k, per_second))
    })
}

pub(super) fn round_cents(p: f64) -> f64 {
    (p * 100.0).round() / 100.0
}

/// Prices and sizes beyond any market's (the oracle's sums stay far from overflow).
pub const MAX_PRICE: f64 = 1e9;
pub const MAX_SIZE: f64 = 1e12;

fn check_trade(price: f64, size: f64) -> Result<(), String> {
    if !(price.is_finite() && price > 0.0 && price < MAX_PRICE) {
        return Err(format!(
            "price must be positive and finite (below {MAX_PRICE:e}), got {price}"
        ));
    }
    if !(size.is_finite() && (0.0..MAX_SIZE).contains(&size)) {
        return Err(format!(
            "size must be finite and not negative (below {MAX_SIZE:e}), got {size}"
        ));
    }
    Ok(())
}

fn check_count(name: &str, value: u64, min: u64, max: u64) -> Result<(), String> {
    if value < min || value > max {
        return Err(format!(
            "{name} must be between {min} and {max}, got {value}"
        ));
    }
    Ok(())
}

/// Explicit trades of one symbol must not go back in time: disorder is a generator's job, so it
/// is never an accident. Several trades in one millisecond are allowed (real feeds print them:
/// one order filling at several prices); they are published in file order, which is the order
/// the TA job merges them in (arrival order, `pipeline.md` §3.1).
pub fn check_explicit_order(trades: &[Spanned<TradeSpec>]) -> Result<(), (Range<usize>, String)> {
    let mut last: std::collections::HashMap<&str, u64> = Default::default();
    for t in trades {
        let spec = t.get_ref();
        let symbol = spec.symbol.get_ref().as_str();
        let at_ms = *spec.at_ms.get_ref();
        if let Some(prev) = last.insert(symbol, at_ms) {
            if at_ms < prev {
                return Err((
                    t.span(),
                    format!(
                        "trades of {symbol} must have non-decreasing at_ms ({at_ms} after {prev}); \
                         use the out_of_order generator for deliberate disorder"
                    ),
                ));
            }
        }
    }
    Ok(())
}
