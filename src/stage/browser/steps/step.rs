//! The checklist's steps, and how a step's failures are kept and named.

use super::BrowserError;
use crate::domain::diagnose::Hop;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Open,
    Candles,
    Indicators,
    Lag,
    Empty,
    Error,
}

impl Step {
    pub(super) const ALL: [Step; 6] = [
        Step::Open,
        Step::Candles,
        Step::Indicators,
        Step::Lag,
        Step::Empty,
        Step::Error,
    ];

    pub(super) fn number(self) -> usize {
        Self::ALL.iter().position(|s| *s == self).unwrap_or(0) + 1
    }

    pub(super) fn slug(self) -> &'static str {
        match self {
            Step::Open => "open",
            Step::Candles => "candles",
            Step::Indicators => "indicators",
            Step::Lag => "lag",
            Step::Empty => "empty",
            Step::Error => "error",
        }
    }

    pub(super) fn title(self) -> &'static str {
        match self {
            Step::Open => "open /torghut/visuals",
            Step::Candles => "candlesticks from /ta/bars",
            Step::Indicators => "indicator toggles from /ta/signals",
            Step::Lag => "lag pill under the threshold",
            Step::Empty => "empty state",
            Step::Error => "error banner",
        }
    }

    pub(super) fn name(self) -> String {
        format!("{}-{}", self.number(), self.slug())
    }
}

/// A failed step: the hop it points at and exactly what was wrong.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) hop: Hop,
    pub(super) message: String,
}

impl From<BrowserError> for Failure {
    fn from(e: BrowserError) -> Self {
        page(e.to_string())
    }
}

impl From<fantoccini::error::CmdError> for Failure {
    fn from(e: fantoccini::error::CmdError) -> Self {
        page(BrowserError::from(e).to_string())
    }
}

pub(super) fn page(message: impl Into<String>) -> Failure {
    Failure {
        hop: Hop::ChartsPage,
        message: message.into(),
    }
}

pub(super) fn api(message: impl Into<String>) -> Failure {
    Failure {
        hop: Hop::JangarApi,
        message: message.into(),
    }
}

pub(super) type Outcome = Result<String, Failure>;

/// Everything one step found wrong, most fundamental first; a step reports them all.
#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<Failure>);

impl Problems {
    pub(super) fn add(&mut self, failure: Failure) {
        self.0.push(failure);
    }

    pub(super) fn page(&mut self, message: impl Into<String>) {
        self.add(page(message));
    }

    pub(super) fn api(&mut self, message: impl Into<String>) {
        self.add(api(message));
    }

    pub(super) fn outcome(self, detail: String) -> Outcome {
        let mut it = self.0.into_iter();
        match it.next() {
            None => Ok(detail),
            Some(first) => Err(Failure {
                hop: first.hop,
                message: std::iter::once(first.message)
                    .chain(it.map(|f| f.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            }),
        }
    }
}
