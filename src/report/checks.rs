//! A run flattened into named pass/fail checks: the unit of JUnit test cases and of the
//! per-check metrics. One suite for preflight, one per scenario.

use std::fmt::Write as _;

use crate::domain::compare::TableDiff;
use crate::domain::diagnose::Finding;
use crate::domain::report::StageReport;
use crate::domain::report::{RunReport, ScenarioReport, Verdict};

/// How many keys of each kind (missing, extra, duplicate) a table check lists.
const KEYS_LISTED: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    Pass,
    Fail,
    /// The check could not be made (unreachable target, refused symbol).
    Error,
    /// Not judgeable yet (the heartbeat between two beats): neither pass nor failure. JUnit
    /// shows it skipped, metrics as `torghut_e2e_check_pending`; it never turns a run red.
    Pending,
}

/// What a check is about; metrics treat diagnoses apart from checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    Preflight,
    /// A whole scenario that could not run.
    Run,
    /// One table compared with the oracle.
    Table,
    /// One check of a later stage (API, browser).
    Stage,
    /// A diagnosis: which hop broke and why. Always a failure; it explains the failed checks.
    Finding,
    /// A warning finding: drift the pipeline survives. Always passes; it is there to be seen.
    Warning,
}

#[derive(Debug, Clone)]
pub struct NamedCheck {
    pub kind: CheckKind,
    /// Stable across runs for the same scenario, e.g. `clickhouse ta_signals`, `api bars`.
    pub name: String,
    pub status: CheckStatus,
    /// One line: why it failed (or what passed).
    pub message: String,
    /// Several lines: divergent columns, keys, runbook.
    pub detail: String,
    /// Evidence files (screenshots, API responses), as paths a person can open.
    pub evidence: Vec<String>,
    pub elapsed_ms: u64,
}

impl NamedCheck {
    fn new(kind: CheckKind, name: String, ok: bool, message: String) -> Self {
        NamedCheck {
            kind,
            name,
            status: if ok {
                CheckStatus::Pass
            } else {
                CheckStatus::Fail
            },
            message,
            detail: String::new(),
            evidence: Vec::new(),
            elapsed_ms: 0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Suite {
    /// `preflight`, or the scenario's name.
    pub name: String,
    pub checks: Vec<NamedCheck>,
    pub duration_ms: u64,
    /// The scenario's retry history and symbols, for a person reading the CI output.
    pub notes: String,
}

/// Every check of the run, grouped: preflight first, then the scenarios in run order.
pub fn checks(report: &RunReport) -> Vec<Suite> {
    let mut suites = vec![preflight(report)];
    suites.extend(report.scenarios.iter().map(|s| scenario(report, s)));
    let any_failed = suites
        .iter()
        .flat_map(|s| &s.checks)
        .any(|c| matches!(c.status, CheckStatus::Fail | CheckStatus::Error));
    if report.verdict != Verdict::Pass && !any_failed {
        // A run can fail before any check (e.g. the producer cannot be created): CI must still
        // see a failure, never an all-green file for a red exit code.
        suites.push(Suite {
            name: "run".into(),
            checks: vec![NamedCheck {
                status: CheckStatus::Error,
                ..NamedCheck::new(
                    CheckKind::Run,
                    "run".into(),
                    false,
                    format!(
                        "the run ended {:?} (exit code {}) before any check failed",
                        report.verdict, report.exit_code
                    ),
                )
            }],
            duration_ms: report.duration_ms,
            notes: String::new(),
        });
    }
    suites
}

fn preflight(report: &RunReport) -> Suite {
    let checks = report
        .preflight
        .iter()
        .map(|p| NamedCheck {
            elapsed_ms: p.elapsed_ms,
            ..NamedCheck::new(
                CheckKind::Preflight,
                p.component.to_string(),
                p.ok,
                p.detail.clone(),
            )
        })
        .collect();
    Suite {
        name: "preflight".into(),
        duration_ms: report
            .preflight
            .iter()
            .map(|p| p.elapsed_ms)
            .max()
            .unwrap_or(0),
        checks,
        notes: String::new(),
    }
}

fn scenario(report: &RunReport, s: &ScenarioReport) -> Suite {
    let mut checks = Vec::new();
    if let Some(error) = &s.error {
        checks.push(NamedCheck {
            status: CheckStatus::Error,
            ..NamedCheck::new(CheckKind::Run, "run".into(), false, error.clone())
        });
    }
    checks.extend(s.tables.iter().map(|(t, d)| table(t, d, s.waited_ms)));
    let evidence_dir = format!("{}/{}", report.artifacts_dir, s.name);
    for stage in &s.stages {
        checks.extend(stage_checks(stage, &evidence_dir));
    }
    let findings = s
        .findings
        .iter()
        .chain(s.stages.iter().flat_map(|st| st.findings.iter()));
    checks.extend(findings.map(finding));
    Suite {
        name: s.name.clone(),
        checks,
        duration_ms: s.duration_ms,
        notes: notes(s),
    }
}

fn table(name: &str, d: &TableDiff, waited_ms: u64) -> NamedCheck {
    let message = d.summary();
    let mut check = NamedCheck::new(
        CheckKind::Table,
        format!("clickhouse {name}"),
        d.is_clean(),
        message,
    );
    check.elapsed_ms = waited_ms;
    check.detail = table_detail(d);
    check
}

/// The first divergent row column by column, then the first keys of each other kind.
fn table_detail(d: &TableDiff) -> String {
    let mut out = String::new();
    if let Some(m) = d.mismatches.first() {
        let _ = writeln!(out, "first divergent row {}:", m.key);
        for c in &m.columns {
            let _ = writeln!(
                out,
                "  {:<18} expected {:<24} observed {}",
                c.column, c.expected, c.actual
            );
        }
    }
    for (what, keys) in [
        ("missing", &d.missing),
        ("extra", &d.extra),
        ("duplicate", &d.duplicates),
    ] {
        for k in keys.iter().take(KEYS_LISTED) {
            let _ = writeln!(out, "{what} row {k}");
        }
        if keys.len() > KEYS_LISTED {
            let _ = writeln!(out, "... and {} more {what}", keys.len() - KEYS_LISTED);
        }
    }
    out
}

fn stage_checks(stage: &StageReport, evidence_dir: &str) -> Vec<NamedCheck> {
    if stage.checks.is_empty() {
        // A stage that made no check did not pass (it never passes on no evidence).
        return vec![NamedCheck::new(
            CheckKind::Stage,
            stage.stage.clone(),
            false,
            "the stage made no check".into(),
        )];
    }
    stage
        .checks
        .iter()
        .map(|c| NamedCheck {
            status: match (c.pending, c.ok) {
                (true, _) => CheckStatus::Pending,
                (false, true) => CheckStatus::Pass,
                (false, false) => CheckStatus::Fail,
            },
            evidence: c
                .evidence
                .iter()
                .map(|e| format!("{evidence_dir}/{e}"))
                .collect(),
            elapsed_ms: c.elapsed_ms,
            ..NamedCheck::new(
                CheckKind::Stage,
                format!("{} {}", stage.stage, c.name),
                c.ok,
                c.detail.clone(),
            )
        })
        .collect()
}

/// A failing finding is a failed `diagnosis <hop>` case; a warning a passing `warning <hop>`
/// case that carries the cause, so CI shows it without turning red.
fn finding(f: &Finding) -> NamedCheck {
    let hop = hop_name(f);
    let (kind, name) = if f.is_failure() {
        (CheckKind::Finding, format!("diagnosis {hop}"))
    } else {
        (CheckKind::Warning, format!("warning {hop}"))
    };
    NamedCheck {
        detail: format!("hop: {}\nrunbook: {}\n", f.hop.label(), f.runbook),
        ..NamedCheck::new(kind, name, !f.is_failure(), f.cause.clone())
    }
}

/// The hop's machine name as the JSON report writes it (`ta_job`, `clickhouse_sink`, ...).
pub fn hop_name(f: &Finding) -> String {
    serde_json::to_value(f.hop)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{:?}", f.hop))
}

fn notes(s: &ScenarioReport) -> String {
    let mut out = String::new();
    for (alias, symbol) in &s.symbols {
        let _ = writeln!(out, "symbol {alias} = {symbol}");
    }
    if s.messages_published > 0 {
        let _ = writeln!(
            out,
            "published {} messages; waited {} ms in {} polls",
            s.messages_published,
            s.waited_ms,
            s.wait_attempts.len()
        );
    }
    for a in &s.wait_attempts {
        let _ = writeln!(out, "  poll at {:>6} ms: {}", a.at_ms, a.outcome);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::compare::{ColumnDiff, RowMismatch};
    use crate::report::sample::sample;

    #[test]
    fn a_divergent_table_is_a_failed_check_naming_the_column() {
        let report = sample();
        let suites = checks(&report);
        assert_eq!(suites[0].name, "preflight");
        let s = &suites[1];
        let t = s
            .checks
            .iter()
            .find(|c| c.name == "clickhouse ta_signals")
            .unwrap();
        assert_eq!(t.status, CheckStatus::Fail);
        assert!(t.detail.contains("ema12"), "{}", t.detail);
        let bars = s
            .checks
            .iter()
            .find(|c| c.name == "clickhouse ta_microbars")
            .unwrap();
        assert_eq!(bars.status, CheckStatus::Pass);
        let f = s.checks.iter().find(|c| c.kind == CheckKind::Finding);
        assert_eq!(f.unwrap().name, "diagnosis ta_job");
        let w = s
            .checks
            .iter()
            .find(|c| c.kind == CheckKind::Warning)
            .unwrap();
        assert_eq!(w.name, "warning jangar_api");
        assert_eq!(w.status, CheckStatus::Pass);
        assert!(w.message.contains("JSON numbers"), "{}", w.message);
        assert!(w.detail.contains("runbook:"), "{}", w.detail);
        let api = s.checks.iter().find(|c| c.name == "api bars").unwrap();
        assert_eq!(
            api.evidence,
            vec!["artifacts/RUN1/probe/api/bars.json".to_string()]
        );
    }

    #[test]
    fn an_empty_stage_fails_and_a_scenario_error_is_an_error() {
        let mut report = sample();
        report.scenarios[0].stages[0].checks.clear();
        report.scenarios[0].error = Some("unreachable".into());
        let s = &checks(&report)[1];
        assert_eq!(s.checks[0].status, CheckStatus::Error);
        assert!(s
            .checks
            .iter()
            .any(|c| c.name == "api" && c.status == CheckStatus::Fail));
    }

    #[test]
    fn a_pending_check_is_neither_passed_nor_failed_and_keeps_a_green_run_green() {
        let mut report = sample();
        report.verdict = Verdict::Pass;
        report.scenarios[0].tables.clear();
        report.scenarios[0].findings.clear();
        report.scenarios[0].stages[0].findings.clear();
        report.scenarios[0].stages.push(StageReport {
            stage: "heartbeat".into(),
            verdict: Verdict::Pass,
            checks: vec![crate::domain::report::StageCheck {
                name: "status".into(),
                ok: true,
                pending: true,
                detail: "no heartbeat since the run's last bar yet".into(),
                ..Default::default()
            }],
            ..StageReport::default()
        });
        let suites = checks(&report);
        let pending = suites[1]
            .checks
            .iter()
            .find(|c| c.name == "heartbeat status")
            .unwrap();
        assert_eq!(pending.status, CheckStatus::Pending);
        assert!(
            suites.iter().all(|s| s.name != "run"),
            "no synthetic red case"
        );
        let xml = crate::report::junit::render(&report, &[]).unwrap();
        assert!(xml.contains("PENDING: no heartbeat"), "{xml}");
        assert!(xml.contains("skipped"), "{xml}");
    }

    #[test]
    fn many_missing_keys_are_cut_short() {
        let d = TableDiff {
            missing: (0..8).map(|i| format!("k{i}")).collect(),
            mismatches: vec![RowMismatch {
                key: "k".into(),
                columns: vec![ColumnDiff {
                    column: "c",
                    expected: "1".into(),
                    actual: "2".into(),
                }],
            }],
            ..TableDiff::default()
        };
        let text = table_detail(&d);
        assert!(text.contains("and 3 more missing"), "{text}");
        assert!(text.contains("expected 1"), "{text}");
    }
}
