//! When to poll: the rows the run's messages make the job emit become due as their triggers
//! are acknowledged, and the pace follows how long the newest unseen one has been due.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::adapter::clickhouse::KeyTable;
use crate::domain::latency::Sightings;
use crate::domain::model::RowKey;

/// Least time between two poll sends while a row is due: an upper bound on the query rate of
/// one scenario (25 per second), and about half of it goes into the error (see [`Pace`]).
const TIGHT_GAP: Duration = Duration::from_millis(40);
/// How long after its trigger's acknowledgement a row is polled for tightly: beyond the
/// local pipeline's latency (~0.5 s), the production sink's 5 s flush, and the test stack's
/// watermark hold for idle partitions.
const TIGHT_FOR: Duration = Duration::from_secs(10);
/// The pace for rows due beyond [`TIGHT_FOR`] and within [`HELD_FOR`]: a bar only the
/// watermark closes arrives there (its error is about half this plus one round trip, ±50 ms).
const HELD_GAP: Duration = Duration::from_millis(70);
/// How long after its trigger's acknowledgement a row may still come on a healthy pipeline:
/// beyond the production job's hold of the watermark for idle partitions (a bar closed by the
/// watermark comes ~31 s after the clock trade, `pipeline.md` §9.7).
const HELD_FOR: Duration = Duration::from_secs(40);
/// The pace for rows overdue beyond [`HELD_FOR`] (their error grows to about half of it).
const OVERDUE_GAP: Duration = Duration::from_millis(250);
/// The pace with nothing due: rows that come unannounced are still seen within this.
const IDLE_GAP: Duration = Duration::from_secs(1);

/// A row the polls look for: which table, which key.
pub type Seen = (KeyTable, RowKey);

/// How fast to poll, from the rows due and not seen yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// A row became due within [`TIGHT_FOR`]: back to back.
    Tight,
    /// The newest row due became due within [`HELD_FOR`].
    Held,
    /// Only rows due for longer.
    Overdue,
    Idle,
}

impl Pace {
    /// From when each unseen due row became due.
    pub fn of(
        unseen_due_since: impl IntoIterator<Item = OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Self {
        let newest = unseen_due_since.into_iter().max();
        match newest.map(|t| now - t) {
            Some(age) if age < TIGHT_FOR => Pace::Tight,
            Some(age) if age < HELD_FOR => Pace::Held,
            Some(_) => Pace::Overdue,
            None => Pace::Idle,
        }
    }

    pub fn gap(self) -> Duration {
        match self {
            Pace::Tight => TIGHT_GAP,
            Pace::Held => HELD_GAP,
            Pace::Overdue => OVERDUE_GAP,
            Pace::Idle => IDLE_GAP,
        }
    }
}

/// The rows the run's messages make the job emit, shared by the publisher (which registers a
/// message's rows as it sends it, and its acknowledgement) and the poller (which polls tightly
/// for the rows due).
#[derive(Default)]
pub struct Expecting {
    state: Mutex<ExpectingState>,
    /// Wakes the poller: a row became due, or publishing ended.
    changed: Notify,
    publishing_done: AtomicBool,
}

#[derive(Default)]
struct ExpectingState {
    by_message: HashMap<usize, Vec<Seen>>,
    /// Rows whose trigger was acknowledged, and when.
    due: HashMap<Seen, OffsetDateTime>,
}

impl Expecting {
    /// Message `index` is sent; the oracle says it makes the job emit `rows`.
    pub fn sent(&self, index: usize, rows: Vec<Seen>) {
        if !rows.is_empty() {
            self.lock().by_message.insert(index, rows);
        }
    }

    /// Message `index` was acknowledged at `at`: its rows are due from then.
    pub fn acked(&self, index: usize, at: OffsetDateTime) {
        let mut st = self.lock();
        if let Some(rows) = st.by_message.remove(&index) {
            for row in rows {
                st.due.entry(row).or_insert(at);
            }
            drop(st);
            self.changed.notify_one();
        }
    }

    /// Publishing ended.
    pub fn done(&self) {
        self.publishing_done.store(true, Ordering::Relaxed);
        self.changed.notify_one();
    }

    pub fn publishing_done(&self) -> bool {
        self.publishing_done.load(Ordering::Relaxed)
    }

    /// Until a row becomes due or publishing ends.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// When each row became due, taken out.
    pub fn take_due(&self) -> HashMap<Seen, OffsetDateTime> {
        std::mem::take(&mut self.lock().due)
    }

    pub fn pace(&self, sightings: &Sightings<Seen>, now: OffsetDateTime) -> Pace {
        let st = self.lock();
        Pace::of(
            st.due
                .iter()
                .filter(|(row, _)| !sightings.contains(row))
                .map(|(_, at)| *at),
            now,
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ExpectingState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms)
    }

    fn row(seq: u64) -> Seen {
        (
            KeyTable::Microbars,
            RowKey {
                symbol: "ZZT2E-A".into(),
                event_ts: at(1_000),
                seq,
            },
        )
    }

    #[test]
    fn polls_tightly_only_while_a_row_is_freshly_due() {
        let now = at(60_000);
        assert_eq!(Pace::of([], now), Pace::Idle);
        assert_eq!(Pace::of([at(59_900)], now), Pace::Tight);
        // Due for longer than the tight window: held (as a bar only the watermark closes), then
        // overdue, unless another row is fresh.
        assert_eq!(Pace::of([at(40_000)], now), Pace::Held);
        assert_eq!(Pace::of([at(10_000)], now), Pace::Overdue);
        assert_eq!(Pace::of([at(10_000), at(59_990)], now), Pace::Tight);
        let gaps = [Pace::Tight, Pace::Held, Pace::Overdue, Pace::Idle].map(Pace::gap);
        assert!(gaps.windows(2).all(|w| w[0] < w[1]), "{gaps:?}");
        // A held row's bracket (one gap plus a round trip of ~15 ms) stays within ±50 ms.
        assert!(Pace::Held.gap() + Duration::from_millis(15) <= Duration::from_millis(100));
    }

    #[test]
    fn rows_are_due_from_their_trigger_acknowledgement_until_seen() {
        let expecting = Expecting::default();
        let mut sightings = Sightings::new(at(0));
        expecting.sent(0, vec![row(1)]);
        expecting.sent(1, vec![]);
        // Sent, not acknowledged: nothing is due yet.
        assert_eq!(expecting.pace(&sightings, at(100)), Pace::Idle);
        expecting.acked(0, at(120));
        expecting.acked(1, at(130));
        assert_eq!(expecting.pace(&sightings, at(150)), Pace::Tight);
        assert_eq!(expecting.pace(&sightings, at(20_000)), Pace::Held);
        assert_eq!(expecting.pace(&sightings, at(50_000)), Pace::Overdue);
        sightings.observe(at(140), at(160), [row(1)]);
        assert_eq!(expecting.pace(&sightings, at(170)), Pace::Idle);
        // An acknowledgement of a message with no rows, or twice, changes nothing.
        expecting.acked(0, at(180));
        assert_eq!(expecting.lock().due.get(&row(1)), Some(&at(120)));
    }
}
