//! For the run's own symbol, the page's counts against the oracle (the rows the TA job must
//! have written), not only against the answers Jangar gave the page: exactly-known data from
//! trades to the page's `data-candle-count`, `data-overlay-count` and `data-signal-count`.
//!
//! An answer row the oracle does not predict is tolerated when ClickHouse holds it (the
//! ClickHouse stage judged it) or when it lies outside the oracle's span: after its last row
//! (the closing trade's own bar, which a run tolerates and which may land after the ClickHouse
//! stage) or before its first (a reserved pool symbol's history from earlier runs); an
//! oracle row missing from the answer is this step's problem only when ClickHouse lacks it too
//! (otherwise the comparison with ClickHouse already names Jangar).

use std::collections::BTreeSet;

use serde_json::Value;

use super::calls::*;
use super::{Checklist, Problems};
use crate::domain::diagnose::Hop;
use crate::domain::model::{Microbar, Signal};
use crate::stage::browser::expect;
use crate::stage::browser::model::Panel;

type Key = (i64, u64);

/// The oracle's rows of one table inside the page's window, and how the answer relates to them.
struct Split {
    /// Oracle rows in the window (at most the page's limit, oldest first).
    expected: usize,
    /// The answer's rows whose keys the oracle predicts.
    predicted: Vec<Value>,
    /// The answer's rows it does not predict that ClickHouse holds or that lie outside its
    /// span (the closing trade's bar, a pool symbol's history).
    tolerated: Vec<Value>,
    /// The answer's rows neither the oracle nor ClickHouse has.
    unknown: Vec<Key>,
    /// Oracle keys absent from both the answer and ClickHouse.
    never_stored: Vec<Key>,
    /// The oracle's rows would exceed the page's limit: only the oldest are compared.
    truncated: bool,
}

impl Checklist<'_> {
    /// Step 2: `data-candle-count` against the oracle's bars. Returns a note for the detail.
    pub(super) fn candles_vs_oracle(
        &self,
        load: &Load,
        shown: Option<usize>,
        problems: &mut Problems,
    ) -> String {
        let symbol = symbol_of(&load.bars);
        let expected = bar_keys(self.ctx.expected_bars, &symbol);
        let stored = bar_keys(self.ctx.stored_bars, &symbol);
        let s = self.split(load, load.bars_rows(), &expected, &stored);
        let c = &self.model.candles;
        let predicted = expect::candle_count(&s.predicted, c);
        let tolerated = expect::candle_count(&s.tolerated, c);
        self.oracle_problems("bars", &s, problems);
        if predicted != s.expected {
            problems.add(super::Failure {
                hop: Hop::JangarApi,
                message: format!(
                    "the oracle predicts {} candles for {symbol} in the page's window, the page's \
                     answer holds {predicted} of them as candles (a time and numeric o/h/l/c)",
                    s.expected
                ),
            });
        }
        match shown {
            Some(n) if n == predicted + tolerated && predicted == s.expected => format!(
                "; they are the oracle's {} bars{}{}",
                s.expected,
                extra_note(tolerated, "bar"),
                truncation_note(s.truncated)
            ),
            _ => String::new(),
        }
    }

    /// Step 3: the points each toggle draws from the signals the oracle predicts. Returns a note
    /// for the detail (with every toggle on).
    pub(super) fn points_vs_oracle(&self, load: &Load, problems: &mut Problems) -> String {
        let symbol = symbol_of(&load.signals);
        let expected = signal_keys(self.ctx.expected_signals, &symbol);
        let stored = signal_keys(self.ctx.stored_signals, &symbol);
        let s = self.split(load, load.signals_rows(), &expected, &stored);
        self.oracle_problems("signals", &s, problems);
        let (from, to) = load.window_ms().unwrap_or((i64::MIN, i64::MAX));
        let oracle_rows: Vec<Value> = self
            .ctx
            .expected_signals
            .iter()
            .filter(|x| x.symbol == symbol && (from..=to).contains(&unix_ms_of(x.event_ts)))
            .take(s.expected)
            .map(signal_json)
            .collect();
        let m = &self.model;
        let oracle = expect::toggle_points(&oracle_rows, m);
        let answer = expect::toggle_points(&s.predicted, m);
        let mut differ = Vec::new();
        for ((key, want), (_, got)) in oracle.iter().zip(&answer) {
            if want != got {
                let name = m.toggle(key).map_or(key.as_str(), |t| t.name.as_str());
                differ.push(format!("{name} {got} of the oracle's {want}"));
            }
        }
        if !differ.is_empty() {
            problems.add(super::Failure {
                hop: Hop::JangarApi,
                message: format!(
                    "the signals the page got for {symbol} draw other points than the oracle's \
                     rows: {}",
                    differ.join(", ")
                ),
            });
            return String::new();
        }
        let all: Vec<&str> = m.toggles.iter().map(|t| t.key.as_str()).collect();
        let extra = expect::toggle_points(&s.tolerated, m);
        let total = |points: &[(String, usize)], panel| expect::panel_count(points, m, panel, &all);
        format!(
            "; the oracle's {} signals give {} overlay and {} signal points{}{}",
            s.expected,
            total(&oracle, Panel::Overlay),
            total(&oracle, Panel::Signal),
            match (total(&extra, Panel::Overlay), total(&extra, Panel::Signal)) {
                (0, 0) => String::new(),
                (o, g) => format!(
                    " (+{o}/{g} from {} row(s) the oracle does not predict: stored, or outside \
                     its span)",
                    s.tolerated.len()
                ),
            },
            truncation_note(s.truncated)
        )
    }

    /// How `rows` (an answer) relate to the oracle's `expected` and ClickHouse's `stored` keys,
    /// inside the page's window and limit.
    fn split(&self, load: &Load, rows: &[Value], expected: &[Key], stored: &[Key]) -> Split {
        let window = load.window_ms().unwrap_or((i64::MIN, i64::MAX));
        let limit: usize = load
            .bars
            .param("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(usize::MAX);
        split(
            rows,
            &self.model.candles.time,
            window,
            limit,
            expected,
            stored,
        )
    }

    fn oracle_problems(&self, table: &str, s: &Split, problems: &mut Problems) {
        if let Some(first) = s.never_stored.first() {
            problems.add(super::Failure {
                hop: Hop::TaJob,
                message: format!(
                    "{} of the oracle's {} {table} in the page's window are neither in the \
                     page's answer nor in ClickHouse (first {}): the TA job never wrote them \
                     (see the ClickHouse stage)",
                    s.never_stored.len(),
                    s.expected,
                    key_text(*first)
                ),
            });
        }
        if let Some(first) = s.unknown.first() {
            problems.add(super::Failure {
                hop: Hop::JangarApi,
                message: format!(
                    "the page's {table} answer has {} row(s) that neither the oracle nor \
                     ClickHouse has (first {})",
                    s.unknown.len(),
                    key_text(*first)
                ),
            });
        }
    }
}

/// See [`Checklist::split`]; `time` is the page's time field spec.
fn split(
    rows: &[Value],
    time: &str,
    (from, to): (i64, i64),
    limit: usize,
    expected: &[Key],
    stored: &[Key],
) -> Split {
    let in_window: BTreeSet<Key> = expected
        .iter()
        .copied()
        .filter(|(t, _)| (from..=to).contains(t))
        .collect();
    let truncated = in_window.len() > limit;
    let span = expected.iter().min().zip(expected.iter().max());
    let outside = |t: i64| span.is_some_and(|(first, last)| t < first.0 || t > last.0);
    let expected: BTreeSet<Key> = in_window.into_iter().take(limit).collect();
    let stored: BTreeSet<Key> = stored.iter().copied().collect();
    let mut split = Split {
        expected: expected.len(),
        predicted: Vec::new(),
        tolerated: Vec::new(),
        unknown: Vec::new(),
        never_stored: Vec::new(),
        truncated,
    };
    let mut seen = BTreeSet::new();
    for row in rows {
        let Some(key) = expect::row_keys(std::slice::from_ref(row), time)
            .first()
            .copied()
        else {
            continue;
        };
        seen.insert(key);
        if expected.contains(&key) {
            split.predicted.push(row.clone());
        } else if stored.contains(&key) || outside(key.0) {
            split.tolerated.push(row.clone());
        } else {
            split.unknown.push(key);
        }
    }
    split.never_stored = expected
        .iter()
        .filter(|k| !seen.contains(k) && !stored.contains(k))
        .copied()
        .collect();
    split
}

fn bar_keys(bars: &[Microbar], symbol: &str) -> Vec<Key> {
    bars.iter()
        .filter(|b| b.symbol == symbol)
        .map(|b| (unix_ms_of(b.event_ts), b.seq))
        .collect()
}

fn signal_keys(signals: &[Signal], symbol: &str) -> Vec<Key> {
    signals
        .iter()
        .filter(|s| s.symbol == symbol)
        .map(|s| (unix_ms_of(s.event_ts), s.seq))
        .collect()
}

fn extra_note(n: usize, what: &str) -> String {
    match n {
        0 => String::new(),
        n => format!(
            " + {n} {what}(s) the oracle does not predict (stored, or outside its span: the \
             closing trade's own, a pool's history)"
        ),
    }
}

fn truncation_note(truncated: bool) -> &'static str {
    if truncated {
        " (the oracle's rows exceed the page's limit: the oldest are compared, as the page \
         asks oldest first)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(t: i64, seq: u64) -> Value {
        json!({ "event_ts": iso(t).trim_end_matches('Z').replace('T', " "), "seq": seq.to_string() })
    }

    #[test]
    fn answer_rows_are_predicted_tolerated_or_unknown() {
        let t = 1_772_740_800_000;
        let expected: Vec<Key> = (0..4).map(|i| (t + i * 1000, 10 + i as u64)).collect();
        // ClickHouse lacks the oracle's third row; it holds one row the oracle does not predict.
        let stored = vec![expected[0], expected[1], expected[3], (t + 1500, 99)];
        let rows = vec![
            row(t - 5000, 5),  // a pool's history: before the oracle's first row
            row(t, 10),        // predicted
            row(t + 1000, 11), // predicted
            row(t + 1500, 99), // stored, not predicted
            row(t + 2500, 77), // inside the span, nowhere else: unknown
            row(t + 3000, 13), // predicted
            row(t + 4000, 14), // the closing trade's own bar: after the oracle's last
        ];
        let s = split(
            &rows,
            "event_ts",
            (i64::MIN, i64::MAX),
            900,
            &expected,
            &stored,
        );
        assert_eq!(
            (s.expected, s.predicted.len(), s.tolerated.len()),
            (4, 3, 3)
        );
        assert_eq!(s.unknown, [(t + 2500, 77)]);
        assert_eq!(s.never_stored, [expected[2]]);
        assert!(!s.truncated);
        // The page's window and limit bound what the oracle is held to.
        let s = split(&rows, "event_ts", (t, t + 1000), 1, &expected, &stored);
        assert_eq!((s.expected, s.truncated), (1, true));
    }
}
