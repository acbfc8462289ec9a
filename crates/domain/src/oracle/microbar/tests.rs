use super::*;

/// 2026-07-21T14:30:00Z.
const T0: i64 = 1_784_644_200;

fn tick(ms_after_t0: i64, price: f64, size: f64) -> Tick {
    let ms = T0 * 1000 + ms_after_t0;
    Tick {
        second: ms.div_euclid(1000),
        event_ms: ms,
        price,
        size,
    }
}

fn run(trades: &[(SymbolId, Tick)]) -> (MicrobarAggregator, Vec<ClosedBar>) {
    let mut agg = MicrobarAggregator::new();
    let mut out = Vec::new();
    for (s, t) in trades {
        agg.on_trade(*s, *t, &mut out);
    }
    (agg, out)
}

#[test]
fn the_worked_example_makes_one_bar() {
    let (mut agg, out) = run(&[
        (0, tick(100, 100.0, 10.0)),
        (0, tick(400, 101.0, 20.0)),
        (0, tick(900, 99.0, 30.0)),
    ]);
    assert!(out.is_empty(), "the bucket stays open");
    let mut out = Vec::new();
    agg.flush_open(&mut out);
    let bar = out[0];
    assert_eq!(out.len(), 1);
    assert_eq!(
        (bar.o, bar.h, bar.l, bar.c, bar.v),
        (100.0, 101.0, 99.0, 99.0, 60.0)
    );
    assert_eq!((bar.count, bar.seq, bar.second), (3, 1, T0));
    assert_eq!(bar.end_ms(), (T0 + 1) * 1000);
    let vwap = bar.vwap.expect("volume > 0");
    assert!((vwap - 5990.0 / 60.0).abs() < 1e-12, "{vwap}");
}

#[test]
fn a_trade_of_a_later_second_closes_the_open_bucket_immediately() {
    let (_, out) = run(&[(0, tick(100, 1.0, 1.0)), (0, tick(1_050, 2.0, 1.0))]);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].second, out[0].c, out[0].seq), (T0, 1.0, 1));
}

#[test]
fn trades_exactly_on_a_second_boundary_open_the_next_bucket() {
    let (mut agg, mut out) = run(&[
        (0, tick(0, 1.0, 1.0)),
        (0, tick(999, 2.0, 1.0)),
        (0, tick(1_000, 3.0, 1.0)),
    ]);
    agg.flush_open(&mut out);
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].second, out[0].count), (T0, 2));
    assert_eq!((out[1].second, out[1].count, out[1].o), (T0 + 1, 1, 3.0));
}

#[test]
fn a_late_trade_splits_the_open_second_into_extra_bars_with_new_seqs() {
    // Bucket S = T0+5 open, a late trade for S-2, then more trades for S (§2.4).
    let (mut agg, mut out) = run(&[
        (0, tick(5_100, 10.0, 1.0)),
        (0, tick(5_200, 11.0, 2.0)),
        (0, tick(3_500, 9.0, 4.0)),  // late: closes S early, opens S-2
        (0, tick(5_300, 12.0, 8.0)), // closes S-2, opens S again
    ]);
    agg.flush_open(&mut out);
    let got: Vec<(i64, u64, u64, f64)> = out
        .iter()
        .map(|b| (b.second - T0, b.seq, b.count, b.v))
        .collect();
    assert_eq!(got, vec![(5, 1, 2, 3.0), (3, 2, 1, 4.0), (5, 3, 1, 8.0)]);
}

#[test]
fn the_watermark_closes_buckets_2001_ms_after_their_end() {
    // Symbol 0 trades in second 0; symbol 1 trades later and drives the watermark.
    let (agg, out) = run(&[
        (0, tick(500, 1.0, 1.0)),
        (1, tick(3_000, 5.0, 1.0)), // watermark 998: second 0 ends at 1000
    ]);
    assert!(out.is_empty());
    assert!(agg.has_open(0));
    let (agg, out) = run(&[(0, tick(500, 1.0, 1.0)), (1, tick(3_001, 5.0, 1.0))]);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].symbol, out[0].second), (0, T0));
    assert!(!agg.has_open(0) && agg.has_open(1));
}

#[test]
fn a_bucket_opened_behind_the_watermark_waits_for_the_next_advance() {
    let (agg, out) = run(&[
        (0, tick(10_000, 1.0, 1.0)),
        (0, tick(2_000, 2.0, 1.0)), // late by 8 s: closes second 10 early, opens second 2
        (0, tick(2_500, 3.0, 1.0)), // same second, no watermark advance in between: merges
    ]);
    assert_eq!(out.len(), 1);
    assert!(agg.has_open(0));
    let (_, out) = run(&[
        (0, tick(10_000, 1.0, 1.0)),
        (0, tick(2_000, 2.0, 1.0)),
        (1, tick(10_001, 7.0, 1.0)), // the watermark advances: second 2 is emitted
        (0, tick(2_500, 3.0, 1.0)),
    ]);
    let got: Vec<(SymbolId, i64, u64)> = out
        .iter()
        .map(|b| (b.symbol, b.second - T0, b.count))
        .collect();
    assert_eq!(got, vec![(0, 10, 1), (0, 2, 1)]);
}

#[test]
fn zero_size_trades_count_and_an_all_zero_bucket_has_no_vwap() {
    let (mut agg, mut out) = run(&[(0, tick(100, 5.0, 0.0)), (0, tick(200, 6.0, 0.0))]);
    agg.flush_open(&mut out);
    assert_eq!((out[0].count, out[0].v, out[0].vwap), (2, 0.0, None));
    let (mut agg, mut out) = run(&[(0, tick(100, 5.0, 0.0)), (0, tick(200, 6.0, 2.0))]);
    agg.flush_open(&mut out);
    assert_eq!((out[0].count, out[0].vwap), (2, Some(6.0)));
}

#[test]
fn duplicate_trades_are_aggregated_twice() {
    let t = tick(100, 5.0, 3.0);
    let (mut agg, mut out) = run(&[(0, t), (0, t)]);
    agg.flush_open(&mut out);
    assert_eq!((out[0].count, out[0].v), (2, 6.0));
}

#[test]
fn seq_continues_from_a_seeded_value_per_symbol() {
    let mut agg = MicrobarAggregator::new();
    agg.set_last_seq(1, 41);
    let mut out = Vec::new();
    agg.on_trade(1, tick(0, 1.0, 1.0), &mut out);
    agg.on_trade(0, tick(0, 1.0, 1.0), &mut out);
    agg.on_trade(1, tick(1_000, 1.0, 1.0), &mut out);
    agg.flush_open(&mut out);
    let seqs: Vec<(SymbolId, u64)> = out.iter().map(|b| (b.symbol, b.seq)).collect();
    assert_eq!(seqs, vec![(1, 42), (0, 1), (1, 43)]);
    assert_eq!(agg.last_seq(1), 43);
}

#[test]
fn high_and_low_follow_java_math() {
    assert_eq!(java_max(-0.0, 0.0).to_bits(), 0.0f64.to_bits());
    assert_eq!(java_min(0.0, -0.0).to_bits(), (-0.0f64).to_bits());
    assert!(java_max(1.0, f64::NAN).is_nan());
    assert_eq!(java_max(1.0, 2.0), 2.0);
    assert_eq!(java_min(1.0, 2.0), 1.0);
}
