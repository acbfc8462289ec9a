//! The local Kafka broker is real: round trips on both listeners, SCRAM that rejects a bad password.

use crate::common;

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use torghut_e2e::adapter::kafka::{self, KafkaProbeError};
use torghut_e2e::config::{KafkaTarget, Secret};

async fn create_topic(name: &str) -> common::ScratchTopics {
    create_topic_with(name, 1).await
}

/// A fresh topic, deleted when the returned guard goes.
async fn create_topic_with(name: &str, partitions: i32) -> common::ScratchTopics {
    let ensured = kafka_admin::ensure_topics(
        &kafka::client_config(&common::kafka_plain()),
        &[kafka_admin::TopicSpec::new(name, partitions)],
        common::TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("creating {name}: {e}"));
    assert_eq!(ensured.created, [name], "a fresh topic");
    common::ScratchTopics(vec![name.to_string()])
}

async fn produce(target: &KafkaTarget, topic: &str, key: &str, value: &str) -> (i32, i64) {
    let producer = kafka::producer(target).expect("producer");
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(value),
            common::TIMEOUT,
        )
        .await
        .map(|d| (d.partition, d.offset))
        .unwrap_or_else(|(e, _)| panic!("delivery to {} failed: {e}", target.bootstrap))
}

/// Reads partition 0 from the beginning until `n` messages arrived or the deadline passed.
fn consume(target: &KafkaTarget, topic: &str, n: usize) -> Vec<(Option<String>, Option<String>)> {
    let consumer: BaseConsumer = kafka::client_config(target)
        .set("group.id", common::unique("t2e-test"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            got.push(kafka::message_text(&m.expect("message")));
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_on_plaintext_and_scram_listeners() {
    let topic = common::unique("t2e_roundtrip");
    let _scratch = create_topic(&topic).await;
    let plain = common::kafka_plain();
    let sasl = common::kafka_sasl();
    let (p1, o1) = produce(&plain, &topic, "AAA", "via-plaintext").await;
    let (p2, o2) = produce(&sasl, &topic, "BBB", "via-scram").await;
    assert_eq!((p1, p2), (0, 0));
    assert!(o2 > o1, "offsets must grow: {o1} then {o2}");

    // Each listener reads what both wrote, in order.
    for target in [&plain, &sasl] {
        let got = tokio::task::block_in_place(|| consume(target, &topic, 2));
        assert_eq!(
            got,
            vec![
                (Some("AAA".into()), Some("via-plaintext".into())),
                (Some("BBB".into()), Some("via-scram".into())),
            ],
            "read through {}",
            target.bootstrap
        );
    }
}

#[tokio::test]
async fn scram_listener_authenticates_and_sees_the_sim_topics() {
    let probe = kafka::probe(
        &common::kafka_sasl(),
        "torghut.sim.trades.v1",
        common::TIMEOUT,
    )
    .await
    .expect("SCRAM login and metadata");
    assert_eq!(
        probe.partitions, 3,
        "the trades topic has 3 partitions like production"
    );
    for (topic, partitions) in [("torghut.trades.v1", 3), ("torghut.ta.bars.1s.v1", 1)] {
        let p = kafka::probe(&common::kafka_plain(), topic, common::TIMEOUT)
            .await
            .unwrap();
        assert_eq!(p.partitions, partitions, "{topic}");
    }
}

#[tokio::test]
async fn wrong_scram_password_fails_fast_with_an_authentication_error() {
    let target = KafkaTarget {
        password: Secret::new("definitely-wrong"),
        ..common::kafka_sasl()
    };
    let started = Instant::now();
    let err = kafka::probe(&target, "torghut.sim.trades.v1", common::TIMEOUT)
        .await
        .expect_err("a wrong password must not connect");
    assert!(
        matches!(err, KafkaProbeError::Authentication { .. }),
        "expected an authentication error, got: {err}"
    );
    assert!(
        !err.to_string().contains("definitely-wrong"),
        "the password leaked: {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn missing_topic_is_named() {
    let err = kafka::probe(&common::kafka_sasl(), "torghut.nope.v1", common::TIMEOUT)
        .await
        .expect_err("no such topic");
    assert!(matches!(err, KafkaProbeError::TopicMissing { .. }), "{err}");
}

#[tokio::test]
async fn stopped_broker_is_unreachable_within_the_bound() {
    let target = KafkaTarget {
        bootstrap: "127.0.0.1:1".into(),
        ..common::kafka_plain()
    };
    let started = Instant::now();
    let err = kafka::probe(&target, "torghut.sim.trades.v1", Duration::from_secs(3))
        .await
        .expect_err("nothing listens on port 1");
    assert!(matches!(err, KafkaProbeError::Unreachable { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
}

/// The forwarder's Java producer puts a key on `toPositive(murmur2(key)) % partitions`; the
/// validator's producer must agree, or a synthetic symbol shares a partition (and so a
/// watermark) with other symbols than it would in production. The expected partitions were
/// computed once with kafka-clients 4.3.0 (`Utils.toPositive(Utils.murmur2(key)) % 3`).
#[tokio::test]
async fn symbols_land_on_the_partition_the_java_forwarder_picks() {
    let topic = common::unique("t2e.partitioner");
    let _scratch = create_topic_with(&topic, 3).await;
    let java = [
        ("NVDA", 2),
        ("AMD", 1),
        ("ZZT2E-ABCDEFGH-A", 2),
        ("ZZT2E-CANARY.0-SMOKE", 2),
        ("ZZT2E-CANARY.CLOCK", 2),
    ];
    for (key, partition) in java {
        let (got, _) = produce(&common::kafka_plain(), &topic, key, "{}").await;
        assert_eq!(got, partition, "{key}");
        let hashed = (murmur2::murmur2(key.as_bytes(), murmur2::KAFKA_SEED) & 0x7fff_ffff) % 3;
        assert_eq!(
            hashed as i32, partition,
            "the tests' murmur2 agrees with Java for {key}"
        );
    }
}

/// Messages a broker wrote without acknowledging them (at least once) are found by value after
/// the fact, at their partition and offset; a message that never reached it is not.
#[tokio::test]
async fn messages_are_found_on_the_topic_by_value() {
    let topic = common::unique("t2e.readback");
    let _scratch = create_topic(&topic).await;
    let target = common::kafka_plain();
    let since = std::time::SystemTime::now();
    let mut wanted = Vec::new();
    let mut landed = Vec::new();
    for i in 0..3 {
        let value = format!("{{\"probe\":{i},\"topic\":\"{topic}\"}}");
        landed.push(produce(&target, &topic, "K", &value).await);
        wanted.push((i, value));
    }
    wanted.push((
        3,
        format!("{{\"probe\":3,\"topic\":\"{topic}\",\"never\":true}}"),
    ));
    // The absent one keeps the search going to its bound.
    let found = kafka::find_messages(&target, &topic, since, wanted, Duration::from_secs(3))
        .await
        .expect("read back");
    let expected: std::collections::BTreeMap<usize, (i32, i64)> =
        landed.into_iter().enumerate().collect();
    assert_eq!(
        found, expected,
        "each produced message at its offset; the other absent"
    );
}

/// A broker that does not answer: the read-back gives up within its bound.
#[tokio::test]
async fn reading_back_from_a_silent_broker_gives_up_in_time() {
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = KafkaTarget {
        bootstrap: hole.local_addr().unwrap().to_string(),
        ..common::kafka_plain()
    };
    let started = Instant::now();
    let found = kafka::find_messages(
        &target,
        "torghut.sim.trades.v1",
        std::time::SystemTime::now(),
        vec![(0, "x".into())],
        Duration::from_secs(2),
    )
    .await;
    assert!(found.is_err(), "{found:?}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    drop(hole);
}
