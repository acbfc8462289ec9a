//! The Jangar API stage against the local stack. The api scenario passes end to end (and its
//! response shapes match the reviewed snapshots), on a lane of its own: a private stand-in TA job
//! and a private stand-in Jangar on its database. Each fault of a private stand-in Jangar is named
//! by the stage, run in-process on seeded rows as the runner runs it after the ClickHouse stage
//! (`common::seeded`): the pipeline part of a run adds nothing to those. Full runs show what the
//! stage's verdicts do to the exit code and the reports; live-symbol mode compares the API with
//! ClickHouse read the way Jangar reads it.

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
    let report = std::fs::read(&report_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
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
    let path = std::env::temp_dir().join(format!("{}.toml", common::unique("t2e-api-scenario")));
    std::fs::write(&path, SHORT).unwrap();
    path
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

/// A value's contract form instead of the value: run-specific data never enters a snapshot,
/// while its encoding (quoted UInt64, zone-less timestamps, nulls) does.
fn shape(value: Content, _: insta::internals::ContentPath<'_>) -> Content {
    if value.is_nil() || value.as_bool().is_some() {
        return value;
    }
    let Some(s) = value.as_str() else {
        return Content::from("[number]");
    };
    let label = if zoneless(s, b' ') {
        "[datetime64(3) \"YYYY-MM-DD HH:MM:SS.mmm\"]".to_string()
    } else if zoneless(s, b'T') {
        "[range \"YYYY-MM-DDTHH:MM:SS.mmm\"]".to_string()
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        "[UInt64 as string]".to_string()
    } else if s.starts_with("ZZT2E-") {
        "[synthetic symbol]".to_string()
    } else {
        s.to_string()
    };
    Content::from(label)
}

/// `YYYY-MM-DD?HH:MM:SS.mmm` with `sep` at `?` and no zone.
fn zoneless(s: &str, sep: u8) -> bool {
    let b = s.as_bytes();
    b.len() == 23
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == sep,
            13 | 16 => *c == b':',
            19 => *c == b'.',
            _ => c.is_ascii_digit(),
        })
}

// --- preflight ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_jangar_fails_preflight_before_anything_is_published() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = run(
        None,
        &short_scenario(),
        &format!("http://127.0.0.1:{port}"),
        &jangar_table(FAST, ""),
        &[],
    )
    .await;
    assert_eq!(r.out.status.code(), Some(3), "{}", r.text());
    let jangar = r.report["preflight"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["component"] == "jangar")
        .cloned()
        .unwrap_or_else(|| panic!("no jangar preflight line:\n{}", r.text()));
    assert_eq!(jangar["ok"], false, "{jangar}");
    assert!(
        jangar["detail"].as_str().unwrap().contains("/health"),
        "{jangar}"
    );
    assert!(r.report["scenarios"].as_array().unwrap().is_empty());
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ch_database_is_named() {
    let setup = seeded_run().await;
    let j = jangar(
        setup.primary.name(),
        &["--fault-ch-database", "default"],
        &[],
    )
    .await;
    let report = api_stage(&setup, &j.url, PATIENT, "").await;
    assert_fails_with(
        &report,
        &["CH_DATABASE", "UNKNOWN_TABLE", "/api/torghut/ta/bars"],
    );
    // Retries are bounded and recorded: one retry per 500.
    let requests = report.observed["requests"].as_array().unwrap();
    let first = &requests[0];
    assert_eq!(first["attempts"].as_array().unwrap().len(), 2, "{first}");
    assert!(first["attempts"][0]["outcome"]
        .as_str()
        .unwrap()
        .starts_with("500 ClickHouse request failed (404)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jangar_reading_another_database_shows_empty_where_clickhouse_has_rows() {
    let setup = seeded_run().await;
    let j = jangar("torghut", &[], &[]).await;
    let report = api_stage(&setup, &j.url, PATIENT, "").await;
    let db = setup.primary.name();
    assert_fails_with(
        &report,
        &[
            &format!("returns no rows where {db} holds them"),
            &format!("CH_DATABASE is not {db}"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_clickhouse_password_is_a_503_named() {
    let setup = seeded_run().await;
    let j = jangar(setup.primary.name(), &[], &[("CH_PASSWORD", "")]).await;
    let report = api_stage(&setup, &j.url, PATIENT, "").await;
    assert_fails_with(
        &report,
        &["settings are incomplete", "CH_PASSWORD is not configured"],
    );
}

/// Each endpoint in each failure mode, four runs (a Latin square): every finding names the
/// endpoint and the cause.
async fn endpoint_faults(bars: &str, signals: &str, latest: &str) {
    let flags = [
        format!("bars={bars}"),
        format!("signals={signals}"),
        format!("latest={latest}"),
    ];
    let args: Vec<&str> = flags.iter().flat_map(|f| ["--fault", f.as_str()]).collect();
    let setup = seeded_run().await;
    let j = jangar(setup.primary.name(), &args, &[]).await;
    let report = api_stage(&setup, &j.url, FAST, "").await;
    for (mode, path) in [
        (bars, "/api/torghut/ta/bars"),
        (signals, "/api/torghut/ta/signals"),
        (latest, "/api/torghut/ta/latest"),
    ] {
        let cause = match mode {
            "500" => "ClickHouse query failed",
            "503" => "CH_HOST is not configured",
            "hang" => "too slow or hung",
            "drop" => "dropped the connection",
            other => panic!("unknown mode {other}"),
        };
        assert_fails_with(&report, &[cause, path]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_faults_500_503_hang() {
    endpoint_faults("500", "503", "hang").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_faults_503_hang_drop() {
    endpoint_faults("503", "hang", "drop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_faults_hang_drop_500() {
    endpoint_faults("hang", "drop", "500").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_faults_drop_500_503() {
    endpoint_faults("drop", "500", "503").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_api_over_the_timeout_fails() {
    let setup = seeded_run().await;
    let delays = [
        "--delay-ms",
        "bars=1500",
        "--delay-ms",
        "signals=1500",
        "--delay-ms",
        "latest=1500",
    ];
    let j = jangar(setup.primary.name(), &delays, &[]).await;
    let report = api_stage(&setup, &j.url, FAST, "").await;
    assert_fails_with(&report, &["too slow or hung", "no answer within 1000 ms"]);
}

/// ClickHouse ≥ 25.8 sends UInt64 as JSON numbers (jangar.md §6.7): drift the page survives, so a
/// warning in every report, not a failed run; the values are still compared. With
/// `strict_contract` it fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unquoted_uint64_is_a_warning_unless_strict() {
    // Full runs: the warning must reach the exit code and every report, and strictness fail it.
    let (ta, j) = private_lane(&["--int64", "unquoted"]).await;
    let dir = std::env::temp_dir().join(common::unique("t2e-u64"));
    std::fs::create_dir_all(&dir).unwrap();
    let (junit, html, metrics) = (
        dir.join("junit.xml"),
        dir.join("report.html"),
        dir.join("metrics.prom"),
    );
    let flags = [
        "--junit".as_ref(),
        junit.as_os_str(),
        "--html".as_ref(),
        html.as_os_str(),
        "--metrics".as_ref(),
        metrics.as_os_str(),
    ];
    let r = run(
        Some(&ta),
        &short_scenario(),
        &j.url,
        &jangar_table(PATIENT, ""),
        &flags,
    )
    .await;
    assert_eq!(r.out.status.code(), Some(0), "{}", r.text());
    assert_eq!(r.api_stage()["verdict"], "pass", "{}", r.text());
    let warnings = r.findings("warning");
    assert!(
        warnings.iter().any(|(hop, cause)| hop == "jangar_api"
            && cause.contains("UInt64 columns (count, seq)")
            && cause.contains("JSON numbers")),
        "{warnings:?}\n{}",
        r.text()
    );
    assert!(r.findings("failure").is_empty(), "{}", r.text());
    // The values were decoded and compared; the encoding check passes and says so.
    let checks = r.api_stage()["checks"].as_array().unwrap();
    let rows = checks.iter().find(|c| c["name"] == "bars rows A").unwrap();
    assert_eq!(rows["ok"], true, "{rows}");
    let encoding = checks
        .iter()
        .find(|c| c["name"] == "bars encoding A")
        .unwrap();
    assert_eq!(encoding["ok"], true, "{encoding}");
    assert!(
        encoding["detail"]
            .as_str()
            .unwrap()
            .contains("JSON numbers"),
        "{encoding}"
    );
    // Visible in every report: console, JUnit, HTML and metrics.
    assert!(
        r.text().contains("WARNING at ClickHouse → Jangar API"),
        "{}",
        r.text()
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<testcase name=\"warning jangar_api\""),
        "{xml}"
    );
    assert!(!xml.contains("<failure"), "{xml}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<h3>Warnings</h3>"),
        "the HTML report lists the warning"
    );
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        prom.contains("torghut_e2e_warnings{scenario=\"api-probe\",hop=\"jangar_api\"}"),
        "{prom}"
    );
    assert!(prom.contains("torghut_e2e_run_success 1"), "{prom}");
    std::fs::remove_dir_all(&dir).ok();

    let strict = jangar_table(PATIENT, "strict_contract = true\n");
    let r = run(Some(&ta), &short_scenario(), &j.url, &strict, &[]).await;
    r.assert_fails_with(&["UInt64 columns (count, seq)", "jangar.strict_contract"]);
}

/// A Jangar whose process is not in UTC reads zone-less from/to as local time (jangar.md §6.8):
/// a warning with the measured offset; the page is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jangar_not_in_utc_is_reported_with_its_offset() {
    let setup = seeded_run().await;
    let j = jangar(
        setup.primary.name(),
        &["--time-zone", "America/New_York"],
        &[],
    )
    .await;
    let report = api_stage(&setup, &j.url, PATIENT, "").await;
    assert_eq!(report.verdict, Verdict::Pass, "{}", shown(&report));
    let offset = report.observed["server_utc_offset_min"]
        .as_i64()
        .unwrap_or_else(|| panic!("no measured offset:\n{}", shown(&report)));
    // Eastern time: −5 h in winter, −4 h in summer.
    assert!([-300, -240].contains(&offset), "{offset}");
    let zone = format!("UTC−0{}:00", -offset / 60);
    let warnings = causes(&report, Severity::Warning);
    assert!(
        warnings
            .iter()
            .any(|cause| cause.contains(&format!("process time zone is {zone}"))),
        "{warnings:?}"
    );
    let check = report
        .checks
        .iter()
        .find(|c| c.name == "contract bars: zone-less from/to → read as UTC")
        .unwrap();
    assert!(check.ok, "{check:?}");
    assert!(check.detail.contains(&zone), "{check:?}");

    // The shared stand-in runs in UTC, like Jangar's container.
    let j = jangar(setup.primary.name(), &[], &[]).await;
    let report = api_stage(&setup, &j.url, PATIENT, "").await;
    assert_eq!(
        report.observed["server_utc_offset_min"],
        0,
        "{}",
        shown(&report)
    );
    assert!(
        causes(&report, Severity::Warning).is_empty(),
        "{}",
        shown(&report)
    );
}

/// Rows written twice (merges stopped so the copies stay apart), and a Jangar reading them
/// without FINAL: the copies show through the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_visible_through_the_api_are_named() {
    let setup = seeded_run().await;
    for table in ["ta_microbars", "ta_signals"] {
        let sql = format!("SYSTEM STOP MERGES {}.{table}", setup.primary.name());
        setup.primary.execute(&sql).await;
    }
    setup.primary.insert(&setup.bars, &setup.signals).await;
    let j = jangar(setup.primary.name(), &[], &[]).await;
    let report = api_stage(&setup, &j.url, PATIENT, "").await;
    assert_fails_with(
        &report,
        &[
            "/api/torghut/ta/bars shows",
            "duplicate rows",
            "without FINAL",
        ],
    );
}

// --- live-symbol mode ----------------------------------------------------------------------------

/// A scratch database holding a live-looking symbol: bars and signals over the last minutes,
/// one row written twice (visible without FINAL), and a newest bar seconds ago.
async fn live_database() -> common::ScratchDb {
    let db = common::scratch_database("t2e_live").await;
    let ch = ClickHouse::new(&common::clickhouse("torghut"), common::TIMEOUT);
    let bars =
        "SELECT 'NVDA', toStartOfSecond(now64(3, 'UTC')) - toIntervalSecond(150 - number) AS t, \
         number + 1, t + toIntervalMillisecond(400 + {extra}), 1, 'ta', 'PT1S', 'PT1S', \
         t - toIntervalSecond(1), t, 1, 100 + number / 100, 100.5 + number / 100, \
         99.5 + number / 100, 100.25 + number / 100, 10 + number, 100.125 + number / 100, \
         3 + number % 5 FROM numbers({range})";
    let signals =
        "SELECT 'NVDA', toStartOfSecond(now64(3, 'UTC')) - toIntervalSecond(150 - number) AS t, \
         number + 1, t + toIntervalMillisecond(500 + {extra}), 1, 'ta', 'PT1S', 'PT1S', \
         t - toIntervalSecond(1), t, 1, 100 + number / 100, if(number < 14, NULL, 55.5), \
         toUInt64(300 + number) FROM numbers({range})";
    let mut statements = vec![
        // The duplicate must stay visible without FINAL for the whole test.
        format!("SYSTEM STOP MERGES {db}.ta_microbars"),
        format!("SYSTEM STOP MERGES {db}.ta_signals"),
    ];
    // 80 bars ending 70 s ago (inside the stage's window), the duplicate, the newest.
    for (extra, range) in [("0", "80"), ("1", "10, 1"), ("0", "148, 1")] {
        let fill = |sql: &str| sql.replace("{extra}", extra).replace("{range}", range);
        statements.push(format!("INSERT INTO {db}.ta_microbars {}", fill(bars)));
        statements.push(format!(
            "INSERT INTO {db}.ta_signals (symbol, event_ts, seq, ingest_ts, is_final, source, \
             window_size, window_step, window_start, window_end, version, ema12, rsi14, \
             imbalance_bid_sz) {}",
            fill(signals)
        ));
    }
    for sql in statements {
        ch.bounded(ch.client().query(&sql).execute())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    db
}

fn live_config(database: &str) -> String {
    format!("live_symbol = \"NVDA\"\nclickhouse_database = {database:?}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_symbol_mode_passes_against_clickhouse_read_like_jangar() {
    let db = live_database().await;
    let setup = seeded_run().await;
    let j = jangar(&db, &[], &[]).await;
    let report = api_stage(&setup, &j.url, PATIENT, &live_config(&db)).await;
    assert_eq!(report.verdict, Verdict::Pass, "{}", shown(&report));
    assert_eq!(report.observed["mode"], "live_symbol");
    let rows = report
        .checks
        .iter()
        .find(|c| c.name == "bars rows live")
        .unwrap();
    // 80 bars plus the copy a merge has not collapsed, on both sides.
    assert!(
        rows.detail
            .starts_with("API 81 rows, ClickHouse (no FINAL) 81 rows"),
        "{rows:?}"
    );
    assert!(report
        .checks
        .iter()
        .any(|c| c.name == "latest live" && c.ok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_symbol_mode_names_a_jangar_reading_another_database() {
    let db = live_database().await;
    let setup = seeded_run().await;
    let j = jangar(setup.primary.name(), &[], &[]).await;
    let report = api_stage(&setup, &j.url, PATIENT, &live_config(&db)).await;
    assert_fails_with(
        &report,
        &[&format!("returns no rows where {db} holds them")],
    );
}

// --- an order-preserving JSON value for the snapshots -------------------------------------------

/// JSON with object keys in the order received (serde_json's `Value` sorts them, and the order
/// of `SELECT *` columns is part of what the snapshots pin).
#[derive(Debug, Clone)]
enum Ordered {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Ordered>),
    Object(Vec<(String, Ordered)>),
}

impl Ordered {
    /// Keeps the first and the last item of `items`: the warm-up nulls and the warm values.
    fn keep_first_and_last_item(&mut self) {
        if let Ordered::Object(entries) = self {
            for (k, v) in entries.iter_mut() {
                if let (true, Ordered::Array(items)) = (k == "items", v) {
                    if items.len() > 2 {
                        let last = items.pop();
                        items.truncate(1);
                        items.extend(last);
                    }
                }
            }
        }
    }
}

impl Serialize for Ordered {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Ordered::Null => s.serialize_unit(),
            Ordered::Bool(b) => s.serialize_bool(*b),
            Ordered::Number(n) => n.serialize(s),
            Ordered::String(t) => s.serialize_str(t),
            Ordered::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Ordered::Object(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Ordered, E> {
                Ok(Ordered::Bool(b))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Ordered, E> {
                Ok(Ordered::Number(n.into()))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Ordered, E> {
                Ok(Ordered::Number(n.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, x: f64) -> Result<Ordered, E> {
                serde_json::Number::from_f64(x)
                    .map(Ordered::Number)
                    .ok_or_else(|| E::custom("non-finite number"))
            }
            fn visit_str<E>(self, t: &str) -> Result<Ordered, E> {
                Ok(Ordered::String(t.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
                let mut items = Vec::new();
                while let Some(i) = seq.next_element()? {
                    items.push(i);
                }
                Ok(Ordered::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry()? {
                    entries.push((k, v));
                }
                Ok(Ordered::Object(entries))
            }
        }
        d.deserialize_any(V)
    }
}
