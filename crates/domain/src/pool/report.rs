//! What a pool run knew of its symbols' past and how it checked them (`report.json`), and the
//! findings when a history does not continue where ClickHouse says it ends.

use time::OffsetDateTime;

use super::{first_seq, HistoryKind, Lease, Retired, SessionFit};
use crate::diagnose::{self, Finding, Hop};
use crate::model::Microbar;

/// What a pool run knew of its symbols' past and how it checked them (`report.json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PoolReport {
    pub pool: String,
    pub generation: u8,
    pub retired: Vec<Retired>,
    pub symbols: Vec<PoolSymbol>,
    /// How long the run waited for the quote-freshness window after the history to pass.
    pub waited_for_history_ms: u64,
    /// The run read back only rows ending after this (its own start); history ends before it.
    #[serde(with = "time::serde::rfc3339")]
    pub rows_after: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PoolSymbol {
    pub symbol: String,
    pub history: HistoryKind,
    pub history_rows: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_event_ts: Option<OffsetDateTime>,
    /// `exact` (sums over the whole history) or `fitted` (see [`fit_prior_volume`]).
    pub vwap_session: &'static str,
    pub prior_volume: Option<f64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub prior_volume_fixed_by: Option<OffsetDateTime>,
    /// Bars the job emitted after the history was read and before this run's first bar (an
    /// earlier run's open bar), added to the seed.
    pub caught_up_bars: u64,
    /// The job restarted without state since the history was written: predicted from nothing.
    pub state_reset: bool,
    pub problem: Option<String>,
}

impl PoolReport {
    pub fn new(lease: &Lease, waited: std::time::Duration, rows_after: OffsetDateTime) -> Self {
        PoolReport {
            pool: lease.pool.to_string(),
            generation: lease.generation,
            retired: lease.retired.clone(),
            symbols: lease
                .symbols
                .iter()
                .map(|(_, s)| PoolSymbol {
                    symbol: s.symbol.clone(),
                    history: s.kind,
                    history_rows: s.rows,
                    first_seq: s.first_seq,
                    last_seq: s.seed.last_seq,
                    last_event_ts: s.last_event_ts,
                    vwap_session: if s.kind == HistoryKind::PrefixExpired {
                        "fitted"
                    } else {
                        "exact"
                    },
                    prior_volume: None,
                    prior_volume_fixed_by: None,
                    caught_up_bars: 0,
                    state_reset: false,
                    problem: None,
                })
                .collect(),
            waited_for_history_ms: waited.as_millis() as u64,
            rows_after,
        }
    }

    pub fn record_fit(&mut self, symbol: &str, fit: &SessionFit) {
        if let Some(s) = self.symbols.iter_mut().find(|s| s.symbol == symbol) {
            s.prior_volume = fit.prior_volume;
            s.prior_volume_fixed_by = fit.fixed_by;
            s.problem = fit.problem.clone();
        }
    }

    /// The job restarted without state: `symbol` is predicted from nothing, exactly.
    pub fn record_state_reset(&mut self, symbol: &str) {
        if let Some(s) = self.symbols.iter_mut().find(|s| s.symbol == symbol) {
            s.state_reset = true;
            s.vwap_session = "exact";
        }
    }

    /// `bars` emitted after the seed were added to `symbol`'s.
    pub fn record_caught_up(&mut self, symbol: &str, bars: u64) {
        if let Some(s) = self.symbols.iter_mut().find(|s| s.symbol == symbol) {
            s.caught_up_bars = bars;
        }
    }

    /// A history that does not continue where ClickHouse says it ends, or a session VWAP that
    /// cannot continue it.
    pub fn findings(&self, stored: &[Microbar]) -> Vec<Finding> {
        let mut findings = Vec::new();
        for s in &self.symbols {
            let first = first_seq(stored, &s.symbol);
            let known = if s.state_reset {
                0
            } else {
                s.last_seq + s.caught_up_bars
            };
            if let Some(first) = first.filter(|&f| f != known + 1) {
                findings.push(Finding {
                    hop: Hop::ClickhouseSink,
                    cause: format!(
                        "the TA job continued {} at seq {first}, but ClickHouse holds its \
                         history only up to seq {known}: the job's state has bars ClickHouse \
                         never got (an earlier run's rows were lost, or expired while the \
                         symbol sat unused past the TTL), so its expectations cannot hold; \
                         once the gap shows, the next run retires generation {}",
                        s.symbol, self.generation
                    ),
                    runbook: RUNBOOK_POOL,
                    severity: diagnose::Severity::Failure,
                });
            }
            if let Some(problem) = &s.problem {
                findings.push(Finding {
                    hop: Hop::TaJob,
                    cause: format!("{}: {problem}", s.symbol),
                    runbook: diagnose::RUNBOOK_TA_MATHS,
                    severity: diagnose::Severity::Failure,
                });
            }
        }
        findings
    }
}

/// Where on-call reads about pool histories.
pub const RUNBOOK_POOL: &str = "README \"Reserved symbol pool\"; operations.md §3 (ClickHouse \
     sink failures lose rows the job's state still holds)";
