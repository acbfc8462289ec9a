//! What a stage after ClickHouse (the Jangar API, the charts page) reports.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Verdict;
use crate::diagnose::Finding;

/// One named check of a stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageCheck {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    pub elapsed_ms: u64,
    /// Paths of evidence files (screenshots, responses), relative to the artifacts directory.
    pub evidence: Vec<String>,
    /// Not judgeable yet (the status heartbeat between two beats): neither a pass nor a
    /// failure. `ok` is true so the stage and the run do not fail on it; every report shows it
    /// as pending with its evidence so far.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
}

/// A stage's outcome.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageReport {
    pub stage: String,
    pub verdict: Verdict,
    pub checks: Vec<StageCheck>,
    pub findings: Vec<Finding>,
    /// Facts the stage observed that a person or a later stage may want (e.g. bar counts).
    pub observed: BTreeMap<String, serde_json::Value>,
}

impl StageReport {
    /// Pass only on at least one check, all passing, and no failing finding (warnings are
    /// reported, never failed on).
    pub fn conclude(mut self) -> Self {
        let ok = !self.checks.is_empty()
            && self.checks.iter().all(|c| c.ok)
            && !crate::diagnose::any_failure(&self.findings);
        self.verdict = if ok { Verdict::Pass } else { Verdict::Fail };
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::{Finding, Hop, RUNBOOK_JANGAR_CONTRACT};

    fn report(findings: Vec<Finding>) -> StageReport {
        StageReport {
            stage: "api".into(),
            checks: vec![StageCheck {
                name: "bars".into(),
                ok: true,
                ..StageCheck::default()
            }],
            findings,
            ..StageReport::default()
        }
    }

    #[test]
    fn warnings_never_fail_a_stage_and_failures_always_do() {
        let warning =
            Finding::warning(Hop::JangarApi, "UInt64 as numbers", RUNBOOK_JANGAR_CONTRACT);
        let failure = Finding::failure(Hop::JangarApi, "500", RUNBOOK_JANGAR_CONTRACT);
        assert_eq!(
            report(vec![warning.clone()]).conclude().verdict,
            Verdict::Pass
        );
        assert_eq!(
            report(vec![warning, failure]).conclude().verdict,
            Verdict::Fail
        );
        let mut failed_check = report(Vec::new());
        failed_check.checks[0].ok = false;
        assert_eq!(failed_check.conclude().verdict, Verdict::Fail);
        let mut no_check = report(Vec::new());
        no_check.checks.clear();
        assert_eq!(no_check.conclude().verdict, Verdict::Fail);
    }
}
