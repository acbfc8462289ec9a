//! The local ClickHouse engine is real, through the official crate over the HTTP interface:
//! full rows of both TA tables round-trip, ReplacingMergeTree collapses under FINAL, and server
//! errors keep their ClickHouse codes.

use crate::common;

use time::macros::datetime;
use time::OffsetDateTime;
use torghut_e2e::adapter::clickhouse::{
    ClickHouse, ClickHouseError, KeyTable, AUTHENTICATION_FAILED, UNKNOWN_TABLE,
};
use torghut_e2e::config::Secret;
use torghut_e2e::domain::model::{Columns, Microbar, Signal};

/// A scratch database with both TA tables cloned from the production schema.
/// A scratch database (dropped with the guard) and a client on it.
async fn scratch() -> (common::ScratchDb, ClickHouse) {
    let db = common::scratch_database("t2e_test").await;
    let ch = ClickHouse::new(&common::clickhouse(&db), common::TIMEOUT);
    (db, ch)
}

fn microbar(seq: u64, ingest: OffsetDateTime, c: f64) -> Microbar {
    Microbar {
        symbol: "ZZTEST".into(),
        event_ts: datetime!(2026-11-23 14:30:01.000 UTC),
        seq,
        ingest_ts: ingest,
        is_final: 1,
        source: "ta".into(),
        window_size: "PT1S".into(),
        window_step: Some("PT1S".into()),
        window_start: Some(datetime!(2026-11-23 14:30:00.000 UTC)),
        window_end: Some(datetime!(2026-11-23 14:30:01.000 UTC)),
        version: 1,
        o: 100.0,
        h: 101.0,
        l: 99.0,
        c,
        v: 60.0,
        vwap: Some(99.833_333_333_333_33),
        count: 3,
    }
}

fn signal() -> Signal {
    Signal {
        symbol: "ZZTEST".into(),
        event_ts: datetime!(2026-11-23 14:30:01.000 UTC),
        seq: u64::MAX - 1,
        ingest_ts: datetime!(2026-11-23 14:30:03.123 UTC),
        is_final: 1,
        source: "ta".into(),
        window_size: "PT1S".into(),
        window_step: None,
        window_start: None,
        window_end: Some(datetime!(2026-11-23 14:30:01.000 UTC)),
        version: 1,
        macd: Some(0.079_772_079_8),
        macd_signal: Some(0.015_954_416),
        macd_hist: Some(-0.063_817_663_8),
        ema12: Some(99.153_846_153_8),
        ema26: Some(99.074_074_074_1),
        rsi14: None,
        boll_mid: Some(1e-300),
        boll_upper: Some(f64::MAX),
        boll_lower: Some(-0.0),
        vwap_session: Some(99.142_857_142_9),
        vwap_w5m: None,
        imbalance_spread: Some(0.02),
        imbalance_bid_px: Some(99.99),
        imbalance_ask_px: Some(100.01),
        imbalance_bid_sz: Some(300),
        imbalance_ask_sz: Some(u64::MAX),
        vol_realized_w60s: Some(0.0),
        microstructure_signal_v1: None,
    }
}

/// One row in each table, one INSERT each.
async fn insert_one(ch: &ClickHouse, bar: &Microbar, sig: &Signal) {
    let mut insert = ch
        .client()
        .insert::<Microbar>("ta_microbars")
        .await
        .unwrap();
    insert.write(bar).await.unwrap();
    insert.end().await.unwrap();
    let mut insert = ch.client().insert::<Signal>("ta_signals").await.unwrap();
    insert.write(sig).await.unwrap();
    insert.end().await.unwrap();
}

#[tokio::test]
async fn full_microbar_and_signal_rows_round_trip() {
    let (_db, ch) = scratch().await;
    let bar = microbar(1, datetime!(2026-11-23 14:30:02.456 UTC), 99.0);
    let sig = signal();
    insert_one(&ch, &bar, &sig).await;

    let bars = ch
        .bounded(
            ch.client()
                .query("SELECT ?fields FROM ta_microbars")
                .fetch_all::<Microbar>(),
        )
        .await
        .unwrap();
    assert_eq!(bars, vec![bar]);
    let sigs = ch
        .bounded(
            ch.client()
                .query("SELECT ?fields FROM ta_signals")
                .fetch_all::<Signal>(),
        )
        .await
        .unwrap();
    assert_eq!(sigs.len(), 1);
    // -0.0 == 0.0 in PartialEq; check the bits so nothing was re-rounded on the way.
    assert_eq!(
        sigs[0].boll_lower.map(f64::to_bits),
        sig.boll_lower.map(f64::to_bits)
    );
    assert_eq!(sigs[0], sig);
}

/// The key poll: the keys of both tables in one query, and the server's clock as it started and
/// as it executed, in that order within the round trip (the local engine shares this machine's
/// clock).
#[tokio::test]
async fn a_key_poll_returns_the_keys_and_the_servers_clock_around_them_within_its_round_trip() {
    let (_db, ch) = scratch().await;
    let symbols = vec!["ZZTEST".to_string()];
    let after = datetime!(2026-11-23 14:30:00.000 UTC);
    let sent = OffsetDateTime::now_utc();
    let empty = ch.row_keys(&symbols, after, None).await.unwrap();
    let answered = OffsetDateTime::now_utc();
    assert!(empty.keys.is_empty(), "{empty:?}");
    let start = empty
        .server_start
        .expect("the server's clock, even without rows");
    // now64(3) is whole milliseconds: allow one below the send time.
    assert!(
        start >= sent - time::Duration::milliseconds(1) && start <= answered,
        "{sent} <= {start} <= {answered}"
    );
    // The engine here (ClickHouse 26) has nowInBlock64; it is read to the millisecond and
    // rounded up.
    let executing = empty
        .server_executing
        .expect("the server's clock as it executed");
    assert!(
        executing > start && executing <= answered + time::Duration::milliseconds(1),
        "{start} < {executing} <= {answered}"
    );

    let bar = microbar(1, datetime!(2026-11-23 14:30:02.456 UTC), 99.0);
    insert_one(&ch, &bar, &signal()).await;
    let seen = ch.row_keys(&symbols, after, None).await.unwrap();
    // UNION ALL has no order (the real engine answers in either).
    let mut tables: Vec<KeyTable> = seen.keys.iter().map(|(t, _)| *t).collect();
    tables.sort();
    assert_eq!(tables, [KeyTable::Microbars, KeyTable::Signals], "{seen:?}");
    assert!(seen.server_start.is_some_and(|s| s >= start));
    assert!(seen.server_executing.is_some_and(|e| e > executing));
}

#[tokio::test]
async fn the_part_log_times_the_commit_of_the_part_a_row_was_first_seen_in() {
    let (_db, ch) = scratch().await;
    let symbols = vec!["ZZTEST".to_string()];
    let after = datetime!(2026-11-23 14:30:00.000 UTC);
    let since = OffsetDateTime::now_utc();
    let missed = ch.row_keys(&symbols, after, None).await.unwrap();
    let first = microbar(1, datetime!(2026-11-23 14:30:02.000 UTC), 99.0);
    insert_one(&ch, &first, &signal()).await;
    let seen = ch.row_keys(&symbols, after, None).await.unwrap();
    assert!(
        seen.server.is_some() && seen.server == missed.server,
        "{seen:?}"
    );
    let key = (KeyTable::Microbars, first.key());
    let part = seen
        .parts
        .get(&key)
        .expect("the one part that holds the row");
    let asked = [(KeyTable::Microbars, part.clone())];
    let commits = ch.part_commits(&asked, since).await.unwrap();
    // The local engine lets the run flush its log, and logs on the clock its polls read.
    assert_eq!(commits.flush_refused, None);
    assert_eq!(commits.server, seen.server);
    let logged = &commits.committed[&asked[0]];
    let (before, by) = (missed.server_start.unwrap(), seen.server_executing.unwrap());
    assert!(
        logged.len() == 1 && before <= logged[0] && logged[0] <= by,
        "{before} <= {logged:?} <= {by}"
    );

    // Merged with a later insert before a poll saw it: the merged part resolves to both
    // inserts' commits, and no others.
    let second = microbar(2, datetime!(2026-11-23 14:30:03.000 UTC), 99.5);
    insert_one(&ch, &second, &signal()).await;
    ch.bounded(
        ch.client()
            .query("OPTIMIZE TABLE ta_microbars FINAL")
            .execute(),
    )
    .await
    .unwrap();
    let merged = ch.row_keys(&symbols, after, None).await.unwrap();
    let merged_part = &merged.parts[&(KeyTable::Microbars, second.key())];
    assert_eq!(merged.parts[&key], *merged_part, "{merged:?}");
    assert_ne!(merged_part, part);
    let asked = [(KeyTable::Microbars, merged_part.clone())];
    let commits = ch.part_commits(&asked, since).await.unwrap();
    let mut inserts = commits.committed[&asked[0]].clone();
    inserts.sort();
    assert!(
        inserts.len() == 2
            && inserts[0] == logged[0]
            && inserts[1] <= merged.server_executing.unwrap(),
        "{inserts:?}"
    );
}

#[tokio::test]
async fn final_keeps_the_row_with_the_highest_ingest_ts() {
    let (_db, ch) = scratch().await;
    let older = microbar(7, datetime!(2026-11-23 14:30:02.000 UTC), 98.0);
    let newer = microbar(7, datetime!(2026-11-23 14:30:05.000 UTC), 99.5);
    // Newer first, in separate inserts (separate parts), so insertion order cannot decide.
    for row in [&newer, &older] {
        let mut insert = ch
            .client()
            .insert::<Microbar>("ta_microbars")
            .await
            .unwrap();
        insert.write(row).await.unwrap();
        insert.end().await.unwrap();
    }
    let all = ch
        .bounded(
            ch.client()
                .query("SELECT count() FROM ta_microbars")
                .fetch_one::<u64>(),
        )
        .await
        .unwrap();
    assert_eq!(all, 2, "both parts are visible before a merge");
    let collapsed = ch
        .bounded(
            ch.client()
                .query("SELECT ?fields FROM ta_microbars FINAL WHERE symbol = ?")
                .bind("ZZTEST")
                .fetch_all::<Microbar>(),
        )
        .await
        .unwrap();
    assert_eq!(collapsed, vec![newer.clone()]);
    // What a reader without FINAL sees twice: one row beyond its key, on that symbol alone.
    let symbols = ["ZZTEST".to_string(), "ZZOTHER".to_string()];
    let unmerged = ch
        .unmerged_duplicates("ta_microbars", &symbols, datetime!(2026-11-23 14:30:00 UTC))
        .await
        .unwrap();
    assert_eq!(unmerged, [("ZZTEST".to_string(), 1)]);
    // The key poll sees the same: the key once, with one copy beyond it.
    let keys = ch
        .row_keys(&symbols, datetime!(2026-11-23 14:30:00 UTC), None)
        .await
        .unwrap();
    let bar = (KeyTable::Microbars, newer.key());
    assert_eq!(
        keys.keys.iter().filter(|k| **k == bar).count(),
        1,
        "{keys:?}"
    );
    assert_eq!(keys.copies.into_iter().collect::<Vec<_>>(), [(bar, 1)]);
}

#[tokio::test]
async fn missing_table_surfaces_unknown_table() {
    let (_db, ch) = scratch().await;
    let err = ch
        .bounded(
            ch.client()
                .query("SELECT count() FROM ta_nope")
                .fetch_one::<u64>(),
        )
        .await
        .expect_err("no such table");
    assert_eq!(err.server_code(), Some(UNKNOWN_TABLE), "{err}");
    assert!(err.to_string().contains("UNKNOWN_TABLE"), "{err}");
}

#[tokio::test]
async fn wrong_password_is_authentication_failed() {
    let mut target = common::clickhouse("torghut");
    target.password = Secret::new("definitely-wrong");
    let ch = ClickHouse::new(&target, common::TIMEOUT);
    let err = ch.version().await.expect_err("bad password");
    assert_eq!(err.server_code(), Some(AUTHENTICATION_FAILED), "{err}");
    assert!(
        matches!(err, ClickHouseError::Authentication { .. }),
        "{err}"
    );
    assert!(
        !err.to_string().contains("definitely-wrong"),
        "password leaked: {err}"
    );
}

#[tokio::test]
async fn production_schema_is_installed_in_both_lanes() {
    for db in ["torghut", "torghut_sim_default"] {
        let ch = ClickHouse::new(&common::clickhouse(db), common::TIMEOUT);
        let problems = ch.check_schema().await.unwrap();
        assert!(problems.is_empty(), "{db}: {problems:?}");
    }
    let ch = ClickHouse::new(&common::clickhouse("nonexistent_db"), common::TIMEOUT);
    let problems = ch.check_schema().await.unwrap();
    assert_eq!(problems.len(), 1);
    assert!(problems[0]
        .to_string()
        .contains("database nonexistent_db does not exist"));
}
