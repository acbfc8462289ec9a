//! Publishing forwarder messages to the lane's input topics, keeping each delivery as evidence.
//!
//! Like torghut-ws (`pipeline.md` §1.1): key = symbol, value = the JSON envelope, no headers,
//! acks=all, idempotent. Messages are enqueued in order and their acknowledgements awaited
//! concurrently, so per-symbol order is the producer's (idempotence keeps it across retries).

use std::time::{Duration, SystemTime};

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::config::KafkaTarget;
use crate::kafka::{self, ErrorCapture};

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

pub struct Publisher {
    producer: FutureProducer<ErrorCapture>,
    target: KafkaTarget,
    trades_topic: String,
    quotes_topic: String,
    timeout: Duration,
    /// When the last message was enqueued (the watermark may still move because of it).
    last_sent: std::sync::Mutex<Option<std::time::Instant>>,
}

/// An enqueued message whose acknowledgement is still to come.
pub struct Pending(JoinHandle<Result<Delivery, PublishError>>);

impl Pending {
    pub async fn acked(self) -> Result<Delivery, PublishError> {
        self.0.await.unwrap_or_else(|e| {
            Err(PublishError::Delivery {
                index: usize::MAX,
                symbol: String::new(),
                topic: String::new(),
                error: format!("delivery task failed: {e}"),
            })
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
        let topic = self.topic(channel).to_string();
        let record = FutureRecord::to(&topic).key(symbol).payload(&value);
        // Map the error now: it carries the record, which borrows the topic and value.
        let delivery = self
            .producer
            .send_result(record)
            .map_err(|(e, _)| e.to_string());
        let symbol = symbol.to_string();
        let timeout = self.timeout;
        *self.last_sent.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
        Pending(tokio::spawn(async move {
            let fail = |error: String| PublishError::Delivery {
                index,
                symbol: symbol.clone(),
                topic: topic.clone(),
                error,
            };
            let future = delivery.map_err(fail)?;
            let outcome = tokio::time::timeout(timeout, future)
                .await
                .map_err(|_| fail(format!("no acknowledgement within {timeout:?}")))?;
            match outcome {
                Ok(Ok(d)) => Ok(Delivery {
                    index,
                    channel,
                    symbol: symbol.clone(),
                    partition: d.partition,
                    offset: d.offset,
                    acked_at: time::OffsetDateTime::from(SystemTime::now()),
                }),
                Ok(Err((e, _))) => Err(fail(e.to_string())),
                Err(_) => Err(fail("the producer was dropped".into())),
            }
        }))
    }

    /// How long ago this publisher last enqueued a message, if ever.
    pub fn since_last_send(&self) -> Option<Duration> {
        self.last_sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|t| t.elapsed())
    }

    /// Waits for everything enqueued to be sent or to fail, within the timeout.
    pub fn flush(&self) {
        use rdkafka::producer::Producer;
        let _ = self.producer.flush(self.timeout);
    }
}
