//! `torghut-e2e canary` against the local stack: cycles with fresh run ids and a history, and a
//! clean stop on SIGTERM (the cycle finishes within the grace or is aborted). Compressed cycles
//! run on a lane of their own (a private TA job), real-time ones on the shared simulation lane.

use crate::common;
use crate::common::refstack::{self, PrivateTa};

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use torghut_e2e::cli::canary::history::{read_history, HistoryEntry};

struct Canary {
    child: Child,
    lines: mpsc::Receiver<String>,
    history: PathBuf,
    log: Vec<String>,
}

impl Drop for Canary {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Canary {
    /// `canary <scenario> <args>` on `lane`'s topics and database, or on the shared lane.
    fn start(lane: Option<&PrivateTa>, scenario: &std::path::Path, args: &[&str]) -> Canary {
        let dir = std::env::temp_dir().join(common::unique("t2e-canary"));
        let history = dir.join("history.jsonl");
        let mut cmd = match lane {
            Some(ta) => ta.command("canary", scenario),
            None => {
                let mut cmd = refstack::validator("canary");
                cmd.arg(scenario);
                cmd
            }
        };
        let mut child = cmd
            .args(args)
            .arg("--history")
            .arg(&history)
            .env("TORGHUT_E2E_ARTIFACTS_DIR", dir.join("artifacts"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Canary {
            child,
            lines,
            history,
            log: Vec::new(),
        }
    }

    /// Waits for a log line containing `text`.
    fn wait_for(&mut self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(text);
                    self.log.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no {text:?} within {within:?}:\n{}", self.log.join("\n"));
    }

    fn sigterm(&self) {
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill -TERM");
    }

    /// Waits for the exit; the exit code and how long it took.
    fn exit(&mut self, within: Duration) -> (Option<i32>, Duration) {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let rest: Vec<String> = self.lines.try_iter().collect();
        panic!(
            "still running after {within:?}:\n{}\n{}",
            self.log.join("\n"),
            rest.join("\n")
        );
    }

    fn history(&self) -> Vec<HistoryEntry> {
        read_history(&self.history)
    }
}

/// A scenario paced in real time over `seconds`: a cycle long enough to be interrupted.
fn realtime_scenario(seconds: u32) -> PathBuf {
    common::toml_file(
        "t2e-rt",
        format!(
            "name = \"canary-slow\"\nsymbols = [\"S\"]\npacing = \"realtime\"\ndeadline_secs = 10\n\
             [[generators]]\nkind = \"ramp\"\nsymbol = \"S\"\nseconds = {seconds}\nper_second = 2\n\
             price = 20.0\nstep = 0.01\nsize = 1.0\n"
        ),
    )
}

/// A lane of its own for compressed cycles, read from before the first cycle publishes.
fn private_lane() -> PrivateTa {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ta = rt.block_on(PrivateTa::start(&[]));
    rt.block_on(ta.wait_until_reading());
    ta
}

#[test]
fn three_cycles_each_a_fresh_run_then_exit() {
    let scenario = refstack::short_scenario("canary-probe");
    let lane = private_lane();
    let mut canary = Canary::start(
        Some(&lane),
        &scenario,
        &["--interval", "1s", "--max-runs", "3"],
    );
    let (code, _) = canary.exit(Duration::from_secs(60));
    let history = canary.history();
    let shown = format!("{history:#?}\n{}", canary.log.join("\n"));
    assert_eq!(code, Some(0), "{shown}");
    assert_eq!(history.len(), 3, "{shown}");
    let cycles: Vec<u64> = history.iter().map(|e| e.cycle).collect();
    assert_eq!(cycles, vec![1, 2, 3]);
    assert!(history.iter().all(|e| e.verdict == "pass"), "{shown}");
    let mut ids: Vec<&str> = history.iter().map(|e| e.run_id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "a fresh run id per cycle: {ids:?}");
    for e in &history {
        let report = e.report.as_deref().expect("each cycle keeps its report");
        assert!(std::path::Path::new(report).exists(), "{report}");
    }
    // Start to start at least the interval apart.
    let gap = history[1].started_at - history[0].started_at;
    assert!(gap >= time::Duration::seconds(1), "{gap}");
}

#[test]
fn sigterm_during_a_cycle_aborts_it_within_the_grace() {
    // Thirty seconds of real-time trades: a cycle that ignored the grace would run on for most
    // of them, far past the bound below.
    let scenario = realtime_scenario(30);
    let mut canary = Canary::start(None, &scenario, &["--interval", "1m", "--stop-grace", "1s"]);
    canary.wait_for("canary cycle started", Duration::from_secs(20));
    // Preflight passed and the scenario is publishing: the signal lands mid-cycle. (The line's
    // fields may carry colour codes: its message is matched, "running".)
    canary.wait_for(" running ", Duration::from_secs(20));
    canary.sigterm();
    let (code, took) = canary.exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{}", canary.log.join("\n"));
    assert!(took < Duration::from_secs(10), "stopped in {took:?}");
    let history = canary.history();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].verdict, "aborted");
}

#[test]
fn sigterm_lets_a_short_cycle_finish_then_stops() {
    let scenario = refstack::short_scenario("canary-finish");
    let lane = private_lane();
    let mut canary = Canary::start(
        Some(&lane),
        &scenario,
        &["--interval", "1m", "--stop-grace", "30s"],
    );
    canary.wait_for("canary cycle started", Duration::from_secs(20));
    canary.sigterm();
    let (code, took) = canary.exit(Duration::from_secs(30));
    let history = canary.history();
    assert_eq!(code, Some(0), "{history:?}\n{}", canary.log.join("\n"));
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(
        history[0].verdict, "pass",
        "the cycle finished: {history:?}"
    );
}
