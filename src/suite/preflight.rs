//! Preflight: every target answers, authenticates and has what the run needs, before anything
//! is published. Probes run concurrently, each under the connect timeout.

use std::fmt;
use std::time::{Duration, Instant};

use crate::adapter::clickhouse::ClickHouse;
use crate::config::Config;
use crate::domain::report::PreflightLine;

/// One component's verdict.
#[derive(Debug, Clone)]
pub struct Check {
    pub component: &'static str,
    pub ok: bool,
    pub detail: String,
    pub elapsed: Duration,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<11} {:<4} {} ({} ms)",
            self.component,
            if self.ok { "ok" } else { "FAIL" },
            self.detail,
            self.elapsed.as_millis()
        )
    }
}

impl From<&Check> for PreflightLine {
    fn from(c: &Check) -> Self {
        Self {
            component: c.component,
            ok: c.ok,
            detail: c.detail.clone(),
            elapsed_ms: c.elapsed.as_millis() as u64,
        }
    }
}

/// Which components to probe.
#[derive(Debug, Clone, Copy)]
pub struct Components {
    pub kafka: bool,
    pub clickhouse: bool,
    pub webdriver: bool,
    /// Jangar answers `/health`; probed only when a base URL is configured (without one the
    /// API and browser stages fail and say so).
    pub jangar: bool,
    /// The TA job's output topics, and the schema registry when one is configured (only when
    /// `outputs.enabled`: a run checks them; the audit does not).
    pub outputs: bool,
}

pub async fn run(config: &Config, which: Components) -> Vec<Check> {
    let jangar_url = config.jangar.base_url.as_deref().filter(|_| which.jangar);
    let outputs = which.outputs && config.outputs.enabled;
    let registry = outputs && config.outputs.schema_registry_url.is_some();
    let (k, c, w, j, o, r) = tokio::join!(
        maybe(which.kafka, "kafka", kafka(config)),
        maybe(which.clickhouse, "clickhouse", clickhouse(config)),
        maybe(which.webdriver, "webdriver", webdriver(config)),
        maybe(jangar_url.is_some(), "jangar", jangar(config)),
        maybe(outputs, "ta-outputs", output_topics(config)),
        maybe(registry, "registry", registry_probe(config)),
    );
    [k, c, w, j, o, r].into_iter().flatten().collect()
}

async fn maybe(
    enabled: bool,
    component: &'static str,
    probe: impl std::future::Future<Output = Result<String, String>>,
) -> Option<Check> {
    if !enabled {
        return None;
    }
    let started = Instant::now();
    let result = probe.await;
    Some(Check {
        component,
        ok: result.is_ok(),
        detail: result.unwrap_or_else(|e| e),
        elapsed: started.elapsed(),
    })
}

async fn kafka(config: &Config) -> Result<String, String> {
    let k = &config.kafka;
    let probe = crate::adapter::kafka::probe(k, &k.trades_topic, config.connect_timeout)
        .await
        .map_err(|e| e.to_string())?;
    let auth = if k.security_protocol.uses_sasl() {
        format!("{} user {}", k.sasl_mechanism.as_str(), k.username)
    } else {
        "no authentication".into()
    };
    Ok(format!(
        "{} {} ({auth}); topic {} has {} partitions",
        k.bootstrap,
        k.security_protocol.as_str(),
        probe.topic,
        probe.partitions
    ))
}

/// The three output topics exist (the job writes them; the run reads them).
async fn output_topics(config: &Config) -> Result<String, String> {
    let o = &config.outputs;
    let mut found = Vec::new();
    for topic in [&o.bars_topic, &o.signals_topic, &o.status_topic] {
        let probe = crate::adapter::kafka::probe(&config.kafka, topic, config.connect_timeout)
            .await
            .map_err(|e| e.to_string())?;
        found.push(format!("{} ({} partitions)", probe.topic, probe.partitions));
    }
    Ok(format!("output topics {}", found.join(", ")))
}

/// The schema registry answers `GET /subjects`.
async fn registry_probe(config: &Config) -> Result<String, String> {
    let url = config
        .outputs
        .schema_registry_url
        .as_deref()
        .unwrap_or_default();
    let registry = crate::adapter::registry::Registry::new(
        url,
        config.outputs.registry_auth.clone(),
        config.connect_timeout,
    )?;
    let subjects = registry.probe().await.map_err(|e| format!("{url}: {e}"))?;
    Ok(format!("{url} answers; {subjects} subjects"))
}

async fn clickhouse(config: &Config) -> Result<String, String> {
    let ch = ClickHouse::new(&config.clickhouse, config.connect_timeout);
    let version = ch.version().await.map_err(|e| e.to_string())?;
    let problems = ch.check_schema().await.map_err(|e| e.to_string())?;
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(format!("wrong schema: {}", list.join("; ")));
    }
    let replicas = ch.unhealthy_replicas().await.map_err(|e| e.to_string())?;
    if !replicas.is_empty() {
        return Err(format!(
            "replicas cannot take writes: {}",
            replicas.join(", ")
        ));
    }
    Ok(format!(
        "{} version {version}; {db}.ta_microbars and {db}.ta_signals have the expected columns and engine",
        crate::domain::redact::url(&config.clickhouse.url),
        db = ch.database()
    ))
}

async fn webdriver(config: &Config) -> Result<String, String> {
    match &config.webdriver.url {
        Some(url) => crate::adapter::webdriver::probe(url, config.connect_timeout)
            .await
            .map(|s| format!("{url} {s}"))
            .map_err(|e| e.to_string()),
        None => which("chromedriver")
            .map(|p| format!("no WebDriver URL; will start {}", p.display()))
            .ok_or_else(|| "no WebDriver URL configured and no chromedriver on PATH".into()),
    }
}

/// Readiness only: the TA endpoints' faults are the API stage's to diagnose (exit 1 with a
/// cause), not a reason to refuse the run.
async fn jangar(config: &Config) -> Result<String, String> {
    let base = config.jangar.base_url.as_deref().unwrap_or_default();
    let url = format!("{}/health", base.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(config.connect_timeout)
        .default_headers(crate::config::BasicAuth::headers(
            config.jangar.auth.as_ref(),
        ))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    if status.is_success() {
        Ok(format!("{url} answered {status}"))
    } else {
        Err(format!("{url} answered {status}"))
    }
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
