//! In-memory seams for the runner's unit tests: a publisher that acknowledges each message (or
//! stops acknowledging at a chosen one), a warehouse holding rows, and a stand-in TA job between
//! them (the oracle, fed every message the publisher acknowledges, its rows passed through an
//! edit the test chooses: lose a bar, change a value). Nothing here talks to a system; the
//! integration tests run the same runner against the real stack.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;
use tokio::sync::watch;

use super::{Ran, Stages};
use crate::adapter::clickhouse::{ClickHouseError, KeyTable, PartCommits, RowKeys};
use crate::adapter::kafka::PublishError;
use crate::domain::model::{Columns, Microbar, RowKey, Signal, WINDOW_1M, WINDOW_1S};
use crate::domain::oracle::{Expected, Oracle};
use crate::domain::pool::HistoryStats;
use crate::domain::publish::{Ack, Channel, Delivery};
use crate::domain::report::StageReport;
use crate::suite::seam::{Publisher, Warehouse};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the stand-in job does to a row before it writes it: `None` loses it.
pub type Edit = Box<dyn Fn(Expected) -> Option<Expected> + Send + Sync>;

/// The TA job's stand-in: every acknowledged message goes through the oracle, and the rows it
/// emits (edited) land in the warehouse with the wall clock as `ingest_ts`.
pub struct FakeJob {
    oracle: Mutex<Oracle>,
    warehouse: Arc<FakeWarehouse>,
    edit: Edit,
}

impl FakeJob {
    pub fn new(warehouse: Arc<FakeWarehouse>, edit: Edit) -> Arc<Self> {
        Arc::new(Self {
            oracle: Mutex::new(Oracle::new()),
            warehouse,
            edit,
        })
    }

    fn take(&self, value: &str) {
        let rows = lock(&self.oracle).on_message(value).unwrap_or_default();
        let now = OffsetDateTime::now_utc();
        for row in rows.into_iter().filter_map(&self.edit) {
            match row {
                Expected::Microbar(mut b) => {
                    b.ingest_ts = now;
                    self.warehouse.commit(KeyTable::Microbars, &b.key(), now);
                    lock(&self.warehouse.bars).push(b);
                }
                Expected::Signal(mut s) => {
                    s.ingest_ts = now;
                    self.warehouse.commit(KeyTable::Signals, &s.key(), now);
                    lock(&self.warehouse.signals).push(s);
                }
            }
        }
    }
}

/// A message the fake publisher took.
#[derive(Debug, Clone)]
pub struct Taken {
    pub channel: Channel,
    /// Set when the message named its partition.
    pub partition: Option<i32>,
    pub symbol: String,
    pub value: String,
}

/// The fake topics' partitions: a pin goes to each.
pub const FAKE_PARTITIONS: [i32; 3] = [0, 1, 2];

/// A publisher that acknowledges at once, each message on partition 0 at its index as offset.
#[derive(Default)]
pub struct FakePublisher {
    /// Where acknowledged messages go; `None`: nowhere (no row ever appears).
    pub job: Option<Arc<FakeJob>>,
    /// This message's acknowledgement fails, and later ones never come (until purged).
    pub stall_at: Option<usize>,
    /// Messages a read-back finds on the topic although unacknowledged.
    pub landed: BTreeSet<usize>,
    /// Every message taken, in order.
    pub sent: Mutex<Vec<Taken>>,
    purged: Mutex<Option<watch::Sender<bool>>>,
}

impl FakePublisher {
    /// A publisher whose acknowledged messages go to `job`.
    pub fn feeding(job: Arc<FakeJob>) -> Self {
        FakePublisher {
            job: Some(job),
            ..FakePublisher::default()
        }
    }

    fn purge_signal(&self) -> watch::Receiver<bool> {
        lock(&self.purged)
            .get_or_insert_with(|| watch::channel(false).0)
            .subscribe()
    }
}

impl Publisher for FakePublisher {
    fn enqueue(
        &self,
        index: usize,
        channel: Channel,
        partition: Option<i32>,
        symbol: &str,
        value: &str,
    ) -> impl Future<Output = Ack> + Send + 'static {
        lock(&self.sent).push(Taken {
            channel,
            partition,
            symbol: symbol.to_string(),
            value: value.to_string(),
        });
        let ack = match self.stall_at {
            Some(at) if index == at => Ack::Failed("no acknowledgement within 6s".into()),
            Some(at) if index > at => {
                let mut purged = self.purge_signal();
                return boxed(async move {
                    let _ = purged.wait_for(|p| *p).await;
                    Ack::Purged
                });
            }
            _ => {
                if let Some(job) = &self.job {
                    job.take(value);
                }
                Ack::Delivered(Delivery {
                    index,
                    channel,
                    symbol: symbol.to_string(),
                    partition: partition.unwrap_or(0),
                    offset: index as i64,
                    acked_at: OffsetDateTime::now_utc(),
                })
            }
        };
        boxed(async move { ack })
    }

    fn topic(&self, channel: Channel) -> &str {
        match channel {
            Channel::Trades => "fake.trades",
            Channel::Quotes => "fake.quotes",
            Channel::Bars1m => "fake.bars.1m",
        }
    }

    async fn trades_partitions(&self) -> Result<Vec<i32>, PublishError> {
        Ok(FAKE_PARTITIONS.to_vec())
    }

    fn purge(&self) {
        lock(&self.purged)
            .get_or_insert_with(|| watch::channel(false).0)
            .send_replace(true);
    }

    async fn read_back(
        &self,
        _channel: Channel,
        _since: SystemTime,
        values: Vec<(usize, String)>,
        _bound: Duration,
    ) -> Result<BTreeMap<usize, (i32, i64)>, String> {
        Ok(values
            .into_iter()
            .filter(|(i, _)| self.landed.contains(i))
            .map(|(i, _)| (i, (0, i as i64)))
            .collect())
    }
}

/// One future type for both arms of [`FakePublisher::enqueue`].
fn boxed(
    f: impl Future<Output = Ack> + Send + 'static,
) -> std::pin::Pin<Box<dyn Future<Output = Ack> + Send>> {
    Box::pin(f)
}

/// A warehouse holding the rows written to it, and the facts a test sets.
#[derive(Default)]
pub struct FakeWarehouse {
    pub bars: Mutex<Vec<Microbar>>,
    pub signals: Mutex<Vec<Signal>>,
    /// Symbols that already have rows (a run refuses them).
    pub taken: Vec<String>,
    /// Symbols whose bars were written lately, with how many (other writers on the lane).
    pub writers: Vec<(String, u64)>,
    pub other_database: Option<String>,
    pub replicas: Vec<String>,
    /// The TA job's committed offsets on the trades topic.
    pub committed: BTreeMap<i32, i64>,
    pub unmerged: u64,
    /// How many key polls see the `unmerged` copies before a merge folds them (`None`: all).
    pub merged_after_polls: Option<usize>,
    /// Key polls that saw copies so far.
    pub polls_with_copies: Mutex<usize>,
    /// Whether it keeps a part log: then [`FakeJob`]'s writes are logged in `commits`.
    pub part_log: bool,
    /// The part log: when each part named by [`fake_part`] was committed. Keys report their
    /// part only when it has a commit here.
    pub commits: Mutex<HashMap<String, OffsetDateTime>>,
    /// How long its part log takes to answer.
    pub part_log_delay: Duration,
}

/// The fake server's name.
const FAKE_SERVER: &str = "fake-clickhouse";

/// The one part a fake key is in.
pub fn fake_part(table: KeyTable, key: &RowKey) -> String {
    format!("{}-{}-{}", table.table(), key.symbol, key.seq)
}

impl FakeWarehouse {
    /// Logs the commit of a row's part, if it keeps a part log.
    fn commit(&self, table: KeyTable, key: &RowKey, at: OffsetDateTime) {
        if self.part_log {
            lock(&self.commits).insert(fake_part(table, key), at);
        }
    }

    /// The stored signals of one window size, as `rows.rs`'s `signals_of` selects them.
    fn signals_of(&self, window: &str, symbols: &[String], after: OffsetDateTime) -> Vec<Signal> {
        lock(&self.signals)
            .iter()
            .filter(|s| {
                symbols.contains(&s.symbol) && s.event_ts > after && s.window_size == window
            })
            .cloned()
            .collect()
    }
}

impl Warehouse for FakeWarehouse {
    async fn microbars(
        &self,
        symbols: &[String],
        after: OffsetDateTime,
    ) -> Result<Vec<Microbar>, ClickHouseError> {
        Ok(lock(&self.bars)
            .iter()
            .filter(|b| symbols.contains(&b.symbol) && b.event_ts > after)
            .cloned()
            .collect())
    }

    async fn signals(
        &self,
        symbols: &[String],
        after: OffsetDateTime,
    ) -> Result<Vec<Signal>, ClickHouseError> {
        Ok(self.signals_of(WINDOW_1S, symbols, after))
    }

    async fn minute_signals(
        &self,
        symbols: &[String],
        after: OffsetDateTime,
    ) -> Result<Vec<Signal>, ClickHouseError> {
        Ok(self.signals_of(WINDOW_1M, symbols, after))
    }

    async fn row_keys(
        &self,
        symbols: &[String],
        after: OffsetDateTime,
        minutes_after: Option<OffsetDateTime>,
    ) -> Result<RowKeys, ClickHouseError> {
        let mut keys: Vec<(KeyTable, RowKey)> = self
            .microbars(symbols, after)
            .await?
            .iter()
            .map(|b| (KeyTable::Microbars, b.key()))
            .collect();
        keys.extend(
            self.signals(symbols, after)
                .await?
                .iter()
                .map(|s| (KeyTable::Signals, s.key())),
        );
        if let Some(m) = minutes_after {
            keys.extend(
                self.minute_signals(symbols, m)
                    .await?
                    .iter()
                    .map(|s| (KeyTable::MinuteSignals, s.key())),
            );
        }
        keys.sort();
        keys.dedup();
        let commits = lock(&self.commits);
        let parts = keys
            .iter()
            .map(|(t, k)| ((*t, k.clone()), fake_part(*t, k)))
            .filter(|(_, part)| commits.contains_key(part))
            .collect();
        drop(commits);
        // All of them on the first symbol's first bar, as `unmerged_duplicates` says, until
        // merged.
        let copies: HashMap<_, _> = keys
            .iter()
            .find(|(t, k)| *t == KeyTable::Microbars && symbols.first() == Some(&k.symbol))
            .filter(|_| self.unmerged > 0)
            .filter(|_| {
                let mut seen = lock(&self.polls_with_copies);
                *seen += 1;
                self.merged_after_polls.is_none_or(|n| *seen <= n)
            })
            .map(|k| (k.clone(), self.unmerged))
            .into_iter()
            .collect();
        Ok(RowKeys {
            keys,
            parts,
            copies,
            server: Some(FAKE_SERVER.into()),
            server_start: None,
            server_executing: None,
        })
    }

    async fn part_commits(
        &self,
        parts: &[(KeyTable, String)],
        _since: OffsetDateTime,
    ) -> Result<PartCommits, ClickHouseError> {
        tokio::time::sleep(self.part_log_delay).await;
        let commits = lock(&self.commits);
        let committed: HashMap<(KeyTable, String), Vec<OffsetDateTime>> = parts
            .iter()
            .filter_map(|(t, p)| Some(((*t, p.clone()), vec![*commits.get(p)?])))
            .collect();
        Ok(PartCommits {
            server: (!committed.is_empty()).then(|| FAKE_SERVER.into()),
            committed,
            flush_refused: None,
        })
    }

    async fn has_rows(&self, symbol: &str) -> Result<bool, ClickHouseError> {
        Ok(self.taken.iter().any(|t| t == symbol))
    }

    async fn recent_writers(
        &self,
        prefix: &str,
        _since: OffsetDateTime,
    ) -> Result<Vec<(String, u64)>, ClickHouseError> {
        Ok(self
            .writers
            .iter()
            .filter(|(s, _)| !s.starts_with(prefix))
            .cloned()
            .collect())
    }

    async fn unmerged_duplicates(
        &self,
        _table: &str,
        symbols: &[String],
        _after: OffsetDateTime,
    ) -> Result<Vec<(String, u64)>, ClickHouseError> {
        // All of them on the first symbol, unless merged.
        let merged = self
            .merged_after_polls
            .is_some_and(|n| *lock(&self.polls_with_copies) >= n);
        Ok(symbols
            .first()
            .filter(|_| self.unmerged > 0 && !merged)
            .map(|s| (s.clone(), self.unmerged))
            .into_iter()
            .collect())
    }

    async fn database_holding(
        &self,
        _symbols: &[String],
    ) -> Result<Option<String>, ClickHouseError> {
        Ok(self.other_database.clone())
    }

    async fn unhealthy_replicas(&self) -> Result<Vec<String>, ClickHouseError> {
        Ok(self.replicas.clone())
    }

    async fn committed_offsets(&self, partitions: &[i32]) -> Result<BTreeMap<i32, i64>, String> {
        Ok(self
            .committed
            .iter()
            .filter(|(p, _)| partitions.contains(p))
            .map(|(p, o)| (*p, *o))
            .collect())
    }

    async fn history_stats(
        &self,
        _symbols: &[String],
    ) -> Result<Vec<HistoryStats>, ClickHouseError> {
        Ok(Vec::new())
    }

    async fn latest_microbars(
        &self,
        _symbol: &str,
        _limit: usize,
    ) -> Result<Vec<Microbar>, ClickHouseError> {
        Ok(Vec::new())
    }

    async fn microbars_between_seqs(
        &self,
        _symbol: &str,
        _after: u64,
        _before: u64,
    ) -> Result<Vec<Microbar>, ClickHouseError> {
        Ok(Vec::new())
    }

    async fn latest_vwap_session(&self, _symbol: &str) -> Result<Option<f64>, ClickHouseError> {
        Ok(None)
    }
}

/// Later stages that report what the test gives them (none by default).
#[derive(Default)]
pub struct FakeStages(pub Vec<StageReport>);

impl Stages for FakeStages {
    async fn run(&self, _ran: &Ran<'_>) -> Vec<StageReport> {
        self.0.clone()
    }
}

/// A bar of `symbol` ending at `end`, every price `c`.
pub(crate) fn microbar(symbol: &str, end: OffsetDateTime, seq: u64, c: f64) -> Microbar {
    Microbar {
        symbol: symbol.into(),
        event_ts: end,
        seq,
        ingest_ts: end,
        is_final: 1,
        source: "ta".into(),
        window_size: "PT1S".into(),
        window_step: Some("PT1S".into()),
        window_start: Some(end - time::Duration::seconds(1)),
        window_end: Some(end),
        version: 1,
        o: c,
        h: c,
        l: c,
        c,
        v: 2.0,
        vwap: Some(c),
        count: 1,
    }
}

/// The signal row of `b` in `window`.
pub(crate) fn signal_of(b: &Microbar, window: &str) -> Signal {
    Signal {
        symbol: b.symbol.clone(),
        event_ts: b.event_ts,
        seq: b.seq,
        ingest_ts: b.ingest_ts,
        is_final: 1,
        source: "ta".into(),
        window_size: window.into(),
        window_step: Some(window.into()),
        window_start: b.window_start,
        window_end: b.window_end,
        version: 1,
        macd: Some(0.0),
        macd_signal: Some(0.0),
        macd_hist: Some(0.0),
        ema12: Some(b.c),
        ema26: Some(b.c),
        rsi14: None,
        boll_mid: None,
        boll_upper: None,
        boll_lower: None,
        vwap_session: Some(b.c),
        vwap_w5m: None,
        imbalance_spread: None,
        imbalance_bid_px: None,
        imbalance_ask_px: None,
        imbalance_bid_sz: None,
        imbalance_ask_sz: None,
        vol_realized_w60s: None,
        microstructure_signal_v1: None,
    }
}
