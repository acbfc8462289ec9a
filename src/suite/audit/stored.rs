//! What production stored for an audited symbol: `SELECT … FINAL` only (signals filtered to the
//! 1-second path), and the state epochs those rows belong to.

use time::OffsetDateTime;

use crate::adapter::clickhouse::{ClickHouse, ClickHouseError};
use crate::domain::model::{Microbar, Signal};

/// An `ingest_ts` bound no row reaches (2286, inside DateTime64's range).
const FAR_FUTURE_MS: i64 = 10_000_000_000_000;

fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The symbol's bars ending in `[from, to]`, in emission order (`ingest_ts`, then `seq`).
pub async fn bars_between(
    ch: &ClickHouse,
    symbol: &str,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<Microbar>, ClickHouseError> {
    ch.bounded(
        ch.client()
            .query(
                "SELECT ?fields FROM ta_microbars FINAL WHERE symbol = ? \
                 AND event_ts >= fromUnixTimestamp64Milli(?, 'UTC') \
                 AND event_ts <= fromUnixTimestamp64Milli(?, 'UTC') \
                 ORDER BY ingest_ts, seq",
            )
            .bind(symbol)
            .bind(millis(from))
            .bind(millis(to))
            .fetch_all::<Microbar>(),
    )
    .await
}

/// Which rows of a state epoch to read: seqs after `after`, emitted in `[since, until)`, ending
/// at or before `ends_by` (late bars, which end earlier, included whatever their end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqRange {
    pub after: u64,
    pub since: OffsetDateTime,
    pub until: Option<OffsetDateTime>,
    pub ends_by: OffsetDateTime,
}

impl SeqRange {
    const FILTER: &'static str = "symbol = ? AND seq > ? \
         AND ingest_ts >= fromUnixTimestamp64Milli(?, 'UTC') \
         AND ingest_ts < fromUnixTimestamp64Milli(?, 'UTC') \
         AND event_ts <= fromUnixTimestamp64Milli(?, 'UTC')";

    fn bind(&self, query: clickhouse::query::Query, symbol: &str) -> clickhouse::query::Query {
        query
            .bind(symbol)
            .bind(self.after)
            .bind(millis(self.since))
            .bind(self.until.map_or(FAR_FUTURE_MS, millis))
            .bind(millis(self.ends_by))
    }
}

/// The symbol's bars of one epoch after a seq, in seq order.
pub async fn bars_after(
    ch: &ClickHouse,
    symbol: &str,
    range: SeqRange,
) -> Result<Vec<Microbar>, ClickHouseError> {
    let sql = format!(
        "SELECT ?fields FROM ta_microbars FINAL WHERE {} ORDER BY seq, event_ts",
        SeqRange::FILTER
    );
    let query = range.bind(ch.client().query(&sql), symbol);
    ch.bounded(query.fetch_all::<Microbar>()).await
}

/// The symbol's 1-second signals of one epoch after a seq, in seq order.
pub async fn signals_after(
    ch: &ClickHouse,
    symbol: &str,
    range: SeqRange,
) -> Result<Vec<Signal>, ClickHouseError> {
    let sql = format!(
        "SELECT ?fields FROM ta_signals FINAL WHERE window_size = 'PT1S' AND {} \
         ORDER BY seq, event_ts",
        SeqRange::FILTER
    );
    let query = range.bind(ch.client().query(&sql), symbol);
    ch.bounded(query.fetch_all::<Signal>()).await
}

/// When the state epoch of a bar began: the newest seq-1 row emitted at or before it (`None`
/// when none is stored: the epoch's start expired, or the rows before it are all there is).
pub async fn epoch_start(
    ch: &ClickHouse,
    symbol: &str,
    emitted: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, ClickHouseError> {
    let start = ch
        .bounded(
            ch.client()
                .query(
                    "SELECT max(ingest_ts) AS at FROM ta_microbars FINAL WHERE symbol = ? AND seq = 1 \
                     AND ingest_ts <= fromUnixTimestamp64Milli(?, 'UTC')",
                )
                .bind(symbol)
                .bind(millis(emitted))
                .fetch_one::<Millis>(),
        )
        .await?;
    Ok((start.at != OffsetDateTime::UNIX_EPOCH).then_some(start.at))
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct Millis {
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    at: OffsetDateTime,
}
