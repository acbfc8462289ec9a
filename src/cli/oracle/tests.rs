use super::*;
use crate::domain::model::{MICROBAR_COLUMNS, SIGNAL_COLUMNS};

const TRADE: &str = r#"{"ingestTs":"2026-07-21T14:30:00.2Z","eventTs":"2026-07-21T14:30:00.100Z","feed":"iex","channel":"trades","symbol":"X","seq":1,"payload":{"S":"X","p":100.0,"s":10.0,"t":"2026-07-21T14:30:00.100Z"},"accountLabel":null,"isFinal":true,"source":"ws","window":null,"version":2,"provider":"alpaca","marketSession":"regular","delayClass":"real_time_exchange_only"}"#;

fn run_text(input: &str, flush: bool, strict: bool) -> (Result<Summary, Failure>, String) {
    let mut out = Vec::new();
    let replay = Replay {
        flush_open: flush,
        strict,
        ..Replay::default()
    };
    let result = process(input.as_bytes(), Path::new("in.jsonl"), replay, &mut out);
    (result, String::from_utf8(out).expect("utf-8"))
}

#[test]
fn rows_print_every_column_in_table_order() {
    let (result, out) = run_text(&format!("{TRADE}\n\n"), true, false);
    assert_eq!(
        result.expect("ok"),
        Summary {
            lines: 2,
            skipped: 0
        }
    );
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 2);
    let first = out.lines().next().expect("a row");
    assert!(first.starts_with(r#"{"table":"ta_microbars","symbol":"X","event_ts":"2026-07-21T14:30:01.000Z","seq":1,"ingest_ts":null,"is_final":1,"source":"ta","window_size":"PT1S","window_step":"PT1S","window_start":"2026-07-21T14:30:00.000Z","window_end":"2026-07-21T14:30:01.000Z","version":1,"o":100.0"#), "{first}");
    let keys = |v: &serde_json::Value| -> Vec<String> {
        v.as_object().expect("object").keys().cloned().collect()
    };
    let mut want: Vec<String> = MICROBAR_COLUMNS.iter().map(|s| s.to_string()).collect();
    want.push("table".into());
    want.sort();
    assert_eq!(keys(&lines[0]), want);
    let mut want: Vec<String> = SIGNAL_COLUMNS.iter().map(|s| s.to_string()).collect();
    want.push("table".into());
    want.sort();
    assert_eq!(keys(&lines[1]), want);
    assert_eq!(lines[1]["vwap_session"], serde_json::json!(100.0));
    assert_eq!(lines[1]["rsi14"], serde_json::Value::Null);
}

#[test]
fn malformed_lines_are_skipped_by_default_and_fatal_when_strict() {
    let input = format!(
        "{TRADE}\nnot json\n{}\n",
        TRADE.replace("2026-07-21T14:30:00.100Z\"}", "2026-07-21T14:30:02.100Z\"}")
    );
    let (result, out) = run_text(&input, false, false);
    assert_eq!(
        result.expect("ok"),
        Summary {
            lines: 3,
            skipped: 1
        }
    );
    assert_eq!(
        out.lines().count(),
        2,
        "the third trade closes the first bar"
    );
    let (result, out) = run_text(&input, false, true);
    let err = result.expect_err("strict").to_string();
    assert!(err.starts_with("in.jsonl:2: not valid JSON"), "{err}");
    assert!(out.is_empty());
}

#[test]
fn a_recorded_stream_is_read_as_the_job_reads_it() {
    // pipeline.md §9.3: a bare upper-case boolean and a 24:00 instant are accepted by the
    // job, so the replay must count their trades; a quoted "yes" is dropped by both.
    let lenient = TRADE
        .replace("\"isFinal\":true", "\"isFinal\":TRUE")
        .replace("2026-07-21T14:30:00.100Z\"}", "2026-07-21T23:59:60.100z\"}");
    let dropped = TRADE.replace("\"isFinal\":true", "\"isFinal\":\"yes\"");
    let (result, out) = run_text(&format!("{lenient}\n{dropped}\n"), true, false);
    assert_eq!(
        result.expect("ok"),
        Summary {
            lines: 2,
            skipped: 1
        }
    );
    let first = out.lines().next().expect("a row");
    assert!(
        first.contains(r#""event_ts":"2026-07-22T00:00:00.000Z","seq":1"#),
        "{first}"
    );
}

#[test]
fn an_unreadable_input_is_exit_2() {
    let args = OracleOptions {
        input: "/nonexistent/messages.jsonl".into(),
        replay: Replay::default(),
    };
    assert!(matches!(run(&args), Outcome::UsageOrConfig));
}

#[test]
fn the_quote_freshness_window_is_the_deployments() {
    // A quote 4 s before the bar's end: fresh for production's 15 s, stale for the job's
    // code default of 2 s.
    let quote = r#"{"ingestTs":"2026-07-21T14:29:57.100Z","eventTs":"2026-07-21T14:29:57Z","feed":"iex","channel":"quotes","symbol":"X","seq":1,"payload":{"S":"X","bp":99.9,"bs":200.0,"ap":100.1,"as":300.0,"t":"2026-07-21T14:29:57Z"},"accountLabel":null,"isFinal":true,"source":"ws","window":null,"version":2,"provider":"alpaca","marketSession":"regular","delayClass":"real_time_exchange_only"}"#;
    let bid = |quote_stale_after_ms| {
        let replay = Replay {
            flush_open: true,
            ta: TaSettings {
                quote_stale_after_ms,
            },
            ..Replay::default()
        };
        let mut out = Vec::new();
        let input = format!("{quote}\n{TRADE}\n");
        process(input.as_bytes(), Path::new("in.jsonl"), replay, &mut out).expect("ok");
        let signal = String::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
            .find(|row| row["table"] == "ta_signals")
            .expect("a signal row");
        signal["imbalance_bid_px"].clone()
    };
    assert_eq!(bid(15_000), serde_json::json!(99.9));
    assert_eq!(bid(2_000), serde_json::Value::Null);
    assert_eq!(bid(0), serde_json::json!(99.9), "0: no age limit");
}
