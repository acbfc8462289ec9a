//! The TA tables as the run reads them: its rows (FINAL), duplicates, where else they are, and
//! a pool symbol's history.

use std::collections::HashMap;

use time::OffsetDateTime;

use super::{ClickHouse, ClickHouseError, UNKNOWN_DATABASE, UNKNOWN_TABLE};
use crate::domain::model::{Microbar, RowKey, Signal, WINDOW_1M, WINDOW_1S};
use crate::domain::pool::{HistoryCut, HistoryStats};

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
        self.signals_of(WINDOW_1S, symbols, after).await
    }

    /// The symbols' 1-minute signals (the forwarder's 1-minute bars) starting after `after`.
    pub async fn minute_signals(
        &self,
        symbols: &[String],
        after: OffsetDateTime,
    ) -> Result<Vec<Signal>, ClickHouseError> {
        self.signals_of(WINDOW_1M, symbols, after).await
    }

    /// `ta_signals` mixes both cadences (`pipeline.md` §4.6): one `window_size` at a time.
    async fn signals_of(
        &self,
        window_size: &str,
        symbols: &[String],
        after: OffsetDateTime,
    ) -> Result<Vec<Signal>, ClickHouseError> {
        self.bounded(
            self.client
                .query(
                    "SELECT ?fields FROM ta_signals FINAL WHERE has(?, symbol) \
                     AND window_size = ? AND event_ts > fromUnixTimestamp64Milli(?, 'UTC') \
                     ORDER BY symbol, event_ts, seq",
                )
                .bind(symbols)
                .bind(window_size)
                .bind(unix_millis(after))
                .fetch_all::<Signal>(),
        )
        .await
    }

    /// The keys of the symbols' rows in both tables, in one cheap query (no FINAL, no columns
    /// but the key, the part it is in and its copies; duplicates folded): what a visibility
    /// poll needs.
    /// Bars and 1-second signals ending after `after`; 1-minute signals starting after
    /// `minutes_after`, only when asked. With the server's clock around the query's snapshot of
    /// the tables, and its name.
    pub async fn row_keys(
        &self,
        symbols: &[String],
        after: OffsetDateTime,
        minutes_after: Option<OffsetDateTime>,
    ) -> Result<RowKeys, ClickHouseError> {
        let clock_in_block = self.has_clock_in_block().await?;
        let filter = "has(?, symbol) AND event_ts > fromUnixTimestamp64Milli(?, 'UTC')";
        // A key's part, when exactly one part holds it (a duplicate's two parts leave it out):
        // the part whose commit made the row visible, unless merged since.
        let keys = |t: u8, table: &str, window: &str| {
            format!(
                "SELECT toUInt8({t}) AS t, symbol, event_ts, seq, \
                 if(uniqExact(_part) = 1, any(_part), '') AS part, count() AS n FROM {table} \
                 WHERE {window}{filter} GROUP BY symbol, event_ts, seq"
            )
        };
        // First, the server's clock as it analyses the query: `now64()` is fixed while the
        // query is analysed, branch after branch, so here it is read before any table's parts
        // are: a row the query did not see was not visible then. Its `symbol` is the server's
        // name: a part's record is the server's own.
        let mut sql = format!(
            "SELECT toUInt8({SERVER_START}) AS t, hostName() AS symbol, \
             now64(3, 'UTC') AS event_ts, toUInt64(0) AS seq, '' AS part, toUInt64(0) AS n \
             UNION ALL {} \
             UNION ALL {}",
            keys(0, "ta_microbars", ""),
            keys(1, "ta_signals", "window_size = ? AND "),
        );
        if minutes_after.is_some() {
            sql.push_str(" UNION ALL ");
            sql.push_str(&keys(2, "ta_signals", "window_size = ? AND "));
        }
        // Last, the server's clock as it executes the query, after every table's parts were
        // taken (`nowInBlock64` is read per block, never folded): a row the query saw was
        // visible by then. It cuts the answer's way back from the bracket.
        if clock_in_block {
            sql.push_str(&format!(
                " UNION ALL SELECT toUInt8({SERVER_EXECUTING}) AS t, '' AS symbol, \
                 nowInBlock64(3, 'UTC') AS event_ts, toUInt64(0) AS seq, '' AS part, \
                 toUInt64(0) AS n"
            ));
        }
        let mut query = self
            .client
            .query(&sql)
            .bind(symbols)
            .bind(unix_millis(after))
            .bind(WINDOW_1S)
            .bind(symbols)
            .bind(unix_millis(after));
        if let Some(m) = minutes_after {
            query = query.bind(WINDOW_1M).bind(symbols).bind(unix_millis(m));
        }
        let rows = self.bounded(query.fetch_all::<KeyRow>()).await?;
        let mut keys = RowKeys::default();
        for r in rows {
            let table = match r.t {
                0 => KeyTable::Microbars,
                1 => KeyTable::Signals,
                2 => KeyTable::MinuteSignals,
                SERVER_START => {
                    keys.server_start = Some(r.event_ts);
                    keys.server = Some(r.symbol);
                    continue;
                }
                SERVER_EXECUTING => {
                    // Read to the millisecond, rounded down: the next one bounds the snapshot.
                    keys.server_executing = Some(r.event_ts + time::Duration::milliseconds(1));
                    continue;
                }
                _ => continue,
            };
            let key = RowKey {
                symbol: r.symbol,
                event_ts: r.event_ts,
                seq: r.seq,
            };
            if !r.part.is_empty() {
                keys.parts.insert((table, key.clone()), r.part);
            }
            if r.n > 1 {
                keys.copies.insert((table, key.clone()), r.n - 1);
            }
            keys.keys.push((table, key));
        }
        Ok(keys)
    }

    /// Whether the server has `nowInBlock64` (the local engine, ClickHouse 26, does; older
    /// servers may not), asked once.
    async fn has_clock_in_block(&self) -> Result<bool, ClickHouseError> {
        self.clock_in_block
            .get_or_try_init(|| async {
                let n = self
                    .bounded(
                        self.client
                            .query(
                                "SELECT count() FROM system.functions WHERE name = 'nowInBlock64'",
                            )
                            .fetch_one::<u64>(),
                    )
                    .await?;
                Ok(n > 0)
            })
            .await
            .copied()
    }

    /// Rows of `table` for the symbols that a read without FINAL (Jangar's) sees beyond one per
    /// key: unmerged duplicates, per symbol that has some. The key is the tables' sorting key
    /// (`symbol, event_ts, seq`, `pipeline.md` §5), the one FINAL folds, so this is the count
    /// without FINAL minus the count with it, in one query and one snapshot.
    pub async fn unmerged_duplicates(
        &self,
        table: &str,
        symbols: &[String],
        after: OffsetDateTime,
    ) -> Result<Vec<(String, u64)>, ClickHouseError> {
        let query = self
            .client
            .query(&format!(
                "SELECT symbol, toUInt64(count() - uniqExact(event_ts, seq)) AS n \
                 FROM {table} WHERE has(?, symbol) \
                 AND event_ts > fromUnixTimestamp64Milli(?, 'UTC') \
                 GROUP BY symbol HAVING n > 0 ORDER BY symbol"
            ))
            .bind(symbols)
            .bind(unix_millis(after));
        self.bounded(query.fetch_all::<(String, u64)>()).await
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
            let n = match self
                .bounded(self.client.query(&sql).bind(symbols).fetch_one::<u64>())
                .await
            {
                Ok(n) => n,
                // Dropped since it was listed (scratch databases come and go): it holds nothing.
                Err(e) if matches!(e.server_code(), Some(UNKNOWN_DATABASE | UNKNOWN_TABLE)) => 0,
                Err(e) => return Err(e),
            };
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

    /// Symbols outside `prefix` whose bars the job wrote since `since`, with how many (the
    /// busiest five): other writers on the lane.
    pub async fn recent_writers(
        &self,
        prefix: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<(String, u64)>, ClickHouseError> {
        self.bounded(
            self.client
                .query(
                    "SELECT symbol, count() AS n FROM ta_microbars \
                     WHERE ingest_ts >= fromUnixTimestamp64Milli(?, 'UTC') \
                     AND NOT startsWith(symbol, ?) GROUP BY symbol ORDER BY n DESC, symbol LIMIT 5",
                )
                .bind(unix_millis(since))
                .bind(prefix)
                .fetch_all::<(String, u64)>(),
        )
        .await
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
        let (emitted, upto) = cut_clauses(cut);
        // The epoch's start per symbol as a window (no correlated subquery before 25.8).
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
        let (emitted, upto) = cut_clauses(cut);
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

/// The clauses that keep what the job had emitted by the cut bar, and the bars up to it; empty
/// without a cut. Their parameters are bound by the caller, in this order.
fn cut_clauses(cut: Option<HistoryCut>) -> (&'static str, &'static str) {
    match cut {
        Some(_) => (
            "AND ingest_ts <= fromUnixTimestamp64Milli(?, 'UTC')",
            "AND seq <= ?",
        ),
        None => ("", ""),
    }
}

/// Which rows a key of [`ClickHouse::row_keys`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyTable {
    Microbars,
    /// `ta_signals`, `PT1S`.
    Signals,
    /// `ta_signals`, `PT1M`.
    MinuteSignals,
}

impl KeyTable {
    /// The table that holds these rows.
    pub fn table(self) -> &'static str {
        match self {
            KeyTable::Microbars => "ta_microbars",
            KeyTable::Signals | KeyTable::MinuteSignals => "ta_signals",
        }
    }
}

/// What a key poll saw: the rows' keys and the part each is in, and the server's clock around
/// the query's snapshot of the tables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowKeys {
    pub keys: Vec<(KeyTable, RowKey)>,
    /// The part that holds a key, when exactly one does.
    pub parts: HashMap<(KeyTable, RowKey), String>,
    /// The rows beyond one that a key has, when it has more: duplicates no merge has folded
    /// yet, what a reader without FINAL (Jangar) shows twice.
    pub copies: HashMap<(KeyTable, RowKey), u64>,
    /// The server that answered (`hostName()`).
    pub server: Option<String>,
    /// Before the snapshot (its `now64()`): a row the query did not see was not visible then.
    pub server_start: Option<OffsetDateTime>,
    /// After the snapshot (its `nowInBlock64()`, where the server has it): a row the query saw
    /// was visible by then.
    pub server_executing: Option<OffsetDateTime>,
}

/// The key query's rows that carry the server's clock.
const SERVER_START: u8 = 9;
const SERVER_EXECUTING: u8 = 10;

#[derive(clickhouse::Row, serde::Deserialize)]
struct KeyRow {
    t: u8,
    symbol: String,
    #[serde(with = "time::serde::timestamp::milliseconds_i64")]
    event_ts: OffsetDateTime,
    seq: u64,
    part: String,
    n: u64,
}

pub(super) fn unix_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}
