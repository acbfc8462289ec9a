//! Each target resolved from the defaults, the file and the environment, in that order.

use std::time::Duration;

use super::check::{
    bootstrap, bootstrap_is_loopback, http_url, in_range, invalid, kafka_name, non_empty,
    parse_bool, path_value, take_credentials, url_is_loopback, url_text, url_with_auth,
    UrlCredentials,
};
use super::file::{FileClickHouse, FileJangar, FileKafka, FileOutputs, FileTa};
use super::secret::{readable_file, secret, SecretSources};
use super::{
    env, quote_window_ms, ClickHouseTarget, ConfigError, Env, JangarTarget, KafkaTarget, Lane,
    OutputsTarget, SaslMechanism, Secret, SecurityProtocol, TaSettings, MAX_FRESHNESS_SECS,
    REQUEST_TIMEOUT_MS, RETRIES, STATUS_INTERVAL_MS,
};

/// The built-in defaults are the local stack (`scripts/stack up` with its defaults), never a
/// remote target: Kafka's PLAINTEXT listener without credentials, its SASL listener with
/// them, ClickHouse on loopback as the stack's user with the stack's published default
/// password (`STACK_CH_PASSWORD`, a test fixture's, not a secret). A target configured
/// elsewhere gets none of these credentials.
const LOCAL_STACK_KAFKA_PLAINTEXT: &str = "127.0.0.1:9092";
const LOCAL_STACK_KAFKA_SASL: &str = "127.0.0.1:9093";
const LOCAL_STACK_KAFKA_USER: &str = "torghut-ws";
const LOCAL_STACK_CLICKHOUSE_URL: &str = "http://127.0.0.1:8123";
const LOCAL_STACK_CLICKHOUSE_USER: &str = "torghut";
const LOCAL_STACK_CLICKHOUSE_PASSWORD: &str = "torghut-e2e-local";

fn local_stack_bootstrap(protocol: SecurityProtocol) -> &'static str {
    match protocol {
        SecurityProtocol::Plaintext => LOCAL_STACK_KAFKA_PLAINTEXT,
        _ => LOCAL_STACK_KAFKA_SASL,
    }
}

/// A setting from the file and/or its environment variable. Both are checked, each under its
/// own name (the key in the file, the variable), then the variable wins.
pub(super) fn layered<T>(
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

pub(super) fn resolve_jangar(file: FileJangar, env: &dyn Env) -> Result<JangarTarget, ConfigError> {
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
pub(super) fn strict_contract(file: Option<bool>, env: &dyn Env) -> Result<bool, ConfigError> {
    match env.get(env::JANGAR_STRICT_CONTRACT) {
        Some(v) => parse_bool(env::JANGAR_STRICT_CONTRACT, &v),
        None => Ok(file.unwrap_or(false)),
    }
}

pub(super) fn resolve_kafka(
    file: FileKafka,
    lane: Lane,
    env: &dyn Env,
) -> Result<KafkaTarget, ConfigError> {
    let protocol = layered(
        env,
        env::KAFKA_SECURITY_PROTOCOL,
        "kafka.security_protocol",
        file.security_protocol,
        SecurityProtocol::parse,
    )?;
    let sasl_mechanism = layered(
        env,
        env::KAFKA_SASL_MECHANISM,
        "kafka.sasl_mechanism",
        file.sasl_mechanism,
        SaslMechanism::parse,
    )?
    .unwrap_or(SaslMechanism::ScramSha512);
    let username = layered(
        env,
        env::KAFKA_USERNAME,
        "kafka.username",
        file.username,
        non_empty,
    )?;
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
    let servers = layered(
        env,
        env::KAFKA_BOOTSTRAP,
        "kafka.bootstrap",
        file.bootstrap,
        bootstrap,
    )?;
    let security_protocol = match protocol {
        Some(p) => p,
        None if username.is_some() || !password.is_empty() => SecurityProtocol::SaslPlaintext,
        // Nothing says how to authenticate: the local stack's open listener, which only a
        // broker on this machine may be taken for (a remote one needs its credentials).
        None if servers.as_deref().is_none_or(bootstrap_is_loopback) => SecurityProtocol::Plaintext,
        None => SecurityProtocol::SaslPlaintext,
    };
    if security_protocol.uses_sasl() && password.is_empty() {
        return Err(invalid(
            "kafka password",
            "",
            "a password for SASL: TORGHUT_E2E_KAFKA_PASSWORD, \
             TORGHUT_E2E_KAFKA_PASSWORD_FILE, or kafka.password_env / password_file \
             (only a broker on loopback, the local stack, is reached without credentials)",
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
        bootstrap: servers.unwrap_or_else(|| local_stack_bootstrap(security_protocol).into()),
        security_protocol,
        sasl_mechanism,
        username: username.unwrap_or_else(|| LOCAL_STACK_KAFKA_USER.into()),
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
        bars1m_topic: file
            .bars1m_topic
            .map(|t| kafka_name("kafka.bars1m_topic", &t))
            .transpose()?
            .unwrap_or_else(|| lane.bars1m_topic().into()),
        ta_group_id: file
            .ta_group_id
            .map(|t| kafka_name("kafka.ta_group_id", &t))
            .transpose()?
            .unwrap_or_else(|| lane.ta_group_id().into()),
    })
}

pub(super) fn resolve_clickhouse(
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
        located.unwrap_or_else(|| (LOCAL_STACK_CLICKHOUSE_URL.into(), UrlCredentials::default()));
    let user = layered(
        env,
        env::CLICKHOUSE_USER,
        "clickhouse.user",
        file.user,
        non_empty,
    )?;
    let user_set = user.is_some() || in_url.user.is_some();
    let user = match (user, in_url.user) {
        (Some(set), Some(from_url)) if set != from_url => {
            return Err(ConfigError::Conflict(format!(
                "clickhouse.url names user {from_url:?} and the ClickHouse user is also set to \
                 {set:?} (clickhouse.user or {}): give it once",
                env::CLICKHOUSE_USER
            )))
        }
        (set, from_url) => set
            .or(from_url)
            .unwrap_or_else(|| LOCAL_STACK_CLICKHOUSE_USER.into()),
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
        // No credentials at all for a ClickHouse on this machine: the local stack's.
        None if password.is_empty() && !user_set && loopback(&url) => {
            Secret::new(LOCAL_STACK_CLICKHOUSE_PASSWORD.to_string())
        }
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

/// The kept URL text (checked when it was read) names this machine.
fn loopback(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| url_is_loopback(&u))
}

pub(super) fn resolve_outputs(
    file: FileOutputs,
    lane: Lane,
    env: &dyn Env,
) -> Result<OutputsTarget, ConfigError> {
    let registry = layered(
        env,
        env::SCHEMA_REGISTRY_URL,
        "outputs.schema_registry_url",
        file.schema_registry_url,
        url_with_auth,
    )?;
    let (schema_registry_url, registry_auth) = match registry {
        Some((url, auth)) => (Some(url.trim_end_matches('/').to_string()), auth),
        None => (None, None),
    };
    let [bars, signals, status] = lane.output_topics();
    let topic = |key: &str, given: Option<String>, default: &str| {
        given
            .map(|t| kafka_name(key, &t))
            .transpose()
            .map(|t| t.unwrap_or_else(|| default.into()))
    };
    let enabled = match env.get(env::CHECK_OUTPUTS) {
        Some(v) => parse_bool(env::CHECK_OUTPUTS, &v)?,
        None => file.enabled.unwrap_or(true),
    };
    let interval = |name: &str, ms: u64| in_range(name, ms, STATUS_INTERVAL_MS, "milliseconds");
    let from_file = file
        .status_interval_ms
        .map(|ms| interval("outputs.status_interval_ms", ms))
        .transpose()?;
    let interval_ms = match env.get(env::STATUS_INTERVAL_MS) {
        Some(v) => {
            let ms = v.parse::<u64>().map_err(|_| {
                invalid(
                    env::STATUS_INTERVAL_MS,
                    &v,
                    "a whole number of milliseconds",
                )
            })?;
            interval(env::STATUS_INTERVAL_MS, ms)?
        }
        None => from_file.unwrap_or(60_000),
    };
    Ok(OutputsTarget {
        enabled,
        schema_registry_url,
        registry_auth,
        bars_topic: topic("outputs.bars_topic", file.bars_topic, bars)?,
        signals_topic: topic("outputs.signals_topic", file.signals_topic, signals)?,
        status_topic: topic("outputs.status_topic", file.status_topic, status)?,
        status_interval: Duration::from_millis(interval_ms),
    })
}

/// `[ta]`: the deployed job's settings, production's where not given.
pub(super) fn resolve_ta(file: FileTa, env: &dyn Env) -> Result<TaSettings, ConfigError> {
    let stale = |name: &str, v: &str| quote_window_ms(v).map_err(|why| invalid(name, v, why));
    let quote_stale_after_ms = layered(
        env,
        env::TA_QUOTE_STALE_AFTER_MS,
        "ta.quote_stale_after_ms",
        file.quote_stale_after_ms.map(|ms| ms.to_string()),
        stale,
    )?;
    Ok(TaSettings {
        quote_stale_after_ms: quote_stale_after_ms
            .unwrap_or(TaSettings::default().quote_stale_after_ms),
    })
}
