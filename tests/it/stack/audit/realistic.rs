//! A healthy stand-in passes the audit of market-like traffic; each maths fault fails it,
//! naming its first divergent row.

use super::*;

use std::process::Command;

use torghut_e2e::adapter::clickhouse::ClickHouse;

/// The maths fault switches the stand-in offers (`--wrong-math` values), read from its help so
/// a new one is covered without editing this test.
fn maths_faults() -> Vec<String> {
    let out = Command::new(refstack::refstack_bin())
        .args(["ta", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    let section = help
        .split("--wrong-math <KIND>")
        .nth(1)
        .expect("the stand-in has --wrong-math");
    let section = section.split("\n      --").next().unwrap_or_default();
    section
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .filter_map(|l| l.split(':').next())
        .map(str::to_string)
        .collect()
}

fn rows_matched(report: &Value) -> u64 {
    report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["tables"].as_object().unwrap().values())
        .map(|d| d["matched"].as_u64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audits_pass_on_realistic_traffic_and_each_maths_fault_names_its_first_divergent_row() {
    let faults = maths_faults();
    assert!(faults.len() >= 2, "{faults:?}");
    let topics = Topics::create().await;
    let mut stand_ins = vec![StandIn::start(&topics, &[]).await];
    for f in &faults {
        stand_ins.push(StandIn::start(&topics, &["--wrong-math", f]).await);
    }
    // Four minutes of twelve symbols, ending 8 s ago.
    let summary = traffic(
        &topics,
        &[
            "--seconds",
            "240",
            "--busy-rate",
            "25",
            "--seed",
            "20",
            "--end-ago",
            "8s",
            // Paced (12 s), so the stand-ins meet quotes as a live job does (see `--speed`).
            "--speed",
            "20",
        ],
    )
    .await;
    // The stream has what real feeds have (else this test proves less than it says).
    for key in [
        "same_millisecond_groups",
        "bursts",
        "late_within_2s",
        "late_beyond_2s",
    ] {
        assert!(summary[key].as_u64().unwrap() > 0, "{key}: {summary}");
    }
    assert_eq!(summary["quiet_at_end"].as_array().unwrap().len(), 1);
    let (trades, quotes) = (
        summary["trades"].as_u64().unwrap(),
        summary["quotes"].as_u64().unwrap(),
    );
    for s in &stand_ins {
        s.wait_processed(trades, quotes).await;
    }
    let symbols = symbols(&summary);
    let (from, to) = window(&summary, 30, 15);

    let (out, report, html) = stand_ins[0].audit(&symbols, (&from, &to), &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", common::shown(&out));
    assert_eq!(report["verdict"], "pass", "{}", common::shown(&out));
    assert!(html.contains("<html"), "an HTML report was written");
    let scenarios = report["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), symbols.len());
    // The busy symbol: thousands of rows, continued from the stored history.
    let busy = &scenarios[0];
    let stretch = &busy["audit"]["stretches"][0];
    assert_eq!(stretch["start"], "continued", "{busy}");
    assert_eq!(stretch["history"], "complete", "{busy}");
    assert!(
        busy["tables"]["ta_signals"]["matched"].as_u64().unwrap() > 150,
        "{busy}"
    );
    assert!(rows_matched(&report) > 1_000, "{}", rows_matched(&report));
    // The quote columns were judged, on rows that carry quotes.
    assert_eq!(stretch["quote_rows_unjudged"], 0, "{busy}");
    let ch = ClickHouse::new(&common::clickhouse(&stand_ins[0].database), common::TIMEOUT);
    let with_quotes = ch
        .bounded(
            ch.client()
                .query(
                    "SELECT countIf(imbalance_bid_px IS NOT NULL) FROM ta_signals FINAL \
                     WHERE symbol = ?",
                )
                .bind(&symbols[0])
                .fetch_one::<u64>(),
        )
        .await
        .unwrap();
    assert!(with_quotes > 50, "{with_quotes} rows with a quote");

    for (fault, stand_in) in faults.iter().zip(&stand_ins[1..]) {
        let (out, report, html) = stand_in.audit(&symbols, (&from, &to), &[]).await;
        assert_eq!(
            out.status.code(),
            Some(1),
            "{fault}: {}",
            common::shown(&out)
        );
        let busy = &report["scenarios"][0];
        assert_eq!(busy["verdict"], "fail", "{fault}");
        let signals = &busy["tables"]["ta_signals"];
        let (matched, expected) = (
            signals["matched"].as_u64().unwrap(),
            signals["expected"].as_u64().unwrap(),
        );
        let mismatched = signals["mismatches"].as_array().unwrap().len() as u64;
        assert_eq!(matched + mismatched, expected, "{fault}: {signals}");
        // The sample σ bends every signal of the busy symbol. A wrong EMA seed bends them by a
        // difference that shrinks each bar (by 11/13 for EMA12, 25/27 for EMA26), so the last
        // rows of four minutes may come back within tolerance (one did, in a stop-28 run):
        // nearly all must not. The first divergent row (the earliest, as every report names
        // it) is named on the console.
        if fault == "ema_sma_seed" {
            assert!(
                mismatched * 10 >= expected * 9,
                "{fault}: {mismatched} of {expected}"
            );
        } else {
            assert_eq!(matched, 0, "{fault}");
        }
        let first = &signals["mismatches"][0];
        let key = first["key"].as_str().unwrap().to_string();
        assert!(key.starts_with(&format!("{} ", symbols[0])), "{key}");
        let columns: Vec<&str> = first["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["column"].as_str().unwrap())
            .collect();
        let bent = match fault.as_str() {
            "ema_sma_seed" => "ema12",
            "sample_stddev" => "vol_realized_w60s",
            _ => "",
        };
        assert!(
            bent.is_empty() || columns.contains(&bent),
            "{fault}: {columns:?}"
        );
        assert!(
            busy["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["cause"]
                    .as_str()
                    .unwrap()
                    .contains("differ from the ta4j-faithful")),
            "{fault}: {busy}"
        );
        // The bars themselves are right: only the maths is off.
        assert!(busy["tables"]["ta_microbars"]["mismatches"]
            .as_array()
            .unwrap()
            .is_empty());
        assert!(
            html.contains("First divergence"),
            "{fault}: the HTML marks it"
        );
        let console = String::from_utf8_lossy(&out.stdout);
        assert!(
            console.contains(&format!("first divergent row {key}:")),
            "{}",
            common::shown(&out)
        );
    }
    // Their databases go with them (the process first).
    drop(stand_ins);
    topics.delete().await;
}
