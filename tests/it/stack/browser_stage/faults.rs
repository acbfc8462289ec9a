//! Each checklist step named by the fault of the stand-in Jangar (or of the data it reads) that
//! breaks it, the other steps still passing.

use std::time::Duration;

use super::{assert_step_fails, check, stage};
use crate::common::seeded::{config, rows, PrivateJangar, Scratch, SeededRun};

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
