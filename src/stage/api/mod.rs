//! The Jangar API stage (issue 7): the run's rows one hop further on, through
//! `/api/torghut/ta/{bars,signals,latest}` (`shared/contracts/jangar.md` §1).
//!
//! Two modes, both first-class:
//! - **synthetic** (default): Jangar can see the run's synthetic symbols (local stack, staging),
//!   so bars, signals and latest are checked exactly against ClickHouse (FINAL) and the oracle;
//! - **live symbol** (`jangar.live_symbol`): production Jangar reads only `torghut` and lists
//!   only the trading universe, so the stage observes that symbol instead: the API against
//!   ClickHouse read the way Jangar reads it (no FINAL), contract and freshness.
//!
//! Either way the contract checks run (every 400 message, bounds, unknown symbol, content
//! type), failures are mapped to causes with runbooks, and every request's attempts are kept in
//! `observed.requests`. Response bodies are written to `<artifacts>/api/` as evidence.

mod contract;
mod decode;
mod envelope;
mod findings;
mod latest;
mod live;
mod observe;
mod rows;
#[cfg(test)]
mod tests;
mod zone;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use serde_json::Value;

use crate::domain::diagnose::Finding;
use crate::domain::report::{StageCheck, StageReport};
use crate::stage::StageContext;

use crate::adapter::jangar::{CallResult, Endpoint, JangarClient, Reply};
use findings::Findings;
pub use live::JANGAR_DATABASE;

/// The stage's name in reports.
pub const STAGE: &str = "api";

pub async fn run_stage(ctx: &StageContext<'_>) -> StageReport {
    let started = Instant::now();
    let mut report = observe_and_check(ctx).await;
    report.observed.insert(
        "stage_ms".into(),
        Value::from(started.elapsed().as_millis() as u64),
    );
    report
}

async fn observe_and_check(ctx: &StageContext<'_>) -> StageReport {
    let mut rec = Recorder::new(ctx.artifacts.join("api"), ctx.config.jangar.strict_contract);
    let Some(base) = ctx.config.jangar.base_url.as_deref() else {
        rec.check(
            "jangar base URL",
            Err("no Jangar base URL: set TORGHUT_E2E_JANGAR_URL or [jangar] base_url".into()),
            Instant::now(),
            Vec::new(),
        );
        return rec.finish("");
    };
    let jangar = &ctx.config.jangar;
    let client = match JangarClient::with_auth(
        base,
        jangar.auth.as_ref(),
        jangar.request_timeout,
        jangar.retries,
    ) {
        Ok(c) => c,
        Err(e) => {
            rec.check(
                "jangar base URL",
                Err(e.to_string()),
                Instant::now(),
                vec![],
            );
            return rec.finish(base);
        }
    };
    rec.observe("base_url", Value::from(client.base()));
    let probe = match &jangar.live_symbol {
        Some(symbol) => {
            rec.observe("mode", Value::from("live_symbol"));
            live::observe(ctx, &client, &mut rec, symbol).await
        }
        None => {
            rec.observe("mode", Value::from("synthetic"));
            observe::synthetic(ctx, &client, &mut rec).await
        }
    };
    contract::check(ctx, &client, &mut rec, probe).await;
    let history = serde_json::to_value(client.history()).unwrap_or_default();
    rec.observe("requests", history);
    rec.finish(client.base())
}

/// Collects a stage's checks, findings, observations and evidence as it goes.
pub(crate) struct Recorder {
    checks: Vec<StageCheck>,
    findings: Findings,
    observed: BTreeMap<String, Value>,
    /// `<artifacts>/api`: where response bodies go.
    evidence_dir: PathBuf,
    /// `jangar.strict_contract`: drift the page survives fails checks instead of warning.
    strict: bool,
}

impl Recorder {
    fn new(evidence_dir: PathBuf, strict: bool) -> Self {
        Self {
            checks: Vec::new(),
            findings: Findings::new(strict),
            observed: BTreeMap::new(),
            evidence_dir,
            strict,
        }
    }

    fn check(
        &mut self,
        name: impl Into<String>,
        outcome: Result<String, String>,
        started: Instant,
        evidence: Vec<String>,
    ) {
        let (ok, detail) = match outcome {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        self.checks.push(StageCheck {
            name: name.into(),
            ok,
            detail,
            elapsed_ms: started.elapsed().as_millis() as u64,
            evidence,
            pending: false,
        });
    }

    fn observe(&mut self, key: &str, value: Value) {
        self.observed.insert(key.to_string(), value);
    }

    fn finding(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    /// The JSON of a 200 answer, or why the call did not give one (the cause is noted).
    fn expect_ok<'a>(&mut self, endpoint: Endpoint, reply: &'a Reply) -> Result<&'a Value, String> {
        match &reply.result {
            Ok(a) if a.status == 200 => a.json.as_ref().ok_or_else(|| {
                let detail = format!(
                    "{endpoint} answered 200 with a body that is not JSON: {}",
                    crate::adapter::jangar::first_line(&a.body)
                );
                self.finding(findings::contract(detail.clone()));
                detail
            }),
            result => {
                let noted = self.findings.call(endpoint, result);
                // Otherwise a 400 for parameters the validator built by the contract.
                if !noted && result.is_ok() {
                    self.finding(findings::contract(format!(
                        "{endpoint} rejected valid parameters: {}",
                        reply.describe()
                    )));
                }
                Err(format!("{endpoint} {}", reply.describe()))
            }
        }
    }

    /// Writes the body of an answer as `<artifacts>/api/<name>`; returns its relative path.
    async fn save(&self, name: &str, result: &CallResult) -> Vec<String> {
        let Ok(answer) = result else {
            return Vec::new();
        };
        if let Err(e) = tokio::fs::create_dir_all(&self.evidence_dir).await {
            tracing::warn!(dir = %self.evidence_dir.display(), error = %e, "cannot write API evidence");
            return Vec::new();
        }
        let path = self.evidence_dir.join(name);
        match tokio::fs::write(&path, &answer.body).await {
            Ok(()) => vec![format!("api/{name}")],
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot write API evidence");
                Vec::new()
            }
        }
    }

    fn finish(self, base_url: &str) -> StageReport {
        StageReport {
            stage: STAGE.into(),
            checks: self.checks,
            findings: self.findings.into_vec(base_url),
            observed: self.observed,
            ..StageReport::default()
        }
        .conclude()
    }
}

/// A symbol with rows and a window, for the contract checks that need data to answer.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    pub symbol: String,
    pub from: time::OffsetDateTime,
    pub to: time::OffsetDateTime,
    /// Rows of the symbol in [from, to] as Jangar should return them, when known exactly.
    pub bars_in_window: Option<usize>,
    /// Rows at exactly `from` (for the `from == to` case), when known exactly.
    pub bars_at_from: Option<usize>,
    /// Synthetic mode: the window holds rows, so the stale-window fallback must not be used.
    pub exact: bool,
}
