//! The publish window: messages sent whose acknowledgements are still to come, at most a
//! limit at a time, and what became of them when the broker stops answering.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use tokio::task::JoinSet;

use crate::adapter::kafka::PublishError;
use crate::domain::publish::{Ack, Channel, Delivery, Fate, Unconfirmed};
use crate::suite::ledger::Record;
use crate::suite::seam::Publisher;

/// How long a read-back of unacknowledged messages may take: long enough for a broker that
/// answers again, short enough that a stopped one does not hold the verdict.
const READ_BACK: Duration = Duration::from_secs(3);

/// How long the purge of the producer's queues may take to be reported.
const PURGE_GRACE: Duration = Duration::from_millis(500);

/// A message in the window: what the read-back needs to recognise it.
struct InFlight {
    channel: Channel,
    symbol: String,
    value: String,
    sent_at: SystemTime,
}

/// Messages sent whose acknowledgements are still to come, at most `limit` at a time.
///
/// The runner sends through it and lets it collect acknowledgements whenever it waits (for the
/// next event's time, for room in the window, for the last acknowledgements), so the first
/// message the broker fails to acknowledge stops the scenario within the acknowledgement
/// timeout, and memory stays bounded however long the scenario. Every send and every
/// acknowledgement goes to the run's ledger as it happens.
pub struct Window<'p, P: Publisher> {
    publisher: &'p P,
    record: Record,
    limit: usize,
    acks: JoinSet<(usize, Ack)>,
    in_flight: BTreeMap<usize, InFlight>,
    delivered: BTreeMap<usize, Delivery>,
    /// Why each failed message failed, by index.
    failed: BTreeMap<usize, String>,
    /// Told of each acknowledgement as it is collected.
    on_ack: Option<OnAck<'p>>,
}

/// What is told of each acknowledgement: the message's index and its delivery.
type OnAck<'p> = Box<dyn Fn(usize, &Delivery) + Send + Sync + 'p>;

impl<'p, P: Publisher> Window<'p, P> {
    pub fn new(publisher: &'p P, record: Record, limit: usize) -> Self {
        Self {
            publisher,
            record,
            limit: limit.max(1),
            acks: JoinSet::new(),
            in_flight: BTreeMap::new(),
            delivered: BTreeMap::new(),
            failed: BTreeMap::new(),
            on_ack: None,
        }
    }

    /// Calls `f` with each acknowledgement as it is collected (the visibility poller learns
    /// which rows are due).
    pub fn on_ack(mut self, f: impl Fn(usize, &Delivery) + Send + Sync + 'p) -> Self {
        self.on_ack = Some(Box::new(f));
        self
    }

    /// Sends where the key's partitioner puts it, or to `partition`.
    pub fn send(
        &mut self,
        index: usize,
        channel: Channel,
        partition: Option<i32>,
        symbol: &str,
        value: String,
    ) {
        let sent_at = SystemTime::now();
        let ack = self
            .publisher
            .enqueue(index, channel, partition, symbol, &value);
        self.acks.spawn(async move { (index, ack.await) });
        self.in_flight.insert(
            index,
            InFlight {
                channel,
                symbol: symbol.to_string(),
                value,
                sent_at,
            },
        );
        self.record.sent();
    }

    /// Collects acknowledgements until `until` has passed and there is room for one more
    /// message; the first failure ends the wait.
    pub async fn wait(&mut self, until: Option<tokio::time::Instant>) -> Result<(), PublishError> {
        loop {
            let due = until.is_none_or(|t| tokio::time::Instant::now() >= t);
            if due && self.in_flight.len() < self.limit {
                return Ok(());
            }
            let later = async {
                match until {
                    Some(t) if !due => tokio::time::sleep_until(t).await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(joined) = self.acks.join_next() => self.settle(joined)?,
                () = later => {}
            }
        }
    }

    /// Waits for every acknowledgement; the first failure ends the wait.
    pub async fn drain(&mut self) -> Result<(), PublishError> {
        while let Some(joined) = self.acks.join_next().await {
            self.settle(joined)?;
        }
        Ok(())
    }

    /// Every delivery so far, in publish order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.delivered.values().cloned().collect()
    }

    fn settle(
        &mut self,
        joined: Result<(usize, Ack), tokio::task::JoinError>,
    ) -> Result<(), PublishError> {
        let (index, error) = match joined {
            Ok((index, Ack::Delivered(d))) => {
                self.in_flight.remove(&index);
                self.record.acked(&d);
                if let Some(f) = &self.on_ack {
                    f(index, &d);
                }
                self.delivered.insert(index, d);
                return Ok(());
            }
            Ok((index, Ack::Purged)) => (index, "purged before it was sent".to_string()),
            Ok((index, Ack::Failed(e))) => (index, e),
            // The ack tasks neither panic nor get cancelled while the window lives.
            Err(e) => (
                self.in_flight.keys().next().copied().unwrap_or(usize::MAX),
                format!("acknowledgement task failed: {e}"),
            ),
        };
        self.failed.insert(index, error.clone());
        let symbol = self
            .in_flight
            .get(&index)
            .map(|m| m.symbol.clone())
            .unwrap_or_default();
        let topic = self
            .in_flight
            .get(&index)
            .map(|m| self.publisher.topic(m.channel).to_string())
            .unwrap_or_default();
        Err(PublishError::Delivery {
            index,
            symbol,
            topic,
            error,
        })
    }

    /// Gives up after a failed acknowledgement: purges what the producer still holds (so
    /// nothing is written after the verdict), waits briefly for the purge to be reported, then
    /// looks on the topics for the messages sent but never acknowledged. The outcome goes to
    /// the ledger and is returned.
    pub async fn abandon(mut self) -> Vec<Unconfirmed> {
        self.publisher.purge();
        let grace = tokio::time::Instant::now() + PURGE_GRACE;
        let mut purged = std::collections::BTreeSet::new();
        while let Ok(Some(joined)) = tokio::time::timeout_at(grace, self.acks.join_next()).await {
            match joined {
                Ok((index, Ack::Purged)) => {
                    purged.insert(index);
                }
                other => {
                    let _ = self.settle(other);
                }
            }
        }
        self.acks.abort_all();
        tracing::warn!(
            unacknowledged = self.in_flight.len(),
            not_sent = purged.len(),
            "the broker stopped acknowledging: the producer's queue is purged; reading the topic back"
        );
        let mut found = BTreeMap::new();
        for channel in [Channel::Trades, Channel::Quotes, Channel::Bars1m] {
            let wanted: Vec<(usize, &InFlight)> = self
                .in_flight
                .iter()
                .filter(|(i, m)| m.channel == channel && !purged.contains(i))
                .map(|(i, m)| (*i, m))
                .collect();
            let Some(since) = wanted.iter().map(|(_, m)| m.sent_at).min() else {
                continue;
            };
            let values = wanted.iter().map(|(i, m)| (*i, m.value.clone())).collect();
            let topic = self.publisher.topic(channel);
            match self
                .publisher
                .read_back(channel, since, values, READ_BACK)
                .await
            {
                Ok(f) => found.extend(f),
                Err(e) => {
                    tracing::warn!(%topic, error = %e, "cannot read back the unacknowledged messages")
                }
            }
        }
        let unconfirmed: Vec<Unconfirmed> = self
            .in_flight
            .iter()
            .map(|(index, m)| Unconfirmed {
                index: *index,
                channel: m.channel,
                symbol: m.symbol.clone(),
                error: match self.failed.get(index) {
                    Some(e) => e.clone(),
                    None if purged.contains(index) => {
                        "purged from the producer's queue before it was sent".into()
                    }
                    None => "the run gave up waiting for it".into(),
                },
                fate: if purged.contains(index) {
                    Fate::NotSent
                } else if let Some(&(partition, offset)) = found.get(index) {
                    Fate::Landed { partition, offset }
                } else {
                    Fate::Unknown
                },
            })
            .collect();
        self.record.unconfirmed(&unconfirmed);
        unconfirmed
    }
}
