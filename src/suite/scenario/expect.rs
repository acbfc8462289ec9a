//! What the oracle expects of a run: the rows in emission order, each bar with the message
//! whose acknowledgement starts its latency, and a second prediction when a pool's history
//! turns out to have moved on.

use std::collections::HashMap;

use time::OffsetDateTime;

use super::poll::Observed;
use super::publish::Sent;
use crate::config::TaSettings;
use crate::domain::model::{Columns, Microbar, RowKey, Signal, WINDOW_1M};
use crate::domain::oracle::{Expected, Oracle};
use crate::domain::pool::{self, HistoryKind, Lease, PoolReport};
use crate::domain::publish::Delivery;

/// A bar the oracle expects, with the evidence needed for latency.
pub(super) struct ExpectedBar {
    pub key: RowKey,
    /// The acknowledgement of the message whose arrival makes the TA job emit this bar.
    pub trigger_ack: OffsetDateTime,
    /// That message is another symbol's trade: the bar closes when the job's watermark passes
    /// it, which may wait for idle partitions, not on the arrival of a trade of its own symbol.
    pub closed_by_watermark: bool,
}

/// Expected rows in emission order, and where each publish's rows start.
#[derive(Default)]
pub(super) struct Expectations {
    pub bars: Vec<Microbar>,
    pub signals: Vec<Signal>,
    /// The `PT1M` rows of the 1-minute path, one per published 1-minute bar.
    pub minute_signals: Vec<Signal>,
}

impl Expectations {
    /// The closing trade's own bar is tolerated, not expected: whether it is emitted depends on
    /// traffic after the run (`pipeline.md` §7.2 rule 6).
    pub fn drop_bars_of(&mut self, closers: &[RowKey]) {
        let closing = |k: &RowKey| {
            closers
                .iter()
                .any(|c| c.symbol == k.symbol && c.event_ts == k.event_ts)
        };
        self.bars.retain(|b| !closing(&b.key()));
        self.signals.retain(|s| !closing(&s.key()));
    }

    pub fn add(&mut self, rows: Vec<Expected>) -> Vec<RowKey> {
        let mut keys = Vec::new();
        for row in rows {
            match row {
                Expected::Microbar(b) => {
                    keys.push(b.key());
                    self.bars.push(b);
                }
                Expected::Signal(s) if s.window_size == WINDOW_1M => self.minute_signals.push(s),
                Expected::Signal(s) => self.signals.push(s),
            }
        }
        keys
    }
}

pub(super) fn expected_bars(sent: &[Sent], expected: &Expectations) -> Vec<ExpectedBar> {
    let trigger: HashMap<&RowKey, &Delivery> = sent
        .iter()
        .flat_map(|s| s.emitted.iter().map(move |k| (k, &s.delivery)))
        .collect();
    expected
        .bars
        .iter()
        .map(|b| {
            let key = b.key();
            let by = trigger.get(&key);
            ExpectedBar {
                trigger_ack: by.map_or(OffsetDateTime::UNIX_EPOCH, |d| d.acked_at),
                closed_by_watermark: by.is_some_and(|d| d.symbol != key.symbol),
                key,
            }
        })
        .collect()
}

/// An oracle of the deployed job (`ta`) that knows the leased symbols' history.
pub(super) fn seeded_oracle(ta: TaSettings, lease: Option<&Lease>) -> Oracle {
    let mut oracle = Oracle::with_config(ta.signal_config());
    for (_, s) in lease.map_or(&[][..], |l| &l.symbols) {
        oracle.seed(&s.symbol, s.seed.clone());
    }
    oracle
}

/// Expectations predicted a second time from a lease that learnt more after the run: bars
/// an earlier run left open (closed by this run's first trade) and, for symbols whose oldest
/// rows expired, the session volume before the run fitted to the `vwap_session` values
/// ClickHouse shows (the one unknown, see [`pool::fit_prior_volume`]).
pub(super) fn predict_again(
    ta: TaSettings,
    lease: &Lease,
    values: &[String],
    closers: &[RowKey],
    observed: &Observed,
    report: &mut PoolReport,
) -> Option<Prediction> {
    let mut lease = lease.clone();
    let mut changed = report
        .symbols
        .iter()
        .any(|s| s.caught_up_bars > 0 || s.state_reset);
    for (_, seeded) in lease
        .symbols
        .iter_mut()
        .filter(|(_, s)| s.kind == HistoryKind::PrefixExpired)
    {
        let fit = pool::fit_session(seeded, &observed.bars, &observed.signals);
        report.record_fit(&seeded.symbol, &fit);
        seeded.seed.session = fit.session;
        changed = true;
    }
    if !changed {
        return None;
    }
    let mut oracle = seeded_oracle(ta, Some(&lease));
    let mut prediction = Prediction::default();
    for value in values {
        // These values went through the same oracle once already.
        let rows = oracle.on_message(value).unwrap_or_default();
        prediction.emitted.push(prediction.expected.add(rows));
    }
    prediction.expected.drop_bars_of(closers);
    Some(prediction)
}

/// Rows predicted again, and which message makes the job emit each.
#[derive(Default)]
pub(super) struct Prediction {
    expected: Expectations,
    emitted: Vec<Vec<RowKey>>,
}

impl Prediction {
    pub fn adopt(self, sent: &mut [Sent]) -> (Expectations, Vec<ExpectedBar>) {
        for (s, emitted) in sent.iter_mut().zip(self.emitted) {
            s.emitted = emitted;
        }
        let bars = expected_bars(sent, &self.expected);
        (self.expected, bars)
    }
}
