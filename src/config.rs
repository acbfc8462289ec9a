//! Where the validator points: lane, Kafka, ClickHouse and WebDriver targets.
//!
//! Layering, lowest first: built-in defaults (the local reference stack), the config file
//! (`torghut-e2e.toml`), then `TORGHUT_E2E_*` environment variables. Secrets are never stored in
//! the file: it names an environment variable or a file that holds them.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

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
    #[error("invalid value {value:?} for {name}: {expected}")]
    Invalid {
        name: String,
        value: String,
        expected: &'static str,
    },
    #[error("cannot read secret file {path} for {name}: {source}")]
    SecretFile {
        name: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Unsafe(String),
}

/// A secret value. Its `Debug` and `Display` never show it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The one way to read the value; grep for it to audit where secrets go.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "<empty>"
        } else {
            "<redacted>"
        })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Which set of topics and database synthetic data goes to (`pipeline.md` §7.2 rule 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lane {
    /// The simulation lane: `torghut.sim.*` topics and database `torghut_sim_default`.
    Sim,
    /// Production topics and database `torghut`; refused unless explicitly allowed.
    Prod,
}

impl Lane {
    fn parse(value: &str) -> Result<Self, ConfigError> {
        match value {
            "sim" => Ok(Lane::Sim),
            "prod" => Ok(Lane::Prod),
            _ => Err(invalid("lane", value, "`sim` or `prod`")),
        }
    }
    pub fn trades_topic(self) -> &'static str {
        match self {
            Lane::Sim => "torghut.sim.trades.v1",
            Lane::Prod => "torghut.trades.v1",
        }
    }
    pub fn quotes_topic(self) -> &'static str {
        match self {
            Lane::Sim => "torghut.sim.quotes.v1",
            Lane::Prod => "torghut.quotes.v1",
        }
    }
    /// `TA_GROUP_ID` of the lane's TA job (`pipeline.md` §1.1).
    pub fn ta_group_id(self) -> &'static str {
        match self {
            Lane::Sim => "torghut-ta-sim-default",
            Lane::Prod => "torghut-ta-live",
        }
    }
    pub fn database(self) -> &'static str {
        match self {
            Lane::Sim => "torghut_sim_default",
            Lane::Prod => "torghut",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    SaslPlaintext,
    SaslSsl,
    Ssl,
}

impl SecurityProtocol {
    fn parse(value: &str) -> Result<Self, ConfigError> {
        match value.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(Self::Plaintext),
            "SASL_PLAINTEXT" => Ok(Self::SaslPlaintext),
            "SASL_SSL" => Ok(Self::SaslSsl),
            "SSL" => Ok(Self::Ssl),
            _ => Err(invalid(
                "kafka.security_protocol",
                value,
                "PLAINTEXT, SASL_PLAINTEXT, SASL_SSL or SSL",
            )),
        }
    }
    /// The librdkafka spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
            Self::Ssl => "SSL",
        }
    }
    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    ScramSha512,
    ScramSha256,
    Plain,
}

impl SaslMechanism {
    fn parse(value: &str) -> Result<Self, ConfigError> {
        match value.to_ascii_uppercase().as_str() {
            "SCRAM-SHA-512" => Ok(Self::ScramSha512),
            "SCRAM-SHA-256" => Ok(Self::ScramSha256),
            "PLAIN" => Ok(Self::Plain),
            _ => Err(invalid(
                "kafka.sasl_mechanism",
                value,
                "SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN",
            )),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::Plain => "PLAIN",
        }
    }
}

#[derive(Debug, Clone)]
pub struct KafkaTarget {
    pub bootstrap: String,
    pub security_protocol: SecurityProtocol,
    pub sasl_mechanism: SaslMechanism,
    pub username: String,
    pub password: Secret,
    /// CA bundle for TLS listeners; the system store when absent.
    pub ca_file: Option<PathBuf>,
    pub trades_topic: String,
    pub quotes_topic: String,
    /// The TA job's consumer group: its committed offsets tell "not consuming" from
    /// "consuming but not writing".
    pub ta_group_id: String,
}

#[derive(Debug, Clone)]
pub struct ClickHouseTarget {
    pub url: String,
    pub database: String,
    pub user: String,
    pub password: Secret,
}

#[derive(Debug, Clone)]
pub struct WebDriverTarget {
    /// A running WebDriver server; when absent the validator starts chromedriver itself.
    pub url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub lane: Lane,
    /// Set only by an explicit flag or setting: allows the production lane.
    pub allow_production: bool,
    pub kafka: KafkaTarget,
    pub clickhouse: ClickHouseTarget,
    pub webdriver: WebDriverTarget,
    pub jangar: JangarTarget,
    /// Where screenshots, API responses and other evidence of a run are written.
    pub artifacts_dir: PathBuf,
    /// Bound for each preflight probe.
    pub connect_timeout: Duration,
}

/// The Jangar deployment the API and browser stages observe.
#[derive(Debug, Clone)]
pub struct JangarTarget {
    /// e.g. `http://jangar.jangar.svc:3000`; the API and browser stages need it.
    pub base_url: Option<String>,
    /// A symbol of the trading universe to observe where Jangar cannot see synthetic symbols
    /// (production lists only the universe); unset means the run's synthetic symbols.
    pub live_symbol: Option<String>,
    pub request_timeout: Duration,
    /// Fail when now − newest `event_ts` seen through the API exceeds this.
    pub max_freshness: Duration,
    /// Retries of an API call that failed to connect or answered 5xx (history is reported).
    pub retries: u32,
    /// The database Jangar reads (its `CH_DATABASE`), for the live-symbol comparison: production
    /// Jangar reads `torghut`, while the validator's own ClickHouse target is the simulation lane.
    /// Read only; unset means `torghut`. Synthetic symbols are compared with the run's database.
    pub clickhouse_database: Option<String>,
    /// Fail on contract drift the page survives (UInt64 as JSON numbers, a Jangar process not in
    /// UTC) instead of reporting it as a warning.
    pub strict_contract: bool,
}

/// The config file, as written by a person. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    lane: Option<String>,
    allow_production: Option<bool>,
    connect_timeout_ms: Option<u64>,
    #[serde(default)]
    kafka: FileKafka,
    #[serde(default)]
    clickhouse: FileClickHouse,
    #[serde(default)]
    webdriver: FileWebDriver,
    #[serde(default)]
    jangar: FileJangar,
    artifacts_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJangar {
    base_url: Option<String>,
    live_symbol: Option<String>,
    request_timeout_ms: Option<u64>,
    max_freshness_secs: Option<u64>,
    retries: Option<u32>,
    clickhouse_database: Option<String>,
    strict_contract: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKafka {
    bootstrap: Option<String>,
    security_protocol: Option<String>,
    sasl_mechanism: Option<String>,
    username: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    trades_topic: Option<String>,
    quotes_topic: Option<String>,
    ta_group_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileClickHouse {
    url: Option<String>,
    database: Option<String>,
    user: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWebDriver {
    url: Option<String>,
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
    /// Loads the file (when given) and the process environment over the defaults.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let parsed = match file {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Self::resolve(parsed, &ProcessEnv)
    }

    /// Parses config text; the path is only for messages.
    pub fn from_toml(text: &str, path: &Path, env: &dyn Env) -> Result<Self, ConfigError> {
        Self::resolve(parse_file(text, path)?, env)
    }

    fn resolve(file: FileConfig, env: &dyn Env) -> Result<Self, ConfigError> {
        let lane = match env.get(env::LANE).or(file.lane) {
            Some(v) => Lane::parse(&v)?,
            None => Lane::Sim,
        };
        let allow_production = match env.get(env::ALLOW_PRODUCTION) {
            Some(v) => parse_bool(env::ALLOW_PRODUCTION, &v)?,
            None => file.allow_production.unwrap_or(false),
        };
        let strict_contract = match env.get(env::JANGAR_STRICT_CONTRACT) {
            Some(v) => parse_bool(env::JANGAR_STRICT_CONTRACT, &v)?,
            None => file.jangar.strict_contract.unwrap_or(false),
        };
        let config = Config {
            lane,
            allow_production,
            kafka: resolve_kafka(file.kafka, lane, env)?,
            clickhouse: resolve_clickhouse(file.clickhouse, lane, env)?,
            webdriver: WebDriverTarget {
                url: env.get(env::WEBDRIVER_URL).or(file.webdriver.url),
            },
            jangar: JangarTarget {
                base_url: env.get(env::JANGAR_URL).or(file.jangar.base_url),
                live_symbol: env.get(env::JANGAR_LIVE_SYMBOL).or(file.jangar.live_symbol),
                request_timeout: Duration::from_millis(
                    file.jangar.request_timeout_ms.unwrap_or(10_000),
                ),
                max_freshness: Duration::from_secs(file.jangar.max_freshness_secs.unwrap_or(180)),
                retries: file.jangar.retries.unwrap_or(2),
                clickhouse_database: env
                    .get(env::JANGAR_CLICKHOUSE_DATABASE)
                    .or(file.jangar.clickhouse_database),
                strict_contract,
            },
            artifacts_dir: env
                .get(env::ARTIFACTS_DIR)
                .map(PathBuf::from)
                .or(file.artifacts_dir)
                .unwrap_or_else(|| PathBuf::from("artifacts")),
            connect_timeout: Duration::from_millis(file.connect_timeout_ms.unwrap_or(5_000)),
        };
        config.check_safety()?;
        Ok(config)
    }

    /// Refuses production targets unless explicitly allowed (`pipeline.md` §7).
    fn check_safety(&self) -> Result<(), ConfigError> {
        if self.allow_production {
            return Ok(());
        }
        let prod_topic = [Lane::Prod.trades_topic(), Lane::Prod.quotes_topic()];
        if self.lane == Lane::Prod
            || prod_topic.contains(&self.kafka.trades_topic.as_str())
            || prod_topic.contains(&self.kafka.quotes_topic.as_str())
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
}

fn resolve_kafka(file: FileKafka, lane: Lane, env: &dyn Env) -> Result<KafkaTarget, ConfigError> {
    let security_protocol = match env
        .get(env::KAFKA_SECURITY_PROTOCOL)
        .or(file.security_protocol)
    {
        Some(v) => SecurityProtocol::parse(&v)?,
        None => SecurityProtocol::SaslPlaintext,
    };
    let sasl_mechanism = match env.get(env::KAFKA_SASL_MECHANISM).or(file.sasl_mechanism) {
        Some(v) => SaslMechanism::parse(&v)?,
        None => SaslMechanism::ScramSha512,
    };
    let password = secret(
        "kafka password",
        env,
        env::KAFKA_PASSWORD,
        env::KAFKA_PASSWORD_FILE,
        file.password_env.as_deref(),
        file.password_file.as_deref(),
    )?;
    if security_protocol.uses_sasl() && password.is_empty() {
        return Err(ConfigError::Invalid {
            name: "kafka password".into(),
            value: String::new(),
            expected: "a password for SASL: TORGHUT_E2E_KAFKA_PASSWORD, \
                       TORGHUT_E2E_KAFKA_PASSWORD_FILE, or kafka.password_env / password_file",
        });
    }
    Ok(KafkaTarget {
        bootstrap: env
            .get(env::KAFKA_BOOTSTRAP)
            .or(file.bootstrap)
            .unwrap_or_else(|| "127.0.0.1:9093".into()),
        security_protocol,
        sasl_mechanism,
        username: env
            .get(env::KAFKA_USERNAME)
            .or(file.username)
            .unwrap_or_else(|| "torghut-ws".into()),
        password,
        ca_file: env
            .get(env::KAFKA_CA_FILE)
            .map(PathBuf::from)
            .or(file.ca_file),
        trades_topic: file
            .trades_topic
            .unwrap_or_else(|| lane.trades_topic().into()),
        quotes_topic: file
            .quotes_topic
            .unwrap_or_else(|| lane.quotes_topic().into()),
        ta_group_id: file
            .ta_group_id
            .unwrap_or_else(|| lane.ta_group_id().into()),
    })
}

fn resolve_clickhouse(
    file: FileClickHouse,
    lane: Lane,
    env: &dyn Env,
) -> Result<ClickHouseTarget, ConfigError> {
    let password = secret(
        "clickhouse password",
        env,
        env::CLICKHOUSE_PASSWORD,
        env::CLICKHOUSE_PASSWORD_FILE,
        file.password_env.as_deref(),
        file.password_file.as_deref(),
    )?;
    let url = env
        .get(env::CLICKHOUSE_URL)
        .or(file.url)
        .unwrap_or_else(|| "http://127.0.0.1:8123".into());
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(invalid(
            "clickhouse.url",
            &url,
            "an http:// or https:// URL",
        ));
    }
    Ok(ClickHouseTarget {
        url,
        database: env
            .get(env::CLICKHOUSE_DATABASE)
            .or(file.database)
            .unwrap_or_else(|| lane.database().into()),
        user: env
            .get(env::CLICKHOUSE_USER)
            .or(file.user)
            .unwrap_or_else(|| "torghut".into()),
        password,
    })
}

/// A secret from, in order: the standard env var, the standard `*_FILE` env var, the env var the
/// file names, the file the config names. Empty when none is set.
fn secret(
    name: &'static str,
    env: &dyn Env,
    var: &str,
    file_var: &str,
    named_var: Option<&str>,
    named_file: Option<&Path>,
) -> Result<Secret, ConfigError> {
    if let Some(v) = env.get(var) {
        return Ok(Secret::new(v));
    }
    let file = env
        .get(file_var)
        .map(PathBuf::from)
        .or(named_file.map(Path::to_path_buf));
    if let Some(v) = named_var.and_then(|n| env.get(n)) {
        return Ok(Secret::new(v));
    }
    match file {
        Some(path) => std::fs::read_to_string(&path)
            .map(|s| Secret::new(s.trim_end_matches(['\n', '\r'])))
            .map_err(|source| ConfigError::SecretFile { name, path, source }),
        None => Ok(Secret::default()),
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_file(&text, path)
}

fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn parse_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(invalid(name, value, "true or false")),
    }
}

fn invalid(name: &str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::Invalid {
        name: name.into(),
        value: value.into(),
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Loads with a Kafka password in the environment unless the text names a password file.
    fn load(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut vars = env(vars);
        if !text.contains("password_file") {
            vars.entry(env::KAFKA_PASSWORD.into())
                .or_insert_with(|| "pw".into());
        }
        Config::from_toml(text, Path::new("t.toml"), &vars)
    }

    #[test]
    fn sasl_without_a_password_is_a_config_error() {
        let err = Config::from_toml("", Path::new("t.toml"), &env(&[])).unwrap_err();
        assert!(
            err.to_string().contains("TORGHUT_E2E_KAFKA_PASSWORD"),
            "{err}"
        );
        let plain = [(env::KAFKA_SECURITY_PROTOCOL, "PLAINTEXT")];
        assert!(Config::from_toml("", Path::new("t.toml"), &env(&plain)).is_ok());
    }

    #[test]
    fn defaults_point_at_the_local_sim_lane() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.lane, Lane::Sim);
        assert_eq!(c.kafka.trades_topic, "torghut.sim.trades.v1");
        assert_eq!(c.clickhouse.database, "torghut_sim_default");
        assert_eq!(c.kafka.security_protocol, SecurityProtocol::SaslPlaintext);
        assert_eq!(c.kafka.sasl_mechanism, SaslMechanism::ScramSha512);
    }

    #[test]
    fn env_overrides_file() {
        let c = load(
            "[clickhouse]\nurl = \"http://file:8123\"\nuser = \"a\"",
            &[(env::CLICKHOUSE_URL, "http://env:8123")],
        )
        .unwrap();
        assert_eq!(c.clickhouse.url, "http://env:8123");
        assert_eq!(c.clickhouse.user, "a");
    }

    #[test]
    fn production_is_refused_unless_allowed() {
        let err = load("lane = \"prod\"", &[]).unwrap_err();
        assert!(matches!(err, ConfigError::Unsafe(_)), "{err}");
        let err = load("[clickhouse]\ndatabase = \"torghut\"", &[]).unwrap_err();
        assert!(matches!(err, ConfigError::Unsafe(_)), "{err}");
        let c = load("lane = \"prod\"\nallow_production = true", &[]).unwrap();
        assert_eq!(c.kafka.trades_topic, "torghut.trades.v1");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = load("[kafka]\nbootstrapp = \"x\"", &[]).unwrap_err();
        assert!(err.to_string().contains("bootstrapp"), "{err}");
        let err = load("[kafka]\nsasl_mechanism = \"MD5\"", &[]).unwrap_err();
        assert!(err.to_string().contains("kafka.sasl_mechanism"), "{err}");
    }

    #[test]
    fn secrets_come_from_env_or_files_and_never_print() {
        let dir = std::env::temp_dir().join(format!("t2e-secret-{}", std::process::id()));
        std::fs::write(&dir, "s3cret\n").unwrap();
        let text = format!("[kafka]\npassword_file = {:?}", dir.display().to_string());
        let c = load(&text, &[(env::CLICKHOUSE_PASSWORD, "chpw")]).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(c.kafka.password.expose(), "s3cret");
        assert_eq!(c.clickhouse.password.expose(), "chpw");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("chpw"),
            "{shown}"
        );
    }

    #[test]
    fn missing_secret_file_is_a_config_error() {
        let err = load("[kafka]\npassword_file = \"/nonexistent/pw\"", &[]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/pw"), "{err}");
    }

    #[test]
    fn jangar_settings_from_file_and_env() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.jangar.base_url, None);
        assert_eq!(c.jangar.request_timeout, Duration::from_secs(10));
        assert_eq!((c.jangar.retries, c.jangar.clickhouse_database), (2, None));
        let text = "[jangar]\nbase_url = \"http://j\"\nrequest_timeout_ms = 1500\nretries = 0\n\
                    max_freshness_secs = 60\nlive_symbol = \"NVDA\"\nclickhouse_database = \"a\"";
        let c = load(text, &[(env::JANGAR_CLICKHOUSE_DATABASE, "torghut")]).unwrap();
        assert_eq!(c.jangar.base_url.as_deref(), Some("http://j"));
        assert_eq!(c.jangar.request_timeout, Duration::from_millis(1500));
        assert_eq!(c.jangar.max_freshness, Duration::from_secs(60));
        assert_eq!(c.jangar.live_symbol.as_deref(), Some("NVDA"));
        // Reading Jangar's production database for the comparison is not a production target.
        assert_eq!(c.jangar.clickhouse_database.as_deref(), Some("torghut"));
        assert_eq!(c.jangar.retries, 0);
    }

    #[test]
    fn strict_contract_from_file_and_env() {
        assert!(!load("", &[]).unwrap().jangar.strict_contract);
        let file = "[jangar]\nstrict_contract = true";
        assert!(load(file, &[]).unwrap().jangar.strict_contract);
        let off = load(file, &[(env::JANGAR_STRICT_CONTRACT, "0")]).unwrap();
        assert!(!off.jangar.strict_contract, "the environment wins");
        let err = load("", &[(env::JANGAR_STRICT_CONTRACT, "maybe")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("TORGHUT_E2E_JANGAR_STRICT_CONTRACT"),
            "{err}"
        );
    }
}
