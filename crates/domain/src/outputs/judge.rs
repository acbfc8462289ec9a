//! Which hop broke, from the Kafka outputs set beside ClickHouse's rows and the oracle's.
//!
//! The job writes every microbar and signal to both sinks (`pipeline.md` §4.8), so the two
//! sides witness each other: a row ClickHouse holds that the topic lacks names the Kafka sink,
//! a record the topic holds that ClickHouse lacks names the ClickHouse sink, and a row missing
//! from both is the TA job's (the ClickHouse diagnosis already says so).

use std::collections::{BTreeMap, BTreeSet};

use crate::compare::TableDiff;
use crate::diagnose::{
    Finding, Hop, RUNBOOK_AVRO_SCHEMA, RUNBOOK_CLICKHOUSE_SINK_ONLY, RUNBOOK_KAFKA_SINK,
    RUNBOOK_SCHEMA_REGISTRY,
};
use crate::model::{Columns, RowKey};
use crate::outputs::{DecodeError, Output};

/// How many keys a finding quotes.
const KEYS_QUOTED: usize = 3;

/// One output topic's rows of the run, beside ClickHouse's table of the same rows.
pub struct Sides<'a, R> {
    pub output: Output,
    pub topic: &'a str,
    /// The oracle's rows.
    pub expected: &'a [R],
    /// Decoded from the topic (deduplicated).
    pub kafka: &'a [R],
    /// ClickHouse (FINAL) of the same run.
    pub stored: &'a [R],
    /// The topic's rows against the oracle.
    pub kafka_diff: &'a TableDiff,
    /// ClickHouse's rows against the oracle, when the scenario compares that table.
    pub stored_diff: Option<&'a TableDiff>,
    /// The run's records on the topic that could not be decoded (named by their own finding).
    pub undecodable: usize,
}

fn keys<R: Columns>(rows: &[R]) -> BTreeSet<RowKey> {
    rows.iter().map(Columns::key).collect()
}

fn quoted(keys: &[&RowKey]) -> String {
    let mut text: Vec<String> = keys
        .iter()
        .take(KEYS_QUOTED)
        .map(ToString::to_string)
        .collect();
    if keys.len() > KEYS_QUOTED {
        text.push(format!("and {} more", keys.len() - KEYS_QUOTED));
    }
    text.join("; ")
}

/// The findings of one output topic against ClickHouse.
pub fn sinks<R: Columns>(s: &Sides<'_, R>) -> Vec<Finding> {
    let expected = keys(s.expected);
    let (on_kafka, stored) = (keys(s.kafka), keys(s.stored));
    let only_stored: Vec<&RowKey> = expected
        .iter()
        .filter(|k| stored.contains(k) && !on_kafka.contains(k))
        .collect();
    let only_kafka: Vec<&RowKey> = expected
        .iter()
        .filter(|k| on_kafka.contains(k) && !stored.contains(k))
        .collect();
    let mut out = Vec::new();
    // Records that are there but do not decode are not missing: their finding names the cause.
    if !only_stored.is_empty() && only_stored.len() > s.undecodable {
        out.push(Finding::failure(
            Hop::KafkaSink,
            format!(
                "{} of the run's {} rows ClickHouse holds are not on {} ({}): the job's Kafka \
                 sink for {} does not write",
                only_stored.len(),
                s.output.name(),
                s.topic,
                quoted(&only_stored),
                s.output.name()
            ),
            RUNBOOK_KAFKA_SINK,
        ));
    }
    if !only_kafka.is_empty() {
        out.push(Finding::failure(
            Hop::ClickhouseSink,
            format!(
                "{} of the run's {} records on {} are not in ClickHouse ({}): the job computes \
                 them but its ClickHouse sink does not write them",
                only_kafka.len(),
                s.output.name(),
                s.topic,
                quoted(&only_kafka)
            ),
            RUNBOOK_CLICKHOUSE_SINK_ONLY,
        ));
    }
    // Values that differ on the topic while ClickHouse's row of the same key matches: the
    // record's serialization, not the maths (which would show on both sides).
    let stored_wrong: BTreeSet<&str> = s
        .stored_diff
        .map(|d| d.mismatches.iter().map(|m| m.key.as_str()).collect())
        .unwrap_or_default();
    let stored_keys: BTreeSet<String> = stored.iter().map(ToString::to_string).collect();
    let kafka_only_wrong: Vec<_> = s
        .kafka_diff
        .mismatches
        .iter()
        .filter(|m| stored_keys.contains(&m.key) && !stored_wrong.contains(m.key.as_str()))
        .collect();
    if let Some(first) = kafka_only_wrong.first() {
        let columns: Vec<String> = first
            .columns
            .iter()
            .map(|c| format!("{} expected {} got {}", c.column, c.expected, c.actual))
            .collect();
        out.push(Finding::failure(
            Hop::KafkaSink,
            format!(
                "{} {} records on {} differ from the oracle where ClickHouse's rows match \
                 (first {}: {}): the Kafka record's serialization",
                kafka_only_wrong.len(),
                s.output.name(),
                s.topic,
                first.key,
                columns.join(", ")
            ),
            RUNBOOK_AVRO_SCHEMA,
        ));
    }
    out
}

/// One finding per kind of decoding failure, with how many values and the first's detail.
pub fn decoding(errors: &[(Output, DecodeError)]) -> Vec<Finding> {
    let mut kinds: BTreeMap<(u8, Output), (usize, &DecodeError)> = BTreeMap::new();
    for (output, e) in errors {
        let kind = match e {
            DecodeError::UnknownSchemaId(_) => 0,
            DecodeError::RegistryUnreachable { .. } => 1,
            DecodeError::RegistryNotConfigured(_) => 2,
            DecodeError::Undecodable(_) => 3,
        };
        kinds.entry((kind, *output)).or_insert((0, e)).0 += 1;
    }
    kinds
        .into_iter()
        .map(|((_, output), (count, e))| {
            let (hop, runbook, why) = match e {
                DecodeError::UnknownSchemaId(_) => (
                    Hop::SchemaRegistry,
                    RUNBOOK_SCHEMA_REGISTRY,
                    "the job registered its schema in another registry, or the registry lost it",
                ),
                DecodeError::RegistryUnreachable { .. } => (
                    Hop::SchemaRegistry,
                    RUNBOOK_SCHEMA_REGISTRY,
                    "the registry does not answer the validator",
                ),
                DecodeError::RegistryNotConfigured(_) => (
                    Hop::SchemaRegistry,
                    RUNBOOK_SCHEMA_REGISTRY,
                    "the job writes through a registry: set schema_registry_url",
                ),
                DecodeError::Undecodable(_) => (
                    Hop::KafkaSink,
                    RUNBOOK_AVRO_SCHEMA,
                    "the value does not decode with its writer schema",
                ),
            };
            Finding::failure(
                hop,
                format!(
                    "{count} {} values of the run could not be read ({e}): {why}",
                    output.name()
                ),
                runbook,
            )
        })
        .collect()
}

#[cfg(test)]
#[path = "judge_tests.rs"]
mod tests;
