//! JUnit XML for CI: one test suite for preflight and one per scenario, one test case per
//! check (table comparison, stage check, diagnosis), failures with message, detail and
//! evidence paths.
//!
//! Evidence paths are also written as `[[ATTACHMENT|path]]` lines in the test case's
//! `system-out`, the convention Jenkins' and GitLab's JUnit readers turn into links.

use std::path::Path;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::{checks, CheckKind, CheckStatus, NamedCheck, Suite};
use crate::domain::report::RunReport;

#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    #[error("cannot serialize the JUnit report: {0}")]
    Serialize(#[from] quick_junit::SerializeError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// The JUnit document for a run. `linked` are files every failure points at as well (the JSON
/// and HTML reports of the same run).
pub fn render(report: &RunReport, linked: &[String]) -> Result<String, JunitError> {
    let mut junit = Report::new("torghut-e2e");
    junit.set_time(ms(report.duration_ms));
    for suite in checks(report) {
        junit.add_test_suite(test_suite(report, &suite, linked));
    }
    Ok(junit.to_string()?)
}

pub fn write(report: &RunReport, path: &Path, linked: &[String]) -> Result<(), JunitError> {
    let xml = render(report, linked)?;
    std::fs::write(path, xml).map_err(|source| JunitError::Write {
        path: path.display().to_string(),
        source,
    })
}

fn test_suite(report: &RunReport, suite: &Suite, linked: &[String]) -> TestSuite {
    let mut ts = TestSuite::new(suite.name.as_str());
    ts.set_time(ms(suite.duration_ms));
    ts.add_properties([
        Property::new("run_id", report.run_id.as_str()),
        Property::new("lane", report.target.lane.as_str()),
        Property::new(
            "clickhouse_database",
            report.target.clickhouse_database.as_str(),
        ),
    ]);
    if !suite.notes.is_empty() {
        ts.set_system_out(suite.notes.as_str());
    }
    let classname = format!("torghut-e2e.{}", suite.name);
    ts.add_test_cases(
        suite
            .checks
            .iter()
            .map(|c| test_case(c, &classname, linked)),
    );
    ts
}

fn test_case(check: &NamedCheck, classname: &str, linked: &[String]) -> TestCase {
    let status = match check.status {
        CheckStatus::Pass => TestCaseStatus::success(),
        CheckStatus::Fail => failure(NonSuccessKind::Failure, check, linked),
        CheckStatus::Error => failure(NonSuccessKind::Error, check, linked),
        CheckStatus::Pending => {
            let mut skipped = TestCaseStatus::skipped();
            skipped.set_message(format!("PENDING: {}", check.message));
            skipped
        }
    };
    let mut tc = TestCase::new(check.name.as_str(), status);
    tc.set_classname(classname);
    tc.set_time(ms(check.elapsed_ms));
    let mut out = String::new();
    if check.kind == CheckKind::Warning {
        // JUnit has no warning status: a passing case whose output says what drifted.
        out.push_str(&format!("WARNING: {}\n{}", check.message, check.detail));
    }
    for p in evidence(check, linked) {
        out.push_str(&format!("[[ATTACHMENT|{p}]]\n"));
    }
    if !out.is_empty() {
        tc.set_system_out(out);
    }
    tc
}

fn failure(kind: NonSuccessKind, check: &NamedCheck, linked: &[String]) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(kind);
    status.set_message(check.message.as_str());
    status.set_type(kind_name(check.kind));
    let mut description = check.detail.clone();
    let paths = evidence(check, linked);
    if !paths.is_empty() {
        description.push_str("evidence:\n");
        for p in paths {
            description.push_str(&format!("  {p}\n"));
        }
    }
    if !description.is_empty() {
        status.set_description(description);
    }
    status
}

/// The check's own evidence, then (for a failure) the run's reports.
fn evidence(check: &NamedCheck, linked: &[String]) -> Vec<String> {
    let mut paths = check.evidence.clone();
    if matches!(check.status, CheckStatus::Fail | CheckStatus::Error) {
        paths.extend(linked.iter().cloned());
    }
    paths
}

fn kind_name(kind: CheckKind) -> &'static str {
    match kind {
        CheckKind::Preflight => "preflight",
        CheckKind::Run => "run",
        CheckKind::Table => "table-diff",
        CheckKind::Stage => "stage-check",
        CheckKind::Finding => "diagnosis",
        CheckKind::Warning => "warning",
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::report::Verdict;
    use crate::report::sample::sample;

    #[test]
    fn failures_carry_message_detail_and_evidence() {
        let xml = render(&sample(), &["out/report.html".into()]).unwrap();
        assert!(xml.contains("<testsuite name=\"probe\""), "{xml}");
        assert!(xml.contains("<failure message=\"4/5 rows match"), "{xml}");
        assert!(xml.contains("ema12"), "{xml}");
        assert!(xml.contains("[[ATTACHMENT|out/report.html]]"), "{xml}");
        assert!(xml.contains("artifacts/RUN1/probe/api/bars.json"), "{xml}");
        assert!(xml.contains("failures=\"2\""), "{xml}");
        // The warning is a passing case that says what drifted.
        assert!(
            xml.contains("<testcase name=\"warning jangar_api\""),
            "{xml}"
        );
        assert!(
            xml.contains(
                "WARNING: /api/torghut/ta/bars sends UInt64 columns (seq) as JSON numbers"
            ),
            "{xml}"
        );
    }

    #[test]
    fn a_red_run_without_any_failed_check_still_fails() {
        let mut r = sample();
        r.scenarios.clear();
        r.verdict = Verdict::Error;
        r.exit_code = 3;
        let xml = render(&r, &[]).unwrap();
        assert!(
            xml.contains("<error message=\"the run ended Error (exit code 3)"),
            "{xml}"
        );
    }
}
