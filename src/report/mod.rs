//! What a run found, for machines and for people.
//!
//! JSON schema `torghut-e2e/report/v1`: a `RunReport` object. Fields are only ever added within
//! a version; renaming or removing one bumps the version. The other renderings are derived from
//! the same object: the console summary (`console`), JUnit XML for CI (`junit`), Prometheus
//! metrics (`metrics`) and the self-contained HTML evidence report (`html`). JUnit and metrics
//! share one flattening of the report into named checks (`checks`).

mod checks;
mod console;
pub mod html;
pub mod junit;
pub mod metrics;
mod series;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::compare::TableDiff;
use crate::diagnose::Finding;
use crate::latency::Summary;
use crate::preflight::Check;
use crate::publish::Delivery;
use crate::wait::Attempt;

pub use checks::{checks, hop_name, CheckKind, CheckStatus, NamedCheck, Suite};
pub use console::write_console;
pub use series::{Point, Series};

pub const SCHEMA: &str = "torghut-e2e/report/v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    #[default]
    Fail,
    /// The scenario could not run (unreachable target, refused symbol).
    Error,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencyReport {
    /// Broker ack of the message that closes a bar → the bar visible in ClickHouse.
    pub publish_to_visible: Summary,
    /// Broker ack → the TA job's emission (`ingest_ts`; clocks of two hosts).
    pub publish_to_ta_emit: Summary,
    /// TA emission (`ingest_ts`) → visible to a FINAL query.
    pub ta_emit_to_visible: Summary,
    /// Largest poll interval before a first sighting: visibility times are late by at most this.
    pub polling_error_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ScenarioReport {
    pub name: String,
    pub path: String,
    pub description: String,
    pub verdict: Verdict,
    /// Scenario alias → synthetic symbol.
    pub symbols: BTreeMap<String, String>,
    /// Set when the symbols came from a reserved pool: their history and how it was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<crate::pool::PoolReport>,
    /// Set by `audit`: the window, where the audit of the symbol started and how it was seeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<crate::audit::AuditSymbol>,
    pub messages_published: usize,
    pub deliveries: Vec<Delivery>,
    pub tables: BTreeMap<String, TableDiff>,
    pub findings: Vec<Finding>,
    /// The API and browser stages, when the scenario asks for them.
    pub stages: Vec<crate::stage::StageReport>,
    pub latency: LatencyReport,
    /// Expected and observed bars with their indicator lines, for the HTML plots.
    #[serde(skip_serializing_if = "Series::is_empty")]
    pub series: Series,
    pub wait_attempts: Vec<Attempt>,
    pub waited_ms: u64,
    /// From the last acknowledgement to the verdict: the wait plus the validator's own work.
    pub verdict_after_publish_ms: u64,
    pub duration_ms: u64,
    /// Set when the scenario could not run.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub lane: String,
    pub kafka_bootstrap: String,
    pub trades_topic: String,
    pub quotes_topic: String,
    pub clickhouse_url: String,
    pub clickhouse_database: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub schema: &'static str,
    pub run_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: time::OffsetDateTime,
    pub duration_ms: u64,
    pub verdict: Verdict,
    pub exit_code: u8,
    pub target: Target,
    /// This run's evidence directory (`<artifacts_dir>/<run_id>`); stage evidence paths are
    /// relative to `<that>/<scenario>`.
    pub artifacts_dir: String,
    /// `--shard i/n` when the run took a share of the suite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub preflight: Vec<PreflightLine>,
    pub scenarios: Vec<ScenarioReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PreflightLine {
    pub component: &'static str,
    pub ok: bool,
    pub detail: String,
    pub elapsed_ms: u64,
}

impl From<&Check> for PreflightLine {
    fn from(c: &Check) -> Self {
        Self {
            component: c.component,
            ok: c.ok,
            detail: c.detail.clone(),
            elapsed_ms: c.elapsed.as_millis() as u64,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::compare::{ColumnDiff, RowMismatch};
    use crate::diagnose::{Finding, Hop};
    use crate::stage::{StageCheck, StageReport};

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
            tables: [
                ("ta_microbars".to_string(), bars),
                ("ta_signals".to_string(), signals),
            ]
            .into(),
            findings: vec![Finding {
                hop: Hop::TaJob,
                cause: "the TA job's values differ from the oracle in ema12".into(),
                runbook: crate::diagnose::RUNBOOK_TA_MATHS,
                severity: crate::diagnose::Severity::Failure,
            }],
            stages: vec![StageReport {
                stage: "api".into(),
                verdict: Verdict::Pass,
                findings: vec![Finding::warning(
                    Hop::JangarApi,
                    "/api/torghut/ta/bars sends UInt64 columns (seq) as JSON numbers",
                    crate::diagnose::RUNBOOK_JANGAR_CONTRACT,
                )],
                checks: vec![StageCheck {
                    name: "bars".into(),
                    ok: true,
                    detail: "5 bars".into(),
                    elapsed_ms: 12,
                    evidence: vec!["api/bars.json".into()],
                }],
                ..StageReport::default()
            }],
            latency: LatencyReport {
                publish_to_visible: crate::latency::summarize(&[120.0, 480.0, 900.0]),
                publish_to_ta_emit: crate::latency::summarize(&[100.0, 400.0, 800.0]),
                ta_emit_to_visible: crate::latency::summarize(&[20.0, 80.0, 100.0]),
                polling_error_ms: 50.0,
            },
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
}
