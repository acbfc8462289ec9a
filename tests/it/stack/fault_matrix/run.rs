//! The validator run of one cell, and what it found.

use super::*;

/// What a cell found.
pub(super) struct Outcome {
    pub(super) cell: String,
    pub(super) exit: Option<i32>,
    pub(super) hops: Vec<String>,
    /// From the fault (spawn, for a target broken from the start) to the exit.
    pub(super) verdict_after: Duration,
    pub(super) bound: Duration,
    pub(super) peak_rss_kb: u64,
    pub(super) problems: Vec<String>,
    /// The run's last log lines and its findings' causes, for the problem messages.
    pub(super) stderr: String,
    pub(super) causes: Vec<String>,
}

pub(super) struct Run {
    pub(super) dir: PathBuf,
    pub(super) run_id: String,
    pub(super) env: Vec<(String, String)>,
    pub(super) report: PathBuf,
}

/// A finished (or killed) run.
pub(super) struct Finished {
    pub(super) exit: Option<i32>,
    pub(super) report: Value,
    pub(super) exited: Instant,
    pub(super) since_spawn: Duration,
    pub(super) peak_rss_kb: u64,
    pub(super) stderr: String,
}

impl Run {
    pub(super) fn new(scratch: &common::ScratchDir, cell: &str) -> Run {
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
    pub(super) fn connect_timeout(&self, timeout: Duration) {
        write_config(&self.dir.join("config.toml"), timeout);
    }

    pub(super) fn env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    /// Points the validator's setting for `target` at `addr`.
    pub(super) fn point(&mut self, target: Target, addr: SocketAddr) {
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
    pub(super) fn scenario(&self, stages: &[&str], seconds: u32, deadline_secs: u32) -> PathBuf {
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

    pub(super) fn spawn(&self, scenario: &Path) -> Child {
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
    pub(super) async fn finish(&self, mut child: Child, spawned: Instant) -> Finished {
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
        let report = common::read_json(&self.report);
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
    pub(super) fn outcome(&self, cell: String, bound: Duration) -> Outcome {
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
    pub(super) fn problem(&mut self, p: String) {
        self.problems.push(p);
    }

    pub(super) fn expect_exit(&mut self, code: i32) {
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

    pub(super) fn expect_preflight_failed(&mut self, report: &Value, component: &str) {
        let line = report["preflight"]
            .as_array()
            .and_then(|p| p.iter().find(|l| l["component"] == component))
            .cloned()
            .unwrap_or(Value::Null);
        if line["ok"] != false {
            self.problem(format!("preflight line for {component}: {line}"));
        }
    }

    pub(super) fn expect_hop(&mut self, scenario: &Value, hop: &str) {
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
    pub(super) fn expect_published_facts(&mut self, s: &Value, at_least: u64) {
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

pub(super) fn write_config(path: &Path, connect_timeout: Duration) {
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

/// The bound a "did not answer X within 13s" cause names.
pub(super) fn applied_bound(cause: &str) -> Option<Duration> {
    let (_, after) = cause.split_once(" within ")?;
    let secs: f64 = after.split('s').next()?.parse().ok()?;
    Some(Duration::from_secs_f64(secs))
}

pub(super) fn vm_hwm_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

pub(super) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
