//! The browser stage against the local stack (`scripts/stack up`): the shipped browser scenario
//! passes all six checklist steps end to end (on a lane of its own: compressed pacing), and each
//! step fails with a precise message when the stand-in Jangar is faulted (no candles, wrong
//! overlay count, stale lag, missing banner).
//!
//! The fault tests run the stage in-process on rows seeded into a scratch database, served by a
//! private stand-in Jangar started with its own fault switches (`common::seeded`); the shared
//! instance is never touched. One browser session per test.
//!
//! Here the end-to-end run and the helpers; `faults` (each step named by its fault), `waits` (a
//! slow page waited for, never judged on one look) and `page_shape` (pages unlike the stand-in's).

mod faults;
mod page_shape;
mod waits;

use std::path::Path;

use serde_json::Value;
use torghut_e2e::config::Config;
use torghut_e2e::domain::report::StageReport;
use torghut_e2e::domain::symbols::{self, RunId};

use crate::common;
use crate::common::refstack::{root, PrivateTa};
use crate::common::seeded::{self, PrivateJangar, SeededRun};

/// Runs the browser stage on `setup`'s rows as the runner would after the ClickHouse stage.
async fn stage(setup: &SeededRun, config: &Config) -> StageReport {
    let _browser = common::browser_slot();
    let scenario = seeded::shipped("browser.toml");
    torghut_e2e::stage::browser::run_stage(&setup.context(config, &scenario), None).await
}

fn check<'r>(report: &'r StageReport, name: &str) -> &'r torghut_e2e::domain::report::StageCheck {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}: {report:#?}"))
}

/// Asserts `failing` failed with `needle` in its detail and a finding at `hop`, and that
/// `passing` passed.
fn assert_step_fails(
    report: &StageReport,
    failing: &str,
    needle: &str,
    hop: &str,
    passing: &[&str],
) {
    let shown = serde_json::to_string_pretty(report).unwrap();
    let c = check(report, failing);
    println!("{failing}: {}", c.detail);
    assert!(!c.ok, "{failing} should fail:\n{shown}");
    assert!(
        c.detail.contains(needle),
        "{failing}: {:?} lacks {needle:?}",
        c.detail
    );
    assert!(
        c.evidence.iter().any(|e| e.ends_with("-failed.png")),
        "{failing} keeps a failure screenshot: {:?}",
        c.evidence
    );
    let number = failing.split('-').next().unwrap();
    assert!(
        report.findings.iter().any(|f| {
            serde_json::to_value(f.hop).unwrap() == hop
                && f.cause.contains(&format!("visuals step {number}"))
                && f.cause.contains(needle)
        }),
        "a finding at {hop} for {failing}:\n{shown}"
    );
    for p in passing {
        assert!(check(report, p).ok, "{p} should pass:\n{shown}");
    }
}

fn assert_png(path: &Path) -> (u32, u32) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap_or_else(|e| panic!("{} is not a PNG: {e}", path.display()));
    (reader.info().width, reader.info().height)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_scenario_passes_all_six_steps_end_to_end() {
    let run = RunId::generate();
    let symbol = symbols::synthetic(&run, "CHART");
    // Compressed pacing needs a lane of its own: a private TA job, and a private Jangar on its
    // database. Like a real Jangar it lists the universe only; the validator's proxy adds the
    // run's symbol.
    let ta = PrivateTa::start(&[]).await;
    ta.wait_until_reading().await;
    let jangar = PrivateJangar::start(&ta.database, &["NVDA"], &[], &[]).await;
    let artifacts = std::env::temp_dir().join(common::unique("t2e-browser-e2e"));
    let report_path = std::env::temp_dir().join(format!("{}.json", common::unique("t2e-report")));
    let mut cmd = ta.command("run", &root().join("scenarios/browser.toml"));
    cmd.args(["--run-id", run.as_str()])
        .arg("--report-json")
        .arg(&report_path)
        .env("TORGHUT_E2E_JANGAR_URL", &jangar.url)
        .env("TORGHUT_E2E_ARTIFACTS_DIR", &artifacts);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let shown = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    std::fs::remove_file(&report_path).ok();
    assert_eq!(out.status.code(), Some(0), "{shown}");
    let scenario = &report["scenarios"][0];
    let browser = scenario["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "browser")
        .unwrap_or_else(|| panic!("no browser stage:\n{shown}"));
    assert_eq!(browser["verdict"], "pass", "{shown}");
    let names: Vec<&str> = browser["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "1-open",
            "2-candles",
            "3-indicators",
            "4-lag",
            "5-empty",
            "6-error"
        ]
    );
    let observed = &browser["observed"];
    assert_eq!(observed["symbol"], symbol.as_str());
    assert_eq!(observed["symbol_source"], "synthetic");
    assert_eq!(observed["symbol_listed_by"], "the validator's proxy");
    let dir = artifacts.join(run.as_str()).join("browser");
    for c in browser["checks"].as_array().unwrap() {
        assert_eq!(c["ok"], true, "{c}");
        let evidence: Vec<&str> = c["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        let png = evidence.iter().find(|e| e.ends_with(".png")).unwrap();
        let (w, h) = assert_png(&dir.join(png));
        assert!(w >= 1000 && h >= 800, "{png}: {w}x{h}");
    }
    // 90 bars, and the closing trade's own bar if the watermark closed it meanwhile: the
    // oracle's rows, not only the API's, explain the page's counts.
    let candles = browser["checks"][1]["detail"].as_str().unwrap();
    let bars = check_candles(&browser["checks"][1]["detail"]);
    assert!((90..=91).contains(&bars), "{bars} candles drawn");
    assert!(
        candles.contains("they are the oracle's 90 bars"),
        "{candles}"
    );
    let indicators = browser["checks"][2]["detail"].as_str().unwrap();
    assert!(
        indicators.contains("the oracle's 90 signals give"),
        "{indicators}"
    );
    // Step 5 picked another symbol than the one charted (the page sends no request for the
    // symbol it already shows), though the symbol dropdown showed its placeholder at first.
    let empty = browser["checks"][4]["detail"].as_str().unwrap();
    assert!(empty.starts_with("NVDA answered empty"), "{empty}");
    let console: Value =
        serde_json::from_slice(&std::fs::read(dir.join("console.json")).unwrap()).unwrap();
    assert!(console.is_array());
    let log: Value =
        serde_json::from_slice(&std::fs::read(dir.join("proxy-log.json")).unwrap()).unwrap();
    let log = log.as_array().unwrap();
    assert!(log.iter().any(|c| c["fault"]["kind"] == "drop"));
    // The proxy's addition to the symbols answer is on record.
    let listed = log
        .iter()
        .find(|c| c["path"] == "/api/torghut/symbols")
        .unwrap_or_else(|| panic!("no symbols call in {log:?}"));
    assert_eq!(
        listed["added_symbols"],
        serde_json::json!([symbol]),
        "{listed}"
    );
    // The api stage's triangulated bar, followed into the page's answer.
    let tri = &observed["triangulation"];
    assert_eq!(tri["diverges_at"], Value::Null, "{tri}");
    assert_eq!(tri["page"]["answer"]["o"], tri["api"]["o"], "{tri}");
    let quirks: Vec<&str> = observed["quirks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q.as_str().unwrap())
        .collect();
    assert!(
        quirks.iter().any(|q| q.contains("ignores /ta/latest")),
        "{quirks:?}"
    );
    // The first-load placeholder (jangar.md §6.2) is a quirk with its evidence, not a failure.
    assert!(
        quirks
            .iter()
            .any(|q| q.contains("shows its placeholder \"Select symbol\"")
                && q.contains("\"Showing NVDA · Last 1h · 15s\"")),
        "{quirks:?}"
    );
    println!(
        "checklist_ms {} steps_ms {}",
        observed["checklist_ms"], observed["steps_ms"]
    );
    std::fs::remove_dir_all(&artifacts).ok();
}

/// The candle count in step 2's detail ("data-candle-count N = …").
fn check_candles(detail: &Value) -> u64 {
    let text = detail.as_str().unwrap();
    let after = text.split("data-candle-count ").nth(1).unwrap();
    after.split_whitespace().next().unwrap().parse().unwrap()
}
