//! The two seams a scenario runs against, as sqllogictest's `AsyncDB`: a [`Publisher`] that takes
//! the forwarder's messages, and a [`Warehouse`] that reads what the pipeline made of them (the TA
//! tables and the facts a diagnosis needs). The live ones are Kafka and ClickHouse, below; the
//! runner's unit tests use in-memory ones, so its logic is tested without a stack while the
//! integration tests run it against the real one.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use crate::adapter::clickhouse::{ClickHouse, ClickHouseError, KeyTable, PartCommits, RowKeys};
use crate::adapter::kafka::{self, KafkaPublisher, PublishError};
use crate::config::KafkaTarget;
use crate::domain::model::{Microbar, Signal};
use crate::domain::pool::HistoryStats;
use crate::domain::publish::{Ack, Channel};

/// Where a scenario's messages go: the lane's input topics.
pub trait Publisher: Sync {
    /// Enqueues the message now, in order; the future resolves on its acknowledgement, its
    /// failure or the acknowledgement timeout. It goes where the key's partitioner puts it,
    /// unless `partition` names one (the lane's pin goes to each).
    fn enqueue(
        &self,
        index: usize,
        channel: Channel,
        partition: Option<i32>,
        symbol: &str,
        value: &str,
    ) -> impl Future<Output = Ack> + Send + 'static;

    /// The topic a channel's messages go to (errors name it).
    fn topic(&self, channel: Channel) -> &str;

    /// The trades topic's partitions.
    fn trades_partitions(&self) -> impl Future<Output = Result<Vec<i32>, PublishError>> + Send;

    /// Drops what is still queued: it is never sent, and nothing in flight is retried.
    fn purge(&self);

    /// Looks on `channel`'s topic for the messages with these values (by index) written since
    /// `since`, within `bound`: the partition and offset of each one found.
    fn read_back(
        &self,
        channel: Channel,
        since: SystemTime,
        values: Vec<(usize, String)>,
        bound: Duration,
    ) -> impl Future<Output = Result<BTreeMap<usize, (i32, i64)>, String>> + Send;
}

/// What the pipeline wrote and what a diagnosis asks of the targets: the TA tables (FINAL),
/// duplicates, the database holding a symbol, replicas, the TA job's committed offsets.
pub trait Warehouse: Sync {
    /// `ta_microbars` FINAL of the symbols, bars ending after `after`.
    fn microbars(
        &self,
        symbols: &[String],
        after: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<Microbar>, ClickHouseError>> + Send;

    /// `ta_signals` FINAL (`window_size = 'PT1S'`) of the symbols, after `after`.
    fn signals(
        &self,
        symbols: &[String],
        after: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<Signal>, ClickHouseError>> + Send;

    /// `ta_signals` FINAL of the 1-minute path (`window_size = 'PT1M'`) of the symbols, minutes
    /// starting after `after`.
    fn minute_signals(
        &self,
        symbols: &[String],
        after: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<Signal>, ClickHouseError>> + Send;

    /// The keys of the symbols' rows, in one cheap query: bars and 1-second signals after
    /// `after`, 1-minute signals after `minutes_after` when asked (a visibility poll).
    fn row_keys(
        &self,
        symbols: &[String],
        after: OffsetDateTime,
        minutes_after: Option<OffsetDateTime>,
    ) -> impl Future<Output = Result<RowKeys, ClickHouseError>> + Send;

    /// When the server committed these parts of the TA tables, by its part log, since `since`.
    fn part_commits(
        &self,
        parts: &[(KeyTable, String)],
        since: OffsetDateTime,
    ) -> impl Future<Output = Result<PartCommits, ClickHouseError>> + Send;

    /// Whether either table holds a row of `symbol`.
    fn has_rows(&self, symbol: &str) -> impl Future<Output = Result<bool, ClickHouseError>> + Send;

    /// Symbols outside `prefix` whose bars the job wrote since `since`, with how many.
    fn recent_writers(
        &self,
        prefix: &str,
        since: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<(String, u64)>, ClickHouseError>> + Send;

    /// Rows of `table` visible without FINAL beyond those with FINAL (duplicate writes), per
    /// symbol that has some.
    fn unmerged_duplicates(
        &self,
        table: &str,
        symbols: &[String],
        after: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<(String, u64)>, ClickHouseError>> + Send;

    /// Another database that holds rows of the symbols, if one does.
    fn database_holding(
        &self,
        symbols: &[String],
    ) -> impl Future<Output = Result<Option<String>, ClickHouseError>> + Send;

    /// Replicas of the TA tables that cannot take writes.
    fn unhealthy_replicas(
        &self,
    ) -> impl Future<Output = Result<Vec<String>, ClickHouseError>> + Send;

    /// The offsets the TA job's consumer group has committed on these partitions of the trades
    /// topic (the next offset it will read).
    fn committed_offsets(
        &self,
        partitions: &[i32],
    ) -> impl Future<Output = Result<BTreeMap<i32, i64>, String>> + Send;

    /// Each symbol's history in aggregate (symbols without rows are left out).
    fn history_stats(
        &self,
        symbols: &[String],
    ) -> impl Future<Output = Result<Vec<HistoryStats>, ClickHouseError>> + Send;

    /// The newest `limit` bars of the job's current state of `symbol`, in bar order.
    fn latest_microbars(
        &self,
        symbol: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Microbar>, ClickHouseError>> + Send;

    /// The bars of `symbol` with a seq strictly between `after` and `before`.
    fn microbars_between_seqs(
        &self,
        symbol: &str,
        after: u64,
        before: u64,
    ) -> impl Future<Output = Result<Vec<Microbar>, ClickHouseError>> + Send;

    /// The newest stored `vwap_session` of `symbol`.
    fn latest_vwap_session(
        &self,
        symbol: &str,
    ) -> impl Future<Output = Result<Option<f64>, ClickHouseError>> + Send;
}

impl Publisher for KafkaPublisher {
    fn enqueue(
        &self,
        index: usize,
        channel: Channel,
        partition: Option<i32>,
        symbol: &str,
        value: &str,
    ) -> impl Future<Output = Ack> + Send + 'static {
        KafkaPublisher::enqueue(self, index, channel, partition, symbol, value)
    }

    fn topic(&self, channel: Channel) -> &str {
        KafkaPublisher::topic(self, channel)
    }

    async fn trades_partitions(&self) -> Result<Vec<i32>, PublishError> {
        KafkaPublisher::trades_partitions(self).await
    }

    fn purge(&self) {
        KafkaPublisher::purge(self)
    }

    async fn read_back(
        &self,
        channel: Channel,
        since: SystemTime,
        values: Vec<(usize, String)>,
        bound: Duration,
    ) -> Result<BTreeMap<usize, (i32, i64)>, String> {
        kafka::find_messages(self.target(), self.topic(channel), since, values, bound)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The live warehouse: ClickHouse, and the lane's Kafka for the TA job's committed offsets.
pub struct LiveWarehouse<'a> {
    pub clickhouse: &'a ClickHouse,
    pub kafka: &'a KafkaTarget,
}

/// How long the committed-offsets probe may take (a diagnosis, not a check of its own).
const OFFSETS_TIMEOUT: Duration = Duration::from_secs(5);

impl Warehouse for LiveWarehouse<'_> {
    async fn microbars(
        &self,
        symbols: &[String],
        after: OffsetDateTime,
    ) -> Result<Vec<Microbar>, ClickHouseError> {
        self.clickhouse.microbars(symbols, after).await
    }

    async fn signals(
        &self,
        symbols: &[String],
        after: OffsetDateTime,
    ) -> Result<Vec<Signal>, ClickHouseError> {
        self.clickhouse.signals(symbols, after).await
    }

    async fn minute_signals(
        &self,
        symbols: &[String],
        after: OffsetDateTime,
    ) -> Result<Vec<Signal>, ClickHouseError> {
        self.clickhouse.minute_signals(symbols, after).await
    }

    async fn row_keys(
        &self,
        symbols: &[String],
        after: OffsetDateTime,
        minutes_after: Option<OffsetDateTime>,
    ) -> Result<RowKeys, ClickHouseError> {
        self.clickhouse
            .row_keys(symbols, after, minutes_after)
            .await
    }

    async fn part_commits(
        &self,
        parts: &[(KeyTable, String)],
        since: OffsetDateTime,
    ) -> Result<PartCommits, ClickHouseError> {
        self.clickhouse.part_commits(parts, since).await
    }

    async fn has_rows(&self, symbol: &str) -> Result<bool, ClickHouseError> {
        self.clickhouse.has_rows(symbol).await
    }

    async fn recent_writers(
        &self,
        prefix: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<(String, u64)>, ClickHouseError> {
        self.clickhouse.recent_writers(prefix, since).await
    }

    async fn unmerged_duplicates(
        &self,
        table: &str,
        symbols: &[String],
        after: OffsetDateTime,
    ) -> Result<Vec<(String, u64)>, ClickHouseError> {
        self.clickhouse
            .unmerged_duplicates(table, symbols, after)
            .await
    }

    async fn database_holding(
        &self,
        symbols: &[String],
    ) -> Result<Option<String>, ClickHouseError> {
        self.clickhouse.database_holding(symbols).await
    }

    async fn unhealthy_replicas(&self) -> Result<Vec<String>, ClickHouseError> {
        self.clickhouse.unhealthy_replicas().await
    }

    async fn committed_offsets(&self, partitions: &[i32]) -> Result<BTreeMap<i32, i64>, String> {
        kafka::committed_offsets(
            self.kafka,
            &self.kafka.ta_group_id,
            &self.kafka.trades_topic,
            partitions,
            OFFSETS_TIMEOUT,
        )
        .await
        .map_err(|e| e.to_string())
    }

    async fn history_stats(
        &self,
        symbols: &[String],
    ) -> Result<Vec<HistoryStats>, ClickHouseError> {
        self.clickhouse.history_stats(symbols, None).await
    }

    async fn latest_microbars(
        &self,
        symbol: &str,
        limit: usize,
    ) -> Result<Vec<Microbar>, ClickHouseError> {
        self.clickhouse.latest_microbars(symbol, limit, None).await
    }

    async fn microbars_between_seqs(
        &self,
        symbol: &str,
        after: u64,
        before: u64,
    ) -> Result<Vec<Microbar>, ClickHouseError> {
        self.clickhouse
            .microbars_between_seqs(symbol, after, before)
            .await
    }

    async fn latest_vwap_session(&self, symbol: &str) -> Result<Option<f64>, ClickHouseError> {
        self.clickhouse.latest_vwap_session(symbol, None).await
    }
}
