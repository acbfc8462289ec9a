//! The browser stage against the local stack (`scripts/stack up`): the shipped browser scenario
//! passes all six checklist steps end to end (on a lane of its own: compressed pacing), and each
//! step fails with a precise message when the stand-in Jangar is faulted (no candles, wrong
//! overlay count, stale lag, missing banner).
//!
//! The fault tests run the stage in-process on rows seeded into a scratch database, served by a
//! private stand-in Jangar started with its own fault switches (`common::seeded`); the shared
//! instance is never touched. One browser session per test.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use torghut_e2e::config::Config;
use torghut_e2e::domain::report::StageReport;
use torghut_e2e::domain::symbols::{self, RunId};
use torghut_e2e::stage::browser::model::{PageModel, Window};
use torghut_e2e::stage::browser::run_with_model;

use crate::common;
use crate::common::refstack::{root, PrivateTa};
use crate::common::seeded::{self, config, rows, PrivateJangar, Scratch, SeededRun};

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

/// A busy machine's browser: the route's content comes 3 s after the shell is marked hydrated
/// (a lazily loaded route), it takes in each data answer 4 s after the proxy passed it (past a
/// click's 2 s bound), and the page imports ECharts on first use, as the real page does
/// (`jangar.md` §6.4), here 6 s late. Every step waits for the page and passes. A page that
/// never draws a chart is named at step 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_page_is_waited_for_at_every_step_and_one_that_never_draws_is_named() {
    let setup = SeededRun::new("CHART", 30, Duration::from_secs(2)).await;
    let late = PrivateJangar::start(
        setup.primary.name(),
        &["AMD"],
        &[
            "--echarts-delay-ms",
            "6000",
            "--render-delay-ms",
            "4000",
            "--route-delay-ms",
            "3000",
        ],
        &[],
    )
    .await;
    let report = stage(&setup, &config(&late.url, &setup.artifacts, "")).await;
    assert_eq!(report.checks.len(), 6, "{report:#?}");
    for step in &report.checks {
        assert!(step.ok, "{step:?}");
    }
    drop(late);
    let without = common::ScratchDir::new("t2e-no-echarts");
    let never = PrivateJangar::start(
        setup.primary.name(),
        &["AMD"],
        &[
            "--allow-missing-echarts",
            "--web-dir",
            without.path().to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let report = stage(&setup, &config(&never.url, &setup.artifacts, "")).await;
    assert_step_fails(
        &report,
        "2-candles",
        "ECharts drew nothing",
        "charts_page",
        &["1-open"],
    );
}

/// A page that already shows step 2's window (the page's own default, `jangar.md` §3.3) for the
/// run's symbol, its first load slow to be taken in: step 2 has nothing to choose and clicks
/// Refresh, which stays disabled until that load ends. A click before then is dropped by the
/// browser, and step 2 would wait in vain for the load it meant to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_is_clicked_once_the_load_in_flight_has_ended() {
    let setup = SeededRun::new("CHART", 30, Duration::from_secs(2)).await;
    // Listed after the run's symbol (A to Z), so that the page charts the run's symbol first.
    let slow = PrivateJangar::start(
        setup.primary.name(),
        &["ZZZZ"],
        &["--render-delay-ms", "3000"],
        &[],
    )
    .await;
    let mut model = PageModel::builtin();
    model.window = Window {
        range_value: "1h".into(),
        range_label: "Last 1h".into(),
        resolution_value: "15s".into(),
        resolution_label: "15s".into(),
        limit: 240,
    };
    let config = config(&slow.url, &setup.artifacts, "");
    let scenario = seeded::shipped("browser.toml");
    let report = {
        let _browser = common::browser_slot();
        run_with_model(&setup.context(&config, &scenario), None, model).await
    };
    let shown = serde_json::to_string_pretty(&report).unwrap();
    assert_eq!(report.checks.len(), 6, "{shown}");
    for step in &report.checks {
        assert!(step.ok, "{step:?}");
    }
    assert!(
        check(&report, "1-open")
            .detail
            .contains(&format!("charts {}", setup.symbol)),
        "the page charted the run's symbol first, so step 2 refreshed:\n{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_candles_when_the_bars_call_fails() {
    let setup = SeededRun::new("CHART", 60, Duration::from_secs(2)).await;
    let jangar = PrivateJangar::start(
        setup.primary.name(),
        &["AMD"],
        &["--fault", "bars=500"],
        &[],
    )
    .await;
    let report = stage(&setup, &config(&jangar.url, &setup.artifacts, "")).await;
    assert_step_fails(
        &report,
        "2-candles",
        "no candles: GET /api/torghut/ta/bars",
        "jangar_api",
        &["1-open", "3-indicators", "4-lag", "5-empty", "6-error"],
    );
    let detail = &check(&report, "2-candles").detail;
    assert!(
        detail.contains("answered 500") && detail.contains("Bars request failed (500)"),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_overlay_count_when_jangar_reads_a_lagging_replica() {
    let setup = SeededRun::new("CHART", 60, Duration::from_secs(2)).await;
    // The replica has every bar but only the older half of the signals.
    let replica = Scratch::create().await;
    replica
        .insert(&setup.bars, &setup.signals[..setup.signals.len() / 2])
        .await;
    let jangar = PrivateJangar::start(replica.name(), &["AMD"], &[], &[]).await;
    let report = stage(&setup, &config(&jangar.url, &setup.artifacts, "")).await;
    assert_step_fails(
        &report,
        "3-indicators",
        "wrong overlay count",
        "jangar_api",
        &["1-open", "2-candles", "4-lag", "5-empty", "6-error"],
    );
    let detail = &check(&report, "3-indicators").detail;
    let n = setup.signals.len();
    let lacking = format!("the {n} signals ClickHouse holds for {} give", setup.symbol);
    assert!(detail.contains(&lacking), "{detail}");
    assert!(
        detail.contains(&format!("lacks {} of them", n - n / 2)),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_lag_fails_step_four() {
    // The newest row is ten minutes old: inside the 15-minute window, far over 180 s.
    let setup = SeededRun::new("CHART", 60, Duration::from_secs(600)).await;
    let jangar = PrivateJangar::start(setup.primary.name(), &["AMD"], &[], &[]).await;
    let report = stage(&setup, &config(&jangar.url, &setup.artifacts, "")).await;
    assert_step_fails(
        &report,
        "4-lag",
        "stale lag: the pill shows 10m",
        "ta_job",
        &["1-open", "2-candles", "3-indicators", "5-empty", "6-error"],
    );
    assert!(check(&report, "4-lag").detail.contains("(bad)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_banner_when_latest_never_answers() {
    // /ta/latest hangs: the page waits for all three calls, so no banner ever shows.
    let setup = SeededRun::new("CHART", 60, Duration::from_secs(2)).await;
    // Two symbols (the proxy adds the run's): step 5 switches to the other one, which aborts
    // the hung load.
    let jangar = PrivateJangar::start(
        setup.primary.name(),
        &["AMD"],
        &["--fault", "latest=hang"],
        &[],
    )
    .await;
    let report = stage(
        &setup,
        &config(&jangar.url, &setup.artifacts, "request_timeout_ms = 1500"),
    )
    .await;
    assert_step_fails(
        &report,
        "6-error",
        "missing banner \"Bars request failed (500). Signals request failed (500)\"",
        "jangar_api",
        &["1-open", "5-empty"],
    );
    assert!(check(&report, "6-error")
        .detail
        .contains("/api/torghut/ta/latest"));
    // Step 2's load never finishes (the page waits for all three calls): step 2 fails naming
    // the hung call, and step 3 has nothing to check. (Step 2 gives up after
    // request_timeout_ms = 1.5 s, long before the proxy's own 30 s bound on the hung call.)
    let candles = check(&report, "2-candles");
    let indicators = check(&report, "3-indicators");
    assert!(
        !candles.ok
            && candles.detail.contains("never finished loading")
            && candles.detail.contains("/api/torghut/ta/latest"),
        "2: {}",
        candles.detail
    );
    assert!(
        indicators.detail.starts_with("not run"),
        "3: {}",
        indicators.detail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_page_and_an_unlisted_symbol_are_named() {
    let setup = SeededRun::new("CHART", 30, Duration::from_secs(2)).await;
    let jangar = PrivateJangar::start(
        setup.primary.name(),
        &["AMD"],
        &["--visuals-enabled", "off"],
        &[],
    )
    .await;
    let report = stage(&setup, &config(&jangar.url, &setup.artifacts, "")).await;
    let open = check(&report, "1-open");
    assert!(
        !open.ok && open.detail.contains("the charts are disabled"),
        "{open:?}"
    );
    assert!(check(&report, "2-candles").detail.starts_with("not run"));

    // A Jangar reading another database than the run's (production's `torghut`) has none of the
    // run's rows: the proxy adds nothing, and a live symbol it does not list is named.
    let setup = SeededRun::new("CHART", 30, Duration::from_secs(2)).await;
    let jangar = PrivateJangar::start(setup.primary.name(), &["AMD", "NVDA"], &[], &[]).await;
    let report = stage(
        &setup,
        &config(&jangar.url, &setup.artifacts, "live_symbol = \"MSFT\""),
    )
    .await;
    let candles = check(&report, "2-candles");
    assert!(
        !candles.ok
            && candles.detail.contains("lists neither the run's symbols")
            && candles.detail.contains("nor the live symbol MSFT"),
        "{candles:?}"
    );
    let added = report.observed["symbols_added_by_proxy"].as_str().unwrap();
    assert!(added.starts_with("none: Jangar reads torghut"), "{added}");
    assert!(check(&report, "5-empty").ok && check(&report, "6-error").ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_symbol_is_observed_where_the_run_symbol_is_not_listed() {
    // Rows of a universe symbol in a private scratch database stand for production's live data.
    let setup = SeededRun::new("CHART", 60, Duration::from_secs(2)).await;
    let (bars, signals) = rows("NVDA", 60, Duration::from_secs(2));
    setup.primary.insert(&bars, &signals).await;
    let jangar = PrivateJangar::start(setup.primary.name(), &["AMD", "NVDA"], &[], &[]).await;
    let config = config(&jangar.url, &setup.artifacts, "live_symbol = \"NVDA\"");
    let report = stage(&setup, &config).await;
    let shown = serde_json::to_string_pretty(&report).unwrap();
    assert_eq!(
        report.verdict,
        torghut_e2e::domain::report::Verdict::Pass,
        "{shown}"
    );
    assert_eq!(report.observed["symbol"], "NVDA");
    assert_eq!(report.observed["symbol_source"], "live");
    assert!(
        check(&report, "2-candles")
            .detail
            .contains("data-candle-count 60"),
        "{shown}"
    );
}

/// A page with two Selects whose lists hold an option with the same label, one list closed but
/// still in the DOM (as Base UI leaves it, jangar.md §6.3): the stage must pick the option of the
/// list its trigger opened, by aria-controls or else as the only visible list.
const TWO_LISTS: &str = r#"<!doctype html><html><body>
<h1 id="log"></h1>
<button id="a" role="combobox">A</button>
<button id="b" role="combobox">B</button>
<button id="c" role="combobox">C</button>
<button id="none" role="combobox">none</button>
<div hidden id="pa"><div role="listbox" id="la"><div role="option"><div>X</div></div></div></div>
<div hidden id="pb"><div role="listbox" id="lb"><div role="option"><div>X</div></div></div></div>
<div hidden id="pc"><div role="listbox" id="lc"><div role="option"><div>X</div></div></div></div>
<script>
  // The options clicked, in order, as the page's heading (which the snapshot reads).
  for (const k of ['a', 'b', 'c']) {
    document.querySelector('#l' + k + ' [role=option]').addEventListener('click', () => {
      document.getElementById('log').textContent += k
      document.getElementById('p' + k).hidden = true
      document.getElementById(k).removeAttribute('aria-controls')
    })
  }
  document.getElementById('b').addEventListener('click', () => {
    document.getElementById('pb').hidden = false
    document.getElementById('b').setAttribute('aria-controls', 'lb')
  })
  // C opens its list without naming it.
  document.getElementById('c').addEventListener('click', () => {
    document.getElementById('pc').hidden = false
  })
</script></body></html>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_come_only_from_the_open_list() {
    use torghut_e2e::stage::browser::{model::PageModel, session::Session, BrowserError};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(|| async { axum::response::Html(TWO_LISTS) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let model = PageModel::builtin();
    let _browser = common::browser_slot();
    let session = Session::open(
        Some(&common::webdriver_url()),
        &model,
        Duration::from_secs(10),
    )
    .await
    .expect("a chromedriver session (scripts/stack up starts chromedriver)");
    let outcome = async {
        session.goto(&format!("http://{addr}/")).await?;
        let wait = Duration::from_secs(2);
        // List A is closed (hidden) but its "X" comes first in the DOM.
        session.choose("#b", "X", wait).await?;
        session.choose("#c", "X", wait).await?;
        let missing = session
            .choose("#none", "X", Duration::from_millis(300))
            .await;
        let clicked = session.snapshot().await?.heading;
        Ok::<_, BrowserError>((clicked, missing))
    }
    .await;
    session.close().await;
    let (clicked, missing) = outcome.expect("browser commands");
    // B's option through aria-controls, C's as the only visible list; never A's.
    assert_eq!(clicked.as_deref(), Some("bc"));
    let err = missing.expect_err("no list opened: nothing to pick");
    assert!(
        err.to_string()
            .contains("the #none dropdown opened no list"),
        "{err}"
    );
}

/// Jangar on ClickHouse ≥ 25.8 sends UInt64 as JSON numbers (jangar.md §6.7): the page draws the
/// same counts, so the checklist passes (the api stage reports the drift as a warning).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_survives_uint64_as_numbers() {
    let setup = SeededRun::new("CHART", 30, Duration::from_secs(2)).await;
    let jangar = PrivateJangar::start(
        setup.primary.name(),
        &["AMD"],
        &["--int64", "unquoted"],
        &[],
    )
    .await;
    let report = stage(&setup, &config(&jangar.url, &setup.artifacts, "")).await;
    let shown = serde_json::to_string_pretty(&report).unwrap();
    assert_eq!(
        report.verdict,
        torghut_e2e::domain::report::Verdict::Pass,
        "{shown}"
    );
    // The rows really came as numbers.
    let bars: Value =
        serde_json::from_slice(&std::fs::read(setup.artifacts.join("02-bars.json")).unwrap())
            .unwrap();
    assert!(
        bars["body"]["items"][0]["seq"].is_u64(),
        "{}",
        bars["body"]["items"][0]
    );
    assert!(
        check(&report, "2-candles")
            .detail
            .contains("they are the oracle's 30 bars"),
        "{shown}"
    );
}
