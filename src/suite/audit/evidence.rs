//! The evidence of a symbol's audit for the report: the ClickHouse facts the diagnosis reads,
//! the plotted stretch, the description, and the verdict of a symbol the audit could not start.

use std::collections::{BTreeMap, HashSet};

use time::OffsetDateTime;

use super::{Context, SymbolInput};
use crate::adapter::clickhouse::ClickHouseError;
use crate::domain::audit::anchor;
use crate::domain::audit::epoch::Epoch;
use crate::domain::audit::window::Window;
use crate::domain::audit::AuditSymbol;
use crate::domain::compare::TableDiff;
use crate::domain::diagnose::{self, Finding, Hop, SinkFacts};
use crate::domain::model::{Columns, Microbar, Signal};
use crate::domain::report::{ScenarioReport, Series, Verdict};

/// Points plotted per symbol around the first divergence (or at the window's end).
const PLOTTED_SECONDS: i64 = 120;

pub(super) fn restart_warning(symbol: &str, epoch: &Epoch) -> Finding {
    let at = epoch
        .bar(1)
        .map(|b| crate::domain::model::iso_millis(b.event_ts))
        .unwrap_or_default();
    Finding::warning(
        Hop::TaJob,
        format!(
            "{symbol}: the job restarted without state in the window (seq back to 1 at the bar \
             ending {at}, emitted {}): predicted from nothing from there on, as after a \
             stateless upgrade (pipeline.md §9 item 4)",
            epoch
                .since
                .map(crate::domain::model::iso_millis)
                .unwrap_or_default()
        ),
        diagnose::RUNBOOK_TA_STALLED,
    )
}

/// No start could be found: a quiet symbol, or rows that do not follow the trades.
pub(super) fn unanchored(
    w: Window,
    input: &SymbolInput<'_>,
    around: &[Microbar],
    mut section: AuditSymbol,
    mut findings: Vec<Finding>,
) -> ScenarioReport {
    let in_window_trades = input
        .trades
        .iter()
        .filter(|r| r.ts_ms >= w.from_ms() && r.ts_ms < w.to_ms())
        .count();
    // Bars wholly inside the window: a bar ending in the start's second may hold trades
    // recorded before it.
    let in_window_rows = around
        .iter()
        .filter(|b| b.event_ts > w.from + time::Duration::SECOND && b.event_ts <= w.to)
        .count();
    let verdict = if in_window_trades == 0 && in_window_rows == 0 {
        section.quiet = true;
        findings.push(Finding::warning(
            Hop::TaJob,
            format!(
                "{}: no trade and no row in the window: nothing to check",
                input.symbol
            ),
            diagnose::RUNBOOK_TA_STALLED,
        ));
        Verdict::Pass
    } else if in_window_trades == 0 {
        findings.push(Finding::failure(
            Hop::TaJob,
            format!(
                "{}: {in_window_rows} stored bars in the window but no trade recorded in it: \
                 rows without input (another writer, or the job's clock or bucketing is off)",
                input.symbol
            ),
            diagnose::RUNBOOK_TA_MATHS,
        ));
        Verdict::Fail
    } else if anchor::changes(input.trades, w.from_ms()).next().is_none() {
        // One trade (or one second of trades) after a long silence: no change of second
        // after a known trade, so no start can be found; nothing says the rows are wrong.
        findings.push(Finding::warning(
            Hop::TaJob,
            format!(
                "{}: {in_window_trades} trades and {in_window_rows} stored bars in the window, \
                 but no change of second after a trade read: too few trades to find where the \
                 job's state stood, so nothing was checked",
                input.symbol
            ),
            diagnose::RUNBOOK_TA_MATHS,
        ));
        Verdict::Pass
    } else if in_window_rows == 0 {
        let facts = SinkFacts {
            expected_bars: in_window_trades,
            found_bars: 0,
            ta_consumed: None,
            ..SinkFacts::default()
        };
        findings.extend(diagnose::sink(&facts));
        Verdict::Fail
    } else {
        findings.push(Finding::failure(
            Hop::TaJob,
            format!(
                "{}: {in_window_trades} trades and {in_window_rows} stored bars in the window, \
                 but no change of second among the trades is followed by stored bars ending \
                 in those seconds: the job's bars do not follow the trades (bars merged, \
                 split or lost), so no start for the audit could be found",
                input.symbol
            ),
            diagnose::RUNBOOK_TA_MATHS,
        ));
        Verdict::Fail
    };
    ScenarioReport {
        name: format!("audit {}", input.symbol),
        description: describe(&section),
        verdict,
        symbols: [(input.symbol.to_string(), input.symbol.to_string())].into(),
        findings,
        audit: Some(section),
        ..ScenarioReport::default()
    }
}

/// The ClickHouse stage's facts, as `run` gathers them, for `diagnose::sink`.
pub(super) async fn facts(
    ctx: &Context<'_>,
    input: &SymbolInput<'_>,
    expected: &[Microbar],
    tables: &BTreeMap<String, TableDiff>,
) -> Result<SinkFacts, ClickHouseError> {
    let missing: HashSet<&String> = tables
        .get("ta_microbars")
        .map(|d| d.missing.iter().collect())
        .unwrap_or_default();
    let missing_positions: Vec<usize> = expected
        .iter()
        .enumerate()
        .filter(|(_, b)| missing.contains(&b.key().to_string()))
        .map(|(i, _)| i)
        .collect();
    let mut mismatched: Vec<String> = tables
        .values()
        .flat_map(|d| {
            d.mismatches
                .iter()
                .flat_map(|m| m.columns.iter().map(|c| c.column.to_string()))
        })
        .collect();
    mismatched.sort();
    mismatched.dedup();
    let unmerged = ctx
        .clickhouse
        .unmerged_duplicates("ta_microbars", &[input.symbol.to_string()], ctx.window.from)
        .await?
        .iter()
        .map(|(_, n)| n)
        .sum::<u64>();
    Ok(SinkFacts {
        expected_bars: expected.len(),
        found_bars: expected.len() - missing_positions.len(),
        missing_positions,
        mismatched_columns: mismatched,
        seq_shifted_rows: tables.get("ta_microbars").map_or(0, |d| {
            d.mismatches
                .iter()
                .filter(|m| m.columns.iter().any(|c| c.column == "seq"))
                .count()
        }),
        duplicates_final: tables.values().map(|d| d.duplicates.len()).sum(),
        duplicates_unmerged: unmerged as usize,
        ..SinkFacts::default()
    })
}

/// The plotted stretch: two minutes around the first divergence, or the window's last two.
pub(super) fn plotted(
    expected: &(Vec<Microbar>, Vec<Signal>),
    observed: &(Vec<Microbar>, Vec<Signal>),
    tables: &BTreeMap<String, TableDiff>,
    w: Window,
) -> Series {
    let mut series = Series::new(&expected.0, &expected.1, &observed.0, &observed.1);
    let first = tables
        .values()
        .flat_map(|d| {
            d.mismatches
                .iter()
                .map(|m| m.key.as_str())
                .chain(d.missing.iter().map(String::as_str))
        })
        .min()
        .and_then(|key| {
            let at = key.split(' ').nth(1)?;
            OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()
        });
    let span = time::Duration::seconds(PLOTTED_SECONDS);
    let (lo, hi) = match first {
        Some(at) => (at - span / 2, at + span / 2),
        None => (w.to - span, w.to + span),
    };
    series
        .expected
        .retain(|p| p.event_ts >= lo && p.event_ts <= hi);
    series
        .observed
        .retain(|p| p.event_ts >= lo && p.event_ts <= hi);
    series
}

/// One line for the report's description (shown by every renderer).
pub(super) fn describe(s: &AuditSymbol) -> String {
    let window = match (s.window_from, s.window_to) {
        (Some(a), Some(b)) => format!(
            "{} to {}",
            crate::domain::model::iso_millis(a),
            crate::domain::model::iso_millis(b)
        ),
        _ => String::new(),
    };
    if s.quiet {
        return format!(
            "Audit of {} over {window}: quiet (no trades, no rows).",
            s.symbol
        );
    }
    let stretches: Vec<String> = s
        .stretches
        .iter()
        .map(|st| {
            format!(
                "{} at {} seqs {}..={} (history {}, vwap_session {}{})",
                st.start,
                st.first_bar
                    .map(crate::domain::model::iso_millis)
                    .unwrap_or_else(|| "-".into()),
                st.first_seq,
                st.last_seq,
                st.history,
                st.vwap_session,
                if st.watermark_splits.is_empty() {
                    String::new()
                } else {
                    format!(", {} watermark splits", st.watermark_splits.len())
                }
            )
        })
        .collect();
    format!(
        "Audit of {} over {window}: {} trades and {} quotes read; {}.",
        s.symbol,
        s.trades_read,
        s.quotes_read,
        if stretches.is_empty() {
            "no start found".to_string()
        } else {
            stretches.join("; then ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::record::Record;
    use crate::domain::audit::test_support::{bar_at, trade};
    use crate::domain::oracle::Trade;

    #[test]
    fn a_symbol_without_a_start_is_quiet_thin_or_wrong() {
        let w = Window {
            from: crate::domain::oracle::datetime_from_millis(10_000),
            to: crate::domain::oracle::datetime_from_millis(60_000),
        };
        let verdict = |trades: &[Record<Trade>], rows: &[Microbar]| {
            let input = SymbolInput {
                symbol: "X",
                trades,
                quotes: &[],
                dropped: 0,
                spread: false,
            };
            let r = unanchored(w, &input, rows, AuditSymbol::default(), Vec::new());
            let failed = diagnose::any_failure(&r.findings);
            (r.verdict, failed, r.audit.is_some_and(|a| a.quiet))
        };
        assert_eq!(verdict(&[], &[]), (Verdict::Pass, false, true), "quiet");
        let row = [bar_at(20_000, 7, 1)];
        assert_eq!(
            verdict(&[], &row),
            (Verdict::Fail, true, false),
            "rows without trades"
        );
        let one = [trade(0, 19_500, 19_500, 1.0)];
        assert_eq!(
            verdict(&one, &row),
            (Verdict::Pass, false, false),
            "too thin to start"
        );
        let two = [one[0], trade(1, 21_500, 21_500, 1.0)];
        assert_eq!(
            verdict(&two, &row),
            (Verdict::Fail, true, false),
            "rows off the trades"
        );
        assert_eq!(
            verdict(&two, &[]),
            (Verdict::Fail, true, false),
            "trades, no rows"
        );
    }
}
