//! The `run` and `lint` verbs: load, preflight, run each scenario, report, exit.

use std::path::{Path, PathBuf};
use std::time::Instant;

use time::OffsetDateTime;

use super::console::Console;
use super::outputs::{OutputOptions, Outputs};
use super::signals::{Stop, StopSignals};
use super::write::{secrets, write_outputs, Written};
use super::Outcome;
use crate::config::Config;
use crate::domain::report::RunReport;
use crate::domain::scenario::Limits;
use crate::domain::symbols::RunId;
use crate::report;
use crate::suite::ledger::Ledger;
use crate::suite::{self, Problems, Suite, SuiteOptions};

/// What `run` runs and where its results go.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub suite: SuiteOptions,
    pub outputs: OutputOptions,
    /// This run id instead of a fresh one (its symbols must have no rows yet).
    pub run_id: Option<String>,
}

/// What `lint` checks.
#[derive(Debug, Clone)]
pub struct LintOptions {
    /// Scenario files or directories of them.
    pub scenarios: Vec<PathBuf>,
    pub limits: Limits,
}

pub fn lint(options: &LintOptions) -> Outcome {
    match suite::load_scenarios(&options.scenarios, None, &options.limits) {
        Ok(list) => {
            for s in &list {
                outln!(
                    "{}: ok ({} events, stages {:?})",
                    s.path.display(),
                    s.events.len(),
                    s.stages
                );
            }
            Outcome::Pass
        }
        Err(problems) => print_problems(problems),
    }
}

pub async fn run(options: &RunOptions) -> Outcome {
    let suite = match suite::load(&options.suite) {
        Ok(s) => s,
        Err(problems) => return print_problems(problems),
    };
    let run_id = match &options.run_id {
        Some(id) => match RunId::from_string(id) {
            Some(r) => r,
            None => {
                errln!(
                    "torghut-e2e: invalid run id {id:?}: 1-10 characters of 0-9 A-Z (Crockford)"
                );
                return Outcome::UsageOrConfig;
            }
        },
        None => RunId::generate(),
    };
    let outputs = match check_outputs(&options.outputs, &[], &suite.config) {
        Ok(o) => o,
        Err(o) => return o,
    };
    let ledger = Ledger::default();
    let started = (Instant::now(), OffsetDateTime::now_utc());
    let console = Console::default();
    let (outcome, report) =
        match until_stopped(suite::execute(&suite, &run_id, &ledger, &console)).await {
            Ok(report) => finished(report),
            Err(stop) => stopped(&suite, &run_id, &ledger, started, stop),
        };
    let previous = outputs
        .metrics
        .as_deref()
        .and_then(report::metrics::read_last_success);
    let secrets = secrets(&suite.config);
    let written = write_outputs(&report, &outputs, previous, &secrets).await;
    with_outputs(outcome, &written)
}

/// Prints why the suite cannot run: a usage or configuration error.
pub fn print_problems(problems: Problems) -> Outcome {
    for line in problems.0 {
        errln!("{line}");
    }
    Outcome::UsageOrConfig
}

/// Checks every output before anything is published (see `outputs`); prints every problem.
pub fn check_outputs(
    options: &OutputOptions,
    more: &[(&str, &Path)],
    config: &Config,
) -> Result<Outputs, Outcome> {
    Outputs::check(options, more, &config.artifacts_dir).map_err(|errors| {
        for e in errors {
            errln!("torghut-e2e: {e}");
        }
        Outcome::UsageOrConfig
    })
}

/// A finished run's exit code, recorded in its report.
pub fn finished(mut report: RunReport) -> (Outcome, RunReport) {
    let outcome = Outcome::from(report.verdict);
    report.exit_code = outcome as u8;
    (outcome, report)
}

/// The exit code once the outputs are written: a failed check (1) or an unreachable target (3)
/// stands, whatever happened to the outputs; a pass whose outputs could not all be written is
/// a usage error (2): the evidence asked for is missing.
pub fn with_outputs(outcome: Outcome, written: &Written) -> Outcome {
    if outcome == Outcome::Pass && !written.failed.is_empty() {
        Outcome::UsageOrConfig
    } else {
        outcome
    }
}

/// Runs `work` unless a stop signal comes first; dropping it then ends what it started
/// (chromedriver and its browsers, the producer, queries).
async fn until_stopped<T>(work: impl std::future::Future<Output = T>) -> Result<T, Stop> {
    let mut stop = match StopSignals::install() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot install the signal handlers: a stop kills at once");
            return Ok(work.await);
        }
    };
    tokio::select! {
        done = work => Ok(done),
        signal = stop.requested() => Err(signal),
    }
}

pub fn stopped_outcome(stop: Stop) -> Outcome {
    match stop {
        Stop::Term => Outcome::Terminated,
        Stop::Int => Outcome::Interrupted,
    }
}

/// A run that a signal stopped: says what it had published, and its report (the scenarios
/// that finished, and the one it cut short with what that had published).
pub fn stopped(
    suite: &Suite,
    run_id: &RunId,
    ledger: &Ledger,
    started: (Instant, OffsetDateTime),
    stop: Stop,
) -> (Outcome, RunReport) {
    let cause = format!("stopped by {} before it finished", stop.name());
    let totals = ledger.totals();
    if totals.published_anything() {
        errln!("torghut-e2e: {cause}, after publishing: {totals}");
    } else {
        errln!("torghut-e2e: {cause}; nothing was published");
    }
    let outcome = stopped_outcome(stop);
    let mut report = suite::stopped_report(suite, run_id, ledger, started, &cause);
    report.exit_code = outcome as u8;
    (outcome, report)
}
