//! Publishing forwarder messages to the lane's input topics, keeping each delivery as evidence.
//!
//! Like torghut-ws (`pipeline.md` §1.1): key = symbol, value = the JSON envelope, no headers,
//! acks=all, idempotent. Messages are enqueued in order; the suite collects their
//! acknowledgements while publishing goes on (`suite::scenario::window`), so per-symbol order is
//! the producer's (idempotence keeps it across retries).

use std::time::{Duration, SystemTime};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer, PurgeConfig};
use tokio::task::JoinHandle;

use super::ErrorCapture;
use crate::config::KafkaTarget;
use crate::domain::publish::{Ack, Channel, Delivery};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot create the Kafka producer: {0}")]
    Producer(rdkafka::error::KafkaError),
    #[error("the lane's pin to {topic} partition {partition} was not acknowledged: {error}")]
    Pin {
        topic: String,
        partition: i32,
        error: String,
    },
    #[error("cannot read the partitions of {topic}: {error}")]
    Metadata { topic: String, error: String },
    #[error("message {index} ({symbol}) to {topic} was not acknowledged: {error}")]
    Delivery {
        index: usize,
        symbol: String,
        topic: String,
        error: String,
    },
}

pub struct KafkaPublisher {
    producer: FutureProducer<ErrorCapture>,
    target: KafkaTarget,
    trades_topic: String,
    quotes_topic: String,
    bars1m_topic: String,
    timeout: Duration,
    /// The trades topic's partitions, once read.
    trades_partitions: tokio::sync::OnceCell<Vec<i32>>,
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

impl KafkaPublisher {
    pub fn new(target: &KafkaTarget, timeout: Duration) -> Result<Self, PublishError> {
        Ok(Self {
            producer: super::producer(target).map_err(PublishError::Producer)?,
            target: target.clone(),
            trades_topic: target.trades_topic.clone(),
            quotes_topic: target.quotes_topic.clone(),
            bars1m_topic: target.bars1m_topic.clone(),
            timeout,
            trades_partitions: tokio::sync::OnceCell::new(),
        })
    }

    pub fn target(&self) -> &KafkaTarget {
        &self.target
    }

    pub fn topic(&self, channel: Channel) -> &str {
        match channel {
            Channel::Trades => &self.trades_topic,
            Channel::Quotes => &self.quotes_topic,
            Channel::Bars1m => &self.bars1m_topic,
        }
    }

    /// Enqueues now (preserving order); the returned handle resolves on acknowledgement.
    pub fn send(&self, index: usize, channel: Channel, symbol: &str, value: String) -> Pending {
        Pending {
            index,
            symbol: symbol.to_string(),
            topic: self.topic(channel).to_string(),
            ack: tokio::spawn(self.enqueue(index, channel, None, symbol, &value)),
        }
    }

    /// Enqueues now; the future resolves on acknowledgement, failure, or the timeout.
    pub fn enqueue(
        &self,
        index: usize,
        channel: Channel,
        partition: Option<i32>,
        symbol: &str,
        value: &str,
    ) -> impl std::future::Future<Output = Ack> + Send + 'static {
        let mut record = FutureRecord::to(self.topic(channel))
            .key(symbol)
            .payload(value);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        // Map the error now: it carries the record, which borrows the topic and value.
        let delivery = self
            .producer
            .send_result(record)
            .map_err(|(e, _)| e.to_string());
        let symbol = symbol.to_string();
        let timeout = self.timeout;
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

    /// The trades topic's partitions (a pin goes to each), read from the broker's metadata once.
    pub async fn trades_partitions(&self) -> Result<Vec<i32>, PublishError> {
        self.trades_partitions
            .get_or_try_init(|| self.read_partitions(&self.trades_topic))
            .await
            .cloned()
    }

    async fn read_partitions(&self, topic: &str) -> Result<Vec<i32>, PublishError> {
        let topic = topic.to_string();
        let producer = self.producer.clone();
        let timeout = self.timeout;
        let failed = |error: String| PublishError::Metadata {
            topic: topic.clone(),
            error,
        };
        let read = {
            let topic = topic.clone();
            // The metadata call blocks: off the runtime's threads.
            tokio::task::spawn_blocking(move || {
                producer.client().fetch_metadata(Some(&topic), timeout)
            })
        };
        let metadata = read
            .await
            .map_err(|e| failed(e.to_string()))?
            .map_err(|e| failed(e.to_string()))?;
        let partitions = super::partition_ids(&metadata, &topic);
        if partitions.is_empty() {
            return Err(failed("the broker lists no partitions".into()));
        }
        Ok(partitions)
    }

    /// Drops everything the producer still holds: queued messages are never sent, and no
    /// retry of one in flight follows (the broker may still have written it).
    pub fn purge(&self) {
        self.producer
            .purge(PurgeConfig::default().queue().inflight().non_blocking());
    }
}
