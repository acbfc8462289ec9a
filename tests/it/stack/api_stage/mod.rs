//! The Jangar API stage against the local stack. The api scenario passes end to end (and its
//! response shapes match the reviewed snapshots), on a lane of its own: a private stand-in TA job
//! and a private stand-in Jangar on its database. Each fault of a private stand-in Jangar is named
//! by the stage, run in-process on seeded rows as the runner runs it after the ClickHouse stage
//! (`common::seeded`): the pipeline part of a run adds nothing to those. Full runs show what the
//! stage's verdicts do to the exit code and the reports; live-symbol mode compares the API with
//! ClickHouse read the way Jangar reads it.

mod contract;
mod faults;
mod live;
mod redaction;
use redaction::*;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use insta::internals::Content;
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use torghut_e2e::adapter::clickhouse::ClickHouse;
use torghut_e2e::domain::diagnose::{Hop, Severity};
use torghut_e2e::domain::report::StageReport;
use torghut_e2e::domain::report::Verdict;

use crate::common;
use crate::common::refstack::{root, PrivateTa};
use crate::common::seeded::{self, PrivateJangar, SeededRun};

/// A run's outcome: the process output, the JSON report and its artifacts directory.
struct Run {
    out: Output,
    report: Value,
    artifacts: PathBuf,
}

impl Run {
    fn text(&self) -> String {
        format!(
            "{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&self.out.stdout),
            String::from_utf8_lossy(&self.out.stderr)
        )
    }

    fn api_stage(&self) -> &Value {
        self.report["scenarios"][0]["stages"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["stage"] == "api"))
            .unwrap_or_else(|| panic!("no api stage:\n{}", self.text()))
    }

    /// The api stage's findings of `severity`, as (hop, cause).
    fn findings(&self, severity: &str) -> Vec<(String, String)> {
        self.api_stage()["findings"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|f| f["severity"] == severity)
            .map(|f| {
                (
                    f["hop"].as_str().unwrap_or_default().to_string(),
                    f["cause"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Exit 1, and a finding at the API hop whose cause contains every one of `parts`, with
    /// its runbook on the console.
    fn assert_fails_with(&self, parts: &[&str]) {
        assert_eq!(self.out.status.code(), Some(1), "{}", self.text());
        assert!(
            self.findings("failure")
                .iter()
                .any(|(hop, cause)| hop == "jangar_api" && parts.iter().all(|p| cause.contains(p))),
            "no jangar_api finding containing {parts:?}:\n{}",
            self.text()
        );
        assert!(self.text().contains("runbook:"), "{}", self.text());
    }

    fn evidence(&self, name: &str) -> Ordered {
        let scenario = self.report["scenarios"][0]["name"].as_str().unwrap();
        let run_id = self.report["run_id"].as_str().unwrap();
        let path = self
            .artifacts
            .join(run_id)
            .join(scenario)
            .join("api")
            .join(name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

/// `torghut-e2e run <scenario>` against the local stack and `jangar_url`, with `config` as the
/// config file, on `lane`'s topics and database when given (else the shared simulation lane),
/// and more `run` flags.
async fn run(
    lane: Option<&PrivateTa>,
    scenario: &Path,
    jangar_url: &str,
    config: &str,
    args: &[&std::ffi::OsStr],
) -> Run {
    let id = common::unique("t2e-api");
    let dir = std::env::temp_dir().join(&id);
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("config.toml");
    let kafka = lane
        .map(|ta| std::fs::read_to_string(ta.config_file()).unwrap())
        .unwrap_or_default();
    std::fs::write(&config_path, format!("{kafka}{config}")).unwrap();
    let report_path = dir.join("report.json");
    let artifacts = dir.join("artifacts");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_torghut-e2e"));
    cmd.arg("run")
        .arg(scenario)
        .arg("--config")
        .arg(&config_path)
        .arg("--report-json")
        .arg(&report_path)
        .env_remove("TORGHUT_E2E_CONFIG")
        .env_remove("TORGHUT_E2E_JANGAR_LIVE_SYMBOL")
        .env_remove("TORGHUT_E2E_JANGAR_CLICKHOUSE_DATABASE")
        .envs(common::validator_env())
        .env("TORGHUT_E2E_JANGAR_URL", jangar_url)
        .env("TORGHUT_E2E_ARTIFACTS_DIR", &artifacts)
        .args(args)
        .current_dir(root());
    if let Some(ta) = lane {
        cmd.env("TORGHUT_E2E_CLICKHOUSE_DATABASE", &ta.database);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run torghut-e2e"))
        .await
        .unwrap();
    let report = common::read_json(&report_path);
    Run {
        out,
        report,
        artifacts,
    }
}

/// Jangar's per-call bound where an endpoint is made to hang or lag, so that it costs a second;
/// one retry, so the history shows it.
const FAST: &str = "request_timeout_ms = 1000\nretries = 1\n";
/// Where every call gets an answer: room for a loaded machine (the default bound).
const PATIENT: &str = "request_timeout_ms = 10000\nretries = 1\n";

/// A config file's `[jangar]` table with `calls` and `more` lines.
fn jangar_table(calls: &str, more: &str) -> String {
    format!("[jangar]\n{calls}{more}")
}

/// Six seconds of trades, compressed: the ClickHouse stage then the API stage.
fn short_scenario() -> PathBuf {
    common::toml_file("t2e-api-scenario", SHORT)
}

const SHORT: &str = r#"name = "api-probe"
symbols = ["A"]
stages = ["clickhouse", "api"]
pacing = "compressed"
deadline_secs = 10
[[generators]]
kind = "ramp"
symbol = "A"
seconds = 6
per_second = 2
price = 50.0
step = 0.05
size = 3.0
"#;

/// A lane of its own (compressed pacing needs one): a private TA job, read from before the run
/// publishes, and a private Jangar with `flags` on its database.
async fn private_lane(flags: &[&str]) -> (PrivateTa, PrivateJangar) {
    let ta = PrivateTa::start(&[]).await;
    ta.wait_until_reading().await;
    let mut all = vec!["--allow-missing-echarts"];
    all.extend_from_slice(flags);
    let jangar = PrivateJangar::start(&ta.database, &["NVDA"], &all, &[]).await;
    (ta, jangar)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_scenario_passes_and_the_shapes_match_the_snapshots() {
    let (ta, jangar) = private_lane(&[]).await;
    let r = run(
        Some(&ta),
        &root().join("scenarios/api.toml"),
        &jangar.url,
        "",
        &[],
    )
    .await;
    assert_eq!(r.out.status.code(), Some(0), "{}", r.text());
    let stage = r.api_stage();
    assert_eq!(stage["verdict"], "pass", "{}", r.text());
    let checks = stage["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    // Positive evidence: the data checks ran on rows, and every contract rule was exercised.
    for name in [
        "bars rows API",
        "bars encoding API",
        "signals rows API",
        "signals encoding API",
        "latest API",
        "freshness",
        "triangulation",
        "contract content type",
        "contract bars: zone-less from/to → read as UTC",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    for message in [
        "symbol is required",
        "symbol must be uppercase letters, numbers, or . _ : -",
        "from is required",
        "from must be a valid timestamp",
        "to is required",
        "to must be a valid timestamp",
        "to must be after from",
        "range must be 7 days or less",
        "limit must be a number",
        "limit must be between 1 and 5000",
    ] {
        assert!(
            names.iter().any(|n| n.contains(&format!("`{message}`"))),
            "no check for {message:?}"
        );
    }
    let rows = checks
        .iter()
        .find(|c| c["name"] == "bars rows API")
        .unwrap();
    assert!(
        rows["detail"]
            .as_str()
            .unwrap()
            .starts_with("30/30 rows equal to ClickHouse"),
        "{rows}"
    );
    let observed = &stage["observed"];
    assert_eq!(observed["mode"], "synthetic");
    assert!(observed["triangulation"]["diverges_at"].is_null());
    assert!(observed["requests"].as_array().unwrap().len() > 30);

    // Response shapes, run-specific values redacted: contract drift shows as a snapshot diff.
    let mut settings = insta::Settings::clone_current();
    for selector in [
        ".symbol",
        ".items[].*",
        ".bars.*",
        ".signals.*",
        ".range.*.*",
    ] {
        settings.add_redaction(selector, insta::dynamic_redaction(shape));
    }
    settings.set_sort_maps(false);
    settings.bind(|| {
        let mut bars = r.evidence("bars-API.json");
        bars.keep_first_and_last_item();
        insta::assert_json_snapshot!("bars", bars);
        let mut signals = r.evidence("signals-API.json");
        signals.keep_first_and_last_item();
        insta::assert_json_snapshot!("signals", signals);
        insta::assert_json_snapshot!("latest", r.evidence("latest-API.json"));
        insta::assert_json_snapshot!("bars_limit_1", r.evidence("contract-bars-limit-1.json"));
        insta::assert_json_snapshot!(
            "bars_unknown_symbol",
            r.evidence("contract-bars-unknown-symbol.json")
        );
        insta::assert_json_snapshot!(
            "latest_unknown_symbol",
            r.evidence("contract-latest-unknown-symbol.json")
        );
        insta::assert_json_snapshot!(
            "bars_400_limit",
            r.evidence("contract-bars-limit-5001.json")
        );
    });
}

// --- preflight ---------------------------------------------------------------------------------

// --- faults of a private stand-in, the stage in-process ---------------------------------------

/// Six one-second bars of the run's symbol `A`, ending two seconds ago, as in ClickHouse after
/// the ClickHouse stage of the short scenario.
async fn seeded_run() -> SeededRun {
    SeededRun::new("A", 6, Duration::from_secs(2)).await
}

/// A private Jangar on `database` with fault `flags` (the page is not needed: no echarts).
async fn jangar(database: &str, flags: &[&str], ch_env: &[(&str, &str)]) -> PrivateJangar {
    let mut all = vec!["--allow-missing-echarts"];
    all.extend_from_slice(flags);
    PrivateJangar::start(database, &["NVDA"], &all, ch_env).await
}

/// The api stage on `setup`'s rows against `jangar_url`, with `calls` ([`FAST`] or
/// [`PATIENT`]) and `extra_jangar` lines in the `[jangar]` table.
async fn api_stage(
    setup: &SeededRun,
    jangar_url: &str,
    calls: &str,
    extra_jangar: &str,
) -> StageReport {
    let config = seeded::config(
        jangar_url,
        &setup.artifacts,
        &format!("{calls}{extra_jangar}"),
    );
    let scenario =
        torghut_e2e::domain::scenario::parse(SHORT, Path::new("api-probe.toml")).unwrap();
    torghut_e2e::stage::api::run_stage(&setup.context(&config, &scenario)).await
}

fn shown(report: &StageReport) -> String {
    serde_json::to_string_pretty(report).unwrap()
}

/// The stage's findings of `severity` at the API hop, as causes.
fn causes(report: &StageReport, severity: Severity) -> Vec<&str> {
    report
        .findings
        .iter()
        .filter(|f| f.hop == Hop::JangarApi && f.severity == severity)
        .map(|f| f.cause.as_str())
        .collect()
}

/// A failed stage with a finding at the API hop whose cause contains every one of `parts`, and
/// a runbook to follow.
fn assert_fails_with(report: &StageReport, parts: &[&str]) {
    assert_eq!(report.verdict, Verdict::Fail, "{}", shown(report));
    assert!(
        report.findings.iter().any(|f| f.hop == Hop::JangarApi
            && f.severity == Severity::Failure
            && !f.runbook.is_empty()
            && parts.iter().all(|p| f.cause.contains(p))),
        "no jangar_api finding containing {parts:?}:\n{}",
        shown(report)
    );
}

// --- live-symbol mode ----------------------------------------------------------------------------
