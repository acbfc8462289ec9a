//! Who may publish to the lane when scenarios run concurrently, and the lane's pinned watermark.
//!
//! Real-time scenarios publish each event at its wall-clock time: a bar closes on the
//! symbol's own next trade, long before any watermark could, so other writers on the lane
//! change nothing for them and they run together.
//!
//! A compressed scenario's event times lie in the past, where any watermark advance while it
//! publishes would emit its open buckets at once and split a bar. So the lane is first
//! *pinned*: one clock trade at the pin time on every partition of the trades topic, so every
//! partition's greatest event time is the pin and the job's watermark settles at
//! `pin − 2,001 ms` whichever partitions go idle. Compressed bursts are laid out entirely behind
//! it: no trade of theirs raises any partition's maximum, so the watermark cannot move while
//! they publish, and their bars close on their own trades (`plan::Runner::start`).
//!
//! Bursts behind one pin run together. A scenario that must move the watermark (closed by
//! watermark, or on a pool) takes the lane to itself: nobody else publishes while it pins
//! again past its bars. The real-time scenarios, whose trades move the watermark, start once
//! every compressed scenario's rows are visible; a real-time scenario unpins the lane, so a
//! compressed one after it (one scenario at a time) pins afresh. Everything after the turn
//! (comparison, diagnosis, the API and browser stages) overlaps freely.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{watch, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::domain::diagnose::{self, Finding, Hop};

/// The job emits watermarks every second, plus processing slack: a pin holds this long after
/// its acknowledgement.
pub const PIN_SETTLE: Duration = Duration::from_millis(2_500);

/// Every partition of the trades topic holds a clock trade at `at`, and nothing later.
#[derive(Debug, Clone)]
pub struct Pin {
    pub at: OffsetDateTime,
    /// The trades topic's partitions (the next pin goes to each).
    pub partitions: Vec<i32>,
    /// From when the job's watermark is `at − 2,001 ms`.
    pub holds_from: tokio::time::Instant,
    /// Other writers' symbols with bars written in the 15 s before the first pin, and how
    /// many: the pin holds only while nobody else publishes newer trades.
    pub others: Vec<(String, u64)>,
}

impl Pin {
    /// A pin acknowledged just now.
    pub fn acknowledged(
        at: OffsetDateTime,
        partitions: Vec<i32>,
        others: Vec<(String, u64)>,
    ) -> Self {
        Self {
            at,
            partitions,
            holds_from: tokio::time::Instant::now() + PIN_SETTLE,
            others,
        }
    }

    /// The same lane pinned again at `at`, acknowledged just now.
    pub fn moved_to(&self, at: OffsetDateTime) -> Self {
        Self::acknowledged(at, self.partitions.clone(), self.others.clone())
    }

    /// The warning a compressed scenario behind this pin carries when the lane had other
    /// writers: a bar split by their watermark would be theirs, not the pipeline's.
    pub fn shared_lane(&self) -> Option<Finding> {
        if self.others.is_empty() {
            return None;
        }
        let others: Vec<String> = self
            .others
            .iter()
            .map(|(symbol, bars)| format!("{symbol} ({bars} bars)"))
            .collect();
        Some(Finding::warning(
            Hop::Preflight,
            format!(
                "the lane had other writers in the 15 s before this run pinned it: {}; compressed \
                 pacing needs the lane to itself (their newer trades move the watermark into its \
                 bursts and can split a bar)",
                others.join(", ")
            ),
            diagnose::RUNBOOK_LANE_SHARED,
        ))
    }
}

/// How a scenario uses the lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Real-time pacing: after every compressed scenario.
    Realtime,
    /// A compressed burst behind the current pin, beside others.
    Behind,
    /// A compressed scenario that moves the pin: the lane to itself.
    Alone,
}

/// The run's rule for publishing (one scenario at a time, or turns as above) and its pin.
pub struct Lane {
    shared: Option<Turns>,
    pin: Mutex<Option<Pin>>,
}

struct Turns {
    /// Read by bursts behind the pin, written by a scenario that moves it.
    turn: RwLock<()>,
    /// Compressed scenarios that have not finished their turn yet.
    compressed_left: watch::Sender<usize>,
}

/// A scenario's permission to publish; a compressed scenario's turn ends when it is dropped
/// (after its rows are visible, or on any error: a turn is never left held).
pub struct Slot<'a> {
    _behind: Option<RwLockReadGuard<'a, ()>>,
    _alone: Option<RwLockWriteGuard<'a, ()>>,
    done: Option<&'a watch::Sender<usize>>,
}

impl Lane {
    /// Scenarios run one after another: each publishes alone already.
    pub fn sequential() -> Self {
        Self {
            shared: None,
            pin: Mutex::new(None),
        }
    }

    /// Scenarios run concurrently, `compressed` of them with compressed pacing. Every one of
    /// those must enter, and the compressed ones must be started before the real-time ones,
    /// which wait for them.
    pub fn concurrent(compressed: usize) -> Self {
        Self {
            shared: Some(Turns {
                turn: RwLock::new(()),
                compressed_left: watch::Sender::new(compressed),
            }),
            pin: Mutex::new(None),
        }
    }

    /// Waits until a scenario may publish.
    pub async fn enter(&self, access: Access) -> Slot<'_> {
        let slot = match (&self.shared, access) {
            (None, _) => Slot::free(),
            (Some(turns), Access::Realtime) => {
                let mut left = turns.compressed_left.subscribe();
                // The sender lives as long as `self`: this only returns once the count is 0.
                let _ = left.wait_for(|n| *n == 0).await;
                Slot::free()
            }
            (Some(turns), Access::Behind) => Slot {
                _behind: Some(turns.turn.read().await),
                _alone: None,
                done: Some(&turns.compressed_left),
            },
            (Some(turns), Access::Alone) => Slot {
                _behind: None,
                _alone: Some(turns.turn.write().await),
                done: Some(&turns.compressed_left),
            },
        };
        if access == Access::Realtime {
            // Its trades move the watermark past the pin.
            *self.pin.lock().await = None;
        }
        slot
    }

    /// The lane's pin, held while it is read or replaced: the first compressed scenario pins
    /// the lane, and the others wait for that pin instead of making their own.
    pub async fn pin(&self) -> MutexGuard<'_, Option<Pin>> {
        self.pin.lock().await
    }
}

impl Slot<'_> {
    fn free() -> Self {
        Self {
            _behind: None,
            _alone: None,
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

    use super::*;

    /// Enters every (name, access) at once, each holding its slot for a second: who was inside
    /// with how many others, in the order they entered.
    async fn entries(lane: Lane, who: &[(&'static str, Access)]) -> Vec<(&'static str, usize)> {
        let lane = Arc::new(lane);
        let inside = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for &(name, access) in who {
            let (lane, inside, log) = (lane.clone(), inside.clone(), log.clone());
            tasks.push(tokio::spawn(async move {
                let slot = lane.enter(access).await;
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                log.lock().unwrap().push((name, now));
                tokio::time::sleep(Duration::from_secs(1)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                drop(slot);
            }));
            // Spawned tasks start in spawn order.
            tokio::task::yield_now().await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        let log = log.lock().unwrap().clone();
        log
    }

    #[tokio::test(start_paused = true)]
    async fn a_scenario_that_moves_the_pin_is_alone_and_real_time_waits_for_every_turn() {
        let log = entries(
            Lane::concurrent(2),
            &[
                ("rt", Access::Realtime),
                ("alone", Access::Alone),
                ("behind", Access::Behind),
            ],
        )
        .await;
        assert_eq!(log, [("alone", 1), ("behind", 1), ("rt", 1)]);
    }

    #[tokio::test(start_paused = true)]
    async fn bursts_behind_one_pin_publish_together() {
        let log = entries(
            Lane::concurrent(2),
            &[("b1", Access::Behind), ("b2", Access::Behind)],
        )
        .await;
        assert_eq!(log, [("b1", 1), ("b2", 2)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_dropped_early_still_counts() {
        let lane = Lane::concurrent(1);
        drop(lane.enter(Access::Behind).await);
        tokio::time::timeout(Duration::from_secs(1), lane.enter(Access::Realtime))
            .await
            .expect("the real-time scenario may publish");
    }

    #[tokio::test]
    async fn a_real_time_scenario_unpins_the_lane() {
        let lane = Lane::sequential();
        *lane.pin().await = Some(Pin::acknowledged(
            OffsetDateTime::now_utc(),
            vec![0],
            Vec::new(),
        ));
        drop(lane.enter(Access::Behind).await);
        assert!(lane.pin().await.is_some(), "a burst keeps the pin");
        drop(lane.enter(Access::Realtime).await);
        assert!(lane.pin().await.is_none());
    }
}
