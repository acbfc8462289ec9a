//! What a run stopped after publishing left on Kafka: read back while the cell waits.

use super::*;

/// Reads the run's log as it comes; continues the stopped broker when the validator starts
/// reading the topic back (counted in `continued`). Resolves to the whole log.
pub(super) fn continue_on_read_back(
    child: &mut Child,
    broker: Arc<PrivateKafka>,
    continued: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<String> {
    use tokio::io::AsyncBufReadExt;
    let stderr = child.stderr.take().expect("piped stderr");
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let mut log = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("reading the topic back") {
                broker.signal(libc::SIGCONT);
                continued.fetch_add(1, Ordering::SeqCst);
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    })
}

/// Tells a blocking wait to give up (its cell has its answer another way).
#[derive(Clone, Default)]
pub(super) struct Cancel(pub(super) Arc<std::sync::atomic::AtomicBool>);

impl Cancel {
    pub(super) fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub(super) fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Whether the trades topic of the broker at `bootstrap` comes to hold `n` messages.
pub(super) fn messages_on(bootstrap: &str, n: i64, cancel: &Cancel) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let target = torghut_e2e::config::KafkaTarget {
        bootstrap: bootstrap.into(),
        ..common::kafka_plain()
    };
    let consumer: BaseConsumer = torghut_e2e::adapter::kafka::client_config(&target)
        .set("group.id", "t2e-fault-watch")
        .create()
        .unwrap();
    while !cancel.is_set() {
        let total: i64 = (0..3)
            .filter_map(|p| {
                consumer
                    .fetch_watermarks(&target.trades_topic, p, Duration::from_secs(1))
                    .ok()
            })
            .map(|(low, high)| high - low)
            .sum();
        if total >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The end offsets of the stack's trades topic now, to watch it from.
pub(super) fn shared_trades_end() -> Vec<(i32, i64)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let target = common::kafka_plain();
    let consumer: BaseConsumer = torghut_e2e::adapter::kafka::client_config(&target)
        .set("group.id", "t2e-fault-watch")
        .create()
        .unwrap();
    (0..3)
        .map(|p| {
            let (_, high) = consumer
                .fetch_watermarks(&target.trades_topic, p, Duration::from_secs(10))
                .unwrap();
            (p, high)
        })
        .collect()
}

/// Whether a message keyed `prefix…` arrives on the stack's trades topic after `from`.
pub(super) fn key_on_shared_topic(prefix: &str, from: Vec<(i32, i64)>, cancel: &Cancel) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let target = common::kafka_plain();
    let consumer: BaseConsumer = torghut_e2e::adapter::kafka::client_config(&target)
        .set("group.id", "t2e-fault-watch")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for (p, o) in from {
        tpl.add_partition_offset(&target.trades_topic, p, rdkafka::Offset::Offset(o))
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    while !cancel.is_set() {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            if m.key().is_some_and(|k| k.starts_with(prefix.as_bytes())) {
                return true;
            }
        }
    }
    false
}
