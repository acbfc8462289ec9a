//! `torghut-e2e run` end to end against the reference stack: every shipped scenario passes on the
//! stack's stand-in TA job (`shipped`), runs on a private stand-in pass as the deployment it
//! mirrors would (here), each of its fault switches makes the run fail with the right hop and
//! cause (`faults`), and bad input is refused before anything is published (`input`).

use crate::common;
use crate::common::refstack;
use crate::common::shown;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use refstack::{root, PrivateTa};
use serde_json::Value;
use torghut_e2e::adapter::clickhouse::ClickHouse;
use torghut_e2e::adapter::kafka;
use torghut_e2e::domain::model::Microbar;

/// Runs the validator; returns its output and the parsed JSON report.
fn validator(args: &[&str], extra_env: &[(String, String)]) -> (Output, Value) {
    let report = std::env::temp_dir().join(format!("{}.json", common::unique("t2e-report")));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_torghut-e2e"));
    cmd.arg("run").args(args).arg("--report-json").arg(&report);
    cmd.env_remove("TORGHUT_E2E_CONFIG").current_dir(root());
    for (k, v) in common::validator_env()
        .into_iter()
        .chain(extra_env.iter().cloned())
    {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run torghut-e2e");
    let json = common::take_json(&report);
    (out, json)
}

/// Runs a scenario through a private instance's topics, consumer group and database, once the
/// instance reads them (a run published before its readers are assigned is read in one go,
/// late by the job's start-up).
async fn validate(ta: &PrivateTa, close: &str) -> (Output, Value) {
    ta.wait_until_reading().await;
    validate_now(ta, close).await
}

/// [`validate`] without waiting: for an instance that never reads (stalled, crashed).
async fn validate_now(ta: &PrivateTa, close: &str) -> (Output, Value) {
    let config_arg = ta.config_file().display().to_string();
    let env = vec![(
        "TORGHUT_E2E_CLICKHOUSE_DATABASE".to_string(),
        ta.database.clone(),
    )];
    let path = scenario_file(close);
    tokio::task::spawn_blocking(move || {
        validator(&[path.to_str().unwrap(), "--config", &config_arg], &env)
    })
    .await
    .unwrap()
}

/// A short scenario for fault runs: six seconds of trades, compressed, short deadline.
fn scenario_file(close: &str) -> PathBuf {
    common::toml_file(
        "t2e-fault",
        format!(
            r#"name = "fault-probe"
symbols = ["F"]
pacing = "{pacing}"
close = "{close}"
deadline_secs = 8
max_latency_ms = 2500
[[generators]]
kind = "ramp"
symbol = "F"
seconds = 6
per_second = 2
price = 50.0
step = 0.05
size = 3.0
"#,
            pacing = if close == "watermark" {
                "realtime"
            } else {
                "compressed"
            }
        ),
    )
}

/// Asserts a failed run (exit 1) whose findings name `hop` and contain `cause`.
fn assert_fails(result: &(Output, Value), hop: &str, cause: &str) {
    let (out, report) = result;
    let shown = shown(out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    let findings = report["scenarios"][0]["findings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        findings
            .iter()
            .any(|f| f["hop"] == hop && f["cause"].as_str().unwrap_or("").contains(cause)),
        "expected a finding at {hop} containing {cause:?}:\n{shown}"
    );
    assert!(shown.contains("runbook:"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_private_instance_passes() {
    let ta = PrivateTa::start(&[]).await;
    let (out, report) = validate(&ta, "trade").await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert_eq!(
        report["scenarios"][0]["tables"]["ta_microbars"]["matched"],
        6
    );
    // A lane to itself: nothing to warn about.
    assert_eq!(report["scenarios"][0]["findings"], serde_json::json!([]));
}

/// A deployment that keeps the job's code-default quote window (2 s, `pipeline.md` §4.3): the
/// validator told so predicts the imbalance columns it writes, NULL where the quote is older
/// than 2 s at the bar's end; one left at production's 15 s fails on exactly those rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quote_window_is_the_deployments() {
    let job = refstack::Job {
        quote_stale_after_ms: 2_000,
        ..refstack::Job::default()
    };
    let ta = PrivateTa::with_job(&[], job).await;
    ta.wait_until_reading().await;
    // A quote at 0.1 s, then bars ending at 1, 2, 3 and 4 s: 0.9 to 3.9 s after it.
    let path = common::toml_file(
        "t2e-quote",
        r#"name = "quote-window"
symbols = ["Q"]
pacing = "realtime"
deadline_secs = 10
[[quotes]]
symbol = "Q"
at_ms = 100
bid = 40.0
bid_size = 100.0
ask = 40.02
ask_size = 200.0
[[generators]]
kind = "ramp"
symbol = "Q"
start_ms = 500
seconds = 4
per_second = 1
price = 40.01
step = 0.01
size = 5.0
"#,
    );
    let run = |told: Option<&str>| {
        let mut env = vec![(
            "TORGHUT_E2E_CLICKHOUSE_DATABASE".to_string(),
            ta.database.clone(),
        )];
        if let Some(ms) = told {
            env.push(("TORGHUT_E2E_TA_QUOTE_STALE_AFTER_MS".into(), ms.into()));
        }
        let (path, config) = (path.clone(), ta.config_file());
        tokio::task::spawn_blocking(move || {
            validator(
                &[path.to_str().unwrap(), "--config", config.to_str().unwrap()],
                &env,
            )
        })
    };
    let (told, untold) = tokio::join!(run(None), run(Some("15000")));
    let (out, report) = told.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let symbol = report["scenarios"][0]["symbols"]["Q"]
        .as_str()
        .unwrap()
        .to_string();
    let ch = ClickHouse::new(&common::clickhouse(&ta.database), common::TIMEOUT);
    let attached: Vec<bool> = ch
        .bounded(
            ch.client()
                .query(
                    "SELECT imbalance_bid_px IS NOT NULL FROM ta_signals FINAL \
                     WHERE symbol = ? ORDER BY event_ts",
                )
                .bind(&symbol)
                .fetch_all::<bool>(),
        )
        .await
        .unwrap();
    assert_eq!(attached, [true, true, false, false], "{symbol}");
    let (out, report) = untold.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    let signals = &report["scenarios"][0]["tables"]["ta_signals"];
    // The two rows whose quote was 2.9 and 3.9 s old, and only their imbalance columns.
    let mismatches = signals["mismatches"].as_array().unwrap();
    assert_eq!(mismatches.len(), 2, "{signals:#}");
    let columns: Vec<&str> = mismatches
        .iter()
        .flat_map(|m| m["columns"].as_array().unwrap())
        .map(|c| c["column"].as_str().unwrap())
        .collect();
    assert!(
        columns.iter().all(|c| c.starts_with("imbalance_")),
        "{signals:#}"
    );
}

/// Another writer's bars in the lane's table a moment ago (a historical simulation
/// replaying into the simulation lane, say): the compressed run still passes, and warns that
/// its pacing needs the lane to itself, naming the writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_run_on_a_lane_with_another_writer_passes_and_warns() {
    let ta = PrivateTa::start(&[]).await;
    let (mut bars, _) = common::seeded::rows("SIMREPLAY", 3, Duration::from_secs(5));
    let now = time::OffsetDateTime::now_utc();
    for b in &mut bars {
        b.ingest_ts = now;
    }
    let ch = ClickHouse::new(&common::clickhouse(&ta.database), common::TIMEOUT);
    let mut insert = ch
        .client()
        .insert::<Microbar>("ta_microbars")
        .await
        .unwrap();
    for b in &bars {
        insert.write(b).await.unwrap();
    }
    insert.end().await.unwrap();

    let (out, report) = validate(&ta, "trade").await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let findings = &report["scenarios"][0]["findings"];
    let warned = findings.as_array().unwrap().iter().any(|f| {
        f["hop"] == "preflight"
            && f["severity"] == "warning"
            && f["cause"]
                .as_str()
                .is_some_and(|c| c.contains(&format!("SIMREPLAY ({} bars)", bars.len())))
    });
    assert!(warned, "{findings:#}\n{}", shown(&out));
}

mod faults;
mod input;
mod shipped;
