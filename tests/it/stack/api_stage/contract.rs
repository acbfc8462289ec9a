//! The stage on a healthy Jangar: preflight, Jangar's number encodings, its time zone.

use super::*;

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
