//! A private stand-in TA job (the `refstack ta` binary) on scratch topics and a scratch
//! database, with fault switches, so a test can make a run fail without touching the shared
//! stand-ins.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use torghut_e2e::adapter::kafka;

use crate::common;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The private job's settings (the stack's shared job has production's).
#[derive(Debug, Clone, Copy)]
pub struct Job {
    /// Partitions go idle after this (production: 30 s).
    pub idle_timeout_ms: u64,
    /// TA_QUOTE_STALE_AFTER_MS (production: 15 s). The validator is told the same.
    pub quote_stale_after_ms: i64,
}

impl Default for Job {
    /// 2 s idleness, so watermark-closed bars appear quickly; production's quote window.
    fn default() -> Self {
        Job {
            idle_timeout_ms: 2_000,
            quote_stale_after_ms: 15_000,
        }
    }
}

/// Its topics go when it is dropped, its database with `db` (kept when the test failed).
pub struct PrivateTa {
    child: Child,
    faults: Vec<String>,
    job: Job,
    pub topic: String,
    /// Its Kafka outputs, private like its inputs (bars, signals, status; one partition each as
    /// in production): Confluent-framed through the stack's registry when
    /// TORGHUT_E2E_SCHEMA_REGISTRY_URL is set, plain Avro otherwise; a heartbeat a second.
    pub outputs: [String; 3],
    pub database: String,
    pub group: String,
    db: common::ScratchDb,
}

impl Drop for PrivateTa {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
        if !std::thread::panicking() {
            let quotes = format!("{}.quotes", self.topic);
            let bars1m = format!("{}.bars1m", self.topic);
            let mut topics = vec![self.topic.clone(), quotes, bars1m];
            topics.extend(self.outputs.iter().cloned());
            common::drop_scratch(topics, Vec::new());
        }
    }
}

impl PrivateTa {
    /// Creates the scratch topics and database and starts the stand-in with `faults`. Its
    /// partitions go idle after 2 s, so watermark-closed bars appear quickly.
    pub async fn start(faults: &[&str]) -> Self {
        Self::with_job(faults, Job::default()).await
    }

    /// [`PrivateTa::start`] with another idle timeout, e.g. production's 30 s.
    pub async fn with_idle_timeout(faults: &[&str], idle_timeout_ms: u64) -> Self {
        let job = Job {
            idle_timeout_ms,
            ..Job::default()
        };
        Self::with_job(faults, job).await
    }

    /// [`PrivateTa::start`] with other settings.
    pub async fn with_job(faults: &[&str], job: Job) -> Self {
        let topic = common::unique("t2e.trades");
        common::create_topics(&[
            &topic,
            &format!("{topic}.quotes"),
            &format!("{topic}.bars1m"),
        ])
        .await;
        let outputs = [
            format!("{topic}.ta.bars.1s"),
            format!("{topic}.ta.signals"),
            format!("{topic}.ta.status"),
        ];
        let specs: Vec<_> = outputs
            .iter()
            .map(|t| kafka_admin::TopicSpec::new(t, 1))
            .collect();
        kafka_admin::ensure_topics(
            &kafka::client_config(&common::kafka_plain()),
            &specs,
            common::TIMEOUT,
        )
        .await
        .expect("create the output topics");
        let db = common::scratch_database("t2e_private").await;
        let database = db.name.clone();
        let group = common::unique("t2e-ta");
        let faults: Vec<String> = faults.iter().map(|f| f.to_string()).collect();
        let child = spawn(&topic, &outputs, &database, &group, &faults, job);
        PrivateTa {
            child,
            faults,
            job,
            topic,
            outputs,
            database,
            group,
            db,
        }
    }

    /// Stops the job and starts it again on the same topics, group and database: the committed
    /// offsets survive, the in-memory state (bars, seq counters, sessions) does not — a
    /// `stateless` upgrade.
    pub fn restart_without_state(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
        self.child = spawn(
            &self.topic,
            &self.outputs,
            &self.database,
            &self.group,
            &self.faults,
            self.job,
        );
    }

    /// Waits until the job reads its trades topic: it is sent a record it cannot decode
    /// (dropped and counted, invisible to the watermark) and its offset must be committed. A
    /// run published before the job's readers are assigned would be read in one go, every
    /// partition then going idle at the same moment, which a running job never shows.
    pub async fn wait_until_reading(&self) {
        let target = torghut_e2e::config::KafkaTarget {
            trades_topic: self.topic.clone(),
            ..common::kafka_plain()
        };
        let publisher =
            torghut_e2e::adapter::kafka::KafkaPublisher::new(&target, common::TIMEOUT).unwrap();
        let probe = publisher
            .send(
                0,
                torghut_e2e::domain::publish::Channel::Trades,
                "probe",
                "probe".into(),
            )
            .acked()
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let committed = kafka::committed_offsets(
                &target,
                &self.group,
                &self.topic,
                &[probe.partition],
                common::TIMEOUT,
            )
            .await
            .unwrap_or_default();
            if committed.get(&probe.partition) > Some(&probe.offset) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the private TA job has not read its topic within 60 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// The stand-in's exit status, once it has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// A config file pointing the validator at this instance's topics and consumer group.
    pub fn config_file(&self) -> PathBuf {
        let config = std::env::temp_dir().join(format!("{}.toml", self.group));
        std::fs::write(
            &config,
            format!(
                "[kafka]\ntrades_topic = {:?}\nquotes_topic = {:?}\nbars1m_topic = {:?}\n\
                 ta_group_id = {:?}\n\
                 [outputs]\nbars_topic = {:?}\nsignals_topic = {:?}\nstatus_topic = {:?}\n\
                 status_interval_ms = 1000\n[ta]\nquote_stale_after_ms = {}\n",
                self.topic,
                format!("{}.quotes", self.topic),
                format!("{}.bars1m", self.topic),
                self.group,
                self.outputs[0],
                self.outputs[1],
                self.outputs[2],
                self.job.quote_stale_after_ms
            ),
        )
        .unwrap();
        config
    }

    /// The validator's environment for this instance: the local stack, this database.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = common::validator_env();
        env.push((
            "TORGHUT_E2E_CLICKHOUSE_DATABASE".into(),
            self.database.clone(),
        ));
        env
    }

    /// `torghut-e2e <verb> <scenario> --config <this instance>` with the environment set.
    pub fn command(&self, verb: &str, scenario: &std::path::Path) -> Command {
        let mut cmd = validator(verb);
        cmd.arg(scenario).arg("--config").arg(self.config_file());
        cmd.envs(self.env());
        cmd
    }
}

/// The stand-ins' binary, built by `scripts/stack up` (or `cargo build -p refstack`) into the
/// target directory the validator under test was built in.
pub fn refstack_bin() -> PathBuf {
    let validator = PathBuf::from(env!("CARGO_BIN_EXE_torghut-e2e"));
    let bin = validator.with_file_name("refstack");
    assert!(
        bin.exists(),
        "{} is built by scripts/stack up",
        bin.display()
    );
    bin
}

fn spawn(
    topic: &str,
    outputs: &[String; 3],
    database: &str,
    group: &str,
    faults: &[String],
    job: Job,
) -> Child {
    let bin = refstack_bin();
    let c = common::clickhouse(database);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(std::env::temp_dir().join(format!("{group}.log")))
        .unwrap();
    let [bars, signals, status] = outputs;
    let mut command = Command::new(bin);
    if let Some(url) = std::env::var("TORGHUT_E2E_SCHEMA_REGISTRY_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        command.env("REFSTACK_SCHEMA_REGISTRY_URL", url);
    }
    command
        .args(["ta", "--lane", "sim", "--kafka-bootstrap"])
        .arg(&common::kafka_plain().bootstrap)
        .args([
            "--trades-topic",
            topic,
            "--quotes-topic",
            &format!("{topic}.quotes"),
            "--bars1m-topic",
            &format!("{topic}.bars1m"),
        ])
        .args(["--bars-topic", bars, "--signals-topic", signals])
        .args(["--status-topic", status, "--status-interval-ms", "1000"])
        .args(["--group-id", group, "--auto-offset-reset", "earliest"])
        .arg("--idle-timeout-ms")
        .arg(job.idle_timeout_ms.to_string())
        .arg(format!(
            "--quote-stale-after-ms={}",
            job.quote_stale_after_ms
        ))
        .args(["--commit-interval-ms", "500"])
        .args(["--database", database, "--no-admin"])
        .args(["--clickhouse-url", &c.url, "--clickhouse-user", &c.user])
        .env("REFSTACK_CLICKHOUSE_PASSWORD", c.password.expose())
        .args(faults)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// The validator binary with a clean environment for the local stack.
pub fn validator(verb: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_torghut-e2e"));
    cmd.arg(verb)
        .env_remove("TORGHUT_E2E_CONFIG")
        .env_remove("TORGHUT_E2E_PUSHGATEWAY")
        .current_dir(root());
    cmd.envs(common::validator_env());
    cmd
}

/// A short compressed scenario: six seconds of trades on one symbol, closed by a trade.
pub fn short_scenario(name: &str) -> PathBuf {
    common::toml_file(
        "t2e-short",
        format!(
            r#"name = "{name}"
symbols = ["F"]
pacing = "compressed"
deadline_secs = 8
[[generators]]
kind = "ramp"
symbol = "F"
seconds = 6
per_second = 2
price = 50.0
step = 0.05
size = 3.0
"#
        ),
    )
}
