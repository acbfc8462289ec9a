//! `torghut-e2e audit` against stand-in TA jobs fed market-like traffic (`refstack traffic`):
//! it passes on a healthy job, fails naming the first divergent row with each maths fault on,
//! follows a restart without state, and refuses a window whose start retention removed.
//!
//! Everything runs on scratch topics and databases (dropped at the end): stand-ins of its own
//! with fault switches, sharing the topics, each writing its own database.

use crate::common;
use crate::common::refstack;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use serde_json::Value;
use torghut_e2e::adapter::clickhouse::ClickHouse;
use torghut_e2e::adapter::kafka;

/// How long a stand-in may take to process a published stream.
const PROCESS_DEADLINE: Duration = Duration::from_secs(240);

/// Scratch trades and quotes topics (3 partitions, like production's).
struct Topics {
    trades: String,
    quotes: String,
}

impl Topics {
    async fn create() -> Self {
        let trades = common::unique("t2e.audit");
        let quotes = format!("{trades}.quotes");
        common::create_topics(&[&trades, &quotes]).await;
        Topics { trades, quotes }
    }

    async fn delete(&self) {
        let names = [self.trades.as_str(), self.quotes.as_str()];
        let _ = admin().delete_topics(&names, &AdminOptions::new()).await;
    }
}

fn admin() -> AdminClient<DefaultClientContext> {
    kafka::client_config(&common::kafka_plain())
        .create()
        .unwrap()
}

/// A stand-in TA job of this test's own: the scratch topics, its own group and database,
/// an admin endpoint to tell when it has written everything.
struct StandIn {
    child: Child,
    /// Dropped with the stand-in (after the process is killed) unless the test failed.
    database: common::ScratchDb,
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
    async fn start(topics: &Topics, faults: &[&str]) -> Self {
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
    fn restart_without_state(&mut self) {
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
    async fn wait_processed(&self, trades: u64, quotes: u64) {
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
    async fn audit(
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
        let json = std::fs::read(&report)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let html = std::fs::read_to_string(&html).unwrap_or_default();
        for path in [report, html_path] {
            let _ = std::fs::remove_file(path);
        }
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
    let bin = refstack::root().join("target/debug/refstack");
    assert!(
        bin.exists(),
        "{} is built by scripts/stack up",
        bin.display()
    );
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
async fn traffic(topics: &Topics, args: &[&str]) -> Value {
    let summary = std::env::temp_dir().join(format!("{}.json", common::unique("t2e-traffic")));
    let mut cmd = Command::new(refstack::root().join("target/debug/refstack"));
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
    assert!(out.status.success(), "{}", shown(&out));
    serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap()
}

fn shown(out: &Output) -> String {
    format!(
        "exit {:?}\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn time_of(v: &Value) -> time::OffsetDateTime {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(v.as_str().expect("a time"), &Rfc3339).unwrap()
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    use time::format_description::well_known::Rfc3339;
    t.format(&Rfc3339).unwrap()
}

fn symbols(summary: &Value) -> Vec<String> {
    summary["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// The audit window inside a stream: from `lead` after its first arrival to `trail` before its
/// last.
fn window(summary: &Value, lead: i64, trail: i64) -> (String, String) {
    let from = time_of(&summary["first_arrival"]) + time::Duration::seconds(lead);
    let to = time_of(&summary["last_arrival"]) - time::Duration::seconds(trail);
    (rfc3339(from), rfc3339(to))
}

/// The maths fault switches the stand-in offers (`--wrong-math` values), read from its help so
/// a new one is covered without editing this test.
fn maths_faults() -> Vec<String> {
    let out = Command::new(refstack::root().join("target/debug/refstack"))
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
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert_eq!(report["verdict"], "pass", "{}", shown(&out));
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
        assert_eq!(out.status.code(), Some(1), "{fault}: {}", shown(&out));
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
            shown(&out)
        );
    }
    // Their databases go with them (the process first).
    drop(stand_ins);
    topics.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_without_state_inside_the_window_is_predicted_from_nothing_from_there() {
    // Both streams paced, as in the test above: a stream written at once onto partitions the
    // job has let go idle is read partition by partition, and the first one read moves the
    // watermark past the others' buckets (a split in the stored rows that no record timestamp
    // explains, seen once here under load). A live feed does not arrive that way.
    let topics = Topics::create().await;
    let mut stand_in = StandIn::start(&topics, &[]).await;
    let first = traffic(
        &topics,
        &[
            "--seconds",
            "90",
            "--busy-rate",
            "10",
            "--symbols",
            "4",
            "--seed",
            "3",
            "--end-ago",
            "60s",
            "--speed",
            "20",
        ],
    )
    .await;
    let t = |v: &Value, k: &str| v[k].as_u64().unwrap();
    stand_in
        .wait_processed(t(&first, "trades"), t(&first, "quotes"))
        .await;
    stand_in.restart_without_state();
    let second = traffic(
        &topics,
        &[
            "--seconds",
            "45",
            "--busy-rate",
            "10",
            "--symbols",
            "4",
            "--seed",
            "4",
            "--end-ago",
            "6s",
            "--speed",
            "20",
        ],
    )
    .await;
    // A fresh process counts from zero: it read only the second stream.
    stand_in
        .wait_processed(t(&second, "trades"), t(&second, "quotes"))
        .await;
    let symbols = symbols(&first);
    let from = rfc3339(time_of(&first["first_arrival"]) + time::Duration::seconds(20));
    let to = rfc3339(time_of(&second["last_arrival"]) - time::Duration::seconds(10));
    let (out, report, _) = stand_in.audit(&symbols, (&from, &to), &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let busy = &report["scenarios"][0];
    let stretches = busy["audit"]["stretches"].as_array().unwrap();
    assert_eq!(stretches.len(), 2, "{busy}");
    assert_eq!(stretches[1]["start"], "fresh");
    assert_eq!(stretches[1]["first_seq"], 1);
    assert!(busy["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["severity"] == "warning"
            && f["cause"]
                .as_str()
                .unwrap()
                .contains("restarted without state")));
    drop(stand_in);
    topics.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_whose_start_retention_removed_is_refused() {
    use rdkafka::{Offset, TopicPartitionList};
    let topics = Topics::create().await;
    let stand_in = StandIn::start(&topics, &[]).await;
    let summary = traffic(
        &topics,
        &[
            "--seconds",
            "40",
            "--symbols",
            "2",
            "--seed",
            "5",
            "--end-ago",
            "10s",
        ],
    )
    .await;
    // Retention: the oldest records of every partition are gone.
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset(&topics.trades, p, Offset::Offset(5))
            .unwrap();
    }
    admin()
        .delete_records(&tpl, &AdminOptions::new())
        .await
        .unwrap();
    let (from, to) = window(&summary, 0, 5);
    let (out, report, _) = stand_in.audit(&symbols(&summary), (&from, &to), &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("retention"), "{err}");
    assert_eq!(report["verdict"], "error");
    drop(stand_in);
    topics.delete().await;
}

#[test]
fn a_window_that_has_not_settled_is_a_usage_error_before_any_target_is_touched() {
    let now = time::OffsetDateTime::now_utc();
    let out = refstack::validator("audit")
        .args(["--symbols", "NVDA", "--from"])
        .arg(rfc3339(now - time::Duration::minutes(5)))
        .arg("--to")
        .arg(rfc3339(now))
        .env("TORGHUT_E2E_KAFKA_BOOTSTRAP", "127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--settle"));
}
