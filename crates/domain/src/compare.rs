//! Expected rows against observed rows, by the tables' replacing key `(symbol, event_ts, seq)`.
//!
//! A row whose `seq` alone is off (the job's per-symbol state drifted: a bar split earlier, state
//! restored or reset) would otherwise show as one missing and one extra key for every later bar.
//! An expected key and an observed key that are the only unmatched ones of their `(symbol,
//! event_ts)` are compared as one row instead, so the report says "seq 5, expected 4".

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::model::{Cell, Columns, RowKey};
use crate::scenario::Tolerance;

/// One column that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnDiff {
    pub column: &'static str,
    pub expected: String,
    pub actual: String,
}

/// A row present on both sides whose columns differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowMismatch {
    pub key: String,
    pub columns: Vec<ColumnDiff>,
}

/// The outcome of comparing one table.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TableDiff {
    pub expected: usize,
    pub observed: usize,
    pub matched: usize,
    /// Expected keys absent from the table, in key order.
    pub missing: Vec<String>,
    /// Rows of the run's symbols that the oracle did not predict.
    pub extra: Vec<String>,
    /// Keys seen more than once (with `FINAL` this means the replacing engine is not collapsing).
    pub duplicates: Vec<String>,
    /// Rows on both sides with different values, in key order.
    pub mismatches: Vec<RowMismatch>,
}

impl TableDiff {
    /// `M/E rows match, N missing, N extra, N duplicate, N differ`: the line the console, JUnit
    /// and metrics give a table.
    pub fn summary(&self) -> String {
        format!(
            "{}/{} rows match, {} missing, {} extra, {} duplicate, {} differ",
            self.matched,
            self.expected,
            self.missing.len(),
            self.extra.len(),
            self.duplicates.len(),
            self.mismatches.len()
        )
    }

    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.extra.is_empty()
            && self.duplicates.is_empty()
            && self.mismatches.is_empty()
            && self.matched == self.expected
            && self.expected > 0
    }
}

/// Compares every column except the ones `ignore` names; floats within `tolerance(column)`.
pub fn compare<R: Columns>(
    expected: &[R],
    observed: &[R],
    ignore: impl Fn(&str) -> bool,
    tolerance: impl Fn(&str) -> Tolerance,
) -> TableDiff {
    let mut seen: BTreeMap<RowKey, &R> = BTreeMap::new();
    let mut diff = TableDiff {
        expected: expected.len(),
        observed: observed.len(),
        ..TableDiff::default()
    };
    for row in observed {
        if seen.insert(row.key(), row).is_some() {
            diff.duplicates.push(row.key().to_string());
        }
    }
    let mut wanted: BTreeMap<RowKey, &R> = BTreeMap::new();
    for row in expected {
        wanted.insert(row.key(), row);
    }
    let missing: Vec<&RowKey> = wanted.keys().filter(|k| !seen.contains_key(*k)).collect();
    let extra: Vec<&RowKey> = seen.keys().filter(|k| !wanted.contains_key(*k)).collect();
    let paired = seq_shifted(&missing, &extra);
    for (key, want) in &wanted {
        let got = match (seen.get(key), paired.get(key)) {
            (Some(got), _) => *got,
            (None, Some(observed_key)) => seen[*observed_key],
            (None, None) => {
                diff.missing.push(key.to_string());
                continue;
            }
        };
        let columns = diff_cells(*want, got, &ignore, &tolerance);
        if columns.is_empty() {
            diff.matched += 1;
        } else {
            diff.mismatches.push(RowMismatch {
                key: key.to_string(),
                columns,
            });
        }
    }
    let paired_observed: BTreeSet<&RowKey> = paired.values().copied().collect();
    diff.extra = extra
        .into_iter()
        .filter(|k| !paired_observed.contains(k))
        .map(ToString::to_string)
        .collect();
    diff
}

/// Expected key → observed key, for the `(symbol, event_ts)` pairs with exactly one unmatched
/// key on each side.
fn seq_shifted<'a>(
    missing: &[&'a RowKey],
    extra: &[&'a RowKey],
) -> BTreeMap<&'a RowKey, &'a RowKey> {
    type Bar<'k> = (&'k str, time::OffsetDateTime);
    let mut sides: BTreeMap<Bar<'a>, (Vec<&'a RowKey>, Vec<&'a RowKey>)> = BTreeMap::new();
    for k in missing {
        sides.entry((&k.symbol, k.event_ts)).or_default().0.push(k);
    }
    for k in extra {
        sides.entry((&k.symbol, k.event_ts)).or_default().1.push(k);
    }
    sides
        .into_values()
        .filter_map(|(want, got)| match (want.as_slice(), got.as_slice()) {
            ([w], [g]) => Some((*w, *g)),
            _ => None,
        })
        .collect()
}

fn diff_cells<R: Columns>(
    expected: &R,
    actual: &R,
    ignore: &impl Fn(&str) -> bool,
    tolerance: &impl Fn(&str) -> Tolerance,
) -> Vec<ColumnDiff> {
    expected
        .cells()
        .into_iter()
        .zip(actual.cells())
        .filter(|((name, _), _)| !ignore(name))
        .filter(|((name, want), (_, got))| !cell_matches(want, got, tolerance(name)))
        .map(|((column, want), (_, got))| ColumnDiff {
            column,
            expected: want.to_string(),
            actual: got.to_string(),
        })
        .collect()
}

fn cell_matches(expected: &Cell, actual: &Cell, tolerance: Tolerance) -> bool {
    match (expected, actual) {
        (Cell::Float(Some(e)), Cell::Float(Some(a))) => tolerance.accepts(*e, *a),
        _ => expected == actual,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Microbar;
    use time::macros::datetime;

    fn bar(seq: u64, c: f64) -> Microbar {
        let end = datetime!(2026-01-01 00:00:01 UTC) + time::Duration::seconds(seq as i64);
        Microbar {
            symbol: "ZZT2E-X".into(),
            event_ts: end,
            seq,
            ingest_ts: end,
            is_final: 1,
            source: "ta".into(),
            window_size: "PT1S".into(),
            window_step: Some("PT1S".into()),
            window_start: Some(end - time::Duration::seconds(1)),
            window_end: Some(end),
            version: 1,
            o: 100.0,
            h: 101.0,
            l: 99.0,
            c,
            v: 10.0,
            vwap: Some(100.0),
            count: 2,
        }
    }

    fn run(expected: &[Microbar], observed: &[Microbar]) -> TableDiff {
        compare(
            expected,
            observed,
            |c| c == "ingest_ts",
            |_| Tolerance::default(),
        )
    }

    #[test]
    fn equal_rows_match_and_ingest_ts_is_ignored() {
        let mut seen = bar(1, 100.0);
        seen.ingest_ts += time::Duration::seconds(3);
        let d = run(&[bar(1, 100.0)], &[seen]);
        assert!(d.is_clean(), "{d:?}");
        assert_eq!(d.matched, 1);
    }

    #[test]
    fn nothing_expected_is_never_clean() {
        assert!(!run(&[], &[]).is_clean());
    }

    #[test]
    fn reports_missing_extra_duplicate_and_mismatch() {
        let expected = [bar(1, 100.0), bar(2, 100.0), bar(3, 100.0)];
        let observed = [bar(1, 100.0), bar(1, 100.0), bar(3, 100.5), bar(4, 100.0)];
        let d = run(&expected, &observed);
        assert!(!d.is_clean());
        assert_eq!(d.missing, vec!["ZZT2E-X 2026-01-01T00:00:03.000Z seq 2"]);
        assert_eq!(d.extra, vec!["ZZT2E-X 2026-01-01T00:00:05.000Z seq 4"]);
        assert_eq!(d.duplicates.len(), 1);
        assert_eq!(d.mismatches.len(), 1);
        assert_eq!(
            d.mismatches[0].columns,
            vec![ColumnDiff {
                column: "c",
                expected: "100".into(),
                actual: "100.5".into()
            }]
        );
    }

    #[test]
    fn a_shifted_seq_is_one_differing_row_not_a_missing_and_an_extra_one() {
        // The job split the bar at seq 2 in two: every later seq is one higher.
        let expected = [bar(1, 100.0), bar(2, 100.0), bar(3, 100.0)];
        let mut split = bar(2, 100.0);
        split.count = 1;
        let mut shifted = bar(2, 100.0);
        shifted.seq = 3;
        shifted.count = 1;
        let mut later = bar(3, 100.0);
        later.seq = 4;
        let d = run(&expected, &[bar(1, 100.0), split, shifted, later]);
        assert_eq!(d.matched, 1);
        assert!(d.missing.is_empty(), "{d:?}");
        // Two observed rows for the bar at seq 2: ambiguous, so the second one stays extra.
        assert_eq!(d.extra, vec!["ZZT2E-X 2026-01-01T00:00:03.000Z seq 3"]);
        assert_eq!(d.mismatches.len(), 2);
        assert_eq!(d.mismatches[0].columns[0].column, "count");
        assert_eq!(
            d.mismatches[1].columns,
            vec![ColumnDiff {
                column: "seq",
                expected: "3".into(),
                actual: "4".into()
            }]
        );
        assert_eq!(
            d.mismatches[1].key,
            "ZZT2E-X 2026-01-01T00:00:04.000Z seq 3"
        );
    }

    #[test]
    fn floats_compare_within_tolerance_and_null_is_not_zero() {
        let mut near = bar(1, 100.0 + 1e-10);
        let d = run(&[bar(1, 100.0)], &[near.clone()]);
        assert!(d.is_clean(), "{d:?}");
        near.vwap = None;
        let d = run(&[bar(1, 100.0)], &[near]);
        assert_eq!(d.mismatches[0].columns[0].column, "vwap");
        assert_eq!(d.mismatches[0].columns[0].actual, "NULL");
    }
}
