//! The facade end to end: messages in, rows out.

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;
use crate::envelope::{quote_message, trade_message};

const T0: OffsetDateTime = datetime!(2026-07-21 14:30:00 UTC);

fn ms(n: i64) -> OffsetDateTime {
    T0 + Duration::milliseconds(n)
}

fn trade(oracle: &mut Oracle, symbol: &str, at_ms: i64, price: f64, size: f64) -> Vec<Expected> {
    let line = trade_message(symbol, ms(at_ms), price, size, 1, ms(at_ms + 5));
    oracle.on_message(&line).expect("a valid trade")
}

fn quote(oracle: &mut Oracle, symbol: &str, at_ms: i64, bid: f64, ask: f64) {
    let line = quote_message(symbol, ms(at_ms), bid, 100.0, ask, 200.0, 1, ms(at_ms));
    assert!(oracle.on_message(&line).expect("a valid quote").is_empty());
}

fn bars(rows: &[Expected]) -> Vec<&Microbar> {
    rows.iter()
        .filter_map(|r| match r {
            Expected::Microbar(b) => Some(b),
            Expected::Signal(_) => None,
        })
        .collect()
}

fn signals(rows: &[Expected]) -> Vec<&Signal> {
    rows.iter()
        .filter_map(|r| match r {
            Expected::Signal(s) => Some(s),
            Expected::Microbar(_) => None,
        })
        .collect()
}

#[test]
fn the_worked_example_of_section_3_2() {
    let mut o = Oracle::new();
    assert!(trade(&mut o, "X", 100, 100.0, 10.0).is_empty());
    assert!(trade(&mut o, "X", 400, 101.0, 20.0).is_empty());
    assert!(trade(&mut o, "X", 900, 99.0, 30.0).is_empty());
    let rows = o.flush_open();
    assert_eq!(rows.len(), 2);
    let bar = bars(&rows)[0];
    assert_eq!(
        (bar.o, bar.h, bar.l, bar.c, bar.v, bar.count),
        (100.0, 101.0, 99.0, 99.0, 60.0, 3)
    );
    assert!((bar.vwap.expect("vwap") - 99.833_333_333_333_33).abs() < 1e-12);
    assert_eq!(bar.event_ts, datetime!(2026-07-21 14:30:01 UTC));
    assert_eq!(bar.window_start, Some(T0));
    assert_eq!(bar.window_end, Some(bar.event_ts));
    assert_eq!((bar.seq, bar.is_final, bar.version), (1, 1, 1));
    assert_eq!(
        (bar.source.as_str(), bar.window_size.as_str()),
        ("ta", "PT1S")
    );
    assert_eq!(bar.window_step.as_deref(), Some("PT1S"));
    assert_eq!(bar.ingest_ts, OffsetDateTime::UNIX_EPOCH);
    let sig = signals(&rows)[0];
    assert_eq!(
        (sig.symbol.as_str(), sig.event_ts, sig.seq),
        ("X", bar.event_ts, 1)
    );
    assert_eq!(
        (sig.window_start, sig.window_end, sig.version),
        (bar.window_start, bar.window_end, 1)
    );
    assert_eq!(
        (sig.ema12, sig.macd, sig.rsi14, sig.vwap_session),
        (Some(99.0), Some(0.0), None, Some(99.0))
    );
    assert_eq!(sig.microstructure_signal_v1, None);
}

#[test]
fn every_bar_is_followed_by_its_signal() {
    let mut o = Oracle::new();
    let mut rows = Vec::new();
    for i in 0..50 {
        rows.extend(trade(
            &mut o,
            if i % 2 == 0 { "A" } else { "B" },
            i * 300,
            10.0 + i as f64,
            1.0,
        ));
    }
    rows.extend(o.flush_open());
    assert!(!rows.is_empty());
    for pair in rows.chunks(2) {
        let (Expected::Microbar(b), Expected::Signal(s)) = (&pair[0], &pair[1]) else {
            panic!("{pair:?}")
        };
        assert_eq!(
            (&b.symbol, b.event_ts, b.seq),
            (&s.symbol, s.event_ts, s.seq)
        );
    }
}

#[test]
fn a_late_trade_makes_an_early_partial_bar_a_late_bar_and_another_bar() {
    // §2.4: bucket S open, a trade for S-2 arrives, then S trades again.
    let mut o = Oracle::new();
    assert!(trade(&mut o, "X", 5_100, 10.0, 1.0).is_empty());
    assert!(trade(&mut o, "X", 5_200, 11.0, 1.0).is_empty());
    let early = trade(&mut o, "X", 3_500, 9.0, 2.0);
    let late = trade(&mut o, "X", 5_300, 12.0, 3.0);
    let last = o.flush_open();
    let key = |rows: &[Expected]| -> Vec<(OffsetDateTime, u64, u64)> {
        bars(rows)
            .iter()
            .map(|b| (b.event_ts, b.seq, b.count))
            .collect()
    };
    assert_eq!(key(&early), vec![(ms(6_000), 1, 2)]);
    assert_eq!(key(&late), vec![(ms(4_000), 2, 1)]);
    assert_eq!(key(&last), vec![(ms(6_000), 3, 1)]);
    // The late bar's signal is evaluated at the latest bar (second 6) of the series.
    let late_signal = signals(&late)[0];
    assert_eq!(late_signal.event_ts, ms(4_000));
    // Series sorted: [4 s: 9.0, 6 s: 11.0] → EMA seeded at 9.0 then 11.0.
    let want = 9.0 + (11.0 - 9.0) * (2.0 / 13.0);
    assert!((late_signal.ema12.expect("ema") - want).abs() < 1e-12);
    // The third bar has the same end time as the first: it replaces it in the series.
    let third = signals(&last)[0];
    let want = 9.0 + (12.0 - 9.0) * (2.0 / 13.0);
    assert!((third.ema12.expect("ema") - want).abs() < 1e-12);
    // vwap_w5m counts both bars of second 6: (11·2 + 9·2 + 12·3) / 7.
    let w5m = third.vwap_w5m.expect("w5m");
    assert!((w5m - (22.0 + 18.0 + 36.0) / 7.0).abs() < 1e-12, "{w5m}");
}

#[test]
fn zero_size_trades_count_but_leave_vwap_null() {
    let mut o = Oracle::new();
    trade(&mut o, "X", 100, 10.0, 0.0);
    trade(&mut o, "X", 200, 11.0, 0.0);
    let rows = o.flush_open();
    let bar = bars(&rows)[0];
    assert_eq!((bar.count, bar.v, bar.vwap), (2, 0.0, None));
    let sig = signals(&rows)[0];
    assert_eq!((sig.vwap_session, sig.vwap_w5m), (Some(0.0), None));
}

#[test]
fn duplicate_messages_are_aggregated_twice() {
    let mut o = Oracle::new();
    let line = trade_message("X", ms(100), 10.0, 3.0, 1, ms(101));
    o.on_message(&line).expect("valid");
    o.on_message(&line).expect("valid");
    let rows = o.flush_open();
    assert_eq!((bars(&rows)[0].count, bars(&rows)[0].v), (2, 6.0));
}

#[test]
fn the_watermark_closes_other_symbols_after_2001_ms() {
    let mut o = Oracle::new();
    trade(&mut o, "A", 500, 1.0, 1.0);
    assert!(trade(&mut o, "B", 3_000, 1.0, 1.0).is_empty());
    let rows = trade(&mut o, "B", 3_001, 1.0, 1.0);
    assert_eq!(
        bars(&rows)
            .iter()
            .map(|b| b.symbol.as_str())
            .collect::<Vec<_>>(),
        vec!["A"]
    );
}

#[test]
fn quotes_attach_by_processing_order_and_freshness() {
    let mut o = Oracle::new();
    quote(&mut o, "X", -14_000, 9.9, 10.1); // 15 s before the first bar's end
    trade(&mut o, "X", 100, 10.0, 1.0);
    quote(&mut o, "X", 1_500, 9.8, 10.2); // after the first bar's end: that bar gets NULL
    let rows = trade(&mut o, "X", 1_600, 10.0, 1.0);
    let sig = signals(&rows)[0];
    assert_eq!(sig.imbalance_spread, None);
    let rows = o.flush_open();
    let sig = signals(&rows)[0];
    assert_eq!(
        (sig.imbalance_bid_px, sig.imbalance_ask_px),
        (Some(9.8), Some(10.2))
    );
    assert_eq!(
        (sig.imbalance_bid_sz, sig.imbalance_ask_sz),
        (Some(100), Some(200))
    );
    // Without the second quote the first one (15 s old at the first bar) would have attached.
    let mut o = Oracle::new();
    quote(&mut o, "X", -14_000, 9.9, 10.1);
    trade(&mut o, "X", 100, 10.0, 1.0);
    let sig = o.flush_open();
    assert!((signals(&sig)[0].imbalance_spread.expect("fresh") - 0.2).abs() < 1e-12);
}

#[test]
fn a_seeded_symbol_continues_seq_session_and_indicators() {
    // Run 1: 30 bars; run 2 seeded from run 1's rows must match one uninterrupted run.
    let whole = |o: &mut Oracle, from: i64, to: i64| -> Vec<Expected> {
        let mut rows = Vec::new();
        for i in from..to {
            rows.extend(trade(
                o,
                "X",
                i * 1000 + 10,
                100.0 + (i % 7) as f64 * 0.25,
                1.0 + i as f64,
            ));
        }
        rows
    };
    let mut straight = Oracle::new();
    let mut expected = whole(&mut straight, 0, 61);
    expected.extend(straight.flush_open());

    let mut first = Oracle::new();
    let mut rows = whole(&mut first, 0, 31);
    rows.extend(first.flush_open());
    let seed_bars: Vec<BarInput> = bars(&rows).iter().map(|b| BarInput::from(*b)).collect();
    let mut session = SessionSums::default();
    for b in &seed_bars {
        session.add(b.close, b.volume);
    }
    let mut second = Oracle::new();
    second.seed(
        "X",
        SeedState {
            last_seq: first.last_seq("X"),
            bars: seed_bars,
            session,
            last_quote: None,
        },
    );
    let mut tail = whole(&mut second, 31, 61);
    tail.extend(second.flush_open());
    assert_eq!(tail.as_slice(), &expected[expected.len() - tail.len()..]);
    assert_eq!(bars(&tail)[0].seq, 32);
}

#[test]
fn malformed_messages_are_errors_and_change_nothing() {
    let mut o = Oracle::new();
    trade(&mut o, "X", 100, 10.0, 1.0);
    let bad = trade_message("X", ms(1_100), 11.0, 1.0, 1, ms(1_101)).replace("\"p\":11.0,", "");
    let err = o.on_message(&bad).expect_err("no price");
    assert!(err.to_string().contains("missing field `p`"), "{err}");
    assert_eq!(o.last_seq("X"), 0);
    assert_eq!(o.flush_open().len(), 2);
}

/// A quote message with an exact event time and sizes.
fn quote_at(o: &mut Oracle, at: OffsetDateTime, bid: (f64, f64), ask: (f64, f64)) {
    let line = quote_message("X", at, bid.0, bid.1, ask.0, ask.1, 1, at);
    assert!(o.on_message(&line).expect("a valid quote").is_empty());
}

/// The signal of one bar, `[14:30:00, 14:30:01)`, after the given quotes.
fn signal_after(quotes: impl FnOnce(&mut Oracle)) -> Signal {
    let mut o = Oracle::new();
    quotes(&mut o);
    trade(&mut o, "X", 100, 10.0, 1.0);
    signals(&o.flush_open())[0].clone()
}

#[test]
fn quote_freshness_compares_the_truncated_age_and_keeps_sub_millisecond_times() {
    // pipeline.md §9.1: `Duration.between(quote, barEnd).toMillis()`, truncated, against
    // 15000 ms; look-ahead is judged on the full event time.
    let end = ms(1_000);
    let book = ((9.5, 1.0), (10.5, 2.0));
    let at = |ns: i64| end + Duration::nanoseconds(ns);
    let fresh = |q: OffsetDateTime| {
        signal_after(|o| quote_at(o, q, book.0, book.1))
            .imbalance_spread
            .is_some()
    };
    assert!(
        fresh(at(-15_000_500_000)),
        "15000.5 ms old truncates to 15000"
    );
    assert!(
        fresh(at(-15_000_999_999)),
        "15000.999999 ms old truncates too"
    );
    assert!(!fresh(at(-15_001_000_000)), "15001 ms old is stale");
    assert!(fresh(at(0)), "a quote at the bar end is applied");
    assert!(
        !fresh(at(500_000)),
        "0.5 ms after the bar end is look-ahead"
    );
    assert!(!fresh(at(1)), "1 ns after the bar end is look-ahead");
}

#[test]
fn quote_sizes_convert_like_kotlin_to_long_then_uint64() {
    // pipeline.md §9.2: `Double.toLong()` (truncate, saturate) written to a UInt64 column.
    let sizes = |bid: f64, ask: f64| {
        let s = signal_after(|o| quote_at(o, ms(500), (9.5, bid), (10.5, ask)));
        (s.imbalance_bid_sz, s.imbalance_ask_sz)
    };
    assert_eq!(
        sizes(1e20, -5.0),
        (
            Some(9_223_372_036_854_775_807),
            Some(18_446_744_073_709_551_611)
        )
    );
    assert_eq!(sizes(-0.5, 3.99), (Some(0), Some(3)));
    assert_eq!(
        sizes(-1e20, 9_007_199_254_740_993.0),
        (Some(1 << 63), Some(9_007_199_254_740_992))
    );
}

#[test]
fn the_last_quote_to_arrive_is_the_one_applied_whatever_its_time() {
    // pipeline.md §9.8: arrival order, not event time, decides which quote a bar sees.
    let (newer, older) = (ms(900), ms(-10_000));
    let s = signal_after(|o| {
        quote_at(o, newer, (9.0, 1.0), (11.0, 1.0));
        quote_at(o, older, (9.5, 1.0), (10.5, 1.0));
    });
    assert_eq!(s.imbalance_bid_px, Some(9.5));
    // An older quote that is stale replaces a fresh one: the bar gets none.
    let s = signal_after(|o| {
        quote_at(o, newer, (9.0, 1.0), (11.0, 1.0));
        quote_at(o, ms(-20_000), (9.5, 1.0), (10.5, 1.0));
    });
    assert_eq!(s.imbalance_bid_px, None);
}
