//! A deliberately plain re-statement of the signal rules (pipeline.md §4.1–4.4): on every bar,
//! rebuild the retained list and the series from scratch and recompute every indicator from the
//! series' first bar, as the job does with ta4j. O(360) per bar; it exists to check the
//! incremental [`SignalEngine`](super::signals::SignalEngine) (tests and property tests compare
//! the two over long random streams) and shares no code with it beyond the value types.

use super::signals::{finite, imbalance, BarInput, Quote, SignalConfig, SignalValues};

/// The rebuild-per-bar reference for one symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceEngine {
    config: SignalConfig,
    list: Vec<BarInput>,
    session_pv: f64,
    session_volume: f64,
    quote: Option<Quote>,
}

impl ReferenceEngine {
    pub fn new(config: SignalConfig) -> Self {
        ReferenceEngine {
            config,
            list: Vec::new(),
            session_pv: 0.0,
            session_volume: 0.0,
            quote: None,
        }
    }

    pub fn on_quote(&mut self, quote: Quote) {
        self.quote = Some(quote);
    }

    pub fn on_bar(&mut self, bar: BarInput) -> SignalValues {
        // Append, drop from the front while over the cap, stable sort by end time.
        self.list.push(bar);
        while self.list.len() > self.config.history_limit.max(1) {
            self.list.remove(0);
        }
        self.list.sort_by_key(|b| b.end_ms);
        self.session_pv += bar.close * bar.volume;
        self.session_volume += bar.volume;

        let closes = self.series();
        let n = closes.len();
        let ema12 = ema(&closes, 12);
        let ema26 = ema(&closes, 26);
        let macd: Vec<f64> = ema12.iter().zip(&ema26).map(|(a, b)| a - b).collect();
        let signal = ema(&macd, 9);
        let last = n - 1;

        let mut v = SignalValues {
            ema12: finite(ema12[last]),
            ema26: finite(ema26[last]),
            macd: finite(macd[last]),
            macd_signal: finite(signal[last]),
            macd_hist: finite(macd[last] - signal[last]),
            ..SignalValues::default()
        };
        if n >= 2 {
            v.rsi14 = finite(rsi(&closes));
        }
        if n >= 20 {
            let tail = &closes[n - 20..];
            let mid = tail.iter().sum::<f64>() / 20.0;
            let var = tail.iter().map(|c| (c - mid).powi(2)).sum::<f64>() / 20.0;
            v.boll_mid = finite(mid);
            v.boll_upper = finite(mid + 2.0 * var.sqrt());
            v.boll_lower = finite(mid - 2.0 * var.sqrt());
        }
        v.vwap_session = finite(if self.session_volume == 0.0 {
            0.0
        } else {
            self.session_pv / self.session_volume
        });
        v.vwap_w5m = self.window_vwap().and_then(finite);
        v.vol_realized_w60s =
            realized_vol(&closes, self.config.realized_vol_returns).and_then(finite);
        if let Some(q) = self
            .quote
            .filter(|q| fresh(q, bar.end_ms, self.config.quote_stale_after_ms))
        {
            imbalance(&mut v, &q);
        }
        v
    }

    /// ta4j series: one close per end time, the later bar in the list replacing the earlier.
    fn series(&self) -> Vec<f64> {
        let mut closes: Vec<f64> = Vec::new();
        let mut last_end = None;
        for b in &self.list {
            if last_end == Some(b.end_ms) {
                if let Some(c) = closes.last_mut() {
                    *c = b.close;
                }
            } else {
                closes.push(b.close);
                last_end = Some(b.end_ms);
            }
        }
        closes
    }

    fn window_vwap(&self) -> Option<f64> {
        let end = self.list.last()?.end_ms;
        let cutoff = end - self.config.vwap_window_ms;
        let (mut pv, mut vol) = (0.0, 0.0);
        for b in self
            .list
            .iter()
            .filter(|b| b.end_ms > cutoff && b.end_ms <= end)
        {
            pv += b.close * b.volume;
            vol += b.volume;
        }
        (vol != 0.0).then(|| pv / vol)
    }
}

/// EMA seeded with the first value, at every index.
fn ema(values: &[f64], n: usize) -> Vec<f64> {
    let k = 2.0 / (n as f64 + 1.0);
    let mut out = Vec::with_capacity(values.len());
    for (i, x) in values.iter().enumerate() {
        let value = if i == 0 {
            *x
        } else {
            (x - out[i - 1]) * k + out[i - 1]
        };
        out.push(value);
    }
    out
}

/// RSI(14) at the last index, Wilder averages seeded with 0 at index 0.
fn rsi(closes: &[f64]) -> f64 {
    let alpha = 1.0 / 14.0;
    let (mut gain, mut loss) = (0.0, 0.0);
    for w in closes.windows(2) {
        let g = if w[1] > w[0] { w[1] - w[0] } else { 0.0 };
        let l = if w[1] < w[0] { w[0] - w[1] } else { 0.0 };
        gain += (g - gain) * alpha;
        loss += (l - loss) * alpha;
    }
    if loss == 0.0 {
        if gain == 0.0 {
            0.0
        } else {
            100.0
        }
    } else {
        100.0 - 100.0 / (1.0 + gain / loss)
    }
}

/// Population σ of the last ≤ `count` log returns.
fn realized_vol(closes: &[f64], count: usize) -> Option<f64> {
    let m = closes.len();
    if m < 2 {
        return None;
    }
    let start = m.saturating_sub(count).max(1);
    let returns: Vec<f64> = (start..m)
        .map(|i| (closes[i] / closes[i - 1]).ln())
        .collect();
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let var = returns.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / n;
    Some(var.sqrt())
}

fn fresh(q: &Quote, bar_end_ms: i64, stale_after_ms: i64) -> bool {
    let quote_ns = q.event_ts.unix_nanos();
    let bar_ns = i128::from(bar_end_ms) * 1_000_000;
    if quote_ns > bar_ns {
        return false;
    }
    stale_after_ms <= 0 || (bar_ns - quote_ns) / 1_000_000 <= i128::from(stale_after_ms)
}
