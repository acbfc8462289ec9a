//! The outputs stages on records made here (Avro encoded with the contract's schemas, as the
//! job writes them without a registry): the same records the live reader would hand over.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use apache_avro::types::Value;
use time::macros::datetime;
use time::OffsetDateTime;

use super::*;
use crate::domain::compare;
use crate::domain::model::{iso_millis, Microbar, Signal};
use crate::domain::outputs::Heartbeat;
use crate::suite::scenario::fake::{self, signal_of as signal};

const SYMBOL: &str = "ZZT2E-UNITTEST-A";
const T0: OffsetDateTime = datetime!(2026-07-21 14:30:00 UTC);

fn config() -> Config {
    let env: std::collections::HashMap<String, String> = [(
        "TORGHUT_E2E_KAFKA_SECURITY_PROTOCOL".to_string(),
        "PLAINTEXT".to_string(),
    )]
    .into();
    Config::from_toml("", Path::new("unit.toml"), &env).unwrap()
}

fn check() -> OutputsCheck {
    OutputsCheck::new(&config())
        .unwrap()
        .expect("enabled by default")
}

fn scenario() -> Scenario {
    crate::domain::scenario::parse(
        "name = \"unit\"\nsymbols = [\"A\"]\n[[trades]]\nsymbol = \"A\"\nat_ms = 0\nprice = 1.0\nsize = 1.0\n",
        Path::new("unit.toml"),
    )
    .unwrap()
}

fn bar(seq: u64, c: f64) -> Microbar {
    fake::microbar(SYMBOL, T0 + time::Duration::seconds(seq as i64), seq, c)
}

fn u(i: u32, v: Value) -> Value {
    Value::Union(i, Box::new(v))
}

fn text(t: OffsetDateTime) -> Value {
    Value::String(iso_millis(t))
}

fn opt(v: Option<f64>) -> Value {
    match v {
        Some(x) => u(1, Value::Double(x)),
        None => u(0, Value::Null),
    }
}

fn header(
    symbol: &str,
    event_ts: OffsetDateTime,
    seq: u64,
    window: &str,
    span: (Option<OffsetDateTime>, Option<OffsetDateTime>),
) -> Vec<(String, Value)> {
    vec![
        ("ingest_ts".into(), text(event_ts)),
        ("event_ts".into(), text(event_ts)),
        ("symbol".into(), Value::String(symbol.into())),
        ("seq".into(), Value::Long(seq as i64)),
        ("is_final".into(), u(1, Value::Boolean(true))),
        ("source".into(), u(1, Value::String("ta".into()))),
        (
            "window".into(),
            u(
                1,
                Value::Record(vec![
                    ("size".into(), Value::String(window.into())),
                    ("step".into(), u(1, Value::String(window.into()))),
                    ("start".into(), u(1, text(span.0.unwrap()))),
                    ("end".into(), u(1, text(span.1.unwrap()))),
                ]),
            ),
        ),
    ]
}

/// A row as the job's Avro record (what `decode` must turn back into the row).
fn bar_bytes(b: &Microbar) -> Vec<u8> {
    let mut f = header(
        &b.symbol,
        b.event_ts,
        b.seq,
        &b.window_size,
        (b.window_start, b.window_end),
    );
    f.extend([
        ("o".into(), Value::Double(b.o)),
        ("h".into(), Value::Double(b.h)),
        ("l".into(), Value::Double(b.l)),
        ("c".into(), Value::Double(b.c)),
        ("v".into(), Value::Double(b.v)),
        ("vwap".into(), opt(b.vwap)),
        ("count".into(), Value::Long(b.count as i64)),
        ("version".into(), u(0, Value::Int(b.version as i32))),
    ]);
    apache_avro::to_avro_datum(Output::Bars.fixture_schema(), Value::Record(f)).unwrap()
}

fn signal_bytes(s: &Signal) -> Vec<u8> {
    let rec = |pairs: Vec<(&str, Value)>| {
        u(
            1,
            Value::Record(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect()),
        )
    };
    let d = |x: Option<f64>| Value::Double(x.unwrap());
    let mut f = header(
        &s.symbol,
        s.event_ts,
        s.seq,
        &s.window_size,
        (s.window_start, s.window_end),
    );
    f.extend([
        (
            "macd".into(),
            rec(vec![
                ("macd", d(s.macd)),
                ("signal", d(s.macd_signal)),
                ("hist", d(s.macd_hist)),
            ]),
        ),
        (
            "ema".into(),
            rec(vec![("ema12", d(s.ema12)), ("ema26", d(s.ema26))]),
        ),
        ("rsi14".into(), opt(s.rsi14)),
        ("boll".into(), u(0, Value::Null)),
        (
            "vwap".into(),
            rec(vec![
                ("session", d(s.vwap_session)),
                ("w5m", opt(s.vwap_w5m)),
            ]),
        ),
        ("imbalance".into(), u(0, Value::Null)),
        ("vol_realized".into(), u(0, Value::Null)),
        ("microstructure_signal_v1".into(), u(0, Value::Null)),
        ("version".into(), u(0, Value::Int(s.version as i32))),
    ]);
    apache_avro::to_avro_datum(Output::Signals.fixture_schema(), Value::Record(f)).unwrap()
}

fn record(output: Output, key: &str, value: Vec<u8>, arrived_ms: u64) -> OutputRecord {
    OutputRecord {
        output,
        partition: 0,
        offset: 0,
        key: Some(key.as_bytes().to_vec()),
        value: Some(value),
        stamp_kind: StampKind::Create,
        stamp_ms: Some(0),
        arrived: SystemTime::UNIX_EPOCH
            + Duration::from_millis((T0.unix_timestamp() as u64) * 1000 + arrived_ms),
        before_run: false,
    }
}

/// Everything a stage needs, held together for one test.
struct Fixture {
    scenario: Scenario,
    symbols: Vec<String>,
    bars: Vec<Microbar>,
    signals: Vec<Signal>,
    expected: Vec<ExpectedBar>,
    diffs: BTreeMap<String, TableDiff>,
}

impl Fixture {
    fn new() -> Self {
        let bars = vec![bar(1, 10.0), bar(2, 11.0)];
        let signals: Vec<Signal> = bars.iter().map(|b| signal(b, "PT1S")).collect();
        let expected = bars
            .iter()
            .map(|b| ExpectedBar {
                key: b.key(),
                trigger_ack: b.event_ts + time::Duration::milliseconds(100),
                closed_by_watermark: false,
            })
            .collect();
        let scenario = scenario();
        let mut diffs = BTreeMap::new();
        diffs.insert(
            "ta_microbars".to_string(),
            compare::compare(
                &bars,
                &bars,
                |c| c == "ingest_ts",
                |c| scenario.tolerance(c),
            ),
        );
        Fixture {
            scenario,
            symbols: vec![SYMBOL.to_string()],
            bars,
            signals,
            expected,
            diffs,
        }
    }

    fn run(&self) -> OutputsRun<'_> {
        OutputsRun {
            scenario: &self.scenario,
            symbols: &self.symbols,
            expected_bars: &self.bars,
            expected_signals: &self.signals,
            expected_minute_signals: &[],
            stored_bars: &self.bars,
            stored_signals: &self.signals,
            bars: &self.expected,
            closers: &[],
            rows_visible_at: T0 + time::Duration::seconds(3),
            after: T0,
        }
    }

    /// Every expected row as a record, arriving 250 ms after its bar's closing ack.
    fn records(&self) -> Vec<OutputRecord> {
        let mut out = Vec::new();
        for (i, (b, s)) in self.bars.iter().zip(&self.signals).enumerate() {
            let at = (i as u64 + 1) * 1000 + 350;
            out.push(record(Output::Bars, SYMBOL, bar_bytes(b), at));
            out.push(record(Output::Signals, SYMBOL, signal_bytes(s), at));
        }
        out
    }
}

fn hops(stage: &StageReport) -> Vec<Hop> {
    stage
        .findings
        .iter()
        .filter(|f| f.is_failure())
        .map(|f| f.hop)
        .collect()
}

#[tokio::test]
async fn records_equal_to_the_oracle_pass_with_their_latency_and_others_symbols_are_ignored() {
    let fx = Fixture::new();
    let mut records = fx.records();
    // Another writer's symbol, and a PT1M signal the oracle did not predict: neither counts.
    let other = bar(1, 99.0);
    records.push(record(Output::Bars, "NVDA", bar_bytes(&other), 10));
    records.push(record(
        Output::Signals,
        SYMBOL,
        signal_bytes(&signal(&fx.bars[0], "PT1M")),
        10,
    ));
    // A reused symbol's earlier bar, closed by the run's first trade: not the run's row.
    records.push(record(Output::Bars, SYMBOL, bar_bytes(&bar(0, 9.0)), 10));
    // A repeat (at least once) is a warning.
    records.push(records[0].clone());
    let stage = check().outputs_stage(&records, &fx.run(), &fx.diffs).await;
    assert_eq!(stage.verdict, Verdict::Pass, "{stage:#?}");
    assert!(stage
        .checks
        .iter()
        .all(|c| c.ok && c.detail.contains("2/2 rows match")));
    assert!(stage
        .findings
        .iter()
        .any(|f| !f.is_failure() && f.cause.contains("1 bar")));
    let latency = &stage.observed["latency"];
    assert_eq!(latency["method"], serde_json::json!(["consumer_arrival"]));
    assert_eq!(
        latency["publish_to_kafka"]["max_ms"],
        serde_json::json!(250.0)
    );
}

#[tokio::test]
async fn pt1m_signals_of_a_scenario_with_minute_bars_are_compared_and_a_missing_one_names_the_sink()
{
    let fx = Fixture::new();
    // A minute bar's row: its event time (the minute's start) precedes the run's start.
    let mut minute = signal(&fx.bars[0], "PT1M");
    minute.event_ts = T0 - time::Duration::minutes(2);
    minute.version = 2;
    let minutes = vec![minute.clone()];
    // ClickHouse holds the PT1M row as predicted.
    let mut diffs = fx.diffs.clone();
    diffs.insert(
        super::MINUTE_SIGNALS.into(),
        compare::compare(&minutes, &minutes, |_| false, |c| fx.scenario.tolerance(c)),
    );
    let run = OutputsRun {
        expected_minute_signals: &minutes,
        ..fx.run()
    };
    let mut records = fx.records();
    records.push(record(Output::Signals, SYMBOL, signal_bytes(&minute), 10));
    let stage = check().outputs_stage(&records, &run, &diffs).await;
    assert_eq!(stage.verdict, Verdict::Pass, "{stage:#?}");
    let pt1m = stage.checks.iter().find(|c| c.name == "signals_pt1m");
    assert!(
        pt1m.is_some_and(|c| c.ok && c.detail.contains("1/1 rows match")),
        "{stage:#?}"
    );

    // Without it on the topic (while ClickHouse has it): the Kafka sink, named.
    records.pop();
    let stage = check().outputs_stage(&records, &run, &diffs).await;
    assert_eq!(stage.verdict, Verdict::Fail, "{stage:#?}");
    assert_eq!(hops(&stage), [Hop::KafkaSink]);
    assert!(stage.findings.iter().any(|f| f.cause.contains("PT1M")));
}

#[tokio::test]
async fn the_brokers_append_time_is_the_kafka_hop_when_the_topic_stamps_it() {
    let fx = Fixture::new();
    let mut records = fx.records();
    for r in records.iter_mut().filter(|r| r.output == Output::Bars) {
        // Appended 40 ms after the closing ack (arrival, 250 ms after, is not used then).
        let ack = fx
            .expected
            .iter()
            .find(|b| b.key.seq == 1)
            .unwrap()
            .trigger_ack;
        r.stamp_kind = StampKind::LogAppend;
        r.stamp_ms = Some(((ack - OffsetDateTime::UNIX_EPOCH).whole_milliseconds() + 40) as i64);
    }
    let stage = check().outputs_stage(&records, &fx.run(), &fx.diffs).await;
    let latency = &stage.observed["latency"];
    assert_eq!(latency["method"], serde_json::json!(["log_append_time"]));
    // Both bars carry the first bar's append time: 40 ms for it, 960 ms before the second's ack.
    assert_eq!(
        latency["publish_to_kafka"]["samples_ms"],
        serde_json::json!([-960.0, 40.0])
    );
}

#[tokio::test]
async fn a_bar_clickhouse_holds_and_the_topic_lacks_names_the_kafka_sink() {
    let fx = Fixture::new();
    let records: Vec<OutputRecord> = fx
        .records()
        .into_iter()
        .filter(|r| {
            !(r.output == Output::Bars
                && r.arrived
                    > SystemTime::UNIX_EPOCH
                        + Duration::from_millis((T0.unix_timestamp() as u64) * 1000 + 2000))
        })
        .collect();
    let stage = check().outputs_stage(&records, &fx.run(), &fx.diffs).await;
    assert_eq!(stage.verdict, Verdict::Fail);
    assert_eq!(hops(&stage), [Hop::KafkaSink]);
    assert!(stage.findings[0]
        .cause
        .contains("torghut.sim.ta.bars.1s.v1"));
}

#[tokio::test]
async fn framed_values_without_a_registry_are_read_with_the_contract_and_garbage_names_the_schema()
{
    let fx = Fixture::new();
    let framed = |body: Vec<u8>| {
        let mut v = vec![0, 0, 0, 0, 7];
        v.extend(body);
        v
    };
    // Framed, and the contract's schema reads them: compared, with a warning (ids unchecked).
    let mut records = fx.records();
    for r in &mut records {
        r.value = r.value.take().map(framed);
    }
    let stage = check().outputs_stage(&records, &fx.run(), &fx.diffs).await;
    assert_eq!(stage.verdict, Verdict::Pass, "{stage:#?}");
    let warning = stage.findings.iter().find(|f| !f.is_failure()).unwrap();
    assert_eq!(warning.hop, Hop::SchemaRegistry);
    assert!(warning.cause.contains("schema ids 7"), "{}", warning.cause);
    // A framed value the contract cannot read needs the registry; a plain one is the schema's.
    records[0].value = Some(framed(vec![2, 0xff, 0xff]));
    records[1].value = Some(vec![2, 0xff, 0xff]);
    let stage = check().outputs_stage(&records, &fx.run(), &fx.diffs).await;
    assert_eq!(stage.verdict, Verdict::Fail);
    let failures: Vec<(Hop, &str)> = stage
        .findings
        .iter()
        .filter(|f| f.is_failure())
        .map(|f| (f.hop, f.cause.as_str()))
        .collect();
    assert_eq!(failures.len(), 2, "not also called missing: {failures:#?}");
    assert!(
        failures[0].1.contains("no schema registry is configured"),
        "{failures:#?}"
    );
    assert_eq!(failures[0].0, Hop::SchemaRegistry);
    assert_eq!(failures[1].0, Hop::KafkaSink);
    assert!(failures[1].1.contains("could not be read"), "{failures:#?}");
}

fn heartbeat_record(h: &Heartbeat, before_run: bool) -> OutputRecord {
    let mut f = vec![
        ("ingest_ts".into(), text(h.event_ts)),
        ("event_ts".into(), text(h.event_ts)),
        ("symbol".into(), Value::String("ta".into())),
        ("seq".into(), Value::Long(h.seq)),
        ("is_final".into(), u(1, Value::Boolean(true))),
        ("source".into(), u(1, Value::String("ta".into()))),
        ("window".into(), u(0, Value::Null)),
        ("watermark_lag_ms".into(), u(0, Value::Null)),
        ("source_lag_ms".into(), u(0, Value::Null)),
        ("last_event_ts".into(), u(0, Value::Null)),
        ("last_input_event_ts".into(), u(0, Value::Null)),
        ("last_output_event_ts".into(), u(0, Value::Null)),
    ];
    let long = Value::Long;
    f.extend([
        ("input_event_count".into(), long(h.input_event_count)),
        ("output_event_count".into(), long(h.output_event_count)),
        ("current_input_event_count".into(), long(0)),
        ("current_output_event_count".into(), long(0)),
        ("current_record_count".into(), long(0)),
        ("input_rate_per_second".into(), u(0, Value::Null)),
        ("output_rate_per_second".into(), u(0, Value::Null)),
        ("microbar_event_count".into(), long(h.input_event_count)),
        ("signal_event_count".into(), long(h.output_event_count)),
        ("microbar_rate_per_second".into(), u(0, Value::Null)),
        ("signal_rate_per_second".into(), u(0, Value::Null)),
        ("clickhouse_sink_enabled".into(), Value::Boolean(true)),
        (
            "per_symbol_latest_event_ts".into(),
            Value::Map(
                h.per_symbol_latest_event_ts
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            ),
        ),
        (
            "market_session_state".into(),
            Value::String("outside_regular_session".into()),
        ),
        ("status_reason".into(), u(0, Value::Null)),
        ("status".into(), Value::String(h.status.clone())),
        ("heartbeat".into(), Value::Boolean(true)),
        ("version".into(), u(0, Value::Int(1))),
    ]);
    let bytes =
        apache_avro::to_avro_datum(Output::Status.fixture_schema(), Value::Record(f)).unwrap();
    OutputRecord {
        before_run,
        ..record(Output::Status, "ta", bytes, 0)
    }
}

fn beat(
    seq: i64,
    at: OffsetDateTime,
    counts: (i64, i64),
    seen: Option<OffsetDateTime>,
) -> Heartbeat {
    Heartbeat {
        seq,
        event_ts: at,
        status: "ok".into(),
        status_reason: None,
        input_event_count: counts.0,
        output_event_count: counts.1,
        watermark_lag_ms: None,
        source_lag_ms: None,
        market_session_state: None,
        clickhouse_sink_enabled: None,
        per_symbol_latest_event_ts: seen
            .map(|t| [(SYMBOL.to_string(), iso_millis(t))].into())
            .unwrap_or_default(),
    }
}

#[tokio::test]
async fn the_heartbeat_stage_passes_on_a_covering_beat_and_is_pending_without_one() {
    let fx = Fixture::new();
    let now = OffsetDateTime::now_utc();
    let mut run = fx.run();
    run.rows_visible_at = now - time::Duration::seconds(1);
    let base = heartbeat_record(
        &beat(1, now - time::Duration::seconds(5), (10, 10), None),
        true,
    );
    let covering = heartbeat_record(&beat(2, now, (12, 12), Some(fx.bars[1].event_ts)), false);
    let stage = check()
        .heartbeat_stage(&[base.clone(), covering], &run)
        .await
        .0;
    assert_eq!(stage.verdict, Verdict::Pass, "{stage:#?}");
    assert!(!stage.checks[0].pending);
    let stage = check().heartbeat_stage(&[base], &run).await.0;
    assert_eq!(
        stage.verdict,
        Verdict::Pass,
        "pending does not fail: {stage:#?}"
    );
    assert!(stage.checks[0].pending, "{stage:#?}");
    let stage = check().heartbeat_stage(&[], &run).await.0;
    assert_eq!(stage.verdict, Verdict::Fail);
    assert_eq!(hops(&stage), [Hop::Heartbeat]);
}

#[tokio::test(start_paused = true)]
async fn a_registry_that_never_answers_holds_the_start_no_longer_than_the_learning_bound() {
    // A registry that takes connections and never answers them.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = config();
    config.outputs.schema_registry_url = Some(format!("http://{}", silent.local_addr().unwrap()));
    config.connect_timeout = Duration::from_secs(60);
    let check = OutputsCheck::new(&config).unwrap().unwrap();
    let started = tokio::time::Instant::now();
    check.learn_schemas().await;
    let took = started.elapsed();
    assert!(
        took >= LEARN_BOUND && took < LEARN_BOUND + Duration::from_secs(1),
        "{took:?}"
    );
    // Once a run: the next scenario's start waits for nothing.
    let again = tokio::time::Instant::now();
    check.learn_schemas().await;
    assert_eq!(again.elapsed(), Duration::ZERO);
}
