//! A stop signal in the middle of the browser stage (issue 15 items 11 and 4): `run` and
//! `canary` get SIGTERM (as Kubernetes or a CI timeout sends it, to the validator's pid only)
//! while the chromedriver the validator started has its browser open. Every process the
//! validator started must die with it, and what the run had published must stay on record: in
//! `run`'s report, in the canary's history line.

use crate::common;
use crate::common::refstack;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A real-time scenario with the browser stage, the validator starting its own chromedriver.
fn browser_scenario(dir: &Path) -> PathBuf {
    let path = dir.join("scenario.toml");
    std::fs::write(
        &path,
        "name = \"stop-probe\"\nsymbols = [\"S\"]\npacing = \"realtime\"\ndeadline_secs = 20\n\
         stages = [\"clickhouse\", \"browser\"]\n\
         [[generators]]\nkind = \"ramp\"\nsymbol = \"S\"\nseconds = 4\nper_second = 2\n\
         price = 20.0\nstep = 0.01\nsize = 1.0\n",
    )
    .unwrap();
    path
}

/// The validator for `verb`, with no WebDriver URL: it starts chromedriver itself.
fn start(verb: &str, dir: &Path, args: &[&str]) -> Child {
    refstack::validator(verb)
        .arg(browser_scenario(dir))
        .args(args)
        .env_remove("TORGHUT_E2E_WEBDRIVER_URL")
        .env("TORGHUT_E2E_ARTIFACTS_DIR", dir.join("artifacts"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A process, told apart from a later one with the same pid by its start time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Proc {
    pid: u32,
    start: u64,
    name: String,
}

/// `(ppid, start time, state)` of a live process.
fn stat(pid: u32) -> Option<(u32, u64, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = text.rsplit_once(") ")?.1.split(' ').collect();
    let state = fields[0].chars().next()?;
    Some((fields[1].parse().ok()?, fields[19].parse().ok()?, state))
}

/// Every live descendant of `root`.
fn descendants(root: u32) -> BTreeSet<Proc> {
    let all: Vec<(u32, u32, u64)> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| stat(pid).map(|(ppid, start, _)| (pid, ppid, start)))
        .collect();
    let mut found = BTreeSet::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid, start) in &all {
            if ppid == parent {
                let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                found.insert(Proc { pid, start, name });
                frontier.push(pid);
            }
        }
    }
    found
}

fn alive(p: &Proc) -> bool {
    stat(p.pid).is_some_and(|(_, start, state)| start == p.start && state != 'Z')
}

/// Waits (bounded) until the validator has a browser with its helpers running under its
/// chromedriver (zygotes, GPU and network services, a renderer: five processes at least); the
/// processes it started by then.
fn wait_for_browser(child: &mut Child) -> BTreeSet<Proc> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let procs = descendants(child.id());
        let browsers = procs
            .iter()
            .filter(|p| p.name.starts_with("chrom") && p.name != "chromedriver")
            .count();
        if browsers >= 5 {
            return procs;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the validator exited ({status}) before its browser started");
        }
        assert!(Instant::now() < deadline, "no browser within 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigterm(child: &Child) -> Instant {
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    Instant::now()
}

/// The exit code (None: killed by a signal), within `within` of `sent` (the SIGTERM).
fn exit(child: &mut Child, sent: Instant, within: Duration) -> Option<i32> {
    let deadline = sent + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            eprintln!("exited {:?} after SIGTERM ({status})", sent.elapsed());
            return status.code();
        }
        assert!(
            Instant::now() < deadline,
            "still running {within:?} after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every process the validator started is gone shortly after it (no sleep: polled, bounded).
fn assert_all_gone(started: &BTreeSet<Proc>) {
    let from = Instant::now();
    let deadline = from + Duration::from_secs(10);
    loop {
        let left: Vec<&Proc> = started.iter().filter(|p| alive(p)).collect();
        if left.is_empty() {
            eprintln!(
                "all {} processes it started gone {:?} after its exit",
                started.len(),
                from.elapsed()
            );
            return;
        }
        if Instant::now() >= deadline {
            for p in &left {
                // Not ours to leave running: clean up, then fail.
                unsafe { libc::kill(p.pid as libc::pid_t, libc::SIGKILL) };
            }
            panic!(
                "{} of {} processes the validator started outlived it: {left:?}",
                left.len(),
                started.len()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_to_run_kills_its_chromedriver_and_browsers_and_keeps_the_report() {
    let dir = common::ScratchDir::new("t2e-stop");
    let report = dir.path().join("report.json");
    let mut child = start(
        "run",
        dir.path(),
        &["--report-json", report.to_str().unwrap()],
    );
    let started = wait_for_browser(&mut child);
    let sent = sigterm(&child);
    let code = exit(&mut child, sent, Duration::from_secs(20));
    assert_all_gone(&started);
    assert_eq!(code, Some(143), "128 + SIGTERM");
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["verdict"], "error");
    assert_eq!(report["exit_code"], 143);
    let s = &report["scenarios"][0];
    assert_eq!(s["verdict"], "error", "{s}");
    assert!(s["error"].as_str().unwrap().contains("SIGTERM"), "{s}");
    assert!(
        s["symbols"]["S"].as_str().unwrap().starts_with("ZZT2E-"),
        "{s}"
    );
    let acked = s["messages_acknowledged"].as_u64().unwrap();
    assert!(
        acked >= 8,
        "the browser stage comes after every message: {s}"
    );
    assert_eq!(s["deliveries"].as_array().unwrap().len() as u64, acked);
}

#[test]
fn sigterm_to_canary_kills_its_chromedriver_and_browsers_and_keeps_the_history() {
    let dir = common::ScratchDir::new("t2e-stop");
    let history = dir.path().join("history.jsonl");
    let mut child = start(
        "canary",
        dir.path(),
        &["--stop-grace", "1s", "--history", history.to_str().unwrap()],
    );
    let started = wait_for_browser(&mut child);
    let sent = sigterm(&child);
    let code = exit(&mut child, sent, Duration::from_secs(20));
    assert_all_gone(&started);
    assert_eq!(code, Some(0), "no cycle completed");
    // The history as a file: JSON lines.
    let lines: Vec<Value> = std::fs::read_to_string(&history)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["verdict"], "aborted", "{line}");
    let symbols = line["symbols"].as_array().cloned().unwrap_or_default();
    assert_eq!(symbols.len(), 1, "{line}");
    assert!(symbols[0].as_str().unwrap().starts_with("ZZT2E-"), "{line}");
    assert!(line["messages_published"].as_u64() >= Some(8), "{line}");
    assert_eq!(
        line["messages_acknowledged"], line["messages_published"],
        "{line}"
    );
    let report = line["report"].as_str().expect("the aborted cycle's report");
    assert!(Path::new(report).exists(), "{report}");
}
