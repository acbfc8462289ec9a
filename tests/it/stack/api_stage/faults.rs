//! Jangar's faults, each named at its hop: a wrong database, a missing password, failing,
//! hanging and dropping endpoints, a slow API, duplicates visible through the API.

use super::*;

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
pub(super) async fn endpoint_faults(bars: &str, signals: &str, latest: &str) {
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
