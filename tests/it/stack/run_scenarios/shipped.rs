//! Every shipped scenario end to end: the real-time ones on the shared simulation lane, the
//! compressed ones on a private stand-in TA job, each passing on rows, with its visibility times
//! bracketed; and a check that no file of `scenarios/` goes untested.

use super::*;

/// Runs shipped `files` on the shared simulation lane (real-time pacing: other runs cannot
/// disturb them) or on `lane`; asserts a pass resting on rows for each; returns the report.
async fn shipped_pass(lane: Option<&PrivateTa>, files: &[PathBuf]) -> Value {
    let mut args: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let mut env = Vec::new();
    if let Some(ta) = lane {
        ta.wait_until_reading().await;
        args.extend(["--config".into(), ta.config_file().display().to_string()]);
        env.push((
            "TORGHUT_E2E_CLICKHOUSE_DATABASE".to_string(),
            ta.database.clone(),
        ));
    }
    let (out, report) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        validator(&args, &env)
    })
    .await
    .unwrap();
    let shown = shown(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert_eq!(report["schema"], "torghut-e2e/report/v1");
    assert_eq!(report["verdict"], "pass", "{shown}");
    let scenarios = report["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), files.len(), "{shown}");
    for s in scenarios {
        for (table, diff) in s["tables"].as_object().unwrap() {
            let matched = diff["matched"].as_u64().unwrap();
            assert!(
                matched > 0,
                "{} {table}: a pass must rest on rows",
                s["name"]
            );
            assert_eq!(
                Some(matched),
                diff["expected"].as_u64(),
                "{} {table}",
                s["name"]
            );
        }
        assert!(
            s["latency"]["publish_to_visible"]["count"]
                .as_u64()
                .unwrap()
                > 0
        );
        visibility_is_bracketed(s);
    }
    report
}

/// Every expected row of a passing scenario has a visibility time with its error, by the
/// key polls, and the figures hang together: each bar's midpoint after the ack of the message
/// that made the job emit it and before the verdict; the largest error is the one reported;
/// the overhead is counted from evidence the run had before its verdict.
fn visibility_is_bracketed(s: &Value) {
    let name = &s["name"];
    let l = &s["latency"];
    let w = &l["watermark_closed"];
    let count = |v: &Value| v["count"].as_u64().unwrap();
    // Every expected bar was seen, closed by a trade or by the watermark, each with a bracket
    // (or, on a lane other tests write to, closed by its watermark before its own trigger).
    let expected_bars = s["tables"]
        .get("ta_microbars")
        .map_or(0, |d| d["expected"].as_u64().unwrap());
    assert_eq!(
        count(&l["publish_to_visible"])
            + count(&w["publish_to_visible"])
            + l["closed_before_trigger"].as_u64().unwrap(),
        expected_bars,
        "{name}: {l:#}"
    );
    let minutes = s["tables"]
        .get("ta_signals_pt1m")
        .map_or(0, |d| d["expected"].as_u64().unwrap());
    let m = &l["minute_signals"];
    assert_eq!(count(&m["publish_to_visible"]), minutes, "{name}: {m:#}");
    // The local engine (ClickHouse 26, this machine's clock) has both of the server's clock
    // readings: most polls are timed by them (a poll whose reading the millisecond rounding put
    // past its answer falls back).
    let (polls, by_server) = (
        l["key_polls"].as_u64().unwrap(),
        l["key_polls_server_clock"].as_u64().unwrap(),
    );
    assert!(by_server * 2 > polls && by_server <= polls, "{name}: {l:#}");
    let mut widest: f64 = 0.0;
    for (samples, error) in [
        (&l["publish_to_visible"], &l["visibility_error"]),
        (&w["publish_to_visible"], &w["visibility_error"]),
        (&m["publish_to_visible"], &m["visibility_error"]),
    ] {
        assert_eq!(count(error), count(samples), "{name}: {error}");
        if count(samples) == 0 {
            continue;
        }
        // The local engine keeps its part log and lets the run flush it: nearly every time is
        // its part's commit (a row in two parts, were one rewritten, would fall back to the
        // polls). Its error is half a millisecond, or, for a row first seen in a merge of
        // several inserts committed within the polls' bracket, their spread: under load that
        // is most of the bracket, so no bound is asserted here (see `part_log.rs`' tests).
        let by_part_log = error["by_method"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["method"] == "part-log")
            .unwrap_or_else(|| panic!("{name}: no time from the part log: {error}"));
        assert!(
            count(by_part_log) * 10 >= count(samples) * 9,
            "{name}: {error}"
        );
        let max = error["max_ms"].as_f64().unwrap();
        let p95 = error["p95_ms"].as_f64().unwrap();
        assert!((0.0..=max).contains(&p95), "{name}: {error}");
        widest = widest.max(max);
    }
    assert_eq!(
        l["polling_error_ms"].as_f64(),
        Some(widest),
        "{name}: {l:#}"
    );
    assert!(l["key_polls"].as_u64().unwrap() > 0, "{name}: {l:#}");
    assert!(l["full_reads"].as_u64().unwrap() > 0, "{name}: {l:#}");

    // Midpoints within [ack, verdict]: a sample is midpoint − ack, so it is not negative, and
    // no later than the verdict, which came `verdict_after_publish_ms` after the last ack.
    let acks: Vec<time::OffsetDateTime> = s["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let at = d["acked_at"].as_str().unwrap();
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap()
        })
        .collect();
    let (first, last) = (*acks.iter().min().unwrap(), *acks.iter().max().unwrap());
    let verdict_ms = s["verdict_after_publish_ms"].as_f64().unwrap();
    let span_ms = (last - first).as_seconds_f64() * 1000.0 + verdict_ms;
    for summary in [
        &l["publish_to_visible"],
        &w["publish_to_visible"],
        &m["publish_to_visible"],
    ] {
        for sample in summary["samples_ms"].as_array().unwrap() {
            let sample = sample.as_f64().unwrap();
            assert!(
                (0.0..=span_ms).contains(&sample),
                "{name}: a midpoint {sample} ms after its ack is outside [ack, verdict] \
                 ({span_ms} ms after the first ack): {l:#}"
            );
        }
    }
    let overhead = s["overhead_ms"].as_f64().expect("overhead_ms");
    assert!(
        overhead <= verdict_ms,
        "{name}: overhead {overhead} > {verdict_ms}"
    );
    assert!(s["last_evidence"].is_string(), "{name}");
}

fn shipped(name: &str) -> PathBuf {
    root().join("scenarios").join(name)
}

/// Each shipped scenario and the test that runs it end to end, unchanged but for `smoke`'s
/// length: a new file in `scenarios/` needs a line here (and a test).
const SHIPPED: &[(&str, &str)] = &[
    (
        "api.toml",
        "api_stage::api_scenario_passes_and_the_shapes_match_the_snapshots",
    ),
    (
        "browser.toml",
        "browser_stage::browser_scenario_passes_all_six_steps_end_to_end",
    ),
    (
        "edge_cases.toml",
        "run_scenarios::shipped::compressed_shipped_scenarios_pass_on_a_lane_of_their_own",
    ),
    (
        "minute_bars.toml",
        "run_scenarios::shipped::compressed_shipped_scenarios_pass_on_a_lane_of_their_own",
    ),
    (
        "multi_symbol.toml",
        "run_scenarios::shipped::compressed_shipped_scenarios_pass_on_a_lane_of_their_own",
    ),
    (
        "quotes.toml",
        "run_scenarios::shipped::real_time_shipped_scenarios_pass_on_the_shared_lane",
    ),
    (
        "smoke.toml",
        "run_scenarios::shipped::real_time_shipped_scenarios_pass_on_the_shared_lane",
    ),
    (
        "warmup.toml",
        "run_scenarios::shipped::compressed_shipped_scenarios_pass_on_a_lane_of_their_own",
    ),
    (
        "watermark.toml",
        "run_scenarios::shipped::real_time_shipped_scenarios_pass_on_the_shared_lane",
    ),
];

#[test]
fn every_shipped_scenario_is_run_end_to_end() {
    let mut files: Vec<String> = std::fs::read_dir(root().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".toml"))
        .collect();
    files.sort();
    let listed: Vec<&str> = SHIPPED.iter().map(|(f, _)| *f).collect();
    assert_eq!(files, listed, "scenarios/ and the tests that run them");
}

/// `smoke` is a real-time minute; twelve seconds of it prove the same path (the publisher's
/// pacing, every column of every bar) at a fifth of the wait.
fn short_smoke() -> PathBuf {
    let text = std::fs::read_to_string(shipped("smoke.toml")).unwrap();
    let mut smoke: toml::Table = text.parse().unwrap();
    let generator = smoke["generators"].as_array_mut().unwrap()[0]
        .as_table_mut()
        .unwrap();
    assert_eq!(
        generator["seconds"].as_integer(),
        Some(60),
        "smoke.toml changed"
    );
    generator.insert("seconds".into(), 12.into());
    common::toml_file("t2e-smoke", toml::to_string(&smoke).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_time_shipped_scenarios_pass_on_the_shared_lane() {
    let files = [
        short_smoke(),
        shipped("quotes.toml"),
        shipped("watermark.toml"),
    ];
    let report = shipped_pass(None, &files).await;
    let names: Vec<&str> = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["smoke", "quotes-imbalance", "watermark-close"]);
    // The watermark closed the last bar: its latency is judged apart. On this shared lane
    // another test's trades (a compressed run's pin on every partition, say) may move the
    // watermark past it before the clock trade is even sent: then it times no hop and is
    // counted apart (`closed_before_trigger`). Either way it was found and compared.
    let latency = &report["scenarios"][2]["latency"];
    let by_watermark = latency["watermark_closed"]["publish_to_visible"]["count"]
        .as_u64()
        .unwrap();
    let before_trigger = latency["closed_before_trigger"].as_u64().unwrap();
    assert!(by_watermark + before_trigger > 0, "{latency}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_shipped_scenarios_pass_on_a_lane_of_their_own() {
    let ta = PrivateTa::start(&[]).await;
    let files = [
        shipped("warmup.toml"),
        shipped("edge_cases.toml"),
        shipped("multi_symbol.toml"),
        shipped("minute_bars.toml"),
    ];
    let report = shipped_pass(Some(&ta), &files).await;
    let scenarios = report["scenarios"].as_array().unwrap();
    // The 1-minute branch: every bar and the correction became a PT1M row equal to the
    // oracle's, compared apart from the 1-second signals.
    let minute = scenarios
        .iter()
        .find(|s| s["name"] == "minute-bars")
        .unwrap();
    assert_eq!(
        minute["tables"]["ta_signals_pt1m"]["matched"], 23,
        "{minute}"
    );
    assert!(minute["tables"]["ta_signals"]["matched"].as_u64() > Some(0));
    // The same PT1M rows on the Kafka signals topic, decoded and compared with the oracle's.
    let pt1m = minute["stages"]
        .as_array()
        .and_then(|stages| stages.iter().find(|s| s["stage"] == "kafka_outputs"))
        .and_then(|stage| stage["checks"].as_array())
        .and_then(|checks| checks.iter().find(|c| c["name"] == "signals_pt1m"))
        .unwrap_or_else(|| panic!("no PT1M check of the signals topic: {minute}"));
    assert_eq!(pt1m["ok"], true, "{pt1m}");
    assert!(
        pt1m["detail"]
            .as_str()
            .unwrap()
            .contains("23/23 rows match"),
        "{pt1m}"
    );
    // Positive evidence that the warm-up scenario reached every indicator, and that the
    // multi-symbol one used every partition.
    let warm = scenarios
        .iter()
        .find(|s| s["name"] == "indicator-warmup")
        .unwrap();
    let symbol = warm["symbols"]["WARM"].as_str().unwrap().to_string();
    let ch = ClickHouse::new(&common::clickhouse(&ta.database), common::TIMEOUT);
    let nulls: u64 = ch
        .bounded(
            ch.client()
                .query(
                    "SELECT countIf(rsi14 IS NULL OR boll_mid IS NULL OR vwap_w5m IS NULL \
                     OR vol_realized_w60s IS NULL OR ema26 IS NULL) FROM ta_signals FINAL \
                     WHERE symbol = ? AND event_ts = (SELECT max(event_ts) FROM ta_signals WHERE symbol = ?)",
                )
                .bind(&symbol)
                .bind(&symbol)
                .fetch_one::<u64>(),
        )
        .await
        .unwrap();
    assert_eq!(nulls, 0, "the last warm-up signal has every indicator");
    let multi = scenarios
        .iter()
        .find(|s| s["name"] == "multi-symbol")
        .unwrap();
    let mut partitions: Vec<i64> = multi["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["partition"].as_i64().unwrap())
        .collect();
    partitions.sort();
    partitions.dedup();
    assert!(
        partitions.len() >= 2,
        "8 symbols spread over partitions: {partitions:?}"
    );
}
