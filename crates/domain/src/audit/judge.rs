//! The pure core of one stretch of a symbol's audit: predict the rows from the trades, then
//! compare them with the stored ones with `run`'s comparator and tolerances, and judge the
//! quote columns apart ([`super::quotes`]).

use std::collections::HashSet;

use time::OffsetDateTime;

use crate::compare::{self, TableDiff};
use crate::model::{Columns, Microbar, RowKey, Signal};
use crate::oracle::{Expected, Quote, SeedState, Trade};
use crate::scenario::Tolerance;

use super::quotes;
use super::record::Record;
use super::replay::{millis, Replay, Split, Timing};

/// Columns that depend on the bars before the audit's start (the retained list): unchecked for
/// the first [`crate::pool::RETAINED_BARS`] bars of a stretch whose retained list could not be
/// rebuilt, after which every retained bar is one the audit predicted.
pub const HISTORY_COLUMNS: &[&str] = &[
    "ema12",
    "ema26",
    "macd",
    "macd_signal",
    "macd_hist",
    "rsi14",
    "boll_mid",
    "boll_upper",
    "boll_lower",
    "vwap_w5m",
    "vol_realized_w60s",
];

/// What one stretch predicts from.
#[derive(Debug, Clone, Copy)]
pub struct PredictInput<'a> {
    pub symbol: &'a str,
    /// The symbol's trades in partition order; the stretch starts at `first`.
    pub trades: &'a [Record<Trade>],
    pub first: usize,
    /// The epoch's stored bars after the start, in seq order (the splits to follow).
    pub stored: &'a [Microbar],
    /// Trades recorded from here on are past the window: fed only to finish its last bar.
    pub to_ms: i64,
    /// The epoch ended (a restart): its last stored seq; nothing past it is expected.
    pub last_seq: Option<u64>,
    pub timing: Timing,
}

/// The rows one stretch must show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prediction {
    pub bars: Vec<Microbar>,
    pub signals: Vec<Signal>,
    pub splits: Vec<Split>,
    /// Seq before the first predicted bar.
    pub after_seq: u64,
    /// The window's last bucket, still open at the end of the trades read (a bar no trade and
    /// no watermark has closed yet): its end. Not expected.
    pub open_at_end: Option<OffsetDateTime>,
    /// Trades fed, of the window and after it.
    pub window_trades: usize,
    pub tail_trades: usize,
}

impl Prediction {
    pub fn last_seq(&self) -> u64 {
        self.bars.last().map_or(self.after_seq, |b| b.seq)
    }
}

/// Replays the stretch's trades from `seed` (see [`Replay`]).
pub fn predict(input: &PredictInput<'_>, seed: SeedState) -> Prediction {
    let after_seq = seed.last_seq;
    let mut replay = Replay::new(input.symbol, seed, input.stored, input.timing);
    let mut p = Prediction {
        after_seq,
        ..Prediction::default()
    };
    let mut last_fed: Option<&Trade> = None;
    for record in input.trades.iter().skip(input.first) {
        if input.last_seq.is_some_and(|last| replay.last_seq() >= last) {
            break;
        }
        if record.ts_ms < input.to_ms {
            replay.trade(record, true);
            p.window_trades += 1;
            last_fed = Some(&record.value);
            continue;
        }
        // Past the window: only to finish the bucket that holds window trades.
        if !replay.window_bucket_open() {
            break;
        }
        replay.trade(record, false);
        p.tail_trades += 1;
        last_fed = Some(&record.value);
        if !replay.window_bucket_open() {
            break;
        }
    }
    if replay.window_bucket_open() && !replay.finish() {
        p.open_at_end = last_fed.map(|t| {
            crate::oracle::datetime_from_millis(
                t.t.unix_seconds().saturating_add(1).saturating_mul(1000),
            )
        });
    }
    let limit = input.last_seq.unwrap_or(u64::MAX);
    for row in std::mem::take(&mut replay.rows) {
        match row {
            Expected::Microbar(b) if b.seq <= limit => p.bars.push(b),
            Expected::Signal(s) if s.seq <= limit => p.signals.push(s),
            _ => {}
        }
    }
    p.splits = replay.splits;
    p
}

/// How the stretch's rows are compared.
#[derive(Debug, Clone, Copy)]
pub struct CompareOptions {
    pub tolerance: Tolerance,
    /// Rows with a seq below this have [`HISTORY_COLUMNS`] unchecked (unseeded start).
    pub history_from_seq: u64,
    /// `vwap_session` unchecked (no stored value to continue from).
    pub skip_session: bool,
    /// Rows ending before this are past the TTL: missing ones are not failures.
    pub ttl_floor: OffsetDateTime,
    /// How the quote columns are judged (see [`quotes::QuoteBounds`]).
    pub quotes: quotes::QuoteBounds,
}

/// The stretch's rows against the stored ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    pub bars: TableDiff,
    pub signals: TableDiff,
    /// Expected rows past the TTL that are gone (not failures).
    pub expired: usize,
    /// Rows compared without their history columns.
    pub history_unchecked: usize,
    /// Rows whose quote columns could not be judged (emitted after the quotes read).
    pub quotes_unjudged: usize,
}

/// Compares a prediction with the stored rows of the same seqs (`observed_*`, seq order).
pub fn compare(
    prediction: &Prediction,
    observed_bars: &[Microbar],
    observed_signals: &[Signal],
    quotes: &[Record<Quote>],
    options: CompareOptions,
) -> Comparison {
    let present: HashSet<RowKey> = observed_bars.iter().map(Columns::key).collect();
    let expired = |key: &RowKey| key.event_ts < options.ttl_floor && !present.contains(key);
    let bars: Vec<Microbar> = prediction
        .bars
        .iter()
        .filter(|b| !expired(&b.key()))
        .cloned()
        .collect();
    let signals: Vec<Signal> = prediction
        .signals
        .iter()
        .filter(|s| !expired(&s.key()))
        .cloned()
        .collect();
    let gone = prediction.bars.len() - bars.len();
    let early = |seq: u64| seq < options.history_from_seq;
    let ignore_bar = |c: &str| c == "ingest_ts";
    let bars_diff = compare::compare(&bars, observed_bars, ignore_bar, |_| options.tolerance);
    let late_ignore = |c: &str| {
        c == "ingest_ts"
            || quotes::COLUMNS.contains(&c)
            || (options.skip_session && c == "vwap_session")
    };
    let early_ignore = |c: &str| late_ignore(c) || HISTORY_COLUMNS.contains(&c);
    let (early_exp, late_exp): (Vec<Signal>, Vec<Signal>) =
        signals.into_iter().partition(|s| early(s.seq));
    let (early_obs, late_obs): (Vec<&Signal>, Vec<&Signal>) =
        observed_signals.iter().partition(|s| early(s.seq));
    let early_obs: Vec<Signal> = early_obs.into_iter().cloned().collect();
    let late_obs: Vec<Signal> = late_obs.into_iter().cloned().collect();
    let mut signals_diff = merge(
        compare::compare(&early_exp, &early_obs, early_ignore, |_| options.tolerance),
        compare::compare(&late_exp, &late_obs, late_ignore, |_| options.tolerance),
    );
    let ordered: Vec<&Signal> = observed_signals.iter().collect();
    let judged = quotes::judge(quotes, &ordered, options.quotes, options.tolerance);
    add_row_mismatches(&mut signals_diff, judged.mismatches);
    Comparison {
        bars: bars_diff,
        signals: signals_diff,
        expired: gone,
        history_unchecked: early_exp.len(),
        quotes_unjudged: judged.unjudged,
    }
}

/// One table's diffs of two sets of rows as one diff.
pub fn merge(a: TableDiff, b: TableDiff) -> TableDiff {
    let mut d = TableDiff {
        expected: a.expected + b.expected,
        observed: a.observed + b.observed,
        matched: a.matched + b.matched,
        missing: a.missing,
        extra: a.extra,
        duplicates: a.duplicates,
        mismatches: a.mismatches,
    };
    d.missing.extend(b.missing);
    d.extra.extend(b.extra);
    d.duplicates.extend(b.duplicates);
    d.mismatches.extend(b.mismatches);
    d.missing.sort();
    d.extra.sort();
    d.duplicates.sort();
    d.mismatches.sort_by(|x, y| x.key.cmp(&y.key));
    d
}

/// Adds the quote judge's findings: a row already differing gets the columns added, a row
/// that had matched no longer does. Rows the comparator did not pair (extra) stay as they are.
fn add_row_mismatches(diff: &mut TableDiff, rows: Vec<compare::RowMismatch>) {
    for row in rows {
        if diff.extra.contains(&row.key) {
            continue;
        }
        if let Some(m) = diff.mismatches.iter_mut().find(|m| m.key == row.key) {
            m.columns.extend(row.columns);
        } else {
            diff.matched = diff.matched.saturating_sub(1);
            diff.mismatches.push(row);
        }
    }
    diff.mismatches.sort_by(|x, y| x.key.cmp(&y.key));
}

/// Rows of the symbol in `[first, last]` seq order from a larger read.
pub fn in_seqs<T: Columns + Clone>(rows: &[T], after: u64, last: u64) -> Vec<T> {
    rows.iter()
        .filter(|r| {
            let seq = r.key().seq;
            seq > after && seq <= last
        })
        .cloned()
        .collect()
}

/// Milliseconds of a row timestamp (for messages and the series window).
pub fn ms(t: OffsetDateTime) -> i64 {
    millis(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::test_support::trade;

    const TIMING: Timing = Timing {
        clock_skew_ms: 0,
        idle_timeout_ms: 30_000,
    };

    fn input<'a>(
        trades: &'a [Record<Trade>],
        stored: &'a [Microbar],
        to_ms: i64,
    ) -> PredictInput<'a> {
        PredictInput {
            symbol: "X",
            trades,
            first: 0,
            stored,
            to_ms,
            last_seq: None,
            timing: TIMING,
        }
    }

    fn options() -> CompareOptions {
        CompareOptions {
            tolerance: Tolerance::default(),
            history_from_seq: 0,
            skip_session: false,
            ttl_floor: OffsetDateTime::UNIX_EPOCH,
            quotes: quotes::QuoteBounds {
                slack_ms: 0,
                horizon_ms: i64::MAX,
                to_end: false,
                stale_after_ms: crate::oracle::SignalConfig::default().quote_stale_after_ms,
            },
        }
    }

    #[test]
    fn the_window_ends_with_the_bar_its_last_trades_are_in() {
        let trades = [
            trade(0, 1_100, 1_100, 1.0),
            trade(1, 2_100, 2_100, 2.0),
            trade(2, 2_900, 3_050, 3.0), // recorded after the window, same second: joins
            trade(3, 3_100, 3_100, 4.0), // closes the window's last bar
            trade(4, 4_100, 4_100, 5.0),
        ];
        let p = predict(&input(&trades, &[], 3_000), SeedState::default());
        let got: Vec<(i64, u64)> = p.bars.iter().map(|b| (ms(b.event_ts), b.count)).collect();
        assert_eq!(got, vec![(2_000, 1), (3_000, 2)]);
        assert_eq!((p.window_trades, p.tail_trades), (2, 2));
        assert_eq!(p.open_at_end, None);
    }

    #[test]
    fn a_bucket_nothing_closed_is_reported_open_not_expected() {
        let trades = [trade(0, 1_100, 1_100, 1.0), trade(1, 2_100, 2_100, 2.0)];
        let p = predict(&input(&trades, &[], 10_000), SeedState::default());
        assert_eq!(p.bars.len(), 1);
        assert_eq!(
            p.open_at_end.map(ms),
            Some(3_000),
            "the second bucket stays open"
        );
    }

    #[test]
    fn predicted_rows_compare_clean_against_themselves_and_a_changed_close_is_named() {
        let trades = [
            trade(0, 1_100, 1_100, 1.0),
            trade(1, 2_100, 2_100, 2.0),
            trade(2, 3_100, 3_100, 2.5),
        ];
        let p = predict(&input(&trades, &[], 10_000), SeedState::default());
        let c = compare(&p, &p.bars, &p.signals, &[], options());
        assert!(c.bars.is_clean() && c.signals.is_clean(), "{c:?}");
        let mut bars = p.bars.clone();
        bars[1].c = 2.01;
        let c = compare(&p, &bars, &p.signals, &[], options());
        assert_eq!(c.bars.mismatches.len(), 1);
        assert_eq!(c.bars.mismatches[0].columns[0].column, "c");
    }

    #[test]
    fn unseeded_rows_skip_their_history_columns_and_expired_rows_are_not_missing() {
        let trades = [
            trade(0, 1_100, 1_100, 1.0),
            trade(1, 2_100, 2_100, 2.0),
            trade(2, 3_100, 3_100, 2.5),
        ];
        let p = predict(&input(&trades, &[], 10_000), SeedState::default());
        let mut signals = p.signals.clone();
        for s in &mut signals {
            s.ema12 = s.ema12.map(|v| v + 1.0);
        }
        let opts = CompareOptions {
            history_from_seq: 2,
            ..options()
        };
        let c = compare(&p, &p.bars, &signals, &[], opts);
        assert_eq!(c.history_unchecked, 1);
        assert_eq!(
            c.signals.mismatches.len(),
            1,
            "only seq 2 is checked: {c:?}"
        );
        assert!(c.signals.mismatches[0].key.ends_with("seq 2"), "{c:?}");
        let opts = CompareOptions {
            ttl_floor: crate::oracle::datetime_from_millis(3_500),
            ..options()
        };
        let c = compare(&p, &p.bars[2..], &p.signals[2..], &[], opts);
        assert_eq!(c.expired, 2);
        assert!(c.bars.missing.is_empty(), "{c:?}");
    }
}
