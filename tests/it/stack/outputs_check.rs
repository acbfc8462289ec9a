//! The Kafka outputs and heartbeat stages against the stack's stand-in TA job: a healthy run
//! passes them on decoded records equal to the oracle's rows, and each output fault of the
//! stand-in, scoped to the run's one symbol (`fault_symbol`, so the shared stack's other users
//! are untouched), fails the run at the hop it names. A new fault is one row of `CASES`.
//!
//! The heartbeat's faults are job-wide (`heartbeat_stopped`, `heartbeat_degraded`): they need a
//! private stand-in job (`common::refstack::PrivateTa` with its own output topics), not this
//! shared one.

use crate::common;
use crate::common::refstack::root;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use torghut_e2e::domain::symbols::RunId;

/// A fault of the stand-in (merged into `PUT /faults` with the run's symbol as its scope) and
/// what the run must report: `None` passes; else the hop (as the JSON report names it) and a
/// part of the cause.
struct Case {
    faults: fn() -> Value,
    expect: Option<(&'static str, &'static str)>,
}

/// A healthy run: no fault, so nothing is switched on the shared job.
static HEALTHY: Case = Case {
    faults: || json!({}),
    expect: None,
};

static FAULTS: &[Case] = &[
    Case {
        faults: || json!({"outputs_stopped": true}),
        expect: Some(("kafka_sink", "are not on torghut.sim.ta.bars.1s.v1")),
    },
    Case {
        faults: || json!({"undecodable_values": true}),
        expect: Some(("kafka_sink", "could not be read")),
    },
    Case {
        faults: || json!({"unknown_schema_id": true}),
        expect: Some(("schema_registry", "schema id 2147483647")),
    },
];

/// Two real-time trades a second apart (real-time pacing: other runs on the lane cannot
/// disturb it), two bars and their signals.
const SCENARIO: &str = r#"
name = "outputs"
symbols = ["OUT"]
pacing = "realtime"
deadline_secs = 20

[[trades]]
symbol = "OUT"
at_ms = 0
price = 100.0
size = 10.0

[[trades]]
symbol = "OUT"
at_ms = 1000
price = 100.5
size = 5.0
"#;

fn ta_admin() -> String {
    let port = std::env::var("STACK_TA_ADMIN_PORT")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "9610".into());
    format!("127.0.0.1:{port}")
}

/// `PUT /faults` on the stack's stand-in TA job (plain HTTP/1.0, so it also works from `Drop`).
fn put_faults(patch: &Value) -> Result<(), String> {
    let body = patch.to_string();
    let mut stream = std::net::TcpStream::connect(ta_admin()).map_err(|e| e.to_string())?;
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
    match answer.split(' ').nth(1) {
        Some("200") => Ok(()),
        _ => Err(answer),
    }
}

/// Turns the case's switches off again, whatever happens to the test.
struct Cleared(Value);

impl Drop for Cleared {
    fn drop(&mut self) {
        let mut off = json!({"fault_symbol": null});
        for key in self.0.as_object().into_iter().flat_map(|o| o.keys()) {
            off[key] = json!(false);
        }
        if let Err(e) = put_faults(&off) {
            eprintln!("could not clear the stand-in's faults {off}: {e}");
        }
    }
}

/// One run of the scenario under `case`'s fault; its exit code and JSON report.
fn run(case: &Case, scenario: &std::path::Path) -> (Option<i32>, Value, String) {
    let run_id = RunId::generate();
    let symbol = format!("ZZT2E-{}-OUT", run_id.as_str());
    let mut patch = (case.faults)();
    let _cleared = case.expect.map(|_| {
        let cleared = Cleared(patch.clone());
        patch["fault_symbol"] = json!(symbol);
        put_faults(&patch).expect("the stand-in takes the fault");
        cleared
    });
    let report = std::env::temp_dir().join(format!("{}.json", common::unique("t2e-outputs")));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_torghut-e2e"));
    cmd.arg("run")
        .arg(scenario)
        .args(["--run-id", run_id.as_str(), "--report-json"])
        .arg(&report)
        .env_remove("TORGHUT_E2E_CONFIG")
        .current_dir(root());
    for (k, v) in common::validator_env() {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run torghut-e2e");
    let json = common::take_json(&report);
    (out.status.code(), json, common::shown(&out))
}

fn stage<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["scenarios"][0]["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["stage"] == name))
        .unwrap_or_else(|| panic!("no {name} stage in {report:#}"))
}

/// Runs each case in turn (the shared job has one fault scope at a time) and checks its report.
async fn check(cases: &'static [Case]) {
    let dir = common::ScratchDir::new("t2e-outputs");
    let scenario = dir.path().join("outputs.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    for case in cases {
        let faults = (case.faults)();
        let started = std::time::Instant::now();
        let (code, report, shown) = {
            let scenario = scenario.clone();
            tokio::task::spawn_blocking(move || run(case, &scenario))
                .await
                .unwrap()
        };
        let outputs = stage(&report, "kafka_outputs");
        eprintln!(
            "{faults}: exit {code:?} in {} ms; Kafka hop {}",
            started.elapsed().as_millis(),
            outputs["observed"]["latency"]
        );
        match case.expect {
            None => {
                assert_eq!(code, Some(0), "{faults}: {shown}");
                let checks = outputs["checks"].as_array().unwrap();
                assert_eq!(checks.len(), 2, "{outputs:#}");
                for c in checks {
                    assert_eq!(c["ok"], true, "{c:#}");
                    // A pass rests on records: the table comparison found every expected row.
                    let detail = c["detail"].as_str().unwrap();
                    assert!(detail.contains(" 0 missing"), "{detail}");
                    assert!(!detail.contains(": 0/"), "{detail}");
                }
                let latency = &outputs["observed"]["latency"]["publish_to_kafka"];
                assert!(latency["count"].as_u64() >= Some(1), "{outputs:#}");
                let heartbeat = stage(&report, "heartbeat");
                assert_eq!(heartbeat["verdict"], "pass", "{heartbeat:#}");
            }
            Some((hop, cause)) => {
                assert_eq!(code, Some(1), "{faults}: {shown}");
                let findings = outputs["findings"].as_array().unwrap();
                assert!(
                    findings.iter().any(|f| f["hop"] == hop
                        && f["severity"] == "failure"
                        && f["cause"].as_str().unwrap().contains(cause)),
                    "{faults}: expected {hop} / {cause:?} in {findings:#?}"
                );
                // The ClickHouse rows are untouched by an output fault.
                let tables = report["scenarios"][0]["tables"].as_object().unwrap();
                for (name, diff) in tables {
                    assert_eq!(diff["missing"], json!([]), "{faults}: {name}");
                }
            }
        }
    }
}

#[tokio::test]
async fn a_healthy_run_passes_the_outputs_and_heartbeat_stages_on_decoded_records() {
    check(std::slice::from_ref(&HEALTHY)).await;
}

#[tokio::test]
async fn each_output_fault_is_caught_at_its_hop() {
    check(FAULTS).await;
}

/// The job-wide heartbeat faults, each on a private stand-in job (its own output topics, the
/// fault on from its start): a stopped heartbeat fails the run at the heartbeat; a degraded one
/// is a warning naming the reason (the job's own freshness rule, `pipeline.md` §6.1), and the
/// run passes on its rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_wide_heartbeat_faults_are_named_on_a_private_job() {
    let dir = common::ScratchDir::new("t2e-heartbeat");
    let scenario = dir.path().join("outputs.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let reason = "zero_current_records_during_regular_session";
    let cases: [(&[&str], Option<i32>, &str, &str); 2] = [
        (&["--heartbeat-stopped"], Some(1), "failure", "heartbeat"),
        (
            &["--heartbeat-degraded", reason],
            Some(0),
            "warning",
            reason,
        ),
    ];
    for (flags, code, severity, cause) in cases {
        let ta = common::refstack::PrivateTa::start(flags).await;
        let report = dir
            .path()
            .join(format!("{}.json", common::unique("report")));
        let mut cmd = ta.command("run", &scenario);
        cmd.arg("--report-json").arg(&report);
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let shown = format!(
            "{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), code, "{flags:?}: {shown}");
        let json: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        let heartbeat = stage(&json, "heartbeat");
        let findings = heartbeat["findings"].as_array().unwrap();
        assert!(
            findings.iter().any(|f| f["hop"] == "heartbeat"
                && f["severity"] == severity
                && f["cause"].as_str().unwrap().contains(cause)),
            "{flags:?}: expected a {severity} naming {cause:?} in {heartbeat:#}"
        );
        // The Kafka outputs themselves are fine: the fault is the heartbeat's alone.
        assert_eq!(
            stage(&json, "kafka_outputs")["verdict"],
            "pass",
            "{flags:?}"
        );
    }
}
