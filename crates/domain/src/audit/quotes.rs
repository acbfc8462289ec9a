//! The `imbalance_*` columns against the quotes the job could have held.
//!
//! The signal operator keeps the last quote it processed and attaches it to a bar when it is
//! fresh for that bar (`pipeline.md` §4.3, §9.1). Quotes and bars reach that operator from two
//! sources, so which quote was the last one when a bar arrived depends on processing order
//! (§4.3, §9 item 3: non-deterministic from outside). What is certain:
//!
//! * the symbol's quotes are processed in partition order (§9.8: arrival order, whatever their
//!   timestamps), so along the symbol's bars in seq order the quote in use never goes back;
//! * a quote recorded after the bar reached the operator cannot have been processed before it:
//!   its record timestamp is at most the bar's `ingest_ts` plus the emission delay and the
//!   clock slack;
//! * the columns are the quote's snapshot when it is fresh for the bar's end (the oracle's own
//!   rule, [`Quote::is_fresh_for`]), else all NULL.
//!
//! So each stored row must be explained by a quote no earlier than the previous row's and no
//! later than that bound; the earliest that explains it is taken (which leaves the most choice
//! to the rows after). The state before the first quote read (read from the freshness window
//! before the audit's start) is "a quote too old for any audited bar, or none": NULL; with the
//! job's age limit off it may be any earlier quote, so a row no quote read explains there is
//! not judged.

use crate::compare::{self, RowMismatch};
use crate::model::Signal;
use crate::oracle::signals::{imbalance, SignalValues};
use crate::oracle::Quote;
use crate::scenario::Tolerance;

use super::record::Record;
use super::replay::millis;

/// The imbalance columns (the ones this module judges; the comparator ignores them).
pub const COLUMNS: &[&str] = &[
    "imbalance_spread",
    "imbalance_bid_px",
    "imbalance_ask_px",
    "imbalance_bid_sz",
    "imbalance_ask_sz",
];

/// How late a quote may have been processed before a bar, and how far the quotes were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuoteBounds {
    /// Emission delay plus clock slack, added to a bar's `ingest_ts`.
    pub slack_ms: i64,
    /// Every quote recorded before this was read. A row whose bound reaches past it may have
    /// met a quote that was not read: it is not judged (counted instead)…
    pub horizon_ms: i64,
    /// …unless the read went to the topic's end: a row stored by then met its quotes before.
    pub to_end: bool,
    /// The deployed job's `TA_QUOTE_STALE_AFTER_MS` (≤ 0: no age limit).
    pub stale_after_ms: i64,
}

/// What the quote columns came to: rows no quote explains, and rows that could not be judged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Judged {
    pub mismatches: Vec<RowMismatch>,
    pub unjudged: usize,
}

/// Judges the stored signals of one state epoch, in seq order, against the symbol's quotes in
/// partition order. Returns one mismatch per row no quote explains, with the most recent quote
/// that could have applied as the expectation.
pub fn judge(
    quotes: &[Record<Quote>],
    signals: &[&Signal],
    bounds: QuoteBounds,
    tolerance: Tolerance,
) -> Judged {
    let stale_after = bounds.stale_after_ms;
    // A quote recorded after the bound stops the prefix there, whatever follows it on the
    // partition: the running maximum of the timestamps is what to search.
    let recorded: Vec<i64> = quotes
        .iter()
        .scan(i64::MIN, |max, q| {
            *max = (*max).max(q.ts_ms);
            Some(*max)
        })
        .collect();
    let mut current: Option<usize> = None;
    let mut judged = Judged::default();
    for signal in signals {
        let bar_end = millis(signal.event_ts);
        let mut latest = millis(signal.ingest_ts).saturating_add(bounds.slack_ms);
        if latest >= bounds.horizon_ms {
            if !bounds.to_end {
                judged.unjudged += 1;
                continue;
            }
            latest = bounds.horizon_ms;
        }
        let end = recorded.partition_point(|&ts| ts <= latest);
        let from = current.unwrap_or(0);
        let fresh = |j: usize| quotes[j].value.is_fresh_for(bar_end, stale_after);
        let explains = |j: usize| -> bool {
            if !fresh(j) {
                return is_null(signal);
            }
            snapshot_matches(signal, &quotes[j].value, tolerance)
        };
        // Before any quote read the job held an old one (or none): NULL, still possible.
        if current.is_none() && is_null(signal) {
            continue;
        }
        match (from..end.max(from)).find(|&j| explains(j)) {
            Some(j) => current = Some(j),
            // Without an age limit the job may still hold a quote recorded before any read.
            None if current.is_none() && stale_after <= 0 => judged.unjudged += 1,
            None => {
                let likely = end.checked_sub(1).filter(|&j| j >= from);
                let quote = likely.filter(|&j| fresh(j)).map(|j| &quotes[j].value);
                if let Some(m) =
                    expected_row(signal, quote).and_then(|row| differs(&row, signal, tolerance))
                {
                    judged.mismatches.push(m);
                }
            }
        }
    }
    judged
}

fn is_null(s: &Signal) -> bool {
    s.imbalance_spread.is_none()
        && s.imbalance_bid_px.is_none()
        && s.imbalance_ask_px.is_none()
        && s.imbalance_bid_sz.is_none()
        && s.imbalance_ask_sz.is_none()
}

/// Whether the stored columns are `quote`'s snapshot (the cheap test run on every candidate;
/// the row form below is built only for a row no candidate explains).
fn snapshot_matches(stored: &Signal, quote: &Quote, tolerance: Tolerance) -> bool {
    let mut v = SignalValues::default();
    imbalance(&mut v, quote);
    let float = |want: Option<f64>, got: Option<f64>| match (want, got) {
        (Some(w), Some(g)) => tolerance.accepts(w, g),
        (w, g) => w == g,
    };
    float(v.imbalance_spread, stored.imbalance_spread)
        && float(v.imbalance_bid_px, stored.imbalance_bid_px)
        && float(v.imbalance_ask_px, stored.imbalance_ask_px)
        && v.imbalance_bid_sz.map(|s| s as u64) == stored.imbalance_bid_sz
        && v.imbalance_ask_sz.map(|s| s as u64) == stored.imbalance_ask_sz
}

/// The stored row with its imbalance columns as `quote` (or NULL) would make them, through the
/// oracle's own snapshot rule.
fn expected_row(stored: &Signal, quote: Option<&Quote>) -> Option<Signal> {
    let mut v = SignalValues::default();
    if let Some(q) = quote {
        imbalance(&mut v, q);
    }
    Some(Signal {
        imbalance_spread: v.imbalance_spread,
        imbalance_bid_px: v.imbalance_bid_px,
        imbalance_ask_px: v.imbalance_ask_px,
        // Java `long` into UInt64 by two's complement, as `oracle::signal_row` writes it.
        imbalance_bid_sz: v.imbalance_bid_sz.map(|s| s as u64),
        imbalance_ask_sz: v.imbalance_ask_sz.map(|s| s as u64),
        ..stored.clone()
    })
}

fn differs(expected: &Signal, stored: &Signal, tolerance: Tolerance) -> Option<RowMismatch> {
    let diff = compare::compare(
        std::slice::from_ref(expected),
        std::slice::from_ref(stored),
        |c| !COLUMNS.contains(&c),
        |_| tolerance,
    );
    diff.mismatches.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::test_support::signal_at;
    use crate::envelope::IsoInstant;
    use crate::model::Columns;

    /// Production's `TA_QUOTE_STALE_AFTER_MS`.
    const STALE_AFTER_MS: i64 = 15_000;

    const BOUNDS: QuoteBounds = QuoteBounds {
        slack_ms: 0,
        horizon_ms: i64::MAX,
        to_end: false,
        stale_after_ms: STALE_AFTER_MS,
    };

    fn quote(ts_ms: i64, event_ms: i64, bid: f64) -> Record<Quote> {
        Record {
            partition: 0,
            offset: ts_ms,
            ts_ms,
            value: Quote {
                event_ts: IsoInstant::from_unix_millis(event_ms).expect("instant"),
                bid_price: bid,
                bid_size: 100.0,
                ask_price: bid + 0.02,
                ask_size: 200.9,
            },
        }
    }

    fn with(signal: Signal, q: &Record<Quote>) -> Signal {
        expected_row(&signal, Some(&q.value)).expect("row")
    }

    #[test]
    fn a_row_is_explained_by_any_quote_the_job_could_have_held_and_never_by_an_earlier_one() {
        let quotes = [quote(1_000, 1_000, 10.0), quote(2_000, 2_000, 11.0)];
        // Bar ending at 3.000 emitted at 3.000: either quote could be the last processed.
        let a = with(signal_at(3_000, 1, 3_000), &quotes[1]);
        let b = with(signal_at(4_000, 2, 4_000), &quotes[0]);
        let rows = [&a, &b];
        let bad = judge(&quotes, &rows, BOUNDS, Tolerance::default()).mismatches;
        assert_eq!(bad.len(), 1, "the second row went back to an earlier quote");
        assert_eq!(bad[0].key, b.key().to_string());
        assert!(
            bad[0]
                .columns
                .iter()
                .any(|c| c.column == "imbalance_bid_px"),
            "{bad:?}"
        );
        // In the other order both are fine.
        let a = with(signal_at(3_000, 1, 3_000), &quotes[0]);
        let b = with(signal_at(4_000, 2, 4_000), &quotes[1]);
        assert!(judge(&quotes, &[&a, &b], BOUNDS, Tolerance::default())
            .mismatches
            .is_empty());
    }

    #[test]
    fn a_quote_recorded_after_the_bar_was_emitted_or_after_its_end_cannot_apply() {
        let quotes = [quote(5_000, 2_500, 10.0), quote(2_000, 3_500, 11.0)];
        // The first is recorded after the bar's emission (3.000).
        let late = with(signal_at(3_000, 1, 3_000), &quotes[0]);
        assert_eq!(
            judge(&quotes, &[&late], BOUNDS, Tolerance::default())
                .mismatches
                .len(),
            1
        );
        // The second is stamped after the bar's end: look-ahead, so the row must be NULL.
        let ahead = with(signal_at(3_000, 1, 3_000), &quotes[1]);
        let bad = judge(&quotes[1..], &[&ahead], BOUNDS, Tolerance::default()).mismatches;
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].columns[0].expected, "NULL");
        let null = signal_at(3_000, 1, 3_000);
        assert!(judge(&quotes[1..], &[&null], BOUNDS, Tolerance::default())
            .mismatches
            .is_empty());
    }

    #[test]
    fn a_row_emitted_after_the_quotes_read_is_not_judged() {
        // The job may have met a quote recorded after the read ended: nothing can be said.
        let quotes = [quote(1_000, 1_000, 10.0)];
        let held = with(signal_at(2_000, 1, 2_000), &quotes[0]);
        let null = signal_at(3_000, 2, 9_000);
        let bounds = QuoteBounds {
            slack_ms: 0,
            horizon_ms: 5_000,
            to_end: false,
            stale_after_ms: STALE_AFTER_MS,
        };
        let judged = judge(&quotes, &[&held, &null], bounds, Tolerance::default());
        assert_eq!((judged.mismatches.len(), judged.unjudged), (0, 1));
        let judged = judge(&quotes, &[&held, &null], BOUNDS, Tolerance::default());
        assert_eq!(
            judged.mismatches.len(),
            1,
            "judged, the fresh quote applies"
        );
    }

    #[test]
    fn sizes_are_truncated_like_the_job_and_stale_quotes_give_null() {
        let quotes = [quote(1_000, 1_000, 10.0)];
        let row = with(signal_at(3_000, 1, 3_000), &quotes[0]);
        assert_eq!(
            row.imbalance_ask_sz,
            Some(200),
            "200.9 → 200 (Double.toLong)"
        );
        // 15 s after the quote it is still fresh; 16 s after it is stale.
        let fresh = with(signal_at(16_000, 1, 16_000), &quotes[0]);
        assert!(judge(&quotes, &[&fresh], BOUNDS, Tolerance::default())
            .mismatches
            .is_empty());
        let stale = with(signal_at(17_000, 1, 17_000), &quotes[0]);
        assert_eq!(
            judge(&quotes, &[&stale], BOUNDS, Tolerance::default())
                .mismatches
                .len(),
            1
        );
    }

    #[test]
    fn freshness_is_the_deployments_window() {
        // The job's code default (2 s) where the deployment does not override it.
        let two_seconds = QuoteBounds {
            stale_after_ms: 2_000,
            ..BOUNDS
        };
        let quotes = [quote(1_000, 1_000, 10.0)];
        let held = with(signal_at(4_000, 1, 4_000), &quotes[0]);
        let null = signal_at(4_000, 1, 4_000);
        let judged = |row: &Signal, bounds| judge(&quotes, &[row], bounds, Tolerance::default());
        assert!(judged(&held, BOUNDS).mismatches.is_empty(), "fresh at 15 s");
        assert_eq!(
            judged(&held, two_seconds).mismatches.len(),
            1,
            "stale at 2 s"
        );
        assert!(judged(&null, two_seconds).mismatches.is_empty());
    }

    #[test]
    fn without_an_age_limit_a_row_before_the_quotes_read_is_not_judged() {
        let no_limit = QuoteBounds {
            stale_after_ms: 0,
            ..BOUNDS
        };
        // Held from a quote recorded before the read began (bid 9, not among those read).
        let older = quote(0, 0, 9.0);
        let quotes = [quote(5_000, 5_000, 10.0)];
        let early = with(signal_at(3_000, 1, 3_000), &older);
        let judged = judge(&quotes, &[&early], no_limit, Tolerance::default());
        assert_eq!((judged.mismatches.len(), judged.unjudged), (0, 1));
        // With a limit that quote would be stale by now: the row is wrong.
        let late = with(signal_at(60_000, 1, 60_000), &older);
        let judged = judge(&quotes, &[&late], BOUNDS, Tolerance::default());
        assert_eq!((judged.mismatches.len(), judged.unjudged), (1, 0));
        // Once a read quote explained a row, a later one no quote explains is wrong again.
        let held = with(signal_at(6_000, 1, 6_000), &quotes[0]);
        let back = with(signal_at(7_000, 2, 7_000), &older);
        let judged = judge(&quotes, &[&held, &back], no_limit, Tolerance::default());
        assert_eq!((judged.mismatches.len(), judged.unjudged), (1, 0));
    }
}
