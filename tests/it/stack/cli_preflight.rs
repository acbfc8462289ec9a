//! `torghut-e2e preflight` against the local stack: exit codes and named failures.

use crate::common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn preflight(extra_env: &[(&str, &str)], args: &[&str]) -> (Output, Duration) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_torghut-e2e"));
    cmd.arg("preflight")
        .args(args)
        .env_remove("TORGHUT_E2E_CONFIG");
    for (k, v) in common::validator_env() {
        cmd.env(k, v);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = cmd.output().expect("run torghut-e2e");
    (out, started.elapsed())
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn passes_against_the_local_stack() {
    let (out, _) = preflight(&[], &[]);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for component in ["kafka", "clickhouse", "webdriver"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(component))
            .expect(component);
        assert!(line.contains(" ok "), "{line}");
    }
    assert!(text.contains("torghut_sim_default.ta_microbars"), "{text}");
    assert!(
        !text.contains("torghut-e2e-local"),
        "a password was printed: {text}"
    );
}

#[test]
fn stopped_clickhouse_fails_within_ten_seconds_and_is_named() {
    let (out, elapsed) = preflight(
        &[("TORGHUT_E2E_CLICKHOUSE_URL", "http://127.0.0.1:1")],
        &["--no-webdriver"],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    let line = text.lines().find(|l| l.starts_with("clickhouse")).unwrap();
    assert!(
        line.contains("FAIL") && line.contains("unreachable"),
        "{line}"
    );
    assert!(text.contains("FAILED: clickhouse"), "{text}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[test]
fn wrong_credentials_and_wrong_database_are_named() {
    let (out, _) = preflight(
        &[
            ("TORGHUT_E2E_KAFKA_PASSWORD", "wrong-kafka-pw"),
            ("TORGHUT_E2E_CLICKHOUSE_DATABASE", "default"),
        ],
        &["--no-webdriver"],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    let kafka = text.lines().find(|l| l.starts_with("kafka")).unwrap();
    assert!(kafka.contains("authentication failed"), "{kafka}");
    let ch = text.lines().find(|l| l.starts_with("clickhouse")).unwrap();
    assert!(
        ch.contains("table default.ta_microbars does not exist"),
        "{ch}"
    );
    assert!(!text.contains("wrong-kafka-pw"), "password printed: {text}");
}

#[test]
fn malformed_config_is_a_usage_error() {
    let dir = std::env::temp_dir().join(common::unique("t2e-cfg"));
    std::fs::write(&dir, "[kafka]\nbootstrap = 5\n").unwrap();
    let (out, _) = preflight(&[], &["--config", dir.to_str().unwrap()]);
    std::fs::remove_file(&dir).ok();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid config file"), "{err}");
}

#[test]
fn production_lane_is_refused_without_the_explicit_switch() {
    let (out, _) = preflight(&[("TORGHUT_E2E_LANE", "prod")], &["--no-webdriver"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("production lane"));
}
