//! Stage tests without a pipeline run: a run's rows written into a scratch database as the TA
//! job writes them, a private stand-in Jangar (`refstack jangar`, with its fault switches)
//! serving them, and the stage (API or browser) run in-process as the runner runs it after the
//! ClickHouse stage. Nothing is published, so such tests share no lane with anyone.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use torghut_e2e::adapter::clickhouse::ClickHouse;
use torghut_e2e::config::Config;
use torghut_e2e::domain::model::{Microbar, Signal};
use torghut_e2e::domain::oracle::{Expected, Oracle, Trade};
use torghut_e2e::domain::scenario::Scenario;
use torghut_e2e::domain::symbols::{self, RunId};
use torghut_e2e::stage::StageContext;

use crate::common::{self, refstack::root, ScratchDb};

/// A private stand-in Jangar on an ephemeral loopback port, reading `database`.
pub struct PrivateJangar {
    child: Child,
    pub url: String,
}

impl Drop for PrivateJangar {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl PrivateJangar {
    /// Lists `symbols` (its universe), with extra `flags` (fault switches); `ch_env` overrides
    /// its `CH_*` variables (an empty value unsets nothing: it sets the variable empty).
    pub async fn start(
        database: &str,
        symbols: &[&str],
        flags: &[&str],
        ch_env: &[(&str, &str)],
    ) -> Self {
        let bin = common::refstack::refstack_bin();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let ch = common::clickhouse(database);
        let ch_port = ch.url.rsplit(':').next().unwrap().to_string();
        let log = std::env::temp_dir().join(format!("{}.log", common::unique("t2e-jangar")));
        let mut cmd = Command::new(bin);
        cmd.args(["jangar", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--symbols", &symbols.join(",")])
            .args(flags)
            .env_remove("REFSTACK_JANGAR_INT64")
            .env("CH_HOST", "127.0.0.1")
            .env("CH_PORT", ch_port)
            .env("CH_SECURE", "false")
            .env("CH_USER", &ch.user)
            .env("CH_PASSWORD", ch.password.expose())
            .env("CH_DATABASE", database)
            .envs(ch_env.iter().copied());
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let jangar = PrivateJangar {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        jangar.ready(&log).await;
        jangar
    }

    async fn ready(&self, log: &Path) {
        let started = Instant::now();
        let health = format!("{}/health", self.url);
        while started.elapsed() < Duration::from_secs(15) {
            if reqwest::get(&health).await.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "the private stand-in Jangar at {} is not ready: {}",
            self.url,
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

/// `seconds` one-second bars of a wavy walk ending `ago` before now, as the TA job writes them.
pub fn rows(symbol: &str, seconds: i64, ago: Duration) -> (Vec<Microbar>, Vec<Signal>) {
    let end = OffsetDateTime::now_utc() - ago;
    let start = end.replace_millisecond(0).unwrap() - time::Duration::seconds(seconds);
    let mut oracle = Oracle::new();
    let mut out = Vec::new();
    for i in 0..seconds * 2 {
        let at = start + time::Duration::milliseconds(i * 500 + 100);
        let price = 50.0 + (i as f64 / 7.0).sin() + i as f64 * 0.01;
        out.extend(oracle.on_trade(symbol, Trade::at(at, price, 10.0)));
    }
    out.extend(oracle.flush_open());
    let (mut bars, mut signals) = (Vec::new(), Vec::new());
    for row in out {
        match row {
            Expected::Microbar(b) => bars.push(b),
            Expected::Signal(s) => signals.push(s),
        }
    }
    (bars, signals)
}

/// A scratch database and a client on it.
pub struct Scratch {
    pub db: ScratchDb,
    pub ch: ClickHouse,
}

impl Scratch {
    pub async fn create() -> Self {
        let db = common::scratch_database("t2e_seeded").await;
        let ch = ClickHouse::new(&common::clickhouse(&db), common::TIMEOUT);
        Scratch { db, ch }
    }

    pub fn name(&self) -> &str {
        &self.db.name
    }

    /// Writes the rows as the job's sink does (one INSERT per table).
    pub async fn insert(&self, bars: &[Microbar], signals: &[Signal]) {
        let client = self.ch.client();
        let mut insert = client.insert::<Microbar>("ta_microbars").await.unwrap();
        for b in bars {
            insert.write(b).await.unwrap();
        }
        insert.end().await.unwrap();
        let mut insert = client.insert::<Signal>("ta_signals").await.unwrap();
        for s in signals {
            insert.write(s).await.unwrap();
        }
        insert.end().await.unwrap();
    }

    /// Runs `sql` against the server (e.g. `SYSTEM STOP MERGES`).
    pub async fn execute(&self, sql: &str) {
        self.ch
            .bounded(self.ch.client().query(sql).execute())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// A run as the runner has it once the ClickHouse stage passed: its id, the symbol of `alias`,
/// the oracle's rows (also what ClickHouse holds, in `primary`) and an artifacts directory.
pub struct SeededRun {
    pub run: RunId,
    pub symbol: String,
    pub symbols: BTreeMap<String, String>,
    pub primary: Scratch,
    pub bars: Vec<Microbar>,
    pub signals: Vec<Signal>,
    pub artifacts: PathBuf,
}

/// The evidence stays for a failing test to be looked at, and goes otherwise.
impl Drop for SeededRun {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            std::fs::remove_dir_all(&self.artifacts).ok();
        }
    }
}

impl SeededRun {
    /// `seconds` bars of the run's `alias` symbol ending `ago` before now, written to a scratch
    /// database.
    pub async fn new(alias: &str, seconds: i64, ago: Duration) -> Self {
        let run = RunId::generate();
        let symbol = symbols::synthetic(&run, alias);
        let (bars, signals) = rows(&symbol, seconds, ago);
        let primary = Scratch::create().await;
        primary.insert(&bars, &signals).await;
        let artifacts = std::env::temp_dir().join(common::unique("t2e-seeded-art"));
        SeededRun {
            symbols: BTreeMap::from([(alias.to_string(), symbol.clone())]),
            run,
            symbol,
            primary,
            bars,
            signals,
            artifacts,
        }
    }

    /// What a stage gets from the runner for `scenario` under `config`.
    pub fn context<'a>(&'a self, config: &'a Config, scenario: &'a Scenario) -> StageContext<'a> {
        StageContext {
            config,
            scenario,
            run_id: &self.run,
            symbols: &self.symbols,
            expected_bars: &self.bars,
            expected_signals: &self.signals,
            stored_bars: &self.bars,
            stored_signals: &self.signals,
            clickhouse: &self.primary.ch,
            artifacts: self.artifacts.clone(),
        }
    }
}

/// A shipped scenario, as the runner loads it.
pub fn shipped(name: &str) -> Scenario {
    torghut_e2e::domain::scenario::load(&root().join("scenarios").join(name)).unwrap()
}

/// The validator's configuration for a stage test: the local stack's WebDriver, `jangar` as
/// Jangar's base URL, `artifacts`, and `extra_jangar` lines in the `[jangar]` table.
pub fn config(jangar: &str, artifacts: &Path, extra_jangar: &str) -> Config {
    let text = format!(
        "artifacts_dir = {artifacts:?}\n\
         [webdriver]\nurl = {wd:?}\n\
         [jangar]\nbase_url = {jangar:?}\n{extra_jangar}\n",
        artifacts = artifacts.display().to_string(),
        wd = common::webdriver_url(),
    );
    let env: HashMap<String, String> = [(
        "TORGHUT_E2E_KAFKA_SECURITY_PROTOCOL".to_string(),
        "PLAINTEXT".to_string(),
    )]
    .into();
    Config::from_toml(&text, Path::new("stage-test.toml"), &env).unwrap()
}
