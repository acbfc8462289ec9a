//! One query at a time for requests made together: each request waits for the query out, goes
//! out with the others made meanwhile as one query over the union of what they ask, and takes
//! its own share of the answer; a query may linger for others to join it, and a request held
//! back by a slow query goes out beside it.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{oneshot, Mutex, MutexGuard, Notify};
use tokio::time::Instant;

use crate::adapter::clickhouse::ClickHouseError;

/// What one request asks for; requests made together go out as one query for their union.
pub trait Ask: Clone {
    /// What every one of `asks` asks for; `None` for no request.
    fn union(asks: &[&Self]) -> Option<Self>;
}

/// An answer to a query over a union of requests, of which each request takes its share.
pub trait Share<A> {
    fn share(&self, asked: &A) -> Self;
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
    pub(super) fn lingering(linger: Duration) -> Self {
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
struct Out<'a, A, T> {
    at: Instant,
    shared: &'a Shared<A, T>,
}

impl<'a, A, T> Out<'a, A, T> {
    fn start(shared: &'a Shared<A, T>) -> Self {
        let at = Instant::now();
        shared.outs().push(at);
        shared.changed.notify_waiters();
        Out { at, shared }
    }
}

impl<A, T> Drop for Out<'_, A, T> {
    fn drop(&mut self) {
        let mut out = self.shared.outs();
        if let Some(i) = out.iter().position(|t| *t == self.at) {
            out.swap_remove(i);
        }
        drop(out);
        self.shared.changed.notify_waiters();
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

/// The distinct items of `lists`, in order: the union of what several requests list.
pub(super) fn sorted_union<'a, T: Ord + Clone + 'a>(
    lists: impl Iterator<Item = &'a Vec<T>>,
) -> Vec<T> {
    lists
        .flatten()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}
