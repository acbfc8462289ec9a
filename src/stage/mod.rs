//! The stages after ClickHouse: what they get from a scenario run and what they give back.
//!
//! The ClickHouse stage establishes the expected rows (oracle) and the stored rows (FINAL);
//! the API and browser stages observe the same bars one and two hops further on.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::clickhouse::ClickHouse;
use crate::config::Config;
use crate::diagnose::Finding;
use crate::model::{Microbar, Signal};
use crate::report::Verdict;
use crate::scenario::Scenario;
use crate::symbols::RunId;

/// Everything a later stage may use; borrowed from the run.
pub struct StageContext<'a> {
    pub config: &'a Config,
    pub scenario: &'a Scenario,
    pub run_id: &'a RunId,
    /// Scenario alias → synthetic symbol.
    pub symbols: &'a BTreeMap<String, String>,
    /// The oracle's rows (ingest_ts unknown).
    pub expected_bars: &'a [Microbar],
    pub expected_signals: &'a [Signal],
    /// The rows ClickHouse holds (FINAL, PT1S signals) at the end of the ClickHouse stage.
    pub stored_bars: &'a [Microbar],
    pub stored_signals: &'a [Signal],
    pub clickhouse: &'a ClickHouse,
    /// This scenario's evidence directory (created by the stage when it writes).
    pub artifacts: PathBuf,
}

/// One named check of a stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageCheck {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    pub elapsed_ms: u64,
    /// Paths of evidence files (screenshots, responses), relative to the artifacts directory.
    pub evidence: Vec<String>,
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
