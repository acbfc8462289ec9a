//! Oracle throughput on 1,000,000 trades over 50 symbols (deterministic stream: several trades
//! per second per symbol, 0.2 % of them late by 1–3 s), measured per stage:
//!
//! * `aggregation`: symbol lookup + 1-second buckets + watermark (trades/s);
//! * `signals`: the per-symbol signal engines over the bars that stream produces (bars/s);
//! * `oracle`: the whole facade including row construction (trades/s), for reference.
//!
//! `cargo bench --bench oracle -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use torghut_e2e::domain::envelope::IsoInstant;
use torghut_e2e::domain::oracle::microbar::{ClosedBar, MicrobarAggregator, Tick};
use torghut_e2e::domain::oracle::{BarInput, Oracle, SignalEngine, SymbolTable, Trade};

const TRADES: usize = 1_000_000;
const SYMBOLS: usize = 50;
/// 2026-01-02T14:30:00Z in ms.
const START_MS: i64 = 1_767_364_200_000;

/// SplitMix64: a tiny deterministic generator.
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

struct GenTrade {
    symbol: String,
    at_ms: i64,
    price: f64,
    size: f64,
}

/// 50 symbols trading ~5 times a second each (~250 trades/s overall, ~67 min of market time),
/// random-walk prices in cents, mostly round-lot sizes, some zero and fractional, a few late.
fn stream() -> Vec<GenTrade> {
    let mut rng = SplitMix(20_260_102);
    let names: Vec<String> = (0..SYMBOLS).map(|i| format!("ZZB{i:02}")).collect();
    let mut cents: Vec<i64> = (0..SYMBOLS).map(|i| 5_000 + 300 * i as i64).collect();
    let mut clock = START_MS;
    (0..TRADES)
        .map(|_| {
            clock += rng.below(9) as i64; // mean 4 ms between trades
            let s = rng.below(SYMBOLS as u64) as usize;
            cents[s] = (cents[s] + rng.below(7) as i64 - 3).max(100);
            let late = if rng.below(500) == 0 {
                1_000 + rng.below(2_000) as i64
            } else {
                0
            };
            let size = match rng.below(20) {
                0 => 0.0,
                1 => rng.below(1_000) as f64 / 1_000.0,
                _ => (1 + rng.below(5)) as f64 * 100.0,
            };
            GenTrade {
                symbol: names[s].clone(),
                at_ms: clock - late,
                price: cents[s] as f64 / 100.0,
                size,
            }
        })
        .collect()
}

fn ticks(trades: &[GenTrade]) -> Vec<(&str, Tick)> {
    trades
        .iter()
        .map(|t| {
            let tick = Tick {
                second: t.at_ms.div_euclid(1000),
                event_ms: t.at_ms,
                price: t.price,
                size: t.size,
            };
            (t.symbol.as_str(), tick)
        })
        .collect()
}

/// The bars the stream produces, per symbol in emission order.
fn bars(ticks: &[(&str, Tick)]) -> Vec<(usize, BarInput)> {
    let mut symbols = SymbolTable::default();
    let mut agg = MicrobarAggregator::new();
    let mut closed: Vec<ClosedBar> = Vec::new();
    for (name, tick) in ticks {
        let id = symbols.id(name);
        agg.on_trade(id, *tick, &mut closed);
    }
    agg.flush_open(&mut closed);
    closed
        .iter()
        .map(|b| {
            let bar = BarInput {
                end_ms: b.end_ms(),
                close: b.c,
                volume: b.v,
            };
            (b.symbol as usize, bar)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let trades = stream();
    let ticks = ticks(&trades);
    let bars = bars(&ticks);

    let mut group = c.benchmark_group("oracle");
    group.sample_size(10);

    group.throughput(Throughput::Elements(ticks.len() as u64));
    group.bench_function("aggregation", |b| {
        b.iter(|| {
            let mut symbols = SymbolTable::default();
            let mut agg = MicrobarAggregator::new();
            let mut closed: Vec<ClosedBar> = Vec::with_capacity(4096);
            let mut emitted = 0usize;
            for (name, tick) in &ticks {
                let id = symbols.id(name);
                agg.on_trade(id, *tick, &mut closed);
                emitted += closed.len();
                closed.clear();
            }
            black_box(emitted)
        })
    });

    group.throughput(Throughput::Elements(bars.len() as u64));
    group.bench_function("signals", |b| {
        b.iter_batched(
            || vec![SignalEngine::default(); SYMBOLS],
            |mut engines| {
                let mut checksum = 0.0;
                for (symbol, bar) in &bars {
                    let v = engines[*symbol].on_bar(*bar);
                    checksum += v.macd.unwrap_or(0.0);
                }
                black_box(checksum)
            },
            BatchSize::LargeInput,
        )
    });

    let instants: Vec<IsoInstant> = trades
        .iter()
        .map(|t| IsoInstant::from_unix_millis(t.at_ms).unwrap_or(IsoInstant::UNIX_EPOCH))
        .collect();
    group.throughput(Throughput::Elements(trades.len() as u64));
    group.bench_function("oracle_rows", |b| {
        b.iter(|| {
            let mut oracle = Oracle::new();
            let mut rows = Vec::new();
            let mut count = 0usize;
            for (t, at) in trades.iter().zip(&instants) {
                let trade = Trade {
                    t: *at,
                    event_ts: *at,
                    price: t.price,
                    size: t.size,
                };
                oracle.on_trade_into(&t.symbol, trade, &mut rows);
                count += rows.len();
                rows.clear();
            }
            black_box(count)
        })
    });
    group.finish();
    eprintln!(
        "oracle bench: {} trades, {} bars over {SYMBOLS} symbols",
        ticks.len(),
        bars.len()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
