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

/// The outputs check of a run: where the topics are and how to read their values.
pub struct OutputsCheck {
    kafka: KafkaTarget,
    target: OutputsTarget,
    registry: Option<Registry>,
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

    /// Starts recording the output topics: call before the scenario publishes.
    pub async fn start(&self) -> Result<OutputWatch, String> {
        let topics = Output::ALL
            .iter()
            .map(|o| (*o, self.topic(*o).to_string()))
            .collect();
        kafka::watch_outputs(&self.kafka, topics, self.timeout)
            .await
            .map_err(|e| e.to_string())
    }

    /// Reads the topics until the run's records are in (or the bound) and the heartbeat can be
    /// judged, then stops reading: what [`OutputsCheck::finish`] judges, with when each piece
    /// of evidence arrived.
    pub(super) async fn settle(
        &self,
        watch: Result<OutputWatch, String>,
        run: &OutputsRun<'_>,
    ) -> Settled {
        let mut watch = match watch {
            Ok(w) => w,
            Err(e) => return Settled::Unread(e),
        };
        let symbols: BTreeSet<&str> = run.symbols.iter().map(String::as_str).collect();
        let mut arrived = Arrived::default();
        let complete = watch
            .wait_until(OUTPUTS_BOUND, |new| {
                arrived.add(new, &symbols);
                // Every expected row seen; or as many of the run's records as rows expected,
                // some of which do not decode: waiting longer would not change the verdict.
                let all_seen = run
                    .expected_bars
                    .iter()
                    .all(|b| arrived.keys.contains(&(Output::Bars, b.key())))
                    && run
                        .expected_signals
                        .iter()
                        .chain(run.expected_minute_signals)
                        .all(|s| arrived.keys.contains(&(Output::Signals, s.key())));
                all_seen
                    || (arrived.undecoded
                        && arrived.bars >= run.expected_bars.len()
                        && arrived.signals >= run.expected_signals.len())
            })
            .await;
        let records = watch.records();
        // The last of the run's records, or the end of the bound when some never came.
        let outputs_at = if complete {
            records
                .iter()
                .filter(|r| is_run(r, &symbols))
                .map(|r| OffsetDateTime::from(r.arrived))
                .max()
        } else {
            Some(OffsetDateTime::now_utc())
        };
        // The run's records are decoded while the heartbeat is awaited: one that comes last then
        // leaves only the comparison to do.
        let (decoded, (heartbeat, heartbeat_at)) = tokio::join!(
            self.decode_run(&records, &symbols),
            self.heartbeat_settled(&mut watch, run)
        );
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

    /// The run's records decoded, then judged.
    #[cfg(test)]
    async fn outputs_stage(
        &self,
        records: &[OutputRecord],
        run: &OutputsRun<'_>,
        stored_diffs: &BTreeMap<String, TableDiff>,
    ) -> StageReport {
        let symbols: BTreeSet<&str> = run.symbols.iter().map(String::as_str).collect();
        let decoded = self.decode_run(records, &symbols).await;
        self.judge_outputs(records, decoded, run, stored_diffs)
    }

    /// The run's records among `records`, decoded: the costly part of the outputs stage.
    async fn decode_run(&self, records: &[OutputRecord], symbols: &BTreeSet<&str>) -> Decoded {
        let mut d = Decoded::default();
        for (i, r) in records
            .iter()
            .enumerate()
            .filter(|(_, r)| is_run(r, symbols))
        {
            let Some(bytes) = &r.value else { continue };
            let decoded = match self.value(r.output, bytes).await {
                Ok((v, unverified)) => {
                    d.unverified_ids.extend(unverified);
                    v
                }
                Err(e) => {
                    d.errors.push((r.output, e));
                    continue;
                }
            };
            match r.output {
                Output::Bars => match decode::microbar(&decoded) {
                    Ok(b) => d.bars.push((b, i)),
                    Err(e) => d.errors.push((r.output, e)),
                },
                Output::Signals => match decode::signal(&decoded) {
                    Ok(s) => d.signals.push(s),
                    Err(e) => d.errors.push((r.output, e)),
                },
                Output::Status => {}
            }
        }
        d
    }

    /// The outputs stage from the run's decoded records; `stored_diffs` name the sink that
    /// fails.
    fn judge_outputs(
        &self,
        records: &[OutputRecord],
        decoded: Decoded,
        run: &OutputsRun<'_>,
        stored_diffs: &BTreeMap<String, TableDiff>,
    ) -> StageReport {
        let Decoded {
            bars,
            signals,
            errors,
            unverified_ids,
        } = decoded;
        let bars: Vec<(Microbar, &OutputRecord)> =
            bars.into_iter().map(|(b, i)| (b, &records[i])).collect();
        let tolerated = |k: &RowKey| {
            k.event_ts <= run.after
                || run
                    .closers
                    .iter()
                    .any(|c| c.symbol == k.symbol && c.event_ts == k.event_ts)
        };
        // The signals topic carries both cadences: compare the ones the oracle predicts.
        let cadences: BTreeSet<&str> = run
            .expected_signals
            .iter()
            .map(|s| s.window_size.as_str())
            .collect();
        let (kafka_bars, bar_dups) = dedup(
            bars.iter()
                .map(|(b, _)| b.clone())
                .filter(|b| !tolerated(&b.key()))
                .collect(),
        );
        // The PT1M rows: the run's symbols are its own (a pool refuses 1-minute bars), and a
        // minute bar's event time (its minute's start) precedes the run's start, so no time cut.
        let (kafka_minutes, minute_dups) = dedup(
            signals
                .iter()
                .filter(|s| s.window_size == WINDOW_1M && !run.expected_minute_signals.is_empty())
                .cloned()
                .collect(),
        );
        let (kafka_signals, signal_dups) = dedup(
            signals
                .into_iter()
                .filter(|s| !tolerated(&s.key()) && cadences.contains(s.window_size.as_str()))
                .collect(),
        );
        let sc = run.scenario;
        let bar_diff = compare::compare(
            run.expected_bars,
            &kafka_bars,
            |c| sc.ignores(Table::Microbars, c),
            |c| sc.tolerance(c),
        );
        let signal_diff = compare::compare(
            run.expected_signals,
            &kafka_signals,
            |c| sc.ignores(Table::Signals, c),
            |c| sc.tolerance(c),
        );
        let minute_diff = (!run.expected_minute_signals.is_empty()).then(|| {
            compare::compare(
                run.expected_minute_signals,
                &kafka_minutes,
                |c| sc.ignores(Table::Signals, c),
                |c| sc.tolerance(c),
            )
        });
        let mut findings = judge::decoding(&errors);
        findings.extend(minute_diff.as_ref().and_then(|d| {
            minute_finding(
                d,
                stored_diffs.get(MINUTE_SIGNALS),
                self.topic(Output::Signals),
            )
        }));
        findings.extend(judge::sinks(&Sides {
            output: Output::Bars,
            topic: self.topic(Output::Bars),
            expected: run.expected_bars,
            kafka: &kafka_bars,
            stored: run.stored_bars,
            kafka_diff: &bar_diff,
            stored_diff: stored_diffs.get(Table::Microbars.name()),
            undecodable: errors.iter().filter(|(o, _)| *o == Output::Bars).count(),
        }));
        findings.extend(judge::sinks(&Sides {
            output: Output::Signals,
            topic: self.topic(Output::Signals),
            expected: run.expected_signals,
            kafka: &kafka_signals,
            stored: run.stored_signals,
            kafka_diff: &signal_diff,
            stored_diff: stored_diffs.get(Table::Signals.name()),
            undecodable: errors.iter().filter(|(o, _)| *o == Output::Signals).count(),
        }));
        findings.extend(unverified(&unverified_ids));
        let signal_dups = signal_dups + minute_dups;
        if bar_dups + signal_dups > 0 {
            // The job's Kafka sink is at least once (`pipeline.md` §1.1): a repeat is allowed.
            findings.push(Finding::warning(
                Hop::KafkaSink,
                format!(
                    "{bar_dups} bar and {signal_dups} signal records of the run were written more \
                     than once (at-least-once delivery; consumers must tolerate repeats)"
                ),
                RUNBOOK_KAFKA_SINK,
            ));
        }
        let mut observed = BTreeMap::new();
        let by_topic: BTreeMap<&str, usize> = Output::ALL
            .iter()
            .map(|o| (o.name(), records.iter().filter(|r| r.output == *o).count()))
            .collect();
        observed.insert("records_read".into(), serde_json::json!(by_topic));
        observed.insert(
            "encoding".into(),
            serde_json::json!(match &self.registry {
                Some(r) => format!("Confluent framing, registry {}", r.base()),
                None => "plain Avro (no registry configured)".to_string(),
            }),
        );
        observed.insert("latency".into(), kafka_latency(run.bars, &bars));
        // Check names stay the same across lanes and configs (JUnit cases, metric labels).
        let check = |output: Output, d: &TableDiff| StageCheck {
            name: output.name().into(),
            ok: d.is_clean(),
            detail: format!("{}: {}", self.topic(output), d.summary()),
            ..StageCheck::default()
        };
        StageReport {
            stage: "kafka_outputs".into(),
            // The tables the scenario compares, compared on their topics too.
            checks: [
                (Table::Microbars, check(Output::Bars, &bar_diff)),
                (Table::Signals, check(Output::Signals, &signal_diff)),
            ]
            .into_iter()
            .filter(|(table, _)| sc.tables.contains(table))
            .map(|(_, c)| c)
            .chain(minute_diff.as_ref().map(|d| StageCheck {
                name: "signals_pt1m".into(),
                ok: d.is_clean(),
                detail: format!("{} (PT1M): {}", self.topic(Output::Signals), d.summary()),
                ..StageCheck::default()
            }))
            .collect(),
            findings,
            observed,
            ..StageReport::default()
        }
        .conclude()
    }
}

/// The run's output records decoded: bars with the index of their record, signals, what did
/// not decode, framed ids read without a registry.
#[derive(Default)]
pub(super) struct Decoded {
    bars: Vec<(Microbar, usize)>,
    signals: Vec<Signal>,
    errors: Vec<(Output, DecodeError)>,
    unverified_ids: BTreeSet<u32>,
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
fn is_run(r: &OutputRecord, symbols: &BTreeSet<&str>) -> bool {
    r.output != Output::Status
        && r.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
            .is_some_and(|k| symbols.contains(k))
}

/// The run's records so far, as the wait for them needs them: the keys of those that decode
/// (only their presence matters), whether some do not, and how many of each output came.
#[derive(Default)]
struct Arrived {
    keys: BTreeSet<(Output, RowKey)>,
    undecoded: bool,
    bars: usize,
    signals: usize,
}

impl Arrived {
    fn add(&mut self, new: &[OutputRecord], symbols: &BTreeSet<&str>) {
        for r in new.iter().filter(|r| is_run(r, symbols)) {
            match key_of(r) {
                Some(key) => {
                    self.keys.insert(key);
                }
                None => self.undecoded = true,
            }
            match r.output {
                Output::Bars => self.bars += 1,
                Output::Signals => self.signals += 1,
                Output::Status => {}
            }
        }
    }
}

/// A record's row key, read with the contract's schema (a framed value's body included: the
/// registry's schema is not needed to see which row it is); `None` when it does not decode.
fn key_of(r: &OutputRecord) -> Option<(Output, RowKey)> {
    let body = match frame(r.value.as_deref()?).ok()? {
        Frame::Plain(b) | Frame::Registry { body: b, .. } => b,
    };
    let v = datum(r.output.fixture_schema(), body).ok()?;
    let key = match r.output {
        Output::Bars => decode::microbar(&v).ok()?.key(),
        Output::Signals => decode::signal(&v).ok()?.key(),
        Output::Status => return None,
    };
    Some((r.output, key))
}

fn dedup<R: Columns>(rows: Vec<R>) -> (Vec<R>, usize) {
    let mut seen = BTreeSet::new();
    let before = rows.len();
    let kept: Vec<R> = rows.into_iter().filter(|r| seen.insert(r.key())).collect();
    let repeats = before - kept.len();
    (kept, repeats)
}

/// Publish (broker ack of the closing message) → the bar on the bars topic, per bar. The
/// record's own timestamp is the element time (`pipeline.md` §1.1), not when it was written:
/// the broker's append time is used when the topic stamps it (`LogAppendTime`), else the time
/// the validator's consumer, assigned before publishing, received the record.
fn kafka_latency(bars: &[ExpectedBar], records: &[(Microbar, &OutputRecord)]) -> serde_json::Value {
    let ms_of = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let mut method = BTreeSet::new();
    let (mut by_trade, mut by_watermark) = (Vec::new(), Vec::new());
    // The first record of each bar (a repeat is the same bar again).
    let mut first: HashMap<RowKey, &OutputRecord> = HashMap::new();
    for (b, r) in records {
        first.entry(b.key()).or_insert(r);
    }
    for bar in bars {
        let Some(r) = first.get(&bar.key) else {
            continue;
        };
        let at_ms = match (r.stamp_kind, r.stamp_ms) {
            (StampKind::LogAppend, Some(t)) => {
                method.insert("log_append_time");
                t as f64
            }
            _ => {
                method.insert("consumer_arrival");
                ms_of(r.arrived)
            }
        };
        let ack_ms = (bar.trigger_ack - OffsetDateTime::UNIX_EPOCH).as_seconds_f64() * 1000.0;
        let sample = at_ms - ack_ms;
        if bar.closed_by_watermark {
            by_watermark.push(sample);
        } else {
            by_trade.push(sample);
        }
    }
    serde_json::json!({
        "method": method.into_iter().collect::<Vec<_>>(),
        "publish_to_kafka": latency::summarize(&by_trade),
        "watermark_publish_to_kafka": latency::summarize(&by_watermark),
    })
}

mod heartbeat_stage;

#[cfg(test)]
mod tests;

/// The PT1M records on the signals topic differ from the oracle's rows: the Kafka sink, when
/// ClickHouse holds them right (else the 1-minute branch itself, which the ClickHouse table's
/// finding names already).
fn minute_finding(kafka: &TableDiff, stored: Option<&TableDiff>, topic: &str) -> Option<Finding> {
    if kafka.is_clean() || !stored.is_some_and(TableDiff::is_clean) {
        return None;
    }
    Some(Finding::failure(
        Hop::KafkaSink,
        format!(
            "the 1-minute branch's PT1M signals on {topic} are not the ClickHouse rows the \
             oracle predicted: {}",
            kafka.summary()
        ),
        RUNBOOK_KAFKA_SINK,
    ))
}
