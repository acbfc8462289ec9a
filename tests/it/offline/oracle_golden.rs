//! The oracle's signal engine against golden data computed by ta4j 0.16 itself
//! (`fixtures/golden/cases/*.json`, written by `scripts/golden generate`).
//!
//! Each case is one symbol's events in processing order (bars and quotes) and the signal ta4j
//! computes for every bar. Every value must agree within 1e-9 relative (1e-12 absolute near
//! zero), nulls must agree exactly, sizes exactly. A directory without cases is a failure: a check
//! that found no data proves nothing.

use std::path::{Path, PathBuf};

use serde_json::Value;
use torghut_e2e::domain::envelope::IsoInstant;
use torghut_e2e::domain::oracle::reference::ReferenceEngine;
use torghut_e2e::domain::oracle::{BarInput, Quote, SignalConfig, SignalEngine, SignalValues};

const FLOAT_COLUMNS: [&str; 15] = [
    "ema12",
    "ema26",
    "macd",
    "macd_signal",
    "macd_hist",
    "rsi14",
    "boll_mid",
    "boll_upper",
    "boll_lower",
    "vwap_session",
    "vwap_w5m",
    "vol_realized_w60s",
    "imbalance_spread",
    "imbalance_bid_px",
    "imbalance_ask_px",
];

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden/cases")
}

struct Case {
    name: String,
    events: Vec<Event>,
    expected: Vec<Value>,
}

enum Event {
    Bar(BarInput),
    Quote(Quote),
}

fn number(v: &Value, key: &str, case: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{case}: `{key}` is not a number in {v}"))
}

fn integer(v: &Value, key: &str, case: &str) -> i64 {
    v[key]
        .as_i64()
        .unwrap_or_else(|| panic!("{case}: `{key}` is not an integer in {v}"))
}

fn load(path: &Path) -> Case {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = json["case"].as_str().unwrap_or("?").to_string();
    let events = json["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: no `events` array"))
        .iter()
        .map(|e| {
            if let Some(b) = e.get("bar") {
                Event::Bar(BarInput {
                    end_ms: integer(b, "end_ms", &name),
                    close: number(b, "c", &name),
                    volume: number(b, "v", &name),
                })
            } else if let Some(q) = e.get("quote") {
                let t = integer(q, "t_ms", &name);
                Event::Quote(Quote {
                    event_ts: IsoInstant::from_unix_millis(t)
                        .unwrap_or_else(|| panic!("{name}: t_ms {t} out of range")),
                    bid_price: number(q, "bp", &name),
                    bid_size: number(q, "bs", &name),
                    ask_price: number(q, "ap", &name),
                    ask_size: number(q, "as", &name),
                })
            } else {
                panic!("{name}: event is neither a bar nor a quote: {e}")
            }
        })
        .collect();
    let expected = json["expected"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: no `expected` array"))
        .clone();
    Case {
        name,
        events,
        expected,
    }
}

fn load_all() -> Vec<Case> {
    let dir = cases_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (run `scripts/golden generate`)", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    assert!(
        !paths.is_empty(),
        "{} has no golden cases: nothing was checked (run `scripts/golden generate`)",
        dir.display()
    );
    paths.iter().map(|p| load(p)).collect()
}

fn float_of(v: &SignalValues, column: &str) -> Option<f64> {
    match column {
        "ema12" => v.ema12,
        "ema26" => v.ema26,
        "macd" => v.macd,
        "macd_signal" => v.macd_signal,
        "macd_hist" => v.macd_hist,
        "rsi14" => v.rsi14,
        "boll_mid" => v.boll_mid,
        "boll_upper" => v.boll_upper,
        "boll_lower" => v.boll_lower,
        "vwap_session" => v.vwap_session,
        "vwap_w5m" => v.vwap_w5m,
        "vol_realized_w60s" => v.vol_realized_w60s,
        "imbalance_spread" => v.imbalance_spread,
        "imbalance_bid_px" => v.imbalance_bid_px,
        "imbalance_ask_px" => v.imbalance_ask_px,
        other => panic!("unknown column {other}"),
    }
}

fn within(a: f64, b: f64) -> bool {
    (a - b).abs() <= (1e-9 * a.abs().max(b.abs())).max(1e-12)
}

/// Every mismatch of one computed row against its golden row.
fn mismatches(got: &SignalValues, want: &Value, end_ms: i64) -> Vec<String> {
    let mut out = Vec::new();
    if want["end_ms"].as_i64() != Some(end_ms) {
        out.push(format!("end_ms {end_ms} vs golden {}", want["end_ms"]));
    }
    for column in FLOAT_COLUMNS {
        let mine = float_of(got, column);
        let theirs = &want[column];
        let ok = match (mine, theirs.as_f64()) {
            (None, None) => theirs.is_null(),
            (Some(a), Some(b)) => within(a, b),
            _ => false,
        };
        if !ok {
            out.push(format!("{column}: oracle {mine:?} vs ta4j {theirs}"));
        }
    }
    for (column, mine) in [
        ("imbalance_bid_sz", got.imbalance_bid_sz),
        ("imbalance_ask_sz", got.imbalance_ask_sz),
    ] {
        let theirs = &want[column];
        if theirs.as_i64() != mine || (mine.is_none() && !theirs.is_null()) {
            out.push(format!("{column}: oracle {mine:?} vs ta4j {theirs}"));
        }
    }
    out
}

/// Runs every case through `on_event` (called with `None` to reset between cases) and fails
/// listing the first differences of every case.
fn check(label: &str, mut on_event: impl FnMut(&str, Option<&Event>) -> Option<SignalValues>) {
    let cases = load_all();
    let mut failures = Vec::new();
    let mut rows = 0;
    for case in &cases {
        on_event(&case.name, None); // reset
        let mut computed = Vec::new();
        for event in &case.events {
            if let (Some(values), Event::Bar(bar)) = (on_event(&case.name, Some(event)), event) {
                computed.push((bar.end_ms, values));
            }
        }
        if computed.len() != case.expected.len() {
            failures.push(format!(
                "{}: {} bar events but {} golden rows",
                case.name,
                computed.len(),
                case.expected.len()
            ));
            continue;
        }
        let mut case_failures = 0;
        for (k, ((end_ms, got), want)) in computed.iter().zip(&case.expected).enumerate() {
            rows += 1;
            for m in mismatches(got, want, *end_ms) {
                case_failures += 1;
                if case_failures <= 5 {
                    failures.push(format!("{} bar #{k} (end {end_ms}): {m}", case.name));
                }
            }
        }
        if case_failures > 5 {
            failures.push(format!(
                "{}: {} differences in all",
                case.name, case_failures
            ));
        }
    }
    assert!(rows > 0, "the golden cases hold no bars");
    assert!(
        failures.is_empty(),
        "{label}: {} case(s), {rows} rows, differences:\n{}",
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn the_incremental_engine_matches_ta4j() {
    let mut engine = SignalEngine::default();
    check("incremental engine", |_, event| match event {
        None => {
            engine = SignalEngine::default();
            None
        }
        Some(Event::Quote(q)) => {
            engine.on_quote(*q);
            None
        }
        Some(Event::Bar(b)) => Some(engine.on_bar(*b)),
    });
}

#[test]
fn the_rebuild_reference_matches_ta4j() {
    let mut engine = ReferenceEngine::new(SignalConfig::default());
    check("reference", |_, event| match event {
        None => {
            engine = ReferenceEngine::new(SignalConfig::default());
            None
        }
        Some(Event::Quote(q)) => {
            engine.on_quote(*q);
            None
        }
        Some(Event::Bar(b)) => Some(engine.on_bar(*b)),
    });
}

#[test]
fn every_documented_case_is_present() {
    let names: Vec<String> = load_all().into_iter().map(|c| c.name).collect();
    for required in [
        "worked_example",
        "out_of_order",
        "late_beyond_window",
        "quotes",
        "long_800",
    ] {
        assert!(
            names.iter().any(|n| n == required),
            "missing golden case {required}: {names:?}"
        );
    }
}
