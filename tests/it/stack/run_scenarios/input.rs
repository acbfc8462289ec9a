//! Bad input and unreachable targets: a clear exit code, nothing published, no hang.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_scenario_is_a_usage_error_and_publishes_nothing() {
    // Topics of its own, so that what other tests publish cannot hide a message of this run.
    let topic = common::unique("t2e.malformed");
    let quotes = format!("{topic}.quotes");
    common::create_topics(&[&topic, &quotes]).await;
    let config = common::toml_file(
        "t2e-bad",
        format!("[kafka]\ntrades_topic = {topic:?}\nquotes_topic = {quotes:?}\n"),
    );
    let path = common::toml_file(
        "t2e-bad",
        "name = \"x\"\nsymbols = [\"A\"]\n[[trades]]\nsymbol = \"B\"\n",
    );
    let args = [
        path.display().to_string(),
        "--config".into(),
        config.display().to_string(),
    ];
    let (out, _) =
        tokio::task::spawn_blocking(move || validator(&args.each_ref().map(String::as_str), &[]))
            .await
            .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    let located = format!("{}:", path.display());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&located),
        "{}",
        shown(&out)
    );
    for t in [&topic, &quotes] {
        assert_eq!(high_watermarks(t), [0, 0, 0], "{t}: nothing published");
    }
    common::drop_scratch(vec![topic, quotes], Vec::new());
}

/// The high watermark of each partition of `topic`: how many messages it ever got.
fn high_watermarks(topic: &str) -> Vec<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = kafka::client_config(&common::kafka_plain())
        .create()
        .unwrap();
    (0..3)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, common::TIMEOUT)
                .unwrap_or_else(|e| panic!("{topic}/{p}: {e}"))
                .1
        })
        .collect()
}

#[test]
fn stopped_broker_exits_3_within_the_deadline() {
    let env = vec![(
        "TORGHUT_E2E_KAFKA_BOOTSTRAP".to_string(),
        "127.0.0.1:1".to_string(),
    )];
    let started = std::time::Instant::now();
    let (out, report) = validator(&["scenarios/smoke.toml"], &env);
    assert_eq!(out.status.code(), Some(3), "{}", shown(&out));
    assert_eq!(report["verdict"], "error");
    assert!(
        report["scenarios"].as_array().unwrap().is_empty(),
        "nothing ran"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn wrong_password_exits_3() {
    let env = vec![(
        "TORGHUT_E2E_KAFKA_PASSWORD".to_string(),
        "wrong".to_string(),
    )];
    let (out, _) = validator(&["scenarios/smoke.toml"], &env);
    assert_eq!(out.status.code(), Some(3), "{}", shown(&out));
    assert!(
        shown(&out).contains("authentication failed"),
        "{}",
        shown(&out)
    );
}
