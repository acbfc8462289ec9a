use time::macros::datetime;

use super::*;
use crate::compare::compare;
use crate::model::Microbar;
use crate::scenario::Tolerance;

fn bar(seq: u64, c: f64) -> Microbar {
    let end = datetime!(2026-01-01 00:00:01 UTC) + time::Duration::seconds(seq as i64);
    Microbar {
        symbol: "ZZT2E-X".into(),
        event_ts: end,
        seq,
        ingest_ts: end,
        is_final: 1,
        source: "ta".into(),
        window_size: "PT1S".into(),
        window_step: Some("PT1S".into()),
        window_start: Some(end - time::Duration::seconds(1)),
        window_end: Some(end),
        version: 1,
        o: 1.0,
        h: 1.0,
        l: 1.0,
        c,
        v: 1.0,
        vwap: None,
        count: 1,
    }
}

fn judged(expected: &[Microbar], kafka: &[Microbar], stored: &[Microbar]) -> Vec<Finding> {
    let diff = |rows: &[Microbar]| {
        compare(
            expected,
            rows,
            |c| c == "ingest_ts",
            |_| Tolerance::default(),
        )
    };
    let (kafka_diff, stored_diff) = (diff(kafka), diff(stored));
    sinks(&Sides {
        output: Output::Bars,
        topic: "torghut.sim.ta.bars.1s.v1",
        expected,
        kafka,
        stored,
        kafka_diff: &kafka_diff,
        stored_diff: Some(&stored_diff),
        undecodable: 0,
    })
}

#[test]
fn both_sinks_agreeing_with_the_oracle_is_no_finding() {
    let rows = [bar(1, 1.0), bar(2, 2.0)];
    assert!(judged(&rows, &rows, &rows).is_empty());
}

#[test]
fn rows_in_clickhouse_but_not_on_kafka_name_the_kafka_sink() {
    let rows = [bar(1, 1.0), bar(2, 2.0)];
    let f = judged(&rows, &rows[..1], &rows);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].hop, Hop::KafkaSink);
    assert!(
        f[0].cause.contains("torghut.sim.ta.bars.1s.v1"),
        "{}",
        f[0].cause
    );
    assert!(f[0].cause.contains("seq 2"), "{}", f[0].cause);
}

#[test]
fn rows_whose_records_do_not_decode_are_not_called_missing() {
    let rows = [bar(1, 1.0), bar(2, 2.0)];
    let diff = compare(
        &rows,
        &rows[..1],
        |c| c == "ingest_ts",
        |_| Tolerance::default(),
    );
    let sides = |undecodable| Sides {
        output: Output::Bars,
        topic: "t",
        expected: &rows,
        kafka: &rows[..1],
        stored: &rows,
        kafka_diff: &diff,
        stored_diff: None,
        undecodable,
    };
    assert!(sinks(&sides(1)).is_empty());
    assert_eq!(sinks(&sides(0)).len(), 1);
}

#[test]
fn records_on_kafka_but_not_in_clickhouse_name_the_clickhouse_sink() {
    let rows = [bar(1, 1.0), bar(2, 2.0)];
    let f = judged(&rows, &rows, &[]);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].hop, Hop::ClickhouseSink);
}

#[test]
fn a_value_wrong_only_on_kafka_names_the_serialization_and_wrong_on_both_names_nothing_new() {
    let rows = [bar(1, 1.0), bar(2, 2.0)];
    let wrong = [bar(1, 1.0), bar(2, 2.5)];
    let f = judged(&rows, &wrong, &rows);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].hop, Hop::KafkaSink);
    assert!(
        f[0].cause.contains("c expected 2 got 2.5"),
        "{}",
        f[0].cause
    );
    // Wrong on both sides is the maths, which the ClickHouse diagnosis names.
    assert!(judged(&rows, &wrong, &wrong).is_empty());
}

#[test]
fn decoding_failures_name_the_registry_or_the_schema() {
    let f = decoding(&[
        (Output::Bars, DecodeError::UnknownSchemaId(9)),
        (Output::Bars, DecodeError::UnknownSchemaId(9)),
        (Output::Signals, DecodeError::Undecodable("bad".into())),
        (
            Output::Signals,
            DecodeError::RegistryUnreachable {
                id: 1,
                detail: "refused".into(),
            },
        ),
    ]);
    let hops: Vec<Hop> = f.iter().map(|f| f.hop).collect();
    assert_eq!(
        hops,
        [Hop::SchemaRegistry, Hop::SchemaRegistry, Hop::KafkaSink]
    );
    assert!(f[0].cause.starts_with("2 bars values"), "{}", f[0].cause);
    assert!(f[0].cause.contains("schema id 9"), "{}", f[0].cause);
}
