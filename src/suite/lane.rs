//! Who may publish to the lane when scenarios run concurrently.
//!
//! Real-time scenarios publish each event at its wall-clock time: a bar closes on the
//! symbol's own next trade, long before any watermark could, so other writers on the lane
//! change nothing for them and they run together. A compressed scenario's event times lie
//! behind the lane's watermark, and any watermark advance while it publishes splits its open
//! bar (see `Runner::settle`): it needs the lane to itself from before its first message until
//! the job has emitted its bars, i.e. until they are visible. So a concurrent run gives the
//! compressed scenarios exclusive turns, one at a time, and the real-time ones start
//! publishing once every compressed scenario has had its turn. Everything after the turn
//! (comparison, diagnosis, the API and browser stages) overlaps freely.

use tokio::sync::{watch, Mutex, MutexGuard};

use crate::domain::scenario::Pacing;

/// The run's rule for publishing: one scenario at a time, or turns as above.
pub struct Lane {
    shared: Option<Turns>,
}

struct Turns {
    /// Held by the compressed scenario whose turn it is.
    turn: Mutex<()>,
    /// Compressed scenarios that have not finished their turn yet.
    compressed_left: watch::Sender<usize>,
}

/// A scenario's permission to publish; a compressed scenario's turn ends when it is dropped
/// (after its rows are visible, or on any error: a turn is never left held).
pub struct Slot<'a> {
    _turn: Option<MutexGuard<'a, ()>>,
    done: Option<&'a watch::Sender<usize>>,
}

impl Lane {
    /// Scenarios run one after another: each publishes alone already.
    pub fn sequential() -> Self {
        Self { shared: None }
    }

    /// Scenarios run concurrently, `compressed` of them with compressed pacing. Every one of
    /// those must enter, and the compressed ones must be started before the real-time ones,
    /// which wait for them.
    pub fn concurrent(compressed: usize) -> Self {
        Self {
            shared: Some(Turns {
                turn: Mutex::new(()),
                compressed_left: watch::Sender::new(compressed),
            }),
        }
    }

    /// Waits until a scenario of this pacing may publish.
    pub async fn enter(&self, pacing: Pacing) -> Slot<'_> {
        let Some(turns) = &self.shared else {
            return Slot::free();
        };
        match pacing {
            Pacing::Compressed => Slot {
                _turn: Some(turns.turn.lock().await),
                done: Some(&turns.compressed_left),
            },
            Pacing::Realtime => {
                let mut left = turns.compressed_left.subscribe();
                // The sender lives as long as `self`: this only returns once the count is 0.
                let _ = left.wait_for(|n| *n == 0).await;
                Slot::free()
            }
        }
    }
}

impl Slot<'_> {
    fn free() -> Self {
        Self {
            _turn: None,
            done: None,
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(left) = self.done {
            left.send_modify(|n| *n = n.saturating_sub(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn compressed_turns_are_exclusive_and_real_time_waits_for_them() {
        let lane = Arc::new(Lane::concurrent(2));
        let inside = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, pacing) in [
            ("rt", Pacing::Realtime),
            ("c1", Pacing::Compressed),
            ("c2", Pacing::Compressed),
        ] {
            let (lane, inside, log) = (lane.clone(), inside.clone(), log.clone());
            tasks.push(tokio::spawn(async move {
                let slot = lane.enter(pacing).await;
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                log.lock().unwrap().push((name, now));
                tokio::time::sleep(Duration::from_secs(1)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                drop(slot);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let log = log.lock().unwrap().clone();
        // Each compressed turn alone; the real-time scenario after both.
        assert_eq!(log.len(), 3, "{log:?}");
        assert!(log.iter().all(|(_, n)| *n == 1), "{log:?}");
        assert_eq!(log[2].0, "rt", "{log:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_dropped_early_still_counts() {
        let lane = Lane::concurrent(1);
        drop(lane.enter(Pacing::Compressed).await);
        tokio::time::timeout(Duration::from_secs(1), lane.enter(Pacing::Realtime))
            .await
            .expect("the real-time scenario may publish");
    }
}
