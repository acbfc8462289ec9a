//! From what a run observed to *which hop broke* and *which runbook applies*.
//!
//! Causes and symptoms follow `operations.md` §3 (failure modes, numbered as there) and the
//! runbooks in `torghut-runbooks.md`.

use serde::Serialize;

/// A hop of the pipeline, as the report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hop {
    Preflight,
    /// Validator → Kafka input topic (stands in for torghut-ws → Kafka).
    KafkaPublish,
    /// Kafka → Flink TA job → microbars and signals.
    TaJob,
    /// TA job → ClickHouse rows.
    ClickhouseSink,
    /// TA job → its Kafka outputs (`ta.bars.1s`, `ta.signals`): the Kafka sink and its Avro.
    KafkaSink,
    /// TA job ↔ schema registry: the writer schemas of Confluent-framed outputs.
    SchemaRegistry,
    /// TA job → its status heartbeat (`ta.status`).
    Heartbeat,
    /// ClickHouse → Jangar API.
    JangarApi,
    /// Jangar API → charts page.
    ChartsPage,
}

impl Hop {
    pub fn label(self) -> &'static str {
        match self {
            Hop::Preflight => "preflight",
            Hop::KafkaPublish => "validator → Kafka",
            Hop::TaJob => "Kafka → TA job",
            Hop::ClickhouseSink => "TA job → ClickHouse",
            Hop::KafkaSink => "TA job → Kafka outputs",
            Hop::SchemaRegistry => "TA job → schema registry",
            Hop::Heartbeat => "TA job → status heartbeat",
            Hop::JangarApi => "ClickHouse → Jangar API",
            Hop::ChartsPage => "Jangar API → charts page",
        }
    }
}

/// How a finding weighs in a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The hop is broken: the stage and the run fail.
    #[default]
    Failure,
    /// Drift or a setting the pipeline survives (e.g. UInt64 as JSON numbers, `jangar.md`
    /// §6.7): reported wherever findings are, never a failed verdict. A release gate that
    /// cries wolf gets switched off.
    Warning,
}

/// A diagnosed problem at one hop: a failure, or a warning that does not fail the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub hop: Hop,
    pub cause: String,
    /// The runbook section (seeds/torghut-runbooks.md) and failure mode (operations.md §3).
    pub runbook: &'static str,
    pub severity: Severity,
}

impl Finding {
    pub fn failure(hop: Hop, cause: impl Into<String>, runbook: &'static str) -> Self {
        Self {
            hop,
            cause: cause.into(),
            runbook,
            severity: Severity::Failure,
        }
    }

    pub fn warning(hop: Hop, cause: impl Into<String>, runbook: &'static str) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::failure(hop, cause, runbook)
        }
    }

    pub fn is_failure(&self) -> bool {
        self.severity == Severity::Failure
    }
}

/// Whether any of `findings` fails a verdict (warnings never do).
pub fn any_failure<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> bool {
    findings.into_iter().any(Finding::is_failure)
}

pub const RUNBOOK_KAFKA_PRODUCE: &str =
    "torghut-runbooks.md \"Kafka produce failures\"; operations.md §3 #11, #13";
pub const RUNBOOK_CLICKHOUSE_DOWN: &str = "operations.md §3 #1, #2, #14 (replicas read-only, \
     Keeper, disk full): the ClickHouse service's endpoints, pods and system.replicas";
pub const RUNBOOK_SCRAM: &str = "torghut-runbooks.md \"KafkaUser (SCRAM) rotation\"";
pub const RUNBOOK_TA_STALLED: &str = "torghut-runbooks.md \"Lag spike (WS → TA)\" and \
     \"Flink upgrade / rollback\"; operations.md §3 #15, #16";
pub const RUNBOOK_WATERMARK: &str =
    "torghut-runbooks.md \"Lag spike (WS → TA)\" (watermark / idle partitions); operations.md §3 #16, #17";
pub const RUNBOOK_TA_MATHS: &str = "torghut-runbooks.md \"Flink upgrade / rollback\" (roll the TA \
     image back); pipeline.md §4 for the expected semantics";
pub const RUNBOOK_SINK_DATABASE: &str =
    "operations.md §3 #3 (TA ClickHouse URL / database); pipeline.md §5";
pub const RUNBOOK_KAFKA_SINK: &str = "operations.md §3 #15 (TA Kafka sink: inputs advance while \
     torghut.ta.* freezes; the job's Kafka producer and delivery guarantee); pipeline.md §1.1, §4.8";
pub const RUNBOOK_CLICKHOUSE_SINK_ONLY: &str = "operations.md §3 #1, #3, #14 (the ClickHouse sink \
     fails while the job runs: replicas read-only, wrong database, disk); pipeline.md §5";
pub const RUNBOOK_SCHEMA_REGISTRY: &str = "operations.md §3 #21 (schema registry instability: \
     GET /subjects, SerializationException in the job); pipeline.md §1.3 (TA_SCHEMA_REGISTRY_URL)";
pub const RUNBOOK_AVRO_SCHEMA: &str = "pipeline.md §1.3 (writer schemas: decode with the \
     registry id; the docs' copies drifted), §9 item 9; fixtures/avro/README.md";
pub const RUNBOOK_HEARTBEAT: &str =
    "operations.md §1.2 (TA heartbeat: ta_status_heartbeat_missing, \
     _stale, ta_status_degraded, zero records), §3 #15, #16; pipeline.md §6.1";
pub const RUNBOOK_READONLY: &str =
    "operations.md §3 #1, #2 (SYSTEM RESTORE REPLICA on both tables, then restart TA)";
pub const RUNBOOK_DUPLICATES: &str = "operations.md §3 #4 (engine drift), #18 (duplicate storm)";
pub const RUNBOOK_LANE_SHARED: &str = "pipeline.md §7.2 rule 1 (the simulation lane is shared \
with the historical simulation: coordinate, or use real-time pacing or a lane of your own)";
pub const RUNBOOK_LATENCY: &str = "torghut-runbooks.md \"Lag spike (WS → TA)\"; operations.md §2";
pub const RUNBOOK_JANGAR_DATABASE: &str =
    "operations.md §3 #5 (set Jangar's CH_DATABASE to the TA \
     database, `torghut`); seeds/torghut-ta-ws-recovery-2026-01-01.md";
pub const RUNBOOK_JANGAR_CLICKHOUSE: &str = "operations.md §3 #6 (Jangar's CH_HOST / CH_PORT / \
     CH_USER / CH_PASSWORD and ClickHouse reachability); jangar.md §1.2, §1.3";
pub const RUNBOOK_JANGAR_DOWN: &str = "torghut-runbooks.md \"Torghut TA visuals validation\"; \
     Jangar's readiness (/health) and pod restarts (jangar.md §4)";
pub const RUNBOOK_JANGAR_CONTRACT: &str = "jangar.md §1 (TA API contract); the API shape \
     snapshots in tests/snapshots show the drift as a diff";
pub const RUNBOOK_JANGAR_TIMEZONE: &str = "jangar.md §6.8, §5.6 (run Jangar with TZ=UTC, as \
     its container image does); zone-less from/to are parsed in the server process's time zone";
pub const RUNBOOK_JANGAR_FRESHNESS: &str = "torghut-runbooks.md \"Torghut TA visuals validation\" \
     step 4 and \"Lag spike (WS → TA)\"; operations.md §2";
pub const RUNBOOK_VISUALS: &str = "torghut-runbooks.md \"Torghut TA visuals validation\"; \
     jangar.md §3 (the page), §4 (what each checklist step asserts), §5 (known quirks)";
pub const RUNBOOK_VISUALS_API: &str = "torghut-runbooks.md \"Torghut TA visuals validation\" \
     steps 2–3; jangar.md §1.2–§1.5 (Jangar's ClickHouse settings, errors and queries); \
     operations.md §3 #5, #6";

pub const RUNBOOK_BARS1M: &str = "pipeline.md §4.7, §1.1 (the TA job's TA_BARS1M_TOPIC must name \
     the lane's bars.1m topic; the ta-signals-1m operator); torghut-runbooks.md \"Flink upgrade / \
     rollback\"; operations.md §3 #15";

/// What the ClickHouse stage observed for the run's symbols.
#[derive(Debug, Clone, Default)]
pub struct SinkFacts {
    pub expected_bars: usize,
    pub found_bars: usize,
    /// Expected bars absent, by position in the expected order.
    pub missing_positions: Vec<usize>,
    pub mismatched_columns: Vec<String>,
    /// Rows found at the expected bar end with another `seq`.
    pub seq_shifted_rows: usize,
    /// Keys seen twice under FINAL.
    pub duplicates_final: usize,
    /// `count()` minus `count() FINAL`: duplicates the engine has not merged yet.
    pub duplicates_unmerged: usize,
    pub extra_rows: usize,
    /// Another database holding the run's rows, if one was found.
    pub rows_in_other_database: Option<String>,
    pub unhealthy_replicas: Vec<String>,
    /// Whether the TA job's consumer group committed past the run's trades.
    pub ta_consumed: Option<bool>,
    /// `PT1M` signal rows the run's 1-minute bars must make, and how many were found.
    pub expected_minute_signals: usize,
    pub found_minute_signals: usize,
}

/// The findings for the ClickHouse stage, most fundamental first.
pub fn sink(facts: &SinkFacts) -> Vec<Finding> {
    let mut findings: Vec<Finding> = minute_branch(facts).into_iter().collect();
    if facts.found_bars == 0 && facts.expected_bars > 0 {
        findings.push(no_rows(facts));
        return findings;
    }
    if !facts.missing_positions.is_empty() {
        findings.push(missing_rows(facts));
    }
    if facts.seq_shifted_rows > 0 {
        findings.push(Finding {
            hop: Hop::TaJob,
            cause: format!(
                "{} bars arrived with another seq than predicted: the job's per-symbol state is \
                 not the one the oracle continued (a bar split or lost earlier, or the job \
                 restored or reset its state)",
                facts.seq_shifted_rows
            ),
            runbook: RUNBOOK_TA_MATHS,
            severity: Severity::Failure,
        });
    }
    let values: Vec<&str> = facts
        .mismatched_columns
        .iter()
        .map(String::as_str)
        .filter(|c| *c != "seq")
        .collect();
    if !values.is_empty() {
        findings.push(Finding {
            hop: Hop::TaJob,
            cause: format!(
                "the TA job's values differ from the ta4j-faithful oracle in {}",
                values.join(", ")
            ),
            runbook: RUNBOOK_TA_MATHS,
            severity: Severity::Failure,
        });
    }
    if facts.duplicates_final > 0 {
        findings.push(Finding {
            hop: Hop::ClickhouseSink,
            cause: format!(
                "{} keys appear more than once even with FINAL: the table is not a \
                 ReplacingMergeTree on (symbol, event_ts, seq)",
                facts.duplicates_final
            ),
            runbook: RUNBOOK_DUPLICATES,
            severity: Severity::Failure,
        });
    }
    if facts.duplicates_unmerged > 0 {
        findings.push(Finding {
            hop: Hop::ClickhouseSink,
            cause: format!(
                "{} duplicate rows visible without FINAL: the TA job writes rows twice, and \
                 Jangar (which reads without FINAL) shows them until parts merge",
                facts.duplicates_unmerged
            ),
            runbook: RUNBOOK_DUPLICATES,
            severity: Severity::Failure,
        });
    }
    if facts.extra_rows > 0 {
        findings.push(Finding {
            hop: Hop::TaJob,
            cause: format!(
                "{} rows for the run's synthetic symbols that the oracle did not predict \
                 (bars split, or another writer)",
                facts.extra_rows
            ),
            runbook: RUNBOOK_TA_MATHS,
            severity: Severity::Failure,
        });
    }
    findings
}

/// The 1-minute branch (pipeline.md §4.7) is its own path through the job: its own input topic
/// and operator. Its rows missing while the 1-second path's are there (or without any trade in
/// the run) names that branch, not the job as a whole.
fn minute_branch(facts: &SinkFacts) -> Option<Finding> {
    let (expected, found) = (facts.expected_minute_signals, facts.found_minute_signals);
    if found >= expected {
        return None;
    }
    let cause = if found == 0 {
        format!(
            "no PT1M signal row for the run's {expected} 1-minute bars: the TA job's 1-minute \
             branch (TA_BARS1M_TOPIC → ta-signals-1m → ta_signals) is off, not consuming the \
             bars topic, or not writing"
        )
    } else {
        format!(
            "{} of {expected} PT1M signal rows missing: the TA job's 1-minute branch drops bars",
            expected - found
        )
    };
    Some(Finding::failure(Hop::TaJob, cause, RUNBOOK_BARS1M))
}

/// A p95 publish → visible latency over the scenario's limit; the TA emit → visible part says
/// whether the time went before or after the job's emission.
pub fn latency(
    limit_ms: f64,
    p95_ms: f64,
    emit_to_visible: &crate::latency::Summary,
) -> Option<Finding> {
    if p95_ms <= limit_ms {
        return None;
    }
    let sink_ms = emit_to_visible.p95_ms.unwrap_or(0.0);
    let (hop, place) = if sink_ms > limit_ms / 2.0 {
        (
            Hop::ClickhouseSink,
            "between the TA job's emission and visibility (sink flush or slow writes)",
        )
    } else {
        (
            Hop::TaJob,
            "before the TA job emitted the bars (consumer lag or watermark)",
        )
    };
    Some(Finding {
        hop,
        cause: format!(
            "p95 publish → visible latency {p95_ms:.0} ms exceeds {limit_ms:.0} ms; most of it is {place}"
        ),
        runbook: RUNBOOK_LATENCY,
        severity: Severity::Failure,
    })
}

/// A p95 publish → visible latency of the bars the watermark closed over their own limit
/// (`max_latency_ms` plus the time the job may hold its watermark for idle partitions): the
/// watermark stalls longer than idleness explains, or the sink is slow.
pub fn watermark_latency(
    limit_ms: f64,
    hold_allowance_ms: f64,
    p95_ms: f64,
    emit_to_visible: &crate::latency::Summary,
) -> Option<Finding> {
    let sink_ms = emit_to_visible.p95_ms.unwrap_or(0.0);
    let late = latency(limit_ms, p95_ms, emit_to_visible)?;
    let place = if late.hop == Hop::ClickhouseSink {
        format!("between the TA job's emission and visibility ({sink_ms:.0} ms at p95)")
    } else {
        "before the TA job emitted them: the watermark is held longer than idle partitions \
         explain (a partition still busy with older event times, or idleness not released)"
            .to_string()
    };
    Some(Finding {
        cause: format!(
            "p95 publish → visible latency of the bars the watermark closed {p95_ms:.0} ms \
             exceeds {limit_ms:.0} ms (max_latency_ms + {hold_allowance_ms:.0} ms the job may \
             hold its watermark for idle partitions); most of it is {place}"
        ),
        runbook: if late.hop == Hop::TaJob {
            RUNBOOK_WATERMARK
        } else {
            late.runbook
        },
        ..late
    })
}

fn no_rows(facts: &SinkFacts) -> Finding {
    if let Some(db) = &facts.rows_in_other_database {
        return Finding {
            hop: Hop::ClickhouseSink,
            cause: format!(
                "no rows in the configured database, but the run's rows are in {db}: the TA job \
                 writes to the wrong database"
            ),
            runbook: RUNBOOK_SINK_DATABASE,
            severity: Severity::Failure,
        };
    }
    if !facts.unhealthy_replicas.is_empty() {
        return Finding {
            hop: Hop::ClickhouseSink,
            cause: format!(
                "no rows, and replicas cannot take writes: {}",
                facts.unhealthy_replicas.join(", ")
            ),
            runbook: RUNBOOK_READONLY,
            severity: Severity::Failure,
        };
    }
    if facts.ta_consumed == Some(true) {
        return Finding {
            hop: Hop::ClickhouseSink,
            cause: "the TA job consumed every trade (its group committed past them) but no row \
                    landed in any database: its ClickHouse writes fail (read-only replicas, \
                    missing tables, credentials)"
                .into(),
            runbook: RUNBOOK_READONLY,
            severity: Severity::Failure,
        };
    }
    Finding {
        hop: Hop::TaJob,
        cause: "Kafka accepted every trade but no row appeared: the TA job is not consuming, \
                is failing over, or its watermark is stalled"
            .into(),
        runbook: RUNBOOK_TA_STALLED,
        severity: Severity::Failure,
    }
}

fn missing_rows(facts: &SinkFacts) -> Finding {
    let n = facts.missing_positions.len();
    let tail_start = facts.expected_bars.saturating_sub(n);
    let only_tail = facts.missing_positions.iter().all(|p| *p >= tail_start);
    if only_tail {
        Finding {
            hop: Hop::TaJob,
            cause: format!(
                "the last {n} of {} bars never appeared: buckets are closed only by later \
                 trades, so the watermark is not advancing (idle partitions not released?)",
                facts.expected_bars
            ),
            runbook: RUNBOOK_WATERMARK,
            severity: Severity::Failure,
        }
    } else {
        Finding {
            hop: Hop::TaJob,
            cause: format!(
                "{n} of {} bars are missing between rows that did arrive: the TA job drops bars",
                facts.expected_bars
            ),
            runbook: RUNBOOK_TA_STALLED,
            severity: Severity::Failure,
        }
    }
}

#[cfg(test)]
mod tests;
