//! Live-symbol mode: Jangar reads another database than the run wrote to.

use super::*;

/// A scratch database holding a live-looking symbol: bars and signals over the last minutes,
/// one row written twice (visible without FINAL), and a newest bar seconds ago.
pub(super) async fn live_database() -> common::ScratchDb {
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

pub(super) fn live_config(database: &str) -> String {
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
