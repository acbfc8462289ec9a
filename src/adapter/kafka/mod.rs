//! Kafka clients configured like the forwarder's (`pipeline.md` §1.1, §1.5), and a bounded probe.

mod outputs;
mod publisher;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, ProducerContext};
use rdkafka::Message;

use crate::config::KafkaTarget;

pub use outputs::{watch_outputs, OutputRecord, OutputWatch, StampKind};
pub use publisher::{KafkaPublisher, Pending, PublishError};

#[derive(Debug, thiserror::Error)]
pub enum KafkaProbeError {
    #[error("authentication failed for user {user:?} ({mechanism}): {detail}")]
    Authentication {
        user: String,
        mechanism: &'static str,
        detail: String,
    },
    #[error("broker unreachable at {bootstrap}: {detail}")]
    Unreachable { bootstrap: String, detail: String },
    #[error("topic {topic:?} does not exist on {bootstrap}")]
    TopicMissing { topic: String, bootstrap: String },
    #[error("kafka client error: {0}")]
    Client(#[from] KafkaError),
}

/// What a successful probe saw.
#[derive(Debug, Clone)]
pub struct KafkaProbe {
    pub brokers: usize,
    pub topic: String,
    pub partitions: usize,
}

/// Remembers the last error librdkafka reported in the background, so a timed-out call can say
/// *why* (connection refused, authentication) instead of only "timed out".
#[derive(Clone, Default)]
pub struct ErrorCapture {
    last: Arc<Mutex<Option<BackgroundError>>>,
}

/// librdkafka's error code (when it has one) and its reason text.
pub type BackgroundError = (Option<RDKafkaErrorCode>, String);

impl ErrorCapture {
    pub fn last(&self) -> Option<BackgroundError> {
        self.last.lock().map(|g| g.clone()).unwrap_or(None)
    }
}

impl ClientContext for ErrorCapture {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(target: "librdkafka", ?level, fac, "{log_message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", %error, reason);
        let text = if reason.is_empty() {
            error.to_string()
        } else {
            reason.to_string()
        };
        if let Ok(mut last) = self.last.lock() {
            *last = Some((error.rdkafka_error_code(), text));
        }
    }
}

impl ConsumerContext for ErrorCapture {}

impl ProducerContext for ErrorCapture {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

/// librdkafka settings shared by every client: bootstrap, security, SASL, TLS.
pub fn client_config(target: &KafkaTarget) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &target.bootstrap)
        .set("security.protocol", target.security_protocol.as_str())
        .set("client.id", "torghut-e2e")
        // Fail fast on a dead broker instead of librdkafka's long reconnect backoff.
        .set("reconnect.backoff.max.ms", "1000")
        .set("socket.connection.setup.timeout.ms", "5000");
    if target.security_protocol.uses_sasl() {
        cfg.set("sasl.mechanisms", target.sasl_mechanism.as_str())
            .set("sasl.username", &target.username)
            .set("sasl.password", target.password.expose());
    }
    if let Some(ca) = &target.ca_file {
        cfg.set("ssl.ca.location", ca.display().to_string());
    }
    cfg
}

/// A producer configured like the forwarder's: acks=all, idempotent, lz4, linger 30 ms, and the
/// Java client's partitioner (murmur2 of the key), so a symbol lands on the partition the
/// forwarder would put it on (librdkafka's own default hashes with CRC-32).
pub fn producer(target: &KafkaTarget) -> Result<FutureProducer<ErrorCapture>, KafkaError> {
    client_config(target)
        .set("partitioner", "murmur2_random")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "30")
        .set("message.timeout.ms", "15000")
        .create_with_context(ErrorCapture::default())
}

/// Connects, authenticates and looks the topic up, all within `timeout`.
///
/// Runs the blocking metadata call on a blocking thread so the async caller stays responsive.
pub async fn probe(
    target: &KafkaTarget,
    topic: &str,
    timeout: Duration,
) -> Result<KafkaProbe, KafkaProbeError> {
    let target = target.clone();
    let topic = topic.to_string();
    off_thread("probe", move || probe_blocking(&target, &topic, timeout)).await
}

/// Runs a blocking librdkafka call on a blocking thread, so the async caller stays responsive;
/// a task that could not finish is an unreachable broker, named by `what`.
async fn off_thread<T: Send + 'static>(
    what: &str,
    call: impl FnOnce() -> Result<T, KafkaProbeError> + Send + 'static,
) -> Result<T, KafkaProbeError> {
    tokio::task::spawn_blocking(call).await.unwrap_or_else(|e| {
        Err(KafkaProbeError::Unreachable {
            bootstrap: String::new(),
            detail: format!("{what} task failed: {e}"),
        })
    })
}

/// A consumer in `group` that never commits, with its error capture.
fn consumer(
    target: &KafkaTarget,
    group: &str,
) -> Result<(BaseConsumer<ErrorCapture>, ErrorCapture), KafkaError> {
    let capture = ErrorCapture::default();
    let consumer = client_config(target)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create_with_context(capture.clone())?;
    Ok((consumer, capture))
}

fn probe_blocking(
    target: &KafkaTarget,
    topic: &str,
    timeout: Duration,
) -> Result<KafkaProbe, KafkaProbeError> {
    let capture = ErrorCapture::default();
    let consumer: BaseConsumer<ErrorCapture> = client_config(target)
        .set("group.id", "torghut-e2e-probe")
        .create_with_context(capture.clone())?;
    let deadline = std::time::Instant::now() + timeout;
    // Short metadata attempts, draining the client's event queue in between: a SCRAM rejection
    // arrives as a background error event, and waiting out the whole timeout would hide it.
    let metadata = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match consumer.fetch_metadata(Some(topic), left.min(Duration::from_millis(500))) {
            Ok(m) => break m,
            Err(e) => {
                if let Some(Err(polled)) = consumer.poll(Duration::from_millis(50)) {
                    capture.error(polled, "");
                }
                let failure = explain(target, &capture, e);
                let auth = matches!(failure, KafkaProbeError::Authentication { .. });
                if auth || std::time::Instant::now() >= deadline {
                    return Err(failure);
                }
            }
        }
    };
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(KafkaProbeError::TopicMissing {
            topic: topic.into(),
            bootstrap: target.bootstrap.clone(),
        });
    };
    if t.error().is_some() || t.partitions().is_empty() {
        return Err(KafkaProbeError::TopicMissing {
            topic: topic.into(),
            bootstrap: target.bootstrap.clone(),
        });
    }
    Ok(KafkaProbe {
        brokers: metadata.brokers().len(),
        topic: topic.into(),
        partitions: t.partitions().len(),
    })
}

/// Turns a failed call plus the background error into a named cause.
pub fn explain(target: &KafkaTarget, capture: &ErrorCapture, error: KafkaError) -> KafkaProbeError {
    let background = capture.last();
    let is_auth = |code: Option<RDKafkaErrorCode>, text: &str| {
        code == Some(RDKafkaErrorCode::Authentication)
            || text.contains("Authentication failed")
            || text.contains("SASL authentication error")
    };
    if let Some((code, text)) = &background {
        if is_auth(*code, text) {
            return KafkaProbeError::Authentication {
                user: target.username.clone(),
                mechanism: target.sasl_mechanism.as_str(),
                detail: text.clone(),
            };
        }
    }
    if is_auth(error.rdkafka_error_code(), &error.to_string()) {
        return KafkaProbeError::Authentication {
            user: target.username.clone(),
            mechanism: target.sasl_mechanism.as_str(),
            detail: error.to_string(),
        };
    }
    let detail = match background {
        Some((_, text)) => format!("{error}; last client error: {text}"),
        None => error.to_string(),
    };
    KafkaProbeError::Unreachable {
        bootstrap: target.bootstrap.clone(),
        detail,
    }
}

/// The partitions `metadata` lists for `topic` (none when the broker reports an error for it).
pub fn partition_ids(metadata: &rdkafka::metadata::Metadata, topic: &str) -> Vec<i32> {
    metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect()
}

/// Key and payload of a consumed message as owned strings (used by tests and evidence).
pub fn message_text<M: Message>(m: &M) -> (Option<String>, Option<String>) {
    let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
    let payload = m.payload().map(|p| String::from_utf8_lossy(p).into_owned());
    (key, payload)
}

/// Offsets the TA job's consumer group has committed on `topic`'s partitions (OffsetFetch only:
/// the probe never joins the group, so it cannot disturb the job's assignment).
pub async fn committed_offsets(
    target: &KafkaTarget,
    group: &str,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> Result<std::collections::BTreeMap<i32, i64>, KafkaProbeError> {
    let (target, group, topic) = (target.clone(), group.to_string(), topic.to_string());
    let partitions = partitions.to_vec();
    off_thread("offset", move || {
        let (consumer, capture) = consumer(&target, &group)?;
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition(&topic, *p);
        }
        let committed = consumer
            .committed_offsets(tpl, timeout)
            .map_err(|e| explain(&target, &capture, e))?;
        Ok(committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                rdkafka::Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect())
    })
    .await
}

/// Looks for messages by value on `topic`, from the first offset written at or after `since`
/// (less a second of clock slack), until every one is found or `bound` passes: the partition
/// and offset of each value found, by the caller's index. Finds the messages a broker wrote
/// although it never acknowledged them (Kafka's delivery is at least once), also those a broker
/// that was stalled writes only now.
pub async fn find_messages(
    target: &KafkaTarget,
    topic: &str,
    since: std::time::SystemTime,
    wanted: Vec<(usize, String)>,
    bound: Duration,
) -> Result<std::collections::BTreeMap<usize, (i32, i64)>, KafkaProbeError> {
    let (target, topic) = (target.clone(), topic.to_string());
    off_thread("read-back", move || {
        find_blocking(&target, &topic, since, wanted, bound)
    })
    .await
}

fn find_blocking(
    target: &KafkaTarget,
    topic: &str,
    since: std::time::SystemTime,
    wanted: Vec<(usize, String)>,
    bound: Duration,
) -> Result<std::collections::BTreeMap<usize, (i32, i64)>, KafkaProbeError> {
    use rdkafka::{Offset, TopicPartitionList};
    let deadline = std::time::Instant::now() + bound;
    let left = || deadline.saturating_duration_since(std::time::Instant::now());
    let (consumer, capture) = consumer(target, "torghut-e2e-read-back")?;
    let since_ms = since
        .checked_sub(Duration::from_secs(1))
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64);
    // Where to start in each partition. A broker that has just come back may fail the first
    // requests: try again, in short attempts, until the bound.
    let starts = loop {
        let attempt = left().min(Duration::from_secs(1));
        let found = consumer
            .fetch_metadata(Some(topic), attempt)
            .and_then(|metadata| {
                let mut at = TopicPartitionList::new();
                for t in metadata.topics().iter().filter(|t| t.name() == topic) {
                    for p in t.partitions() {
                        at.add_partition_offset(topic, p.id(), Offset::Offset(since_ms))?;
                    }
                }
                consumer.offsets_for_times(at, attempt)
            });
        match found {
            Ok(starts) if starts.count() > 0 => break starts,
            Ok(_) if left().is_zero() => return Ok(Default::default()),
            Err(e) if left().is_zero() => return Err(explain(target, &capture, e)),
            _ => std::thread::sleep(Duration::from_millis(100).min(left())),
        }
    };
    let mut assignment = TopicPartitionList::new();
    for e in starts.elements() {
        // Nothing written since `since` yet: from the end, for what is still to be written.
        let start = match e.offset() {
            Offset::Offset(o) => Offset::Offset(o),
            _ => Offset::End,
        };
        assignment.add_partition_offset(topic, e.partition(), start)?;
    }
    consumer.assign(&assignment)?;
    let mut wanted: std::collections::HashMap<String, usize> =
        wanted.into_iter().map(|(i, v)| (v, i)).collect();
    let mut found = std::collections::BTreeMap::new();
    while !wanted.is_empty() && !left().is_zero() {
        let Some(Ok(m)) = consumer.poll(left().min(Duration::from_millis(200))) else {
            continue;
        };
        if let Some(index) = m
            .payload()
            .and_then(|p| std::str::from_utf8(p).ok())
            .and_then(|p| wanted.remove(p))
        {
            found.insert(index, (m.partition(), m.offset()));
        }
    }
    Ok(found)
}
