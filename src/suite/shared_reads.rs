//! The run's reads of its rows, shared by the scenarios' pollers.
//!
//! Each scenario polls for its rows' keys up to 25 times a second while rows are due, and
//! reads its rows in full once their keys are complete; with the compressed scenarios
//! publishing together, six pollers at once would queue at the server and each one's round
//! trip, and with it the visibility error and the validator's overhead, would grow with their
//! number. So for each kind of read the requests that arrive while a query is in flight wait
//! for it and go out together as the next query, over the union of their windows, and each
//! takes its own share of the answer: one key query and one full read at a time per run.

use std::collections::BTreeSet;
use std::future::Future;

use time::OffsetDateTime;
use tokio::sync::{oneshot, Mutex};

use crate::adapter::clickhouse::{ClickHouseError, KeyTable, RowKeys};
use crate::domain::model::{Columns, Microbar, RowKey, Signal};

/// The rows one scenario reads: its symbols' bars and 1-second signals ending after `after`,
/// and their 1-minute signals starting after `minutes_after` when it publishes 1-minute bars.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub symbols: Vec<String>,
    pub after: OffsetDateTime,
    pub minutes_after: Option<OffsetDateTime>,
}

impl Window {
    /// The window every one of `windows` lies in.
    fn union<'a>(windows: impl Iterator<Item = &'a Window> + Clone) -> Option<Window> {
        let after = windows.clone().map(|w| w.after).min()?;
        let symbols = windows
            .clone()
            .flat_map(|w| w.symbols.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let minutes_after = windows.filter_map(|w| w.minutes_after).min();
        Some(Window {
            symbols,
            after,
            minutes_after,
        })
    }

    /// Whether the row of `table` with `key` lies in this window.
    fn holds(&self, table: KeyTable, key: &RowKey) -> bool {
        self.symbols.contains(&key.symbol)
            && match table {
                KeyTable::MinuteSignals => self.minutes_after.is_some_and(|m| key.event_ts > m),
                KeyTable::Microbars | KeyTable::Signals => key.event_ts > self.after,
            }
    }

    fn own<R: Columns + Clone>(&self, table: KeyTable, rows: &[R]) -> Vec<R> {
        rows.iter()
            .filter(|r| self.holds(table, &r.key()))
            .cloned()
            .collect()
    }
}

/// An answer to a query over a union of windows, of which each window takes its share.
pub trait Share {
    fn share(&self, window: &Window) -> Self;
}

impl Share for RowKeys {
    fn share(&self, window: &Window) -> Self {
        RowKeys {
            keys: self
                .keys
                .iter()
                .filter(|(table, key)| window.holds(*table, key))
                .cloned()
                .collect(),
            parts: self
                .parts
                .iter()
                .filter(|((table, key), _)| window.holds(*table, key))
                .map(|(k, p)| (k.clone(), p.clone()))
                .collect(),
            server: self.server.clone(),
            server_start: self.server_start,
            server_executing: self.server_executing,
        }
    }
}

/// The rows in full (FINAL), as the comparison reads them, with the symbols' unmerged
/// duplicates (a fact of the sink diagnosis: read with them, as asking afterwards cost a round
/// trip).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub bars: Vec<Microbar>,
    pub signals: Vec<Signal>,
    pub minute_signals: Vec<Signal>,
    /// `ta_microbars` rows visible without FINAL beyond one per key, per symbol that has some.
    pub unmerged: Vec<(String, u64)>,
}

impl Share for Rows {
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

struct Request<T> {
    window: Window,
    answer: oneshot::Sender<Answer<T>>,
}

/// One query at a time for the whole run; requests made meanwhile share the next one.
pub struct Shared<T> {
    in_flight: Mutex<()>,
    waiting: std::sync::Mutex<Vec<Request<T>>>,
}

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Self {
            in_flight: Mutex::new(()),
            waiting: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl<T: Share> Shared<T> {
    /// `window`'s share of `query` over the union of the windows asked for meanwhile: the
    /// query of whichever request goes out serves the others waiting with it.
    pub async fn get<F, Q>(&self, query: F, window: &Window) -> Answer<T>
    where
        F: Fn(Window) -> Q,
        Q: Future<Output = Result<T, ClickHouseError>>,
    {
        loop {
            let (answer, mut answered) = oneshot::channel();
            self.waiting().push(Request {
                window: window.clone(),
                answer,
            });
            let turn = self.in_flight.lock().await;
            match answered.try_recv() {
                // A query sent while this one waited served it.
                Ok(answer) => return answer,
                // Taken by a query whose poller was dropped before it answered: ask again.
                Err(oneshot::error::TryRecvError::Closed) => continue,
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let batch = std::mem::take(&mut *self.waiting());
            Self::query(&query, batch).await;
            drop(turn);
            if let Ok(answer) = answered.await {
                return answer;
            }
        }
    }

    /// One query over the union of `batch`, each request answered with its share.
    async fn query<F, Q>(query: &F, batch: Vec<Request<T>>)
    where
        F: Fn(Window) -> Q,
        Q: Future<Output = Result<T, ClickHouseError>>,
    {
        let Some(union) = Window::union(batch.iter().map(|r| &r.window)) else {
            return;
        };
        let sent = OffsetDateTime::now_utc();
        let result = query(union).await;
        let answered = OffsetDateTime::now_utc();
        for request in batch {
            let result = match &result {
                Ok(all) => Ok(all.share(&request.window)),
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

    fn waiting(&self) -> std::sync::MutexGuard<'_, Vec<Request<T>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The run's shared reads: key polls, and full reads.
#[derive(Default)]
pub struct SharedReads {
    pub keys: Shared<RowKeys>,
    pub rows: Shared<Rows>,
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
    fn server<'a, T: Share + Send + 'static>(
        stored: &'a T,
        queries: &'a AtomicUsize,
        unions: &'a std::sync::Mutex<Vec<Window>>,
    ) -> impl Fn(Window) -> std::pin::Pin<Box<dyn Future<Output = Result<T, ClickHouseError>> + Send>> + 'a
    {
        move |union: Window| {
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
        assert_eq!(
            b.result.unwrap().keys,
            [
                key(KeyTable::Microbars, "B", 20),
                key(KeyTable::MinuteSignals, "B", 0)
            ]
        );
        // Only its own window: after 15 s, and no 1-minute rows it did not ask for.
        assert_eq!(
            late.result.unwrap().keys,
            [key(KeyTable::Microbars, "B", 20)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_read_over_several_windows_gives_each_its_rows_and_its_duplicates() {
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
        let w = [
            window(&["A", "B"], 0, Some(-60)),
            window(&["A"], 0, None),
            window(&["B"], 15, Some(-60)),
        ];
        let (first, a, b) = tokio::join!(
            reads.rows.get(&query, &w[0]),
            reads.rows.get(&query, &w[1]),
            reads.rows.get(&query, &w[2]),
        );
        assert_eq!(queries.load(Ordering::SeqCst), 2);
        // The second union: both symbols, from the earliest `after`, the 1-minute rows B asked
        // for.
        assert_eq!(unions.lock().unwrap()[1], window(&["A", "B"], 0, Some(-60)));
        assert_eq!(first.result.unwrap(), stored);
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
