//! Reading the job's inputs back from Kafka, read-only: the offsets of the window's start and
//! end by timestamp (`offsets_for_times`), then every partition from there, assigned (the group
//! is never joined, nothing is committed), keeping the chosen symbols' trades or quotes in
//! partition order.
//!
//! Every partition is read: the forwarder's Java client places a symbol by murmur2, other
//! producers (the local stack's) by CRC32, and the job itself keys by the envelope's `symbol`,
//! not by the Kafka key. A record is a candidate when its key or its value names a chosen
//! symbol; it is decoded with the oracle's envelope parser ([`envelope::parse_message`]), so a
//! record the job would drop is dropped here too (and counted).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::adapter::kafka::{self, ErrorCapture, KafkaProbeError};
use crate::config::KafkaTarget;
use crate::domain::audit::record::Record;
use crate::domain::envelope::{self, Message as Decoded};
use crate::domain::oracle::{Quote, Trade};

/// The group id librdkafka requires for `assign` (never joined, never committed to).
pub const AUDIT_GROUP: &str = "torghut-e2e-audit";

/// What one topic held for the chosen symbols between the two times.
#[derive(Debug, Clone)]
pub struct TopicRead<T> {
    pub topic: String,
    /// Per symbol, in partition order (one partition per symbol when producers key by symbol).
    pub records: HashMap<String, Vec<Record<T>>>,
    /// Per symbol: records the job would drop (they do not decode).
    pub dropped: HashMap<String, u64>,
    /// Symbols found on more than one partition: their order across partitions is not known.
    pub spread: Vec<String>,
    pub partitions: Vec<PartitionSpan>,
    /// Records read in all (every symbol's).
    pub scanned: u64,
}

/// The offsets read on one partition: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PartitionSpan {
    pub partition: i32,
    pub start: i64,
    pub end: i64,
}

/// Why a topic could not be read from the window's start.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Kafka(#[from] KafkaProbeError),
    #[error(
        "{topic} partition {partition} no longer holds the window's start: its oldest record \
         (offset {low}) is at or after {from}, so older records were removed (retention); \
         audit a more recent window"
    )]
    RetentionPassed {
        topic: String,
        partition: i32,
        low: i64,
        from: String,
    },
    #[error(
        "{topic} has no record at or after {from} (offsets_for_times found none on any \
         partition): nothing to audit in this window"
    )]
    NothingSince { topic: String, from: String },
    #[error("reading {topic} stalled: no record for {idle:?} with offsets still to read")]
    Stalled { topic: String, idle: Duration },
}

impl ReadError {
    /// The window cannot be audited (exit 2), as opposed to Kafka being unusable (exit 3).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ReadError::RetentionPassed { .. } | ReadError::NothingSince { .. }
        )
    }
}

/// Which topic is read, what it must hold, and how to decode it.
#[derive(Debug, Clone)]
pub struct TopicQuery<'a> {
    pub topic: &'a str,
    pub symbols: &'a [String],
    /// Read records with a timestamp from here (ms)…
    pub from_ms: i64,
    /// …to before here (ms), or to the end of the partition.
    pub to_ms: i64,
    /// A topic without a record since `from_ms` is an error (trades), or just empty (quotes).
    pub required: bool,
    /// Bound for each metadata call, and for waiting on a fetch.
    pub timeout: Duration,
}

/// Reads the trades of `query.symbols` (blocking; call it on a blocking thread).
pub fn read_trades(
    target: &KafkaTarget,
    query: &TopicQuery<'_>,
) -> Result<TopicRead<Trade>, ReadError> {
    read(target, query, |message| match message {
        Decoded::Trade(env) => Some((env.symbol.clone(), Trade::from(&env))),
        // On the trades topic the job decodes every record as a trade; one that reads as a
        // quote has no `p` and is dropped there.
        Decoded::Quote(_) | Decoded::Bar(_) => None,
    })
}

/// Reads the quotes of `query.symbols` (blocking).
pub fn read_quotes(
    target: &KafkaTarget,
    query: &TopicQuery<'_>,
) -> Result<TopicRead<Quote>, ReadError> {
    read(target, query, |message| match message {
        Decoded::Quote(env) => Some((env.symbol.clone(), Quote::from(&env))),
        Decoded::Trade(_) | Decoded::Bar(_) => None,
    })
}

fn read<T>(
    target: &KafkaTarget,
    query: &TopicQuery<'_>,
    decode: impl Fn(Decoded) -> Option<(String, T)>,
) -> Result<TopicRead<T>, ReadError> {
    let capture = ErrorCapture::default();
    let fail = |e: KafkaError| ReadError::Kafka(kafka::explain(target, &capture, e));
    // librdkafka's assign needs a group id, but an assigning consumer never joins the group,
    // and with nothing committed (auto-commit off, no commit call) the broker never records
    // it: no group is created or disturbed.
    let consumer: BaseConsumer<ErrorCapture> = kafka::client_config(target)
        .set("group.id", AUDIT_GROUP)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false")
        .create_with_context(capture.clone())
        .map_err(fail)?;
    let spans = spans(&consumer, query).map_err(|e| match e {
        SpanError::Kafka(e) => fail(e),
        SpanError::Read(e) => e,
    })?;
    let mut read = TopicRead {
        topic: query.topic.to_string(),
        records: HashMap::new(),
        dropped: HashMap::new(),
        spread: Vec::new(),
        partitions: spans.clone(),
        scanned: 0,
    };
    let mut left: BTreeMap<i32, i64> = spans
        .iter()
        .filter(|s| s.start < s.end)
        .map(|s| (s.partition, s.end))
        .collect();
    if left.is_empty() {
        return Ok(read);
    }
    let mut tpl = TopicPartitionList::new();
    for s in spans.iter().filter(|s| s.start < s.end) {
        tpl.add_partition_offset(query.topic, s.partition, Offset::Offset(s.start))
            .map_err(fail)?;
    }
    consumer.assign(&tpl).map_err(fail)?;
    let matcher = Matcher::new(query.symbols);
    let mut seen_on: HashMap<String, i32> = HashMap::new();
    let mut last_record = Instant::now();
    while !left.is_empty() {
        let Some(polled) = consumer.poll(Duration::from_millis(200)) else {
            // Offsets the consumer never hands out (transaction markers) still advance its
            // position: a partition whose position reached its end is done.
            if let Ok(positions) = consumer.position() {
                for e in positions.elements() {
                    if let (Offset::Offset(at), Some(&end)) = (e.offset(), left.get(&e.partition()))
                    {
                        if at >= end {
                            left.remove(&e.partition());
                        }
                    }
                }
            }
            if left.is_empty() {
                break;
            }
            if last_record.elapsed() > query.timeout {
                return Err(ReadError::Stalled {
                    topic: query.topic.to_string(),
                    idle: query.timeout,
                });
            }
            continue;
        };
        let message = polled.map_err(fail)?;
        last_record = Instant::now();
        let (partition, offset) = (message.partition(), message.offset());
        let Some(&end) = left.get(&partition) else {
            continue;
        };
        if offset >= end {
            left.remove(&partition);
            continue;
        }
        if offset + 1 >= end {
            left.remove(&partition);
        }
        read.scanned += 1;
        let Some(symbol) = matcher.candidate(message.key(), message.payload()) else {
            continue;
        };
        let text = String::from_utf8_lossy(message.payload().unwrap_or_default());
        let decoded = envelope::parse_message(&text).ok().and_then(&decode);
        let Some((name, value)) = decoded.filter(|(name, _)| matcher.wanted(name)) else {
            // A record keyed by a chosen symbol that the job cannot read: it drops it too.
            if let Some(symbol) = symbol {
                *read.dropped.entry(symbol.to_string()).or_default() += 1;
            }
            continue;
        };
        let ts_ms = message.timestamp().to_millis().unwrap_or(i64::MIN);
        if let Some(&first) = seen_on.get(&name) {
            if first != partition && !read.spread.contains(&name) {
                read.spread.push(name.clone());
            }
        } else {
            seen_on.insert(name.clone(), partition);
        }
        read.records.entry(name).or_default().push(Record {
            partition,
            offset,
            ts_ms,
            value,
        });
    }
    for name in &read.spread {
        // Records of one symbol on several partitions: the job's interleaving is unknown; the
        // timestamps are the best guess (reported as such).
        if let Some(records) = read.records.get_mut(name) {
            records.sort_by_key(|r| r.ts_ms);
        }
    }
    Ok(read)
}

enum SpanError {
    Kafka(KafkaError),
    Read(ReadError),
}

impl From<KafkaError> for SpanError {
    fn from(e: KafkaError) -> Self {
        SpanError::Kafka(e)
    }
}

/// Per partition, the offsets of the first record at or after `from_ms` and at or after
/// `to_ms`; refuses a partition whose retention removed the window's start.
fn spans(
    consumer: &BaseConsumer<ErrorCapture>,
    query: &TopicQuery<'_>,
) -> Result<Vec<PartitionSpan>, SpanError> {
    let metadata = consumer.fetch_metadata(Some(query.topic), query.timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == query.topic && t.error().is_none())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if partitions.is_empty() {
        return Err(SpanError::Read(ReadError::Kafka(
            KafkaProbeError::TopicMissing {
                topic: query.topic.to_string(),
                bootstrap: String::new(),
            },
        )));
    }
    let at = |ms: i64| -> Result<BTreeMap<i32, Offset>, KafkaError> {
        let mut tpl = TopicPartitionList::new();
        for &p in &partitions {
            tpl.add_partition_offset(query.topic, p, Offset::Offset(ms))?;
        }
        let found = consumer.offsets_for_times(tpl, query.timeout)?;
        Ok(found
            .elements()
            .iter()
            .map(|e| (e.partition(), e.offset()))
            .collect())
    };
    let starts = at(query.from_ms)?;
    let ends = at(query.to_ms)?;
    let mut spans = Vec::new();
    let mut any_start = false;
    for &p in &partitions {
        let (low, high) = consumer.fetch_watermarks(query.topic, p, query.timeout)?;
        let start = match starts.get(&p) {
            Some(Offset::Offset(o)) => {
                any_start = true;
                if *o == low && low > 0 {
                    return Err(SpanError::Read(ReadError::RetentionPassed {
                        topic: query.topic.to_string(),
                        partition: p,
                        low,
                        from: iso(query.from_ms),
                    }));
                }
                *o
            }
            // Nothing at or after the start on this partition.
            _ => high,
        };
        let end = match ends.get(&p) {
            Some(Offset::Offset(o)) => *o,
            _ => high,
        };
        spans.push(PartitionSpan {
            partition: p,
            start,
            end: end.max(start),
        });
    }
    if !any_start && query.required {
        return Err(SpanError::Read(ReadError::NothingSince {
            topic: query.topic.to_string(),
            from: iso(query.from_ms),
        }));
    }
    Ok(spans)
}

fn iso(ms: i64) -> String {
    crate::domain::model::iso_millis(crate::domain::oracle::datetime_from_millis(ms))
}

/// Tells a chosen symbol's record from the others without decoding it: by its key, or (the job
/// keys by the envelope's `symbol`) by the symbol appearing in the value as a JSON string.
struct Matcher<'a> {
    symbols: &'a [String],
    quoted: Vec<String>,
}

impl<'a> Matcher<'a> {
    fn new(symbols: &'a [String]) -> Self {
        Matcher {
            symbols,
            quoted: symbols.iter().map(|s| format!("\"{s}\"")).collect(),
        }
    }

    fn wanted(&self, name: &str) -> bool {
        self.symbols.iter().any(|s| s == name)
    }

    /// `Some(Some(symbol))`: keyed by a chosen symbol; `Some(None)`: another key, but the value
    /// names one; `None`: not a candidate.
    fn candidate(&self, key: Option<&[u8]>, value: Option<&[u8]>) -> Option<Option<&'a str>> {
        if let Some(key) = key {
            if let Some(s) = self.symbols.iter().find(|s| s.as_bytes() == key) {
                return Some(Some(s.as_str()));
            }
        }
        let value = std::str::from_utf8(value?).ok()?;
        self.quoted
            .iter()
            .any(|q| value.contains(q.as_str()))
            .then_some(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_matched_by_key_or_by_the_symbol_in_the_value() {
        let symbols = vec!["NVDA".to_string(), "AMD".to_string()];
        let m = Matcher::new(&symbols);
        assert_eq!(m.candidate(Some(b"AMD"), Some(b"{}")), Some(Some("AMD")));
        assert_eq!(
            m.candidate(Some(b"OTHER"), Some(br#"{"symbol":"NVDA"}"#)),
            Some(None)
        );
        assert_eq!(m.candidate(None, Some(br#"{"symbol":"NVDAX"}"#)), None);
        assert_eq!(m.candidate(Some(b"NVDAX"), None), None);
        assert!(m.wanted("AMD") && !m.wanted("amd"));
    }
}
