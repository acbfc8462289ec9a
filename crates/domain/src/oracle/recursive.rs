//! The recursive indicators — EMA(12), EMA(26), MACD signal EMA(9), RSI(14) — maintained in O(1)
//! per bar while matching ta4j's "rebuild the series from the retained bars on every bar"
//! semantics (pipeline.md §4.1, §4.2).
//!
//! ta4j seeds every recursion at index 0 of the rebuilt series: `EMA_0 = c_0`,
//! `signal_0 = MACD_0 = 0`, `AG_0 = AL_0 = 0`. When the 360-bar history is full, each new bar drops
//! the oldest one, so the seed **slides** to the next bar. Continuing the running values would keep
//! the old seed's residual weight — `(1−k)^359`, about 1e-12 for EMA(26) and 3e-12 for RSI — so
//! [`Recursive::slide`] subtracts it exactly instead, in closed form. With `a = 1 − k` and
//! `D = c_0 − c_1` (old seed minus new seed), for the latest index `N` counted from the old seed:
//!
//! * `EMA'_N = EMA_N − a^N · D` (the difference of the two recursions decays by `a` per step);
//! * MACD changes by `−D (a₁₂^i − a₂₆^i)` at every index `i ≥ 1`, and the new signal seed is 0, so
//!   `signal'_N = signal_N − k₉ · D · Σ_{i=1..N} q^{N−i} (a₁₂^i − a₂₆^i)` with `q = 1 − k₉`, where
//!   `Σ q^{N−i} a^i = a (a^N − q^N) / (a − q)`;
//! * `AG'_N = AG_N − α (1−α)^{N−1} g_1` and `AL'_N = AL_N − α (1−α)^{N−1} l_1`, `α = 1/14`
//!   (the gain at the new seed is defined as 0).
//!
//! Exact zeros matter for RSI (`AL = 0` → 100 or 0), so the number of non-zero gains and losses in
//! the window is counted and an average with no non-zero term is exactly 0.

/// EMA(12) smoothing, `2 / (n + 1)` as ta4j computes it (in double, then converted).
pub const K12: f64 = 2.0 / 13.0;
/// EMA(26) smoothing.
pub const K26: f64 = 2.0 / 27.0;
/// MACD signal EMA(9) smoothing.
pub const K9: f64 = 2.0 / 10.0;
/// RSI(14) Wilder smoothing (ta4j `MMAIndicator`: `1 / n`).
pub const ALPHA: f64 = 1.0 / 14.0;

/// The running values at the latest index of the series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recursive {
    pub ema12: f64,
    pub ema26: f64,
    pub signal: f64,
    pub avg_gain: f64,
    pub avg_loss: f64,
    /// Non-zero gains / losses at indices 1..=N.
    gains: u32,
    losses: u32,
}

/// The oldest series point leaving the window: its close, the next close (the new seed) and the
/// index `N` of the latest point counted from the old seed (`N ≥ 1`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slide {
    pub old_seed: f64,
    pub new_seed: f64,
    pub latest_index: usize,
}

/// Powers used by [`Recursive::slide`], cached for the last index (constant once history is full).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SlidePowers {
    index: usize,
    a12: f64,
    a26: f64,
    q9: f64,
    rsi_weight: f64,
}

impl SlidePowers {
    fn at(&mut self, n: usize) -> Self {
        if self.index != n || n == 0 {
            let e = i32::try_from(n).unwrap_or(i32::MAX);
            *self = SlidePowers {
                index: n,
                a12: (1.0 - K12).powi(e),
                a26: (1.0 - K26).powi(e),
                q9: (1.0 - K9).powi(e),
                rsi_weight: ALPHA * (1.0 - ALPHA).powi(e - 1),
            };
        }
        *self
    }
}

impl Recursive {
    /// The state after the first close of a series.
    pub fn seed(close: f64) -> Self {
        Recursive {
            ema12: close,
            ema26: close,
            signal: 0.0,
            avg_gain: 0.0,
            avg_loss: 0.0,
            gains: 0,
            losses: 0,
        }
    }

    /// The state of a whole series, computed from its first close (the rebuild path).
    pub fn of_series(closes: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut closes = closes.into_iter();
        let first = closes.next()?;
        let mut state = Recursive::seed(first);
        let mut previous = first;
        for close in closes {
            state.push(previous, close);
            previous = close;
        }
        Some(state)
    }

    /// Appends one close (`previous` is the series' last close before it). ta4j's
    /// `AbstractEMAIndicator`: `(value − prev) · k + prev`.
    pub fn push(&mut self, previous: f64, close: f64) {
        self.ema12 += (close - self.ema12) * K12;
        self.ema26 += (close - self.ema26) * K26;
        let macd = self.ema12 - self.ema26;
        self.signal += (macd - self.signal) * K9;
        let (gain, loss) = gain_loss(previous, close);
        self.avg_gain += (gain - self.avg_gain) * ALPHA;
        self.avg_loss += (loss - self.avg_loss) * ALPHA;
        self.gains += u32::from(gain > 0.0);
        self.losses += u32::from(loss > 0.0);
    }

    /// Re-seeds at the next point after the oldest one left the series (see the module docs).
    pub fn slide(&mut self, slide: Slide, powers: &mut SlidePowers) {
        let n = slide.latest_index;
        if n == 0 {
            *self = Recursive::seed(slide.new_seed);
            return;
        }
        let p = powers.at(n);
        let d = slide.old_seed - slide.new_seed;
        let (a, b, q) = (1.0 - K12, 1.0 - K26, 1.0 - K9);
        self.ema12 -= p.a12 * d;
        self.ema26 -= p.a26 * d;
        let sum_a = a * (p.a12 - p.q9) / (a - q);
        let sum_b = b * (p.a26 - p.q9) / (b - q);
        self.signal -= K9 * d * (sum_a - sum_b);
        let (gain, loss) = gain_loss(slide.old_seed, slide.new_seed);
        if gain > 0.0 {
            self.avg_gain -= p.rsi_weight * gain;
            self.gains -= 1;
        }
        if loss > 0.0 {
            self.avg_loss -= p.rsi_weight * loss;
            self.losses -= 1;
        }
        if self.gains == 0 {
            self.avg_gain = 0.0;
        }
        if self.losses == 0 {
            self.avg_loss = 0.0;
        }
    }

    pub fn macd(&self) -> f64 {
        self.ema12 - self.ema26
    }

    /// ta4j `RSIIndicator`: 0 when both averages are zero, 100 when only the loss average is,
    /// else `100 − 100 / (1 + AG/AL)`.
    pub fn rsi(&self) -> f64 {
        if self.losses == 0 {
            if self.gains == 0 {
                0.0
            } else {
                100.0
            }
        } else {
            100.0 - 100.0 / (1.0 + self.avg_gain / self.avg_loss)
        }
    }
}

/// ta4j `GainIndicator` / `LossIndicator`.
fn gain_loss(previous: f64, close: f64) -> (f64, f64) {
    if close > previous {
        (close - previous, 0.0)
    } else if close < previous {
        (0.0, previous - close)
    } else {
        (0.0, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(i: usize) -> f64 {
        // A deterministic, bumpy series with flats, rises and falls.
        let x = i as f64;
        100.0 + (x * 0.7).sin() * 3.0 + ((i * 7919) % 13) as f64 * 0.05
            - if i.is_multiple_of(5) { 0.4 } else { 0.0 }
    }

    fn assert_close(a: f64, b: f64, what: &str) {
        let tol = 1e-12_f64.max(1e-12 * a.abs().max(b.abs()));
        assert!((a - b).abs() <= tol, "{what}: {a} vs {b}");
    }

    #[test]
    fn sliding_the_seed_equals_recomputing_from_the_new_seed() {
        // Windows of every length from 2 to 60 slid over 200 closes: the correction must match a
        // fresh recursion from the window's first close at every step.
        for window in 2..60 {
            let mut powers = SlidePowers::default();
            let mut state = Recursive::of_series((0..window).map(close)).expect("non-empty");
            for start in 1..200 {
                state.slide(
                    Slide {
                        old_seed: close(start - 1),
                        new_seed: close(start),
                        latest_index: window - 1,
                    },
                    &mut powers,
                );
                state.push(close(start + window - 2), close(start + window - 1));
                let fresh =
                    Recursive::of_series((start..start + window).map(close)).expect("non-empty");
                for (a, b, what) in [
                    (state.ema12, fresh.ema12, "ema12"),
                    (state.ema26, fresh.ema26, "ema26"),
                    (state.signal, fresh.signal, "signal"),
                    (state.avg_gain, fresh.avg_gain, "avg gain"),
                    (state.avg_loss, fresh.avg_loss, "avg loss"),
                    (state.rsi(), fresh.rsi(), "rsi"),
                ] {
                    assert_close(a, b, &format!("window {window} start {start} {what}"));
                }
                assert_eq!((state.gains, state.losses), (fresh.gains, fresh.losses));
            }
        }
    }

    #[test]
    fn a_single_gain_leaving_the_window_makes_rsi_exactly_zero_again() {
        // 10, 11, then flat: once the only rise leaves, ta4j has AG = AL = 0 → RSI 0, not 100.
        let mut powers = SlidePowers::default();
        let mut state = Recursive::of_series([10.0, 11.0, 11.0]).expect("non-empty");
        assert_eq!(state.rsi(), 100.0);
        state.slide(
            Slide {
                old_seed: 10.0,
                new_seed: 11.0,
                latest_index: 2,
            },
            &mut powers,
        );
        assert_eq!((state.avg_gain, state.rsi()), (0.0, 0.0));
    }

    #[test]
    fn the_first_values_match_the_warm_up_table() {
        let s = Recursive::seed(99.0);
        assert_eq!(
            (s.ema12, s.ema26, s.macd(), s.signal),
            (99.0, 99.0, 0.0, 0.0)
        );
        let up = Recursive::of_series([99.0, 100.0]).expect("non-empty");
        let down = Recursive::of_series([99.0, 98.0]).expect("non-empty");
        let flat = Recursive::of_series([99.0, 99.0]).expect("non-empty");
        assert_eq!((up.rsi(), down.rsi(), flat.rsi()), (100.0, 0.0, 0.0));
    }
}
