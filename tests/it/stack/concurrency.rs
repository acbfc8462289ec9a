//! Concurrent scenarios add no cross-talk: the shipped suite run concurrently (the default)
//! gets the same verdicts and the same rows as run one scenario at a time (`--jobs 1`), and
//! one scenario whose symbol the stand-in TA job faults, running among them, fails alone.
//!
//! The fault is the stand-in's `drop_every_nth_bar`, scoped to that scenario's symbol with
//! `fault_symbol` (the run id is chosen here, so the symbol is known before the run), so
//! nothing else that uses the stack is touched, and it is cleared when the test ends.
//!
//! Two full runs of the suite against the stack: about three and a half minutes. The wall
//! times are printed (`--nocapture`) for information; they are measured, not asserted (see the
//! README's figures).

use crate::common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
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

fn ta_admin() -> String {
    let port = std::env::var("STACK_TA_ADMIN_PORT")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "9610".into());
    format!("127.0.0.1:{port}")
}

/// `PUT /faults` on the stack's stand-in TA job; its answer. Plain HTTP/1.0 on a socket, so
/// it also works from `Drop` while a panic unwinds.
fn put_faults(patch: &Value) -> Result<String, String> {
    let body = patch.to_string();
    let mut stream =
        std::net::TcpStream::connect(ta_admin()).map_err(|e| format!("{}: {e}", ta_admin()))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "PUT /faults HTTP/1.0\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        ta_admin(),
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    if answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200") {
        Ok(answer)
    } else {
        Err(answer)
    }
}

/// Clears the scoped fault whatever happens to the test.
struct FaultGuard;

impl Drop for FaultGuard {
    fn drop(&mut self) {
        if let Err(e) = put_faults(&json!({"drop_every_nth_bar": 0, "fault_symbol": null})) {
            eprintln!("could not clear the stand-in's fault: {e}");
        }
    }
}

fn run(args: &[&str], dir: &Path) -> (Output, Duration) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_torghut-e2e"));
    cmd.arg("run")
        .args(args)
        .current_dir(dir)
        .env_remove("TORGHUT_E2E_CONFIG")
        .env_remove("TORGHUT_E2E_JOBS")
        .env("TORGHUT_E2E_ARTIFACTS_DIR", dir.join("artifacts"));
    for (k, v) in common::validator_env() {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = cmd.output().expect("run torghut-e2e");
    (out, started.elapsed())
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

#[test]
fn concurrent_suite_matches_sequential_and_a_faulted_scenario_fails_alone() {
    let dir: PathBuf = std::env::temp_dir().join(common::unique("concurrency"));
    std::fs::create_dir_all(&dir).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let shipped = shipped.to_str().unwrap();

    // One at a time, in file order: the reference.
    let seq_path = dir.join("sequential.json");
    let (out, seq_wall) = run(
        &[
            shipped,
            "--jobs",
            "1",
            "--report-json",
            seq_path.to_str().unwrap(),
        ],
        &dir,
    );
    let text = |o: &Output| {
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let sequential = report(&seq_path);

    // Concurrently, with one more scenario whose symbol the job faults.
    let faulted_file = dir.join("crosstalk_fault.toml");
    std::fs::write(&faulted_file, FAULTED).unwrap();
    let run_id = RunId::generate();
    let faulted_symbol = symbols::synthetic(&run_id, "XTALK");
    let _guard = FaultGuard;
    put_faults(&json!({"drop_every_nth_bar": 4, "fault_symbol": faulted_symbol}))
        .unwrap_or_else(|e| panic!("cannot set the stand-in's fault: {e}"));
    let conc_path = dir.join("concurrent.json");
    let (out, conc_wall) = run(
        &[
            shipped,
            faulted_file.to_str().unwrap(),
            "--run-id",
            run_id.as_str(),
            "--report-json",
            conc_path.to_str().unwrap(),
        ],
        &dir,
    );
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

    // Reports in file order, the extra file last, as given.
    let seq_names: Vec<String> = by_name(&sequential).into_iter().map(|(n, _)| n).collect();
    let mut conc = by_name(&concurrent);
    let (faulted_name, faulted) = conc.pop().unwrap();
    let conc_names: Vec<String> = conc.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(conc_names, seq_names, "scenarios out of file order");
    assert_eq!(faulted_name, "crosstalk-fault");

    // Every shipped scenario: the same verdict (a pass) and the same rows both ways.
    for ((name, s), (_, c)) in by_name(&sequential).iter().zip(&conc) {
        assert_eq!(s["verdict"], "pass", "{name} sequentially: {}", outcome(s));
        assert_eq!(
            outcome(s),
            outcome(c),
            "{name}: sequential (left) and concurrent (right) differ"
        );
        let matched = s["tables"]["ta_microbars"]["matched"].as_u64().unwrap();
        assert!(matched > 0, "{name}: no row verified");
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
        "suite wall: sequential {:.1} s (longest scenario {:.1} s), concurrent with the \
         faulted extra {:.1} s (longest {:.1} s)",
        seq_wall.as_secs_f64(),
        longest(&sequential) as f64 / 1000.0,
        conc_wall.as_secs_f64(),
        longest(&concurrent) as f64 / 1000.0
    );
}
