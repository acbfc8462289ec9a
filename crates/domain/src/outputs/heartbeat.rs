//! The TA job's status heartbeat (`pipeline.md` §6.1), judged around one run.
//!
//! The job emits one every `max(TA_CHECKPOINT_INTERVAL_MS, 1000)` ms, 60 s in production, so a
//! run cannot wait for the next one without lasting a minute more. The run reads the latest
//! heartbeat before it publishes (the baseline) and keeps reading those that arrive while it
//! waits for its rows anyway; then:
//!
//! - **pass**: a heartbeat emitted during the run holds every run symbol at its last bar's event
//!   time, its counters advanced past the baseline's by at least the run's bars and signals, it
//!   is fresh (age ≤ 2 × interval);
//! - **fail** (a named finding): no heartbeat at all (missing), the newest older than two
//!   intervals (stale: stopped), or a
//!   heartbeat emitted well after the run's last bar was visible that still lacks the run
//!   (frozen: the status operator stopped counting), counters that went backwards (state reset);
//! - **pending**: no heartbeat after the run's last bar yet, the newest one fresh: the evidence
//!   so far is reported, and neither a pass nor a failure is claimed.
//!
//! A status other than `ok` is a warning with its reason ([`status_warning`]), not a failure:
//! the job degrades by its own freshness rule in the regular session (§6.1: no record since the
//! previous heartbeat, or a stale source) whenever the lane is quiet between two heartbeats,
//! which a synthetic run on the simulation lane neither causes nor prevents; the run's rows and
//! the counters are the evidence of the path.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::diagnose::{Finding, Hop, RUNBOOK_HEARTBEAT};
use crate::envelope::IsoInstant;
use crate::model::iso_millis;

/// The fields of a heartbeat the validator judges (the record has more: §6.1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Heartbeat {
    pub seq: i64,
    /// Wall clock at emission (heartbeats carry no event time of their own).
    #[serde(with = "time::serde::rfc3339")]
    pub event_ts: OffsetDateTime,
    pub status: String,
    pub status_reason: Option<String>,
    pub input_event_count: i64,
    pub output_event_count: i64,
    pub watermark_lag_ms: Option<i64>,
    pub source_lag_ms: Option<i64>,
    pub market_session_state: Option<String>,
    pub clickhouse_sink_enabled: Option<bool>,
    /// Symbol → the newest event time seen, ISO text, over every symbol ever seen.
    pub per_symbol_latest_event_ts: BTreeMap<String, String>,
}

impl Heartbeat {
    /// The newest event time the heartbeat holds for `symbol`.
    pub fn latest_event(&self, symbol: &str) -> Option<OffsetDateTime> {
        let text = self.per_symbol_latest_event_ts.get(symbol)?;
        text.parse::<IsoInstant>()
            .ok()
            .map(IsoInstant::to_offset_datetime)
    }
}

/// What the run knows when it judges the heartbeats.
#[derive(Debug, Clone)]
pub struct HeartbeatRun<'a> {
    /// The newest heartbeat on the topic before the run published, if any.
    pub baseline: Option<&'a Heartbeat>,
    /// Those that arrived from then until now, in topic order.
    pub during: &'a [Heartbeat],
    /// Each run symbol with its last bar's event time (the oracle's).
    pub last_bars: &'a BTreeMap<String, OffsetDateTime>,
    /// The run's bars and signals (both cadences), the least the counters must have advanced.
    pub bars: u64,
    pub signals: u64,
    /// When the run saw its last row visible: a heartbeat emitted past this (plus
    /// [`FROZEN_SLACK`]) must hold the run.
    pub rows_visible_at: OffsetDateTime,
    pub now: OffsetDateTime,
    /// The job's heartbeat interval (production 60 s).
    pub interval: Duration,
}

/// How long after the run's rows are visible a heartbeat may still not hold them: the status
/// operator reads the same microbar stream as the sinks but is a separate operator.
pub const FROZEN_SLACK: Duration = Duration::from_secs(2);

/// The outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum HeartbeatVerdict {
    Pass(String),
    Fail(Vec<Finding>),
    /// Not yet judgeable: what was seen so far.
    Pending(String),
}

fn since(later: OffsetDateTime, earlier: OffsetDateTime) -> Duration {
    Duration::try_from(later - earlier).unwrap_or_default()
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// Judges the heartbeats around a run (see the module's rules).
pub fn judge(run: &HeartbeatRun<'_>) -> HeartbeatVerdict {
    let Some(newest) = run.during.last().or(run.baseline) else {
        return fail(
            "no heartbeat on the status topic (none before the run, none during it): the \
             job's status stream is missing (TA_STATUS_TOPIC unset, or the job never started)"
                .to_string(),
        );
    };
    let age = since(run.now, newest.event_ts);
    if age > run.interval * 2 {
        return fail(format!(
            "the newest heartbeat (seq {}, {}) is {} ms old, over twice the {} ms interval: \
             heartbeats stopped",
            newest.seq,
            iso_millis(newest.event_ts),
            ms(age),
            ms(run.interval)
        ));
    }
    let mut findings = Vec::new();
    // The status operator counts a bar when it is emitted and its signal a moment later, so a
    // beat can hold the run's last bar before every signal is counted: the first covering beat
    // whose counters caught up passes; the newest covering one judges the counters only once it
    // was emitted past the slack (until then the counters may still be catching up).
    let covers: Vec<&Heartbeat> = run
        .during
        .iter()
        .filter(|h| holds_run(h, run.last_bars))
        .collect();
    let caught_up = covers
        .iter()
        .copied()
        .find(|h| counters(run.baseline, h, run.bars, run.signals).is_empty());
    let settled = run.rows_visible_at + FROZEN_SLACK;
    let covering = caught_up.or_else(|| {
        covers
            .last()
            .copied()
            .filter(|h| h.event_ts > settled || run.during.iter().any(|d| d.event_ts > h.event_ts))
    });
    match covering {
        Some(h) => {
            findings.extend(counters(run.baseline, h, run.bars, run.signals));
            if findings.is_empty() {
                HeartbeatVerdict::Pass(format!(
                    "heartbeat seq {} at {} holds the run's {} symbols at their last bars; \
                     counters +{} in, +{} out (run: {} bars, {} signals); status {}",
                    h.seq,
                    iso_millis(h.event_ts),
                    run.last_bars.len(),
                    advance(
                        run.baseline.map(|b| b.input_event_count),
                        h.input_event_count
                    ),
                    advance(
                        run.baseline.map(|b| b.output_event_count),
                        h.output_event_count
                    ),
                    run.bars,
                    run.signals,
                    h.status
                ))
            } else {
                HeartbeatVerdict::Fail(findings)
            }
        }
        None => {
            if let Some(late) = run.during.iter().rev().find(|h| h.event_ts > settled) {
                let lacking: Vec<String> = lacking(late, run.last_bars);
                findings.push(Finding::failure(
                    Hop::Heartbeat,
                    format!(
                        "heartbeat seq {} at {}, emitted after the run's rows were visible ({}), \
                         does not hold the run's last bars ({}): the heartbeat is frozen",
                        late.seq,
                        iso_millis(late.event_ts),
                        iso_millis(run.rows_visible_at),
                        lacking.join(", ")
                    ),
                    RUNBOOK_HEARTBEAT,
                ));
            }
            if !findings.is_empty() {
                return HeartbeatVerdict::Fail(findings);
            }
            HeartbeatVerdict::Pending(format!(
                "no heartbeat since the run's last bar yet: newest seq {} at {} ({} ms old, \
                 status {}), next due by {} (interval {} ms); {} heartbeats during the run",
                newest.seq,
                iso_millis(newest.event_ts),
                ms(age),
                newest.status,
                iso_millis(newest.event_ts + run.interval),
                ms(run.interval),
                run.during.len()
            ))
        }
    }
}

/// The newest heartbeat's status when it is not `ok`: a warning naming the reason (see the
/// module's rules), whatever the verdict.
pub fn status_warning(run: &HeartbeatRun<'_>) -> Option<Finding> {
    let newest = run.during.last().or(run.baseline)?;
    (newest.status != "ok").then(|| {
        let reason = newest.status_reason.as_deref().unwrap_or("no reason given");
        Finding::warning(
            Hop::Heartbeat,
            format!(
                "heartbeat seq {} at {} says status {:?}: {reason} (the job's own freshness \
                 rule, pipeline.md §6.1; reported, not failed: the run's rows are the evidence)",
                newest.seq,
                iso_millis(newest.event_ts),
                newest.status
            ),
            RUNBOOK_HEARTBEAT,
        )
    })
}

fn fail(cause: String) -> HeartbeatVerdict {
    HeartbeatVerdict::Fail(vec![Finding::failure(
        Hop::Heartbeat,
        cause,
        RUNBOOK_HEARTBEAT,
    )])
}

/// Every run symbol at (or past) its last bar's event time.
fn holds_run(h: &Heartbeat, last_bars: &BTreeMap<String, OffsetDateTime>) -> bool {
    !last_bars.is_empty()
        && last_bars
            .iter()
            .all(|(s, t)| h.latest_event(s).is_some_and(|seen| seen >= *t))
}

fn lacking(h: &Heartbeat, last_bars: &BTreeMap<String, OffsetDateTime>) -> Vec<String> {
    last_bars
        .iter()
        .filter(|(s, t)| h.latest_event(s).is_none_or(|seen| seen < **t))
        .map(|(s, t)| match h.per_symbol_latest_event_ts.get(s) {
            Some(seen) => format!("{s} at {seen}, last bar {}", iso_millis(*t)),
            None => format!("{s} absent, last bar {}", iso_millis(*t)),
        })
        .collect()
}

fn advance(before: Option<i64>, after: i64) -> i64 {
    after - before.unwrap_or(0)
}

/// Counters must have advanced by at least the run's bars (input) and signals (output).
fn counters(baseline: Option<&Heartbeat>, h: &Heartbeat, bars: u64, signals: u64) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, before, after, least) in [
        (
            "input_event_count",
            baseline.map(|b| b.input_event_count),
            h.input_event_count,
            bars,
        ),
        (
            "output_event_count",
            baseline.map(|b| b.output_event_count),
            h.output_event_count,
            signals,
        ),
    ] {
        let moved = advance(before, after);
        if moved < 0 {
            out.push(Finding::failure(
                Hop::Heartbeat,
                format!(
                    "{name} went back from {} to {after}: the job's status state was reset",
                    before.unwrap_or(0)
                ),
                RUNBOOK_HEARTBEAT,
            ));
        } else if (moved as u64) < least {
            out.push(Finding::failure(
                Hop::Heartbeat,
                format!(
                    "{name} advanced by {moved} across the run, fewer than the run's {least}: \
                     the heartbeat's counters are frozen or miss records"
                ),
                RUNBOOK_HEARTBEAT,
            ));
        }
    }
    out
}

#[cfg(test)]
#[path = "heartbeat_tests.rs"]
mod tests;
