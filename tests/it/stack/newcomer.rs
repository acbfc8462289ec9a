//! The newcomer's path: after `scripts/stack up`, a bare `torghut-e2e preflight` and `run`
//! work with no config file and no credentials, and a log written to a pipe is plain text.
//!
//! The binary runs with an empty environment but `PATH` and `HOME`. The real newcomer's stack
//! is on the default ports, which the built-in defaults name; a test stack is on other ports
//! (CI-like runs hold the defaults), so these tests give the validator the ports, and nothing
//! else: no protocol, user or password. What they prove is the rule the defaults follow (no
//! credentials + a target on loopback = the local stack's), on whatever ports it listens.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn stack_var(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// The binary with nothing configured but where the stack listens.
fn bare(dir: &Path, args: &[&str]) -> Output {
    // The rule knows the stack's default password only: a stack started with another one is
    // reached through its settings (`eval "$(scripts/stack env)"`), not this path.
    for var in ["STACK_CH_PASSWORD", "STACK_CH_USER"] {
        let value = stack_var(var, "");
        assert!(
            value.is_empty() || value == "torghut-e2e-local" || value == "torghut",
            "{var} is not the stack's default: the newcomer path assumes a default stack"
        );
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_torghut-e2e"));
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env(
            "TORGHUT_E2E_KAFKA_BOOTSTRAP",
            format!("127.0.0.1:{}", stack_var("STACK_KAFKA_PORT", "9092")),
        )
        .env(
            "TORGHUT_E2E_CLICKHOUSE_URL",
            format!("http://127.0.0.1:{}", stack_var("STACK_CH_PORT", "8123")),
        );
    cmd.output().expect("run torghut-e2e")
}

/// A working directory of its own: a bare run writes its artifacts under `./artifacts`.
fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(common::unique("newcomer"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn bare_preflight_passes_against_the_local_stack() {
    let dir = scratch_dir();
    let out = bare(&dir, &["preflight"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let kafka = stdout.lines().find(|l| l.starts_with("kafka")).unwrap();
    assert!(
        kafka.contains(" ok ") && kafka.contains("PLAINTEXT (no authentication)"),
        "{kafka}"
    );
    let clickhouse = stdout
        .lines()
        .find(|l| l.starts_with("clickhouse"))
        .unwrap();
    assert!(
        clickhouse.contains(" ok ") && clickhouse.contains("torghut_sim_default.ta_microbars"),
        "{clickhouse}"
    );
    assert!(
        !stdout.contains("torghut-e2e-local") && !stderr.contains("torghut-e2e-local"),
        "the stack's password was printed"
    );
}

#[test]
fn bare_run_of_a_shipped_scenario_passes_and_its_piped_log_is_plain_text() {
    let dir = scratch_dir();
    // The shortest real-time shipped scenario (a few seconds of trades and quotes): what a bare
    // run proves does not depend on the scenario's length, and `smoke`'s real-time minute runs
    // in the concurrency tier.
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quotes.toml");
    let report = dir.join("report.json");
    let out = bare(
        &dir,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--report-json",
            report.to_str().unwrap(),
        ],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["verdict"], "pass");
    assert_eq!(
        report["target"]["clickhouse_database"],
        "torghut_sim_default"
    );
    let scenario = &report["scenarios"][0];
    assert_eq!(scenario["verdict"], "pass", "{scenario}");
    let matched = scenario["tables"]
        .as_object()
        .unwrap()
        .values()
        .map(|t| t["matched"].as_u64().unwrap())
        .min()
        .unwrap();
    assert!(matched > 0, "no row verified: {scenario}");
    // stderr is a pipe here: the log lines are there, without colour codes.
    assert!(stderr.contains("running"), "no log line: {stderr}");
    assert!(
        !out.stderr.contains(&0x1b) && !out.stdout.contains(&0x1b),
        "an ESC byte in piped output: {stderr:?}"
    );
}
