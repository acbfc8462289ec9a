//! The config file as written: every key optional, unknown keys refused.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::secret::read_bounded;
use super::{ConfigError, MAX_CONFIG_BYTES};

/// The config file, as written by a person. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) lane: Option<String>,
    pub(super) allow_production: Option<bool>,
    pub(super) connect_timeout_ms: Option<u64>,
    #[serde(default)]
    pub(super) kafka: FileKafka,
    #[serde(default)]
    pub(super) clickhouse: FileClickHouse,
    #[serde(default)]
    pub(super) webdriver: FileWebDriver,
    #[serde(default)]
    pub(super) jangar: FileJangar,
    #[serde(default)]
    pub(super) outputs: FileOutputs,
    #[serde(default)]
    pub(super) ta: FileTa,
    pub(super) artifacts_dir: Option<PathBuf>,
}

/// The deployed TA job's settings the oracle must mirror (`[ta]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTa {
    pub(super) quote_stale_after_ms: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileJangar {
    pub(super) base_url: Option<String>,
    pub(super) live_symbol: Option<String>,
    pub(super) request_timeout_ms: Option<u64>,
    pub(super) max_freshness_secs: Option<u64>,
    pub(super) retries: Option<u32>,
    pub(super) clickhouse_database: Option<String>,
    pub(super) strict_contract: Option<bool>,
}

/// The TA job's Kafka outputs (`[outputs]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileOutputs {
    pub(super) enabled: Option<bool>,
    pub(super) schema_registry_url: Option<String>,
    pub(super) bars_topic: Option<String>,
    pub(super) signals_topic: Option<String>,
    pub(super) status_topic: Option<String>,
    pub(super) status_interval_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileKafka {
    pub(super) bootstrap: Option<String>,
    pub(super) security_protocol: Option<String>,
    pub(super) sasl_mechanism: Option<String>,
    pub(super) username: Option<String>,
    pub(super) password_env: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) trades_topic: Option<String>,
    pub(super) quotes_topic: Option<String>,
    pub(super) bars1m_topic: Option<String>,
    pub(super) ta_group_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileClickHouse {
    pub(super) url: Option<String>,
    pub(super) database: Option<String>,
    pub(super) user: Option<String>,
    pub(super) password_env: Option<String>,
    pub(super) password_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileWebDriver {
    pub(super) url: Option<String>,
}

pub(super) fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = read_bounded(path, MAX_CONFIG_BYTES).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_file(&text, path)
}

pub(super) fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        // The message quotes the offending line, which may hold a credential.
        message: crate::domain::redact::scrub_text(&e.to_string()),
    })
}
