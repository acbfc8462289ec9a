//! The Kafka outputs stage of the outputs check: the run's records on the bars and signals
//! topics decoded (while the heartbeat is awaited) and compared with the oracle's rows, each
//! failing side named against the ClickHouse tables' comparison.

use super::*;

impl OutputsCheck {
    /// The run's records decoded, then judged.
    #[cfg(test)]
    pub(super) async fn outputs_stage(
        &self,
        records: &[OutputRecord],
        run: &OutputsRun<'_>,
        stored_diffs: &BTreeMap<String, TableDiff>,
    ) -> StageReport {
        let symbols: BTreeSet<String> = run.symbols.iter().cloned().collect();
        let decoded = self.decode_run(records, 0, &symbols).await;
        self.judge_outputs(records, decoded, run, stored_diffs)
    }

    /// The run's records among `records` (the `first`th record read on), decoded: the costly
    /// part of the outputs stage.
    pub(super) async fn decode_run(
        &self,
        records: &[OutputRecord],
        first: usize,
        symbols: &BTreeSet<String>,
    ) -> Decoded {
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
                    Ok(b) => d.bars.push((b, first + i)),
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
    pub(super) fn judge_outputs(
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
pub(in crate::suite::scenario) struct Decoded {
    bars: Vec<(Microbar, usize)>,
    signals: Vec<Signal>,
    errors: Vec<(Output, DecodeError)>,
    unverified_ids: BTreeSet<u32>,
}

impl Decoded {
    /// The rows that decoded, by output.
    pub(super) fn keys(&self) -> impl Iterator<Item = (Output, RowKey)> + '_ {
        let bars = self.bars.iter().map(|(b, _)| (Output::Bars, b.key()));
        let signals = self.signals.iter().map(|s| (Output::Signals, s.key()));
        bars.chain(signals)
    }

    pub(super) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// A later batch's records after these.
    pub(super) fn extend(&mut self, later: Decoded) {
        self.bars.extend(later.bars);
        self.signals.extend(later.signals);
        self.errors.extend(later.errors);
        self.unverified_ids.extend(later.unverified_ids);
    }
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
