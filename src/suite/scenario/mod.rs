//! One scenario, end to end: the ClickHouse stage, then the stages after it.
//!
//! [`Runner::run`] plans the symbols (`plan`), publishes the messages while the oracle predicts
//! the rows they make the TA job emit (`publish`, acknowledgements collected by the `window`),
//! polls until those rows are visible (`poll`), compares them, measures latency and diagnoses
//! (`judge`), and hands what it established to the later stages.
//!
//! It runs against seams, not systems: a [`Publisher`] (Kafka), a [`Warehouse`] (ClickHouse and
//! the TA job's offsets) and the [`Stages`] after ClickHouse (the Jangar API, the charts page).
//! Its unit tests (`tests`) run it on in-memory ones (`fake`); the integration tests run it
//! against the real stack.

mod expect;
#[cfg(test)]
pub(crate) mod fake;
mod judge;
pub mod outputs;
mod plan;
mod poll;
mod publish;
mod stages;
#[cfg(test)]
mod tests;
pub mod window;

use std::time::Instant;

use crate::adapter::clickhouse::ClickHouseError;
use crate::adapter::kafka::PublishError;
use crate::config::TaSettings;
use crate::domain::diagnose::{self, Finding, Hop};
use crate::domain::model::{Columns, RowKey};
use crate::domain::pool::{PoolName, PoolReport};
use crate::domain::publish::Delivery;
use crate::domain::report::{ScenarioReport, Series, Verdict};
use crate::domain::scenario::{Close, Scenario};
use crate::domain::symbols::RunId;
use crate::suite::lane::{Lane, Pin};
use crate::suite::ledger::{Ledger, Record};
use crate::suite::pool::PoolError;
use crate::suite::seam::{Publisher, Warehouse};
use crate::suite::shared_reads::SharedReads;
use expect::{expected_bars, predict_again};
use publish::Published;

pub use outputs::OutputsCheck;
pub use stages::{LiveStages, Ran, Stages};

/// Why a scenario could not run at all (as opposed to a check failing).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("symbol {0} already has rows; refusing to publish (a fresh run id avoids this)")]
    SymbolNotFresh(String),
    #[error("{0} is not a reserved synthetic symbol; refusing to publish")]
    UnsafeSymbol(String),
    #[error(transparent)]
    ClickHouse(#[from] ClickHouseError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("the oracle rejected message {index}: {message}")]
    Oracle { index: usize, message: String },
    #[error("event offset {0} ms does not map onto a wall-clock time")]
    Offset(u64),
}

impl RunError {
    /// Unreachable targets exit 3; everything else here is a failed check.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            RunError::ClickHouse(e) | RunError::Pool(PoolError::ClickHouse(e))
                if e.is_unreachable()
        ) || matches!(self, RunError::Publish(_))
    }

    /// The hop a target that stopped answering mid-scenario points at.
    pub fn finding(&self) -> Option<Finding> {
        match self {
            RunError::Publish(e) => Some(Finding::failure(
                Hop::KafkaPublish,
                format!("the broker stopped acknowledging the run's messages: {e}"),
                diagnose::RUNBOOK_KAFKA_PRODUCE,
            )),
            RunError::ClickHouse(e) | RunError::Pool(PoolError::ClickHouse(e)) => {
                Some(Finding::failure(
                    Hop::ClickhouseSink,
                    format!("ClickHouse stopped answering the validator: {e}"),
                    diagnose::RUNBOOK_CLICKHOUSE_DOWN,
                ))
            }
            _ => None,
        }
    }
}

/// The last piece of evidence a verdict rests on: what it was and when it was in hand.
#[derive(Default)]
struct LastEvidence {
    last: Option<(String, time::OffsetDateTime)>,
}

impl LastEvidence {
    fn at(what: &str, at: Option<time::OffsetDateTime>) -> Self {
        let mut e = LastEvidence::default();
        e.extend(what, at);
        e
    }

    /// Keeps the later of the two.
    fn extend(&mut self, what: &str, at: Option<time::OffsetDateTime>) {
        if let Some(at) = at {
            if self.last.as_ref().is_none_or(|(_, t)| at > *t) {
                self.last = Some((what.to_string(), at));
            }
        }
    }
}

/// A scenario that could not finish: why, and its report with what it had published.
#[derive(Debug)]
pub struct Stopped {
    pub error: RunError,
    pub report: ScenarioReport,
}

/// Runs scenarios of one run against its seams.
pub struct Runner<'a, P, W, S> {
    pub run_id: &'a RunId,
    pub publisher: &'a P,
    pub warehouse: &'a W,
    /// The stages after ClickHouse.
    pub stages: &'a S,
    /// Reuse this pool's symbols, seeded from their history, instead of fresh ones per run.
    pub pool: Option<&'a PoolName>,
    /// Where the run records what it publishes as it goes.
    pub ledger: &'a Ledger,
    /// When this scenario may publish, beside the run's others.
    pub lane: &'a Lane,
    /// The reads of the run's scenarios, one query of each kind at a time.
    pub reads: &'a SharedReads,
    /// The TA job's Kafka outputs and heartbeat, unless the configuration turns them off.
    pub outputs: Option<&'a OutputsCheck>,
    /// The deployed job's settings the oracle mirrors.
    pub ta: TaSettings,
}

impl<P: Publisher, W: Warehouse, S: Stages> Runner<'_, P, W, S> {
    /// The scenario's report; when it could not finish, the error with a report that still
    /// holds what it published (symbols, deliveries, unconfirmed messages).
    pub async fn run(&self, scenario: &Scenario) -> Result<ScenarioReport, Box<Stopped>> {
        let record = self.ledger.begin(scenario);
        let started = Instant::now();
        match self.attempt(scenario, &record).await {
            Ok(report) => {
                record.finish(&report);
                Ok(report)
            }
            Err(error) => {
                let mut report = record.get().cut_short(&error.to_string());
                report.findings.extend(error.finding());
                report.duration_ms = started.elapsed().as_millis() as u64;
                record.finish(&report);
                Err(Box::new(Stopped { error, report }))
            }
        }
    }

    async fn attempt(
        &self,
        scenario: &Scenario,
        record: &Record,
    ) -> Result<ScenarioReport, RunError> {
        // A compressed scenario's turn on the lane lasts until its rows are visible: see
        // `Lane`. Its duration counts from the turn, not from the wait for it.
        let turn = self.lane.enter(self.access(scenario)).await;
        let started = Instant::now();
        let plan = self.plan(scenario).await?;
        record.symbols(&plan.symbols);
        let history_wait = Instant::now();
        let start = self.start(scenario, &plan).await?;
        let history_wait = history_wait.elapsed();
        let base = start.base;
        let names: Vec<String> = plan.symbols.values().cloned().collect();
        // Before publishing: the output topics' end offsets, and a reader there from now on.
        let watch = match self.outputs {
            Some(check) => Some(check.start().await),
            None => None,
        };
        // A scenario closed by watermark behind the pin pins the lane anew as it closes: until
        // that pin is acknowledged the lane's is unknown.
        let moves_pin = start
            .pin
            .as_ref()
            .filter(|_| plan.close == Close::Watermark);
        if moves_pin.is_some() {
            *self.lane.pin().await = None;
        }
        let (published, poller) = self.publish_watched(scenario, &plan, &start, record).await;
        if let (Some(pin), Ok(_)) = (moves_pin, &published) {
            *self.lane.pin().await = Some(pin.moved_to(plan::next_pin_at(pin)));
        }
        let Published {
            mut sent,
            closers,
            mut expected,
            values,
        } = published?;
        expected.drop_bars_of(&closers);
        let mut bars = expected_bars(&sent, &expected);
        let wanted: Vec<RowKey> = bars.iter().map(|b| b.key.clone()).collect();
        let minutes: Vec<RowKey> = expected.minute_signals.iter().map(Columns::key).collect();
        let observed = poller.wait_for(&plan, &wanted, &minutes).await?;
        let rows_visible_at = time::OffsetDateTime::now_utc();
        let observed_at = observed.evidence_at;
        let mut last_evidence = LastEvidence::at("clickhouse_rows", observed_at);
        drop(turn);
        let mut pool_report = plan
            .lease
            .as_ref()
            .map(|l| PoolReport::new(l, history_wait, base));
        if let (Some(lease), Some(report)) = (&plan.lease, pool_report.as_mut()) {
            let lease =
                crate::suite::pool::catch_up(self.warehouse, lease, &observed.bars, report).await?;
            if let Some(again) =
                predict_again(self.ta, &lease, &values, &closers, &observed, report)
            {
                (expected, bars) = again.adopt(&mut sent);
            }
        }
        let deliveries: Vec<Delivery> = sent.iter().map(|s| s.delivery.clone()).collect();
        // Rows closed by trades may all be visible before the last acknowledgement comes back.
        let last_ack = deliveries.iter().map(|d| d.acked_at).max();
        last_evidence.extend("kafka_ack", last_ack);
        let (stored_bars, stored_signals) = (observed.bars.clone(), observed.signals.clone());
        let evidence = judge::Evidence {
            symbols: &names,
            after: base,
            expected: &expected,
            bars: &bars,
            closers: &closers,
            deliveries: &deliveries,
        };
        let ran = Ran {
            scenario,
            symbols: &plan.symbols,
            expected_bars: &expected.bars,
            expected_signals: &expected.signals,
            stored_bars: &stored_bars,
            stored_signals: &stored_signals,
        };
        let outputs_run = outputs::OutputsRun {
            scenario,
            symbols: &names,
            expected_bars: &expected.bars,
            expected_signals: &expected.signals,
            expected_minute_signals: &expected.minute_signals,
            stored_bars: &stored_bars,
            stored_signals: &stored_signals,
            bars: &bars,
            closers: &closers,
            rows_visible_at,
            after: base,
        };
        // The judgement's own queries, the wait for the Kafka outputs and the heartbeat, and the
        // stages after ClickHouse read independent systems: at once, so the verdict comes as
        // soon as the slowest of them has its evidence.
        let (judged, settled, (later, later_at)) = tokio::join!(
            self.judge(scenario, evidence, observed),
            async {
                match (self.outputs, watch) {
                    (Some(check), Some(watch)) => Some(check.settle(watch, &outputs_run).await),
                    _ => None,
                }
            },
            async {
                let later = self.stages.run(&ran).await;
                (later, time::OffsetDateTime::now_utc())
            },
        );
        let joined_at = time::OffsetDateTime::now_utc();
        let mut report = judged?;
        report
            .findings
            .extend(start.pin.as_ref().and_then(Pin::shared_lane));
        if let Some(pool) = &pool_report {
            let findings = pool.findings(&stored_bars);
            if !findings.is_empty() {
                report.verdict = Verdict::Fail;
                report.findings.extend(findings);
            }
        }
        let mut stages = Vec::new();
        if let (Some(check), Some(settled)) = (self.outputs, settled) {
            for (what, at) in settled.evidence_at() {
                last_evidence.extend(what, at);
            }
            stages = check.finish(settled, &outputs_run, &report.tables).await;
        }
        if let Some(last) = later.last() {
            last_evidence.extend(&last.stage, Some(later_at));
        }
        stages.extend(later);
        report.stages = stages;
        // The HTML evidence report plots what was expected against what was stored.
        report.series = Series::new(
            &expected.bars,
            &expected.signals,
            &stored_bars,
            &stored_signals,
        );
        judge::include_stages(&mut report);
        report.symbols = plan.symbols;
        report.pool = pool_report;
        report.messages_published = sent.len();
        report.messages_acknowledged = deliveries.len();
        report.deliveries = deliveries;
        let verdict_at = time::OffsetDateTime::now_utc();
        // Where the overhead goes: the rows in full after the keys, the judgement beside the
        // outputs' and later stages' evidence, what is made of them.
        let ms = |from: time::OffsetDateTime, to: time::OffsetDateTime| {
            (to - from).as_seconds_f64() * 1e3
        };
        tracing::debug!(
            rows_ms = observed_at.map(|at| ms(at, rows_visible_at)),
            joined_ms = ms(rows_visible_at, joined_at),
            finished_ms = ms(joined_at, verdict_at),
            "verdict phases"
        );
        report.verdict_after_publish_ms =
            last_ack.map_or(0, |at| (verdict_at - at).whole_milliseconds().max(0) as u64);
        if let Some((what, at)) = last_evidence.last {
            report.overhead_ms = Some((verdict_at - at).whole_milliseconds().max(0) as u64);
            report.last_evidence = Some(what);
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }
}
