//! Which symbols a scenario publishes to, where its offset 0 lies on the wall clock, and the
//! trades that close its last bars.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;

use super::{RunError, Runner};
use crate::adapter::kafka::PublishError;
use crate::domain::envelope;
use crate::domain::model::RowKey;
use crate::domain::pool::{Lease, PoolName};
use crate::domain::publish::{Ack, Channel};
use crate::domain::scenario::{
    time_at, Close, Event, Pacing, Scenario, TradeEvent, MAX_SPAN_CEILING,
};
use crate::domain::symbols;
use crate::suite::lane::{Access, Pin};
use crate::suite::seam::{Publisher, Warehouse};

/// A pool run closes by watermark, which may wait for idle partitions (30 s in production).
const POOL_MIN_DEADLINE: Duration = Duration::from_secs(60);
/// How long before the lane's pin a compressed scenario's last event lies: see [`behind_pin`].
const PIN_MARGIN: time::Duration = time::Duration::seconds(5);
const SECOND: time::Duration = time::Duration::seconds(1);
/// How far back other writers' bars count as traffic on the lane: an active writer's bars land
/// at least every sink flush (5 s in production), and a run that ended earlier is no traffic.
const OTHER_WRITERS_WINDOW: time::Duration = time::Duration::seconds(15);
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
    /// Where the key's partitioner puts it, unless set (a pin goes to every partition).
    pub partition: Option<i32>,
    pub symbol: String,
    /// Its event time.
    pub at: OffsetDateTime,
    pub event: Event,
}

impl<P: Publisher, W: Warehouse, S> Runner<'_, P, W, S> {
    /// How the scenario uses the lane: a compressed one that must move the watermark (closed
    /// by watermark, or on a pool, which closes by watermark) needs it to itself.
    pub(super) fn access(&self, scenario: &Scenario) -> Access {
        match scenario.pacing {
            Pacing::Realtime => Access::Realtime,
            Pacing::Compressed if self.pool.is_some() || scenario.close == Close::Watermark => {
                Access::Alone
            }
            Pacing::Compressed => Access::Behind,
        }
    }

    /// The symbol of the run's clock trades and pins.
    fn clock(&self) -> String {
        self.pool.map_or_else(
            || symbols::synthetic(self.run_id, CLOCK_ALIAS),
            |pool| pool.clock(),
        )
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
                clock: self.clock(),
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
            clock: self.clock(),
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

/// Where offset 0 sits on the wall clock, and the pin a compressed scenario publishes behind.
pub(super) struct Start {
    pub base: OffsetDateTime,
    pub pin: Option<Pin>,
}

impl<P: Publisher, W: Warehouse, S> Runner<'_, P, W, S> {
    /// The wall-clock time of offset 0. A pool symbol's history must lie before it (see
    /// [`after_history`]). A compressed scenario lies behind the lane's pin, pinning it first
    /// when it is not (or is pinned too early for that history), and starts once the pin holds.
    pub(super) async fn start(&self, scenario: &Scenario, plan: &Plan) -> Result<Start, RunError> {
        let earliest = plan
            .lease
            .as_ref()
            .and_then(Lease::last_event_ts)
            .map(|last| after_history(last, self.ta.quote_stale_after_ms));
        if scenario.pacing == Pacing::Realtime {
            let base = wait_for_base(earliest, realtime_base).await;
            return Ok(Start { base, pin: None });
        }
        let mut lane_pin = self.lane.pin().await;
        let pin = match lane_pin
            .clone()
            .filter(|p| earliest.is_none_or(|e| behind_pin(scenario, p.at) >= e))
        {
            Some(pin) => pin,
            None => {
                // Late enough that the scenario lies after that history.
                let first = earliest.map(|e| e + span(scenario) + PIN_MARGIN + SECOND);
                // On a whole millisecond, as the job reads event times.
                let at = wait_for_base(first, |now| {
                    now.replace_millisecond(now.millisecond()).unwrap_or(now)
                })
                .await;
                let others = self.other_writers().await;
                let pin = self.pin_lane(at, others).await?;
                *lane_pin = Some(pin.clone());
                pin
            }
        };
        drop(lane_pin);
        tokio::time::sleep_until(pin.holds_from).await;
        Ok(Start {
            base: behind_pin(scenario, pin.at),
            pin: Some(pin),
        })
    }

    /// Other writers' symbols with bars written in the last 15 s (none when it cannot tell):
    /// a pin holds only while nobody else publishes newer trades on the lane.
    async fn other_writers(&self) -> Vec<(String, u64)> {
        let ours = self
            .pool
            .map_or_else(|| symbols::synthetic(self.run_id, ""), PoolName::prefix);
        let since = OffsetDateTime::now_utc() - OTHER_WRITERS_WINDOW;
        match self.warehouse.recent_writers(&ours, since).await {
            Ok(others) => {
                if !others.is_empty() {
                    tracing::warn!(
                        ?others,
                        "other writers on the lane: compressed pacing may split bars"
                    );
                }
                others
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not tell whether the lane has other writers");
                Vec::new()
            }
        }
    }

    /// One clock trade at `at` on every partition of the trades topic.
    async fn pin_lane(
        &self,
        at: OffsetDateTime,
        others: Vec<(String, u64)>,
    ) -> Result<Pin, RunError> {
        let partitions = self.publisher.trades_partitions().await?;
        let clock = self.clock();
        let value = envelope::trade_message(&clock, at, 1.0, 1.0, 1, OffsetDateTime::now_utc());
        let acks = partitions.iter().enumerate().map(|(index, p)| {
            self.publisher
                .enqueue(index, Channel::Trades, Some(*p), &clock, &value)
        });
        let acks = futures::future::join_all(acks).await;
        for (ack, partition) in acks.into_iter().zip(&partitions) {
            let error = match ack {
                Ack::Delivered(_) => continue,
                Ack::Failed(e) => e,
                Ack::Purged => "purged from the producer's queue before it was sent".into(),
            };
            return Err(PublishError::Pin {
                topic: self.publisher.topic(Channel::Trades).to_string(),
                partition: *partition,
                error,
            }
            .into());
        }
        tracing::info!(%at, partitions = partitions.len(), "pinned the lane's watermark");
        Ok(Pin::acknowledged(at, partitions, others))
    }
}

/// The first `base(now)` at or after `earliest`, waiting for the wall clock as needed.
async fn wait_for_base(
    earliest: Option<OffsetDateTime>,
    base: impl Fn(OffsetDateTime) -> OffsetDateTime,
) -> OffsetDateTime {
    loop {
        let at = base(OffsetDateTime::now_utc());
        let Some(wait) = earliest
            .filter(|e| at < *e)
            .map(|e| (e - at).unsigned_abs())
        else {
            return at;
        };
        tracing::info!(
            wait_ms = wait.as_millis() as u64,
            "waiting so this run's trades come after the pool symbols' history"
        );
        tokio::time::sleep(wait).await;
    }
}

/// Real-time pacing starts on the next whole second plus a little, so offsets map onto seconds
/// as written.
pub(super) fn realtime_base(now: OffsetDateTime) -> OffsetDateTime {
    now.replace_millisecond(0).unwrap_or(now) + time::Duration::seconds(1)
}

/// The earliest offset 0 after a pool symbol's history ending at `last`: later than the job's
/// quote window (`stale_ms`), so no quote of the history applies to the run's bars, and
/// a second past the pin the run that wrote it moved on closing (at most `PIN_MARGIN` + 2 s
/// after its last bar, see [`behind_pin`] and [`next_pin_at`]), so the job's watermark is well
/// behind the run's first bar. Production's 15 s window covers both; a shorter one does not.
pub(super) fn after_history(last: OffsetDateTime, stale_ms: i64) -> OffsetDateTime {
    let quotes = time::Duration::milliseconds(stale_ms.max(0)) + SECOND;
    let watermark = PIN_MARGIN + 3 * SECOND;
    last + quotes.max(watermark)
}

/// A compressed scenario's offset 0 behind a pin at `pin`: its last event lies `PIN_MARGIN`
/// before it, so its last bucket, and the one its closing trades open, end before the pinned
/// watermark (`pin − 2,001 ms`); on a whole second, so offsets map onto seconds as written.
pub(super) fn behind_pin(scenario: &Scenario, pin: OffsetDateTime) -> OffsetDateTime {
    let start = pin - span(scenario) - PIN_MARGIN;
    start.replace_millisecond(0).unwrap_or(start)
}

/// A scenario's span of event time (a linted one is within the ceiling; clamped all the same).
fn span(scenario: &Scenario) -> time::Duration {
    let ceiling = MAX_SPAN_CEILING.as_millis() as u64;
    time::Duration::milliseconds(scenario.span_ms().min(ceiling) as i64)
}

/// Where a compressed scenario closed by watermark pins the lane next: past its bars by more
/// than the out-of-orderness bound, and never in the future (the pin it follows holds only
/// `PIN_SETTLE` after its acknowledgement).
pub(super) fn next_pin_at(pin: &Pin) -> OffsetDateTime {
    pin.at + SECOND
}

/// The trades that close each symbol's last bar: per symbol in the next second, or a clock
/// trade that moves the watermark past every bar. Behind a pin (compressed pacing) that is the
/// next pin, on every partition; otherwise a clock trade 3 s after the last event (sent twice).
pub(super) fn closing_trades(
    scenario: &Scenario,
    plan: &Plan,
    base: OffsetDateTime,
    pin: Option<&Pin>,
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
            partition: None,
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
        Close::Watermark => match pin {
            Some(pin) => {
                let at_ms = u64::try_from((next_pin_at(pin) - base).whole_milliseconds()).ok();
                pin.partitions
                    .iter()
                    .map(|p| {
                        let mut tick = trade(CLOCK_ALIAS, plan.clock.clone(), at_ms, 1.0)?;
                        tick.partition = Some(*p);
                        Ok(tick)
                    })
                    .collect()
            }
            None => {
                let end = last.values().map(|(at, _)| *at).max().unwrap_or(0);
                // Past the last bar's end by more than the 2,000 ms out-of-orderness bound. A
                // second tick at the same time, in case the job read the first together with
                // the scenario's last trades: it only marks the clock's partition active
                // again, and moves the watermark no further.
                let at_ms = next_second(end, 2_500);
                (0..2)
                    .map(|_| trade(CLOCK_ALIAS, plan.clock.clone(), at_ms, 1.0))
                    .collect()
            }
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_symbol_starts_after_its_quote_window_and_the_pin_its_last_run_moved() {
        let last = time::macros::datetime!(2026-07-21 14:30:00 UTC);
        let after = |stale_ms| after_history(last, stale_ms) - last;
        assert_eq!(after(15_000), time::Duration::seconds(16), "production");
        // The job's code default, and no limit: the moved pin decides.
        assert_eq!(after(2_000), time::Duration::seconds(8));
        assert_eq!(after(0), time::Duration::seconds(8));
        assert_eq!(after(-1), time::Duration::seconds(8));
        // A compressed run whose bars ended at `last` pinned at most a margin and a second
        // after it, and moved that pin a second on: the next run's first bar starts past it.
        let pinned = last + PIN_MARGIN + SECOND;
        let moved = next_pin_at(&Pin {
            at: pinned,
            partitions: vec![0],
            holds_from: tokio::time::Instant::now(),
            others: Vec::new(),
        });
        assert!(after_history(last, 0) > moved);
    }
}
