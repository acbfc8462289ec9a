//! Publishing a scenario: every event at its time (real-time pacing) or back to back
//! (compressed), then the closing trades, each message value fed to the oracle as it is sent.

use std::collections::HashMap;
use time::OffsetDateTime;

use super::expect::{seeded_oracle, Expectations};
use super::plan::{closing_trades, offset, open_bar_key, Outgoing, Plan, Start};
use super::poll::{Expecting, Seen};
use super::window::Window;
use super::{RunError, Runner};
use crate::adapter::clickhouse::KeyTable;
use crate::domain::envelope;
use crate::domain::model::{Columns, RowKey, WINDOW_1M};
use crate::domain::oracle::Expected;
use crate::domain::publish::{Channel, Delivery};
use crate::domain::scenario::{minute_start, Event, Pacing, Scenario};
use crate::suite::ledger::Record;
use crate::suite::seam::{Publisher, Warehouse};

/// Messages sent and not yet acknowledged, at most: publishing waits for acknowledgements
/// beyond this, so memory stays bounded and a broker that stops answering is noticed within
/// one acknowledgement timeout however fast the scenario publishes.
const MAX_IN_FLIGHT: usize = 512;

/// One published message and the rows the oracle says it makes production emit.
pub(super) struct Sent {
    pub delivery: Delivery,
    pub emitted: Vec<RowKey>,
}

/// What the publish phase produced.
pub(super) struct Published {
    pub sent: Vec<Sent>,
    /// The closing trades' own bars: tolerated, never expected.
    pub closers: Vec<RowKey>,
    pub expected: Expectations,
    /// Every message value in publish order, to predict again with another seed.
    pub values: Vec<String>,
}

impl<P: Publisher, W: Warehouse, S> Runner<'_, P, W, S> {
    /// Publishes every event (plus the closing trades) and runs the oracle on the very same
    /// message values, in the same order. Acknowledgements are collected as publishing goes
    /// (see [`Window`]): the first one that fails stops the scenario.
    pub(super) async fn publish(
        &self,
        scenario: &Scenario,
        plan: &Plan,
        start: &Start,
        record: &Record,
        expecting: &Expecting,
    ) -> Result<Published, RunError> {
        let mut oracle = seeded_oracle(self.ta, plan.lease.as_ref());
        let mut window = Window::new(self.publisher, record.clone(), MAX_IN_FLIGHT)
            .on_ack(|index, d| expecting.acked(index, d.acked_at));
        let mut emitted_by = Vec::new();
        let mut expected = Expectations::default();
        let mut seq_per_symbol: HashMap<String, i64> = HashMap::new();
        // The forwarder's `bars:<SYMBOL>` counter, shared by bars and updatedBars (§4.6).
        let mut bar_seq_per_symbol: HashMap<String, i64> = HashMap::new();
        let base = start.base;
        let mut messages = Vec::new();
        for event in &scenario.events {
            messages.push(Outgoing {
                channel: event_channel(event),
                partition: None,
                symbol: plan.symbols[event.symbol()].clone(),
                at: offset(base, event.at_ms())?,
                event: event.clone(),
            });
        }
        let closers = closing_trades(scenario, plan, base, start.pin.as_ref())?;
        let closer_keys: Vec<RowKey> = closers
            .iter()
            .map(|c| open_bar_key(&c.symbol, c.at))
            .collect();
        messages.extend(closers);
        let mut values = Vec::with_capacity(messages.len());
        for (index, out) in messages.into_iter().enumerate() {
            // Compressed: at once (behind the pin, or the next pin on every partition).
            let until = (scenario.pacing == Pacing::Realtime).then(|| instant_of(out.at));
            if let Err(e) = window.wait(until).await {
                window.abandon().await;
                return Err(e.into());
            }
            if scenario.pacing == Pacing::Realtime {
                wait_until_past(out.at).await;
            }
            let counters = match out.channel {
                Channel::Bars1m => &mut bar_seq_per_symbol,
                Channel::Trades | Channel::Quotes => &mut seq_per_symbol,
            };
            let seq = counters.entry(out.symbol.clone()).or_insert(0);
            *seq += 1;
            let value = match message(&out.event, &out.symbol, out.at, base, *seq) {
                Ok(value) => value,
                Err(e) => {
                    if window.drain().await.is_err() {
                        window.abandon().await;
                    }
                    return Err(e);
                }
            };
            let rows = match oracle.on_message(&value) {
                Ok(rows) => rows,
                Err(e) => {
                    if window.drain().await.is_err() {
                        window.abandon().await;
                    }
                    return Err(RunError::Oracle {
                        index,
                        message: e.to_string(),
                    });
                }
            };
            expecting.sent(index, rows.iter().map(due_row).collect());
            emitted_by.push(expected.add(rows));
            values.push(value.clone());
            window.send(index, out.channel, out.partition, &out.symbol, value);
        }
        if let Err(e) = window.drain().await {
            window.abandon().await;
            return Err(e.into());
        }
        // Every message is acknowledged: the deliveries line up with the messages.
        let sent = window
            .deliveries()
            .into_iter()
            .zip(emitted_by)
            .map(|(delivery, emitted)| Sent { delivery, emitted })
            .collect();
        Ok(Published {
            sent,
            closers: closer_keys,
            expected,
            values,
        })
    }
}

/// The monotonic instant at which the wall clock reaches `at` (now, when it has).
fn instant_of(at: OffsetDateTime) -> tokio::time::Instant {
    let ahead = (at - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
    tokio::time::Instant::now() + ahead.unsigned_abs()
}

/// Sleeps until the wall clock has passed `at` (so event times are never in the future).
async fn wait_until_past(at: OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    if at > now {
        let wait = (at - now).unsigned_abs();
        tokio::time::sleep(wait).await;
    }
}

/// Where the poller looks for a row the oracle predicts.
fn due_row(row: &Expected) -> Seen {
    match row {
        Expected::Microbar(b) => (KeyTable::Microbars, b.key()),
        Expected::Signal(s) if s.window_size == WINDOW_1M => (KeyTable::MinuteSignals, s.key()),
        Expected::Signal(s) => (KeyTable::Signals, s.key()),
    }
}

fn event_channel(event: &Event) -> Channel {
    match event {
        Event::Trade(_) => Channel::Trades,
        Event::Quote(_) => Channel::Quotes,
        Event::Bar(_) => Channel::Bars1m,
    }
}

/// The forwarder's message value for one event published at `at`; a 1-minute bar is stamped
/// with its minute's start, counted from the whole minute of `base`.
fn message(
    event: &Event,
    symbol: &str,
    at: OffsetDateTime,
    base: OffsetDateTime,
    seq: i64,
) -> Result<String, RunError> {
    let ingest = OffsetDateTime::now_utc();
    Ok(match event {
        Event::Trade(t) => envelope::trade_message(symbol, at, t.price, t.size, seq, ingest),
        Event::Quote(q) => envelope::quote_message(
            symbol, at, q.bid, q.bid_size, q.ask, q.ask_size, seq, ingest,
        ),
        Event::Bar(b) => {
            let minute = minute_start(base, b.minute).ok_or(RunError::Offset(b.at_ms))?;
            envelope::bar_message(symbol, minute, b.bar, seq, ingest)
        }
    })
}
