use super::*;
use crate::domain::report::Point;
use crate::report::sample::sample;

#[test]
fn a_red_report_leads_with_the_divergence() {
    let html = render(&sample(), &[]);
    let divergence = html.find("First divergence").expect("divergence box");
    let plotless = html.find("Rows compared").unwrap();
    assert!(divergence < plotless, "the divergence comes first");
    assert!(
        html.contains("ema12 expected 50.05 observed 50.0375"),
        "{html}"
    );
    assert!(html.contains("Kafka → TA job"));
    assert!(html.contains("<svg"), "the latency waterfall is drawn");
    assert!(
        html.contains("watermark-closed → visible"),
        "a waterfall row of its own"
    );
    assert!(
        html.contains("watermark-closed: broker ack → visible</td><td class=\"num\">1</td>"),
        "watermark-closed bars are tabled apart"
    );
    assert!(html.contains("(limit 36000 ms)"));
    assert!(html.contains("SELECT * FROM torghut_sim_default.ta_signals FINAL"));
    // The warning is shown apart from the diagnosis, after it.
    let diagnosis = html.find("<h3>Diagnosis</h3>").unwrap();
    let warnings = html.find("<h3>Warnings</h3>").expect("a warnings list");
    assert!(diagnosis < warnings);
    assert!(html[warnings..].contains(
        "<div class=\"finding warning\"><b>ClickHouse → Jangar API</b>: /api/torghut/ta/bars \
         sends UInt64 columns (seq) as JSON numbers"
    ));
}

#[test]
fn a_pool_run_shows_its_history_and_reads_only_its_own_rows() {
    let mut r = sample();
    let after = time::macros::datetime!(2026-01-01 00:00:00 UTC);
    r.scenarios[0].pool = Some(crate::domain::pool::PoolReport {
        pool: "CANARY".into(),
        generation: 1,
        retired: vec![crate::domain::pool::Retired {
            generation: 0,
            symbol: "ZZT2E-CANARY.0-S".into(),
            reason: "1 of seqs 1..=8 missing".into(),
        }],
        symbols: Vec::new(),
        waited_for_history_ms: 0,
        rows_after: after,
    });
    let html = render(&r, &[]);
    assert!(
        html.contains("Reserved pool CANARY (generation 1)"),
        "{html}"
    );
    assert!(html.contains("1 of seqs 1..=8 missing"));
    assert!(html.contains("event_ts &gt; fromUnixTimestamp64Milli(1767225600000, "));
}

#[test]
fn secrets_are_scrubbed_everywhere() {
    let mut r = sample();
    r.target.clickhouse_url = "http://torghut:s3cr3t-pw@ch:8123".into();
    r.scenarios[0].findings[0].cause = "auth failed for s3cr3t-pw".into();
    let html = render(&r, &["s3cr3t-pw".to_string()]);
    assert!(!html.contains("s3cr3t-pw"), "{html}");
    assert!(html.contains("torghut:[redacted]@ch:8123"));
}

#[test]
fn credential_fields_in_evidence_are_redacted() {
    assert_eq!(
        scrub_text("{\"user\":\"a\",\"password\":\"hunter22\",\"x\":1}"),
        "{\"user\":\"a\",\"password\":\"[redacted]\",\"x\":1}"
    );
    assert_eq!(scrub_text("password=abc&x=1"), "password=[redacted]&x=1");
    assert_eq!(
        scrub_text("Authorization: Bearer abc.def"),
        "Authorization: [redacted]"
    );
    assert_eq!(scrub_text("no secrets here"), "no secrets here");
    assert_eq!(
        scrub_text("password_env names a variable"),
        "password_env names a variable"
    );
    assert_eq!(
        scrub_text("kafka://u:p@host:9092/x"),
        "kafka://u:[redacted]@host:9092/x"
    );
}

#[test]
fn the_plot_marks_the_first_divergence() {
    let mut r = sample();
    let t0 = time::macros::datetime!(2026-01-01 00:00:01 UTC);
    let point = |i: i64, c: f64, ema: f64| Point {
        symbol: "ZZT2E-RUN1-F".into(),
        event_ts: t0 + time::Duration::seconds(i),
        seq: i as u64,
        o: Some(c),
        h: Some(c + 0.1),
        l: Some(c - 0.1),
        c: Some(c),
        ema12: Some(ema),
        ema26: None,
        boll_upper: None,
        boll_mid: None,
        boll_lower: None,
    };
    r.scenarios[0].series = crate::domain::report::Series {
        expected: (0..5).map(|i| point(i, 50.0, 50.05)).collect(),
        observed: (0..5).map(|i| point(i, 50.0, 50.0375)).collect(),
    };
    r.scenarios[0]
        .tables
        .get_mut("ta_signals")
        .unwrap()
        .mismatches[0]
        .key = point(2, 0.0, 0.0).key();
    let html = render(&r, &[]);
    assert!(html.contains("first divergence: ema12"), "{html}");
    assert!(
        html.contains("stroke-dasharray"),
        "expected lines are dashed"
    );
}
