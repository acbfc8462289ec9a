//! Where the validator points: lane, Kafka, ClickHouse and WebDriver targets.
//!
//! Layering, lowest first: built-in defaults (the local reference stack), the config file
//! (`torghut-e2e.toml`), then `TORGHUT_E2E_*` environment variables. Secrets are never stored in
//! the file: it names an environment variable or a file that holds them. Credentials written
//! into a URL anyway (`http://user:secret@host`) are taken out of it here and handed to the
//! client's authentication, so no URL the program keeps, prints or logs carries them.
//!
//! Every value is checked when it is loaded, each layer on its own: a malformed port, URL or
//! timeout is a configuration error (exit 2) naming its key, never a connection that times out
//! later (exit 3), and a broken file value is reported even when an environment variable
//! overrides it (a broken ConfigMap must not hide behind an override). Files are opened only
//! when in effect: an overridden path is checked as a value, since it may name a secret mounted
//! only where the config is deployed.

mod check;
mod file;
mod resolve;
mod secret;
mod target;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use check::{in_range, parse_bool, path_value, webdriver_url};
use file::{parse_file, read_file, FileConfig};
use resolve::{
    layered, resolve_clickhouse, resolve_jangar, resolve_kafka, resolve_outputs, resolve_ta,
};

pub use check::url_with_auth;
pub use secret::{BasicAuth, Secret};
pub use target::{
    ClickHouseTarget, JangarTarget, KafkaTarget, Lane, OutputsTarget, SaslMechanism,
    SecurityProtocol, TaSettings, WebDriverTarget,
};

/// A configuration problem: always exit code 2, never retried.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// `value` is shown redacted (URL credentials removed).
    #[error("invalid value {value:?} for {name}: {expected}")]
    Invalid {
        name: String,
        value: String,
        expected: String,
    },
    #[error("cannot read secret file {path} for {name}: {source}")]
    SecretFile {
        name: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Unsafe(String),
    /// One setting given twice with different values (URL user info and a separate setting).
    #[error("{0}")]
    Conflict(String),
}

/// Bounds of the numeric settings. A value outside them is a mistake rather than a preference:
/// a zero timeout fails every probe as "unreachable", a huge one overflows the arithmetic of
/// deadlines.
pub const CONNECT_TIMEOUT_MS: RangeInclusive<u64> = 1..=600_000;
pub const REQUEST_TIMEOUT_MS: RangeInclusive<u64> = 1..=600_000;
pub const RETRIES: RangeInclusive<u32> = 0..=10;
pub const MAX_FRESHNESS_SECS: RangeInclusive<u64> = 1..=604_800;
/// The job's heartbeat interval: `max(TA_CHECKPOINT_INTERVAL_MS, 1000)`, at most an hour.
pub const STATUS_INTERVAL_MS: RangeInclusive<u64> = 1_000..=3_600_000;
/// The job's quote-freshness window (`TA_QUOTE_STALE_AFTER_MS`, ≤ 0 disables it), at most a day.
pub const MAX_QUOTE_STALE_AFTER_MS: i64 = 86_400_000;
/// `TA_QUOTE_STALE_AFTER_MS` as the production and simulation deployments set it
/// (`pipeline.md` §4.3); the job's code default is 2000.
pub const DEFAULT_QUOTE_STALE_AFTER_MS: i64 = crate::domain::oracle::signals::QUOTE_STALE_AFTER_MS;
/// A quote window as the job reads `TA_QUOTE_STALE_AFTER_MS`: whole milliseconds up to a day,
/// 0 or less for no age limit; the error says what is expected.
pub fn quote_window_ms(value: &str) -> Result<i64, String> {
    match value.parse::<i64>() {
        Ok(ms) if ms <= MAX_QUOTE_STALE_AFTER_MS => Ok(ms),
        _ => Err(format!(
            "a whole number of milliseconds up to {MAX_QUOTE_STALE_AFTER_MS}, as the job's \
             TA_QUOTE_STALE_AFTER_MS (0 or less: no age limit)"
        )),
    }
}

/// Larger config and secret files are refused unread: neither is ever legitimately this big.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
const MAX_SECRET_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Config {
    pub lane: Lane,
    /// Set only by an explicit flag or setting: allows the production lane.
    pub allow_production: bool,
    pub kafka: KafkaTarget,
    pub clickhouse: ClickHouseTarget,
    pub webdriver: WebDriverTarget,
    pub jangar: JangarTarget,
    /// The TA job's Kafka outputs and heartbeat.
    pub outputs: OutputsTarget,
    /// The deployed TA job's settings the oracle mirrors.
    pub ta: TaSettings,
    /// Where screenshots, API responses and other evidence of a run are written.
    pub artifacts_dir: PathBuf,
    /// Bound for each preflight probe.
    pub connect_timeout: Duration,
}

/// Environment variables the validator reads, in one place for the README.
pub mod env {
    pub const LANE: &str = "TORGHUT_E2E_LANE";
    pub const ALLOW_PRODUCTION: &str = "TORGHUT_E2E_ALLOW_PRODUCTION";
    pub const KAFKA_BOOTSTRAP: &str = "TORGHUT_E2E_KAFKA_BOOTSTRAP";
    pub const KAFKA_SECURITY_PROTOCOL: &str = "TORGHUT_E2E_KAFKA_SECURITY_PROTOCOL";
    pub const KAFKA_SASL_MECHANISM: &str = "TORGHUT_E2E_KAFKA_SASL_MECHANISM";
    pub const KAFKA_USERNAME: &str = "TORGHUT_E2E_KAFKA_USERNAME";
    pub const KAFKA_PASSWORD: &str = "TORGHUT_E2E_KAFKA_PASSWORD";
    pub const KAFKA_PASSWORD_FILE: &str = "TORGHUT_E2E_KAFKA_PASSWORD_FILE";
    pub const KAFKA_CA_FILE: &str = "TORGHUT_E2E_KAFKA_CA_FILE";
    pub const CLICKHOUSE_URL: &str = "TORGHUT_E2E_CLICKHOUSE_URL";
    pub const CLICKHOUSE_DATABASE: &str = "TORGHUT_E2E_CLICKHOUSE_DATABASE";
    pub const CLICKHOUSE_USER: &str = "TORGHUT_E2E_CLICKHOUSE_USER";
    pub const CLICKHOUSE_PASSWORD: &str = "TORGHUT_E2E_CLICKHOUSE_PASSWORD";
    pub const CLICKHOUSE_PASSWORD_FILE: &str = "TORGHUT_E2E_CLICKHOUSE_PASSWORD_FILE";
    pub const WEBDRIVER_URL: &str = "TORGHUT_E2E_WEBDRIVER_URL";
    pub const JANGAR_URL: &str = "TORGHUT_E2E_JANGAR_URL";
    pub const JANGAR_LIVE_SYMBOL: &str = "TORGHUT_E2E_JANGAR_LIVE_SYMBOL";
    pub const JANGAR_CLICKHOUSE_DATABASE: &str = "TORGHUT_E2E_JANGAR_CLICKHOUSE_DATABASE";
    pub const JANGAR_STRICT_CONTRACT: &str = "TORGHUT_E2E_JANGAR_STRICT_CONTRACT";
    pub const ARTIFACTS_DIR: &str = "TORGHUT_E2E_ARTIFACTS_DIR";
    pub const SCHEMA_REGISTRY_URL: &str = "TORGHUT_E2E_SCHEMA_REGISTRY_URL";
    pub const CHECK_OUTPUTS: &str = "TORGHUT_E2E_CHECK_OUTPUTS";
    pub const STATUS_INTERVAL_MS: &str = "TORGHUT_E2E_STATUS_INTERVAL_MS";
    pub const TA_QUOTE_STALE_AFTER_MS: &str = "TORGHUT_E2E_TA_QUOTE_STALE_AFTER_MS";
}

/// Source of environment variables; a map in unit tests, the process environment otherwise.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

impl Config {
    /// Loads the file (when given) and the process environment over the defaults, and has the
    /// log and error output redact every secret it holds from now on.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let parsed = match file {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let config = Self::resolve(parsed, &ProcessEnv)?;
        crate::domain::redact::register(config.secrets());
        Ok(config)
    }

    /// [`Config::load`] for a verb that only reads (`audit`): the production lane needs no
    /// `allow_production`, since nothing is published and no row is written; every value is
    /// checked all the same.
    pub fn load_read_only(file: Option<&Path>) -> Result<Self, ConfigError> {
        let parsed = match file {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let config = Self::resolve_values(parsed, &ProcessEnv)?;
        crate::domain::redact::register(config.secrets());
        Ok(config)
    }

    /// Parses config text; the path is only for messages.
    pub fn from_toml(text: &str, path: &Path, env: &dyn Env) -> Result<Self, ConfigError> {
        Self::resolve(parse_file(text, path)?, env)
    }

    /// [`Config::from_toml`] for a verb that only reads (see [`Config::load_read_only`]).
    pub fn from_toml_read_only(
        text: &str,
        path: &Path,
        env: &dyn Env,
    ) -> Result<Self, ConfigError> {
        Self::resolve_values(parse_file(text, path)?, env)
    }

    fn resolve(file: FileConfig, env: &dyn Env) -> Result<Self, ConfigError> {
        let config = Self::resolve_values(file, env)?;
        config.check_safety()?;
        Ok(config)
    }

    /// Every value layered and checked, but not yet the lane's safety.
    fn resolve_values(file: FileConfig, env: &dyn Env) -> Result<Self, ConfigError> {
        let lane = layered(env, env::LANE, "lane", file.lane, Lane::parse)?.unwrap_or(Lane::Sim);
        let allow_production = match env.get(env::ALLOW_PRODUCTION) {
            Some(v) => parse_bool(env::ALLOW_PRODUCTION, &v)?,
            None => file.allow_production.unwrap_or(false),
        };
        let connect_timeout_ms = in_range(
            "connect_timeout_ms",
            file.connect_timeout_ms.unwrap_or(5_000),
            CONNECT_TIMEOUT_MS,
            "milliseconds",
        )?;
        Ok(Config {
            lane,
            allow_production,
            kafka: resolve_kafka(file.kafka, lane, env)?,
            clickhouse: resolve_clickhouse(file.clickhouse, lane, env)?,
            webdriver: WebDriverTarget {
                url: layered(
                    env,
                    env::WEBDRIVER_URL,
                    "webdriver.url",
                    file.webdriver.url,
                    webdriver_url,
                )?,
            },
            jangar: resolve_jangar(file.jangar, env)?,
            outputs: resolve_outputs(file.outputs, lane, env)?,
            ta: resolve_ta(file.ta, env)?,
            artifacts_dir: layered(
                env,
                env::ARTIFACTS_DIR,
                "artifacts_dir",
                file.artifacts_dir.map(|p| p.display().to_string()),
                path_value,
            )?
            .unwrap_or_else(|| PathBuf::from("artifacts")),
            connect_timeout: Duration::from_millis(connect_timeout_ms),
        })
    }

    /// Refuses production targets unless explicitly allowed (`pipeline.md` §7).
    fn check_safety(&self) -> Result<(), ConfigError> {
        if self.allow_production {
            return Ok(());
        }
        let prod_topic = [
            Lane::Prod.trades_topic(),
            Lane::Prod.quotes_topic(),
            Lane::Prod.bars1m_topic(),
        ];
        if self.lane == Lane::Prod
            || prod_topic.contains(&self.kafka.trades_topic.as_str())
            || prod_topic.contains(&self.kafka.quotes_topic.as_str())
            || prod_topic.contains(&self.kafka.bars1m_topic.as_str())
            || self.clickhouse.database == Lane::Prod.database()
        {
            return Err(ConfigError::Unsafe(
                "the target is the production lane (topics torghut.*.v1 or database torghut); \
                 synthetic trades go to the simulation lane unless allow_production = true \
                 (or TORGHUT_E2E_ALLOW_PRODUCTION=1) says otherwise"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Every secret value the configuration holds, for redaction.
    pub fn secrets(&self) -> Vec<&str> {
        [
            Some(&self.kafka.password),
            Some(&self.clickhouse.password),
            self.jangar.auth.as_ref().map(|a| &a.password),
            self.outputs.registry_auth.as_ref().map(|a| &a.password),
        ]
        .into_iter()
        .flatten()
        .map(Secret::expose)
        .filter(|s| !s.is_empty())
        .collect()
    }
}
