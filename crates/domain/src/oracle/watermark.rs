//! Event time of the trade stream: the bounded-out-of-orderness watermark and the microbar
//! operator's event-time timers (pipeline.md §2.3, §2.4 rule 4, §3.2).
//!
//! # A single, eager source
//!
//! Production runs one watermark generator per Kafka source split (3 partitions, 8 subtasks), each
//! `max eventTs seen − 2000 ms − 1 ms`, emitted **periodically** (every 1 s of processing time),
//! forwarded only when it increases, combined as the minimum over non-idle inputs (idle after
//! 30 s). The oracle models **one** source whose watermark advances **immediately** after each
//! trade that raises the maximum event time. That keeps it deterministic, and it changes the
//! *timing* of watermark-driven emissions but not the rows, with two exceptions:
//!
//! * quote/bar interleaving: a bar's `imbalance_*` depends on which quote the signal operator has
//!   processed when the bar arrives (§4.3), and production closes a bar up to ~1 s (one periodic
//!   watermark) later than the oracle;
//! * trades of one symbol whose bucket only the watermark can close — trades more than 2 s older
//!   than the newest event time, or symbols lagging other symbols of the same partition by more
//!   than 2 s: production may merge such trades that arrive before its next periodic watermark
//!   into one bar where the oracle has already closed the bucket, and vice versa.
//!
//! A stream published in event-time order with `eventTs = payload.t` (§7.2.3, §7.2.5) hits
//! neither exception, except through quotes sent after a bar's end.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// `TA_MAX_OUT_OF_ORDER_MS` in production and simulation (§2.3).
pub const MAX_OUT_OF_ORDER_MS: i64 = 2000;

/// `TA_WATERMARK_IDLE_TIMEOUT_MS` in production and simulation (§2.3): a partition without
/// records for this long stops holding the watermark back. Until then a bar that only the
/// watermark can close waits: about 31 s after the clock trade on the real job (§9.7).
pub const IDLE_TIMEOUT_MS: i64 = 30_000;

/// Flink's periodic watermark interval (`setAutoWatermarkInterval`, §2.3): the watermark, and
/// with it the bucket timers, moves at most once a second.
pub const WATERMARK_INTERVAL_MS: i64 = 1_000;

/// The watermark of one source with bounded out-of-orderness: `max eventTs − 2000 − 1` ms, so a
/// bucket ending at `E` closes once some trade has `eventTs ≥ E + 2001 ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watermark {
    current: Option<i64>,
}

impl Watermark {
    /// Records a trade's event time (ms); returns the new watermark if it advanced. A watermark is
    /// only ever forwarded when it increases, like Flink's watermark outputs.
    pub fn observe(&mut self, event_ms: i64) -> Option<i64> {
        let candidate = event_ms.saturating_sub(MAX_OUT_OF_ORDER_MS + 1);
        match self.current {
            Some(current) if candidate <= current => None,
            _ => {
                self.current = Some(candidate);
                Some(candidate)
            }
        }
    }

    /// The watermark so far (`None` before the first trade, Flink's `Long.MIN_VALUE`).
    pub fn current(&self) -> Option<i64> {
        self.current
    }
}

/// Event-time timers of a keyed operator: `(timestamp, key)` pairs fired in timestamp order (then
/// key order) once the watermark reaches them. Timers are never cancelled: the operator ignores a
/// timer whose bucket was replaced, as the job does.
#[derive(Debug, Clone, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(i64, u32)>>,
}

impl Timers {
    pub fn register(&mut self, at_ms: i64, key: u32) {
        self.heap.push(Reverse((at_ms, key)));
    }

    /// The next timer due at `watermark` (timestamp ≤ watermark), removed from the queue.
    pub fn pop_due(&mut self, watermark: i64) -> Option<(i64, u32)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= watermark => self.heap.pop().map(|Reverse(t)| t),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_trails_the_max_event_time_by_2001_ms_and_never_regresses() {
        let mut w = Watermark::default();
        assert_eq!(w.current(), None);
        assert_eq!(w.observe(10_000), Some(7_999));
        assert_eq!(w.observe(9_000), None);
        assert_eq!(w.observe(10_000), None);
        assert_eq!(w.observe(10_001), Some(8_000));
        assert_eq!(w.current(), Some(8_000));
    }

    #[test]
    fn timers_fire_in_timestamp_order_once_due() {
        let mut t = Timers::default();
        t.register(3_000, 1);
        t.register(1_000, 2);
        t.register(2_000, 0);
        assert_eq!(t.pop_due(999), None);
        assert_eq!(t.pop_due(2_000), Some((1_000, 2)));
        assert_eq!(t.pop_due(2_000), Some((2_000, 0)));
        assert_eq!(t.pop_due(2_000), None);
        assert_eq!(t.len(), 1);
    }
}
