//! Publishing forwarder messages to the lane's input topics, keeping each delivery as evidence.
//!
//! Like torghut-ws (`pipeline.md` §1.1): key = symbol, value = the JSON envelope, no headers,
//! acks=all, idempotent. Messages are enqueued in order and their acknowledgements collected
//! while publishing goes on ([`Window`]), so per-symbol order is the producer's (idempotence
//! keeps it across retries) and a broker that stops answering fails the scenario within one
//! acknowledgement timeout, not after the whole scenario has been enqueued.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer, PurgeConfig};
use serde::Serialize;
use tokio::task::{JoinHandle, JoinSet};

use crate::config::KafkaTarget;
use crate::kafka::{self, ErrorCapture};
use crate::ledger::Record;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Trades,
    Quotes,
}

/// One acknowledged message.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub index: usize,
    pub channel: Channel,
    pub symbol: String,
    pub partition: i32,
    pub offset: i64,
    /// Wall clock when the broker acknowledged the write (acks=all).
    #[serde(with = "time::serde::rfc3339")]
    pub acked_at: time::OffsetDateTime,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot create the Kafka producer: {0}")]
    Producer(rdkafka::error::KafkaError),
    #[error("message {index} ({symbol}) to {topic} was not acknowledged: {error}")]
    Delivery {
        index: usize,
        symbol: String,
        topic: String,
        error: String,
    },
}

/// A message sent but never acknowledged. Kafka's delivery is at least once: the broker may
/// have written it all the same, so the run looks for it on the topic before it calls its fate
/// unknown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unconfirmed {
    pub index: usize,
    pub channel: Channel,
    pub symbol: String,
    /// Why it has no acknowledgement.
    pub error: String,
    #[serde(flatten)]
    pub fate: Fate,
}

/// What became of a message that was never acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "fate")]
pub enum Fate {
    /// Still in the producer's queue when the run gave up, and purged from it: never sent.
    NotSent,
    /// Found on the topic afterwards.
    Landed { partition: i32, offset: i64 },
    /// Sent, not acknowledged, and not found: the broker did not answer the read-back in time.
    Unknown,
}

/// How long a read-back of unacknowledged messages may take: long enough for a broker that
/// answers again, short enough that a stopped one does not hold the verdict.
const READ_BACK: Duration = Duration::from_secs(3);

/// How long the purge of the producer's queues may take to be reported.
const PURGE_GRACE: Duration = Duration::from_millis(500);

pub struct Publisher {
    producer: FutureProducer<ErrorCapture>,
    target: KafkaTarget,
    trades_topic: String,
    quotes_topic: String,
    timeout: Duration,
    /// When the last message was enqueued (the watermark may still move because of it).
    last_sent: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How one message's acknowledgement ended.
enum Ack {
    Delivered(Delivery),
    /// Purged from the producer's queue before it was sent.
    Purged,
    Failed(String),
}

/// An enqueued message whose acknowledgement is still to come.
pub struct Pending {
    index: usize,
    symbol: String,
    topic: String,
    ack: JoinHandle<Ack>,
}

impl Pending {
    pub async fn acked(self) -> Result<Delivery, PublishError> {
        let error = match self.ack.await {
            Ok(Ack::Delivered(d)) => return Ok(d),
            Ok(Ack::Purged) => "purged from the producer's queue before it was sent".into(),
            Ok(Ack::Failed(e)) => e,
            Err(e) => format!("delivery task failed: {e}"),
        };
        Err(PublishError::Delivery {
            index: self.index,
            symbol: self.symbol,
            topic: self.topic,
            error,
        })
    }
}

impl Publisher {
    pub fn new(target: &KafkaTarget, timeout: Duration) -> Result<Self, PublishError> {
        Ok(Self {
            producer: kafka::producer(target).map_err(PublishError::Producer)?,
            target: target.clone(),
            trades_topic: target.trades_topic.clone(),
            quotes_topic: target.quotes_topic.clone(),
            timeout,
            last_sent: std::sync::Mutex::new(None),
        })
    }

    pub fn target(&self) -> &KafkaTarget {
        &self.target
    }

    pub fn topic(&self, channel: Channel) -> &str {
        match channel {
            Channel::Trades => &self.trades_topic,
            Channel::Quotes => &self.quotes_topic,
        }
    }

    /// Enqueues now (preserving order); the returned handle resolves on acknowledgement.
    pub fn send(&self, index: usize, channel: Channel, symbol: &str, value: String) -> Pending {
        Pending {
            index,
            symbol: symbol.to_string(),
            topic: self.topic(channel).to_string(),
            ack: tokio::spawn(self.enqueue(index, channel, symbol, &value)),
        }
    }

    /// Enqueues now; the future resolves on acknowledgement, failure, or the timeout.
    fn enqueue(
        &self,
        index: usize,
        channel: Channel,
        symbol: &str,
        value: &str,
    ) -> impl std::future::Future<Output = Ack> + Send + 'static {
        let record = FutureRecord::to(self.topic(channel))
            .key(symbol)
            .payload(value);
        // Map the error now: it carries the record, which borrows the topic and value.
        let delivery = self
            .producer
            .send_result(record)
            .map_err(|(e, _)| e.to_string());
        let symbol = symbol.to_string();
        let timeout = self.timeout;
        *self.last_sent.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
        async move {
            let future = match delivery {
                Ok(f) => f,
                Err(e) => return Ack::Failed(e),
            };
            match tokio::time::timeout(timeout, future).await {
                Err(_) => Ack::Failed(format!("no acknowledgement within {timeout:?}")),
                Ok(Ok(Ok(d))) => Ack::Delivered(Delivery {
                    index,
                    channel,
                    symbol,
                    partition: d.partition,
                    offset: d.offset,
                    acked_at: time::OffsetDateTime::from(SystemTime::now()),
                }),
                Ok(Ok(Err((KafkaError::MessageProduction(RDKafkaErrorCode::PurgeQueue), _)))) => {
                    Ack::Purged
                }
                Ok(Ok(Err((e, _)))) => Ack::Failed(e.to_string()),
                Ok(Err(_)) => Ack::Failed("the producer was dropped".into()),
            }
        }
    }

    /// How long ago this publisher last enqueued a message, if ever.
    pub fn since_last_send(&self) -> Option<Duration> {
        self.last_sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|t| t.elapsed())
    }

    /// Drops everything the producer still holds: queued messages are never sent, and no
    /// retry of one in flight follows (the broker may still have written it).
    fn purge(&self) {
        self.producer
            .purge(PurgeConfig::default().queue().inflight().non_blocking());
    }
}

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
pub struct Window<'p> {
    publisher: &'p Publisher,
    record: Record,
    limit: usize,
    acks: JoinSet<(usize, Ack)>,
    in_flight: BTreeMap<usize, InFlight>,
    delivered: BTreeMap<usize, Delivery>,
    /// Why each failed message failed, by index.
    failed: BTreeMap<usize, String>,
}

impl<'p> Window<'p> {
    pub fn new(publisher: &'p Publisher, record: Record, limit: usize) -> Self {
        Self {
            publisher,
            record,
            limit: limit.max(1),
            acks: JoinSet::new(),
            in_flight: BTreeMap::new(),
            delivered: BTreeMap::new(),
            failed: BTreeMap::new(),
        }
    }

    pub fn send(&mut self, index: usize, channel: Channel, symbol: &str, value: String) {
        let sent_at = SystemTime::now();
        let ack = self.publisher.enqueue(index, channel, symbol, &value);
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
        for channel in [Channel::Trades, Channel::Quotes] {
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
            match kafka::find_messages(self.publisher.target(), topic, since, values, READ_BACK)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unconfirmed_message_names_its_fate() {
        let u = |fate| Unconfirmed {
            index: 3,
            channel: Channel::Trades,
            symbol: "ZZT2E-R-A".into(),
            error: "no acknowledgement within 6s".into(),
            fate,
        };
        let landed = serde_json::to_value(u(Fate::Landed {
            partition: 2,
            offset: 41,
        }))
        .unwrap();
        assert_eq!(landed["fate"], "landed");
        assert_eq!(landed["partition"], 2);
        assert_eq!(landed["offset"], 41);
        let unknown = serde_json::to_value(u(Fate::Unknown)).unwrap();
        assert_eq!(unknown["fate"], "unknown");
        assert_eq!(unknown["symbol"], "ZZT2E-R-A");
        assert_eq!(
            serde_json::to_value(u(Fate::NotSent)).unwrap()["fate"],
            "not_sent"
        );
    }
}
