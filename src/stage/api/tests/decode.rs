//! The contract encoding decoded to table rows, and the envelope.

use serde_json::{json, Value};
use time::macros::datetime;

use crate::stage::api::decode;
use crate::stage::api::envelope::Envelope;

use super::*;

#[test]
fn contract_encoding_decodes_to_the_table_row() {
    let d = decode::microbar(&item());
    assert!(d.encoding.is_clean(), "{:?}", d.encoding);
    assert_eq!(d.row, Some(bar(1, 118.44)));
}

#[test]
fn unquoted_uint64_is_decoded_and_reported() {
    let d = decode::microbar(&with(item(), "seq", json!(1)));
    assert_eq!(d.row.map(|b| b.seq), Some(1));
    assert!(d.encoding.unquoted_u64.contains("seq"));
    assert!(!d.encoding.is_clean());
    assert!(d.encoding.describe().contains("UInt64 columns seq"));
}

#[test]
fn timestamps_must_be_zoneless_utc() {
    for bad in [
        "2026-03-05T20:00:00.000Z",
        "2026-03-05 20:00:00",
        "1772740800000",
    ] {
        let d = decode::microbar(&with(item(), "event_ts", json!(bad)));
        assert!(d.row.is_none(), "{bad}");
        assert!(
            d.encoding
                .problems
                .iter()
                .any(|p| p.contains("event_ts") && p.contains("zone-less")),
            "{bad}: {:?}",
            d.encoding
        );
    }
    assert_eq!(
        decode::parse_zoneless("2026-03-05 19:59:58.123"),
        Some(datetime!(2026-03-05 19:59:58.123 UTC))
    );
    assert_eq!(
        decode::range_form(datetime!(2026-03-05 19:59:58.123 UTC)),
        "2026-03-05T19:59:58.123"
    );
}

#[test]
fn missing_columns_break_the_contract_extra_ones_do_not() {
    let mut v = item();
    v.as_object_mut().unwrap().remove("vwap");
    v["added_later"] = json!(1);
    let d = decode::microbar(&v);
    assert!(d.encoding.missing_columns.contains("vwap"));
    assert!(d.encoding.extra_columns.contains("added_later"));
    assert!(!d.encoding.is_clean());
    let mut only_extra = item();
    only_extra["added_later"] = json!(1);
    assert!(decode::microbar(&only_extra).encoding.is_clean());
}

#[test]
fn null_is_allowed_only_in_nullable_columns() {
    let d = decode::microbar(&with(item(), "vwap", Value::Null));
    assert!(d.encoding.is_clean());
    assert_eq!(d.row.unwrap().vwap, None);
    let d = decode::microbar(&with(item(), "o", Value::Null));
    assert!(d.row.is_none());
    assert!(d.encoding.problems.iter().any(|p| p.contains("o is null")));
}

#[test]
fn numbers_as_strings_and_strings_as_numbers_are_problems() {
    let d = decode::microbar(&with(item(), "o", json!("118.42")));
    assert!(d.encoding.problems.iter().any(|p| p.starts_with("o ")));
    let d = decode::microbar(&with(item(), "is_final", json!("1")));
    assert!(d
        .encoding
        .problems
        .iter()
        .any(|p| p.starts_with("is_final")));
    let d = decode::microbar(&with(item(), "count", json!("-3")));
    assert!(d.encoding.problems.iter().any(|p| p.starts_with("count")));
}

#[test]
fn signal_items_decode_nullable_uint64_as_strings() {
    let mut v = item();
    for k in ["o", "h", "l", "c", "v", "vwap", "count"] {
        v.as_object_mut().unwrap().remove(k);
    }
    for k in crate::domain::model::SIGNAL_COLUMNS.iter().skip(11) {
        v[*k] = Value::Null;
    }
    v["ema12"] = json!(118.417);
    v["imbalance_bid_sz"] = json!("300");
    let d = decode::signal(&v);
    assert!(d.encoding.is_clean(), "{:?}", d.encoding);
    let s = d.row.unwrap();
    assert_eq!(
        (s.ema12, s.imbalance_bid_sz, s.rsi14),
        (Some(118.417), Some(300), None)
    );
}

fn envelope(fallback: bool, effective_from: &str) -> Value {
    json!({
        "ok": true, "symbol": "S", "items": [],
        "range": {
            "requested": {"from": "2026-03-05T19:59:58.123", "to": "2026-03-05T20:59:58.123"},
            "effective": {"from": effective_from, "to": "2026-03-05T20:59:58.123"},
            "fallback": fallback
        }
    })
}

#[test]
fn envelope_echoes_the_zoneless_range() {
    let (from, to) = ("2026-03-05T19:59:58.123", "2026-03-05T20:59:58.123");
    let v = envelope(false, from);
    let e = Envelope::read(&v, "S", from, to);
    assert!(e.problems.is_empty(), "{:?}", e.problems);
    assert_eq!(e.fallback, Some(false));
    let e = Envelope::read(&v, "S", "2026-03-05T19:59:58.123Z", to);
    assert!(
        e.problems[0].contains("range.requested"),
        "{:?}",
        e.problems
    );
    let e = Envelope::read(&v, "OTHER", from, to);
    assert!(e.problems[0].contains("symbol"), "{:?}", e.problems);
}

#[test]
fn effective_must_equal_requested_unless_fallback() {
    let (from, to) = ("2026-03-05T19:59:58.123", "2026-03-05T20:59:58.123");
    let v = envelope(false, "2026-03-04T19:59:58.123");
    assert_eq!(Envelope::read(&v, "S", from, to).problems.len(), 1);
    let v = envelope(true, "2026-03-04T19:59:58.123");
    let e = Envelope::read(&v, "S", from, to);
    assert!(e.problems.is_empty());
    assert_eq!(e.fallback, Some(true));
    assert_eq!(e.effective.unwrap().0, "2026-03-04T19:59:58.123");
    let mut v = envelope(false, from);
    v["range"]["fallback"] = json!("false");
    assert!(Envelope::read(&v, "S", from, to).problems[0].contains("not a boolean"));
}
