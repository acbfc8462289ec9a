//! Unit tests of the API stage's rules: decoding and encoding checks, the envelope, row
//! comparison and its causes, failure classification, the contract cases, and the client's
//! bounded retries with their history.

mod client;
mod decode;
mod findings;
mod rows;

use serde_json::{json, Value};
use time::macros::datetime;

use crate::domain::model::Microbar;

fn bar(seq: u64, c: f64) -> Microbar {
    let t = datetime!(2026-03-05 19:59:59 UTC) + time::Duration::seconds(seq as i64);
    Microbar {
        symbol: "ZZT2E-T-A".into(),
        event_ts: t,
        seq,
        ingest_ts: t + time::Duration::milliseconds(412),
        is_final: 1,
        source: "ta".into(),
        window_size: "PT1S".into(),
        window_step: Some("PT1S".into()),
        window_start: Some(t - time::Duration::seconds(1)),
        window_end: Some(t),
        version: 1,
        o: 118.42,
        h: 118.45,
        l: 118.4,
        c,
        v: 1250.0,
        vwap: Some(118.431),
        count: 37,
    }
}

/// The contract's example row (§1.4).
fn item() -> Value {
    json!({
        "symbol": "ZZT2E-T-A", "event_ts": "2026-03-05 20:00:00.000", "seq": "1",
        "ingest_ts": "2026-03-05 20:00:00.412", "is_final": 1, "source": "ta",
        "window_size": "PT1S", "window_step": "PT1S",
        "window_start": "2026-03-05 19:59:59.000", "window_end": "2026-03-05 20:00:00.000",
        "version": 1, "o": 118.42, "h": 118.45, "l": 118.4, "c": 118.44, "v": 1250,
        "vwap": 118.431, "count": "37"
    })
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}
