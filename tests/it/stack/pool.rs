//! Reserved symbol pools (`--pool`): runs reuse symbols and predict them from their history in
//! ClickHouse. Each test drives its own private stand-in TA job (scratch topics and database,
//! 2 s idleness, 2 s quote window), so histories and watermarks are its own.

use crate::common;
use crate::common::refstack;
use crate::common::shown;

use std::path::{Path, PathBuf};
use std::process::Output;

use refstack::{Job, PrivateTa};
use serde_json::Value;
use torghut_e2e::adapter::clickhouse::ClickHouse;
use torghut_e2e::adapter::kafka::KafkaPublisher as Publisher;
use torghut_e2e::domain::publish::Channel;

/// The job with its code default quote window (2 s, a deployment that does not set it), which
/// the validator is told: a reused symbol waits that window after its history before it
/// publishes, 13 s less per reuse than with production's 15 s.
fn job() -> Job {
    Job {
        quote_stale_after_ms: 2_000,
        ..Job::default()
    }
}

/// `torghut-e2e run <scenario> --pool <pool>` against `ta`; its output and JSON report.
async fn run(ta: &PrivateTa, scenario: &Path, pool: &str) -> (Output, Value) {
    let report = std::env::temp_dir().join(format!("{}.json", common::unique("t2e-pool")));
    let mut cmd = ta.command("run", scenario);
    cmd.args(["--pool", pool, "--report-json"]).arg(&report);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run torghut-e2e"))
        .await
        .unwrap();
    let json = common::take_json(&report);
    (out, json)
}

/// Asserts a passing run and returns its one scenario's pool section.
fn passed(out: &Output, report: &Value) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", shown(out));
    let scenario = &report["scenarios"][0];
    assert_eq!(scenario["verdict"], "pass", "{}", shown(out));
    scenario["pool"].clone()
}

fn ch(ta: &PrivateTa) -> ClickHouse {
    ClickHouse::new(&common::clickhouse(&ta.database), common::TIMEOUT)
}

/// Seqs of the symbol's bars, in bar order.
async fn seqs(ta: &PrivateTa, symbol: &str) -> Vec<u64> {
    let ch = ch(ta);
    let q = ch
        .client()
        .query("SELECT seq FROM ta_microbars FINAL WHERE symbol = ? ORDER BY event_ts, seq")
        .bind(symbol);
    ch.bounded(q.fetch_all::<u64>()).await.unwrap()
}

async fn execute(ta: &PrivateTa, sql: &str) {
    let ch = ch(ta);
    ch.bounded(ch.client().query(sql).execute()).await.unwrap();
}

fn scenario(seconds: u32) -> PathBuf {
    common::toml_file(
        "t2e-pool",
        format!(
            r#"name = "pool"
symbols = ["P"]
pacing = "compressed"
[[generators]]
kind = "random_walk"
symbol = "P"
seconds = {seconds}
per_second = 2
price = 80.0
volatility = 0.003
max_size = 300
seed = 7
"#
        ),
    )
}

/// A pool of its own per test (A-Z 0-9, at most 8): the counter's and the clock's last digits.
/// (Each test has its own private job and database too, so the name only has to be valid.)
fn pool_name() -> String {
    let unique = common::unique("");
    let parts: Vec<&str> = unique.split('_').collect();
    let (n, t): (u64, u64) = (parts[2].parse().unwrap(), parts[3].parse().unwrap());
    format!("T{:02}{:05}", n % 100, t % 100_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_symbol_is_predicted_from_its_history_even_after_an_interrupted_run() {
    let ta = PrivateTa::with_job(&[], job()).await;
    let pool = pool_name();
    let path = scenario(12);
    let symbol = format!("ZZT2E-{pool}.0-P");

    let (out, report) = run(&ta, &path, &pool).await;
    let first = passed(&out, &report);
    assert_eq!(first["symbols"][0]["symbol"], symbol.as_str());
    assert_eq!(first["symbols"][0]["history"], "fresh");
    let after_first = seqs(&ta, &symbol).await;
    assert_eq!(
        after_first,
        (1..=12).collect::<Vec<_>>(),
        "watermark-closed"
    );

    let (out, report) = run(&ta, &path, &pool).await;
    let second = passed(&out, &report);
    let s = &second["symbols"][0];
    assert_eq!(s["history"], "complete", "{second}");
    assert_eq!(
        (s["history_rows"].as_u64(), s["last_seq"].as_u64()),
        (Some(12), Some(12))
    );
    assert_eq!(s["vwap_session"], "exact");
    assert!(
        second["waited_for_history_ms"].as_u64().unwrap() > 0,
        "quote window"
    );

    // An interrupted run: one trade of the symbol and nothing to close its bar.
    let publisher = Publisher::new(
        &torghut_e2e::config::KafkaTarget {
            trades_topic: ta.topic.clone(),
            ..common::kafka_plain()
        },
        common::TIMEOUT,
    )
    .unwrap();
    let now = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let value = torghut_e2e::domain::envelope::trade_message(&symbol, now, 81.0, 5.0, 1, now);
    publisher
        .send(0, Channel::Trades, &symbol, value)
        .acked()
        .await
        .unwrap();

    let (out, report) = run(&ta, &path, &pool).await;
    let third = passed(&out, &report);
    let s = &third["symbols"][0];
    // Its bar is either closed by this run's first trade (caught up) or already stored.
    let seen = s["caught_up_bars"].as_u64().unwrap() + s["history_rows"].as_u64().unwrap();
    assert_eq!(seen, 25, "{third}");
    assert_eq!(seqs(&ta, &symbol).await, (1..=37).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_restarted_without_state_is_predicted_from_nothing_then_from_its_new_history() {
    let mut ta = PrivateTa::with_job(&[], job()).await;
    let pool = pool_name();
    let path = scenario(8);
    let symbol = format!("ZZT2E-{pool}.0-P");
    let (out, report) = run(&ta, &path, &pool).await;
    passed(&out, &report);
    // The simulation lane's TA deployment upgrades `stateless`.
    ta.restart_without_state();

    let (out, report) = run(&ta, &path, &pool).await;
    let after_restart = passed(&out, &report);
    let s = &after_restart["symbols"][0];
    assert_eq!(
        (s["history"].as_str(), s["last_seq"].as_u64()),
        (Some("complete"), Some(8))
    );
    assert_eq!(s["state_reset"], true, "{after_restart}");
    assert_eq!(after_restart["generation"], 0);

    let (out, report) = run(&ta, &path, &pool).await;
    let next = passed(&out, &report);
    let s = &next["symbols"][0];
    // Seeded from the rows since the restart only; the generation is kept.
    assert_eq!(
        (s["history_rows"].as_u64(), s["first_seq"].as_u64()),
        (Some(8), Some(1))
    );
    assert_eq!(
        (s["last_seq"].as_u64(), s["state_reset"].as_bool()),
        (Some(8), Some(false))
    );
    assert_eq!(next["generation"], 0);
    let all = seqs(&ta, &symbol).await;
    assert_eq!(all.len(), 24, "{all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_with_a_gap_retires_its_generation() {
    let ta = PrivateTa::with_job(&[], job()).await;
    let pool = pool_name();
    let path = scenario(8);
    let (out, report) = run(&ta, &path, &pool).await;
    passed(&out, &report);
    let gen0 = format!("ZZT2E-{pool}.0-P");
    // A row the sink lost: the job's state has it, ClickHouse does not.
    execute(
        &ta,
        &format!(
            "ALTER TABLE ta_microbars DELETE WHERE symbol = '{gen0}' AND seq = 4 \
             SETTINGS mutations_sync = 2"
        ),
    )
    .await;

    let (out, report) = run(&ta, &path, &pool).await;
    let pool_report = passed(&out, &report);
    assert_eq!(pool_report["generation"], 1, "{pool_report}");
    let retired = &pool_report["retired"][0];
    assert_eq!(retired["generation"], 0);
    assert_eq!(retired["symbol"], gen0.as_str());
    let reason = retired["reason"].as_str().unwrap();
    assert!(reason.contains("1 of seqs 1..=8 missing"), "{reason}");
    assert_eq!(pool_report["symbols"][0]["history"], "fresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_history_prefix_fits_the_session_volume() {
    let ta = PrivateTa::with_job(&[], job()).await;
    let pool = pool_name();
    let path = scenario(400);
    let (out, report) = run(&ta, &path, &pool).await;
    passed(&out, &report);
    let symbol = format!("ZZT2E-{pool}.0-P");
    let ch = ch(&ta);
    let volume = ch
        .bounded(
            ch.client()
                .query("SELECT sum(v) FROM ta_microbars FINAL WHERE symbol = ?")
                .bind(&symbol)
                .fetch_one::<f64>(),
        )
        .await
        .unwrap();
    // The TTL removes whole old partitions; here the oldest 30 bars of both tables.
    for table in ["ta_microbars", "ta_signals"] {
        execute(
            &ta,
            &format!(
                "ALTER TABLE {table} DELETE WHERE symbol = '{symbol}' AND seq <= 30 \
                 SETTINGS mutations_sync = 2"
            ),
        )
        .await;
    }

    let (out, report) = run(&ta, &scenario(20), &pool).await;
    let pool_report = passed(&out, &report);
    let s = &pool_report["symbols"][0];
    assert_eq!(s["history"], "prefix_expired", "{pool_report}");
    assert_eq!(
        (s["first_seq"].as_u64(), s["last_seq"].as_u64()),
        (Some(31), Some(400))
    );
    assert_eq!(s["vwap_session"], "fitted");
    let fitted = s["prior_volume"].as_f64().expect("fitted volume");
    assert!(
        (fitted / volume - 1.0).abs() < 1e-6,
        "fitted {fitted}, the job's session volume {volume}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_canary_keeps_the_job_state_bounded() {
    let ta = PrivateTa::with_job(&[], job()).await;
    let pool = pool_name();
    let scratch = common::ScratchDir::new("t2e-pool-canary");
    let dir = scratch.path();
    let history = dir.join("history.jsonl");
    let mut cmd = ta.command("canary", &scenario(6));
    cmd.args([
        "--pool",
        &pool,
        "--max-runs",
        "3",
        "--interval",
        "1s",
        "--history",
    ])
    .arg(&history)
    .env("TORGHUT_E2E_ARTIFACTS_DIR", dir.join("artifacts"));
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let entries = torghut_e2e::cli::canary::history::read_history(&history);
    assert_eq!(entries.len(), 3);
    assert!(entries.iter().all(|e| e.verdict == "pass"), "{entries:?}");

    let ch = ch(&ta);
    let symbols = ch
        .bounded(
            ch.client()
                .query("SELECT DISTINCT symbol FROM ta_microbars ORDER BY symbol")
                .fetch_all::<String>(),
        )
        .await
        .unwrap();
    let clock = format!("ZZT2E-{pool}.CLOCK");
    let symbol = format!("ZZT2E-{pool}.0-P");
    // Three runs, two symbols (the clock's bars appear as later clocks close them).
    assert!(
        symbols.iter().all(|s| *s == clock || *s == symbol),
        "{symbols:?}"
    );
    assert_eq!(seqs(&ta, &symbol).await, (1..=18).collect::<Vec<_>>());
}

/// The partition the Java client's default partitioner gives `symbol` on a 3-partition topic
/// (the validator publishes with the same one).
fn partition_of(symbol: &str) -> u32 {
    (murmur2::murmur2(symbol.as_bytes(), murmur2::KAFKA_SEED) & 0x7fff_ffff) % 3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bars_the_watermark_closes_after_the_idle_timeout_do_not_fail_the_latency_limit() {
    // Production's 30 s idleness: the last bar waits until the partition that carried the
    // pool symbol's trades goes idle, long after the clock trade (pipeline.md §9.7).
    let production_idleness = Job {
        idle_timeout_ms: 30_000,
        ..job()
    };
    let ta = PrivateTa::with_job(&[], production_idleness).await;
    ta.wait_until_reading().await;
    // A pool whose symbol and clock land on different partitions, so the clock's partition
    // cannot release the watermark by itself. Real-time pacing: a compressed scenario is laid
    // out behind a pin on every partition, and its closing pin releases the watermark at once.
    let base = pool_name();
    let pool = ('T'..='Z')
        .map(|c| format!("{c}{}", &base[1..]))
        .find(|p| {
            partition_of(&format!("ZZT2E-{p}.0-P")) != partition_of(&format!("ZZT2E-{p}.CLOCK"))
        })
        .expect("a pool name with its symbol and clock apart");
    let path = common::toml_file(
        "t2e-pool",
        r#"name = "pool-latency"
symbols = ["P"]
pacing = "realtime"
max_latency_ms = 5000
[[generators]]
kind = "ramp"
symbol = "P"
seconds = 4
per_second = 2
price = 80.0
step = 0.01
size = 10.0
"#,
    );

    let (out, report) = run(&ta, &path, &pool).await;
    passed(&out, &report);
    let s = &report["scenarios"][0];
    assert_eq!(s["findings"], serde_json::json!([]), "{}", shown(&out));
    let partitions: std::collections::BTreeSet<u64> = s["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["partition"].as_u64().unwrap())
        .collect();
    assert_eq!(partitions.len(), 2, "symbol and clock on two partitions");
    let latency = &s["latency"];
    let watermark = &latency["watermark_closed"];
    let (by_trade, by_watermark) = (
        &latency["publish_to_visible"],
        &watermark["publish_to_visible"],
    );
    assert_eq!(
        (by_trade["count"].as_u64(), by_watermark["count"].as_u64()),
        (Some(3), Some(1))
    );
    assert!(by_trade["p95_ms"].as_f64().unwrap() <= 5_000.0, "{latency}");
    // The last bar waited for the idle timeout: judged against the trade-close limit it would
    // have failed the run; its own limit adds the 31 s the job may hold its watermark.
    let waited = by_watermark["p95_ms"].as_f64().unwrap();
    assert!(waited > 5_000.0, "the watermark was not held: {latency}");
    assert_eq!(watermark["limit_ms"].as_f64(), Some(36_000.0));
    println!("pool run latency: trade-closed {by_trade}, watermark-closed {by_watermark}");
}

#[test]
fn a_pool_refuses_aliases_shared_by_two_scenarios_and_bad_names() {
    let scratch = common::ScratchDir::new("t2e-pool-suite");
    let dir = scratch.path();
    for name in ["a", "b"] {
        std::fs::copy(scenario(3), dir.join(format!("{name}.toml"))).unwrap();
    }
    let out = refstack::validator("run")
        .arg(dir)
        .args(["--pool", "SUITE"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("symbol alias \"P\" is used by"), "{err}");
    assert!(
        err.contains("every alias must belong to one scenario"),
        "{err}"
    );

    let out = refstack::validator("run")
        .arg(dir.join("a.toml"))
        .args(["--pool", "canary"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid pool name \"canary\""), "{err}");
}
