use super::*;

/// 2026-07-21T14:30:01Z in ms.
const END1: i64 = 1_784_644_201_000;

fn bar(k: i64, close: f64, volume: f64) -> BarInput {
    BarInput {
        end_ms: END1 + (k - 1) * 1000,
        close,
        volume,
    }
}

fn near(got: Option<f64>, want: f64, what: &str) {
    let got = got.unwrap_or_else(|| panic!("{what} is null"));
    assert!(
        (got - want).abs() <= 0.5e-10 + 1e-12,
        "{what}: {got} vs {want}"
    );
}

#[test]
fn the_worked_example_of_section_4_5() {
    let mut e = SignalEngine::default();
    let rows = [
        e.on_bar(bar(1, 99.0, 60.0)),
        e.on_bar(bar(2, 100.0, 10.0)),
        e.on_bar(bar(3, 99.5, 30.0)),
    ];
    let table: [[Option<f64>; 9]; 3] = [
        [
            Some(99.0),
            Some(99.0),
            Some(0.0),
            Some(0.0),
            Some(0.0),
            None,
            Some(99.0),
            Some(99.0),
            None,
        ],
        [
            Some(99.1538461538),
            Some(99.0740740741),
            Some(0.0797720798),
            Some(0.0159544160),
            Some(0.0638176638),
            Some(100.0),
            Some(99.1428571429),
            Some(99.1428571429),
            Some(0.0),
        ],
        [
            Some(99.2071005917),
            Some(99.1056241427),
            Some(0.1014764491),
            Some(0.0330588226),
            Some(0.0684176265),
            Some(65.0),
            Some(99.25),
            Some(99.25),
            Some(0.0075314388),
        ],
    ];
    for (k, (row, want)) in rows.iter().zip(table).enumerate() {
        let got = [
            row.ema12,
            row.ema26,
            row.macd,
            row.macd_signal,
            row.macd_hist,
            row.rsi14,
            row.vwap_session,
            row.vwap_w5m,
            row.vol_realized_w60s,
        ];
        for (j, (g, w)) in got.iter().zip(want).enumerate() {
            let what = format!("bar {} column {j}", k + 1);
            match w {
                None => assert_eq!(*g, None, "{what}"),
                Some(w) => near(*g, w, &what),
            }
        }
        assert_eq!((row.boll_mid, row.imbalance_spread), (None, None));
    }
}

#[test]
fn bollinger_starts_at_20_bars_with_population_deviation() {
    let mut e = SignalEngine::default();
    for k in 1..=19 {
        assert_eq!(e.on_bar(bar(k, k as f64, 1.0)).boll_mid, None);
    }
    let v = e.on_bar(bar(20, 20.0, 1.0));
    // 1..=20: mean 10.5, population variance (20² − 1) / 12 = 33.25.
    let sd = 33.25f64.sqrt();
    near(v.boll_mid, 10.5, "mid");
    near(v.boll_upper, 10.5 + 2.0 * sd, "upper");
    near(v.boll_lower, 10.5 - 2.0 * sd, "lower");
}

#[test]
fn quotes_attach_only_when_fresh_and_not_from_the_future() {
    let mut e = SignalEngine::default();
    let at = |ms: i64| IsoInstant::from_unix_millis(ms).expect("in range");
    let quote = |ms: i64| Quote {
        event_ts: at(ms),
        bid_price: 9.5,
        bid_size: 100.9,
        ask_price: 10.5,
        ask_size: 0.5,
    };
    e.on_quote(quote(END1 - 15_000));
    let v = e.on_bar(bar(1, 10.0, 1.0));
    assert_eq!(
        (v.imbalance_spread, v.imbalance_bid_px, v.imbalance_ask_px),
        (Some(1.0), Some(9.5), Some(10.5))
    );
    assert_eq!(
        (v.imbalance_bid_sz, v.imbalance_ask_sz),
        (Some(100), Some(0))
    );
    e.on_quote(quote(END1 + 1000 - 15_001));
    assert_eq!(
        e.on_bar(bar(2, 10.0, 1.0)).imbalance_spread,
        None,
        "15001 ms old"
    );
    e.on_quote(quote(END1 + 2000 + 1));
    assert_eq!(
        e.on_bar(bar(3, 10.0, 1.0)).imbalance_spread,
        None,
        "look-ahead"
    );
    // 15000.999 ms truncates to 15000: fresh.
    let q = Quote {
        event_ts: IsoInstant::from_unix(END1 / 1000 + 3 - 16, 999_001_000).expect("in range"),
        ..quote(0)
    };
    e.on_quote(q);
    assert!(e.on_bar(bar(4, 10.0, 1.0)).imbalance_spread.is_some());
}

#[test]
fn a_late_bar_is_evaluated_at_the_latest_bar_with_its_own_quote_check() {
    let mut e = SignalEngine::default();
    e.on_bar(bar(1, 10.0, 1.0));
    e.on_bar(bar(3, 12.0, 1.0));
    let latest = e.clone().on_bar(bar(4, 12.0, 0.0));
    let late = e.on_bar(bar(2, 11.0, 1.0));
    // Series 10, 11, 12 evaluated at 12: EMA12 after 10 → 11 → 12.
    let ema12 = 10.0 + (11.0 - 10.0) * (2.0 / 13.0);
    let ema12 = ema12 + (12.0 - ema12) * (2.0 / 13.0);
    near(late.ema12, ema12, "ema12");
    assert_eq!(late.rsi14, Some(100.0));
    assert_ne!(late.ema12, latest.ema12);
}

#[test]
fn seeding_continues_the_series_and_the_session() {
    let bars: Vec<BarInput> = (1..=30).map(|k| bar(k, 100.0 + k as f64, 10.0)).collect();
    let mut fresh = SignalEngine::default();
    for b in &bars[..29] {
        fresh.on_bar(*b);
    }
    let session = fresh.session();
    let mut seeded = SignalEngine::seeded(SignalConfig::default(), &bars[..29], session, None);
    assert_eq!(seeded.on_bar(bars[29]), fresh.on_bar(bars[29]));
}
