//! Judging what the warehouse shows: the tables compared with the oracle's rows, the facts a
//! diagnosis needs (asked of the warehouse only when they matter), latency per hop, and the
//! verdict. Everything but [`Runner::judge`]'s queries is a pure function of the evidence.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::expect::{Expectations, ExpectedBar};
use super::poll::{presence, Observed, Seen};
use super::{RunError, Runner};
use crate::adapter::clickhouse::KeyTable;
use crate::domain::compare::{self, TableDiff};
use crate::domain::diagnose::{self, Finding, Hop, SinkFacts};
use crate::domain::latency::{self, ErrorBar, Method};
use crate::domain::model::{Columns, Microbar, RowKey, Signal};
use crate::domain::oracle::watermark::{IDLE_TIMEOUT_MS, WATERMARK_INTERVAL_MS};
use crate::domain::publish::{Channel, Delivery};
use crate::domain::report::{
    LatencyReport, MinuteLatency, ScenarioReport, Verdict, WatermarkLatency,
};
use crate::domain::scenario::{Event, Scenario, Table};
use crate::suite::seam::{Publisher, Warehouse};

/// What the publish phase established, for judging what the warehouse shows.
pub(super) struct Evidence<'a> {
    pub symbols: &'a [String],
    /// The run's rows end after this; a reused symbol's history ends before it.
    pub after: OffsetDateTime,
    pub expected: &'a Expectations,
    pub bars: &'a [ExpectedBar],
    pub closers: &'a [RowKey],
    pub deliveries: &'a [Delivery],
}

impl<P: Publisher, W: Warehouse, S> Runner<'_, P, W, S> {
    /// The scenario's report from the rows it found: tables, findings, latency, verdict.
    pub(super) async fn judge(
        &self,
        scenario: &Scenario,
        run: Evidence<'_>,
        observed: Observed,
    ) -> Result<ScenarioReport, RunError> {
        let (bars, signals) = untolerated(&observed, run.closers);
        let tables = compare_tables(
            scenario,
            run.expected,
            &bars,
            &signals,
            &observed.minute_signals,
        );
        let mut facts = self
            .facts(&run, &bars, &tables, observed.unmerged_duplicates)
            .await?;
        facts.expected_minute_signals = run.expected.minute_signals.len();
        facts.found_minute_signals =
            minute_signals_found(&run.expected.minute_signals, &observed.minute_signals);
        Ok(conclude(scenario, tables, &facts, run.bars, observed))
    }

    /// The sink facts of the comparison, completed by the warehouse: unmerged duplicates
    /// always (asked here unless read with the rows), and when no expected bar was found, where the rows went instead (another
    /// database, read-only replicas, the TA job not consuming).
    async fn facts(
        &self,
        run: &Evidence<'_>,
        observed: &[Microbar],
        tables: &BTreeMap<String, TableDiff>,
        unmerged: Option<u64>,
    ) -> Result<SinkFacts, RunError> {
        let mut facts = table_facts(run.bars, observed, tables);
        let unmerged = match unmerged {
            Some(n) => n,
            None => self
                .warehouse
                .unmerged_duplicates("ta_microbars", run.symbols, run.after)
                .await?
                .iter()
                .map(|(_, n)| n)
                .sum(),
        };
        facts.duplicates_unmerged = unmerged as usize;
        if facts.found_bars == 0 {
            facts.rows_in_other_database = self.warehouse.database_holding(run.symbols).await?;
            facts.unhealthy_replicas = self.warehouse.unhealthy_replicas().await?;
            facts.ta_consumed = self.ta_consumed(run.deliveries).await;
        }
        Ok(facts)
    }

    /// Whether the TA job's group has committed offsets past every trade of the run. `None`
    /// when that cannot be told (no commit yet: Flink commits on checkpoints).
    async fn ta_consumed(&self, deliveries: &[Delivery]) -> Option<bool> {
        let last = last_trade_offsets(deliveries);
        let partitions: Vec<i32> = last.keys().copied().collect();
        let committed = self.warehouse.committed_offsets(&partitions).await.ok()?;
        consumed_past(&last, &committed)
    }
}

/// The observed rows without the closing trades' own bars, which may appear (watermark) or not:
/// tolerated either way.
fn untolerated(observed: &Observed, closers: &[RowKey]) -> (Vec<Microbar>, Vec<Signal>) {
    let tolerated = |k: &RowKey| {
        closers
            .iter()
            .any(|c| c.symbol == k.symbol && c.event_ts == k.event_ts)
    };
    let bars = observed
        .bars
        .iter()
        .filter(|b| !tolerated(&b.key()))
        .cloned()
        .collect();
    let signals = observed
        .signals
        .iter()
        .filter(|s| !tolerated(&s.key()))
        .cloned()
        .collect();
    (bars, signals)
}

/// The name the 1-minute path's rows of `ta_signals` go by in the report's tables.
pub const MINUTE_SIGNALS: &str = "ta_signals_pt1m";

/// How many of the expected 1-minute signals have a row at their minute.
fn minute_signals_found(expected: &[Signal], observed: &[Signal]) -> usize {
    let wanted: Vec<RowKey> = expected.iter().map(Columns::key).collect();
    present_count(&wanted, observed)
}

fn present_count(wanted: &[RowKey], observed: &[Signal]) -> usize {
    presence(wanted, observed.iter().map(Columns::key))
        .into_iter()
        .filter(|p| *p)
        .count()
}

/// Each table the scenario checks, compared with the oracle's rows. The 1-minute path's rows
/// of `ta_signals` are compared apart ([`MINUTE_SIGNALS`]), with the same columns, tolerances
/// and comparator, whenever the run published 1-minute bars or rows of that path showed up.
pub(super) fn compare_tables(
    scenario: &Scenario,
    expected: &Expectations,
    bars: &[Microbar],
    signals: &[Signal],
    minute_signals: &[Signal],
) -> BTreeMap<String, TableDiff> {
    let mut tables = BTreeMap::new();
    // A scenario of 1-minute bars alone expects nothing of the 1-second path: its tables are
    // compared only if rows showed up there anyway (extra rows).
    let trades = scenario.events.iter().any(|e| matches!(e, Event::Trade(_)));
    let second_path = trades || !bars.is_empty() || !signals.is_empty();
    if second_path && scenario.tables.contains(&Table::Microbars) {
        let d = compare::compare(
            &expected.bars,
            bars,
            |c| scenario.ignores(Table::Microbars, c),
            |c| scenario.tolerance(c),
        );
        tables.insert(Table::Microbars.name().to_string(), d);
    }
    if scenario.tables.contains(&Table::Signals) {
        if second_path {
            let d = compare::compare(
                &expected.signals,
                signals,
                |c| scenario.ignores(Table::Signals, c),
                |c| scenario.tolerance(c),
            );
            tables.insert(Table::Signals.name().to_string(), d);
        }
        if !expected.minute_signals.is_empty() || !minute_signals.is_empty() {
            let d = compare::compare(
                &expected.minute_signals,
                minute_signals,
                |c| scenario.ignores(Table::Signals, c),
                |c| scenario.tolerance(c),
            );
            tables.insert(MINUTE_SIGNALS.to_string(), d);
        }
    }
    tables
}

/// What the comparison tells the diagnosis: which expected bars are missing (by position),
/// which columns differ, seqs shifted, duplicates and extra rows.
pub(super) fn table_facts(
    bars: &[ExpectedBar],
    observed: &[Microbar],
    tables: &BTreeMap<String, TableDiff>,
) -> SinkFacts {
    let wanted: Vec<RowKey> = bars.iter().map(|b| b.key.clone()).collect();
    let missing_positions: Vec<usize> = presence(&wanted, observed.iter().map(Columns::key))
        .into_iter()
        .enumerate()
        .filter(|(_, seen)| !seen)
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
    SinkFacts {
        expected_bars: bars.len(),
        found_bars: bars.len() - missing_positions.len(),
        missing_positions,
        mismatched_columns: mismatched,
        seq_shifted_rows: tables.get(Table::Microbars.name()).map_or(0, |d| {
            d.mismatches
                .iter()
                .filter(|m| m.columns.iter().any(|c| c.column == "seq"))
                .count()
        }),
        duplicates_final: tables.values().map(|d| d.duplicates.len()).sum(),
        extra_rows: tables.values().map(|d| d.extra.len()).sum(),
        ..SinkFacts::default()
    }
}

/// The offset of the run's last trade in each partition.
fn last_trade_offsets(deliveries: &[Delivery]) -> BTreeMap<i32, i64> {
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for d in deliveries.iter().filter(|d| d.channel == Channel::Trades) {
        let e = last.entry(d.partition).or_insert(d.offset);
        *e = (*e).max(d.offset);
    }
    last
}

/// Whether the committed offsets are past every last offset; `None` without any commit.
pub(super) fn consumed_past(
    last: &BTreeMap<i32, i64>,
    committed: &BTreeMap<i32, i64>,
) -> Option<bool> {
    if committed.is_empty() {
        return None;
    }
    // A committed offset is the next offset to read.
    Some(
        last.iter()
            .all(|(p, o)| committed.get(p).is_some_and(|c| c > o)),
    )
}

/// The report of the ClickHouse stage: the sink diagnosis, latency and its limits, and the
/// verdict (pass only with every table clean and no failing finding).
pub(super) fn conclude(
    scenario: &Scenario,
    tables: BTreeMap<String, TableDiff>,
    facts: &SinkFacts,
    bars: &[ExpectedBar],
    observed: Observed,
) -> ScenarioReport {
    let mut findings = diagnose::sink(facts);
    let latency = latency_report(bars, &observed, scenario.max_latency_ms);
    if let (Some(limit), Some(p95)) = (scenario.max_latency_ms, latency.publish_to_visible.p95_ms) {
        findings.extend(diagnose::latency(
            limit as f64,
            p95,
            &latency.ta_emit_to_visible,
        ));
    }
    let by_watermark = &latency.watermark_closed;
    if let (Some(limit), Some(p95)) = (
        by_watermark.limit_ms,
        by_watermark.publish_to_visible.p95_ms,
    ) {
        findings.extend(diagnose::watermark_latency(
            limit,
            by_watermark.hold_allowance_ms,
            p95,
            &by_watermark.ta_emit_to_visible,
        ));
    }
    let all_clean = !tables.is_empty() && tables.values().all(TableDiff::is_clean);
    let verdict = if !diagnose::any_failure(&findings) && all_clean {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    if verdict == Verdict::Fail && !diagnose::any_failure(&findings) {
        findings.push(Finding {
            hop: Hop::TaJob,
            cause: "rows differ from the oracle (see the table diffs)".into(),
            runbook: diagnose::RUNBOOK_TA_MATHS,
            severity: diagnose::Severity::Failure,
        });
    }
    ScenarioReport {
        name: scenario.name.clone(),
        path: scenario.path.display().to_string(),
        description: scenario.description.clone(),
        verdict,
        tables,
        findings,
        latency,
        wait_attempts: observed.attempts,
        waited_ms: observed.waited_ms,
        ..ScenarioReport::default()
    }
}

/// The later stages count: one that did not pass fails the scenario, and one whose tool
/// stopped answering (the WebDriver) makes it an error: it could not check anything.
pub(super) fn include_stages(report: &mut ScenarioReport) {
    if report.stages.iter().any(|s| s.verdict != Verdict::Pass) {
        report.verdict = Verdict::Fail;
    }
    if report.stages.iter().any(|s| s.verdict == Verdict::Error) {
        report.verdict = Verdict::Error;
    }
}

/// Per-hop latency of the bars closed by trades, and apart, of those closed by the watermark,
/// whose limit adds the time the job may hold its watermark for idle partitions; and of the
/// 1-minute path's signals. Each visibility time is the midpoint of its bracket, each error
/// half its width.
pub(super) fn latency_report(
    bars: &[ExpectedBar],
    observed: &Observed,
    max_latency_ms: Option<u64>,
) -> LatencyReport {
    let (by_watermark, by_trade): (Vec<&ExpectedBar>, Vec<&ExpectedBar>) =
        bars.iter().partition(|b| b.closed_by_watermark);
    let trade = HopSamples::of(&by_trade, observed);
    let watermark = HopSamples::of(&by_watermark, observed);
    let minutes = minute_samples(observed);
    let hold_allowance_ms = (IDLE_TIMEOUT_MS + WATERMARK_INTERVAL_MS) as f64;
    let widest = trade
        .half_widths
        .iter()
        .chain(&watermark.half_widths)
        .chain(&minutes.1)
        .map(|(_, w)| *w)
        .fold(0.0, f64::max);
    LatencyReport {
        publish_to_visible: latency::summarize(&trade.publish_to_visible),
        publish_to_ta_emit: latency::summarize(&trade.publish_to_emit),
        ta_emit_to_visible: latency::summarize(&trade.emit_to_visible),
        polling_error_ms: widest,
        visibility_error: ErrorBar::of(&trade.half_widths),
        closed_before_trigger: trade.closed_before_trigger + watermark.closed_before_trigger,
        watermark_closed: WatermarkLatency {
            publish_to_visible: latency::summarize(&watermark.publish_to_visible),
            publish_to_ta_emit: latency::summarize(&watermark.publish_to_emit),
            ta_emit_to_visible: latency::summarize(&watermark.emit_to_visible),
            visibility_error: ErrorBar::of(&watermark.half_widths),
            hold_allowance_ms,
            limit_ms: max_latency_ms.map(|l| l as f64 + hold_allowance_ms),
        },
        minute_signals: MinuteLatency {
            publish_to_visible: latency::summarize(&minutes.0),
            visibility_error: ErrorBar::of(&minutes.1),
        },
        key_polls: observed.key_polls,
        key_polls_server_clock: observed.key_polls_server_clock,
        part_log_problem: observed.part_log_problem.clone(),
        full_reads: observed.full_reads,
        key_poll_rtt_ms: latency::Summary {
            samples_ms: Vec::new(),
            ..latency::summarize(&observed.key_poll_rtts_ms)
        },
    }
}

/// Milliseconds from the acknowledgement to `visible`: none before it. A part committed a
/// moment before the acknowledgement travelled back (the job read the message first) is
/// visible 0 ms after it, not a negative time.
fn since_ack(visible: time::OffsetDateTime, ack: time::OffsetDateTime) -> f64 {
    ms((visible - ack).max(time::Duration::ZERO))
}

fn ms(d: time::Duration) -> f64 {
    d.as_seconds_f64() * 1000.0
}

/// Per-bar latency samples of the bars that were seen, in milliseconds.
#[derive(Default)]
struct HopSamples {
    publish_to_visible: Vec<f64>,
    publish_to_emit: Vec<f64>,
    emit_to_visible: Vec<f64>,
    /// Each visibility time's method and error.
    half_widths: Vec<(Method, f64)>,
    closed_before_trigger: usize,
}

impl HopSamples {
    fn of(bars: &[&ExpectedBar], observed: &Observed) -> Self {
        let mut samples = HopSamples::default();
        for bar in bars {
            let key = (KeyTable::Microbars, bar.key.clone());
            let (Some(polled), Some(seen)) = (
                observed.sightings.polled(&key),
                observed.sightings.get(&key),
            ) else {
                continue;
            };
            // Seen by a poll before its trigger was even acknowledged: something else closed
            // it. (A commit may come a moment before the acknowledgement travels back.)
            if polled.by < bar.trigger_ack {
                samples.closed_before_trigger += 1;
                continue;
            }
            let seen = seen.from_ack(bar.trigger_ack);
            let visible = seen.midpoint();
            samples
                .publish_to_visible
                .push(since_ack(visible, bar.trigger_ack));
            samples
                .half_widths
                .push((seen.method, seen.half_width_ms()));
            if let Some(row) = observed.bars.iter().find(|b| b.key() == bar.key) {
                samples
                    .publish_to_emit
                    .push(ms(row.ingest_ts - bar.trigger_ack));
                samples.emit_to_visible.push(ms(visible - row.ingest_ts));
            }
        }
        samples
    }
}

/// The 1-minute signals that were seen: ack of their 1-minute bar → visible, and half-widths.
fn minute_samples(observed: &Observed) -> (Vec<f64>, Vec<(Method, f64)>) {
    let mut due: Vec<(&Seen, &time::OffsetDateTime)> = observed
        .due
        .iter()
        .filter(|((table, _), _)| *table == KeyTable::MinuteSignals)
        .collect();
    due.sort();
    due.into_iter()
        .filter_map(|(key, acked)| {
            let seen = observed.sightings.get(key)?.from_ack(*acked);
            Some((
                since_ack(seen.midpoint(), *acked),
                (seen.method, seen.half_width_ms()),
            ))
        })
        .unzip()
}
