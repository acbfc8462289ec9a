//! A busy machine's page: every step waits for what the page draws late, within its bound.

use std::time::Duration;

use torghut_e2e::stage::browser::model::{PageModel, Window};
use torghut_e2e::stage::browser::run_with_model;

use super::{assert_step_fails, check, stage};
use crate::common;
use crate::common::seeded::{self, config, PrivateJangar, SeededRun};

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
