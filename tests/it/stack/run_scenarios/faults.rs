//! Each fault switch of a private stand-in TA job makes the run fail with the right hop and cause.

use super::*;

/// A job whose 1-minute branch is off writes the 1-second rows but no PT1M row: the run fails
/// naming that branch, and the 1-second tables still match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bars1m_off_is_named_as_the_minute_branch() {
    let ta = PrivateTa::start(&["--bars1m-off"]).await;
    ta.wait_until_reading().await;
    let path = common::toml_file(
        "t2e-minute",
        r#"name = "minute-off-probe"
symbols = ["F"]
pacing = "compressed"
deadline_secs = 6
bars = [
  { symbol = "F", minute = 0, open = 50.0, high = 50.5, low = 49.5, close = 50.2, volume = 900.0, count = 12 },
  { symbol = "F", minute = 1, open = 50.2, high = 50.6, low = 50.0, close = 50.4, volume = 700.0, count = 9 },
]
[[generators]]
kind = "ramp"
symbol = "F"
start_ms = 120000
seconds = 3
per_second = 2
price = 50.0
step = 0.05
size = 3.0
"#,
    );
    let env = vec![(
        "TORGHUT_E2E_CLICKHOUSE_DATABASE".to_string(),
        ta.database.clone(),
    )];
    let config = ta.config_file().display().to_string();
    let result = tokio::task::spawn_blocking(move || {
        validator(&[path.to_str().unwrap(), "--config", &config], &env)
    })
    .await
    .unwrap();
    assert_fails(&result, "ta_job", "1-minute branch");
    let tables = &result.1["scenarios"][0]["tables"];
    assert_eq!(
        tables["ta_signals_pt1m"]["missing"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "{tables}"
    );
    assert_eq!(tables["ta_microbars"]["matched"], 3, "{tables}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_is_named_as_the_ta_job_not_consuming() {
    let ta = PrivateTa::start(&["--stall"]).await;
    let r = validate_now(&ta, "trade").await;
    assert_fails(&r, "ta_job", "not consuming");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_bars_are_named() {
    let ta = PrivateTa::start(&["--drop-every-nth-bar", "2"]).await;
    assert_fails(&validate(&ta, "trade").await, "ta_job", "drops bars");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_maths_names_the_columns() {
    let ta = PrivateTa::start(&["--wrong-math", "ema_sma_seed"]).await;
    let r = validate(&ta, "trade").await;
    assert_fails(&r, "ta_job", "ema12");
    assert!(
        shown(&r.0).contains("first divergent row"),
        "{}",
        shown(&r.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_stddev_shows_in_bollinger_or_volatility() {
    let ta = PrivateTa::start(&["--wrong-math", "sample_stddev"]).await;
    assert_fails(&validate(&ta, "trade").await, "ta_job", "vol_realized_w60s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_writes_are_named() {
    let ta = PrivateTa::start(&["--duplicate-writes"]).await;
    assert_fails(
        &validate(&ta, "trade").await,
        "clickhouse_sink",
        "without FINAL",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_in_another_database_are_found() {
    let other = common::scratch_database("t2e_other").await;
    let ta = PrivateTa::start(&["--write-database", &other.name]).await;
    assert_fails(
        &validate(&ta, "trade").await,
        "clickhouse_sink",
        &format!("in {other}"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readonly_clickhouse_is_named_from_the_consumer_offsets() {
    let ta = PrivateTa::start(&["--readonly"]).await;
    assert_fails(
        &validate(&ta, "trade").await,
        "clickhouse_sink",
        "writes fail",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_writes_fail_the_latency_threshold() {
    let ta = PrivateTa::start(&["--write-delay-ms", "4000"]).await;
    assert_fails(
        &validate(&ta, "trade").await,
        "clickhouse_sink",
        "exceeds 2500 ms",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_watermark_leaves_the_last_bar_missing() {
    let ta = PrivateTa::start(&["--stuck-watermark"]).await;
    assert_fails(
        &validate(&ta, "watermark").await,
        "ta_job",
        "watermark is not advancing",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_job_after_a_poison_message_is_not_consuming() {
    let mut ta = PrivateTa::start(&["--crash-on-poison"]).await;
    let producer = kafka::producer(&common::kafka_plain()).unwrap();
    let poison = torghut_e2e::domain::envelope::trade_message(
        "POISON",
        time::OffsetDateTime::now_utc(),
        1.0,
        1.0,
        1,
        time::OffsetDateTime::now_utc(),
    );
    producer
        .send(
            rdkafka::producer::FutureRecord::to(&ta.topic)
                .key("POISON")
                .payload(&poison),
            common::TIMEOUT,
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(s) = ta.try_wait() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the stand-in exits on the poison message");
    assert!(!status.success());
    assert_fails(&validate_now(&ta, "trade").await, "ta_job", "not consuming");
}
