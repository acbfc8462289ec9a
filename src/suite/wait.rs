//! Retry until a deadline with a growing, capped interval, keeping the history as evidence.
//!
//! Hand-written rather than a retry crate: those retry on *errors*, while here a successful
//! query that does not yet show every row is the common case, and each attempt's outcome is
//! reported (materialize testdrive's "rows didn't match; sleeping" loop, with a deadline).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::report::Attempt;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub factor: f64,
    pub max: Duration,
}

impl Default for Backoff {
    /// Fast at first (rows usually land within a second locally), capped so a long wait costs
    /// few queries.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(50),
            factor: 1.5,
            max: Duration::from_secs(2),
        }
    }
}

/// The answer of one poll: done with a value, or not yet with a summary of what was seen.
pub enum Poll<T> {
    Ready(T),
    Pending(String),
}

#[derive(Debug)]
pub struct Waited<T> {
    /// The value when ready before the deadline.
    pub value: Option<T>,
    pub attempts: Vec<Attempt>,
    pub elapsed: Duration,
    /// The sleep before the last attempt: how late the last attempt may have seen a change.
    pub last_interval: Duration,
}

/// Polls `probe` until it is ready or `deadline` passes; never sleeps past the deadline.
pub async fn until<T, F, Fut>(deadline: Duration, backoff: Backoff, mut probe: F) -> Waited<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Poll<T>>,
{
    let started = Instant::now();
    let mut attempts = Vec::new();
    let mut interval = backoff.initial;
    let mut last_interval = Duration::ZERO;
    loop {
        let remaining = deadline.saturating_sub(started.elapsed());
        let outcome = tokio::time::timeout(remaining.max(Duration::from_millis(1)), probe()).await;
        let at_ms = started.elapsed().as_millis() as u64;
        match outcome {
            Ok(Poll::Ready(value)) => {
                attempts.push(Attempt {
                    at_ms,
                    outcome: "ready".into(),
                });
                return Waited {
                    value: Some(value),
                    attempts,
                    elapsed: started.elapsed(),
                    last_interval,
                };
            }
            Ok(Poll::Pending(seen)) => attempts.push(Attempt {
                at_ms,
                outcome: seen,
            }),
            Err(_) => attempts.push(Attempt {
                at_ms,
                outcome: "attempt cut by the deadline".into(),
            }),
        }
        let remaining = deadline.saturating_sub(started.elapsed());
        if remaining.is_zero() {
            return Waited {
                value: None,
                attempts,
                elapsed: started.elapsed(),
                last_interval,
            };
        }
        let sleep = interval.min(remaining);
        tokio::time::sleep(sleep).await;
        last_interval = sleep;
        interval = backoff.max.min(interval.mul_f64(backoff.factor));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn stops_when_ready_and_keeps_history() {
        let mut n = 0;
        let w = until(Duration::from_secs(10), Backoff::default(), || {
            n += 1;
            let k = n;
            async move {
                if k == 4 {
                    Poll::Ready(k)
                } else {
                    Poll::Pending(format!("{k} rows"))
                }
            }
        })
        .await;
        assert_eq!(w.value, Some(4));
        assert_eq!(w.attempts.len(), 4);
        assert_eq!(w.attempts[0].outcome, "1 rows");
        // 50 + 75 + 112.5 ms of sleeps.
        assert!(
            (237..=238).contains(&w.elapsed.as_millis()),
            "{:?}",
            w.elapsed
        );
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_deadline() {
        let w = until(Duration::from_secs(3), Backoff::default(), || async {
            Poll::<()>::Pending("0 rows".into())
        })
        .await;
        assert!(w.value.is_none());
        assert!(
            w.elapsed <= Duration::from_secs(3) + Duration::from_millis(1),
            "{:?}",
            w.elapsed
        );
        assert!(w.attempts.len() > 5);
        assert!(w.last_interval <= Duration::from_secs(2));
    }
}
