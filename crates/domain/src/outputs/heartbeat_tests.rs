use std::collections::BTreeMap;
use std::time::Duration;

use time::macros::datetime;
use time::OffsetDateTime;

use super::*;

const SYMBOL: &str = "ZZT2E-AB12CD34-X";
const INTERVAL: Duration = Duration::from_secs(60);

fn beat(seq: i64, at: OffsetDateTime, counts: (i64, i64), seen: Option<&str>) -> Heartbeat {
    Heartbeat {
        seq,
        event_ts: at,
        status: "ok".into(),
        status_reason: None,
        input_event_count: counts.0,
        output_event_count: counts.1,
        watermark_lag_ms: None,
        source_lag_ms: None,
        market_session_state: Some("outside_regular_session".into()),
        clickhouse_sink_enabled: Some(true),
        per_symbol_latest_event_ts: seen
            .map(|t| [(SYMBOL.to_string(), t.to_string())].into())
            .unwrap_or_default(),
    }
}

struct Case {
    baseline: Option<Heartbeat>,
    during: Vec<Heartbeat>,
    now: OffsetDateTime,
}

fn with_run<T>(c: &Case, f: impl FnOnce(&HeartbeatRun<'_>) -> T) -> T {
    let last_bars: BTreeMap<String, OffsetDateTime> =
        [(SYMBOL.to_string(), datetime!(2026-07-21 14:30:10 UTC))].into();
    f(&HeartbeatRun {
        baseline: c.baseline.as_ref(),
        during: &c.during,
        last_bars: &last_bars,
        bars: 10,
        signals: 10,
        rows_visible_at: datetime!(2026-07-21 14:30:12 UTC),
        now: c.now,
        interval: INTERVAL,
    })
}

fn judged(c: &Case) -> HeartbeatVerdict {
    with_run(c, judge)
}

fn warned(c: &Case) -> Option<crate::diagnose::Finding> {
    with_run(c, status_warning)
}

fn base() -> Heartbeat {
    beat(1, datetime!(2026-07-21 14:29:50 UTC), (100, 90), None)
}

fn causes(v: HeartbeatVerdict) -> String {
    match v {
        HeartbeatVerdict::Fail(f) => {
            assert!(f.iter().all(|f| f.hop == crate::diagnose::Hop::Heartbeat));
            f.iter()
                .map(|f| f.cause.clone())
                .collect::<Vec<_>>()
                .join(" | ")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn a_heartbeat_holding_the_run_with_counters_advanced_passes() {
    let v = judged(&Case {
        baseline: Some(base()),
        during: vec![beat(
            2,
            datetime!(2026-07-21 14:30:15 UTC),
            (110, 100),
            Some("2026-07-21T14:30:10Z"),
        )],
        now: datetime!(2026-07-21 14:30:16 UTC),
    });
    assert!(
        matches!(&v, HeartbeatVerdict::Pass(d) if d.contains("+10 in")),
        "{v:?}"
    );
}

#[test]
fn no_heartbeat_at_all_is_missing() {
    let v = judged(&Case {
        baseline: None,
        during: vec![],
        now: datetime!(2026-07-21 14:30:16 UTC),
    });
    assert!(causes(v).contains("missing"));
}

#[test]
fn a_heartbeat_older_than_two_intervals_is_stale() {
    let v = judged(&Case {
        baseline: Some(beat(1, datetime!(2026-07-21 14:28:00 UTC), (1, 1), None)),
        during: vec![],
        now: datetime!(2026-07-21 14:30:16 UTC),
    });
    assert!(causes(v).contains("stopped"));
}

#[test]
fn a_degraded_status_is_a_warning_naming_its_reason_not_a_failure() {
    let mut h = beat(
        2,
        datetime!(2026-07-21 14:30:15 UTC),
        (110, 100),
        Some("2026-07-21T14:30:10Z"),
    );
    h.status = "degraded".into();
    h.status_reason = Some("zero_current_records_during_regular_session".into());
    let case = Case {
        baseline: Some(base()),
        during: vec![h],
        now: datetime!(2026-07-21 14:30:16 UTC),
    };
    let warning = warned(&case).expect("a warning");
    assert!(!warning.is_failure());
    assert!(warning
        .cause
        .contains("zero_current_records_during_regular_session"));
    assert!(matches!(judged(&case), HeartbeatVerdict::Pass(_)));
}

#[test]
fn counters_that_did_not_move_by_the_run_are_frozen() {
    let v = judged(&Case {
        baseline: Some(base()),
        during: vec![beat(
            2,
            datetime!(2026-07-21 14:30:15 UTC),
            (103, 100),
            Some("2026-07-21T14:30:10Z"),
        )],
        now: datetime!(2026-07-21 14:30:16 UTC),
    });
    let text = causes(v);
    assert!(text.contains("input_event_count advanced by 3"), "{text}");
    assert!(!text.contains("output_event_count"), "{text}");
}

#[test]
fn a_late_heartbeat_without_the_run_is_frozen_and_an_early_one_is_pending() {
    let stale_map = |at| beat(2, at, (100, 90), Some("2026-07-21T14:29:00Z"));
    let late = judged(&Case {
        baseline: Some(base()),
        during: vec![stale_map(datetime!(2026-07-21 14:30:20 UTC))],
        now: datetime!(2026-07-21 14:30:21 UTC),
    });
    assert!(causes(late).contains("frozen"));
    let early = judged(&Case {
        baseline: Some(base()),
        during: vec![stale_map(datetime!(2026-07-21 14:30:11 UTC))],
        now: datetime!(2026-07-21 14:30:13 UTC),
    });
    assert!(
        matches!(&early, HeartbeatVerdict::Pending(d) if d.contains("next due by 2026-07-21T14:31:11.000Z")),
        "{early:?}"
    );
    let only_baseline = judged(&Case {
        baseline: Some(base()),
        during: vec![],
        now: datetime!(2026-07-21 14:30:16 UTC),
    });
    assert!(matches!(only_baseline, HeartbeatVerdict::Pending(_)));
}

#[test]
fn a_beat_holding_the_last_bar_before_its_signal_was_counted_waits_for_the_next() {
    // Baseline (100 in, 90 out); the run: 10 bars, 10 signals; rows visible at 14:30:12.
    let early = beat(
        2,
        datetime!(2026-07-21 14:30:11 UTC),
        (110, 99),
        Some("2026-07-21T14:30:10Z"),
    );
    // Only that beat so far, inside the slack: not frozen, not judged yet.
    let v = judged(&Case {
        baseline: Some(base()),
        during: vec![early.clone()],
        now: datetime!(2026-07-21 14:30:13 UTC),
    });
    assert!(matches!(v, HeartbeatVerdict::Pending(_)), "{v:?}");
    // The next beat has counted the last signal: a pass.
    let caught_up = beat(
        3,
        datetime!(2026-07-21 14:30:12.5 UTC),
        (110, 100),
        Some("2026-07-21T14:30:10Z"),
    );
    let v = judged(&Case {
        baseline: Some(base()),
        during: vec![early, caught_up],
        now: datetime!(2026-07-21 14:30:13 UTC),
    });
    assert!(
        matches!(&v, HeartbeatVerdict::Pass(text) if text.contains("seq 3")),
        "{v:?}"
    );
}
