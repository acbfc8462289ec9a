//! The plotted part of the evidence: expected and observed bars with the indicator lines a
//! person checks by eye (close, EMA 12/26, Bollinger bands), per row key.

use serde::Serialize;
use time::OffsetDateTime;

use crate::model::{Columns, Microbar, RowKey, Signal};

/// One bar and its signal, joined on `(symbol, event_ts, seq)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub symbol: String,
    #[serde(with = "time::serde::rfc3339")]
    pub event_ts: OffsetDateTime,
    pub seq: u64,
    pub o: Option<f64>,
    pub h: Option<f64>,
    pub l: Option<f64>,
    pub c: Option<f64>,
    pub ema12: Option<f64>,
    pub ema26: Option<f64>,
    pub boll_upper: Option<f64>,
    pub boll_mid: Option<f64>,
    pub boll_lower: Option<f64>,
}

impl Point {
    fn empty(key: &RowKey) -> Self {
        Point {
            symbol: key.symbol.clone(),
            event_ts: key.event_ts,
            seq: key.seq,
            o: None,
            h: None,
            l: None,
            c: None,
            ema12: None,
            ema26: None,
            boll_upper: None,
            boll_mid: None,
            boll_lower: None,
        }
    }

    /// The key as the table diffs write it, to find a divergence on the plot.
    pub fn key(&self) -> String {
        RowKey {
            symbol: self.symbol.clone(),
            event_ts: self.event_ts,
            seq: self.seq,
        }
        .to_string()
    }
}

/// Expected (oracle) and observed (ClickHouse FINAL) points, each in key order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Series {
    pub expected: Vec<Point>,
    pub observed: Vec<Point>,
}

impl Series {
    pub fn new(
        expected_bars: &[Microbar],
        expected_signals: &[Signal],
        observed_bars: &[Microbar],
        observed_signals: &[Signal],
    ) -> Self {
        Series {
            expected: join(expected_bars, expected_signals),
            observed: join(observed_bars, observed_signals),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.expected.is_empty() && self.observed.is_empty()
    }
}

fn join(bars: &[Microbar], signals: &[Signal]) -> Vec<Point> {
    let mut points: std::collections::BTreeMap<RowKey, Point> = Default::default();
    for b in bars {
        let p = points.entry(b.key()).or_insert_with_key(Point::empty);
        (p.o, p.h, p.l, p.c) = (Some(b.o), Some(b.h), Some(b.l), Some(b.c));
    }
    for s in signals {
        let p = points.entry(s.key()).or_insert_with_key(Point::empty);
        p.ema12 = s.ema12;
        p.ema26 = s.ema26;
        p.boll_upper = s.boll_upper;
        p.boll_mid = s.boll_mid;
        p.boll_lower = s.boll_lower;
    }
    points.into_values().collect()
}
