//! The outputs reader against the real broker: assigned at the end offsets before a run
//! publishes (the status topic one record earlier, its baseline), it records what arrives, with
//! the broker's append time where the topic stamps it, and the values decode into rows.

use crate::common;

use apache_avro::types::Value;
use rdkafka::producer::FutureRecord;
use torghut_e2e::adapter::kafka::{self, StampKind};
use torghut_e2e::domain::outputs::{decode, Output};

fn u(i: u32, v: Value) -> Value {
    Value::Union(i, Box::new(v))
}

fn bar(symbol: &str) -> Vec<u8> {
    let s = |t: &str| Value::String(t.into());
    let d = Value::Double;
    let value = Value::Record(vec![
        ("ingest_ts".into(), s("2026-07-21T14:30:02Z")),
        ("event_ts".into(), s("2026-07-21T14:30:01Z")),
        ("symbol".into(), s(symbol)),
        ("seq".into(), Value::Long(1)),
        ("is_final".into(), u(1, Value::Boolean(true))),
        ("source".into(), u(1, s("ta"))),
        ("window".into(), u(0, Value::Null)),
        ("o".into(), d(1.0)),
        ("h".into(), d(2.0)),
        ("l".into(), d(0.5)),
        ("c".into(), d(1.5)),
        ("v".into(), d(3.0)),
        ("vwap".into(), u(0, Value::Null)),
        ("count".into(), Value::Long(2)),
        ("version".into(), u(0, Value::Int(1))),
    ]);
    apache_avro::to_avro_datum(Output::Bars.fixture_schema(), value).unwrap()
}

async fn produce(topic: &str, key: &str, value: &[u8]) {
    let producer = kafka::producer(&common::kafka_plain()).expect("producer");
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(value),
            common::TIMEOUT,
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("delivery to {topic} failed: {e}"));
}

#[tokio::test]
async fn the_reader_starts_at_the_end_keeps_the_newest_heartbeat_and_stamps_arrivals() {
    let run = torghut_e2e::domain::symbols::RunId::generate();
    let names = [Output::Bars, Output::Signals, Output::Status]
        .map(|o| format!("e2e.kcheck.{}.{}", run.as_str().to_lowercase(), o.name()));
    let mut specs: Vec<kafka_admin::TopicSpec> = names
        .iter()
        .map(|n| kafka_admin::TopicSpec::new(n, 1))
        .collect();
    specs[0]
        .configs
        .push(("message.timestamp.type".into(), "LogAppendTime".into()));
    kafka_admin::ensure_topics(
        &kafka::client_config(&common::kafka_plain()),
        &specs,
        common::TIMEOUT,
    )
    .await
    .expect("scratch topics");
    let _scratch = common::ScratchTopics(names.to_vec());
    // Written before the run: the old bar is not the run's, the old heartbeat is its baseline.
    produce(&names[0], "OLD", &bar("OLD")).await;
    produce(&names[2], "ta", b"before").await;
    produce(&names[2], "ta", b"newest-before").await;
    let topics = Output::ALL
        .iter()
        .zip(&names)
        .map(|(o, n)| (*o, n.clone()))
        .collect();
    let mut watch = kafka::watch_outputs(&common::kafka_plain(), topics, common::TIMEOUT)
        .await
        .expect("reader assigned");
    produce(&names[0], "ZZT2E-K", &bar("ZZT2E-K")).await;
    produce(&names[2], "ta", b"during").await;
    // The wait is given each record once, as it arrives.
    let mut fed = Vec::new();
    let complete = watch
        .wait_until(common::TIMEOUT, |new| {
            fed.extend(new.iter().map(|r| (r.output, r.offset)));
            fed.len() >= 3
        })
        .await;
    let records = watch.records();
    assert!(complete);
    assert_eq!(
        fed,
        records
            .iter()
            .map(|r| (r.output, r.offset))
            .collect::<Vec<_>>()
    );
    let seen: Vec<(Output, bool, Option<&[u8]>)> = records
        .iter()
        .map(|r| (r.output, r.before_run, r.key.as_deref()))
        .collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let status: Vec<(&[u8], bool)> = records
        .iter()
        .filter(|r| r.output == Output::Status)
        .map(|r| (r.value.as_deref().unwrap(), r.before_run))
        .collect();
    assert_eq!(
        status,
        [(&b"newest-before"[..], true), (&b"during"[..], false)]
    );
    // Nothing beyond what was read; a new record is waited for, then read from where the
    // reading stopped (how the outputs check reads a run's records, each once).
    assert!(watch.records_from(records.len()).is_empty());
    let soon = || tokio::time::Instant::now() + std::time::Duration::from_millis(300);
    let mut stale = 0;
    while watch.arrival(soon()).await {
        stale += 1; // arrivals read above but not waited for then
        assert!(stale <= 3, "arrival keeps answering with nothing new");
    }
    assert!(watch.records_from(records.len()).is_empty());
    produce(&names[0], "ZZT2E-K2", &bar("ZZT2E-K2")).await;
    let deadline = tokio::time::Instant::now() + common::TIMEOUT;
    assert!(
        watch.arrival(deadline).await,
        "the new record was not seen arriving"
    );
    let later = watch.records_from(records.len());
    assert_eq!(later.len(), 1, "{later:?}");
    assert_eq!(later[0].key.as_deref(), Some(&b"ZZT2E-K2"[..]));
    let bar_record = records.iter().find(|r| r.output == Output::Bars).unwrap();
    assert_eq!(bar_record.key.as_deref(), Some(&b"ZZT2E-K"[..]));
    assert_eq!(bar_record.stamp_kind, StampKind::LogAppend);
    let Ok(decode::Frame::Plain(body)) = decode::frame(bar_record.value.as_deref().unwrap()) else {
        panic!("plain Avro expected");
    };
    let row =
        decode::microbar(&decode::datum(Output::Bars.fixture_schema(), body).unwrap()).unwrap();
    assert_eq!((row.symbol.as_str(), row.c, row.count), ("ZZT2E-K", 1.5, 2));
}
