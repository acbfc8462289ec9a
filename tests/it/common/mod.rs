//! Where the local stack is, for integration tests: the same variables and defaults as
//! `scripts/stack` (which starts it once per test run), so tests never start their own.
#![allow(dead_code)]

pub mod refstack;
pub mod seeded;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;

use torghut_e2e::config::{ClickHouseTarget, KafkaTarget, SaslMechanism, Secret, SecurityProtocol};

fn var(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// Says once per test binary which stack the endpoints belong to (printed with the output of
/// the first test that asks: shown on failure or with --nocapture).
fn announce() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let backend = std::env::var("STACK_BACKEND").unwrap_or_else(|_| {
            "unknown (no STACK_BACKEND: endpoints from STACK_* or their defaults)".into()
        });
        eprintln!(
            "integration tests: stack backend {backend}; Kafka 127.0.0.1:{}/{} (SCRAM), \
             ClickHouse 127.0.0.1:{}, chromedriver 127.0.0.1:{}",
            var("STACK_KAFKA_PORT", "9092"),
            var("STACK_KAFKA_SASL_PORT", "9093"),
            var("STACK_CH_PORT", "8123"),
            var("STACK_CHROMEDRIVER_PORT", "9515"),
        );
    });
}

pub fn kafka_plain() -> KafkaTarget {
    announce();
    KafkaTarget {
        bootstrap: format!("127.0.0.1:{}", var("STACK_KAFKA_PORT", "9092")),
        security_protocol: SecurityProtocol::Plaintext,
        sasl_mechanism: SaslMechanism::ScramSha512,
        username: String::new(),
        password: Secret::default(),
        ca_file: None,
        trades_topic: "torghut.sim.trades.v1".into(),
        quotes_topic: "torghut.sim.quotes.v1".into(),
        bars1m_topic: "torghut.sim.bars.1m.v1".into(),
        ta_group_id: "torghut-ta-sim-default".into(),
    }
}

pub fn kafka_sasl() -> KafkaTarget {
    KafkaTarget {
        bootstrap: format!("127.0.0.1:{}", var("STACK_KAFKA_SASL_PORT", "9093")),
        security_protocol: SecurityProtocol::SaslPlaintext,
        sasl_mechanism: SaslMechanism::ScramSha512,
        username: var("STACK_KAFKA_USER", "torghut-ws"),
        password: Secret::new(var("STACK_KAFKA_PASSWORD", "torghut-e2e-local")),
        ..kafka_plain()
    }
}

pub fn clickhouse(database: &str) -> ClickHouseTarget {
    announce();
    ClickHouseTarget {
        url: format!("http://127.0.0.1:{}", var("STACK_CH_PORT", "8123")),
        database: database.into(),
        user: var("STACK_CH_USER", "torghut"),
        password: Secret::new(var("STACK_CH_PASSWORD", "torghut-e2e-local")),
    }
}

pub fn webdriver_url() -> String {
    format!(
        "http://127.0.0.1:{}",
        var("STACK_CHROMEDRIVER_PORT", "9515")
    )
}

/// Environment for running the binary against the local stack's simulation lane.
pub fn validator_env() -> Vec<(String, String)> {
    let k = kafka_sasl();
    let c = clickhouse("torghut_sim_default");
    let mut env: Vec<(String, String)> = vec![
        ("TORGHUT_E2E_KAFKA_BOOTSTRAP".into(), k.bootstrap),
        ("TORGHUT_E2E_KAFKA_USERNAME".into(), k.username),
        (
            "TORGHUT_E2E_KAFKA_PASSWORD".into(),
            k.password.expose().into(),
        ),
        ("TORGHUT_E2E_CLICKHOUSE_URL".into(), c.url),
        ("TORGHUT_E2E_CLICKHOUSE_USER".into(), c.user),
        (
            "TORGHUT_E2E_CLICKHOUSE_PASSWORD".into(),
            c.password.expose().into(),
        ),
        ("TORGHUT_E2E_WEBDRIVER_URL".into(), webdriver_url()),
        ("TORGHUT_E2E_JANGAR_URL".into(), jangar_url()),
    ];
    // The stack's registry (`scripts/stack env` exports it) and its stand-in's heartbeat
    // interval, so the outputs and heartbeat checks read the stack as it runs.
    if let Ok(url) = std::env::var("TORGHUT_E2E_SCHEMA_REGISTRY_URL") {
        env.push(("TORGHUT_E2E_SCHEMA_REGISTRY_URL".into(), url));
    }
    if let Ok(ms) = std::env::var("TORGHUT_E2E_STATUS_INTERVAL_MS") {
        env.push(("TORGHUT_E2E_STATUS_INTERVAL_MS".into(), ms));
    }
    env
}

/// The stack's stand-in Jangar, reading the simulation lane's database.
pub fn jangar_url() -> String {
    format!("http://127.0.0.1:{}", var("STACK_JANGAR_PORT", "3000"))
}

/// A name no other test or run uses: process id, a counter and the clock.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis()
        % 1_000_000_000;
    format!("{prefix}_{}_{n}_{t}", std::process::id())
}

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How many headless browsers the tests of this binary drive at once. The stack tests run side
/// by side, most of them waiting on the pipeline; a browser is the exception, a core's worth of
/// work while a page loads, and its steps have time bounds.
const BROWSERS: usize = 2;

static BROWSERS_IN_USE: std::sync::Mutex<usize> = std::sync::Mutex::new(0);
static BROWSER_FREED: std::sync::Condvar = std::sync::Condvar::new();

/// A turn to drive a browser, held until dropped: waits while [`BROWSERS`] others are in use.
pub struct BrowserSlot(());

pub fn browser_slot() -> BrowserSlot {
    let mut in_use = BROWSERS_IN_USE.lock().unwrap_or_else(|e| e.into_inner());
    while *in_use >= BROWSERS {
        in_use = BROWSER_FREED
            .wait(in_use)
            .unwrap_or_else(|e| e.into_inner());
    }
    *in_use += 1;
    BrowserSlot(())
}

impl Drop for BrowserSlot {
    fn drop(&mut self) {
        let mut in_use = BROWSERS_IN_USE.lock().unwrap_or_else(|e| e.into_inner());
        *in_use -= 1;
        BROWSER_FREED.notify_one();
    }
}

/// A database holding both TA tables cloned from the production schema, dropped when the test
/// that made it passes (a failing test leaves it for inspection). Derefs to its name.
pub struct ScratchDb {
    pub name: String,
}

impl ScratchDb {
    pub async fn create(prefix: &str) -> Self {
        let name = unique(prefix);
        let admin =
            torghut_e2e::adapter::clickhouse::ClickHouse::new(&clickhouse("torghut"), TIMEOUT);
        for sql in [
            format!("CREATE DATABASE {name}"),
            format!("CREATE TABLE {name}.ta_microbars AS torghut.ta_microbars"),
            format!("CREATE TABLE {name}.ta_signals AS torghut.ta_signals"),
        ] {
            admin
                .bounded(admin.client().query(&sql).execute())
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        ScratchDb { name }
    }
}

impl std::ops::Deref for ScratchDb {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Display for ScratchDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            drop_scratch(Vec::new(), vec![std::mem::take(&mut self.name)]);
        }
    }
}

/// A new scratch database (see [`ScratchDb`]).
pub async fn scratch_database(prefix: &str) -> ScratchDb {
    ScratchDb::create(prefix).await
}

/// Creates `topics` with the production partition count (3) on the local broker, as the stack
/// creates its own (kafka-admin); each must be new.
pub async fn create_topics(topics: &[&str]) {
    let specs: Vec<kafka_admin::TopicSpec> = topics
        .iter()
        .map(|t| kafka_admin::TopicSpec::new(*t, 3))
        .collect();
    let ensured = kafka_admin::ensure_topics(
        &torghut_e2e::adapter::kafka::client_config(&kafka_plain()),
        &specs,
        TIMEOUT,
    )
    .await
    .expect("create topics");
    assert_eq!(ensured.created, topics, "fresh topics");
}

/// Topics a test created, deleted when it is dropped unless the test failed (they are kept for
/// inspection then).
pub struct ScratchTopics(pub Vec<String>);

impl Drop for ScratchTopics {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            drop_scratch(std::mem::take(&mut self.0), Vec::new());
        }
    }
}

/// Deletes `topics` and drops `databases` that a test created, best effort and bounded. It
/// runs from destructors, which cannot await and may run on a runtime's thread: so on a thread
/// of its own, with a runtime of its own.
pub fn drop_scratch(topics: Vec<String>, databases: Vec<String>) {
    let work = async move {
        if !topics.is_empty() {
            if let Ok(admin) = torghut_e2e::adapter::kafka::client_config(&kafka_plain())
                .create::<AdminClient<DefaultClientContext>>()
            {
                let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                admin.delete_topics(&names, &AdminOptions::new()).await.ok();
            }
        }
        let admin =
            torghut_e2e::adapter::clickhouse::ClickHouse::new(&clickhouse("default"), TIMEOUT);
        for db in databases.iter().filter(|d| !d.is_empty()) {
            let sql = format!("DROP DATABASE IF EXISTS {db}");
            admin
                .bounded(admin.client().query(&sql).execute())
                .await
                .ok();
        }
    };
    std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(async { tokio::time::timeout(TIMEOUT, work).await.ok() });
        }
    })
    .join()
    .ok();
}

/// Writes `text` to a TOML file of its own (`<prefix>-<unique>.toml` under the system's temp
/// dir) and returns its path.
pub fn toml_file(prefix: &str, text: impl AsRef<[u8]>) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("{}.toml", unique(prefix)));
    std::fs::write(&path, text).unwrap();
    path
}

/// A JSON report a command wrote: `Null` when it wrote none (or not JSON), which the test's
/// assertions then show.
pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// [`read_json`], removing the file.
pub fn take_json(path: &std::path::Path) -> serde_json::Value {
    let json = read_json(path);
    std::fs::remove_file(path).ok();
    json
}

/// A finished command's exit code and both of its streams, for an assertion's message.
pub fn shown(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A scratch directory of its own under the system's temp dir, removed when dropped unless the
/// environment variable given to [`ScratchDir::kept_when`] is set (to look at what a test left).
pub struct ScratchDir {
    path: std::path::PathBuf,
    keep: bool,
}

impl ScratchDir {
    pub fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&path).unwrap();
        ScratchDir { path, keep: false }
    }

    /// Kept when `var` is set.
    pub fn kept_when(mut self, var: &str) -> Self {
        self.keep = std::env::var_os(var).is_some();
        self
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !self.keep {
            std::fs::remove_dir_all(&self.path).ok();
        }
    }
}
