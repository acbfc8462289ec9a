//! The canary's history: one JSON line per cycle, trimmed to the last cycles, and the line a
//! cycle's report makes.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::CanaryError;
use crate::domain::report::{RunReport, Verdict};
use crate::report::{self, CheckStatus};

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

/// The history line of a cycle whose report is saved at `path`.
pub fn entry(cycle: u64, report: &RunReport, path: Option<String>) -> HistoryEntry {
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
    fn a_failed_report_lists_its_failed_checks() {
        let e = entry(7, &crate::report::sample::sample(), None);
        assert_eq!(e.verdict, "fail");
        assert!(e
            .failed
            .contains(&"probe: clickhouse ta_signals".to_string()));
    }
}
