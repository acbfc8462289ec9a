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

use std::collections::HashMap;
use std::fmt;
use std::io::Read as _;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

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
/// Larger config and secret files are refused unread: neither is ever legitimately this big.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
const MAX_SECRET_BYTES: u64 = 64 * 1024;

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

/// HTTP basic authentication, from the user info of a configured URL.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub user: String,
    pub password: Secret,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BasicAuth({:?}, {:?})", self.user, self.password)
    }
}

impl BasicAuth {
    /// The `Authorization` header, marked sensitive so HTTP clients never log its value.
    pub fn header(&self) -> reqwest::header::HeaderValue {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.user,
            self.password.expose()
        ));
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Basic {token}"))
            .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static(""));
        value.set_sensitive(true);
        value
    }

    /// Default headers for an HTTP client of a target that may need this authentication.
    pub fn headers(auth: Option<&BasicAuth>) -> reqwest::header::HeaderMap {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(auth) = auth {
            headers.insert(reqwest::header::AUTHORIZATION, auth.header());
        }
        headers
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
    fn parse(name: &str, value: &str) -> Result<Self, ConfigError> {
        match value {
            "sim" => Ok(Lane::Sim),
            "prod" => Ok(Lane::Prod),
            _ => Err(invalid(name, value, "`sim` or `prod`")),
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
    fn parse(name: &str, value: &str) -> Result<Self, ConfigError> {
        match value.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(Self::Plaintext),
            "SASL_PLAINTEXT" => Ok(Self::SaslPlaintext),
            "SASL_SSL" => Ok(Self::SaslSsl),
            "SSL" => Ok(Self::Ssl),
            _ => Err(invalid(
                name,
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
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    ScramSha512,
    ScramSha256,
    Plain,
}

impl SaslMechanism {
    fn parse(name: &str, value: &str) -> Result<Self, ConfigError> {
        match value.to_ascii_uppercase().as_str() {
            "SCRAM-SHA-512" => Ok(Self::ScramSha512),
            "SCRAM-SHA-256" => Ok(Self::ScramSha256),
            "PLAIN" => Ok(Self::Plain),
            _ => Err(invalid(
                name,
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
    /// Never carries credentials: user info (or `user`/`password` parameters) given in the
    /// configured URL are in `user` and `password`.
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
    /// e.g. `http://jangar.jangar.svc:3000`; the API and browser stages need it. Never carries
    /// credentials: user info given in the URL is in `auth`.
    pub base_url: Option<String>,
    /// Basic authentication for every request to Jangar (from the base URL's user info).
    pub auth: Option<BasicAuth>,
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
    /// Loads the file (when given) and the process environment over the defaults, and has the
    /// log and error output redact every secret it holds from now on.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let parsed = match file {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let config = Self::resolve(parsed, &ProcessEnv)?;
        crate::redact::register(config.secrets());
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
        crate::redact::register(config.secrets());
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
        let config = Config {
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
            artifacts_dir: layered(
                env,
                env::ARTIFACTS_DIR,
                "artifacts_dir",
                file.artifacts_dir.map(|p| p.display().to_string()),
                path_value,
            )?
            .unwrap_or_else(|| PathBuf::from("artifacts")),
            connect_timeout: Duration::from_millis(connect_timeout_ms),
        };
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

    /// Every secret value the configuration holds, for redaction.
    pub fn secrets(&self) -> Vec<&str> {
        [
            Some(&self.kafka.password),
            Some(&self.clickhouse.password),
            self.jangar.auth.as_ref().map(|a| &a.password),
        ]
        .into_iter()
        .flatten()
        .map(Secret::expose)
        .filter(|s| !s.is_empty())
        .collect()
    }
}

/// A setting from the file and/or its environment variable. Both are checked, each under its
/// own name (the key in the file, the variable), then the variable wins.
fn layered<T>(
    env: &dyn Env,
    var: &str,
    key: &str,
    file: Option<String>,
    check: impl Fn(&str, &str) -> Result<T, ConfigError>,
) -> Result<Option<T>, ConfigError> {
    let from_file = file.map(|v| check(key, &v)).transpose()?;
    match env.get(var) {
        Some(v) => check(var, &v).map(Some),
        None => Ok(from_file),
    }
}

fn in_range<T>(name: &str, value: T, range: RangeInclusive<T>, unit: &str) -> Result<T, ConfigError>
where
    T: PartialOrd + fmt::Display + Copy,
{
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(invalid(
            name,
            &value.to_string(),
            format!(
                "must be between {} and {} ({unit})",
                range.start(),
                range.end()
            ),
        ))
    }
}

fn non_empty(name: &str, value: &str) -> Result<String, ConfigError> {
    if value.trim().is_empty() || value.chars().any(char::is_control) {
        return Err(invalid(
            name,
            value,
            "a non-empty value without control characters",
        ));
    }
    Ok(value.to_string())
}

fn path_value(name: &str, value: &str) -> Result<PathBuf, ConfigError> {
    non_empty(name, value).map(PathBuf::from)
}

/// A Kafka topic or group name as the broker accepts it.
fn kafka_name(name: &str, value: &str) -> Result<String, ConfigError> {
    let legal = !value.is_empty()
        && value.len() <= 249
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !legal {
        return Err(invalid(
            name,
            value,
            "1-249 characters of A-Z a-z 0-9 . _ -",
        ));
    }
    Ok(value.to_string())
}

/// `host:port[,host:port…]`, each with an optional `PROTOCOL://` prefix as librdkafka allows;
/// a port, when given, is a number from 1 to 65535.
fn bootstrap(name: &str, value: &str) -> Result<String, ConfigError> {
    let expected = "host:port[,host:port…] with ports from 1 to 65535";
    if value.contains('@') {
        return Err(invalid(
            name,
            value,
            "no credentials: kafka.username and password_file (or TORGHUT_E2E_KAFKA_PASSWORD) \
             carry them",
        ));
    }
    let servers: Vec<&str> = value.split(',').map(str::trim).collect();
    if servers.iter().all(|s| s.is_empty()) {
        return Err(invalid(name, value, expected));
    }
    for server in servers {
        let address = match server.split_once("://") {
            Some((protocol, rest)) => {
                SecurityProtocol::parse(name, protocol).map_err(|_| {
                    invalid(
                        name,
                        value,
                        "a protocol prefix of PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
                    )
                })?;
                rest
            }
            None => server,
        };
        let (host, port) = match address.strip_prefix('[') {
            // An IPv6 literal: `[::1]:9092`.
            Some(v6) => match v6.split_once(']') {
                Some((host, rest)) => (host, rest.strip_prefix(':')),
                None => return Err(invalid(name, value, expected)),
            },
            None => match address.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (address, None),
            },
        };
        let host_ok = !host.is_empty()
            && !host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '?' | '#'));
        let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p != 0));
        if !host_ok || !port_ok {
            return Err(invalid(name, value, expected));
        }
    }
    Ok(value.to_string())
}

/// An `http://` or `https://` URL with a host and a valid port.
fn http_url(name: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value.trim())
        .map_err(|e| invalid(name, value, format!("an http:// or https:// URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(name, value, "an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(name, value, "a URL with a host"));
    }
    if url.port() == Some(0) {
        return Err(invalid(name, value, "a port from 1 to 65535"));
    }
    Ok(url)
}

/// The WebDriver client cannot authenticate: credentials in its URL are refused rather than
/// sent nowhere and logged.
fn webdriver_url(name: &str, value: &str) -> Result<String, ConfigError> {
    let url = http_url(name, value)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            name,
            value,
            "a URL without user info (the WebDriver client does not authenticate)",
        ));
    }
    Ok(url_text(&url))
}

/// Credentials found in a URL, percent-decoded.
#[derive(Default)]
struct UrlCredentials {
    user: Option<String>,
    password: Option<Secret>,
}

/// Takes the user info (and the query parameters `params` names, e.g. ClickHouse's `user` and
/// `password`) out of `url`.
fn take_credentials(
    name: &str,
    url: &mut Url,
    params: Option<(&str, &str)>,
) -> Result<UrlCredentials, ConfigError> {
    let shown = url.as_str().to_string();
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| invalid(name, &shown, "user info that decodes to UTF-8"))
    };
    let mut found = UrlCredentials::default();
    if !url.username().is_empty() {
        found.user = Some(decode(url.username())?);
    }
    if let Some(p) = url.password() {
        found.password = Some(Secret::new(decode(p)?));
    }
    // Only fails for URLs that cannot have user info, which had none to take.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let Some((user_param, password_param)) = params else {
        return Ok(found);
    };
    if url
        .query_pairs()
        .any(|(k, _)| k == user_param || k == password_param)
    {
        let mut kept = Vec::new();
        for (k, v) in url.query_pairs() {
            if k == user_param {
                found.user = Some(v.into_owned());
            } else if k == password_param {
                found.password = Some(Secret::new(v.into_owned()));
            } else {
                kept.push((k.into_owned(), v.into_owned()));
            }
        }
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    Ok(found)
}

/// The URL as the program keeps it: without the `/` the URL writer appends to a bare host.
fn url_text(url: &Url) -> String {
    let text = url.as_str();
    if url.path() == "/" && url.query().is_none() && url.fragment().is_none() {
        text.trim_end_matches('/').to_string()
    } else {
        text.to_string()
    }
}

/// An `http(s)://` URL whose user info becomes basic authentication: the URL without it (as
/// the program keeps and prints it) and the credentials (Jangar, the Pushgateway).
pub fn url_with_auth(name: &str, value: &str) -> Result<(String, Option<BasicAuth>), ConfigError> {
    let mut url = http_url(name, value)?;
    let found = take_credentials(name, &mut url, None)?;
    let auth = match (found.user, found.password) {
        (None, None) => None,
        (user, password) => Some(BasicAuth {
            user: user.unwrap_or_default(),
            password: password.unwrap_or_default(),
        }),
    };
    Ok((url_text(&url), auth))
}

fn resolve_jangar(file: FileJangar, env: &dyn Env) -> Result<JangarTarget, ConfigError> {
    let base = layered(
        env,
        env::JANGAR_URL,
        "jangar.base_url",
        file.base_url,
        url_with_auth,
    )?;
    let (base_url, auth) = match base {
        Some((url, auth)) => (Some(url), auth),
        None => (None, None),
    };
    let request_timeout_ms = in_range(
        "jangar.request_timeout_ms",
        file.request_timeout_ms.unwrap_or(10_000),
        REQUEST_TIMEOUT_MS,
        "milliseconds",
    )?;
    let max_freshness_secs = in_range(
        "jangar.max_freshness_secs",
        file.max_freshness_secs.unwrap_or(180),
        MAX_FRESHNESS_SECS,
        "seconds",
    )?;
    Ok(JangarTarget {
        base_url,
        auth,
        live_symbol: layered(
            env,
            env::JANGAR_LIVE_SYMBOL,
            "jangar.live_symbol",
            file.live_symbol,
            non_empty,
        )?,
        request_timeout: Duration::from_millis(request_timeout_ms),
        max_freshness: Duration::from_secs(max_freshness_secs),
        retries: in_range(
            "jangar.retries",
            file.retries.unwrap_or(2),
            RETRIES,
            "retries",
        )?,
        clickhouse_database: layered(
            env,
            env::JANGAR_CLICKHOUSE_DATABASE,
            "jangar.clickhouse_database",
            file.clickhouse_database,
            non_empty,
        )?,
        strict_contract: strict_contract(file.strict_contract, env)?,
    })
}

/// `jangar.strict_contract`: the environment over the file.
fn strict_contract(file: Option<bool>, env: &dyn Env) -> Result<bool, ConfigError> {
    match env.get(env::JANGAR_STRICT_CONTRACT) {
        Some(v) => parse_bool(env::JANGAR_STRICT_CONTRACT, &v),
        None => Ok(file.unwrap_or(false)),
    }
}

fn resolve_kafka(file: FileKafka, lane: Lane, env: &dyn Env) -> Result<KafkaTarget, ConfigError> {
    let security_protocol = layered(
        env,
        env::KAFKA_SECURITY_PROTOCOL,
        "kafka.security_protocol",
        file.security_protocol,
        SecurityProtocol::parse,
    )?
    .unwrap_or(SecurityProtocol::SaslPlaintext);
    let sasl_mechanism = layered(
        env,
        env::KAFKA_SASL_MECHANISM,
        "kafka.sasl_mechanism",
        file.sasl_mechanism,
        SaslMechanism::parse,
    )?
    .unwrap_or(SaslMechanism::ScramSha512);
    let password = secret(
        "kafka password",
        env,
        SecretSources {
            var: env::KAFKA_PASSWORD,
            file_var: env::KAFKA_PASSWORD_FILE,
            named_var: file.password_env.as_deref(),
            named_file: file.password_file.as_deref(),
        },
    )?;
    if security_protocol.uses_sasl() && password.is_empty() {
        return Err(invalid(
            "kafka password",
            "",
            "a password for SASL: TORGHUT_E2E_KAFKA_PASSWORD, \
             TORGHUT_E2E_KAFKA_PASSWORD_FILE, or kafka.password_env / password_file",
        ));
    }
    let ca_file = layered(
        env,
        env::KAFKA_CA_FILE,
        "kafka.ca_file",
        file.ca_file.as_ref().map(|p| p.display().to_string()),
        path_value,
    )?;
    // The bundle in effect must open when TLS uses it (librdkafka would fail later, and say
    // less); an overridden file value was checked as a path above.
    if let (true, Some(path)) = (security_protocol.uses_tls(), ca_file.as_deref()) {
        let name = match env.get(env::KAFKA_CA_FILE) {
            Some(_) => env::KAFKA_CA_FILE,
            None => "kafka.ca_file",
        };
        readable_file(name, path)?;
    }
    Ok(KafkaTarget {
        bootstrap: layered(
            env,
            env::KAFKA_BOOTSTRAP,
            "kafka.bootstrap",
            file.bootstrap,
            bootstrap,
        )?
        .unwrap_or_else(|| "127.0.0.1:9093".into()),
        security_protocol,
        sasl_mechanism,
        username: layered(
            env,
            env::KAFKA_USERNAME,
            "kafka.username",
            file.username,
            non_empty,
        )?
        .unwrap_or_else(|| "torghut-ws".into()),
        password,
        ca_file,
        trades_topic: file
            .trades_topic
            .map(|t| kafka_name("kafka.trades_topic", &t))
            .transpose()?
            .unwrap_or_else(|| lane.trades_topic().into()),
        quotes_topic: file
            .quotes_topic
            .map(|t| kafka_name("kafka.quotes_topic", &t))
            .transpose()?
            .unwrap_or_else(|| lane.quotes_topic().into()),
        ta_group_id: file
            .ta_group_id
            .map(|t| kafka_name("kafka.ta_group_id", &t))
            .transpose()?
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
        SecretSources {
            var: env::CLICKHOUSE_PASSWORD,
            file_var: env::CLICKHOUSE_PASSWORD_FILE,
            named_var: file.password_env.as_deref(),
            named_file: file.password_file.as_deref(),
        },
    )?;
    let located = layered(
        env,
        env::CLICKHOUSE_URL,
        "clickhouse.url",
        file.url,
        |name, value| {
            let mut url = http_url(name, value)?;
            // ClickHouse also takes credentials as `user` and `password` parameters.
            let found = take_credentials(name, &mut url, Some(("user", "password")))?;
            Ok((url_text(&url), found))
        },
    )?;
    let (url, in_url) =
        located.unwrap_or_else(|| ("http://127.0.0.1:8123".into(), Default::default()));
    let user = layered(
        env,
        env::CLICKHOUSE_USER,
        "clickhouse.user",
        file.user,
        non_empty,
    )?;
    let user = match (user, in_url.user) {
        (Some(set), Some(from_url)) if set != from_url => {
            return Err(ConfigError::Conflict(format!(
                "clickhouse.url names user {from_url:?} and the ClickHouse user is also set to \
                 {set:?} (clickhouse.user or {}): give it once",
                env::CLICKHOUSE_USER
            )))
        }
        (set, from_url) => set.or(from_url).unwrap_or_else(|| "torghut".into()),
    };
    let password = match in_url.password {
        Some(from_url) if !password.is_empty() && password != from_url => {
            return Err(ConfigError::Conflict(format!(
                "clickhouse.url carries a password and another ClickHouse password is set \
                 ({}, {} or clickhouse.password_env / password_file): give it once",
                env::CLICKHOUSE_PASSWORD,
                env::CLICKHOUSE_PASSWORD_FILE
            )))
        }
        Some(from_url) => from_url,
        None => password,
    };
    Ok(ClickHouseTarget {
        url,
        database: layered(
            env,
            env::CLICKHOUSE_DATABASE,
            "clickhouse.database",
            file.database,
            non_empty,
        )?
        .unwrap_or_else(|| lane.database().into()),
        user,
        password,
    })
}

/// Where a secret may come from, in this order: the standard variable, the standard `*_FILE`
/// variable, the variable the file names, the file the config names.
struct SecretSources<'a> {
    var: &'a str,
    file_var: &'a str,
    named_var: Option<&'a str>,
    named_file: Option<&'a Path>,
}

/// The secret from the first source that has one; empty when none does. A file named but
/// overridden is checked as a value (a path), not opened: the file may exist only where the
/// config is deployed (a mounted secret), while an override is used elsewhere.
fn secret(
    name: &'static str,
    env: &dyn Env,
    sources: SecretSources<'_>,
) -> Result<Secret, ConfigError> {
    if let Some(path) = sources.named_file {
        path_value(&format!("{name} file"), &path.display().to_string())?;
    }
    if let Some(v) = env.get(sources.var) {
        return Ok(Secret::new(v));
    }
    if let Some(path) = env.get(sources.file_var) {
        return read_secret(name, Path::new(&path));
    }
    if let Some(v) = sources.named_var.and_then(|n| env.get(n)) {
        return Ok(Secret::new(v));
    }
    match sources.named_file {
        Some(path) => read_secret(name, path),
        None => Ok(Secret::default()),
    }
}

/// A file that exists, is a regular file and opens for reading (nothing is read).
fn readable_file(name: &str, path: &Path) -> Result<(), ConfigError> {
    let opened = std::fs::File::open(path).and_then(|f| f.metadata());
    match opened {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(invalid(
            name,
            &path.display().to_string(),
            "a readable file (this is not a regular file)",
        )),
        Err(e) => Err(invalid(
            name,
            &path.display().to_string(),
            format!("a readable file ({e})"),
        )),
    }
}

fn read_secret(name: &'static str, path: &Path) -> Result<Secret, ConfigError> {
    let text = read_bounded(path, MAX_SECRET_BYTES).map_err(|source| ConfigError::SecretFile {
        name,
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Secret::new(text.trim_end_matches(['\n', '\r'])))
}

/// The file's text, refused when larger than `limit` bytes (memory stays bounded).
fn read_bounded(path: &Path, limit: u64) -> std::io::Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(text)
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = read_bounded(path, MAX_CONFIG_BYTES).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_file(&text, path)
}

fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        // The message quotes the offending line, which may hold a credential.
        message: crate::redact::scrub_text(&e.to_string()),
    })
}

fn parse_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(invalid(name, value, "true or false")),
    }
}

/// An invalid value; the value is shown with any URL credentials redacted.
fn invalid(name: &str, value: &str, expected: impl Into<String>) -> ConfigError {
    let shown = if value.contains("://") {
        crate::redact::url(value)
    } else if let Some((_, host)) = value.rsplit_once('@') {
        // `user:password@host:port` in a bootstrap list.
        format!("{}@{host}", crate::redact::REDACTED)
    } else {
        value.to_string()
    };
    ConfigError::Invalid {
        name: name.into(),
        value: shown,
        expected: expected.into(),
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

    /// The error for `text` (plus `vars`): a config error, naming `key`.
    fn refused(text: &str, vars: &[(&str, &str)], key: &str) -> String {
        let err = load(text, vars).expect_err(text).to_string();
        assert!(err.contains(key), "{text:?} {vars:?}: {err}");
        err
    }

    #[test]
    fn malformed_targets_are_config_errors_naming_the_key() {
        for (text, key) in [
            ("[kafka]\nbootstrap = \"\"", "kafka.bootstrap"),
            ("[kafka]\nbootstrap = \" , \"", "kafka.bootstrap"),
            ("[kafka]\nbootstrap = \"broker:port\"", "kafka.bootstrap"),
            ("[kafka]\nbootstrap = \"broker:70000\"", "kafka.bootstrap"),
            ("[kafka]\nbootstrap = \"a:9092,b:0\"", "kafka.bootstrap"),
            ("[kafka]\nbootstrap = \"FTP://a:9092\"", "kafka.bootstrap"),
            (
                "[kafka]\ntrades_topic = \"has space\"",
                "kafka.trades_topic",
            ),
            ("[clickhouse]\nurl = \"http://ch:abc\"", "clickhouse.url"),
            ("[clickhouse]\nurl = \"http://ch:65536\"", "clickhouse.url"),
            ("[clickhouse]\nurl = \"http://ch:0\"", "clickhouse.url"),
            ("[clickhouse]\nurl = \"ch:8123\"", "clickhouse.url"),
            ("[clickhouse]\nurl = \"http://\"", "clickhouse.url"),
            ("[jangar]\nbase_url = \"not a url\"", "jangar.base_url"),
            ("[webdriver]\nurl = \"http://wd:99999\"", "webdriver.url"),
            ("connect_timeout_ms = 0", "connect_timeout_ms"),
            (
                "connect_timeout_ms = 18446744073709551615",
                "connect_timeout_ms",
            ),
            (
                "[jangar]\nrequest_timeout_ms = 0",
                "jangar.request_timeout_ms",
            ),
            ("[jangar]\nretries = 4000000000", "jangar.retries"),
            (
                "[jangar]\nmax_freshness_secs = 0",
                "jangar.max_freshness_secs",
            ),
        ] {
            refused(text, &[], key);
        }
        // Ports and IPv6 literals that are fine.
        let c = load(
            "[kafka]\nbootstrap = \"a:9092, [::1]:9093,SASL_SSL://b:1,c\"",
            &[],
        )
        .unwrap();
        assert!(c.kafka.bootstrap.starts_with("a:9092"));
    }

    #[test]
    fn an_env_override_does_not_hide_a_broken_file_value() {
        let overridden = [
            (
                "[clickhouse]\nurl = \"http://ch:99999\"",
                env::CLICKHOUSE_URL,
                "http://ok:8123",
                "clickhouse.url",
            ),
            (
                "[kafka]\nbootstrap = \"\"",
                env::KAFKA_BOOTSTRAP,
                "ok:9092",
                "kafka.bootstrap",
            ),
            ("lane = \"staging\"", env::LANE, "sim", "lane"),
            (
                "[jangar]\nbase_url = \"jangar\"",
                env::JANGAR_URL,
                "http://ok",
                "jangar.base_url",
            ),
        ];
        for (text, var, good, key) in overridden {
            refused(text, &[(var, good)], key);
        }
        // And a broken variable over a good file value is named by the variable.
        refused(
            "[clickhouse]\nurl = \"http://ch:8123\"",
            &[(env::CLICKHOUSE_URL, "http://ch:port")],
            env::CLICKHOUSE_URL,
        );
        // A password file named in the file is checked as a path even when the environment
        // gives the password (it need not exist here: it may be a secret mounted elsewhere).
        refused(
            "[clickhouse]\npassword_file = \"\"",
            &[
                (env::CLICKHOUSE_PASSWORD, "pw"),
                (env::KAFKA_PASSWORD, "pw"),
            ],
            "clickhouse password file",
        );
        let elsewhere = "[clickhouse]\npassword_file = \"/var/run/secrets/ch/password\"";
        let vars = [
            (env::CLICKHOUSE_PASSWORD, "pw"),
            (env::KAFKA_PASSWORD, "pw"),
        ];
        assert!(load(elsewhere, &vars).is_ok());
    }

    #[test]
    fn a_missing_ca_file_fails_when_tls_is_used() {
        let text = "[kafka]\nsecurity_protocol = \"SASL_SSL\"\nca_file = \"/nonexistent/ca.pem\"";
        refused(text, &[], "kafka.ca_file");
        refused(
            "[kafka]\nsecurity_protocol = \"SSL\"",
            &[(env::KAFKA_CA_FILE, "/nonexistent/env-ca.pem")],
            env::KAFKA_CA_FILE,
        );
        // Without TLS the CA bundle is not used, so not opened.
        let plain =
            "[kafka]\nsecurity_protocol = \"SASL_PLAINTEXT\"\nca_file = \"/nonexistent/ca.pem\"";
        assert!(load(plain, &[]).is_ok());
        let ca = std::env::temp_dir().join(format!("t2e-ca-{}.pem", std::process::id()));
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let text = format!(
            "[kafka]\nsecurity_protocol = \"SSL\"\nca_file = {:?}",
            ca.display().to_string()
        );
        let c = load(&text, &[]);
        std::fs::remove_file(&ca).ok();
        assert_eq!(c.unwrap().kafka.ca_file, Some(ca));
    }

    #[test]
    fn url_credentials_move_into_the_clients_auth() {
        let c = load(
            "[clickhouse]\nurl = \"http://ch-user:s%40cret%2F1@ch:8123\"\n\
             [jangar]\nbase_url = \"https://j-user:j%20pw@jangar.svc/\"",
            &[],
        )
        .unwrap();
        assert_eq!(c.clickhouse.url, "http://ch:8123");
        assert_eq!(c.clickhouse.user, "ch-user");
        assert_eq!(c.clickhouse.password.expose(), "s@cret/1");
        assert_eq!(c.jangar.base_url.as_deref(), Some("https://jangar.svc"));
        let auth = c.jangar.auth.as_ref().unwrap();
        assert_eq!(
            (auth.user.as_str(), auth.password.expose()),
            ("j-user", "j pw")
        );
        assert!(auth.header().is_sensitive());
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("cret") && !shown.contains("j pw"),
            "{shown}"
        );
        assert_eq!(c.secrets(), vec!["pw", "s@cret/1", "j pw"]);
        // ClickHouse's own credential parameters move too; other parameters stay.
        let c = load(
            "[clickhouse]\nurl = \"http://ch:8123/?password=qp&x=1\"",
            &[],
        )
        .unwrap();
        assert_eq!(c.clickhouse.url, "http://ch:8123/?x=1");
        assert_eq!(c.clickhouse.password.expose(), "qp");
    }

    #[test]
    fn credentials_given_twice_must_agree() {
        let text = "[clickhouse]\nurl = \"http://a:pw1@ch:8123\"";
        refused(text, &[(env::CLICKHOUSE_PASSWORD, "pw2")], "give it once");
        refused(text, &[(env::CLICKHOUSE_USER, "b")], "give it once");
        let same = load(
            text,
            &[
                (env::CLICKHOUSE_PASSWORD, "pw1"),
                (env::CLICKHOUSE_USER, "a"),
            ],
        );
        assert_eq!(same.unwrap().clickhouse.password.expose(), "pw1");
        // The WebDriver client cannot authenticate: its URL must not carry credentials.
        refused(
            "[webdriver]\nurl = \"http://u:p@wd:9515\"",
            &[],
            "webdriver.url",
        );
    }

    #[test]
    fn an_invalid_url_is_shown_without_its_credentials() {
        let err = refused(
            "[clickhouse]\nurl = \"http://u:hunter22@ch:99999\"",
            &[],
            "clickhouse.url",
        );
        assert!(!err.contains("hunter22"), "{err}");
        let err = refused(
            "[kafka]\nbootstrap = \"u:hunter22@broker:9092\"",
            &[],
            "kafka.bootstrap",
        );
        assert!(!err.contains("hunter22"), "{err}");
        let err = refused(
            "[jangar]\nbase_url = \"ftp://u:hunter22@j\"",
            &[],
            "jangar.base_url",
        );
        assert!(!err.contains("hunter22"), "{err}");
    }

    #[test]
    fn oversized_config_and_secret_files_are_refused_unread() {
        let dir = std::env::temp_dir().join(format!("t2e-big-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big.toml");
        std::fs::write(&big, "#".repeat(MAX_CONFIG_BYTES as usize + 1)).unwrap();
        let err = Config::load(Some(&big)).unwrap_err().to_string();
        assert!(err.contains("larger than"), "{err}");
        let pw = dir.join("pw");
        std::fs::write(&pw, "x".repeat(MAX_SECRET_BYTES as usize + 1)).unwrap();
        let err = load(
            &format!("[kafka]\npassword_file = {:?}", pw.display().to_string()),
            &[],
        )
        .unwrap_err()
        .to_string();
        std::fs::remove_dir_all(&dir).ok();
        assert!(err.contains("larger than"), "{err}");
    }
}
