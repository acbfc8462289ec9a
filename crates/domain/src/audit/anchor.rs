//! Where the audit of a symbol starts: the first bar whose state the job's stored rows give.
//!
//! The job's state at the window's start depends on every trade before it: the bucket in
//! flight, the watermark, late trades still to come. The rule:
//!
//! * Take the symbol's trades in partition order and the first **second change** at or after
//!   the window's start: trade `t[i]` of a later or earlier second than `t[i-1]`. Whatever the
//!   watermark did, `t[i]` opens a new bucket `B` (rule 3 closes the old one if the watermark
//!   has not), and the bar emitted just before `B` is `P`, the bucket holding `t[i-1]`.
//! * Find `P` and `B` among the stored rows: consecutive seqs `k`, `k+1` of one state epoch
//!   ending at `t[i-1]`'s and `t[i]`'s second ends, `B` emitted after `t[i]` was recorded.
//!   The job's state after `P` is then the stored history up to seq `k` (seq, retained bars,
//!   session sums: the pool's seeding, cut at `k`), and the oracle continues from `t[i]`.
//!   Only bar ends are used to find them, so a job whose values are wrong is still anchored
//!   (and then shown wrong); the first few second changes are tried in turn.
//! * A state epoch that begins inside the window (the symbol's first bar ever, or a restart
//!   without state: its seq-1 row) is predicted from nothing from the trade that opened that
//!   bar: among the trades of that second at that open price recorded before the bar was
//!   emitted, the first from which a fresh oracle emits the epoch's first stored bars.
//!
//! Bars before the start (the rest of the window's first second, at most) are not audited.

use crate::model::Microbar;
use crate::oracle::{Expected, SeedState, Trade};
use crate::pool::HistoryCut;

use super::epoch::Epoch;
use super::record::Record;
use super::replay::{millis, Replay, Timing};

/// How many second changes are tried before a symbol is reported unanchored.
const MAX_TRIES: usize = 64;
/// How many of an epoch's first bars a candidate opener must reproduce.
const OPENER_BARS: u64 = 3;

/// Where one stretch of the audit starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Start {
    /// Continues the job's state right after the stored bar `cut`, from trade `first`.
    After { cut: HistoryCut, first: usize },
    /// From nothing (a state epoch begins), from trade `first`.
    Fresh { first: usize },
}

impl Start {
    pub fn first(&self) -> usize {
        match self {
            Start::After { first, .. } | Start::Fresh { first } => *first,
        }
    }
}

/// One stretch of the audit: a state epoch of the job and where in it the audit starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start: Start,
    /// Index into the epochs read.
    pub epoch: usize,
}

/// The stretches of one symbol's audit, in order.
pub fn segments(
    trades: &[Record<Trade>],
    epochs: &[Epoch],
    from_ms: i64,
    timing: Timing,
) -> Vec<Segment> {
    let mut segments = Vec::new();
    let anchored = after(trades, epochs, from_ms, timing);
    let later = anchored.as_ref().map_or(0, |s| s.epoch + 1);
    segments.extend(anchored);
    for (index, epoch) in epochs.iter().enumerate().skip(later) {
        if epoch.since.is_none() {
            continue;
        }
        if let Some(first) = opener(trades, epoch, timing) {
            segments.push(Segment {
                start: Start::Fresh { first },
                epoch: index,
            });
        }
    }
    segments
}

/// The first second change at or after the window's start whose two bars the rows show.
fn after(
    trades: &[Record<Trade>],
    epochs: &[Epoch],
    from_ms: i64,
    timing: Timing,
) -> Option<Segment> {
    for i in changes(trades, from_ms).take(MAX_TRIES) {
        let prev_end = end_ms(&trades[i - 1].value);
        let next_end = end_ms(&trades[i].value);
        let opened_at = trades[i].ts_ms.saturating_sub(timing.clock_skew_ms);
        for (index, epoch) in epochs.iter().enumerate() {
            let found = epoch.bars.iter().find(|p| {
                millis(p.event_ts) == prev_end
                    && epoch.bar(p.seq + 1).is_some_and(|b| {
                        millis(b.event_ts) == next_end && millis(b.ingest_ts) >= opened_at
                    })
            });
            if let Some(p) = found {
                return Some(Segment {
                    start: Start::After {
                        cut: HistoryCut {
                            seq: p.seq,
                            ingest_ts: p.ingest_ts,
                        },
                        first: i,
                    },
                    epoch: index,
                });
            }
        }
    }
    None
}

/// The second changes at or after the window's start (`t[i]` of another second than
/// `t[i-1]`), by index of `t[i]`.
pub fn changes(trades: &[Record<Trade>], from_ms: i64) -> impl Iterator<Item = usize> + '_ {
    (1..trades.len()).filter(move |&i| {
        let (prev, next) = (&trades[i - 1].value, &trades[i].value);
        prev.t.unix_seconds() != next.t.unix_seconds() && next.t.unix_millis() >= from_ms
    })
}

/// The trade that opened an epoch's first bar (see the module docs).
fn opener(trades: &[Record<Trade>], epoch: &Epoch, timing: Timing) -> Option<usize> {
    let first = epoch.bar(1)?;
    let wanted: Vec<&Microbar> = (1..=OPENER_BARS).filter_map(|s| epoch.bar(s)).collect();
    let latest = millis(first.ingest_ts).saturating_add(timing.clock_skew_ms);
    let candidates = trades.iter().enumerate().filter(|(_, r)| {
        end_ms(&r.value) == millis(first.event_ts) && r.value.price == first.o && r.ts_ms <= latest
    });
    for (j, _) in candidates {
        let mut replay = Replay::new(
            &first.symbol,
            SeedState::default(),
            epoch.bars.iter(),
            timing,
        );
        for r in &trades[j..] {
            replay.trade(r, true);
            if replay.last_seq() >= wanted.len() as u64 {
                break;
            }
        }
        let got: Vec<(i64, u64)> = replay
            .rows
            .iter()
            .filter_map(|r| match r {
                Expected::Microbar(b) => Some((millis(b.event_ts), b.count)),
                Expected::Signal(_) => None,
            })
            .collect();
        let want: Vec<(i64, u64)> = wanted
            .iter()
            .map(|b| (millis(b.event_ts), b.count))
            .collect();
        if got.len() >= want.len() && got[..want.len()] == want[..] {
            return Some(j);
        }
    }
    None
}

fn end_ms(trade: &Trade) -> i64 {
    trade
        .t
        .unix_seconds()
        .saturating_add(1)
        .saturating_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::epoch::epochs;
    use crate::audit::test_support::{bar_at, trade};

    const TIMING: Timing = Timing {
        clock_skew_ms: 0,
        idle_timeout_ms: 30_000,
    };

    #[test]
    fn the_audit_starts_at_the_first_second_change_in_the_window_the_rows_show() {
        // Seconds 9, 10, 10, 11, 12 (trades); the window starts at 10.000.
        let trades = [
            trade(0, 9_500, 9_500, 1.0),
            trade(1, 10_100, 10_100, 2.0),
            trade(2, 10_700, 10_700, 3.0),
            trade(3, 11_200, 11_200, 4.0),
            trade(4, 12_300, 12_300, 5.0),
        ];
        let mut rows = vec![
            bar_at(10_000, 40, 1),
            bar_at(11_000, 41, 2),
            bar_at(12_000, 42, 1),
        ];
        for (i, r) in rows.iter_mut().enumerate() {
            r.ingest_ts = crate::oracle::datetime_from_millis(20_000 + i as i64);
        }
        let e = epochs(&rows);
        let s = segments(&trades, &e, 10_000, TIMING);
        assert_eq!(s.len(), 1);
        let Start::After { cut, first } = s[0].start else {
            panic!("{s:?}")
        };
        assert_eq!((cut.seq, first), (40, 1));
        // Without the bar of second 9 stored, the next change (10 → 11) anchors.
        let e = epochs(&rows[1..]);
        let s = segments(&trades, &e, 10_000, TIMING);
        let Start::After { cut, first } = s[0].start else {
            panic!("{s:?}")
        };
        assert_eq!((cut.seq, first), (41, 3));
    }

    #[test]
    fn an_epoch_starting_in_the_window_is_predicted_from_the_trade_that_opened_it() {
        // The job restarted and re-read from trade 1: its seq-1 bar is second 10's, both trades.
        let trades = [
            trade(0, 9_500, 9_500, 1.0),
            trade(1, 10_100, 10_100, 2.0),
            trade(2, 10_200, 10_200, 2.0),
            trade(3, 11_200, 11_200, 4.0),
        ];
        let mut first = bar_at(11_000, 1, 2);
        first.o = 2.0;
        first.ingest_ts = crate::oracle::datetime_from_millis(30_000);
        let e = epochs(&[first]);
        let s = segments(&trades, &e, 10_000, TIMING);
        assert_eq!(
            s,
            vec![Segment {
                start: Start::Fresh { first: 1 },
                epoch: 0
            }]
        );
    }
}
