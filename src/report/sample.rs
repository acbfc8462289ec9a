//! A failed run's report for the writers' tests.

use crate::domain::compare::{ColumnDiff, RowMismatch, TableDiff};
use crate::domain::diagnose::{Finding, Hop};
use crate::domain::latency::{ErrorBar, Method};
use crate::domain::report::{
    LatencyReport, MinuteLatency, PreflightLine, RunReport, ScenarioReport, StageCheck,
    StageReport, Target, Verdict, WatermarkLatency, SCHEMA,
};

/// A failed run: one scenario whose signals diverge in `ema12`, with an API stage.
pub(crate) fn sample() -> RunReport {
    let signals = TableDiff {
        expected: 5,
        observed: 5,
        matched: 4,
        mismatches: vec![RowMismatch {
            key: "ZZT2E-RUN1-F 2026-01-01T00:00:03.000Z seq 2".into(),
            columns: vec![ColumnDiff {
                column: "ema12",
                expected: "50.05".into(),
                actual: "50.0375".into(),
            }],
        }],
        ..TableDiff::default()
    };
    let bars = TableDiff {
        expected: 5,
        observed: 5,
        matched: 5,
        ..TableDiff::default()
    };
    let scenario = ScenarioReport {
        name: "probe".into(),
        path: "scenarios/probe.toml".into(),
        verdict: Verdict::Fail,
        symbols: [("F".to_string(), "ZZT2E-RUN1-F".to_string())].into(),
        messages_published: 13,
        messages_acknowledged: 13,
        tables: [
            ("ta_microbars".to_string(), bars),
            ("ta_signals".to_string(), signals),
        ]
        .into(),
        findings: vec![Finding {
            hop: Hop::TaJob,
            cause: "the TA job's values differ from the oracle in ema12".into(),
            runbook: crate::domain::diagnose::RUNBOOK_TA_MATHS,
            severity: crate::domain::diagnose::Severity::Failure,
        }],
        stages: vec![StageReport {
            stage: "api".into(),
            verdict: Verdict::Pass,
            findings: vec![Finding::warning(
                Hop::JangarApi,
                "/api/torghut/ta/bars sends UInt64 columns (seq) as JSON numbers",
                crate::domain::diagnose::RUNBOOK_JANGAR_CONTRACT,
            )],
            checks: vec![StageCheck {
                name: "bars".into(),
                ok: true,
                detail: "5 bars".into(),
                elapsed_ms: 12,
                evidence: vec!["api/bars.json".into()],
                pending: false,
            }],
            ..StageReport::default()
        }],
        latency: LatencyReport {
            publish_to_visible: crate::domain::latency::summarize(&[120.0, 480.0, 900.0]),
            publish_to_ta_emit: crate::domain::latency::summarize(&[100.0, 400.0, 800.0]),
            ta_emit_to_visible: crate::domain::latency::summarize(&[20.0, 80.0, 100.0]),
            polling_error_ms: 50.0,
            visibility_error: ErrorBar::of(&[
                (Method::PartLog, 0.5),
                (Method::PartLog, 0.5),
                (Method::KeyPoll, 50.0),
            ]),
            closed_before_trigger: 0,
            watermark_closed: WatermarkLatency {
                publish_to_visible: crate::domain::latency::summarize(&[29_500.0]),
                publish_to_ta_emit: crate::domain::latency::summarize(&[29_000.0]),
                ta_emit_to_visible: crate::domain::latency::summarize(&[500.0]),
                visibility_error: ErrorBar::of(&[(Method::KeyPoll, 40.0)]),
                hold_allowance_ms: 31_000.0,
                limit_ms: Some(36_000.0),
            },
            minute_signals: MinuteLatency::default(),
            key_polls: 42,
            key_polls_server_clock: 40,
            part_log_problem: Some("not flushed on request: Code: 497 (ACCESS_DENIED)".into()),
            full_reads: 1,
            key_poll_rtt_ms: crate::domain::latency::Summary::default(),
        },
        overhead_ms: Some(35),
        last_evidence: Some("heartbeat".into()),
        waited_ms: 900,
        duration_ms: 2_000,
        ..ScenarioReport::default()
    };
    RunReport {
        schema: SCHEMA,
        run_id: "RUN1".into(),
        started_at: time::macros::datetime!(2026-01-01 00:00:00 UTC),
        duration_ms: 2_500,
        verdict: Verdict::Fail,
        exit_code: 1,
        target: Target {
            lane: "sim".into(),
            kafka_bootstrap: "127.0.0.1:9093".into(),
            trades_topic: "torghut.sim.trades.v1".into(),
            quotes_topic: "torghut.sim.quotes.v1".into(),
            clickhouse_url: "http://127.0.0.1:8123".into(),
            clickhouse_database: "torghut_sim_default".into(),
        },
        artifacts_dir: "artifacts/RUN1".into(),
        shard: None,
        preflight: vec![PreflightLine {
            component: "kafka",
            ok: true,
            detail: "3 brokers".into(),
            elapsed_ms: 30,
        }],
        scenarios: vec![scenario],
    }
}
