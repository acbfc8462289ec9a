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

mod fit;
mod report;
#[cfg(test)]
mod tests;

use time::OffsetDateTime;

use crate::model::Microbar;
use crate::oracle::{BarInput, SeedState, SessionSums};
use crate::symbols::RESERVED_PREFIX;

pub use fit::{fit_prior_volume, fit_session, Fit, SessionFit};
pub use report::{PoolReport, PoolSymbol, RUNBOOK_POOL};

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
        format!("{}{generation}-{alias}", self.prefix())
    }

    /// The one clock symbol of the pool (its bars are never checked, so it needs no generation).
    pub fn clock(&self) -> String {
        format!("{}CLOCK", self.prefix())
    }

    /// What every symbol of the pool starts with, the clock's included.
    pub fn prefix(&self) -> String {
        format!("{RESERVED_PREFIX}{}.", self.0)
    }
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

/// The state the job had right after emitting one bar: the bar's `seq` and its `ingest_ts`
/// (which tells the state epoch it belongs to, as a restart without state reuses seqs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCut {
    pub seq: u64,
    pub ingest_ts: OffsetDateTime,
}

/// One symbol's `ta_microbars FINAL` history in aggregate.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[cfg_attr(feature = "clickhouse", derive(clickhouse::Row))]
pub struct HistoryStats {
    pub symbol: String,
    pub rows: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    #[serde(with = "time::serde::timestamp::milliseconds_i64")]
    pub last_event_ts: OffsetDateTime,
    pub sum_cv: f64,
    pub sum_v: f64,
}

impl HistoryStats {
    /// The aggregate of a symbol without rows.
    pub fn empty(symbol: &str) -> Self {
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

impl Seeded {
    /// A symbol without history: predicted from nothing.
    pub fn fresh(symbol: String) -> Self {
        Seeded {
            symbol,
            kind: HistoryKind::Fresh,
            rows: 0,
            first_seq: 0,
            last_event_ts: None,
            last_vwap_session: None,
            seed: SeedState::default(),
        }
    }

    /// A symbol seeded from its history: the aggregate, the newest [`RETAINED_BARS`] bars in
    /// bar order and the newest stored `vwap_session`.
    pub fn from_history(
        stats: HistoryStats,
        kind: HistoryKind,
        bars: &[Microbar],
        last_vwap_session: Option<f64>,
    ) -> Self {
        Seeded {
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
        }
    }

    /// The job restarted without state when this run's first bar has seq 1 after a history (the
    /// simulation lane's deployment upgrades `stateless`): predict from nothing.
    pub fn state_was_reset(&self, first_seq: Option<u64>) -> bool {
        first_seq == Some(1) && self.seed.last_seq > 0
    }

    /// The seqs the job emitted between seeding and this run's first bar (`first_seq`), if any:
    /// the bars to fetch and add to the seed.
    pub fn missed_seqs(&self, first_seq: Option<u64>) -> Option<(u64, u64)> {
        first_seq
            .filter(|&f| f > self.seed.last_seq + 1)
            .map(|f| (self.seed.last_seq, f))
    }

    /// Adds the bars emitted after the seed up to `first_seq` (exclusive), when ClickHouse has
    /// every one of them; false (and unchanged) when it does not.
    pub fn catch_up(&mut self, first_seq: u64, missed: &[Microbar]) -> bool {
        if missed.len() as u64 != first_seq - self.seed.last_seq - 1 {
            return false;
        }
        for bar in missed {
            self.seed.bars.push(BarInput::from(bar));
            self.seed.session.add(bar.c, bar.v);
        }
        let excess = self.seed.bars.len().saturating_sub(RETAINED_BARS);
        self.seed.bars.drain(..excess);
        self.seed.last_seq = first_seq - 1;
        true
    }

    /// Forgets the history: the job lost its state.
    pub fn reset(&mut self) {
        self.seed = SeedState::default();
        self.kind = HistoryKind::Fresh;
    }
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

/// The lowest seq among the run's stored bars of `symbol`.
pub fn first_seq(stored: &[Microbar], symbol: &str) -> Option<u64> {
    stored
        .iter()
        .filter(|b| b.symbol == symbol)
        .map(|b| b.seq)
        .min()
}
