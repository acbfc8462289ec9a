//! The audit tests' own stand-in TA jobs and traffic: scratch topics, a `refstack ta` process
//! per stand-in (its own group and database, fault switches), and `refstack traffic` onto the
//! topics.

use crate::common;
use crate::common::refstack;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use serde_json::Value;
use torghut_e2e::adapter::kafka;

/// How long a stand-in may take to process a published stream.
const PROCESS_DEADLINE: Duration = Duration::from_secs(240);

/// Scratch trades and quotes topics (3 partitions, like production's).
pub(super) struct Topics {
    pub(super) trades: String,
    pub(super) quotes: String,
}

impl Topics {
    pub(super) async fn create() -> Self {
        let trades = common::unique("t2e.audit");
        let quotes = format!("{trades}.quotes");
        common::create_topics(&[&trades, &quotes]).await;
        Topics { trades, quotes }
    }

    pub(super) async fn delete(&self) {
        let names = [self.trades.as_str(), self.quotes.as_str()];
        let _ = admin().delete_topics(&names, &AdminOptions::new()).await;
    }
}

pub(super) fn admin() -> AdminClient<DefaultClientContext> {
    kafka::client_config(&common::kafka_plain())
        .create()
        .unwrap()
}

/// A stand-in TA job of this test's own: the scratch topics, its own group and database,
/// an admin endpoint to tell when it has written everything.
pub(super) struct StandIn {
    child: Child,
    /// Dropped with the stand-in (after the process is killed) unless the test failed.
    pub(super) database: common::ScratchDb,
    group: String,
    admin: SocketAddr,
    faults: Vec<String>,
    topics: (String, String),
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl StandIn {
    pub(super) async fn start(topics: &Topics, faults: &[&str]) -> Self {
        let database = common::scratch_database("t2e_audit").await;
        let group = common::unique("t2e-audit-ta");
        let faults: Vec<String> = faults.iter().map(|f| f.to_string()).collect();
        let topics = (topics.trades.clone(), topics.quotes.clone());
        let admin = free_port();
        let child = spawn(&topics, &database, &group, admin, &faults);
        StandIn {
            child,
            database,
            group,
            admin,
            faults,
            topics,
        }
    }

    /// Stops it and starts it again: committed offsets survive, state does not.
    pub(super) fn restart_without_state(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
        self.admin = free_port();
        self.child = spawn(
            &self.topics,
            &self.database,
            &self.group,
            self.admin,
            &self.faults,
        );
    }

    /// The stand-in's counters (`GET /metrics`), once it answers.
    async fn metrics(&self) -> Option<Value> {
        let url = format!("http://{}/metrics", self.admin);
        let response = reqwest::get(&url).await.ok()?;
        response.json().await.ok()
    }

    /// Waits until it has read `trades` trades and `quotes` quotes in all, and written every
    /// row it emitted.
    pub(super) async fn wait_processed(&self, trades: u64, quotes: u64) {
        let started = Instant::now();
        let mut last = Value::Null;
        while started.elapsed() < PROCESS_DEADLINE {
            if let Some(m) = self.metrics().await {
                let n = |k: &str| m[k].as_u64().unwrap_or(0);
                let done = n("trades") >= trades
                    && n("quotes") >= quotes
                    && n("microbar_rows_written") == n("bars_emitted") - n("bars_dropped")
                    && n("signal_rows_written") == n("signals_emitted");
                if done {
                    return;
                }
                last = m;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("stand-in {} did not process the stream: {last}", self.group);
    }

    fn config_file(&self) -> PathBuf {
        let path = std::env::temp_dir().join(format!("{}.toml", self.group));
        std::fs::write(
            &path,
            format!(
                "[kafka]\ntrades_topic = {:?}\nquotes_topic = {:?}\nta_group_id = {:?}\n",
                self.topics.0, self.topics.1, self.group
            ),
        )
        .unwrap();
        path
    }

    /// `torghut-e2e audit` against this stand-in's database; its output and JSON report.
    pub(super) async fn audit(
        &self,
        symbols: &[String],
        window: (&str, &str),
        extra: &[&str],
    ) -> (Output, Value, String) {
        let report = std::env::temp_dir().join(format!("{}.json", common::unique("t2e-audit")));
        let html_path = report.with_extension("html");
        let html = html_path.clone();
        let mut cmd = refstack::validator("audit");
        cmd.args([
            "--symbols",
            &symbols.join(","),
            "--from",
            window.0,
            "--to",
            window.1,
        ])
        .args(["--settle", "5s", "--idle-timeout", "2s", "--report-json"])
        .arg(&report)
        .arg("--html")
        .arg(&html)
        .arg("--config")
        .arg(self.config_file())
        .env("TORGHUT_E2E_CLICKHOUSE_DATABASE", &*self.database)
        .args(extra);
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("run torghut-e2e"))
            .await
            .unwrap();
        let json = common::take_json(&report);
        let html = std::fs::read_to_string(&html).unwrap_or_default();
        std::fs::remove_file(html_path).ok();
        (out, json, html)
    }
}

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn spawn(
    topics: &(String, String),
    database: &str,
    group: &str,
    admin: SocketAddr,
    faults: &[String],
) -> Child {
    let bin = refstack::refstack_bin();
    let c = common::clickhouse(database);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(std::env::temp_dir().join(format!("{group}.log")))
        .unwrap();
    Command::new(bin)
        .args(["ta", "--lane", "sim", "--kafka-bootstrap"])
        .arg(&common::kafka_plain().bootstrap)
        .args(["--trades-topic", &topics.0, "--quotes-topic", &topics.1])
        .args(["--group-id", group, "--auto-offset-reset", "earliest"])
        .args(["--idle-timeout-ms", "2000", "--commit-interval-ms", "500"])
        .args(["--watermark-interval-ms", "200"])
        // No Kafka outputs: the lane's are the shared stand-in's (its heartbeat among them).
        .args([
            "--bars-topic",
            "",
            "--signals-topic",
            "",
            "--status-topic",
            "",
        ])
        .args(["--database", database, "--admin-addr", &admin.to_string()])
        .args(["--clickhouse-url", &c.url, "--clickhouse-user", &c.user])
        .env("REFSTACK_CLICKHOUSE_PASSWORD", c.password.expose())
        .args(faults)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// `refstack traffic` onto the topics; its summary.
pub(super) async fn traffic(topics: &Topics, args: &[&str]) -> Value {
    let summary = std::env::temp_dir().join(format!("{}.json", common::unique("t2e-traffic")));
    let mut cmd = Command::new(refstack::refstack_bin());
    cmd.args(["traffic", "--kafka-bootstrap"])
        .arg(&common::kafka_plain().bootstrap)
        .args([
            "--trades-topic",
            &topics.trades,
            "--quotes-topic",
            &topics.quotes,
        ])
        .arg("--summary")
        .arg(&summary)
        .args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run refstack traffic"))
        .await
        .unwrap();
    assert!(out.status.success(), "{}", common::shown(&out));
    serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap()
}
