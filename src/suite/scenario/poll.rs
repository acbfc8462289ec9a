//! Waiting for the run's rows: a watcher records first sightings while publishing goes on,
//! then polls with a growing interval until every expected bar is in both tables, or the
//! deadline. What the polls saw, when each row was first seen and the poll history are the
//! evidence for the comparison and for latency.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::expect::ExpectedBar;
use super::plan::Plan;
use super::publish::Published;
use super::{RunError, Runner};
use crate::adapter::clickhouse::ClickHouseError;
use crate::domain::model::{Columns, Microbar, RowKey, Signal};
use crate::domain::report::Attempt;
use crate::domain::scenario::{Event, Scenario};
use crate::suite::ledger::Record;
use crate::suite::seam::{Publisher, Warehouse};
use crate::suite::wait::{self, Poll};

/// Pace of the watcher that runs during publishing.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// What the polls saw: the rows of the last one, when each row was first seen (and the poll
/// interval before that sighting), and the poll history.
#[derive(Default)]
pub(super) struct Observed {
    pub bars: Vec<Microbar>,
    pub signals: Vec<Signal>,
    /// The `PT1M` rows of the 1-minute path.
    pub minute_signals: Vec<Signal>,
    pub first_seen: HashMap<RowKey, (OffsetDateTime, Duration)>,
    pub attempts: Vec<Attempt>,
    pub waited_ms: u64,
}

impl<P: Publisher, W: Warehouse, S> Runner<'_, P, W, S> {
    /// Publishes (see [`Runner::publish`]) while watching the warehouse, so first sightings
    /// (latency) are timed as they happen even when a real-time scenario publishes for a minute.
    pub(super) async fn publish_watched(
        &self,
        scenario: &Scenario,
        plan: &Plan,
        base: OffsetDateTime,
        record: &Record,
    ) -> (Result<Published, RunError>, Arc<Mutex<PollState>>) {
        let names: Vec<String> = plan.symbols.values().cloned().collect();
        let minutes = scenario.events.iter().any(|e| matches!(e, Event::Bar(_)));
        let state = Arc::new(Mutex::new(PollState::default()));
        let publishing = AtomicBool::new(true);
        let (published, ()) = tokio::join!(
            async {
                let r = self.publish(scenario, plan, base, record).await;
                publishing.store(false, Ordering::Relaxed);
                r
            },
            self.watch(&names, base, minutes, &state, &publishing),
        );
        (published, state)
    }

    /// Polls ClickHouse until every expected key is in both tables, or the deadline.
    /// Polls at a fixed pace while `active`, recording first sightings only.
    async fn watch(
        &self,
        symbols: &[String],
        after: OffsetDateTime,
        minutes: bool,
        state: &Mutex<PollState>,
        active: &AtomicBool,
    ) {
        while active.load(Ordering::Relaxed) {
            let fetched = tokio::try_join!(
                self.warehouse.microbars(symbols, after),
                self.warehouse.signals(symbols, after),
                minute_rows(self.warehouse, minutes, symbols, after)
            );
            let _ = state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .observe(fetched, &[], &[]);
            tokio::time::sleep(WATCH_INTERVAL).await;
        }
    }

    /// Polls until every expected bar is in both tables and every expected 1-minute signal
    /// is there, or the plan's deadline.
    pub(super) async fn wait_for(
        &self,
        plan: &Plan,
        symbols: &[String],
        after: OffsetDateTime,
        bars: &[ExpectedBar],
        minutes: &[RowKey],
        state: Arc<Mutex<PollState>>,
    ) -> Result<Observed, RunError> {
        let wanted: Arc<Vec<RowKey>> = Arc::new(bars.iter().map(|b| b.key.clone()).collect());
        let waited = wait::until(plan.deadline, wait::Backoff::default(), || {
            let (ch, state, wanted) = (self.warehouse, state.clone(), wanted.clone());
            async move {
                let fetched = tokio::try_join!(
                    ch.microbars(symbols, after),
                    ch.signals(symbols, after),
                    minute_rows(ch, !minutes.is_empty(), symbols, after)
                );
                let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                st.observe(fetched, &wanted, minutes)
            }
        })
        .await;
        let mut st = std::mem::take(&mut *state.lock().unwrap_or_else(|e| e.into_inner()));
        if let (None, Some(e)) = (&waited.value, st.last_error.take()) {
            if st.observed.bars.is_empty() && st.observed.minute_signals.is_empty() {
                return Err(e.into());
            }
        }
        let mut observed = st.observed;
        observed.first_seen = st.first_seen;
        observed.attempts = waited.attempts;
        observed.waited_ms = waited.elapsed.as_millis() as u64;
        Ok(observed)
    }
}

/// One poll's rows: microbars, 1-second signals, 1-minute signals.
pub(super) type Fetched = (Vec<Microbar>, Vec<Signal>, Vec<Signal>);

/// What the polls have seen so far.
#[derive(Default)]
pub(super) struct PollState {
    observed: Observed,
    first_seen: HashMap<RowKey, (OffsetDateTime, Duration)>,
    last_poll: Option<Instant>,
    last_error: Option<ClickHouseError>,
}

impl PollState {
    /// Records one poll; ready once every expected key is in both tables and every expected
    /// 1-minute signal (`minutes`) is there.
    pub(super) fn observe(
        &mut self,
        fetched: Result<Fetched, ClickHouseError>,
        wanted: &[RowKey],
        minutes: &[RowKey],
    ) -> Poll<()> {
        // The time since the previous poll bounds how late a first sighting is recorded.
        let since_previous = self.last_poll.map_or(Duration::ZERO, |t| t.elapsed());
        self.last_poll = Some(Instant::now());
        let (bars, signals, minute_signals) = match fetched {
            Ok(rows) => rows,
            Err(e) => {
                let text = e.to_string();
                self.last_error = Some(e);
                return Poll::Pending(format!("query failed: {text}"));
            }
        };
        let now = OffsetDateTime::now_utc();
        for b in &bars {
            self.first_seen
                .entry(b.key())
                .or_insert((now, since_previous));
        }
        // Bar ends, not seqs: a run whose seqs are off (a reused symbol's history moved on)
        // must not wait out its deadline; the comparison reports the seqs.
        let have_bars = present(wanted, bars.iter().map(Columns::key));
        let have_sigs = present(wanted, signals.iter().map(Columns::key));
        let have_minutes = present(minutes, minute_signals.iter().map(Columns::key));
        self.observed.bars = bars;
        self.observed.signals = signals;
        self.observed.minute_signals = minute_signals;
        let complete =
            have_bars == wanted.len() && have_sigs == wanted.len() && have_minutes == minutes.len();
        if complete && !(wanted.is_empty() && minutes.is_empty()) {
            Poll::Ready(())
        } else if minutes.is_empty() {
            Poll::Pending(format!(
                "{have_bars}/{n} microbars, {have_sigs}/{n} signals",
                n = wanted.len()
            ))
        } else {
            Poll::Pending(format!(
                "{have_bars}/{n} microbars, {have_sigs}/{n} signals, {have_minutes}/{m} PT1M \
                 signals",
                n = wanted.len(),
                m = minutes.len()
            ))
        }
    }
}

/// The symbols' 1-minute signals, asked only of a scenario that publishes 1-minute bars (the
/// others pay no third query per poll). A 1-minute signal's `event_ts` is its minute's start,
/// up to a minute before the run's offset 0 (minute 0 starts at the whole minute of offset 0).
async fn minute_rows(
    warehouse: &impl Warehouse,
    asked: bool,
    symbols: &[String],
    after: OffsetDateTime,
) -> Result<Vec<Signal>, ClickHouseError> {
    if !asked {
        return Ok(Vec::new());
    }
    warehouse
        .minute_signals(symbols, after - time::Duration::minutes(1))
        .await
}

/// How many of `wanted` have a row, see [`presence`].
pub(super) fn present(wanted: &[RowKey], rows: impl Iterator<Item = RowKey>) -> usize {
    presence(wanted, rows).into_iter().filter(|p| *p).count()
}

/// Whether each of `wanted` has a row with the same symbol and bar end, as a multiset (two
/// bars ending in the same second need two rows). Seqs are left to the comparison.
pub(super) fn presence(wanted: &[RowKey], rows: impl Iterator<Item = RowKey>) -> Vec<bool> {
    let mut have: HashMap<(String, OffsetDateTime), usize> = HashMap::new();
    for k in rows {
        *have.entry((k.symbol, k.event_ts)).or_default() += 1;
    }
    wanted
        .iter()
        .map(|k| {
            have.get_mut(&(k.symbol.clone(), k.event_ts))
                .is_some_and(|n| {
                    let ok = *n > 0;
                    *n = n.saturating_sub(1);
                    ok
                })
        })
        .collect()
}
