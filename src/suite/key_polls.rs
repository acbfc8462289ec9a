//! The run's key polls, shared by the scenarios' pollers.
//!
//! Each scenario polls for its rows' keys up to 25 times a second while rows are due; with the
//! compressed scenarios publishing together, six pollers at once would queue at the server and
//! each one's round trip, and with it the visibility error, would grow with their number. So
//! the requests that arrive while a query is in flight wait for it and go out together as the
//! next query, over the union of their symbols, and each takes its own rows from the answer:
//! one key query at a time per run, and every bracket one pace plus one round trip wide.

use std::collections::BTreeSet;
use std::future::Future;

use time::OffsetDateTime;
use tokio::sync::{oneshot, Mutex};

use crate::adapter::clickhouse::{ClickHouseError, KeyTable, RowKeys};
use crate::domain::model::RowKey;

/// The answer to one poller's request: when the query that served it was sent and answered
/// (and, by the server's clock, started and executed, when it said), and the requester's own
/// keys.
pub struct Answer {
    pub sent: OffsetDateTime,
    pub answered: OffsetDateTime,
    pub server_start: Option<OffsetDateTime>,
    pub server_executing: Option<OffsetDateTime>,
    pub keys: Result<Vec<(KeyTable, RowKey)>, ClickHouseError>,
}

/// What one poller asks for (as `Warehouse::row_keys`).
struct Request {
    symbols: Vec<String>,
    after: OffsetDateTime,
    minutes_after: Option<OffsetDateTime>,
    answer: oneshot::Sender<Answer>,
}

impl Request {
    /// Its own rows of a query over the union of requests.
    fn own(&self, keys: &[(KeyTable, RowKey)]) -> Vec<(KeyTable, RowKey)> {
        keys.iter()
            .filter(|(table, key)| {
                self.symbols.contains(&key.symbol)
                    && match table {
                        KeyTable::MinuteSignals => {
                            self.minutes_after.is_some_and(|m| key.event_ts > m)
                        }
                        KeyTable::Microbars | KeyTable::Signals => key.event_ts > self.after,
                    }
            })
            .cloned()
            .collect()
    }
}

/// One key query at a time for the whole run; requests made meanwhile share the next one.
#[derive(Default)]
pub struct KeyPolls {
    in_flight: Mutex<()>,
    waiting: std::sync::Mutex<Vec<Request>>,
}

impl KeyPolls {
    /// The keys of the symbols' rows: bars and 1-second signals after `after`, 1-minute
    /// signals after `minutes_after` when asked. `query` is `Warehouse::row_keys`; the one
    /// of whichever request goes out serves the others waiting with it.
    pub async fn poll<F, Q>(
        &self,
        query: F,
        symbols: &[String],
        after: OffsetDateTime,
        minutes_after: Option<OffsetDateTime>,
    ) -> Answer
    where
        F: Fn(Vec<String>, OffsetDateTime, Option<OffsetDateTime>) -> Q,
        Q: Future<Output = Result<RowKeys, ClickHouseError>>,
    {
        loop {
            let (answer, mut answered) = oneshot::channel();
            self.waiting().push(Request {
                symbols: symbols.to_vec(),
                after,
                minutes_after,
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

    /// One query over the union of `batch`, each request answered with its own rows.
    async fn query<F, Q>(query: &F, batch: Vec<Request>)
    where
        F: Fn(Vec<String>, OffsetDateTime, Option<OffsetDateTime>) -> Q,
        Q: Future<Output = Result<RowKeys, ClickHouseError>>,
    {
        let symbols: Vec<String> = batch
            .iter()
            .flat_map(|r| r.symbols.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let Some(after) = batch.iter().map(|r| r.after).min() else {
            return;
        };
        let minutes_after = batch.iter().filter_map(|r| r.minutes_after).min();
        let sent = OffsetDateTime::now_utc();
        let keys = query(symbols, after, minutes_after).await;
        let answered = OffsetDateTime::now_utc();
        let server_start = keys.as_ref().ok().and_then(|k| k.server_start);
        let server_executing = keys.as_ref().ok().and_then(|k| k.server_executing);
        // Where a round trip's time went, by the server's clock: before the query started,
        // between its analysis and execution, and after.
        let ms = |a: OffsetDateTime, b: OffsetDateTime| (b - a).whole_microseconds() as f64 / 1e3;
        tracing::debug!(
            requests = batch.len(),
            round_trip_ms = ms(sent, answered),
            before_start_ms = server_start.map(|s| ms(sent, s)),
            start_to_executing_ms = server_start.zip(server_executing).map(|(s, e)| ms(s, e)),
            executing_to_answer_ms = server_executing.map(|e| ms(e, answered)),
            "key poll"
        );
        for request in batch {
            let keys = match &keys {
                Ok(keys) => Ok(request.own(&keys.keys)),
                Err(e) => Err(e.clone()),
            };
            // A poller that stopped waiting is not told.
            let _ = request.answer.send(Answer {
                sent,
                answered,
                server_start,
                server_executing,
                keys,
            });
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Vec<Request>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s)
    }

    fn symbols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn key(table: KeyTable, symbol: &str, s: i64) -> (KeyTable, RowKey) {
        let key = RowKey {
            symbol: symbol.into(),
            event_ts: at(s),
            seq: 1,
        };
        (table, key)
    }

    #[tokio::test(start_paused = true)]
    async fn requests_made_while_a_query_is_out_share_the_next_and_get_their_own_rows() {
        let stored = [
            key(KeyTable::Microbars, "A", 10),
            key(KeyTable::Signals, "A", 10),
            key(KeyTable::Microbars, "B", 20),
            key(KeyTable::MinuteSignals, "B", 0),
        ];
        let queries = AtomicUsize::new(0);
        // A 50 ms round trip; the server filters as `row_keys` does.
        let query = |symbols: Vec<String>, after, minutes_after: Option<OffsetDateTime>| {
            queries.fetch_add(1, Ordering::SeqCst);
            let rows: Vec<(KeyTable, RowKey)> = stored
                .iter()
                .filter(|(t, k)| {
                    symbols.contains(&k.symbol)
                        && match t {
                            KeyTable::MinuteSignals => {
                                minutes_after.is_some_and(|m| k.event_ts > m)
                            }
                            _ => k.event_ts > after,
                        }
                })
                .cloned()
                .collect();
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(RowKeys {
                    keys: rows,
                    server_start: None,
                    server_executing: None,
                })
            }
        };
        let polls = KeyPolls::default();
        let (a, b, both) = (symbols(&["A"]), symbols(&["B"]), symbols(&["A", "B"]));
        let (a, b, late) = tokio::join!(
            polls.poll(&query, &a, at(0), None),
            polls.poll(&query, &b, at(0), Some(at(-60))),
            polls.poll(&query, &both, at(15), None),
        );
        // The first went out alone; the other two waited for it and went out together.
        assert_eq!(queries.load(Ordering::SeqCst), 2);
        assert_eq!((b.sent, b.answered), (late.sent, late.answered));
        assert!(b.sent >= a.answered);
        assert_eq!(
            a.keys.unwrap(),
            [
                key(KeyTable::Microbars, "A", 10),
                key(KeyTable::Signals, "A", 10)
            ]
        );
        assert_eq!(
            b.keys.unwrap(),
            [
                key(KeyTable::Microbars, "B", 20),
                key(KeyTable::MinuteSignals, "B", 0)
            ]
        );
        // Only its own window: after 15 s, and no 1-minute rows it did not ask for.
        assert_eq!(late.keys.unwrap(), [key(KeyTable::Microbars, "B", 20)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_query_fails_every_request_it_served() {
        let query = |_: Vec<String>, _, _| async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err(ClickHouseError::Timeout(Duration::from_secs(5)))
        };
        let polls = KeyPolls::default();
        let (a, b) = (symbols(&["A"]), symbols(&["B"]));
        let (a, b) = tokio::join!(
            polls.poll(&query, &a, at(0), None),
            polls.poll(&query, &b, at(0), None),
        );
        assert!(matches!(a.keys, Err(ClickHouseError::Timeout(_))));
        assert!(matches!(b.keys, Err(ClickHouseError::Timeout(_))));
    }
}
