//! Expansion: the events a scenario publishes, generators expanded, in publish order.

use rand_core::{Rng, SeedableRng};
use toml::Spanned;

use super::bars::BarSpec;
use super::generate::{
    boundary_second, burst_at, gap_at, round_cents, spread, Generator, QuoteSpec, TradeSpec,
};

impl Generator {
    /// The trades this generator publishes, with a flag for deliberately late ones.
    pub(super) fn trades(&self) -> Vec<(TradeEvent, bool)> {
        let on_time = |symbol: &str, at_ms, price, size| {
            (
                TradeEvent {
                    symbol: symbol.to_string(),
                    at_ms,
                    price,
                    size,
                },
                false,
            )
        };
        match self {
            Generator::Ramp {
                symbol,
                start_ms,
                seconds,
                per_second,
                price,
                step,
                size,
            } => spread(*start_ms, *seconds, *per_second)
                .enumerate()
                .map(|(i, at)| on_time(symbol, at, price + step * i as f64, *size))
                .collect(),
            Generator::RandomWalk {
                symbol,
                start_ms,
                seconds,
                per_second,
                price,
                volatility,
                max_size,
                seed,
            } => {
                let mut rng = rand_pcg::Pcg64::seed_from_u64(*seed);
                let mut p = *price;
                spread(*start_ms, *seconds, *per_second)
                    .map(|at| {
                        let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                        p = round_cents(p * (1.0 + volatility * (2.0 * unit - 1.0)));
                        let size = 1 + rng.next_u32() % max_size;
                        on_time(symbol, at, p, size as f64)
                    })
                    .collect()
            }
            Generator::Burst {
                symbol,
                at_ms,
                count,
                price,
                size,
            } => (0..u64::from(*count))
                .filter_map(|i| {
                    let at = burst_at(*at_ms, i, u64::from(*count))?;
                    Some(on_time(symbol, at, price + 0.01 * (i % 7) as f64, *size))
                })
                .collect(),
            Generator::Gaps {
                symbol,
                start_ms,
                trades,
                every_secs,
                price,
                size,
            } => (0..u64::from(*trades))
                .filter_map(|i| {
                    Some(on_time(
                        symbol,
                        gap_at(*start_ms, i, *every_secs)?,
                        *price,
                        *size,
                    ))
                })
                .collect(),
            Generator::OutOfOrder {
                symbol,
                at_ms,
                late_by_ms,
                price,
                size,
            } => vec![(
                TradeEvent {
                    symbol: symbol.clone(),
                    at_ms: at_ms - late_by_ms,
                    price: *price,
                    size: *size,
                },
                true,
            )],
            Generator::Duplicates {
                symbol,
                at_ms,
                copies,
                price,
                size,
            } => (0..*copies)
                .map(|_| on_time(symbol, *at_ms, *price, *size))
                .collect(),
            Generator::Boundaries {
                symbol,
                start_ms,
                seconds,
                price,
                size,
            } => (0..*seconds)
                .filter_map(|s| boundary_second(*start_ms, s))
                .flat_map(|second| [second, second + 999])
                .enumerate()
                .map(|(i, at)| on_time(symbol, at, price + 0.01 * i as f64, *size))
                .collect(),
            Generator::Sweep {
                symbol,
                at_ms,
                count,
                price,
                step,
                size,
            } => (0..*count)
                .map(|i| {
                    on_time(
                        symbol,
                        *at_ms,
                        round_cents(price + step * f64::from(i)),
                        *size,
                    )
                })
                .collect(),
            Generator::ZeroSize {
                symbol,
                at_ms,
                price,
            } => vec![on_time(symbol, *at_ms, *price, 0.0)],
        }
    }

    /// Offset at which a late trade is published (its place in the publish order).
    pub(super) fn publish_at(&self) -> Option<u64> {
        match self {
            Generator::OutOfOrder { at_ms, .. } => Some(*at_ms),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TradeEvent {
    /// The scenario's alias; the run maps it onto a reserved symbol.
    pub symbol: String,
    /// Event time offset from the run's start.
    pub at_ms: u64,
    pub price: f64,
    pub size: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QuoteEvent {
    pub symbol: String,
    pub at_ms: u64,
    pub bid: f64,
    pub bid_size: f64,
    pub ask: f64,
    pub ask_size: f64,
}

/// A 1-minute bar: published at `at_ms`, for the minute `minute` (see [`super::minute_start`]).
#[derive(Debug, Clone, PartialEq)]
pub struct BarEvent {
    pub symbol: String,
    pub minute: u64,
    /// Publish offset from the run's start (never before the minute starts).
    pub at_ms: u64,
    pub bar: crate::envelope::MinuteBar,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Trade(TradeEvent),
    Quote(QuoteEvent),
    Bar(BarEvent),
}

impl Event {
    /// The event's publish offset (its event time too, but for a bar: see [`BarEvent`]).
    pub fn at_ms(&self) -> u64 {
        match self {
            Event::Trade(t) => t.at_ms,
            Event::Quote(q) => q.at_ms,
            Event::Bar(b) => b.at_ms,
        }
    }
    pub fn symbol(&self) -> &str {
        match self {
            Event::Trade(t) => &t.symbol,
            Event::Quote(q) => &q.symbol,
            Event::Bar(b) => &b.symbol,
        }
    }
}

/// All events in publish order: by publish offset, ties in file order (stable sort). Call it on
/// a scenario whose extents were checked against its limits (see the module comment).
pub fn expand(
    trades: &[Spanned<TradeSpec>],
    quotes: &[Spanned<QuoteSpec>],
    generators: &[Spanned<Generator>],
    bars: &[Spanned<BarSpec>],
) -> Vec<Event> {
    let mut keyed: Vec<(u64, Event)> = Vec::new();
    // Exact when the extents were checked, so the vector never grows past it.
    let generated = generators
        .iter()
        .filter_map(|g| g.get_ref().extent())
        .fold(0u64, |n, e| n.saturating_add(e.count));
    if generated <= super::MAX_EVENTS_CEILING {
        keyed.reserve(trades.len() + quotes.len() + generated as usize);
    }
    for t in trades {
        let s = t.get_ref();
        let at_ms = *s.at_ms.get_ref();
        let e = TradeEvent {
            symbol: s.symbol.get_ref().clone(),
            at_ms,
            price: s.price,
            size: s.size,
        };
        keyed.push((at_ms, Event::Trade(e)));
    }
    for q in quotes {
        let s = q.get_ref();
        let at_ms = *s.at_ms.get_ref();
        keyed.push((
            at_ms,
            Event::Quote(QuoteEvent {
                symbol: s.symbol.get_ref().clone(),
                at_ms,
                bid: s.bid,
                bid_size: s.bid_size,
                ask: s.ask,
                ask_size: s.ask_size,
            }),
        ));
    }
    for g in generators {
        let g = g.get_ref();
        for (trade, late) in g.trades() {
            let publish = if late {
                g.publish_at().unwrap_or(trade.at_ms)
            } else {
                trade.at_ms
            };
            keyed.push((publish, Event::Trade(trade)));
        }
    }
    for b in bars {
        let s = b.get_ref();
        // Checked by `BarSpec::validate` before expansion.
        let Some((_, at_ms)) = s.offsets() else {
            continue;
        };
        keyed.push((
            at_ms,
            Event::Bar(BarEvent {
                symbol: s.symbol.get_ref().clone(),
                minute: *s.minute.get_ref(),
                at_ms,
                bar: s.bar(),
            }),
        ));
    }
    keyed.sort_by_key(|(publish, _)| *publish);
    keyed.into_iter().map(|(_, e)| e).collect()
}
