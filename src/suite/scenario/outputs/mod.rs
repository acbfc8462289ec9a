//! The TA job's Kafka outputs and status heartbeat around one scenario (issue 18): two stages
//! beside the ClickHouse one, `kafka_outputs` and `heartbeat`.
//!
//! The watch starts before the scenario publishes (end offsets taken, a consumer assigned there)
//! and records every output record as it arrives. Once ClickHouse shows the run's rows, the
//! topics are given a short bound to show the same rows; the run's records (by key: the symbol)
//! are decoded, mapped to the table rows and compared with the oracle's through the ClickHouse
//! comparator and tolerances, and set beside ClickHouse's rows to name the sink that fails.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use super::expect::ExpectedBar;
use super::judge::MINUTE_SIGNALS;
use crate::adapter::kafka::{self, OutputRecord, OutputWatch, StampKind};
use crate::adapter::registry::Registry;
use crate::config::{Config, KafkaTarget, OutputsTarget};
use crate::domain::compare::{self, TableDiff};
use crate::domain::diagnose::{Finding, Hop, RUNBOOK_KAFKA_SINK, RUNBOOK_SCHEMA_REGISTRY};
use crate::domain::latency;
use crate::domain::model::{Columns, Microbar, RowKey, Signal, WINDOW_1M};
use crate::domain::outputs::decode::{self, datum, frame};
use crate::domain::outputs::heartbeat::{self, Heartbeat, HeartbeatRun, HeartbeatVerdict};
use crate::domain::outputs::judge::{self, Sides};
use crate::domain::outputs::{DecodeError, Frame, Output};
use crate::domain::report::{StageCheck, StageReport, Verdict};
use crate::domain::scenario::{Scenario, Table};

/// How long after ClickHouse shows the run's rows the topics may take to show them too.
const OUTPUTS_BOUND: Duration = Duration::from_secs(5);

/// How long learning the topics' writer schemas may hold the first scenario's start.
const LEARN_BOUND: Duration = Duration::from_secs(2);

/// The outputs check of a run: where the topics are and how to read their values.
pub struct OutputsCheck {
    kafka: KafkaTarget,
    target: OutputsTarget,
    registry: Option<Registry>,
    /// The topics' newest writer schemas asked for, once a run.
    schemas_learnt: tokio::sync::OnceCell<()>,
    timeout: Duration,
}

/// What the ClickHouse stage established, for the outputs check.
pub(super) struct OutputsRun<'a> {
    pub scenario: &'a Scenario,
    pub symbols: &'a [String],
    pub expected_bars: &'a [Microbar],
    pub expected_signals: &'a [Signal],
    /// The oracle's PT1M signals (a scenario with 1-minute bars), on the same signals topic.
    pub expected_minute_signals: &'a [Signal],
    pub stored_bars: &'a [Microbar],
    pub stored_signals: &'a [Signal],
    pub bars: &'a [ExpectedBar],
    /// The closing trades' own bars: tolerated on the topics as in ClickHouse.
    pub closers: &'a [RowKey],
    pub rows_visible_at: OffsetDateTime,
    /// The run's rows end after this, as in ClickHouse: a reused symbol's earlier bar that the
    /// run's first trade closes (emitted now, on the topic now) stays out.
    pub after: OffsetDateTime,
}

impl OutputsCheck {
    /// `None` when the configuration turns the check off (a target whose job writes no outputs).
    pub fn new(config: &Config) -> Result<Option<Self>, String> {
        if !config.outputs.enabled {
            return Ok(None);
        }
        let registry = config
            .outputs
            .schema_registry_url
            .as_deref()
            .map(|url| {
                Registry::new(
                    url,
                    config.outputs.registry_auth.clone(),
                    config.connect_timeout,
                )
            })
            .transpose()?;
        Ok(Some(OutputsCheck {
            kafka: config.kafka.clone(),
            target: config.outputs.clone(),
            registry,
            schemas_learnt: tokio::sync::OnceCell::new(),
            timeout: config.connect_timeout,
        }))
    }

    fn topic(&self, output: Output) -> &str {
        match output {
            Output::Bars => &self.target.bars_topic,
            Output::Signals => &self.target.signals_topic,
            Output::Status => &self.target.status_topic,
        }
    }

    /// Starts recording the output topics: call before the scenario publishes. The first
    /// call also learns the topics' newest writer schemas: fetched when the first records were
    /// decoded, they took 15 ms of two sequential registry round trips after a scenario's last
    /// evidence.
    pub async fn start(&self) -> Result<OutputWatch, String> {
        let topics = Output::ALL
            .iter()
            .map(|o| (*o, self.topic(*o).to_string()))
            .collect();
        let (watch, ()) = tokio::join!(
            kafka::watch_outputs(&self.kafka, topics, self.timeout),
            self.learn_schemas()
        );
        watch.map_err(|e| e.to_string())
    }

    /// The newest schema of each topic's subject (`<topic>-value`, `pipeline.md` §1.3) into
    /// the registry's cache, once.
    async fn learn_schemas(&self) {
        let Some(registry) = &self.registry else {
            return;
        };
        self.schemas_learnt
            .get_or_init(|| async {
                let subjects: Vec<String> = Output::ALL
                    .iter()
                    .map(|o| format!("{}-value", self.topic(*o)))
                    .collect();
                // Only a saving: a registry slow to answer must not hold the run's start (the
                // schemas are then fetched by id, as the records need them).
                let learnt = tokio::time::timeout(
                    LEARN_BOUND,
                    futures::future::join_all(subjects.iter().map(|s| registry.learn_latest(s))),
                )
                .await;
                tracing::debug!(?subjects, ?learnt, "writer schemas learnt");
            })
            .await;
    }

    /// Reads the topics until the run's records are in (or the bound) and the heartbeat can be
    /// judged, then stops reading: what [`OutputsCheck::finish`] judges, with when each piece
    /// of evidence arrived.
    pub(super) async fn settle(
        &self,
        watch: Result<OutputWatch, String>,
        run: &OutputsRun<'_>,
    ) -> Settled {
        let watch = match watch {
            Ok(w) => w,
            Err(e) => return Settled::Unread(e),
        };
        let want = Want::of(run);
        let mut reading = Reading::new(watch);
        let complete = reading
            .read(self, &want, tokio::time::Instant::now() + OUTPUTS_BOUND)
            .await;
        let Reading {
            mut watch,
            records,
            decoded,
            ..
        } = reading;
        // The last of the run's records, or the end of the bound when some never came.
        let outputs_at = if complete {
            records
                .iter()
                .filter(|r| is_run(r, &want.symbols))
                .map(|r| OffsetDateTime::from(r.arrived))
                .max()
        } else {
            Some(OffsetDateTime::now_utc())
        };
        let (heartbeat, heartbeat_at) = self.heartbeat_settled(&mut watch, &records, run).await;
        // Stops the reader now: nothing more is judged.
        drop(watch);
        Settled::Read {
            records,
            decoded,
            outputs_at,
            heartbeat: Box::new(heartbeat),
            heartbeat_at,
        }
    }

    /// The two stages' reports, from what [`OutputsCheck::settle`] read; `stored_diffs` are the
    /// ClickHouse tables' comparisons, to name the sink that fails.
    pub(super) async fn finish(
        &self,
        settled: Settled,
        run: &OutputsRun<'_>,
        stored_diffs: &BTreeMap<String, TableDiff>,
    ) -> Vec<StageReport> {
        match settled {
            Settled::Unread(e) => vec![unread("kafka_outputs", &e), unread("heartbeat", &e)],
            Settled::Read {
                records,
                decoded,
                heartbeat,
                ..
            } => {
                let outputs = self.judge_outputs(&records, decoded, run, stored_diffs);
                vec![outputs, *heartbeat]
            }
        }
    }

    /// Decodes a value: framing, writer schema (registry or the contract's), Avro. A framed
    /// value with no registry configured is read with the contract's schema, and its id comes
    /// back as unverified (a warning: the registry is not checked), or is undecodable without
    /// the registry.
    async fn value(
        &self,
        output: Output,
        bytes: &[u8],
    ) -> Result<(decode::Value, Option<u32>), DecodeError> {
        match frame(bytes)? {
            Frame::Plain(body) => Ok((datum(output.fixture_schema(), body)?, None)),
            Frame::Registry { id, body } => match &self.registry {
                Some(registry) => Ok((datum(&*registry.schema(id).await?, body)?, None)),
                None => datum(output.fixture_schema(), body)
                    .map(|v| (v, Some(id)))
                    .map_err(|_| DecodeError::RegistryNotConfigured(id)),
            },
        }
    }
}

/// What the outputs check read, before it is judged.
pub(super) enum Settled {
    /// The topics could not be read.
    Unread(String),
    Read {
        records: Vec<OutputRecord>,
        decoded: Decoded,
        /// When the last of the run's records arrived (or the bound ended without them).
        outputs_at: Option<OffsetDateTime>,
        heartbeat: Box<StageReport>,
        /// When the heartbeat judged arrived (or the wait for one ended without it).
        heartbeat_at: Option<OffsetDateTime>,
    },
}

impl Settled {
    /// When each stage's evidence was in hand.
    pub fn evidence_at(&self) -> Vec<(&'static str, Option<OffsetDateTime>)> {
        match self {
            Settled::Unread(_) => Vec::new(),
            Settled::Read {
                outputs_at,
                heartbeat_at,
                ..
            } => vec![("kafka_outputs", *outputs_at), ("heartbeat", *heartbeat_at)],
        }
    }
}

/// The warning for framed values read without a registry (their ids were not checked).
fn unverified(ids: &BTreeSet<u32>) -> Option<Finding> {
    if ids.is_empty() {
        return None;
    }
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    Some(Finding::warning(
        Hop::SchemaRegistry,
        format!(
            "values are Confluent-framed (schema ids {}) but no schema_registry_url is configured: \
             read with the contract's writer schemas, the registry not checked",
            ids.join(", ")
        ),
        RUNBOOK_SCHEMA_REGISTRY,
    ))
}

/// A stage that could not read its topics: an error (the target did not answer).
fn unread(stage: &str, error: &str) -> StageReport {
    StageReport {
        stage: stage.into(),
        verdict: Verdict::Error,
        checks: vec![StageCheck {
            name: "read".into(),
            ok: false,
            detail: format!("could not read the output topics: {error}"),
            ..StageCheck::default()
        }],
        findings: vec![Finding::failure(
            Hop::KafkaSink,
            format!("the output topics could not be read: {error}"),
            RUNBOOK_KAFKA_SINK,
        )],
        observed: BTreeMap::new(),
    }
}

/// A record of one of the run's symbols (the Kafka key is the symbol, `pipeline.md` §1.1).
fn is_run(r: &OutputRecord, symbols: &BTreeSet<String>) -> bool {
    r.output != Output::Status
        && r.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
            .is_some_and(|k| symbols.contains(k))
}

/// What the run's output records must show: the expected rows' keys, and how many of each
/// output.
struct Want {
    symbols: BTreeSet<String>,
    keys: BTreeSet<(Output, RowKey)>,
    bars: usize,
    signals: usize,
}

impl Want {
    fn of(run: &OutputsRun<'_>) -> Self {
        let bars = run.expected_bars.iter().map(|b| (Output::Bars, b.key()));
        let signals = run
            .expected_signals
            .iter()
            .chain(run.expected_minute_signals)
            .map(|s| (Output::Signals, s.key()));
        Self {
            symbols: run.symbols.iter().cloned().collect(),
            keys: bars.chain(signals).collect(),
            bars: run.expected_bars.len(),
            signals: run.expected_signals.len(),
        }
    }

    /// Every expected row seen; or as many of the run's records as rows expected, some of
    /// which do not decode: waiting longer would not change the verdict.
    fn seen(&self, r: &Reading) -> bool {
        let undecoded = r.tombstones || r.decoded.has_errors();
        self.keys.is_subset(&r.keys)
            || (undecoded && r.bars >= self.bars && r.signals >= self.signals)
    }
}

/// The topics read as records arrive, the run's each decoded once, as it is read (the wait
/// needs only which rows came, the judgement their values: one decoding serves both).
struct Reading {
    watch: OutputWatch,
    /// Every record read, the run's and others' (`decoded` indexes into it).
    records: Vec<OutputRecord>,
    decoded: Decoded,
    /// The run's rows that decoded (kept as they come: the wait asks on every arrival),
    /// whether some records had no value (a tombstone is no row either), and how many
    /// records of each output came.
    keys: BTreeSet<(Output, RowKey)>,
    tombstones: bool,
    bars: usize,
    signals: usize,
}

impl Reading {
    fn new(watch: OutputWatch) -> Self {
        Self {
            watch,
            records: Vec::new(),
            decoded: Decoded::default(),
            keys: BTreeSet::new(),
            tombstones: false,
            bars: 0,
            signals: 0,
        }
    }

    /// Reads what has arrived, then waits for more until `want` is seen or `deadline`; whether
    /// it was. What arrived by then is read too (a repeat on the topic counts). A scenario
    /// published with others sees thousands of their records: each is looked at once.
    async fn read(
        &mut self,
        check: &OutputsCheck,
        want: &Want,
        deadline: tokio::time::Instant,
    ) -> bool {
        loop {
            let new = self.watch.records_from(self.records.len());
            if !new.is_empty() {
                let batch = check
                    .decode_run(&new, self.records.len(), &want.symbols)
                    .await;
                self.keys.extend(batch.keys());
                for r in new.iter().filter(|r| is_run(r, &want.symbols)) {
                    self.tombstones |= r.value.is_none();
                    match r.output {
                        Output::Bars => self.bars += 1,
                        Output::Signals => self.signals += 1,
                        Output::Status => {}
                    }
                }
                self.decoded.extend(batch);
                self.records.extend(new);
                continue;
            }
            if want.seen(self) {
                return true;
            }
            if !self.watch.arrival(deadline).await {
                return false;
            }
        }
    }
}

mod heartbeat_stage;
mod outputs_stage;

use outputs_stage::Decoded;

#[cfg(test)]
mod tests;
