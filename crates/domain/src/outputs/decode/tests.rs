use apache_avro::types::Value;
use time::macros::datetime;

use super::*;
use crate::model::Columns;

/// A union branch.
fn u(index: u32, v: Value) -> Value {
    Value::Union(index, Box::new(v))
}

fn s(text: &str) -> Value {
    Value::String(text.into())
}

fn header(symbol: &str, window: Option<(&str, &str, &str)>) -> Vec<(String, Value)> {
    let window = match window {
        Some((size, start, end)) => u(
            1,
            Value::Record(vec![
                ("size".into(), s(size)),
                ("step".into(), u(1, s(size))),
                ("start".into(), u(1, s(start))),
                ("end".into(), u(1, s(end))),
            ]),
        ),
        None => u(0, Value::Null),
    };
    vec![
        ("ingest_ts".into(), s("2026-07-21T14:30:02.123456Z")),
        ("event_ts".into(), s("2026-07-21T14:30:01Z")),
        ("symbol".into(), s(symbol)),
        ("seq".into(), Value::Long(7)),
        ("is_final".into(), u(1, Value::Boolean(true))),
        ("source".into(), u(1, s("ta"))),
        ("window".into(), window),
    ]
}

fn bar_value() -> Value {
    let mut fields = header(
        "ZZT2E-AB12CD34-X",
        Some(("PT1S", "2026-07-21T14:30:00Z", "2026-07-21T14:30:01Z")),
    );
    fields.extend([
        ("o".into(), Value::Double(100.0)),
        ("h".into(), Value::Double(101.5)),
        ("l".into(), Value::Double(99.25)),
        ("c".into(), Value::Double(100.5)),
        ("v".into(), Value::Double(30.0)),
        ("vwap".into(), u(1, Value::Double(100.4))),
        ("count".into(), Value::Long(3)),
        ("version".into(), u(0, Value::Int(1))),
    ]);
    Value::Record(fields)
}

fn signal_value(bid_sz: f64) -> Value {
    let rec = |pairs: &[(&str, Value)]| {
        u(
            1,
            Value::Record(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            ),
        )
    };
    let d = Value::Double;
    let mut fields = header(
        "ZZT2E-AB12CD34-X",
        Some(("PT1M", "2026-07-21T14:30:00Z", "2026-07-21T14:31:00Z")),
    );
    fields.extend([
        (
            "macd".into(),
            rec(&[("macd", d(0.5)), ("signal", d(0.25)), ("hist", d(0.25))]),
        ),
        (
            "ema".into(),
            rec(&[("ema12", d(100.1)), ("ema26", d(100.0))]),
        ),
        ("rsi14".into(), u(0, Value::Null)),
        ("boll".into(), u(0, Value::Null)),
        (
            "vwap".into(),
            rec(&[("session", d(100.2)), ("w5m", u(0, Value::Null))]),
        ),
        (
            "imbalance".into(),
            rec(&[
                ("spread", d(0.02)),
                ("bid_px", d(100.0)),
                ("ask_px", d(100.02)),
                ("bid_sz", d(bid_sz)),
                ("ask_sz", d(200.0)),
            ]),
        ),
        ("vol_realized".into(), rec(&[("w60s", d(0.0))])),
        ("microstructure_signal_v1".into(), u(0, Value::Null)),
        ("version".into(), u(0, Value::Int(2))),
    ]);
    Value::Record(fields)
}

fn status_value(seq: i64) -> Value {
    let mut fields = header("ta", None);
    fields[3] = ("seq".into(), Value::Long(seq));
    let long = Value::Long;
    fields.extend([
        ("watermark_lag_ms".into(), u(1, long(1200))),
        ("source_lag_ms".into(), u(1, long(800))),
        ("last_event_ts".into(), u(1, s("2026-07-21T14:30:01Z"))),
        (
            "last_input_event_ts".into(),
            u(1, s("2026-07-21T14:30:01Z")),
        ),
        (
            "last_output_event_ts".into(),
            u(1, s("2026-07-21T14:30:01Z")),
        ),
        ("input_event_count".into(), long(40)),
        ("output_event_count".into(), long(38)),
        ("current_input_event_count".into(), long(4)),
        ("current_output_event_count".into(), long(4)),
        ("current_record_count".into(), long(8)),
        ("input_rate_per_second".into(), u(0, Value::Null)),
        ("output_rate_per_second".into(), u(0, Value::Null)),
        ("microbar_event_count".into(), long(40)),
        ("signal_event_count".into(), long(38)),
        ("microbar_rate_per_second".into(), u(0, Value::Null)),
        ("signal_rate_per_second".into(), u(0, Value::Null)),
        ("clickhouse_sink_enabled".into(), Value::Boolean(true)),
        (
            "per_symbol_latest_event_ts".into(),
            Value::Map([("ZZT2E-AB12CD34-X".to_string(), s("2026-07-21T14:30:01Z"))].into()),
        ),
        ("market_session_state".into(), s("outside_regular_session")),
        ("status_reason".into(), u(0, Value::Null)),
        ("status".into(), s("ok")),
        ("heartbeat".into(), Value::Boolean(true)),
        ("version".into(), u(0, Value::Int(1))),
    ]);
    Value::Record(fields)
}

fn encode(output: Output, value: Value) -> Vec<u8> {
    apache_avro::to_avro_datum(output.fixture_schema(), value).expect("encodes")
}

fn framed(id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend(id.to_be_bytes());
    out.extend(body);
    out
}

#[test]
fn the_fixture_schemas_parse() {
    for output in Output::ALL {
        assert!(matches!(output.fixture_schema(), Schema::Record(_)));
    }
}

#[test]
fn a_plain_bar_decodes_into_its_table_row_at_millisecond_precision() {
    let bytes = encode(Output::Bars, bar_value());
    let Frame::Plain(body) = frame(&bytes).unwrap() else {
        panic!("a plain value was taken for a framed one");
    };
    let bar = microbar(&datum(Output::Bars.fixture_schema(), body).unwrap()).unwrap();
    assert_eq!(bar.symbol, "ZZT2E-AB12CD34-X");
    assert_eq!(bar.event_ts, datetime!(2026-07-21 14:30:01 UTC));
    assert_eq!(bar.ingest_ts, datetime!(2026-07-21 14:30:02.123 UTC));
    assert_eq!((bar.seq, bar.is_final, bar.version), (7, 1, 1));
    assert_eq!(bar.source, "ta");
    assert_eq!(bar.window_size, "PT1S");
    assert_eq!(bar.window_step.as_deref(), Some("PT1S"));
    assert_eq!(bar.window_start, Some(datetime!(2026-07-21 14:30:00 UTC)));
    assert_eq!((bar.o, bar.h, bar.l, bar.c), (100.0, 101.5, 99.25, 100.5));
    assert_eq!((bar.v, bar.vwap, bar.count), (30.0, Some(100.4), 3));
}

#[test]
fn a_framed_value_names_its_schema_id_and_decodes_with_that_schema() {
    let body = encode(Output::Signals, signal_value(150.0));
    let bytes = framed(0x0102_0304, &body);
    let Frame::Registry { id, body: rest } = frame(&bytes).unwrap() else {
        panic!("a framed value was taken for plain Avro");
    };
    assert_eq!(id, 0x0102_0304);
    let row = signal(&datum(Output::Signals.fixture_schema(), rest).unwrap()).unwrap();
    assert_eq!(row.window_size, "PT1M");
    assert_eq!(row.window_end, Some(datetime!(2026-07-21 14:31:00 UTC)));
    assert_eq!((row.macd, row.macd_signal), (Some(0.5), Some(0.25)));
    assert_eq!(
        (row.ema12, row.rsi14, row.boll_mid),
        (Some(100.1), None, None)
    );
    assert_eq!((row.vwap_session, row.vwap_w5m), (Some(100.2), None));
    assert_eq!(row.imbalance_bid_sz, Some(150));
    assert_eq!(row.vol_realized_w60s, Some(0.0));
    assert_eq!(row.key().seq, 7);
    assert_eq!((row.version, row.microstructure_signal_v1), (2, None));
}

#[test]
fn quote_sizes_convert_as_kotlin_to_long_then_uint64() {
    let negative = encode(Output::Signals, signal_value(-5.0));
    let row = signal(&datum(Output::Signals.fixture_schema(), &negative).unwrap()).unwrap();
    assert_eq!(row.imbalance_bid_sz, Some(18_446_744_073_709_551_611));
    let huge = encode(Output::Signals, signal_value(1e20));
    let row = signal(&datum(Output::Signals.fixture_schema(), &huge).unwrap()).unwrap();
    assert_eq!(row.imbalance_bid_sz, Some(i64::MAX as u64));
}

#[test]
fn a_heartbeat_decodes_with_its_symbol_map() {
    let bytes = encode(Output::Status, status_value(12));
    let h = heartbeat(&datum(Output::Status.fixture_schema(), &bytes).unwrap()).unwrap();
    assert_eq!((h.seq, h.status.as_str()), (12, "ok"));
    assert_eq!((h.input_event_count, h.output_event_count), (40, 38));
    assert_eq!(
        h.latest_event("ZZT2E-AB12CD34-X"),
        Some(datetime!(2026-07-21 14:30:01 UTC))
    );
    assert_eq!(h.latest_event("OTHER"), None);
}

#[test]
fn bytes_of_another_schema_or_truncated_are_undecodable() {
    let signal_bytes = encode(Output::Signals, signal_value(1.0));
    let as_bar = datum(Output::Bars.fixture_schema(), &signal_bytes).and_then(|v| microbar(&v));
    assert!(
        matches!(as_bar, Err(DecodeError::Undecodable(_))),
        "{as_bar:?}"
    );
    let bar_bytes = encode(Output::Bars, bar_value());
    let cut = datum(
        Output::Bars.fixture_schema(),
        &bar_bytes[..bar_bytes.len() - 3],
    );
    assert!(matches!(cut, Err(DecodeError::Undecodable(_))), "{cut:?}");
    assert!(matches!(
        frame(&[0, 1, 2]),
        Err(DecodeError::Undecodable(_))
    ));
    assert!(matches!(frame(&[]), Err(DecodeError::Undecodable(_))));
}

#[test]
fn a_registry_schema_with_more_fields_still_decodes_by_name() {
    // The registry's copy may have drifted from the contract (pipeline.md §9 item 9).
    let text = BAR_AVSC.replacen(
        "\"fields\": [",
        "\"fields\": [\n    {\"name\": \"extra\", \"type\": \"string\"},",
        1,
    );
    let wider = Schema::parse_str(&text).unwrap();
    let Value::Record(mut fields) = bar_value() else {
        unreachable!()
    };
    fields.insert(0, ("extra".into(), s("drift")));
    let bytes = apache_avro::to_avro_datum(&wider, Value::Record(fields)).unwrap();
    let bar = microbar(&datum(&wider, &bytes).unwrap()).unwrap();
    assert_eq!(bar.c, 100.5);
    // Read with the contract's schema instead, the same bytes are not a bar.
    assert!(datum(Output::Bars.fixture_schema(), &bytes)
        .and_then(|v| microbar(&v))
        .is_err());
}
