//! `torghut-e2e audit`'s reading half: the rows the TA job stored for **real** symbols over a
//! past window, checked against the oracle, read-only. The pure half (window, epochs, anchors,
//! replay, judging) is [`crate::domain::audit`]; the verb is `cli::audit`.
//!
//! The job's inputs stay on Kafka (35 days) and its outputs in ClickHouse, so any recent window
//! can be recomputed without publishing anything:
//!
//! 1. [`reader`]: the offsets of the window's start and end by timestamp (`offsets_for_times`),
//!    then the chosen symbols' trades and quotes, assigned (no consumer group, nothing
//!    committed); a topic whose retention removed the window's start is refused;
//! 2. [`stored`]: the rows around the window (`FINAL`), split into the job's state epochs;
//! 3. per symbol ([`symbol`]): where the audit starts, the seed at that start (the pool's
//!    seeding cut at that bar), the rows predicted and judged;
//! 4. [`evidence`]: the ClickHouse facts, plots and findings of the report, one "scenario" per
//!    symbol.
//!
//! Nothing is written to Kafka or ClickHouse: no producer exists here, the Kafka client has no
//! group id, and every query is a `SELECT`.

mod evidence;
pub mod reader;
pub mod stored;
mod symbol;

use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::adapter::clickhouse::ClickHouse;
use crate::config::Config;
use crate::domain::audit::record::Record;
use crate::domain::audit::replay::Timing;
use crate::domain::audit::window::{self, Window};
use crate::domain::oracle::{Quote, Trade};
use crate::domain::report::{RunReport, ScenarioReport, Verdict};
use reader::{ReadError, TopicQuery, TopicRead};
use symbol::audit_symbol;

/// Most symbols one audit takes.
pub const MAX_SYMBOLS: usize = 50;

/// How an audit ended, beyond the report it filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Every symbol was audited and something verified: the report's verdict.
    Judged(Verdict),
    /// Nothing was verified (no trades, or no row could be checked): a failure, said so.
    NothingVerified(String),
    /// The window cannot be audited (retention passed, no record since its start).
    Refused(String),
    /// Kafka or ClickHouse could not be used (the reason, unless each symbol's report has it).
    Unreachable(Option<String>),
}

/// What every symbol's audit shares.
pub struct Context<'a> {
    pub config: &'a Config,
    pub clickhouse: ClickHouse,
    pub window: Window,
    pub timing: Timing,
    pub quote_slack_ms: i64,
    /// Every quote recorded before this is read.
    pub quote_horizon_ms: i64,
    pub now: OffsetDateTime,
}

impl Context<'_> {
    fn ttl_floor(&self) -> OffsetDateTime {
        window::before(self.now, window::ROW_TTL)
    }
}

/// Reads both topics, audits each symbol, and fills the report; the outcome.
pub async fn audit(ctx: &Context<'_>, symbols: &[String], report: &mut RunReport) -> Ended {
    let (trades, quotes) = match read_inputs(ctx, symbols).await {
        Ok(read) => read,
        Err(e) if e.is_usage() => return Ended::Refused(e.to_string()),
        Err(e) => return Ended::Unreachable(Some(e.to_string())),
    };
    tracing::info!(
        trades_scanned = trades.scanned,
        quotes_scanned = quotes.scanned,
        "read the window's inputs"
    );
    let mut unreachable = false;
    for symbol in symbols {
        let started = Instant::now();
        let input = SymbolInput {
            symbol,
            trades: trades.records.get(symbol).map_or(&[][..], Vec::as_slice),
            quotes: quotes.records.get(symbol).map_or(&[][..], Vec::as_slice),
            dropped: trades.dropped.get(symbol).copied().unwrap_or(0)
                + quotes.dropped.get(symbol).copied().unwrap_or(0),
            spread: trades.spread.contains(symbol) || quotes.spread.contains(symbol),
        };
        let mut scenario = match audit_symbol(ctx, &input).await {
            Ok(s) => s,
            Err(e) => {
                unreachable |= e.is_unreachable();
                ScenarioReport {
                    name: format!("audit {symbol}"),
                    verdict: Verdict::Error,
                    error: Some(e.to_string()),
                    ..ScenarioReport::default()
                }
            }
        };
        scenario.duration_ms = started.elapsed().as_millis() as u64;
        tracing::info!(symbol = %symbol, verdict = ?scenario.verdict, "audited");
        report.scenarios.push(scenario);
    }
    let verified: usize = report
        .scenarios
        .iter()
        .flat_map(|s| s.tables.values())
        .map(|d| d.matched)
        .sum();
    let all_pass = report.scenarios.iter().all(|s| s.verdict == Verdict::Pass);
    if unreachable {
        report.verdict = Verdict::Error;
        return Ended::Unreachable(None);
    }
    if verified == 0 {
        report.verdict = Verdict::Fail;
        return Ended::NothingVerified(format!(
            "nothing was verified: no stored row of {} in the window matched a prediction (no \
             trades, or none of the rows could be checked)",
            symbols.join(", ")
        ));
    }
    report.verdict = if all_pass {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    Ended::Judged(report.verdict)
}

#[derive(Debug, thiserror::Error)]
enum InputError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("reading Kafka failed: {0}")]
    Task(String),
}

impl InputError {
    fn is_usage(&self) -> bool {
        matches!(self, InputError::Read(e) if e.is_usage())
    }
}

/// Both topics, concurrently, on blocking threads.
async fn read_inputs(
    ctx: &Context<'_>,
    symbols: &[String],
) -> Result<(TopicRead<Trade>, TopicRead<Quote>), InputError> {
    let w = ctx.window;
    let kafka = ctx.config.kafka.clone();
    let timeout = ctx.config.connect_timeout * 3;
    let stale = Duration::from_millis(ctx.config.ta.quote_stale_after_ms.max(0) as u64);
    let to_ms = window::millis(window::after(w.to, window::TAIL));
    let trades_from = window::millis(window::before(w.from, window::TRADES_LEAD));
    // Quotes as far back as the trades (a restarted job's bars may end before the window), and
    // the freshness window before them: an older quote can only give NULL.
    let quotes_from = window::millis(window::before(
        w.from,
        stale + window::TRADES_LEAD + Duration::from_millis(ctx.quote_slack_ms as u64),
    ));
    let quotes_to = ctx.quote_horizon_ms;
    let (k1, s1) = (kafka.clone(), symbols.to_vec());
    let trades = tokio::task::spawn_blocking(move || {
        reader::read_trades(
            &k1,
            &TopicQuery {
                topic: &k1.trades_topic,
                symbols: &s1,
                from_ms: trades_from,
                to_ms,
                required: true,
                timeout,
            },
        )
    });
    let (k2, s2) = (kafka, symbols.to_vec());
    let quotes = tokio::task::spawn_blocking(move || {
        reader::read_quotes(
            &k2,
            &TopicQuery {
                topic: &k2.quotes_topic,
                symbols: &s2,
                from_ms: quotes_from,
                to_ms: quotes_to,
                required: false,
                timeout,
            },
        )
    });
    let (trades, quotes) = tokio::join!(trades, quotes);
    let trades = trades.map_err(|e| InputError::Task(e.to_string()))??;
    let quotes = quotes.map_err(|e| InputError::Task(e.to_string()))??;
    Ok((trades, quotes))
}

/// One symbol's inputs.
struct SymbolInput<'a> {
    symbol: &'a str,
    trades: &'a [Record<Trade>],
    quotes: &'a [Record<Quote>],
    dropped: u64,
    spread: bool,
}
