//! What a run found, for machines (versioned JSON) and for people (console summary).
//!
//! JSON schema `torghut-e2e/report/v1`: a `RunReport` object. Fields are only ever added within
//! a version; renaming or removing one bumps the version.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use crate::compare::TableDiff;
use crate::diagnose::Finding;
use crate::latency::Summary;
use crate::preflight::Check;
use crate::publish::Delivery;
use crate::wait::Attempt;

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
    pub messages_published: usize,
    pub deliveries: Vec<Delivery>,
    pub tables: BTreeMap<String, TableDiff>,
    pub findings: Vec<Finding>,
    /// The API and browser stages, when the scenario asks for them.
    pub stages: Vec<crate::stage::StageReport>,
    pub latency: LatencyReport,
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

/// The person-readable summary: one block per scenario, failures with hop, cause and runbook.
pub fn write_console(report: &RunReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "run {} against {} ({})",
        report.run_id, report.target.lane, report.target.clickhouse_database
    )?;
    for s in &report.scenarios {
        let symbols: Vec<&str> = s.symbols.values().map(String::as_str).collect();
        writeln!(
            out,
            "\n{} {} [{}]",
            mark(s.verdict),
            s.name,
            symbols.join(", ")
        )?;
        if let Some(e) = &s.error {
            writeln!(out, "  error: {e}")?;
        }
        if s.messages_published > 0 {
            writeln!(
                out,
                "  published {} messages; waited {} ms",
                s.messages_published, s.waited_ms
            )?;
        }
        for (table, d) in &s.tables {
            writeln!(
                out,
                "  {table}: {}/{} rows match, {} missing, {} extra, {} duplicate, {} differ",
                d.matched,
                d.expected,
                d.missing.len(),
                d.extra.len(),
                d.duplicates.len(),
                d.mismatches.len()
            )?;
            if let Some(m) = d.mismatches.first() {
                writeln!(out, "    first divergent row {}:", m.key)?;
                for c in &m.columns {
                    writeln!(
                        out,
                        "      {:<18} expected {:<24} observed {}",
                        c.column, c.expected, c.actual
                    )?;
                }
            }
            if let Some(k) = d.missing.first() {
                writeln!(out, "    first missing row {k}")?;
            }
        }
        if s.latency.publish_to_visible.count > 0 {
            writeln!(
                out,
                "  latency publish→visible {} (±{:.0} ms polling); TA emit→visible {}",
                s.latency.publish_to_visible,
                s.latency.polling_error_ms,
                s.latency.ta_emit_to_visible
            )?;
        }
        for stage in &s.stages {
            let passed = stage.checks.iter().filter(|c| c.ok).count();
            writeln!(
                out,
                "  {} stage: {} ({passed}/{} checks)",
                stage.stage,
                mark(stage.verdict),
                stage.checks.len()
            )?;
            for c in stage.checks.iter().filter(|c| !c.ok) {
                writeln!(out, "    FAIL {}: {}", c.name, c.detail)?;
            }
        }
        for f in s
            .findings
            .iter()
            .chain(s.stages.iter().flat_map(|st| st.findings.iter()))
        {
            writeln!(out, "  FAILED at {}: {}", f.hop.label(), f.cause)?;
            writeln!(out, "    runbook: {}", f.runbook)?;
        }
    }
    let passed = report
        .scenarios
        .iter()
        .filter(|s| s.verdict == Verdict::Pass)
        .count();
    writeln!(
        out,
        "\n{} {passed}/{} scenarios passed in {} ms",
        mark(report.verdict),
        report.scenarios.len(),
        report.duration_ms
    )
}

fn mark(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::Error => "ERROR",
    }
}
