//! Reading the TA job's output topics around a run: the end offsets are taken before the run
//! publishes and a consumer assigned there (assign only: no consumer group joins, nothing is
//! ever committed) records every record as it arrives, with its arrival time, until the run
//! has judged it. The status topic is assigned one record earlier, so its newest heartbeat
//! before the run is the baseline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Timestamp;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::{client_config, explain, off_thread, ErrorCapture, KafkaProbeError};
use crate::config::KafkaTarget;
use crate::domain::outputs::Output;

/// What a record's timestamp means (`message.timestamp.type` of the topic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StampKind {
    /// The producer's timestamp: for the TA job, the element (event) time, not an emission time.
    Create,
    /// The broker's append time: when the record was written.
    LogAppend,
    None,
}

/// One record of an output topic.
#[derive(Debug, Clone)]
pub struct OutputRecord {
    pub output: Output,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub stamp_kind: StampKind,
    /// The record's timestamp, Unix milliseconds.
    pub stamp_ms: Option<i64>,
    /// When the validator's consumer received it.
    pub arrived: SystemTime,
    /// Written before the run started (the status topic's baseline).
    pub before_run: bool,
}

/// A running watch of the output topics.
pub struct OutputWatch {
    records: Arc<Mutex<Vec<OutputRecord>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// How many records arrived, for waiting on the next one.
    count: tokio::sync::watch::Receiver<usize>,
}

impl OutputWatch {
    /// Every record so far.
    pub fn records(&self) -> Vec<OutputRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The records from the `from`th on (none yet: empty).
    pub fn records_from(&self, from: usize) -> Vec<OutputRecord> {
        self.records
            .lock()
            .map(|r| r.get(from..).map(<[_]>::to_vec).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Waits until a record arrives (since this watch last waited) or `deadline`; whether one
    /// did. Read them with [`Self::records_from`].
    pub async fn arrival(&mut self, deadline: tokio::time::Instant) -> bool {
        matches!(
            tokio::time::timeout_at(deadline, self.count.changed()).await,
            Ok(Ok(()))
        )
    }

    /// Waits until `done` holds, or `bound` passes. `done` is given the records as they arrive,
    /// each once and in order (all so far on the first call, possibly none): a scenario
    /// published with others sees thousands of their records, and going over all of them on
    /// every arrival kept both cores busy when the run's evidence was coming in. It is asked
    /// again on every record that arrives (no polling interval of its own). Whether it held.
    pub async fn wait_until(
        &mut self,
        bound: Duration,
        mut done: impl FnMut(&[OutputRecord]) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + bound;
        let mut fed = 0;
        loop {
            let new = self.records_from(fed);
            fed += new.len();
            if done(&new) {
                return true;
            }
            if !self.arrival(deadline).await {
                return false;
            }
        }
    }
}

impl Drop for OutputWatch {
    /// Tells the reader to stop without waiting for it: it sees the flag within one poll
    /// (100 ms) and closes its consumer on its own thread, while the verdict, which no longer
    /// needs it, goes on (a join here blocked the runtime's thread for up to that poll).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.thread.take());
    }
}

/// Takes the end offsets of `topics` and starts recording from there (the status topic from its
/// newest record), within `timeout` for the set-up.
pub async fn watch_outputs(
    target: &KafkaTarget,
    topics: Vec<(Output, String)>,
    timeout: Duration,
) -> Result<OutputWatch, KafkaProbeError> {
    let target = target.clone();
    let (consumer, starts) =
        off_thread("outputs", move || assign(&target, &topics, timeout)).await?;
    let records = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = tokio::sync::watch::channel(0usize);
    let thread = {
        let (records, stop) = (records.clone(), stop.clone());
        std::thread::Builder::new()
            .name("outputs-watch".into())
            .spawn(move || record(consumer, starts, records, stop, tx))
            .map_err(|e| KafkaProbeError::Unreachable {
                bootstrap: String::new(),
                detail: format!("cannot start the outputs reader: {e}"),
            })?
    };
    Ok(OutputWatch {
        records,
        stop,
        thread: Some(thread),
        count: rx,
    })
}

/// Where the run's records start, per (topic, partition): records below are the baseline.
type Starts = Vec<(String, i32, Output, i64)>;

fn assign(
    target: &KafkaTarget,
    topics: &[(Output, String)],
    timeout: Duration,
) -> Result<(BaseConsumer<ErrorCapture>, Starts), KafkaProbeError> {
    let capture = ErrorCapture::default();
    let consumer: BaseConsumer<ErrorCapture> = client_config(target)
        // Required by librdkafka for a consumer; never joined (assign) nor committed to.
        .set("group.id", "torghut-e2e-outputs")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .create_with_context(capture.clone())?;
    let mut assignment = TopicPartitionList::new();
    let mut starts = Vec::new();
    for (output, topic) in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| explain(target, &capture, e))?;
        let partitions = super::partition_ids(&metadata, topic);
        if partitions.is_empty() {
            return Err(KafkaProbeError::TopicMissing {
                topic: topic.clone(),
                bootstrap: target.bootstrap.clone(),
            });
        }
        for p in partitions {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, timeout)
                .map_err(|e| explain(target, &capture, e))?;
            // The heartbeat topic is compacted: its last offset always holds the newest record.
            let from = match output {
                Output::Status if high > low => high - 1,
                _ => high,
            };
            assignment.add_partition_offset(topic, p, Offset::Offset(from))?;
            starts.push((topic.clone(), p, *output, high));
        }
    }
    consumer.assign(&assignment)?;
    Ok((consumer, starts))
}

fn record(
    consumer: BaseConsumer<ErrorCapture>,
    starts: Starts,
    records: Arc<Mutex<Vec<OutputRecord>>>,
    stop: Arc<AtomicBool>,
    count: tokio::sync::watch::Sender<usize>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let arrived = SystemTime::now();
        let Some((_, _, output, start)) = starts
            .iter()
            .find(|(t, p, _, _)| t == m.topic() && *p == m.partition())
        else {
            continue;
        };
        let (stamp_kind, stamp_ms) = match m.timestamp() {
            Timestamp::CreateTime(t) => (StampKind::Create, Some(t)),
            Timestamp::LogAppendTime(t) => (StampKind::LogAppend, Some(t)),
            Timestamp::NotAvailable => (StampKind::None, None),
        };
        let r = OutputRecord {
            output: *output,
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            stamp_kind,
            stamp_ms,
            arrived,
            before_run: m.offset() < *start,
        };
        let n = match records.lock() {
            Ok(mut all) => {
                all.push(r);
                all.len()
            }
            Err(_) => return,
        };
        let _ = count.send(n);
    }
}
