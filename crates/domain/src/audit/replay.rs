//! One symbol's trades through the oracle, from a known state, the way the job met them.
//!
//! The oracle is the one `run` uses ([`Oracle`]), one per symbol and state epoch. What it cannot
//! know here is the job's watermark: that comes from every symbol on every partition, the job's
//! eight source readers, their idleness and its periodic emission. The watermark changes a bar
//! only when it closes a bucket that a later trade of the same second would have joined (a
//! split, `pipeline.md` §2.4 rule 4); everywhere else a bucket ends at the next trade of another
//! second (rule 3) with the same content. So the oracle's own watermark is held back (its trades
//! carry an event time that never advances) and the replay closes a bucket early exactly where
//! the stored rows show the job did, when the watermark could have been past the bucket's end
//! at that trade:
//!
//! * the stored bar with the next seq ends at this bucket's end and holds the trades the bucket
//!   holds so far (its `count`), and
//! * the trade's record timestamp is at least the bucket's end + the out-of-orderness bound
//!   (2 s) + 1 ms, less the clock slack (some record before it on its partition had to carry
//!   that event time, and no event time is later than its record's timestamp), or the symbol
//!   sat silent for the idle timeout before it (its partition may have been idle while others
//!   moved the watermark).
//!
//! A split the job made anywhere else is not followed: its bars then differ from the oracle's.

use std::collections::BTreeMap;

use crate::envelope::IsoInstant;
use crate::model::Microbar;
use crate::oracle::{Expected, Oracle, SeedState, Trade};

use super::record::Record;

/// Milliseconds past a bucket's end before the job's watermark can close it: the
/// out-of-orderness bound plus 1 ms (`pipeline.md` §2.3).
pub const WATERMARK_DELAY_MS: i64 = 2_001;

/// When the replay may follow a split the stored rows show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Disagreement allowed between record timestamps and event times (ms).
    pub clock_skew_ms: i64,
    /// The job's watermark idle timeout (ms).
    pub idle_timeout_ms: i64,
}

/// A bucket closed by the watermark before a trade of its own second arrived.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Split {
    /// The bar's end.
    #[serde(with = "time::serde::rfc3339")]
    pub event_ts: time::OffsetDateTime,
    pub seq: u64,
    /// Trades before the split.
    pub count: u64,
}

/// The bucket in flight: its second and how many trades it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Open {
    second: i64,
    count: u64,
    /// Whether it holds a trade of the audited window.
    in_window: bool,
}

/// One symbol's oracle within one state epoch.
pub struct Replay<'a> {
    symbol: &'a str,
    oracle: Oracle,
    /// The epoch's stored bars by seq (the splits to follow).
    stored: BTreeMap<u64, &'a Microbar>,
    timing: Timing,
    open: Option<Open>,
    last_ts_ms: Option<i64>,
    /// Rows in emission order.
    pub rows: Vec<Expected>,
    pub splits: Vec<Split>,
}

/// An event time that never moves the oracle's watermark (see the module docs).
fn held_back() -> IsoInstant {
    IsoInstant::from_unix_millis(0).unwrap_or(IsoInstant::from(time::OffsetDateTime::UNIX_EPOCH))
}

impl<'a> Replay<'a> {
    /// A replay continuing `seed` (the default seed: from nothing).
    pub fn new(
        symbol: &'a str,
        seed: SeedState,
        stored: impl IntoIterator<Item = &'a Microbar>,
        timing: Timing,
    ) -> Self {
        let mut oracle = Oracle::new();
        oracle.seed(symbol, seed);
        Replay {
            symbol,
            oracle,
            stored: stored.into_iter().map(|b| (b.seq, b)).collect(),
            timing,
            open: None,
            last_ts_ms: None,
            rows: Vec::new(),
            splits: Vec::new(),
        }
    }

    pub fn last_seq(&self) -> u64 {
        self.oracle.last_seq(self.symbol)
    }

    /// Whether the bucket in flight holds a trade of the window.
    pub fn window_bucket_open(&self) -> bool {
        self.open.is_some_and(|o| o.in_window)
    }

    /// Feeds one trade; `in_window` says whether it belongs to the audited window.
    pub fn trade(&mut self, record: &Record<Trade>, in_window: bool) {
        let second = record.value.t.unix_seconds();
        if let Some(open) = self.open.filter(|o| o.second == second) {
            if self.watermark_closed(open, record.ts_ms) {
                let seq = self.last_seq() + 1;
                self.rows.extend(self.oracle.flush_open());
                self.splits.push(Split {
                    event_ts: crate::oracle::datetime_from_millis(end_ms(second)),
                    seq,
                    count: open.count,
                });
                self.open = None;
            }
        }
        let trade = Trade {
            event_ts: held_back(),
            ..record.value
        };
        self.oracle
            .on_trade_into(self.symbol, trade, &mut self.rows);
        self.open = Some(match self.open {
            Some(o) if o.second == second => Open {
                count: o.count + 1,
                in_window: o.in_window || in_window,
                ..o
            },
            _ => Open {
                second,
                count: 1,
                in_window,
            },
        });
        self.last_ts_ms = Some(record.ts_ms);
    }

    /// At the end of the trades: the bucket still in flight is expected only if the job emitted
    /// it (the watermark passed it: the stored bar with the next seq ends where it ends).
    /// Returns whether it was.
    pub fn finish(&mut self) -> bool {
        let Some(open) = self.open else {
            return false;
        };
        let next = self.stored.get(&(self.last_seq() + 1));
        if next.is_some_and(|b| millis(b.event_ts) == end_ms(open.second)) {
            self.rows.extend(self.oracle.flush_open());
            self.open = None;
            true
        } else {
            false
        }
    }

    fn watermark_closed(&self, open: Open, ts_ms: i64) -> bool {
        let Some(next) = self.stored.get(&(self.last_seq() + 1)) else {
            return false;
        };
        let shown = millis(next.event_ts) == end_ms(open.second) && next.count == open.count;
        let past_bound = ts_ms.saturating_add(self.timing.clock_skew_ms)
            >= end_ms(open.second) + WATERMARK_DELAY_MS;
        let idle = self.last_ts_ms.is_some_and(|last| {
            ts_ms.saturating_sub(last) + self.timing.clock_skew_ms >= self.timing.idle_timeout_ms
        });
        shown && (past_bound || idle)
    }
}

fn end_ms(second: i64) -> i64 {
    second.saturating_add(1).saturating_mul(1000)
}

pub fn millis(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::test_support::{bar_at, trade};

    const TIMING: Timing = Timing {
        clock_skew_ms: 0,
        idle_timeout_ms: 30_000,
    };

    fn bars(rows: &[Expected]) -> Vec<(i64, u64, u64)> {
        rows.iter()
            .filter_map(|r| match r {
                Expected::Microbar(b) => Some((millis(b.event_ts), b.seq, b.count)),
                Expected::Signal(_) => None,
            })
            .collect()
    }

    #[test]
    fn buckets_close_at_the_next_second_and_same_millisecond_trades_merge_in_arrival_order() {
        let trades = [
            trade(0, 1_100, 1_100, 10.0),
            trade(1, 1_100, 1_100, 12.0),
            trade(2, 1_100, 1_100, 11.0),
            trade(3, 2_050, 2_050, 13.0),
        ];
        let mut r = Replay::new("X", SeedState::default(), [], TIMING);
        for t in &trades {
            r.trade(t, true);
        }
        assert_eq!(bars(&r.rows), vec![(2_000, 1, 3)]);
        let Expected::Microbar(b) = &r.rows[0] else {
            panic!("a bar first")
        };
        assert_eq!((b.o, b.h, b.l, b.c), (10.0, 12.0, 10.0, 11.0));
        assert!(
            !r.finish(),
            "no stored bar says the watermark closed the last one"
        );
    }

    #[test]
    fn a_split_the_rows_show_is_followed_only_when_the_watermark_could_have_passed() {
        // Two trades of second 1, then one more of second 1 recorded 3.5 s later (late).
        let stored = [bar_at(2_000, 1, 2), bar_at(2_000, 2, 1)];
        let late = [
            trade(0, 1_100, 1_100, 10.0),
            trade(1, 1_200, 1_200, 11.0),
            trade(2, 1_300, 4_500, 12.0),
        ];
        let mut r = Replay::new("X", SeedState::default(), &stored, TIMING);
        for t in &late {
            r.trade(t, true);
        }
        assert!(r.finish());
        assert_eq!(bars(&r.rows), vec![(2_000, 1, 2), (2_000, 2, 1)]);
        assert_eq!(r.splits.len(), 1);
        // The same rows, but the third trade arrived on time: no watermark could have split
        // the bucket, so the oracle keeps one bar and the job's split shows as a divergence.
        let on_time = [late[0], late[1], trade(2, 1_300, 1_300, 12.0)];
        let mut r = Replay::new("X", SeedState::default(), &stored, TIMING);
        for t in &on_time {
            r.trade(t, true);
        }
        assert!(r.finish(), "the watermark closed the bucket in the end");
        assert!(r.splits.is_empty());
        assert_eq!(
            bars(&r.rows),
            vec![(2_000, 1, 3)],
            "against a stored count of 2"
        );
    }

    #[test]
    fn a_symbol_silent_for_the_idle_timeout_may_be_split_behind_the_watermark() {
        // With a 2 s idle timeout (the test stand-ins'), a late trade 2.1 s after the symbol's
        // last one may meet a watermark other partitions moved while this one sat idle, even
        // before its own bucket end + 2 s.
        let timing = Timing {
            clock_skew_ms: 0,
            idle_timeout_ms: 2_000,
        };
        let stored = [bar_at(2_000, 1, 1), bar_at(2_000, 2, 1)];
        let trades = [trade(0, 1_100, 1_100, 10.0), trade(1, 1_900, 3_200, 11.0)];
        let mut r = Replay::new("X", SeedState::default(), &stored, timing);
        for t in &trades {
            r.trade(t, true);
        }
        assert_eq!(r.splits.len(), 1);
        let mut r = Replay::new("X", SeedState::default(), &stored, TIMING);
        for t in &trades {
            r.trade(t, true);
        }
        assert!(r.splits.is_empty(), "not with production's 30 s");
    }
}
