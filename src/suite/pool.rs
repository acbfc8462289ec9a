//! A reserved pool's symbols, read from the warehouse: which generation to use, each symbol's
//! seed, and the bars the job emitted between seeding and the run. The rules are pure, in
//! [`crate::domain::pool`]; this module only asks the [`Warehouse`].

use crate::adapter::clickhouse::ClickHouseError;
use crate::domain::model::Microbar;
use crate::domain::pool::{
    classify, first_seq, HistoryKind, HistoryStats, Lease, PoolName, PoolReport, Retired, Seeded,
    GENERATIONS, RETAINED_BARS,
};
use crate::suite::seam::Warehouse;

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

/// Picks the first generation whose every symbol's history can seed the oracle, and seeds it.
pub async fn lease(
    warehouse: &impl Warehouse,
    pool: &PoolName,
    aliases: &[String],
) -> Result<Lease, PoolError> {
    let mut retired = Vec::new();
    for generation in 0..GENERATIONS {
        let symbols: Vec<String> = aliases.iter().map(|a| pool.symbol(generation, a)).collect();
        let stats = warehouse.history_stats(&symbols).await?;
        let mut kinds = Vec::new();
        let mut clean = true;
        for symbol in &symbols {
            let s = stats
                .iter()
                .find(|s| &s.symbol == symbol)
                .cloned()
                .unwrap_or_else(|| HistoryStats::empty(symbol));
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
            seeded.push((alias.clone(), seed(warehouse, stats, kind).await?));
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

async fn seed(
    warehouse: &impl Warehouse,
    stats: HistoryStats,
    kind: HistoryKind,
) -> Result<Seeded, ClickHouseError> {
    if kind == HistoryKind::Fresh {
        return Ok(Seeded::fresh(stats.symbol));
    }
    let bars = warehouse
        .latest_microbars(&stats.symbol, RETAINED_BARS)
        .await?;
    let last_vwap_session = warehouse.latest_vwap_session(&stats.symbol).await?;
    Ok(Seeded::from_history(stats, kind, &bars, last_vwap_session))
}

/// Brings each symbol's seed up to the job's state as this run's first bar shows it:
/// - seq 1 after a history: the job restarted without state (the simulation lane's deployment
///   upgrades `stateless`), so the run is predicted from nothing;
/// - a later seq than expected: the bars the job emitted between seeding and this run's first
///   bar (the bar an interrupted run left open is closed by this run's first trade) are added,
///   if ClickHouse has all of them; anything else stays a finding.
pub async fn catch_up(
    warehouse: &impl Warehouse,
    lease: &Lease,
    stored: &[Microbar],
    report: &mut PoolReport,
) -> Result<Lease, ClickHouseError> {
    let mut lease = lease.clone();
    for (_, seeded) in lease.symbols.iter_mut() {
        let first = first_seq(stored, &seeded.symbol);
        if seeded.state_was_reset(first) {
            seeded.reset();
            report.record_state_reset(&seeded.symbol);
            continue;
        }
        let Some((last, first)) = seeded.missed_seqs(first) else {
            continue;
        };
        let missed = warehouse
            .microbars_between_seqs(&seeded.symbol, last, first)
            .await?;
        if seeded.catch_up(first, &missed) {
            report.record_caught_up(&seeded.symbol, missed.len() as u64);
        }
    }
    Ok(lease)
}
