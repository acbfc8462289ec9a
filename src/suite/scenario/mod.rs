//! One scenario, end to end: publish known trades, predict the rows, wait for them in
//! ClickHouse, compare, measure, diagnose.

pub mod window;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::adapter::clickhouse::{ClickHouse, ClickHouseError};
use crate::adapter::kafka::KafkaPublisher as Publisher;
use crate::domain::compare::{self, TableDiff};
use crate::domain::diagnose::{self, Finding, Hop, SinkFacts};
use crate::domain::latency;
use crate::domain::model::{Columns, Microbar, RowKey, Signal};
use crate::domain::oracle::{Expected, Oracle};
use crate::domain::pool::{self, HistoryKind, Lease, PoolName, PoolReport};
use crate::domain::publish::{Channel, Delivery};
use crate::domain::report::StageReport;
use crate::domain::report::{LatencyReport, ScenarioReport, Verdict, WatermarkLatency};
use crate::domain::scenario::{Close, Event, Pacing, Scenario, Stage, Table};
use crate::domain::symbols::{self, RunId};
use crate::stage::StageContext;
use crate::suite::ledger::{Ledger, Record};
use crate::suite::pool::PoolError;
use crate::suite::scenario::window::Window;
use crate::suite::wait::{self, Poll};

/// Pace of the watcher that runs during publishing.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);
/// A pool run closes by watermark, which may wait for idle partitions (30 s in production).
const POOL_MIN_DEADLINE: Duration = Duration::from_secs(60);
/// The job emits watermarks every second, plus processing slack: see [`Runner::settle`].
const WATERMARK_SETTLE: Duration = Duration::from_millis(2_500);
/// Messages sent and not yet acknowledged, at most: publishing waits for acknowledgements
/// beyond this, so memory stays bounded and a broker that stops answering is noticed within
/// one acknowledgement timeout however fast the scenario publishes.
const MAX_IN_FLIGHT: usize = 512;

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
    Publish(#[from] crate::adapter::kafka::PublishError),
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

/// A scenario that could not finish: why, and its report with what it had published.
#[derive(Debug)]
pub struct Stopped {
    pub error: RunError,
    pub report: ScenarioReport,
}

/// One published message and the rows the oracle says it makes production emit.
struct Sent {
    delivery: Delivery,
    emitted: Vec<RowKey>,
}

/// A bar the oracle expects, with the evidence needed for latency.
struct ExpectedBar {
    key: RowKey,
    /// The acknowledgement of the message whose arrival makes the TA job emit this bar.
    trigger_ack: OffsetDateTime,
    /// That message is another symbol's trade: the bar closes when the job's watermark passes
    /// it, which may wait for idle partitions, not on the arrival of a trade of its own symbol.
    closed_by_watermark: bool,
}

pub struct Runner<'a> {
    pub config: &'a crate::config::Config,
    pub run_id: &'a RunId,
    pub publisher: &'a Publisher,
    pub clickhouse: &'a ClickHouse,
    /// Reuse this pool's symbols, seeded from their history, instead of fresh ones per run.
    pub pool: Option<&'a PoolName>,
    /// Where the run records what it publishes as it goes.
    pub ledger: &'a Ledger,
}

/// Which symbols a scenario publishes to, how it closes, and what it knows of their past.
struct Plan {
    /// Scenario alias → symbol.
    symbols: BTreeMap<String, String>,
    /// The symbol of a watermark-closing trade.
    clock: String,
    close: Close,
    deadline: Duration,
    lease: Option<Lease>,
}

/// What the publish phase produced.
struct Published {
    sent: Vec<Sent>,
    /// The closing trades' own bars: tolerated, never expected.
    closers: Vec<RowKey>,
    expected: Expectations,
    /// Every message value in publish order, to predict again with another seed.
    values: Vec<String>,
}

impl Runner<'_> {
    fn warehouse(&self) -> crate::suite::seam::LiveWarehouse<'_> {
        crate::suite::seam::LiveWarehouse {
            clickhouse: self.clickhouse,
            kafka: &self.config.kafka,
        }
    }

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
        let started = Instant::now();
        let plan = self.plan(scenario).await?;
        record.symbols(&plan.symbols);
        self.settle(scenario).await;
        let history_wait = Instant::now();
        let base = start_time(scenario, plan.lease.as_ref()).await;
        let history_wait = history_wait.elapsed();
        let names: Vec<String> = plan.symbols.values().cloned().collect();
        // Watch ClickHouse while publishing, so first sightings (latency) are timed as they
        // happen even when a real-time scenario publishes for a minute.
        let state = Arc::new(Mutex::new(PollState::default()));
        let publishing = AtomicBool::new(true);
        let (published, ()) = tokio::join!(
            async {
                let r = self.publish(scenario, &plan, base, record).await;
                publishing.store(false, Ordering::Relaxed);
                r
            },
            self.watch(&names, base, &state, &publishing),
        );
        let Published {
            mut sent,
            closers,
            mut expected,
            values,
        } = published?;
        expected.drop_bars_of(&closers);
        let published_at = Instant::now();
        let mut bars = expected_bars(&sent, &expected);
        let observed = self.wait_for(&plan, &names, base, &bars, state).await?;
        let mut pool_report = plan
            .lease
            .as_ref()
            .map(|l| PoolReport::new(l, history_wait, base));
        if let (Some(lease), Some(report)) = (&plan.lease, pool_report.as_mut()) {
            let lease =
                crate::suite::pool::catch_up(&self.warehouse(), lease, &observed.bars, report)
                    .await?;
            if let Some(again) = predict_again(&lease, &values, &closers, &observed, report) {
                (expected, bars) = again.adopt(&mut sent);
            }
        }
        let deliveries: Vec<Delivery> = sent.iter().map(|s| s.delivery.clone()).collect();
        let (stored_bars, stored_signals) = (observed.bars.clone(), observed.signals.clone());
        let mut report = self
            .judge(
                scenario,
                Evidence {
                    symbols: &names,
                    after: base,
                    expected: &expected,
                    bars: &bars,
                    closers: &closers,
                    deliveries: &deliveries,
                },
                observed,
            )
            .await?;
        if let Some(pool) = &pool_report {
            let findings = pool.findings(&stored_bars);
            if !findings.is_empty() {
                report.verdict = Verdict::Fail;
                report.findings.extend(findings);
            }
        }
        let ctx = StageContext {
            config: self.config,
            scenario,
            run_id: self.run_id,
            symbols: &plan.symbols,
            expected_bars: &expected.bars,
            expected_signals: &expected.signals,
            stored_bars: &stored_bars,
            stored_signals: &stored_signals,
            clickhouse: self.clickhouse,
            artifacts: self
                .config
                .artifacts_dir
                .join(self.run_id.as_str())
                .join(&scenario.name),
        };
        report.stages = later_stages(&ctx).await;
        // The HTML evidence report plots what was expected against what was stored.
        report.series = crate::domain::report::Series::new(
            &expected.bars,
            &expected.signals,
            &stored_bars,
            &stored_signals,
        );
        if report.stages.iter().any(|s| s.verdict != Verdict::Pass) {
            report.verdict = Verdict::Fail;
        }
        // A stage whose tool stopped answering (the WebDriver) could not check anything.
        if report.stages.iter().any(|s| s.verdict == Verdict::Error) {
            report.verdict = Verdict::Error;
        }
        report.symbols = plan.symbols;
        report.pool = pool_report;
        report.messages_published = sent.len();
        report.messages_acknowledged = deliveries.len();
        report.deliveries = deliveries;
        report.verdict_after_publish_ms = published_at.elapsed().as_millis() as u64;
        report.duration_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// A compressed scenario's event times lie behind the watermark that this run's earlier
    /// (real-time) trades set, so every watermark advance closes its open bucket at once: an
    /// advance still pending from those trades, landing between two trades of one second,
    /// would split that bar. Let it happen first. (Other writers on a live lane can do the
    /// same at any time: there, use real-time pacing.)
    async fn settle(&self, scenario: &Scenario) {
        if scenario.pacing != Pacing::Compressed {
            return;
        }
        if let Some(since) = self.publisher.since_last_send() {
            if let Some(left) = WATERMARK_SETTLE.checked_sub(since) {
                tokio::time::sleep(left).await;
            }
        }
    }

    /// Fresh symbols that must have no rows yet, or the pool's, seeded from their history.
    async fn plan(&self, scenario: &Scenario) -> Result<Plan, RunError> {
        let Some(pool) = self.pool else {
            let symbols: BTreeMap<String, String> = scenario
                .symbols
                .iter()
                .map(|a| (a.clone(), symbols::synthetic(self.run_id, a)))
                .collect();
            for symbol in symbols.values() {
                ensure_synthetic(symbol)?;
                if self.clickhouse.has_rows(symbol).await? {
                    return Err(RunError::SymbolNotFresh(symbol.clone()));
                }
            }
            return Ok(Plan {
                symbols,
                clock: symbols::synthetic(self.run_id, CLOCK_ALIAS),
                close: scenario.close,
                deadline: scenario.deadline,
                lease: None,
            });
        };
        let lease = crate::suite::pool::lease(&self.warehouse(), pool, &scenario.symbols).await?;
        for r in &lease.retired {
            tracing::warn!(symbol = %r.symbol, generation = r.generation, reason = %r.reason, "pool generation retired");
        }
        let symbols: BTreeMap<String, String> = lease
            .symbols
            .iter()
            .map(|(alias, s)| (alias.clone(), s.symbol.clone()))
            .collect();
        for symbol in symbols.values() {
            ensure_synthetic(symbol)?;
        }
        if scenario.close != Close::Watermark {
            tracing::info!(scenario = %scenario.name, "pool symbols close by watermark: a closing trade would leave an open bar the next run cannot see");
        }
        Ok(Plan {
            symbols,
            clock: pool.clock(),
            close: Close::Watermark,
            deadline: scenario.deadline.max(POOL_MIN_DEADLINE),
            lease: Some(lease),
        })
    }

    /// Publishes every event (plus the closing trades) and runs the oracle on the very same
    /// message values, in the same order. Acknowledgements are collected as publishing goes
    /// (see [`Window`]): the first one that fails stops the scenario.
    async fn publish(
        &self,
        scenario: &Scenario,
        plan: &Plan,
        base: OffsetDateTime,
        record: &Record,
    ) -> Result<Published, RunError> {
        let mut oracle = seeded_oracle(plan.lease.as_ref());
        let mut window = Window::new(self.publisher, record.clone(), MAX_IN_FLIGHT);
        let mut emitted_by = Vec::new();
        let mut expected = Expectations::default();
        let mut seq_per_symbol: HashMap<String, i64> = HashMap::new();
        let mut messages = Vec::new();
        for event in &scenario.events {
            let at = offset(base, event.at_ms())?;
            messages.push((
                event_channel(event),
                plan.symbols[event.symbol()].clone(),
                at,
                event.clone(),
            ));
        }
        let closers = closing_trades(scenario, plan, base)?;
        let closer_keys: Vec<RowKey> = closers
            .iter()
            .map(|(_, s, at, _)| open_bar_key(s, *at))
            .collect();
        let first_closer = messages.len();
        messages.extend(closers);
        let mut values = Vec::with_capacity(messages.len());
        for (index, (channel, symbol, at, event)) in messages.into_iter().enumerate() {
            let until = if scenario.pacing == Pacing::Realtime {
                Some(instant_of(at))
            } else if index == first_closer && plan.close == Close::Watermark {
                // Sent at once, the clock's partition would go idle together with the ones
                // holding the last bars, and an all-idle watermark never advances (the job's
                // idleness rule): the clock must outlive them by a moment.
                Some(tokio::time::Instant::now() + CLOCK_GAP)
            } else {
                None
            };
            if let Err(e) = window.wait(until).await {
                window.abandon().await;
                return Err(e.into());
            }
            if scenario.pacing == Pacing::Realtime {
                wait_until_past(at).await;
            }
            let seq = seq_per_symbol.entry(symbol.clone()).or_insert(0);
            *seq += 1;
            let value = message(&event, &symbol, at, *seq);
            let rows = match oracle.on_message(&value) {
                Ok(rows) => rows,
                Err(e) => {
                    if window.drain().await.is_err() {
                        window.abandon().await;
                    }
                    return Err(RunError::Oracle {
                        index,
                        message: e.to_string(),
                    });
                }
            };
            emitted_by.push(expected.add(rows));
            values.push(value.clone());
            window.send(index, channel, &symbol, value);
        }
        if let Err(e) = window.drain().await {
            window.abandon().await;
            return Err(e.into());
        }
        // Every message is acknowledged: the deliveries line up with the messages.
        let sent = window
            .deliveries()
            .into_iter()
            .zip(emitted_by)
            .map(|(delivery, emitted)| Sent { delivery, emitted })
            .collect();
        Ok(Published {
            sent,
            closers: closer_keys,
            expected,
            values,
        })
    }

    /// Polls ClickHouse until every expected key is in both tables, or the deadline.
    /// Polls at a fixed pace while `active`, recording first sightings only.
    async fn watch(
        &self,
        symbols: &[String],
        after: OffsetDateTime,
        state: &Mutex<PollState>,
        active: &AtomicBool,
    ) {
        while active.load(Ordering::Relaxed) {
            let fetched = tokio::try_join!(
                self.clickhouse.microbars(symbols, after),
                self.clickhouse.signals(symbols, after)
            );
            let _ = state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .observe(fetched, &[]);
            tokio::time::sleep(WATCH_INTERVAL).await;
        }
    }

    async fn wait_for(
        &self,
        plan: &Plan,
        symbols: &[String],
        after: OffsetDateTime,
        bars: &[ExpectedBar],
        state: Arc<Mutex<PollState>>,
    ) -> Result<Observed, RunError> {
        let wanted: Arc<Vec<RowKey>> = Arc::new(bars.iter().map(|b| b.key.clone()).collect());
        let waited = wait::until(plan.deadline, wait::Backoff::default(), || {
            let (ch, state, wanted) = (self.clickhouse, state.clone(), wanted.clone());
            async move {
                let fetched =
                    tokio::try_join!(ch.microbars(symbols, after), ch.signals(symbols, after));
                let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                st.observe(fetched, &wanted)
            }
        })
        .await;
        let mut st = std::mem::take(&mut *state.lock().unwrap_or_else(|e| e.into_inner()));
        if let (None, Some(e)) = (&waited.value, st.last_error.take()) {
            if st.observed.bars.is_empty() {
                return Err(e.into());
            }
        }
        let mut observed = st.observed;
        observed.first_seen = st.first_seen;
        observed.attempts = waited.attempts;
        observed.waited_ms = waited.elapsed.as_millis() as u64;
        Ok(observed)
    }

    async fn judge(
        &self,
        scenario: &Scenario,
        run: Evidence<'_>,
        observed: Observed,
    ) -> Result<ScenarioReport, RunError> {
        let Evidence {
            symbols,
            after,
            expected,
            bars,
            closers,
            deliveries,
        } = run;
        // The closing trade's own bar may appear (watermark) or not: tolerated either way.
        let tolerated = |k: &RowKey| {
            closers
                .iter()
                .any(|c| c.symbol == k.symbol && c.event_ts == k.event_ts)
        };
        let obs_bars: Vec<Microbar> = observed
            .bars
            .iter()
            .filter(|b| !tolerated(&b.key()))
            .cloned()
            .collect();
        let obs_sigs: Vec<Signal> = observed
            .signals
            .iter()
            .filter(|s| !tolerated(&s.key()))
            .cloned()
            .collect();
        let mut tables = BTreeMap::new();
        if scenario.tables.contains(&Table::Microbars) {
            let d = compare::compare(
                &expected.bars,
                &obs_bars,
                |c| scenario.ignores(Table::Microbars, c),
                |c| scenario.tolerance(c),
            );
            tables.insert(Table::Microbars.name().to_string(), d);
        }
        if scenario.tables.contains(&Table::Signals) {
            let d = compare::compare(
                &expected.signals,
                &obs_sigs,
                |c| scenario.ignores(Table::Signals, c),
                |c| scenario.tolerance(c),
            );
            tables.insert(Table::Signals.name().to_string(), d);
        }
        let facts = self
            .facts(deliveries, (symbols, after), bars, &obs_bars, &tables)
            .await?;
        let mut findings = diagnose::sink(&facts);
        let latency = latency_report(bars, &observed, scenario.max_latency_ms);
        if let (Some(limit), Some(p95)) =
            (scenario.max_latency_ms, latency.publish_to_visible.p95_ms)
        {
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
        Ok(ScenarioReport {
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
        })
    }

    /// Whether the TA job's group has committed offsets past every trade of the run. `None`
    /// when that cannot be told (no commit yet: Flink commits on checkpoints).
    async fn ta_consumed(&self, deliveries: &[Delivery]) -> Option<bool> {
        let mut last: BTreeMap<i32, i64> = BTreeMap::new();
        for d in deliveries.iter().filter(|d| d.channel == Channel::Trades) {
            let e = last.entry(d.partition).or_insert(d.offset);
            *e = (*e).max(d.offset);
        }
        let partitions: Vec<i32> = last.keys().copied().collect();
        let target = self.publisher.target();
        let committed = crate::adapter::kafka::committed_offsets(
            target,
            &target.ta_group_id,
            &target.trades_topic,
            &partitions,
            Duration::from_secs(5),
        )
        .await
        .ok()?;
        if committed.is_empty() {
            return None;
        }
        // A committed offset is the next offset to read.
        Some(
            last.iter()
                .all(|(p, o)| committed.get(p).is_some_and(|c| c > o)),
        )
    }

    async fn facts(
        &self,
        deliveries: &[Delivery],
        (symbols, after): (&[String], OffsetDateTime),
        bars: &[ExpectedBar],
        observed: &[Microbar],
        tables: &BTreeMap<String, TableDiff>,
    ) -> Result<SinkFacts, RunError> {
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
        let found = bars.len() - missing_positions.len();
        let mut facts = SinkFacts {
            expected_bars: bars.len(),
            found_bars: found,
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
        };
        facts.duplicates_unmerged = self
            .clickhouse
            .unmerged_duplicates("ta_microbars", symbols, after)
            .await? as usize;
        if found == 0 {
            facts.rows_in_other_database = self.clickhouse.database_holding(symbols).await?;
            facts.unhealthy_replicas = self.clickhouse.unhealthy_replicas().await?;
            facts.ta_consumed = self.ta_consumed(deliveries).await;
        }
        Ok(facts)
    }
}

/// The API stage, then the browser stage (which may use what the API returned).
async fn later_stages(ctx: &StageContext<'_>) -> Vec<StageReport> {
    let mut stages = Vec::new();
    if ctx.scenario.stages.contains(&Stage::Api) {
        stages.push(crate::stage::api::run_stage(ctx).await);
    }
    if ctx.scenario.stages.contains(&Stage::Browser) {
        let api = stages.iter().find(|s| s.stage == "api");
        let browser = crate::stage::browser::run_stage(ctx, api).await;
        stages.push(browser);
    }
    stages
}

/// What the publish phase established, for judging what ClickHouse shows.
struct Evidence<'a> {
    symbols: &'a [String],
    /// The run's rows end after this; a reused symbol's history ends before it.
    after: OffsetDateTime,
    expected: &'a Expectations,
    bars: &'a [ExpectedBar],
    closers: &'a [RowKey],
    deliveries: &'a [Delivery],
}

/// Expected rows in emission order, and where each publish's rows start.
#[derive(Default)]
struct Expectations {
    bars: Vec<Microbar>,
    signals: Vec<Signal>,
}

impl Expectations {
    /// The closing trade's own bar is tolerated, not expected: whether it is emitted depends on
    /// traffic after the run (`pipeline.md` §7.2 rule 6).
    fn drop_bars_of(&mut self, closers: &[RowKey]) {
        let closing = |k: &RowKey| {
            closers
                .iter()
                .any(|c| c.symbol == k.symbol && c.event_ts == k.event_ts)
        };
        self.bars.retain(|b| !closing(&b.key()));
        self.signals.retain(|s| !closing(&s.key()));
    }

    fn add(&mut self, rows: Vec<Expected>) -> Vec<RowKey> {
        let mut keys = Vec::new();
        for row in rows {
            match row {
                Expected::Microbar(b) => {
                    keys.push(b.key());
                    self.bars.push(b);
                }
                Expected::Signal(s) => self.signals.push(s),
            }
        }
        keys
    }
}

/// What the polls have seen so far.
#[derive(Default)]
struct PollState {
    observed: Observed,
    first_seen: HashMap<RowKey, (OffsetDateTime, Duration)>,
    last_poll: Option<Instant>,
    last_error: Option<ClickHouseError>,
}

impl PollState {
    /// Records one poll; ready once every expected key is in both tables.
    fn observe(
        &mut self,
        fetched: Result<(Vec<Microbar>, Vec<Signal>), ClickHouseError>,
        wanted: &[RowKey],
    ) -> Poll<()> {
        // The time since the previous poll bounds how late a first sighting is recorded.
        let since_previous = self.last_poll.map_or(Duration::ZERO, |t| t.elapsed());
        self.last_poll = Some(Instant::now());
        let (bars, signals) = match fetched {
            Ok(rows) => rows,
            Err(e) => {
                let text = e.to_string();
                self.last_error = Some(e);
                return Poll::Pending(format!("query failed: {text}"));
            }
        };
        let now = OffsetDateTime::now_utc();
        for b in &bars {
            self.first_seen
                .entry(b.key())
                .or_insert((now, since_previous));
        }
        // Bar ends, not seqs: a run whose seqs are off (a reused symbol's history moved on)
        // must not wait out its deadline; the comparison reports the seqs.
        let have_bars = present(wanted, bars.iter().map(Columns::key));
        let have_sigs = present(wanted, signals.iter().map(Columns::key));
        self.observed.bars = bars;
        self.observed.signals = signals;
        if have_bars == wanted.len() && have_sigs == wanted.len() && !wanted.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending(format!(
                "{have_bars}/{n} microbars, {have_sigs}/{n} signals",
                n = wanted.len()
            ))
        }
    }
}

/// How many of `wanted` have a row, see [`presence`].
fn present(wanted: &[RowKey], rows: impl Iterator<Item = RowKey>) -> usize {
    presence(wanted, rows).into_iter().filter(|p| *p).count()
}

/// Whether each of `wanted` has a row with the same symbol and bar end, as a multiset (two
/// bars ending in the same second need two rows). Seqs are left to the comparison.
fn presence(wanted: &[RowKey], rows: impl Iterator<Item = RowKey>) -> Vec<bool> {
    let mut have: HashMap<(String, OffsetDateTime), usize> = HashMap::new();
    for k in rows {
        *have.entry((k.symbol, k.event_ts)).or_default() += 1;
    }
    wanted
        .iter()
        .map(|k| {
            have.get_mut(&(k.symbol.clone(), k.event_ts))
                .is_some_and(|n| {
                    let ok = *n > 0;
                    *n = n.saturating_sub(1);
                    ok
                })
        })
        .collect()
}

#[derive(Default)]
struct Observed {
    bars: Vec<Microbar>,
    signals: Vec<Signal>,
    first_seen: HashMap<RowKey, (OffsetDateTime, Duration)>,
    attempts: Vec<crate::domain::report::Attempt>,
    waited_ms: u64,
}

fn expected_bars(sent: &[Sent], expected: &Expectations) -> Vec<ExpectedBar> {
    let trigger: HashMap<&RowKey, &Delivery> = sent
        .iter()
        .flat_map(|s| s.emitted.iter().map(move |k| (k, &s.delivery)))
        .collect();
    expected
        .bars
        .iter()
        .map(|b| {
            let key = b.key();
            let by = trigger.get(&key);
            ExpectedBar {
                trigger_ack: by.map_or(OffsetDateTime::UNIX_EPOCH, |d| d.acked_at),
                closed_by_watermark: by.is_some_and(|d| d.symbol != key.symbol),
                key,
            }
        })
        .collect()
}

/// Per-hop latency of the bars closed by trades, and apart, of those closed by the watermark,
/// whose limit adds the time the job may hold its watermark for idle partitions.
fn latency_report(
    bars: &[ExpectedBar],
    observed: &Observed,
    max_latency_ms: Option<u64>,
) -> LatencyReport {
    let (by_watermark, by_trade): (Vec<&ExpectedBar>, Vec<&ExpectedBar>) =
        bars.iter().partition(|b| b.closed_by_watermark);
    let trade = HopSamples::of(&by_trade, observed);
    let watermark = HopSamples::of(&by_watermark, observed);
    let hold_allowance_ms = (crate::domain::oracle::watermark::IDLE_TIMEOUT_MS
        + crate::domain::oracle::watermark::WATERMARK_INTERVAL_MS)
        as f64;
    LatencyReport {
        publish_to_visible: latency::summarize(&trade.publish_to_visible),
        publish_to_ta_emit: latency::summarize(&trade.publish_to_emit),
        ta_emit_to_visible: latency::summarize(&trade.emit_to_visible),
        polling_error_ms: trade.polling_error_ms.max(watermark.polling_error_ms),
        watermark_closed: WatermarkLatency {
            publish_to_visible: latency::summarize(&watermark.publish_to_visible),
            publish_to_ta_emit: latency::summarize(&watermark.publish_to_emit),
            ta_emit_to_visible: latency::summarize(&watermark.emit_to_visible),
            hold_allowance_ms,
            limit_ms: max_latency_ms.map(|l| l as f64 + hold_allowance_ms),
        },
    }
}

/// Per-bar latency samples of the bars that were seen, in milliseconds.
#[derive(Default)]
struct HopSamples {
    publish_to_visible: Vec<f64>,
    publish_to_emit: Vec<f64>,
    emit_to_visible: Vec<f64>,
    polling_error_ms: f64,
}

impl HopSamples {
    fn of(bars: &[&ExpectedBar], observed: &Observed) -> Self {
        let ms = |d: time::Duration| d.as_seconds_f64() * 1000.0;
        let mut samples = HopSamples::default();
        for bar in bars {
            let Some((seen_at, interval)) = observed.first_seen.get(&bar.key) else {
                continue;
            };
            samples
                .publish_to_visible
                .push(ms(*seen_at - bar.trigger_ack));
            samples.polling_error_ms = samples
                .polling_error_ms
                .max(interval.as_secs_f64() * 1000.0);
            if let Some(row) = observed.bars.iter().find(|b| b.key() == bar.key) {
                samples
                    .publish_to_emit
                    .push(ms(row.ingest_ts - bar.trigger_ack));
                samples.emit_to_visible.push(ms(*seen_at - row.ingest_ts));
            }
        }
        samples
    }
}

/// Where offset 0 sits on the wall clock.
fn time_base(scenario: &Scenario) -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    match scenario.pacing {
        // Start on the next whole second plus a little, so offsets map onto seconds as written.
        Pacing::Realtime => now.replace_millisecond(0).unwrap_or(now) + time::Duration::seconds(1),
        // Everything ends a second before now: in the past, never in the future.
        Pacing::Compressed => {
            // A linted scenario's span is within the ceiling; clamped all the same.
            let ceiling = crate::domain::scenario::MAX_SPAN_CEILING.as_millis() as u64;
            let span_ms = scenario.span_ms().min(ceiling) as i64;
            let start = now - time::Duration::milliseconds(span_ms + 2_000);
            start.replace_millisecond(0).unwrap_or(start)
        }
    }
}

/// The wall-clock time of offset 0. After a pool symbol's history by more than the
/// quote-freshness window, so the run's bars follow it and no earlier quote applies to them:
/// compressed pacing waits until that is also in the past.
async fn start_time(scenario: &Scenario, lease: Option<&Lease>) -> OffsetDateTime {
    let Some(last) = lease.and_then(Lease::last_event_ts) else {
        return time_base(scenario);
    };
    let stale = crate::domain::oracle::SignalConfig::default().quote_stale_after_ms;
    let earliest = last + time::Duration::milliseconds(stale + 1_000);
    loop {
        let base = time_base(scenario);
        if base >= earliest {
            return base;
        }
        let wait = (earliest - base).unsigned_abs();
        tracing::info!(
            wait_ms = wait.as_millis() as u64,
            "waiting so this run's trades come after the pool symbols' history"
        );
        tokio::time::sleep(wait).await;
    }
}

fn ensure_synthetic(symbol: &str) -> Result<(), RunError> {
    if symbols::is_synthetic(symbol) {
        Ok(())
    } else {
        Err(RunError::UnsafeSymbol(symbol.to_string()))
    }
}

/// An oracle that knows the leased symbols' history.
fn seeded_oracle(lease: Option<&Lease>) -> Oracle {
    let mut oracle = Oracle::new();
    for (_, s) in lease.map_or(&[][..], |l| &l.symbols) {
        oracle.seed(&s.symbol, s.seed.clone());
    }
    oracle
}

/// Expectations predicted a second time from a lease that learnt more after the run: bars
/// an earlier run left open (closed by this run's first trade) and, for symbols whose oldest
/// rows expired, the session volume before the run fitted to the `vwap_session` values
/// ClickHouse shows (the one unknown, see [`pool::fit_prior_volume`]).
fn predict_again(
    lease: &Lease,
    values: &[String],
    closers: &[RowKey],
    observed: &Observed,
    report: &mut PoolReport,
) -> Option<Prediction> {
    let mut lease = lease.clone();
    let mut changed = report
        .symbols
        .iter()
        .any(|s| s.caught_up_bars > 0 || s.state_reset);
    for (_, seeded) in lease
        .symbols
        .iter_mut()
        .filter(|(_, s)| s.kind == HistoryKind::PrefixExpired)
    {
        let fit = pool::fit_session(seeded, &observed.bars, &observed.signals);
        report.record_fit(&seeded.symbol, &fit);
        seeded.seed.session = fit.session;
        changed = true;
    }
    if !changed {
        return None;
    }
    let mut oracle = seeded_oracle(Some(&lease));
    let mut prediction = Prediction::default();
    for value in values {
        // These values went through the same oracle once already.
        let rows = oracle.on_message(value).unwrap_or_default();
        prediction.emitted.push(prediction.expected.add(rows));
    }
    prediction.expected.drop_bars_of(closers);
    Some(prediction)
}

/// Rows predicted again, and which message makes the job emit each.
#[derive(Default)]
struct Prediction {
    expected: Expectations,
    emitted: Vec<Vec<RowKey>>,
}

impl Prediction {
    fn adopt(self, sent: &mut [Sent]) -> (Expectations, Vec<ExpectedBar>) {
        for (s, emitted) in sent.iter_mut().zip(self.emitted) {
            s.emitted = emitted;
        }
        let bars = expected_bars(sent, &self.expected);
        (self.expected, bars)
    }
}

/// The monotonic instant at which the wall clock reaches `at` (now, when it has).
fn instant_of(at: OffsetDateTime) -> tokio::time::Instant {
    let ahead = (at - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
    tokio::time::Instant::now() + ahead.unsigned_abs()
}

/// Sleeps until the wall clock has passed `at` (so event times are never in the future).
async fn wait_until_past(at: OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    if at > now {
        let wait = (at - now).unsigned_abs();
        tokio::time::sleep(wait).await;
    }
}

fn event_channel(event: &Event) -> Channel {
    match event {
        Event::Trade(_) => Channel::Trades,
        Event::Quote(_) => Channel::Quotes,
    }
}

/// The trades that close each symbol's last bar: per symbol in the next second, or one clock
/// trade 3 s after the last event that moves the watermark past every bar.
fn closing_trades(
    scenario: &Scenario,
    plan: &Plan,
    base: OffsetDateTime,
) -> Result<Vec<(Channel, String, OffsetDateTime, Event)>, RunError> {
    let mut last: BTreeMap<&str, (u64, f64)> = BTreeMap::new();
    for e in &scenario.events {
        if let Event::Trade(t) = e {
            let entry = last.entry(t.symbol.as_str()).or_insert((0, t.price));
            if t.at_ms >= entry.0 {
                *entry = (t.at_ms, t.price);
            }
        }
    }
    let trade = |alias: &str, symbol: String, at_ms: Option<u64>, price: f64| {
        let at_ms = at_ms.ok_or(RunError::Offset(u64::MAX))?;
        let at = offset(base, at_ms)?;
        let t = crate::domain::scenario::TradeEvent {
            symbol: alias.to_string(),
            at_ms,
            price,
            size: 1.0,
        };
        Ok((Channel::Trades, symbol, at, Event::Trade(t)))
    };
    // `ms` into the second after the one of `at_ms`.
    let next_second = |at_ms: u64, ms: u64| (at_ms / 1000 + 1).checked_mul(1000)?.checked_add(ms);
    match plan.close {
        Close::Trade => last
            .into_iter()
            .map(|(alias, (at_ms, price))| {
                trade(
                    alias,
                    plan.symbols[alias].clone(),
                    next_second(at_ms, 100),
                    price,
                )
            })
            .collect(),
        Close::Watermark => {
            let end = last.values().map(|(at, _)| *at).max().unwrap_or(0);
            // Past the last bar's end by more than the 2,000 ms out-of-orderness bound.
            let at_ms = next_second(end, 2_500);
            Ok(vec![trade(CLOCK_ALIAS, plan.clock.clone(), at_ms, 1.0)?])
        }
    }
}

/// The wall-clock time of an event offset, checked.
fn offset(base: OffsetDateTime, at_ms: u64) -> Result<OffsetDateTime, RunError> {
    crate::domain::scenario::time_at(base, at_ms).ok_or(RunError::Offset(at_ms))
}

/// Wall time between a compressed scenario's last message and its watermark clock trade.
const CLOCK_GAP: Duration = Duration::from_secs(2);

/// Alias of the clock symbol a watermark-closed scenario trades once at the end.
const CLOCK_ALIAS: &str = "CLOCK";

/// The key the closing trade's bar would have (its seq is unknown, so only symbol and time).
fn open_bar_key(symbol: &str, at: OffsetDateTime) -> RowKey {
    let start = at.replace_millisecond(0).unwrap_or(at);
    RowKey {
        symbol: symbol.to_string(),
        event_ts: start + time::Duration::seconds(1),
        seq: 0,
    }
}

/// The forwarder's message value for one event.
fn message(event: &Event, symbol: &str, at: OffsetDateTime, seq: i64) -> String {
    let ingest = OffsetDateTime::now_utc();
    match event {
        Event::Trade(t) => {
            crate::domain::envelope::trade_message(symbol, at, t.price, t.size, seq, ingest)
        }
        Event::Quote(q) => crate::domain::envelope::quote_message(
            symbol, at, q.bid, q.bid_size, q.ask, q.ask_size, seq, ingest,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::oracle::Trade;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-07-21 14:30:00 UTC);

    fn ms(n: i64) -> time::Duration {
        time::Duration::milliseconds(n)
    }

    /// X trades in two seconds (its first bar closes on its own next trade), then a clock trade
    /// moves the watermark past X's second bar. Returns the sends and the expectations.
    fn closes() -> (Vec<Sent>, Expectations) {
        let mut oracle = crate::domain::oracle::Oracle::new();
        let mut expected = Expectations::default();
        let trades = [("X", 100), ("X", 1_100), ("CLOCK", 4_500)];
        let sent = trades
            .iter()
            .enumerate()
            .map(|(index, (symbol, at))| {
                let rows = oracle.on_trade(symbol, Trade::at(T0 + ms(*at), 10.0, 1.0));
                Sent {
                    delivery: Delivery {
                        index,
                        channel: Channel::Trades,
                        symbol: symbol.to_string(),
                        partition: 0,
                        offset: index as i64,
                        acked_at: T0 + ms(*at + 20),
                    },
                    emitted: expected.add(rows),
                }
            })
            .collect();
        (sent, expected)
    }

    #[test]
    fn bars_closed_by_the_watermark_are_timed_and_limited_apart() {
        let (sent, expected) = closes();
        let bars = expected_bars(&sent, &expected);
        let kinds: Vec<(u64, bool)> = bars
            .iter()
            .map(|b| (b.key.seq, b.closed_by_watermark))
            .collect();
        assert_eq!(kinds, [(1, false), (2, true)]);

        // Bar 1 visible 300 ms after the trade that closed it, bar 2 29 s after the clock trade
        // (the job waited for an idle partition).
        let mut observed = Observed::default();
        for (bar, visible_after, emitted_after) in
            [(&bars[0], 300, 100), (&bars[1], 29_000, 28_500)]
        {
            let seen = bar.trigger_ack + ms(visible_after);
            observed
                .first_seen
                .insert(bar.key.clone(), (seen, Duration::from_millis(50)));
            let mut row = expected
                .bars
                .iter()
                .find(|b| b.key() == bar.key)
                .expect("expected bar")
                .clone();
            row.ingest_ts = bar.trigger_ack + ms(emitted_after);
            observed.bars.push(row);
        }
        let l = latency_report(&bars, &observed, Some(5_000));
        assert_eq!(
            (l.publish_to_visible.count, l.publish_to_visible.p95_ms),
            (1, Some(300.0))
        );
        assert_eq!(l.ta_emit_to_visible.p95_ms, Some(200.0));
        let w = &l.watermark_closed;
        assert_eq!(
            (w.publish_to_visible.count, w.publish_to_visible.p95_ms),
            (1, Some(29_000.0))
        );
        assert_eq!(w.publish_to_ta_emit.p95_ms, Some(28_500.0));
        assert_eq!(w.hold_allowance_ms, 31_000.0);
        assert_eq!(w.limit_ms, Some(36_000.0));
        assert_eq!(
            latency_report(&bars, &observed, None)
                .watermark_closed
                .limit_ms,
            None
        );
    }
}
