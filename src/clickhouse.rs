//! ClickHouse over its HTTP interface: the client, server errors by code, and the schema check.

use std::time::Duration;

use clickhouse::{Client, Compression, Row};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::config::ClickHouseTarget;
use crate::model::{Microbar, Signal};

/// Expected columns of `ta_microbars` as `system.columns` reports them (`pipeline.md` §3.3).
pub const MICROBAR_SCHEMA: &[(&str, &str)] = &[
    ("symbol", "LowCardinality(String)"),
    ("event_ts", "DateTime64(3, 'UTC')"),
    ("seq", "UInt64"),
    ("ingest_ts", "DateTime64(3, 'UTC')"),
    ("is_final", "UInt8"),
    ("source", "LowCardinality(String)"),
    ("window_size", "LowCardinality(String)"),
    ("window_step", "Nullable(String)"),
    ("window_start", "Nullable(DateTime64(3, 'UTC'))"),
    ("window_end", "Nullable(DateTime64(3, 'UTC'))"),
    ("version", "UInt32"),
    ("o", "Float64"),
    ("h", "Float64"),
    ("l", "Float64"),
    ("c", "Float64"),
    ("v", "Float64"),
    ("vwap", "Nullable(Float64)"),
    ("count", "UInt64"),
];

/// Expected columns of `ta_signals` (`pipeline.md` §4.6).
pub const SIGNAL_SCHEMA: &[(&str, &str)] = &[
    ("symbol", "LowCardinality(String)"),
    ("event_ts", "DateTime64(3, 'UTC')"),
    ("seq", "UInt64"),
    ("ingest_ts", "DateTime64(3, 'UTC')"),
    ("is_final", "UInt8"),
    ("source", "LowCardinality(String)"),
    ("window_size", "LowCardinality(String)"),
    ("window_step", "Nullable(String)"),
    ("window_start", "Nullable(DateTime64(3, 'UTC'))"),
    ("window_end", "Nullable(DateTime64(3, 'UTC'))"),
    ("version", "UInt32"),
    ("macd", "Nullable(Float64)"),
    ("macd_signal", "Nullable(Float64)"),
    ("macd_hist", "Nullable(Float64)"),
    ("ema12", "Nullable(Float64)"),
    ("ema26", "Nullable(Float64)"),
    ("rsi14", "Nullable(Float64)"),
    ("boll_mid", "Nullable(Float64)"),
    ("boll_upper", "Nullable(Float64)"),
    ("boll_lower", "Nullable(Float64)"),
    ("vwap_session", "Nullable(Float64)"),
    ("vwap_w5m", "Nullable(Float64)"),
    ("imbalance_spread", "Nullable(Float64)"),
    ("imbalance_bid_px", "Nullable(Float64)"),
    ("imbalance_ask_px", "Nullable(Float64)"),
    ("imbalance_bid_sz", "Nullable(UInt64)"),
    ("imbalance_ask_sz", "Nullable(UInt64)"),
    ("vol_realized_w60s", "Nullable(Float64)"),
    ("microstructure_signal_v1", "Nullable(String)"),
];

/// The TA tables and their expected columns.
pub const TA_TABLES: &[(&str, &[(&str, &str)])] = &[
    ("ta_microbars", MICROBAR_SCHEMA),
    ("ta_signals", SIGNAL_SCHEMA),
];

/// An exception as ClickHouse reports it: `Code: 60. DB::Exception: … (UNKNOWN_TABLE)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    pub code: u32,
    /// The symbolic name in the trailing parentheses, e.g. `UNKNOWN_TABLE`.
    pub name: Option<String>,
    pub message: String,
}

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

#[derive(Debug, thiserror::Error)]
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
    Client(clickhouse::error::Error),
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
}

impl ClickHouse {
    /// Compression is off: the local chdb-backed server does not implement the LZ4 framing, and
    /// the rows a validator reads are small.
    pub fn new(target: &ClickHouseTarget, timeout: Duration) -> Self {
        let client = Client::default()
            .with_url(&target.url)
            .with_user(&target.user)
            .with_password(target.password.expose())
            .with_database(&target.database)
            .with_compression(Compression::None);
        Self {
            client,
            target: target.clone(),
            timeout,
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
                None => ClickHouseError::Client(error),
            },
            E::Network(source) => ClickHouseError::Unreachable {
                url: crate::redact::url(&self.target.url),
                detail: root_cause(source.as_ref()),
            },
            E::TimedOut => ClickHouseError::Timeout(self.timeout),
            _ => ClickHouseError::Client(error),
        }
    }

    pub async fn version(&self) -> Result<String, ClickHouseError> {
        // Against `system`, so a missing target database is reported by the schema check.
        let system = self.client.clone().with_database("system");
        self.bounded(system.query("SELECT version()").fetch_one::<String>())
            .await
    }

    /// Checks the database, both TA tables, their columns, types and engine.
    pub async fn check_schema(&self) -> Result<Vec<SchemaProblem>, ClickHouseError> {
        let db = self.database().to_string();
        let databases = self
            .bounded(
                self.client
                    .query("SELECT name FROM system.databases WHERE name = ?")
                    .bind(&db)
                    .fetch_all::<String>(),
            )
            .await;
        // ClickHouse refuses any query whose `database` parameter names a missing database.
        let databases = match databases {
            Err(e) if e.server_code() == Some(UNKNOWN_DATABASE) => Vec::new(),
            other => other?,
        };
        if databases.is_empty() {
            return Ok(vec![SchemaProblem::DatabaseMissing(db)]);
        }
        let mut problems = Vec::new();
        for (table, expected) in TA_TABLES {
            problems.extend(self.check_table(&db, table, expected).await?);
        }
        Ok(problems)
    }

    async fn check_table(
        &self,
        db: &str,
        table: &str,
        expected: &[(&str, &str)],
    ) -> Result<Vec<SchemaProblem>, ClickHouseError> {
        let engine = self
            .bounded(
                self.client
                    .query("SELECT engine FROM system.tables WHERE database = ? AND name = ?")
                    .bind(db)
                    .bind(table)
                    .fetch_optional::<String>(),
            )
            .await?;
        let Some(engine) = engine else {
            return Ok(vec![SchemaProblem::TableMissing(format!("{db}.{table}"))]);
        };
        let columns = self
            .bounded(
                self.client
                    .query(
                        "SELECT name, type FROM system.columns \
                         WHERE database = ? AND table = ? ORDER BY position",
                    )
                    .bind(db)
                    .bind(table)
                    .fetch_all::<ColumnRow>(),
            )
            .await?;
        Ok(compare_table(
            &format!("{db}.{table}"),
            &engine,
            &columns,
            expected,
        ))
    }

    /// Replicas that cannot take writes (`operations.md` failure modes: Keeper lost, read-only).
    pub async fn unhealthy_replicas(&self) -> Result<Vec<String>, ClickHouseError> {
        let rows = self
            .bounded(
                self.client
                    .query(
                        "SELECT table, is_readonly, is_session_expired FROM system.replicas \
                         WHERE database = ? AND table IN ('ta_microbars', 'ta_signals')",
                    )
                    .bind(self.database())
                    .fetch_all::<ReplicaRow>(),
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter(|r| r.is_readonly != 0 || r.is_session_expired != 0)
            .map(|r| {
                format!(
                    "{}.{} (readonly={}, session_expired={})",
                    self.database(),
                    r.table,
                    r.is_readonly,
                    r.is_session_expired
                )
            })
            .collect())
    }
}

/// Reading the run's rows back (`pipeline.md` §7.2 rule 8: FINAL for exact counts; signals
/// filtered to the 1-second path).
impl ClickHouse {
    /// The symbols' bars that end after `after` (a reused symbol's history stays out).
    pub async fn microbars(
        &self,
        symbols: &[String],
        after: OffsetDateTime,
    ) -> Result<Vec<Microbar>, ClickHouseError> {
        self.bounded(
            self.client
                .query(
                    "SELECT ?fields FROM ta_microbars FINAL WHERE has(?, symbol) \
                     AND event_ts > fromUnixTimestamp64Milli(?, 'UTC') \
                     ORDER BY symbol, event_ts, seq",
                )
                .bind(symbols)
                .bind(unix_millis(after))
                .fetch_all::<Microbar>(),
        )
        .await
    }

    /// The symbols' 1-second signals that end after `after`.
    pub async fn signals(
        &self,
        symbols: &[String],
        after: OffsetDateTime,
    ) -> Result<Vec<Signal>, ClickHouseError> {
        self.bounded(
            self.client
                .query(
                    "SELECT ?fields FROM ta_signals FINAL WHERE has(?, symbol) \
                     AND window_size = 'PT1S' AND event_ts > fromUnixTimestamp64Milli(?, 'UTC') \
                     ORDER BY symbol, event_ts, seq",
                )
                .bind(symbols)
                .bind(unix_millis(after))
                .fetch_all::<Signal>(),
        )
        .await
    }

    /// Rows of `table` for the symbols, without FINAL minus with FINAL: unmerged duplicates.
    pub async fn unmerged_duplicates(
        &self,
        table: &str,
        symbols: &[String],
        after: OffsetDateTime,
    ) -> Result<u64, ClickHouseError> {
        let filter = "WHERE has(?, symbol) AND event_ts > fromUnixTimestamp64Milli(?, 'UTC')";
        let all = self
            .count(
                &format!("SELECT count() FROM {table} {filter}"),
                symbols,
                after,
            )
            .await?;
        let merged = self
            .count(
                &format!("SELECT count() FROM {table} FINAL {filter}"),
                symbols,
                after,
            )
            .await?;
        Ok(all.saturating_sub(merged))
    }

    async fn count(
        &self,
        sql: &str,
        symbols: &[String],
        after: OffsetDateTime,
    ) -> Result<u64, ClickHouseError> {
        let query = self
            .client
            .query(sql)
            .bind(symbols)
            .bind(unix_millis(after));
        self.bounded(query.fetch_one::<u64>()).await
    }

    /// Another database with a `ta_microbars` table that holds rows of these symbols.
    pub async fn database_holding(
        &self,
        symbols: &[String],
    ) -> Result<Option<String>, ClickHouseError> {
        let others = self
            .bounded(
                self.client
                    .query(
                        "SELECT database FROM system.tables WHERE name = 'ta_microbars' \
                         AND database != ? ORDER BY database",
                    )
                    .bind(self.database())
                    .fetch_all::<String>(),
            )
            .await?;
        for db in others {
            let sql = format!("SELECT count() FROM `{db}`.ta_microbars WHERE has(?, symbol)");
            let n = self
                .bounded(self.client.query(&sql).bind(symbols).fetch_one::<u64>())
                .await?;
            if n > 0 {
                return Ok(Some(db));
            }
        }
        Ok(None)
    }

    /// Whether any row of the symbol exists in either table (the freshness guard of a run).
    pub async fn has_rows(&self, symbol: &str) -> Result<bool, ClickHouseError> {
        let n = self
            .bounded(
                self.client
                    .query(
                        "SELECT count() FROM (SELECT symbol FROM ta_microbars WHERE symbol = ? \
                         UNION ALL SELECT symbol FROM ta_signals WHERE symbol = ?)",
                    )
                    .bind(symbol)
                    .bind(symbol)
                    .fetch_one::<u64>(),
            )
            .await?;
        Ok(n > 0)
    }
}

/// A reused symbol's history (`pipeline.md` §7.2 rule 4), read to seed the oracle: as it is now
/// (the pool), or as it was when the job emitted a given bar (the audit, [`HistoryCut`]).
impl ClickHouse {
    /// Per symbol with rows: count, seq range, last bar end and the session sums of
    /// `ta_microbars FINAL` since the job's state for it last began: a job restarted without
    /// state (the simulation lane's deployment upgrades `stateless`) starts the symbol's seq at 1
    /// again, with no bars and no session behind it. Emission order is `ingest_ts`; with no seq-1
    /// row left (expired) every row counts. Symbols without rows are absent.
    ///
    /// With a `cut`, only what the job had emitted up to and including the cut bar counts (and
    /// the epoch is the one that bar belongs to); give one symbol then.
    pub async fn history_stats(
        &self,
        symbols: &[String],
        cut: Option<HistoryCut>,
    ) -> Result<Vec<HistoryStats>, ClickHouseError> {
        // The epoch's start per symbol as a window (no correlated subquery before 25.8).
        let (emitted, upto) = match cut {
            Some(_) => (
                "AND ingest_ts <= fromUnixTimestamp64Milli(?, 'UTC')",
                "AND seq <= ?",
            ),
            None => ("", ""),
        };
        let sql = format!(
            "SELECT symbol, count() AS rows, min(seq) AS first_seq, max(seq) AS last_seq, \
             max(event_ts) AS last_event_ts, sum(c * v) AS sum_cv, sum(v) AS sum_v \
             FROM (SELECT symbol, seq, event_ts, c, v, ingest_ts, \
                   maxIf(ingest_ts, seq = 1) OVER (PARTITION BY symbol) AS epoch \
                   FROM ta_microbars FINAL WHERE has(?, symbol) {emitted}) \
             WHERE ingest_ts >= epoch {upto} GROUP BY symbol ORDER BY symbol"
        );
        let mut query = self.client.query(&sql).bind(symbols);
        if let Some(cut) = cut {
            query = query.bind(unix_millis(cut.ingest_ts)).bind(cut.seq);
        }
        self.bounded(query.fetch_all::<HistoryStats>()).await
    }

    /// The symbol's newest `limit` bars of the current state epoch (or of the cut bar's, up to
    /// it), oldest first (the job's retained list order).
    pub async fn latest_microbars(
        &self,
        symbol: &str,
        limit: usize,
        cut: Option<HistoryCut>,
    ) -> Result<Vec<Microbar>, ClickHouseError> {
        let (emitted, upto) = match cut {
            Some(_) => (
                "AND ingest_ts <= fromUnixTimestamp64Milli(?, 'UTC')",
                "AND seq <= ?",
            ),
            None => ("", ""),
        };
        let sql = format!(
            "SELECT ?fields FROM ta_microbars FINAL WHERE symbol = ? {emitted} {upto} \
             AND ingest_ts >= (SELECT max(ingest_ts) FROM ta_microbars FINAL \
                               WHERE symbol = ? AND seq = 1 {emitted}) \
             ORDER BY event_ts DESC, seq DESC LIMIT ?"
        );
        let mut query = self.client.query(&sql).bind(symbol);
        if let Some(cut) = cut {
            query = query.bind(unix_millis(cut.ingest_ts)).bind(cut.seq);
        }
        query = query.bind(symbol);
        if let Some(cut) = cut {
            query = query.bind(unix_millis(cut.ingest_ts));
        }
        let mut bars = self
            .bounded(query.bind(limit as u64).fetch_all::<Microbar>())
            .await?;
        bars.reverse();
        Ok(bars)
    }

    /// The symbol's bars with `after < seq < before`, in seq order.
    pub async fn microbars_between_seqs(
        &self,
        symbol: &str,
        after: u64,
        before: u64,
    ) -> Result<Vec<Microbar>, ClickHouseError> {
        self.bounded(
            self.client
                .query(
                    "SELECT ?fields FROM ta_microbars FINAL WHERE symbol = ? \
                     AND seq > ? AND seq < ? ORDER BY seq",
                )
                .bind(symbol)
                .bind(after)
                .bind(before)
                .fetch_all::<Microbar>(),
        )
        .await
    }

    /// `vwap_session` of the symbol's newest 1-second signal, or of the cut bar's signal (None:
    /// no signal, or NULL).
    pub async fn latest_vwap_session(
        &self,
        symbol: &str,
        cut: Option<HistoryCut>,
    ) -> Result<Option<f64>, ClickHouseError> {
        let query = match cut {
            None => self
                .client
                .query(
                    "SELECT vwap_session FROM ta_signals FINAL WHERE symbol = ? \
                     AND window_size = 'PT1S' ORDER BY event_ts DESC, seq DESC LIMIT 1",
                )
                .bind(symbol),
            Some(cut) => self
                .client
                .query(
                    "SELECT vwap_session FROM ta_signals FINAL WHERE symbol = ? \
                     AND window_size = 'PT1S' AND seq = ? \
                     AND ingest_ts <= fromUnixTimestamp64Milli(?, 'UTC') \
                     ORDER BY ingest_ts DESC LIMIT 1",
                )
                .bind(symbol)
                .bind(cut.seq)
                .bind(unix_millis(cut.ingest_ts)),
        };
        let value = self.bounded(query.fetch_optional::<Option<f64>>()).await?;
        Ok(value.flatten())
    }
}

/// The state the job had right after emitting one bar: the bar's `seq` and its `ingest_ts`
/// (which tells the state epoch it belongs to, as a restart without state reuses seqs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCut {
    pub seq: u64,
    pub ingest_ts: OffsetDateTime,
}

/// One symbol's `ta_microbars FINAL` history in aggregate.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct HistoryStats {
    pub symbol: String,
    pub rows: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub last_event_ts: OffsetDateTime,
    pub sum_cv: f64,
    pub sum_v: f64,
}

fn unix_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

#[derive(Debug, Row, Deserialize)]
struct ColumnRow {
    name: String,
    r#type: String,
}

#[derive(Debug, Row, Deserialize)]
struct ReplicaRow {
    table: String,
    is_readonly: u8,
    is_session_expired: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaProblem {
    DatabaseMissing(String),
    TableMissing(String),
    WrongEngine {
        table: String,
        engine: String,
    },
    ColumnMissing {
        table: String,
        column: String,
    },
    WrongType {
        table: String,
        column: String,
        expected: String,
        actual: String,
    },
}

impl std::fmt::Display for SchemaProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DatabaseMissing(db) => write!(f, "database {db} does not exist"),
            Self::TableMissing(t) => write!(f, "table {t} does not exist"),
            Self::WrongEngine { table, engine } => {
                write!(
                    f,
                    "table {table} has engine {engine}, expected a ReplacingMergeTree"
                )
            }
            Self::ColumnMissing { table, column } => write!(f, "{table}.{column} is missing"),
            Self::WrongType {
                table,
                column,
                expected,
                actual,
            } => {
                write!(f, "{table}.{column} is {actual}, expected {expected}")
            }
        }
    }
}

/// Extra columns are allowed (production adds columns over time); missing or retyped ones are not.
fn compare_table(
    table: &str,
    engine: &str,
    columns: &[ColumnRow],
    expected: &[(&str, &str)],
) -> Vec<SchemaProblem> {
    let mut problems = Vec::new();
    // Production runs ReplicatedReplacingMergeTree; one node runs ReplacingMergeTree.
    if !engine.ends_with("ReplacingMergeTree") {
        problems.push(SchemaProblem::WrongEngine {
            table: table.into(),
            engine: engine.into(),
        });
    }
    for (name, ty) in expected {
        match columns.iter().find(|c| c.name == *name) {
            None => problems.push(SchemaProblem::ColumnMissing {
                table: table.into(),
                column: (*name).into(),
            }),
            Some(c) if c.r#type != *ty => problems.push(SchemaProblem::WrongType {
                table: table.into(),
                column: (*name).into(),
                expected: (*ty).into(),
                actual: c.r#type.clone(),
            }),
            Some(_) => {}
        }
    }
    problems
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_clickhouse_exception_text() {
        let body = "Code: 60. DB::Exception: Unknown table expression identifier 'nope' in scope \
                    SELECT * FROM nope. (UNKNOWN_TABLE) (version 25.8.1.1)\n";
        let e = ServerError::parse(body).unwrap();
        assert_eq!(e.code, UNKNOWN_TABLE);
        assert_eq!(e.name.as_deref(), Some("UNKNOWN_TABLE"));
        assert!(
            e.message.starts_with("DB::Exception: Unknown table"),
            "{}",
            e.message
        );
    }

    #[test]
    fn parses_exception_inside_client_wrapping() {
        let body = "bad response: Code: 516. DB::Exception: x: Authentication failed. \
                    (AUTHENTICATION_FAILED)";
        let e = ServerError::parse(body).unwrap();
        assert_eq!(e.code, 516);
        assert_eq!(e.name.as_deref(), Some("AUTHENTICATION_FAILED"));
        assert_eq!(ServerError::parse("no code here"), None);
    }

    #[test]
    fn schema_comparison_names_each_problem() {
        let cols = vec![
            ColumnRow {
                name: "symbol".into(),
                r#type: "String".into(),
            },
            ColumnRow {
                name: "extra".into(),
                r#type: "UInt8".into(),
            },
        ];
        let expected = &[("symbol", "LowCardinality(String)"), ("seq", "UInt64")];
        let problems = compare_table("db.t", "MergeTree", &cols, expected);
        assert_eq!(problems.len(), 3, "{problems:?}");
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert!(text[0].contains("engine MergeTree"));
        assert!(text[1].contains("db.t.symbol is String, expected LowCardinality(String)"));
        assert!(text[2].contains("db.t.seq is missing"));
        let ok = compare_table(
            "db.t",
            "ReplicatedReplacingMergeTree",
            &[ColumnRow {
                name: "seq".into(),
                r#type: "UInt64".into(),
            }],
            &[("seq", "UInt64")],
        );
        assert!(ok.is_empty());
    }

    #[test]
    fn schema_constants_follow_the_row_types() {
        let names: Vec<&str> = MICROBAR_SCHEMA.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, crate::model::MICROBAR_COLUMNS);
        let names: Vec<&str> = SIGNAL_SCHEMA.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, crate::model::SIGNAL_COLUMNS);
    }
}
