//! The per-symbol bar history of the job's `TaSignalsFunction` (pipeline.md §4.1, §4.4):
//!
//! * the **retained list**: on each bar, append, drop from the front while over the cap (360), then
//!   stable-sort by end time — equivalently: drop the oldest retained bar if full, then insert the
//!   new bar after every bar with the same or an earlier end time;
//! * the **series** ta4j rebuilds from that list: one point per distinct end time whose close is
//!   the one of the bar inserted last for that time, plus the log returns between points;
//! * the **5-minute window** sums over list bars ending in `(E − 300 s, E]` (duplicates count).
//!
//! Bars arriving in time order take an O(1) path; a late or duplicate bar re-derives the series
//! and the window from the list (O(360), rare: only out-of-order trades produce such bars).

use std::collections::VecDeque;

use super::recursive::Slide;

/// One retained bar: only what any signal reads (every indicator uses closes; the VWAPs use
/// close × volume).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ListBar {
    pub end_ms: i64,
    pub close: f64,
    pub volume: f64,
}

/// What happened to the series when a bar was added.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// In time order: the series lost `slide` (if any) at the front and gained one point.
    Appended { slide: Option<Slide> },
    /// Late or duplicate end time: the series was re-derived.
    Rebuilt,
}

/// A sum of doubles kept exactly enough to subtract terms again (double-double, error-free
/// two-sum): the rolling 5-minute sums would otherwise drift over thousands of bars.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct CompensatedSum {
    hi: f64,
    lo: f64,
}

impl CompensatedSum {
    fn add(&mut self, x: f64) {
        let s = self.hi + x;
        let b = s - self.hi;
        let err = (self.hi - (s - b)) + (x - b);
        let lo = self.lo + err;
        let hi = s + lo;
        self.lo = lo - (hi - s);
        self.hi = hi;
    }

    fn value(&self) -> f64 {
        self.hi + self.lo
    }
}

/// Σ c·v and Σ v over the list bars in the window, and how to read them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct WindowSums {
    /// Index in the list of the first bar inside the window.
    start: usize,
    pv: CompensatedSum,
    volume: CompensatedSum,
    /// Bars in the window that take part in the sums, and how many of them have volume ≠ 0.
    regular: usize,
    nonzero: usize,
    /// Bars with a negative or non-finite volume or product: the window is then summed directly,
    /// in list order, like the job (those can cancel or poison a rolling sum).
    irregular: usize,
}

impl WindowSums {
    fn is_regular(bar: &ListBar) -> bool {
        bar.volume >= 0.0 && bar.volume.is_finite() && (bar.close * bar.volume).is_finite()
    }

    fn add(&mut self, bar: &ListBar) {
        if Self::is_regular(bar) {
            self.pv.add(bar.close * bar.volume);
            self.volume.add(bar.volume);
            self.regular += 1;
            self.nonzero += usize::from(bar.volume != 0.0);
        } else {
            self.irregular += 1;
        }
    }

    fn remove(&mut self, bar: &ListBar) {
        if Self::is_regular(bar) {
            self.regular -= 1;
            self.nonzero -= usize::from(bar.volume != 0.0);
            if self.regular == 0 {
                self.pv = CompensatedSum::default();
                self.volume = CompensatedSum::default();
            } else {
                self.pv.add(-(bar.close * bar.volume));
                self.volume.add(-bar.volume);
            }
        } else {
            self.irregular -= 1;
        }
    }
}

/// Retained list, derived series and window sums of one symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    limit: usize,
    window_ms: i64,
    list: VecDeque<ListBar>,
    closes: VecDeque<f64>,
    /// `returns[i] = ln(closes[i] / closes[i−1])`; `returns[0]` is meaningless.
    returns: VecDeque<f64>,
    window: WindowSums,
}

impl History {
    /// `limit` ≥ 1 retained bars, VWAP window of `window_ms`.
    pub fn new(limit: usize, window_ms: i64) -> Self {
        let limit = limit.max(1);
        History {
            limit,
            window_ms,
            list: VecDeque::with_capacity(limit + 1),
            closes: VecDeque::with_capacity(limit + 1),
            returns: VecDeque::with_capacity(limit + 1),
            window: WindowSums::default(),
        }
    }

    /// Adds one bar the way the job does and reports how the series changed.
    pub fn add(&mut self, bar: ListBar) -> Change {
        let in_order = self.list.back().is_none_or(|last| bar.end_ms > last.end_ms);
        if !in_order {
            if self.list.len() >= self.limit {
                self.list.pop_front();
            }
            let at = self.list.partition_point(|b| b.end_ms <= bar.end_ms);
            self.list.insert(at, bar);
            self.rebuild();
            return Change::Rebuilt;
        }
        let slide = if self.list.len() >= self.limit {
            self.drop_oldest()
        } else {
            None
        };
        self.list.push_back(bar);
        let ret = self
            .closes
            .back()
            .map_or(f64::NAN, |p| (bar.close / p).ln());
        self.closes.push_back(bar.close);
        self.returns.push_back(ret);
        self.window.add(&bar);
        self.advance_window();
        Change::Appended { slide }
    }

    /// Replaces the whole history with `bars` (any order; stable-sorted, last `limit` kept).
    pub fn reset(&mut self, bars: impl IntoIterator<Item = ListBar>) {
        let mut bars: Vec<ListBar> = bars.into_iter().collect();
        bars.sort_by_key(|b| b.end_ms);
        let skip = bars.len().saturating_sub(self.limit);
        self.list = bars.into_iter().skip(skip).collect();
        self.rebuild();
    }

    /// Closes of the series, oldest first.
    pub fn closes(&self) -> &VecDeque<f64> {
        &self.closes
    }

    /// Number of points in the series (distinct end times).
    pub fn series_len(&self) -> usize {
        self.closes.len()
    }

    /// `vwap_w5m`: Σ c·v / Σ v over list bars ending in `(E − window, E]`, `None` when Σ v = 0.
    pub fn window_vwap(&self) -> Option<f64> {
        let w = &self.window;
        if w.irregular > 0 {
            let (pv, v) = self.list.range(w.start..).fold((0.0, 0.0), |(pv, v), b| {
                (pv + b.close * b.volume, v + b.volume)
            });
            return (v != 0.0).then(|| pv / v);
        }
        (w.nonzero > 0).then(|| w.pv.value() / w.volume.value())
    }

    /// Population standard deviation of the last `count` (at most) log returns of the series;
    /// `None` with fewer than two points.
    pub fn realized_vol(&self, count: usize) -> Option<f64> {
        let m = self.closes.len();
        if m < 2 {
            return None;
        }
        let n = count.min(m - 1);
        Some(deviation(tail(&self.returns, n)).1)
    }

    /// Mean and population standard deviation of the last `count` closes (Bollinger), if the
    /// series has that many points.
    pub fn mean_and_deviation(&self, count: usize) -> Option<(f64, f64)> {
        if self.closes.len() < count || count == 0 {
            return None;
        }
        Some(deviation(tail(&self.closes, count)))
    }

    /// Drops the oldest retained bar (the front of the sorted list). If that removes the
    /// series' first point, returns how the recursion's seed slides.
    fn drop_oldest(&mut self) -> Option<Slide> {
        let dropped = self.list.pop_front()?;
        if self.window.start == 0 {
            self.window.remove(&dropped);
        } else {
            self.window.start -= 1;
        }
        let duplicate = self
            .list
            .front()
            .is_some_and(|b| b.end_ms == dropped.end_ms);
        if duplicate {
            // A replaced duplicate: the series kept the later bar for that time.
            return None;
        }
        let latest_index = self.closes.len().checked_sub(1)?;
        let old_seed = self.closes.pop_front()?;
        self.returns.pop_front();
        let new_seed = *self.closes.front()?;
        Some(Slide {
            old_seed,
            new_seed,
            latest_index,
        })
    }

    /// Moves the window start past bars ending at or before `E − window`.
    fn advance_window(&mut self) {
        let Some(latest) = self.list.back().map(|b| b.end_ms) else {
            return;
        };
        let cutoff = latest.saturating_sub(self.window_ms);
        while let Some(bar) = self.list.get(self.window.start).copied() {
            if bar.end_ms > cutoff {
                break;
            }
            self.window.remove(&bar);
            self.window.start += 1;
        }
    }

    /// Re-derives the series and the window from the list.
    fn rebuild(&mut self) {
        self.closes.clear();
        self.returns.clear();
        let mut last_end = None;
        for bar in &self.list {
            if last_end == Some(bar.end_ms) {
                if let Some(c) = self.closes.back_mut() {
                    *c = bar.close;
                }
                self.returns.pop_back();
            } else {
                last_end = Some(bar.end_ms);
                self.closes.push_back(bar.close);
            }
            let n = self.closes.len();
            let ret = if n >= 2 {
                (self.closes[n - 1] / self.closes[n - 2]).ln()
            } else {
                f64::NAN
            };
            self.returns.push_back(ret);
        }
        let cutoff = self
            .list
            .back()
            .map_or(i64::MIN, |b| b.end_ms.saturating_sub(self.window_ms));
        let start = self.list.partition_point(|b| b.end_ms <= cutoff);
        self.window = WindowSums {
            start,
            ..WindowSums::default()
        };
        for bar in self.list.range(start..) {
            self.window.add(bar);
        }
    }

    #[cfg(test)]
    fn list_ends(&self) -> Vec<i64> {
        self.list.iter().map(|b| b.end_ms).collect()
    }
}

/// The last `n` elements of a ring as (older part, newer part).
fn tail(ring: &VecDeque<f64>, n: usize) -> (&[f64], &[f64]) {
    let (front, back) = ring.as_slices();
    if n <= back.len() {
        (&[], &back[back.len() - n..])
    } else {
        let from_front = (n - back.len()).min(front.len());
        (&front[front.len() - from_front..], back)
    }
}

/// Two-pass mean and population standard deviation of `parts` (mean first, then the squared
/// deviations: stable even when σ is tiny next to the mean). Four running sums per pass: the
/// rounding differs from a sequential sum by a few ulps, far inside the oracle's tolerance.
fn deviation(parts: (&[f64], &[f64])) -> (f64, f64) {
    let count = (parts.0.len() + parts.1.len()) as f64;
    let mean = (lane_sum(parts.0, |x| x) + lane_sum(parts.1, |x| x)) / count;
    let square = |x: f64| (x - mean) * (x - mean);
    let squares = lane_sum(parts.0, square) + lane_sum(parts.1, square);
    (mean, (squares / count).sqrt())
}

fn lane_sum(values: &[f64], f: impl Fn(f64) -> f64) -> f64 {
    let mut lanes = [0.0f64; 4];
    let mut chunks = values.chunks_exact(4);
    for c in &mut chunks {
        lanes[0] += f(c[0]);
        lanes[1] += f(c[1]);
        lanes[2] += f(c[2]);
        lanes[3] += f(c[3]);
    }
    let rest: f64 = chunks.remainder().iter().map(|&x| f(x)).sum();
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + rest
}

#[cfg(test)]
mod tests;
