//! What production stored for an audited symbol: `SELECT … FINAL` only (signals filtered to the
//! 1-second path), and the state epochs those rows belong to.

use time::OffsetDateTime;

use crate::clickhouse::{ClickHouse, ClickHouseError};
use crate::model::{Microbar, Signal};

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

/// One state epoch of the job for a symbol, as the stored rows show it: from a restart without
/// state (its seq-1 row) to the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Epoch {
    /// `ingest_ts` of its seq-1 row; `None`: it began before the rows read.
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Its rows among those read, in emission order.
    pub bars: Vec<Microbar>,
}

impl Epoch {
    pub fn since_or_epoch(&self) -> OffsetDateTime {
        self.since.unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    pub fn last_seq(&self) -> Option<u64> {
        self.bars.iter().map(|b| b.seq).max()
    }

    /// The epoch's bar with this seq, if read.
    pub fn bar(&self, seq: u64) -> Option<&Microbar> {
        self.bars.iter().find(|b| b.seq == seq)
    }
}

/// Splits rows in emission order into epochs: each seq-1 row starts one.
pub fn epochs(bars: &[Microbar]) -> Vec<Epoch> {
    let mut epochs: Vec<Epoch> = Vec::new();
    for bar in bars {
        let starts = bar.seq == 1;
        match epochs.last_mut() {
            Some(e) if !starts => e.bars.push(bar.clone()),
            _ => {
                if let Some(previous) = epochs.last_mut() {
                    previous.until = Some(bar.ingest_ts);
                }
                epochs.push(Epoch {
                    since: starts.then_some(bar.ingest_ts),
                    until: None,
                    bars: vec![bar.clone()],
                });
            }
        }
    }
    epochs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tests::bar;

    #[test]
    fn a_seq_1_row_starts_a_new_epoch() {
        let rows = vec![bar(10, 40, 0), bar(11, 41, 1), bar(5, 1, 2), bar(6, 2, 3)];
        let e = epochs(&rows);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].since, None);
        assert_eq!(e[0].until, Some(rows[2].ingest_ts));
        assert_eq!(e[0].last_seq(), Some(41));
        assert_eq!(e[1].since, Some(rows[2].ingest_ts));
        assert_eq!(e[1].bar(2).map(|b| b.event_ts), Some(rows[3].event_ts));
    }
}
