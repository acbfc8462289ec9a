//! What a run has published, recorded as it happens and kept outside the run's future.
//!
//! A scenario can end early: a target stops answering, a signal aborts a canary cycle or the
//! run. Whatever ends it, an operator must still learn which synthetic symbols were written and
//! which messages the broker took (they stay on the topics and their rows in ClickHouse), so
//! the runner writes each fact here the moment it is known, and the error paths, the canary's
//! history and an aborted run's report read them back.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::domain::publish::{Delivery, Fate, Unconfirmed};
use crate::domain::report::{ScenarioReport, Verdict};

/// The run's record, shared by clones.
#[derive(Clone, Default)]
pub struct Ledger(Arc<Mutex<Vec<Entry>>>);

/// What one scenario has published so far, and its report once it has one.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub scenario: String,
    pub path: String,
    pub description: String,
    /// Scenario alias → synthetic symbol, once they are chosen (before anything is sent).
    pub symbols: BTreeMap<String, String>,
    /// Messages handed to the producer.
    pub sent: usize,
    /// Acknowledged messages, in the order the acknowledgements came.
    pub deliveries: Vec<Delivery>,
    /// Messages sent and never acknowledged, once the run gave up on them.
    pub unconfirmed: Vec<Unconfirmed>,
    pub finished: Option<Box<ScenarioReport>>,
}

/// One scenario's place in the ledger, for the code that publishes it.
#[derive(Clone)]
pub struct Record {
    ledger: Ledger,
    index: usize,
}

impl Ledger {
    /// Opens the scenario's entry.
    pub fn begin(&self, scenario: &crate::domain::scenario::Scenario) -> Record {
        let mut entries = self.lock();
        entries.push(Entry {
            scenario: scenario.name.clone(),
            path: scenario.path.display().to_string(),
            description: scenario.description.clone(),
            ..Entry::default()
        });
        Record {
            ledger: self.clone(),
            index: entries.len() - 1,
        }
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.lock().clone()
    }

    /// Every scenario so far: the finished ones' reports, and for one that was cut short an
    /// error report (`cause`) with what it had published.
    pub fn reports(&self, cause: &str) -> Vec<ScenarioReport> {
        self.lock()
            .iter()
            .map(|e| match &e.finished {
                Some(report) => (**report).clone(),
                None => e.cut_short(cause),
            })
            .collect()
    }

    /// The run's totals: messages sent, acknowledged, and every symbol written to.
    pub fn totals(&self) -> Totals {
        let entries = self.lock();
        let mut totals = Totals::default();
        for e in entries.iter() {
            totals.sent += e.sent;
            totals.acknowledged += e.deliveries.len();
            if e.sent > 0 {
                totals.symbols.extend(e.symbols.values().cloned());
            }
        }
        totals.symbols.sort();
        totals.symbols.dedup();
        totals
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a whole run has published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub sent: usize,
    pub acknowledged: usize,
    /// Symbols of the scenarios that sent anything.
    pub symbols: Vec<String>,
}

impl Totals {
    pub fn published_anything(&self) -> bool {
        self.sent > 0
    }
}

impl std::fmt::Display for Totals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} messages sent ({} acknowledged) to {}",
            self.sent,
            self.acknowledged,
            self.symbols.join(", ")
        )
    }
}

impl Entry {
    /// The report of a scenario that could not finish: the error, and everything it published.
    pub fn cut_short(&self, cause: &str) -> ScenarioReport {
        let mut report = ScenarioReport {
            name: self.scenario.clone(),
            path: self.path.clone(),
            description: self.description.clone(),
            verdict: Verdict::Error,
            error: Some(cause.to_string()),
            ..ScenarioReport::default()
        };
        self.fill(&mut report);
        report
    }

    /// Copies the publish facts into a report.
    pub fn fill(&self, report: &mut ScenarioReport) {
        let mut deliveries = self.deliveries.clone();
        deliveries.sort_by_key(|d| d.index);
        report.symbols = self.symbols.clone();
        report.messages_published = self.sent;
        report.messages_acknowledged = deliveries.len();
        report.deliveries = deliveries;
        report.unconfirmed = self.unconfirmed.clone();
    }

    /// Unacknowledged messages found on the topic afterwards.
    pub fn landed(&self) -> usize {
        self.unconfirmed
            .iter()
            .filter(|u| matches!(u.fate, Fate::Landed { .. }))
            .count()
    }
}

impl Record {
    pub fn symbols(&self, symbols: &BTreeMap<String, String>) {
        self.with(|e| e.symbols = symbols.clone());
    }

    pub fn sent(&self) {
        self.with(|e| e.sent += 1);
    }

    pub fn acked(&self, delivery: &Delivery) {
        self.with(|e| e.deliveries.push(delivery.clone()));
    }

    pub fn unconfirmed(&self, unconfirmed: &[Unconfirmed]) {
        self.with(|e| e.unconfirmed = unconfirmed.to_vec());
    }

    pub fn finish(&self, report: &ScenarioReport) {
        self.with(|e| e.finished = Some(Box::new(report.clone())));
    }

    /// The scenario's entry as it is now.
    pub fn get(&self) -> Entry {
        self.ledger.lock()[self.index].clone()
    }

    fn with(&self, f: impl FnOnce(&mut Entry)) {
        if let Some(e) = self.ledger.lock().get_mut(self.index) {
            f(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::publish::Channel;

    fn scenario(name: &str) -> crate::domain::scenario::Scenario {
        let text = format!(
            "name = \"{name}\"\nsymbols = [\"A\"]\n[[trades]]\nsymbol = \"A\"\nat_ms = 0\nprice = 1.0\nsize = 1.0\n"
        );
        crate::domain::scenario::parse(&text, std::path::Path::new("x.toml")).unwrap()
    }

    fn delivery(index: usize) -> Delivery {
        Delivery {
            index,
            channel: Channel::Trades,
            symbol: "ZZT2E-R-A".into(),
            partition: 1,
            offset: 10 + index as i64,
            acked_at: time::macros::datetime!(2026-01-01 00:00:00 UTC),
        }
    }

    #[test]
    fn a_scenario_cut_short_keeps_what_it_published() {
        let ledger = Ledger::default();
        let done = ledger.begin(&scenario("first"));
        done.finish(&ScenarioReport {
            name: "first".into(),
            verdict: Verdict::Pass,
            ..ScenarioReport::default()
        });
        let record = ledger.begin(&scenario("second"));
        record.symbols(&[("A".to_string(), "ZZT2E-R-A".to_string())].into());
        for _ in 0..3 {
            record.sent();
        }
        record.acked(&delivery(1));
        record.acked(&delivery(0));
        record.unconfirmed(&[Unconfirmed {
            index: 2,
            channel: Channel::Trades,
            symbol: "ZZT2E-R-A".into(),
            error: "timed out".into(),
            fate: Fate::Unknown,
        }]);
        let reports = ledger.reports("aborted by SIGTERM");
        assert_eq!(reports[0].verdict, Verdict::Pass);
        let cut = &reports[1];
        assert_eq!(cut.verdict, Verdict::Error);
        assert_eq!(cut.error.as_deref(), Some("aborted by SIGTERM"));
        assert_eq!(cut.symbols["A"], "ZZT2E-R-A");
        assert_eq!(cut.messages_published, 3);
        assert_eq!(cut.messages_acknowledged, 2);
        let order: Vec<usize> = cut.deliveries.iter().map(|d| d.index).collect();
        assert_eq!(order, vec![0, 1], "deliveries in publish order");
        assert_eq!(cut.unconfirmed.len(), 1);
        let totals = ledger.totals();
        assert_eq!((totals.sent, totals.acknowledged), (3, 2));
        assert_eq!(totals.symbols, vec!["ZZT2E-R-A".to_string()]);
    }
}
