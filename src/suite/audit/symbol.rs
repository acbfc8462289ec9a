//! The audit of one symbol: its stored rows around the window, where the audit starts, the seed
//! of each stretch (the pool's seeding cut at the bar before it), the prediction and the verdict.

use std::collections::{BTreeMap, HashSet};

use time::OffsetDateTime;

use super::evidence::{describe, facts, plotted, restart_warning, unanchored};
use super::{stored, Context, SymbolInput};
use crate::adapter::clickhouse::{ClickHouse, ClickHouseError};
use crate::domain::audit::anchor::{self, Segment, Start};
use crate::domain::audit::epoch::{self, Epoch};
use crate::domain::audit::judge::{self, CompareOptions, Comparison, PredictInput, Prediction};
use crate::domain::audit::{quotes, window};
use crate::domain::audit::{AuditSymbol, Stretch};
use crate::domain::compare::TableDiff;
use crate::domain::diagnose::{self, Finding, Hop};
use crate::domain::model::{Microbar, Signal};
use crate::domain::oracle::SeedState;
use crate::domain::pool::{self, HistoryCut, HistoryKind, HistoryStats, Seeded};
use crate::domain::report::{ScenarioReport, Verdict};
use crate::domain::scenario::Tolerance;
use stored::SeqRange;

/// An audit starting this long after the window's start says why (quiet symbols start late).
const LATE_START_SECS: i64 = 30;

/// How a stretch was seeded.
struct Seeding {
    seed: SeedState,
    history: &'static str,
    unseeded_reason: Option<String>,
    /// Set when the session sums before the start are unknown: fit them.
    fit: Option<Seeded>,
    /// Rows below this seq skip the history columns.
    history_from_seq: u64,
    /// When the stretch's epoch began (for reading its rows).
    since: OffsetDateTime,
}

pub(super) async fn audit_symbol(
    ctx: &Context<'_>,
    input: &SymbolInput<'_>,
) -> Result<ScenarioReport, ClickHouseError> {
    let ch = &ctx.clickhouse;
    let w = ctx.window;
    let rows_to = window::after(w.to, window::TAIL + window::ROWS_AROUND);
    let around = stored::bars_between(
        ch,
        input.symbol,
        window::before(w.from, window::ROWS_AROUND),
        rows_to,
    )
    .await?;
    let epochs = epoch::epochs(&around);
    let segments = anchor::segments(input.trades, &epochs, w.from_ms(), ctx.timing);
    let mut section = AuditSymbol {
        symbol: input.symbol.to_string(),
        window_from: Some(w.from),
        window_to: Some(w.to),
        trades_read: input.trades.len(),
        quotes_read: input.quotes.len(),
        records_dropped: input.dropped,
        ..AuditSymbol::default()
    };
    let mut findings = Vec::new();
    if input.spread {
        findings.push(Finding::warning(
            Hop::KafkaPublish,
            format!(
                "{} has records on more than one partition: the job's order across them is not \
                 known, so they were ordered by record timestamp",
                input.symbol
            ),
            diagnose::RUNBOOK_KAFKA_PRODUCE,
        ));
    }
    if segments.is_empty() {
        return Ok(unanchored(ctx.window, input, &around, section, findings));
    }
    let first_epoch = segments[0].epoch;
    for (index, epoch) in epochs.iter().enumerate().skip(first_epoch + 1) {
        if epoch.since.is_some() && !segments.iter().any(|s| s.epoch == index) {
            findings.push(Finding::warning(
                Hop::TaJob,
                format!(
                    "{}: the job began a new state epoch (seq 1, emitted {}) but no trade read \
                     opens its first bars, so its rows were not audited (a restart that re-read \
                     trades from before those read, or bars that do not follow the trades)",
                    input.symbol,
                    epoch
                        .since
                        .map(crate::domain::model::iso_millis)
                        .unwrap_or_default()
                ),
                diagnose::RUNBOOK_TA_STALLED,
            ));
        }
    }
    let mut expected = (Vec::new(), Vec::new());
    let mut observed = (Vec::new(), Vec::new());
    let mut diffs = (TableDiff::default(), TableDiff::default());
    for (i, segment) in segments.iter().enumerate() {
        let epoch = &epochs[segment.epoch];
        let outcome = stretch(ctx, input, segment, epoch, rows_to).await?;
        if i > 0 {
            findings.push(restart_warning(input.symbol, epoch));
        }
        if let Some(reason) = &outcome.stretch.unseeded_reason {
            findings.push(Finding::warning(
                Hop::ClickhouseSink,
                format!(
                    "{}: the window's start could not be seeded exactly ({reason}); {} rows \
                     were compared without the columns that depend on earlier bars ({})",
                    input.symbol,
                    outcome.stretch.history_unchecked_rows,
                    judge::HISTORY_COLUMNS.join(", ")
                ),
                pool::RUNBOOK_POOL,
            ));
        }
        findings.extend(outcome.problem.iter().map(|p| {
            Finding::failure(
                Hop::TaJob,
                format!("{}: {p}", input.symbol),
                diagnose::RUNBOOK_TA_MATHS,
            )
        }));
        section.expired_rows += outcome.comparison.expired;
        section.open_at_end = outcome.prediction.open_at_end.or(section.open_at_end);
        expected.0.extend(outcome.prediction.bars.iter().cloned());
        expected
            .1
            .extend(outcome.prediction.signals.iter().cloned());
        observed.0.extend(outcome.observed_bars);
        observed.1.extend(outcome.observed_signals);
        diffs.0 = judge::merge(std::mem::take(&mut diffs.0), outcome.comparison.bars);
        diffs.1 = judge::merge(std::mem::take(&mut diffs.1), outcome.comparison.signals);
        section.stretches.push(outcome.stretch);
    }
    if let Some(first) = section.stretches.first().and_then(|s| s.first_bar) {
        let late = first - w.from;
        if late > time::Duration::seconds(LATE_START_SECS) {
            findings.push(Finding::warning(
                Hop::TaJob,
                format!(
                    "{}: the audit starts at the bar ending {}, {late} after the window's start: \
                     no earlier change of second among the trades was followed by two stored \
                     bars ending in those seconds (a quiet start, or bars the job merged, split \
                     or lost there), so the bars before it are not audited",
                    input.symbol,
                    crate::domain::model::iso_millis(first)
                ),
                diagnose::RUNBOOK_TA_MATHS,
            ));
        }
    }
    if section.expired_rows > 0 {
        findings.push(Finding::warning(
            Hop::ClickhouseSink,
            format!(
                "{}: {} expected rows end more than 35 days ago and are gone (the tables' TTL)",
                input.symbol, section.expired_rows
            ),
            diagnose::RUNBOOK_TA_STALLED,
        ));
    }
    let tables: BTreeMap<String, TableDiff> = [
        ("ta_microbars".to_string(), diffs.0),
        ("ta_signals".to_string(), diffs.1),
    ]
    .into();
    let facts = facts(ctx, input, &expected.0, &tables).await?;
    findings.extend(diagnose::sink(&facts));
    let extra: usize = tables.values().map(|d| d.extra.len()).sum();
    if extra > 0 {
        findings.push(Finding::failure(
            Hop::TaJob,
            format!(
                "{extra} stored rows of {} among the audited seqs that the oracle did not \
                 predict (a bar split or emitted twice, or another writer)",
                input.symbol
            ),
            diagnose::RUNBOOK_TA_MATHS,
        ));
    }
    let clean = tables.values().all(TableDiff::is_clean);
    if !clean && !diagnose::any_failure(&findings) {
        findings.push(Finding::failure(
            Hop::TaJob,
            "rows differ from the oracle (see the table diffs)",
            diagnose::RUNBOOK_TA_MATHS,
        ));
    }
    let verdict = if clean && !diagnose::any_failure(&findings) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let series = plotted(&expected, &observed, &tables, w);
    Ok(ScenarioReport {
        name: format!("audit {}", input.symbol),
        description: describe(&section),
        verdict,
        symbols: [(input.symbol.to_string(), input.symbol.to_string())].into(),
        tables,
        findings,
        series,
        audit: Some(section),
        ..ScenarioReport::default()
    })
}

/// What one stretch came to.
struct StretchOutcome {
    stretch: Stretch,
    prediction: Prediction,
    comparison: Comparison,
    observed_bars: Vec<Microbar>,
    observed_signals: Vec<Signal>,
    /// A stored session VWAP that no earlier volume explains.
    problem: Option<String>,
}

async fn stretch(
    ctx: &Context<'_>,
    input: &SymbolInput<'_>,
    segment: &Segment,
    epoch: &Epoch,
    rows_to: OffsetDateTime,
) -> Result<StretchOutcome, ClickHouseError> {
    let ch = &ctx.clickhouse;
    let mut seeding = seeding(ch, input.symbol, segment, epoch).await?;
    let range = SeqRange {
        after: seeding.seed.last_seq,
        since: seeding.since,
        until: epoch.until,
        ends_by: rows_to,
    };
    let (stored_bars, stored_signals) = tokio::try_join!(
        stored::bars_after(ch, input.symbol, range),
        stored::signals_after(ch, input.symbol, range)
    )?;
    let predict_input = PredictInput {
        symbol: input.symbol,
        trades: input.trades,
        first: segment.start.first(),
        stored: &stored_bars,
        to_ms: ctx.window.to_ms(),
        last_seq: epoch.until.and_then(|_| epoch.last_seq()),
        timing: ctx.timing,
    };
    let mut prediction = judge::predict(&predict_input, seeding.seed.clone());
    let after = prediction.after_seq;
    let mut observed_bars = judge::in_seqs(&stored_bars, after, prediction.last_seq());
    let mut observed_signals = judge::in_seqs(&stored_signals, after, prediction.last_seq());
    let mut vwap_session = "exact";
    let mut prior_volume = None;
    let mut problem = None;
    let mut skip_session = false;
    if let Some(seeded) = &seeding.fit {
        let fit = pool::fit_session(seeded, &observed_bars, &observed_signals);
        if seeded.last_vwap_session.is_none() {
            // Nothing stored to continue from: the column cannot be checked.
            skip_session = true;
            vwap_session = "unchecked";
        } else {
            vwap_session = "fitted";
            prior_volume = fit.prior_volume;
            problem = fit.problem.clone();
            seeding.seed.session = fit.session;
            prediction = judge::predict(&predict_input, seeding.seed.clone());
            observed_bars = judge::in_seqs(&stored_bars, after, prediction.last_seq());
            observed_signals = judge::in_seqs(&stored_signals, after, prediction.last_seq());
        }
    }
    let comparison = judge::compare(
        &prediction,
        &observed_bars,
        &observed_signals,
        input.quotes,
        CompareOptions {
            tolerance: Tolerance::default(),
            history_from_seq: seeding.history_from_seq,
            skip_session,
            ttl_floor: ctx.ttl_floor(),
            quotes: quotes::QuoteBounds {
                slack_ms: ctx.quote_slack_ms,
                horizon_ms: ctx.quote_horizon_ms,
                to_end: ctx.quote_horizon_ms >= window::millis(ctx.now),
                stale_after_ms: ctx.config.ta.quote_stale_after_ms,
            },
        },
    );
    let stretch = Stretch {
        start: match segment.start {
            Start::After { .. } => "continued",
            Start::Fresh { .. } => "fresh",
        },
        first_bar: prediction.bars.first().map(|b| b.event_ts),
        first_seq: after + 1,
        last_seq: prediction.last_seq(),
        history: seeding.history,
        unseeded_reason: seeding.unseeded_reason.clone(),
        vwap_session,
        prior_volume,
        history_unchecked_rows: comparison.history_unchecked,
        quote_rows_unjudged: comparison.quotes_unjudged,
        watermark_splits: prediction.splits.clone(),
        trades: prediction.window_trades + prediction.tail_trades,
    };
    Ok(StretchOutcome {
        stretch,
        prediction,
        comparison,
        observed_bars,
        observed_signals,
        problem,
    })
}

/// The seed of a stretch: nothing for a fresh epoch; for a continued one the pool's seeding cut
/// at the bar before the start (see `anchor`), falling back to what can still be checked.
async fn seeding(
    ch: &ClickHouse,
    symbol: &str,
    segment: &Segment,
    epoch: &Epoch,
) -> Result<Seeding, ClickHouseError> {
    let cut = match segment.start {
        Start::Fresh { .. } => {
            return Ok(Seeding {
                seed: SeedState::default(),
                history: "fresh",
                unseeded_reason: None,
                fit: None,
                history_from_seq: 0,
                since: epoch.since_or_epoch(),
            })
        }
        Start::After { cut, .. } => cut,
    };
    let since = stored::epoch_start(ch, symbol, cut.ingest_ts)
        .await?
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let stats = ch
        .history_stats(&[symbol.to_string()], Some(cut))
        .await?
        .into_iter()
        .next()
        .unwrap_or_else(|| HistoryStats::empty(symbol));
    match pool::classify(&stats) {
        Ok(kind) => {
            let seeded = seed_at(ch, stats, kind, cut).await?;
            Ok(Seeding {
                seed: seeded.seed.clone(),
                history: history_name(kind),
                unseeded_reason: None,
                fit: (kind == HistoryKind::PrefixExpired).then_some(seeded),
                history_from_seq: 0,
                since,
            })
        }
        Err(reason) => {
            // The session sums are not known; the retained bars may still be.
            let seeded = seed_at(ch, stats, HistoryKind::PrefixExpired, cut).await?;
            let retained = retained_is_complete(ch, symbol, cut).await?;
            let (history, history_from_seq) = if retained {
                ("prefix_expired", 0)
            } else {
                ("unseeded", cut.seq + 1 + pool::RETAINED_BARS as u64)
            };
            Ok(Seeding {
                seed: seeded.seed.clone(),
                history,
                unseeded_reason: Some(reason),
                fit: Some(seeded),
                history_from_seq,
                since,
            })
        }
    }
}

/// Whether the job's retained list at the cut is fully stored: the newest seqs up to the cut,
/// as many as the job keeps (or all since seq 1), without a gap.
async fn retained_is_complete(
    ch: &ClickHouse,
    symbol: &str,
    cut: HistoryCut,
) -> Result<bool, ClickHouseError> {
    let bars = ch
        .latest_microbars(symbol, pool::RETAINED_BARS, Some(cut))
        .await?;
    let want = (pool::RETAINED_BARS as u64).min(cut.seq);
    let seqs: HashSet<u64> = bars.iter().map(|b| b.seq).collect();
    Ok(seqs.len() as u64 == want && (cut.seq + 1 - want..=cut.seq).all(|s| seqs.contains(&s)))
}

fn history_name(kind: HistoryKind) -> &'static str {
    match kind {
        HistoryKind::Fresh => "fresh",
        HistoryKind::Complete => "complete",
        HistoryKind::PrefixExpired => "prefix_expired",
    }
}

/// The pool's seeding ([`crate::suite::pool`]) as the job's state was right after it emitted
/// the `cut` bar.
async fn seed_at(
    ch: &ClickHouse,
    stats: HistoryStats,
    kind: HistoryKind,
    cut: HistoryCut,
) -> Result<Seeded, ClickHouseError> {
    if kind == HistoryKind::Fresh {
        return Ok(Seeded::fresh(stats.symbol));
    }
    let bars = ch
        .latest_microbars(&stats.symbol, pool::RETAINED_BARS, Some(cut))
        .await?;
    let last_vwap_session = ch.latest_vwap_session(&stats.symbol, Some(cut)).await?;
    Ok(Seeded::from_history(stats, kind, &bars, last_vwap_session))
}
