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
            quote_stale_after_ms: 15_000,
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
mod tests {
    use super::*;

    /// 2026-07-21T14:30:01Z in ms.
    const END1: i64 = 1_784_644_201_000;

    fn bar(k: i64, close: f64, volume: f64) -> BarInput {
        BarInput {
            end_ms: END1 + (k - 1) * 1000,
            close,
            volume,
        }
    }

    fn near(got: Option<f64>, want: f64, what: &str) {
        let got = got.unwrap_or_else(|| panic!("{what} is null"));
        assert!(
            (got - want).abs() <= 0.5e-10 + 1e-12,
            "{what}: {got} vs {want}"
        );
    }

    #[test]
    fn the_worked_example_of_section_4_5() {
        let mut e = SignalEngine::default();
        let rows = [
            e.on_bar(bar(1, 99.0, 60.0)),
            e.on_bar(bar(2, 100.0, 10.0)),
            e.on_bar(bar(3, 99.5, 30.0)),
        ];
        let table: [[Option<f64>; 9]; 3] = [
            [
                Some(99.0),
                Some(99.0),
                Some(0.0),
                Some(0.0),
                Some(0.0),
                None,
                Some(99.0),
                Some(99.0),
                None,
            ],
            [
                Some(99.1538461538),
                Some(99.0740740741),
                Some(0.0797720798),
                Some(0.0159544160),
                Some(0.0638176638),
                Some(100.0),
                Some(99.1428571429),
                Some(99.1428571429),
                Some(0.0),
            ],
            [
                Some(99.2071005917),
                Some(99.1056241427),
                Some(0.1014764491),
                Some(0.0330588226),
                Some(0.0684176265),
                Some(65.0),
                Some(99.25),
                Some(99.25),
                Some(0.0075314388),
            ],
        ];
        for (k, (row, want)) in rows.iter().zip(table).enumerate() {
            let got = [
                row.ema12,
                row.ema26,
                row.macd,
                row.macd_signal,
                row.macd_hist,
                row.rsi14,
                row.vwap_session,
                row.vwap_w5m,
                row.vol_realized_w60s,
            ];
            for (j, (g, w)) in got.iter().zip(want).enumerate() {
                let what = format!("bar {} column {j}", k + 1);
                match w {
                    None => assert_eq!(*g, None, "{what}"),
                    Some(w) => near(*g, w, &what),
                }
            }
            assert_eq!((row.boll_mid, row.imbalance_spread), (None, None));
        }
    }

    #[test]
    fn bollinger_starts_at_20_bars_with_population_deviation() {
        let mut e = SignalEngine::default();
        for k in 1..=19 {
            assert_eq!(e.on_bar(bar(k, k as f64, 1.0)).boll_mid, None);
        }
        let v = e.on_bar(bar(20, 20.0, 1.0));
        // 1..=20: mean 10.5, population variance (20² − 1) / 12 = 33.25.
        let sd = 33.25f64.sqrt();
        near(v.boll_mid, 10.5, "mid");
        near(v.boll_upper, 10.5 + 2.0 * sd, "upper");
        near(v.boll_lower, 10.5 - 2.0 * sd, "lower");
    }

    #[test]
    fn quotes_attach_only_when_fresh_and_not_from_the_future() {
        let mut e = SignalEngine::default();
        let at = |ms: i64| IsoInstant::from_unix_millis(ms).expect("in range");
        let quote = |ms: i64| Quote {
            event_ts: at(ms),
            bid_price: 9.5,
            bid_size: 100.9,
            ask_price: 10.5,
            ask_size: 0.5,
        };
        e.on_quote(quote(END1 - 15_000));
        let v = e.on_bar(bar(1, 10.0, 1.0));
        assert_eq!(
            (v.imbalance_spread, v.imbalance_bid_px, v.imbalance_ask_px),
            (Some(1.0), Some(9.5), Some(10.5))
        );
        assert_eq!(
            (v.imbalance_bid_sz, v.imbalance_ask_sz),
            (Some(100), Some(0))
        );
        e.on_quote(quote(END1 + 1000 - 15_001));
        assert_eq!(
            e.on_bar(bar(2, 10.0, 1.0)).imbalance_spread,
            None,
            "15001 ms old"
        );
        e.on_quote(quote(END1 + 2000 + 1));
        assert_eq!(
            e.on_bar(bar(3, 10.0, 1.0)).imbalance_spread,
            None,
            "look-ahead"
        );
        // 15000.999 ms truncates to 15000: fresh.
        let q = Quote {
            event_ts: IsoInstant::from_unix(END1 / 1000 + 3 - 16, 999_001_000).expect("in range"),
            ..quote(0)
        };
        e.on_quote(q);
        assert!(e.on_bar(bar(4, 10.0, 1.0)).imbalance_spread.is_some());
    }

    #[test]
    fn a_late_bar_is_evaluated_at_the_latest_bar_with_its_own_quote_check() {
        let mut e = SignalEngine::default();
        e.on_bar(bar(1, 10.0, 1.0));
        e.on_bar(bar(3, 12.0, 1.0));
        let latest = e.clone().on_bar(bar(4, 12.0, 0.0));
        let late = e.on_bar(bar(2, 11.0, 1.0));
        // Series 10, 11, 12 evaluated at 12: EMA12 after 10 → 11 → 12.
        let ema12 = 10.0 + (11.0 - 10.0) * (2.0 / 13.0);
        let ema12 = ema12 + (12.0 - ema12) * (2.0 / 13.0);
        near(late.ema12, ema12, "ema12");
        assert_eq!(late.rsi14, Some(100.0));
        assert_ne!(late.ema12, latest.ema12);
    }

    #[test]
    fn seeding_continues_the_series_and_the_session() {
        let bars: Vec<BarInput> = (1..=30).map(|k| bar(k, 100.0 + k as f64, 10.0)).collect();
        let mut fresh = SignalEngine::default();
        for b in &bars[..29] {
            fresh.on_bar(*b);
        }
        let session = fresh.session();
        let mut seeded = SignalEngine::seeded(SignalConfig::default(), &bars[..29], session, None);
        assert_eq!(seeded.on_bar(bars[29]), fresh.on_bar(bars[29]));
    }
}
