//! The run's reads of its rows, shared by the scenarios' pollers.
//!
//! Each scenario polls for its rows' keys up to 25 times a second while rows are due, and
//! reads its rows in full once their keys are complete; with the compressed scenarios
//! publishing together, six pollers at once would queue at the server and each one's round
//! trip, and with it the visibility error and the validator's overhead, would grow with their
//! number. So for each kind of read the requests that arrive while a query is in flight wait
//! for it and go out together as the next query, over the union of their windows, and each
//! takes its own share of the answer: one key query, one full read and one part-log lookup at
//! a time per run. Scenarios published together complete together, and one key poll's answer
//! completes several: their full reads and lookups wait a moment (a linger, as a Kafka
//! producer's) so that they go out as one query, not as one and then the others.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{oneshot, Mutex, MutexGuard, Notify};
use tokio::time::Instant;

use crate::adapter::clickhouse::{ClickHouseError, KeyTable, PartCommits, RowKeys};
use crate::domain::model::{Columns, Microbar, RowKey, Signal};

/// The rows one scenario reads: its symbols' bars and 1-second signals ending after `after`,
/// and their 1-minute signals starting after `minutes_after` when it publishes 1-minute bars.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub symbols: Vec<String>,
    pub after: OffsetDateTime,
    pub minutes_after: Option<OffsetDateTime>,
}

/// What one request asks for; requests made together go out as one query for their union.
pub trait Ask: Clone {
    /// What every one of `asks` asks for; `None` for no request.
    fn union(asks: &[&Self]) -> Option<Self>;
}

impl Ask for Window {
    /// The window every one of `windows` lies in.
    fn union(windows: &[&Window]) -> Option<Window> {
        let after = windows.iter().map(|w| w.after).min()?;
        let symbols = windows
            .iter()
            .flat_map(|w| w.symbols.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let minutes_after = windows.iter().filter_map(|w| w.minutes_after).min();
        Some(Window {
            symbols,
            after,
            minutes_after,
        })
    }
}

/// A part-log lookup: the commits of these parts, by the records since `since`.
#[derive(Debug, Clone, PartialEq)]
pub struct PartsAsked {
    pub parts: Vec<(KeyTable, String)>,
    pub since: OffsetDateTime,
}

impl Ask for PartsAsked {
    fn union(asks: &[&PartsAsked]) -> Option<PartsAsked> {
        let since = asks.iter().map(|a| a.since).min()?;
        let parts = asks
            .iter()
            .flat_map(|a| a.parts.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        Some(PartsAsked { parts, since })
    }
}

impl Share<PartsAsked> for PartCommits {
    /// The commits of the parts it asked for; the log's server and flush for every one.
    fn share(&self, asked: &PartsAsked) -> Self {
        PartCommits {
            committed: self
                .committed
                .iter()
                .filter(|(part, _)| asked.parts.contains(part))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            server: self.server.clone(),
            flush_refused: self.flush_refused.clone(),
        }
    }
}

impl Window {
    /// Whether the row of `table` with `key` lies in this window.
    fn holds(&self, table: KeyTable, key: &RowKey) -> bool {
        self.symbols.contains(&key.symbol)
            && match table {
                KeyTable::MinuteSignals => self.minutes_after.is_some_and(|m| key.event_ts > m),
                KeyTable::Microbars | KeyTable::Signals => key.event_ts > self.after,
            }
    }

    /// The entries of a map by row key that lie in this window.
    fn own_keyed<V: Clone>(
        &self,
        map: &HashMap<(KeyTable, RowKey), V>,
    ) -> HashMap<(KeyTable, RowKey), V> {
        map.iter()
            .filter(|((table, key), _)| self.holds(*table, key))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn own<R: Columns + Clone>(&self, table: KeyTable, rows: &[R]) -> Vec<R> {
        rows.iter()
            .filter(|r| self.holds(table, &r.key()))
            .cloned()
            .collect()
    }
}

/// An answer to a query over a union of requests, of which each request takes its share.
pub trait Share<A> {
    fn share(&self, asked: &A) -> Self;
}

impl Share<Window> for RowKeys {
    fn share(&self, window: &Window) -> Self {
        RowKeys {
            keys: self
                .keys
                .iter()
                .filter(|(table, key)| window.holds(*table, key))
                .cloned()
                .collect(),
            parts: window.own_keyed(&self.parts),
            copies: window.own_keyed(&self.copies),
            server: self.server.clone(),
            server_start: self.server_start,
            server_executing: self.server_executing,
        }
    }
}

/// The rows in full (FINAL), as the comparison reads them, with the symbols' unmerged
/// duplicates at that moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub bars: Vec<Microbar>,
    pub signals: Vec<Signal>,
    pub minute_signals: Vec<Signal>,
    /// `ta_microbars` rows visible without FINAL beyond one per key, per symbol that has some.
    pub unmerged: Vec<(String, u64)>,
}

impl Share<Window> for Rows {
    fn share(&self, window: &Window) -> Self {
        Rows {
            bars: window.own(KeyTable::Microbars, &self.bars),
            signals: window.own(KeyTable::Signals, &self.signals),
            minute_signals: window.own(KeyTable::MinuteSignals, &self.minute_signals),
            unmerged: self
                .unmerged
                .iter()
                .filter(|(symbol, _)| window.symbols.contains(symbol))
                .cloned()
                .collect(),
        }
    }
}

/// The answer to one request: when the query that served it was sent and answered, and the
/// requester's share.
pub struct Answer<T> {
    pub sent: OffsetDateTime,
    pub answered: OffsetDateTime,
    pub result: Result<T, ClickHouseError>,
}

struct Request<A, T> {
    asked: A,
    answer: oneshot::Sender<Answer<T>>,
}

/// One query at a time for the whole run; requests made meanwhile share the next one, unless
/// the one out is slow (see [`HEDGE_AFTER`]).
pub struct Shared<A, T> {
    in_flight: Mutex<()>,
    waiting: std::sync::Mutex<Vec<Request<A, T>>>,
    /// How long a query waits for others to join it before it goes out.
    linger: Duration,
    /// When each query out now went out.
    out: std::sync::Mutex<Vec<Instant>>,
    /// A query went out or came back.
    changed: Notify,
}

/// How long the newest query out may hold the requests made meanwhile back: past that they go
/// out beside it, at most one such query at a time (two out in all). A server that leaves one
/// request waiting (the stand-in once held a key poll 690 ms before it began, while its other
/// queries took 30–40 ms) would otherwise hold every scenario's polls, and with them the
/// visibility brackets, as long. 150 ms is a few of a loaded server's round trips (20–100 ms).
const HEDGE_AFTER: Duration = Duration::from_millis(150);
const MOST_OUT: usize = 2;

impl<A, T> Shared<A, T> {
    fn lingering(linger: Duration) -> Self {
        Self {
            in_flight: Mutex::new(()),
            waiting: std::sync::Mutex::new(Vec::new()),
            linger,
            out: std::sync::Mutex::new(Vec::new()),
            changed: Notify::new(),
        }
    }

    /// The turn to send the next query (`Some`), or, when the newest query out is slow and
    /// there is room, leave to send one beside it (`None`).
    async fn turn(&self) -> Option<MutexGuard<'_, ()>> {
        let lock = self.in_flight.lock();
        tokio::pin!(lock);
        loop {
            // Registered before the state is read: a change after it wakes this wait.
            let changed = self.changed.notified();
            let hedge_at = {
                let out = self.outs();
                (out.len() < MOST_OUT)
                    .then(|| out.iter().max().map(|t| *t + HEDGE_AFTER))
                    .flatten()
            };
            tokio::select! {
                biased;
                guard = &mut lock => return Some(guard),
                () = async {
                    match hedge_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => return None,
                () = changed => {}
            }
        }
    }

    fn outs(&self) -> std::sync::MutexGuard<'_, Vec<Instant>> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A query out: its send time is listed until it comes back or is dropped.
struct Out<'a> {
    at: Instant,
    out: &'a std::sync::Mutex<Vec<Instant>>,
    changed: &'a Notify,
}

impl<'a> Out<'a> {
    fn start<A, T>(shared: &'a Shared<A, T>) -> Self {
        let at = Instant::now();
        shared.outs().push(at);
        shared.changed.notify_waiters();
        Out {
            at,
            out: &shared.out,
            changed: &shared.changed,
        }
    }
}

impl Drop for Out<'_> {
    fn drop(&mut self) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = out.iter().position(|t| *t == self.at) {
            out.swap_remove(i);
        }
        drop(out);
        self.changed.notify_waiters();
    }
}

impl<A, T> Default for Shared<A, T> {
    fn default() -> Self {
        Self::lingering(Duration::ZERO)
    }
}

impl<A: Ask, T: Share<A>> Shared<A, T> {
    /// `asked`'s share of `query` over the union of what was asked for meanwhile: the query of
    /// whichever request goes out serves the others waiting with it.
    pub async fn get<F, Q>(&self, query: F, asked: &A) -> Answer<T>
    where
        F: Fn(A) -> Q,
        Q: Future<Output = Result<T, ClickHouseError>>,
    {
        loop {
            let (answer, mut answered) = oneshot::channel();
            self.waiting().push(Request {
                asked: asked.clone(),
                answer,
            });
            let turn = self.turn().await;
            match answered.try_recv() {
                // A query sent while this one waited served it.
                Ok(answer) => return answer,
                // Taken by a query whose poller was dropped before it answered: ask again.
                Err(oneshot::error::TryRecvError::Closed) => continue,
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            // A query beside a slow one is late already: it does not linger.
            if turn.is_some() && !self.linger.is_zero() {
                tokio::time::sleep(self.linger).await;
            }
            // Empty when a query beside it took this request: its answer comes from there.
            let batch = std::mem::take(&mut *self.waiting());
            self.query(&query, batch).await;
            drop(turn);
            if let Ok(answer) = answered.await {
                return answer;
            }
        }
    }

    /// One query over the union of `batch`, each request answered with its share.
    async fn query<F, Q>(&self, query: &F, batch: Vec<Request<A, T>>)
    where
        F: Fn(A) -> Q,
        Q: Future<Output = Result<T, ClickHouseError>>,
    {
        let asks: Vec<&A> = batch.iter().map(|r| &r.asked).collect();
        let Some(union) = A::union(&asks) else {
            return;
        };
        let out = Out::start(self);
        let sent = OffsetDateTime::now_utc();
        let result = query(union).await;
        let answered = OffsetDateTime::now_utc();
        drop(out);
        for request in batch {
            let result = match &result {
                Ok(all) => Ok(all.share(&request.asked)),
                Err(e) => Err(e.clone()),
            };
            // A poller that stopped waiting is not told.
            let _ = request.answer.send(Answer {
                sent,
                answered,
                result,
            });
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Vec<Request<A, T>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How long a full read or a part-log lookup waits for the others of a key poll's answer: the
/// scenarios it completed ask within a millisecond or two of each other.
const LINGER: Duration = Duration::from_millis(3);

/// The run's shared reads: key polls, full reads, part-log lookups.
pub struct SharedReads {
    pub keys: Shared<Window, RowKeys>,
    pub rows: Shared<Window, Rows>,
    pub commits: Shared<PartsAsked, PartCommits>,
}

impl Default for SharedReads {
    fn default() -> Self {
        Self {
            keys: Shared::default(),
            rows: Shared::lingering(LINGER),
            commits: Shared::lingering(LINGER),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::suite::scenario::fake;

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s)
    }

    fn window(names: &[&str], after: i64, minutes_after: Option<i64>) -> Window {
        Window {
            symbols: names.iter().map(|s| s.to_string()).collect(),
            after: at(after),
            minutes_after: minutes_after.map(at),
        }
    }

    fn key(table: KeyTable, symbol: &str, s: i64) -> (KeyTable, RowKey) {
        let key = RowKey {
            symbol: symbol.into(),
            event_ts: at(s),
            seq: 1,
        };
        (table, key)
    }

    /// A server holding `stored`, answering after 50 ms with the union's share (it filters as
    /// the real queries do), counting its queries and keeping their unions.
    fn server<'a, A: Ask + 'a, T: Share<A> + Send + 'static>(
        stored: &'a T,
        queries: &'a AtomicUsize,
        unions: &'a std::sync::Mutex<Vec<A>>,
    ) -> impl Fn(A) -> std::pin::Pin<Box<dyn Future<Output = Result<T, ClickHouseError>> + Send>> + 'a
    {
        move |union: A| {
            queries.fetch_add(1, Ordering::SeqCst);
            let rows = stored.share(&union);
            unions.lock().unwrap().push(union);
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(rows)
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn requests_made_while_a_query_is_out_share_the_next_and_get_their_own_rows() {
        let stored = RowKeys {
            keys: vec![
                key(KeyTable::Microbars, "A", 10),
                key(KeyTable::Signals, "A", 10),
                key(KeyTable::Microbars, "B", 20),
                key(KeyTable::MinuteSignals, "B", 0),
            ],
            parts: [
                (key(KeyTable::Microbars, "A", 10), "all_1_1_1".to_string()),
                (key(KeyTable::Microbars, "B", 20), "all_2_2_1".to_string()),
            ]
            .into_iter()
            .collect(),
            copies: [(key(KeyTable::Microbars, "B", 20), 1)]
                .into_iter()
                .collect(),
            server: Some("ch-0".into()),
            server_start: Some(at(1)),
            server_executing: Some(at(2)),
        };
        let (queries, unions) = (AtomicUsize::new(0), std::sync::Mutex::new(Vec::new()));
        let query = server(&stored, &queries, &unions);
        let reads = SharedReads::default();
        let w = [
            window(&["A"], 0, None),
            window(&["B"], 0, Some(-60)),
            window(&["A", "B"], 15, None),
        ];
        let (a, b, late) = tokio::join!(
            reads.keys.get(&query, &w[0]),
            reads.keys.get(&query, &w[1]),
            reads.keys.get(&query, &w[2]),
        );
        // The first went out alone; the other two waited for it and went out together.
        assert_eq!(queries.load(Ordering::SeqCst), 2);
        assert_eq!((b.sent, b.answered), (late.sent, late.answered));
        assert!(b.sent >= a.answered);
        let a = a.result.unwrap();
        assert_eq!(
            a.keys,
            [
                key(KeyTable::Microbars, "A", 10),
                key(KeyTable::Signals, "A", 10)
            ]
        );
        // The server's clock readings and name go to every share; the parts of its own keys.
        assert_eq!(
            (a.server_start, a.server_executing, a.server.as_deref()),
            (Some(at(1)), Some(at(2)), Some("ch-0"))
        );
        assert_eq!(
            a.parts.into_iter().collect::<Vec<_>>(),
            [(key(KeyTable::Microbars, "A", 10), "all_1_1_1".to_string())]
        );
        assert!(a.copies.is_empty());
        let b = b.result.unwrap();
        assert_eq!(
            b.keys,
            [
                key(KeyTable::Microbars, "B", 20),
                key(KeyTable::MinuteSignals, "B", 0)
            ]
        );
        assert_eq!(
            b.copies.into_iter().collect::<Vec<_>>(),
            [(key(KeyTable::Microbars, "B", 20), 1)]
        );
        // Only its own window: after 15 s, and no 1-minute rows it did not ask for.
        assert_eq!(
            late.result.unwrap().keys,
            [key(KeyTable::Microbars, "B", 20)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_read_over_several_windows_gives_each_its_rows() {
        let bar = |symbol: &str, s: i64| fake::microbar(symbol, at(s), 1, 100.0);
        let signal = |symbol: &str, s: i64| fake::signal_of(&bar(symbol, s), "PT1S");
        let stored = Rows {
            bars: vec![bar("A", 10), bar("B", 5), bar("B", 20)],
            signals: vec![signal("A", 10), signal("B", 20)],
            minute_signals: vec![signal("B", 0)],
            unmerged: vec![("A".into(), 2)],
        };
        let (queries, unions) = (AtomicUsize::new(0), std::sync::Mutex::new(Vec::new()));
        let query = server(&stored, &queries, &unions);
        let reads = SharedReads::default();
        let w = [window(&["A"], 0, None), window(&["B"], 15, Some(-60))];
        // Asked at once: the full read lingers for the other, and they go out as one.
        let (a, b) = tokio::join!(reads.rows.get(&query, &w[0]), reads.rows.get(&query, &w[1]));
        assert_eq!(queries.load(Ordering::SeqCst), 1);
        // The union: both symbols, from the earliest `after`, the 1-minute rows B asked for.
        let union = window(&["A", "B"], 0, Some(-60));
        assert_eq!(unions.lock().unwrap()[0], union);
        let all = reads.rows.get(&query, &union).await;
        assert_eq!(all.result.unwrap(), stored);
        assert_eq!(
            a.result.unwrap(),
            Rows {
                bars: vec![bar("A", 10)],
                signals: vec![signal("A", 10)],
                minute_signals: Vec::new(),
                unmerged: vec![("A".into(), 2)],
            }
        );
        assert_eq!(
            b.result.unwrap(),
            Rows {
                bars: vec![bar("B", 20)],
                signals: vec![signal("B", 20)],
                minute_signals: vec![signal("B", 0)],
                unmerged: Vec::new(),
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn lookups_asked_within_the_linger_go_out_as_one_and_each_gets_its_parts() {
        let part = |t: KeyTable, name: &str| (t, name.to_string());
        let stored = PartCommits {
            server: Some("ch-0".into()),
            committed: [
                (part(KeyTable::Microbars, "all_1_1_0"), vec![at(1)]),
                (part(KeyTable::Signals, "all_1_1_0"), vec![at(2)]),
                (part(KeyTable::Microbars, "all_2_2_0"), vec![at(3)]),
            ]
            .into_iter()
            .collect(),
            flush_refused: Some("readonly".into()),
        };
        let (queries, unions) = (AtomicUsize::new(0), std::sync::Mutex::new(Vec::new()));
        let query = server(&stored, &queries, &unions);
        let reads = SharedReads::default();
        let asked = [
            PartsAsked {
                parts: vec![part(KeyTable::Microbars, "all_1_1_0")],
                since: at(10),
            },
            PartsAsked {
                parts: vec![
                    part(KeyTable::Signals, "all_1_1_0"),
                    part(KeyTable::Microbars, "all_2_2_0"),
                ],
                since: at(5),
            },
        ];
        let (first, second) = tokio::join!(reads.commits.get(&query, &asked[0]), async {
            // Within the linger of the first: it joins the first's query.
            tokio::time::sleep(LINGER / 2).await;
            reads.commits.get(&query, &asked[1]).await
        });
        assert_eq!(queries.load(Ordering::SeqCst), 1);
        let union = unions.lock().unwrap()[0].clone();
        assert_eq!((union.parts.len(), union.since), (3, at(5)));
        let (first, second) = (first.result.unwrap(), second.result.unwrap());
        assert_eq!(first.committed.len(), 1);
        assert_eq!(first.committed[&asked[0].parts[0]], [at(1)]);
        assert_eq!(second.committed.len(), 2);
        assert_eq!(second.committed[&asked[1].parts[1]], [at(3)]);
        for share in [&first, &second] {
            assert_eq!(share.server.as_deref(), Some("ch-0"));
            assert_eq!(share.flush_refused.as_deref(), Some("readonly"));
        }
        // Asked after the linger, it goes out alone.
        let third = async {
            tokio::time::sleep(LINGER * 2).await;
            reads.commits.get(&query, &asked[1]).await
        };
        let (_, _) = tokio::join!(reads.commits.get(&query, &asked[0]), third);
        assert_eq!(queries.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_go_out_beside_a_slow_query_one_at_a_time() {
        // The first query takes a second, the others 50 ms.
        let queries = AtomicUsize::new(0);
        let query = |_: Window| {
            let n = queries.fetch_add(1, Ordering::SeqCst);
            async move {
                let took = if n == 0 { 1_000 } else { 50 };
                tokio::time::sleep(Duration::from_millis(took)).await;
                Ok::<_, ClickHouseError>(RowKeys::default())
            }
        };
        let reads = SharedReads::default();
        let w = window(&["A"], 0, None);
        let start = Instant::now();
        let after = |ms: u64| {
            let (reads, w, query) = (&reads, &w, &query);
            async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                reads.keys.get(query, w).await;
                start.elapsed().as_millis()
            }
        };
        let (slow, beside, next) = tokio::join!(after(0), after(10), after(160));
        // Asked 10 ms into the slow query: out beside it at 150 ms, back at 200.
        assert_eq!(beside, 200);
        // Asked while two were out: out when the one beside came back, at 200.
        assert_eq!(next, 250);
        assert_eq!(slow, 1_000);
        assert_eq!(queries.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_query_fails_every_request_it_served() {
        let query = |_: Window| async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err::<RowKeys, _>(ClickHouseError::Timeout(Duration::from_secs(5)))
        };
        let reads = SharedReads::default();
        let w = ["A", "B", "C"].map(|s| window(&[s], 0, None));
        let (a, b, c) = tokio::join!(
            reads.keys.get(&query, &w[0]),
            reads.keys.get(&query, &w[1]),
            reads.keys.get(&query, &w[2]),
        );
        for answer in [a, b, c] {
            assert!(matches!(answer.result, Err(ClickHouseError::Timeout(_))));
        }
    }
}
