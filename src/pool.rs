//! The reserved symbol pool of long-running canaries (`pipeline.md` §7.2 rule 4).
//!
//! A fresh symbol per run gives exact expectations but adds keyed Flink state and an entry in the
//! status heartbeat's symbol map every run, forever. A pool reuses a fixed set of symbols,
//! `ZZT2E-<POOL>.<G>-<ALIAS>`, and seeds the oracle from each symbol's history in ClickHouse: the
//! last `seq`, the newest 360 bars (the job's retained list) and the session sums.
//!
//! That history is trustworthy only when ClickHouse holds every bar the job emitted. A
//! generation `G` whose history has a gap (an earlier run lost rows) no longer matches the job's
//! state: it is retired and the next generation is used, so state stays bounded by
//! [`GENERATIONS`] × aliases symbols. The `.` keeps pool symbols apart from per-run ones
//! (`ZZT2E-<RUN>-<ALIAS>`: run ids never contain one).

use std::collections::HashMap;

use time::OffsetDateTime;

use crate::clickhouse::{ClickHouse, ClickHouseError, HistoryCut, HistoryStats};
use crate::diagnose::{self, Finding, Hop};
use crate::model::{Columns, Microbar, RowKey, Signal};
use crate::oracle::{BarInput, SeedState, SessionSums};
use crate::symbols::RESERVED_PREFIX;

/// How many generations a pool may use before it must be renamed.
pub const GENERATIONS: u8 = 10;
/// The job's retained bar list (`SignalConfig::history_limit`).
pub const RETAINED_BARS: usize = 360;

/// A pool's name: 1 to 8 characters of `A-Z 0-9`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolName(String);

impl std::str::FromStr for PoolName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let ok = (1..=8).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if ok {
            Ok(PoolName(s.to_string()))
        } else {
            Err(format!(
                "invalid pool name {s:?}: 1-8 characters of A-Z 0-9"
            ))
        }
    }
}

impl std::fmt::Display for PoolName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PoolName {
    /// The pool symbol of `alias` in `generation`.
    pub fn symbol(&self, generation: u8, alias: &str) -> String {
        format!("{RESERVED_PREFIX}{}.{generation}-{alias}", self.0)
    }

    /// The one clock symbol of the pool (its bars are never checked, so it needs no generation).
    pub fn clock(&self) -> String {
        format!("{RESERVED_PREFIX}{}.CLOCK", self.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error(
        "every generation of pool {pool} is retired ({}); choose a new pool name",
        retired.iter().map(|r| format!("{}: {}", r.symbol, r.reason)).collect::<Vec<_>>().join("; ")
    )]
    Exhausted { pool: String, retired: Vec<Retired> },
    #[error(transparent)]
    ClickHouse(#[from] ClickHouseError),
}

/// A generation skipped because one of its symbols' history cannot seed the oracle.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Retired {
    pub generation: u8,
    pub symbol: String,
    pub reason: String,
}

/// What ClickHouse shows of a symbol's past, and so how exactly it can be predicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    /// No rows: a new symbol (or one unused for longer than the 35-day TTL; see the README).
    Fresh,
    /// Every bar from seq 1 on: everything, `vwap_session` included, is exact.
    Complete,
    /// The oldest rows expired (TTL) but ≥ 360 contiguous ones remain: the job's retained list is
    /// known, the session volume before them is not (`vwap_session` is fitted, see [`fit_prior_volume`]).
    PrefixExpired,
}

/// Whether a symbol's history can seed the oracle, and how.
pub fn classify(stats: &HistoryStats) -> Result<HistoryKind, String> {
    if stats.rows == 0 {
        return Ok(HistoryKind::Fresh);
    }
    let span = stats.last_seq.saturating_sub(stats.first_seq) + 1;
    if stats.rows < span {
        return Err(format!(
            "{} of seqs {}..={} missing: an earlier run's rows never reached ClickHouse, so the \
             job's state is not what ClickHouse shows",
            span - stats.rows,
            stats.first_seq,
            stats.last_seq
        ));
    }
    if stats.rows > span {
        return Err(format!(
            "{} rows for seqs {}..={}: one seq stored twice under different bar ends",
            stats.rows, stats.first_seq, stats.last_seq
        ));
    }
    if stats.first_seq == 1 {
        Ok(HistoryKind::Complete)
    } else if stats.rows as usize >= RETAINED_BARS {
        Ok(HistoryKind::PrefixExpired)
    } else {
        Err(format!(
            "rows before seq {} are gone and only {} remain: the job's {RETAINED_BARS} retained \
             bars cannot be rebuilt",
            stats.first_seq, stats.rows
        ))
    }
}

/// One pool symbol ready to publish to: its history and the oracle's seed.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub symbol: String,
    pub kind: HistoryKind,
    pub rows: u64,
    pub first_seq: u64,
    pub last_event_ts: Option<OffsetDateTime>,
    /// `vwap_session` of the newest stored signal: the anchor of a fitted session volume.
    pub last_vwap_session: Option<f64>,
    pub seed: SeedState,
}

/// The generation a run uses, its seeded symbols (by alias) and what was skipped to get there.
#[derive(Debug, Clone)]
pub struct Lease {
    pub pool: PoolName,
    pub generation: u8,
    pub symbols: Vec<(String, Seeded)>,
    pub retired: Vec<Retired>,
}

impl Lease {
    /// The newest bar end of any symbol's history: this run's trades must come after it.
    pub fn last_event_ts(&self) -> Option<OffsetDateTime> {
        self.symbols
            .iter()
            .filter_map(|(_, s)| s.last_event_ts)
            .max()
    }
}

/// Picks the first generation whose every symbol's history can seed the oracle, and seeds it.
pub async fn lease(
    clickhouse: &ClickHouse,
    pool: &PoolName,
    aliases: &[String],
) -> Result<Lease, PoolError> {
    let mut retired = Vec::new();
    for generation in 0..GENERATIONS {
        let symbols: Vec<String> = aliases.iter().map(|a| pool.symbol(generation, a)).collect();
        let stats = clickhouse.history_stats(&symbols, None).await?;
        let mut kinds = Vec::new();
        let mut clean = true;
        for symbol in &symbols {
            let s = stats
                .iter()
                .find(|s| &s.symbol == symbol)
                .cloned()
                .unwrap_or_else(|| empty_stats(symbol));
            match classify(&s) {
                Ok(kind) => kinds.push((s, kind)),
                Err(reason) => {
                    clean = false;
                    retired.push(Retired {
                        generation,
                        symbol: symbol.clone(),
                        reason,
                    });
                }
            }
        }
        if !clean {
            continue;
        }
        let mut seeded = Vec::new();
        for (alias, (stats, kind)) in aliases.iter().zip(kinds) {
            seeded.push((alias.clone(), seed(clickhouse, stats, kind, None).await?));
        }
        return Ok(Lease {
            pool: pool.clone(),
            generation,
            symbols: seeded,
            retired,
        });
    }
    Err(PoolError::Exhausted {
        pool: pool.to_string(),
        retired,
    })
}

/// The stats of a symbol without rows.
pub fn empty_stats(symbol: &str) -> HistoryStats {
    HistoryStats {
        symbol: symbol.to_string(),
        rows: 0,
        first_seq: 0,
        last_seq: 0,
        last_event_ts: OffsetDateTime::UNIX_EPOCH,
        sum_cv: 0.0,
        sum_v: 0.0,
    }
}

/// The oracle's seed for one symbol from its stored history (`stats`, classified as `kind`): the
/// last seq, the retained bars and the session sums, as they are now or, with a `cut`, as they
/// were right after the job emitted that bar (the audit's window start).
pub async fn seed(
    clickhouse: &ClickHouse,
    stats: HistoryStats,
    kind: HistoryKind,
    cut: Option<HistoryCut>,
) -> Result<Seeded, ClickHouseError> {
    if kind == HistoryKind::Fresh {
        return Ok(Seeded {
            symbol: stats.symbol,
            kind,
            rows: 0,
            first_seq: 0,
            last_event_ts: None,
            last_vwap_session: None,
            seed: SeedState::default(),
        });
    }
    let bars = clickhouse
        .latest_microbars(&stats.symbol, RETAINED_BARS, cut)
        .await?;
    let last_vwap_session = clickhouse.latest_vwap_session(&stats.symbol, cut).await?;
    Ok(Seeded {
        kind,
        rows: stats.rows,
        first_seq: stats.first_seq,
        last_event_ts: Some(stats.last_event_ts),
        last_vwap_session,
        seed: SeedState {
            last_seq: stats.last_seq,
            bars: bars.iter().map(BarInput::from).collect(),
            // Exact for a complete history; for an expired prefix a placeholder the run
            // replaces with the fitted volume.
            session: SessionSums {
                pv: stats.sum_cv,
                volume: stats.sum_v,
            },
            // The run starts more than the quote-freshness window after this history, so no
            // quote of an earlier run can apply to its bars.
            last_quote: None,
        },
        symbol: stats.symbol,
    })
}

/// The session volume before this run that explains the observed `vwap_session` values.
///
/// With `r0` the newest stored `vwap_session` and `V` the unknown volume behind it, bar `k` of
/// this run must show `r_k = (r0·V + C_k) / (V + W_k)` (`C_k` = Σ c·v, `W_k` = Σ v over the run's
/// bars up to `k`), so `V = (C_k − r_k·W_k) / (r_k − r0)`. The row where `r` moved furthest from
/// `r0` fixes `V` (the best-conditioned one); every other row is then predicted exactly. `None`
/// when no row moved (any `V` explains them: all must equal `r0`).
pub fn fit_prior_volume(r0: f64, bars: &[(f64, f64)], observed: &[Option<f64>]) -> Option<Fit> {
    let (mut cv, mut w) = (0.0, 0.0);
    let mut best: Option<Fit> = None;
    let mut best_move = r0.abs() * 1e-12;
    for (k, (&(c, v), r)) in bars.iter().zip(observed).enumerate() {
        cv += c * v;
        w += v;
        let Some(r) = *r else { continue };
        let moved = (r - r0).abs();
        if moved > best_move {
            best_move = moved;
            best = Some(Fit {
                volume: (cv - r * w) / (r - r0),
                row: k,
            });
        }
    }
    best
}

/// A fitted prior session volume and the row that fixed it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Fit {
    pub volume: f64,
    pub row: usize,
}

/// Brings each symbol's seed up to the job's state as this run's first bar shows it:
/// - seq 1 after a history: the job restarted without state (the simulation lane's deployment
///   upgrades `stateless`), so the run is predicted from nothing;
/// - a later seq than expected: the bars the job emitted between seeding and this run's first
///   bar (the bar an interrupted run left open is closed by this run's first trade) are added,
///   if ClickHouse has all of them; anything else stays a finding.
pub async fn catch_up(
    clickhouse: &ClickHouse,
    lease: &Lease,
    stored: &[Microbar],
    report: &mut PoolReport,
) -> Result<Lease, ClickHouseError> {
    let mut lease = lease.clone();
    for (_, seeded) in lease.symbols.iter_mut() {
        let first = first_seq(stored, &seeded.symbol);
        if first == Some(1) && seeded.seed.last_seq > 0 {
            seeded.seed = SeedState::default();
            seeded.kind = HistoryKind::Fresh;
            if let Some(s) = report
                .symbols
                .iter_mut()
                .find(|s| s.symbol == seeded.symbol)
            {
                s.state_reset = true;
                s.vwap_session = "exact";
            }
            continue;
        }
        let Some(first) = first.filter(|&f| f > seeded.seed.last_seq + 1) else {
            continue;
        };
        let missed = clickhouse
            .microbars_between_seqs(&seeded.symbol, seeded.seed.last_seq, first)
            .await?;
        if missed.len() as u64 != first - seeded.seed.last_seq - 1 {
            continue;
        }
        for bar in &missed {
            seeded.seed.bars.push(BarInput::from(bar));
            seeded.seed.session.add(bar.c, bar.v);
        }
        let excess = seeded.seed.bars.len().saturating_sub(RETAINED_BARS);
        seeded.seed.bars.drain(..excess);
        seeded.seed.last_seq = first - 1;
        if let Some(s) = report
            .symbols
            .iter_mut()
            .find(|s| s.symbol == seeded.symbol)
        {
            s.caught_up_bars = missed.len() as u64;
        }
    }
    Ok(lease)
}

/// The lowest seq among the run's stored bars of `symbol`.
fn first_seq(stored: &[Microbar], symbol: &str) -> Option<u64> {
    stored
        .iter()
        .filter(|b| b.symbol == symbol)
        .map(|b| b.seq)
        .min()
}

/// The session sums a prefix-expired symbol is predicted with, and how they were found.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionFit {
    pub session: SessionSums,
    pub prior_volume: Option<f64>,
    /// The bar whose `vwap_session` fixed the volume.
    pub fixed_by: Option<OffsetDateTime>,
    /// Why the stored values cannot continue the history, if they cannot.
    pub problem: Option<String>,
}

/// Fits the session volume before this run from the run's stored bars and signals of the
/// symbol (see [`fit_prior_volume`]). The run's bars are checked exactly on their own; here they
/// only carry `c·v` and `v`.
pub fn fit_session(seeded: &Seeded, bars: &[Microbar], signals: &[Signal]) -> SessionFit {
    let retained = seeded.seed.session;
    let Some(r0) = seeded.last_vwap_session else {
        return SessionFit {
            session: retained,
            prior_volume: None,
            fixed_by: None,
            problem: Some("no vwap_session is stored before this run to continue from".into()),
        };
    };
    let session: HashMap<RowKey, Option<f64>> = signals
        .iter()
        .filter(|s| s.symbol == seeded.symbol)
        .map(|s| (s.key(), s.vwap_session))
        .collect();
    let mut rows: Vec<(&Microbar, Option<f64>)> = bars
        .iter()
        .filter(|b| b.symbol == seeded.symbol)
        .map(|b| (b, session.get(&b.key()).copied().flatten()))
        .collect();
    // Emission order: the session sums accumulate bar by bar as the job emitted them, and a
    // late bar (an earlier end, a later seq) joins them when it is emitted.
    rows.sort_by_key(|(b, _)| b.seq);
    let cv: Vec<(f64, f64)> = rows.iter().map(|(b, _)| (b.c, b.v)).collect();
    let observed: Vec<Option<f64>> = rows.iter().map(|(_, r)| *r).collect();
    let session = |volume: f64| SessionSums {
        pv: r0 * volume,
        volume,
    };
    match fit_prior_volume(r0, &cv, &observed) {
        // Nothing moved: any volume explains that; the retained rows' is as good as any.
        None => SessionFit {
            session: session(retained.volume),
            prior_volume: None,
            fixed_by: None,
            problem: None,
        },
        Some(fit) if fit.volume.is_finite() && fit.volume > 0.0 => SessionFit {
            session: session(fit.volume),
            prior_volume: Some(fit.volume),
            fixed_by: Some(rows[fit.row].0.event_ts),
            problem: None,
        },
        Some(fit) => SessionFit {
            session: session(retained.volume),
            prior_volume: Some(fit.volume),
            fixed_by: Some(rows[fit.row].0.event_ts),
            problem: Some(format!(
                "vwap_session moved from {r0} to {} at {}: no positive earlier volume explains \
                 that (fitted {}), so it is not a session VWAP continuing the history",
                observed[fit.row].unwrap_or(f64::NAN),
                rows[fit.row].0.event_ts,
                fit.volume
            )),
        },
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(rows: u64, first: u64, last: u64) -> HistoryStats {
        HistoryStats {
            rows,
            first_seq: first,
            last_seq: last,
            ..empty_stats("ZZT2E-P.0-A")
        }
    }

    #[test]
    fn names_are_reserved_distinct_from_run_symbols_and_valid_for_jangar() {
        let pool: PoolName = "CANARY".parse().expect("valid");
        let s = pool.symbol(9, "ABCDEFGH");
        assert_eq!(s, "ZZT2E-CANARY.9-ABCDEFGH");
        assert!(s.len() <= 32 && crate::symbols::is_synthetic(&s), "{s}");
        assert!(crate::symbols::is_synthetic(&pool.clock()));
        for bad in ["", "canary", "TOOLONGNAME", "A.B", "A-B"] {
            assert!(bad.parse::<PoolName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn histories_are_classified_by_what_they_let_the_oracle_know() {
        assert_eq!(classify(&stats(0, 0, 0)), Ok(HistoryKind::Fresh));
        assert_eq!(classify(&stats(5, 1, 5)), Ok(HistoryKind::Complete));
        assert_eq!(
            classify(&stats(360, 41, 400)),
            Ok(HistoryKind::PrefixExpired)
        );
        let gap = classify(&stats(4, 1, 5)).expect_err("gap");
        assert!(gap.contains("1 of seqs 1..=5 missing"), "{gap}");
        let short = classify(&stats(359, 42, 400)).expect_err("too few");
        assert!(short.contains("only 359 remain"), "{short}");
        assert!(classify(&stats(6, 1, 5)).is_err());
    }

    /// The session the job holds: the expired rows' sums plus the run's bars.
    fn session_values(prior: (f64, f64), bars: &[(f64, f64)]) -> Vec<Option<f64>> {
        let mut s = SessionSums {
            pv: prior.0,
            volume: prior.1,
        };
        bars.iter()
            .map(|&(c, v)| {
                s.add(c, v);
                Some(s.value())
            })
            .collect()
    }

    #[test]
    fn the_prior_volume_is_recovered_from_the_observed_session_vwap() {
        let prior = (101.37 * 2.5e7, 2.5e7);
        let bars = [(101.0, 10.0), (101.5, 0.0), (103.2, 40.0), (99.0, 7.0)];
        let observed = session_values(prior, &bars);
        let fit = fit_prior_volume(101.37, &bars, &observed).expect("moved");
        assert!((fit.volume / prior.1 - 1.0).abs() < 1e-6, "{fit:?}");
        assert_eq!(fit.row, 2, "the row that moved furthest");
        let predicted = session_values((101.37 * fit.volume, fit.volume), &bars);
        for (p, o) in predicted.iter().zip(&observed) {
            let (p, o) = (p.expect("value"), o.expect("value"));
            assert!((p - o).abs() <= 1e-9 * o.abs(), "{p} vs {o}");
        }
    }

    #[test]
    fn no_movement_leaves_the_volume_unknown_and_a_wrong_value_gives_a_negative_volume() {
        let flat = [(50.0, 3.0), (50.0, 4.0)];
        assert_eq!(
            fit_prior_volume(50.0, &flat, &[Some(50.0), Some(50.0)]),
            None
        );
        // Moving away from every close is no weighted mean at all.
        let fit = fit_prior_volume(50.0, &[(51.0, 1.0)], &[Some(52.0)]).expect("moved");
        assert!(fit.volume < 0.0, "{fit:?}");
    }
}
