//! The 1-minute path from the contract's definitions, on small hand-computed cases.

use time::macros::datetime;
use time::OffsetDateTime;

use super::*;
use crate::envelope::{bar_message, IsoInstant, MinuteBar};
use crate::oracle::{Expected, Oracle, Quote};

const T0: OffsetDateTime = datetime!(2026-07-21 14:30:00 UTC);

fn minute(k: i64) -> OffsetDateTime {
    T0 + time::Duration::minutes(k)
}

fn bar(close: f64, volume: f64) -> MinuteBar {
    MinuteBar {
        open: close,
        high: close,
        low: close,
        close,
        volume,
        count: 3,
        vwap: Some(close),
        updated: false,
    }
}

/// Feeds `(minute, bar)` messages with the forwarder's shared per-symbol `seq`.
fn feed(oracle: &mut Oracle, bars: &[(i64, MinuteBar)]) -> Vec<Signal> {
    bars.iter()
        .enumerate()
        .map(|(i, (k, b))| {
            let value = bar_message("X", minute(*k), *b, i as i64 + 1, minute(k + 1));
            let rows = oracle.on_message(&value).expect("a valid bar");
            assert_eq!(rows.len(), 1, "one signal per bar, no microbar");
            match rows.into_iter().next() {
                Some(Expected::Signal(s)) => s,
                other => panic!("not a signal: {other:?}"),
            }
        })
        .collect()
}

fn near(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= 1e-9 * b.abs().max(1.0))
}

#[test]
fn the_row_is_anchored_at_the_minute_start_with_the_forwarder_key() {
    let rows = feed(&mut Oracle::new(), &[(0, bar(99.0, 60.0))]);
    let s = &rows[0];
    assert_eq!(s.event_ts, T0);
    assert_eq!((s.window_start, s.window_end), (Some(T0), Some(minute(1))));
    assert_eq!(
        (s.window_size.as_str(), s.window_step.as_deref()),
        ("PT1M", Some("PT1M"))
    );
    assert_eq!((s.seq, s.is_final, s.version), (1, 1, 2));
    assert_eq!(s.source, "ta");
    assert_eq!(s.ingest_ts, minute(1), "the forwarder's ingestTs");
    assert_eq!(
        (s.ema12, s.ema26, s.macd),
        (Some(99.0), Some(99.0), Some(0.0))
    );
    assert_eq!(
        (s.rsi14, s.vol_realized_w60s, s.boll_mid),
        (None, None, None)
    );
    assert_eq!((s.vwap_session, s.vwap_w5m), (Some(99.0), Some(99.0)));
    assert_eq!(s.microstructure_signal_v1, None);
}

/// §4.5's worked example on minute bars: the same EMA/MACD/RSI/VWAP values, but realized
/// volatility over one return is 0.0 at every bar from the second on.
#[test]
fn the_worked_example_on_minutes() {
    let rows = feed(
        &mut Oracle::new(),
        &[
            (0, bar(99.0, 60.0)),
            (1, bar(100.0, 10.0)),
            (2, bar(99.5, 30.0)),
        ],
    );
    assert!(near(rows[1].ema12, 99.153_846_153_8));
    assert!(near(rows[1].macd_signal, 0.015_954_416_0));
    assert_eq!(rows[1].rsi14, Some(100.0));
    assert!(near(rows[1].vwap_session, 99.142_857_142_9));
    assert!(near(rows[2].ema26, 99.105_624_142_7));
    assert!(near(rows[2].macd_hist, 0.068_417_626_5));
    assert!(near(rows[2].rsi14, 65.0));
    assert!(near(rows[2].vwap_w5m, 99.25));
    assert_eq!(rows[1].vol_realized_w60s, Some(0.0));
    assert_eq!(rows[2].vol_realized_w60s, Some(0.0), "one return only");
}

/// `(E − 300 s, E]` by bar end: with six consecutive minutes the first bar ends exactly at the
/// cutoff and is left out; the session VWAP keeps every bar.
#[test]
fn the_five_minute_vwap_holds_five_bars() {
    let bars: Vec<_> = (0..6)
        .map(|k| (k, bar(10.0 * (k + 1) as f64, 1.0)))
        .collect();
    let rows = feed(&mut Oracle::new(), &bars);
    assert_eq!(rows[5].vwap_w5m, Some(40.0));
    assert_eq!(rows[5].vwap_session, Some(35.0));
}

/// An `updatedBars` correction replaces its minute's close in the series but both bars count in
/// both VWAPs; its row is not final and carries the next shared `seq`.
#[test]
fn an_update_replaces_the_close_and_is_counted_twice() {
    let mut fix = bar(30.0, 1.0);
    fix.updated = true;
    let rows = feed(
        &mut Oracle::new(),
        &[(0, bar(10.0, 1.0)), (1, bar(20.0, 1.0)), (1, fix)],
    );
    let u = &rows[2];
    assert_eq!((u.seq, u.is_final, u.event_ts), (3, 0, minute(1)));
    // Series 10, 30: one rise of 20.
    assert!(near(u.ema12, 10.0 + 2.0 / 13.0 * 20.0));
    assert_eq!(u.rsi14, Some(100.0));
    assert_eq!((u.vwap_w5m, u.vwap_session), (Some(20.0), Some(20.0)));
}

/// Freshness is judged against the bar end `t + 60 s`, not `t`.
#[test]
fn quotes_are_fresh_against_the_minute_end() {
    let quote = |at: OffsetDateTime| Quote {
        event_ts: IsoInstant::from(at),
        bid_price: 9.5,
        bid_size: 2.0,
        ask_price: 10.5,
        ask_size: 3.0,
    };
    let end = minute(1);
    let cases = [
        (end, true),
        (end + time::Duration::milliseconds(1), false),
        (end - time::Duration::seconds(15), true),
        (end - time::Duration::milliseconds(15_001), false),
        // After `t`: look-ahead were freshness judged against the minute start.
        (T0 + time::Duration::seconds(50), true),
    ];
    for (at, fresh) in cases {
        let mut oracle = Oracle::new();
        oracle.on_quote("X", quote(at));
        let s = &feed(&mut oracle, &[(0, bar(10.0, 1.0))])[0];
        assert_eq!(s.imbalance_spread.is_some(), fresh, "quote at {at}");
        if fresh {
            assert_eq!((s.imbalance_bid_sz, s.imbalance_ask_sz), (Some(2), Some(3)));
        }
    }
}

/// 65 bars retained: at the 70th bar the EMA is seeded with the 6th close, recomputed from there.
#[test]
fn the_history_slides_at_65_bars_and_the_seed_with_it() {
    let closes: Vec<f64> = (0..70).map(|i| 100.0 + ((i * 7) % 11) as f64).collect();
    let bars: Vec<_> = closes
        .iter()
        .enumerate()
        .map(|(k, c)| (k as i64, bar(*c, 1.0)))
        .collect();
    let rows = feed(&mut Oracle::new(), &bars);
    let ema = |n: f64, series: &[f64]| {
        let k = 2.0 / (n + 1.0);
        series[1..].iter().fold(series[0], |e, c| e + k * (c - e))
    };
    let retained = &closes[5..];
    assert!(near(rows[69].ema12, ema(12.0, retained)));
    assert!(near(rows[69].ema26, ema(26.0, retained)));
    assert!(
        !near(rows[69].ema26, ema(26.0, &closes)),
        "the unbounded series would differ"
    );
    let last20 = &closes[50..];
    let mid = last20.iter().sum::<f64>() / 20.0;
    let sd = (last20.iter().map(|c| (c - mid).powi(2)).sum::<f64>() / 20.0).sqrt();
    assert!(near(rows[69].boll_mid, mid));
    assert!(near(rows[69].boll_upper, mid + 2.0 * sd));
    assert_eq!(rows[18].boll_mid, None, "19 bars");
    assert!(rows[19].boll_mid.is_some(), "20 bars");
    assert_eq!(rows[69].seq, 70);
}

#[test]
fn the_minute_path_leaves_the_second_path_alone() {
    let mut oracle = Oracle::new();
    feed(&mut oracle, &[(0, bar(10.0, 1.0))]);
    assert_eq!(oracle.last_seq("X"), 0, "no microbar from a minute bar");
}

#[test]
fn a_rest_bar_keeps_its_source() {
    let value = bar_message("X", T0, bar(10.0, 1.0), 1, T0).replace("\"ws\"", "\"rest\"");
    let rows = Oracle::new().on_message(&value).unwrap();
    let [Expected::Signal(s)] = &rows[..] else {
        panic!("one signal")
    };
    assert_eq!(s.source, "rest");
}
