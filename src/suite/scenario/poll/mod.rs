//! Waiting for the run's rows, and timing when each became visible.
//!
//! One poller runs from before the first message until every expected row is visible (or the
//! deadline). It asks ClickHouse only for the KEYS of the run's rows (one cheap query over
//! both tables), and only tightly near an expected arrival: a row is due once the message that
//! makes the TA job emit it has been acknowledged ([`Expecting`]); while some due row is
//! unseen and recently due, polls go back to back (at most one per 40 ms); rows overdue for
//! longer are polled for slowly, and with nothing due the poller idles, so scenarios running
//! side by side do not hammer the one ClickHouse ([`pace`]). Each row's visibility is
//! bracketed between the last poll that did not see it and the first that did
//! ([`Sightings`]), by the server's clock before and after its snapshot where it agrees with
//! ours, else by the send and answer times ([`edges`]). The rows themselves (FINAL) are read in full only
//! once the keys are complete, or at the deadline: they are the comparison's evidence.

mod edges;
mod pace;

use std::collections::HashMap;
use std::sync::Arc;

use time::OffsetDateTime;
use tokio::time::Instant;

use super::plan::{Plan, Start};
use super::publish::Published;
use super::{RunError, Runner};
use crate::adapter::clickhouse::{ClickHouseError, KeyTable, PartCommits, RowKeys};
use crate::domain::latency::{Bracket, Method, Sightings};
use crate::domain::model::{Columns, Microbar, RowKey, Signal};
use crate::domain::report::Attempt;
use crate::domain::scenario::{Event, Scenario};
use crate::suite::ledger::Record;
use crate::suite::seam::{Publisher, Warehouse};
use crate::suite::shared_reads::{Answer, PartsAsked, Rows, SharedReads, Window};
use edges::Edges;
pub(super) use pace::{Expecting, Seen};

/// How long the part-log lookup may take: it refines the visibility times the polls bracketed,
/// and a server slow to flush or read its log (a busy production server) must not hold the
/// verdict back; the polls' brackets stand then.
const PART_LOG_BOUND: std::time::Duration = std::time::Duration::from_secs(2);

/// What the polls saw: the rows of the last full read, when each row became visible, and the
/// poll history.
#[derive(Default)]
pub(super) struct Observed {
    pub bars: Vec<Microbar>,
    pub signals: Vec<Signal>,
    /// The `PT1M` rows of the 1-minute path.
    pub minute_signals: Vec<Signal>,
    /// Each row's visibility bracket (first sightings by the key polls).
    pub sightings: Sightings<Seen>,
    /// When the ClickHouse evidence was in hand: the answer of the key poll that completed the
    /// expected rows, or of the full read at the deadline.
    pub evidence_at: Option<OffsetDateTime>,
    pub attempts: Vec<Attempt>,
    pub waited_ms: u64,
    pub key_polls: u64,
    /// Answered key polls whose both edges came from the server's clock.
    pub key_polls_server_clock: u64,
    /// Why the server's part log did not time the sightings it could have (not readable, not
    /// flushed), if so.
    pub part_log_problem: Option<String>,
    /// Each answered key poll's round trip, in milliseconds: the error is at most about one or
    /// two of them (less where the server's clock bounds the edges).
    pub key_poll_rtts_ms: Vec<f64>,
    pub full_reads: u64,
    /// `ta_microbars` rows visible without FINAL beyond one per key: a duplicate write is
    /// visible so only until a merge folds it, so it is counted whenever a poll saw it (the
    /// most each key had) or the full read did, whichever saw more. `None` when neither
    /// answered.
    pub unmerged_duplicates: Option<u64>,
    /// When each expected row became due: the acknowledgement of the message that makes the
    /// job emit it (the 1-minute signals' latency starts there).
    pub due: HashMap<Seen, OffsetDateTime>,
}

/// The run's poller: its queries, what they saw, the history.
pub(super) struct Poller<'a, W> {
    warehouse: &'a W,
    /// The run's reads, shared with the other scenarios' pollers.
    reads: &'a SharedReads,
    /// The scenario's rows.
    window: Window,
    expecting: Arc<Expecting>,
    observed: Observed,
    /// The rows of the newest key poll that answered, and when it answered.
    keys: Vec<Seen>,
    keys_answered: Option<OffsetDateTime>,
    /// The server and part each row was first seen in, when one part held it.
    first_parts: HashMap<Seen, (String, String)>,
    /// The most rows beyond one each `ta_microbars` key had in a key poll.
    copies: HashMap<RowKey, u64>,
    /// The most `ta_microbars` rows beyond one per key a full read counted.
    full_read_copies: Option<u64>,
    /// When the poller started, by our clock: the part log is read from a minute before.
    started_at: OffsetDateTime,
    /// Why the newest key poll failed, if it did.
    failed: Option<String>,
    last_send: Option<Instant>,
    last_error: Option<ClickHouseError>,
}

impl<'a, W: Warehouse> Poller<'a, W> {
    fn new(
        warehouse: &'a W,
        reads: &'a SharedReads,
        symbols: Vec<String>,
        after: OffsetDateTime,
        minutes: bool,
    ) -> Self {
        Self {
            warehouse,
            reads,
            window: Window {
                symbols,
                after,
                // A 1-minute signal's `event_ts` is its minute's start, up to a minute before
                // the run's offset 0 (minute 0 starts at the whole minute of offset 0).
                minutes_after: minutes.then(|| after - time::Duration::minutes(1)),
            },
            expecting: Arc::default(),
            observed: Observed {
                sightings: Sightings::new(OffsetDateTime::now_utc()),
                ..Observed::default()
            },
            keys: Vec::new(),
            keys_answered: None,
            first_parts: HashMap::new(),
            copies: HashMap::new(),
            full_read_copies: None,
            started_at: OffsetDateTime::now_utc(),
            failed: None,
            last_send: None,
            last_error: None,
        }
    }

    /// Sleeps until the next poll is due at the current pace, waking early (and re-pacing)
    /// when a row becomes due; `false` when `stop` says to poll no more.
    async fn next(&self, until: Option<Instant>, stop: impl Fn() -> bool) -> bool {
        loop {
            if stop() {
                return false;
            }
            let pace = self
                .expecting
                .pace(&self.observed.sightings, OffsetDateTime::now_utc());
            let at = self.last_send.map_or_else(Instant::now, |t| t + pace.gap());
            let at = until.map_or(at, |u| at.min(u));
            if at <= Instant::now() {
                return true;
            }
            tokio::select! {
                () = tokio::time::sleep_until(at) => return true,
                () = self.expecting.changed() => {}
            }
        }
    }

    /// One key poll: first sightings bracketed, the newest keys kept.
    async fn poll_keys(&mut self) {
        self.last_send = Some(Instant::now());
        let warehouse = self.warehouse;
        let Answer {
            sent,
            answered,
            result,
        } = self
            .reads
            .keys
            .get(
                |w: Window| async move {
                    warehouse
                        .row_keys(&w.symbols, w.after, w.minutes_after)
                        .await
                },
                &self.window,
            )
            .await;
        self.observed.key_polls += 1;
        match result {
            Ok(RowKeys {
                keys,
                parts,
                copies,
                server,
                server_start,
                server_executing,
            }) => {
                self.observed
                    .key_poll_rtts_ms
                    .push((answered - sent).as_seconds_f64() * 1000.0);
                let edges = Edges::of(sent, answered, server_start, server_executing);
                if edges.by_server_clock {
                    self.observed.key_polls_server_clock += 1;
                }
                self.note_first_parts(&keys, parts, server);
                self.note_copies(copies);
                self.observed
                    .sightings
                    .observe(edges.not_before, edges.by, keys.iter().cloned());
                self.keys = keys;
                self.keys_answered = Some(answered);
                self.failed = None;
            }
            Err(e) => {
                self.failed = Some(e.to_string());
                self.last_error = Some(e);
            }
        }
    }

    /// The part each row seen for the first time by this poll was in, on the server that
    /// answered.
    fn note_first_parts(
        &mut self,
        keys: &[Seen],
        mut parts: HashMap<Seen, String>,
        server: Option<String>,
    ) {
        let Some(server) = server else { return };
        for key in keys {
            if self.observed.sightings.contains(key) {
                continue;
            }
            if let Some(part) = parts.remove(key) {
                self.first_parts.insert(key.clone(), (server.clone(), part));
            }
        }
    }

    /// Keeps the most copies each bar was seen with.
    fn note_copies(&mut self, copies: HashMap<Seen, u64>) {
        for ((table, key), n) in copies {
            if table == KeyTable::Microbars {
                let most = self.copies.entry(key).or_default();
                *most = (*most).max(n);
            }
        }
    }

    /// The parts of first sightings not yet timed by the part log.
    fn untimed_parts(&self) -> Vec<(KeyTable, String)> {
        let mut parts: Vec<(KeyTable, String)> = self
            .first_parts
            .iter()
            .filter(|(key, _)| {
                self.observed
                    .sightings
                    .get(key)
                    .is_some_and(|b| b.method != Method::PartLog)
            })
            .map(|((table, _), (_, part))| (*table, part.clone()))
            .collect();
        parts.sort();
        parts.dedup();
        parts
    }

    /// Narrows first sightings by the commits of the parts they were seen in (or of those
    /// merged into them), where the same server logged them.
    fn time_by_commits(&mut self, commits: Result<PartCommits, String>) {
        let commits = match commits {
            Ok(c) => c,
            Err(e) => {
                self.observed.part_log_problem = Some(format!("not read: {e}"));
                return;
            }
        };
        self.observed.part_log_problem = commits
            .flush_refused
            .map(|e| format!("not flushed on request: {e}"));
        for (key, (server, part)) in &self.first_parts {
            let timed = |b: &Bracket| b.method == Method::PartLog;
            if commits.server.as_ref() != Some(server)
                || self.observed.sightings.get(key).is_some_and(timed)
            {
                continue;
            }
            let logged = commits.committed.get(&(key.0, part.clone()));
            let narrowed = logged.is_some_and(|l| self.observed.sightings.narrow(key, l));
            if !narrowed {
                tracing::debug!(
                    ?key,
                    part,
                    ?logged,
                    polled = ?self.observed.sightings.polled(key),
                    "part log: sighting not narrowed"
                );
            }
        }
    }

    /// The rows in full (FINAL), as the comparison reads them (one read for the scenarios
    /// that ask at once), and meanwhile the commits of the parts the rows were first seen in.
    async fn read_rows(&mut self) -> Result<(), ClickHouseError> {
        let ch = self.warehouse;
        self.observed.full_reads += 1;
        let parts = self.untimed_parts();
        // Parts committed before the poller started can hold none of the run's rows: a minute
        // before covers a clock the server's disagrees with by that much.
        let since = self.started_at - time::Duration::minutes(1);
        let started = std::time::Instant::now();
        let (rows, commits) = tokio::join!(
            async {
                let rows = self
                    .reads
                    .rows
                    .get(
                        |w: Window| async move { read_rows(ch, &w).await },
                        &self.window,
                    )
                    .await;
                tracing::debug!(ms = started.elapsed().as_secs_f64() * 1e3, "full read");
                rows
            },
            async {
                if parts.is_empty() {
                    return None;
                }
                let asked = PartsAsked { parts, since };
                let lookup = self.reads.commits.get(
                    |a: PartsAsked| async move { ch.part_commits(&a.parts, a.since).await },
                    &asked,
                );
                Some(match tokio::time::timeout(PART_LOG_BOUND, lookup).await {
                    Ok(commits) => commits.result.map_err(|e| e.to_string()),
                    Err(_) => Err(format!(
                        "did not answer within {} ms",
                        PART_LOG_BOUND.as_millis()
                    )),
                })
            },
        );
        if let Some(commits) = commits {
            self.time_by_commits(commits);
        }
        let rows = rows.result?;
        let unmerged: u64 = rows.unmerged.iter().map(|(_, n)| n).sum();
        self.full_read_copies = Some(self.full_read_copies.unwrap_or(0).max(unmerged));
        self.observed.bars = rows.bars;
        self.observed.signals = rows.signals;
        self.observed.minute_signals = rows.minute_signals;
        Ok(())
    }

    /// Records one poll in the history when what it saw differs from the one before.
    fn record(&mut self, started: Instant, outcome: String) {
        if self
            .observed
            .attempts
            .last()
            .is_some_and(|a| a.outcome == outcome)
        {
            return;
        }
        self.observed.attempts.push(Attempt {
            at_ms: started.elapsed().as_millis() as u64,
            outcome,
        });
    }
}

impl<P: Publisher, W: Warehouse, S> Runner<'_, P, W, S> {
    /// Publishes (see [`Runner::publish`]) while the poller times first sightings, so latency
    /// is measured as rows arrive even when a real-time scenario publishes for a minute.
    pub(super) async fn publish_watched(
        &self,
        scenario: &Scenario,
        plan: &Plan,
        start: &Start,
        record: &Record,
    ) -> (Result<Published, RunError>, Poller<'_, W>) {
        let base = start.base;
        let names: Vec<String> = plan.symbols.values().cloned().collect();
        let minutes = scenario.events.iter().any(|e| matches!(e, Event::Bar(_)));
        let mut poller = Poller::new(self.warehouse, self.reads, names, base, minutes);
        let expecting = poller.expecting.clone();
        let (published, ()) = tokio::join!(
            async {
                let r = self
                    .publish(scenario, plan, start, record, &expecting)
                    .await;
                expecting.done();
                r
            },
            poller.watch(),
        );
        (published, poller)
    }
}

impl<W: Warehouse> Poller<'_, W> {
    /// Polls while the run publishes, at the pace of the rows due.
    async fn watch(&mut self) {
        // A poll as publishing starts (no row of the run can be visible yet): every later
        // sighting has a lower bound close to it.
        self.poll_keys().await;
        let expecting = self.expecting.clone();
        while self.next(None, || expecting.publishing_done()).await {
            self.poll_keys().await;
        }
    }

    /// Polls until every expected bar is in both tables and every expected 1-minute signal
    /// is there (by key, then confirmed by a full read), or the plan's deadline (then read in
    /// full as they are).
    pub(super) async fn wait_for(
        mut self,
        plan: &Plan,
        wanted: &[RowKey],
        minutes: &[RowKey],
    ) -> Result<Observed, RunError> {
        let started = Instant::now();
        let deadline = started + plan.deadline;
        loop {
            let keys_complete = self.complete_by_keys(wanted, minutes);
            if keys_complete {
                match self.read_rows().await {
                    Ok(()) => {
                        let (done, outcome) = self.complete_by_rows(wanted, minutes);
                        self.record(started, outcome);
                        if done {
                            self.record(started, "ready".into());
                            self.observed.evidence_at = self.keys_answered;
                            break;
                        }
                    }
                    Err(e) => self.last_error = Some(e),
                }
            }
            if Instant::now() >= deadline {
                self.record(started, "deadline".into());
                match self.read_rows().await {
                    Ok(()) => self.observed.evidence_at = Some(OffsetDateTime::now_utc()),
                    Err(e) => self.last_error = Some(e),
                }
                break;
            }
            if self.next(Some(deadline), || false).await {
                self.poll_keys().await;
                let outcome = self.summary(wanted, minutes);
                self.record(started, outcome);
            }
        }
        let mut observed = std::mem::take(&mut self.observed);
        let polled: u64 = self.copies.values().sum();
        observed.unmerged_duplicates = match (self.keys_answered, self.full_read_copies) {
            (None, None) => None,
            (_, read) => Some(polled.max(read.unwrap_or(0))),
        };
        observed.due = self.expecting.take_due();
        observed.waited_ms = started.elapsed().as_millis() as u64;
        if let Some(e) = self.last_error.take() {
            if observed.bars.is_empty() && observed.minute_signals.is_empty() {
                return Err(e.into());
            }
        }
        Ok(observed)
    }

    /// Every expected bar in both tables and every expected 1-minute signal, by the newest keys.
    fn complete_by_keys(&self, wanted: &[RowKey], minutes: &[RowKey]) -> bool {
        let of = |t: KeyTable| {
            self.keys
                .iter()
                .filter(move |(k, _)| *k == t)
                .map(|(_, r)| r.clone())
        };
        let n = wanted.len();
        !(wanted.is_empty() && minutes.is_empty())
            && present(wanted, of(KeyTable::Microbars)) == n
            && present(wanted, of(KeyTable::Signals)) == n
            && present(minutes, of(KeyTable::MinuteSignals)) == minutes.len()
    }

    /// The same, by the rows the full read returned, and what it saw.
    fn complete_by_rows(&self, wanted: &[RowKey], minutes: &[RowKey]) -> (bool, String) {
        let o = &self.observed;
        let have_bars = present(wanted, o.bars.iter().map(Columns::key));
        let have_sigs = present(wanted, o.signals.iter().map(Columns::key));
        let have_minutes = present(minutes, o.minute_signals.iter().map(Columns::key));
        let done = !(wanted.is_empty() && minutes.is_empty())
            && have_bars == wanted.len()
            && have_sigs == wanted.len()
            && have_minutes == minutes.len();
        (
            done,
            counts(
                have_bars,
                have_sigs,
                have_minutes,
                wanted.len(),
                minutes.len(),
            ),
        )
    }

    /// What the newest key poll saw, for the history.
    fn summary(&self, wanted: &[RowKey], minutes: &[RowKey]) -> String {
        if let Some(e) = &self.failed {
            return format!("query failed: {e}");
        }
        let of = |t: KeyTable| {
            self.keys
                .iter()
                .filter(move |(k, _)| *k == t)
                .map(|(_, r)| r.clone())
        };
        counts(
            present(wanted, of(KeyTable::Microbars)),
            present(wanted, of(KeyTable::Signals)),
            present(minutes, of(KeyTable::MinuteSignals)),
            wanted.len(),
            minutes.len(),
        )
    }
}

/// `window`'s rows in full, its four queries at once.
async fn read_rows<W: Warehouse>(ch: &W, w: &Window) -> Result<Rows, ClickHouseError> {
    let (symbols, after) = (&w.symbols, w.after);
    let (bars, signals, minute_signals, unmerged) = tokio::try_join!(
        ch.microbars(symbols, after),
        ch.signals(symbols, after),
        async {
            match w.minutes_after {
                Some(m) => ch.minute_signals(symbols, m).await,
                None => Ok(Vec::new()),
            }
        },
        ch.unmerged_duplicates("ta_microbars", symbols, after),
    )?;
    Ok(Rows {
        bars,
        signals,
        minute_signals,
        unmerged,
    })
}

/// The poll history's line: rows present of rows expected.
fn counts(bars: usize, signals: usize, minutes: usize, n: usize, m: usize) -> String {
    if m == 0 {
        format!("{bars}/{n} microbars, {signals}/{n} signals")
    } else {
        format!("{bars}/{n} microbars, {signals}/{n} signals, {minutes}/{m} PT1M signals")
    }
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
