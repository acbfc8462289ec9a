//! 1-second microbars per symbol, as the job's `MicrobarProcessFunction` builds them
//! (pipeline.md §2.4, §3.1, §3.2).
//!
//! One bucket in flight per symbol, keyed by `floor_to_second(payload.t)`:
//! a trade of the open second merges; a trade of **any other** second (later or earlier) emits the
//! open bucket at once and opens a new one; the watermark reaching a bucket's end emits it. Every
//! emitted bar takes the symbol's next `seq`. All work per trade is O(1) (plus O(log n) timer
//! bookkeeping per bucket).

use super::watermark::{Timers, Watermark};

/// Index of a symbol in the oracle's tables.
pub type SymbolId = u32;

/// One trade as the microbar operator sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tick {
    /// `floor_to_second(payload.t)` in Unix seconds: the bucket.
    pub second: i64,
    /// `eventTs` in Unix milliseconds (floored): drives the watermark.
    pub event_ms: i64,
    pub price: f64,
    pub size: f64,
}

/// An emitted microbar (§3.1); the row adds the constant columns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClosedBar {
    pub symbol: SymbolId,
    /// Window start in Unix seconds; the window is `[second, second + 1 s)`.
    pub second: i64,
    pub seq: u64,
    pub o: f64,
    pub h: f64,
    pub l: f64,
    pub c: f64,
    pub v: f64,
    /// `Σ p·s / Σ s`, `None` when `Σ s = 0` (may be non-finite; the sink writes that as NULL).
    pub vwap: Option<f64>,
    pub count: u64,
}

impl ClosedBar {
    /// Window end = `event_ts`, in Unix milliseconds.
    pub fn end_ms(&self) -> i64 {
        self.second.saturating_add(1).saturating_mul(1000)
    }

    pub fn start_ms(&self) -> i64 {
        self.second.saturating_mul(1000)
    }
}

/// The job's `BucketState`: first/last price in **arrival** order, running sums.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    second: i64,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
    pv: f64,
    count: u64,
}

impl Bucket {
    fn open(second: i64, price: f64, size: f64) -> Self {
        Bucket {
            second,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: size,
            pv: price * size,
            count: 1,
        }
    }

    fn merge(&mut self, price: f64, size: f64) {
        self.high = java_max(self.high, price);
        self.low = java_min(self.low, price);
        self.close = price;
        self.volume += size;
        self.pv += price * size;
        self.count += 1;
    }

    fn end_ms(&self) -> i64 {
        self.second.saturating_add(1).saturating_mul(1000)
    }
}

/// `Math.max` (Kotlin `max` on doubles): NaN wins, `+0.0 > -0.0`.
fn java_max(a: f64, b: f64) -> f64 {
    if a.is_nan() {
        a
    } else if a == 0.0 && b == 0.0 && a.is_sign_negative() {
        b
    } else if a >= b {
        a
    } else {
        b
    }
}

/// `Math.min`: NaN wins, `-0.0 < +0.0`.
fn java_min(a: f64, b: f64) -> f64 {
    if a.is_nan() {
        a
    } else if a == 0.0 && b == 0.0 && b.is_sign_negative() {
        b
    } else if a <= b {
        a
    } else {
        b
    }
}

/// Per-symbol keyed state: the bucket in flight and the last emitted `seq`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct SymbolBucket {
    open: Option<Bucket>,
    seq: u64,
}

/// The microbar operator over all symbols (one keyed state per symbol, one watermark).
#[derive(Debug, Clone, Default)]
pub struct MicrobarAggregator {
    symbols: Vec<SymbolBucket>,
    watermark: Watermark,
    timers: Timers,
}

impl MicrobarAggregator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the last `seq` a symbol emitted (a symbol with history continues from it).
    pub fn set_last_seq(&mut self, symbol: SymbolId, seq: u64) {
        self.state(symbol).seq = seq;
    }

    /// The last `seq` emitted for a symbol (0 before its first bar).
    pub fn last_seq(&self, symbol: SymbolId) -> u64 {
        self.symbols.get(symbol as usize).map_or(0, |s| s.seq)
    }

    /// Whether a symbol has a bucket in flight.
    pub fn has_open(&self, symbol: SymbolId) -> bool {
        self.symbols
            .get(symbol as usize)
            .is_some_and(|s| s.open.is_some())
    }

    /// Current watermark in Unix milliseconds.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark.current()
    }

    /// Processes one trade; pushes the bars it causes, in emission order: first the symbol's own
    /// bucket if the trade is of another second (§2.4 rule 3), then any bucket of any symbol the
    /// advanced watermark closes (timers in timestamp order).
    pub fn on_trade(&mut self, symbol: SymbolId, tick: Tick, out: &mut Vec<ClosedBar>) {
        let state = self.state(symbol);
        match state.open.as_mut() {
            Some(bucket) if bucket.second == tick.second => bucket.merge(tick.price, tick.size),
            _ => {
                let fresh = Bucket::open(tick.second, tick.price, tick.size);
                let end = fresh.end_ms();
                if let Some(previous) = state.open.replace(fresh) {
                    out.push(Self::emit(state, symbol, previous));
                }
                self.timers.register(end, symbol);
            }
        }
        if let Some(watermark) = self.watermark.observe(tick.event_ms) {
            self.fire_timers(watermark, out);
        }
    }

    /// Emits every bucket still in flight, as if the watermark had passed them all, in window-end
    /// order (then symbol order).
    pub fn flush_open(&mut self, out: &mut Vec<ClosedBar>) {
        let mut open: Vec<(i64, SymbolId)> = self
            .symbols
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.open.map(|b| (b.end_ms(), i as SymbolId)))
            .collect();
        open.sort_unstable();
        for (_, symbol) in open {
            let state = self.state(symbol);
            if let Some(bucket) = state.open.take() {
                out.push(Self::emit(state, symbol, bucket));
            }
        }
        self.timers = Timers::default();
    }

    /// The job's `onTimer`: a due timer emits the symbol's bucket if that bucket ends at or before
    /// the timer's timestamp (timers of replaced buckets may fire for a newer, older bucket).
    fn fire_timers(&mut self, watermark: i64, out: &mut Vec<ClosedBar>) {
        while let Some((at, symbol)) = self.timers.pop_due(watermark) {
            let state = self.state(symbol);
            if let Some(bucket) = state.open.filter(|b| b.end_ms() <= at) {
                state.open = None;
                out.push(Self::emit(state, symbol, bucket));
            }
        }
    }

    fn emit(state: &mut SymbolBucket, symbol: SymbolId, bucket: Bucket) -> ClosedBar {
        state.seq += 1;
        ClosedBar {
            symbol,
            second: bucket.second,
            seq: state.seq,
            o: bucket.open,
            h: bucket.high,
            l: bucket.low,
            c: bucket.close,
            v: bucket.volume,
            vwap: (bucket.volume != 0.0).then(|| bucket.pv / bucket.volume),
            count: bucket.count,
        }
    }

    fn state(&mut self, symbol: SymbolId) -> &mut SymbolBucket {
        let index = symbol as usize;
        if index >= self.symbols.len() {
            self.symbols.resize(index + 1, SymbolBucket::default());
        }
        &mut self.symbols[index]
    }
}

#[cfg(test)]
mod tests;
