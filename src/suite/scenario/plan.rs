//! Which symbols a scenario publishes to, where its offset 0 lies on the wall clock, and the
//! trades that close its last bars.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;

use super::{RunError, Runner};
use crate::domain::model::RowKey;
use crate::domain::pool::Lease;
use crate::domain::publish::Channel;
use crate::domain::scenario::{
    time_at, Close, Event, Pacing, Scenario, TradeEvent, MAX_SPAN_CEILING,
};
use crate::domain::symbols;
use crate::suite::seam::{Publisher, Warehouse};

/// A pool run closes by watermark, which may wait for idle partitions (30 s in production).
const POOL_MIN_DEADLINE: Duration = Duration::from_secs(60);
/// The job emits watermarks every second, plus processing slack: see [`Runner::settle`].
const WATERMARK_SETTLE: Duration = Duration::from_millis(2_500);
/// Alias of the clock symbol a watermark-closed scenario trades once at the end.
pub(super) const CLOCK_ALIAS: &str = "CLOCK";

/// Which symbols a scenario publishes to, how it closes, and what it knows of their past.
pub(super) struct Plan {
    /// Scenario alias → symbol.
    pub symbols: BTreeMap<String, String>,
    /// The symbol of a watermark-closing trade.
    pub clock: String,
    pub close: Close,
    pub deadline: Duration,
    pub lease: Option<Lease>,
}

/// One message to publish: an event of the scenario (or a closing trade) on its symbol.
pub(super) struct Outgoing {
    pub channel: Channel,
    pub symbol: String,
    /// Its event time.
    pub at: OffsetDateTime,
    pub event: Event,
}

impl<P: Publisher, W: Warehouse, S> Runner<'_, P, W, S> {
    /// A compressed scenario's event times lie behind the watermark that this run's earlier
    /// (real-time) trades set, so every watermark advance closes its open bucket at once: an
    /// advance still pending from those trades, landing between two trades of one second,
    /// would split that bar. Let it happen first. (Other writers on a live lane can do the
    /// same at any time: there, use real-time pacing.)
    pub(super) async fn settle(&self, scenario: &Scenario) {
        if scenario.pacing != Pacing::Compressed {
            return;
        }
        if let Some(since) = self.publisher.since_last_send() {
            if let Some(left) = WATERMARK_SETTLE.checked_sub(since) {
                tokio::time::sleep(left).await;
            }
        }
    }

    /// Fresh symbols that must have no rows yet, or the pool's, seeded from their history.
    pub(super) async fn plan(&self, scenario: &Scenario) -> Result<Plan, RunError> {
        let Some(pool) = self.pool else {
            let symbols: BTreeMap<String, String> = scenario
                .symbols
                .iter()
                .map(|a| (a.clone(), symbols::synthetic(self.run_id, a)))
                .collect();
            for symbol in symbols.values() {
                ensure_synthetic(symbol)?;
                if self.warehouse.has_rows(symbol).await? {
                    return Err(RunError::SymbolNotFresh(symbol.clone()));
                }
            }
            return Ok(Plan {
                symbols,
                clock: symbols::synthetic(self.run_id, CLOCK_ALIAS),
                close: scenario.close,
                deadline: scenario.deadline,
                lease: None,
            });
        };
        let lease = crate::suite::pool::lease(self.warehouse, pool, &scenario.symbols).await?;
        for r in &lease.retired {
            tracing::warn!(symbol = %r.symbol, generation = r.generation, reason = %r.reason, "pool generation retired");
        }
        let symbols: BTreeMap<String, String> = lease
            .symbols
            .iter()
            .map(|(alias, s)| (alias.clone(), s.symbol.clone()))
            .collect();
        for symbol in symbols.values() {
            ensure_synthetic(symbol)?;
        }
        if scenario.close != Close::Watermark {
            tracing::info!(scenario = %scenario.name, "pool symbols close by watermark: a closing trade would leave an open bar the next run cannot see");
        }
        Ok(Plan {
            symbols,
            clock: pool.clock(),
            close: Close::Watermark,
            deadline: scenario.deadline.max(POOL_MIN_DEADLINE),
            lease: Some(lease),
        })
    }
}

fn ensure_synthetic(symbol: &str) -> Result<(), RunError> {
    if symbols::is_synthetic(symbol) {
        Ok(())
    } else {
        Err(RunError::UnsafeSymbol(symbol.to_string()))
    }
}

/// Where offset 0 sits on the wall clock when it is `now`.
pub(super) fn time_base(scenario: &Scenario, now: OffsetDateTime) -> OffsetDateTime {
    match scenario.pacing {
        // Start on the next whole second plus a little, so offsets map onto seconds as written.
        Pacing::Realtime => now.replace_millisecond(0).unwrap_or(now) + time::Duration::seconds(1),
        // Everything ends a second before now: in the past, never in the future.
        Pacing::Compressed => {
            // A linted scenario's span is within the ceiling; clamped all the same.
            let ceiling = MAX_SPAN_CEILING.as_millis() as u64;
            let span_ms = scenario.span_ms().min(ceiling) as i64;
            let start = now - time::Duration::milliseconds(span_ms + 2_000);
            start.replace_millisecond(0).unwrap_or(start)
        }
    }
}

/// The wall-clock time of offset 0. After a pool symbol's history by more than the
/// quote-freshness window, so the run's bars follow it and no earlier quote applies to them:
/// compressed pacing waits until that is also in the past.
pub(super) async fn start_time(scenario: &Scenario, lease: Option<&Lease>) -> OffsetDateTime {
    let Some(last) = lease.and_then(Lease::last_event_ts) else {
        return time_base(scenario, OffsetDateTime::now_utc());
    };
    let stale = crate::domain::oracle::SignalConfig::default().quote_stale_after_ms;
    let earliest = last + time::Duration::milliseconds(stale + 1_000);
    loop {
        let base = time_base(scenario, OffsetDateTime::now_utc());
        if base >= earliest {
            return base;
        }
        let wait = (earliest - base).unsigned_abs();
        tracing::info!(
            wait_ms = wait.as_millis() as u64,
            "waiting so this run's trades come after the pool symbols' history"
        );
        tokio::time::sleep(wait).await;
    }
}

/// The trades that close each symbol's last bar: per symbol in the next second, or a clock
/// trade 3 s after the last event that moves the watermark past every bar (sent twice).
pub(super) fn closing_trades(
    scenario: &Scenario,
    plan: &Plan,
    base: OffsetDateTime,
) -> Result<Vec<Outgoing>, RunError> {
    let mut last: BTreeMap<&str, (u64, f64)> = BTreeMap::new();
    for e in &scenario.events {
        if let Event::Trade(t) = e {
            let entry = last.entry(t.symbol.as_str()).or_insert((0, t.price));
            if t.at_ms >= entry.0 {
                *entry = (t.at_ms, t.price);
            }
        }
    }
    let trade = |alias: &str, symbol: String, at_ms: Option<u64>, price: f64| {
        let at_ms = at_ms.ok_or(RunError::Offset(u64::MAX))?;
        let at = offset(base, at_ms)?;
        let t = TradeEvent {
            symbol: alias.to_string(),
            at_ms,
            price,
            size: 1.0,
        };
        Ok(Outgoing {
            channel: Channel::Trades,
            symbol,
            at,
            event: Event::Trade(t),
        })
    };
    // `ms` into the second after the one of `at_ms`.
    let next_second = |at_ms: u64, ms: u64| (at_ms / 1000 + 1).checked_mul(1000)?.checked_add(ms);
    match plan.close {
        Close::Trade => last
            .into_iter()
            .map(|(alias, (at_ms, price))| {
                trade(
                    alias,
                    plan.symbols[alias].clone(),
                    next_second(at_ms, 100),
                    price,
                )
            })
            .collect(),
        Close::Watermark => {
            let end = last.values().map(|(at, _)| *at).max().unwrap_or(0);
            // Past the last bar's end by more than the 2,000 ms out-of-orderness bound. A
            // second tick at the same time, sent later, in case the job read the first together
            // with the scenario's last trades (see `publish`): it only marks the clock's
            // partition active again, and moves the watermark no further, so a tick read late
            // cannot split the next scenario's bars.
            let at_ms = next_second(end, 2_500);
            (0..2)
                .map(|_| trade(CLOCK_ALIAS, plan.clock.clone(), at_ms, 1.0))
                .collect()
        }
    }
}

/// The wall-clock time of an event offset, checked.
pub(super) fn offset(base: OffsetDateTime, at_ms: u64) -> Result<OffsetDateTime, RunError> {
    time_at(base, at_ms).ok_or(RunError::Offset(at_ms))
}

/// The key the closing trade's bar would have (its seq is unknown, so only symbol and time).
pub(super) fn open_bar_key(symbol: &str, at: OffsetDateTime) -> RowKey {
    let start = at.replace_millisecond(0).unwrap_or(at);
    RowKey {
        symbol: symbol.to_string(),
        event_ts: start + time::Duration::seconds(1),
        seq: 0,
    }
}
