//! Unit tests of the API stage's rules: decoding and encoding checks, the envelope, row
//! comparison and its causes, failure classification, the contract cases, and the client's
//! bounded retries with their history.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use time::macros::datetime;

use super::contract;
use super::decode;
use super::envelope::Envelope;
use super::findings::{Failure, Findings};
use super::latest::freshness;
use super::rows;
use super::Recorder;
use crate::adapter::jangar::{Answer, ApiError, CallResult, Endpoint, JangarClient};
use crate::domain::diagnose::Hop;
use crate::domain::model::Microbar;
use crate::domain::scenario::Tolerance;

fn bar(seq: u64, c: f64) -> Microbar {
    let t = datetime!(2026-03-05 19:59:59 UTC) + time::Duration::seconds(seq as i64);
    Microbar {
        symbol: "ZZT2E-T-A".into(),
        event_ts: t,
        seq,
        ingest_ts: t + time::Duration::milliseconds(412),
        is_final: 1,
        source: "ta".into(),
        window_size: "PT1S".into(),
        window_step: Some("PT1S".into()),
        window_start: Some(t - time::Duration::seconds(1)),
        window_end: Some(t),
        version: 1,
        o: 118.42,
        h: 118.45,
        l: 118.4,
        c,
        v: 1250.0,
        vwap: Some(118.431),
        count: 37,
    }
}

/// The contract's example row (§1.4).
fn item() -> Value {
    json!({
        "symbol": "ZZT2E-T-A", "event_ts": "2026-03-05 20:00:00.000", "seq": "1",
        "ingest_ts": "2026-03-05 20:00:00.412", "is_final": 1, "source": "ta",
        "window_size": "PT1S", "window_step": "PT1S",
        "window_start": "2026-03-05 19:59:59.000", "window_end": "2026-03-05 20:00:00.000",
        "version": 1, "o": 118.42, "h": 118.45, "l": 118.4, "c": 118.44, "v": 1250,
        "vwap": 118.431, "count": "37"
    })
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

// --- decoding ----------------------------------------------------------------------------------

#[test]
fn contract_encoding_decodes_to_the_table_row() {
    let d = decode::microbar(&item());
    assert!(d.encoding.is_clean(), "{:?}", d.encoding);
    assert_eq!(d.row, Some(bar(1, 118.44)));
}

#[test]
fn unquoted_uint64_is_decoded_and_reported() {
    let d = decode::microbar(&with(item(), "seq", json!(1)));
    assert_eq!(d.row.map(|b| b.seq), Some(1));
    assert!(d.encoding.unquoted_u64.contains("seq"));
    assert!(!d.encoding.is_clean());
    assert!(d.encoding.describe().contains("UInt64 columns seq"));
}

#[test]
fn timestamps_must_be_zoneless_utc() {
    for bad in [
        "2026-03-05T20:00:00.000Z",
        "2026-03-05 20:00:00",
        "1772740800000",
    ] {
        let d = decode::microbar(&with(item(), "event_ts", json!(bad)));
        assert!(d.row.is_none(), "{bad}");
        assert!(
            d.encoding
                .problems
                .iter()
                .any(|p| p.contains("event_ts") && p.contains("zone-less")),
            "{bad}: {:?}",
            d.encoding
        );
    }
    assert_eq!(
        decode::parse_zoneless("2026-03-05 19:59:58.123"),
        Some(datetime!(2026-03-05 19:59:58.123 UTC))
    );
    assert_eq!(
        decode::range_form(datetime!(2026-03-05 19:59:58.123 UTC)),
        "2026-03-05T19:59:58.123"
    );
}

#[test]
fn missing_columns_break_the_contract_extra_ones_do_not() {
    let mut v = item();
    v.as_object_mut().unwrap().remove("vwap");
    v["added_later"] = json!(1);
    let d = decode::microbar(&v);
    assert!(d.encoding.missing_columns.contains("vwap"));
    assert!(d.encoding.extra_columns.contains("added_later"));
    assert!(!d.encoding.is_clean());
    let mut only_extra = item();
    only_extra["added_later"] = json!(1);
    assert!(decode::microbar(&only_extra).encoding.is_clean());
}

#[test]
fn null_is_allowed_only_in_nullable_columns() {
    let d = decode::microbar(&with(item(), "vwap", Value::Null));
    assert!(d.encoding.is_clean());
    assert_eq!(d.row.unwrap().vwap, None);
    let d = decode::microbar(&with(item(), "o", Value::Null));
    assert!(d.row.is_none());
    assert!(d.encoding.problems.iter().any(|p| p.contains("o is null")));
}

#[test]
fn numbers_as_strings_and_strings_as_numbers_are_problems() {
    let d = decode::microbar(&with(item(), "o", json!("118.42")));
    assert!(d.encoding.problems.iter().any(|p| p.starts_with("o ")));
    let d = decode::microbar(&with(item(), "is_final", json!("1")));
    assert!(d
        .encoding
        .problems
        .iter()
        .any(|p| p.starts_with("is_final")));
    let d = decode::microbar(&with(item(), "count", json!("-3")));
    assert!(d.encoding.problems.iter().any(|p| p.starts_with("count")));
}

#[test]
fn signal_items_decode_nullable_uint64_as_strings() {
    let mut v = item();
    for k in ["o", "h", "l", "c", "v", "vwap", "count"] {
        v.as_object_mut().unwrap().remove(k);
    }
    for k in crate::domain::model::SIGNAL_COLUMNS.iter().skip(11) {
        v[*k] = Value::Null;
    }
    v["ema12"] = json!(118.417);
    v["imbalance_bid_sz"] = json!("300");
    let d = decode::signal(&v);
    assert!(d.encoding.is_clean(), "{:?}", d.encoding);
    let s = d.row.unwrap();
    assert_eq!(
        (s.ema12, s.imbalance_bid_sz, s.rsi14),
        (Some(118.417), Some(300), None)
    );
}

// --- the envelope ------------------------------------------------------------------------------

fn envelope(fallback: bool, effective_from: &str) -> Value {
    json!({
        "ok": true, "symbol": "S", "items": [],
        "range": {
            "requested": {"from": "2026-03-05T19:59:58.123", "to": "2026-03-05T20:59:58.123"},
            "effective": {"from": effective_from, "to": "2026-03-05T20:59:58.123"},
            "fallback": fallback
        }
    })
}

#[test]
fn envelope_echoes_the_zoneless_range() {
    let (from, to) = ("2026-03-05T19:59:58.123", "2026-03-05T20:59:58.123");
    let v = envelope(false, from);
    let e = Envelope::read(&v, "S", from, to);
    assert!(e.problems.is_empty(), "{:?}", e.problems);
    assert_eq!(e.fallback, Some(false));
    let e = Envelope::read(&v, "S", "2026-03-05T19:59:58.123Z", to);
    assert!(
        e.problems[0].contains("range.requested"),
        "{:?}",
        e.problems
    );
    let e = Envelope::read(&v, "OTHER", from, to);
    assert!(e.problems[0].contains("symbol"), "{:?}", e.problems);
}

#[test]
fn effective_must_equal_requested_unless_fallback() {
    let (from, to) = ("2026-03-05T19:59:58.123", "2026-03-05T20:59:58.123");
    let v = envelope(false, "2026-03-04T19:59:58.123");
    assert_eq!(Envelope::read(&v, "S", from, to).problems.len(), 1);
    let v = envelope(true, "2026-03-04T19:59:58.123");
    let e = Envelope::read(&v, "S", from, to);
    assert!(e.problems.is_empty());
    assert_eq!(e.fallback, Some(true));
    assert_eq!(e.effective.unwrap().0, "2026-03-04T19:59:58.123");
    let mut v = envelope(false, from);
    v["range"]["fallback"] = json!("false");
    assert!(Envelope::read(&v, "S", from, to).problems[0].contains("not a boolean"));
}

// --- rows against ClickHouse and the oracle ----------------------------------------------------

fn judge(
    api: &[Microbar],
    stored: &[Microbar],
    oracle: &[Microbar],
) -> (rows::Judged, Vec<String>) {
    let ignore = |c: &str| c == "ingest_ts";
    let tol = |_: &str| Tolerance::default();
    let oracle = rows::Oracle {
        rows: oracle,
        ignore: &ignore,
        tolerance: &tol,
    };
    let j = rows::judge(api, stored, Some(oracle));
    let mut f = Findings::default();
    j.findings(Endpoint::Bars, "ZZT2E-T-A", "db", &mut f);
    let causes = f
        .into_vec("http://j")
        .into_iter()
        .map(|f| f.cause)
        .collect();
    (j, causes)
}

#[test]
fn equal_rows_pass() {
    let rows = vec![bar(1, 1.0), bar(2, 2.0)];
    let (j, causes) = judge(&rows, &rows, &rows);
    assert!(j.ok(), "{}", j.detail());
    assert!(causes.is_empty());
    assert!(j.detail().starts_with("2/2 rows equal to ClickHouse"));
}

#[test]
fn empty_api_while_clickhouse_has_rows_is_the_wrong_database() {
    let rows = vec![bar(1, 1.0)];
    let (j, causes) = judge(&[], &rows, &rows);
    assert!(!j.ok());
    assert_eq!(causes.len(), 1);
    assert!(
        causes[0].contains("returns no rows where db holds them"),
        "{causes:?}"
    );
}

#[test]
fn different_values_are_serialization() {
    let rows = vec![bar(1, 1.0), bar(2, 2.0)];
    let api = vec![bar(1, 1.0), bar(2, 2.000_000_1)];
    let (j, causes) = judge(&api, &rows, &rows);
    assert!(!j.ok());
    assert!(
        causes[0].contains("differ from ClickHouse's in c"),
        "{causes:?}"
    );
    assert!(causes[0].contains("serialization"));
}

#[test]
fn duplicates_are_visible_without_final() {
    let rows = vec![bar(1, 1.0), bar(2, 2.0)];
    let mut copy = bar(2, 2.0);
    copy.ingest_ts -= time::Duration::milliseconds(1);
    let api = vec![bar(1, 1.0), copy, bar(2, 2.0)];
    let (j, causes) = judge(&api, &rows, &rows);
    assert!(!j.ok());
    assert_eq!(j.duplicates, 1);
    // The newest copy is kept, as ReplacingMergeTree keeps it: no false value difference.
    assert!(j.vs_clickhouse.mismatches.is_empty());
    assert!(causes
        .iter()
        .any(|c| c.contains("1 duplicate rows") && c.contains("FINAL")));
}

#[test]
fn missing_and_extra_rows_point_at_the_query() {
    let rows = vec![bar(1, 1.0), bar(2, 2.0)];
    let (j, causes) = judge(&[bar(1, 1.0), bar(3, 3.0)], &rows, &rows);
    assert!(!j.ok());
    assert!(
        causes[0].contains("returned 1 of the 2 rows db holds"),
        "{causes:?}"
    );
}

#[test]
fn storage_divergence_fails_the_check_without_blaming_the_api() {
    let stored = vec![bar(1, 1.5)];
    let oracle = vec![bar(1, 1.0)];
    let (j, causes) = judge(&stored, &stored, &oracle);
    assert!(!j.ok());
    assert!(causes.is_empty());
    assert!(j.detail().contains("the storage layer"), "{}", j.detail());
}

#[test]
fn no_stored_rows_means_nothing_to_observe() {
    let (j, causes) = judge(&[], &[], &[bar(1, 1.0)]);
    assert!(!j.ok());
    assert!(causes.is_empty());
    assert!(j.detail().contains("nothing to observe"));
}

#[test]
fn order_must_be_ascending() {
    assert_eq!(rows::first_out_of_order(&[bar(1, 1.0), bar(2, 1.0)]), None);
    assert_eq!(
        rows::first_out_of_order(&[bar(1, 1.0), bar(3, 1.0), bar(2, 1.0)]),
        Some(2)
    );
}

#[test]
fn live_comparison_is_a_multiset_without_final() {
    let mut copy = bar(2, 2.0);
    copy.ingest_ts += time::Duration::milliseconds(1);
    let ch = vec![bar(1, 1.0), bar(2, 2.0), copy.clone()];
    assert!(rows::multiset(&[bar(1, 1.0), copy.clone(), bar(2, 2.0)], &ch).is_clean());
    // A merge between the reads: one copy fewer on one side.
    let d = rows::multiset(&[bar(1, 1.0), bar(2, 2.0)], &ch);
    assert_eq!(d.count_differs.len(), 1);
    let d = rows::multiset(&[bar(1, 1.0), bar(2, 2.5), copy], &ch);
    assert_eq!(d.columns, vec!["c".to_string()]);
    let d = rows::multiset(&[bar(9, 1.0)], &ch);
    assert_eq!((d.only_api.len(), d.only_clickhouse.len()), (1, 2));
}

// --- failure classification ----------------------------------------------------------------------

fn answer(status: u16, message: &str) -> CallResult {
    let body = json!({"ok": false, "message": message, "error": message});
    Ok(Answer {
        status,
        content_type: Some("application/json".into()),
        cache_headers: vec![],
        body: body.to_string(),
        json: Some(body),
    })
}

#[test]
fn failures_are_classified_by_status_and_message() {
    let unknown_table = "ClickHouse request failed (404): Code: 60. DB::Exception: Unknown table \
                         expression identifier 'ta_microbars'. (UNKNOWN_TABLE) (version 25.3)\n";
    let cases: Vec<(CallResult, Option<Failure>)> = vec![
        (answer(500, unknown_table), Some(Failure::WrongDatabase)),
        (
            answer(500, "ClickHouse request failed (404): … (UNKNOWN_DATABASE)"),
            Some(Failure::WrongDatabase),
        ),
        (
            answer(503, "CH_HOST is not configured"),
            Some(Failure::NotConfigured),
        ),
        (
            answer(503, "CH_PASSWORD is not configured"),
            Some(Failure::NotConfigured),
        ),
        (
            answer(500, "ClickHouse request timed out after 10000ms"),
            Some(Failure::QueryFailed),
        ),
        (answer(404, "Not Found"), Some(Failure::Status(404))),
        (answer(502, "Bad Gateway"), Some(Failure::Status(502))),
        (answer(400, "symbol is required"), None),
        (answer(200, ""), None),
        (
            Err(ApiError::Timeout(Duration::from_secs(1))),
            Some(Failure::Timeout),
        ),
        (
            Err(ApiError::NoAnswer("closed".into())),
            Some(Failure::NoAnswer),
        ),
        (
            Err(ApiError::Connect("refused".into())),
            Some(Failure::Unreachable),
        ),
        (Err(ApiError::Skipped(Endpoint::Bars)), None),
    ];
    for (result, want) in cases {
        assert_eq!(Failure::of(&result), want, "{result:?}");
    }
}

#[test]
fn one_cause_on_several_endpoints_is_one_finding() {
    let mut f = Findings::default();
    let msg = "ClickHouse request failed (404): Code: 60. (UNKNOWN_TABLE)";
    assert!(f.call(Endpoint::Bars, &answer(500, msg)));
    assert!(f.call(Endpoint::Latest, &answer(500, msg)));
    assert!(!f.call(Endpoint::Bars, &answer(400, "symbol is required")));
    f.unquoted_u64(
        Endpoint::Bars,
        &["count".to_string(), "seq".to_string()].into(),
    );
    f.unquoted_u64(Endpoint::Signals, &["seq".to_string()].into());
    let out = f.into_vec("http://j");
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].hop, Hop::JangarApi);
    assert!(out[0].cause.starts_with(
        "Jangar's CH_DATABASE does not point at the TA database (ClickHouse says UNKNOWN_TABLE)"
    ));
    assert!(out[0]
        .cause
        .contains("/api/torghut/ta/bars, /api/torghut/ta/latest"));
    assert_eq!(
        out[0].runbook,
        crate::domain::diagnose::RUNBOOK_JANGAR_DATABASE
    );
    assert!(out[1].cause.contains("(count, seq)"), "{}", out[1].cause);
    // UInt64 as numbers is drift the page survives: a warning, unless strict.
    assert_eq!(out[0].severity, crate::domain::diagnose::Severity::Failure);
    assert_eq!(out[1].severity, crate::domain::diagnose::Severity::Warning);
    let mut strict = Findings::new(true);
    strict.unquoted_u64(Endpoint::Bars, &["seq".to_string()].into());
    let out = strict.into_vec("http://j");
    assert_eq!(out[0].severity, crate::domain::diagnose::Severity::Failure);
    assert!(
        out[0].cause.contains("jangar.strict_contract"),
        "{}",
        out[0].cause
    );
}

#[test]
fn long_messages_keep_their_start_and_end() {
    let long = format!(
        "Code: 60. {} (UNKNOWN_TABLE) (version 26.9)\nsecond line",
        "x".repeat(500)
    );
    let cut = crate::adapter::jangar::first_line(&long);
    assert_eq!(cut.chars().count(), 203);
    assert!(cut.starts_with("Code: 60. xxx"), "{cut}");
    assert!(cut.ends_with("(UNKNOWN_TABLE) (version 26.9)"), "{cut}");
    assert_eq!(crate::adapter::jangar::first_line("short\nmore"), "short");
}

// --- contract cases --------------------------------------------------------------------------------

#[test]
fn every_validation_message_has_a_case_in_order() {
    let probe = super::Probe {
        symbol: "ZZT2E-T-A".into(),
        from: datetime!(2026-03-05 19:59:59 UTC),
        to: datetime!(2026-03-05 20:00:09 UTC),
        bars_in_window: Some(11),
        bars_at_from: Some(1),
        exact: true,
    };
    let names: Vec<String> = contract::cases(&probe, "ZZT2E-T-NODATA")
        .iter()
        .map(contract::Case::name)
        .collect();
    let messages = [
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
    ];
    let mut last = 0;
    for m in messages {
        let at = names
            .iter()
            .position(|n| n.starts_with("contract bars") && n.ends_with(&format!("`{m}`")))
            .unwrap_or_else(|| panic!("no bars case for {m:?}"));
        assert!(at >= last, "{m:?} out of validation order");
        last = at;
    }
    for needed in [
        "exactly 7 days",
        "limit=5000",
        "limit=1",
        "unknown symbol",
        "lower-case symbol",
        "epoch milliseconds",
        "epoch seconds",
    ] {
        assert!(names.iter().any(|n| n.contains(needed)), "{needed}");
    }
    assert!(names.iter().any(|n| n.starts_with("contract signals")));
    assert!(names.iter().any(|n| n.starts_with("contract latest")));
}

#[test]
fn rejections_need_the_exact_message_in_both_fields() {
    let ok = json!({"ok": false, "message": "limit must be a number", "error": "limit must be a number"});
    assert!(contract::rejected(Some(&ok), "limit must be a number").is_empty());
    let wrong = json!({"ok": false, "message": "limit must be a number", "error": "x"});
    assert_eq!(
        contract::rejected(Some(&wrong), "limit must be a number").len(),
        1
    );
    let not_ok = json!({"ok": true, "message": "m", "error": "m"});
    assert_eq!(contract::rejected(Some(&not_ok), "m").len(), 1);
}

#[test]
fn unknown_symbol_is_reserved_and_valid_for_jangar() {
    let run = crate::domain::symbols::RunId::from_string("ABC123").unwrap();
    let s = contract::unknown_symbol(&run);
    assert!(crate::domain::symbols::is_synthetic(&s), "{s}");
}

// --- freshness -----------------------------------------------------------------------------------

#[test]
fn freshness_fails_over_the_threshold_and_without_rows() {
    let mut rec = Recorder::new(std::env::temp_dir(), false);
    let now = time::OffsetDateTime::now_utc();
    freshness(
        &mut rec,
        &[
            ("FRESH".into(), Some(now - time::Duration::seconds(5))),
            ("STALE".into(), Some(now - time::Duration::seconds(400))),
        ],
        Duration::from_secs(180),
    );
    freshness(&mut rec, &[("NONE".into(), None)], Duration::from_secs(180));
    let report = rec.finish("http://j");
    assert!(!report.checks[0].ok);
    assert!(
        report.checks[0].detail.contains("FRESH 5."),
        "{}",
        report.checks[0].detail
    );
    assert!(!report.checks[1].ok);
    assert_eq!(report.findings.len(), 1);
    assert!(report.findings[0].cause.contains("STALE"));
    assert!(report.findings[0]
        .cause
        .contains("over the 180.0 s threshold"));
}

// --- the client: bounded retries with history ----------------------------------------------------

/// Serves `/api/torghut/ta/*`: 500 for the first `failures` requests, then 200 (or never
/// answers when `hang`).
async fn server(failures: usize, hang: bool) -> (String, Arc<AtomicUsize>) {
    use axum::routing::get;
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/api/torghut/ta/{endpoint}",
        get(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                let status = if n < failures { 500 } else { 200 };
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [("content-type", "application/json")],
                    json!({"ok": status == 200, "message": "ClickHouse request failed (500): boom"})
                        .to_string(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    (format!("http://{addr}"), hits)
}

#[tokio::test]
async fn a_5xx_is_retried_up_to_the_bound_and_recorded() {
    let (url, hits) = server(1, false).await;
    let client = JangarClient::new(&url, Duration::from_secs(2), 2).unwrap();
    let reply = client.get(Endpoint::Bars, &[("symbol", "S")]).await;
    assert_eq!(reply.result.unwrap().status, 200);
    assert_eq!(reply.attempts, 2);
    let (url, hits_always) = server(usize::MAX, false).await;
    let client = JangarClient::new(&url, Duration::from_secs(2), 2).unwrap();
    let reply = client.get(Endpoint::Signals, &[]).await;
    assert_eq!(reply.result.as_ref().unwrap().status, 500);
    assert_eq!(hits_always.load(Ordering::SeqCst), 3, "1 try + 2 retries");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    let history = client.history();
    assert_eq!(history[0].request, "/api/torghut/ta/signals");
    let outcomes: Vec<&str> = history[0]
        .attempts
        .iter()
        .map(|a| a.outcome.as_str())
        .collect();
    assert_eq!(outcomes, ["500 ClickHouse request failed (500): boom"; 3]);
    assert!(
        reply.describe().ends_with("(3 attempts)"),
        "{}",
        reply.describe()
    );
}

#[tokio::test]
async fn a_hung_endpoint_times_out_once_then_is_skipped() {
    let (url, hits) = server(0, true).await;
    let client = JangarClient::new(&url, Duration::from_millis(200), 2).unwrap();
    let started = Instant::now();
    let first = client.get(Endpoint::Latest, &[("symbol", "S")]).await;
    assert!(
        matches!(first.result, Err(ApiError::Timeout(_))),
        "{first:?}"
    );
    assert_eq!(first.attempts, 1, "a timeout already spent the budget");
    let second = client.get(Endpoint::Latest, &[("symbol", "T")]).await;
    assert!(matches!(
        second.result,
        Err(ApiError::Skipped(Endpoint::Latest))
    ));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(client.history().len(), 2);
}

#[tokio::test]
async fn an_unreachable_jangar_is_a_connect_error_retried() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = JangarClient::new(
        &format!("http://127.0.0.1:{port}"),
        Duration::from_secs(1),
        1,
    )
    .unwrap();
    let reply = client.get(Endpoint::Bars, &[]).await;
    assert!(
        matches!(reply.result, Err(ApiError::Connect(_))),
        "{reply:?}"
    );
    assert_eq!(reply.attempts, 2);
}
