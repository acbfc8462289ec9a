//! Concurrent scenarios add no cross-talk: the shipped suite run concurrently (the default),
//! with one more scenario whose symbol the stand-in TA job faults running among them. Every
//! shipped scenario passes with exactly the oracle's rows (each one expected, found once, equal
//! field by field: nothing missing, extra, duplicated or different), which is what a run of
//! one scenario at a time would show, so no sequential reference run is needed; and the
//! faulted one fails alone, named at the job.
//!
//! The suite's compressed scenarios need a lane to themselves (another publisher's trades would
//! move the watermark into their bursts), so the run has a private one: a private stand-in TA
//! job on scratch topics and a scratch database, faulted from its start (`drop_every_nth_bar`
//! scoped to the faulted scenario's symbol by `--fault-symbol`), and a private stand-in Jangar
//! with the page on that database for the API and browser scenarios. So it runs beside the
//! other stack tests. One full run of the suite: about 75 s (`smoke` is a real-time minute); the
//! wall time is printed (`--nocapture`), measured, not asserted (see the README's figures).

use crate::common;
use crate::common::refstack::{root, PrivateTa};
use crate::common::seeded::PrivateJangar;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use torghut_e2e::domain::symbols::{self, RunId};

/// A real-time scenario of its own (its own alias, so its own symbol) for the fault.
const FAULTED: &str = r#"
name = "crosstalk-fault"
description = "Twenty seconds of real-time trades on a symbol whose bars the stand-in drops."
symbols = ["XTALK"]
pacing = "realtime"
deadline_secs = 30

[[generators]]
kind = "ramp"
symbol = "XTALK"
seconds = 20
per_second = 3
price = 80.00
step = 0.02
size = 10.0
"#;

/// `cmd` run to its end off the test's runtime; its output and wall time.
async fn timed(mut cmd: Command) -> (Output, Duration) {
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let out = cmd.output().expect("run torghut-e2e");
        (out, started.elapsed())
    })
    .await
    .unwrap()
}

fn report(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Per scenario: its verdict, what it published and every table's counts and differences
/// (the keys missing, extra, duplicated or differing: empty on a pass).
fn outcome(scenario: &Value) -> Value {
    let tables: BTreeMap<String, Value> = scenario["tables"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, t)| {
            let counts = [
                "expected",
                "observed",
                "matched",
                "missing",
                "extra",
                "duplicates",
                "mismatches",
            ]
            .map(|k| (k, t[k].clone()));
            (name.clone(), json!(BTreeMap::from(counts)))
        })
        .collect();
    json!({
        "verdict": scenario["verdict"],
        "messages_published": scenario["messages_published"],
        "tables": tables,
    })
}

fn by_name(report: &Value) -> Vec<(String, Value)> {
    report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_string(), s.clone()))
        .collect()
}

fn longest(report: &Value) -> u64 {
    by_name(report)
        .iter()
        .map(|(_, s)| s["duration_ms"].as_u64().unwrap())
        .max()
        .unwrap()
}

/// Every table of a passing scenario holds exactly the oracle's rows: as many as it expected,
/// all matched, nothing missing, extra, duplicated or different.
fn assert_exactly_the_oracles_rows(name: &str, scenario: &Value) {
    let tables = scenario["tables"].as_object().unwrap();
    assert!(!tables.is_empty(), "{name}: no table compared");
    for (table, t) in tables {
        let expected = t["expected"].as_u64().unwrap();
        assert_eq!(
            t["observed"].as_u64(),
            Some(expected),
            "{name}.{table}: {t}"
        );
        assert_eq!(t["matched"].as_u64(), Some(expected), "{name}.{table}: {t}");
        for k in ["missing", "extra", "duplicates", "mismatches"] {
            assert_eq!(
                t[k].as_array().map(Vec::len),
                Some(0),
                "{name}.{table}.{k}: {t}"
            );
        }
    }
    let bars = tables["ta_microbars"]["expected"].as_u64().unwrap();
    assert!(bars > 0, "{name}: the oracle expected no bar");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_suite_passes_with_the_oracles_rows_and_a_faulted_scenario_fails_alone() {
    let dir: PathBuf = std::env::temp_dir().join(common::unique("concurrency"));
    std::fs::create_dir_all(&dir).unwrap();
    let scenarios = root().join("scenarios");
    let shipped: Vec<String> = {
        let mut files: Vec<String> = std::fs::read_dir(&scenarios)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        files.sort();
        files
    };
    let text = |o: &Output| {
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };

    // Concurrently, with one more scenario whose symbol the private job faults.
    let faulted_file = dir.join("crosstalk_fault.toml");
    std::fs::write(&faulted_file, FAULTED).unwrap();
    let run_id = RunId::generate();
    let faulted_symbol = symbols::synthetic(&run_id, "XTALK");
    let ta = PrivateTa::start(&[
        "--drop-every-nth-bar",
        "4",
        "--fault-symbol",
        faulted_symbol.as_str(),
    ])
    .await;
    ta.wait_until_reading().await;
    let jangar = PrivateJangar::start(&ta.database, &["NVDA"], &[], &[]).await;
    let conc_path = dir.join("concurrent.json");
    let mut cmd = ta.command("run", &scenarios);
    cmd.arg(&faulted_file)
        .args(["--run-id", run_id.as_str(), "--report-json"])
        .arg(&conc_path)
        .env_remove("TORGHUT_E2E_JOBS")
        .env("TORGHUT_E2E_JANGAR_URL", &jangar.url)
        .env("TORGHUT_E2E_ARTIFACTS_DIR", dir.join("artifacts"));
    let (out, conc_wall) = timed(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let concurrent = report(&conc_path);
    // It did run concurrently: scenarios started before the first one finished.
    let log = String::from_utf8_lossy(&out.stderr);
    let started_together = log
        .lines()
        .take_while(|l| !l.contains(" finished "))
        .filter(|l| l.contains(" running "))
        .count();
    assert!(started_together > 1, "one scenario at a time: {log}");

    // Reports in file order (the directory's files, sorted), the extra file last, as given.
    let mut conc = by_name(&concurrent);
    let (faulted_name, faulted) = conc.pop().unwrap();
    assert_eq!(faulted_name, "crosstalk-fault");
    let files_in_report: Vec<String> = conc
        .iter()
        .map(|(_, s)| {
            Path::new(s["path"].as_str().unwrap())
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(files_in_report, shipped, "scenarios out of file order");

    // Every shipped scenario: a pass on exactly the oracle's rows.
    for (name, c) in &conc {
        assert_eq!(c["verdict"], "pass", "{name} concurrently: {}", outcome(c));
        assert!(c["messages_published"].as_u64().unwrap() > 0, "{name}");
        assert_exactly_the_oracles_rows(name, c);
    }

    // The faulted one fails on its own missing bars, named at the job.
    assert_eq!(faulted["verdict"], "fail", "{}", outcome(&faulted));
    assert_eq!(faulted["symbols"]["XTALK"], faulted_symbol.as_str());
    let missing = faulted["tables"]["ta_microbars"]["missing"]
        .as_array()
        .unwrap();
    assert!(!missing.is_empty(), "no bar missing: {}", outcome(&faulted));
    let hops: Vec<&str> = faulted["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["hop"].as_str())
        .collect();
    assert!(hops.contains(&"ta_job"), "{hops:?}");

    eprintln!(
        "suite wall: concurrent with the faulted extra {:.1} s (longest scenario {:.1} s)",
        conc_wall.as_secs_f64(),
        longest(&concurrent) as f64 / 1000.0
    );
}
