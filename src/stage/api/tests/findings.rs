//! Failures mapped to causes, the contract cases, freshness.

use std::time::Duration;

use serde_json::json;
use time::macros::datetime;

use crate::adapter::jangar::{Answer, ApiError, CallResult, Endpoint};
use crate::domain::diagnose::Hop;
use crate::stage::api::contract;
use crate::stage::api::findings::{Failure, Findings};
use crate::stage::api::latest::freshness;
use crate::stage::api::Recorder;

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

#[test]
fn every_validation_message_has_a_case_in_order() {
    let probe = crate::stage::api::Probe {
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
