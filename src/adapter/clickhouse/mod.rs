//! ClickHouse over its HTTP interface: the client, server errors by code, and the schema check.

mod part_log;
mod rows;
mod schema;
#[cfg(test)]
mod tests;

use std::time::Duration;

use clickhouse::{Client, Compression};

use crate::config::ClickHouseTarget;

pub use part_log::PartCommits;
pub use rows::{KeyTable, RowKeys};
pub use schema::SchemaProblem;

/// An exception as ClickHouse reports it: `Code: 60. DB::Exception: … (UNKNOWN_TABLE)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    pub code: u32,
    /// The symbolic name in the trailing parentheses, e.g. `UNKNOWN_TABLE`.
    pub name: Option<String>,
    pub message: String,
}

pub const SYNTAX_ERROR: u32 = 62;
pub const UNKNOWN_TABLE: u32 = 60;
pub const UNKNOWN_DATABASE: u32 = 81;
pub const READONLY: u32 = 164;
pub const AUTHENTICATION_FAILED: u32 = 516;

impl ServerError {
    /// Finds `Code: N.` and the `(NAME)` after `DB::Exception:` in a response body.
    pub fn parse(text: &str) -> Option<Self> {
        let start = text.find("Code: ")?;
        let rest = &text[start + 6..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let code = digits.parse().ok()?;
        let message = rest[digits.len()..]
            .trim_start_matches('.')
            .trim()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        let name = exception_name(&message);
        Some(Self {
            code,
            name,
            message,
        })
    }
}

/// The last `(UPPER_CASE_NAME)` group of the message, skipping `(version …)`.
fn exception_name(message: &str) -> Option<String> {
    message
        .match_indices('(')
        .filter_map(|(i, _)| {
            let inner = &message[i + 1..];
            let end = inner.find(')')?;
            let word = &inner[..end];
            let is_name = !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            is_name.then(|| word.to_string())
        })
        .next_back()
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClickHouseError {
    #[error("ClickHouse at {url} is unreachable: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("ClickHouse authentication failed for user {user:?}: {message}")]
    Authentication { user: String, message: String },
    #[error("ClickHouse error {}{}: {}", .0.code, .0.name.as_ref().map(|n| format!(" {n}")).unwrap_or_default(), .0.message)]
    Server(ServerError),
    #[error("ClickHouse did not answer within {0:?}")]
    Timeout(Duration),
    #[error("ClickHouse client error: {0}")]
    Client(std::sync::Arc<clickhouse::error::Error>),
}

impl ClickHouseError {
    /// The target cannot be used at all (the caller exits 3), as opposed to a failed query.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. } | Self::Timeout(_) | Self::Authentication { .. }
        )
    }

    pub fn server_code(&self) -> Option<u32> {
        match self {
            Self::Server(e) => Some(e.code),
            Self::Authentication { .. } => Some(AUTHENTICATION_FAILED),
            _ => None,
        }
    }
}

/// The ClickHouse side of a target: the crate's client plus what is needed to name failures.
#[derive(Clone)]
pub struct ClickHouse {
    client: Client,
    target: ClickHouseTarget,
    timeout: Duration,
    /// Whether the server has `nowInBlock64` (asked once, by the first key poll).
    clock_in_block: tokio::sync::OnceCell<bool>,
}

impl ClickHouse {
    /// LZ4, as the crate does by default and every server supports: queries ask for LZ4
    /// responses (`Accept-Encoding: lz4`, answered compressed when the server's
    /// `enable_http_compression` is on, the default since ClickHouse 25.10) and inserts send LZ4
    /// blocks (`decompress=1`). The local stack's server speaks both (`fixtures/clickhouse`), so
    /// the tests take the path a production server does.
    pub fn new(target: &ClickHouseTarget, timeout: Duration) -> Self {
        let client = Client::default()
            .with_url(&target.url)
            .with_user(&target.user)
            .with_password(target.password.expose())
            .with_database(&target.database)
            .with_compression(Compression::Lz4);
        Self {
            client,
            target: target.clone(),
            timeout,
            clock_in_block: tokio::sync::OnceCell::new(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn database(&self) -> &str {
        &self.target.database
    }

    /// Runs a query future under the client's deadline and names the failure.
    pub async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = clickhouse::error::Result<T>>,
    ) -> Result<T, ClickHouseError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(result) => result.map_err(|e| self.classify(e)),
            Err(_) => Err(ClickHouseError::Timeout(self.timeout)),
        }
    }

    pub fn classify(&self, error: clickhouse::error::Error) -> ClickHouseError {
        use clickhouse::error::Error as E;
        match &error {
            E::BadResponse(text) => match ServerError::parse(text) {
                Some(e) if e.code == AUTHENTICATION_FAILED => ClickHouseError::Authentication {
                    user: self.target.user.clone(),
                    message: e.message,
                },
                Some(e) => ClickHouseError::Server(e),
                None => ClickHouseError::Client(error.into()),
            },
            E::Network(source) => ClickHouseError::Unreachable {
                url: crate::domain::redact::url(&self.target.url),
                detail: root_cause(source.as_ref()),
            },
            E::TimedOut => ClickHouseError::Timeout(self.timeout),
            _ => ClickHouseError::Client(error.into()),
        }
    }

    pub async fn version(&self) -> Result<String, ClickHouseError> {
        // Against `system`, so a missing target database is reported by the schema check.
        let system = self.client.clone().with_database("system");
        self.bounded(system.query("SELECT version()").fetch_one::<String>())
            .await
    }
}

/// Reading the run's rows back (`pipeline.md` §7.2 rule 8: FINAL for exact counts; signals
/// filtered to the 1-second path).
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}
