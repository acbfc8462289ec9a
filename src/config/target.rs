//! The targets: the lane, and how to reach Kafka, ClickHouse, the WebDriver and Jangar.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::check::invalid;
use super::{BasicAuth, ConfigError, Secret};

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
    pub(super) fn parse(name: &str, value: &str) -> Result<Self, ConfigError> {
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
    /// The forwarder's 1-minute bars (`bars` and `updatedBars`), the TA job's `TA_BARS1M_TOPIC`.
    pub fn bars1m_topic(self) -> &'static str {
        match self {
            Lane::Sim => "torghut.sim.bars.1m.v1",
            Lane::Prod => "torghut.bars.1m.v1",
        }
    }
    /// The TA job's output topics: `ta.bars.1s`, `ta.signals`, `ta.status` (`pipeline.md` §1.1).
    pub fn output_topics(self) -> [&'static str; 3] {
        match self {
            Lane::Sim => [
                "torghut.sim.ta.bars.1s.v1",
                "torghut.sim.ta.signals.v1",
                "torghut.sim.ta.status.v1",
            ],
            Lane::Prod => [
                "torghut.ta.bars.1s.v1",
                "torghut.ta.signals.v1",
                "torghut.ta.status.v1",
            ],
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
    pub(super) fn parse(name: &str, value: &str) -> Result<Self, ConfigError> {
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
    pub(super) fn parse(name: &str, value: &str) -> Result<Self, ConfigError> {
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
    /// Where a scenario's 1-minute bars go.
    pub bars1m_topic: String,
    /// The TA job's consumer group: its committed offsets tell "not consuming" from
    /// "consuming but not writing".
    pub ta_group_id: String,
}

/// The TA job's Kafka outputs and how to read them (issue 18).
#[derive(Debug, Clone)]
pub struct OutputsTarget {
    /// Off for a target whose job writes no outputs: the outputs and heartbeat checks are
    /// skipped (and said to be in the report), preflight does not look for the topics.
    pub enabled: bool,
    /// The Confluent-compatible registry base the job writes through (`TA_SCHEMA_REGISTRY_URL`),
    /// e.g. `http://karapace.kafka:8081` or Apicurio's `…/apis/ccompat/v7`. Never carries
    /// credentials: user info given in the URL is in `registry_auth`. Absent: plain Avro.
    pub schema_registry_url: Option<String>,
    pub registry_auth: Option<BasicAuth>,
    pub bars_topic: String,
    pub signals_topic: String,
    pub status_topic: String,
    /// The job's heartbeat interval (`max(TA_CHECKPOINT_INTERVAL_MS, 1000)`, 60 s in production).
    pub status_interval: Duration,
}

/// The deployed TA job's settings that change what it emits, so the oracle must know them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaSettings {
    /// `TA_QUOTE_STALE_AFTER_MS`: a quote older than this at the bar end is not attached; ≤ 0
    /// disables the age limit. It also sets how long a reused pool symbol waits after its
    /// history, so no earlier quote reaches the run's bars.
    pub quote_stale_after_ms: i64,
}

impl Default for TaSettings {
    fn default() -> Self {
        TaSettings {
            quote_stale_after_ms: super::DEFAULT_QUOTE_STALE_AFTER_MS,
        }
    }
}

impl TaSettings {
    /// The signal operator's configuration for this deployment.
    pub fn signal_config(&self) -> crate::domain::oracle::SignalConfig {
        crate::domain::oracle::SignalConfig {
            quote_stale_after_ms: self.quote_stale_after_ms,
            ..Default::default()
        }
    }
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
