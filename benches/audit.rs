//! The audit's own work on an hour of a busy symbol: 120,000 trades (some in sweeps of one
//! millisecond, some late) and 240,000 quotes, measured per stage:
//!
//! * `predict`: the trades through the oracle from a seeded state, following the stored rows'
//!   watermark splits (trades/s);
//! * `compare`: the predicted rows against the stored ones, the quote columns judged against
//!   the quotes (rows/s);
//! * `hour`: both, i.e. everything `audit` does for one symbol once the inputs are read.
//!
//! The Kafka reads and ClickHouse queries are measured end to end against the local stack
//! (README "Audit mode", throughput).
//!
//! `cargo bench --bench audit -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use torghut_e2e::domain::audit::judge::{self, CompareOptions, PredictInput, Prediction};
use torghut_e2e::domain::audit::quotes::QuoteBounds;
use torghut_e2e::domain::audit::record::Record;
use torghut_e2e::domain::audit::replay::Timing;
use torghut_e2e::domain::envelope::IsoInstant;
use torghut_e2e::domain::model::Signal;
use torghut_e2e::domain::oracle::{BarInput, Quote, SeedState, SessionSums, Trade};
use torghut_e2e::domain::scenario::Tolerance;

const TRADES: usize = 120_000;
const QUOTES_PER_TRADE: usize = 2;
/// 2026-07-21T14:30:00Z in ms.
const START_MS: i64 = 1_784_644_200_000;
const HOUR_MS: i64 = 3_600_000;

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

fn instant(ms: i64, ns: u32) -> IsoInstant {
    IsoInstant::from_unix(
        (ms).div_euclid(1000),
        (ms.rem_euclid(1000) as u32) * 1_000_000 + ns,
    )
    .expect("instant")
}

/// An hour of one symbol: ~33 trades a second, 3 % in one-millisecond sweeps, 1 % late by up
/// to 3 s; two quotes per trade, jittered.
fn inputs() -> (Vec<Record<Trade>>, Vec<Record<Quote>>) {
    let mut rng = SplitMix(20_260_721);
    let mut trades = Vec::with_capacity(TRADES);
    let mut quotes = Vec::with_capacity(TRADES * QUOTES_PER_TRADE);
    let mut cents: i64 = 17_235;
    let step = HOUR_MS as f64 / TRADES as f64;
    let mut i = 0;
    while trades.len() < TRADES {
        let arrival = START_MS + (i as f64 * step) as i64;
        i += 1;
        cents = (cents + rng.below(7) as i64 - 3).max(100);
        let late = if rng.below(100) == 0 {
            rng.below(3_000) as i64
        } else {
            0
        };
        let prints = if rng.below(33) == 0 { 3 } else { 1 };
        let at = instant(arrival - late, rng.below(1_000_000) as u32);
        for k in 0..prints {
            let value = Trade {
                t: at,
                event_ts: at,
                price: (cents + k) as f64 / 100.0,
                size: (1 + rng.below(5)) as f64 * 100.0,
            };
            trades.push(Record {
                partition: 0,
                offset: trades.len() as i64,
                ts_ms: arrival,
                value,
            });
        }
        for _ in 0..QUOTES_PER_TRADE {
            let a = arrival + rng.below(40) as i64;
            let bid = cents - rng.below(3) as i64;
            quotes.push(Record {
                partition: 0,
                offset: quotes.len() as i64,
                ts_ms: a,
                value: Quote {
                    event_ts: instant(a - rng.below(20) as i64, rng.below(1_000_000) as u32),
                    bid_price: bid as f64 / 100.0,
                    bid_size: (1 + rng.below(20)) as f64 * 100.0,
                    ask_price: (bid + 1 + rng.below(4) as i64) as f64 / 100.0,
                    ask_size: (1 + rng.below(20)) as f64 * 100.0,
                },
            });
        }
    }
    quotes.sort_by_key(|q| q.ts_ms);
    (trades, quotes)
}

/// 360 retained bars and a session before the hour: the state the audit continues.
fn seed() -> SeedState {
    SeedState {
        last_seq: 48_212,
        bars: (0..360)
            .map(|i| BarInput {
                end_ms: START_MS - (360 - i) * 1000,
                close: 172.0 + (i % 7) as f64 * 0.01,
                volume: 300.0,
            })
            .collect(),
        session: SessionSums {
            pv: 172.1 * 9.0e7,
            volume: 9.0e7,
        },
        last_quote: None,
    }
}

/// The stored rows: the prediction itself, ingest_ts 40 ms after each bar's end, and the quote
/// columns of the last quote recorded by then when it is fresh (one consistent history).
fn stored(prediction: &Prediction, quotes: &[Record<Quote>]) -> Vec<Signal> {
    let mut signals = prediction.signals.clone();
    let mut j = 0;
    for s in &mut signals {
        s.ingest_ts = s.event_ts + time::Duration::milliseconds(40);
        let emitted = (s.ingest_ts.unix_timestamp_nanos() / 1_000_000) as i64;
        while j + 1 < quotes.len() && quotes[j + 1].ts_ms <= emitted {
            j += 1;
        }
        let q = &quotes[j].value;
        let end = (s.event_ts.unix_timestamp_nanos() / 1_000_000) as i64;
        if q.is_fresh_for(end, 15_000) && quotes[j].ts_ms <= emitted {
            s.imbalance_spread = Some(q.ask_price - q.bid_price);
            s.imbalance_bid_px = Some(q.bid_price);
            s.imbalance_ask_px = Some(q.ask_price);
            s.imbalance_bid_sz = Some(q.bid_size as i64 as u64);
            s.imbalance_ask_sz = Some(q.ask_size as i64 as u64);
        }
    }
    signals
}

fn bench(c: &mut Criterion) {
    let (trades, quotes) = inputs();
    let timing = Timing {
        clock_skew_ms: 500,
        idle_timeout_ms: 30_000,
    };
    let input = PredictInput {
        symbol: "NVDA",
        trades: &trades,
        first: 1,
        stored: &[],
        to_ms: START_MS + HOUR_MS - 10_000,
        last_seq: None,
        timing,
    };
    let prediction = judge::predict(&input, seed());
    let stored_signals = stored(&prediction, &quotes);
    let options = CompareOptions {
        tolerance: Tolerance::default(),
        history_from_seq: 0,
        skip_session: false,
        ttl_floor: time::OffsetDateTime::UNIX_EPOCH,
        quotes: QuoteBounds {
            slack_ms: 2_500,
            horizon_ms: i64::MAX,
            to_end: false,
            stale_after_ms: torghut_e2e::config::DEFAULT_QUOTE_STALE_AFTER_MS,
        },
    };
    let check = judge::compare(
        &prediction,
        &prediction.bars,
        &stored_signals,
        &quotes,
        options,
    );
    assert!(
        check.bars.is_clean() && check.signals.is_clean(),
        "the bench's stored rows must agree with the audit: {} / {} mismatches",
        check.bars.mismatches.len(),
        check.signals.mismatches.len()
    );
    eprintln!(
        "audit bench: {} trades, {} quotes → {} bars",
        trades.len(),
        quotes.len(),
        prediction.bars.len()
    );
    let mut group = c.benchmark_group("audit");
    group.sample_size(10);
    group.throughput(Throughput::Elements(trades.len() as u64));
    group.bench_function("predict", |b| {
        b.iter(|| black_box(judge::predict(&input, seed())))
    });
    group.throughput(Throughput::Elements(prediction.bars.len() as u64));
    group.bench_function("compare", |b| {
        b.iter(|| {
            black_box(judge::compare(
                &prediction,
                &prediction.bars,
                &stored_signals,
                &quotes,
                options,
            ))
        })
    });
    group.throughput(Throughput::Elements(trades.len() as u64));
    group.bench_function("hour", |b| {
        b.iter(|| {
            let p = judge::predict(&input, seed());
            black_box(judge::compare(
                &p,
                &p.bars,
                &stored_signals,
                &quotes,
                options,
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
