//! Properties of the oracle on random streams: bar invariants, conservation of volume and trade
//! counts, `seq` order, the extra bars of out-of-order trades (pipeline.md §2.4), indicator
//! ranges, and the O(1) incremental signal engine against the rebuild-per-bar reference.

use std::collections::BTreeMap;

use proptest::prelude::*;
use time::OffsetDateTime;
use torghut_e2e::domain::envelope::IsoInstant;
use torghut_e2e::domain::model::{Microbar, Signal};
use torghut_e2e::domain::oracle::reference::ReferenceEngine;
use torghut_e2e::domain::oracle::{
    BarInput, Expected, Oracle, Quote, SignalConfig, SignalEngine, SignalValues, Trade,
};

/// 2026-07-21T14:30:00Z in ms.
const T0_MS: i64 = 1_784_644_200_000;

#[derive(Debug, Clone)]
struct TradeSpec {
    symbol: usize,
    /// Milliseconds after the previous trade.
    step_ms: i64,
    /// How far behind the stream's clock this trade's timestamp is (0 for most trades).
    late_ms: i64,
    /// Price in cents.
    cents: i64,
    size: f64,
}

fn trade_spec() -> impl Strategy<Value = TradeSpec> {
    (
        0usize..3,
        prop_oneof![6 => 0i64..400, 1 => 400i64..3_500],
        prop_oneof![20 => Just(0i64), 1 => 1i64..4_000],
        9_000i64..11_000,
        prop_oneof![1 => Just(0.0), 6 => (1u32..500).prop_map(f64::from), 1 => (1u32..100_000).prop_map(|x| f64::from(x) / 1000.0)],
    )
        .prop_map(|(symbol, step_ms, late_ms, cents, size)| TradeSpec {
            symbol,
            step_ms,
            late_ms,
            cents,
            size,
        })
}

const SYMBOLS: [&str; 3] = ["PA", "PB", "PC"];

/// One trade as fed to the oracle: symbol, event time (ms), price, size.
type Fed = (usize, i64, f64, f64);

fn run(specs: &[TradeSpec]) -> (Vec<Fed>, Vec<Expected>) {
    let mut oracle = Oracle::new();
    let mut rows = Vec::new();
    let mut fed = Vec::new();
    let mut clock = T0_MS;
    for s in specs {
        clock += s.step_ms;
        let at = clock - s.late_ms;
        let price = s.cents as f64 / 100.0;
        let instant = IsoInstant::from_unix_millis(at).expect("in range");
        let trade = Trade {
            t: instant,
            event_ts: instant,
            price,
            size: s.size,
        };
        rows.extend(oracle.on_trade(SYMBOLS[s.symbol], trade));
        fed.push((s.symbol, at, price, s.size));
    }
    rows.extend(oracle.flush_open());
    (fed, rows)
}

fn split(rows: &[Expected]) -> (Vec<&Microbar>, Vec<&Signal>) {
    let mut bars = Vec::new();
    let mut signals = Vec::new();
    for r in rows {
        match r {
            Expected::Microbar(b) => bars.push(b),
            Expected::Signal(s) => signals.push(s),
        }
    }
    (bars, signals)
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// A direct statement of the microbar rules (§2.4, §3.2): one open bucket per symbol, another
/// second closes it, the watermark `max event − 2001 ms` closes every bucket whose end it reached
/// (checked after each trade that raises it). Returns (symbol, end ms, seq, count, Σ size).
fn naive_bars(fed: &[Fed]) -> Vec<(usize, i64, u64, u64, f64)> {
    let mut open: BTreeMap<usize, (i64, u64, f64)> = BTreeMap::new(); // second → count, volume
    let mut seq: BTreeMap<usize, u64> = BTreeMap::new();
    let mut out = Vec::new();
    let mut watermark = i64::MIN;
    let mut emit = |sym: usize, bucket: (i64, u64, f64), out: &mut Vec<_>| {
        let s = seq.entry(sym).or_insert(0);
        *s += 1;
        out.push((sym, (bucket.0 + 1) * 1000, *s, bucket.1, bucket.2));
    };
    for &(sym, at, _, size) in fed {
        let second = at.div_euclid(1000);
        match open.get_mut(&sym) {
            Some(b) if b.0 == second => {
                b.1 += 1;
                b.2 += size;
            }
            _ => {
                if let Some(b) = open.insert(sym, (second, 1, size)) {
                    emit(sym, b, &mut out);
                }
            }
        }
        let w = at - 2001;
        if w > watermark {
            watermark = w;
            let mut due: Vec<(i64, usize)> = open
                .iter()
                .filter(|(_, b)| (b.0 + 1) * 1000 <= watermark)
                .map(|(s, b)| ((b.0 + 1) * 1000, *s))
                .collect();
            due.sort();
            for (_, s) in due {
                if let Some(b) = open.remove(&s) {
                    emit(s, b, &mut out);
                }
            }
        }
    }
    let mut rest: Vec<(i64, usize)> = open.iter().map(|(s, b)| ((b.0 + 1) * 1000, *s)).collect();
    rest.sort();
    for (_, s) in rest {
        if let Some(b) = open.remove(&s) {
            emit(s, b, &mut out);
        }
    }
    out
}

fn close_enough(a: f64, b: f64) -> bool {
    (a - b).abs() <= (1e-9 * a.abs().max(b.abs())).max(1e-12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn bars_are_well_formed_and_conserve_trades(specs in prop::collection::vec(trade_spec(), 1..300)) {
        let (fed, rows) = run(&specs);
        let (bars, signals) = split(&rows);
        prop_assert_eq!(bars.len(), signals.len());
        for pair in rows.chunks(2) {
            let (Expected::Microbar(b), Expected::Signal(s)) = (&pair[0], &pair[1]) else {
                return Err(TestCaseError::fail("a microbar must be followed by its signal"));
            };
            prop_assert_eq!((&b.symbol, b.event_ts, b.seq), (&s.symbol, s.event_ts, s.seq));
        }
        for b in &bars {
            prop_assert!(b.l <= b.o && b.o <= b.h, "{:?}", b);
            prop_assert!(b.l <= b.c && b.c <= b.h, "{:?}", b);
            if let Some(vwap) = b.vwap {
                let slack = 1e-12 * b.h.abs();
                prop_assert!(b.l - slack <= vwap && vwap <= b.h + slack, "{:?}", b);
            } else {
                prop_assert_eq!(b.v, 0.0);
            }
        }
        // Per symbol and second: counts and volumes of the bars equal the trades'.
        let mut by_second: BTreeMap<(String, i64), (u64, f64, u64, f64)> = BTreeMap::new();
        for &(sym, at, _, size) in &fed {
            let e = by_second.entry((SYMBOLS[sym].to_string(), at.div_euclid(1000))).or_default();
            e.0 += 1;
            e.1 += size;
        }
        for b in &bars {
            let e = by_second.entry((b.symbol.clone(), unix_ms(b.event_ts) / 1000 - 1)).or_default();
            e.2 += b.count;
            e.3 += b.v;
        }
        for (key, (trades, volume, counted, summed)) in by_second {
            prop_assert_eq!(trades, counted, "{:?}", key);
            prop_assert!(close_enough(volume, summed), "{:?}: {} vs {}", key, volume, summed);
        }
        // seq: 1, 2, 3, … per symbol in emission order.
        let mut last: BTreeMap<&str, u64> = BTreeMap::new();
        for b in &bars {
            let previous = last.insert(b.symbol.as_str(), b.seq).unwrap_or(0);
            prop_assert_eq!(b.seq, previous + 1);
        }
        for s in &signals {
            if let Some(rsi) = s.rsi14 {
                prop_assert!((0.0..=100.0).contains(&rsi), "rsi {}", rsi);
            }
            if let (Some(lo), Some(mid), Some(hi)) = (s.boll_lower, s.boll_mid, s.boll_upper) {
                prop_assert!(lo <= mid && mid <= hi, "{} {} {}", lo, mid, hi);
            }
            prop_assert!(s.vwap_session.is_some());
            prop_assert!(s.ema12.is_some() && s.macd.is_some());
        }
    }

    #[test]
    fn bars_follow_the_direct_statement_of_the_rules(specs in prop::collection::vec(trade_spec(), 1..300)) {
        let (fed, rows) = run(&specs);
        let (bars, _) = split(&rows);
        // Per symbol, in seq order (the order across symbols within one watermark advance is
        // not meaningful).
        let mut got: Vec<(usize, u64, i64, u64)> = bars
            .iter()
            .map(|b| {
                let sym = SYMBOLS.iter().position(|s| *s == b.symbol).unwrap_or(99);
                (sym, b.seq, unix_ms(b.event_ts), b.count)
            })
            .collect();
        let mut want: Vec<(usize, u64, i64, u64)> =
            naive_bars(&fed).into_iter().map(|(s, e, q, c, _)| (s, q, e, c)).collect();
        got.sort_by_key(|k| (k.0, k.1));
        want.sort_by_key(|k| (k.0, k.1));
        prop_assert_eq!(got, want);
    }

    /// Without watermark progress (all trades within 1.5 s), a symbol gets one bar per run of
    /// trades in the same second: every change of second — forwards or backwards — closes a bar.
    #[test]
    fn out_of_order_trades_make_one_bar_per_run(offsets in prop::collection::vec(0i64..1_500, 1..60)) {
        let base = T0_MS + 400;
        let mut oracle = Oracle::new();
        let mut rows = Vec::new();
        for off in &offsets {
            rows.extend(oracle.on_trade("X", Trade {
                t: IsoInstant::from_unix_millis(base + off).expect("in range"),
                event_ts: IsoInstant::from_unix_millis(base + off).expect("in range"),
                price: 1.0,
                size: 1.0,
            }));
        }
        prop_assert!(rows.is_empty() || split(&rows).0.len() == rows.len() / 2);
        let before_flush = split(&rows).0.len();
        rows.extend(oracle.flush_open());
        let seconds: Vec<i64> = offsets.iter().map(|o| (base + o).div_euclid(1000)).collect();
        let runs = 1 + seconds.windows(2).filter(|w| w[0] != w[1]).count();
        let (bars, _) = split(&rows);
        prop_assert_eq!(bars.len(), runs);
        prop_assert_eq!(before_flush, runs - 1);
        let seqs: Vec<u64> = bars.iter().map(|b| b.seq).collect();
        prop_assert_eq!(seqs, (1..=runs as u64).collect::<Vec<_>>());
    }
}

// ---------------------------------------------------------------------------------------------
// Incremental signal engine against the rebuild-per-bar reference
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum SignalEvent {
    Bar(BarInput),
    Quote(Quote),
}

/// Moves of the bar clock: mostly the next second, sometimes gaps around the 300 s window,
/// sometimes a late or duplicate end time.
#[derive(Debug, Clone, Copy)]
enum Step {
    Next(i64),
    Late(i64),
    Duplicate,
    Quote(i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        60 => (1i64..4).prop_map(Step::Next),
        3 => (290i64..310).prop_map(Step::Next),
        1 => (500i64..2_000).prop_map(Step::Next),
        3 => (1i64..500).prop_map(Step::Late),
        3 => Just(Step::Duplicate),
        8 => (-20_000i64..2_000).prop_map(Step::Quote),
    ]
}

fn events(steps: &[(Step, i64, u32)]) -> Vec<SignalEvent> {
    events_every(steps, 1000)
}

/// [`events`] with bars `unit_ms` apart (1000: the 1 s path, 60000: the 1-minute path).
fn events_every(steps: &[(Step, i64, u32)], unit_ms: i64) -> Vec<SignalEvent> {
    let mut out = Vec::new();
    let mut end = T0_MS;
    let mut cents = 10_000i64;
    for &(step, drift, volume) in steps {
        cents = (cents + drift).max(1);
        let volume = if volume % 9 == 0 {
            0.0
        } else {
            f64::from(volume) / 7.0
        };
        let close = cents as f64 / 100.0;
        let bar_end = match step {
            Step::Next(s) => {
                end += s * unit_ms;
                end
            }
            Step::Late(s) => end - s * unit_ms,
            Step::Duplicate => end,
            Step::Quote(offset) => {
                let t = IsoInstant::from_unix_millis(end + offset).expect("in range");
                out.push(SignalEvent::Quote(Quote {
                    event_ts: t,
                    bid_price: close - 0.01,
                    bid_size: f64::from(volume as u32) + 0.5,
                    ask_price: close + 0.01,
                    ask_size: 3.0,
                }));
                continue;
            }
        };
        out.push(SignalEvent::Bar(BarInput {
            end_ms: bar_end,
            close,
            volume,
        }));
    }
    out
}

fn values_agree(a: &SignalValues, b: &SignalValues) -> Result<(), String> {
    let pairs = [
        ("ema12", a.ema12, b.ema12),
        ("ema26", a.ema26, b.ema26),
        ("macd", a.macd, b.macd),
        ("macd_signal", a.macd_signal, b.macd_signal),
        ("macd_hist", a.macd_hist, b.macd_hist),
        ("rsi14", a.rsi14, b.rsi14),
        ("boll_mid", a.boll_mid, b.boll_mid),
        ("boll_upper", a.boll_upper, b.boll_upper),
        ("boll_lower", a.boll_lower, b.boll_lower),
        ("vwap_session", a.vwap_session, b.vwap_session),
        ("vwap_w5m", a.vwap_w5m, b.vwap_w5m),
        (
            "vol_realized_w60s",
            a.vol_realized_w60s,
            b.vol_realized_w60s,
        ),
        ("imbalance_spread", a.imbalance_spread, b.imbalance_spread),
        ("imbalance_bid_px", a.imbalance_bid_px, b.imbalance_bid_px),
        ("imbalance_ask_px", a.imbalance_ask_px, b.imbalance_ask_px),
    ];
    for (name, x, y) in pairs {
        let ok = match (x, y) {
            (None, None) => true,
            (Some(x), Some(y)) => close_enough(x, y),
            _ => false,
        };
        if !ok {
            return Err(format!("{name}: incremental {x:?} vs reference {y:?}"));
        }
    }
    if (a.imbalance_bid_sz, a.imbalance_ask_sz) != (b.imbalance_bid_sz, b.imbalance_ask_sz) {
        return Err("imbalance sizes differ".into());
    }
    Ok(())
}

fn compare_engines(config: SignalConfig, events: &[SignalEvent]) -> Result<usize, String> {
    let mut fast = SignalEngine::new(config);
    let mut slow = ReferenceEngine::new(config);
    let mut bars = 0;
    for (i, e) in events.iter().enumerate() {
        match e {
            SignalEvent::Quote(q) => {
                fast.on_quote(*q);
                slow.on_quote(*q);
            }
            SignalEvent::Bar(b) => {
                bars += 1;
                let (x, y) = (fast.on_bar(*b), slow.on_bar(*b));
                values_agree(&x, &y).map_err(|m| format!("event {i} ({b:?}): {m}"))?;
            }
        }
    }
    Ok(bars)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_incremental_engine_equals_the_rebuild(
        steps in prop::collection::vec((step(), -30i64..=30, 0u32..2_000), 1..1_500),
        limit in prop_oneof![1 => 1usize..8, 1 => 8usize..40, 2 => Just(360usize)],
    ) {
        let config = SignalConfig { history_limit: limit, ..SignalConfig::default() };
        let result = compare_engines(config, &events(&steps));
        prop_assert!(result.is_ok(), "limit {}: {}", limit, result.err().unwrap_or_default());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The 1-minute path's settings (65 bars, one realized-volatility return) on minute bars,
    /// with late bars, corrections (same minute again) and quotes: incremental equals rebuild.
    #[test]
    fn the_minute_engine_equals_the_rebuild(
        steps in prop::collection::vec((step(), -30i64..=30, 0u32..2_000), 1..400),
    ) {
        let config = SignalConfig::default().minute();
        prop_assert_eq!((config.history_limit, config.realized_vol_returns), (65, 1));
        let result = compare_engines(config, &events_every(&steps, 60_000));
        prop_assert!(result.is_ok(), "{}", result.err().unwrap_or_default());
    }
}

/// A deterministic generator for the long runs (no external crate needed).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// 20,000 bars (history full and sliding for most of them), with late and duplicate bars, gaps
/// and quotes: the running values, corrected for the sliding seed, stay within 1e-9 relative of
/// a full recomputation at every bar.
#[test]
fn the_incremental_engine_equals_the_rebuild_over_long_series() {
    for seed in [1u64, 2, 3] {
        let mut rng = SplitMix(seed);
        let steps: Vec<(Step, i64, u32)> = (0..24_000)
            .map(|_| {
                let step = match rng.below(100) {
                    0..=84 => Step::Next(1 + rng.below(2) as i64),
                    85..=86 => Step::Late(1 + rng.below(400) as i64),
                    87..=88 => Step::Duplicate,
                    89 => Step::Next(295 + rng.below(10) as i64),
                    _ => Step::Quote(rng.below(22_000) as i64 - 20_000),
                };
                (step, rng.below(61) as i64 - 30, rng.below(2_000) as u32)
            })
            .collect();
        let bars = compare_engines(SignalConfig::default(), &events(&steps))
            .unwrap_or_else(|m| panic!("seed {seed}: {m}"));
        assert!(bars > 20_000, "{bars} bars");
    }
}
