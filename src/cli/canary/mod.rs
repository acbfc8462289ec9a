//! The `canary` verb: the suite run again and again, each cycle an isolated run with a fresh
//! run id, until `--max-runs` or a stop signal.
//!
//! Cycles start every `--interval` (start to start; a cycle longer than the interval is followed
//! at once), plus a random delay up to `--jitter`. SIGTERM or SIGINT while a cycle runs lets it
//! finish within `--stop-grace`, then aborts it (a second signal aborts at once); while waiting
//! between cycles it stops at once. Aborting drops the run: its producer, queries and browser
//! session end with it (the chromedriver it started and its browsers are killed), and its
//! synthetic symbols (unique to the run id) are left unused. What the aborted cycle had
//! published (symbols, messages) stays in its history line and its report.
//!
//! Every cycle appends a line to a JSON-lines history (`<artifacts_dir>/canary-history.jsonl`
//! unless `--history`), trimmed to the last `--history-keep` cycles, and writes its report to
//! `<artifacts_dir>/<run_id>/report.json`. The per-run outputs (`--junit`, `--metrics`, ...)
//! hold the latest cycle; the last-success gauge carries over failed cycles.
//!
//! Exit code: that of the last completed cycle (0 when a signal came before any completed).

pub mod history;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::console::Console;
use super::outputs::{OutputOptions, Outputs};
use super::run::{self, check_outputs, finished, print_problems};
use super::signals::StopSignals;
use super::write::{secrets, write_outputs};
use super::Outcome;
use crate::domain::report::RunReport;
use crate::domain::symbols::RunId;
use crate::report;
use crate::suite::ledger::Ledger;
use crate::suite::{self, Suite, SuiteOptions};
use history::{append_history, entry, HistoryEntry};

/// What `canary` runs, how often, and where its history goes.
#[derive(Debug, Clone)]
pub struct CanaryOptions {
    pub suite: SuiteOptions,
    pub outputs: OutputOptions,
    /// From the start of one cycle to the start of the next.
    pub interval: Duration,
    /// Wait up to this much more (uniformly random) before each next cycle.
    pub jitter: Option<Duration>,
    /// Stop after this many cycles (default: until SIGTERM or SIGINT).
    pub max_runs: Option<u64>,
    /// On a stop signal, how long the current cycle may take to finish before it is aborted.
    pub stop_grace: Duration,
    /// The history (default: `<artifacts_dir>/canary-history.jsonl`).
    pub history: Option<PathBuf>,
    /// How many cycles the history keeps.
    pub history_keep: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CanaryError {
    #[error("cannot install the signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("cannot write the history {path}: {source}")]
    History {
        path: String,
        source: std::io::Error,
    },
}

/// How a cycle ended.
enum Cycle {
    Done(Outcome, Box<RunReport>),
    /// A stop was requested and the cycle finished within the grace period.
    DoneThenStop(Outcome, Box<RunReport>),
    /// Stopped: the report holds the scenarios that finished and what the cut one published.
    Aborted(Box<RunReport>),
}

pub async fn run(args: &CanaryOptions) -> Outcome {
    let loaded = match suite::load(&args.suite) {
        Ok(l) => l,
        Err(problems) => return print_problems(problems),
    };
    let history = args
        .history
        .clone()
        .unwrap_or_else(|| loaded.config.artifacts_dir.join("canary-history.jsonl"));
    let outputs = match check_outputs(&args.outputs, &[("--history", &history)], &loaded.config) {
        Ok(o) => o,
        Err(o) => return o,
    };
    let mut stop = match StopSignals::install() {
        Ok(s) => s,
        Err(e) => {
            errln!("torghut-e2e: {e}");
            return Outcome::Unreachable;
        }
    };
    match cycles(args, &loaded, outputs, &history, &mut stop).await {
        Ok(outcome) => outcome,
        Err(e) => {
            errln!("torghut-e2e: {e}");
            Outcome::UsageOrConfig
        }
    }
}

async fn cycles(
    args: &CanaryOptions,
    loaded: &Suite,
    outputs: Outputs,
    history: &Path,
    stop: &mut StopSignals,
) -> Result<Outcome, CanaryError> {
    let mut state = State {
        last_outcome: Outcome::Pass,
        last_success: outputs
            .metrics
            .as_deref()
            .and_then(report::metrics::read_last_success),
        outputs,
    };
    for cycle in 1.. {
        let started = Instant::now();
        let (entry, stopping) = state.cycle(args, loaded, cycle, stop).await;
        append_history(history, &entry, args.history_keep)?;
        if stopping || args.max_runs.is_some_and(|n| cycle >= n) {
            break;
        }
        let pause = args
            .interval
            .saturating_sub(started.elapsed())
            .saturating_add(jitter(args.jitter));
        if !pause_or_stop(pause, cycle + 1, stop).await {
            tracing::info!("stop requested between cycles: stopping");
            break;
        }
    }
    Ok(state.last_outcome)
}

/// What carries over from cycle to cycle.
struct State {
    last_outcome: Outcome,
    last_success: Option<f64>,
    /// The per-run outputs, checked before the first cycle.
    outputs: Outputs,
}

impl State {
    /// One cycle with a fresh run id: its history entry, and whether a stop was requested.
    async fn cycle(
        &mut self,
        args: &CanaryOptions,
        loaded: &Suite,
        cycle: u64,
        stop: &mut StopSignals,
    ) -> (HistoryEntry, bool) {
        let run_id = RunId::generate();
        tracing::info!(cycle, run_id = %run_id, "canary cycle started");
        let (finished, stopping) = match one_cycle(loaded, &run_id, args.stop_grace, stop).await {
            Cycle::Done(outcome, report) => (Ok((outcome, report)), false),
            Cycle::DoneThenStop(outcome, report) => (Ok((outcome, report)), true),
            Cycle::Aborted(report) => (Err(report), true),
        };
        let entry = match finished {
            Ok((outcome, report)) => {
                self.last_outcome = outcome;
                finish(
                    loaded,
                    cycle,
                    &report,
                    &self.outputs,
                    &mut self.last_success,
                )
                .await
            }
            Err(report) => {
                tracing::warn!(cycle, run_id = %run_id, "canary cycle aborted by a stop signal");
                let path = report_path(loaded, &report);
                let saved = save_report(&path, &report)
                    .map_err(|e| tracing::error!("cannot write {}: {e}", path.display()))
                    .is_ok();
                HistoryEntry {
                    verdict: "aborted".into(),
                    exit_code: None,
                    failed: Vec::new(),
                    ..entry(cycle, &report, saved.then(|| path.display().to_string()))
                }
            }
        };
        tracing::info!(cycle, run_id = %entry.run_id, verdict = %entry.verdict, "canary cycle finished");
        (entry, stopping)
    }
}

/// Sleeps until the next cycle; false when a stop was requested meanwhile.
async fn pause_or_stop(pause: Duration, next: u64, stop: &mut StopSignals) -> bool {
    let waiting = crate::cli::progress::spinner(format!(
        "canary: cycle {next} in {}",
        humantime::format_duration(Duration::from_secs(pause.as_secs()))
    ));
    tracing::info!(
        cycle = next,
        pause_ms = pause.as_millis() as u64,
        "next canary cycle scheduled"
    );
    let slept = tokio::select! {
        _ = tokio::time::sleep(pause) => true,
        _ = stop.requested() => false,
    };
    waiting.finish_and_clear();
    slept
}

/// Runs one cycle; on a stop request lets it finish within `grace`, or aborts it.
async fn one_cycle(
    loaded: &Suite,
    run_id: &RunId,
    grace: Duration,
    stop: &mut StopSignals,
) -> Cycle {
    let ledger = Ledger::default();
    let started = (Instant::now(), time::OffsetDateTime::now_utc());
    let console = Console::default();
    let exec = suite::execute(loaded, run_id, &ledger, &console);
    tokio::pin!(exec);
    let signal = tokio::select! {
        report = &mut exec => {
            let (outcome, report) = finished(report);
            return Cycle::Done(outcome, Box::new(report));
        }
        signal = stop.requested() => signal,
    };
    tracing::info!(grace = %humantime::format_duration(grace), "stop requested: finishing the current cycle");
    tokio::select! {
        report = &mut exec => {
            let (outcome, report) = finished(report);
            return Cycle::DoneThenStop(outcome, Box::new(report));
        }
        _ = tokio::time::sleep(grace) => {}
        _ = stop.requested() => {}
    }
    let (_, report) = run::stopped(loaded, run_id, &ledger, started, signal);
    Cycle::Aborted(Box::new(report))
}

/// Writes the cycle's outputs and its report under the artifacts directory.
async fn finish(
    loaded: &Suite,
    cycle: u64,
    report: &RunReport,
    outputs: &Outputs,
    last_success: &mut Option<f64>,
) -> HistoryEntry {
    let path = report_path(loaded, report);
    let saved = save_report(&path, report)
        .map_err(|e| tracing::error!("cannot write {}: {e}", path.display()))
        .is_ok();
    // A cycle whose outputs cannot be written still counts; the errors are printed.
    let secrets = secrets(&loaded.config);
    *last_success = write_outputs(report, outputs, *last_success, &secrets)
        .await
        .last_success;
    entry(cycle, report, saved.then(|| path.display().to_string()))
}

fn report_path(loaded: &Suite, report: &RunReport) -> PathBuf {
    loaded
        .config
        .artifacts_dir
        .join(&report.run_id)
        .join("report.json")
}

fn save_report(path: &Path, report: &RunReport) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let json = serde_json::to_vec_pretty(report)?;
    std::fs::write(path, json)
}

/// A uniformly spread delay in `[0, max)`; zero without jitter. Spreads canaries of several
/// clusters that would otherwise hit shared brokers on the same second.
fn jitter(max: Option<Duration>) -> Duration {
    let Some(max) = max.filter(|m| !m.is_zero()) else {
        return Duration::ZERO;
    };
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    let millis = max.as_millis().max(1) as u64;
    Duration::from_millis(h.finish() % millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_under_its_bound() {
        assert_eq!(jitter(None), Duration::ZERO);
        for _ in 0..100 {
            assert!(jitter(Some(Duration::from_millis(50))) < Duration::from_millis(50));
        }
    }
}
