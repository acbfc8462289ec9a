//! The signal operator of the 1-second path, per symbol (JOB `TaSignalsFunction`, pipeline.md §4):
//! one signal per bar, every indicator evaluated at the **latest** bar of the rebuilt series, the
//! quote snapshot checked against the **incoming** bar's end.
//!
//! This is the bar-level API the golden ta4j data is checked against: feed bars and quotes in
//! processing order, read [`SignalValues`].

use super::history::{Change, History, ListBar};
use super::recursive::{Recursive, SlidePowers};
use crate::envelope::{Envelope, IsoInstant, QuotePayload};
use crate::model::Microbar;

/// `TA_QUOTE_STALE_AFTER_MS` as production and simulation set it (the job's code default is
/// 2000: a deployment that keeps it says so, see `[ta]` in the validator's configuration).
pub const QUOTE_STALE_AFTER_MS: i64 = 15_000;

/// The job's configuration of the 1-second path in production and simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalConfig {
    /// Retained bars: `max(realizedVolBars + 5, ceil(vwapWindow / 1 s) + 60)` = 360.
    pub history_limit: usize,
    /// `TA_VWAP_WINDOW_SECONDS` = 300, in milliseconds.
    pub vwap_window_ms: i64,
    /// `TA_REALIZED_VOL_WINDOW` = 60 s = 60 one-second bars → at most 60 log returns.
    pub realized_vol_returns: usize,
    /// `TA_QUOTE_STALE_AFTER_MS` = 15000; ≤ 0 disables the age limit (look-ahead stays blocked).
    pub quote_stale_after_ms: i64,
}

impl Default for SignalConfig {
    fn default() -> Self {
        SignalConfig {
            history_limit: 360,
            vwap_window_ms: 300_000,
            realized_vol_returns: 60,
            quote_stale_after_ms: QUOTE_STALE_AFTER_MS,
        }
    }
}

/// Bollinger period and width (`BollingerBands*Indicator` with SMA(20), σ(20), k = 2).
const BOLLINGER_BARS: usize = 20;
const BOLLINGER_K: f64 = 2.0;

/// A bar as the signal operator uses it. Open, high and low never influence a signal (every
/// indicator reads closes; the VWAPs read close × volume), so they are not carried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BarInput {
    /// Bar end (the microbar's `t` / `event_ts`) in Unix milliseconds.
    pub end_ms: i64,
    pub close: f64,
    pub volume: f64,
}

impl From<&Microbar> for BarInput {
    fn from(bar: &Microbar) -> Self {
        BarInput {
            end_ms: (bar.event_ts.unix_timestamp_nanos() / 1_000_000) as i64,
            close: bar.c,
            volume: bar.v,
        }
    }
}

/// The stored quote: top of book and its envelope `eventTs` (the freshness clock).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quote {
    pub event_ts: IsoInstant,
    pub bid_price: f64,
    pub bid_size: f64,
    pub ask_price: f64,
    pub ask_size: f64,
}

impl From<&Envelope<QuotePayload>> for Quote {
    fn from(env: &Envelope<QuotePayload>) -> Self {
        Quote {
            event_ts: env.event_ts,
            bid_price: env.payload.bid_price,
            bid_size: env.payload.bid_size,
            ask_price: env.payload.ask_price,
            ask_size: env.payload.ask_size,
        }
    }
}

impl Quote {
    /// JOB `isQuoteFreshForBar`: not after the bar end, and at most `stale_after_ms` older
    /// (`Duration.between(quote, bar).toMillis()`, i.e. truncated to whole milliseconds).
    pub fn is_fresh_for(&self, bar_end_ms: i64, stale_after_ms: i64) -> bool {
        let age_ns = i128::from(bar_end_ms) * 1_000_000 - self.event_ts.unix_nanos();
        if age_ns < 0 {
            return false;
        }
        stale_after_ms <= 0 || age_ns / 1_000_000 <= i128::from(stale_after_ms)
    }
}

/// The indicator columns of one `ta_signals` row, in the golden files' order. `None` is NULL
/// (not computed yet, or NaN/±Inf, which the sink writes as NULL). Sizes are Java `long`s
/// (`Double.toLong()`: truncated toward zero, saturating).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SignalValues {
    pub ema12: Option<f64>,
    pub ema26: Option<f64>,
    pub macd: Option<f64>,
    pub macd_signal: Option<f64>,
    pub macd_hist: Option<f64>,
    pub rsi14: Option<f64>,
    pub boll_mid: Option<f64>,
    pub boll_upper: Option<f64>,
    pub boll_lower: Option<f64>,
    pub vwap_session: Option<f64>,
    pub vwap_w5m: Option<f64>,
    pub vol_realized_w60s: Option<f64>,
    pub imbalance_spread: Option<f64>,
    pub imbalance_bid_px: Option<f64>,
    pub imbalance_ask_px: Option<f64>,
    pub imbalance_bid_sz: Option<i64>,
    pub imbalance_ask_sz: Option<i64>,
}

/// NaN and ±Inf become NULL (the sink's `setNullableDouble`).
pub fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// The quote columns: a raw top-of-book snapshot, not an imbalance ratio (§4.3).
pub(crate) fn imbalance(values: &mut SignalValues, quote: &Quote) {
    values.imbalance_spread = finite(quote.ask_price - quote.bid_price);
    values.imbalance_bid_px = finite(quote.bid_price);
    values.imbalance_ask_px = finite(quote.ask_price);
    values.imbalance_bid_sz = Some(quote.bid_size as i64);
    values.imbalance_ask_sz = Some(quote.ask_size as i64);
}

/// Σ c·v and Σ v over every bar ever processed for the symbol, never reset (§4.4).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SessionSums {
    pub pv: f64,
    pub volume: f64,
}

impl SessionSums {
    pub fn add(&mut self, close: f64, volume: f64) {
        self.pv += close * volume;
        self.volume += volume;
    }

    /// `SessionAccumulatorState.value()`: 0.0 when no volume yet.
    pub fn value(&self) -> f64 {
        if self.volume == 0.0 {
            0.0
        } else {
            self.pv / self.volume
        }
    }
}

/// One symbol's signal state, updated in O(1) per bar in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalEngine {
    config: SignalConfig,
    history: History,
    recursive: Option<Recursive>,
    powers: SlidePowers,
    session: SessionSums,
    quote: Option<Quote>,
}

impl Default for SignalEngine {
    fn default() -> Self {
        Self::new(SignalConfig::default())
    }
}

impl SignalEngine {
    pub fn new(config: SignalConfig) -> Self {
        SignalEngine {
            config,
            history: History::new(config.history_limit, config.vwap_window_ms),
            recursive: None,
            powers: SlidePowers::default(),
            session: SessionSums::default(),
            quote: None,
        }
    }

    /// Starts from an existing state: retained bars (list order; stable-sorted, last
    /// `history_limit` kept), session sums, last quote.
    pub fn seeded(
        config: SignalConfig,
        bars: &[BarInput],
        session: SessionSums,
        quote: Option<Quote>,
    ) -> Self {
        let mut engine = SignalEngine::new(config);
        engine.history.reset(bars.iter().map(list_bar));
        engine.recursive = Recursive::of_series(engine.history.closes().iter().copied());
        engine.session = session;
        engine.quote = quote;
        engine
    }

    /// JOB `processElement2`: the quote replaces the stored one, in processing order.
    pub fn on_quote(&mut self, quote: Quote) {
        self.quote = Some(quote);
    }

    /// JOB `processElement1`: adds the bar and computes its signal.
    pub fn on_bar(&mut self, bar: BarInput) -> SignalValues {
        self.session.add(bar.close, bar.volume);
        match self.history.add(list_bar(&bar)) {
            Change::Appended { slide } => {
                if let (Some(slide), Some(state)) = (slide, self.recursive.as_mut()) {
                    state.slide(slide, &mut self.powers);
                }
                self.append_close(bar.close);
            }
            Change::Rebuilt => {
                self.recursive = Recursive::of_series(self.history.closes().iter().copied());
            }
        }
        self.values(bar.end_ms)
    }

    /// The running session sums (for inspection and seeding elsewhere).
    pub fn session(&self) -> SessionSums {
        self.session
    }

    fn append_close(&mut self, close: f64) {
        let closes = self.history.closes();
        let previous = closes.len().checked_sub(2).map(|i| closes[i]);
        self.recursive = match (self.recursive, previous) {
            (Some(mut state), Some(previous)) => {
                state.push(previous, close);
                Some(state)
            }
            _ => Some(Recursive::seed(close)),
        };
    }

    fn values(&self, bar_end_ms: i64) -> SignalValues {
        let mut v = SignalValues::default();
        let points = self.history.series_len();
        if let Some(r) = &self.recursive {
            let macd = r.macd();
            v.ema12 = finite(r.ema12);
            v.ema26 = finite(r.ema26);
            v.macd = finite(macd);
            v.macd_signal = finite(r.signal);
            v.macd_hist = finite(macd - r.signal);
            if points >= 2 {
                v.rsi14 = finite(r.rsi());
            }
        }
        if let Some((mid, sd)) = self.history.mean_and_deviation(BOLLINGER_BARS) {
            v.boll_mid = finite(mid);
            v.boll_upper = finite(mid + BOLLINGER_K * sd);
            v.boll_lower = finite(mid - BOLLINGER_K * sd);
        }
        v.vwap_session = finite(self.session.value());
        v.vwap_w5m = self.history.window_vwap().and_then(finite);
        v.vol_realized_w60s = self
            .history
            .realized_vol(self.config.realized_vol_returns)
            .and_then(finite);
        if let Some(q) = self
            .quote
            .filter(|q| q.is_fresh_for(bar_end_ms, self.config.quote_stale_after_ms))
        {
            imbalance(&mut v, &q);
        }
        v
    }
}

fn list_bar(bar: &BarInput) -> ListBar {
    ListBar {
        end_ms: bar.end_ms,
        close: bar.close,
        volume: bar.volume,
    }
}

#[cfg(test)]
mod tests;
