//! The fault matrix (issue 15): every target the validator talks to — Kafka, ClickHouse, the
//! WebDriver, Jangar — closed (nothing listens), black-holed (accepts, never answers) and
//! stopped in the middle of a run. Each cell runs `torghut-e2e run` and must get its verdict by
//! its bound, naming the right hop with the right exit code; a run stopped after publishing must
//! still report what it published.
//!
//! Only private stand-ins are broken: a port nothing listens on, a listener that never answers,
//! a TCP proxy in front of the local stack's ClickHouse or Jangar that freezes (holding every
//! connection open, as a SIGSTOPped server does), a Kafka broker of its own (`scripts/stack up`
//! in a scratch directory) and a chromedriver of its own, both SIGSTOPped. The stack's shared
//! processes are never signalled. All cells run at once; the table of times to verdict is
//! printed (`--nocapture`). `FAULT_CELLS=kafka,webdriver/stopped` runs a subset, `FAULT_KEEP=1`
//! keeps each cell's scratch directory (report, scenario, artifacts).

use crate::common;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// Every probe's and every WebDriver answer's bound in these runs (`connect_timeout_ms`); the
/// acknowledgement timeout is three of them.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Jangar's per-call bound in these runs (`[jangar] request_timeout_ms`, no retries).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Margin on every bound for a loaded machine (process start, report writing).
const SLACK: Duration = Duration::from_secs(8);
/// No cell may take longer than this at all: past it the run is killed and the cell fails.
const HARD_CAP: Duration = Duration::from_secs(150);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Kafka,
    ClickHouse,
    WebDriver,
    Jangar,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Closed,
    BlackHoled,
    Stopped,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Kafka => "kafka",
            Target::ClickHouse => "clickhouse",
            Target::WebDriver => "webdriver",
            Target::Jangar => "jangar",
        }
    }
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Closed => "closed",
            Mode::BlackHoled => "black-holed",
            Mode::Stopped => "stopped",
        }
    }
}

/// What a cell found.
struct Outcome {
    cell: String,
    exit: Option<i32>,
    hops: Vec<String>,
    /// From the fault (spawn, for a target broken from the start) to the exit.
    verdict_after: Duration,
    bound: Duration,
    peak_rss_kb: u64,
    problems: Vec<String>,
    /// The run's last log lines and its findings' causes, for the problem messages.
    stderr: String,
    causes: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_target_closed_black_holed_or_stopped_gets_its_verdict_in_time() {
    let filter = std::env::var("FAULT_CELLS").unwrap_or_default();
    let wanted = |t: Target, m: Mode| {
        filter.is_empty()
            || filter.split(',').any(|f| {
                let cell = format!("{}/{}", t.name(), m.name());
                cell.starts_with(f.trim())
            })
    };
    let mut cells = tokio::task::JoinSet::new();
    for target in [
        Target::Kafka,
        Target::ClickHouse,
        Target::WebDriver,
        Target::Jangar,
    ] {
        for mode in [Mode::Closed, Mode::BlackHoled, Mode::Stopped] {
            if wanted(target, mode) {
                cells.spawn(cell(target, mode));
            }
        }
    }
    let mut outcomes = Vec::new();
    while let Some(done) = cells.join_next().await {
        outcomes.push(done.expect("cell task"));
    }
    assert!(
        !outcomes.is_empty(),
        "FAULT_CELLS={filter:?} selects no cell"
    );
    outcomes.sort_by(|a, b| a.cell.cmp(&b.cell));
    let mut table = format!(
        "{:<24} {:>4}  {:<40} {:>9} {:>7} {:>9}\n",
        "cell", "exit", "hops", "verdict", "bound", "peak RSS"
    );
    for o in &outcomes {
        table.push_str(&format!(
            "{:<24} {:>4}  {:<40} {:>8.1}s {:>6.0}s {:>7} MB\n",
            o.cell,
            o.exit.map_or("-".into(), |c| c.to_string()),
            o.hops.join(","),
            o.verdict_after.as_secs_f64(),
            o.bound.as_secs_f64(),
            o.peak_rss_kb / 1024,
        ));
    }
    eprintln!("{table}");
    let problems: Vec<String> = outcomes
        .iter()
        .flat_map(|o| o.problems.iter().map(move |p| format!("{}: {p}", o.cell)))
        .collect();
    assert!(problems.is_empty(), "{}\n{table}", problems.join("\n\n"));
}

/// One cell: break the target, run the validator, judge its verdict.
async fn cell(target: Target, mode: Mode) -> Outcome {
    let name = format!("{}/{}", target.name(), mode.name());
    let scratch = Scratch::new("t2e-fault");
    let mut run = Run::new(&scratch, &name);
    let mut guard = Guard::default();
    // Broken from the start: preflight fails, nothing is published.
    if mode != Mode::Stopped {
        let addr = match mode {
            Mode::Closed => closed_port(),
            _ => {
                let hole = Proxy::start(None, Some(1)).await;
                let addr = hole.addr;
                guard.proxy = Some(hole);
                addr
            }
        };
        run.point(target, addr);
        let started = Instant::now();
        let child = run.spawn(&run.scenario(&["clickhouse", "api", "browser"], 4, 6));
        let finished = run.finish(child, started).await;
        let bound = CONNECT_TIMEOUT + SLACK;
        let mut o = finished.outcome(name, bound);
        o.expect_exit(3);
        o.expect_preflight_failed(&finished.report, target.name());
        if !finished.report["scenarios"]
            .as_array()
            .is_some_and(|s| s.is_empty())
        {
            o.problem("a scenario ran although preflight failed".into());
        }
        return o;
    }
    match target {
        Target::Kafka => kafka_stopped(name, run, &scratch).await,
        Target::ClickHouse => clickhouse_stopped(name, run, &mut guard).await,
        Target::WebDriver => webdriver_stopped(name, run, &scratch).await,
        Target::Jangar => jangar_stopped(name, run, &mut guard).await,
    }
}

/// A private broker SIGSTOPped once it holds three of the run's messages, in a real-time
/// scenario of 40 s: before the fix the validator awaited acknowledgements only after the whole
/// loop and reported nothing it had published. The broker is continued when the validator says
/// it reads the topic back: the requests the stalled broker had received are then written
/// without an acknowledgement, and the read-back must find them (`landed`). The pause must stay
/// under the broker's session timeout (9 s), or its own controller fences it on waking and it
/// writes nothing: this run's acknowledgement timeout is 6 s.
async fn kafka_stopped(name: String, mut run: Run, scratch: &Scratch) -> Outcome {
    let connect_timeout = Duration::from_secs(2);
    run.connect_timeout(connect_timeout);
    let broker = Arc::new(PrivateKafka::start(scratch.path()).await);
    run.env("TORGHUT_E2E_KAFKA_BOOTSTRAP", &broker.bootstrap());
    run.env("TORGHUT_E2E_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT");
    let started = Instant::now();
    let mut child = run.spawn(&run.scenario(&["clickhouse"], 40, 10));
    let continued = Arc::new(AtomicUsize::new(0));
    let log = continue_on_read_back(&mut child, broker.clone(), continued.clone());
    let bootstrap = broker.bootstrap();
    let cancel = Cancel::default();
    let watching = cancel.clone();
    let landed = tokio::task::spawn_blocking(move || messages_on(&bootstrap, 3, &watching));
    let enough = tokio::select! {
        n = landed => n.unwrap_or(false),
        _ = child.wait() => false,
    };
    cancel.set();
    let stopped = Instant::now();
    broker.signal(libc::SIGSTOP);
    let mut finished = run.finish(child, started).await;
    broker.signal(libc::SIGCONT);
    finished.stderr = log.await.unwrap_or_default();
    let ack_timeout = connect_timeout * 3;
    // An acknowledgement timeout, the purge, the bounded read-back (3 s).
    let bound = ack_timeout + Duration::from_millis(3_500) + SLACK;
    let mut o = finished.outcome(name, bound);
    o.verdict_after = finished.exited.saturating_duration_since(stopped);
    if !enough {
        o.problem("the run never put three messages on the private broker".into());
        return o;
    }
    o.expect_exit(3);
    let s = &finished.report["scenarios"][0];
    o.expect_hop(s, "kafka_publish");
    o.expect_published_facts(s, 3);
    let unconfirmed = s["unconfirmed"].as_array().cloned().unwrap_or_default();
    if unconfirmed.is_empty() {
        o.problem(format!("no unconfirmed message reported: {s}"));
    }
    for u in &unconfirmed {
        if !matches!(u["fate"].as_str(), Some("unknown" | "not_sent" | "landed")) {
            o.problem(format!("unconfirmed message without a fate: {u}"));
        }
    }
    if continued.load(Ordering::SeqCst) == 0 {
        o.problem("the validator never said it reads the topic back".into());
    } else if !unconfirmed.iter().any(|u| u["fate"] == "landed") {
        o.problem(format!(
            "none of the stalled broker's writes was found: {unconfirmed:?}"
        ));
    }
    let sent = s["messages_published"].as_u64().unwrap_or(0);
    let acked = s["messages_acknowledged"].as_u64().unwrap_or(0);
    if sent != acked + unconfirmed.len() as u64 {
        o.problem(format!(
            "{sent} sent ≠ {acked} acknowledged + {} unconfirmed",
            unconfirmed.len()
        ));
    }
    o
}

/// The stack's ClickHouse behind a proxy that freezes once the run's first message is on the
/// topic, in a real-time scenario: the rows are written (the TA job writes past the proxy) but
/// the validator cannot read them.
async fn clickhouse_stopped(name: String, mut run: Run, guard: &mut Guard) -> Outcome {
    let upstream = local(&common::clickhouse("torghut_sim_default").url);
    let proxy = Proxy::start(Some(upstream), None).await;
    run.env(
        "TORGHUT_E2E_CLICKHOUSE_URL",
        &format!("http://{}", proxy.addr),
    );
    let prefix = format!("ZZT2E-{}-", run.run_id);
    let from = shared_trades_end();
    let started = Instant::now();
    let mut child = run.spawn(&run.scenario(&["clickhouse"], 4, 6));
    let cancel = Cancel::default();
    let watching = cancel.clone();
    let seen = tokio::task::spawn_blocking(move || key_on_shared_topic(&prefix, from, &watching));
    let published = tokio::select! {
        s = seen => s.unwrap_or(false),
        _ = child.wait() => false,
    };
    cancel.set();
    proxy.freeze();
    let stopped = Instant::now();
    guard.proxy = Some(proxy);
    let finished = run.finish(child, started).await;
    // The rest of the publishing (≤ 5 s), the deadline (6 s), a query's bound.
    let bound = Duration::from_secs(5 + 6) + 2 * CONNECT_TIMEOUT + SLACK;
    let mut o = finished.outcome(name, bound);
    o.verdict_after = finished.exited.saturating_duration_since(stopped);
    if !published {
        o.problem("the run's first message never showed on the topic".into());
        return o;
    }
    o.expect_exit(3);
    let s = &finished.report["scenarios"][0];
    o.expect_hop(s, "clickhouse_sink");
    o.expect_published_facts(s, 1);
    if s["messages_published"] != s["messages_acknowledged"] {
        o.problem(format!(
            "Kafka was up, yet not every message was acknowledged: {s}"
        ));
    }
    o
}

/// A private chromedriver SIGSTOPped as soon as the browser session is open and in use: before
/// the fix `run` waited for it for ever.
async fn webdriver_stopped(name: String, mut run: Run, scratch: &Scratch) -> Outcome {
    let driver = PrivateChromedriver::start(scratch.path()).await;
    run.env("TORGHUT_E2E_WEBDRIVER_URL", &driver.url);
    let started = Instant::now();
    let mut child = run.spawn(&run.scenario(&["clickhouse", "browser"], 4, 15));
    let appeared = tokio::select! {
        () = driver.session_opened() => true,
        _ = child.wait() => false,
    };
    driver.signal(libc::SIGSTOP);
    let stopped = Instant::now();
    let finished = run.finish(child, started).await;
    driver.signal(libc::SIGCONT);
    // One WebDriver command's bound, then the rest at once. Which command hangs depends on
    // where the stop lands: a script (10 s) or a navigation (the page-load timeout, 30 s here),
    // plus an answer. The report names the bound it applied; it must be one of those.
    let longest = Duration::from_secs(30) + CONNECT_TIMEOUT;
    let mut o = finished.outcome(name, longest + SLACK);
    o.verdict_after = finished.exited.saturating_duration_since(stopped);
    match o.causes.iter().find_map(|c| applied_bound(c)) {
        Some(applied) if applied <= longest => o.bound = applied + SLACK,
        other => o.problem(format!(
            "no WebDriver bound (≤ {longest:?}) named: {other:?}"
        )),
    }
    if !appeared {
        o.problem("the run never opened a browser on the private chromedriver".into());
        return o;
    }
    o.expect_exit(3);
    let s = &finished.report["scenarios"][0];
    o.expect_hop(s, "charts_page");
    let browser = s["stages"]
        .as_array()
        .and_then(|st| st.iter().find(|x| x["stage"] == "browser"))
        .cloned()
        .unwrap_or(Value::Null);
    if browser["verdict"] != "error" {
        o.problem(format!(
            "browser stage verdict {} (want error)",
            browser["verdict"]
        ));
    }
    if !browser.to_string().contains("did not answer") {
        o.problem(format!(
            "the browser stage does not say the WebDriver hung: {browser}"
        ));
    }
    o
}

/// The stack's Jangar behind a proxy that lets preflight's `/health` through and black-holes
/// every later connection: the API stage's calls hang.
async fn jangar_stopped(name: String, mut run: Run, guard: &mut Guard) -> Outcome {
    let proxy = Proxy::start(Some(local(&common::jangar_url())), Some(2)).await;
    run.env("TORGHUT_E2E_JANGAR_URL", &format!("http://{}", proxy.addr));
    let started = Instant::now();
    let child = run.spawn(&run.scenario(&["clickhouse", "api"], 4, 15));
    let state = proxy.state.clone();
    guard.proxy = Some(proxy);
    let finished = run.finish(child, started).await;
    // Each of the three endpoints waits once (later calls to a silent endpoint are skipped).
    let bound = 3 * REQUEST_TIMEOUT + SLACK;
    let mut o = finished.outcome(name, bound);
    match state.frozen_at() {
        Some(at) => o.verdict_after = finished.exited.saturating_duration_since(at),
        None => {
            o.problem("the API stage never reached Jangar".into());
            return o;
        }
    }
    o.expect_exit(1);
    let s = &finished.report["scenarios"][0];
    o.expect_hop(s, "jangar_api");
    if !s.to_string().contains("no answer within") {
        o.problem("the API stage does not say Jangar gave no answer".into());
    }
    o
}

// ---------------------------------------------------------------------------------------------
// The validator run of one cell.

struct Run {
    dir: PathBuf,
    run_id: String,
    env: Vec<(String, String)>,
    report: PathBuf,
}

/// A finished (or killed) run.
struct Finished {
    exit: Option<i32>,
    report: Value,
    exited: Instant,
    since_spawn: Duration,
    peak_rss_kb: u64,
    stderr: String,
}

impl Run {
    fn new(scratch: &Scratch, cell: &str) -> Run {
        let dir = scratch.path().to_path_buf();
        let config = dir.join("config.toml");
        write_config(&config, CONNECT_TIMEOUT);
        let mut env = common::validator_env();
        env.push(("TORGHUT_E2E_CONFIG".into(), config.display().to_string()));
        env.push((
            "TORGHUT_E2E_ARTIFACTS_DIR".into(),
            dir.join("artifacts").display().to_string(),
        ));
        env.push(("RUST_LOG".into(), "info".into()));
        let run_id = torghut_e2e::domain::symbols::RunId::generate().to_string();
        eprintln!("{cell}: run {run_id}, scratch {}", dir.display());
        Run {
            report: dir.join("report.json"),
            dir,
            run_id,
            env,
        }
    }

    /// Another `connect_timeout_ms` (and so acknowledgement timeout) for this run.
    fn connect_timeout(&self, timeout: Duration) {
        write_config(&self.dir.join("config.toml"), timeout);
    }

    fn env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    /// Points the validator's setting for `target` at `addr`.
    fn point(&mut self, target: Target, addr: SocketAddr) {
        match target {
            Target::Kafka => {
                self.env("TORGHUT_E2E_KAFKA_BOOTSTRAP", &addr.to_string());
                self.env("TORGHUT_E2E_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT");
            }
            Target::ClickHouse => self.env("TORGHUT_E2E_CLICKHOUSE_URL", &format!("http://{addr}")),
            Target::WebDriver => self.env("TORGHUT_E2E_WEBDRIVER_URL", &format!("http://{addr}")),
            Target::Jangar => self.env("TORGHUT_E2E_JANGAR_URL", &format!("http://{addr}")),
        }
    }

    /// A real-time scenario (the lane is shared with the other cells): two trades a second for
    /// `seconds`, closed by a trade.
    fn scenario(&self, stages: &[&str], seconds: u32, deadline_secs: u32) -> PathBuf {
        let path = self.dir.join("scenario.toml");
        let stages: Vec<String> = stages.iter().map(|s| format!("{s:?}")).collect();
        std::fs::write(
            &path,
            format!(
                "name = \"fault-cell\"\nsymbols = [\"F\"]\npacing = \"realtime\"\n\
                 deadline_secs = {deadline_secs}\nstages = [{}]\n\
                 [[generators]]\nkind = \"ramp\"\nsymbol = \"F\"\nseconds = {seconds}\n\
                 per_second = 2\nprice = 50.0\nstep = 0.05\nsize = 3.0\n",
                stages.join(", ")
            ),
        )
        .unwrap();
        path
    }

    fn spawn(&self, scenario: &Path) -> Child {
        Command::new(env!("CARGO_BIN_EXE_torghut-e2e"))
            .arg("run")
            .arg(scenario)
            .arg("--run-id")
            .arg(&self.run_id)
            .arg("--report-json")
            .arg(&self.report)
            .current_dir(common_root())
            .env_remove("TORGHUT_E2E_PUSHGATEWAY")
            .envs(self.env.iter().cloned())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn torghut-e2e")
    }

    /// Waits for the exit (killing the run past the hard cap), sampling its peak memory.
    async fn finish(&self, mut child: Child, spawned: Instant) -> Finished {
        let pid = child.id();
        let stderr = child.stderr.take();
        let reader = tokio::spawn(async move {
            let mut text = String::new();
            if let Some(mut s) = stderr {
                use tokio::io::AsyncReadExt;
                let _ = s.read_to_string(&mut text).await;
            }
            text
        });
        let mut peak_rss_kb = 0;
        let deadline = spawned + HARD_CAP;
        let exit = loop {
            if let Some(pid) = pid {
                peak_rss_kb = peak_rss_kb.max(vm_hwm_kb(pid));
            }
            tokio::select! {
                status = child.wait() => break status.ok().and_then(|s| s.code()),
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            if Instant::now() >= deadline {
                let _ = child.kill().await;
                break None;
            }
        };
        let exited = Instant::now();
        let stderr = reader.await.unwrap_or_default();
        let report = std::fs::read(&self.report)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        Finished {
            exit,
            report,
            exited,
            since_spawn: exited - spawned,
            peak_rss_kb,
            stderr,
        }
    }
}

impl Finished {
    fn outcome(&self, cell: String, bound: Duration) -> Outcome {
        let mut hops = Vec::new();
        let mut causes = Vec::new();
        for s in self.report["scenarios"].as_array().into_iter().flatten() {
            let stage_findings = s["stages"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|st| st["findings"].as_array().into_iter().flatten());
            for f in s["findings"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(stage_findings)
            {
                if let Some(h) = f["hop"].as_str() {
                    if !hops.iter().any(|x| x == h) {
                        hops.push(h.to_string());
                    }
                }
                causes.push(f["cause"].as_str().unwrap_or_default().to_string());
            }
        }
        for p in self.report["preflight"].as_array().into_iter().flatten() {
            if p["ok"] == false {
                let component = p["component"].as_str().unwrap_or("?");
                eprintln!("{cell}: preflight {component}: {}", p["detail"]);
                hops.push(format!("preflight:{component}"));
            }
        }
        let mut o = Outcome {
            cell,
            exit: self.exit,
            hops,
            verdict_after: self.since_spawn,
            bound,
            peak_rss_kb: self.peak_rss_kb,
            problems: Vec::new(),
            stderr: tail(&self.stderr),
            causes,
        };
        if self.exit.is_none() {
            o.problem(format!("no verdict within {HARD_CAP:?}: killed"));
        }
        if self.report.is_null() {
            o.problem("no JSON report".into());
        }
        o
    }
}

impl Outcome {
    fn problem(&mut self, p: String) {
        self.problems.push(p);
    }

    fn expect_exit(&mut self, code: i32) {
        if self.exit != Some(code) {
            self.problem(format!(
                "exit {:?}, want {code}\n{}",
                self.exit, self.stderr
            ));
        }
        if self.verdict_after > self.bound {
            self.problem(format!(
                "verdict after {:.1}s, over its bound of {:.0}s; findings: {}",
                self.verdict_after.as_secs_f64(),
                self.bound.as_secs_f64(),
                self.causes.join(" | ")
            ));
        }
    }

    fn expect_preflight_failed(&mut self, report: &Value, component: &str) {
        let line = report["preflight"]
            .as_array()
            .and_then(|p| p.iter().find(|l| l["component"] == component))
            .cloned()
            .unwrap_or(Value::Null);
        if line["ok"] != false {
            self.problem(format!("preflight line for {component}: {line}"));
        }
    }

    fn expect_hop(&mut self, scenario: &Value, hop: &str) {
        if !self.hops.iter().any(|h| h == hop) {
            let findings: Vec<String> = std::iter::once(&scenario["findings"])
                .chain(
                    scenario["stages"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|st| &st["findings"]),
                )
                .flat_map(|f| f.as_array().cloned().unwrap_or_default())
                .map(|f| f.to_string())
                .collect();
            self.problem(format!(
                "no finding at {hop}; error {}; findings:\n{}",
                scenario["error"],
                findings.join("\n")
            ));
        }
    }

    /// The scenario's report still names its symbols and every delivery, however it ended.
    fn expect_published_facts(&mut self, s: &Value, at_least: u64) {
        if s["symbols"].as_object().is_none_or(|m| m.is_empty()) {
            self.problem("the report lost the run's symbols".into());
        }
        let acked = s["messages_acknowledged"].as_u64().unwrap_or(0);
        let deliveries = s["deliveries"].as_array().map_or(0, |d| d.len()) as u64;
        if acked < at_least || deliveries != acked {
            self.problem(format!(
                "{acked} acknowledged, {deliveries} deliveries (want ≥ {at_least}, equal)"
            ));
        }
        if s["messages_published"].as_u64().unwrap_or(0) < acked {
            self.problem(format!(
                "messages_published {} < acknowledged",
                s["messages_published"]
            ));
        }
    }
}

fn write_config(path: &Path, connect_timeout: Duration) {
    std::fs::write(
        path,
        format!(
            "connect_timeout_ms = {}\n[jangar]\nrequest_timeout_ms = {}\nretries = 0\n",
            connect_timeout.as_millis(),
            REQUEST_TIMEOUT.as_millis()
        ),
    )
    .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Faults.

/// A loopback port nothing listens on (tcpmux: a free port picked here could be taken by
/// another cell's private server meanwhile).
fn closed_port() -> SocketAddr {
    "127.0.0.1:1".parse().unwrap()
}

/// `n` distinct ports free now.
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

fn local(url: &str) -> SocketAddr {
    let u = url::Url::parse(url).unwrap();
    format!("127.0.0.1:{}", u.port().unwrap()).parse().unwrap()
}

/// A TCP proxy that can freeze: from then on it accepts connections and holds them open
/// without a byte in either direction (new ones and those in flight), as a stopped server does.
/// Without an upstream it is a black hole from the first connection.
struct Proxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

struct ProxyState {
    frozen: watch::Sender<bool>,
    frozen_at: Mutex<Option<Instant>>,
    connections: AtomicUsize,
    /// Freeze when this connection (1-based) arrives.
    freeze_from: Option<usize>,
}

impl ProxyState {
    fn freeze(&self) {
        let mut at = self.frozen_at.lock().unwrap();
        if at.is_none() {
            *at = Some(Instant::now());
        }
        self.frozen.send_replace(true);
    }

    fn frozen_at(&self) -> Option<Instant> {
        *self.frozen_at.lock().unwrap()
    }
}

impl Proxy {
    async fn start(upstream: Option<SocketAddr>, freeze_from: Option<usize>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ProxyState {
            frozen: watch::channel(false).0,
            frozen_at: Mutex::new(None),
            connections: AtomicUsize::new(0),
            freeze_from,
        });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let n = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
                if shared.freeze_from.is_some_and(|k| n >= k) {
                    shared.freeze();
                }
                connections.spawn(relay(client, upstream, shared.frozen.subscribe()));
            }
        });
        Proxy { addr, state, task }
    }

    fn freeze(&self) {
        self.state.freeze();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways until the proxy freezes; then holds both sockets, silent, for ever.
async fn relay(
    mut client: TcpStream,
    upstream: Option<SocketAddr>,
    mut frozen: watch::Receiver<bool>,
) {
    let frozen_now = *frozen.borrow_and_update();
    let Some(up) = upstream.filter(|_| !frozen_now) else {
        std::future::pending::<()>().await;
        return;
    };
    let Ok(mut server) = TcpStream::connect(up).await else {
        let _ = client.shutdown().await;
        return;
    };
    let freeze = async {
        let _ = frozen.wait_for(|f| *f).await;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        () = freeze => std::future::pending::<()>().await,
    }
}

/// Whatever a cell holds until it ends.
#[derive(Default)]
struct Guard {
    proxy: Option<Proxy>,
}

// ---------------------------------------------------------------------------------------------
// Private processes: a Kafka broker and a chromedriver, each leading its own process group.

struct PrivateKafka {
    dir: PathBuf,
    pid: i32,
    plain: u16,
}

impl PrivateKafka {
    /// `scripts/stack up` with only Kafka, in a scratch STACK_DIR on free ports: formatted, the
    /// lane's topics created.
    async fn start(scratch: &Path) -> PrivateKafka {
        let dir = scratch.join("kafka-stack");
        let ports = free_ports(3);
        let out = Command::new("scripts/stack")
            .arg("up")
            .current_dir(common_root())
            .env("STACK_DIR", &dir)
            .env("STACK_BACKEND", "native")
            .env("STACK_COMPONENTS", "kafka")
            .env("STACK_KAFKA_PORT", ports[0].to_string())
            .env("STACK_KAFKA_SASL_PORT", ports[1].to_string())
            .env("STACK_KAFKA_CONTROLLER_PORT", ports[2].to_string())
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "private Kafka: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pidfile = std::fs::read_to_string(dir.join("run/kafka.pid")).unwrap();
        let pid = pidfile.split(' ').next().unwrap().trim().parse().unwrap();
        PrivateKafka {
            dir,
            pid,
            plain: ports[0],
        }
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.plain)
    }

    fn signal(&self, signal: i32) {
        unsafe { libc::kill(self.pid, signal) };
    }
}

impl Drop for PrivateKafka {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.pid, libc::SIGCONT);
            libc::killpg(self.pid, libc::SIGKILL);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct PrivateChromedriver {
    child: std::process::Child,
    pid: i32,
    url: String,
    log: PathBuf,
}

impl PrivateChromedriver {
    async fn start(scratch: &Path) -> PrivateChromedriver {
        let port = free_ports(1)[0];
        let log = scratch.join("chromedriver.log");
        let child = std::process::Command::new(
            torghut_e2e::adapter::webdriver::chromedriver_program().expect("chromedriver"),
        )
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while torghut_e2e::adapter::webdriver::probe(&url, Duration::from_secs(1))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "private chromedriver not ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        PrivateChromedriver {
            pid: child.id() as i32,
            child,
            url,
            log,
        }
    }

    /// Waits until the client has its session: a command after the new-session one arrived
    /// (the log line of the new-session answer comes just before the answer is sent).
    async fn session_opened(&self) {
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.matches("] COMMAND ").count() >= 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn signal(&self, signal: i32) {
        unsafe { libc::kill(self.pid, signal) };
    }
}

impl Drop for PrivateChromedriver {
    fn drop(&mut self) {
        // The chromedriver and the browsers it started: one process group.
        unsafe {
            libc::kill(self.pid, libc::SIGCONT);
            libc::killpg(self.pid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Events the cells wait for.

/// Reads the run's log as it comes; continues the stopped broker when the validator starts
/// reading the topic back (counted in `continued`). Resolves to the whole log.
fn continue_on_read_back(
    child: &mut Child,
    broker: Arc<PrivateKafka>,
    continued: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<String> {
    use tokio::io::AsyncBufReadExt;
    let stderr = child.stderr.take().expect("piped stderr");
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let mut log = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("reading the topic back") {
                broker.signal(libc::SIGCONT);
                continued.fetch_add(1, Ordering::SeqCst);
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    })
}

/// Tells a blocking wait to give up (its cell has its answer another way).
#[derive(Clone, Default)]
struct Cancel(Arc<std::sync::atomic::AtomicBool>);

impl Cancel {
    fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Whether the trades topic of the broker at `bootstrap` comes to hold `n` messages.
fn messages_on(bootstrap: &str, n: i64, cancel: &Cancel) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let target = torghut_e2e::config::KafkaTarget {
        bootstrap: bootstrap.into(),
        ..common::kafka_plain()
    };
    let consumer: BaseConsumer = torghut_e2e::adapter::kafka::client_config(&target)
        .set("group.id", "t2e-fault-watch")
        .create()
        .unwrap();
    while !cancel.is_set() {
        let total: i64 = (0..3)
            .filter_map(|p| {
                consumer
                    .fetch_watermarks(&target.trades_topic, p, Duration::from_secs(1))
                    .ok()
            })
            .map(|(low, high)| high - low)
            .sum();
        if total >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The end offsets of the stack's trades topic now, to watch it from.
fn shared_trades_end() -> Vec<(i32, i64)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let target = common::kafka_plain();
    let consumer: BaseConsumer = torghut_e2e::adapter::kafka::client_config(&target)
        .set("group.id", "t2e-fault-watch")
        .create()
        .unwrap();
    (0..3)
        .map(|p| {
            let (_, high) = consumer
                .fetch_watermarks(&target.trades_topic, p, Duration::from_secs(10))
                .unwrap();
            (p, high)
        })
        .collect()
}

/// Whether a message keyed `prefix…` arrives on the stack's trades topic after `from`.
fn key_on_shared_topic(prefix: &str, from: Vec<(i32, i64)>, cancel: &Cancel) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let target = common::kafka_plain();
    let consumer: BaseConsumer = torghut_e2e::adapter::kafka::client_config(&target)
        .set("group.id", "t2e-fault-watch")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for (p, o) in from {
        tpl.add_partition_offset(&target.trades_topic, p, rdkafka::Offset::Offset(o))
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    while !cancel.is_set() {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            if m.key().is_some_and(|k| k.starts_with(prefix.as_bytes())) {
                return true;
            }
        }
    }
    false
}

/// The bound a "did not answer X within 13s" cause names.
fn applied_bound(cause: &str) -> Option<Duration> {
    let (_, after) = cause.split_once(" within ")?;
    let secs: f64 = after.split('s').next()?.parse().ok()?;
    Some(Duration::from_secs_f64(secs))
}

fn vm_hwm_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn common_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(prefix: &str) -> Scratch {
        let dir = std::env::temp_dir().join(common::unique(prefix));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // FAULT_KEEP=1 keeps each cell's report, logs and artifacts for a look.
        if std::env::var_os("FAULT_KEEP").is_none() {
            std::fs::remove_dir_all(&self.0).ok();
        }
    }
}
