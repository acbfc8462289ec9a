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

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cli::outputs::Outputs;
use crate::cli::run::{self, Loaded};
use crate::cli::signals::StopSignals;
use crate::cli::{CanaryArgs, Outcome};
use crate::domain::report::{RunReport, Verdict};
use crate::domain::symbols::RunId;
use crate::report::{self, CheckStatus};
use crate::suite::ledger::Ledger;

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

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub cycle: u64,
    pub run_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: time::OffsetDateTime,
    pub duration_ms: u64,
    /// `pass`, `fail`, `error`, or `aborted` (stopped by a signal before it finished).
    pub verdict: String,
    pub exit_code: Option<u8>,
    /// The checks that did not pass, as `suite: check`.
    pub failed: Vec<String>,
    /// The cycle's JSON report.
    pub report: Option<String>,
    /// Every symbol the cycle published to (also when it was aborted).
    #[serde(default)]
    pub symbols: Vec<String>,
    /// Messages the cycle sent, and how many of them the broker acknowledged.
    #[serde(default)]
    pub messages_published: usize,
    #[serde(default)]
    pub messages_acknowledged: usize,
}

/// How a cycle ended.
enum Cycle {
    Done(Outcome, Box<RunReport>),
    /// A stop was requested and the cycle finished within the grace period.
    DoneThenStop(Outcome, Box<RunReport>),
    /// Stopped: the report holds the scenarios that finished and what the cut one published.
    Aborted(Box<RunReport>),
}

pub async fn run(args: &CanaryArgs) -> Outcome {
    let loaded = match run::load(&args.suite) {
        Ok(l) => l,
        Err(o) => return o,
    };
    let history = args
        .history
        .clone()
        .unwrap_or_else(|| loaded.config.artifacts_dir.join("canary-history.jsonl"));
    let outputs =
        match run::check_outputs(&args.outputs, &[("--history", &history)], &loaded.config) {
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
    args: &CanaryArgs,
    loaded: &Loaded,
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
        args: &CanaryArgs,
        loaded: &Loaded,
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
    loaded: &Loaded,
    run_id: &RunId,
    grace: Duration,
    stop: &mut StopSignals,
) -> Cycle {
    let ledger = Ledger::default();
    let started = (Instant::now(), time::OffsetDateTime::now_utc());
    let exec = run::execute(loaded, run_id, &ledger);
    tokio::pin!(exec);
    let signal = tokio::select! {
        (outcome, report) = &mut exec => return Cycle::Done(outcome, Box::new(report)),
        signal = stop.requested() => signal,
    };
    tracing::info!(grace = %humantime::format_duration(grace), "stop requested: finishing the current cycle");
    tokio::select! {
        (outcome, report) = &mut exec => {
            return Cycle::DoneThenStop(outcome, Box::new(report))
        }
        _ = tokio::time::sleep(grace) => {}
        _ = stop.requested() => {}
    }
    Cycle::Aborted(Box::new(run::stopped_report(
        loaded, run_id, &ledger, started, signal,
    )))
}

/// Writes the cycle's outputs and its report under the artifacts directory.
async fn finish(
    loaded: &Loaded,
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
    let secrets = run::secrets(&loaded.config);
    *last_success = run::write_outputs(report, outputs, *last_success, &secrets)
        .await
        .last_success;
    entry(cycle, report, saved.then(|| path.display().to_string()))
}

fn report_path(loaded: &Loaded, report: &RunReport) -> PathBuf {
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

fn entry(cycle: u64, report: &RunReport, path: Option<String>) -> HistoryEntry {
    let failed = report::checks(report)
        .iter()
        .flat_map(|s| {
            s.checks
                .iter()
                .filter(|c| c.status != CheckStatus::Pass)
                .map(move |c| format!("{}: {}", s.name, c.name))
        })
        .collect();
    HistoryEntry {
        cycle,
        run_id: report.run_id.clone(),
        started_at: report.started_at,
        duration_ms: report.duration_ms,
        verdict: match report.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
        }
        .into(),
        exit_code: Some(report.exit_code),
        failed,
        report: path,
        symbols: published_symbols(report),
        messages_published: report.scenarios.iter().map(|s| s.messages_published).sum(),
        messages_acknowledged: report
            .scenarios
            .iter()
            .map(|s| s.messages_acknowledged)
            .sum(),
    }
}

/// The symbols of every scenario that sent anything, sorted.
fn published_symbols(report: &RunReport) -> Vec<String> {
    let mut symbols: Vec<String> = report
        .scenarios
        .iter()
        .filter(|s| s.messages_published > 0)
        .flat_map(|s| s.symbols.values().cloned())
        .collect();
    symbols.sort();
    symbols.dedup();
    symbols
}

/// Appends one line and keeps the last `keep` lines (rewritten atomically when trimmed).
pub fn append_history(path: &Path, entry: &HistoryEntry, keep: usize) -> Result<(), CanaryError> {
    let err = |source| CanaryError::History {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let line = serde_json::to_string(entry).map_err(|e| err(e.into()))?;
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<&str> = existing.lines().filter(|l| !l.trim().is_empty()).collect();
    lines.push(&line);
    if lines.len() <= keep.max(1) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        return writeln!(f, "{line}").map_err(err);
    }
    let kept = &lines[lines.len() - keep.max(1)..];
    let tmp: PathBuf = path.with_extension("jsonl.tmp");
    std::fs::write(&tmp, kept.join("\n") + "\n").map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Reads the history, oldest first; malformed lines are skipped.
pub fn read_history(path: &Path) -> Vec<HistoryEntry> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
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

    fn sample_entry(cycle: u64) -> HistoryEntry {
        HistoryEntry {
            cycle,
            run_id: format!("RUN{cycle}"),
            started_at: time::macros::datetime!(2026-01-01 00:00:00 UTC),
            duration_ms: 10,
            verdict: "pass".into(),
            exit_code: Some(0),
            failed: vec![],
            report: None,
            symbols: vec![],
            messages_published: 0,
            messages_acknowledged: 0,
        }
    }

    #[test]
    fn history_keeps_the_last_cycles() {
        let dir = std::env::temp_dir().join(format!("t2e-history-{}", std::process::id()));
        let path = dir.join("h.jsonl");
        std::fs::remove_dir_all(&dir).ok();
        for cycle in 1..=5 {
            append_history(&path, &sample_entry(cycle), 3).unwrap();
        }
        let cycles: Vec<u64> = read_history(&path).iter().map(|e| e.cycle).collect();
        assert_eq!(cycles, vec![3, 4, 5]);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn jitter_stays_under_its_bound() {
        assert_eq!(jitter(None), Duration::ZERO);
        for _ in 0..100 {
            assert!(jitter(Some(Duration::from_millis(50))) < Duration::from_millis(50));
        }
    }

    #[test]
    fn a_failed_report_lists_its_failed_checks() {
        let e = entry(7, &crate::report::sample::sample(), None);
        assert_eq!(e.verdict, "fail");
        assert!(e
            .failed
            .contains(&"probe: clickhouse ta_signals".to_string()));
    }
}
